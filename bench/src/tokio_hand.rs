//! Hand-written tokio, the limit: a spawned task per unit, a bounded `mpsc` per queue, a
//! `oneshot` per reply, `CancellationToken` + `TaskTracker` for stopping, and
//! `tokio::time::interval` for periodic work.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::model::{
    CHILDREN, Countdown, Figures, Flavour, PERIOD, SENDERS, SMALL_QUEUE, Scale, Suite, System,
    Value, Workload, per, periodic_figures, start_senders, ticks, tree_size,
};
use crate::{probe, relay};

/// Hand-written tokio.
#[derive(Debug)]
pub(crate) struct TokioHand;

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
    relay: Ok(|scale| Box::pin(relay::run_tokio(scale))),
};

impl System for TokioHand {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn run(&self, workload: Workload, flavour: Flavour, scale: &Scale) -> Figures {
        SUITE.run(workload, flavour, scale)
    }

    fn idle_memory(&self, flavour: Flavour, n: usize) -> (u64, u64) {
        flavour.block_on(move || async move {
            let before = probe::resident_anon_bytes();
            let idle = start_idle(n).await;
            let after = probe::resident_anon_bytes();
            idle.stop().await;
            (before, after)
        })
    }
}

// ---- tell ----------------------------------------------------------------------------------

/// A child of the tell workload: counts its messages and says when it has them all.
async fn teller_child(mut rx: mpsc::Receiver<u64>, expected: u64, done: mpsc::Sender<()>) {
    let mut got = 0u64;
    while let Some(n) = rx.recv().await {
        std::hint::black_box(n);
        got += 1;
        if got == expected {
            let _ = done.send(()).await;
        }
    }
}

async fn tell(capacity: usize, messages: u64) -> Value {
    let per_child = messages / CHILDREN as u64;
    let (done_tx, mut done_rx) = mpsc::channel(SMALL_QUEUE);
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (finished_tx, finished_rx) = oneshot::channel::<()>();
    // The parent: owns the children's senders, sends round-robin, waits for every child.
    let parent = tokio::spawn(async move {
        let mut children = Vec::with_capacity(CHILDREN);
        let mut tasks = Vec::with_capacity(CHILDREN);
        for _ in 0..CHILDREN {
            let (tx, rx) = mpsc::channel(capacity);
            children.push(tx);
            tasks.push(tokio::spawn(teller_child(rx, per_child, done_tx.clone())));
        }
        drop(done_tx);
        let _ = go_rx.await;
        for n in 0..per_child * CHILDREN as u64 {
            let child = &children[n as usize % CHILDREN];
            child.send(n).await.expect("a tell child runs");
        }
        for _ in 0..CHILDREN {
            done_rx.recv().await.expect("a tell child reports");
        }
        let _ = finished_tx.send(());
        drop(children);
        for task in tasks {
            task.await.expect("a tell child ends");
        }
    });
    tokio::task::yield_now().await;
    let start = Instant::now();
    let _ = go_tx.send(());
    finished_rx.await.expect("the parent reports");
    let elapsed = start.elapsed();
    parent.await.expect("the parent ends");
    Value::Measured(per(elapsed, per_child * CHILDREN as u64, 1.0))
}

// ---- ask -------------------------------------------------------------------------------------

/// The question of the ask workload.
struct Ping;

async fn ask(round_trips: u64) -> Value {
    let (tx, mut rx) = mpsc::channel::<(Ping, oneshot::Sender<u64>)>(SMALL_QUEUE);
    let echo = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some((_q, reply)) = rx.recv().await {
            n += 1;
            let _ = reply.send(n);
        }
    });
    let start = Instant::now();
    for _ in 0..round_trips {
        let (reply, answer) = oneshot::channel();
        if tx.send((Ping, reply)).await.is_err() {
            panic!("the echo runs");
        }
        std::hint::black_box(answer.await.expect("the echo answers"));
    }
    let elapsed = start.elapsed();
    drop(tx);
    echo.await.expect("the echo ends");
    Value::Measured(per(elapsed, round_trips, 1.0))
}

// ---- fan-in ----------------------------------------------------------------------------------

/// The parent's one queue in the fan-in workload: the order to start, and UP messages.
enum FanInMsg {
    Fire(u64, oneshot::Sender<u64>),
    Up(u64),
}

async fn fan_in(per_child: u64) -> Value {
    let (parent_tx, mut parent_rx) = mpsc::channel::<FanInMsg>(SMALL_QUEUE);
    let mut children = Vec::with_capacity(CHILDREN);
    let mut tasks = Vec::with_capacity(CHILDREN);
    for _ in 0..CHILDREN {
        let (tx, mut rx) = mpsc::channel::<u64>(SMALL_QUEUE);
        let up = parent_tx.clone();
        children.push(tx);
        tasks.push(tokio::spawn(async move {
            while let Some(n) = rx.recv().await {
                for i in 0..n {
                    if up.send(FanInMsg::Up(i)).await.is_err() {
                        return;
                    }
                }
            }
        }));
    }
    let parent = tokio::spawn(async move {
        let (mut expected, mut got, mut reply) = (0u64, 0u64, None);
        while let Some(msg) = parent_rx.recv().await {
            match msg {
                FanInMsg::Fire(n, r) => {
                    expected = n * children.len() as u64;
                    reply = Some(r);
                    for child in &children {
                        let _ = child.send(n).await;
                    }
                }
                FanInMsg::Up(v) => {
                    std::hint::black_box(v);
                    got += 1;
                    if got == expected {
                        let _ = reply.take().expect("fired").send(got);
                        return;
                    }
                }
            }
        }
    });
    let start = Instant::now();
    let (reply, answer) = oneshot::channel();
    if parent_tx
        .send(FanInMsg::Fire(per_child, reply))
        .await
        .is_err()
    {
        panic!("the parent runs");
    }
    let got = answer.await.expect("the parent reports");
    let elapsed = start.elapsed();
    drop(parent_tx);
    parent.await.expect("the parent ends");
    for task in tasks {
        task.await.expect("a fan-in child ends");
    }
    Value::Measured(per(elapsed, got, 1.0))
}

// ---- contended -------------------------------------------------------------------------------

async fn contended(messages: u64) -> Value {
    let expected = messages / SENDERS as u64 * SENDERS as u64;
    let (tx, mut rx) = mpsc::channel::<u64>(SMALL_QUEUE);
    let receiver = tokio::spawn(async move {
        let mut got = 0u64;
        while got < expected {
            std::hint::black_box(rx.recv().await.expect("the senders run"));
            got += 1;
        }
        got
    });
    let (go, senders) = start_senders(messages, |share| {
        let tx = tx.clone();
        async move {
            for i in 0..share {
                tx.send(i).await.expect("the receiver runs");
            }
        }
    });
    drop(tx);
    let start = Instant::now();
    go.send_replace(true);
    let got = receiver.await.expect("the receiver ends");
    let elapsed = start.elapsed();
    for sender in senders {
        sender.await.expect("a sender ends");
    }
    Value::Measured(per(elapsed, got, 1.0))
}

// ---- spawn and idle memory ---------------------------------------------------------------------

/// UP from a child that has started.
struct Entered;

/// `n` idle children, each with its queue and a child of one stop token, on one tracker.
struct Idle {
    stop: CancellationToken,
    tracker: TaskTracker,
    queues: Vec<mpsc::Sender<u64>>,
}

impl Idle {
    async fn stop(self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        drop(self.queues);
    }
}

/// Starts `n` idle children from a parent task and waits until all have entered.
async fn start_idle(n: usize) -> Idle {
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (up_tx, mut up_rx) = mpsc::channel(SMALL_QUEUE);
    let (stop2, tracker2) = (stop.clone(), tracker.clone());
    let parent = tokio::spawn(async move {
        let mut queues = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, mut rx) = mpsc::channel::<u64>(SMALL_QUEUE);
            let (up, token) = (up_tx.clone(), stop2.child_token());
            tracker2.spawn(async move {
                if up.send(Entered).await.is_err() {
                    return;
                }
                drop(up);
                loop {
                    tokio::select! {
                        () = token.cancelled() => break,
                        msg = rx.recv() => if msg.is_none() { break },
                    }
                }
            });
            queues.push(tx);
        }
        let mut entered = 0;
        while entered < n {
            let Some(Entered) = up_rx.recv().await else {
                break;
            };
            entered += 1;
        }
        assert_eq!(entered, n, "every idle child entered");
        queues
    });
    let queues = parent.await.expect("the parent ends");
    Idle {
        stop,
        tracker,
        queues,
    }
}

async fn spawn(n: usize) -> Value {
    let start = Instant::now();
    let idle = start_idle(n).await;
    let elapsed = start.elapsed();
    idle.stop().await;
    Value::Measured(per(elapsed, n as u64, 1_000.0))
}

// ---- shutdown --------------------------------------------------------------------------------

/// One node of a tree: starts its children, then idles until its token is cancelled; then
/// it waits for its children and ends.
fn node(
    depth: u32,
    breadth: usize,
    token: CancellationToken,
    entered: Arc<Countdown>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let (_tx, mut rx) = mpsc::channel::<u64>(SMALL_QUEUE);
        let tracker = TaskTracker::new();
        if depth > 0 {
            for _ in 0..breadth {
                tracker.spawn(node(
                    depth - 1,
                    breadth,
                    token.child_token(),
                    Arc::clone(&entered),
                ));
            }
        }
        tracker.close();
        entered.count();
        drop(entered);
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                msg = rx.recv() => if msg.is_none() { break },
            }
        }
        tracker.wait().await;
    })
}

async fn shutdown(depth: u32, breadth: usize) -> Value {
    let token = CancellationToken::new();
    let entered = Arc::new(Countdown::new(tree_size(depth, breadth)));
    let root = tokio::spawn(node(depth, breadth, token.clone(), Arc::clone(&entered)));
    entered.wait().await;
    let start = Instant::now();
    token.cancel();
    root.await.expect("the root ends");
    Value::Measured(per(start.elapsed(), 1, 1_000_000.0))
}

// ---- periodic --------------------------------------------------------------------------------

/// One periodic task: an interval loop of `ticks` ticks that adds how late each was to
/// `lateness` as it ends.
pub(crate) async fn run_ticker(ticks: u64, lateness: Arc<Mutex<Vec<u64>>>) {
    let mut interval = tokio::time::interval_at(Instant::now() + PERIOD, PERIOD);
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut late = Vec::with_capacity(ticks as usize);
    for _ in 0..ticks {
        let due = interval.tick().await;
        late.push(due.elapsed().as_nanos() as u64);
    }
    lateness.lock().expect("no panic").extend(late);
}

async fn periodic(tasks: usize, run_for: Duration) -> Figures {
    let ticks = ticks(run_for);
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(tasks * ticks as usize)));
    let cpu = probe::cpu_time();
    let tracker = TaskTracker::new();
    for _ in 0..tasks {
        tracker.spawn(run_ticker(ticks, Arc::clone(&lateness)));
    }
    tracker.close();
    tracker.wait().await;
    let cpu = probe::cpu_time().saturating_sub(cpu);
    let mut lateness = std::mem::take(&mut *lateness.lock().expect("no panic"));
    periodic_figures(cpu, &mut lateness)
}
