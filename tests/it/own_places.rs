//! Each child's own place in its parent's inbound queue: with the shared places all taken
//! and no sender waiting, a child's message goes in its own place and the child goes on; it
//! waits while its last message there has not been handed to the parent.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::pool::WorkerPool;
use taskthread::prelude::*;
use taskthread::{WaitKind, Waiting};
use tokio::sync::Notify;

/// DOWN: spawn the children and hold the loop until notified.
struct Hold(Arc<Notify>);

/// Sends `count` numbers UP as it starts, counting each send that has returned.
struct Reporter {
    count: u32,
    sent: Arc<AtomicU32>,
}

#[taskthread(up = u32)]
impl Reporter {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for n in 0..self.count {
            ctx.up(n).await?;
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Spawns one child (or a pool, or a passing thread) of a holder.
type SpawnOne = Box<dyn FnOnce(&mut Ctx<Holder>) + Send>;

/// Its `Hold` handler spawns its children, letting each run before the next if
/// `one_by_one`, and holds its loop; once it has heard `expected` messages it sends them
/// UP.
struct Holder {
    spawns: Vec<SpawnOne>,
    one_by_one: bool,
    expected: usize,
    heard: Vec<(ChildId, u32)>,
}

#[taskthread(up = Vec<(ChildId, u32)>)]
impl Holder {
    #[down]
    async fn hold(&mut self, ctx: &mut Ctx<Self>, Hold(release): Hold) -> Result<()> {
        for spawn in std::mem::take(&mut self.spawns) {
            spawn(ctx);
            if self.one_by_one {
                settle().await;
            }
        }
        release.notified().await;
        Ok(())
    }

    #[up]
    async fn number(&mut self, ctx: &mut Ctx<Self>, from: ChildId, n: u32) -> Result<()> {
        self.heard.push((from, n));
        if self.heard.len() == self.expected {
            ctx.up(std::mem::take(&mut self.heard)).await?;
        }
        Ok(())
    }
}

/// A reporter sending `count` numbers, counted in `sent`.
fn reporter(count: u32, sent: &Arc<AtomicU32>) -> SpawnOne {
    let sent = Arc::clone(sent);
    Box::new(move |ctx: &mut Ctx<Holder>| {
        ctx.spawn(Reporter { count, sent });
    })
}

/// Starts `holder` as a root with one shared place in its queue, has it spawn its children
/// and hold its loop, and lets every task run; the loop goes on once `release` is notified.
async fn held(holder: Holder) -> (Handle<Holder>, Arc<Notify>) {
    let root = taskthread::spawn_with(holder, ChildOptions::new().capacity(1));
    let release = Arc::new(Notify::new());
    root.send(Hold(Arc::clone(&release))).await.unwrap();
    // Past the holder's pauses between its spawns.
    tokio::time::sleep(Duration::from_secs(1)).await;
    (root, release)
}

/// Lets every task run until nothing moves (the clock is paused: this takes no time).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Releases the holder's loop and returns what it heard; then stops it.
async fn release_and_hear(mut root: Handle<Holder>, release: &Notify) -> Vec<(ChildId, u32)> {
    release.notify_one();
    let heard = root.recv().await.expect("the holder heard every message");
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
    heard
}

fn holder(spawns: Vec<SpawnOne>, one_by_one: bool, expected: usize) -> Holder {
    Holder {
        spawns,
        one_by_one,
        expected,
        heard: Vec::new(),
    }
}

#[tokio::test(start_paused = true, flavor = "current_thread")]
async fn many_children_that_each_send_once_never_wait_on_a_parent_with_one_place() {
    let sent = Arc::new(AtomicU32::new(0));
    let spawns = (0..50).map(|_| reporter(1, &sent)).collect();
    let (root, release) = held(holder(spawns, false, 50)).await;
    // The parent's loop is held and has taken nothing: one message is in the shared
    // place, the other 49 in their senders' own places.
    assert_eq!(
        sent.load(Ordering::SeqCst),
        50,
        "every child's send returned"
    );
    let snapshot = root.snapshot();
    assert_eq!(snapshot.len(), 51, "{snapshot}");
    assert!(
        snapshot.children.iter().all(|t| t.waiting.is_empty()),
        "no child waits: {snapshot}"
    );
    let heard = release_and_hear(root, &release).await;
    let from: HashSet<ChildId> = heard.iter().map(|(id, _)| *id).collect();
    assert_eq!(from.len(), 50, "one message from each child");
}

#[tokio::test(start_paused = true, flavor = "current_thread")]
async fn a_child_waits_once_its_own_place_is_taken_and_its_messages_keep_their_order() {
    let sent = Arc::new(AtomicU32::new(0));
    let (root, release) = held(holder(vec![reporter(4, &sent)], false, 4)).await;
    // The shared place and the child's own place are taken: the third send waits.
    assert_eq!(sent.load(Ordering::SeqCst), 2);
    let snapshot = root.snapshot();
    let child = snapshot.find("holder/reporter").expect("the child runs");
    let waits: Vec<(WaitKind, ChildId)> = child
        .waiting
        .iter()
        .map(|w: &Waiting| (w.kind, w.on))
        .collect();
    assert_eq!(waits, vec![(WaitKind::Up, root.id())], "{snapshot}");
    let heard = release_and_hear(root, &release).await;
    let numbers: Vec<u32> = heard.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, [0, 1, 2, 3], "in the order sent");
    assert_eq!(sent.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true, flavor = "current_thread")]
async fn a_child_does_not_go_ahead_of_a_waiting_one_through_its_own_place() {
    // The first child takes the one shared place and its own, and waits with its third
    // message; the second, coming after, waits behind it rather than use its own place.
    let sent = Arc::new(AtomicU32::new(0));
    let spawns = vec![reporter(3, &sent), reporter(1, &sent)];
    let (root, release) = held(holder(spawns, true, 4)).await;
    assert_eq!(sent.load(Ordering::SeqCst), 2);
    let snapshot = root.snapshot();
    let waiting: Vec<usize> = snapshot.children.iter().map(|c| c.waiting.len()).collect();
    assert_eq!(waiting, [1, 1], "both children wait: {snapshot}");
    let (first, second) = (snapshot.children[0].id, snapshot.children[1].id);
    let heard = release_and_hear(root, &release).await;
    assert_eq!(
        heard,
        [(first, 0), (first, 1), (first, 2), (second, 0)],
        "the waiting child's message first"
    );
}

/// `try_up`s three numbers as it starts: what each returned.
struct Trier {
    results: Arc<Mutex<Vec<bool>>>,
}

#[taskthread(up = u32)]
impl Trier {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for n in 0..3 {
            let sent = ctx.try_up(n).is_ok();
            self.results.lock().unwrap().push(sent);
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true, flavor = "current_thread")]
async fn try_up_takes_the_own_place_once_and_then_finds_the_queue_full() {
    let results = Arc::new(Mutex::new(Vec::new()));
    let tried = Arc::clone(&results);
    let trier: SpawnOne = Box::new(move |ctx: &mut Ctx<Holder>| {
        ctx.spawn(Trier { results: tried });
    });
    let (root, release) = held(holder(vec![trier], false, 2)).await;
    assert_eq!(*results.lock().unwrap(), [true, true, false]);
    let heard = release_and_hear(root, &release).await;
    let numbers: Vec<u32> = heard.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, [0, 1]);
}

/// Passes its reporters' messages up (`pass_up`): their own places are in its parent's
/// queue.
struct Passer {
    children: u32,
    sent: Arc<AtomicU32>,
}

#[taskthread(up = u32, pass_up)]
impl Passer {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for _ in 0..self.children {
            ctx.spawn(Reporter {
                count: 1,
                sent: Arc::clone(&self.sent),
            });
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true, flavor = "current_thread")]
async fn children_of_a_passing_thread_have_their_own_places_in_the_grandparents_queue() {
    let sent = Arc::new(AtomicU32::new(0));
    let passing = Arc::clone(&sent);
    let passer: SpawnOne = Box::new(move |ctx: &mut Ctx<Holder>| {
        ctx.spawn(Passer {
            children: 8,
            sent: passing,
        });
    });
    let (root, release) = held(holder(vec![passer], false, 8)).await;
    assert_eq!(sent.load(Ordering::SeqCst), 8, "no child waits");
    let passer = root.snapshot().find("holder/passer").expect("runs").id;
    let heard = release_and_hear(root, &release).await;
    assert!(heard.iter().all(|(from, _)| *from == passer));
}

#[tokio::test(start_paused = true, flavor = "current_thread")]
async fn a_pools_workers_have_their_own_places_in_the_pools_parents_queue() {
    let sent = Arc::new(AtomicU32::new(0));
    let working = Arc::clone(&sent);
    let pool: SpawnOne = Box::new(move |ctx: &mut Ctx<Holder>| {
        let pool = WorkerPool::new(move || Reporter {
            count: 1,
            sent: Arc::clone(&working),
        });
        ctx.spawn(pool.size(6));
    });
    let (root, release) = held(holder(vec![pool], false, 6)).await;
    assert_eq!(sent.load(Ordering::SeqCst), 6, "no worker waits");
    let heard = release_and_hear(root, &release).await;
    assert_eq!(heard.len(), 6);
}
