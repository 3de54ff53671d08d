//! Threads placed on [`Cores`]: they run on the core's OS thread with their children, talk
//! to threads on other runtimes in order and with backpressure, stop, fail, restart and run
//! their rescheduling tasks as on their parent's runtime.
//!
//! The cores' runtimes have real clocks (a paused clock holds only its own runtime), so
//! these tests wait for events, never for time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::Cores;
use taskthread::jobs::{JobOutcome, JobPool, JobResult};
use taskthread::pool::WorkerPool;
use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

/// The name of the OS thread this runs on.
fn os_thread() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned()
}

/// DOWN: say which OS thread you run on.
struct WhereAreYou;

/// DOWN: spawn a child with default options and report where it runs.
struct SpawnInner;

/// DOWN: spawn a child while this other runtime is entered, then one after.
struct SpawnUnderGuard(tokio::runtime::Handle);

/// DOWN: start a task, a blocking job and a pool's job while this other runtime is entered.
struct WorkUnderGuard(tokio::runtime::Handle);

/// What a task or a job of a thread reports: the OS thread it ran on.
struct RanOn(String);

/// UP: where a thread runs.
#[derive(Debug, PartialEq)]
struct RunsOn(String);

struct Inner;

#[taskthread(up = RunsOn)]
impl Inner {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(RunsOn(os_thread())).await?;
        Ok(())
    }
}

/// A thread that says where it runs, and spawns [`Inner`]s that say where they run.
struct Placed;

#[taskthread(up = RunsOn)]
impl Placed {
    #[down]
    async fn where_are_you(&mut self, _ctx: &mut Ctx<Self>, _q: WhereAreYou) -> Result<String> {
        Ok(os_thread())
    }

    #[down]
    async fn spawn_inner(&mut self, ctx: &mut Ctx<Self>, _q: SpawnInner) -> Result<()> {
        ctx.spawn(Inner);
        Ok(())
    }

    #[down]
    async fn spawn_under_guard(&mut self, ctx: &mut Ctx<Self>, s: SpawnUnderGuard) -> Result<()> {
        {
            let _entered = s.0.enter();
            ctx.spawn(Inner);
        }
        ctx.spawn(Inner);
        Ok(())
    }

    #[down]
    async fn work_under_guard(&mut self, ctx: &mut Ctx<Self>, w: WorkUnderGuard) -> Result<()> {
        let _entered = w.0.enter();
        ctx.spawn_task(async { RanOn(os_thread()) });
        ctx.spawn_blocking(|| RanOn(os_thread()));
        let pool = JobPool::<String>::new_in(ctx, 1);
        pool.submit(async { Ok(os_thread()) })?;
        Ok(())
    }

    #[stream]
    async fn ran_on(&mut self, ctx: &mut Ctx<Self>, RanOn(at): RanOn) -> Result<()> {
        ctx.up(RunsOn(at)).await?;
        Ok(())
    }

    #[stream]
    async fn job_ended(&mut self, ctx: &mut Ctx<Self>, ended: JobResult<String>) -> Result<()> {
        let JobOutcome::Ok(at) = ended.outcome else {
            return Err(Error::msg("the job failed"));
        };
        ctx.up(RunsOn(at)).await?;
        Ok(())
    }

    #[up]
    async fn inner(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, at: RunsOn) -> Result<()> {
        ctx.up(at).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_thread_on_a_core_runs_on_its_os_thread_with_its_children() {
    let cores = Cores::new(2).unwrap();
    let core_1 = cores.handle(1).expect("two cores").clone();
    let mut placed = taskthread::spawn_with(Placed, ChildOptions::new().runtime(core_1));
    assert_eq!(placed.ask(WhereAreYou).await.unwrap(), "tt-core-1");
    placed.send(SpawnInner).await.unwrap();
    assert_eq!(placed.recv().await, Some(RunsOn("tt-core-1".into())));
    placed.stop();
    assert!(matches!(placed.join().await, Exit::Stopped));
}

/// A parent that spawns `n` [`Placed`] children, one per core round-robin, and answers with
/// where each runs.
struct Spreader {
    cores: Cores,
    children: Vec<ChildRef<Placed>>,
}

#[taskthread(up = RunsOn)]
impl Spreader {
    #[down]
    async fn spread(&mut self, ctx: &mut Ctx<Self>, n: usize) -> Result<Vec<String>> {
        for _ in 0..n {
            let options = ChildOptions::new().runtime(self.cores.next_handle());
            self.children.push(ctx.spawn_with(Placed, options));
        }
        let mut at = Vec::new();
        for child in &self.children {
            at.push(child.ask(WhereAreYou).await?);
        }
        Ok(at)
    }

    #[up]
    async fn inner(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _at: RunsOn) {}
}

#[tokio::test(flavor = "current_thread")]
async fn next_handle_spreads_children_round_robin_and_they_stop_with_their_parent() {
    let warnings = Warnings::default();
    crate::tracing_interest::share_callsite_interest();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let cores = Cores::new(3).unwrap();
    assert_eq!(cores.len(), 3);
    assert!(!cores.is_empty());
    let spreader = taskthread::spawn(Spreader {
        cores,
        children: Vec::new(),
    });
    let at = spreader.ask(4usize).await.unwrap();
    assert_eq!(at, ["tt-core-0", "tt-core-1", "tt-core-2", "tt-core-0"]);
    spreader.stop();
    // The spreader stops its children (on the cores) and waits for their tasks, then
    // drops the cores as it ends, on this thread: nothing is left on them to cancel.
    assert!(matches!(spreader.join().await, Exit::Stopped));
    assert!(warnings.0.lock().unwrap().is_empty(), "{:?}", warnings.0);
}

/// DOWN: send `n` numbers UP, in order.
struct Count(u64);

/// A thread that counts what it is sent and sends numbers UP on request.
struct Counter {
    got: Vec<u64>,
}

#[taskthread(up = u64)]
impl Counter {
    #[down]
    async fn take(&mut self, _ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
        self.got.push(n);
        Ok(())
    }

    #[down]
    async fn count(&mut self, ctx: &mut Ctx<Self>, c: Count) -> Result<()> {
        for n in 0..c.0 {
            ctx.up(n).await?;
        }
        Ok(())
    }

    #[down]
    async fn received(&mut self, _ctx: &mut Ctx<Self>, _q: ()) -> Result<Vec<u64>> {
        Ok(std::mem::take(&mut self.got))
    }
}

/// A parent on the test's runtime with a [`Counter`] on a core; both queues hold two.
struct Across {
    counter: Option<ChildRef<Counter>>,
    got: Vec<u64>,
    exit: Option<Exit>,
}

/// DOWN to [`Across`]: send `n` numbers to the counter, have it send `n` back, answer
/// with what each side received.
struct RoundTrip(u64);

#[taskthread(capacity = 2, up = Vec<u64>)]
impl Across {
    #[down]
    async fn round_trip(&mut self, ctx: &mut Ctx<Self>, r: RoundTrip) -> Result<()> {
        let counter = self.counter.as_ref().expect("spawned");
        for n in 0..r.0 {
            counter.send(n).await?;
        }
        counter.send(Count(r.0)).await?;
        let _ = ctx;
        Ok(())
    }

    #[down]
    async fn start(&mut self, ctx: &mut Ctx<Self>, core: tokio::runtime::Handle) -> Result<()> {
        let options = ChildOptions::new().capacity(2).runtime(core);
        self.counter = Some(ctx.spawn_with(Counter { got: Vec::new() }, options));
        Ok(())
    }

    #[down]
    async fn downs(&mut self, _ctx: &mut Ctx<Self>, _q: ()) -> Result<Vec<u64>> {
        let counter = self.counter.as_ref().expect("spawned");
        Ok(counter.ask(()).await?)
    }

    #[down]
    async fn ups(&mut self, _ctx: &mut Ctx<Self>, _q: bool) -> Result<Vec<u64>> {
        Ok(std::mem::take(&mut self.got))
    }

    #[down]
    async fn stop_counter(&mut self, _ctx: &mut Ctx<Self>, _q: u8) -> Result<()> {
        self.counter.as_ref().expect("spawned").stop();
        Ok(())
    }

    #[up]
    async fn number(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, n: u64) -> Result<()> {
        self.got.push(n);
        if self.got.len() == 1000 {
            ctx.up(self.got.clone()).await?;
        }
        Ok(())
    }

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) -> Result<()> {
        self.exit = Some(exit.exit);
        ctx.up(Vec::new()).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn messages_cross_runtimes_in_order_both_ways_through_queues_of_two() {
    let cores = Cores::new(1).unwrap();
    let mut across = taskthread::spawn(Across {
        counter: None,
        got: Vec::new(),
        exit: None,
    });
    across.send(cores.handle(0).unwrap().clone()).await.unwrap();
    across.send(RoundTrip(1000)).await.unwrap();
    // Every number UP, in order, through a queue of two on the test's runtime.
    let ups = across.recv().await.unwrap();
    assert_eq!(ups, (0..1000).collect::<Vec<_>>());
    // Every number DOWN, in order, through a queue of two on the core.
    assert_eq!(across.ask(()).await.unwrap(), (0..1000).collect::<Vec<_>>());
    // A stop crosses to the core; the exit report crosses back.
    across.send(0u8).await.unwrap();
    assert_eq!(across.recv().await, Some(Vec::new()));
    across.stop();
    assert!(matches!(across.join().await, Exit::Stopped));
}

/// A thread whose task runs `runs` times, 1 ms apart, reporting where each run ran.
struct Ticker {
    runs: u32,
}

#[taskthread(up = RunsOn)]
impl Ticker {
    #[rescheduling(every = "1ms")]
    async fn tick(&mut self, ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        ctx.up(RunsOn(os_thread())).await?;
        self.runs -= 1;
        Ok(if self.runs == 0 {
            Reschedule::Stop
        } else {
            Reschedule::Again
        })
    }
}

/// A parent of one [`Ticker`] on a core, forwarding what it hears.
struct TickerParent {
    core: tokio::runtime::Handle,
}

/// UP from [`TickerParent`].
#[derive(Debug, PartialEq)]
enum Heard {
    Ran(String),
    /// Whether it completed.
    Ended(bool),
}

#[taskthread(up = Heard)]
impl TickerParent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let options = ChildOptions::new().runtime(self.core.clone());
        ctx.spawn_with(Ticker { runs: 5 }, options);
        Ok(())
    }

    #[up]
    async fn ran(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, at: RunsOn) -> Result<()> {
        ctx.up(Heard::Ran(at.0)).await?;
        Ok(())
    }

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) -> Result<()> {
        ctx.up(Heard::Ended(matches!(exit.exit, Exit::Completed)))
            .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_rescheduling_task_on_a_core_runs_on_the_cores_timer_and_its_end_is_reported() {
    let cores = Cores::new(1).unwrap();
    let mut parent = taskthread::spawn(TickerParent {
        core: cores.next_handle(),
    });
    for _ in 0..5 {
        assert_eq!(parent.recv().await, Some(Heard::Ran("tt-core-0".into())));
    }
    assert_eq!(parent.recv().await, Some(Heard::Ended(true)));
    parent.stop();
    assert!(matches!(parent.join().await, Exit::Stopped));
}

/// A thread that fails on `true` and counts its lives.
struct Fragile {
    life: u32,
}

#[taskthread]
impl Fragile {
    #[down]
    async fn poke(&mut self, _ctx: &mut Ctx<Self>, fail: bool) -> Result<(u32, String)> {
        if fail {
            return Err(Error::msg("poked to fail"));
        }
        Ok((self.life, os_thread()))
    }
}

/// A supervisor of one [`Fragile`] on a core.
struct Supervisor {
    core: tokio::runtime::Handle,
    fragile: Option<ChildRef<Fragile>>,
}

#[taskthread]
impl Supervisor {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let mut lives = 0;
        let options = ChildOptions::new().runtime(self.core.clone());
        let factory = move || {
            lives += 1;
            Fragile { life: lives }
        };
        self.fragile = Some(ctx.supervise_with(factory, RestartPolicy::on_failure(), options));
        Ok(())
    }

    #[down]
    async fn poke(&mut self, _ctx: &mut Ctx<Self>, fail: bool) -> Result<Option<(u32, String)>> {
        let fragile = self.fragile.as_ref().expect("spawned");
        Ok(fragile.ask(fail).await.ok())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_supervised_thread_on_a_core_restarts_there() {
    let cores = Cores::new(1).unwrap();
    let supervisor = taskthread::spawn(Supervisor {
        core: cores.next_handle(),
        fragile: None,
    });
    let on_core = "tt-core-0".to_owned();
    assert_eq!(
        supervisor.ask(false).await.unwrap(),
        Some((1, on_core.clone()))
    );
    // The failing ask gets no answer; the thread's next life answers, on the same core.
    assert_eq!(supervisor.ask(true).await.unwrap(), None);
    assert_eq!(supervisor.ask(false).await.unwrap(), Some((2, on_core)));
    supervisor.stop();
    assert!(matches!(supervisor.join().await, Exit::Stopped));
}

/// A thread that panics on any `u8`.
struct Panicky;

#[taskthread]
impl Panicky {
    #[down]
    async fn boom(&mut self, _ctx: &mut Ctx<Self>, _b: u8) {
        panic!("boom on a core");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_panic_on_a_core_ends_the_thread_as_panicked() {
    crate::panics::hide_expected_panics("boom on a core");
    let cores = Cores::new(1).unwrap();
    let panicky = taskthread::spawn_with(Panicky, ChildOptions::new().runtime(cores.next_handle()));
    panicky.send(1u8).await.unwrap();
    match panicky.join().await {
        Exit::Panicked(message) => assert!(message.contains("boom on a core"), "{message}"),
        other => panic!("expected a panic, got {other}"),
    }
}

#[test]
fn a_root_placed_on_a_core_is_spawned_from_outside_any_runtime() {
    let cores = Cores::new(1).unwrap();
    // No runtime here: the root's task goes straight to the core.
    let placed = taskthread::spawn_with(Placed, ChildOptions::new().runtime(cores.next_handle()));
    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    waiter.block_on(async {
        assert_eq!(placed.ask(WhereAreYou).await.unwrap(), "tt-core-0");
        placed.stop();
        assert!(matches!(placed.join().await, Exit::Stopped));
    });
}

#[test]
fn a_set_of_no_cores_is_refused_and_a_missing_core_has_no_handle() {
    let err = Cores::new(0).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("at least one core"), "{err}");
    let cores = Cores::new(2).unwrap();
    assert!(cores.handle(1).is_some());
    assert!(cores.handle(2).is_none());
    assert_eq!(format!("{cores:?}"), "Cores { len: 2, .. }");
}

#[test]
fn per_cpu_starts_at_least_one_core() {
    let cores = Cores::per_cpu().unwrap();
    let expected = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(cores.len(), expected);
}

/// A thread that never ends on its own and has no stop deadline.
struct Forever;

#[taskthread]
impl Forever {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: ()) -> Result<bool> {
        Ok(true)
    }
}

#[test]
fn dropping_the_cores_under_a_running_thread_cancels_it_and_the_handle_sees_it_end() {
    let cores = Cores::new(1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let forever = rt.block_on(async {
        let forever =
            taskthread::spawn_with(Forever, ChildOptions::new().runtime(cores.next_handle()));
        forever.ask(()).await.unwrap();
        forever
    });
    let warned = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warned.clone());
    crate::tracing_interest::share_callsite_interest();
    tracing::subscriber::with_default(subscriber, || drop(cores));
    let warned = warned.0.lock().unwrap().clone();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("tasks=1 "), "{warned:?}");
    assert!(warned[0].contains("cancelled"), "{warned:?}");
    // The task was cancelled with its runtime: the root's join ends (as an abort) rather
    // than waiting for ever, and the thread takes no more messages.
    rt.block_on(async {
        assert!(forever.ask(()).await.is_err());
        let exit = tokio::time::timeout(Duration::from_secs(60), forever.join())
            .await
            .expect("the join ends");
        assert!(exit.is_failure(), "{exit}");
    });
}

/// A parent of one [`Forever`] placed on `runtime`, which says how its child ended.
struct Keeper {
    runtime: tokio::runtime::Handle,
}

#[taskthread(up = String)]
impl Keeper {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let forever = ctx.spawn_with(Forever, ChildOptions::new().runtime(self.runtime.clone()));
        // Running: it answers (a child on a runtime already down never does).
        let running = forever.ask(()).await.is_ok();
        ctx.up(format!("running: {running}")).await?;
        Ok(())
    }

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, _id: ChildId, exit: ChildExit) -> Result<()> {
        ctx.up(exit.exit.to_string()).await?;
        Ok(())
    }
}

/// What the keeper says next; a guard against hanging where the child's end is never
/// heard (a clock that runs: the child is on another runtime).
async fn heard(keeper: &mut taskthread::Handle<Keeper>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(60), keeper.recv())
        .await
        .expect("the child's end is heard")
}

#[tokio::test(flavor = "current_thread")]
async fn a_child_on_cores_dropped_under_it_is_reported_aborted_to_its_parent() {
    let cores = Cores::new(1).unwrap();
    let mut keeper = taskthread::spawn(Keeper {
        runtime: cores.next_handle(),
    });
    assert_eq!(keeper.recv().await.as_deref(), Some("running: true"));
    drop(cores);
    assert_eq!(heard(&mut keeper).await.as_deref(), Some("aborted"));
    keeper.stop();
    assert!(matches!(keeper.join().await, Exit::Stopped));
}

#[tokio::test(flavor = "current_thread")]
async fn a_child_placed_on_a_runtime_already_shut_down_is_reported_aborted() {
    let gone = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handle = gone.handle().clone();
    gone.shutdown_background();
    let mut keeper = taskthread::spawn(Keeper { runtime: handle });
    assert_eq!(keeper.recv().await.as_deref(), Some("running: false"));
    assert_eq!(heard(&mut keeper).await.as_deref(), Some("aborted"));
    keeper.stop();
    assert!(matches!(keeper.join().await, Exit::Stopped));
}

/// A thread whose first message holds its handler for ever, so that later ones stay queued.
struct Stuck;

#[taskthread]
impl Stuck {
    #[down]
    async fn take(&mut self, _ctx: &mut Ctx<Self>, _n: u32) {
        std::future::pending::<()>().await;
    }
}

/// A parent of one [`Stuck`] on a core, which says how many messages its child dropped.
struct StuckKeeper {
    runtime: tokio::runtime::Handle,
}

#[taskthread(up = String)]
impl StuckKeeper {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let options = ChildOptions::new()
            .capacity(8)
            .runtime(self.runtime.clone());
        let stuck = ctx.spawn_with(Stuck, options);
        for n in 0..4u32 {
            stuck.send(n).await?;
        }
        ctx.up("sent".to_owned()).await?;
        Ok(())
    }

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, _id: ChildId, exit: ChildExit) -> Result<()> {
        let aborted = matches!(exit.exit, Exit::Aborted { .. });
        ctx.up(format!("aborted: {aborted}, dropped: {}", exit.dropped))
            .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_thread_cancelled_with_its_core_counts_the_messages_left_in_its_queue() {
    let cores = Cores::new(1).unwrap();
    let mut keeper = taskthread::spawn(StuckKeeper {
        runtime: cores.next_handle(),
    });
    assert_eq!(keeper.recv().await.as_deref(), Some("sent"));
    // The first message holds the handler; the other three wait in the queue (or in the
    // thread's hands, not yet handed out): all three are dropped with the core.
    let dropped = async {
        loop {
            tokio::task::yield_now().await;
            if keeper.child_ref().snapshot().children[0].queue_depth == 3 {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), dropped)
        .await
        .expect("the child takes its first message");
    drop(cores);
    let heard = tokio::time::timeout(Duration::from_secs(60), keeper.recv())
        .await
        .expect("the child's end is heard");
    assert_eq!(heard.as_deref(), Some("aborted: true, dropped: 3"));
    keeper.stop();
    assert!(matches!(keeper.join().await, Exit::Stopped));
}

/// A root that owns the cores it runs on, and so drops them from one of their own threads.
struct Owner {
    _cores: Cores,
}

#[taskthread]
impl Owner {
    #[down]
    async fn where_are_you(&mut self, _ctx: &mut Ctx<Self>, _q: WhereAreYou) -> Result<String> {
        Ok(os_thread())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_thread_that_drops_the_cores_it_runs_on_ends_cleanly() {
    let cores = Cores::new(2).unwrap();
    let core_0 = cores.next_handle();
    let owner =
        taskthread::spawn_with(Owner { _cores: cores }, ChildOptions::new().runtime(core_0));
    assert_eq!(owner.ask(WhereAreYou).await.unwrap(), "tt-core-0");
    owner.stop();
    assert!(matches!(owner.join().await, Exit::Stopped));
}

/// A pool worker that says where it runs as it starts.
struct PoolWorker;

#[taskthread(up = String)]
impl PoolWorker {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(os_thread()).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_pool_spread_over_cores_starts_its_workers_round_robin_and_when_resized() {
    let cores = Cores::new(2).unwrap();
    let pool = WorkerPool::new(|| PoolWorker)
        .size(3)
        .spread_over(cores.handles().cloned());
    let mut pool = taskthread::spawn(pool);
    let mut at = Vec::new();
    for _ in 0..3 {
        at.push(pool.recv().await.unwrap());
    }
    // Resized: the next workers go on where the last left off.
    assert_eq!(pool.child_ref().pool().start(3).await.unwrap().running, 6);
    for _ in 0..3 {
        at.push(pool.recv().await.unwrap());
    }
    at.sort();
    assert_eq!(
        at,
        [
            "tt-core-0",
            "tt-core-0",
            "tt-core-0",
            "tt-core-1",
            "tt-core-1",
            "tt-core-1"
        ]
    );
    pool.stop();
    assert!(matches!(pool.join().await, Exit::Stopped));
}

#[test]
#[should_panic(expected = "needs at least one runtime")]
fn a_pool_spread_over_no_runtimes_is_refused() {
    let _ = WorkerPool::new(|| PoolWorker).spread_over(Vec::new());
}

/// An idle child that says when it has started (and so waits for its queue).
struct Waits;

#[taskthread(up = ())]
impl Waits {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(()).await?;
        Ok(())
    }
}

/// A parent that spreads `per_stage` [`Waits`] over its cores in each of two stop stages,
/// says when all have started, and keeps the stage of each child's end, in order.
struct Staged {
    cores: Cores,
    per_stage: usize,
    stop_at_once: bool,
    stage_of: std::collections::HashMap<ChildId, u32>,
    started: usize,
    ended: Arc<Mutex<Vec<(u32, String)>>>,
}

#[taskthread(up = usize)]
impl Staged {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for stage in [0, 1] {
            for _ in 0..self.per_stage {
                let options = ChildOptions::new()
                    .runtime(self.cores.next_handle())
                    .stop_stage(stage);
                let child = ctx.spawn_with(Waits, options);
                self.stage_of.insert(child.id(), stage);
            }
        }
        if self.stop_at_once {
            ctx.stop();
        }
        Ok(())
    }

    #[up]
    async fn started(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, _s: ()) -> Result<()> {
        self.started += 1;
        if self.started == 2 * self.per_stage {
            ctx.up(self.started).await?;
        }
        Ok(())
    }

    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, from: ChildId, exit: ChildExit) {
        let stage = self.stage_of[&from];
        self.ended
            .lock()
            .unwrap()
            .push((stage, exit.exit.to_string()));
    }
}

/// Spawns a [`Staged`] over two cores, with `deadline` as its stop deadline if any, and
/// stops it once its children have all started (or it stops itself at once); returns the
/// stage and exit of each child's end, in order.
async fn stop_staged(
    per_stage: usize,
    deadline: Option<Duration>,
    stop_at_once: bool,
) -> Vec<(u32, String)> {
    let ended = Arc::new(Mutex::new(Vec::new()));
    let mut options = ChildOptions::new();
    if let Some(deadline) = deadline {
        options = options.stop_deadline(deadline);
    }
    let mut staged = taskthread::spawn_with(
        Staged {
            cores: Cores::new(2).unwrap(),
            per_stage,
            stop_at_once,
            stage_of: std::collections::HashMap::new(),
            started: 0,
            ended: Arc::clone(&ended),
        },
        options,
    );
    if !stop_at_once {
        let started = tokio::time::timeout(Duration::from_secs(60), staged.recv()).await;
        assert_eq!(started.expect("every child starts"), Some(2 * per_stage));
        staged.stop();
    }
    let exit = tokio::time::timeout(Duration::from_secs(60), staged.join())
        .await
        .expect("the stop ends");
    // A thread that stops itself has completed; one stopped from outside has stopped.
    if stop_at_once {
        assert!(matches!(exit, Exit::Completed), "{exit}");
    } else {
        assert!(matches!(exit, Exit::Stopped), "{exit}");
    }
    ended.lock().unwrap().clone()
}

/// Every child ended stopped, all of stage 0 before any of stage 1.
fn in_stage_order(ended: &[(u32, String)], per_stage: usize) {
    assert_eq!(ended.len(), 2 * per_stage, "{ended:?}");
    assert!(ended.iter().all(|(_, exit)| exit == "stopped"), "{ended:?}");
    let first_of_1 = ended.iter().position(|&(stage, _)| stage == 1).unwrap();
    assert!(
        ended[first_of_1..].iter().all(|&(stage, _)| stage == 1),
        "{ended:?}"
    );
    assert_eq!(first_of_1, per_stage, "{ended:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn many_waiting_children_spread_over_cores_stop_stage_by_stage() {
    let ended = stop_staged(150, None, false).await;
    in_stage_order(&ended, 150);
}

#[tokio::test(flavor = "current_thread")]
async fn children_on_cores_covered_by_their_parents_deadline_stop_stage_by_stage() {
    // The children inherit the deadline, so it covers them: they start no timer of their
    // own, and the long deadline is never reached.
    let ended = stop_staged(150, Some(Duration::from_secs(600)), false).await;
    in_stage_order(&ended, 150);
}

#[tokio::test(flavor = "current_thread")]
async fn children_on_cores_asked_to_stop_before_they_wait_stop_too() {
    // The parent stops as it spawns them: some have not run yet when it asks, and see the
    // request as they first look.
    let ended = stop_staged(150, None, true).await;
    in_stage_order(&ended, 150);
}

/// The warnings logged, each as its fields and message.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut text = Text(String::new());
            event.record(&mut text);
            self.0.lock().unwrap().push(text.0);
        }
    }
}

/// Runs `body` on a current-thread runtime of its own, which runs its tasks on an OS
/// thread named `own` (the one blocking on it) and its blocking jobs on OS threads named
/// `own-blocking`.
fn on_own_runtime<F>(body: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    let own = tokio::runtime::Builder::new_current_thread()
        .thread_name("own-blocking")
        .enable_all()
        .build()
        .unwrap();
    std::thread::Builder::new()
        .name("own".into())
        .spawn(move || own.block_on(body()))
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_threads_tasks_and_jobs_run_on_its_runtime_even_when_a_handler_enters_another() {
    let cores = Cores::new(1).unwrap();
    on_own_runtime(move || async move {
        let mut placed = taskthread::spawn(Placed);
        let other = cores.next_handle();
        placed.send(WorkUnderGuard(other)).await.unwrap();
        let mut ran_on = Vec::new();
        for _ in 0..3 {
            ran_on.push(placed.recv().await.unwrap().0);
        }
        ran_on.sort();
        assert_eq!(ran_on, ["own", "own", "own-blocking"]);
        placed.stop();
        assert!(matches!(placed.join().await, Exit::Stopped));
    });
}

#[test]
fn children_run_on_their_parents_runtime_even_when_a_handler_enters_another() {
    let cores = Cores::new(1).unwrap();
    on_own_runtime(move || async move {
        let mut placed = taskthread::spawn(Placed);
        let other = cores.next_handle();
        placed.send(SpawnUnderGuard(other)).await.unwrap();
        let first = placed.recv().await.unwrap();
        let second = placed.recv().await.unwrap();
        assert_eq!((first.0.as_str(), second.0.as_str()), ("own", "own"));
        placed.stop();
        assert!(matches!(placed.join().await, Exit::Stopped));
    });
}
