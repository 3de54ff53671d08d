//! # relay — the sample problem, end to end: TCP clients → frames → websockets + SQLite
//!
//! Shows a whole program organised as a tree of threads, on real components: a TCP server
//! with one thread per client, a frame decoder per connection, a websocket client per
//! destination (with a bounded buffer and reconnection), and a SQLite database written in
//! batches off the async loop. Stop stages make the graceful stop lossless: the TCP side
//! stops first, then the destinations and the database, once every frame has reached them.
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
//! 20 clients sending 500 frames each of up to 64 KiB), which checks that every frame
//! reached every sink and the database:
//!
//! ```text
//! cargo run --release --example relay
//! cargo run --release --example relay -- --clients 50 --frames 100 --max-frame 1MiB
//! ```
//!
//! Or serve any client that speaks the protocol (a 4-byte big-endian length, then the
//! payload; the server greets with `{"message": "hello!"}` framed the same way) until
//! Ctrl-C:
//!
//! ```text
//! cargo run --release --example relay -- serve --listen 127.0.0.1:5002 --db relay.db
//! cargo run --release --example relay -- serve --ws ws://127.0.0.1:9001/ --ws ws://127.0.0.1:9002/
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
//! Both end with one summary line, and exit with 0 only if nothing was lost:
//!
//! ```text
//! relay: frames sent=10000 received=10000 forwarded=10000 stored=10000 lost=0 bytes=327479102 elapsed=6.12s
//! ```
//!
//! Set `RUST_LOG=info` (the default for `serve`) or `debug` to follow what happens.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use taskthread_examples::relay::app::{self, DemoOptions, Outcome, ServeOptions};
use taskthread_examples::relay::observe::ObserveOptions;
use taskthread_examples::relay::tcp_server::ServerConfig;
use taskthread_examples::relay::units::{parse_duration, parse_size};

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
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:5002")]
    listen: SocketAddr,
    /// A websocket destination (repeatable); without one, an embedded sink is started.
    #[arg(long = "ws", value_name = "URL")]
    ws: Vec<String>,
    /// The SQLite database file.
    #[arg(long, default_value = "relay.db")]
    db: PathBuf,
    /// The largest frame accepted, e.g. 16MiB.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_frame: usize,
    /// Clients connected at once; more are refused.
    #[arg(long, default_value_t = 1024)]
    max_clients: usize,
    /// Disconnect a client that sends nothing for this long, e.g. 60s (0 for never).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Serve the web view of the tree on this loopback address, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    web: Option<SocketAddr>,
    /// Serve the control endpoint on this Unix socket (for `taskthread-ctl`).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Some(Command::Serve(_)));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" })
            }),
        )
        .init();

    let outcome = match cli.command.unwrap_or(Command::Demo(cli.demo)) {
        Command::Demo(args) => {
            let options = DemoOptions {
                clients: args.clients,
                frames: args.frames,
                max_frame: args.max_frame,
                sinks: args.sinks,
                seed: args.seed,
                progress: std::io::stderr().is_terminal(),
            };
            let interrupt = async {
                shutdown_signal().await;
                eprintln!("relay: interrupted, stopping gracefully");
            };
            app::demo(options, interrupt).await
        }
        Command::Serve(args) => {
            app::serve(ServeOptions {
                listen: args.listen,
                urls: args.ws,
                db: args.db,
                server: ServerConfig {
                    max_frame: args.max_frame,
                    max_clients: args.max_clients,
                    idle_timeout: Some(args.idle_timeout).filter(|d| !d.is_zero()),
                },
                observe: ObserveOptions {
                    web: args.web,
                    control: args.control,
                },
            })
            .await
        }
    };
    match outcome {
        Ok(outcome) => report(&outcome),
        Err(e) => {
            eprintln!("relay: {e}");
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
fn report(outcome: &Outcome) -> ExitCode {
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
