//! # notify — a synchronous program driving a tree in the background
//!
//! Shows plain blocking code (no `async`, no runtime in `main`) handing work to a tree of
//! threads on its own OS thread, through a `BackgroundHandle`: the front reads commands
//! from stdin and hands e-mail jobs to a `Mailer` thread, which sends them with lettre on
//! tokio's blocking pool (`ctx.spawn_blocking`, at most `--concurrency` at once) and
//! reports each outcome UP; another OS thread of the front prints those reports as they
//! come. At the end of input the tree stops gracefully: every queued mail is still sent
//! and reported. The program ends with one summary line.
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
//! With `--listen`, a small std-only TCP server takes the same commands from any number of
//! clients (an OS thread each, each with a clone of the tree's handle) until one of them
//! sends `shutdown`.
//!
//! Each mail is one line, `send TO SUBJECT [| BODY]`:
//!
//! ```text
//! send bob@example.com Meeting moved | Now at 3pm.\nSee you there.
//! send "Alice Doe <alice@example.com>" Report ready
//! ```
//!
//! and the run ends with `notify: sent=2 failed=0 rejected=0`. A bad line (an unknown
//! command, a malformed address) gets an `error:` line and the session goes on. The exit
//! code is 0 only if every mail was sent and every line was valid.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use lettre::message::Mailbox;
use taskthread_examples::notify::mailer::Outbox;
use taskthread_examples::notify::session::{self, Config};

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
        outbox,
        from: cli.from,
        concurrency: cli.concurrency.into(),
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
            println!(
                "notify: sent={} failed={} rejected={}",
                summary.sent, summary.failed, summary.rejected
            );
            if let Outbox::Directory(dir) = &config.outbox {
                println!("notify: the mails are in {}", dir.display());
            }
            if summary.failed == 0 && summary.rejected == 0 {
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
