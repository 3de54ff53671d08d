//! actix 0.13 on its own `actix_rt::System` (not on the tokio runtime the other systems
//! share): every unit is an actor, a parent holds its children's `Addr`s, children reach it
//! with `do_send`.
//!
//! actix runs each arbiter on a current-thread runtime. On "current-thread" everything
//! runs on the system arbiter; on "multi-thread" the driver and the parent stay on the
//! system arbiter and the children (or the echo, or the tickers) are spread round-robin over
//! one extra arbiter (an OS thread) per core.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::model::{
    CHILDREN, Countdown, Figures, Flavour, Metric, PERIOD, RELAY_TWO_SIDES, SENDERS, Scale,
    System as BenchSystem, Value, Workload, not_applicable, per, periodic_figures, ticks,
};
use crate::probe;

/// actix.
#[derive(Debug)]
pub(crate) struct ActixSys;

/// Why actix has no bounded-queue tell.
const NO_BOUNDED_TELL: &str = "actix's do_send ignores the mailbox capacity, and send awaits the handler's result (a round trip): no tell that waits for room in a queue of 64";

impl BenchSystem for ActixSys {
    fn name(&self) -> &'static str {
        "actix"
    }

    fn note(&self) -> Option<&'static str> {
        Some(
            "on its own actix_rt::System; \"multi-thread\" = parent on the system arbiter, children spread over one extra arbiter per core; do_send (unbounded) for tell and UP",
        )
    }

    fn run(&self, workload: Workload, flavour: Flavour, scale: &Scale) -> Figures {
        let s = scale.clone();
        match workload {
            Workload::Tell => vec![
                (Metric::Tell64, Value::NotApplicable(NO_BOUNDED_TELL)),
                (
                    Metric::TellLarge,
                    run_on(flavour, move |p| tell(p, s.tell_messages)),
                ),
            ],
            Workload::Ask => vec![(Metric::Ask, run_on(flavour, move |p| ask(p, s.asks)))],
            Workload::FanIn => vec![(
                Metric::FanIn,
                run_on(flavour, move |p| fan_in(p, s.fan_in_per_child)),
            )],
            Workload::Contended => vec![(
                Metric::Contended,
                run_on(flavour, move |p| contended(p, s.contended_messages)),
            )],
            Workload::Spawn => vec![(
                Metric::Spawn,
                run_on(flavour, move |p| spawn(p, s.spawn_children)),
            )],
            Workload::Shutdown => not_applicable(
                workload,
                "actix has no tree of actors to stop gracefully from its root (System::stop ends every arbiter at once)",
            ),
            Workload::Periodic => run_on(flavour, move |p| {
                periodic(p, s.periodic_tasks, s.periodic_for)
            }),
            Workload::Relay => not_applicable(workload, RELAY_TWO_SIDES),
        }
    }

    fn idle_memory(&self, flavour: Flavour, n: usize) -> (u64, u64) {
        run_on(flavour, move |placement| async move {
            let parent = Spawner::default().start();
            let before = probe::resident_anon_bytes();
            let (reply, entered) = oneshot::channel();
            parent.do_send(SpawnIdle(n, placement, reply));
            entered.await.expect("the spawner reports");
            let after = probe::resident_anon_bytes();
            (before, after)
        })
    }
}

/// Where new actors go: the current arbiter, or round-robin over extra ones.
#[derive(Clone)]
struct Placement {
    arbiters: Vec<ArbiterHandle>,
}

impl Placement {
    /// Starts `actor` as the `i`-th unit.
    fn start<A>(&self, i: usize, actor: A) -> Addr<A>
    where
        A: Actor<Context = Context<A>> + Send,
    {
        if self.arbiters.is_empty() {
            actor.start()
        } else {
            let arbiter = &self.arbiters[i % self.arbiters.len()];
            A::start_in_arbiter(arbiter, move |_| actor)
        }
    }

    /// Spawns `task` as the `i`-th task, where the `i`-th unit would start.
    fn spawn(&self, i: usize, task: impl Future<Output = ()> + Send + 'static) {
        if self.arbiters.is_empty() {
            actix::spawn(task);
        } else {
            self.arbiters[i % self.arbiters.len()].spawn(task);
        }
    }
}

/// Runs `f` on a fresh actix system (with extra arbiters on "multi-thread"), then stops
/// them all.
fn run_on<F, Fut>(flavour: Flavour, f: F) -> Fut::Output
where
    F: FnOnce(Placement) -> Fut,
    Fut: Future,
{
    let system = actix::System::new();
    let arbiters: Vec<Arbiter> = match flavour {
        Flavour::CurrentThread => Vec::new(),
        Flavour::MultiThread => (0..Flavour::workers()).map(|_| Arbiter::new()).collect(),
    };
    let placement = Placement {
        arbiters: arbiters.iter().map(Arbiter::handle).collect(),
    };
    let out = system.block_on(f(placement));
    for arbiter in arbiters {
        arbiter.stop();
        let _ = arbiter.join();
    }
    out
}

// ---- tell ------------------------------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "()")]
struct Number(u64);

#[derive(Message)]
#[rtype(result = "()")]
struct TellDone;

struct TellChild {
    parent: Addr<TellParent>,
    expected: u64,
    got: u64,
}

impl Actor for TellChild {
    type Context = Context<Self>;
}

impl Handler<Number> for TellChild {
    type Result = ();

    fn handle(&mut self, n: Number, _ctx: &mut Context<Self>) {
        std::hint::black_box(n.0);
        self.got += 1;
        if self.got == self.expected {
            self.parent.do_send(TellDone);
        }
    }
}

struct TellParent {
    placement: Placement,
    per_child: u64,
    children: Vec<Addr<TellChild>>,
    done: usize,
    finished: Option<oneshot::Sender<u64>>,
}

impl Actor for TellParent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for i in 0..CHILDREN {
            let child = TellChild {
                parent: ctx.address(),
                expected: self.per_child,
                got: 0,
            };
            self.children.push(self.placement.start(i, child));
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Go(oneshot::Sender<u64>);

impl Handler<Go> for TellParent {
    type Result = ();

    fn handle(&mut self, go: Go, _ctx: &mut Context<Self>) {
        self.finished = Some(go.0);
        for n in 0..self.per_child * CHILDREN as u64 {
            self.children[n as usize % CHILDREN].do_send(Number(n));
        }
    }
}

impl Handler<TellDone> for TellParent {
    type Result = ();

    fn handle(&mut self, _d: TellDone, ctx: &mut Context<Self>) {
        self.done += 1;
        if self.done == CHILDREN {
            let total = self.per_child * CHILDREN as u64;
            let _ = self.finished.take().expect("went").send(total);
            ctx.stop();
        }
    }
}

async fn tell(placement: Placement, messages: u64) -> Value {
    let per_child = messages / CHILDREN as u64;
    let parent = TellParent {
        placement,
        per_child,
        children: Vec::with_capacity(CHILDREN),
        done: 0,
        finished: None,
    }
    .start();
    parent.send(Ready).await.expect("the parent runs");
    let start = Instant::now();
    let (reply, finished) = oneshot::channel();
    parent.do_send(Go(reply));
    let total = finished.await.expect("the parent reports");
    Value::Measured(per(start.elapsed(), total, 1.0))
}

/// A question to a parent: are you running?
#[derive(Message)]
#[rtype(result = "()")]
struct Ready;

impl Handler<Ready> for TellParent {
    type Result = ();

    fn handle(&mut self, _q: Ready, _ctx: &mut Context<Self>) {}
}

// ---- ask -------------------------------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping;

#[derive(Default)]
struct Echo {
    n: u64,
}

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Ping> for Echo {
    type Result = u64;

    fn handle(&mut self, _q: Ping, _ctx: &mut Context<Self>) -> u64 {
        self.n += 1;
        self.n
    }
}

async fn ask(placement: Placement, round_trips: u64) -> Value {
    let echo = placement.start(0, Echo::default());
    let start = Instant::now();
    for _ in 0..round_trips {
        std::hint::black_box(echo.send(Ping).await.expect("the echo answers"));
    }
    Value::Measured(per(start.elapsed(), round_trips, 1.0))
}

// ---- fan-in ----------------------------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "()")]
struct Burst(u64);

#[derive(Message)]
#[rtype(result = "()")]
struct Up(u64);

struct Producer {
    parent: Addr<FanIn>,
}

impl Actor for Producer {
    type Context = Context<Self>;
}

impl Handler<Burst> for Producer {
    type Result = ();

    fn handle(&mut self, b: Burst, _ctx: &mut Context<Self>) {
        for i in 0..b.0 {
            self.parent.do_send(Up(i));
        }
    }
}

struct FanIn {
    placement: Placement,
    children: Vec<Addr<Producer>>,
    expected: u64,
    got: u64,
    finished: Option<oneshot::Sender<u64>>,
}

impl Actor for FanIn {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for i in 0..CHILDREN {
            let child = Producer {
                parent: ctx.address(),
            };
            self.children.push(self.placement.start(i, child));
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Fire(u64, oneshot::Sender<u64>);

impl Handler<Fire> for FanIn {
    type Result = ();

    fn handle(&mut self, f: Fire, _ctx: &mut Context<Self>) {
        self.expected = f.0 * CHILDREN as u64;
        self.finished = Some(f.1);
        for child in &self.children {
            child.do_send(Burst(f.0));
        }
    }
}

impl Handler<Up> for FanIn {
    type Result = ();

    fn handle(&mut self, up: Up, ctx: &mut Context<Self>) {
        std::hint::black_box(up.0);
        self.got += 1;
        if self.got == self.expected {
            let _ = self.finished.take().expect("fired").send(self.got);
            ctx.stop();
        }
    }
}

impl Handler<Ready> for FanIn {
    type Result = ();

    fn handle(&mut self, _q: Ready, _ctx: &mut Context<Self>) {}
}

async fn fan_in(placement: Placement, per_child: u64) -> Value {
    let parent = FanIn {
        placement,
        children: Vec::with_capacity(CHILDREN),
        expected: 0,
        got: 0,
        finished: None,
    }
    .start();
    parent.send(Ready).await.expect("the parent runs");
    let start = Instant::now();
    let (reply, finished) = oneshot::channel();
    parent.do_send(Fire(per_child, reply));
    let got = finished.await.expect("the parent reports");
    Value::Measured(per(start.elapsed(), got, 1.0))
}

// ---- contended -------------------------------------------------------------------------------

/// The receiver of the contended workload: counts, and says when it has them all.
struct Counter {
    expected: u64,
    got: u64,
    done: Option<oneshot::Sender<u64>>,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<Number> for Counter {
    type Result = ();

    fn handle(&mut self, n: Number, _ctx: &mut Context<Self>) {
        std::hint::black_box(n.0);
        self.got += 1;
        if self.got == self.expected
            && let Some(done) = self.done.take()
        {
            let _ = done.send(self.got);
        }
    }
}

/// The senders are tasks on the arbiters the children of the other workloads go to
/// (`do_send`: unbounded, it never waits).
async fn contended(placement: Placement, messages: u64) -> Value {
    let share = messages / SENDERS as u64;
    let (done, finished) = oneshot::channel();
    let counter = placement.start(
        0,
        Counter {
            expected: share * SENDERS as u64,
            got: 0,
            done: Some(done),
        },
    );
    let (go, ready) = tokio::sync::watch::channel(false);
    for i in 0..SENDERS {
        let (counter, mut ready) = (counter.clone(), ready.clone());
        placement.spawn(i, async move {
            ready.wait_for(|go| *go).await.expect("the go signal");
            for n in 0..share {
                counter.do_send(Number(n));
            }
        });
    }
    let start = Instant::now();
    go.send_replace(true);
    let got = finished.await.expect("the counter reports");
    Value::Measured(per(start.elapsed(), got, 1.0))
}

// ---- spawn and idle memory -------------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "()")]
struct Entered;

/// An idle child: tells its parent it has started.
struct Idle {
    parent: Addr<Spawner>,
}

impl Actor for Idle {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.parent.do_send(Entered);
    }
}

impl Handler<Number> for Idle {
    type Result = ();

    fn handle(&mut self, _n: Number, _ctx: &mut Context<Self>) {}
}

#[derive(Default)]
struct Spawner {
    expected: usize,
    entered: usize,
    children: Vec<Addr<Idle>>,
    finished: Option<oneshot::Sender<usize>>,
}

impl Actor for Spawner {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct SpawnIdle(usize, Placement, oneshot::Sender<usize>);

impl Handler<SpawnIdle> for Spawner {
    type Result = ();

    fn handle(&mut self, s: SpawnIdle, ctx: &mut Context<Self>) {
        self.expected += s.0;
        self.finished = Some(s.2);
        for i in 0..s.0 {
            let idle = Idle {
                parent: ctx.address(),
            };
            self.children.push(s.1.start(i, idle));
        }
    }
}

impl Handler<Entered> for Spawner {
    type Result = ();

    fn handle(&mut self, _e: Entered, _ctx: &mut Context<Self>) {
        self.entered += 1;
        if self.entered == self.expected {
            let _ = self.finished.take().expect("asked").send(self.entered);
        }
    }
}

async fn spawn(placement: Placement, n: usize) -> Value {
    let start = Instant::now();
    let parent = Spawner::default().start();
    let (reply, entered) = oneshot::channel();
    parent.do_send(SpawnIdle(n, placement, reply));
    assert_eq!(entered.await.expect("the spawner reports"), n);
    Value::Measured(per(start.elapsed(), n as u64, 1_000.0))
}

// ---- periodic --------------------------------------------------------------------------------

/// An actor with `run_interval(10 ms)`, its runs measured against the grid it asked for
/// (start + k × 10 ms), as for the other systems. actix re-arms the interval from each run,
/// so its lateness accumulates (drift) where the others keep to the grid.
struct Ticker {
    started: Instant,
    runs: u64,
    ticks: u64,
    late: Vec<u64>,
    lateness: Arc<Mutex<Vec<u64>>>,
    ended: Arc<Countdown>,
}

impl Actor for Ticker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.started = Instant::now();
        self.late = Vec::with_capacity(self.ticks as usize);
        ctx.run_interval(PERIOD, |this, ctx| {
            this.runs += 1;
            let due = this.started + PERIOD * this.runs as u32;
            this.late.push(due.elapsed().as_nanos() as u64);
            if this.runs == this.ticks {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let late = std::mem::take(&mut self.late);
        self.lateness.lock().expect("no panic").extend(late);
        self.ended.count();
    }
}

async fn periodic(placement: Placement, tickers: usize, run_for: Duration) -> Figures {
    let ticks = ticks(run_for);
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(tickers * ticks as usize)));
    let ended = Arc::new(Countdown::new(tickers));
    let cpu = probe::cpu_time();
    for i in 0..tickers {
        let ticker = Ticker {
            started: Instant::now(),
            runs: 0,
            ticks,
            late: Vec::new(),
            lateness: Arc::clone(&lateness),
            ended: Arc::clone(&ended),
        };
        placement.start(i, ticker);
    }
    ended.wait().await;
    let cpu = probe::cpu_time().saturating_sub(cpu);
    let mut lateness = std::mem::take(&mut *lateness.lock().expect("no panic"));
    periodic_figures(cpu, &mut lateness)
}
