//! What the relay tests share: a relay on loopback with embedded sinks and a database in
//! a temporary directory, well-behaved clients, and the final accounting.

#![allow(unreachable_pub)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::{Exit, Handle};
use taskthread_examples::relay::app::{self, Relay, RelayConfig, Summary};
use taskthread_examples::relay::frame::Checksum;
use taskthread_examples::relay::load::RelayClient;
use taskthread_examples::relay::sink::{SinkReport, WebsocketSink};
use taskthread_examples::relay::tcp_server::{Receipts, ServerConfig};
use taskthread_examples::relay::websocket::SubOptions;
use taskthread_examples::relay::{RelayStats, database};
use tempfile::TempDir;
use tracing::Level;
use tracing::field::{Field, Visit};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{self, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Loopback, ephemeral port.
pub fn loopback() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

/// Logs to the test's output (shown for failing tests), and keeps what the relay logs at
/// `info` and above for [`logged_about`], whatever `RUST_LOG` says.
///
/// The subscriber is the process's global one: a scoped subscriber would race with the
/// other tests of the binary over tracing's per-callsite cache.
pub fn init_tracing() {
    let shown = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let kept = Targets::new().with_target("taskthread_examples", Level::INFO);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(shown),
        )
        .with(Capture.with_filter(kept))
        .try_init();
}

/// One event the relay logged.
#[derive(Debug, Clone)]
pub struct Logged {
    pub level: Level,
    pub message: String,
    /// The other fields, as `name=value ` pairs.
    pub fields: String,
}

static LOGGED: Mutex<Vec<Logged>> = Mutex::new(Vec::new());

/// What the relay logged so far about the client at `client` (its `client` field).
pub fn logged_about(client: SocketAddr) -> Vec<Logged> {
    let field = format!("client={client} ");
    let logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    logged
        .iter()
        .filter(|l| l.fields.contains(&field))
        .cloned()
        .collect()
}

/// What the relay logged so far with the field `name=value` (e.g. a destination's `url`).
pub fn logged_with(name: &str, value: &str) -> Vec<Logged> {
    let field = format!("{name}={value} ");
    let logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    logged
        .iter()
        .filter(|l| l.fields.contains(&field))
        .cloned()
        .collect()
}

/// Keeps every event it sees in [`LOGGED`].
struct Capture;

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: layer::Context<'_, S>) {
        let mut logged = Logged {
            level: *event.metadata().level(),
            message: String::new(),
            fields: String::new(),
        };
        event.record(&mut logged);
        LOGGED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(logged);
    }
}

impl Visit for Logged {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            name => self.fields.push_str(&format!("{name}={value:?} ")),
        }
    }
}

/// Limits for tests: small frames, a few clients, no idle or frame timeout, a budget of
/// 64 MiB.
pub fn server_config() -> ServerConfig {
    ServerConfig {
        max_frame: 64 * 1024,
        max_clients: 16,
        idle_timeout: None,
        frame_timeout: None,
        max_buffered: 64 << 20,
        receipts: Receipts::Close,
        processors: None,
    }
}

/// Sub options for tests: quick reconnects, buffers of 8 MiB (room for every frame the
/// clients send while a sub connects).
pub fn sub_options() -> SubOptions {
    SubOptions {
        buffer: 8 << 20,
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(5),
        ..SubOptions::default()
    }
}

/// A relay under test, its embedded sinks, and its database.
pub struct TestRelay {
    pub relay: Relay,
    pub sinks: Vec<(String, Handle<WebsocketSink>)>,
    pub db: PathBuf,
    _dir: TempDir,
}

/// How a test relay ended.
#[derive(Debug)]
pub struct Finished {
    pub exit: Exit,
    pub summary: Summary,
    pub stats: Arc<RelayStats>,
    pub sinks: Vec<SinkReport>,
    pub db_count: u64,
    pub db_checksum: Checksum,
    /// The database, kept until this is dropped.
    pub db: PathBuf,
    _dir: TempDir,
}

impl TestRelay {
    /// A relay with `sinks` embedded sinks.
    pub async fn start(server: ServerConfig, sinks: usize) -> Self {
        Self::start_with(server, sinks, Vec::new(), sub_options()).await
    }

    /// A relay with `sinks` embedded sinks and some other destinations.
    pub async fn start_with(
        server: ServerConfig,
        sinks: usize,
        extra_urls: Vec<String>,
        sub: SubOptions,
    ) -> Self {
        Self::start_on(server, sinks, extra_urls, sub, |_| {}).await
    }

    /// A relay whose database is first made by `prepare` (given its path).
    pub async fn start_on(
        server: ServerConfig,
        sinks: usize,
        extra_urls: Vec<String>,
        sub: SubOptions,
        prepare: impl FnOnce(&std::path::Path),
    ) -> Self {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relay.db");
        prepare(&db);
        let sinks = app::start_sinks(sinks).await.unwrap();
        let mut urls: Vec<String> = sinks.iter().map(|(url, _)| url.clone()).collect();
        urls.extend(extra_urls);
        let config = RelayConfig {
            listen: loopback(),
            urls,
            db: db.clone(),
            server,
            sub,
        };
        let relay = Relay::start(config).await.unwrap();
        Self {
            relay,
            sinks,
            db,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.relay.local_addr()
    }

    pub fn stats(&self) -> &Arc<RelayStats> {
        self.relay.stats()
    }

    /// Stops the relay gracefully, lets the sinks read everything, and reads the database
    /// back.
    pub async fn finish(self) -> Finished {
        self.relay.stop();
        self.end(|relay| relay.join()).await
    }

    /// Aborts the relay (as a second Ctrl-C does), lets the sinks read what they got, and
    /// reads the database back.
    pub async fn abort(self) -> Finished {
        self.end(|relay| relay.abort()).await
    }

    async fn end<F>(self, end: impl FnOnce(Relay) -> F) -> Finished
    where
        F: std::future::Future<Output = (Exit, Summary)>,
    {
        let stats = Arc::clone(self.relay.stats());
        let (exit, summary) = end(self.relay).await;
        let sinks = app::stop_sinks(self.sinks)
            .await
            .into_iter()
            .map(|(_, report)| report)
            .collect();
        let (db_count, db_checksum) = database::read_back(&self.db).unwrap();
        Finished {
            exit,
            summary,
            stats,
            sinks,
            db_count,
            db_checksum,
            db: self.db,
            _dir: self._dir,
        }
    }
}

impl Finished {
    /// Everything received was forwarded to every sink and stored, payloads included.
    pub fn assert_nothing_lost(&self) {
        let received = self.stats.received_checksum();
        assert!(
            matches!(self.exit, Exit::Stopped),
            "the relay ended with {}",
            self.exit
        );
        assert_eq!(self.summary.lost, 0, "{}", self.summary);
        assert_eq!(
            self.summary.forwarded, self.summary.received,
            "{}",
            self.summary
        );
        assert_eq!(
            self.summary.stored, self.summary.received,
            "{}",
            self.summary
        );
        for sink in &self.sinks {
            assert_eq!(sink.received, received);
        }
        assert_eq!(self.db_count, self.summary.received);
        assert_eq!(self.db_checksum, received);
        assert_every_byte_accounted(&self.stats);
        assert_eq!(self.stats.frames_in_flight(), 0);
    }
}

/// Every byte read from a client is in a frame received (its payload and 4-byte length)
/// or counted as discarded: none vanished on the way.
pub fn assert_every_byte_accounted(stats: &RelayStats) {
    let in_frames = stats.bytes() + 4 * stats.received();
    assert_eq!(
        stats.bytes_read(),
        in_frames + stats.bytes_discarded(),
        "bytes read = bytes in {} frames received + bytes discarded",
        stats.received()
    );
}

/// A payload that differs for every client and frame.
pub fn payload(client: u64, n: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (client * 31 + n * 7 + i as u64) as u8)
        .collect()
}

/// A well-behaved client: sends `frames` frames and waits until the relay has taken them.
pub async fn well_behaved_client(addr: SocketAddr, client: u64, frames: u64) -> Checksum {
    let mut c = RelayClient::connect(addr).await.unwrap();
    for n in 0..frames {
        c.send_frame(&payload(client, n, 100 + n as usize * 10))
            .await
            .unwrap();
    }
    c.finish().await.unwrap()
}

/// Rows of the database at `db` from the client at `client`, as `(count, highest seq)`.
pub fn rows_of(db: &std::path::Path, client: SocketAddr) -> (u64, u64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*), coalesce(max(seq), 0) FROM frames WHERE client = ?1",
        [client.to_string()],
        |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
    )
    .unwrap()
}

/// Waits until `condition` holds, checking every few milliseconds. The one-minute guard
/// only turns a hang into a failure; no test depends on how fast anything is.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let guard = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < guard,
            "still waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads until the relay closes the connection; fails if it sends anything.
pub async fn assert_closed_by_relay(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    match stream.read(&mut buf).await {
        Ok(0) => {}
        // The relay closed with bytes of ours unread: the kernel resets the connection.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(n) => panic!("the relay sent {n} bytes instead of closing"),
        Err(e) => panic!("reading failed: {e}"),
    }
}

/// A URL where no websocket server listens (a port just bound and released).
pub async fn dead_url() -> (SocketAddr, String) {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    (addr, format!("ws://{addr}/"))
}
