//! `relay serve` with its views (`--web ADDR`, `--control PATH`) under load: the web view
//! answers `/tree.json` with the relay's tree, `/metrics` with per-path series and
//! `/events` with a stream of updates; the control endpoint answers `taskthread-ctl`; a
//! SIGTERM stops the relay and its views, and nothing is lost.
//!
//! A binary of its own: the test sends SIGTERM to its own process, which must reach no other
//! test's relay.

#![cfg(unix)]

use std::net::SocketAddr;
use std::time::Duration;

use indicatif::ProgressBar;
use taskthread::control::ControlClient;
use taskthread::watch::WatchMessage;
use taskthread_examples::relay::app::{self, ServeOptions};
use taskthread_examples::relay::load::{LoadGenerator, LoadOptions, RelayClient};
use taskthread_examples::relay::observe::ObserveOptions;
use taskthread_examples::relay::tcp_server::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A free port on loopback.
async fn free_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// The body of `GET path`.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    body.to_owned()
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let guard = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < guard,
            "still waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_its_views_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port().await;
    let web = free_port().await;
    let socket = dir.path().join("relay.sock");
    let serve = tokio::spawn(app::serve(ServeOptions {
        listen,
        urls: Vec::new(), // the embedded sink
        db: dir.path().join("relay.db"),
        server: ServerConfig {
            max_frame: 16 * 1024,
            max_clients: 16,
            idle_timeout: None,
            ..ServerConfig::default()
        },
        ws_buffer: None,
        observe: ObserveOptions {
            web: Some(web),
            control: Some(socket.clone()),
        },
    }));
    let guard = tokio::time::Instant::now() + Duration::from_secs(60);
    while RelayClient::connect(listen).await.is_err() {
        assert!(
            tokio::time::Instant::now() < guard,
            "the relay never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let progress = ProgressBar::hidden();
    let load = taskthread::spawn(LoadGenerator::new(LoadOptions {
        addr: listen,
        clients: 4,
        frames: 1_000_000, // far more than get sent before the signal
        min_frame: 1,
        max_frame: 16 * 1024,
        acks: false,
        seed: 7,
        progress: progress.clone(),
    }));
    wait_until("the clients to send a few hundred frames", || {
        progress.position() >= 300
    })
    .await;

    // The tree, as a snapshot.
    let tree: WatchMessage = serde_json::from_str(&get(web, "/tree.json").await).unwrap();
    let WatchMessage::Snapshot(tree) = tree else {
        panic!("a snapshot");
    };
    let paths: Vec<&str> = tree.threads.iter().map(|t| t.path.as_str()).collect();
    for path in ["master", "master/tcp_server", "master/database"] {
        assert!(paths.contains(&path), "{path} in {paths:?}");
    }
    assert!(
        paths
            .iter()
            .filter(|p| p.starts_with("master/tcp_server/"))
            .count()
            >= 4,
        "a connection per client: {paths:?}"
    );

    // The metrics, by path.
    let metrics = get(web, "/metrics").await;
    assert!(
        metrics.contains("taskthread_handled_total{path=\"master/database\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("taskthread_queue_capacity{path=\"master/database\",queue=\"down\"} "),
        "{metrics}"
    );

    // The events: a snapshot, then changes that show the load moving.
    let mut events = TcpStream::connect(web).await.unwrap();
    events
        .write_all(b"GET /events HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(events).lines();
    let mut data = Vec::new();
    while data.len() < 3 {
        let line = lines.next_line().await.unwrap().unwrap();
        if let Some(json) = line.strip_prefix("data: ") {
            data.push(serde_json::from_str::<WatchMessage>(json).unwrap());
        }
    }
    assert!(matches!(data[0], WatchMessage::Snapshot(_)));
    let WatchMessage::Changes(changes) = &data[2] else {
        panic!("changes after the snapshot");
    };
    assert!(
        changes.threads.iter().any(|t| t.path == "master/database"),
        "the database's figures move under load"
    );

    // The control endpoint.
    let mut control = ControlClient::connect_unix(&socket).await.unwrap();
    let answer = control.request("stats master/database").await.unwrap();
    assert!(answer.ok, "{}", answer.payload);
    assert!(answer.payload.starts_with("path: master/database"));

    // SIGTERM: the relay stops gracefully, the views with it.
    let pid = std::process::id().to_string();
    let killed = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let outcome = serve.await.unwrap().unwrap();
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert!(outcome.is_success(), "{}", outcome.summary);
    assert!(
        TcpStream::connect(web).await.is_err(),
        "the web view stopped"
    );
    assert!(!socket.exists(), "the control socket is removed");
    load.stop();
    load.join().await;
}
