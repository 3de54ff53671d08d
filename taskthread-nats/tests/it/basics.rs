//! A remote child works like a local one: tells, asks, UP messages, exits, in order.

use taskthread::prelude::*;
use taskthread::{AskError, ThreadState};

use crate::world::{Divide, Echo, Fail, Job, Sum, until, world};

#[tokio::test(start_paused = true)]
async fn tells_asks_and_up_messages_cross_in_order() {
    let world = world().await;
    let worker = world.worker(ChildOptions::new().name("w")).await;
    assert_eq!(worker.path(), "boss/w");
    for n in 1..=100 {
        worker.send(Job(n)).await.unwrap();
    }
    assert_eq!(worker.ask(Sum).await.unwrap(), 5050);
    assert_eq!(world.done(), (1..=100).collect::<Vec<_>>());
    worker.send(Echo("hello".into())).await.unwrap();
    world.heard_line("Echo").await;
    let tenths: Vec<String> = (1..=10).map(|n| format!("Tenth({})", n * 10)).collect();
    let mut expected = tenths;
    expected.push("Echo(\"hello\")".into());
    assert_eq!(world.heard(), expected);
    assert_eq!(worker.state(), ThreadState::Running);
    // In the parent's snapshot, in place.
    let snapshot = world.boss.snapshot();
    assert_eq!(snapshot.children[0].path, "boss/w");
    assert_eq!(snapshot.children[0].type_name, "Worker");
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_failure_on_the_host_reaches_the_parent_as_its_exit() {
    let world = world().await;
    let worker = world.worker(ChildOptions::new()).await;
    // An ask whose handler fails has no answer; it ends the child.
    assert!(matches!(
        worker.ask(Divide(0)).await,
        Err(AskError::NoReply)
    ));
    let exit = world.heard_line("exit").await;
    assert_eq!(exit, "exit boss/worker failed: division by zero dropped=0");
    until(|| (worker.state() == ThreadState::Exited).then_some(())).await;
    // Ended: a send gives the message back.
    assert_eq!(worker.send(Job(1)).await.unwrap_err().into_inner(), Job(1));
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_from_the_parent_is_graceful_on_the_host() {
    let world = world().await;
    let worker = world.worker(ChildOptions::new()).await;
    for n in 1..=5 {
        worker.send(Job(n)).await.unwrap();
    }
    worker.stop();
    let exit = world.heard_line("exit").await;
    // Everything sent before the stop was handled, then the exit hook ran.
    assert_eq!(world.done(), [1, 2, 3, 4, 5]);
    assert_eq!(world.heard(), ["Bye", "exit boss/worker stopped dropped=0"]);
    assert_eq!(exit, "exit boss/worker stopped dropped=0");
    world.end().await;
}

#[tokio::test(start_paused = true)]
async fn a_fail_message_fails_the_child() {
    let world = world().await;
    let worker = world.worker(ChildOptions::new()).await;
    worker.send(Fail).await.unwrap();
    let exit = world.heard_line("exit").await;
    assert_eq!(exit, "exit boss/worker failed: told to fail dropped=0");
    world.end().await;
}
