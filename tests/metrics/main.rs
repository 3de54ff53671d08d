//! The `metrics` feature: a `MetricsPublisher` sets a tree's series through the `metrics`
//! crate's recorder — counters, gauges and the sampled histograms, labelled by path and
//! message type — and marks a thread gone. A binary of its own: it installs the global
//! recorder.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use taskthread::metrics::MetricsPublisher;
use taskthread::prelude::*;
use taskthread::watch::{WatchedTree, Watcher};

/// Takes a millisecond per number.
#[derive(Default)]
struct Worker;

#[taskthread]
impl Worker {
    #[down]
    async fn number(&mut self, _ctx: &mut Ctx<Self>, _n: u64) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
}

/// A worker, and a way to stop it.
#[derive(Default)]
struct App {
    worker: Option<ChildRef<Worker>>,
}

struct StopWorker;

#[taskthread]
impl App {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.worker = Some(ctx.spawn(Worker));
        Ok(())
    }

    #[down]
    async fn number(&mut self, _ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
        self.worker.as_ref().unwrap().send(n).await?;
        Ok(())
    }

    #[down]
    async fn stop_worker(&mut self, _ctx: &mut Ctx<Self>, _s: StopWorker) -> Result<()> {
        if let Some(worker) = self.worker.take() {
            worker.stop();
        }
        Ok(())
    }
}

/// The recorder's series at one moment (taking them resets its counters and histograms).
type Series = Vec<(CompositeKey, DebugValue)>;

fn series(snapshotter: &metrics_util::debugging::Snapshotter) -> Series {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect()
}

/// The value of the series `name` whose labels include all of `labels`.
fn find<'a>(series: &'a Series, name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    series
        .iter()
        .find(|(key, _)| {
            key.key().name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(_, value)| value)
}

fn gauge(series: &Series, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    match find(series, name, labels)? {
        DebugValue::Gauge(v) => Some(v.into_inner()),
        other => panic!("{name} is not a gauge: {other:?}"),
    }
}

fn counter(series: &Series, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    match find(series, name, labels)? {
        DebugValue::Counter(v) => Some(*v),
        other => panic!("{name} is not a counter: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_publisher_sets_the_series_of_the_tree() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let app = taskthread::spawn_with(App::default(), ChildOptions::new().name("m"));
    let tick = Duration::from_millis(100);
    let _publisher = taskthread::spawn(MetricsPublisher::with_interval(&app, tick));
    // A stream of our own, to know when samplings have happened.
    let mut stream = Watcher::with_interval(&app, tick).subscribe();
    let mut tree = WatchedTree::default();
    tree.apply(stream.next().await).unwrap();
    app.send(0u64).await.unwrap();
    while tree.find("m/worker").is_none_or(|w| w.handled < 1) {
        tree.apply(stream.next().await).unwrap();
    }
    for n in 0..20u64 {
        app.send(n).await.unwrap();
    }
    while tree.find("m/worker").is_none_or(|w| w.handled < 21) {
        tree.apply(stream.next().await).unwrap();
    }
    // One more sampling, for the publisher's.
    tree.apply(stream.next().await).unwrap();
    tree.apply(stream.next().await).unwrap();

    let now = series(&snapshotter);
    assert_eq!(gauge(&now, "taskthread_threads", &[]), Some(2.0));
    let worker = [("path", "m/worker")];
    assert_eq!(counter(&now, "taskthread_handled_total", &worker), Some(21));
    assert_eq!(
        gauge(
            &now,
            "taskthread_queue_capacity",
            &[("path", "m/worker"), ("queue", "down")]
        ),
        Some(64.0)
    );
    assert_eq!(
        gauge(
            &now,
            "taskthread_thread_state",
            &[("path", "m/worker"), ("state", "running")]
        ),
        Some(1.0)
    );
    assert_eq!(
        gauge(
            &now,
            "taskthread_thread_state",
            &[("path", "m/worker"), ("state", "stopping")]
        ),
        Some(0.0)
    );
    let by_type = [("path", "m/worker"), ("kind", "down"), ("message", "u64")];
    assert_eq!(
        counter(&now, "taskthread_messages_handled_total", &by_type),
        Some(21)
    );
    let Some(DebugValue::Histogram(times)) = find(&now, "taskthread_handler_seconds", &by_type)
    else {
        panic!("the handler times are a histogram");
    };
    assert!(
        times.len() >= 20,
        "every message of a quiet thread is timed: {}",
        times.len()
    );
    assert!(
        times.iter().all(|t| t.into_inner() >= 0.001),
        "a millisecond each"
    );
    let kinds: Vec<MetricKind> = now
        .iter()
        .filter(|(k, _)| k.key().name() == "taskthread_queue_wait_seconds")
        .map(|(k, _)| k.kind())
        .collect();
    assert!(kinds.iter().all(|k| *k == MetricKind::Histogram) && !kinds.is_empty());

    // A thread gone is marked so.
    app.send(StopWorker).await.unwrap();
    while tree.find("m/worker").is_some() {
        tree.apply(stream.next().await).unwrap();
    }
    tree.apply(stream.next().await).unwrap();
    let now = series(&snapshotter);
    assert_eq!(
        gauge(
            &now,
            "taskthread_thread_up",
            &[("path", "m/worker"), ("type", "Worker")]
        ),
        Some(0.0)
    );
    assert_eq!(gauge(&now, "taskthread_threads", &[]), Some(1.0));
}
