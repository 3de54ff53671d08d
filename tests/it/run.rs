//! `taskthread::run`: runs until the root ends, or until SIGTERM / Ctrl-C stops it
//! gracefully; a second signal aborts the tree. The signals here are real, sent to this test
//! process with `kill`; no test of the binary outside this module calls `taskthread::run`
//! or listens for a signal. (`Handle::stop_on_signals` and `Background::stop_on_signals`
//! are tested with real signals in `examples/tests/signals.rs`, on a process of their own.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use taskthread::prelude::*;
use tokio::sync::Notify;

/// Held by each test that listens for signals or sends one: the tests of a binary run at
/// once, and a signal reaches every tree of the process that listens.
static SIGNALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn send_sigterm() {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

struct Service {
    started: Arc<Notify>,
    exited: Arc<AtomicBool>,
    slow_exit: bool,
}

#[taskthread]
impl Service {
    #[rescheduling(every = "10ms")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        self.started.notify_one();
        Ok(Reschedule::Again)
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        if self.slow_exit {
            // A stop that takes a long time; the second signal aborts it.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        self.exited.store(true, Ordering::SeqCst);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_signal_stops_the_tree_gracefully_and_a_second_one_aborts_it() {
    let _signals = SIGNALS.lock().await;
    // One graceful stop.
    let started = Arc::new(Notify::new());
    let exited = Arc::new(AtomicBool::new(false));
    let service = Service {
        started: started.clone(),
        exited: exited.clone(),
        slow_exit: false,
    };
    let run = tokio::spawn(taskthread::run(service));
    // The root ticks only after `run` has installed its signal handlers.
    started.notified().await;
    send_sigterm();
    run.await
        .unwrap()
        .expect("a signal is a graceful stop, not a failure");
    assert!(exited.load(Ordering::SeqCst), "the exit hook ran");

    // A stop that hangs: the second signal returns an error at once.
    let started = Arc::new(Notify::new());
    let exited = Arc::new(AtomicBool::new(false));
    let service = Service {
        started: started.clone(),
        exited: exited.clone(),
        slow_exit: true,
    };
    let run = tokio::spawn(taskthread::run(service));
    started.notified().await;
    send_sigterm();
    tokio::task::yield_now().await;
    // Wait until the root is in its (slow) exit hook before the second signal.
    while !run.is_finished() && !exited.load(Ordering::SeqCst) {
        send_sigterm();
        tokio::time::sleep(Duration::from_millis(20)).await;
        if run.is_finished() {
            break;
        }
    }
    let err = run.await.unwrap().expect_err("the second signal aborts");
    assert!(err.to_string().contains("second signal"), "{err}");
    assert!(err.to_string().contains("aborted"), "{err}");
}

struct Finisher {
    fail: bool,
}

#[taskthread]
impl Finisher {
    #[rescheduling(delay = "1s")]
    async fn finish(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        if self.fail {
            return Err(Error::msg("out of disk"));
        }
        Ok(Reschedule::Stop)
    }
}

#[tokio::test(start_paused = true)]
async fn run_returns_when_the_root_ends_with_its_outcome() {
    let _signals = SIGNALS.lock().await;
    taskthread::run(Finisher { fail: false }).await.unwrap();
    let err = taskthread::run(Finisher { fail: true }).await.unwrap_err();
    assert_eq!(err.to_string(), "out of disk");
}

struct Stuck {
    exiting: Arc<Notify>,
}

#[taskthread(up = &'static str)]
impl Stuck {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<&'static str> {
        Ok("pong")
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.up("exiting").await?;
        self.exiting.notify_one();
        std::future::pending::<()>().await; // never finishes cleaning up
        Ok(())
    }
}

struct Ping;

/// A root listening for signals is still the program's: it answers, sends UP, stops and
/// aborts through its handle (no signal is sent here).
#[tokio::test]
async fn a_root_that_stops_on_signals_keeps_its_handle() {
    let _signals = SIGNALS.lock().await;
    let exiting = Arc::new(Notify::new());
    let mut root = taskthread::spawn(Stuck {
        exiting: exiting.clone(),
    })
    .stop_on_signals();
    assert_eq!(root.ask(Ping).await.unwrap(), "pong");
    root.stop();
    assert_eq!(root.recv().await, Some("exiting"));
    exiting.notified().await;
    let addr = root.child_ref();
    assert!(matches!(root.abort().await, Exit::Aborted { .. }));
    assert_eq!(addr.state(), taskthread::ThreadState::Exited);
    // The root's task is gone, and the thread with it.
    assert_eq!(Arc::strong_count(&exiting), 1);
}

struct Fail;

/// A root that fails when told to.
struct Fragile;

#[taskthread(up = u8)]
impl Fragile {
    #[down]
    async fn fail(&mut self, _ctx: &mut Ctx<Self>, _f: Fail) -> Result<()> {
        Err(Error::msg("told to fail"))
    }
}

/// A root watched for signals that ended before its handle aborts it: the abort finds
/// nothing left to cancel and says how the root ended, although the watcher had not yet
/// seen the end.
#[tokio::test(flavor = "current_thread")]
async fn an_abort_of_a_root_that_ended_first_says_how_it_ended() {
    let _signals = SIGNALS.lock().await;
    // On a task of its own, so that it runs before the watcher once the root has ended.
    tokio::spawn(async {
        let mut root = taskthread::spawn(Fragile).stop_on_signals();
        tokio::task::yield_now().await;
        root.send(Fail).await.unwrap();
        // The root's way UP closes in its last step, which wakes this task before the
        // watcher, woken as the root's task finishes.
        assert!(root.recv().await.is_none());
        let exit = root.abort().await;
        assert!(
            matches!(&exit, Exit::Failed(e) if e.to_string() == "told to fail"),
            "{exit}"
        );
    })
    .await
    .unwrap();
}
