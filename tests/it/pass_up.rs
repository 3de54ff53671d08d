//! `#[taskthread(pass_up)]`: a thread's children's messages of its up type go straight to
//! its parent, as the thread's own, without its queue or loop; their exits still come to it.

use std::sync::Arc;
use std::time::Duration;

use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
use taskthread::{WaitKind, Waiting};
use tokio::sync::Notify;

/// The message passed up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Note {
    N(u32),
    /// From the middle thread itself: its child has ended.
    LeafEnded(String),
}

/// Sends `count` notes once `go` is notified, then ends.
struct Leaf {
    go: Arc<Notify>,
    count: u32,
}

#[taskthread(up = Note)]
impl Leaf {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.go.notified().await;
        for n in 0..self.count {
            ctx.up(Note::N(n)).await?;
        }
        ctx.stop();
        Ok(())
    }
}

/// Passes its leaf's notes up. Its `Block` handler holds its loop until `release`.
struct Middle {
    go: Arc<Notify>,
    release: Arc<Notify>,
    count: u32,
}

struct Block;

#[taskthread(up = Note, pass_up)]
impl Middle {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Leaf {
            go: Arc::clone(&self.go),
            count: self.count,
        });
        Ok(())
    }

    #[down]
    async fn block(&mut self, _ctx: &mut Ctx<Self>, _b: Block) -> Result<()> {
        self.release.notified().await;
        Ok(())
    }

    #[up]
    async fn leaf_ended(
        &mut self,
        ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        ctx.up(Note::LeafEnded(exit.exit.to_string())).await?;
        Ok(())
    }
}

/// Collects what arrives from its middle child, with who it came from; answers with it once
/// `want` notes have come.
struct Top {
    middle: Option<Middle>,
    middle_id: Option<ChildId>,
    heard: Vec<(ChildId, Note)>,
    want: usize,
}

/// Holds the top's loop until notified.
struct Hold(Arc<Notify>);

#[taskthread(up = (ChildId, Vec<(ChildId, Note)>))]
impl Top {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let middle = ctx.spawn(self.middle.take().expect("enter runs once"));
        // The middle thread's loop is held from here on.
        middle.send(Block).await?;
        self.middle_id = Some(middle.id());
        Ok(())
    }

    #[up]
    async fn note(&mut self, ctx: &mut Ctx<Self>, from: ChildId, note: Note) -> Result<()> {
        self.heard.push((from, note));
        if self.heard.len() == self.want {
            let middle = self.middle_id.expect("the middle thread is spawned");
            ctx.up((middle, std::mem::take(&mut self.heard))).await?;
        }
        Ok(())
    }

    #[down]
    async fn hold(&mut self, _ctx: &mut Ctx<Self>, hold: Hold) -> Result<()> {
        hold.0.notified().await;
        Ok(())
    }
}

fn top(count: u32, want: usize) -> (Top, Arc<Notify>, Arc<Notify>) {
    let (go, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let middle = Middle {
        go: Arc::clone(&go),
        release: Arc::clone(&release),
        count,
    };
    let top = Top {
        middle: Some(middle),
        middle_id: None,
        heard: Vec::new(),
        want,
    };
    (top, go, release)
}

#[tokio::test(flavor = "current_thread")]
async fn a_childs_messages_pass_to_the_grandparent_as_the_middle_threads_own_past_its_held_loop() {
    // Three times the queues' capacity: the leaf waits for room in the top's queue, which
    // the top empties; the middle's loop is held throughout and passes nothing by hand.
    let count = 3 * taskthread::DEFAULT_CAPACITY as u32;
    let (top, go, release) = top(count, count as usize);
    let mut root = taskthread::spawn(top);
    go.notify_one();
    // Were the notes queued for the middle thread, they would wait for its loop for ever.
    let (middle, heard) = tokio::time::timeout(Duration::from_secs(60), root.recv())
        .await
        .expect("the notes pass the held middle thread")
        .expect("the top has every note");
    let from: Vec<ChildId> = heard.iter().map(|(from, _)| *from).collect();
    assert!(
        from.iter().all(|f| *f == middle),
        "all from the middle thread"
    );
    let notes: Vec<Note> = heard.into_iter().map(|(_, note)| note).collect();
    assert_eq!(
        notes,
        (0..count).map(Note::N).collect::<Vec<_>>(),
        "in order"
    );
    release.notify_one();
    root.stop();
    let exit = root.join().await;
    assert!(matches!(exit, Exit::Stopped), "{exit}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_childs_exit_still_comes_to_the_middle_thread_after_its_passed_messages() {
    let (top, go, release) = top(5, 6);
    // The loop is released at once: the middle thread handles its leaf's exit.
    release.notify_one();
    let mut root = taskthread::spawn(top);
    go.notify_one();
    let (middle, heard) = root.recv().await.expect("the top has every note");
    assert!(heard.iter().all(|(from, _)| *from == middle));
    let notes: Vec<Note> = heard.into_iter().map(|(_, note)| note).collect();
    let mut expected: Vec<Note> = (0..5).map(Note::N).collect();
    expected.push(Note::LeafEnded("completed".to_owned()));
    assert_eq!(notes, expected);
    root.stop();
    let exit = root.join().await;
    assert!(matches!(exit, Exit::Stopped), "{exit}");
}

#[tokio::test(start_paused = true, flavor = "current_thread")]
async fn a_child_waiting_for_room_waits_in_the_grandparents_queue_and_the_snapshot_says_so() {
    let count = 10;
    let (top, go, release) = top(count, count as usize);
    let mut root = taskthread::spawn_with(top, ChildOptions::new().capacity(4));
    // The top's loop is held: the leaf fills its 4 shared places and its own, and waits
    // for a sixth.
    let unhold = Arc::new(Notify::new());
    root.send(Hold(Arc::clone(&unhold))).await.unwrap();
    go.notify_one();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let snapshot = root.snapshot();
    let leaf = snapshot.find("top/middle/leaf").expect("the leaf runs");
    let waits: Vec<(WaitKind, ChildId, &str)> = leaf
        .waiting
        .iter()
        .map(|w: &Waiting| (w.kind, w.on, w.path.as_str()))
        .collect();
    assert_eq!(waits, vec![(WaitKind::Up, root.id(), "top")], "{snapshot}");
    let middle = snapshot.find("top/middle").expect("the middle thread runs");
    assert!(middle.waiting.is_empty(), "{snapshot}");
    assert!(
        snapshot
            .to_string()
            .lines()
            .any(|l| l.contains("[top/middle/leaf]") && l.ends_with(", waits for room UP in top")),
        "{snapshot}"
    );
    unhold.notify_one();
    let (_, heard) = root.recv().await.expect("the top has every note");
    assert_eq!(heard.len(), count as usize);
    release.notify_one();
    root.stop();
    let exit = root.join().await;
    assert!(matches!(exit, Exit::Stopped), "{exit}");
}

/// Sends its life's number up, then fails in its first life.
struct Flaky {
    lives: Arc<std::sync::atomic::AtomicU32>,
}

#[taskthread(up = Note)]
impl Flaky {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let life = self.lives.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ctx.up(Note::N(life)).await?;
        if life == 0 {
            return Err(Error::msg("first life fails"));
        }
        Ok(())
    }
}

/// Supervises a `Flaky` and passes its notes up; tells of each restart itself.
struct Supervisor {
    lives: Arc<std::sync::atomic::AtomicU32>,
}

#[taskthread(up = Note, pass_up)]
impl Supervisor {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let lives = Arc::clone(&self.lives);
        let policy = RestartPolicy::on_failure().backoff(Duration::ZERO, Duration::ZERO);
        ctx.supervise(
            move || Flaky {
                lives: Arc::clone(&lives),
            },
            policy,
        );
        Ok(())
    }

    #[up]
    async fn restarted(
        &mut self,
        ctx: &mut Ctx<Self>,
        _from: ChildId,
        restart: ChildRestart,
    ) -> Result<()> {
        ctx.up(Note::LeafEnded(format!("restart {}", restart.life)))
            .await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true, flavor = "current_thread")]
async fn a_supervised_child_passes_its_messages_in_every_life_and_its_restarts_come_to_the_middle_thread()
 {
    // A root that passes: the notes come to its handle.
    let mut root = taskthread::spawn(Supervisor {
        lives: Arc::new(std::sync::atomic::AtomicU32::new(0)),
    });
    let mut notes = Vec::new();
    for _ in 0..3 {
        let note = tokio::time::timeout(Duration::from_secs(60), root.recv())
            .await
            .expect("the notes come")
            .expect("the root runs");
        notes.push(note);
    }
    // The child's own notes in order; the restart, from another sender, anywhere among them.
    let lives: Vec<&Note> = notes.iter().filter(|n| matches!(n, Note::N(_))).collect();
    assert_eq!(lives, vec![&Note::N(0), &Note::N(1)], "{notes:?}");
    assert!(
        notes.contains(&Note::LeafEnded("restart 1".to_owned())),
        "{notes:?}"
    );
    root.stop();
    let exit = root.join().await;
    assert!(matches!(exit, Exit::Stopped), "{exit}");
}
