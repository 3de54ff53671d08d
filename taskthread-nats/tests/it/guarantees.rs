//! The promises of a remote edge, on the memory transport with the paused clock: order and
//! delivery over lost, duplicated and reordered frames; backpressure equal to the child's
//! capacity; lost hosts and links within the documented time; stop deadlines.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::prelude::*;
use taskthread::{ThreadState, TrySendError};
use taskthread_nats::memory::{Fate, MemoryTransport};
use taskthread_nats::{
    DEFAULT_REMOTE_CAPACITY, MAX_REMOTE_CAPACITY, RemoteOptions, Remotes, Settings,
};
use tokio::time::Instant;

use crate::world::{
    Boss, HOST, Heard, Job, Spawn, Sum, Worker, WorkerArgs, World, until, worker_host, world,
    world_with,
};

fn gated(gated: bool, gated_exit: bool) -> WorkerArgs {
    WorkerArgs { gated, gated_exit }
}

#[tokio::test(start_paused = true)]
async fn order_and_delivery_survive_lost_and_reordered_frames() {
    let transport = MemoryTransport::new();
    // Every third frame is lost, every fifth overtaken by the next, either way.
    transport.set_faults(|d| match d.number % 15 {
        0 | 3 | 6 | 9 | 12 => Fate::Drop,
        5 | 10 => Fate::Hold,
        _ => Fate::Deliver,
    });
    let world = world_with(transport.clone(), Settings::new()).await;
    let worker = world.worker(ChildOptions::new().capacity(8)).await;
    for n in 1..=200 {
        worker.send(Job(n)).await.unwrap();
    }
    assert_eq!(worker.ask(Sum).await.unwrap(), 20_100);
    assert_eq!(world.done(), (1..=200).collect::<Vec<_>>());
    let tenths: Vec<String> = (1..=20).map(|n| format!("Tenth({})", n * 10)).collect();
    until(|| (world.heard().len() == 20).then_some(())).await;
    assert_eq!(world.heard(), tenths);
    let (sent, lost) = transport.counts();
    assert!(lost > sent / 4, "{lost} of {sent} frames lost");
    worker.stop();
    let exit = world.heard_line("exit").await;
    assert_eq!(exit, "exit boss/worker stopped dropped=0");
    transport.clear_faults();
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn backpressure_equals_the_childs_capacity() {
    let world = world().await;
    let worker = world
        .worker_with(
            RemoteOptions::on(HOST)
                .args(gated(true, false))
                .child(ChildOptions::new().capacity(4)),
        )
        .await;
    // As a local child of capacity 4: one message being handled, four queued. The fifth
    // send waits until the host has taken the first.
    for n in 1..=5 {
        worker.send(Job(n)).await.unwrap();
    }
    assert!(matches!(
        worker.try_send(Job(6)),
        Err(TrySendError::Full(Job(6)))
    ));
    // A sender waits while the child holds everything.
    let waiting = {
        let worker = worker.clone();
        tokio::spawn(async move { worker.send(Job(6)).await })
    };
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!waiting.is_finished());
    assert!(world.done().is_empty());
    // One job done: one place, and the waiting sender takes it.
    world.gate.add_permits(1);
    waiting.await.unwrap().unwrap();
    assert_eq!(world.done(), [1]);
    assert!(matches!(
        worker.try_send(Job(7)),
        Err(TrySendError::Full(_))
    ));
    world.gate.add_permits(6);
    assert_eq!(worker.ask(Sum).await.unwrap(), 21);
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_remote_child_without_a_capacity_takes_the_remote_default() {
    let world = world().await;
    // `Worker` declares no capacity, and these options set none.
    let worker = world
        .worker_with(RemoteOptions::on(HOST).args(gated(true, false)))
        .await;
    assert_eq!(worker.snapshot().queue_capacity, DEFAULT_REMOTE_CAPACITY);
    // One job being handled on the host, the default's worth queued, then full.
    let sent = DEFAULT_REMOTE_CAPACITY as u32 + 1;
    for n in 1..=sent {
        worker.send(Job(n)).await.unwrap();
    }
    assert!(matches!(
        worker.try_send(Job(sent + 1)),
        Err(TrySendError::Full(_))
    ));
    // Options that set a capacity win over the default.
    let small = world.worker(ChildOptions::new().capacity(16)).await;
    assert_eq!(small.snapshot().queue_capacity, 16);
    world.gate.add_permits(sent as usize);
    let all: u64 = (1..=u64::from(sent)).sum();
    assert_eq!(worker.ask(Sum).await.unwrap(), all);
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_capacity_above_the_remote_maximum_is_taken_as_the_maximum() {
    let world = world().await;
    let worker = world
        .worker(ChildOptions::new().capacity(MAX_REMOTE_CAPACITY * 64))
        .await;
    assert_eq!(worker.snapshot().queue_capacity, MAX_REMOTE_CAPACITY);
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_dead_host_is_lost_within_the_documented_time() {
    let mut world = world().await;
    let settings = world.settings;
    let worker = world.worker(ChildOptions::new()).await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    let died = Instant::now();
    world.host.take().unwrap().kill().await;
    // Sent into the void: never taken, so counted as dropped when the host is lost.
    for n in 2..=4 {
        worker.send(Job(n)).await.unwrap();
    }
    let exit = world.heard_line("exit").await;
    let waited = died.elapsed();
    // Lost within `lost_after` and one check of the silence (the test looks every 10 ms).
    let bound = settings.get_lost_after() + settings.get_retransmit() / 2;
    assert!(
        waited <= bound + Duration::from_millis(10),
        "lost after {waited:?}"
    );
    assert!(
        exit.starts_with("exit boss/worker lost: host `host-a`: no word from the other side for 5"),
        "{exit}"
    );
    assert!(exit.ends_with("dropped=3"), "{exit}");
    assert_eq!(worker.send(Job(5)).await.unwrap_err().into_inner(), Job(5));
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_link_that_stays_down_is_lost_on_both_sides() {
    let world = world().await;
    let worker = world.worker(ChildOptions::new()).await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    let host = world.host.as_ref().unwrap();
    assert_eq!(host.running(), 1);
    // Both directions down for good.
    world.transport.cut("host.host-a");
    for address in parent_addresses(&world.transport) {
        world.transport.cut(&address);
    }
    let exit = world.heard_line("exit").await;
    assert!(exit.starts_with("exit boss/worker lost: "), "{exit}");
    // The host stops the subtree whose parent it lost.
    until(|| (world.host.as_ref().unwrap().running() == 0).then_some(())).await;
    assert_eq!(world.heard().iter().filter(|l| *l == "Bye").count(), 0);
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_short_outage_loses_nothing() {
    let world = world().await;
    let worker = world.worker(ChildOptions::new().capacity(4)).await;
    worker.send(Job(1)).await.unwrap();
    world.transport.cut("host.host-a");
    for n in 2..=4 {
        worker.send(Job(n)).await.unwrap();
    }
    // Down for less than `lost_after`.
    tokio::time::sleep(Duration::from_secs(3)).await;
    world.transport.heal("host.host-a");
    assert_eq!(worker.ask(Sum).await.unwrap(), 10);
    assert_eq!(world.done(), [1, 2, 3, 4]);
    assert_eq!(worker.state(), ThreadState::Running);
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_past_its_deadline_is_aborted_on_both_sides() {
    let world = world().await;
    let deadline = Duration::from_secs(2);
    let worker = world
        .worker_with(
            RemoteOptions::on(HOST)
                .args(gated(false, true))
                .child(ChildOptions::new().stop_deadline(deadline)),
        )
        .await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    let stopped = Instant::now();
    // Its exit hook waits for the gate, which never opens.
    worker.stop();
    let exit = world.heard_line("exit").await;
    // Heard within the deadline (the test looks every 10 ms).
    let heard_after = stopped.elapsed();
    assert!(
        heard_after <= deadline + Duration::from_millis(10),
        "ended after {heard_after:?}"
    );
    assert!(exit.starts_with("exit boss/worker aborted"), "{exit}");
    until(|| (world.host.as_ref().unwrap().running() == 0).then_some(())).await;
    world.end().await;
}

/// What `Host::stop` (or `Host::kill`) may wait for is bounded: the host's stop deadline,
/// then a parent's ack of the exit for at most the host's `lost_after`.
async fn stop_returns(stop: impl Future<Output = ()>) {
    let stopped = tokio::time::timeout(Duration::from_secs(3600), stop).await;
    assert!(stopped.is_ok(), "the host never ended");
}

#[tokio::test(start_paused = true)]
async fn a_host_stops_though_a_parent_never_acks_the_exit() {
    let mut world = world().await;
    let worker = world.worker(ChildOptions::new()).await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    // The parent never hears the exit, so never acks it, and keeps the edge alive.
    world.transport.set_faults(|d| {
        if d.frames.iter().any(|f| f.kind == "exit") {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    stop_returns(world.host.take().unwrap().stop()).await;
    // Without the exit, the parent finds the child lost once the host is gone.
    let exit = world.heard_line("exit").await;
    assert!(exit.starts_with("exit boss/worker lost: "), "{exit}");
    world.transport.clear_faults();
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_host_stops_a_subtree_past_its_stop_deadline() {
    let world = world().await;
    let host = worker_host("host-b", &world.transport, &world.gate, &world.done)
        .stop_deadline(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let worker = world
        .worker_with(RemoteOptions::on("host-b").args(gated(false, true)))
        .await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    // Its exit hook waits for the gate, which never opens: aborted on the host.
    stop_returns(host.stop()).await;
    let exit = world.heard_line("exit").await;
    assert!(exit.starts_with("exit boss/worker aborted"), "{exit}");
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_spawn_that_reaches_a_stopping_host_is_not_started() {
    let mut world = world().await;
    let first = world
        .worker_with(RemoteOptions::on(HOST).args(gated(false, true)))
        .await;
    assert_eq!(first.ask(Sum).await.unwrap(), 0);
    // The second's spawn request reaches the host only once it stops.
    world.transport.set_faults(|d| {
        if d.frames.iter().any(|f| f.kind == "spawn") {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let _second = world.worker(ChildOptions::new().name("second")).await;
    let stopping = tokio::spawn(world.host.take().unwrap().stop());
    // The host stops; the first waits in its exit hook, and the request comes again.
    tokio::time::sleep(Duration::from_millis(10)).await;
    world.transport.clear_faults();
    tokio::time::sleep(Duration::from_secs(1)).await;
    world.gate.add_permits(1);
    stop_returns(async { stopping.await.unwrap() }).await;
    let exit = world.heard_line("exit boss/second").await;
    assert!(exit.starts_with("exit boss/second lost: "), "{exit}");
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_host_stops_within_its_bound_though_the_transport_takes_nothing_more() {
    let mut world = world().await;
    // Its exit hook takes a permit of the gate: the one given here.
    let worker = world
        .worker_with(RemoteOptions::on(HOST).args(gated(false, true)))
        .await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    world.gate.add_permits(1);
    // From now on the host's sends to the parent wait, without end; past a heartbeat, its
    // side of the edge waits in one (the report of the subtree).
    for address in parent_addresses(&world.transport) {
        world.transport.stall(&address);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopping = Instant::now();
    stop_returns(world.host.take().unwrap().stop()).await;
    // The subtree had the stop deadline, its exit the host's `lost_after`.
    let bound = taskthread::DEFAULT_STOP_DEADLINE + Settings::new().get_lost_after();
    let took = stopping.elapsed();
    assert!(took <= bound, "stopped after {took:?}");
    // The subtree was told to stop while the host's side of the edge waited on the
    // transport: it stopped gracefully, its exit hook ran.
    assert_eq!(world.gate.available_permits(), 0, "the exit hook never ran");
    // The host sent nothing more: the parent finds its child lost.
    for address in parent_addresses(&world.transport) {
        world.transport.resume(&address);
    }
    let exit = world.heard_line("exit").await;
    assert!(exit.starts_with("exit boss/worker lost: "), "{exit}");
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_host_is_killed_at_once_though_the_transport_takes_nothing_more() {
    let mut world = world().await;
    let worker = world.worker(ChildOptions::new()).await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    for address in parent_addresses(&world.transport) {
        world.transport.stall(&address);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killing = Instant::now();
    stop_returns(world.host.take().unwrap().kill()).await;
    assert_eq!(killing.elapsed(), Duration::ZERO);
    for address in parent_addresses(&world.transport) {
        world.transport.resume(&address);
    }
    let exit = world.heard_line("exit").await;
    assert!(exit.starts_with("exit boss/worker lost: "), "{exit}");
    world.end().await;
}

/// A second parent on `world`'s transport, on an address of its own, with a worker on the
/// world's host that has done one job: the parent, what it hears, and the worker.
async fn another_parent(world: &World) -> (Handle<Boss>, Heard, ChildRef<Worker>) {
    let remotes = Remotes::start(world.transport.clone()).await.unwrap();
    let (boss, heard) = Boss::new(remotes);
    let boss = taskthread::spawn(boss);
    let options = RemoteOptions::on(HOST).args(gated(false, false));
    let worker = boss.ask(Spawn(options)).await.unwrap();
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    (boss, heard, worker)
}

/// `worker`, of the parent that heard `heard`, goes on working on the host for well past
/// `lost_after`.
async fn keeps_working(worker: &ChildRef<Worker>, heard: &Heard) {
    for n in 2..=20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        worker.send(Job(n)).await.unwrap();
    }
    let sum = tokio::time::timeout(Duration::from_secs(10), worker.ask(Sum)).await;
    assert_eq!(sum.expect("answered").unwrap(), (1..=20).sum::<u64>());
    assert_eq!(worker.state(), ThreadState::Running);
    let heard = heard.lock().unwrap();
    assert!(!heard.iter().any(|l| l.starts_with("exit")), "{heard:?}");
}

#[tokio::test(start_paused = true)]
async fn a_parent_that_takes_nothing_holds_up_no_other_parents_child() {
    let world = world().await;
    let stalled = world.worker(ChildOptions::new().name("stalled")).await;
    assert_eq!(stalled.ask(Sum).await.unwrap(), 0);
    let stalled_parent = parent_addresses(&world.transport);
    let (boss, heard, worker) = another_parent(&world).await;
    // What the host sends to the first parent waits from now on: the pongs and acks its
    // endpoint answers the parent's frames with, its pings and the frames it sends again.
    for address in &stalled_parent {
        world.transport.stall(address);
    }
    keeps_working(&worker, &heard).await;
    // The first parent heard nothing more from the host.
    let exit = world.heard_line("exit boss/stalled").await;
    assert!(exit.starts_with("exit boss/stalled lost: "), "{exit}");
    for address in &stalled_parent {
        world.transport.resume(address);
    }
    boss.stop();
    boss.join().await;
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_refusal_to_a_parent_that_takes_nothing_holds_up_no_other_edge() {
    let world = world().await;
    let stalled_parent = parent_addresses(&world.transport);
    let (boss, heard, worker) = another_parent(&world).await;
    for address in &stalled_parent {
        world.transport.stall(address);
    }
    // Refused, again each time the request comes, to an address that takes nothing.
    let _refused = world
        .worker_with(
            RemoteOptions::on(HOST)
                .args(gated(false, false))
                .type_name("Nobody"),
        )
        .await;
    keeps_working(&worker, &heard).await;
    // Its parent heard no refusal: it found the host lost.
    let exit = world.heard_line("exit boss/worker").await;
    assert!(exit.starts_with("exit boss/worker lost: "), "{exit}");
    for address in &stalled_parent {
        world.transport.resume(address);
    }
    boss.stop();
    boss.join().await;
    world.end().await;
}

/// The addresses parents listen at on `transport` (one per `Remotes`).
fn parent_addresses(transport: &MemoryTransport) -> Vec<String> {
    transport
        .addresses()
        .into_iter()
        .filter(|a| a.starts_with("parent."))
        .collect()
}

/// A remote type that declares its capacity.
struct Tight;

#[taskthread(remote, capacity = 8)]
impl Tight {
    #[down]
    async fn job(&mut self, _ctx: &mut Ctx<Self>, _job: Job) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_declared_capacity_is_seen_by_the_remote_side() {
    use taskthread::proxy::Remote;
    assert_eq!(<Tight as Remote>::DECLARED_CAPACITY, Some(8));
    assert_eq!(<crate::world::Worker as Remote>::DECLARED_CAPACITY, None);
    let _ = Tight;
}

#[tokio::test(start_paused = true)]
async fn a_host_dropped_without_a_stop_ends_as_if_killed_and_frees_its_name() {
    let mut world = world().await;
    let worker = world.worker(ChildOptions::new()).await;
    worker.send(Job(1)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 1);
    drop(world.host.take().unwrap());
    let exit = world.heard_line("exit").await;
    assert!(
        exit.starts_with("exit boss/worker lost: host `host-a`"),
        "{exit}"
    );
    let done = Arc::new(Mutex::new(Vec::new()));
    let again = worker_host(HOST, &world.transport, &world.gate, &done)
        .start()
        .await;
    assert!(again.is_ok(), "the name is free again: {:?}", again.err());
    again.unwrap().stop().await;
    world.end().await;
}
