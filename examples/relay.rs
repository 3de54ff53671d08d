//! # relay — the sample problem, end to end: TCP clients → frames → websockets + SQLite
//!
//! Shows a whole program organised as a tree of threads, on real components: a TCP server
//! with one thread per client, a frame decoder per connection, a websocket client per
//! destination (with a buffer bounded in bytes and reconnection), and a SQLite database
//! written in batches off the async loop. Stop stages make the graceful stop lossless: the
//! TCP side stops first, then the destinations and the database, once every frame has
//! reached them.
//!
//! ```text
//! Master
//!     TcpServer: UP: Frame
//!         TcpConnection: UP: Frame           (one per client, spawned on accept)
//!             DataProcessor: IN: Packet, UP: Frame
//!     WebsocketMaster: IN: Frame
//!         WebsocketSub: IN: Frame            (one per destination URL)
//!     Database: IN: Frame
//! ```
//!
//! The threads live in the examples' library, one module each: see
//! `examples/src/relay/`. This file is only the command line.
//!
//! Run the demo (an ephemeral port, two embedded websocket sinks, a fresh database, and
//! 20 clients sending 500 frames each of up to 64 KiB, with acknowledgements), which checks
//! that every frame reached every sink and the database, and that the clients were told
//! of every frame stored:
//!
//! ```text
//! cargo run --release --example relay
//! cargo run --release --example relay -- --clients 50 --frames 100 --max-frame 1MiB
//! ```
//!
//! The same demo with the `DataProcessor`s in two worker processes (this program run again
//! as hosts of `taskthread-nats`), over a `nats-server` started on a free loopback port
//! (Debian's package `nats-server`; `--nats nats://127.0.0.1:4222` uses a running one).
//! Every process it starts is ended when it ends, Ctrl-C included; a worker that dies has
//! its processors started again on the other, and the frames lost with it are counted:
//!
//! ```text
//! cargo run --release --example relay -- --processors 2 --nats auto
//! ```
//!
//! Or serve any client that speaks the protocol (a 4-byte big-endian length, then the
//! payload; the server greets with `{"message": "hello!"}` framed the same way) until
//! Ctrl-C:
//!
//! ```text
//! cargo run --release --example relay -- serve --listen 127.0.0.1:5002 --db relay.db
//! cargo run --release --example relay -- serve --ws ws://127.0.0.1:9001/ --ws ws://127.0.0.1:9002/
//! cargo run --release --example relay -- serve --ack --max-buffered 64MiB --frame-timeout 5s
//! ```
//!
//! Watch it while it serves: `--web 127.0.0.1:8080` serves the live page of its tree (open
//! `http://127.0.0.1:8080/`; also `/tree.json`, `/metrics`, `/events`), and
//! `--control /tmp/relay.sock` the control endpoint, for `taskthread-ctl --unix
//! /tmp/relay.sock top`:
//!
//! ```text
//! cargo run --release --example relay -- serve --web 127.0.0.1:8080 --control /tmp/relay.sock
//! ```
//!
//! Both end with one summary line, and exit with 0 only if nothing was lost (`lost` counts
//! frames received but not both stored and delivered to every destination):
//!
//! ```text
//! relay: frames sent=10000 received=10000 forwarded=10000 stored=10000 acked=10000 truncated=0 ws_dropped=0 lost=0 bytes=323282622 elapsed=4.42s
//! ```
//!
//! `stored` is what the database holds (the summary waits for a write in progress), `acked`
//! what clients were told is stored, `truncated` frames cut off when their connection
//! ended (by the client, a timeout or a stop), and `ws_dropped` the copies of frames
//! websocket destinations missed, summed over destinations.
//!
//! What `relay serve` promises:
//!
//! - **Bounded memory.** Frames take their size from a byte budget (`--max-buffered`,
//!   256 MiB by default) from the moment their length prefix arrives until their last copy
//!   is dropped; when it is spent, the relay stops reading from its clients and TCP slows
//!   them down. Nothing is dropped for it. Beside the budget, each connection reads ahead
//!   at most 4 packets of 64 KiB, and the program itself takes a few tens of MiB: with
//!   100 clients each sending 10 frames of 1 MiB as fast as they can (`relay load` below),
//!   `relay serve` peaks at about 345 MB resident with the default budget, and 140 MB
//!   with `--max-buffered 64MiB` (2 cores, glibc `malloc`).
//! - **Slow clients cannot hold a place.** A frame that has started must arrive in full
//!   within `--frame-timeout` (10 s), and a client that sends nothing for `--idle-timeout`
//!   (60 s) is disconnected; both are counted.
//! - **Destinations never hold up the rest.** Each destination has a buffer bounded in
//!   bytes (`--ws-buffer`, up to 32 MiB within the budget); one that cannot keep up drops
//!   its oldest frames, counted for it, with one warning when it starts lagging and one
//!   when it has caught up. The clients and the database never wait for a destination
//!   (unless `--ws-buffer` is as large as the budget: then destinations get every frame,
//!   and one that lags holds up the clients, as the demo's sinks do).
//! - **Receipts.** With `--ack`, after each database commit each client is sent the count
//!   of its frames stored so far (a 4-byte big-endian count; see the wire protocol in
//!   `examples/src/relay/frame.rs`). *Lossless* means: every acknowledged frame is in the
//!   database, whatever happens to the relay after. Without acks, a clean close says every
//!   frame the client sent is stored; an abnormal end (an abort, a failed write) resets
//!   the connection instead.
//!
//! Two helpers for trying it: `relay load` runs the demo's clients against any relay
//! (`--ack` to check every frame is acknowledged), and `relay sink` runs a destination,
//! slow if asked (`--read-rate 20KiB`):
//!
//! ```text
//! cargo run --release --example relay -- sink --listen 127.0.0.1:9001 --read-rate 20KiB
//! cargo run --release --example relay -- load --to 127.0.0.1:5002 --clients 100 --frames 10 --min-frame 1MiB --max-frame 1MiB --ack
//! ```
//!
//! Set `RUST_LOG=info` (the default for `serve`, `load` and `sink`) or `debug` to follow
//! what happens.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::ProgressBar;
use taskthread_examples::relay::app::{self, DemoOptions, Outcome, ServeOptions};
use taskthread_examples::relay::budget::DEFAULT_MAX_BUFFERED;
use taskthread_examples::relay::cluster::{Cluster, NatsServer, stdin_closed};
use taskthread_examples::relay::load::{LoadGenerator, LoadOptions, Sent};
use taskthread_examples::relay::observe::ObserveOptions;
use taskthread_examples::relay::remote::{self, Processors};
use taskthread_examples::relay::sink::{self, WebsocketSink};
use taskthread_examples::relay::tcp_server::{Receipts, ServerConfig};
use taskthread_examples::relay::units::{parse_duration, parse_size};
use tokio::time::Instant;

/// Relays length-prefixed frames from TCP clients to websocket destinations and a SQLite
/// database. Without a command, runs the demo.
#[derive(Debug, Parser)]
#[command(name = "relay", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    demo: DemoArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the built-in load against a relay with embedded sinks, and check nothing was
    /// lost (the default).
    Demo(DemoArgs),
    /// Serve clients until Ctrl-C or SIGTERM, then stop gracefully.
    Serve(ServeArgs),
    /// Send frames to a running relay from concurrent clients, and report.
    Load(LoadArgs),
    /// Run a websocket destination that counts what it receives, until Ctrl-C.
    Sink(SinkArgs),
    /// Host remote processors for a relay (what `--processors` starts), until standard
    /// input closes, Ctrl-C or SIGTERM.
    #[command(hide = true)]
    Host(HostArgs),
}

#[derive(Debug, Args)]
struct HostArgs {
    /// The NATS server's URL.
    #[arg(long)]
    nats: String,
    /// The host's name.
    #[arg(long)]
    name: String,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Concurrent TCP clients (at least 1).
    #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    clients: usize,
    /// Frames each client sends (at least 1).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    frames: u64,
    /// The largest frame (sizes are random up to it), e.g. 64KiB.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    max_frame: usize,
    /// Embedded websocket sinks; every frame goes to each (at least 1).
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    sinks: usize,
    /// The seed of the random sizes and payloads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The relay's byte budget: frame bytes held at once, e.g. 256MiB.
    #[arg(long, default_value = "256MiB", value_parser = parse_budget)]
    max_buffered: usize,
    /// Cut the frames out of the clients' streams in this many worker processes (this
    /// program run again), reached over NATS (0: in the relay's process).
    #[arg(long, default_value_t = 0)]
    processors: usize,
    /// The NATS server for --processors: `auto` starts a nats-server on a free loopback
    /// port, or give the URL of a running one, e.g. nats://127.0.0.1:4222.
    #[arg(long, default_value = "auto", value_parser = |s: &str| Ok::<_, String>(NatsServer::parse(s)))]
    nats: NatsServer,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:5002")]
    listen: SocketAddr,
    /// A websocket destination (repeatable); without one, an embedded sink is started.
    #[arg(long = "ws", value_name = "URL")]
    ws: Vec<String>,
    /// Each destination's buffer: frame bytes kept for it while it is slow or away, e.g.
    /// 32MiB [default: up to 32MiB, within the byte budget]. As large as --max-buffered,
    /// destinations get every frame, and one that lags holds up the clients instead.
    #[arg(long, value_parser = parse_size)]
    ws_buffer: Option<usize>,
    /// The SQLite database file.
    #[arg(long, default_value = "relay.db")]
    db: PathBuf,
    /// Acknowledge stored frames: after each database commit, send each client the count
    /// of its frames stored so far (4 bytes, big-endian).
    #[arg(long)]
    ack: bool,
    #[command(flatten)]
    limits: LimitArgs,
    /// Serve the web view of the tree on this loopback address, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    web: Option<SocketAddr>,
    /// Serve the control endpoint on this Unix socket (for `taskthread-ctl`).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
}

/// The limits `relay serve` applies to its clients.
#[derive(Debug, Args)]
struct LimitArgs {
    /// The largest frame accepted, e.g. 16MiB.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_frame: usize,
    /// Clients connected at once; more are refused.
    #[arg(long, default_value_t = 1024)]
    max_clients: usize,
    /// The byte budget: frame bytes held at once, whole or in part, in queues and
    /// destination buffers; when it is spent, the relay stops reading from clients.
    #[arg(long, default_value = "256MiB", value_parser = parse_budget)]
    max_buffered: usize,
    /// Disconnect a client that sends nothing for this long, e.g. 60s (0 for never).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Disconnect a client whose frame, once started, takes longer than this to arrive in
    /// full, e.g. 10s (0 for never). Raise it for large frames over slow links: a 16 MiB
    /// frame needs 1.6 MB/s to arrive within 10 s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    frame_timeout: Duration,
}

impl LimitArgs {
    fn server_config(&self, acks: bool) -> ServerConfig {
        let receipts = if acks {
            Receipts::Acks
        } else {
            Receipts::Close
        };
        let nonzero = |d: Duration| Some(d).filter(|d| !d.is_zero());
        ServerConfig {
            max_frame: self.max_frame,
            max_clients: self.max_clients,
            idle_timeout: nonzero(self.idle_timeout),
            frame_timeout: nonzero(self.frame_timeout),
            max_buffered: self.max_buffered,
            receipts,
            processors: None,
        }
    }
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// The relay's address.
    #[arg(long, default_value = "127.0.0.1:5002")]
    to: SocketAddr,
    /// Concurrent TCP clients (at least 1).
    #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    clients: usize,
    /// Frames each client sends (at least 1).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    frames: u64,
    /// The smallest frame, e.g. 1MiB (sizes are random between the two).
    #[arg(long, default_value = "1", value_parser = parse_size)]
    min_frame: usize,
    /// The largest frame, e.g. 1MiB.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    max_frame: usize,
    /// The relay acknowledges (`relay serve --ack`): check that every frame sent is.
    #[arg(long)]
    ack: bool,
    /// The seed of the random sizes and payloads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Args)]
struct SinkArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Read each connection at this many bytes per second at most, e.g. 20KiB (with small
    /// socket buffers): a slow destination.
    #[arg(long, value_parser = parse_size)]
    read_rate: Option<usize>,
}

/// A byte budget: a size, at least 1 byte.
fn parse_budget(s: &str) -> Result<usize, String> {
    match parse_size(s)? {
        0 => Err("the byte budget must be at least 1 byte".to_owned()),
        n => Ok(n),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = !matches!(
        cli.command,
        None | Some(Command::Demo(_) | Command::Host(_))
    );
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if verbose { "info" } else { "warn" })
            }),
        )
        .init();

    match cli.command.unwrap_or(Command::Demo(cli.demo)) {
        Command::Demo(args) => demo(args).await,
        Command::Serve(args) => report(serve(args).await),
        Command::Load(args) => load(args).await,
        Command::Sink(args) => run_sink(args).await,
        Command::Host(args) => run_host(args).await,
    }
}

/// Runs the demo, with its processors in worker processes if asked; the workers and the
/// NATS server started for them are ended on every way out.
async fn demo(args: DemoArgs) -> ExitCode {
    if args.processors == 0 {
        return report(demo_with(args, None).await);
    }
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("relay: cannot find this program to run its workers");
        return ExitCode::FAILURE;
    };
    let worker = |name: &str, url: &str| {
        let mut command = tokio::process::Command::new(&exe);
        command.args(["host", "--nats", url, "--name", name]);
        command
    };
    let cluster = match Cluster::start(&args.nats, args.processors, worker).await {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match Processors::connect(cluster.url(), cluster.hosts()).await {
        Ok(processors) => demo_with(args, Some(processors)).await,
        Err(e) => {
            cluster.shutdown().await;
            eprintln!("relay: cannot reach the NATS server: {e}");
            return ExitCode::FAILURE;
        }
    };
    cluster.shutdown().await;
    report(outcome)
}

/// A worker: hosts remote processors until its standard input closes (its relay has ended
/// or asks it to), Ctrl-C or SIGTERM.
async fn run_host(args: HostArgs) -> ExitCode {
    let until = async {
        tokio::select! {
            () = stdin_closed() => {}
            () = shutdown_signal() => {}
        }
    };
    match remote::run_host(&args.nats, &args.name, until).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay host {}: {e}", args.name);
            ExitCode::FAILURE
        }
    }
}

async fn demo_with(
    args: DemoArgs,
    processors: Option<Processors>,
) -> Result<Outcome, app::StartError> {
    let options = DemoOptions {
        clients: args.clients,
        frames: args.frames,
        max_frame: args.max_frame,
        sinks: args.sinks,
        seed: args.seed,
        max_buffered: args.max_buffered,
        progress: std::io::stderr().is_terminal(),
        processors,
    };
    let interrupt = async {
        shutdown_signal().await;
        eprintln!("relay: interrupted, stopping gracefully");
    };
    app::demo(options, interrupt).await
}

async fn serve(args: ServeArgs) -> Result<Outcome, app::StartError> {
    app::serve(ServeOptions {
        listen: args.listen,
        urls: args.ws,
        db: args.db,
        server: args.limits.server_config(args.ack),
        ws_buffer: args.ws_buffer,
        observe: ObserveOptions {
            web: args.web,
            control: args.control,
        },
    })
    .await
}

/// Runs the load generator against a relay; succeeds if every client was served (and,
/// with `--ack`, every frame sent was acknowledged).
async fn load(args: LoadArgs) -> ExitCode {
    let started = Instant::now();
    let mut load = taskthread::spawn(LoadGenerator::new(LoadOptions {
        addr: args.to,
        clients: args.clients,
        frames: args.frames,
        min_frame: args.min_frame,
        max_frame: args.max_frame.max(args.min_frame),
        acks: args.ack,
        seed: args.seed,
        progress: ProgressBar::hidden(),
    }));
    let Sent { checksum, acked } = tokio::select! {
        sent = load.recv() => sent,
        () = shutdown_signal() => {
            load.stop();
            load.recv().await
        }
    }
    .unwrap_or_default();
    let failed = load.join().await.is_failure();
    println!(
        "relay load: clients={} frames={} bytes={} acked={acked} elapsed={:.2}s",
        args.clients,
        checksum.frames,
        checksum.bytes,
        started.elapsed().as_secs_f64()
    );
    let expected = args.clients as u64 * args.frames;
    if failed || checksum.frames != expected || (args.ack && acked != checksum.frames) {
        eprintln!("relay load: not every frame was sent and taken (see the warnings)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Runs one embedded sink until Ctrl-C, then reports what it received.
async fn run_sink(args: SinkArgs) -> ExitCode {
    let bound = match args.read_rate {
        Some(rate) => WebsocketSink::bind_throttled(args.listen, rate).await,
        None => WebsocketSink::bind(args.listen).await,
    };
    let sink = match bound {
        Ok(sink) => sink,
        Err(e) => {
            eprintln!("relay sink: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("relay sink: listening on {}", sink.url());
    let mut handle = taskthread::spawn(sink);
    shutdown_signal().await;
    let report = handle.ask(sink::Count).await;
    handle.stop();
    while handle.recv().await.is_some() {} // its connections' ends: nothing to do with them
    handle.join().await;
    match report {
        Ok(report) => {
            let received = report.received;
            println!("relay sink: received {received}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("relay sink: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C, or SIGTERM on Unix (`relay serve` gets the same from
/// `taskthread::run`).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Prints the problems, then the one summary line; succeeds only if nothing was lost.
fn report(outcome: Result<Outcome, app::StartError>) -> ExitCode {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    for problem in &outcome.problems {
        eprintln!("relay: check failed: {problem}");
    }
    println!("{}", outcome.summary);
    if outcome.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

const _: () = assert!(
    DEFAULT_MAX_BUFFERED == 256 << 20,
    "the CLI's default says 256MiB"
);
