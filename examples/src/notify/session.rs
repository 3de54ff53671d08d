//! The synchronous front: plain blocking code that reads commands (from stdin, or from TCP
//! clients, a thread each), hands mail jobs to the mailer's background tree, prints each
//! delivery as it comes back UP, and at the end stops the tree gracefully and sums up.

use std::fmt::Display;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lettre::message::Mailbox;
use taskthread::sync::{Background, BackgroundHandle, BlockingError, RecvError};
use taskthread::{ChildOptions, Exit};

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

fn say(out: &Out, line: impl Display) {
    let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
    // A closed output is not the session's failure.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs one session on `input` (stdin in the example): starts the mailer's tree, reads
/// commands to the end of input (or `quit`), then stops the tree gracefully — every queued
/// mail is still sent and reported — and returns the counts. Bad lines get an error line
/// and the session goes on.
///
/// # Errors
/// If the tree cannot be started, or the input cannot be read.
pub fn run(config: &Config, input: impl BufRead, out: Out) -> io::Result<Summary> {
    let (front, printer) = Front::start(config, &out)?;
    let mut read = Ok(());
    for line in input.lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                read = Err(e);
                break;
            }
        };
        let (reply, flow) = front.handle(&line);
        if let Some(reply) = reply {
            say(&out, reply);
        }
        if flow != Flow::Go {
            break;
        }
    }
    let summary = front.finish(printer, &out);
    read.map(|()| summary)
}

/// Serves the same commands to TCP clients, a line each, with std only: one OS thread per
/// client, each with a clone of the mailer's handle; replies go to the client, deliveries
/// to `out`. `quit` ends a client's session; `shutdown` from any client ends the server,
/// which then stops the tree gracefully like [`run`] and returns the counts.
///
/// # Errors
/// If the tree cannot be started, or the listener fails.
pub fn serve(config: &Config, listener: TcpListener, out: Out) -> io::Result<Summary> {
    let mut address = listener.local_addr()?;
    if address.ip().is_unspecified() {
        address.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let (front, printer) = Front::start(config, &out)?;
    let front = Arc::new(front);
    let shutting_down = Arc::new(AtomicBool::new(false));
    let mut clients: Vec<(TcpStream, JoinHandle<()>)> = Vec::new();
    for conn in listener.incoming() {
        if shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let Ok(conn) = conn else { continue };
        let Ok(ours) = conn.try_clone() else { continue };
        let (front, shutting_down) = (Arc::clone(&front), Arc::clone(&shutting_down));
        let client = thread::spawn(move || {
            let flow = serve_client(&front, &conn).unwrap_or(Flow::Quit);
            let _ = conn.shutdown(Shutdown::Both);
            if flow == Flow::Shutdown {
                shutting_down.store(true, Ordering::SeqCst);
                // Wake the accept loop, which then sees the flag.
                let _ = TcpStream::connect(address);
            }
        });
        clients.retain(|(_, client)| !client.is_finished());
        clients.push((ours, client));
    }
    // Clients still connected are told the server is going: their reads end.
    for (conn, client) in clients {
        let _ = conn.shutdown(Shutdown::Both);
        let _ = client.join();
    }
    let front = Arc::into_inner(front).ok_or_else(|| io::Error::other("a client is left"))?;
    Ok(front.finish(printer, &out))
}

/// One TCP client's session; how it ended.
fn serve_client(front: &Front, conn: &TcpStream) -> io::Result<Flow> {
    let mut replies = conn;
    writeln!(replies, "notify: ready; `help` lists the commands")?;
    for line in BufReader::new(conn).lines() {
        let (reply, flow) = front.handle(&line?);
        if let Some(reply) = reply {
            writeln!(replies, "{reply}")?;
        }
        if flow != Flow::Go {
            return Ok(flow);
        }
    }
    Ok(Flow::Quit)
}

/// What follows a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    /// This input is done.
    Quit,
    /// The whole front is done.
    Shutdown,
}

/// The front's state, shared by every input.
struct Front {
    mailer: BackgroundHandle<Mailer>,
    next_id: AtomicU64,
    rejected: AtomicU64,
}

impl Front {
    /// Starts the mailer's tree, and the thread that prints its deliveries.
    fn start(config: &Config, out: &Out) -> io::Result<(Self, JoinHandle<Counts>)> {
        let mailer = Background::new()
            .thread_name("mailer")
            .options(ChildOptions::new().blocking_limit(config.concurrency))
            .stop_deadline(Duration::from_secs(60))
            .spawn(Mailer::new(config.from.clone(), &config.outbox))?;
        // Deliveries come back UP while the front is still reading: print them on their
        // own OS thread, with a clone of the handle.
        let printer = {
            let (mailer, out) = (mailer.clone(), Arc::clone(out));
            thread::Builder::new()
                .name("deliveries".into())
                .spawn(move || print_deliveries(&mailer, &out))?
        };
        let front = Self {
            mailer,
            next_id: AtomicU64::new(1),
            rejected: AtomicU64::new(0),
        };
        Ok((front, printer))
    }

    /// Handles one line; the reply to show, if any.
    fn handle(&self, line: &str) -> (Option<String>, Flow) {
        let reply = match command::parse(line) {
            Ok(Command::Send { to, subject, body }) => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let shown = to.to_string();
                let job = MailJob {
                    id,
                    to,
                    subject,
                    body,
                };
                match self.mailer.send(job) {
                    Ok(()) => format!("queued mail #{id} to {shown}"),
                    Err(e @ BlockingError::Ended(_)) => {
                        return (
                            Some(format!("error: mail #{id} not queued: {e}")),
                            Flow::Quit,
                        );
                    }
                    Err(e) => format!("error: mail #{id} not queued: {e}"),
                }
            }
            Ok(Command::Status) => self.status(),
            Ok(Command::Help) => HELP.to_owned(),
            Ok(Command::Quit) => return (None, Flow::Quit),
            Ok(Command::Shutdown) => return (None, Flow::Shutdown),
            Ok(Command::Nothing) => return (None, Flow::Go),
            Err(bad) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                format!("error: {bad}")
            }
        };
        (Some(reply), Flow::Go)
    }

    fn status(&self) -> String {
        match self.mailer.ask_timeout(Status, Duration::from_secs(5)) {
            Ok(Counts {
                in_flight,
                sent,
                failed,
            }) => format!(
                "status: in flight={in_flight} sent={sent} failed={failed}\n{}",
                self.mailer.snapshot()
            ),
            Err(e) => format!("error: no status: {e}"),
        }
    }

    /// Stops the tree, lets the printer receive every delivery to the end, joins both.
    fn finish(self, printer: JoinHandle<Counts>, out: &Out) -> Summary {
        self.mailer.stop();
        let counts = printer.join().unwrap_or_default();
        match self.mailer.join() {
            Ok(Exit::Stopped | Exit::Completed) => {}
            Ok(exit) => say(out, format_args!("error: the mailer ended badly: {exit}")),
            Err(e) => say(out, format_args!("error: {e}")),
        }
        Summary {
            sent: counts.sent,
            failed: counts.failed,
            rejected: self.rejected.into_inner(),
        }
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
