//! Starting, stopping and checking a relay: what the `relay` example's two commands do,
//! as functions the tests can call too.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use taskthread::{Exit, Handle};
use tokio::time::Instant;

use super::budget::{Budget, DEFAULT_MAX_BUFFERED};
use super::database::{self, OpenError, Store};
use super::frame::{Checksum, HEADER_LEN};
use super::load::{LoadGenerator, LoadOptions, Sent};
use super::observe::{ObserveError, ObserveOptions, run_observed};
use super::remote::Processors;
use super::sink::{self, SinkReport, WebsocketSink};
use super::tcp_server::{Receipts, ServerConfig};
use super::websocket::{DEFAULT_BUFFER, SubOptions};
use super::{Database, Master, RelayStats, TcpServer};

/// Everything a relay needs to start.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where to listen for clients (`127.0.0.1:0` for an ephemeral port).
    pub listen: SocketAddr,
    /// The websocket destinations; every frame goes to each.
    pub urls: Vec<String>,
    /// The SQLite database file.
    pub db: PathBuf,
    /// The limits applied to clients.
    pub server: ServerConfig,
    /// How the websocket subs buffer and reconnect.
    pub sub: SubOptions,
}

impl RelayConfig {
    /// Checks that the limits fit together: a frame fits in the byte budget and in each
    /// destination's buffer, and the destinations' buffers, all full, leave room in the
    /// budget for the largest frame (so the database's path is never starved by them).
    ///
    /// A destination's buffer as large as the budget is the exception: such destinations
    /// get every frame, and one that lags holds up the clients (through the budget) instead
    /// of missing frames; the demo's sinks are of this kind.
    pub fn check(&self) -> Result<(), String> {
        let frame = self.server.max_frame + HEADER_LEN;
        let budget = self.server.max_buffered;
        let buffers = self.sub.buffer.saturating_mul(self.urls.len());
        if budget < frame {
            return Err(format!(
                "the byte budget ({budget} bytes) is smaller than the largest frame \
                 ({frame} bytes with its length prefix): raise --max-buffered or lower --max-frame"
            ));
        }
        if !self.urls.is_empty() && self.sub.buffer < self.server.max_frame {
            return Err(format!(
                "a destination's buffer ({} bytes) is smaller than the largest frame ({} bytes): \
                 raise --ws-buffer or lower --max-frame",
                self.sub.buffer, self.server.max_frame
            ));
        }
        if self.sub.buffer < budget && buffers.saturating_add(frame) > budget {
            return Err(format!(
                "the {} destinations' buffers ({buffers} bytes in all) leave no room in the byte \
                 budget ({budget} bytes) for a frame of {frame} bytes: raise --max-buffered or \
                 lower --ws-buffer",
                self.urls.len()
            ));
        }
        Ok(())
    }
}

/// A relay that could not start.
#[derive(Debug)]
pub enum StartError {
    /// The limits do not fit together (see [`RelayConfig::check`]).
    Config(String),
    /// The database could not be opened.
    Database(OpenError),
    /// The listening address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The embedded websocket sink could not start.
    Sink(io::Error),
    /// The demo's temporary directory could not be made.
    TempDir(io::Error),
    /// The web view or the control endpoint could not be bound.
    Observe(ObserveError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => f.write_str(e),
            Self::Database(e) => e.fmt(f),
            Self::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Self::Sink(e) => write!(f, "cannot start the embedded websocket sink: {e}"),
            Self::TempDir(e) => write!(f, "cannot make a temporary directory: {e}"),
            Self::Observe(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(_) => None,
            Self::Database(e) => Some(e),
            Self::Bind { source, .. } | Self::Sink(source) | Self::TempDir(source) => Some(source),
            Self::Observe(e) => Some(e),
        }
    }
}

/// A relay ready to run: its root, the address it listens on, and its counters.
#[derive(Debug)]
pub struct Prepared {
    /// The root of the tree, to [`taskthread::run`] or [`taskthread::spawn`].
    pub master: Master,
    /// The address clients connect to.
    pub addr: SocketAddr,
    /// The counters its threads keep.
    pub stats: Arc<RelayStats>,
    /// The byte budget its frames take from.
    pub budget: Budget,
    /// The database's writes, to wait for once the tree has ended.
    pub store: Store,
}

/// Checks the limits, opens the database and binds the listener: the start-up errors,
/// reported before any thread starts.
pub async fn prepare(config: RelayConfig) -> Result<Prepared, StartError> {
    config.check().map_err(StartError::Config)?;
    let stats = Arc::new(RelayStats::new());
    let database = Database::open(&config.db, Arc::clone(&stats)).map_err(StartError::Database)?;
    let store = database.store();
    let server = TcpServer::bind(config.listen, config.server, Arc::clone(&stats))
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = server.local_addr();
    let budget = server.budget().clone();
    let master = Master::new(
        server,
        database,
        config.urls,
        config.sub,
        Arc::clone(&stats),
    );
    Ok(Prepared {
        master,
        addr,
        stats,
        budget,
        store,
    })
}

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    handle: Handle<Master>,
    addr: SocketAddr,
    stats: Arc<RelayStats>,
    budget: Budget,
    store: Store,
    started: Instant,
}

impl Relay {
    /// Starts a relay on the current tokio runtime.
    pub async fn start(config: RelayConfig) -> Result<Self, StartError> {
        let Prepared {
            master,
            addr,
            stats,
            budget,
            store,
        } = prepare(config).await?;
        Ok(Self {
            handle: taskthread::spawn(master),
            addr,
            stats,
            budget,
            store,
            started: Instant::now(),
        })
    }

    /// The byte budget its frames take from, live.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's counters, live.
    pub fn stats(&self) -> &Arc<RelayStats> {
        &self.stats
    }

    /// A snapshot of the relay's tree.
    pub fn snapshot(&self) -> taskthread::TreeSnapshot {
        self.handle.snapshot()
    }

    /// Asks the relay to stop gracefully. Returns at once.
    pub fn stop(&self) {
        self.handle.stop();
    }

    /// Waits until the relay has ended; returns how its root ended and the summary.
    pub async fn join(self) -> (Exit, Summary) {
        let Self {
            handle,
            stats,
            store,
            started,
            ..
        } = self;
        let exit = handle.join().await;
        (exit, summarize(&stats, &store, started).await)
    }

    /// Aborts the relay at once (what a second Ctrl-C does to `relay serve`); returns how
    /// its root ended and the summary.
    pub async fn abort(self) -> (Exit, Summary) {
        let Self {
            handle,
            stats,
            store,
            started,
            ..
        } = self;
        let exit = handle.abort().await;
        (exit, summarize(&stats, &store, started).await)
    }
}

/// The summary of a relay whose tree has ended. A batch being written then is still
/// committed: the summary waits for it, so that its counts match the database.
async fn summarize(stats: &RelayStats, store: &Store, started: Instant) -> Summary {
    store.settled().await;
    Summary::new(stats, started.elapsed())
}

/// The counts of the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Frames the load generator sent (the demo only).
    pub sent: Option<u64>,
    /// Frames fully received from clients.
    pub received: u64,
    /// Frames delivered to every websocket destination.
    pub forwarded: u64,
    /// Frames committed to the database: the rows it holds.
    pub stored: u64,
    /// Frames acknowledged to clients as stored (0 without acknowledgements).
    pub acked: u64,
    /// Incomplete frames discarded when their connection ended (the client's doing, or the
    /// relay's at a stop or a timeout).
    pub truncated: u64,
    /// Copies of frames the websocket destinations did not get, summed over destinations.
    pub ws_dropped: u64,
    /// `received - min(forwarded, stored)`.
    pub lost: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// How long the relay ran.
    pub elapsed: Duration,
}

impl Summary {
    /// The summary of a relay's counters.
    pub fn new(stats: &RelayStats, elapsed: Duration) -> Self {
        Self {
            sent: None,
            received: stats.received(),
            forwarded: stats.forwarded(),
            stored: stats.stored(),
            acked: stats.acked(),
            truncated: stats.frames_truncated(),
            ws_dropped: stats.ws_dropped(),
            lost: stats.lost(),
            bytes: stats.bytes(),
            elapsed,
        }
    }
}

/// The summary line: `relay: frames [sent=N ]received=R forwarded=F stored=S acked=A
/// truncated=T ws_dropped=D lost=L bytes=B elapsed=Ts`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("relay: frames")?;
        if let Some(sent) = self.sent {
            write!(f, " sent={sent}")?;
        }
        write!(
            f,
            " received={} forwarded={} stored={} acked={} truncated={} ws_dropped={} lost={} \
             bytes={} elapsed={:.2}s",
            self.received,
            self.forwarded,
            self.stored,
            self.acked,
            self.truncated,
            self.ws_dropped,
            self.lost,
            self.bytes,
            self.elapsed.as_secs_f64()
        )
    }
}

/// How a run ended: the summary, and every check that failed.
#[derive(Debug)]
pub struct Outcome {
    /// The summary line's counts.
    pub summary: Summary,
    /// The checks that failed, as sentences; empty when all is well.
    pub problems: Vec<String>,
}

impl Outcome {
    /// Nothing was lost and every check passed.
    pub fn is_success(&self) -> bool {
        self.summary.lost == 0 && self.problems.is_empty()
    }
}

/// Starts `n` embedded websocket sinks on ephemeral loopback ports.
pub async fn start_sinks(n: usize) -> Result<Vec<(String, Handle<WebsocketSink>)>, StartError> {
    let mut sinks = Vec::with_capacity(n);
    for _ in 0..n {
        let sink = bind_sink().await?;
        sinks.push((sink.url(), taskthread::spawn(sink)));
    }
    Ok(sinks)
}

async fn bind_sink() -> Result<WebsocketSink, StartError> {
    WebsocketSink::bind((Ipv4Addr::LOCALHOST, 0).into())
        .await
        .map_err(StartError::Sink)
}

/// Waits for each sink to have read everything, stops it, and returns its report.
pub async fn stop_sinks(sinks: Vec<(String, Handle<WebsocketSink>)>) -> Vec<(String, SinkReport)> {
    let mut reports = Vec::with_capacity(sinks.len());
    for (url, mut sink) in sinks {
        let report = sink::settle(&mut sink).await;
        sink.stop();
        while sink.recv().await.is_some() {}
        sink.join().await;
        if let Some(report) = report {
            reports.push((url, report));
        }
    }
    reports
}

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Concurrent TCP clients.
    pub clients: usize,
    /// Frames per client.
    pub frames: u64,
    /// The largest frame, for the load and the relay's limit.
    pub max_frame: usize,
    /// Embedded websocket sinks, each a destination of every frame.
    pub sinks: usize,
    /// The seed of the load's sizes and payloads.
    pub seed: u64,
    /// The relay's byte budget.
    pub max_buffered: usize,
    /// Whether to draw a progress bar (on a terminal).
    pub progress: bool,
    /// Remote processors in worker processes, instead of a `DataProcessor` per connection
    /// in this one.
    pub processors: Option<Processors>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            clients: 20,
            frames: 500,
            max_frame: 64 * 1024,
            sinks: 2,
            seed: 1,
            max_buffered: DEFAULT_MAX_BUFFERED,
            progress: false,
            processors: None,
        }
    }
}

/// The buffer of each of `destinations` websocket destinations when none is given: at most
/// [`DEFAULT_BUFFER`], and small enough that the buffers, all full, take at most half of
/// what the byte budget has beside the largest frame; never smaller than that frame.
pub fn default_ws_buffer(max_buffered: usize, max_frame: usize, destinations: usize) -> usize {
    let room = max_buffered.saturating_sub(max_frame + HEADER_LEN);
    (room / (2 * destinations.max(1)))
        .min(DEFAULT_BUFFER)
        .max(max_frame)
}

/// The demo: a relay on an ephemeral port with embedded sinks and a fresh database, fed
/// by the load generator until every client is done or `interrupt` completes (Ctrl-C:
/// the clients stop after their current frames); then a graceful stop, and the checks:
/// every frame sent was received, every frame received reached every sink and the
/// database, payloads included, and the relay acknowledged to the clients every frame it
/// stored.
pub async fn demo(
    options: DemoOptions,
    interrupt: impl Future<Output = ()>,
) -> Result<Outcome, StartError> {
    let dir = tempfile::tempdir().map_err(StartError::TempDir)?;
    let db = dir.path().join("relay.db");
    let sinks = start_sinks(options.sinks).await?;
    // The demo checks that every sink gets every frame: its sinks' buffers are as large as
    // the budget, so a sink that lags holds up the clients instead of missing frames.
    let buffer = options.max_buffered;
    let config = RelayConfig {
        listen: (Ipv4Addr::LOCALHOST, 0).into(),
        urls: sinks.iter().map(|(url, _)| url.clone()).collect(),
        db: db.clone(),
        server: ServerConfig {
            max_frame: options.max_frame,
            max_clients: options.clients.max(1),
            idle_timeout: None,
            max_buffered: options.max_buffered,
            receipts: Receipts::Acks,
            processors: options.processors.clone(),
            ..ServerConfig::default()
        },
        sub: SubOptions {
            buffer,
            ..SubOptions::default()
        },
    };
    let relay = Relay::start(config).await?;

    let total = options.clients as u64 * options.frames;
    let progress = if options.progress {
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:40}] {pos}/{len} frames sent ({per_sec})",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut load = taskthread::spawn(LoadGenerator::new(LoadOptions {
        addr: relay.local_addr(),
        clients: options.clients,
        frames: options.frames,
        min_frame: 1,
        max_frame: options.max_frame,
        acks: true,
        seed: options.seed,
        progress: progress.clone(),
    }));
    let sent = tokio::select! {
        sent = load.recv() => sent,
        () = interrupt => {
            load.stop();
            load.recv().await
        }
    };
    load.join().await;
    progress.finish_and_clear();
    let Sent {
        checksum: sent,
        acked,
    } = sent.unwrap_or_default();

    relay.stop();
    let stats = Arc::clone(relay.stats());
    let (exit, mut summary) = relay.join().await;
    summary.sent = Some(sent.frames);
    let reports = stop_sinks(sinks).await;

    let mut problems = Vec::new();
    if let Exit::Failed(_) | Exit::Panicked(_) | Exit::Aborted { .. } = exit {
        problems.push(format!("the relay ended badly: {exit}"));
    }
    // Even when interrupted, the clients close their side and wait for the relay to store
    // everything they sent: sent and received match, and all of it was acknowledged.
    let received = stats.received_checksum();
    if sent != received {
        problems.push(format!(
            "the clients sent {sent}, the relay received {received}"
        ));
    }
    if acked != summary.stored || summary.acked != summary.stored {
        problems.push(format!(
            "the clients saw {acked} frames acknowledged, the relay acknowledged {} and \
             stored {}",
            summary.acked, summary.stored
        ));
    }
    check_sinks(&reports, received, &mut problems);
    check_database(&db, summary.stored, received, &mut problems);
    Ok(Outcome { summary, problems })
}

/// Checks that every sink got exactly the frames the relay received.
pub fn check_sinks(
    reports: &[(String, SinkReport)],
    received: Checksum,
    problems: &mut Vec<String>,
) {
    for (url, report) in reports {
        if report.received != received {
            problems.push(format!(
                "the sink at {url} got {}, the relay received {received}",
                report.received
            ));
        }
    }
}

/// Checks the database with `SELECT count(*)` and the checksum of its payloads.
pub fn check_database(
    db: &std::path::Path,
    stored: u64,
    received: Checksum,
    problems: &mut Vec<String>,
) {
    match database::read_back(db) {
        Ok((count, checksum)) => {
            if count != stored {
                problems.push(format!(
                    "SELECT count(*) says {count} frames, the relay counted {stored} stored"
                ));
            }
            if checksum != received {
                problems.push(format!(
                    "the database holds {checksum}, the relay received {received}"
                ));
            }
        }
        Err(e) => problems.push(format!("cannot read the database back: {e}")),
    }
}

/// What `relay serve` does.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The websocket destinations; none starts one embedded sink.
    pub urls: Vec<String>,
    /// The SQLite database file.
    pub db: PathBuf,
    /// The limits applied to clients, the byte budget, acknowledgements.
    pub server: ServerConfig,
    /// Each destination's buffer in bytes; by default [`default_ws_buffer`].
    pub ws_buffer: Option<usize>,
    /// Where to serve the web view and the control endpoint, if anywhere.
    pub observe: ObserveOptions,
}

/// Serves clients until Ctrl-C or SIGTERM, then stops gracefully and summarises.
pub async fn serve(options: ServeOptions) -> Result<Outcome, StartError> {
    // The embedded sink is bound first for its URL, and only started once the relay could
    // be prepared.
    let sink = if options.urls.is_empty() {
        Some(bind_sink().await?)
    } else {
        None
    };
    let urls = sink.as_ref().map_or(options.urls, |s| vec![s.url()]);
    let server = options.server;
    let buffer = options
        .ws_buffer
        .unwrap_or_else(|| default_ws_buffer(server.max_buffered, server.max_frame, urls.len()));
    let Prepared {
        master,
        addr,
        stats,
        store,
        ..
    } = prepare(RelayConfig {
        listen: options.listen,
        urls,
        db: options.db,
        server,
        sub: SubOptions {
            buffer,
            ..SubOptions::default()
        },
    })
    .await?;
    let sinks: Vec<_> = sink
        .map(|s| (s.url(), taskthread::spawn(s)))
        .into_iter()
        .collect();
    tracing::info!(%addr, "relay serving; press Ctrl-C to stop");
    let started = Instant::now();
    let result = if options.observe.web.is_none() && options.observe.control.is_none() {
        taskthread::run(master).await
    } else {
        run_observed(master, &options.observe)
            .await
            .map_err(StartError::Observe)?
    };
    let summary = summarize(&stats, &store, started).await;
    let reports = stop_sinks(sinks).await;

    let mut problems = Vec::new();
    if let Err(e) = result {
        problems.push(format!("the relay ended badly: {e:#}"));
    }
    if summary.lost == 0 {
        check_sinks(&reports, stats.received_checksum(), &mut problems);
    }
    Ok(Outcome { summary, problems })
}
