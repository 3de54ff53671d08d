//! Bad input at every boundary of the relay: each case gets a clear log line, affects only
//! the offending client or destination, and is followed by a well-behaved client that is
//! served in full.

use std::time::Duration;

use taskthread::Exit;
use taskthread_examples::relay::app::{self, RelayConfig, ServeOptions, StartError};
use taskthread_examples::relay::frame::{Checksum, encode};
use taskthread_examples::relay::load::RelayClient;
use taskthread_examples::relay::sink::{self, WebsocketSink};
use taskthread_examples::relay::tcp_server::ServerConfig;
use taskthread_examples::relay::websocket::SubOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Level;

use crate::common::{
    Logged, TestRelay, assert_closed_by_relay, assert_every_byte_accounted, dead_url, init_tracing,
    logged_about, loopback, payload, server_config, sub_options, wait_until, well_behaved_client,
};

/// Sub options that buffer only `frames` frames of 100 bytes.
fn buffering(frames: usize) -> SubOptions {
    SubOptions {
        buffer: frames * 100,
        ..sub_options()
    }
}

/// Limits for frames of 100 bytes, with destination buffers of a few frames.
fn frames_of_100() -> ServerConfig {
    ServerConfig {
        max_frame: 100,
        ..server_config()
    }
}

/// A client that sends `frames` frames of 100 bytes and waits until the relay has taken
/// them; returns their checksum, and that of the newest `newest`.
async fn hundred_byte_client(
    addr: std::net::SocketAddr,
    client: u64,
    frames: u64,
    newest: u64,
) -> (Checksum, Checksum) {
    let mut c = RelayClient::connect(addr).await.unwrap();
    let mut last = Checksum::default();
    for n in 0..frames {
        let p = payload(client, n, 100);
        c.send_frame(&p).await.unwrap();
        if n + newest >= frames {
            last.add(&p);
        }
    }
    (c.finish().await.unwrap(), last)
}

fn small_frames() -> ServerConfig {
    ServerConfig {
        max_frame: 1024,
        ..server_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_that_client() {
    let relay = TestRelay::start(small_frames(), 1).await;
    // A client already connected before the bad one, and still served after it.
    let mut before = RelayClient::connect(relay.addr()).await.unwrap();
    before.send_frame(&payload(1, 0, 500)).await.unwrap();

    let mut bad = RelayClient::connect(relay.addr()).await.unwrap();
    bad.send_frame(&payload(2, 0, 1024)).await.unwrap(); // at the limit: fine
    let mut oversized = bytes::BytesMut::new();
    encode(&payload(2, 1, 1025), &mut oversized);
    bad.send_raw(&oversized).await.unwrap();
    assert_closed_by_relay(bad.into_inner()).await;

    before.send_frame(&payload(1, 1, 600)).await.unwrap();
    before.finish().await.unwrap();
    well_behaved_client(relay.addr(), 3, 10).await;

    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert_eq!(finished.stats.clients_rejected(), 1);
    assert_eq!(finished.summary.received, 2 + 1 + 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_only_that_client() {
    let relay = TestRelay::start(server_config(), 1).await;
    let mut garbage = RelayClient::connect(relay.addr()).await.unwrap();
    garbage
        .send_raw(b"GET / HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    assert_closed_by_relay(garbage.into_inner()).await;

    let sent = well_behaved_client(relay.addr(), 1, 10).await;
    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert_eq!(finished.stats.clients_rejected(), 1);
    assert_eq!(finished.stats.received_checksum(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_mid_frame_loses_only_the_incomplete_frame() {
    let relay = TestRelay::start(server_config(), 1).await;
    let mut quitter = RelayClient::connect(relay.addr()).await.unwrap();
    for n in 0..3 {
        quitter.send_frame(&payload(1, n, 200)).await.unwrap();
    }
    let complete = quitter.sent();
    let mut half = bytes::BytesMut::new();
    encode(&payload(1, 3, 200), &mut half);
    quitter.send_raw(&half[..100]).await.unwrap();
    let client = quitter.local_addr().unwrap();
    let mut stream = quitter.into_inner();
    stream.shutdown().await.unwrap(); // gone in the middle of the fourth frame
    assert_closed_by_relay(stream).await;
    let stats = relay.stats().clone();
    wait_until("the incomplete frame to be counted", || {
        stats.frames_truncated() == 1
    })
    .await;
    // The client's doing, and said so.
    let cut = the_incomplete_frame_line(client);
    assert_eq!(cut.level, Level::WARN, "{cut:?}");
    assert_eq!(
        cut.message,
        "the stream ended in the middle of a frame: 96 of its 200 payload bytes had arrived, \
         100 bytes discarded"
    );

    let mut sent = well_behaved_client(relay.addr(), 2, 10).await;
    sent.merge(complete);
    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert_eq!(finished.stats.received_checksum(), sent);
    assert_eq!(finished.stats.frames_truncated(), 1);
    assert_eq!(finished.stats.bytes_discarded(), 100);
    assert_eq!(finished.stats.clients_rejected(), 0);
}

/// The one line a processor logs about a frame its connection's end left incomplete.
fn the_incomplete_frame_line(client: std::net::SocketAddr) -> Logged {
    let lines: Vec<_> = logged_about(client)
        .into_iter()
        .filter(|l| l.message.contains("in the middle of a frame"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    lines[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_cut_by_a_stop_is_logged_as_the_relays_doing() {
    let relay = TestRelay::start(server_config(), 1).await;
    let mut client = RelayClient::connect(relay.addr()).await.unwrap();
    client.send_frame(&payload(1, 0, 200)).await.unwrap();
    let mut half = bytes::BytesMut::new();
    encode(&payload(1, 1, 200), &mut half);
    client.send_raw(&half[..100]).await.unwrap(); // and then nothing: the client stays
    let stats = relay.stats().clone();
    wait_until("the relay to read all of it", || {
        stats.bytes_read() == 204 + 100
    })
    .await;

    let addr = client.local_addr().unwrap();
    let finished = relay.finish().await; // cuts the client in the middle of its frame
    finished.assert_nothing_lost();
    assert_eq!(finished.summary.received, 1);
    assert_eq!(finished.stats.frames_truncated(), 1);
    assert_eq!(finished.stats.bytes_discarded(), 100);
    let cut = the_incomplete_frame_line(addr);
    assert_eq!(cut.level, Level::INFO, "{cut:?}");
    assert_eq!(
        cut.message,
        "the relay closed the connection in the middle of a frame: 100 bytes discarded"
    );
    assert_closed_by_relay(client.into_inner()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_beyond_max_clients_are_refused() {
    let config = ServerConfig {
        max_clients: 2,
        ..server_config()
    };
    let relay = TestRelay::start(config, 1).await;
    let mut first = RelayClient::connect(relay.addr()).await.unwrap();
    let second = RelayClient::connect(relay.addr()).await.unwrap();
    let refused = RelayClient::connect(relay.addr()).await;
    assert!(refused.is_err(), "a third client was greeted");
    assert_eq!(relay.stats().clients_refused(), 1);

    // Once a client has left, there is room again.
    first.send_frame(&payload(1, 0, 100)).await.unwrap();
    let mut sent = first.finish().await.unwrap();
    let stats = relay.stats().clone();
    wait_until("the first client to be gone", || {
        stats.clients_closed() == 1
    })
    .await;
    sent.merge(well_behaved_client(relay.addr(), 3, 10).await);
    sent.merge(second.finish().await.unwrap());

    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert_eq!(finished.stats.received_checksum(), sent);
    assert_eq!(finished.stats.clients_accepted(), 3);
    assert_eq!(finished.stats.clients_refused(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_disconnected() {
    let config = ServerConfig {
        idle_timeout: Some(Duration::from_secs(1)),
        ..server_config()
    };
    let relay = TestRelay::start(config, 1).await;
    let mut idle = RelayClient::connect(relay.addr()).await.unwrap();
    idle.send_raw(&[0, 0]).await.unwrap(); // half a length prefix, then nothing
    let client = idle.local_addr().unwrap();
    assert_closed_by_relay(idle.into_inner()).await;
    assert_eq!(relay.stats().clients_idle(), 1);

    let sent = well_behaved_client(relay.addr(), 1, 10).await;
    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert_eq!(finished.stats.received_checksum(), sent);
    assert_eq!(finished.stats.clients_idle(), 1);
    assert_eq!(finished.stats.frames_truncated(), 1);
    assert_eq!(finished.stats.bytes_discarded(), 2);
    // The relay cut the connection, not the client: the log says which.
    let logged = logged_about(client);
    let idle = logged.iter().find(|l| l.message.contains("idle timeout"));
    assert_eq!(idle.map(|l| l.level), Some(Level::WARN), "{logged:#?}");
    let cut = the_incomplete_frame_line(client);
    assert_eq!(cut.level, Level::INFO, "{cut:?}");
    assert_eq!(
        cut.message,
        "the relay closed the connection in the middle of a frame: 2 bytes discarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_is_down_gets_its_frames_counted_as_lost() {
    let (_, url) = dead_url().await;
    let relay = TestRelay::start_with(server_config(), 1, vec![url], sub_options()).await;
    let sent = well_behaved_client(relay.addr(), 1, 10).await;

    let finished = relay.finish().await;
    // The live sink and the database have everything; the dead destination nothing.
    let s = finished.summary;
    assert!(matches!(finished.exit, Exit::Stopped), "{}", finished.exit);
    assert_eq!((s.received, s.stored, s.forwarded, s.lost), (10, 10, 0, 10));
    assert_eq!(finished.stats.undelivered(), 10);
    assert_eq!(finished.stats.frames_in_flight(), 0);
    assert_eq!(finished.sinks[0].received, sent);
    assert_eq!(finished.db_checksum, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_down_for_long_keeps_only_its_buffer_in_flight() {
    // `relay serve` with a destination that stays down: frames keep coming and are lost;
    // the relay's bookkeeping stays as large as the sub's buffer, not as the losses.
    let (_, url) = dead_url().await;
    let relay = TestRelay::start_with(frames_of_100(), 0, vec![url], buffering(8)).await;
    let frames = 500;
    let stats = relay.stats().clone();
    hundred_byte_client(relay.addr(), 1, frames, 0).await;
    wait_until("the dead sub to drop all but 8", || {
        stats.undelivered() == frames - 8
    })
    .await;
    assert_eq!(stats.frames_in_flight(), 8, "only the dead sub's buffer");
    assert_eq!(stats.forwarded(), 0);
    assert_eq!(stats.ws_dropped(), frames - 8);
    // Once every frame is stored, only the buffer's frames (with their length prefixes)
    // hold the byte budget.
    let budget = relay.relay.budget().clone();
    wait_until("every frame stored and released", || {
        stats.stored() == frames && budget.in_use() == 8 * 104
    })
    .await;

    let finished = relay.finish().await;
    let s = finished.summary;
    assert_eq!(
        (s.received, s.stored, s.forwarded, s.lost, s.ws_dropped),
        (frames, frames, 0, frames, frames)
    );
    assert_eq!(finished.stats.undelivered(), frames);
    assert_eq!(
        finished.stats.frames_in_flight(),
        0,
        "all settled at the stop"
    );
    assert_every_byte_accounted(&finished.stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_the_oldest_frames_counted_as_lost() {
    let (addr, url) = dead_url().await;
    let relay = TestRelay::start_with(frames_of_100(), 0, vec![url], buffering(4)).await;
    let (_, newest) = hundred_byte_client(relay.addr(), 1, 10, 4).await;
    let stats = relay.stats().clone();
    wait_until("six frames to fall off the buffer", || {
        stats.undelivered() == 6
    })
    .await;

    // The destination comes up: the sub reconnects and sends the four it kept.
    let destination = WebsocketSink::bind(addr).await.unwrap();
    let mut destination = taskthread::spawn(destination);
    let finished = relay.finish().await;
    let report = sink::settle(&mut destination).await.unwrap();
    destination.stop();
    destination.join().await;

    let s = finished.summary;
    assert_eq!(
        (s.received, s.stored, s.forwarded, s.lost, s.ws_dropped),
        (10, 10, 4, 6, 6)
    );
    assert_eq!(report.received, newest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_drops_is_reconnected_and_gets_the_rest() {
    init_tracing();
    let first = WebsocketSink::bind(loopback()).await.unwrap();
    let (addr, url) = (first.local_addr(), first.url());
    let first = taskthread::spawn(first);
    let relay = TestRelay::start_with(server_config(), 0, vec![url], sub_options()).await;

    let mut sent = well_behaved_client(relay.addr(), 1, 5).await;
    let stats = relay.stats().clone();
    wait_until("the destination to confirm 5 frames", || {
        stats.confirmed() == 5
    })
    .await;
    let before = first.ask(sink::Count).await.unwrap();
    assert_eq!(before.received.frames, 5);
    first.stop(); // the destination goes away, dropping the connection
    first.join().await;
    wait_until("the sub to notice", || stats.destination_drops() >= 1).await;

    sent.merge(well_behaved_client(relay.addr(), 2, 5).await); // buffered meanwhile
    let second = WebsocketSink::bind(addr).await.unwrap();
    let mut second = taskthread::spawn(second);
    let finished = relay.finish().await;
    let after = sink::settle(&mut second).await.unwrap();
    second.stop();
    second.join().await;

    let s = finished.summary;
    assert_eq!((s.received, s.stored, s.forwarded, s.lost), (10, 10, 10, 0));
    let mut both = before.received;
    both.merge(after.received);
    assert_eq!(both, sent);
    assert_eq!(after.received.frames, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_a_destination_never_read_are_sent_again_after_reconnecting() {
    // A destination that completes the handshake, takes the bytes without reading them as
    // websocket messages (so it answers no ping), and goes away.
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("ws://{addr}/");
    let payload_bytes: usize = (0..5).map(|n| 100 + n * 10).sum();
    let silent = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut raw = tokio_tungstenite::accept_async(socket)
            .await
            .unwrap()
            .into_inner();
        let (mut seen, mut buf) = (0, [0; 4096]);
        while seen < payload_bytes {
            match raw.read(&mut buf).await.unwrap() {
                0 => break,
                n => seen += n,
            }
        }
    });
    let relay = TestRelay::start_with(server_config(), 0, vec![url], sub_options()).await;
    let sent = well_behaved_client(relay.addr(), 1, 5).await;
    silent.await.unwrap(); // gone, with every frame written to it and none confirmed
    let stats = relay.stats().clone();
    wait_until("the sub to notice", || stats.destination_drops() >= 1).await;
    assert_eq!(stats.confirmed(), 0);

    let sink = WebsocketSink::bind(addr).await.unwrap();
    let mut sink = taskthread::spawn(sink);
    let finished = relay.finish().await;
    let report = sink::settle(&mut sink).await.unwrap();
    sink.stop();
    sink.join().await;

    let s = finished.summary;
    assert_eq!((s.received, s.stored, s.forwarded, s.lost), (5, 5, 5, 0));
    assert_eq!(report.received, sent, "the frames were sent again");
    assert_eq!(finished.stats.confirmed(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_opened_is_a_start_up_error() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let config = |db| RelayConfig {
        listen: loopback(),
        urls: vec!["ws://127.0.0.1:9/".to_owned()],
        db,
        server: server_config(),
        sub: sub_options(),
    };

    let missing = dir.path().join("no/such/dir/relay.db");
    let err = app::Relay::start(config(missing.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Database(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with("cannot open the database `"),
        "{message}"
    );
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );

    let not_a_database = dir.path().join("notes.txt");
    std::fs::write(&not_a_database, vec![b'x'; 4096]).unwrap();
    let err = app::Relay::start(config(not_a_database)).await.unwrap_err();
    assert!(err.to_string().contains("not a database"), "{err}");

    // `relay serve` stops there too, before listening.
    let err = app::serve(ServeOptions {
        listen: loopback(),
        urls: Vec::new(),
        db: dir.path().join("no/such/dir/relay.db"),
        server: server_config(),
        ws_buffer: None,
    })
    .await
    .unwrap_err();
    assert!(matches!(err, StartError::Database(_)), "{err}");

    // A relay with a good path serves a well-behaved client.
    let relay = TestRelay::start(server_config(), 1).await;
    well_behaved_client(relay.addr(), 1, 3).await;
    relay.finish().await.assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_a_start_up_error() {
    let relay = TestRelay::start(server_config(), 1).await;
    let dir = tempfile::tempdir().unwrap();
    let err = app::Relay::start(RelayConfig {
        listen: relay.addr(),
        urls: vec!["ws://127.0.0.1:9/".to_owned()],
        db: dir.path().join("relay.db"),
        server: server_config(),
        sub: sub_options(),
    })
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {}:", relay.addr())),
        "{err}"
    );
    well_behaved_client(relay.addr(), 1, 3).await;
    relay.finish().await.assert_nothing_lost();
}
