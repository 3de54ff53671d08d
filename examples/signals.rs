//! # signals — Ctrl-C and SIGTERM stop a tree whose handle the program keeps
//!
//! A service thread runs until the process gets Ctrl-C (SIGINT) or SIGTERM; the signal
//! stops the tree gracefully (the `exit` hook runs) while `main` still holds the root's
//! handle; a second signal during the stop aborts the tree. The same program three ways:
//!
//! ```text
//! cargo run -p taskthread-examples --bin signals            # async: spawn + Handle::stop_on_signals
//! cargo run -p taskthread-examples --bin signals background # sync: Background::stop_on_signals
//! cargo run -p taskthread-examples --bin signals run        # taskthread::run
//! ```
//!
//! Add `slow-exit` to make the `exit` hook hang, to see a second signal abort the tree.
//! The program prints `ready` once the signals are listened for, and `exit hook ran` from
//! the root's `exit` hook. It exits with status 0 after a graceful stop, 1 after an abort.
//!
//! It is a binary of the package (not an example) so that `examples/tests/signals.rs` can
//! run it as its own process and send it real signals.

use std::io::Write;
use std::time::Duration;

use taskthread::prelude::*;
use taskthread::sync::Background;

/// Answered once the service runs.
struct Ping;

/// A service that does nothing until it is stopped.
struct Service {
    slow_exit: bool,
    /// Whether the service says it is ready itself (under `run`, where `main` cannot ask).
    says_ready: bool,
}

#[taskthread]
impl Service {
    #[down]
    async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<bool> {
        Ok(true)
    }

    #[rescheduling(every = "10ms")]
    async fn tick(&mut self, _ctx: &mut Ctx<Self>) -> Result<Reschedule> {
        // Under `run` nobody asks: the service says ready on its first tick. `run` listens
        // for the signals before it first waits, and the runtime has one thread: before
        // the root's first turn.
        if self.says_ready {
            say_once("ready");
        }
        Ok(Reschedule::Again)
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        if self.slow_exit {
            say("exit hook started");
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        say("exit hook ran");
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn say_once(line: &'static str) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| say(line));
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.iter().find(|a| *a != "slow-exit").map(String::as_str);
    let service = Service {
        slow_exit: args.iter().any(|a| a == "slow-exit"),
        says_ready: mode == Some("run"),
    };
    let ended = match mode {
        None | Some("async") => in_async(service),
        Some("background") => in_background(service),
        Some("run") => in_run(service),
        Some(other) => Err(format!("unknown mode {other:?}: async, background or run")),
    };
    match ended {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("ended: {e}"));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An async program that keeps its root's handle.
fn in_async(service: Service) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let service = taskthread::spawn(service).stop_on_signals();
        service.ask(Ping).await.map_err(|e| e.to_string())?;
        say_once("ready");
        let exit = service.join().await;
        say(&format!("root {exit}"));
        exit.into_result().map_err(|e| e.to_string())
    })
}

/// A synchronous program driving a background tree.
fn in_background(service: Service) -> Result<(), String> {
    let service = Background::new()
        .stop_on_signals()
        .spawn(service)
        .map_err(|e| e.to_string())?;
    service.ask(Ping).map_err(|e| e.to_string())?;
    say_once("ready");
    let exit = service.join().map_err(|e| e.to_string())?;
    say(&format!("root {exit}"));
    exit.into_result().map_err(|e| e.to_string())
}

/// `taskthread::run`: no handle.
fn in_run(service: Service) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(taskthread::run(service))
        .map_err(|e| e.to_string())
}
