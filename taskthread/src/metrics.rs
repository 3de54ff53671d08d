//! The figures of a running tree through the [`metrics`](https://docs.rs/metrics) crate, so
//! that any exporter (Prometheus, StatsD, OpenTelemetry, ...) carries them.
//!
//! Opt-in: the `metrics` feature (it brings `watch`). Spawn a [`MetricsPublisher`] for a
//! subtree, anywhere in the tree; it watches the subtree and, at each sampling, sets the
//! series of every thread that changed through the recorder the application installed:
//!
//! ```no_run
//! # // `no_run`: it needs a recorder to be worth running; the tests install one.
//! use taskthread::metrics::MetricsPublisher;
//! # use taskthread::prelude::*;
//! # #[derive(Default)] struct App;
//! # #[taskthread] impl App {}
//!
//! # #[tokio::main] async fn main() {
//! // metrics_exporter_prometheus::PrometheusBuilder::new().install()?; or any recorder
//! let app = taskthread::spawn(App::default());
//! let publisher = taskthread::spawn(MetricsPublisher::new(&app));
//! # }
//! ```
//!
//! # The series
//!
//! All labelled by `path` (the thread's path), some by more:
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `taskthread_threads` | gauge | | threads in the watched subtree |
//! | `taskthread_thread_up` | gauge | `type` | 1 while the thread lives, 0 once it is gone |
//! | `taskthread_thread_state` | gauge | `state` | 1 for its state (`starting`, `running`, `stopping`, `restarting`, `exited`), 0 for the others |
//! | `taskthread_handled_total` | counter | | messages, stream items and task runs handled |
//! | `taskthread_queue_depth`, `_capacity`, `_waiting_senders` | gauge | `queue` (`down`, `inbound`) | how full each queue is |
//! | `taskthread_restarts_total` | counter | | lives after the first |
//! | `taskthread_restart_budget_used`, `_max` | gauge | | a supervised thread's restarts in its policy's window, and the most allowed |
//! | `taskthread_messages_handled_total` | counter | `kind`, `message` | handled while watched, by kind (`down`, `up`, `exit`, `restart`, `task`) and type |
//! | `taskthread_handler_seconds` | histogram | `kind`, `message` | sampled handler times |
//! | `taskthread_queue_wait_seconds` | histogram | `kind`, `message` | sampled time in the DOWN queue |
//! | `taskthread_task_lateness_seconds`, `_max_seconds` | gauge | `task` | how late a rescheduling task's last run started, and the latest while watched |
//! | `taskthread_pool_workers` | gauge | `state` (`running`, `busy`, `max`) | a worker pool's workers |
//! | `taskthread_stop_deadline_left_seconds` | gauge | | a stopping thread's time left before its stop deadline |
//!
//! The web view's `/metrics` (feature `web`) writes the same series as Prometheus text,
//! the two histograms as summaries (their 50th and 99th percentiles). The histograms are
//! recorded as the durations are sampled, by the threads themselves, while anything
//! watches the tree (a publisher, a `taskthread-ctl top`, a web page). Install the recorder
//! before anything watches the tree: a thread registers its histograms with the recorder
//! it finds when it first samples a duration and keeps them for its life, so a recorder
//! installed after a watch began gets none of that thread's histograms.
//!
//! A thread that is gone keeps its series, with `taskthread_thread_up` at 0: the `metrics`
//! crate has no way to remove a series, so how long the recorder keeps it is the
//! exporter's choice (Prometheus's exporter, for one, can drop series idle for a while).
//! Since every thread that lived while watched has series of its own, a subtree that
//! spawns a child per request adds series as it goes; watch the long-lived part of such a
//! tree, or give the exporter an idle timeout.

use std::fmt;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::ctx::Ctx;
use crate::error::Result;
use crate::thread::{Thread, serving_thread_items};
use crate::watch::series::{self, Kind, Label, Sink};
use crate::watch::{
    DEFAULT_INTERVAL, Subtree, Timing, WatchMessage, WatchStream, WatchedTree, Watcher,
};

/// A thread that publishes a subtree's figures through the `metrics` crate at each
/// sampling, for as long as it runs. See the [module](self).
pub struct MetricsPublisher {
    watcher: Watcher,
    tasks: JoinSet<()>,
}

impl fmt::Debug for MetricsPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsPublisher")
            .field("watcher", &self.watcher)
            .finish_non_exhaustive()
    }
}

impl MetricsPublisher {
    /// A publisher of the subtree of `tree`, sampled every [`DEFAULT_INTERVAL`].
    pub fn new(tree: &impl Subtree) -> Self {
        Self::with_interval(tree, DEFAULT_INTERVAL)
    }

    /// A publisher of the subtree of `tree`, sampled every `interval`.
    ///
    /// # Panics
    /// If `interval` is zero.
    #[track_caller]
    pub fn with_interval(tree: &impl Subtree, interval: Duration) -> Self {
        Self {
            watcher: Watcher::with_interval(tree, interval),
            tasks: JoinSet::new(),
        }
    }
}

// Not offered as a hint in the errors about types that are not threads.
#[diagnostic::do_not_recommend]
impl Thread for MetricsPublisher {
    serving_thread_items!();

    const TYPE_NAME: &'static str = "MetricsPublisher";
    const DEFAULT_NAME: &'static str = "metrics";

    async fn __enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        self.tasks.spawn(publish(self.watcher.subscribe()));
        Ok(())
    }

    async fn __exit(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        self.tasks.shutdown().await;
        Ok(())
    }
}

/// Sets the series of each thread a message shows (all of them for a snapshot, the changed
/// ones for changes), and marks the threads gone.
async fn publish(mut stream: WatchStream) {
    let mut tree = WatchedTree::default();
    let mut facade = Facade;
    for &(name, kind, help) in series::METRICS {
        facade.describe(name, kind, help);
    }
    loop {
        let message = stream.next().await;
        match &message {
            WatchMessage::Snapshot(s) => {
                for t in &s.threads {
                    series::write_thread(t, &mut facade);
                }
            }
            WatchMessage::Changes(c) => {
                for t in &c.threads {
                    series::write_thread(t, &mut facade);
                }
                for id in &c.removed {
                    if let Some(t) = tree.get(*id) {
                        let labels = [("path", t.path.as_str()), ("type", t.type_name.as_str())];
                        facade.value(series::UP, &labels, 0.0);
                    }
                }
            }
        }
        // A gap cannot happen: a stream sends a snapshot after one.
        let _ = tree.apply(message);
        facade.value(series::THREADS, &[], tree.len() as f64);
    }
}

/// The `metrics` crate, as a sink of series.
struct Facade;

fn owned(labels: &[Label<'_>]) -> Vec<(&'static str, String)> {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Sink for Facade {
    fn describe(&mut self, name: &'static str, kind: Kind, help: &'static str) {
        match kind {
            Kind::Counter => ::metrics::describe_counter!(name, help),
            Kind::Gauge => ::metrics::describe_gauge!(name, help),
            Kind::Timing => ::metrics::describe_histogram!(name, ::metrics::Unit::Seconds, help),
        }
    }

    fn value(&mut self, name: &'static str, labels: &[Label<'_>], value: f64) {
        let labels = owned(labels);
        let counter = series::METRICS
            .iter()
            .any(|&(n, kind, _)| n == name && kind == Kind::Counter);
        if counter {
            ::metrics::counter!(name, &labels).absolute(value as u64);
        } else {
            ::metrics::gauge!(name, &labels).set(value);
        }
    }

    /// The histograms are recorded as the durations are sampled, by the threads.
    fn timing(&mut self, _name: &'static str, _labels: &[Label<'_>], _timing: Timing) {}
}
