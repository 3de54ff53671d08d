//! The synchronous front: plain blocking code that reads commands, hands mail jobs to the
//! mailer's background tree, prints each delivery as it comes back UP, and at the end of
//! input stops the tree gracefully and sums up.

use std::io::{self, BufRead, Write};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use lettre::message::Mailbox;
use taskthread::{Background, BackgroundHandle, BlockingError, ChildOptions, Exit, RecvError};

use super::command::{self, Command, HELP};
use super::mailer::{Counts, MailJob, Mailer, Outbox, Status};

/// How a session is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where mails go.
    pub outbox: Outbox,
    /// The sender of every mail.
    pub from: Mailbox,
    /// How many mails are sent at once (the mailer's blocking limit).
    pub concurrency: usize,
}

/// What a session did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Mails sent.
    pub sent: u64,
    /// Mails that could not be built or sent.
    pub failed: u64,
    /// Input lines that were not valid commands.
    pub rejected: u64,
}

/// Output shared by the reading side and the delivery printer.
pub type Out = Arc<Mutex<dyn Write + Send>>;

fn say(out: &Out, line: impl std::fmt::Display) {
    let mut out = out
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // A closed output (a client gone) is not the session's failure.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs one session: starts the mailer's tree, reads `input` to its end (or `quit`),
/// then stops the tree gracefully — every queued mail is still sent and reported — and
/// returns the counts. Bad lines get an error line and the session goes on.
///
/// # Errors
/// If the tree cannot be started, or the input cannot be read.
pub fn run(config: &Config, input: impl BufRead, out: Out) -> io::Result<Summary> {
    let mailer = Background::new()
        .thread_name("mailer")
        .options(ChildOptions::new().blocking_limit(config.concurrency))
        .stop_deadline(Duration::from_secs(60))
        .spawn(Mailer::new(config.from.clone(), &config.outbox))?;

    // Deliveries come back UP while the front is still reading: print them on their own
    // OS thread, with a clone of the handle.
    let printer = {
        let (mailer, out) = (mailer.clone(), Arc::clone(&out));
        thread::Builder::new()
            .name("deliveries".into())
            .spawn(move || print_deliveries(&mailer, &out))?
    };

    let read = read_commands(&mailer, input, &out);
    // Stop, then let the printer receive everything to the end, then join.
    mailer.stop();
    let counts = printer.join().unwrap_or_default();
    match mailer.join() {
        Ok(Exit::Stopped | Exit::Completed) => {}
        Ok(exit) => say(&out, format_args!("error: the mailer ended badly: {exit}")),
        Err(e) => say(&out, format_args!("error: {e}")),
    }
    let rejected = read?;
    Ok(Summary {
        sent: counts.sent,
        failed: counts.failed,
        rejected,
    })
}

/// Reads commands until the end of input or `quit`; returns how many lines were rejected.
fn read_commands(
    mailer: &BackgroundHandle<Mailer>,
    input: impl BufRead,
    out: &Out,
) -> io::Result<u64> {
    let mut rejected = 0;
    let mut next_id = 1;
    for line in input.lines() {
        match command::parse(&line?) {
            Ok(Command::Send { to, subject, body }) => {
                let id = next_id;
                next_id += 1;
                let shown = to.to_string();
                match mailer.send(MailJob {
                    id,
                    to,
                    subject,
                    body,
                }) {
                    Ok(()) => say(out, format_args!("queued mail #{id} to {shown}")),
                    Err(e) => {
                        say(out, format_args!("error: mail #{id} not queued: {e}"));
                        if matches!(e, BlockingError::Ended(_)) {
                            break;
                        }
                    }
                }
            }
            Ok(Command::Status) => status(mailer, out),
            Ok(Command::Help) => say(out, HELP),
            Ok(Command::Quit) => break,
            Ok(Command::Nothing) => {}
            Err(bad) => {
                rejected += 1;
                say(out, format_args!("error: {bad}"));
            }
        }
    }
    Ok(rejected)
}

fn status(mailer: &BackgroundHandle<Mailer>, out: &Out) {
    match mailer.ask_timeout(Status, Duration::from_secs(5)) {
        Ok(Counts {
            in_flight,
            sent,
            failed,
        }) => say(
            out,
            format_args!(
                "status: in flight={in_flight} sent={sent} failed={failed}\n{}",
                mailer.snapshot()
            ),
        ),
        Err(e) => say(out, format_args!("error: no status: {e}")),
    }
}

/// Prints every delivery until the tree has ended and all were received; counts them.
fn print_deliveries(mailer: &BackgroundHandle<Mailer>, out: &Out) -> Counts {
    let mut counts = Counts::default();
    loop {
        match mailer.recv() {
            Ok(delivery) => {
                if delivery.outcome.is_ok() {
                    counts.sent += 1;
                } else {
                    counts.failed += 1;
                }
                say(out, &delivery);
            }
            Err(RecvError::Ended) => return counts,
            Err(e) => {
                say(out, format_args!("error: {e}"));
                return counts;
            }
        }
    }
}
