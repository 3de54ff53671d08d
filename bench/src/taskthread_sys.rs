//! taskthread: every unit is a thread; a parent is the root thread (or a thread under it),
//! children are its children, UP goes over `ctx.up`, stopping is `Handle::stop` + `join`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::Cores;
use taskthread::prelude::*;
use tokio::time::Instant;

use crate::model::{
    CHILDREN, Countdown, Figures, Flavour, SENDERS, Scale, Suite, System, Value, Workload,
    not_applicable, per, periodic_figures, start_senders, ticks, tree_size,
};
use crate::{probe, relay};

/// taskthread.
#[derive(Debug)]
pub(crate) struct TaskthreadSys;

/// Its workloads.
const SUITE: Suite = Suite {
    tell: |capacity, messages| Box::pin(tell(capacity, messages)),
    no_bounded_tell: None,
    ask: |n| Box::pin(ask(n)),
    fan_in: |n| Box::pin(fan_in(n)),
    contended: |n| Box::pin(contended(n)),
    spawn: |n| Box::pin(spawn(n)),
    shutdown: |depth, breadth| Box::pin(shutdown(depth, breadth)),
    periodic: Ok(|tasks, run_for| Box::pin(periodic(tasks, run_for))),
    relay: Ok(|scale| Box::pin(relay::run_taskthread(scale))),
};

impl System for TaskthreadSys {
    fn name(&self) -> &'static str {
        "taskthread"
    }

    fn run(&self, workload: Workload, flavour: Flavour, scale: &Scale) -> Figures {
        SUITE.run(workload, flavour, scale)
    }

    fn idle_memory(&self, flavour: Flavour, n: usize) -> (u64, u64) {
        flavour.block_on(move || async move {
            let mut root = taskthread::spawn(Spawner::default());
            assert!(root.ask(Ready).await.expect("the spawner answers"));
            let before = probe::resident_anon_bytes();
            spawn_idle(&mut root, n).await;
            let after = probe::resident_anon_bytes();
            root.stop();
            root.join().await;
            (before, after)
        })
    }
}

/// taskthread on [`Cores`]: on "multi-thread", the driver and the parent on a
/// current-thread runtime, the children (or the echo, or the counter) spread round-robin
/// over one more current-thread runtime per core; not run on "current-thread", where it
/// would be taskthread itself.
#[derive(Debug)]
pub(crate) struct TaskthreadCoresSys;

impl System for TaskthreadCoresSys {
    fn name(&self) -> &'static str {
        "taskthread-cores"
    }

    fn note(&self) -> Option<&'static str> {
        Some(
            "\"multi-thread\" = driver and parent on a current-thread runtime, children spread over taskthread::Cores (one more current-thread runtime per core, fresh for each workload); n/a on \"current-thread\"",
        )
    }

    fn run(&self, workload: Workload, flavour: Flavour, scale: &Scale) -> Figures {
        match (flavour, workload) {
            (Flavour::CurrentThread, _) => not_applicable(workload, CORES_ONE_CORE),
            (Flavour::MultiThread, Workload::Relay) => not_applicable(workload, CORES_NO_RELAY),
            (Flavour::MultiThread, _) => {
                on_cores(|| SUITE.run(workload, Flavour::CurrentThread, scale))
            }
        }
    }

    fn idle_memory_not_applicable(&self, flavour: Flavour) -> Option<&'static str> {
        (flavour == Flavour::CurrentThread).then_some(CORES_ONE_CORE)
    }

    fn idle_memory(&self, _flavour: Flavour, n: usize) -> (u64, u64) {
        // The cores are started before the first measure: their OS threads and runtimes
        // are not the children's.
        on_cores(|| TaskthreadSys.idle_memory(Flavour::CurrentThread, n))
    }
}

/// Why taskthread on cores has no current-thread figures.
const CORES_ONE_CORE: &str = "on one core, taskthread on cores is taskthread";

/// Why taskthread on cores has no relay figure.
const CORES_NO_RELAY: &str =
    "the relay's threads are the example's, which does not place them on cores";

/// The cores units are placed on while taskthread on cores is measured.
static CORES: Mutex<Option<Cores>> = Mutex::new(None);

/// Whether units are placed on [`CORES`]: one load on the way of every spawn, where the
/// plain taskthread system is measured too.
static ON_CORES: AtomicBool = AtomicBool::new(false);

/// Runs `f` with units placed on fresh cores, one per worker of the multi-thread runtime;
/// shuts them down after.
fn on_cores<R>(f: impl FnOnce() -> R) -> R {
    *CORES.lock().expect("no panic") =
        Some(Cores::new(Flavour::workers()).expect("one OS thread per core"));
    ON_CORES.store(true, Ordering::Relaxed);
    let out = f();
    ON_CORES.store(false, Ordering::Relaxed);
    drop(CORES.lock().expect("no panic").take());
    out
}

/// The options of a unit that taskthread on cores places on a core: on the next core when
/// it is measured, else the defaults.
fn placed() -> ChildOptions {
    let options = ChildOptions::new();
    if ON_CORES.load(Ordering::Relaxed) {
        let cores = CORES.lock().expect("no panic");
        options.runtime(cores.as_ref().expect("cores while on cores").next_handle())
    } else {
        options
    }
}

/// A question to a root: are you running (and has `enter` returned)?
struct Ready;

// ---- tell ------------------------------------------------------------------------------------

/// UP from a tell child that has handled all its messages.
struct TellDone;

/// A child of the tell workload.
struct TellChild {
    expected: u64,
    got: u64,
}

#[taskthread(up = TellDone)]
impl TellChild {
    #[down]
    async fn number(&mut self, ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
        std::hint::black_box(n);
        self.got += 1;
        if self.got == self.expected {
            ctx.up(TellDone).await?;
        }
        Ok(())
    }
}

/// DOWN to the tell parent: send every message now.
struct Go;

/// The tell parent: sends round-robin to its children, reports when all have handled all.
struct TellParent {
    capacity: usize,
    per_child: u64,
    children: Vec<ChildRef<TellChild>>,
    done: usize,
}

#[taskthread(up = u64)]
impl TellParent {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for _ in 0..CHILDREN {
            let child = TellChild {
                expected: self.per_child,
                got: 0,
            };
            let options = placed().capacity(self.capacity);
            self.children.push(ctx.spawn_with(child, options));
        }
        Ok(())
    }

    #[down]
    async fn ready(&mut self, _ctx: &mut Ctx<Self>, _q: Ready) -> Result<bool> {
        Ok(true)
    }

    #[down]
    async fn go(&mut self, _ctx: &mut Ctx<Self>, _go: Go) -> Result<()> {
        for n in 0..self.per_child * CHILDREN as u64 {
            self.children[n as usize % CHILDREN].send(n).await?;
        }
        Ok(())
    }

    #[up]
    async fn child_done(
        &mut self,
        ctx: &mut Ctx<Self>,
        _from: ChildId,
        _d: TellDone,
    ) -> Result<()> {
        self.done += 1;
        if self.done == CHILDREN {
            ctx.up(self.per_child * CHILDREN as u64).await?;
        }
        Ok(())
    }
}

async fn tell(capacity: usize, messages: u64) -> Value {
    let per_child = messages / CHILDREN as u64;
    let mut root = taskthread::spawn(TellParent {
        capacity,
        per_child,
        children: Vec::with_capacity(CHILDREN),
        done: 0,
    });
    assert!(root.ask(Ready).await.expect("the parent answers"));
    let start = Instant::now();
    root.send(Go).await.expect("the parent runs");
    let total = root.recv().await.expect("the parent reports");
    let elapsed = start.elapsed();
    root.stop();
    root.join().await;
    Value::Measured(per(elapsed, total, 1.0))
}

// ---- ask -------------------------------------------------------------------------------------

/// The question of the ask workload.
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

async fn ask(round_trips: u64) -> Value {
    let root = taskthread::spawn_with(Echo::default(), placed());
    let start = Instant::now();
    for _ in 0..round_trips {
        std::hint::black_box(root.ask(Ping).await.expect("the echo answers"));
    }
    let elapsed = start.elapsed();
    root.stop();
    root.join().await;
    Value::Measured(per(elapsed, round_trips, 1.0))
}

// ---- fan-in ----------------------------------------------------------------------------------

/// DOWN to the fan-in parent: have every child send this many messages UP.
struct Fire(u64);

/// DOWN to a fan-in child: send this many messages UP.
#[derive(Clone)]
struct Burst(u64);

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
        for _ in 0..CHILDREN {
            ctx.spawn_with(Producer, placed());
        }
        Ok(())
    }

    #[down]
    async fn ready(&mut self, _ctx: &mut Ctx<Self>, _q: Ready) -> Result<bool> {
        Ok(true)
    }

    #[down]
    async fn fire(&mut self, ctx: &mut Ctx<Self>, f: Fire) -> Result<()> {
        self.got = 0;
        self.expected = f.0 * CHILDREN as u64;
        ctx.broadcast::<Producer, _>(Burst(f.0)).await;
        Ok(())
    }

    #[up]
    async fn value(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, v: u64) -> Result<()> {
        std::hint::black_box(v);
        self.got += 1;
        if self.got == self.expected {
            ctx.up(self.got).await?;
        }
        Ok(())
    }
}

async fn fan_in(per_child: u64) -> Value {
    let mut root = taskthread::spawn(FanIn::default());
    assert!(root.ask(Ready).await.expect("the parent answers"));
    let start = Instant::now();
    root.send(Fire(per_child)).await.expect("the parent runs");
    let got = root.recv().await.expect("the parent reports");
    let elapsed = start.elapsed();
    root.stop();
    root.join().await;
    Value::Measured(per(elapsed, got, 1.0))
}

// ---- contended -------------------------------------------------------------------------------

/// The receiver of the contended workload: counts, and says when it has them all.
struct Counter {
    expected: u64,
    got: u64,
}

#[taskthread(up = u64)]
impl Counter {
    #[down]
    async fn number(&mut self, ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
        std::hint::black_box(n);
        self.got += 1;
        if self.got == self.expected {
            ctx.up(self.got).await?;
        }
        Ok(())
    }

    #[down]
    async fn ready(&mut self, _ctx: &mut Ctx<Self>, _q: Ready) -> Result<bool> {
        Ok(true)
    }
}

async fn contended(messages: u64) -> Value {
    let expected = messages / SENDERS as u64 * SENDERS as u64;
    let mut root = taskthread::spawn_with(Counter { expected, got: 0 }, placed());
    assert!(root.ask(Ready).await.expect("the counter answers"));
    let (go, senders) = start_senders(messages, |share| {
        let counter = root.child_ref();
        async move {
            for i in 0..share {
                counter.send(i).await.expect("the counter runs");
            }
        }
    });
    let start = Instant::now();
    go.send_replace(true);
    let got = root.recv().await.expect("the counter reports");
    let elapsed = start.elapsed();
    for sender in senders {
        sender.await.expect("a sender ends");
    }
    root.stop();
    root.join().await;
    Value::Measured(per(elapsed, got, 1.0))
}

// ---- spawn and idle memory -----------------------------------------------------------------------

/// UP from a child whose `enter` hook has run.
struct Entered;

/// An idle child: a queue, never sent to.
struct Idle;

#[taskthread(up = Entered)]
impl Idle {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up(Entered).await?;
        Ok(())
    }

    #[down]
    async fn poke(&mut self, _ctx: &mut Ctx<Self>, _p: u64) -> Result<()> {
        Ok(())
    }
}

/// DOWN to the spawner: spawn this many idle children.
struct SpawnIdle(usize);

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
            ctx.spawn_with(Idle, placed());
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

async fn spawn_idle(root: &mut Handle<Spawner>, n: usize) {
    root.send(SpawnIdle(n)).await.expect("the spawner runs");
    let entered = root.recv().await.expect("the spawner reports");
    assert_eq!(entered, n);
}

async fn spawn(n: usize) -> Value {
    let start = Instant::now();
    let mut root = taskthread::spawn(Spawner::default());
    spawn_idle(&mut root, n).await;
    let elapsed = start.elapsed();
    root.stop();
    root.join().await;
    Value::Measured(per(elapsed, n as u64, 1_000.0))
}

// ---- shutdown --------------------------------------------------------------------------------

/// A node of a tree: spawns its children in `enter`, then idles.
struct Node {
    depth: u32,
    breadth: usize,
    entered: Arc<Countdown>,
    /// Whether this is the tree's root.
    root: bool,
}

#[taskthread]
impl Node {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        if self.depth > 0 {
            for _ in 0..self.breadth {
                let node = Node {
                    depth: self.depth - 1,
                    breadth: self.breadth,
                    entered: Arc::clone(&self.entered),
                    root: false,
                };
                // The root's children go to the cores; theirs stay with them.
                let options = if self.root {
                    placed()
                } else {
                    ChildOptions::new()
                };
                ctx.spawn_with(node, options);
            }
        }
        self.entered.count();
        Ok(())
    }

    #[down]
    async fn poke(&mut self, _ctx: &mut Ctx<Self>, _p: u64) -> Result<()> {
        Ok(())
    }

    /// Child exits are expected: handled so that none is logged.
    #[up]
    async fn exited(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _exit: ChildExit) {}
}

async fn shutdown(depth: u32, breadth: usize) -> Value {
    let entered = Arc::new(Countdown::new(tree_size(depth, breadth)));
    let root = taskthread::spawn(Node {
        depth,
        breadth,
        entered: Arc::clone(&entered),
        root: true,
    });
    entered.wait().await;
    let start = Instant::now();
    root.stop();
    let exit = root.join().await;
    let elapsed = start.elapsed();
    assert!(matches!(exit, Exit::Stopped), "{exit}");
    Value::Measured(per(elapsed, 1, 1_000_000.0))
}

// ---- periodic --------------------------------------------------------------------------------

/// A thread with one periodic task that records how late each run is, and ends after
/// `ticks` runs.
struct Ticker {
    started: Option<Instant>,
    runs: u64,
    ticks: u64,
    late: Vec<u64>,
    lateness: Arc<Mutex<Vec<u64>>>,
}

#[taskthread]
impl Ticker {
    async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        self.started = Some(Instant::now());
        self.late = Vec::with_capacity(self.ticks as usize);
        Ok(())
    }

    #[rescheduling(every = "10ms", delay = "10ms", missed = "burst")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
        self.runs += 1;
        let due = self.started.expect("entered") + crate::model::PERIOD * self.runs as u32;
        self.late.push(due.elapsed().as_nanos() as u64);
        if self.runs < self.ticks {
            return Reschedule::Again;
        }
        let late = std::mem::take(&mut self.late);
        self.lateness.lock().expect("no panic").extend(late);
        Reschedule::Stop
    }
}

/// The root of the periodic workload: starts the tickers, ends when they all have.
struct Clock {
    tickers: usize,
    ticks: u64,
    ended: usize,
    lateness: Arc<Mutex<Vec<u64>>>,
}

#[taskthread]
impl Clock {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for _ in 0..self.tickers {
            let ticker = Ticker {
                started: None,
                runs: 0,
                ticks: self.ticks,
                late: Vec::new(),
                lateness: Arc::clone(&self.lateness),
            };
            ctx.spawn_with(ticker, placed());
        }
        Ok(())
    }

    #[up]
    async fn exited(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, _exit: ChildExit) {
        self.ended += 1;
        if self.ended == self.tickers {
            ctx.stop();
        }
    }
}

async fn periodic(tickers: usize, run_for: Duration) -> Figures {
    let ticks = ticks(run_for);
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(tickers * ticks as usize)));
    let cpu = probe::cpu_time();
    let root = taskthread::spawn(Clock {
        tickers,
        ticks,
        ended: 0,
        lateness: Arc::clone(&lateness),
    });
    let exit = root.join().await;
    let cpu = probe::cpu_time().saturating_sub(cpu);
    assert!(matches!(exit, Exit::Completed), "{exit}");
    let mut lateness = std::mem::take(&mut *lateness.lock().expect("no panic"));
    periodic_figures(cpu, &mut lateness)
}
