//! How many remote children a host runs at once: a spawn past its limit is refused, its
//! parent hears why, the host logs it once, and a child that ends frees its place.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
use taskthread_nats::memory::Fate;
use taskthread_nats::{Host, RemoteOptions};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::world::{Fail, Job, Poison, Sum, WorkerArgs, World, until, worker_host, world};

const SMALL: &str = "host-small";

/// A host for `Worker`s that runs at most `max` of them.
async fn small_host(world: &World, max: usize) -> Host {
    worker_host(SMALL, &world.transport, &world.gate, &world.done)
        .max_remote_children(max)
        .start()
        .await
        .expect("the host starts")
}

/// A worker named `name` on the small host.
fn on_small(name: &'static str) -> RemoteOptions {
    RemoteOptions::on(SMALL)
        .args(WorkerArgs {
            gated: false,
            gated_exit: false,
        })
        .child(ChildOptions::new().name(name))
}

/// The messages of the `WARN` events logged on the test's thread.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut message = Message::default();
            event.record(&mut message);
            self.0.lock().unwrap().push(message.0);
        }
    }
}

impl Warnings {
    /// Captures what is logged on this thread (where a current-thread test runs its tasks)
    /// until the guard is dropped.
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        // tracing caches each callsite's interest process-wide: with a second dispatcher
        // alive, it asks every live one, so this thread's subscriber sees events whose
        // callsites other tests' threads reached first.
        static BYSTANDER: OnceLock<tracing::Dispatch> = OnceLock::new();
        BYSTANDER
            .get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let warnings = Self::default();
        let subscriber = tracing_subscriber::registry().with(warnings.clone());
        (warnings, tracing::subscriber::set_default(subscriber))
    }

    fn containing(&self, text: &str) -> Vec<String> {
        let warnings = self.0.lock().unwrap();
        warnings
            .iter()
            .filter(|w| w.contains(text))
            .cloned()
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_spawn_past_the_hosts_limit_is_refused_and_logged_once() {
    let (warnings, _capture) = Warnings::capture();
    let world = world().await;
    let host = small_host(&world, 2).await;
    let first = world.worker_with(on_small("first")).await;
    let second = world.worker_with(on_small("second")).await;
    assert_eq!(first.ask(Sum).await.unwrap(), 0);
    assert_eq!(second.ask(Sum).await.unwrap(), 0);
    assert_eq!(host.running(), 2);
    // The host's first answer to the third request is lost, so the request comes again.
    let requests = Arc::new(AtomicUsize::new(0));
    let lost_one = Arc::new(AtomicBool::new(false));
    let counted = requests.clone();
    world.transport.set_faults(move |d| {
        if d.to == format!("host.{SMALL}") && d.frames.iter().any(|f| f.kind == "spawn") {
            counted.fetch_add(1, Ordering::Relaxed);
        }
        let refusal = d.frames.iter().any(|f| f.kind == "refused");
        if refusal && !lost_one.swap(true, Ordering::Relaxed) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let third = world.worker_with(on_small("third")).await;
    third.send(Job(1)).await.unwrap();
    let exit = world.heard_line("exit boss/third").await;
    // The parent hears why, and the message that waited for the child is counted.
    assert_eq!(
        exit,
        "exit boss/third failed: host `host-small` refused to run `Worker`: it runs as many remote children as it takes (2) dropped=1"
    );
    assert!(requests.load(Ordering::Relaxed) >= 2);
    let refusals = warnings.containing("refused to run `Worker`");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0].contains("it runs as many remote children as it takes (2)"),
        "{refusals:?}"
    );
    // The two it runs go on.
    world.transport.clear_faults();
    first.send(Job(2)).await.unwrap();
    assert_eq!(first.ask(Sum).await.unwrap(), 2);
    assert_eq!(host.running(), 2);
    host.stop().await;
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_remote_child_that_ends_frees_its_place() {
    let world = world().await;
    let host = small_host(&world, 1).await;
    let first = world.worker_with(on_small("first")).await;
    assert_eq!(first.ask(Sum).await.unwrap(), 0);
    let _refused = world.worker_with(on_small("refused")).await;
    let exit = world.heard_line("exit boss/refused").await;
    assert!(exit.contains("refused to run `Worker`"), "{exit}");
    first.stop();
    let exit = world.heard_line("exit boss/first").await;
    assert_eq!(exit, "exit boss/first stopped dropped=0");
    until(|| (host.running() == 0).then_some(())).await;
    let next = world.worker_with(on_small("next")).await;
    next.send(Job(3)).await.unwrap();
    assert_eq!(next.ask(Sum).await.unwrap(), 3);
    assert_eq!(host.running(), 1);
    host.stop().await;
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_child_restarting_in_place_takes_its_earlier_lifes_place() {
    let world = world().await;
    let host = small_host(&world, 1).await;
    let policy = RestartPolicy::on_failure().backoff(Duration::ZERO, Duration::ZERO);
    let worker = world.worker_with(on_small("worker").restart(policy)).await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    // Its next life asks for the host while the host still holds the first, to send its
    // exit until acked.
    worker.send(Fail).await.unwrap();
    let restart = world.heard_line("restart").await;
    assert_eq!(restart, "restart boss/worker life 1 failed: told to fail");
    worker.send(Job(2)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 3);
    assert!(
        !world.heard().iter().any(|l| l.contains("refused")),
        "{:?}",
        world.heard()
    );
    assert_eq!(host.running(), 1);
    host.stop().await;
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_remote_child_whose_message_panics_on_the_host_frees_its_place() {
    let world = world().await;
    let host = small_host(&world, 1).await;
    let first = world.worker_with(on_small("first")).await;
    assert_eq!(first.ask(Sum).await.unwrap(), 0);
    // Its reading panics in the host's side of the edge: the subtree is aborted, and its
    // parent, which hears nothing more, finds it lost.
    first.send(Poison).await.unwrap();
    let exit = world.heard_line("exit boss/first").await;
    assert!(exit.starts_with("exit boss/first lost: "), "{exit}");
    until(|| (host.running() == 0).then_some(())).await;
    let next = world.worker_with(on_small("next")).await;
    next.send(Job(3)).await.unwrap();
    assert_eq!(next.ask(Sum).await.unwrap(), 3);
    host.stop().await;
    world.end().await;
}
