//! What is measured: the workloads, their metrics, the runtime flavours, the sizes of a
//! full and a quick run, and the shape every system implements.

use std::future::Future;
use std::time::Duration;

use clap::ValueEnum;

/// A workload; each yields one or more [`Metric`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub(crate) enum Workload {
    /// A parent sends to 100 children round-robin.
    Tell,
    /// One sender, request-reply round trips.
    Ask,
    /// 100 children send UP to one parent.
    FanIn,
    /// 16 tasks send to one unit at once.
    Contended,
    /// Start 10 000 children and wait until all have entered; memory per idle child.
    Spawn,
    /// Build a tree, then stop its root gracefully.
    Shutdown,
    /// 10 000 periodic tasks every 10 ms.
    Periodic,
    /// The relay's pipeline: TCP → processor → fan-out → sinks.
    Relay,
}

impl Workload {
    /// Every workload, in the order of the report.
    pub(crate) const ALL: [Workload; 8] = [
        Workload::Tell,
        Workload::Ask,
        Workload::FanIn,
        Workload::Contended,
        Workload::Spawn,
        Workload::Shutdown,
        Workload::Periodic,
        Workload::Relay,
    ];

    /// The metrics this workload yields.
    pub(crate) fn metrics(self) -> &'static [Metric] {
        use Metric::*;
        match self {
            Workload::Tell => &[Tell64, TellLarge],
            Workload::Ask => &[Ask],
            Workload::FanIn => &[FanIn],
            Workload::Contended => &[Contended],
            Workload::Spawn => &[Spawn, IdleMemory],
            Workload::Shutdown => &[ShutdownD3B10, ShutdownD5B5, ShutdownD10B2, ShutdownFlat],
            Workload::Periodic => &[PeriodicCpu, PeriodicP50, PeriodicP99],
            Workload::Relay => &[Relay],
        }
    }
}

/// One figure of the report: a workload, or one variant or measure of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Metric {
    /// Tell with every child's queue bounded at 64.
    Tell64,
    /// Tell with queues large enough never to fill.
    TellLarge,
    /// Ask round trip.
    Ask,
    /// Fan-in to one parent.
    FanIn,
    /// Many senders to one unit at once.
    Contended,
    /// Spawn until entered, per child.
    Spawn,
    /// Anonymous resident memory (heap and stacks, not code) per idle child.
    IdleMemory,
    /// Graceful stop of a tree of depth 3, breadth 10.
    ShutdownD3B10,
    /// Graceful stop of a tree of depth 5, breadth 5.
    ShutdownD5B5,
    /// Graceful stop of a tree of depth 10, breadth 2.
    ShutdownD10B2,
    /// Graceful stop of a root with many children.
    ShutdownFlat,
    /// CPU time used by the periodic tasks.
    PeriodicCpu,
    /// Median lateness of a periodic tick.
    PeriodicP50,
    /// 99th percentile lateness of a periodic tick.
    PeriodicP99,
    /// Frames per second through the relay pipeline.
    Relay,
}

impl Metric {
    /// A short name, used in the table, the JSON and the chart file names.
    pub(crate) fn name(self, scale: &Scale) -> String {
        use Metric::*;
        match self {
            Tell64 => format!("tell (queue {})", SMALL_QUEUE),
            TellLarge => format!("tell (queue {})", LARGE_QUEUE),
            Ask => "ask".into(),
            FanIn => "fan-in".into(),
            Contended => format!("contended ({SENDERS} senders)"),
            Spawn => format!("spawn {}", scale.spawn_children),
            IdleMemory => "idle memory".into(),
            ShutdownD3B10 => "shutdown depth 3 × breadth 10".into(),
            ShutdownD5B5 => "shutdown depth 5 × breadth 5".into(),
            ShutdownD10B2 => "shutdown depth 10 × breadth 2".into(),
            ShutdownFlat => format!("shutdown flat {}", scale.shutdown_flat),
            PeriodicCpu => "periodic CPU".into(),
            PeriodicP50 => "periodic lateness p50".into(),
            PeriodicP99 => "periodic lateness p99".into(),
            Relay => "relay".into(),
        }
    }

    /// A file-name-safe identifier.
    pub(crate) fn slug(self) -> &'static str {
        use Metric::*;
        match self {
            Tell64 => "tell-64",
            TellLarge => "tell-large",
            Ask => "ask",
            FanIn => "fan-in",
            Contended => "contended",
            Spawn => "spawn",
            IdleMemory => "idle-memory",
            ShutdownD3B10 => "shutdown-d3b10",
            ShutdownD5B5 => "shutdown-d5b5",
            ShutdownD10B2 => "shutdown-d10b2",
            ShutdownFlat => "shutdown-flat",
            PeriodicCpu => "periodic-cpu",
            PeriodicP50 => "periodic-p50",
            PeriodicP99 => "periodic-p99",
            Relay => "relay",
        }
    }

    /// The unit of the figure.
    pub(crate) fn unit(self) -> &'static str {
        use Metric::*;
        match self {
            Tell64 | TellLarge | FanIn | Contended => "ns/msg",
            Ask => "ns/round trip",
            Spawn => "µs/child",
            IdleMemory => "B/child",
            ShutdownD3B10 | ShutdownD5B5 | ShutdownD10B2 | ShutdownFlat => "ms",
            PeriodicCpu => "CPU ms",
            PeriodicP50 | PeriodicP99 => "µs",
            Relay => "frames/s",
        }
    }

    /// Whether a larger figure is better (throughput); otherwise it is a cost.
    pub(crate) fn higher_is_better(self) -> bool {
        matches!(self, Metric::Relay)
    }

    /// The figure's cost relative to a reference figure (hand-written tokio's, or another
    /// build's): above 1 is worse than the reference.
    pub(crate) fn ratio(self, value: f64, reference: f64) -> f64 {
        if self.higher_is_better() {
            reference / value
        } else {
            value / reference
        }
    }
}

/// The capacity of the bounded queues: taskthread's default, and kameo's.
pub(crate) const SMALL_QUEUE: usize = 64;
/// The capacity of the "large" queues: more than a child ever holds in the tell workload.
pub(crate) const LARGE_QUEUE: usize = 65_536;
/// Children in the tell and fan-in workloads.
pub(crate) const CHILDREN: usize = 100;
/// Tasks sending at once in the contended workload.
pub(crate) const SENDERS: usize = 16;
/// The period of the periodic workload.
pub(crate) const PERIOD: Duration = Duration::from_millis(10);

/// Which tokio runtime runs a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Flavour {
    /// `new_current_thread`.
    CurrentThread,
    /// `new_multi_thread` with one worker per core.
    MultiThread,
}

impl Flavour {
    /// Both flavours, in the order of the report.
    pub(crate) const ALL: [Flavour; 2] = [Flavour::CurrentThread, Flavour::MultiThread];

    /// The name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Flavour::CurrentThread => "current-thread",
            Flavour::MultiThread => "multi-thread",
        }
    }

    /// Parses [`Flavour::name`].
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Worker threads of the multi-thread runtime (and actix arbiters): one per core.
    pub(crate) fn workers() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// A fresh tokio runtime of this flavour.
    pub(crate) fn runtime(self) -> tokio::runtime::Runtime {
        let mut builder = match self {
            Flavour::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavour::MultiThread => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(Self::workers());
                b
            }
        };
        builder.enable_all().build().expect("a tokio runtime")
    }

    /// Runs `make()` as a task on a fresh runtime of this flavour (so on the multi-thread
    /// runtime the driver is on a worker, like the units it drives), and waits for it.
    pub(crate) fn block_on<F>(self, make: impl FnOnce() -> F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let rt = self.runtime();
        let out = rt.block_on(async move { tokio::spawn(make()).await.expect("the driver task") });
        rt.shutdown_timeout(Duration::from_secs(5));
        out
    }
}

/// How big each workload is.
#[derive(Debug, Clone)]
pub(crate) struct Scale {
    /// Whether this is the reduced `--quick` run.
    pub(crate) quick: bool,
    /// Messages per tell round, over all children.
    pub(crate) tell_messages: u64,
    /// Round trips per ask round.
    pub(crate) asks: u64,
    /// Messages each child sends UP per fan-in round.
    pub(crate) fan_in_per_child: u64,
    /// Messages per contended round, over all senders.
    pub(crate) contended_messages: u64,
    /// Children spawned by the spawn workload (and held idle for memory).
    pub(crate) spawn_children: usize,
    /// Children of the flat shutdown tree.
    pub(crate) shutdown_flat: usize,
    /// Tasks of the periodic workload.
    pub(crate) periodic_tasks: usize,
    /// How long the periodic workload runs.
    pub(crate) periodic_for: Duration,
    /// TCP clients of the relay workload.
    pub(crate) relay_clients: usize,
    /// Frames each client sends.
    pub(crate) relay_frames: u64,
    /// Payload bytes per frame.
    pub(crate) relay_frame_len: usize,
    /// In-process sinks every frame goes to.
    pub(crate) relay_sinks: usize,
}

impl Scale {
    /// The sizes of a full run, as published in `docs/benchmarks.md`.
    pub(crate) fn full() -> Self {
        Self {
            quick: false,
            tell_messages: 1_000_000,
            asks: 200_000,
            fan_in_per_child: 10_000,
            contended_messages: 1_000_000,
            spawn_children: 10_000,
            shutdown_flat: 100_000,
            periodic_tasks: 10_000,
            periodic_for: Duration::from_secs(2),
            relay_clients: 20,
            relay_frames: 5_000,
            relay_frame_len: 1024,
            relay_sinks: 2,
        }
    }

    /// A reduced run that finishes in under two minutes.
    pub(crate) fn quick() -> Self {
        Self {
            quick: true,
            tell_messages: 200_000,
            asks: 50_000,
            fan_in_per_child: 2_000,
            contended_messages: 200_000,
            spawn_children: 10_000,
            shutdown_flat: 20_000,
            periodic_tasks: 10_000,
            periodic_for: Duration::from_millis(500),
            relay_clients: 20,
            relay_frames: 1_000,
            relay_frame_len: 1024,
            relay_sinks: 2,
        }
    }

    /// The shutdown trees: (metric, depth, breadth). Depth 1 is a root with `breadth`
    /// children.
    pub(crate) fn shutdown_trees(&self) -> [(Metric, u32, usize); 4] {
        [
            (Metric::ShutdownD3B10, 3, 10),
            (Metric::ShutdownD5B5, 5, 5),
            (Metric::ShutdownD10B2, 10, 2),
            (Metric::ShutdownFlat, 1, self.shutdown_flat),
        ]
    }
}

/// A system's figure for one metric in one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    /// Measured, in the metric's unit.
    Measured(f64),
    /// The system cannot run this as specified: why.
    NotApplicable(&'static str),
}

/// The figures of one run of one workload.
pub(crate) type Figures = Vec<(Metric, Value)>;

/// Marks every metric of `workload` not applicable for `why`.
pub(crate) fn not_applicable(workload: Workload, why: &'static str) -> Figures {
    workload
        .metrics()
        .iter()
        .map(|&m| (m, Value::NotApplicable(why)))
        .collect()
}

/// A framework under test. Each implements the workloads it supports and says why for the
/// others; every figure comes from a fresh runtime (or actix `System`).
pub(crate) trait System: Sync {
    /// The name in the report.
    fn name(&self) -> &'static str;

    /// A note for the table (how it runs, what it lacks), if any.
    fn note(&self) -> Option<&'static str> {
        None
    }

    /// Runs `workload` once on `flavour`. The idle-memory metric is left to
    /// [`System::idle_memory`], which runs in a fresh process.
    fn run(&self, workload: Workload, flavour: Flavour, scale: &Scale) -> Figures;

    /// Why idle memory cannot be measured for this system on `flavour`, if it cannot.
    fn idle_memory_not_applicable(&self, _flavour: Flavour) -> Option<&'static str> {
        None
    }

    /// Anonymous resident memory ([`resident_anon_bytes`](crate::probe::resident_anon_bytes))
    /// before and after starting `n` idle children that have all entered, in a process that
    /// has done nothing else (called only when [`System::idle_memory_not_applicable`] is
    /// `None`).
    fn idle_memory(&self, flavour: Flavour, n: usize) -> (u64, u64);
}

/// A future a workload returns, boxed so that systems can list their workloads as plain
/// function pointers.
pub(crate) type Run<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// The periodic workload: (tasks, duration) to its figures.
pub(crate) type PeriodicRun = fn(usize, Duration) -> Run<Figures>;

/// The workloads of a system that runs on the shared tokio runtime, as functions; `Err`
/// says why a workload is not applicable. [`Suite::run`] is the dispatch they all share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Suite {
    /// Tell with queues of the given capacity: (capacity, messages).
    pub(crate) tell: fn(usize, u64) -> Run<Value>,
    /// Why there is no tell with a bounded queue of 64, if there is none.
    pub(crate) no_bounded_tell: Option<&'static str>,
    /// Ask: round trips.
    pub(crate) ask: fn(u64) -> Run<Value>,
    /// Fan-in: messages per child.
    pub(crate) fan_in: fn(u64) -> Run<Value>,
    /// Contended: messages over all senders.
    pub(crate) contended: fn(u64) -> Run<Value>,
    /// Spawn: children.
    pub(crate) spawn: fn(usize) -> Run<Value>,
    /// Shutdown: (depth, breadth).
    pub(crate) shutdown: fn(u32, usize) -> Run<Value>,
    /// Periodic: (tasks, duration).
    pub(crate) periodic: Result<PeriodicRun, &'static str>,
    /// Relay.
    pub(crate) relay: Result<fn(Scale) -> Run<Value>, &'static str>,
}

impl Suite {
    /// Runs `workload` once on a fresh runtime of `flavour`.
    pub(crate) fn run(&self, workload: Workload, flavour: Flavour, scale: &Scale) -> Figures {
        let s = scale.clone();
        match workload {
            Workload::Tell => {
                let (tell, m) = (self.tell, scale.tell_messages);
                let small = match self.no_bounded_tell {
                    Some(why) => Value::NotApplicable(why),
                    None => flavour.block_on(move || tell(SMALL_QUEUE, m)),
                };
                let large = flavour.block_on(move || tell(LARGE_QUEUE, m));
                vec![(Metric::Tell64, small), (Metric::TellLarge, large)]
            }
            Workload::Ask => {
                let ask = self.ask;
                vec![(Metric::Ask, flavour.block_on(move || ask(s.asks)))]
            }
            Workload::FanIn => {
                let fan_in = self.fan_in;
                let value = flavour.block_on(move || fan_in(s.fan_in_per_child));
                vec![(Metric::FanIn, value)]
            }
            Workload::Contended => {
                let contended = self.contended;
                let value = flavour.block_on(move || contended(s.contended_messages));
                vec![(Metric::Contended, value)]
            }
            Workload::Spawn => {
                let spawn = self.spawn;
                let value = flavour.block_on(move || spawn(s.spawn_children));
                vec![(Metric::Spawn, value)]
            }
            Workload::Shutdown => {
                let shutdown = self.shutdown;
                scale
                    .shutdown_trees()
                    .into_iter()
                    .map(|(metric, depth, breadth)| {
                        (metric, flavour.block_on(move || shutdown(depth, breadth)))
                    })
                    .collect()
            }
            Workload::Periodic => match self.periodic {
                Ok(periodic) => {
                    flavour.block_on(move || periodic(s.periodic_tasks, s.periodic_for))
                }
                Err(why) => not_applicable(workload, why),
            },
            Workload::Relay => match self.relay {
                Ok(relay) => vec![(Metric::Relay, flavour.block_on(move || relay(s)))],
                Err(why) => not_applicable(workload, why),
            },
        }
    }
}

/// Why the peers have no relay figure.
pub(crate) const RELAY_TWO_SIDES: &str =
    "the relay pipeline is written for taskthread and plain tokio only";

/// Per-unit time in `unit_ns` units: elapsed over `count`.
pub(crate) fn per(elapsed: Duration, count: u64, unit_ns: f64) -> f64 {
    elapsed.as_nanos() as f64 / count as f64 / unit_ns
}

/// Units in a tree of `depth` levels below its root, each node with `breadth` children.
pub(crate) fn tree_size(depth: u32, breadth: usize) -> usize {
    (0..=depth).map(|level| breadth.pow(level)).sum()
}

/// Ticks of one periodic task in `run_for`.
pub(crate) fn ticks(run_for: Duration) -> u64 {
    (run_for.as_nanos() / PERIOD.as_nanos()).max(1) as u64
}

/// The figures of the periodic workload: CPU time, and the lateness percentiles of all
/// ticks (nanosecond samples, reported in µs).
pub(crate) fn periodic_figures(cpu: Duration, lateness_ns: &mut [u64]) -> Figures {
    let p50 = crate::probe::percentile(lateness_ns, 50.0);
    let p99 = crate::probe::percentile(lateness_ns, 99.0);
    vec![
        (
            Metric::PeriodicCpu,
            Value::Measured(cpu.as_secs_f64() * 1_000.0),
        ),
        (Metric::PeriodicP50, Value::Measured(p50 as f64 / 1_000.0)),
        (Metric::PeriodicP99, Value::Measured(p99 as f64 / 1_000.0)),
    ]
}

/// Starts [`SENDERS`] tasks that each wait for the go signal, then run the loop `sender`
/// makes for its share of `messages` (its argument). Returns the go signal and the tasks,
/// to be awaited after the measurement.
pub(crate) fn start_senders<F, Fut>(
    messages: u64,
    mut sender: F,
) -> (
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<()>>,
)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let share = messages / SENDERS as u64;
    let (go, ready) = tokio::sync::watch::channel(false);
    let senders = (0..SENDERS)
        .map(|_| {
            let (run, mut ready) = (sender(share), ready.clone());
            tokio::spawn(async move {
                ready.wait_for(|go| *go).await.expect("the go signal");
                run.await;
            })
        })
        .collect();
    (go, senders)
}

/// Counts units that have started, for the tree builds (which are not timed): every system
/// counts the same way, so building a tree needs no UP path.
#[derive(Debug)]
pub(crate) struct Countdown {
    left: std::sync::atomic::AtomicUsize,
    zero: tokio::sync::Notify,
}

impl Countdown {
    /// A countdown from `n`.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            left: std::sync::atomic::AtomicUsize::new(n),
            zero: tokio::sync::Notify::new(),
        }
    }

    /// Counts one; the last one wakes [`Countdown::wait`].
    pub(crate) fn count(&self) {
        if self.left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.zero.notify_one();
        }
    }

    /// Waits until the count has reached zero.
    pub(crate) async fn wait(&self) {
        while self.left.load(std::sync::atomic::Ordering::Acquire) > 0 {
            self.zero.notified().await;
        }
    }
}
