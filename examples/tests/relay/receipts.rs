//! Receipts: with `--ack`, every acknowledged frame is in the database, whatever happens
//! to the relay after (an abort, a failed write, `kill -9`); without acks, a clean close
//! says every frame is stored, and an abnormal end resets the connection instead. The
//! summary's counts match the database.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use taskthread::Exit;
use taskthread_examples::relay::RelayStats;
use taskthread_examples::relay::app::{self, ServeOptions};
use taskthread_examples::relay::database::{self, Database};
use taskthread_examples::relay::frame::{ACK_LEN, encode};
use taskthread_examples::relay::load::RelayClient;
use taskthread_examples::relay::tcp_server::{Receipts, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::common::{
    TestRelay, dead_url, init_tracing, payload, rows_of, server_config, sub_options, wait_until,
};

fn acking() -> ServerConfig {
    ServerConfig {
        receipts: Receipts::Acks,
        ..server_config()
    }
}

/// Asserts that the client's frames 1 to `acked` are all in the database.
fn assert_acknowledged_stored(db: &Path, client: SocketAddr, acked: u64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let stored: i64 = conn
        .query_row(
            "SELECT count(*) FROM frames WHERE client = ?1 AND seq <= ?2",
            (client.to_string(), acked as i64),
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        stored as u64, acked,
        "{client}: {acked} frames acknowledged, {stored} of them stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_count_the_frames_stored_as_they_are_committed() {
    let relay = TestRelay::start(acking(), 1).await;
    let mut client = RelayClient::connect(relay.addr()).await.unwrap();
    let me = client.local_addr().unwrap();
    for n in 0..10 {
        client.send_frame(&payload(1, n, 500)).await.unwrap();
    }
    // The connection stays open: acknowledgements come after each commit.
    let mut acked = 0;
    while acked < 10 {
        let ack = u64::from(client.next_ack().await.unwrap());
        assert!(
            ack > acked && ack <= 10,
            "counts only grow: {acked} then {ack}"
        );
        acked = ack;
        assert_acknowledged_stored(&relay.db, me, acked);
    }
    for n in 10..20 {
        client.send_frame(&payload(1, n, 500)).await.unwrap();
    }
    let (last, closed) = client.finish_acked().await;
    closed.unwrap();
    assert_eq!(last, 20);
    assert_eq!(rows_of(&relay.db, me), (20, 20));

    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    let s = finished.summary;
    assert_eq!((s.stored, s.acked), (20, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_acks_a_clean_close_comes_once_every_frame_is_stored() {
    let relay = TestRelay::start(server_config(), 1).await;
    for c in 0..3 {
        let mut client = RelayClient::connect(relay.addr()).await.unwrap();
        let me = client.local_addr().unwrap();
        for n in 0..50 {
            client.send_frame(&payload(c, n, 300)).await.unwrap();
        }
        client.finish().await.unwrap();
        assert_eq!(rows_of(&relay.db, me), (50, 50), "stored before the close");
    }
    let finished = relay.finish().await;
    finished.assert_nothing_lost();
    assert_eq!(finished.summary.acked, 0);
}

/// Makes the relay's table, with a trigger that fails every insert once it holds `rows`
/// rows: a full disk, as far as the relay can tell.
fn fails_after(rows: u64) -> impl FnOnce(&Path) {
    move |db| {
        drop(Database::open(db, Arc::new(RelayStats::new())).unwrap());
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch(&format!(
            "CREATE TRIGGER full BEFORE INSERT ON frames \
             WHEN (SELECT count(*) FROM frames) >= {rows} \
             BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;"
        ))
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_acks_a_failed_store_resets_the_connection() {
    let relay =
        TestRelay::start_on(server_config(), 1, vec![], sub_options(), fails_after(5)).await;
    let mut first = RelayClient::connect(relay.addr()).await.unwrap();
    for n in 0..5 {
        first.send_frame(&payload(1, n, 100)).await.unwrap();
    }
    first.finish().await.unwrap(); // stored: a clean close

    let mut second = RelayClient::connect(relay.addr()).await.unwrap();
    for n in 0..5 {
        second.send_frame(&payload(2, n, 100)).await.unwrap();
    }
    let err = second.finish().await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");

    let finished = relay.finish().await;
    assert!(
        matches!(finished.exit, Exit::Failed(_)),
        "{}",
        finished.exit
    );
    let s = finished.summary;
    assert_eq!((s.received, s.stored, s.lost), (10, 5, 5));
    assert_eq!(
        finished.db_count, s.stored,
        "the summary says what the database holds"
    );
}

/// A client that streams frames while it reads its acknowledgements, until the relay goes
/// (or, once paused, sends half a frame and waits). Ends with the last acknowledgement and
/// how the connection ended for the reader.
struct AckingClient {
    addr: SocketAddr,
    acked: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
    parked: Arc<AtomicBool>,
    reader: JoinHandle<io::Result<()>>,
    writer: JoinHandle<()>,
}

impl AckingClient {
    async fn start(relay: SocketAddr, client: u64) -> Self {
        let connected = RelayClient::connect(relay).await.unwrap();
        let addr = connected.local_addr().unwrap();
        let (mut rd, mut wr) = connected.into_inner().into_split();
        let acked = Arc::new(AtomicU64::new(0));
        let paused = Arc::new(AtomicBool::new(false));
        let parked = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn({
            let acked = Arc::clone(&acked);
            async move {
                let mut ack = [0; ACK_LEN];
                loop {
                    match rd.read_exact(&mut ack).await {
                        Ok(_) => acked.store(u32::from_be_bytes(ack).into(), Ordering::SeqCst),
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
            }
        });
        let writer = tokio::spawn({
            let (paused, parked) = (Arc::clone(&paused), Arc::clone(&parked));
            async move {
                for n in 0.. {
                    let mut wire = bytes::BytesMut::new();
                    encode(&payload(client, n, 2000), &mut wire);
                    if paused.load(Ordering::SeqCst) {
                        // Half a frame, then nothing: only the reader sees how the relay
                        // ends the connection (a writer would take a reset's error first).
                        let _ = wr.write_all(&wire[..1000]).await;
                        parked.store(true, Ordering::SeqCst);
                        std::future::pending::<()>().await;
                    }
                    if wr.write_all(&wire).await.is_err() {
                        return;
                    }
                    if n % 50 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        });
        Self {
            addr,
            acked,
            paused,
            parked,
            reader,
            writer,
        }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Stops sending, in the middle of a frame.
    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Whether it has stopped sending.
    fn is_parked(&self) -> bool {
        self.parked.load(Ordering::SeqCst)
    }

    /// The last acknowledgement, and how the connection ended for the reader.
    async fn end(self) -> (SocketAddr, u64, io::Result<()>) {
        let ended = self.reader.await.unwrap();
        self.writer.abort();
        (self.addr, self.acked.load(Ordering::SeqCst), ended)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_relay_resets_its_clients_and_what_it_acknowledged_is_stored() {
    let relay = TestRelay::start(acking(), 1).await;
    let mut clients = Vec::new();
    for c in 0..3 {
        clients.push(AckingClient::start(relay.addr(), c).await);
    }
    wait_until("every client to have acknowledgements", || {
        clients.iter().all(|c| c.acked() >= 20)
    })
    .await;
    for client in &clients {
        client.pause();
    }
    wait_until("the clients to stop in the middle of a frame", || {
        clients.iter().all(AckingClient::is_parked)
    })
    .await;

    let finished = relay.abort().await; // a second Ctrl-C, with frames cut
    assert!(
        matches!(finished.exit, Exit::Aborted { .. }),
        "{}",
        finished.exit
    );
    let s = finished.summary;
    assert_eq!(
        finished.db_count, s.stored,
        "the summary says what the database holds"
    );
    for client in clients {
        let (addr, acked, ended) = client.end().await;
        let err = ended.expect_err("a reset, not a clean close");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        assert!(acked >= 20);
        assert_acknowledged_stored(&finished.db, addr, acked);
    }
    assert!(s.acked <= s.stored);
}

/// Not a test by itself: the relay that
/// `after_kill_9_every_acknowledged_frame_is_in_the_database` runs in a child process
/// (this test binary, run again with `RELAY_TEST_SERVE=ADDR|DB`) and kills.
#[test]
fn serve_until_killed() {
    let Ok(spec) = std::env::var("RELAY_TEST_SERVE") else {
        return;
    };
    let (listen, db) = spec.split_once('|').unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let served = runtime.block_on(app::serve(ServeOptions {
        listen: listen.parse().unwrap(),
        urls: Vec::new(),
        db: db.into(),
        server: acking(),
        ws_buffer: None,
    }));
    panic!("the relay was to be killed, not to end: {served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_every_acknowledged_frame_is_in_the_database() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let (addr, _) = dead_url().await; // a free port for the child
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "receipts::serve_until_killed", "--nocapture"])
        .env("RELAY_TEST_SERVE", format!("{addr}|{}", db.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let guard = tokio::time::Instant::now() + Duration::from_secs(60);
    while RelayClient::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < guard,
            "the relay never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut clients = Vec::new();
    for c in 0..3 {
        clients.push(AckingClient::start(addr, c).await);
    }
    wait_until("every client to have acknowledgements", || {
        clients.iter().all(|c| c.acked() >= 20)
    })
    .await;
    child.kill().unwrap(); // SIGKILL: no stop, no last batch, nothing
    child.wait().unwrap();

    for client in clients {
        // The kernel closes a killed process's connections: a clean close, or a reset if
        // bytes were left unread. Only the acknowledgements say what is stored.
        let (addr, acked, _ended) = client.end().await;
        assert!(acked >= 20);
        assert_acknowledged_stored(&db, addr, acked);
    }
    let (rows, _) = database::read_back(&db).unwrap();
    assert!(rows >= 60);
}
