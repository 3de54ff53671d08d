//! taskthread against the same programs hand-written on tokio (a spawned task per unit, a
//! bounded `mpsc` per queue, a `oneshot` per reply), all on a current-thread runtime, with
//! the same queue capacity (64) and the same message types.
//!
//! Criterion benchmarks, each as a pair `<group>/taskthread` and `<group>/tokio`:
//!
//! 1. `down_throughput`: the bench task sends 10 000 `u64` DOWN to a root, then asks for the
//!    total, so every message has been handled when the time is taken.
//! 2. `up_fan_in`: a parent with 100 children tells each to send 100 `u64` UP; the time runs
//!    until the parent has handled all 10 000 and told the bench task.
//! 3. `ask_round_trip`: one question, one answer (`Handle::ask` vs `mpsc` + `oneshot`).
//! 4. `spawn_stop_10k`: a root spawns 10 000 children, each sends one UP message from its
//!    `enter` hook; once the root has seen all of them it is stopped and joined (vs 10 000
//!    tasks with their own `mpsc`, woken by a `CancellationToken`, then all joined).
//! 5. `shutdown_tree`: a tree of depth 10 and breadth 2 (2 047 threads, each spawning its
//!    children from `enter`) is built, then its root is stopped and joined; only the stop is
//!    timed (vs a tree of tasks, each holding its children's `JoinHandle`s and a child of its
//!    parent's `CancellationToken`, which on cancel waits for its children).
//! 6. `periodic_10k`: 10 000 threads, each with a `#[rescheduling(every = "10ms")]` task
//!    that ends its thread after 20 runs (vs 10 000 tasks ticking a `tokio::time::interval`
//!    20 times), on a runtime whose clock is paused: it jumps to the next timer whenever
//!    every task waits, so the time taken is the work of the runs alone (and of spawning
//!    and ending the 10 000), not the periods.
//!
//! Before criterion runs, the binary measures the anonymous resident memory (heap and
//! stacks, not code) of 10 000 idle threads against 10 000 idle hand-written tasks with
//! their `mpsc`, each in a fresh process (it re-runs itself with
//! `VS_TOKIO_MEMORY=taskthread|tokio`), and prints bytes per thread.
//! Set `VS_TOKIO_MEMORY=skip` to leave it out.
//!
//! For a profiler, `VS_TOKIO_RUN=<group>/<side>[:iterations]` runs one workload a fixed
//! number of times and exits, e.g.
//! `VS_TOKIO_RUN=spawn_stop_10k/taskthread:3 valgrind --tool=callgrind <bench binary>`.
//!
//! On a machine whose speed drifts, `VS_TOKIO_PAIRED=<group>[:rounds]` runs the two sides of
//! one group in turns, an iteration each, and prints the median ratio of the rounds.
//!
//! Built with the `watch` feature (`--features watch`), `VS_TOKIO_WATCH=1` keeps a watch
//! stream open during the paired runs and the runs for a profiler, so the figures are those
//! of a watched process; `VS_TOKIO_WATCH=turns` makes the paired runs pair taskthread with
//! itself instead, an iteration unwatched and one with a stream open, and print the median
//! ratio of watched to unwatched: what watching costs, measured in one process.
//!
//! Run: `cargo bench -p taskthread --bench vs_tokio`. Results are in `docs/benchmarks.md`.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use taskthread::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The capacity of every queue on both sides (taskthread's default).
const CAPACITY: usize = taskthread::DEFAULT_CAPACITY;
/// Messages per iteration of the DOWN throughput benchmark.
const DOWN_MESSAGES: u64 = 10_000;
/// Children in the fan-in benchmark.
const FAN_IN_CHILDREN: usize = 100;
/// Messages each of them sends UP per iteration.
const FAN_IN_MESSAGES: u64 = 100;
/// Children in the spawn + stop benchmark and in the memory measurement.
const MANY: usize = 10_000;
/// The environment variable that selects the memory measurement of one side.
const MEMORY_ENV: &str = "VS_TOKIO_MEMORY";
/// The environment variable that runs one workload outside criterion (for profilers).
const RUN_ENV: &str = "VS_TOKIO_RUN";
/// The environment variable that runs both sides of one group in turns ([`run_paired`]).
const PAIRED_ENV: &str = "VS_TOKIO_PAIRED";
/// The environment variable that keeps a watch stream open during the paired runs and the
/// runs for a profiler, or pairs taskthread watched against unwatched (`turns`).
const WATCH_ENV: &str = "VS_TOKIO_WATCH";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// A current-thread runtime whose clock is paused and jumps to the next timer when every
/// task waits (for `periodic_10k`).
fn paused_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a paused current-thread runtime")
}

/// The runtime a group runs on.
fn runtime_for(group: &str) -> Runtime {
    if group.starts_with("periodic") {
        paused_runtime()
    } else {
        runtime()
    }
}

// ---- 1. DOWN throughput ------------------------------------------------------------------

/// A question: the sum of everything received so far.
struct Total;

#[derive(Default)]
struct Sink {
    sum: u64,
}

#[taskthread]
impl Sink {
    #[down]
    async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
        self.sum = self.sum.wrapping_add(n);
        Ok(())
    }

    #[down]
    async fn total(&mut self, _ctx: &mut Ctx<Self>, _q: Total) -> Result<u64> {
        Ok(self.sum)
    }
}

enum SinkMsg {
    Add(u64),
    Total(Total, oneshot::Sender<u64>),
}

async fn tokio_sink(mut rx: mpsc::Receiver<SinkMsg>) {
    let mut sum = 0u64;
    while let Some(msg) = rx.recv().await {
        match msg {
            SinkMsg::Add(n) => sum = sum.wrapping_add(n),
            SinkMsg::Total(_q, reply) => {
                let _ = reply.send(sum);
            }
        }
    }
}

async fn down_throughput_taskthread(iters: u64) -> Duration {
    let root = taskthread::spawn(Sink::default());
    let start = Instant::now();
    for _ in 0..iters {
        for n in 0..DOWN_MESSAGES {
            root.send(n).await.expect("the sink runs");
        }
        black_box(root.ask(Total).await.expect("the sink answers"));
    }
    let elapsed = start.elapsed();
    root.stop();
    root.join().await;
    elapsed
}

async fn down_throughput_tokio(iters: u64) -> Duration {
    let (tx, rx) = mpsc::channel(CAPACITY);
    let task = tokio::spawn(tokio_sink(rx));
    let start = Instant::now();
    for _ in 0..iters {
        for n in 0..DOWN_MESSAGES {
            if tx.send(SinkMsg::Add(n)).await.is_err() {
                panic!("the sink runs");
            }
        }
        let (reply, answer) = oneshot::channel();
        if tx.send(SinkMsg::Total(Total, reply)).await.is_err() {
            panic!("the sink runs");
        }
        black_box(answer.await.expect("the sink answers"));
    }
    let elapsed = start.elapsed();
    drop(tx);
    task.await.expect("the sink ends");
    elapsed
}

fn down_throughput(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("down_throughput");
    group.throughput(Throughput::Elements(DOWN_MESSAGES));

    group.bench_function("taskthread", |b| {
        b.to_async(&rt).iter_custom(down_throughput_taskthread)
    });

    group.bench_function("tokio", |b| {
        b.to_async(&rt).iter_custom(down_throughput_tokio)
    });
    group.finish();
}

// ---- 2. UP fan-in ------------------------------------------------------------------------

/// DOWN to the parent: have every child send this many messages UP.
struct Fire(u64);

/// DOWN to a child: send this many messages UP.
#[derive(Clone)]
struct Burst(u64);

#[derive(Default)]
struct Producer;

#[taskthread(up = u64)]
impl Producer {
    #[down]
    async fn burst(&mut self, ctx: &mut Ctx<Self>, b: Burst) -> Result<()> {
        for i in 0..b.0 {
            ctx.up(i).await?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct FanIn {
    expected: u64,
    got: u64,
}

#[taskthread(up = u64)]
impl FanIn {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for _ in 0..FAN_IN_CHILDREN {
            ctx.spawn(Producer);
        }
        Ok(())
    }

    #[down]
    async fn fire(&mut self, ctx: &mut Ctx<Self>, f: Fire) -> Result<()> {
        self.got = 0;
        self.expected = f.0 * FAN_IN_CHILDREN as u64;
        ctx.broadcast::<Producer, _>(Burst(f.0)).await;
        Ok(())
    }

    #[up]
    async fn value(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, v: u64) -> Result<()> {
        black_box(v);
        self.got += 1;
        if self.got == self.expected {
            ctx.up(self.got).await?;
        }
        Ok(())
    }
}

/// The hand-written parent's one queue: orders from the bench task and UP messages.
enum FanInMsg {
    Fire(Fire),
    Up(usize, u64),
}

async fn tokio_producer(id: usize, mut rx: mpsc::Receiver<Burst>, up: mpsc::Sender<FanInMsg>) {
    while let Some(Burst(n)) = rx.recv().await {
        for i in 0..n {
            if up.send(FanInMsg::Up(id, i)).await.is_err() {
                return;
            }
        }
    }
}

async fn tokio_fan_in(
    mut rx: mpsc::Receiver<FanInMsg>,
    children: Vec<mpsc::Sender<Burst>>,
    done: mpsc::Sender<u64>,
) {
    let (mut expected, mut got) = (0u64, 0u64);
    while let Some(msg) = rx.recv().await {
        match msg {
            FanInMsg::Fire(Fire(n)) => {
                got = 0;
                expected = n * children.len() as u64;
                for child in &children {
                    let _ = child.send(Burst(n)).await;
                }
            }
            FanInMsg::Up(from, v) => {
                black_box((from, v));
                got += 1;
                if got == expected && done.send(got).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn up_fan_in_taskthread(iters: u64) -> Duration {
    let mut root = taskthread::spawn(FanIn::default());
    let start = Instant::now();
    for _ in 0..iters {
        root.send(Fire(FAN_IN_MESSAGES))
            .await
            .expect("the parent runs");
        black_box(root.recv().await.expect("the parent reports"));
    }
    let elapsed = start.elapsed();
    root.stop();
    root.join().await;
    elapsed
}

async fn up_fan_in_tokio(iters: u64) -> Duration {
    let (parent_tx, parent_rx) = mpsc::channel(CAPACITY);
    let (done_tx, mut done_rx) = mpsc::channel(CAPACITY);
    let mut children = Vec::with_capacity(FAN_IN_CHILDREN);
    let mut tasks = Vec::with_capacity(FAN_IN_CHILDREN + 1);
    for id in 0..FAN_IN_CHILDREN {
        let (tx, rx) = mpsc::channel(CAPACITY);
        children.push(tx);
        tasks.push(tokio::spawn(tokio_producer(id, rx, parent_tx.clone())));
    }
    tasks.push(tokio::spawn(tokio_fan_in(parent_rx, children, done_tx)));
    let start = Instant::now();
    for _ in 0..iters {
        if parent_tx
            .send(FanInMsg::Fire(Fire(FAN_IN_MESSAGES)))
            .await
            .is_err()
        {
            panic!("the parent runs");
        }
        black_box(done_rx.recv().await.expect("the parent reports"));
    }
    let elapsed = start.elapsed();
    // The parent and the children hold each other's senders: end them by aborting.
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    elapsed
}

fn up_fan_in(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("up_fan_in");
    group.throughput(Throughput::Elements(
        FAN_IN_CHILDREN as u64 * FAN_IN_MESSAGES,
    ));

    group.bench_function("taskthread", |b| {
        b.to_async(&rt).iter_custom(up_fan_in_taskthread)
    });

    group.bench_function("tokio", |b| b.to_async(&rt).iter_custom(up_fan_in_tokio));
    group.finish();
}

// ---- 3. ask round trip -------------------------------------------------------------------

/// A question whose answer is a counter.
struct Ping;

#[derive(Default)]
struct Echo {
    n: u64,
}

#[taskthread]
impl Echo {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _q: Ping) -> Result<u64> {
        self.n += 1;
        Ok(self.n)
    }
}

async fn tokio_echo(mut rx: mpsc::Receiver<(Ping, oneshot::Sender<u64>)>) {
    let mut n = 0u64;
    while let Some((_q, reply)) = rx.recv().await {
        n += 1;
        let _ = reply.send(n);
    }
}

async fn ask_round_trip_taskthread(iters: u64) -> Duration {
    let root = taskthread::spawn(Echo::default());
    let start = Instant::now();
    for _ in 0..iters {
        black_box(root.ask(Ping).await.expect("the echo answers"));
    }
    let elapsed = start.elapsed();
    root.stop();
    root.join().await;
    elapsed
}

async fn ask_round_trip_tokio(iters: u64) -> Duration {
    let (tx, rx) = mpsc::channel(CAPACITY);
    let task = tokio::spawn(tokio_echo(rx));
    let start = Instant::now();
    for _ in 0..iters {
        let (reply, answer) = oneshot::channel();
        if tx.send((Ping, reply)).await.is_err() {
            panic!("the echo runs");
        }
        black_box(answer.await.expect("the echo answers"));
    }
    let elapsed = start.elapsed();
    drop(tx);
    task.await.expect("the echo ends");
    elapsed
}

fn ask_round_trip(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("ask_round_trip");

    group.bench_function("taskthread", |b| {
        b.to_async(&rt).iter_custom(ask_round_trip_taskthread)
    });

    group.bench_function("tokio", |b| {
        b.to_async(&rt).iter_custom(ask_round_trip_tokio)
    });
    group.finish();
}

// ---- 4. spawn + stop of 10 000 children ---------------------------------------------------

/// UP from a child whose `enter` hook has run.
struct Entered;

/// DOWN to an idle child; never sent, it gives the child a queue like the hand-written one.
struct Poke;

#[derive(Default)]
struct Idle;

#[taskthread(up = Entered)]
impl Idle {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(Entered).await?;
        Ok(())
    }

    #[down]
    async fn poke(&mut self, _ctx: &mut Ctx<Self>, _p: Poke) -> Result<()> {
        Ok(())
    }
}

/// DOWN to the spawner: spawn this many idle children.
struct SpawnIdle(usize);

/// A question to the spawner: are you running?
struct Ready;

#[derive(Default)]
struct Spawner {
    expected: usize,
    entered: usize,
}

#[taskthread(up = usize)]
impl Spawner {
    #[down]
    async fn spawn_idle(&mut self, ctx: &mut Ctx<Self>, s: SpawnIdle) -> Result<()> {
        self.expected += s.0;
        for _ in 0..s.0 {
            ctx.spawn(Idle);
        }
        Ok(())
    }

    #[down]
    async fn ready(&mut self, _ctx: &mut Ctx<Self>, _q: Ready) -> Result<bool> {
        Ok(true)
    }

    #[up]
    async fn entered(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, _e: Entered) -> Result<()> {
        self.entered += 1;
        if self.entered == self.expected {
            ctx.up(self.entered).await?;
        }
        Ok(())
    }
}

/// Spawns `n` idle children under a running root and waits until all have entered.
async fn taskthread_spawn_idle(root: &mut Handle<Spawner>, n: usize) {
    root.send(SpawnIdle(n)).await.expect("the spawner runs");
    let entered = root.recv().await.expect("the spawner reports");
    assert_eq!(entered, n);
}

async fn tokio_idle(
    mut rx: mpsc::Receiver<Poke>,
    up: mpsc::Sender<Entered>,
    stop: CancellationToken,
) {
    if up.send(Entered).await.is_err() {
        return;
    }
    drop(up);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            msg = rx.recv() => match msg {
                Some(Poke) => {}
                None => break,
            },
        }
    }
}

/// 10 000 idle hand-written tasks, each with its queue, and their common stop signal.
struct TokioIdle {
    stop: CancellationToken,
    tasks: Vec<(mpsc::Sender<Poke>, tokio::task::JoinHandle<()>)>,
}

/// Spawns `n` idle tasks and waits until every one has started.
async fn tokio_spawn_idle(n: usize) -> TokioIdle {
    let stop = CancellationToken::new();
    let (up_tx, mut up_rx) = mpsc::channel(CAPACITY);
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let task = tokio::spawn(tokio_idle(rx, up_tx.clone(), stop.clone()));
        tasks.push((tx, task));
    }
    drop(up_tx);
    let mut entered = 0;
    while let Some(Entered) = up_rx.recv().await {
        entered += 1;
    }
    assert_eq!(entered, n);
    TokioIdle { stop, tasks }
}

impl TokioIdle {
    async fn stop_and_join(self) {
        self.stop.cancel();
        for (tx, task) in self.tasks {
            drop(tx);
            task.await.expect("an idle task ends");
        }
    }
}

async fn spawn_stop_taskthread(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let mut root = taskthread::spawn(Spawner::default());
        taskthread_spawn_idle(&mut root, MANY).await;
        root.stop();
        let exit = root.join().await;
        total += start.elapsed();
        assert!(matches!(exit, Exit::Stopped), "{exit}");
    }
    total
}

async fn spawn_stop_tokio(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        tokio_spawn_idle(MANY).await.stop_and_join().await;
        total += start.elapsed();
    }
    total
}

fn spawn_stop(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("spawn_stop_10k");
    group.throughput(Throughput::Elements(MANY as u64));

    group.bench_function("taskthread", |b| {
        b.to_async(&rt).iter_custom(spawn_stop_taskthread)
    });

    group.bench_function("tokio", |b| b.to_async(&rt).iter_custom(spawn_stop_tokio));
    group.finish();
}

// ---- 5. graceful stop of a tree ----------------------------------------------------------------

/// Depth and breadth of the tree of `shutdown_tree`.
const TREE: (u32, usize) = (10, 2);

/// A node of the tree: spawns its children from `enter`, then idles.
struct TreeNode {
    depth: u32,
    built: std::sync::Arc<tokio::sync::Semaphore>,
}

#[taskthread]
impl TreeNode {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        if self.depth > 0 {
            for _ in 0..TREE.1 {
                ctx.spawn(TreeNode {
                    depth: self.depth - 1,
                    built: std::sync::Arc::clone(&self.built),
                });
            }
        }
        self.built.add_permits(1);
        Ok(())
    }

    #[down]
    async fn poke(&mut self, _ctx: &mut Ctx<Self>, _p: Poke) -> Result<()> {
        Ok(())
    }

    /// Child exits are expected: handled so that none is logged.
    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _exit: ChildExit) {}
}

/// Units in the tree.
fn tree_size() -> u32 {
    (0..=TREE.0).map(|level| (TREE.1 as u32).pow(level)).sum()
}

async fn shutdown_tree_taskthread(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let built = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        let root = taskthread::spawn(TreeNode {
            depth: TREE.0,
            built: std::sync::Arc::clone(&built),
        });
        drop(
            built
                .acquire_many(tree_size())
                .await
                .expect("the tree is built"),
        );
        let start = Instant::now();
        root.stop();
        let exit = root.join().await;
        total += start.elapsed();
        assert!(matches!(exit, Exit::Stopped), "{exit}");
    }
    total
}

/// A node of the hand-written tree: its children, then it waits for the stop and for them.
fn tokio_tree_node(
    depth: u32,
    stop: CancellationToken,
    built: std::sync::Arc<tokio::sync::Semaphore>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let (_tx, mut rx) = mpsc::channel::<Poke>(CAPACITY);
        let children: Vec<_> = (0..if depth > 0 { TREE.1 } else { 0 })
            .map(|_| {
                let child =
                    tokio_tree_node(depth - 1, stop.child_token(), std::sync::Arc::clone(&built));
                tokio::spawn(child)
            })
            .collect();
        built.add_permits(1);
        drop(built);
        tokio::select! {
            () = stop.cancelled() => {}
            _ = rx.recv() => {}
        }
        for child in children {
            child.await.expect("a tree node ends");
        }
    })
}

async fn shutdown_tree_tokio(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let built = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        let stop = CancellationToken::new();
        let root = tokio::spawn(tokio_tree_node(
            TREE.0,
            stop.clone(),
            std::sync::Arc::clone(&built),
        ));
        drop(
            built
                .acquire_many(tree_size())
                .await
                .expect("the tree is built"),
        );
        let start = Instant::now();
        stop.cancel();
        root.await.expect("the root ends");
        total += start.elapsed();
    }
    total
}

fn shutdown_tree(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("shutdown_tree");
    group.throughput(Throughput::Elements(u64::from(tree_size())));

    group.bench_function("taskthread", |b| {
        b.to_async(&rt).iter_custom(shutdown_tree_taskthread)
    });

    group.bench_function("tokio", |b| {
        b.to_async(&rt).iter_custom(shutdown_tree_tokio)
    });
    group.finish();
}

// ---- 6. periodic tasks -----------------------------------------------------------------------

/// Runs of each periodic task per iteration.
const PERIODIC_RUNS: u64 = 20;
/// The period of the periodic tasks.
const PERIOD: Duration = Duration::from_millis(10);

/// A thread with one periodic task that ends the thread after [`PERIODIC_RUNS`] runs.
#[derive(Default)]
struct Ticker {
    runs: u64,
}

#[taskthread]
impl Ticker {
    #[rescheduling(every = "10ms", delay = "10ms", missed = "burst")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
        self.runs += 1;
        if self.runs < PERIODIC_RUNS {
            Reschedule::Again
        } else {
            Reschedule::Stop
        }
    }
}

/// The root of the periodic group: starts the tickers, ends when they all have.
#[derive(Default)]
struct Clock {
    ended: usize,
}

#[taskthread]
impl Clock {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for _ in 0..MANY {
            ctx.spawn(Ticker::default());
        }
        Ok(())
    }

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        assert!(matches!(exit.exit, Exit::Completed), "{exit}");
        self.ended += 1;
        if self.ended == MANY {
            ctx.stop();
        }
    }
}

async fn periodic_taskthread(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let exit = taskthread::spawn(Clock::default()).join().await;
        total += start.elapsed();
        assert!(matches!(exit, Exit::Completed), "{exit}");
    }
    total
}

async fn tokio_ticker() {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + PERIOD, PERIOD);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..PERIODIC_RUNS {
        black_box(interval.tick().await);
    }
}

async fn periodic_tokio(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let tickers = tokio::spawn(async {
            let tasks: Vec<_> = (0..MANY).map(|_| tokio::spawn(tokio_ticker())).collect();
            for task in tasks {
                task.await.expect("a ticker ends");
            }
        });
        tickers.await.expect("the tickers' parent ends");
        total += start.elapsed();
    }
    total
}

fn periodic(c: &mut Criterion) {
    let rt = paused_runtime();
    let mut group = c.benchmark_group("periodic_10k");
    group.throughput(Throughput::Elements(MANY as u64 * PERIODIC_RUNS));

    group.bench_function("taskthread", |b| {
        b.to_async(&rt).iter_custom(periodic_taskthread)
    });

    group.bench_function("tokio", |b| b.to_async(&rt).iter_custom(periodic_tokio));
    group.finish();
}

// ---- 7. memory per idle thread ---------------------------------------------------------------

/// Anonymous resident memory of this process in bytes: its heap, stacks and other private
/// memory, not the pages of its program and libraries (`/proc/self/statm`, resident pages
/// less file-backed and shared ones). Code run for the first time maps its pages in, a few
/// at a time, and would count as memory of the idle threads.
fn resident_anon_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let mut fields = statm
        .split_whitespace()
        .skip(1)
        .map(|s| s.parse::<u64>().ok());
    let (Some(Some(resident)), Some(Some(shared))) = (fields.next(), fields.next()) else {
        panic!("no resident and shared fields in /proc/self/statm: {statm:?}");
    };
    resident.saturating_sub(shared) * page_size()
}

/// The page size, from the first `KernelPageSize` line of `/proc/self/smaps` (4 KiB if absent).
fn page_size() -> u64 {
    std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|smaps| {
            smaps.lines().find_map(|line| {
                let kb = line.strip_prefix("KernelPageSize:")?;
                kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
            })
        })
        .map_or(4096, |kb| kb * 1024)
}

/// Runs in a fresh process: measures one side and prints `bytes_before bytes_after`.
fn memory_child(side: &str) {
    let rt = runtime();
    let (before, after) = rt.block_on(async {
        match side {
            "taskthread" => {
                let mut root = taskthread::spawn(Spawner::default());
                assert!(root.ask(Ready).await.expect("the spawner answers"));
                let before = resident_anon_bytes();
                taskthread_spawn_idle(&mut root, MANY).await;
                let after = resident_anon_bytes();
                root.stop();
                root.join().await;
                (before, after)
            }
            "tokio" => {
                // The same warm-up as the other side: one task, one queue, one reply.
                let (tx, rx) = mpsc::channel(CAPACITY);
                let echo = tokio::spawn(tokio_echo(rx));
                let (reply, answer) = oneshot::channel();
                if tx.send((Ping, reply)).await.is_err() {
                    panic!("the echo runs");
                }
                answer.await.expect("the echo answers");
                let before = resident_anon_bytes();
                let idle = tokio_spawn_idle(MANY).await;
                let after = resident_anon_bytes();
                idle.stop_and_join().await;
                drop(tx);
                echo.await.expect("the echo ends");
                (before, after)
            }
            other => panic!("{MEMORY_ENV} must be taskthread, tokio or skip, not {other:?}"),
        }
    });
    println!("{before} {after}");
}

/// Bytes per idle thread for one side: the median of `runs` fresh processes.
fn measure_side(side: &str, runs: usize) -> f64 {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let mut per_thread: Vec<f64> = (0..runs)
        .map(|_| {
            let out = Command::new(&exe)
                .env(MEMORY_ENV, side)
                .output()
                .expect("re-running the bench binary");
            assert!(out.status.success(), "memory run failed: {out:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            let mut fields = text
                .split_whitespace()
                .map(|f| f.parse::<u64>().expect("a number"));
            let (before, after) = (
                fields.next().expect("before"),
                fields.next().expect("after"),
            );
            after.saturating_sub(before) as f64 / MANY as f64
        })
        .collect();
    per_thread.sort_by(f64::total_cmp);
    per_thread[runs / 2]
}

fn memory_report() {
    const RUNS: usize = 5;
    let taskthread = measure_side("taskthread", RUNS);
    let tokio = measure_side("tokio", RUNS);
    println!(
        "memory per idle thread ({MANY} idle, anonymous resident memory from /proc/self/statm, median of {RUNS} processes):"
    );
    println!("  taskthread: {taskthread:>8.0} bytes");
    println!("  tokio:      {tokio:>8.0} bytes");
    println!(
        "  difference: {:>8.0} bytes (target: at most 1024)",
        taskthread - tokio
    );
}

/// Runs one workload a fixed number of times, outside criterion, for a profiler:
/// `VS_TOKIO_RUN=spawn_stop_10k/taskthread:3 valgrind --tool=callgrind <bench binary>`.
fn run_one(spec: &str) {
    let (name, iters) = match spec.split_once(':') {
        Some((name, iters)) => (name, iters.parse().expect("a number of iterations")),
        None => (spec, 1),
    };
    let rt = runtime_for(name);
    #[cfg(feature = "watch")]
    let _watching = std::env::var_os(WATCH_ENV).map(|_| Watching::open(&rt));
    let elapsed = rt.block_on(async {
        match name {
            "down_throughput/taskthread" => down_throughput_taskthread(iters).await,
            "down_throughput/tokio" => down_throughput_tokio(iters).await,
            "up_fan_in/taskthread" => up_fan_in_taskthread(iters).await,
            "up_fan_in/tokio" => up_fan_in_tokio(iters).await,
            "ask_round_trip/taskthread" => ask_round_trip_taskthread(iters).await,
            "ask_round_trip/tokio" => ask_round_trip_tokio(iters).await,
            "spawn_stop_10k/taskthread" => spawn_stop_taskthread(iters).await,
            "spawn_stop_10k/tokio" => spawn_stop_tokio(iters).await,
            "shutdown_tree/taskthread" => shutdown_tree_taskthread(iters).await,
            "shutdown_tree/tokio" => shutdown_tree_tokio(iters).await,
            "periodic_10k/taskthread" => periodic_taskthread(iters).await,
            "periodic_10k/tokio" => periodic_tokio(iters).await,
            other => panic!("{RUN_ENV}: no workload named {other:?}"),
        }
    });
    println!("{name}: {iters} iterations in {elapsed:?}");
}

/// A watch stream open on a tree of its own, which turns recording on for every tree of
/// the process (watching is process-wide) while it is open.
#[cfg(feature = "watch")]
struct Watching {
    watched: Handle<Sink>,
    stream: taskthread::watch::WatchStream,
}

#[cfg(feature = "watch")]
impl Watching {
    fn open(rt: &Runtime) -> Self {
        rt.block_on(async {
            let watched = taskthread::spawn(Sink::default());
            let stream = taskthread::watch::Watcher::new(&watched).subscribe();
            Self { watched, stream }
        })
    }

    /// Closes the stream, and stops and joins the watched tree.
    fn close(self, rt: &Runtime) {
        drop(self.stream);
        self.watched.stop();
        rt.block_on(self.watched.join());
    }
}

/// Runs both sides of one group in turns, one iteration at a time, on one runtime, and
/// prints the median of each side and of the per-round ratios:
/// `VS_TOKIO_PAIRED=spawn_stop_10k:200 <bench binary>`.
///
/// On a machine whose speed drifts (a shared VM), criterion's two sides run seconds apart
/// and can see different machines; a round's two iterations run milliseconds apart, so the
/// median of the rounds' ratios is steadier. The side that goes first alternates.
///
/// With `VS_TOKIO_WATCH=turns` (`watch` feature) the two sides are taskthread unwatched and
/// taskthread with a watch stream open, opened before its iteration and dropped after it.
fn run_paired(spec: &str) {
    let (group, rounds) = match spec.split_once(':') {
        Some((group, rounds)) => (group, rounds.parse().expect("a number of rounds")),
        None => (spec, 100),
    };
    assert!(rounds > 0, "{PAIRED_ENV}: at least one round");
    let rt = runtime_for(group);
    // One iteration is 10 000 messages or children; an ask is one round trip, so a round
    // asks 1 000 times.
    let iters = if group == "ask_round_trip" { 1_000 } else { 1 };
    let one = |side: &str| {
        rt.block_on(async {
            match (group, side) {
                ("down_throughput", "taskthread") => down_throughput_taskthread(iters).await,
                ("down_throughput", _) => down_throughput_tokio(iters).await,
                ("up_fan_in", "taskthread") => up_fan_in_taskthread(iters).await,
                ("up_fan_in", _) => up_fan_in_tokio(iters).await,
                ("ask_round_trip", "taskthread") => ask_round_trip_taskthread(iters).await,
                ("ask_round_trip", _) => ask_round_trip_tokio(iters).await,
                ("spawn_stop_10k", "taskthread") => spawn_stop_taskthread(iters).await,
                ("spawn_stop_10k", _) => spawn_stop_tokio(iters).await,
                ("shutdown_tree", "taskthread") => shutdown_tree_taskthread(iters).await,
                ("shutdown_tree", _) => shutdown_tree_tokio(iters).await,
                ("periodic_10k", "taskthread") => periodic_taskthread(iters).await,
                ("periodic_10k", _) => periodic_tokio(iters).await,
                (other, _) => panic!("{PAIRED_ENV}: no group named {other:?}"),
            }
        })
    };
    #[cfg(feature = "watch")]
    match std::env::var(WATCH_ENV).as_deref() {
        Ok("turns") => {
            in_turns(
                group,
                rounds,
                ("unwatched", &mut || one("taskthread")),
                ("watched", &mut || {
                    let watching = Watching::open(&rt);
                    let watched = one("taskthread");
                    watching.close(&rt);
                    watched
                }),
            );
            return;
        }
        Ok(_) => {
            let _watching = Watching::open(&rt);
            return taskthread_against_tokio(group, rounds, one);
        }
        Err(_) => {}
    }
    taskthread_against_tokio(group, rounds, one);
}

/// The rounds of taskthread against hand-written tokio, and their report.
fn taskthread_against_tokio(group: &str, rounds: usize, one: impl Fn(&str) -> Duration) {
    in_turns(
        group,
        rounds,
        ("taskthread", &mut || one("taskthread")),
        ("tokio", &mut || one("tokio")),
    );
}

/// One named side of a paired run: an iteration of it, timed.
type Side<'a> = (&'a str, &'a mut dyn FnMut() -> Duration);

/// Runs `a` and `b` in turns for `rounds` rounds, after up to 20 rounds of warm-up (both
/// grow the heap to their working size first), `a` first in even rounds and `b` in odd
/// ones, and prints each one's median and the median and quartiles of the rounds' ratios
/// of `b` to `a`.
fn in_turns(group: &str, rounds: usize, (a_name, a): Side<'_>, (b_name, b): Side<'_>) {
    for _ in 0..rounds.min(20) {
        a();
        b();
    }
    let mut a_times = Vec::with_capacity(rounds);
    let mut b_times = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = a();
            (x, b())
        } else {
            let y = b();
            (a(), y)
        };
        ratios.push(y.as_secs_f64() / x.as_secs_f64());
        a_times.push(x);
        b_times.push(y);
    }
    a_times.sort();
    b_times.sort();
    ratios.sort_by(f64::total_cmp);
    println!(
        "{group}: {rounds} rounds, median {a_name} {:?}, {b_name} {:?}, \
         ratio ({b_name} / {a_name}) median {:.2}, quartiles {:.2} .. {:.2}",
        a_times[rounds / 2],
        b_times[rounds / 2],
        ratios[rounds / 2],
        ratios[rounds / 4],
        ratios[rounds * 3 / 4],
    );
}

fn main() {
    if !cfg!(feature = "watch") && std::env::var_os(WATCH_ENV).is_some() {
        eprintln!(
            "{WATCH_ENV} needs the watch feature: cargo bench -p taskthread --bench vs_tokio --features watch"
        );
        std::process::exit(2);
    }
    if let Ok(spec) = std::env::var(RUN_ENV) {
        run_one(&spec);
        return;
    }
    if let Ok(spec) = std::env::var(PAIRED_ENV) {
        run_paired(&spec);
        return;
    }
    match std::env::var(MEMORY_ENV).as_deref() {
        Ok("skip") => {}
        Ok(side) => {
            memory_child(side);
            return;
        }
        Err(_) => {
            if !std::env::args().any(|a| a == "--list" || a == "--test") {
                memory_report();
            }
        }
    }

    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    down_throughput(&mut criterion);
    up_fan_in(&mut criterion);
    ask_round_trip(&mut criterion);
    spawn_stop(&mut criterion);
    shutdown_tree(&mut criterion);
    periodic(&mut criterion);
    criterion.final_summary();
}
