//! Real signals sent to the `signals` binary (`examples/signals.rs`) as its own process:
//! the first SIGINT or SIGTERM stops its tree gracefully (the root's `exit` hook runs, the
//! process exits with status 0) whether the program keeps the root's handle
//! (`Handle::stop_on_signals`), drives the tree from synchronous code
//! (`Background::stop_on_signals`) or calls `taskthread::run`; a second signal during the
//! stop aborts the tree (no `exit` hook finishes, status 1).
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A guard against a hang, not a timing assertion: each line comes within milliseconds.
const PATIENCE: Duration = Duration::from_secs(60);

/// The `signals` binary running in one mode, its stdout read line by line.
struct Program {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Program {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signals"))
            .args(args)
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the signals binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut program = Self {
            child,
            lines,
            seen: Vec::new(),
        };
        program.wait_for("ready");
        program
    }

    /// Reads lines until `expected`; panics with what was read if the output ends first.
    fn wait_for(&mut self, expected: &str) {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    let found = line == expected;
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(e) => panic!("no line {expected:?} ({e}); read {:?}", self.seen),
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name}");
    }

    /// Waits for the process to end; returns its status and every line it printed.
    fn finish(mut self) -> (ExitStatus, Vec<String>) {
        let status = self.child.wait().expect("wait for the process");
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.seen.push(line);
        }
        (status, self.seen)
    }
}

const MODES: [&str; 3] = ["async", "background", "run"];

fn stops_gracefully_on(signal: &str) {
    for mode in MODES {
        let program = Program::start(&[mode]);
        program.signal(signal);
        let (status, lines) = program.finish();
        assert!(
            lines.iter().any(|l| l == "exit hook ran"),
            "{mode}, SIG{signal}: the exit hook ran; printed {lines:?}"
        );
        assert!(
            status.success(),
            "{mode}, SIG{signal}: a graceful stop, {status}; printed {lines:?}"
        );
        if mode != "run" {
            // The program kept the handle and joined the root.
            assert_eq!(
                lines.last().map(String::as_str),
                Some("root stopped"),
                "{mode}"
            );
        }
    }
}

#[test]
fn sigint_stops_the_tree_gracefully_in_every_mode() {
    stops_gracefully_on("INT");
}

#[test]
fn sigterm_stops_the_tree_gracefully_in_every_mode() {
    stops_gracefully_on("TERM");
}

#[test]
fn a_second_signal_during_the_stop_aborts_the_tree_in_every_mode() {
    for (first, second) in [("INT", "TERM"), ("TERM", "INT"), ("INT", "INT")] {
        for mode in MODES {
            let mut program = Program::start(&[mode, "slow-exit"]);
            program.signal(first);
            // The graceful stop has begun: the exit hook hangs.
            program.wait_for("exit hook started");
            program.signal(second);
            let (status, lines) = program.finish();
            assert!(
                !status.success(),
                "{mode}, SIG{first} then SIG{second}: an abort, {status}; printed {lines:?}"
            );
            assert!(
                !lines.iter().any(|l| l == "exit hook ran"),
                "{mode}: the exit hook was cut short; printed {lines:?}"
            );
            let last = lines.last().map(String::as_str).unwrap_or_default();
            assert!(last.contains("aborted"), "{mode}: ended {last:?}");
            if mode == "run" {
                assert!(last.contains("second signal"), "{mode}: ended {last:?}");
            }
        }
    }
}
