//! `relay serve` as a user runs it: the embedded sink, a database file, clients streaming,
//! and SIGTERM in the middle of the load. The graceful stop loses nothing received.
//!
//! The signal goes to the whole process: no other test of the binary calls
//! `taskthread::run` or listens for a signal (the `relay serve` of `bad_input` fails
//! before it would).

use std::time::Duration;

use indicatif::ProgressBar;
use taskthread::ThreadState;
use taskthread_examples::relay::app::{self, ServeOptions};
use taskthread_examples::relay::database;
use taskthread_examples::relay::load::{LoadGenerator, LoadOptions, RelayClient};

use crate::common::{dead_url, init_tracing, server_config, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_the_middle_of_a_load_stops_serve_without_losing_a_frame() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let (addr, _) = dead_url().await; // a free port for `--listen`
    let serve = tokio::spawn(app::serve(ServeOptions {
        listen: addr,
        urls: Vec::new(), // the embedded sink
        db: db.clone(),
        server: server_config(),
        ws_buffer: None,
    }));

    // Once a client is greeted, `taskthread::run` is waiting for the signal.
    let guard = tokio::time::Instant::now() + Duration::from_secs(60);
    while RelayClient::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < guard,
            "the relay never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let progress = ProgressBar::hidden();
    let load = taskthread::spawn(LoadGenerator::new(LoadOptions {
        addr,
        clients: 4,
        frames: 1_000_000, // far more than get sent before the signal
        min_frame: 1,
        max_frame: 16 * 1024,
        acks: false,
        seed: 11,
        progress: progress.clone(),
    }));
    wait_until("the clients to send a few hundred frames", || {
        progress.position() >= 300
    })
    .await;
    // Sent is not yet received (the sockets hold megabytes): wait for the relay to store
    // some, so that the signal surely cuts a load the relay is taking.
    wait_until("the relay to store some", || {
        database::read_back(&db).is_ok_and(|(rows, _)| rows > 0)
    })
    .await;

    // The signal comes in the middle of the load: the generator has not finished.
    assert_eq!(
        load.snapshot().state,
        ThreadState::Running,
        "the load was still running"
    );
    let pid = std::process::id().to_string();
    let killed = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(killed.success());

    let outcome = serve.await.unwrap().unwrap();
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert!(outcome.is_success(), "{}", outcome.summary);
    let s = outcome.summary;
    assert!(s.received > 0);
    assert_eq!((s.forwarded, s.stored, s.lost), (s.received, s.received, 0));
    let (count, _) = database::read_back(&db).unwrap();
    assert_eq!(count, s.stored);

    load.stop();
    load.join().await;
}
