//! Supervised remote children: restarted on another host when theirs is lost, in place when
//! they fail, escalated past the limit; each life a new epoch, so frames of an earlier life
//! never reach a later one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use taskthread::supervise::RestartPolicy;
use taskthread_nats::RemoteOptions;
use taskthread_nats::Transport;
use taskthread_nats::memory::Fate;

use crate::world::{Fail, HOST, Job, Sum, WorkerArgs, start_host, until, world};

fn options(policy: RestartPolicy) -> RemoteOptions {
    RemoteOptions::on(HOST)
        .or_on("host-b")
        .args(WorkerArgs {
            gated: false,
            gated_exit: false,
        })
        .restart(policy.backoff(Duration::ZERO, Duration::ZERO))
}

#[tokio::test(start_paused = true)]
async fn a_child_whose_host_is_lost_starts_again_on_the_next_host() {
    let mut world = world().await;
    let done_b = Arc::new(Mutex::new(Vec::new()));
    let host_b = start_host("host-b", &world.transport, &world.gate, &done_b).await;
    let worker = world
        .worker_with(options(RestartPolicy::on_failure()))
        .await;
    for n in 1..=3 {
        worker.send(Job(n)).await.unwrap();
    }
    assert_eq!(worker.ask(Sum).await.unwrap(), 6);
    world.host.take().unwrap().kill().await;
    let restart = world.heard_line("restart").await;
    assert!(
        restart.starts_with("restart boss/worker life 1 lost: host `host-a`"),
        "{restart}"
    );
    // The same address, a new life on host-b.
    worker.send(Job(10)).await.unwrap();
    assert_eq!(worker.ask(Sum).await.unwrap(), 10);
    assert_eq!(*done_b.lock().unwrap(), [10]);
    world.heard_line("Tenth(10)").await;
    assert_eq!(worker.snapshot().restarts, 1);
    worker.stop();
    let exit = world.heard_line("exit").await;
    assert_eq!(exit, "exit boss/worker stopped dropped=0");
    host_b.stop().await;
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn frames_of_an_earlier_life_are_dropped() {
    let mut world = world().await;
    let done_b = Arc::new(Mutex::new(Vec::new()));
    let host_b = start_host("host-b", &world.transport, &world.gate, &done_b).await;
    let worker = world
        .worker_with(options(RestartPolicy::on_failure()))
        .await;
    assert_eq!(worker.ask(Sum).await.unwrap(), 0);
    // The first life's UP messages are lost on the way, and kept aside to arrive late.
    let late: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
    let kept = late.clone();
    world.transport.set_faults(move |d| match d.frames.first() {
        Some(_) if d.frames.iter().any(|f| f.kind == "up" && f.epoch == 1) => {
            kept.lock()
                .unwrap()
                .push((d.to.to_owned(), Bytes::copy_from_slice(d.frame)));
            Fate::Drop
        }
        _ => Fate::Deliver,
    });
    worker.send(Job(10)).await.unwrap();
    // Done on host-a, its `Tenth(10)` lost (and so everything after it on the edge, held
    // back to keep the order, until host-a is lost).
    until(|| (world.done() == [10]).then_some(())).await;
    world.host.take().unwrap().kill().await;
    world.heard_line("restart").await;
    worker.send(Job(20)).await.unwrap();
    world.heard_line("Tenth(20)").await;
    // The first life's frames arrive now, in the second life.
    let late = late.lock().unwrap().clone();
    assert!(!late.is_empty());
    for (to, frame) in late {
        world.transport.send(&to, frame).await.unwrap();
    }
    worker.send(Job(30)).await.unwrap();
    world.heard_line("Tenth(30)").await;
    // The first life's `Tenth(10)` never reached the parent.
    let tenths: Vec<String> = world
        .heard()
        .into_iter()
        .filter(|l| l.starts_with("Tenth"))
        .collect();
    assert_eq!(tenths, ["Tenth(20)", "Tenth(30)"]);
    host_b.stop().await;
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_child_that_fails_starts_again_in_place() {
    let world = world().await;
    let worker = world
        .worker_with(options(RestartPolicy::on_failure()))
        .await;
    worker.send(Job(5)).await.unwrap();
    worker.send(Fail).await.unwrap();
    // Sent before the failure is known: it reaches the failed life on the host, which
    // drops it; it is counted.
    worker.send(Job(7)).await.unwrap();
    let restart = world.heard_line("restart").await;
    assert_eq!(restart, "restart boss/worker life 1 failed: told to fail");
    // A new life, on the same host (the workers of the test share what they have done).
    worker.send(Job(9)).await.unwrap();
    assert_eq!(world.done(), [5]);
    assert_eq!(worker.ask(Sum).await.unwrap(), 14);
    assert_eq!(world.done(), [5, 9]);
    worker.stop();
    let exit = world.heard_line("exit").await;
    assert_eq!(exit, "exit boss/worker stopped dropped=1");
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn past_its_limit_a_child_escalates_and_its_parent_fails() {
    let world = world().await;
    let policy = RestartPolicy::on_failure().max_restarts(1, Duration::from_secs(60));
    let worker = world.worker_with(options(policy)).await;
    worker.send(Fail).await.unwrap();
    world.heard_line("restart").await;
    worker.send(Fail).await.unwrap();
    let exit = world.heard_line("exit").await;
    assert_eq!(
        exit,
        "exit boss/worker failed: supervised `boss/worker` (Worker) failed: told to fail after 1 restart in its window dropped=0 escalated"
    );
    let boss_exit = world.end().await;
    assert!(
        boss_exit
            .to_string()
            .contains("told to fail after 1 restart"),
        "{boss_exit}"
    );
}
