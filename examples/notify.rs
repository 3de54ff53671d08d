//! # notify — a synchronous program driving a tree in the background
//!
//! Shows plain blocking code (no `async`, no runtime in `main`) handing work to a tree of
//! threads on its own OS thread, through a `BackgroundHandle`: the front reads commands
//! from stdin and hands e-mail jobs to a `Mailer` thread, which sends them with lettre on
//! tokio's blocking pool (`ctx.spawn_blocking`, at most `--concurrency` at once) and
//! reports each outcome UP; another OS thread of the front prints those reports as they
//! come. At the end of input the tree stops gracefully: every queued mail is still sent
//! and reported, and if the stop deadline (`--stop-deadline`) passes first, the mails it
//! cut off are reported as not sent. The program ends with one summary line.
//!
//! By default mails are written as `.eml` files to a fresh temporary directory (lettre's
//! file transport; the directory is kept and printed), so it runs on a fresh clone with no
//! server. `--smtp HOST:PORT` sends them to an SMTP server instead, in plain text (this
//! example has no TLS).
//!
//! ```text
//! cargo run --example notify                        # type commands; `help` lists them
//! printf 'send bob@example.com Hello | Hi Bob\nstatus\n' | cargo run --example notify
//! cargo run --example notify -- --smtp 127.0.0.1:2525 < mails.txt
//! cargo run --example notify -- --listen 127.0.0.1:4000   # then: nc 127.0.0.1 4000
//! ```
//!
//! With `--listen`, a small std-only TCP server takes the same commands from its clients
//! (an OS thread each, each with a clone of the tree's handle; at most `--max-clients`,
//! each disconnected after `--idle-timeout` without a line) until one of them sends
//! `shutdown`.
//!
//! Each mail is one line, `send TO SUBJECT [| BODY]`:
//!
//! ```text
//! send bob@example.com Meeting moved | Now at 3pm.\nSee you there.
//! send "Alice Doe <alice@example.com>" Report ready
//! ```
//!
//! and the run ends with `notify: sent=2 failed=0 unsent=0 rejected=0`. A bad line (an
//! unknown command, a malformed address, bytes that are not UTF-8, a line over
//! `--max-line`) gets an `error:` line and the session goes on. The exit code is 0 only if
//! every mail queued was sent and every line was valid.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use lettre::message::Mailbox;
use taskthread_examples::notify::mailer::Outbox;
use taskthread_examples::notify::session::{self, Config};
use taskthread_examples::relay::units::{parse_duration, parse_size};

/// Reads mail commands from stdin (or TCP clients) and sends them from a background tree of
/// threads.
/// Without --smtp, mails are written as .eml files to --dir (by default a fresh temporary
/// directory, kept and printed).
#[derive(Debug, Parser)]
#[command(name = "notify", version)]
struct Cli {
    /// Send to this SMTP server (HOST:PORT) in plain text. This example has no TLS: use a
    /// local relay or a test server such as MailHog or smtp4dev.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "dir")]
    smtp: Option<String>,
    /// Write mails as .eml files to this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The sender of every mail.
    #[arg(long, default_value = "notify <notify@localhost>")]
    from: Mailbox,
    /// Take commands from TCP clients on this address (a line each; `shutdown` ends the
    /// server) instead of stdin.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// How many mails are sent at once (the mailer's blocking limit).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// How long the stop at the end may take, e.g. 60s; mails not sent by then are
    /// reported as not sent.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    stop_deadline: Duration,
    /// The longest line taken, e.g. 64KiB; a longer one is skipped with an error.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    max_line: usize,
    /// With --listen: clients connected at once; more are turned away.
    #[arg(long, default_value_t = 64)]
    max_clients: usize,
    /// With --listen: disconnect a client that sends nothing for this long, e.g. 5m (0 for
    /// never).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    idle_timeout: Duration,
}

fn outbox(cli: &Cli) -> Result<Outbox, String> {
    if let Some(server) = &cli.smtp {
        let (host, port) = server
            .rsplit_once(':')
            .ok_or_else(|| format!("--smtp {server}: expected HOST:PORT"))?;
        let port = port
            .parse()
            .map_err(|e| format!("--smtp {server}: bad port: {e}"))?;
        return Ok(Outbox::Smtp {
            host: host.to_owned(),
            port,
        });
    }
    let dir = match &cli.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?;
            dir.clone()
        }
        None => tempfile::Builder::new()
            .prefix("notify-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?
            .keep(),
    };
    Ok(Outbox::Directory(dir))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(io::stderr)
        .init();
    let cli = Cli::parse();
    let outbox = match outbox(&cli) {
        Ok(outbox) => outbox,
        Err(e) => {
            eprintln!("notify: {e}");
            return ExitCode::from(2);
        }
    };
    println!("notify: mails go to {outbox}; `help` lists the commands");
    let config = Config {
        concurrency: cli.concurrency.into(),
        stop_deadline: cli.stop_deadline,
        max_line: cli.max_line,
        max_clients: cli.max_clients,
        idle_timeout: Some(cli.idle_timeout).filter(|d| !d.is_zero()),
        ..Config::new(outbox, cli.from)
    };
    let out: session::Out = Arc::new(Mutex::new(io::stdout()));
    let ran = match cli.listen {
        Some(address) => std::net::TcpListener::bind(address).and_then(|listener| {
            println!("notify: listening on {}", listener.local_addr()?);
            session::serve(&config, listener, out)
        }),
        None => session::run(&config, io::stdin().lock(), out),
    };
    match ran {
        Ok(summary) => {
            println!("{summary}");
            if let Outbox::Directory(dir) = &config.outbox {
                println!("notify: the mails are in {}", dir.display());
            }
            if summary.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("notify: {e}");
            ExitCode::FAILURE
        }
    }
}
