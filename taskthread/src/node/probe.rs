//! [`Probe`]: what a thread records of itself while it is watched — messages handled per
//! kind, sampled handler and queue-wait times, the handler running now, its tasks'
//! lateness, and the stage of its stop — and [`Extra`], the rarely used part of a node
//! where the probe and the other late arrivals live.
//!
//! Only the thread's own loop writes a probe, so counts are a load and a store (no locked
//! instruction), and nothing is written unless [`recording`](crate::record::recording)
//! says someone watches. Watchers read it at any time: every figure is one atomic.

// The reading side is used by the `watch` feature only.
#![cfg_attr(not(feature = "watch"), allow(dead_code))]

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use super::ThreadMeta;
use crate::lock::lock;
use crate::path::LazyPath;
#[cfg(feature = "metrics")]
use crate::record;
use crate::record::FIRST_SAMPLE_EVERY;

/// The part of a node most threads never need, made on first use: an extension's
/// attachment (a worker pool's control), a supervised thread's restart budget and count,
/// and the probe of a watched thread.
#[derive(Default)]
pub(crate) struct Extra {
    pub(super) attachment: OnceLock<Arc<dyn Any + Send + Sync>>,
    pub(super) budget: Mutex<Option<Budget>>,
    /// How many lives the thread has had after its first (a supervisor starting it again).
    pub(super) restarts: AtomicU32,
    /// Inline: a thread that is watched has it made once its stop begins, even if it
    /// handled nothing, and that should cost one allocation (of `Extra`), not more.
    pub(super) probe: OnceLock<Probe>,
}

/// A supervised thread's restart budget: at most `max` restarts in any `window`, and when
/// the recent ones happened.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    pub(crate) max: u32,
    pub(crate) window: Duration,
    pub(crate) recent: VecDeque<Instant>,
}

impl Budget {
    /// How many restarts count against the limit at `now`.
    pub(crate) fn used(&self, now: Instant) -> u32 {
        let used = self
            .recent
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < self.window)
            .count();
        u32::try_from(used).unwrap_or(u32::MAX)
    }
}

impl Extra {
    pub(super) fn budget(&self) -> Option<Budget> {
        lock(&self.budget).clone()
    }

    pub(super) fn set_budget(&self, budget: Budget) {
        *lock(&self.budget) = Some(budget);
    }
}

/// What a handler handles: the kinds a probe counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A DOWN message, by its index in the thread's DOWN types.
    Down(usize),
    /// An UP message from a child, a stream item or a job's output.
    Up,
    /// A child's exit report.
    Exit,
    /// A supervised child's restart.
    Restart,
    /// A run of a `#[rescheduling]` task, by its index.
    Task(usize),
}

impl Kind {
    /// What it is called for a thread of this type: the DOWN message's type, the task's
    /// name, or what the kind holds.
    pub(crate) fn name(self, meta: &ThreadMeta) -> &'static str {
        match self {
            Self::Down(i) => meta.down_types.get(i).copied().unwrap_or("?"),
            Self::Up => "UP messages",
            Self::Exit => "child exits",
            Self::Restart => "child restarts",
            Self::Task(i) => meta.tasks.get(i).map_or("?", |t| t.name),
        }
    }

    /// The kind as a metric label.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Down(_) => "down",
            Self::Up => "up",
            Self::Exit => "exit",
            Self::Restart => "restart",
            Self::Task(_) => "task",
        }
    }

    fn index(self, downs: usize) -> usize {
        match self {
            Self::Down(i) => i,
            Self::Up => downs,
            Self::Exit => downs + 1,
            Self::Restart => downs + 2,
            Self::Task(i) => downs + 3 + i,
        }
    }

    fn from_index(index: usize, downs: usize) -> Self {
        match index.checked_sub(downs) {
            None => Self::Down(index),
            Some(0) => Self::Up,
            Some(1) => Self::Exit,
            Some(2) => Self::Restart,
            Some(n) => Self::Task(n - 3),
        }
    }
}

/// Where a thread's stop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum StopPhase {
    /// Not stopping (or stopping began before anyone watched).
    None = 0,
    /// Handling what is queued; the queue takes nothing new.
    Draining = 1,
    /// Stopping its children, stage by stage.
    Children = 2,
    /// Running its `exit` hook.
    ExitHook = 3,
    /// Waiting for the tasks of its children and jobs to be gone.
    Reaping = 4,
}

impl StopPhase {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Draining,
            2 => Self::Children,
            3 => Self::ExitHook,
            4 => Self::Reaping,
            _ => Self::None,
        }
    }
}

/// The number of buckets of a [`Histogram`].
const BUCKETS: usize = 64;

/// A histogram of durations in half-octave buckets from 1 µs (about ±20 %: enough to tell
/// a p99 of 3 ms from one of 30 ms), counted by a single writer.
struct Histogram([AtomicU32; BUCKETS]);

impl Histogram {
    fn new() -> Self {
        Self(std::array::from_fn(|_| AtomicU32::new(0)))
    }

    /// Bucket 0 holds everything under 1 024 ns; bucket `b` above it holds durations from
    /// `2^(10 + (b-1)/2)` ns, the upper half of each octave in the even buckets.
    fn bucket(nanos: u64) -> usize {
        if nanos < 1024 {
            return 0;
        }
        let log = u64::from(63 - nanos.leading_zeros());
        let upper_half = (nanos >> (log - 1)) & 1;
        (((log - 10) * 2 + upper_half + 1) as usize).min(BUCKETS - 1)
    }

    /// The largest duration of bucket `b`.
    fn upper(b: usize) -> Duration {
        if b == 0 {
            return Duration::from_nanos(1023);
        }
        let log = 10 + (b as u32 - 1) / 2;
        let base = 1u64 << log;
        let upper = if (b - 1).is_multiple_of(2) {
            base + base / 2
        } else {
            base * 2
        };
        Duration::from_nanos(upper - 1)
    }

    fn record(&self, d: Duration) {
        let slot = &self.0[Self::bucket(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))];
        let n = slot.load(Ordering::Relaxed);
        slot.store(n.saturating_add(1), Ordering::Relaxed);
    }

    /// The 50th and 99th percentiles (each the top of its bucket), if anything was recorded.
    fn percentiles(&self) -> Option<Percentiles> {
        let counts: Vec<u64> = self
            .0
            .iter()
            .map(|c| u64::from(c.load(Ordering::Relaxed)))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let at = |p: u64| {
            // The rank of the percentile, from 1.
            let rank = (total * p).div_ceil(100).max(1);
            let mut seen = 0;
            for (b, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return Self::upper(b);
                }
            }
            Self::upper(BUCKETS - 1)
        };
        Some(Percentiles {
            samples: total,
            p50: at(50),
            p99: at(99),
        })
    }
}

/// Percentiles of a sampled duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Percentiles {
    /// How many samples they are taken from.
    pub(crate) samples: u64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

/// The figures of one kind of message.
struct KindStats {
    handled: AtomicU64,
    /// Made on the first sample: a thread that handles nothing while watched keeps none.
    times: OnceLock<Box<Times>>,
    /// The `metrics` crate's histograms of its handler and queue-wait times, registered on
    /// the first sample.
    #[cfg(feature = "metrics")]
    metrics: OnceLock<Box<[::metrics::Histogram; 2]>>,
}

struct Times {
    handler: Histogram,
    wait: Histogram,
}

/// The figures of one `#[rescheduling]` task.
#[derive(Default)]
struct TaskStats {
    /// How late its last run started, in nanoseconds.
    late_last: AtomicU64,
    late_max: AtomicU64,
    /// When it is due next ([`Probe::stamp`]), 0 if it is not scheduled.
    next: AtomicU64,
}

/// What a watched thread records of itself. See the module's docs.
pub(crate) struct Probe {
    /// Instants are kept as nanoseconds since this, plus one (0 is "none").
    born: Instant,
    /// The thread's type, for the names of its kinds.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    meta: &'static ThreadMeta,
    /// The thread's path, for the labels of its metrics (built only for them).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    path: LazyPath,
    /// The DOWN types, then UP, exits, restarts, then the tasks; made on the first handler.
    kinds: OnceLock<Box<[KindStats]>>,
    downs: usize,
    /// One per task; made on the first run.
    tasks: OnceLock<Box<[TaskStats]>>,
    /// The kind (its index plus one) of the handler running now; 0 between handlers.
    current: AtomicU32,
    /// One message in this many (a power of two) is timed, unless its queue sampled it.
    every: AtomicU64,
    /// The stamp of the sampled DOWN message just taken off the queue.
    taken_stamp: AtomicU64,
    /// When the sampled handler running now began.
    sample_start: AtomicU64,
    stop_phase: AtomicU8,
    stop_stage: AtomicU32,
    stop_began: AtomicU64,
    stop_deadline: AtomicU64,
}

/// A single-writer increment.
#[inline]
fn bump(counter: &AtomicU64) -> u64 {
    let n = counter.load(Ordering::Relaxed) + 1;
    counter.store(n, Ordering::Relaxed);
    n
}

/// A single-writer take: the value, leaving 0 (no locked exchange).
#[inline]
fn take(slot: &AtomicU64) -> u64 {
    let v = slot.load(Ordering::Relaxed);
    if v != 0 {
        slot.store(0, Ordering::Relaxed);
    }
    v
}

impl Probe {
    pub(crate) fn new(meta: &'static ThreadMeta, path: LazyPath) -> Self {
        Self {
            born: Instant::now(),
            meta,
            path,
            kinds: OnceLock::new(),
            downs: meta.down_types.len(),
            tasks: OnceLock::new(),
            current: AtomicU32::new(0),
            every: AtomicU64::new(FIRST_SAMPLE_EVERY),
            taken_stamp: AtomicU64::new(0),
            sample_start: AtomicU64::new(0),
            stop_phase: AtomicU8::new(0),
            stop_stage: AtomicU32::new(0),
            stop_began: AtomicU64::new(0),
            stop_deadline: AtomicU64::new(0),
        }
    }

    fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.born).as_nanos()).unwrap_or(u64::MAX - 1)
            + 1
    }

    fn instant(&self, stamp: u64) -> Option<Instant> {
        (stamp != 0).then(|| self.born + Duration::from_nanos(stamp - 1))
    }

    fn kinds(&self) -> &[KindStats] {
        self.kinds.get_or_init(|| {
            (0..self.downs + 3 + self.meta.tasks.len())
                .map(|_| KindStats {
                    handled: AtomicU64::new(0),
                    times: OnceLock::new(),
                    #[cfg(feature = "metrics")]
                    metrics: OnceLock::new(),
                })
                .collect()
        })
    }

    fn tasks(&self) -> &[TaskStats] {
        self.tasks.get_or_init(|| {
            self.meta
                .tasks
                .iter()
                .map(|_| TaskStats::default())
                .collect()
        })
    }

    fn stats(&self, kind: Kind) -> Option<&KindStats> {
        self.kinds().get(kind.index(self.downs))
    }

    /// A sampled DOWN message, queued at `queued`, was just taken off the queue: the
    /// handler that begins next times its wait and itself.
    pub(crate) fn taken_sample(&self, queued: Instant) {
        self.taken_stamp
            .store(self.stamp(queued), Ordering::Relaxed);
    }

    /// A handler of `kind` begins. DOWN messages are timed when their queue sampled them,
    /// task runs always (see [`begin_task`](Self::begin_task)), the others one in
    /// [`every`](Self::sample_every).
    #[inline]
    pub(crate) fn begin(&self, kind: Kind) {
        self.begin_at(kind, None);
    }

    /// The run of task `index`, due at `due`, begins: one clock reading for how late it
    /// began and for the start of its time.
    pub(crate) fn begin_task(&self, index: usize, due: Instant) {
        let now = Instant::now();
        self.task_started(index, now.saturating_duration_since(due));
        self.begin_at(Kind::Task(index), Some(now));
    }

    /// As [`begin`](Self::begin), with the clock read already if `now` says when.
    #[inline]
    fn begin_at(&self, kind: Kind, now: Option<Instant>) {
        let Some(stats) = self.stats(kind) else {
            return;
        };
        let n = bump(&stats.handled);
        self.current
            .store(kind.index(self.downs) as u32 + 1, Ordering::Relaxed);
        let queued = take(&self.taken_stamp);
        let sampled = match kind {
            Kind::Down(_) => queued != 0,
            Kind::Task(_) => true,
            _ => n & (self.every.load(Ordering::Relaxed) - 1) == 0,
        };
        if sampled {
            self.begin_sample(stats, queued, now);
        }
    }

    #[cold]
    fn begin_sample(&self, stats: &KindStats, queued: u64, now: Option<Instant>) {
        let now = now.unwrap_or_else(Instant::now);
        if let Some(queued) = self.instant(queued) {
            let times = stats.times.get_or_init(|| Box::new(Times::new()));
            let wait = now.saturating_duration_since(queued);
            times.wait.record(wait);
            self.publish(stats, 1, wait);
        }
        self.sample_start.store(self.stamp(now), Ordering::Relaxed);
    }

    /// Records a sampled duration (0: handler, 1: queue wait) in the `metrics` crate's
    /// histogram, registered on first use.
    #[cfg(feature = "metrics")]
    fn publish(&self, stats: &KindStats, which: usize, d: Duration) {
        let histograms = stats.metrics.get_or_init(|| {
            let index = self
                .kinds()
                .iter()
                .position(|k| std::ptr::eq(k, stats))
                .unwrap_or(0);
            let kind = Kind::from_index(index, self.downs);
            Box::new(record::histograms(
                self.path.get(),
                kind.label(),
                kind.name(self.meta),
            ))
        });
        histograms[which].record(d.as_secs_f64());
    }

    #[cfg(not(feature = "metrics"))]
    fn publish(&self, _stats: &KindStats, _which: usize, _d: Duration) {}

    /// The handler that began last has returned.
    #[inline]
    pub(crate) fn end(&self) {
        let current = self.current.load(Ordering::Relaxed);
        self.current.store(0, Ordering::Relaxed);
        let started = take(&self.sample_start);
        if started != 0 && current != 0 {
            self.end_sample(current as usize - 1, started);
        }
    }

    #[cold]
    fn end_sample(&self, index: usize, started: u64) {
        let (Some(stats), Some(started)) = (self.kinds().get(index), self.instant(started)) else {
            return;
        };
        let times = stats.times.get_or_init(|| Box::new(Times::new()));
        let took = Instant::now().saturating_duration_since(started);
        times.handler.record(took);
        self.publish(stats, 0, took);
    }

    /// Times one message in `every` (a power of two) from now on.
    pub(crate) fn sample_every(&self, every: u64) {
        self.every.store(every, Ordering::Relaxed);
    }

    /// A task's run begins `late` after it was due.
    fn task_started(&self, index: usize, late: Duration) {
        let Some(task) = self.tasks().get(index) else {
            return;
        };
        let late = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
        task.late_last.store(late, Ordering::Relaxed);
        if late > task.late_max.load(Ordering::Relaxed) {
            task.late_max.store(late, Ordering::Relaxed);
        }
    }

    /// A task is due next at `next` (`None`: not scheduled).
    pub(crate) fn task_scheduled(&self, index: usize, next: Option<Instant>) {
        if let Some(task) = self.tasks().get(index) {
            let next = next.map_or(0, |at| self.stamp(at));
            task.next.store(next, Ordering::Relaxed);
        }
    }

    /// The stop began now.
    pub(crate) fn stop_began(&self) {
        self.stop_began
            .store(self.stamp(Instant::now()), Ordering::Relaxed);
        self.set_phase(StopPhase::Draining);
    }

    /// The stop must be over by `deadline`, or what remains is aborted.
    pub(crate) fn stop_deadline(&self, deadline: Instant) {
        self.stop_deadline
            .store(self.stamp(deadline), Ordering::Relaxed);
    }

    /// The children of stop stage `stage` are being stopped.
    pub(crate) fn stopping_stage(&self, stage: u32) {
        self.stop_stage.store(stage, Ordering::Relaxed);
        self.set_phase(StopPhase::Children);
    }

    pub(crate) fn set_phase(&self, phase: StopPhase) {
        self.stop_phase.store(phase as u8, Ordering::Relaxed);
    }

    /// What it records, read now.
    pub(crate) fn read(&self) -> ProbeReading {
        let kinds = self
            .kinds
            .get()
            .into_iter()
            .flat_map(|k| k.iter())
            .enumerate()
            .filter_map(|(index, stats)| {
                let handled = stats.handled.load(Ordering::Relaxed);
                (handled > 0).then(|| KindReading {
                    kind: Kind::from_index(index, self.downs),
                    handled,
                    handler: stats.times.get().and_then(|t| t.handler.percentiles()),
                    wait: stats.times.get().and_then(|t| t.wait.percentiles()),
                })
            })
            .collect();
        let tasks = self
            .tasks
            .get()
            .into_iter()
            .flat_map(|t| t.iter())
            .map(|t| TaskReading {
                late_last: Duration::from_nanos(t.late_last.load(Ordering::Relaxed)),
                late_max: Duration::from_nanos(t.late_max.load(Ordering::Relaxed)),
                next: self.instant(t.next.load(Ordering::Relaxed)),
            })
            .collect();
        let current = self.current.load(Ordering::Relaxed);
        ProbeReading {
            kinds,
            tasks,
            current: (current != 0).then(|| Kind::from_index(current as usize - 1, self.downs)),
            stop_phase: StopPhase::from_u8(self.stop_phase.load(Ordering::Relaxed)),
            stop_stage: self.stop_stage.load(Ordering::Relaxed),
            stop_began: self.instant(self.stop_began.load(Ordering::Relaxed)),
            stop_deadline: self.instant(self.stop_deadline.load(Ordering::Relaxed)),
        }
    }
}

impl Times {
    fn new() -> Self {
        Self {
            handler: Histogram::new(),
            wait: Histogram::new(),
        }
    }
}

/// A probe's figures at one moment.
#[derive(Debug, Clone)]
pub(crate) struct ProbeReading {
    /// The kinds handled at least once while watched.
    pub(crate) kinds: Vec<KindReading>,
    /// One per `#[rescheduling]` task, in declaration order.
    pub(crate) tasks: Vec<TaskReading>,
    /// The kind of the handler running now.
    pub(crate) current: Option<Kind>,
    pub(crate) stop_phase: StopPhase,
    pub(crate) stop_stage: u32,
    pub(crate) stop_began: Option<Instant>,
    pub(crate) stop_deadline: Option<Instant>,
}

/// The figures of one kind of message.
#[derive(Debug, Clone)]
pub(crate) struct KindReading {
    pub(crate) kind: Kind,
    pub(crate) handled: u64,
    pub(crate) handler: Option<Percentiles>,
    pub(crate) wait: Option<Percentiles>,
}

/// The figures of one task.
#[derive(Debug, Clone)]
pub(crate) struct TaskReading {
    pub(crate) late_last: Duration,
    pub(crate) late_max: Duration,
    pub(crate) next: Option<Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_each_half_octave_once() {
        assert_eq!(Histogram::bucket(0), 0);
        assert_eq!(Histogram::bucket(1023), 0);
        assert_eq!(Histogram::bucket(1024), 1);
        assert_eq!(Histogram::bucket(1535), 1);
        assert_eq!(Histogram::bucket(1536), 2);
        assert_eq!(Histogram::bucket(2047), 2);
        assert_eq!(Histogram::bucket(2048), 3);
        assert_eq!(Histogram::bucket(u64::MAX), BUCKETS - 1);
        for b in 1..BUCKETS - 1 {
            let top = u64::try_from(Histogram::upper(b).as_nanos()).unwrap();
            assert_eq!(Histogram::bucket(top), b, "top of bucket {b}");
            assert_eq!(Histogram::bucket(top + 1), b + 1, "above bucket {b}");
        }
    }

    #[test]
    fn percentiles_come_from_the_buckets() {
        let h = Histogram::new();
        assert_eq!(h.percentiles(), None);
        for _ in 0..98 {
            h.record(Duration::from_micros(10));
        }
        h.record(Duration::from_millis(5));
        h.record(Duration::from_millis(5));
        let p = h.percentiles().unwrap();
        assert_eq!(p.samples, 100);
        // 10 µs lies in [8 192, 12 288) ns; 5 ms in [4 194 304, 6 291 456) ns.
        assert_eq!(p.p50, Duration::from_nanos(12_287));
        assert_eq!(p.p99, Duration::from_nanos(6_291_455));
    }
}
