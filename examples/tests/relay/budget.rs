//! The byte budget: frames take their size from it as soon as their length prefix has
//! arrived, and give it back when their last copy is dropped; when it is spent, the relay
//! stops reading from its clients (TCP slows them down) and drops nothing.

use std::time::Duration;

use taskthread_examples::relay::app::{RelayConfig, StartError};
use taskthread_examples::relay::budget::Budget;
use taskthread_examples::relay::frame::{Checksum, HEADER_LEN};
use taskthread_examples::relay::load::RelayClient;
use taskthread_examples::relay::packet_reader::{READ_AHEAD, READ_SIZE};
use taskthread_examples::relay::tcp_server::ServerConfig;

use crate::common::{
    TestRelay, assert_every_byte_accounted, loopback, payload, server_config, sub_options,
    wait_until,
};

/// The most a connection reads beyond what the budget holds: its read-ahead, and the
/// packet that carries a frame's length prefix.
const WINDOW: u64 = ((READ_AHEAD + 2) * READ_SIZE) as u64;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn waiters_are_served_in_order_so_a_large_frame_is_not_starved() {
    let budget = Budget::new(100);
    let held = budget.reserve(60).await;
    let large = tokio::spawn({
        let budget = budget.clone();
        async move { budget.reserve(80).await }
    });
    tokio::task::yield_now().await; // the large request is waiting now
    assert!(
        budget.try_reserve(10).is_none(),
        "40 bytes are free, but promised to the large frame that came first"
    );
    drop(held);
    let large = large.await.unwrap();
    assert_eq!((large.bytes(), budget.in_use()), (80, 80));
    assert!(budget.try_reserve(30).is_none());
    let small = budget.try_reserve(20).unwrap();
    assert_eq!(budget.in_use(), 100);
    drop((large, small));
    assert_eq!((budget.in_use(), budget.peak()), (0, 100));

    // A request larger than the whole budget is served as the whole budget.
    assert_eq!(budget.reserve(1000).await.bytes(), 100);
}

/// A relay whose database is locked by another connection: nothing can be stored.
struct LockedDatabase(rusqlite::Connection);

impl LockedDatabase {
    fn lock(db: &std::path::Path) -> Self {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        Self(conn)
    }

    fn unlock(self) {
        self.0.execute_batch("COMMIT").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_budget_is_spent_the_relay_stops_reading_and_drops_nothing() {
    let max_buffered = 1 << 20;
    let config = ServerConfig {
        max_buffered,
        ..server_config()
    };
    let relay = TestRelay::start(config, 0).await;
    let locked = LockedDatabase::lock(&relay.db);

    // Four clients, each with far more to send than the budget and the sockets hold.
    let clients = 4;
    let frames = 1000;
    let senders: Vec<_> = (0..clients)
        .map(|c| {
            let addr = relay.addr();
            tokio::spawn(async move {
                let mut client = RelayClient::connect(addr).await.unwrap();
                for n in 0..frames {
                    let frame = vec![(c * 7 + n) as u8; 16 * 1024];
                    client.send_frame(&frame).await.unwrap();
                }
                client.finish().await.unwrap()
            })
        })
        .collect();

    // Nothing is stored, so nothing is given back: the budget fills, and reading stops.
    let budget = relay.relay.budget().clone();
    wait_until("the budget to be spent", || {
        budget.in_use() + 16 * 1024 + HEADER_LEN > max_buffered
    })
    .await;
    let stats = relay.stats().clone();
    let bound = max_buffered as u64 + clients * WINDOW;
    assert!(
        stats.bytes_read() <= bound,
        "read {} bytes with a budget of {max_buffered}",
        stats.bytes_read()
    );
    assert!(
        senders.iter().all(|s| !s.is_finished()),
        "the clients are held up"
    );
    tokio::time::sleep(Duration::from_millis(200)).await; // a trigger, not a measurement
    assert!(
        stats.bytes_read() <= bound,
        "still: the relay reads no further"
    );
    assert!(budget.peak() <= max_buffered);
    assert_eq!(stats.stored(), 0);

    // Once the database is free, everything is stored: nothing was dropped.
    locked.unlock();
    let mut sent = Checksum::default();
    for sender in senders {
        sent.merge(sender.await.unwrap());
    }
    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert_eq!(finished.stats.received_checksum(), sent);
    assert_eq!(sent.frames, clients * frames);
    assert!(finished.stats.frames_truncated() == 0);
    assert_eq!(budget.in_use(), 0, "every frame gave its bytes back");
    assert!(budget.peak() <= max_buffered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_take_their_whole_size_once_their_length_has_arrived() {
    // Clients that announce large frames and send almost all of each, then wait: only as
    // many frames as fit in the budget are admitted, and the others' clients are not read.
    let frame = 256 * 1024;
    let max_buffered = 4 * (frame + HEADER_LEN);
    let config = ServerConfig {
        max_frame: frame,
        max_buffered,
        ..server_config()
    };
    let relay = TestRelay::start(config, 0).await;
    let clients = 10;
    let mut held = Vec::new();
    for c in 0..clients {
        let mut client = RelayClient::connect(relay.addr()).await.unwrap();
        let mut wire = bytes::BytesMut::new();
        taskthread_examples::relay::frame::encode(&payload(c, 0, frame), &mut wire);
        let almost = wire.len() - 1;
        held.push(tokio::spawn(async move {
            client.send_raw(&wire[..almost]).await.unwrap();
            client
        }));
    }
    let budget = relay.relay.budget().clone();
    wait_until("four frames admitted", || budget.in_use() == max_buffered).await;
    let stats = relay.stats().clone();
    assert!(stats.bytes_read() <= max_buffered as u64 + clients * WINDOW);
    assert_eq!(stats.received(), 0, "no frame is complete");

    // The clients give up: their frames are cut, and the budget is given back.
    for client in held {
        drop(client.await.unwrap());
    }
    wait_until("every frame cut", || stats.frames_truncated() == clients).await;
    assert_eq!(budget.in_use(), 0);
    let finished = relay.finish().await;
    assert_eq!(finished.summary.truncated, clients);
    assert_eq!(finished.summary.lost, 0);
    assert_every_byte_accounted(&finished.stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_that_do_not_fit_together_are_start_up_errors() {
    crate::common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let config = |server: ServerConfig, buffer: usize, destinations: usize| RelayConfig {
        listen: loopback(),
        urls: vec!["ws://127.0.0.1:9/".to_owned(); destinations],
        db: dir.path().join("relay.db"),
        server,
        sub: taskthread_examples::relay::websocket::SubOptions {
            buffer,
            ..sub_options()
        },
    };
    let budget = |max_buffered| ServerConfig {
        max_frame: 1 << 20,
        max_buffered,
        ..server_config()
    };
    let cases = [
        (
            budget(1 << 20),
            1 << 20,
            0,
            "smaller than the largest frame",
        ),
        (budget(8 << 20), 1 << 19, 1, "a destination's buffer"),
        (
            budget(8 << 20),
            4 << 20,
            2,
            "leave no room in the byte budget",
        ),
    ];
    for (server, buffer, destinations, expected) in cases {
        let err = taskthread_examples::relay::Relay::start(config(server, buffer, destinations))
            .await
            .unwrap_err();
        assert!(matches!(err, StartError::Config(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    // Fitting limits start.
    let relay = taskthread_examples::relay::Relay::start(config(budget(16 << 20), 4 << 20, 2))
        .await
        .unwrap();
    relay.stop();
    relay.join().await;
}
