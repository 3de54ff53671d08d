//! ractor 0.16: every unit is an actor; a parent spawns its children linked to itself
//! (`spawn_linked`) and stops them in `post_stop` (`stop_children_and_wait`); children reach
//! it with `cast`. ractor's mailboxes are unbounded, so no figure has a bounded queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::model::{
    CHILDREN, Countdown, Figures, Flavour, PERIOD, RELAY_TWO_SIDES, SENDERS, Scale, Suite, System,
    Value, Workload, per, periodic_figures, start_senders, ticks, tree_size,
};
use crate::probe;

/// ractor.
#[derive(Debug)]
pub(crate) struct RactorSys;

/// Why ractor has no bounded-queue figure.
const UNBOUNDED: &str = "ractor's mailboxes are unbounded: no queue of 64";

/// Its workloads.
const SUITE: Suite = Suite {
    tell: |_capacity, messages| Box::pin(tell(messages)),
    no_bounded_tell: Some(UNBOUNDED),
    ask: |n| Box::pin(ask(n)),
    fan_in: |n| Box::pin(fan_in(n)),
    contended: |n| Box::pin(contended(n)),
    spawn: |n| Box::pin(spawn(n)),
    shutdown: |depth, breadth| Box::pin(shutdown(depth, breadth)),
    periodic: Ok(|tasks, run_for| Box::pin(periodic(tasks, run_for))),
    relay: Err(RELAY_TWO_SIDES),
};

impl System for RactorSys {
    fn name(&self) -> &'static str {
        "ractor"
    }

    fn note(&self) -> Option<&'static str> {
        Some("unbounded mailboxes (no backpressure) in every workload")
    }

    fn run(&self, workload: Workload, flavour: Flavour, scale: &Scale) -> Figures {
        SUITE.run(workload, flavour, scale)
    }

    fn idle_memory(&self, flavour: Flavour, n: usize) -> (u64, u64) {
        flavour.block_on(move || async move {
            let (parent, handle) = Actor::spawn(None, Spawner, ())
                .await
                .expect("the spawner starts");
            let before = probe::resident_anon_bytes();
            let (reply, entered) = oneshot::channel();
            parent
                .cast(SpawnerMsg::SpawnIdle(n, reply))
                .expect("the spawner runs");
            entered.await.expect("the spawner reports");
            let after = probe::resident_anon_bytes();
            parent.stop(None);
            handle.await.expect("the spawner ends");
            (before, after)
        })
    }
}

/// Stops an actor's children and waits for them: every parent's `post_stop`.
async fn stop_children<M: ractor::Message>(myself: &ActorRef<M>) {
    myself.stop_children_and_wait(None, None).await;
}

// ---- tell ------------------------------------------------------------------------------------

struct TellChild;

impl Actor for TellChild {
    type Msg = u64;
    type State = (u64, u64, ActorRef<TellMsg>);
    type Arguments = (u64, ActorRef<TellMsg>);

    async fn pre_start(
        &self,
        _myself: ActorRef<u64>,
        (expected, parent): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((0, expected, parent))
    }

    async fn handle(
        &self,
        _myself: ActorRef<u64>,
        n: u64,
        (got, expected, parent): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        std::hint::black_box(n);
        *got += 1;
        if got == expected {
            parent.cast(TellMsg::Done)?;
        }
        Ok(())
    }
}

enum TellMsg {
    Go(oneshot::Sender<u64>),
    Done,
}

struct TellParent;

struct TellState {
    per_child: u64,
    children: Vec<ActorRef<u64>>,
    done: usize,
    finished: Option<oneshot::Sender<u64>>,
}

impl Actor for TellParent {
    type Msg = TellMsg;
    type State = TellState;
    type Arguments = u64;

    async fn pre_start(
        &self,
        myself: ActorRef<TellMsg>,
        per_child: u64,
    ) -> Result<TellState, ActorProcessingErr> {
        let mut children = Vec::with_capacity(CHILDREN);
        for _ in 0..CHILDREN {
            let args = (per_child, myself.clone());
            let (child, _) = Actor::spawn_linked(None, TellChild, args, myself.get_cell()).await?;
            children.push(child);
        }
        Ok(TellState {
            per_child,
            children,
            done: 0,
            finished: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<TellMsg>,
        msg: TellMsg,
        state: &mut TellState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TellMsg::Go(finished) => {
                state.finished = Some(finished);
                for n in 0..state.per_child * CHILDREN as u64 {
                    state.children[n as usize % CHILDREN].cast(n)?;
                }
            }
            TellMsg::Done => {
                state.done += 1;
                if state.done == CHILDREN {
                    let total = state.per_child * CHILDREN as u64;
                    let _ = state.finished.take().expect("went").send(total);
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<TellMsg>,
        _state: &mut TellState,
    ) -> Result<(), ActorProcessingErr> {
        stop_children(&myself).await;
        Ok(())
    }
}

async fn tell(messages: u64) -> Value {
    let per_child = messages / CHILDREN as u64;
    let (parent, handle) = Actor::spawn(None, TellParent, per_child)
        .await
        .expect("the parent starts");
    let start = Instant::now();
    let (reply, finished) = oneshot::channel();
    parent.cast(TellMsg::Go(reply)).expect("the parent runs");
    let total = finished.await.expect("the parent reports");
    let elapsed = start.elapsed();
    parent.stop(None);
    handle.await.expect("the parent ends");
    Value::Measured(per(elapsed, total, 1.0))
}

// ---- ask -------------------------------------------------------------------------------------

/// The question of the ask workload, with its reply port.
struct Ping(RpcReplyPort<u64>);

struct Echo;

impl Actor for Echo {
    type Msg = Ping;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Ping>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Ping>,
        Ping(reply): Ping,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        *n += 1;
        let _ = reply.send(*n);
        Ok(())
    }
}

async fn ask(round_trips: u64) -> Value {
    let (echo, handle) = Actor::spawn(None, Echo, ()).await.expect("the echo starts");
    let start = Instant::now();
    for _ in 0..round_trips {
        let answer = ractor::call!(echo, Ping).expect("the echo answers");
        std::hint::black_box(answer);
    }
    let elapsed = start.elapsed();
    echo.stop(None);
    handle.await.expect("the echo ends");
    Value::Measured(per(elapsed, round_trips, 1.0))
}

// ---- fan-in ----------------------------------------------------------------------------------

enum FanInMsg {
    Fire(u64, oneshot::Sender<u64>),
    Up(u64),
}

struct Producer;

impl Actor for Producer {
    type Msg = u64;
    type State = ActorRef<FanInMsg>;
    type Arguments = ActorRef<FanInMsg>;

    async fn pre_start(
        &self,
        _: ActorRef<u64>,
        parent: ActorRef<FanInMsg>,
    ) -> Result<ActorRef<FanInMsg>, ActorProcessingErr> {
        Ok(parent)
    }

    async fn handle(
        &self,
        _myself: ActorRef<u64>,
        burst: u64,
        parent: &mut ActorRef<FanInMsg>,
    ) -> Result<(), ActorProcessingErr> {
        for i in 0..burst {
            parent.cast(FanInMsg::Up(i))?;
        }
        Ok(())
    }
}

struct FanIn;

struct FanInState {
    children: Vec<ActorRef<u64>>,
    expected: u64,
    got: u64,
    finished: Option<oneshot::Sender<u64>>,
}

impl Actor for FanIn {
    type Msg = FanInMsg;
    type State = FanInState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<FanInMsg>,
        _: (),
    ) -> Result<FanInState, ActorProcessingErr> {
        let mut children = Vec::with_capacity(CHILDREN);
        for _ in 0..CHILDREN {
            let (child, _) =
                Actor::spawn_linked(None, Producer, myself.clone(), myself.get_cell()).await?;
            children.push(child);
        }
        Ok(FanInState {
            children,
            expected: 0,
            got: 0,
            finished: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<FanInMsg>,
        msg: FanInMsg,
        state: &mut FanInState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FanInMsg::Fire(n, finished) => {
                state.expected = n * CHILDREN as u64;
                state.finished = Some(finished);
                for child in &state.children {
                    child.cast(n)?;
                }
            }
            FanInMsg::Up(v) => {
                std::hint::black_box(v);
                state.got += 1;
                if state.got == state.expected {
                    let _ = state.finished.take().expect("fired").send(state.got);
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<FanInMsg>,
        _state: &mut FanInState,
    ) -> Result<(), ActorProcessingErr> {
        stop_children(&myself).await;
        Ok(())
    }
}

async fn fan_in(per_child: u64) -> Value {
    let (parent, handle) = Actor::spawn(None, FanIn, ())
        .await
        .expect("the parent starts");
    let start = Instant::now();
    let (reply, finished) = oneshot::channel();
    parent
        .cast(FanInMsg::Fire(per_child, reply))
        .expect("the parent runs");
    let got = finished.await.expect("the parent reports");
    let elapsed = start.elapsed();
    parent.stop(None);
    handle.await.expect("the parent ends");
    Value::Measured(per(elapsed, got, 1.0))
}

// ---- contended -------------------------------------------------------------------------------

/// The receiver of the contended workload: counts, and says when it has them all.
struct Counter;

/// Its state: received, expected, and where to say it has them all.
struct CounterState {
    got: u64,
    expected: u64,
    done: Option<oneshot::Sender<u64>>,
}

impl Actor for Counter {
    type Msg = u64;
    type State = CounterState;
    type Arguments = (u64, oneshot::Sender<u64>);

    async fn pre_start(
        &self,
        _myself: ActorRef<u64>,
        (expected, done): Self::Arguments,
    ) -> Result<CounterState, ActorProcessingErr> {
        Ok(CounterState {
            got: 0,
            expected,
            done: Some(done),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<u64>,
        n: u64,
        state: &mut CounterState,
    ) -> Result<(), ActorProcessingErr> {
        std::hint::black_box(n);
        state.got += 1;
        if state.got == state.expected
            && let Some(done) = state.done.take()
        {
            let _ = done.send(state.got);
        }
        Ok(())
    }
}

async fn contended(messages: u64) -> Value {
    let expected = messages / SENDERS as u64 * SENDERS as u64;
    let (done, finished) = oneshot::channel();
    let (counter, handle) = Actor::spawn(None, Counter, (expected, done))
        .await
        .expect("the counter starts");
    let (go, senders) = start_senders(messages, |share| {
        let counter = counter.clone();
        async move {
            for i in 0..share {
                counter.cast(i).expect("the counter runs");
            }
        }
    });
    let start = Instant::now();
    go.send_replace(true);
    let got = finished.await.expect("the counter reports");
    let elapsed = start.elapsed();
    for sender in senders {
        sender.await.expect("a sender ends");
    }
    counter.stop(None);
    handle.await.expect("the counter ends");
    Value::Measured(per(elapsed, got, 1.0))
}

// ---- spawn and idle memory -------------------------------------------------------------------

enum SpawnerMsg {
    SpawnIdle(usize, oneshot::Sender<usize>),
    Entered,
}

/// An idle child: tells its parent it has started.
struct Idle;

impl Actor for Idle {
    type Msg = u64;
    type State = ();
    type Arguments = ActorRef<SpawnerMsg>;

    async fn pre_start(
        &self,
        _: ActorRef<u64>,
        parent: ActorRef<SpawnerMsg>,
    ) -> Result<(), ActorProcessingErr> {
        parent.cast(SpawnerMsg::Entered)?;
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<u64>,
        _n: u64,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

struct Spawner;

#[derive(Default)]
struct SpawnerState {
    expected: usize,
    entered: usize,
    finished: Option<oneshot::Sender<usize>>,
}

impl Actor for Spawner {
    type Msg = SpawnerMsg;
    type State = SpawnerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<SpawnerMsg>,
        _: (),
    ) -> Result<SpawnerState, ActorProcessingErr> {
        Ok(SpawnerState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<SpawnerMsg>,
        msg: SpawnerMsg,
        state: &mut SpawnerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SpawnerMsg::SpawnIdle(n, finished) => {
                state.expected += n;
                state.finished = Some(finished);
                for _ in 0..n {
                    Actor::spawn_linked(None, Idle, myself.clone(), myself.get_cell()).await?;
                }
            }
            SpawnerMsg::Entered => {
                state.entered += 1;
                if state.entered == state.expected {
                    let _ = state.finished.take().expect("asked").send(state.entered);
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<SpawnerMsg>,
        _state: &mut SpawnerState,
    ) -> Result<(), ActorProcessingErr> {
        stop_children(&myself).await;
        Ok(())
    }
}

async fn spawn(n: usize) -> Value {
    let start = Instant::now();
    let (parent, handle) = Actor::spawn(None, Spawner, ())
        .await
        .expect("the spawner starts");
    let (reply, entered) = oneshot::channel();
    parent
        .cast(SpawnerMsg::SpawnIdle(n, reply))
        .expect("the spawner runs");
    assert_eq!(entered.await.expect("the spawner reports"), n);
    let elapsed = start.elapsed();
    parent.stop(None);
    handle.await.expect("the spawner ends");
    Value::Measured(per(elapsed, n as u64, 1_000.0))
}

// ---- shutdown --------------------------------------------------------------------------------

/// A node of a tree: spawns its children linked in `pre_start`, stops them in `post_stop`.
struct Node;

impl Actor for Node {
    type Msg = u64;
    type State = ();
    type Arguments = (u32, usize, Arc<Countdown>);

    async fn pre_start(
        &self,
        myself: ActorRef<u64>,
        (depth, breadth, entered): Self::Arguments,
    ) -> Result<(), ActorProcessingErr> {
        if depth > 0 {
            for _ in 0..breadth {
                let args = (depth - 1, breadth, Arc::clone(&entered));
                Actor::spawn_linked(None, Node, args, myself.get_cell()).await?;
            }
        }
        entered.count();
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<u64>,
        _n: u64,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn post_stop(&self, myself: ActorRef<u64>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        stop_children(&myself).await;
        Ok(())
    }
}

async fn shutdown(depth: u32, breadth: usize) -> Value {
    let entered = Arc::new(Countdown::new(tree_size(depth, breadth)));
    let args = (depth, breadth, Arc::clone(&entered));
    let (root, handle) = Actor::spawn(None, Node, args)
        .await
        .expect("the root starts");
    entered.wait().await;
    let start = Instant::now();
    root.stop(None);
    handle.await.expect("the root ends");
    Value::Measured(per(start.elapsed(), 1, 1_000_000.0))
}

// ---- periodic --------------------------------------------------------------------------------

/// A tick of `send_interval`.
struct Tick;

/// An actor ticked every 10 ms by `send_interval`, which records how late each tick is
/// against the schedule started when it asked for the interval.
struct Ticker;

struct TickerState {
    started: Instant,
    runs: u64,
    ticks: u64,
    late: Vec<u64>,
    lateness: Arc<Mutex<Vec<u64>>>,
    ended: Arc<Countdown>,
}

impl Actor for Ticker {
    type Msg = Tick;
    type State = TickerState;
    type Arguments = (u64, Arc<Mutex<Vec<u64>>>, Arc<Countdown>);

    async fn pre_start(
        &self,
        myself: ActorRef<Tick>,
        (ticks, lateness, ended): Self::Arguments,
    ) -> Result<TickerState, ActorProcessingErr> {
        let started = Instant::now();
        myself.send_interval(PERIOD, || Tick);
        Ok(TickerState {
            started,
            runs: 0,
            ticks,
            late: Vec::with_capacity(ticks as usize),
            lateness,
            ended,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Tick>,
        _tick: Tick,
        state: &mut TickerState,
    ) -> Result<(), ActorProcessingErr> {
        if state.runs == state.ticks {
            return Ok(()); // a tick sent before the stop took effect
        }
        state.runs += 1;
        let due = state.started + PERIOD * state.runs as u32;
        state.late.push(due.elapsed().as_nanos() as u64);
        if state.runs == state.ticks {
            let late = std::mem::take(&mut state.late);
            state.lateness.lock().expect("no panic").extend(late);
            myself.stop(None);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<Tick>,
        state: &mut TickerState,
    ) -> Result<(), ActorProcessingErr> {
        state.ended.count();
        Ok(())
    }
}

async fn periodic(tickers: usize, run_for: Duration) -> Figures {
    let ticks = ticks(run_for);
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(tickers * ticks as usize)));
    let ended = Arc::new(Countdown::new(tickers));
    let cpu = probe::cpu_time();
    for _ in 0..tickers {
        let args = (ticks, Arc::clone(&lateness), Arc::clone(&ended));
        Actor::spawn(None, Ticker, args)
            .await
            .expect("a ticker starts");
    }
    ended.wait().await;
    let cpu = probe::cpu_time().saturating_sub(cpu);
    let mut lateness = std::mem::take(&mut *lateness.lock().expect("no panic"));
    periodic_figures(cpu, &mut lateness)
}
