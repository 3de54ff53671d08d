//! The relay across processes: its processors in worker processes (this test binary run
//! again as a host: see [`worker_process`]), over a real `nats-server` started on a free
//! loopback port. Without `nats-server` these tests are skipped, unless `CI` is set (then
//! they fail).

use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use taskthread::Exit;
use taskthread_examples::relay::app::{self, DemoOptions, Relay, RelayConfig};
use taskthread_examples::relay::cluster::{self, Cluster, NatsServer, stdin_closed};
use taskthread_examples::relay::database;
use taskthread_examples::relay::frame;
use taskthread_examples::relay::load::{LoadGenerator, LoadOptions, RelayClient, Sent};
use taskthread_examples::relay::remote::{self, Processors};
use taskthread_examples::relay::tcp_server::{Receipts, ServerConfig};
use taskthread_examples::relay::websocket::SubOptions;
use tokio::process::Command;
use tracing::Level;

use crate::common::{
    TestRelay, assert_every_byte_accounted, init_tracing, logged_about, loopback, payload,
    server_config, sub_options, wait_until,
};

/// What tells a run of this binary that it is a worker: `NAME URL`.
const WORKER: &str = "RELAY_TEST_WORKER";

/// Not a test: the body of a worker process, which hosts remote processors until its
/// standard input closes. In an ordinary run of the tests it does nothing.
#[test]
fn worker_process() {
    let Ok(spec) = std::env::var(WORKER) else {
        return;
    };
    let (name, url) = spec.split_once(' ').expect("NAME URL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let hosted = runtime.block_on(remote::run_host(url, name, stdin_closed()));
    // The harness has nothing to report: the process ends here.
    std::process::exit(i32::from(hosted.is_err()));
}

fn worker_command(name: &str, url: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("this test binary"));
    command
        .args(["--exact", "distributed::worker_process", "--nocapture"])
        .env(WORKER, format!("{name} {url}"));
    command
}

/// Whether `nats-server` can be run; without it the tests are skipped, except in CI.
fn nats_server_present() -> bool {
    if cluster::has_nats_server() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "nats-server is missing and CI is set: install it (Debian: `apt-get install nats-server`) or name it in NATS_SERVER"
    );
    eprintln!(
        "skipped: nats-server is not installed (Debian: `apt-get install nats-server`); \
         with CI set, this is a failure"
    );
    false
}

async fn start_cluster() -> (Cluster, Processors) {
    let cluster = Cluster::start(&NatsServer::Auto, 2, worker_command)
        .await
        .expect("nats-server and two workers start");
    let processors = Processors::connect(cluster.url(), cluster.hosts())
        .await
        .expect("the relay reaches the NATS server");
    (cluster, processors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_loses_nothing_with_processors_in_two_workers() {
    if !nats_server_present() {
        return;
    }
    init_tracing();
    let (cluster, processors) = start_cluster().await;
    let options = DemoOptions {
        clients: 4,
        frames: 50,
        max_frame: 16 * 1024,
        sinks: 2,
        seed: 7,
        processors: Some(processors),
        ..DemoOptions::default()
    };
    let outcome = app::demo(options, std::future::pending()).await.unwrap();
    cluster.shutdown().await;
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    let s = outcome.summary;
    assert_eq!(s.sent, Some(200));
    assert_eq!(
        (s.received, s.forwarded, s.stored, s.acked, s.lost),
        (200, 200, 200, 200, 0)
    );
}

/// A worker killed with SIGKILL mid-run: its processors start again on the other worker,
/// the run completes, and every frame the relay read is stored or counted lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_no_frame_silently() {
    if !nats_server_present() {
        return;
    }
    init_tracing();
    let (mut cluster, processors) = start_cluster().await;
    let (sinks, dir) = (
        app::start_sinks(2).await.unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let db = dir.path().join("relay.db");
    let relay = Relay::start(RelayConfig {
        listen: loopback(),
        urls: sinks.iter().map(|(url, _)| url.clone()).collect(),
        db: db.clone(),
        server: ServerConfig {
            max_frame: 16 * 1024,
            idle_timeout: None,
            frame_timeout: None,
            max_buffered: 64 << 20,
            receipts: Receipts::Acks,
            processors: Some(processors),
            ..ServerConfig::default()
        },
        sub: SubOptions {
            buffer: 64 << 20,
            ..sub_options()
        },
    })
    .await
    .unwrap();
    // Clients that would send for a long time: the load is stopped once the processors
    // of the killed worker have started again and more frames have arrived since.
    let mut load = taskthread::spawn(LoadGenerator::new(LoadOptions {
        addr: relay.local_addr(),
        clients: 6,
        frames: 10_000_000,
        min_frame: 1,
        max_frame: 16 * 1024,
        acks: true,
        seed: 11,
        progress: ProgressBar::hidden(),
    }));
    let stats = Arc::clone(relay.stats());
    wait_for("frames to flow", || stats.stored() >= 500).await;
    cluster.kill_worker(0).unwrap();
    wait_for("a processor to start again", || {
        stats.processor_restarts() >= 1
    })
    .await;
    let received = stats.received();
    wait_for("more frames after the restart", || {
        stats.received() >= received + 500
    })
    .await;
    load.stop();
    let Sent { acked, .. } = load.recv().await.unwrap_or_default();
    load.join().await;

    relay.stop();
    let (exit, s) = relay.join().await;
    app::stop_sinks(sinks).await;
    cluster.shutdown().await;

    assert!(
        !matches!(
            exit,
            Exit::Failed(_) | Exit::Panicked(_) | Exit::Aborted { .. }
        ),
        "{exit}"
    );
    assert!(stats.processor_restarts() >= 1);
    // Every frame read in full is stored everywhere, or counted lost.
    assert_eq!(s.forwarded, s.stored, "{s}");
    assert_eq!(s.received, s.stored + s.lost, "{s}");
    assert!(s.lost >= stats.lost_with_workers(), "{s}");
    let (rows, _) = database::read_back(&db).unwrap();
    assert_eq!(rows, s.stored);
    // Clients were told only of frames stored.
    assert!(
        acked <= s.stored && s.acked <= s.stored,
        "acked {acked}: {s}"
    );
}

/// The frame timeout with the processors in workers: a slowloris (a frame of 100 bytes,
/// one byte every 100 ms) is closed long before its frame could be complete, counted as
/// slow, and its partial frame discarded and counted; a client that pauses between frames
/// for longer than the frame timeout is served. Real time: the workers are processes of
/// their own, so the paused clock cannot be used; the slowloris would need 10 s to finish
/// its frame, ten times the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_is_closed_at_the_frame_timeout_with_processors_in_workers() {
    if !nats_server_present() {
        return;
    }
    let (cluster, processors) = start_cluster().await;
    let relay = TestRelay::start(
        ServerConfig {
            frame_timeout: Some(Duration::from_secs(1)),
            processors: Some(processors),
            ..server_config()
        },
        1,
    )
    .await;
    let addr = relay.addr();

    let slowloris = tokio::spawn(async move {
        let mut c = RelayClient::connect(addr).await.unwrap();
        let me = c.local_addr().unwrap();
        let mut wire = bytes::BytesMut::new();
        frame::encode(&payload(1, 0, 100), &mut wire);
        for (sent, byte) in wire.iter().enumerate() {
            if c.send_raw(&[*byte]).await.is_err() {
                return (me, sent);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (me, wire.len())
    });
    let patient = tokio::spawn(async move {
        let mut c = RelayClient::connect(addr).await.unwrap();
        for n in 0..2 {
            c.send_frame(&payload(2, n, 100)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        c.finish().await.unwrap()
    });

    let (slow_addr, sent) = slowloris.await.unwrap();
    assert!(
        sent < 104,
        "closed before its frame was complete: sent {sent}"
    );
    let sent_patiently = patient.await.unwrap();
    let stats = relay.stats().clone();
    wait_until("both clients to be gone", || stats.clients_closed() == 2).await;
    let logged = logged_about(slow_addr);
    let line = logged.iter().find(|l| l.message.contains("frame timeout"));
    assert_eq!(line.map(|l| l.level), Some(Level::WARN), "{logged:#?}");

    let finished = relay.finish().await;
    cluster.shutdown().await;
    assert_eq!(finished.stats.clients_slow(), 1);
    assert_eq!(finished.stats.received_checksum(), sent_patiently);
    let s = finished.summary;
    assert_eq!(
        (s.received, s.stored, s.truncated, s.lost),
        (2, 2, 1, 0),
        "{s}"
    );
    assert!(
        finished.stats.bytes_discarded() > 0,
        "the partial frame's bytes"
    );
    assert_every_byte_accounted(&finished.stats);
}

/// Polls `done` until it holds (a trigger, not a measurement).
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..6_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("waited a minute for {what}");
}
