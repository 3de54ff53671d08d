//! kameo 0.22: every unit is an actor (a tokio task with a mailbox); a parent is an actor
//! holding its children's `ActorRef`s (supervised children for the trees), children reach
//! it with `tell`. Mailboxes are bounded at 64 unless said otherwise (kameo's default).

use std::sync::Arc;

use kameo::Actor;
use kameo::actor::{ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::mailbox;
use kameo::message::{Context, Message};
use kameo::supervision::RestartPolicy;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::model::{
    CHILDREN, Countdown, Figures, Flavour, RELAY_TWO_SIDES, SENDERS, Scale, Suite, System, Value,
    Workload, per, start_senders, tree_size,
};
use crate::probe;

/// kameo.
#[derive(Debug)]
pub(crate) struct KameoSys;

/// Its workloads.
const SUITE: Suite = Suite {
    tell: |capacity, messages| Box::pin(tell(capacity, messages)),
    no_bounded_tell: None,
    ask: |n| Box::pin(ask(n)),
    fan_in: |n| Box::pin(fan_in(n)),
    contended: |n| Box::pin(contended(n)),
    spawn: |n| Box::pin(spawn(n)),
    shutdown: |depth, breadth| Box::pin(shutdown(depth, breadth)),
    periodic: Err(
        "no periodic or rescheduling tasks: a kameo user spawns a tokio interval loop that tells the actor",
    ),
    relay: Err(RELAY_TWO_SIDES),
};

impl System for KameoSys {
    fn name(&self) -> &'static str {
        "kameo"
    }

    fn run(&self, workload: Workload, flavour: Flavour, scale: &Scale) -> Figures {
        SUITE.run(workload, flavour, scale)
    }

    fn idle_memory(&self, flavour: Flavour, n: usize) -> (u64, u64) {
        flavour.block_on(move || async move {
            let parent = Spawner::spawn(Spawner::default());
            let before = probe::resident_anon_bytes();
            let (reply, entered) = oneshot::channel();
            parent
                .tell(SpawnIdle(n, reply))
                .await
                .expect("the spawner runs");
            entered.await.expect("the spawner reports");
            let after = probe::resident_anon_bytes();
            let _ = parent.stop_gracefully().await;
            parent.wait_for_shutdown().await;
            (before, after)
        })
    }
}

// ---- tell ------------------------------------------------------------------------------------

struct TellChild {
    parent: ActorRef<TellParent>,
    expected: u64,
    got: u64,
}

impl Actor for TellChild {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

/// UP from a tell child that has handled all its messages.
struct TellDone;

impl Message<u64> for TellChild {
    type Reply = ();

    async fn handle(&mut self, n: u64, _ctx: &mut Context<Self, ()>) {
        std::hint::black_box(n);
        self.got += 1;
        if self.got == self.expected {
            let _ = self.parent.tell(TellDone).await;
        }
    }
}

struct TellParent {
    capacity: usize,
    per_child: u64,
    children: Vec<ActorRef<TellChild>>,
    done: usize,
    finished: Option<oneshot::Sender<u64>>,
}

impl Actor for TellParent {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(mut state: Self, me: ActorRef<Self>) -> Result<Self, Infallible> {
        for _ in 0..CHILDREN {
            let child = TellChild {
                parent: me.clone(),
                expected: state.per_child,
                got: 0,
            };
            let mailbox = mailbox::bounded(state.capacity);
            state
                .children
                .push(TellChild::spawn_with_mailbox(child, mailbox));
        }
        Ok(state)
    }
}

/// DOWN to the tell parent: send every message now, and say when all were handled.
struct Go(oneshot::Sender<u64>);

impl Message<Go> for TellParent {
    type Reply = ();

    async fn handle(&mut self, go: Go, _ctx: &mut Context<Self, ()>) {
        self.finished = Some(go.0);
        for n in 0..self.per_child * CHILDREN as u64 {
            let child = &self.children[n as usize % CHILDREN];
            child.tell(n).await.expect("a tell child runs");
        }
    }
}

impl Message<TellDone> for TellParent {
    type Reply = ();

    async fn handle(&mut self, _d: TellDone, _ctx: &mut Context<Self, ()>) {
        self.done += 1;
        if self.done == CHILDREN {
            let total = self.per_child * CHILDREN as u64;
            let _ = self.finished.take().expect("went").send(total);
        }
    }
}

async fn tell(capacity: usize, messages: u64) -> Value {
    let per_child = messages / CHILDREN as u64;
    let parent = TellParent::spawn(TellParent {
        capacity,
        per_child,
        children: Vec::with_capacity(CHILDREN),
        done: 0,
        finished: None,
    });
    parent.wait_for_startup().await;
    let start = Instant::now();
    let (reply, finished) = oneshot::channel();
    parent.tell(Go(reply)).await.expect("the parent runs");
    let total = finished.await.expect("the parent reports");
    let elapsed = start.elapsed();
    let _ = parent.stop_gracefully().await;
    parent.wait_for_shutdown().await;
    Value::Measured(per(elapsed, total, 1.0))
}

// ---- ask -------------------------------------------------------------------------------------

/// The question of the ask workload.
struct Ping;

#[derive(Actor, Default)]
struct Echo {
    n: u64,
}

impl Message<Ping> for Echo {
    type Reply = u64;

    async fn handle(&mut self, _q: Ping, _ctx: &mut Context<Self, u64>) -> u64 {
        self.n += 1;
        self.n
    }
}

async fn ask(round_trips: u64) -> Value {
    let echo = Echo::spawn(Echo::default());
    let start = Instant::now();
    for _ in 0..round_trips {
        std::hint::black_box(echo.ask(Ping).await.expect("the echo answers"));
    }
    let elapsed = start.elapsed();
    let _ = echo.stop_gracefully().await;
    echo.wait_for_shutdown().await;
    Value::Measured(per(elapsed, round_trips, 1.0))
}

// ---- fan-in ----------------------------------------------------------------------------------

/// DOWN to a fan-in child: send this many messages UP.
struct Burst(u64);

/// UP from a fan-in child.
struct Up(u64);

struct Producer {
    parent: ActorRef<FanIn>,
}

impl Actor for Producer {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

impl Message<Burst> for Producer {
    type Reply = ();

    async fn handle(&mut self, b: Burst, _ctx: &mut Context<Self, ()>) {
        for i in 0..b.0 {
            if self.parent.tell(Up(i)).await.is_err() {
                return;
            }
        }
    }
}

struct FanIn {
    children: Vec<ActorRef<Producer>>,
    expected: u64,
    got: u64,
    finished: Option<oneshot::Sender<u64>>,
}

impl Actor for FanIn {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(mut state: Self, me: ActorRef<Self>) -> Result<Self, Infallible> {
        for _ in 0..CHILDREN {
            let child = Producer { parent: me.clone() };
            state.children.push(Producer::spawn(child));
        }
        Ok(state)
    }
}

/// DOWN to the fan-in parent: have every child send this many messages UP.
struct Fire(u64, oneshot::Sender<u64>);

impl Message<Fire> for FanIn {
    type Reply = ();

    async fn handle(&mut self, f: Fire, _ctx: &mut Context<Self, ()>) {
        self.expected = f.0 * CHILDREN as u64;
        self.finished = Some(f.1);
        for child in &self.children {
            child.tell(Burst(f.0)).await.expect("a producer runs");
        }
    }
}

impl Message<Up> for FanIn {
    type Reply = ();

    async fn handle(&mut self, up: Up, _ctx: &mut Context<Self, ()>) {
        std::hint::black_box(up.0);
        self.got += 1;
        if self.got == self.expected {
            let _ = self.finished.take().expect("fired").send(self.got);
        }
    }
}

async fn fan_in(per_child: u64) -> Value {
    let parent = FanIn::spawn(FanIn {
        children: Vec::with_capacity(CHILDREN),
        expected: 0,
        got: 0,
        finished: None,
    });
    parent.wait_for_startup().await;
    let start = Instant::now();
    let (reply, finished) = oneshot::channel();
    parent
        .tell(Fire(per_child, reply))
        .await
        .expect("the parent runs");
    let got = finished.await.expect("the parent reports");
    let elapsed = start.elapsed();
    let _ = parent.stop_gracefully().await;
    parent.wait_for_shutdown().await;
    Value::Measured(per(elapsed, got, 1.0))
}

// ---- contended -------------------------------------------------------------------------------

/// The receiver of the contended workload: counts, and says when it has them all.
struct Counter {
    expected: u64,
    got: u64,
    done: Option<oneshot::Sender<u64>>,
}

impl Actor for Counter {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

impl Message<u64> for Counter {
    type Reply = ();

    async fn handle(&mut self, n: u64, _ctx: &mut Context<Self, ()>) {
        std::hint::black_box(n);
        self.got += 1;
        if self.got == self.expected
            && let Some(done) = self.done.take()
        {
            let _ = done.send(self.got);
        }
    }
}

async fn contended(messages: u64) -> Value {
    let expected = messages / SENDERS as u64 * SENDERS as u64;
    let (done, finished) = oneshot::channel();
    let counter = Counter::spawn(Counter {
        expected,
        got: 0,
        done: Some(done),
    });
    let (go, senders) = start_senders(messages, |share| {
        let counter = counter.clone();
        async move {
            for i in 0..share {
                counter.tell(i).await.expect("the counter runs");
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
    let _ = counter.stop_gracefully().await;
    counter.wait_for_shutdown().await;
    Value::Measured(per(elapsed, got, 1.0))
}

// ---- spawn and idle memory -------------------------------------------------------------------

/// UP from a child that has started.
struct Entered;

/// An idle child, supervised by the spawner: tells it that it has started.
#[derive(Clone)]
struct Idle {
    parent: ActorRef<Spawner>,
}

impl Actor for Idle {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        let _ = state.parent.tell(Entered).await;
        Ok(state)
    }
}

impl Message<u64> for Idle {
    type Reply = ();

    async fn handle(&mut self, _n: u64, _ctx: &mut Context<Self, ()>) {}
}

#[derive(Default)]
struct Spawner {
    expected: usize,
    entered: usize,
    children: Vec<ActorRef<Idle>>,
    finished: Option<oneshot::Sender<usize>>,
}

impl Actor for Spawner {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

/// DOWN to the spawner: spawn this many idle children, and say when all have started.
struct SpawnIdle(usize, oneshot::Sender<usize>);

impl Message<SpawnIdle> for Spawner {
    type Reply = ();

    async fn handle(&mut self, s: SpawnIdle, ctx: &mut Context<Self, ()>) {
        self.expected += s.0;
        self.finished = Some(s.1);
        let me = ctx.actor_ref().clone();
        for _ in 0..s.0 {
            let idle = Idle { parent: me.clone() };
            let child = Idle::supervise(&me, idle)
                .restart_policy(RestartPolicy::Never)
                .spawn()
                .await;
            self.children.push(child);
        }
    }
}

impl Message<Entered> for Spawner {
    type Reply = ();

    async fn handle(&mut self, _e: Entered, _ctx: &mut Context<Self, ()>) {
        self.entered += 1;
        if self.entered == self.expected {
            let _ = self.finished.take().expect("asked").send(self.entered);
        }
    }
}

async fn spawn(n: usize) -> Value {
    let start = Instant::now();
    let parent = Spawner::spawn(Spawner::default());
    let (reply, entered) = oneshot::channel();
    parent
        .tell(SpawnIdle(n, reply))
        .await
        .expect("the spawner runs");
    assert_eq!(entered.await.expect("the spawner reports"), n);
    let elapsed = start.elapsed();
    let _ = parent.stop_gracefully().await;
    parent.wait_for_shutdown().await;
    Value::Measured(per(elapsed, n as u64, 1_000.0))
}

// ---- shutdown --------------------------------------------------------------------------------

/// A node of a tree: spawns its children, supervised, in `on_start`.
#[derive(Clone)]
struct Node {
    depth: u32,
    breadth: usize,
    entered: Arc<Countdown>,
    stopped: Arc<Countdown>,
}

impl Actor for Node {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, me: ActorRef<Self>) -> Result<Self, Infallible> {
        if state.depth > 0 {
            for _ in 0..state.breadth {
                let child = Node {
                    depth: state.depth - 1,
                    breadth: state.breadth,
                    entered: Arc::clone(&state.entered),
                    stopped: Arc::clone(&state.stopped),
                };
                Node::supervise(&me, child)
                    .restart_policy(RestartPolicy::Never)
                    .spawn()
                    .await;
            }
        }
        state.entered.count();
        Ok(state)
    }

    async fn on_stop(
        &mut self,
        _: kameo::actor::WeakActorRef<Self>,
        _: kameo::error::ActorStopReason,
    ) -> Result<(), Infallible> {
        self.stopped.count();
        Ok(())
    }
}

impl Message<u64> for Node {
    type Reply = ();

    async fn handle(&mut self, _n: u64, _ctx: &mut Context<Self, ()>) {}
}

async fn shutdown(depth: u32, breadth: usize) -> Value {
    let entered = Arc::new(Countdown::new(tree_size(depth, breadth)));
    let stopped = Arc::new(Countdown::new(tree_size(depth, breadth)));
    let root = Node::spawn(Node {
        depth,
        breadth,
        entered: Arc::clone(&entered),
        stopped: Arc::clone(&stopped),
    });
    entered.wait().await;
    let start = Instant::now();
    root.stop_gracefully().await.expect("the root runs");
    root.wait_for_shutdown().await;
    // On the multi-thread runtime the root can report its shutdown while some descendants
    // are still in `on_stop`: the figure runs until every node has stopped, as for the
    // other systems.
    stopped.wait().await;
    Value::Measured(per(start.elapsed(), 1, 1_000_000.0))
}
