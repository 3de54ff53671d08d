//! The relay end to end on loopback: real TCP clients, the tree, embedded websocket sinks
//! and SQLite in a temporary directory. Every frame is accounted for, also when the relay
//! is stopped in the middle of a load.

use std::future;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use taskthread::{Exit, ThreadState};
use taskthread_examples::relay::app::{self, DemoOptions, Summary};
use taskthread_examples::relay::budget::Budget;
use taskthread_examples::relay::load::{LoadGenerator, LoadOptions, RelayClient};
use taskthread_examples::relay::{RelayStats, TcpConnection};

use crate::common::{
    TestRelay, assert_every_byte_accounted, init_tracing, loopback, payload, server_config,
    wait_until, well_behaved_client,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_has_the_shape_of_the_sample_problem() {
    let relay = TestRelay::start(server_config(), 1).await;
    let client = RelayClient::connect(relay.addr()).await.unwrap();
    let tree = "\
Master
    TcpServer: UP: Frame
        TcpConnection: UP: Frame
            DataProcessor: IN: Packet, UP: Frame
    WebsocketMaster: IN: Frame
        WebsocketSub: IN: Frame
    Database: IN: Frame
";
    // The threads come up concurrently (the client's connection may appear before the
    // websocket side has spawned its sub), so wait for the whole tree, not just a part.
    wait_until("the whole tree, the client's connection included", || {
        relay.relay.snapshot().render_types() == tree
    })
    .await;
    assert_eq!(relay.relay.snapshot().render_types(), tree);
    let snapshot = relay.relay.snapshot();
    assert!(
        snapshot
            .find("master/tcp_server/conn/data_processor")
            .is_some(),
        "{snapshot}"
    );
    client.finish().await.unwrap();
    relay.finish().await.assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_from_many_clients_reach_every_sink_and_the_database() {
    let relay = TestRelay::start(server_config(), 2).await;
    let mut load = taskthread::spawn(LoadGenerator::new(LoadOptions {
        addr: relay.addr(),
        clients: 4,
        frames: 50,
        min_frame: 1,
        max_frame: 8 * 1024,
        acks: false,
        seed: 42,
        progress: ProgressBar::hidden(),
    }));
    let sent = load.recv().await.unwrap().checksum;
    load.join().await;
    assert_eq!(sent.frames, 200);

    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert_eq!(finished.stats.received_checksum(), sent);
    assert_eq!(finished.sinks.len(), 2);
    assert_eq!(finished.stats.clients_accepted(), 4);
    assert_eq!(finished.stats.clients_closed(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_in_the_middle_of_a_load_loses_nothing_received() {
    let relay = TestRelay::start(server_config(), 2).await;
    let load = taskthread::spawn(LoadGenerator::new(LoadOptions {
        addr: relay.addr(),
        clients: 4,
        frames: 1_000_000, // far more than get sent before the stop
        min_frame: 1,
        max_frame: 16 * 1024,
        acks: false,
        seed: 7,
        progress: ProgressBar::hidden(),
    }));
    let stats = relay.stats().clone();
    wait_until("a few hundred frames", || stats.received() >= 300).await;

    // Stop the relay while the clients are still streaming: the load generator has not
    // finished (it would have ended itself after its last frame).
    assert_eq!(
        load.snapshot().state,
        ThreadState::Running,
        "the load was still running"
    );
    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert!(finished.summary.received >= 300);

    // The clients lose their connection; that is theirs to report.
    load.stop();
    load.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_read_when_a_connection_stops_become_frames_or_are_counted() {
    init_tracing();
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A client that streams far more than the connection can hold while nobody takes its
    // frames; its writes fail once the connection is gone.
    let client = tokio::spawn(async move {
        let mut client = RelayClient::connect(addr).await.unwrap();
        for n in 0..100_000 {
            if client.send_frame(&payload(1, n, 1000)).await.is_err() {
                break;
            }
        }
    });
    let (socket, peer) = listener.accept().await.unwrap();
    let stats = Arc::new(RelayStats::new());
    let config = server_config();
    let budget = Budget::new(config.max_buffered);
    let connection = TcpConnection::new(socket, peer, &config, budget, Arc::clone(&stats));
    let mut connection = taskthread::spawn(connection);

    // Nobody reads the frames UP: the connection's queues fill, then its processor's (the
    // processor holds one more packet, blocked on sending a frame UP). The socket reader
    // is left waiting with the next packet to hand on, or (as it should) for room before
    // it reads one; then the connection stops.
    wait_until("the processor's queue to fill", || {
        let snapshot = connection.snapshot();
        let processor = snapshot.children.first();
        processor.is_some_and(|p| p.queue_depth + 1 >= p.queue_capacity)
    })
    .await;
    connection.stop();
    let mut frames = 0;
    while connection.recv().await.is_some() {
        frames += 1;
    }
    assert!(matches!(connection.join().await, Exit::Stopped));
    client.await.unwrap();

    // Every packet read was handed on: its complete frames were received and passed UP,
    // and only the incomplete frame at the end was discarded (and counted).
    assert_eq!(frames, stats.received());
    assert_every_byte_accounted(&stats);
    assert!(stats.frames_truncated() <= 1);
    assert!(
        stats.bytes_discarded() < 1004,
        "{}",
        stats.bytes_discarded()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_after_clients_are_all_served() {
    let relay = TestRelay::start(server_config(), 1).await;
    let mut sent = taskthread_examples::relay::frame::Checksum::default();
    for client in 0..5 {
        sent.merge(well_behaved_client(relay.addr(), client, 10).await);
    }
    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert_eq!(finished.stats.received_checksum(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_nagle_delivers_a_stream_cut_anywhere() {
    let relay = TestRelay::start(server_config(), 1).await;
    let mut client = RelayClient::connect(relay.addr()).await.unwrap();
    client.set_nodelay(true).unwrap();
    let mut wire = bytes::BytesMut::new();
    let mut sent = taskthread_examples::relay::frame::Checksum::default();
    for n in 0..50 {
        let payload = payload(7, n, 1 + n as usize * 13);
        taskthread_examples::relay::frame::encode(&payload, &mut wire);
        sent.add(&payload);
    }
    // Odd-sized writes, each sent at once: frames and length prefixes arrive in pieces.
    for chunk in wire.chunks(97) {
        client.send_raw(chunk).await.unwrap();
    }
    assert!(client.nodelay().unwrap());
    client.finish().await.unwrap();
    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert_eq!(finished.stats.received_checksum(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_checks_pass_on_a_small_load() {
    crate::common::init_tracing();
    let options = DemoOptions {
        clients: 3,
        frames: 40,
        max_frame: 16 * 1024,
        sinks: 2,
        seed: 3,
        ..DemoOptions::default()
    };
    let outcome = app::demo(options, future::pending()).await.unwrap();
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert!(outcome.is_success());
    let s = outcome.summary;
    assert_eq!(s.sent, Some(120));
    assert_eq!(
        (s.received, s.forwarded, s.stored, s.acked, s.lost),
        (120, 120, 120, 120, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_demo_loses_nothing() {
    crate::common::init_tracing();
    let options = DemoOptions {
        clients: 4,
        frames: 1_000_000,
        max_frame: 4 * 1024,
        sinks: 2,
        seed: 5,
        ..DemoOptions::default()
    };
    // The interrupt is a trigger, not a measurement: whenever it comes, nothing is lost.
    let interrupt = tokio::time::sleep(Duration::from_millis(300));
    let outcome = app::demo(options, interrupt).await.unwrap();
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    assert!(outcome.is_success());
    let s = outcome.summary;
    assert!(s.sent.unwrap() < 4_000_000, "interrupted: {s}");
    assert_eq!(s.sent, Some(s.received));
}

#[test]
fn the_summary_line_has_the_documented_shape() {
    let mut summary = Summary {
        sent: None,
        received: 10,
        forwarded: 9,
        stored: 10,
        acked: 8,
        truncated: 2,
        ws_dropped: 3,
        lost: 1,
        bytes: 12345,
        elapsed: Duration::from_millis(2500),
    };
    assert_eq!(
        summary.to_string(),
        "relay: frames received=10 forwarded=9 stored=10 acked=8 truncated=2 ws_dropped=3 \
         lost=1 bytes=12345 elapsed=2.50s"
    );
    summary.sent = Some(11);
    assert_eq!(
        summary.to_string(),
        "relay: frames sent=11 received=10 forwarded=9 stored=10 acked=8 truncated=2 \
         ws_dropped=3 lost=1 bytes=12345 elapsed=2.50s"
    );
}
