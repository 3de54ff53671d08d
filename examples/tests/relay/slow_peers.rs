//! Slow clients, on tokio's paused clock: a frame that has started must arrive in full
//! within the frame timeout, so a client dribbling bytes (a slowloris) cannot hold a place
//! for ever, while a client that is slow between frames, or over each of many frames, is
//! served.

use std::net::SocketAddr;
use std::time::Duration;

use taskthread_examples::relay::load::RelayClient;
use taskthread_examples::relay::tcp_server::ServerConfig;
use tracing::Level;

use crate::common::{TestRelay, logged_about, payload, server_config, wait_until};

/// Limits with the default timeouts, and room for two clients.
fn two_places() -> ServerConfig {
    ServerConfig {
        max_clients: 2,
        idle_timeout: Some(Duration::from_secs(60)),
        frame_timeout: Some(Duration::from_secs(10)),
        ..server_config()
    }
}

/// A slowloris: connects, then sends a frame of 100 bytes one byte a second, until the
/// relay closes the connection. Returns its address and how many bytes it sent.
async fn dribble(addr: SocketAddr, client: u64) -> (SocketAddr, usize) {
    let mut c = RelayClient::connect(addr).await.unwrap();
    let me = c.local_addr().unwrap();
    let mut wire = bytes::BytesMut::new();
    taskthread_examples::relay::frame::encode(&payload(client, 0, 100), &mut wire);
    for (sent, byte) in wire.iter().enumerate() {
        if c.send_raw(&[*byte]).await.is_err() {
            return (me, sent);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    (me, wire.len())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn slowloris_clients_are_closed_at_the_frame_timeout_and_counted() {
    let relay = TestRelay::start(two_places(), 0).await;
    let stats = relay.stats().clone();
    let slow: Vec<_> = (0..2)
        .map(|c| tokio::spawn(dribble(relay.addr(), c)))
        .collect();
    wait_until("both slow clients to be in", || {
        stats.clients_accepted() == 2
    })
    .await;
    assert!(
        RelayClient::connect(relay.addr()).await.is_err(),
        "both places are taken"
    );

    for client in slow {
        let (addr, sent) = client.await.unwrap();
        assert!(
            sent < 104,
            "closed before its frame was complete: sent {sent}"
        );
        let logged = logged_about(addr);
        let line = logged.iter().find(|l| l.message.contains("frame timeout"));
        assert_eq!(line.map(|l| l.level), Some(Level::WARN), "{logged:#?}");
    }
    assert_eq!(stats.clients_slow(), 2);

    // The places are free again: a newcomer is greeted and served.
    wait_until("the slow clients to be gone", || {
        stats.clients_closed() == 2
    })
    .await;
    let mut newcomer = RelayClient::connect(relay.addr()).await.unwrap();
    newcomer.send_frame(&payload(3, 0, 100)).await.unwrap();
    let sent = newcomer.finish().await.unwrap();

    let finished = relay.finish().await;
    assert_eq!(finished.stats.received_checksum(), sent);
    let s = finished.summary;
    assert_eq!((s.received, s.stored, s.truncated, s.lost), (1, 1, 2, 0));
    assert_eq!(finished.stats.clients_refused(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_frame_timeout_is_per_frame_and_quiet_between_frames_is_only_idle() {
    let relay = TestRelay::start(two_places(), 0).await;
    let mut client = RelayClient::connect(relay.addr()).await.unwrap();
    // Each frame takes 8 s (under the frame timeout), three of them 24 s (over it), with
    // 50 s of quiet between them (under the idle timeout).
    for n in 0..3 {
        let mut wire = bytes::BytesMut::new();
        taskthread_examples::relay::frame::encode(&payload(1, n, 1000), &mut wire);
        for piece in wire.chunks(wire.len() / 4 + 1) {
            client.send_raw(piece).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        tokio::time::sleep(Duration::from_secs(50)).await;
    }
    client.finish().await.unwrap();

    let finished = relay.finish().await;
    let s = finished.summary;
    assert_eq!((s.received, s.stored, s.truncated, s.lost), (3, 3, 0, 0));
    assert_eq!(finished.stats.clients_slow(), 0);
    assert_eq!(finished.stats.clients_idle(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_client_silent_between_frames_is_closed_at_the_idle_timeout_cleanly() {
    let relay = TestRelay::start(two_places(), 0).await;
    let mut client = RelayClient::connect(relay.addr()).await.unwrap();
    client.send_frame(&payload(1, 0, 100)).await.unwrap();
    // Then nothing: the relay closes the connection once its frame is stored, and since
    // everything the client sent is, the close is a clean one.
    let sent = client.sent();
    let mut stream = client.into_inner();
    let mut buf = [0; 16];
    let read = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
    assert_eq!(read.unwrap(), 0, "a clean close");
    let stats = relay.stats().clone();
    assert_eq!((stats.clients_idle(), stats.clients_slow()), (1, 0));

    let finished = relay.finish().await;
    assert_eq!(finished.stats.received_checksum(), sent);
    assert_eq!(finished.summary.stored, 1);
}
