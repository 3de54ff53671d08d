//! Websocket destinations that are slow, stalled or silent, served by real
//! tokio-tungstenite servers in the test: the clients and the database never wait for
//! them; each keeps a buffer bounded in bytes; what a destination misses is counted for it,
//! with one warning when it starts lagging and one when it has caught up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use taskthread_examples::relay::frame::Checksum;
use taskthread_examples::relay::link::{Batch, Connected, LastWords, Link};
use taskthread_examples::relay::load::RelayClient;
use taskthread_examples::relay::packet_reader::{READ_AHEAD, READ_SIZE};
use taskthread_examples::relay::sink::{self, WebsocketSink};
use taskthread_examples::relay::websocket::SubOptions;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{
    TestRelay, assert_every_byte_accounted, logged_with, loopback, server_config, sub_options,
    wait_until,
};

/// A buffer of 256 KiB per destination, and writes that wait a minute for a stalled
/// destination before giving it up.
fn small_buffers() -> SubOptions {
    SubOptions {
        buffer: 256 * 1024,
        write_timeout: Duration::from_secs(60),
        flush_timeout: Duration::from_secs(1),
        ..sub_options()
    }
}

/// Sends `frames` frames of 4 KiB and waits for the clean close that says they are all
/// stored.
async fn client(addr: SocketAddr, client: u64, frames: u64) -> Checksum {
    let mut c = RelayClient::connect(addr).await.unwrap();
    for n in 0..frames {
        c.send_frame(&[(client * 13 + n) as u8; 4096])
            .await
            .unwrap();
    }
    c.finish().await.unwrap()
}

/// Runs `clients` clients of `frames` frames each to the end; what they sent.
async fn clients(addr: SocketAddr, clients: u64, frames: u64) -> Checksum {
    let tasks: Vec<_> = (0..clients)
        .map(|c| tokio::spawn(client(addr, c, frames)))
        .collect();
    let mut sent = Checksum::default();
    for task in tasks {
        sent.merge(task.await.unwrap());
    }
    sent
}

/// A destination that completes the handshake, then reads nothing until `go` is notified;
/// then it reads every message until the relay closes the connection, and returns the
/// frames it got.
async fn stalled_destination() -> (String, Arc<Notify>, JoinHandle<Checksum>) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let go = Arc::new(Notify::new());
    let task = tokio::spawn({
        let go = Arc::clone(&go);
        async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
            go.notified().await;
            let mut got = Checksum::default();
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Binary(payload) = message {
                    got.add(&payload);
                }
            }
            got
        }
    });
    (url, go, task)
}

/// The warnings about a destination's lag: (started, stopped).
fn lag_warnings(url: &str) -> (usize, usize) {
    let logged = logged_with("url", url);
    let count = |what: &str| logged.iter().filter(|l| l.message.contains(what)).count();
    (count("is lagging"), count("caught up"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_destination_holds_up_neither_the_clients_nor_the_database() {
    let (url, go, stalled) = stalled_destination().await;
    let relay = TestRelay::start_with(server_config(), 0, vec![url.clone()], small_buffers()).await;

    // 12 MiB, far more than the stalled destination's buffer and sockets hold: every client
    // is served to its clean close (every frame stored) while the destination reads none.
    let (n_clients, frames) = (3, 1000);
    let sent = clients(relay.addr(), n_clients, frames).await;
    let stats = relay.stats().clone();
    assert_eq!(stats.stored(), n_clients * frames);
    assert!(
        stats.ws_dropped() > 0,
        "the stalled destination missed frames"
    );
    assert_eq!(
        lag_warnings(&url),
        (1, 0),
        "one warning when dropping started"
    );

    // It reads again: it gets what was kept for it, and catches up.
    go.notify_one();
    wait_until("the destination to catch up", || lag_warnings(&url).1 == 1).await;
    let finished = relay.finish().await;
    let got = stalled.await.unwrap();

    let s = finished.summary;
    assert_eq!(
        (s.received, s.stored),
        (n_clients * frames, n_clients * frames)
    );
    assert_eq!(finished.db_checksum, sent);
    assert!(got.frames > 0 && got.frames < sent.frames, "{got}");
    assert_eq!(
        s.ws_dropped,
        sent.frames - got.frames,
        "each frame it missed, counted"
    );
    assert_eq!(s.forwarded, got.frames);
    assert_eq!(
        lag_warnings(&url),
        (1, 1),
        "one warning each way, not one per frame"
    );
    assert_every_byte_accounted(&finished.stats);
    assert_eq!(finished.stats.frames_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_destination_gets_what_it_reads_and_the_rest_is_counted() {
    let slow = WebsocketSink::bind_throttled(loopback(), 200 * 1024)
        .await
        .unwrap();
    let url = slow.url();
    let mut slow = taskthread::spawn(slow);
    let relay = TestRelay::start_with(server_config(), 0, vec![url], small_buffers()).await;

    let sent = clients(relay.addr(), 3, 1000).await;
    let stats = relay.stats().clone();
    assert_eq!(
        stats.stored(),
        sent.frames,
        "the clients were served at full speed"
    );
    let finished = relay.finish().await;
    let report = sink::settle(&mut slow).await.unwrap();
    slow.stop();
    slow.join().await;

    // Every frame is either confirmed by the destination or counted as dropped for it.
    let s = finished.summary;
    assert_eq!(s.stored, sent.frames);
    assert_eq!(s.forwarded + s.ws_dropped, sent.frames, "{s}");
    assert!(s.ws_dropped > 0, "it could not keep up: {s}");
    assert!(s.forwarded > 0, "what it read was confirmed: {s}");
    assert!(report.received.frames >= s.forwarded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_never_answers_pings_holds_a_bounded_buffer() {
    // It completes the handshake, then takes every byte without reading it as websocket
    // messages: it answers no ping, so nothing it gets is ever confirmed.
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut raw = tokio_tungstenite::accept_async(socket)
            .await
            .unwrap()
            .into_inner();
        let mut buf = vec![0; 64 * 1024];
        while raw.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    let options = small_buffers();
    let relay = TestRelay::start_with(server_config(), 0, vec![url], options.clone()).await;

    let sent = clients(relay.addr(), 2, 1000).await;
    let stats = relay.stats().clone();
    let budget = relay.relay.budget().clone();
    // Once everything is stored, only the frames kept for the destination are in memory:
    // as many as its buffer holds, not the 8 MiB it was sent.
    wait_until("every frame stored", || stats.stored() == sent.frames).await;
    let kept = (options.buffer / 4096) as u64;
    let most = options.buffer + 4 * kept as usize; // with their length prefixes
    wait_until("only the kept frames in flight and in memory", || {
        stats.frames_in_flight() <= kept && budget.in_use() <= most
    })
    .await;
    assert!(stats.ws_dropped() >= sent.frames - kept);
    assert_eq!(stats.confirmed(), 0);

    let finished = relay.finish().await;
    let s = finished.summary;
    assert_eq!(
        (s.stored, s.forwarded, s.ws_dropped),
        (sent.frames, 0, sent.frames)
    );
    assert_eq!(finished.stats.frames_in_flight(), 0);
    silent.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_whose_buffer_is_the_whole_budget_gets_every_frame() {
    // The demo's kind of destination: it must get everything, so when it lags it holds up
    // the clients (through the budget) instead of missing frames.
    let (url, go, stalled) = stalled_destination().await;
    let max_buffered = 4 << 20;
    let server = taskthread_examples::relay::tcp_server::ServerConfig {
        max_buffered,
        ..server_config()
    };
    let sub = SubOptions {
        buffer: max_buffered,
        ..small_buffers()
    };
    let relay = TestRelay::start_with(server, 0, vec![url], sub).await;
    let addr = relay.addr();
    let load = tokio::spawn(async move { clients(addr, 3, 1000).await });

    let (stats, budget) = (relay.stats().clone(), relay.relay.budget().clone());
    wait_until("the budget to be spent", || {
        budget.in_use() + 4100 > max_buffered
    })
    .await;
    assert_eq!(stats.ws_dropped(), 0, "nothing is dropped for it");
    let read_ahead = 3 * ((READ_AHEAD + 2) * READ_SIZE) as u64;
    assert!(stats.bytes_read() <= max_buffered as u64 + read_ahead);

    go.notify_one();
    let sent = load.await.unwrap();
    let finished = relay.finish().await;
    let got = stalled.await.unwrap();
    let s = finished.summary;
    assert_eq!(got, sent, "every frame");
    assert_eq!(
        (s.stored, s.forwarded, s.ws_dropped, s.lost),
        (3000, 3000, 0, 0)
    );
}

/// A batch handed to a link's task as its sub stops, before the task took it, is the
/// connection's to send on the last flush: the answer to the last ping confirms only
/// frames the destination has read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_handed_over_as_the_sub_stops_is_written_before_it_is_confirmed() {
    let sink = WebsocketSink::bind(loopback()).await.unwrap();
    let url = sink.url();
    let mut sink = taskthread::spawn(sink);
    let timeout = Duration::from_secs(30);
    let Connected(Ok((link, task, events))) = Link::connect(url, timeout, timeout).await else {
        panic!("the sink accepts the connection");
    };
    let payloads: Vec<Bytes> = (0..3u8).map(|n| Bytes::from(vec![n; 100])).collect();
    let mut sent = Checksum::default();
    for payload in &payloads {
        sent.merge(Checksum::of(payload));
    }
    let written = payloads.len() as u64;
    link.write(Batch {
        payloads,
        ping: Some(written),
    })
    .expect("the task has room for one batch");

    // The sub stops listening before the task has run: the task ends at once and gives
    // the connection back, with the batch.
    drop(events);
    let conn = task.await.outcome.expect("given back, not gone");
    let mut last = LastWords::new(conn, Instant::now() + timeout);
    let count = |pong: &[u8]| u64::from_be_bytes(pong.try_into().expect("8 bytes"));
    let mut confirmed = 0;
    let asked_again = Batch {
        payloads: Vec::new(),
        ping: Some(written),
    };
    let open = last
        .write(asked_again, |pong| confirmed = confirmed.max(count(pong)))
        .await;
    assert!(open, "the connection is still open");
    while confirmed < written {
        let pong = last.next_pong().await.expect("the sink answers");
        confirmed = confirmed.max(count(&pong));
    }
    last.close().await;

    let report = sink::settle(&mut sink).await.unwrap();
    assert_eq!(report.received, sent, "every confirmed frame was read");
    sink.stop();
    while sink.recv().await.is_some() {}
    sink.join().await;
}
