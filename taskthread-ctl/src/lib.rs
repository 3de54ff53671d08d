//! The library part of `taskthread-ctl`: its command line, running one request against a
//! control endpoint, printing its watch stream, and the live view ([`top`]). See the
//! binary's `--help`, and [`taskthread::control`] for the protocol.

pub mod top;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use taskthread::control::{Answer, ControlClient, JSON_FLAG};

/// Look into a running taskthread tree and act on it, through its control endpoint.
///
/// With a command, runs it once and exits (0 on success, 1 if the endpoint refused it, 2
/// if it could not be reached). Without one, opens a prompt with history.
///
/// Commands: help, tree, stats PATH, stop PATH, pool PATH start N | stop N | size N |
/// running; `watch` prints the watch stream (a snapshot, then the changes of each
/// sampling; with --json one JSON object per line) until the endpoint closes it or the
/// tool is interrupted; `top` opens the live view (the tree with a sparkline per thread,
/// the selected thread's details, the events; keys: arrows to select, s to stop a subtree,
/// r to resize a pool, q to quit).
#[derive(Debug, Parser)]
#[command(name = "taskthread-ctl", version)]
pub struct Args {
    /// The endpoint's Unix socket.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "tcp",
        required_unless_present = "tcp"
    )]
    pub unix: Option<PathBuf>,

    /// The endpoint's TCP address, e.g. 127.0.0.1:7070.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<SocketAddr>,

    /// Ask for answers as JSON.
    #[arg(long)]
    pub json: bool,

    /// The prompt's history file (default: ~/.taskthread_ctl_history).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// How long to wait for the endpoint, in seconds (fractions allowed): to connect, and
    /// for each answer, from the request to its last byte (for `watch` and `top`, for each
    /// message, which comes every sampling interval of the endpoint: keep it longer).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "30",
        value_parser = parse_seconds
    )]
    pub timeout: Duration,

    /// The command to run once; none opens the prompt.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Reads `--timeout`: a positive number of seconds.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    match Duration::try_from_secs_f64(seconds) {
        Ok(timeout) if !timeout.is_zero() => Ok(timeout),
        _ => Err(format!("`{text}`: the timeout must be more than 0 seconds")),
    }
}

impl Args {
    /// Connects to the endpoint the arguments name, waiting at most the timeout, and gives
    /// the client that timeout.
    pub async fn connect(&self) -> io::Result<ControlClient> {
        let (connected, endpoint) = match (&self.unix, self.tcp) {
            #[cfg(unix)]
            (Some(path), _) => (
                tokio::time::timeout(self.timeout, ControlClient::connect_unix(path)).await,
                path.display().to_string(),
            ),
            (_, Some(addr)) => (
                tokio::time::timeout(self.timeout, ControlClient::connect_tcp(addr)).await,
                addr.to_string(),
            ),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no endpoint: give --unix PATH or --tcp ADDR",
                ));
            }
        };
        let connected = connected.unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {:?}", self.timeout),
            ))
        });
        match connected {
            Ok(client) => Ok(client.timeout(self.timeout)),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("cannot connect to {endpoint}: {e}"),
            )),
        }
    }

    /// The request line for `words`, with `--json` added if asked for.
    pub fn request_line(&self, words: &str) -> String {
        if self.json && !words.split_whitespace().any(|w| w == JSON_FLAG) {
            format!("{words} {JSON_FLAG}")
        } else {
            words.to_owned()
        }
    }
}

/// Prints an answer: the payload to `out` if it succeeded, `error: ...` to `err` if not.
pub fn print_answer(answer: &Answer, out: &mut impl Write, err: &mut impl Write) -> io::Result<()> {
    if answer.ok {
        writeln!(out, "{}", answer.payload)
    } else {
        writeln!(err, "error: {}", answer.payload)
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The prompt.
    Prompt,
    /// One request.
    Once,
    /// The watch stream, printed.
    Watch,
    /// The live view.
    Top,
}

impl Args {
    /// What the command line asks for.
    pub fn mode(&self) -> Mode {
        let words: Vec<&str> = self
            .command
            .iter()
            .map(String::as_str)
            .filter(|w| *w != JSON_FLAG)
            .collect();
        match words.as_slice() {
            [] if self.command.is_empty() => Mode::Prompt,
            ["watch"] => Mode::Watch,
            ["top"] => Mode::Top,
            _ => Mode::Once,
        }
    }

    /// Whether JSON is asked for, before or after the command.
    pub fn wants_json(&self) -> bool {
        self.json || self.command.iter().any(|w| w == JSON_FLAG)
    }
}

/// Prints the watch stream: each message as text, or as one line of JSON; returns the
/// process exit code (0 once the endpoint closes the stream, 2 if it cannot be reached or
/// the stream breaks).
pub async fn watch(args: &Args) -> i32 {
    let json = args.wants_json();
    let mut watch = match args.connect().await {
        Ok(client) => match client.watch().await {
            Ok(watch) => watch,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    loop {
        let message = match watch.next().await {
            Ok(message) => message,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return 0,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        let mut out = io::stdout().lock();
        let printed = if json {
            writeln!(out, "{}", message.to_json())
        } else {
            write!(out, "{message}")
        };
        // A closed stdout (piped into `head`) ends the watch quietly.
        if printed.and_then(|()| out.flush()).is_err() {
            return 0;
        }
    }
}

/// Runs one request and prints its answer; returns the process exit code.
pub async fn run_once(args: &Args) -> i32 {
    let mut client = match args.connect().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let line = args.request_line(&args.command.join(" "));
    match client.request(&line).await {
        Ok(answer) => {
            let _ = print_answer(&answer, &mut io::stdout().lock(), &mut io::stderr().lock());
            if answer.ok { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
