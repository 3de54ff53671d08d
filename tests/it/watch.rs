//! Watching a tree (`taskthread::watch`): a snapshot then changes in sequence, a stream that
//! falls behind starting again from a snapshot, the figures per thread (messages per type
//! with sampled times, inbound depth, restart budget, task lateness, pool utilisation), a
//! handler that does not return, a slow stop (its stage, deadline and what holds it up),
//! threads blocked on each other (a wait chain), wait cycles, the events, and the stream through the control endpoint in JSON
//! and text.
//!
//! Watching turns recording on for the whole process, and the tests of this binary share
//! one: each test's root has a name of its own, so its events and paths are its own.

use std::time::Duration;

use taskthread::pool::WorkerPool;
use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
use taskthread::watch::{
    EventKind, MessageKind, StopStage, WaitKind, WatchMessage, WatchStream, WatchedTree, Watcher,
};

const TICK: Duration = Duration::from_millis(100);

/// Applies the stream's messages until `done` holds of the tree (at most 2 000 samplings,
/// 200 s of the paused clock).
async fn until(
    stream: &mut WatchStream,
    tree: &mut WatchedTree,
    done: impl Fn(&WatchedTree) -> bool,
) {
    for _ in 0..2_000 {
        tree.apply(stream.next().await)
            .expect("no gap in the stream");
        if done(tree) {
            return;
        }
    }
    panic!("not seen in 2 000 samplings: {tree:#?}");
}

/// Takes `ms` on each number; answers `Ping` at once.
#[derive(Default)]
struct Worker;

struct Ping;

#[taskthread]
impl Worker {
    #[down]
    async fn number(&mut self, _ctx: &mut Ctx<Self>, ms: u64) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    #[down]
    async fn text(&mut self, _ctx: &mut Ctx<Self>, _s: String) -> Result<()> {
        Ok(())
    }

    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_comes_first_then_changes_one_by_one() {
    let root = taskthread::spawn_with(Worker, ChildOptions::new().name("watch-seq"));
    let mut stream = Watcher::with_interval(&root, TICK).subscribe();
    let WatchMessage::Snapshot(first) = stream.next().await else {
        panic!("the first message is a snapshot");
    };
    assert_eq!(first.threads.len(), 1);
    assert_eq!(first.threads[0].path, "watch-seq");
    assert_eq!(first.threads[0].parent, None);

    for n in 0..3u64 {
        root.send(String::from("x")).await.unwrap();
        let WatchMessage::Changes(changes) = stream.next().await else {
            panic!("changes follow the snapshot");
        };
        assert_eq!(changes.seq, first.seq + n + 1);
        assert_eq!(changes.threads.len(), 1, "{changes:?}");
        assert_eq!(changes.threads[0].handled, n + 1);
    }
    // Nothing happens: the changes are empty, but they still come, in sequence.
    let WatchMessage::Changes(quiet) = stream.next().await else {
        panic!("changes");
    };
    assert_eq!((quiet.seq, quiet.threads.len()), (first.seq + 4, 0));
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_falls_behind_gets_a_fresh_snapshot() {
    let root = taskthread::spawn_with(Worker, ChildOptions::new().name("watch-behind"));
    let watcher = Watcher::with_interval(&root, TICK);
    let mut slow = watcher.subscribe();
    let mut keeping_up = watcher.subscribe();
    let first = slow.next().await.seq();
    assert_eq!(keeping_up.next().await.seq(), first);
    // The other stream keeps the sampling going for 40 samplings; the slow one reads none.
    for _ in 0..40 {
        assert!(matches!(keeping_up.next().await, WatchMessage::Changes(_)));
    }
    let WatchMessage::Snapshot(fresh) = slow.next().await else {
        panic!("a stream 40 samplings behind is sent a snapshot");
    };
    assert!(fresh.seq >= first + 40, "{} after {first}", fresh.seq);
    let WatchMessage::Changes(next) = slow.next().await else {
        panic!("then changes again");
    };
    assert_eq!(next.seq, fresh.seq + 1);
}

#[tokio::test(start_paused = true)]
async fn messages_are_counted_per_type_and_sampled_for_their_times() {
    let root = taskthread::spawn_with(Worker, ChildOptions::new().name("watch-types"));
    let mut stream = Watcher::with_interval(&root, TICK).subscribe();
    let mut tree = WatchedTree::default();
    tree.apply(stream.next().await).unwrap();
    // A quiet thread: once a sampling has seen it, every message of it is timed.
    root.send(Ping).await.unwrap();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-types").is_some_and(|v| v.handled == 1)
    })
    .await;
    // 32 numbers that each take 2 ms; they wait behind each other.
    for _ in 0..32 {
        root.send(2u64).await.unwrap();
    }
    for _ in 0..5 {
        root.send(String::new()).await.unwrap();
    }
    until(&mut stream, &mut tree, |t| {
        t.find("watch-types").is_some_and(|v| v.handled == 38)
    })
    .await;
    let view = tree.find("watch-types").unwrap();
    let numbers = view.messages.iter().find(|m| m.name == "u64").unwrap();
    assert_eq!((numbers.kind, numbers.handled), (MessageKind::Down, 32));
    let handler = numbers.handler.expect("sampled handler times");
    assert_eq!(handler.samples, 32);
    assert!(
        (2_000..4_000).contains(&handler.p50_us),
        "a 2 ms handler: {handler:?}"
    );
    let wait = numbers.wait.expect("sampled queue waits");
    assert_eq!(wait.samples, 32);
    assert!(
        wait.p99_us >= 60_000,
        "the last waits behind 31 others: {wait:?}"
    );
    let texts = view.messages.iter().find(|m| m.name == "String").unwrap();
    assert_eq!(texts.handled, 5);
    let pings = view.messages.iter().find(|m| m.name == "Ping").unwrap();
    assert_eq!(pings.handled, 1);
    assert!(view.messages.iter().all(|m| m.kind == MessageKind::Down));
    assert!(
        view.details("")
            .contains("DOWN u64: 32 handled, handler p50")
    );
}

/// Spawns children on demand and passes bursts on to them; its `#[up]` handler takes `ms`
/// per message.
#[derive(Default)]
struct Parent {
    children: Vec<ChildRef<Child>>,
}

struct Spawn;
struct StopFirst;

#[taskthread]
impl Parent {
    #[down]
    async fn spawn_one(&mut self, ctx: &mut Ctx<Self>, _s: Spawn) -> Result<()> {
        self.children.push(ctx.spawn(Child));
        Ok(())
    }

    #[down]
    async fn burst(&mut self, _ctx: &mut Ctx<Self>, b: Burst) -> Result<()> {
        self.children[0].send(b).await?;
        Ok(())
    }

    #[down]
    async fn stop_first(&mut self, _ctx: &mut Ctx<Self>, _s: StopFirst) -> Result<()> {
        self.children.remove(0).stop();
        Ok(())
    }

    #[up]
    async fn slow(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, ms: u64) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}

/// Sends `n` messages UP, each asking its parent for `ms`.
#[derive(Default)]
struct Child;

struct Burst {
    n: u64,
    ms: u64,
}

#[taskthread(up = u64)]
impl Child {
    #[down]
    async fn burst(&mut self, ctx: &mut Ctx<Self>, b: Burst) -> Result<()> {
        for _ in 0..b.n {
            ctx.up(b.ms).await?;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn spawns_and_stops_show_as_changes_and_events_and_the_inbound_queue_fills() {
    let root = taskthread::spawn_with(Parent::default(), ChildOptions::new().name("watch-kids"));
    let mut stream = Watcher::with_interval(&root, TICK).subscribe();
    let mut tree = WatchedTree::default();
    tree.apply(stream.next().await).unwrap();
    assert!(
        tree.find("watch-kids").unwrap().inbound.is_none(),
        "no family yet"
    );

    root.send(Spawn).await.unwrap();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-kids/child").is_some()
    })
    .await;
    let parent = tree.find("watch-kids").unwrap();
    let child = tree.find("watch-kids/child").unwrap();
    assert_eq!(child.parent, Some(parent.id));
    assert_eq!(tree.in_tree_order()[1].0, 1, "the child is one level down");
    let spawned = tree
        .events()
        .find(|e| e.path == "watch-kids/child")
        .unwrap();
    assert_eq!(
        (spawned.kind, spawned.detail.as_str()),
        (EventKind::Spawned, "Child")
    );

    // 80 messages UP that take a quarter of a second each: the parent's inbound queue (64
    // places) fills, and the child waits for room.
    root.send(Burst { n: 80, ms: 250 }).await.unwrap();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-kids")
            .and_then(|p| p.inbound)
            .is_some_and(|i| i.depth == 64 && i.waiting == 1)
    })
    .await;
    let parent = tree.find("watch-kids").unwrap();
    assert_eq!(parent.inbound.unwrap().capacity, 64);
    // The parent has been in its UP handler across samplings.
    until(&mut stream, &mut tree, |t| {
        t.find("watch-kids")
            .unwrap()
            .waits
            .iter()
            .any(|w| w.on == WaitKind::Handler)
    })
    .await;
    let wait = &tree.find("watch-kids").unwrap().waits[0];
    assert_eq!(wait.detail, "UP messages");
    assert!(wait.for_ms.unwrap() >= 100, "{wait:?}");
    assert!(
        wait.to_string()
            .starts_with("in its handler of UP messages for ")
    );
    root.stop();
    until(&mut stream, &mut tree, |t| {
        t.events()
            .any(|e| e.path == "watch-kids/child" && e.kind == EventKind::Exited)
    })
    .await;
    let kinds: Vec<EventKind> = tree
        .events()
        .filter(|e| e.path == "watch-kids/child")
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [EventKind::Spawned, EventKind::Stopping, EventKind::Exited]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopped_child_is_removed_with_its_events() {
    let root = taskthread::spawn_with(Parent::default(), ChildOptions::new().name("watch-gone"));
    root.send(Spawn).await.unwrap();
    let mut stream = Watcher::with_interval(&root, TICK).subscribe();
    let mut tree = WatchedTree::default();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-gone/child").is_some()
    })
    .await;
    let id = tree.find("watch-gone/child").unwrap().id;
    root.send(StopFirst).await.unwrap();
    loop {
        let message = stream.next().await;
        if let WatchMessage::Changes(c) = &message
            && c.removed.contains(&id)
        {
            tree.apply(message).unwrap();
            break;
        }
        tree.apply(message).unwrap();
    }
    assert!(tree.get(id).is_none());
    let kinds: Vec<EventKind> = tree
        .events()
        .filter(|e| e.path == "watch-gone/child")
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [EventKind::Spawned, EventKind::Stopping, EventKind::Exited]
    );
}

/// Fails on `Fail`.
#[derive(Default)]
struct Fragile;

struct Fail;

#[taskthread]
impl Fragile {
    #[down]
    async fn fail(&mut self, _ctx: &mut Ctx<Self>, _f: Fail) -> Result<()> {
        Err(Error::msg("boom"))
    }
}

/// Supervises a `Fragile` and passes `Fail` on to it.
#[derive(Default)]
struct Supervisor {
    fragile: Option<ChildRef<Fragile>>,
}

#[taskthread]
impl Supervisor {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let policy = RestartPolicy::on_failure()
            .backoff(Duration::ZERO, Duration::ZERO)
            .max_restarts(5, Duration::from_secs(60));
        self.fragile = Some(ctx.supervise(Fragile::default, policy));
        Ok(())
    }

    #[down]
    async fn fail(&mut self, _ctx: &mut Ctx<Self>, f: Fail) -> Result<()> {
        self.fragile.as_ref().unwrap().send(f).await?;
        Ok(())
    }

    #[up]
    async fn restarted(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        _r: ChildRestart,
    ) -> Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_supervised_thread_shows_its_restart_budget_and_restarts() {
    let root = taskthread::spawn_with(
        Supervisor::default(),
        ChildOptions::new().name("watch-budget"),
    );
    let mut stream = Watcher::with_interval(&root, TICK).subscribe();
    let mut tree = WatchedTree::default();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-budget/fragile").is_some()
    })
    .await;
    let budget = tree.find("watch-budget/fragile").unwrap().budget.unwrap();
    assert_eq!((budget.used, budget.max, budget.window_ms), (0, 5, 60_000));
    assert_eq!(
        tree.find("watch-budget").unwrap().budget,
        None,
        "not supervised"
    );

    root.send(Fail).await.unwrap();
    root.send(Fail).await.unwrap();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-budget/fragile")
            .is_some_and(|f| f.restarts == 2)
    })
    .await;
    let fragile = tree.find("watch-budget/fragile").unwrap();
    assert_eq!(fragile.budget.unwrap().used, 2);
    assert!(
        fragile.summary().contains("restarts 2 of 5 in 1 min"),
        "{}",
        fragile.summary()
    );
    let restarts = tree
        .events()
        .filter(|e| e.path == "watch-budget/fragile" && e.kind == EventKind::Restarted)
        .count();
    assert_eq!(restarts, 2);
    // A minute later the restarts are out of the window: the budget is whole again.
    tokio::time::sleep(Duration::from_secs(61)).await;
    until(&mut stream, &mut tree, |t| {
        t.find("watch-budget/fragile").unwrap().budget.unwrap().used == 0
    })
    .await;
}

/// A periodic task, and a DOWN handler that holds the loop for `ms`.
#[derive(Default)]
struct Ticker;

#[taskthread]
impl Ticker {
    #[rescheduling(every = "100ms")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        Ok(Reschedule::Again)
    }

    #[down]
    async fn hold(&mut self, _ctx: &mut Ctx<Self>, ms: u64) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_held_up_by_a_handler_shows_how_late_it_ran() {
    let root = taskthread::spawn_with(Ticker, ChildOptions::new().name("watch-late"));
    let mut stream = Watcher::with_interval(&root, TICK).subscribe();
    let mut tree = WatchedTree::default();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-late").unwrap().tasks[0].due_in_ms.is_some()
    })
    .await;
    let task = &tree.find("watch-late").unwrap().tasks[0];
    assert_eq!((task.name.as_str(), task.every_ms), ("tick", Some(100)));
    root.send(350u64).await.unwrap();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-late").unwrap().tasks[0].late_max_us >= 200_000
    })
    .await;
    let view = tree.find("watch-late").unwrap();
    let runs = view
        .messages
        .iter()
        .find(|m| m.kind == MessageKind::Task)
        .unwrap();
    assert_eq!(runs.name, "tick");
    let took = runs.handler.expect("every task run is timed");
    // The late runs took no time: a run is timed from when it began, not from when it
    // was due.
    assert!(took.p99_us < 1_000, "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_pool_shows_how_many_of_its_workers_are_busy() {
    let pool = WorkerPool::new(|| Worker).size(3).max(4);
    let root = taskthread::spawn_with(pool, ChildOptions::new().name("watch-pool"));
    let mut stream = Watcher::with_interval(&root, TICK).subscribe();
    let mut tree = WatchedTree::default();
    until(&mut stream, &mut tree, |t| t.len() == 4).await;
    let pool = tree.find("watch-pool").unwrap().pool.unwrap();
    assert_eq!((pool.running, pool.max, pool.busy), (3, 4, 0));
    root.send(10_000u64).await.unwrap();
    root.send(10_000u64).await.unwrap();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-pool").unwrap().pool.unwrap().busy == 2
    })
    .await;
    assert!(
        tree.find("watch-pool")
            .unwrap()
            .summary()
            .contains("workers 2 busy of 3 (max 4)")
    );
}

/// Its exit hook takes ten seconds.
#[derive(Default)]
struct SlowExit;

#[taskthread]
impl SlowExit {
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// Two children that stop slowly, the second in a later stop stage.
#[derive(Default)]
struct SlowStopper;

#[taskthread]
impl SlowStopper {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn_with(SlowExit, ChildOptions::new().name("first"));
        ctx.spawn_with(SlowExit, ChildOptions::new().name("second").stop_stage(1));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_stop_shows_its_stage_its_deadline_and_what_holds_it_up() {
    let options = ChildOptions::new()
        .name("watch-stop")
        .stop_deadline(Duration::from_secs(60));
    let root = taskthread::spawn_with(SlowStopper, options);
    let mut stream = Watcher::with_interval(&root, TICK).subscribe();
    let mut tree = WatchedTree::default();
    until(&mut stream, &mut tree, |t| t.len() == 3).await;
    root.stop();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-stop")
            .unwrap()
            .stop
            .as_ref()
            .is_some_and(|s| s.stage == StopStage::Children)
            && t.find("watch-stop/first").unwrap().stop.is_some()
    })
    .await;
    let parent = tree.find("watch-stop").unwrap();
    let stop = parent.stop.as_ref().unwrap();
    assert_eq!(stop.children_stage, Some(0));
    assert_eq!(
        stop.holding,
        ["watch-stop/first"],
        "stage 1 waits for stage 0"
    );
    let left = stop.deadline_left_ms.expect("the deadline is known");
    assert!((50_000..=60_000).contains(&left), "{left} ms left");
    assert_eq!(parent.waits.len(), 1);
    assert_eq!(parent.waits[0].on, WaitKind::Child);
    assert_eq!(parent.waits[0].target.as_deref(), Some("watch-stop/first"));
    let first = tree.find("watch-stop/first").unwrap();
    assert_eq!(first.stop.as_ref().unwrap().stage, StopStage::ExitHook);
    assert_eq!(first.waits[0].on, WaitKind::ExitHook);
    let chain = tree.wait_chain("watch-stop");
    assert_eq!(chain.paths, ["watch-stop", "watch-stop/first"]);
    assert!(!chain.cycle);
    assert!(tree.wait_cycles().is_empty());
    assert!(
        parent
            .summary()
            .contains("stopping its children (deadline in "),
        "{}",
        parent.summary()
    );

    // Ten seconds on, the first is gone and the second stage holds the stop up.
    until(&mut stream, &mut tree, |t| {
        t.find("watch-stop/first").is_none()
    })
    .await;
    until(&mut stream, &mut tree, |t| {
        t.find("watch-stop")
            .unwrap()
            .stop
            .as_ref()
            .unwrap()
            .children_stage
            == Some(1)
    })
    .await;
    let stop = tree.find("watch-stop").unwrap().stop.clone().unwrap();
    assert_eq!(stop.holding, ["watch-stop/second"]);
    assert!(stop.for_ms.unwrap() >= 10_000);
    assert!(matches!(root.join().await, Exit::Stopped));
}

struct Pass(u32);

/// Passes on each question's number to its slow child, three times; the child's queue holds
/// one, so the third send waits for room.
#[derive(Default)]
struct Middle {
    leaf: Option<ChildRef<Worker>>,
}

#[taskthread]
impl Middle {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let options = ChildOptions::new().name("leaf").capacity(1);
        self.leaf = Some(ctx.spawn_with(Worker, options));
        Ok(())
    }

    #[down]
    async fn pass(&mut self, _ctx: &mut Ctx<Self>, p: Pass) -> Result<u32> {
        let leaf = self.leaf.as_ref().expect("spawned in enter");
        for _ in 0..3 {
            leaf.send(60_000u64).await?;
        }
        Ok(p.0)
    }
}

struct Start;

/// Asks its child a question on `Start`, and keeps the answer.
#[derive(Default)]
struct Questioner {
    answer: Option<u32>,
}

struct Answer;

#[taskthread]
impl Questioner {
    #[down]
    async fn start(&mut self, ctx: &mut Ctx<Self>, _s: Start) -> Result<()> {
        let middle = ctx.spawn_with(Middle::default(), ChildOptions::new().name("middle"));
        self.answer = Some(middle.ask(Pass(7)).await?);
        Ok(())
    }

    #[down]
    async fn answer(&mut self, _ctx: &mut Ctx<Self>, _a: Answer) -> Result<Option<u32>> {
        Ok(self.answer)
    }
}

#[tokio::test(start_paused = true)]
async fn threads_blocked_on_each_other_show_as_a_wait_chain() {
    // The leaf takes a minute per number: the stop drains what is queued.
    let options = ChildOptions::new()
        .name("watch-chain")
        .stop_deadline(Duration::from_secs(600));
    let root = taskthread::spawn_with(Questioner::default(), options);
    let mut stream = Watcher::with_interval(&root, TICK).subscribe();
    let mut tree = WatchedTree::default();
    root.send(Start).await.unwrap();
    let path = [
        "watch-chain",
        "watch-chain/middle",
        "watch-chain/middle/leaf",
    ];
    until(&mut stream, &mut tree, |t| {
        t.wait_chain(path[0]).paths == path
    })
    .await;
    assert!(tree.wait_cycles().is_empty());

    let waits = |p: &str| tree.find(p).unwrap().waits.clone();
    let asker = waits(path[0]);
    let answer = asker.iter().find(|w| w.on == WaitKind::Answer).unwrap();
    assert_eq!(answer.target.as_deref(), Some(path[1]));
    assert_eq!(answer.to_string(), "for an answer from watch-chain/middle");
    let middle = waits(path[1]);
    let room = middle.iter().find(|w| w.on == WaitKind::Down).unwrap();
    assert_eq!(room.target.as_deref(), Some(path[2]));
    assert_eq!(
        room.to_string(),
        "for room in the queue of watch-chain/middle/leaf"
    );
    until(&mut stream, &mut tree, |t| {
        t.find(path[2])
            .unwrap()
            .waits
            .iter()
            .any(|w| w.on == WaitKind::Handler)
    })
    .await;
    let leaf = tree.find(path[2]).unwrap();
    assert_eq!(
        leaf.queue.depth, 1,
        "one number queued behind the one handled"
    );
    assert_eq!(tree.find(path[1]).unwrap().queue.depth, 0);

    // The leaf's handler returns: the chain ends, the question is answered.
    until(&mut stream, &mut tree, |t| {
        t.find(path[0]).unwrap().waits.is_empty()
    })
    .await;
    assert_eq!(root.ask(Answer).await.unwrap(), Some(7));
    root.stop();
    let exit = root.join().await;
    assert!(matches!(exit, Exit::Stopped), "{exit:?}");
}

#[tokio::test(start_paused = true)]
async fn text_renders_the_tree_and_the_changes() {
    let root = taskthread::spawn_with(Parent::default(), ChildOptions::new().name("watch-text"));
    root.send(Spawn).await.unwrap();
    let watcher = Watcher::with_interval(&root, TICK);
    let mut stream = watcher.subscribe();
    let mut tree = WatchedTree::default();
    until(&mut stream, &mut tree, |t| {
        t.find("watch-text/child").is_some()
    })
    .await;
    let text = watcher.subscribe().next().await.to_string();
    assert!(text.starts_with("snapshot #"), "{text}");
    assert!(
        text.contains("\n    watch-text/child (Child) running, queue 0/64, handled 0\n"),
        "{text}"
    );
    let changes = stream.next().await;
    assert!(changes.to_string().starts_with("changes #"));
    let json = changes.to_json();
    assert!(json.starts_with(r#"{"kind":"changes","seq":"#), "{json}");
    let back: WatchMessage = serde_json::from_str(&json).unwrap();
    assert_eq!(back, changes);
}

#[tokio::test(start_paused = true)]
async fn threads_aborted_past_the_deadline_are_reported_failed() {
    let options = ChildOptions::new()
        .name("watch-abort")
        .stop_deadline(Duration::from_secs(1));
    let root = taskthread::spawn_with(SlowStopper, options);
    let mut stream = Watcher::with_interval(&root, TICK).subscribe();
    let mut tree = WatchedTree::default();
    until(&mut stream, &mut tree, |t| t.len() == 3).await;
    root.stop();
    assert!(matches!(root.join().await, Exit::Aborted { .. }));
    until(&mut stream, &mut tree, |t| {
        t.len() == 1 && t.find("watch-abort").unwrap().state == "exited"
    })
    .await;
    let aborted: Vec<(&str, &str)> = tree
        .events()
        .filter(|e| e.kind == EventKind::Failed)
        .map(|e| (e.path.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        aborted,
        [
            ("watch-abort/first", "aborted"),
            ("watch-abort/second", "aborted"),
            ("watch-abort", "aborted")
        ]
    );
}

#[cfg(unix)]
mod endpoint {
    //! The watch stream through the control endpoint, in JSON and in text.

    use super::*;
    use taskthread::control::{ControlClient, ControlEndpoint};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_control_endpoint_streams_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("watch.sock");
        let root = taskthread::spawn_with(Parent::default(), ChildOptions::new().name("watch-ctl"));
        let endpoint = ControlEndpoint::unix(&socket).watch_interval(Duration::from_millis(20));
        let _control = taskthread::spawn(endpoint.bind(&root).await.unwrap());

        let mut watch = ControlClient::connect_unix(&socket)
            .await
            .unwrap()
            .watch()
            .await
            .unwrap();
        let mut tree = WatchedTree::default();
        let first = watch.next().await.unwrap();
        assert!(matches!(first, WatchMessage::Snapshot(_)));
        tree.apply(first).unwrap();
        root.send(Spawn).await.unwrap();
        while tree.find("watch-ctl/child").is_none() {
            tree.apply(watch.next().await.unwrap()).unwrap();
        }

        // In text, on a session of its own: the first frame is the snapshot.
        let mut text = ControlClient::connect_unix(&socket).await.unwrap();
        let answer = text.request("watch").await.unwrap();
        assert!(answer.ok);
        assert!(
            answer.payload.starts_with("snapshot #"),
            "{}",
            answer.payload
        );
        assert!(
            answer.payload.contains("    watch-ctl/child (Child)"),
            "{}",
            answer.payload
        );

        let mut other = ControlClient::connect_unix(&socket).await.unwrap();
        let refused = other.request("watch now").await.unwrap();
        assert!(!refused.ok);
        assert_eq!(refused.payload, "`watch` takes no arguments");
        // The session goes on after a refusal.
        assert!(other.request("tree").await.unwrap().ok);
    }
}

/// A snapshot of three threads that wait on each other in a ring, and a fourth that waits
/// on the ring, as a watch stream would carry it (wait targets come with the kinds of wait
/// that name another thread).
fn ring_of_waits() -> WatchMessage {
    let thread = |id: u64, path: &str, target: &str| {
        serde_json::json!({
            "id": id, "parent": if id == 1 { None } else { Some(1) }, "name": path, "path": path,
            "type": "Node", "down": [], "up": null, "state": "running", "handled": 0,
            "queue": { "depth": 0, "capacity": 64, "waiting": 0 }, "inbound": null,
            "restarts": 0, "budget": null, "messages": [], "tasks": [], "pool": null, "stop": null,
            "waits": [{ "on": "child", "target": target, "detail": "", "for_ms": 1000 }]
        })
    };
    let snapshot = serde_json::json!({
        "kind": "snapshot", "seq": 1, "at_ms": 0, "events": [],
        "threads": [thread(1, "a", "b"), thread(2, "b", "c"), thread(3, "c", "a"), thread(4, "d", "a")]
    });
    serde_json::from_value(snapshot).unwrap()
}

#[test]
fn a_wait_cycle_is_found_and_shown() {
    let mut tree = WatchedTree::default();
    tree.apply(ring_of_waits()).unwrap();
    let cycles = tree.wait_cycles();
    assert_eq!(
        cycles.len(),
        1,
        "one cycle, however many threads lead into it"
    );
    assert_eq!(cycles[0].paths, ["a", "b", "c", "a"]);
    assert!(cycles[0].cycle);
    let into = tree.wait_chain("d");
    assert_eq!(into.to_string(), "d -> a -> b -> c -> a (cycle)");
    // Changes that do not follow are refused, and leave the tree as it was.
    let gap: WatchMessage = serde_json::from_value(serde_json::json!({
        "kind": "changes", "seq": 5, "at_ms": 0, "threads": [], "removed": [1],
        "events": [], "missed_events": 0
    }))
    .unwrap();
    let refused = tree.apply(gap).unwrap_err();
    assert_eq!((refused.expected, refused.received), (2, 5));
    assert_eq!(tree.len(), 4);
}

#[test]
fn a_sampling_whose_runtime_shut_down_starts_again_where_the_streams_run() {
    let own = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = own.block_on(async { taskthread::spawn(Worker) });
    let watcher = Watcher::with_interval(&root, TICK);
    // The first stream is opened on a runtime that then shuts down, with the stream still
    // open: the sampling task it started is gone with that runtime.
    let brief = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut first = brief.block_on(async {
        let mut stream = watcher.subscribe();
        assert!(matches!(stream.next().await, WatchMessage::Snapshot(_)));
        stream
    });
    drop(brief);
    own.block_on(async {
        let mut stream = watcher.subscribe();
        assert!(matches!(stream.next().await, WatchMessage::Snapshot(_)));
        // Generous: a sampling comes every TICK; none would ever come without the fix.
        let next = tokio::time::timeout(TICK * 50, stream.next())
            .await
            .expect("samplings go on, on this runtime");
        assert!(matches!(next, WatchMessage::Changes(_)), "{next:?}");
        // The stream opened on the gone runtime starts afresh here, with a snapshot.
        let again = tokio::time::timeout(TICK * 50, first.next())
            .await
            .expect("the first stream goes on too");
        assert!(matches!(again, WatchMessage::Snapshot(_)), "{again:?}");
        root.stop();
        assert!(matches!(root.join().await, Exit::Stopped));
    });
}
