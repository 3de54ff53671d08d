//! The figures of a watch as metric series — names, kinds, labels — defined once for every
//! output: the web view's `/metrics` text and the `metrics` crate.

// Each output uses what it needs of this.
#![cfg_attr(not(any(feature = "web", feature = "metrics")), allow(dead_code))]

use super::view::{Fill, MessageKind, MessageView, ThreadView, Timing};
use crate::record;

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Sampled durations: percentiles in text, a histogram through the `metrics` crate.
    Timing,
}

/// A label: its name, and its value.
pub(crate) type Label<'a> = (&'static str, &'a str);

/// Where series go.
pub(crate) trait Sink {
    /// A metric's kind and what it means, before its first series.
    fn describe(&mut self, name: &'static str, kind: Kind, help: &'static str);
    /// One series' value now.
    fn value(&mut self, name: &'static str, labels: &[Label<'_>], value: f64);
    /// One series of sampled durations, as percentiles.
    fn timing(&mut self, name: &'static str, labels: &[Label<'_>], timing: Timing);
}

/// The metrics, each with its kind and what it means, in the order they are written.
pub(crate) const METRICS: &[(&str, Kind, &str)] = &[
    (THREADS, Kind::Gauge, "Threads in the watched tree."),
    (
        UP,
        Kind::Gauge,
        "1 for each live thread, labelled with its type; 0 once it is gone.",
    ),
    (
        STATE,
        Kind::Gauge,
        "1 for the state a thread is in, 0 for the others.",
    ),
    (
        HANDLED,
        Kind::Counter,
        "DOWN and UP messages, stream items and task runs handled.",
    ),
    (
        QUEUE_DEPTH,
        Kind::Gauge,
        "Messages queued, by queue (down or inbound).",
    ),
    (QUEUE_CAPACITY, Kind::Gauge, "The capacity of each queue."),
    (
        QUEUE_WAITING,
        Kind::Gauge,
        "Senders waiting for room in a full queue.",
    ),
    (RESTARTS, Kind::Counter, "Lives after the first."),
    (
        BUDGET_USED,
        Kind::Gauge,
        "Restarts within the restart policy's window (supervised threads).",
    ),
    (
        BUDGET_MAX,
        Kind::Gauge,
        "The most restarts the policy allows within its window.",
    ),
    (
        MESSAGES,
        Kind::Counter,
        "Messages handled while watched, by kind and type.",
    ),
    (
        HANDLER_SECONDS,
        Kind::Timing,
        "Handler time by message type (sampled).",
    ),
    (
        WAIT_SECONDS,
        Kind::Timing,
        "Time in the DOWN queue by message type (sampled).",
    ),
    (
        LATENESS,
        Kind::Gauge,
        "How late the last run of a rescheduling task started.",
    ),
    (
        LATENESS_MAX,
        Kind::Gauge,
        "The latest a run of a rescheduling task started while watched.",
    ),
    (
        POOL_WORKERS,
        Kind::Gauge,
        "A worker pool's workers: running, busy, max.",
    ),
    (
        DEADLINE_LEFT,
        Kind::Gauge,
        "For a stopping thread: the time left before its stop deadline aborts it.",
    ),
];

pub(crate) const THREADS: &str = "taskthread_threads";
pub(crate) const UP: &str = "taskthread_thread_up";
pub(crate) const STATE: &str = "taskthread_thread_state";

/// The states a thread can be in, as [`ThreadState`](crate::ThreadState) displays them.
const STATES: [&str; 5] = ["starting", "running", "stopping", "restarting", "exited"];
pub(crate) const HANDLED: &str = "taskthread_handled_total";
pub(crate) const QUEUE_DEPTH: &str = "taskthread_queue_depth";
pub(crate) const QUEUE_CAPACITY: &str = "taskthread_queue_capacity";
pub(crate) const QUEUE_WAITING: &str = "taskthread_queue_waiting_senders";
pub(crate) const RESTARTS: &str = "taskthread_restarts_total";
pub(crate) const BUDGET_USED: &str = "taskthread_restart_budget_used";
pub(crate) const BUDGET_MAX: &str = "taskthread_restart_budget_max";
pub(crate) const MESSAGES: &str = "taskthread_messages_handled_total";
pub(crate) const HANDLER_SECONDS: &str = record::HANDLER_SECONDS;
pub(crate) const WAIT_SECONDS: &str = record::WAIT_SECONDS;
pub(crate) const LATENESS: &str = "taskthread_task_lateness_seconds";
pub(crate) const LATENESS_MAX: &str = "taskthread_task_lateness_max_seconds";
pub(crate) const POOL_WORKERS: &str = "taskthread_pool_workers";
pub(crate) const DEADLINE_LEFT: &str = "taskthread_stop_deadline_left_seconds";

/// Writes every metric of `threads`, metric by metric: the form a text exposition wants.
#[cfg_attr(not(feature = "web"), allow(dead_code))]
pub(crate) fn write_all(threads: &[ThreadView], sink: &mut impl Sink) {
    for &(name, kind, help) in METRICS {
        sink.describe(name, kind, help);
        if name == THREADS {
            sink.value(THREADS, &[], threads.len() as f64);
            continue;
        }
        for t in threads {
            write_metric(name, t, sink);
        }
    }
}

/// Writes every metric of one thread.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn write_thread(t: &ThreadView, sink: &mut impl Sink) {
    for &(name, _, _) in METRICS {
        write_metric(name, t, sink);
    }
}

/// Writes the series of metric `name` for thread `t`.
fn write_metric(name: &'static str, t: &ThreadView, sink: &mut impl Sink) {
    let path = ("path", t.path.as_str());
    match name {
        UP => sink.value(UP, &[path, ("type", &t.type_name)], 1.0),
        STATE => {
            for state in STATES {
                let on = if t.state == state { 1.0 } else { 0.0 };
                sink.value(STATE, &[path, ("state", state)], on);
            }
        }
        HANDLED => sink.value(HANDLED, &[path], t.handled as f64),
        QUEUE_DEPTH => queue(sink, name, t, |f| f.depth),
        QUEUE_CAPACITY => queue(sink, name, t, |f| f.capacity),
        QUEUE_WAITING => queue(sink, name, t, |f| f.waiting),
        RESTARTS => sink.value(RESTARTS, &[path], f64::from(t.restarts)),
        BUDGET_USED => {
            if let Some(b) = t.budget {
                sink.value(name, &[path], f64::from(b.used));
            }
        }
        BUDGET_MAX => {
            if let Some(b) = t.budget {
                sink.value(name, &[path], f64::from(b.max));
            }
        }
        MESSAGES => {
            for m in &t.messages {
                sink.value(name, &message_labels(t, m), m.handled as f64);
            }
        }
        HANDLER_SECONDS | WAIT_SECONDS => {
            for m in &t.messages {
                let timing = if name == HANDLER_SECONDS {
                    m.handler
                } else {
                    m.wait
                };
                if let Some(timing) = timing {
                    sink.timing(name, &message_labels(t, m), timing);
                }
            }
        }
        LATENESS | LATENESS_MAX => {
            for task in &t.tasks {
                let us = if name == LATENESS {
                    task.late_last_us
                } else {
                    task.late_max_us
                };
                sink.value(name, &[path, ("task", &task.name)], us as f64 / 1e6);
            }
        }
        POOL_WORKERS => {
            if let Some(p) = t.pool {
                for (state, n) in [("running", p.running), ("busy", p.busy), ("max", p.max)] {
                    sink.value(name, &[path, ("state", state)], n as f64);
                }
            }
        }
        DEADLINE_LEFT => {
            if let Some(left) = t.stop.as_ref().and_then(|s| s.deadline_left_ms) {
                sink.value(name, &[path], left as f64 / 1e3);
            }
        }
        _ => {}
    }
}

fn queue(sink: &mut impl Sink, name: &'static str, t: &ThreadView, figure: impl Fn(Fill) -> usize) {
    let path = ("path", t.path.as_str());
    sink.value(name, &[path, ("queue", "down")], figure(t.queue) as f64);
    if let Some(inbound) = t.inbound {
        sink.value(name, &[path, ("queue", "inbound")], figure(inbound) as f64);
    }
}

/// The labels of a message kind's series.
pub(crate) fn message_labels<'a>(t: &'a ThreadView, m: &'a MessageView) -> [Label<'a>; 3] {
    [
        ("path", &t.path),
        ("kind", kind_label(m.kind)),
        ("message", &m.name),
    ]
}

pub(crate) fn kind_label(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Down => "down",
        MessageKind::Up => "up",
        MessageKind::Exit => "exit",
        MessageKind::Restart => "restart",
        MessageKind::Task => "task",
    }
}
