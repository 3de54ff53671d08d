//! Recording for watchers: the switch that turns it on while something watches a tree,
//! and the ring of recent events (spawns, stops, exits, failures, restarts) they read.
//!
//! Nothing is recorded while nobody watches: every place that records first asks
//! [`recording`], one relaxed load of a counter that nobody writes until a watch begins
//! (and, without the `watch` feature, a constant `false` the compiler folds away). The
//! figures themselves live with each thread (`node/probe.rs`); this module is a leaf, so
//! the queues can ask too.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use crate::lock::lock;
use crate::path::LazyPath;

/// How many watches are live in the process.
static WATCHES: AtomicUsize = AtomicUsize::new(0);

/// Whether something watches a tree in this process: one relaxed load.
#[inline(always)]
pub(crate) fn recording() -> bool {
    cfg!(feature = "watch") && WATCHES.load(Ordering::Relaxed) != 0
}

/// How often a thread's messages are timed (their queue wait and their handler) at first:
/// one in this many. Each sampling of the tree then sets it for each thread from how many
/// messages it handled since the last, so that about [`SAMPLES_PER_SAMPLING`] are timed
/// per sampling: a busy thread pays for three clock reads once in up to
/// [`MAX_SAMPLE_EVERY`] messages, a quiet one has every message timed.
pub(crate) const FIRST_SAMPLE_EVERY: u64 = 64;
/// The most messages one timed message stands for.
pub(crate) const MAX_SAMPLE_EVERY: u64 = 1024;
/// How many messages of each thread are timed per sampling of the tree, about.
#[cfg_attr(not(feature = "watch"), allow(dead_code))]
pub(crate) const SAMPLES_PER_SAMPLING: u64 = 32;

/// The sampling rate for a thread that handled `handled` messages since the last sampling:
/// a power of two, so that a message's turn is one mask.
#[cfg_attr(not(feature = "watch"), allow(dead_code))]
pub(crate) fn sample_every(handled: u64) -> u64 {
    (handled / SAMPLES_PER_SAMPLING)
        .next_power_of_two()
        .clamp(1, MAX_SAMPLE_EVERY)
}

/// Keeps recording on while it lives.
#[cfg_attr(not(feature = "watch"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Recording(());

#[cfg_attr(not(feature = "watch"), allow(dead_code))]
impl Recording {
    pub(crate) fn start() -> Self {
        WATCHES.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        WATCHES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many events the ring keeps: a watcher that falls further behind is told how many it
/// missed and starts again from a snapshot.
pub(crate) const EVENT_RING: usize = 1024;

/// What happened to a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// It was spawned.
    Spawned,
    /// It began stopping (asked to, or on its own).
    Stopping,
    /// It ended without failing.
    Exited,
    /// It ended by an error, a panic or an abort.
    Failed,
    /// Its supervisor started it again (or will, after the backoff).
    Restarted,
}

/// One event, as recorded.
#[cfg_attr(not(feature = "watch"), allow(dead_code))]
#[derive(Clone)]
pub(crate) struct Event {
    /// Its place in the process's sequence of events, from 1.
    pub(crate) seq: u64,
    pub(crate) at: SystemTime,
    /// Built when a watcher reads it: most events of a busy tree are dropped from the ring
    /// unread.
    pub(crate) path: LazyPath,
    pub(crate) kind: EventKind,
    /// What the kind alone does not say: the type spawned, how it ended, the restart.
    pub(crate) detail: Cow<'static, str>,
}

static NEXT_EVENT: AtomicU64 = AtomicU64::new(1);
static EVENTS: Mutex<VecDeque<Event>> = Mutex::new(VecDeque::new());

/// Records an event. Callers ask [`recording`] first, so that nothing (not even the path)
/// is built while nobody watches.
#[cold]
pub(crate) fn event(path: &LazyPath, kind: EventKind, detail: impl Into<Cow<'static, str>>) {
    let detail = detail.into();
    let mut events = lock(&EVENTS);
    // Numbered under the lock, so the ring is in order.
    let seq = NEXT_EVENT.fetch_add(1, Ordering::Relaxed);
    if events.len() == EVENT_RING {
        events.pop_front();
    }
    events.push_back(Event {
        seq,
        at: SystemTime::now(),
        path: path.clone(),
        kind,
        detail,
    });
}

/// What [`events_after`] found.
#[cfg_attr(not(feature = "watch"), allow(dead_code))]
pub(crate) struct Found {
    /// The events kept, in order.
    pub(crate) events: Vec<Event>,
    /// How many events after the one asked for the ring no longer holds.
    pub(crate) missed: u64,
    /// The sequence number of the last event recorded: ask after it next time.
    pub(crate) last: u64,
}

/// The events after `seq` whose path `keep` accepts.
#[cfg_attr(not(feature = "watch"), allow(dead_code))]
pub(crate) fn events_after(seq: u64, keep: impl Fn(&str) -> bool) -> Found {
    let events = lock(&EVENTS);
    let missed = events
        .front()
        .map_or(0, |first| first.seq.saturating_sub(seq.saturating_add(1)));
    Found {
        events: events
            .iter()
            .filter(|e| e.seq > seq && keep(e.path.get()))
            .cloned()
            .collect(),
        missed,
        last: events.back().map_or(seq, |e| e.seq.max(seq)),
    }
}

/// The sequence number of the last event recorded (0 if none).
#[cfg_attr(not(feature = "watch"), allow(dead_code))]
pub(crate) fn last_event() -> u64 {
    let _in_order = lock(&EVENTS);
    NEXT_EVENT.load(Ordering::Relaxed) - 1
}

/// The `metrics` crate's histogram of sampled handler times.
#[cfg_attr(not(feature = "watch"), allow(dead_code))]
pub(crate) const HANDLER_SECONDS: &str = "taskthread_handler_seconds";
/// The `metrics` crate's histogram of sampled DOWN queue waits.
#[cfg_attr(not(feature = "watch"), allow(dead_code))]
pub(crate) const WAIT_SECONDS: &str = "taskthread_queue_wait_seconds";

/// The `metrics` crate's histograms (handler time, queue wait) of one kind of message of
/// the thread at `path`.
#[cfg(feature = "metrics")]
pub(crate) fn histograms(
    path: &str,
    kind: &'static str,
    message: &str,
) -> [::metrics::Histogram; 2] {
    let labels = [
        ("path", path.to_owned()),
        ("kind", kind.to_owned()),
        ("message", message.to_owned()),
    ];
    [
        ::metrics::histogram!(HANDLER_SECONDS, &labels),
        ::metrics::histogram!(WAIT_SECONDS, &labels),
    ]
}
