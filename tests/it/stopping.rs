//! Lifecycle and graceful stop: hooks, ordering, stop stages, failures and panics reported
//! exactly once, and no task left alive after the root is joined.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::prelude::*;

type Log = Arc<Mutex<Vec<String>>>;

fn log(log: &Log, line: impl Into<String>) {
    log.lock().unwrap().push(line.into());
}

fn lines(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

fn lines_starting(log: &Log, prefix: &str) -> Vec<String> {
    lines(log)
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[derive(Debug, Clone)]
struct Work(u32);
#[derive(Debug, Clone)]
struct Boom;
#[derive(Debug, Clone)]
struct Panic;
#[derive(Debug, Clone)]
struct Done(String);

/// A leaf that logs its lifecycle and its work, and sends a `Done` UP when it stops.
struct Leaf {
    log: Log,
}

#[taskthread(up = Done)]
impl Leaf {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        log(&self.log, format!("enter {}", ctx.path()));
        Ok(())
    }

    #[down]
    async fn work(&mut self, ctx: &mut Ctx<Self>, w: Work) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        log(&self.log, format!("work {} {}", ctx.path(), w.0));
        Ok(())
    }

    #[down]
    async fn boom(&mut self, _ctx: &mut Ctx<Self>, _b: Boom) -> Result<()> {
        Err(std::io::Error::other("disk on fire").into())
    }

    #[down]
    async fn panic(&mut self, _ctx: &mut Ctx<Self>, _p: Panic) -> Result<()> {
        panic!("leaf exploded");
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        // UP messages sent while stopping still reach the parent.
        ctx.up(Done(ctx.path().to_owned())).await?;
        log(&self.log, format!("exit {}", ctx.path()));
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct SpawnLeaf {
    stage: u32,
}

/// A parent that logs what it hears from its children.
struct Branch {
    log: Log,
    leaves: Vec<ChildRef<Leaf>>,
}

#[taskthread]
impl Branch {
    #[down]
    async fn spawn_leaf(&mut self, ctx: &mut Ctx<Self>, s: SpawnLeaf) -> Result<ChildId> {
        let leaf = ctx.spawn_with(
            Leaf {
                log: self.log.clone(),
            },
            ChildOptions::new()
                .name(format!("leaf{}", s.stage))
                .stop_stage(s.stage),
        );
        let id = leaf.id();
        self.leaves.push(leaf);
        Ok(id)
    }

    #[down]
    async fn work(&mut self, _ctx: &mut Ctx<Self>, w: Work) -> Result<()> {
        for leaf in &self.leaves {
            leaf.send(w.clone()).await?;
        }
        Ok(())
    }

    #[down]
    async fn boom(&mut self, _ctx: &mut Ctx<Self>, _b: Boom) -> Result<()> {
        self.leaves[0].send(Boom).await?;
        Ok(())
    }

    #[down]
    async fn panic(&mut self, _ctx: &mut Ctx<Self>, _p: Panic) -> Result<()> {
        self.leaves[0].send(Panic).await?;
        Ok(())
    }

    #[up]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, d: Done) -> Result<()> {
        log(&self.log, format!("done {}", d.0));
        Ok(())
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        log(&self.log, format!("exited {} {}", exit.path(), exit.exit));
        Ok(())
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        log(&self.log, "exit branch");
    }
}

fn branch(log: &Log) -> Branch {
    Branch {
        log: log.clone(),
        leaves: Vec::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_drains_the_queue_stops_children_first_and_reports_once() {
    let start = alive_tasks();
    let log = Log::default();
    let root = taskthread::spawn(branch(&log));
    root.ask(SpawnLeaf { stage: 0 }).await.unwrap();
    // Queue work, then stop at once: the queued messages are still handled.
    root.send(Work(1)).await.unwrap();
    root.send(Work(2)).await.unwrap();
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
    assert_eq!(
        lines(&log),
        [
            "enter branch/leaf0",
            "work branch/leaf0 1",
            "work branch/leaf0 2",
            "exit branch/leaf0",
            // The UP message the leaf sent from its exit hook arrives before its exit report.
            "done branch/leaf0",
            "exited branch/leaf0 stopped",
            "exit branch",
        ]
    );
    assert_eq!(
        alive_tasks(),
        start,
        "no task of the tree is alive after join"
    );
}

/// A root whose exit hook starts a leaf and gives it work.
struct Closer {
    log: Log,
}

#[taskthread]
impl Closer {
    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let leaf = ctx.spawn(Leaf {
            log: self.log.clone(),
        });
        leaf.send(Work(7)).await?;
        Ok(())
    }

    #[up]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _d: Done) -> Result<()> {
        Ok(())
    }
}

/// The result of a blocking job.
struct Checked;

/// A thread whose exit hook starts a leaf (which sends UP from its own exit), if told to, a
/// blocking job and a task: all answer after the hook, when no handler runs any more.
struct LateStarter {
    log: Log,
    with_leaf: bool,
}

#[taskthread]
impl LateStarter {
    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        if self.with_leaf {
            ctx.spawn(Leaf {
                log: self.log.clone(),
            });
        }
        ctx.spawn_blocking(|| Checked);
        ctx.spawn_task(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Checked
        });
    }

    #[up]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, d: Done) -> Result<()> {
        log(&self.log, format!("heard done {}", d.0));
        Ok(())
    }

    #[stream]
    async fn checked(&mut self, _ctx: &mut Ctx<Self>, _c: Checked) -> Result<()> {
        log(&self.log, "heard checked");
        Ok(())
    }
}

/// A root that logs its children's exits with what they dropped.
struct Holder {
    log: Log,
    with_leaf: bool,
}

#[taskthread]
impl Holder {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(LateStarter {
            log: self.log.clone(),
            with_leaf: self.with_leaf,
        });
        Ok(())
    }

    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        log(
            &self.log,
            format!(
                "exited {} {}, {} dropped",
                exit.path(),
                exit.exit,
                exit.dropped
            ),
        );
    }
}

#[tokio::test(start_paused = true)]
async fn what_reaches_a_thread_after_its_exit_hook_is_counted_as_dropped() {
    let start = alive_tasks();
    let log = Log::default();
    let root = taskthread::spawn(Holder {
        log: log.clone(),
        with_leaf: true,
    });
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
    assert_eq!(
        lines(&log),
        [
            "enter holder/late_starter/leaf",
            "exit holder/late_starter/leaf",
            // The leaf's `Done` and the two results: no handler of the starter ran.
            "exited holder/late_starter stopped, 3 dropped",
        ]
    );
    assert_eq!(
        alive_tasks(),
        start,
        "no task of the tree is alive after join"
    );
}

#[tokio::test(start_paused = true)]
async fn results_of_tasks_an_exit_hook_started_are_counted_as_dropped() {
    let log = Log::default();
    let root = taskthread::spawn(Holder {
        log: log.clone(),
        with_leaf: false,
    });
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
    assert_eq!(
        lines(&log),
        ["exited holder/late_starter stopped, 2 dropped"]
    );
}

/// A thread whose exit hook starts a task that never ends.
struct Hanger;

#[taskthread]
impl Hanger {
    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        ctx.spawn_task(std::future::pending::<Checked>());
    }

    #[stream]
    async fn checked(&mut self, _ctx: &mut Ctx<Self>, _c: Checked) {}
}

/// A thread whose exit hook starts a task that panics.
struct LateBomber;

async fn explode() {
    tokio::task::yield_now().await;
    panic!("cleanup went wrong");
}

#[taskthread]
impl LateBomber {
    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        ctx.spawn_task(explode());
    }

    #[stream]
    async fn checked(&mut self, _ctx: &mut Ctx<Self>, _c: ()) {}
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_task_started_by_the_exit_hook_fails_the_thread() {
    let root = taskthread::spawn(LateBomber);
    root.stop();
    let exit = root.join().await;
    assert!(
        matches!(&exit, Exit::Panicked(m) if m == "cleanup went wrong"),
        "{exit}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_task_started_by_the_exit_hook_is_waited_for_within_the_stop_deadline() {
    let start = alive_tasks();
    let root = taskthread::spawn_with(
        Hanger,
        ChildOptions::new().stop_deadline(Duration::from_secs(5)),
    );
    root.stop();
    assert!(matches!(root.join().await, Exit::Aborted { dropped: 0 }));
    assert_eq!(
        alive_tasks(),
        start,
        "no task of the tree is alive after join"
    );
}

/// A thread whose `exit` hook never returns.
struct Stubborn;

#[taskthread]
impl Stubborn {
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        std::future::pending::<()>().await;
    }
}

/// A thread whose `exit` hook takes a while, then spawns a [`Stubborn`] with `options`.
struct LateSpawner {
    options: ChildOptions,
}

#[taskthread]
impl LateSpawner {
    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        tokio::time::sleep(Duration::from_millis(900)).await;
        ctx.spawn_with(Stubborn, self.options.clone());
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_spawned_by_the_exit_hook_is_bounded_by_the_threads_stop_deadline() {
    // The child's own deadline, started with its own stop, would pass 0.9 s after the
    // thread's; with none, nothing but the thread's deadline ends the wait.
    for options in [ChildOptions::new(), ChildOptions::new().no_stop_deadline()] {
        let start = alive_tasks();
        let began = tokio::time::Instant::now();
        let root = taskthread::spawn_with(
            LateSpawner { options },
            ChildOptions::new().stop_deadline(Duration::from_secs(1)),
        );
        root.stop();
        let exit = tokio::time::timeout(Duration::from_secs(3600), root.join()).await;
        assert!(
            matches!(exit, Ok(Exit::Aborted { dropped: 0 })),
            "aborted at the thread's deadline: {exit:?}"
        );
        assert_eq!(began.elapsed(), Duration::from_secs(1));
        assert_eq!(
            alive_tasks(),
            start,
            "no task of the tree is alive after join"
        );
    }
}

/// A leaf that sends three `Done`s UP from its `exit` hook.
struct Loud;

#[taskthread(up = Done)]
impl Loud {
    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        for n in 0..3 {
            let _ = ctx.up(Done(format!("{n}"))).await;
        }
    }
}

/// A thread with one place for UP messages whose `exit` hook spawns a [`Loud`].
struct LoudStarter;

#[taskthread]
impl LoudStarter {
    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        ctx.spawn(Loud);
    }

    #[up]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _d: Done) {}
}

/// A root that logs its children's exits with what they dropped.
struct LoudHolder {
    log: Log,
}

#[taskthread]
impl LoudHolder {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn_with(LoudStarter, ChildOptions::new().capacity(1));
        Ok(())
    }

    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        log(
            &self.log,
            format!(
                "exited {} {}, {} dropped",
                exit.path(),
                exit.exit,
                exit.dropped
            ),
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_spawned_by_the_exit_hook_is_not_held_up_sending_up() {
    let log = Log::default();
    let root = taskthread::spawn_with(
        LoudHolder { log: log.clone() },
        ChildOptions::new().no_stop_deadline(),
    );
    root.stop();
    let began = tokio::time::Instant::now();
    let exit = tokio::time::timeout(Duration::from_secs(3600), root.join()).await;
    assert!(matches!(exit, Ok(Exit::Stopped)), "{exit:?}");
    assert_eq!(
        lines(&log),
        ["exited loud_holder/loud_starter stopped, 3 dropped"],
        "what the late child sent was taken as it came, and counted"
    );
    assert_eq!(
        began.elapsed(),
        Duration::ZERO,
        "nothing waited for a deadline"
    );
}

/// A leaf whose `exit` hook sends UP without end.
struct Flood;

#[taskthread(up = Done)]
impl Flood {
    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        while ctx.up(Done(String::new())).await.is_ok() {}
    }
}

/// A thread with room for many UP messages whose `exit` hook spawns a [`Flood`], which
/// has no stop deadline of its own.
struct FloodStarter;

#[taskthread]
impl FloodStarter {
    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        ctx.spawn_with(Flood, ChildOptions::new().no_stop_deadline());
    }

    #[up]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _d: Done) {}
}

#[tokio::test(start_paused = true)]
async fn a_child_spawned_by_the_exit_hook_that_keeps_sending_is_bounded_by_the_deadline() {
    let root = taskthread::spawn_with(
        FloodStarter,
        ChildOptions::new()
            .capacity(1024)
            .stop_deadline(Duration::from_secs(1)),
    );
    root.stop();
    let join = tokio::spawn(root.join());
    // The runtime is never idle while the child sends, so the paused clock is moved by
    // hand.
    for _ in 0..100 {
        if join.is_finished() {
            break;
        }
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    assert!(join.is_finished(), "the stop ended at its deadline");
    let exit = join.await.unwrap();
    assert!(matches!(exit, Exit::Aborted { .. }), "{exit}");
}

/// A thread whose child sends UP without end once it is stopping.
struct FloodParent;

#[taskthread]
impl FloodParent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn_with(Flood, ChildOptions::new().no_stop_deadline());
        Ok(())
    }

    #[up]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _d: Done) {}
}

#[tokio::test(start_paused = true)]
async fn a_child_that_keeps_sending_up_cannot_hold_off_its_parents_deadline() {
    let root = taskthread::spawn_with(
        FloodParent,
        ChildOptions::new()
            .capacity(1024)
            .stop_deadline(Duration::from_secs(1)),
    );
    tokio::task::yield_now().await;
    root.stop();
    let join = tokio::spawn(root.join());
    // The runtime is never idle while the child sends, so the paused clock is moved by
    // hand.
    for _ in 0..100 {
        if join.is_finished() {
            break;
        }
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    assert!(join.is_finished(), "the stop ended at its deadline");
    let exit = join.await.unwrap();
    assert!(matches!(exit, Exit::Aborted { .. }), "{exit}");
}

#[tokio::test(start_paused = true)]
async fn a_child_spawned_by_the_exit_hook_is_stopped_and_waited_for() {
    let start = alive_tasks();
    let log = Log::default();
    let root = taskthread::spawn(Closer { log: log.clone() });
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
    assert_eq!(
        lines(&log),
        [
            "enter closer/leaf",
            "work closer/leaf 7",
            "exit closer/leaf"
        ],
        "the leaf handled its queue and ran its exit hook before the root was joined"
    );
    assert_eq!(
        alive_tasks(),
        start,
        "no task of the tree is alive after join"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_stages_stop_children_in_ascending_order() {
    let log = Log::default();
    let root = taskthread::spawn(branch(&log));
    for stage in [2, 0, 1] {
        root.ask(SpawnLeaf { stage }).await.unwrap();
    }
    root.stop();
    root.join().await;
    let exits = lines_starting(&log, "exited");
    assert_eq!(
        exits,
        [
            "exited branch/leaf0 stopped",
            "exited branch/leaf1 stopped",
            "exited branch/leaf2 stopped",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn children_of_one_stage_stop_concurrently() {
    let log = Log::default();
    let root = taskthread::spawn(branch(&log));
    root.ask(SpawnLeaf { stage: 0 }).await.unwrap();
    root.ask(SpawnLeaf { stage: 0 }).await.unwrap();
    // Each leaf takes 10 ms per message; both drain in parallel.
    for n in 0..5 {
        root.send(Work(n)).await.unwrap();
    }
    let started = tokio::time::Instant::now();
    root.stop();
    root.join().await;
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "leaves stopped one after the other"
    );
}

#[tokio::test(start_paused = true)]
async fn an_error_fails_the_thread_and_the_parent_hears_it_once() {
    let start = alive_tasks();
    let log = Log::default();
    let root = taskthread::spawn(branch(&log));
    root.ask(SpawnLeaf { stage: 0 }).await.unwrap();
    root.send(Boom).await.unwrap();
    // The parent carries on after a child fails.
    root.send(Work(1)).await.unwrap_or_else(|e| panic!("{e}"));
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
    let exits = lines_starting(&log, "exited");
    assert_eq!(exits, ["exited branch/leaf0 failed: disk on fire"]);
    assert_eq!(alive_tasks(), start);
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_reported_as_panicked_and_never_lost() {
    let log = Log::default();
    let root = taskthread::spawn(branch(&log));
    root.ask(SpawnLeaf { stage: 0 }).await.unwrap();
    root.send(Panic).await.unwrap();
    root.stop();
    root.join().await;
    let exits = lines_starting(&log, "exited");
    assert_eq!(exits, ["exited branch/leaf0 panicked: leaf exploded"]);
    // The exit hook still ran after the panic, so resources are released.
    assert!(lines(&log).contains(&"exit branch/leaf0".to_owned()));
}

struct FailingEnter;

#[taskthread]
impl FailingEnter {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        Err(Error::msg("no config"))
    }

    #[down]
    async fn work(&mut self, _ctx: &mut Ctx<Self>, _w: Work) -> Result<()> {
        unreachable!("a thread whose enter failed handles nothing")
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_enter_ends_the_thread_as_failed() {
    let root = taskthread::spawn(FailingEnter);
    let addr = root.child_ref();
    match root.join().await {
        Exit::Failed(e) => assert_eq!(e.to_string(), "no config"),
        other => panic!("expected failed, got {other}"),
    }
    assert!(addr.send(Work(1)).await.is_err());
}

/// A parent whose child fails: the failure of a parent stops its subtree.
struct FailingParent {
    log: Log,
}

#[derive(Debug)]
struct FailNow;

#[taskthread]
impl FailingParent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for _ in 0..2 {
            ctx.spawn(Leaf {
                log: self.log.clone(),
            });
        }
        Ok(())
    }

    #[down]
    async fn fail_now(&mut self, _ctx: &mut Ctx<Self>, _f: FailNow) -> Result<()> {
        Err(Error::msg("parent gave up"))
    }

    #[up]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _d: Done) -> Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_parent_stops_its_subtree_before_reporting() {
    let start = alive_tasks();
    let log = Log::default();
    let root = taskthread::spawn(FailingParent { log: log.clone() });
    let snapshot_before = {
        // Let enter run.
        tokio::task::yield_now().await;
        root.snapshot()
    };
    assert_eq!(snapshot_before.len(), 3);
    root.send(FailNow).await.unwrap();
    match root.join().await {
        Exit::Failed(e) => assert_eq!(e.to_string(), "parent gave up"),
        other => panic!("expected failed, got {other}"),
    }
    let exits = lines_starting(&log, "exit ");
    assert_eq!(exits.len(), 2, "both leaves ran their exit hook: {exits:?}");
    assert_eq!(alive_tasks(), start);
}

/// A thread that stops itself.
#[derive(Default)]
struct Quitter;

#[taskthread]
impl Quitter {
    #[down]
    async fn work(&mut self, ctx: &mut Ctx<Self>, _w: Work) -> Result<()> {
        ctx.stop();
        assert!(ctx.is_stopping());
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_thread_that_stops_itself_completes() {
    let root = taskthread::spawn(Quitter);
    root.send(Work(0)).await.unwrap();
    assert!(matches!(root.join().await, Exit::Completed));
}

#[tokio::test(start_paused = true)]
async fn stopping_twice_is_harmless() {
    let root = taskthread::spawn(Quitter);
    root.stop();
    root.stop();
    root.child_ref().stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_is_left_alive_on_the_multi_thread_runtime() {
    let start = alive_tasks();
    for _ in 0..20 {
        let log = Log::default();
        let root = taskthread::spawn(branch(&log));
        for stage in 0..3 {
            root.ask(SpawnLeaf { stage }).await.unwrap();
        }
        root.send(Work(1)).await.unwrap();
        root.stop();
        root.join().await;
        settle_to(start).await;
    }
}

/// On the multi-thread runtime a worker releases a finished task just *after* waking its
/// `JoinHandle`, so on a loaded machine the runtime's count can lag the joins by the tasks
/// still being released. Every future of the tree has completed when `join` returns (the
/// current-thread tests assert the exact count); this waits, bounded, for the runtime's
/// bookkeeping to agree. It asserts no timing: the bound only turns a leak into a failure.
async fn settle_to(expected: usize) {
    for _ in 0..10_000 {
        if alive_tasks() == expected {
            return;
        }
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    panic!("{} tasks still alive, expected {expected}", alive_tasks());
}

/// A thread whose handler waits a long time.
struct Sleeper;

#[derive(Debug)]
struct Nap;

#[taskthread]
impl Sleeper {
    #[down]
    async fn nap(&mut self, _ctx: &mut Ctx<Self>, _n: Nap) -> Result<()> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_a_handler_awaits_closes_the_queue_at_once_and_lets_it_finish() {
    // Draining takes two minutes, more than the default stop deadline (see deadlines.rs).
    let root = taskthread::spawn_with(Sleeper, ChildOptions::new().no_stop_deadline());
    root.send(Nap).await.unwrap();
    root.send(Nap).await.unwrap();
    tokio::task::yield_now().await;
    let addr = root.child_ref();
    root.stop();
    tokio::task::yield_now().await;
    // New messages are refused while the first nap is still running...
    assert!(addr.send(Nap).await.is_err());
    assert_eq!(addr.state(), taskthread::ThreadState::Stopping);
    // ...and what was queued before the stop is still handled.
    let started = tokio::time::Instant::now();
    assert!(matches!(root.join().await, Exit::Stopped));
    assert_eq!(started.elapsed(), Duration::from_secs(120));
}

/// A child that sends `n` numbers UP from `enter`, then completes.
struct Chatty {
    n: u32,
}

#[taskthread(up = u32)]
impl Chatty {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for i in 0..self.n {
            ctx.up(i).await?;
        }
        ctx.stop();
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct SpawnChatty {
    children: u32,
    each: u32,
}

/// Counts, per child, the UP messages received before its exit report.
#[derive(Default)]
struct Tally {
    seen: std::collections::HashMap<ChildId, u32>,
    at_exit: Vec<u32>,
}

#[taskthread(up = Vec<u32>)]
impl Tally {
    #[down]
    async fn spawn_chatty(&mut self, ctx: &mut Ctx<Self>, s: SpawnChatty) -> Result<()> {
        for _ in 0..s.children {
            ctx.spawn(Chatty { n: s.each });
        }
        Ok(())
    }

    #[up]
    async fn number(&mut self, _ctx: &mut Ctx<Self>, from: ChildId, _n: u32) -> Result<()> {
        *self.seen.entry(from).or_default() += 1;
        Ok(())
    }

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, from: ChildId, exit: ChildExit) -> Result<()> {
        assert!(matches!(exit.exit, Exit::Completed), "{}", exit.exit);
        self.at_exit
            .push(self.seen.get(&from).copied().unwrap_or(0));
        if ctx.child_count() == 0 {
            ctx.up(std::mem::take(&mut self.at_exit)).await?;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn exit_reports_come_after_the_up_messages_and_never_wait_for_room() {
    // An inbound queue of 2 for 300 children: their UP messages wait for room, their exit
    // reports do not, and each report still arrives after everything its child sent.
    let mut root = taskthread::spawn_with(Tally::default(), ChildOptions::new().capacity(2));
    root.send(SpawnChatty {
        children: 300,
        each: 5,
    })
    .await
    .unwrap();
    let at_exit = root.recv().await.expect("the tally reports");
    assert_eq!(at_exit.len(), 300);
    assert!(at_exit.iter().all(|&n| n == 5), "{at_exit:?}");
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

/// Fails on `Boom`; the messages queued behind it are dropped and counted.
struct Brittle;

#[taskthread]
impl Brittle {
    #[down]
    async fn work(&mut self, _ctx: &mut Ctx<Self>, _w: Work) -> Result<()> {
        Ok(())
    }

    #[down]
    async fn boom(&mut self, _ctx: &mut Ctx<Self>, _b: Boom) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err(Error::msg("brittle"))
    }
}

/// Keeps the `dropped` count of each exit it hears of.
#[derive(Default)]
struct Counter {
    dropped: Log,
}

#[taskthread]
impl Counter {
    #[down]
    async fn spawn_brittle(
        &mut self,
        ctx: &mut Ctx<Self>,
        _s: SpawnLeaf,
    ) -> Result<ChildRef<Brittle>> {
        Ok(ctx.spawn(Brittle))
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        log(
            &self.dropped,
            format!("{} dropped {}", exit.exit, exit.dropped),
        );
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_child_reports_how_many_queued_messages_it_dropped() {
    let dropped = Log::default();
    let root = taskthread::spawn(Counter {
        dropped: dropped.clone(),
    });
    let brittle = root.ask(SpawnLeaf { stage: 0 }).await.unwrap();
    brittle.send(Boom).await.unwrap();
    for n in 0..3 {
        brittle.send(Work(n)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lines(&dropped), ["failed: brittle dropped 3"]);
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

/// A named child that ends on its own.
struct Brief;

#[taskthread]
impl Brief {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.stop();
        Ok(())
    }
}

/// Keeps the exit reports of its children, to read them after the children are gone.
#[derive(Default)]
struct Keeper {
    kept: Vec<ChildExit>,
}

/// DOWN to `Keeper`: spawn two children named `brief`, one after the other.
struct SpawnTwo;

/// DOWN to `Keeper`: the kept reports, as `path name type exit`.
struct Kept;

#[taskthread]
impl Keeper {
    #[down]
    async fn spawn_two(&mut self, ctx: &mut Ctx<Self>, _s: SpawnTwo) -> Result<()> {
        ctx.spawn_with(Brief, ChildOptions::new().name("brief"));
        ctx.spawn_with(Brief, ChildOptions::new().name("brief"));
        Ok(())
    }

    #[down]
    async fn kept(&mut self, ctx: &mut Ctx<Self>, _k: Kept) -> Result<(Vec<String>, usize)> {
        let kept = self
            .kept
            .iter()
            .map(|e| format!("{} {} {} {}", e.path(), e.name(), e.type_name, e.exit))
            .collect();
        Ok((kept, ctx.children().len()))
    }

    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        self.kept.push(exit);
    }
}

#[tokio::test(start_paused = true)]
async fn an_exit_report_kept_after_its_child_is_gone_still_names_it() {
    let keeper = taskthread::spawn(Keeper::default());
    keeper.send(SpawnTwo).await.unwrap();
    let kept = loop {
        let (kept, children) = keeper.ask(Kept).await.unwrap();
        if kept.len() == 2 {
            assert_eq!(children, 0, "an ended child is no longer listed");
            break kept;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let mut kept = kept;
    kept.sort();
    assert_eq!(
        kept,
        [
            "keeper/brief brief Brief completed",
            "keeper/brief-2 brief-2 Brief completed"
        ]
    );
    keeper.stop();
    assert!(matches!(keeper.join().await, Exit::Stopped));
}
