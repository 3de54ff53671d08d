//! The synchronous front: plain blocking code that reads commands (from stdin, or from TCP
//! clients, a thread each), hands mail jobs to the mailer's background tree, prints each
//! delivery as it comes back UP, and at the end stops the tree gracefully and sums up:
//! every mail queued is reported as sent, failed, or not sent by the stop deadline.

use std::collections::BTreeMap;
use std::fmt::{self, Display};
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
use super::lines::{Line, Lines};
use super::mailer::{Counts, Delivery, MailJob, Mailer, Outbox, Status};

/// How a session is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where mails go.
    pub outbox: Outbox,
    /// The sender of every mail.
    pub from: Mailbox,
    /// How many mails are sent at once (the mailer's blocking limit).
    pub concurrency: usize,
    /// How long the stop at the end may take; mails not sent by then are reported as not
    /// sent.
    pub stop_deadline: Duration,
    /// The longest line taken, in bytes; a longer one is skipped with an error.
    pub max_line: usize,
    /// With `--listen`: how many clients may be connected at once; more are turned away.
    pub max_clients: usize,
    /// With `--listen`: how long a client may send nothing before it is disconnected.
    pub idle_timeout: Option<Duration>,
}

impl Config {
    /// A configuration with the defaults: 4 mails at once, a stop deadline of 60 s, lines
    /// of 64 KiB, 64 clients idle for 5 minutes at most.
    pub fn new(outbox: Outbox, from: Mailbox) -> Self {
        Self {
            outbox,
            from,
            concurrency: 4,
            stop_deadline: Duration::from_secs(60),
            max_line: 64 * 1024,
            max_clients: 64,
            idle_timeout: Some(Duration::from_secs(300)),
        }
    }
}

/// What a session did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Mails sent.
    pub sent: u64,
    /// Mails that could not be built or sent.
    pub failed: u64,
    /// Mails queued that the stop deadline cut off before they were reported sent or
    /// failed (they may have been in progress).
    pub unsent: u64,
    /// Input lines that were not valid commands.
    pub rejected: u64,
}

impl Summary {
    /// Every mail queued was sent and every line was valid.
    pub fn is_success(&self) -> bool {
        self.failed == 0 && self.unsent == 0 && self.rejected == 0
    }
}

/// The summary line: `notify: sent=S failed=F unsent=U rejected=R`.
impl Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "notify: sent={} failed={} unsent={} rejected={}",
            self.sent, self.failed, self.unsent, self.rejected
        )
    }
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
/// commands to the end of input (or `quit`), then stops the tree gracefully (every queued
/// mail is still sent, or reported as not sent if the stop deadline passes) and returns
/// the counts. Bad lines (not a command, not UTF-8, too long) get an error line and the
/// session goes on.
///
/// # Errors
/// If the tree cannot be started, or the input cannot be read.
pub fn run(config: &Config, input: impl BufRead, out: Out) -> io::Result<Summary> {
    let (front, printer) = Front::start(config, &out)?;
    let mut lines = Lines::new(input, config.max_line);
    let read = loop {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let (reply, flow) = front.handle(line);
        if let Some(reply) = reply {
            say(&out, reply);
        }
        if flow != Flow::Go {
            break Ok(());
        }
    };
    let summary = front.finish(printer, &out);
    read.map(|()| summary)
}

/// Serves the same commands to TCP clients, a line each, with std only: one OS thread per
/// client (at most `max_clients`; more are turned away), each with a clone of the
/// mailer's handle; replies go to the client, deliveries to `out`. A client idle for
/// `idle_timeout` is disconnected. `quit` ends a client's session; `shutdown` from any
/// client ends the server, which then stops the tree gracefully like [`run`] and returns
/// the counts.
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
        let Ok(mut conn) = conn else { continue };
        clients.retain(|(_, client)| !client.is_finished());
        if clients.len() >= config.max_clients {
            let _ = writeln!(
                conn,
                "error: {} clients are connected (the most); try again later",
                config.max_clients
            );
            continue; // dropping it closes it
        }
        let Ok(ours) = conn.try_clone() else { continue };
        let (front, shutting_down) = (Arc::clone(&front), Arc::clone(&shutting_down));
        let (max_line, idle_timeout) = (config.max_line, config.idle_timeout);
        let client = thread::spawn(move || {
            let flow = serve_client(&front, &conn, max_line, idle_timeout).unwrap_or(Flow::Quit);
            let _ = conn.shutdown(Shutdown::Both);
            if flow == Flow::Shutdown {
                shutting_down.store(true, Ordering::SeqCst);
                // Wake the accept loop, which then sees the flag.
                let _ = TcpStream::connect(address);
            }
        });
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
fn serve_client(
    front: &Front,
    conn: &TcpStream,
    max_line: usize,
    idle_timeout: Option<Duration>,
) -> io::Result<Flow> {
    conn.set_read_timeout(idle_timeout)?;
    let mut replies = conn;
    writeln!(replies, "notify: ready; `help` lists the commands")?;
    let mut lines = Lines::new(BufReader::new(conn), max_line);
    loop {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(Flow::Quit),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let idle = idle_timeout.unwrap_or_default();
                writeln!(replies, "notify: closing: nothing received for {idle:?}")?;
                return Ok(Flow::Quit);
            }
            Err(e) => return Err(e),
        };
        let (reply, flow) = front.handle(line);
        if let Some(reply) = reply {
            writeln!(replies, "{reply}")?;
        }
        if flow != Flow::Go {
            return Ok(flow);
        }
    }
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

/// The mails queued and not yet reported, by number: their recipients.
type Pending = Arc<Mutex<BTreeMap<u64, String>>>;

fn pending(pending: &Pending) -> std::sync::MutexGuard<'_, BTreeMap<u64, String>> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The front's state, shared by every input.
struct Front {
    mailer: BackgroundHandle<Mailer>,
    next_id: AtomicU64,
    rejected: AtomicU64,
    pending: Pending,
}

impl Front {
    /// Starts the mailer's tree, and the thread that prints its deliveries.
    fn start(config: &Config, out: &Out) -> io::Result<(Self, JoinHandle<Counts>)> {
        let mailer = Background::new()
            .thread_name("mailer")
            .options(ChildOptions::new().blocking_limit(config.concurrency))
            .stop_deadline(config.stop_deadline)
            .spawn(Mailer::new(config.from.clone(), &config.outbox))?;
        let pending = Pending::default();
        // Deliveries come back UP while the front is still reading: print them on their
        // own OS thread, with a clone of the handle.
        let printer = {
            let (mailer, out, pending) = (mailer.clone(), Arc::clone(out), Arc::clone(&pending));
            thread::Builder::new()
                .name("deliveries".into())
                .spawn(move || print_deliveries(&mailer, &out, &pending))?
        };
        let front = Self {
            mailer,
            next_id: AtomicU64::new(1),
            rejected: AtomicU64::new(0),
            pending,
        };
        Ok((front, printer))
    }

    /// Handles one line; the reply to show, if any.
    fn handle(&self, line: Line) -> (Option<String>, Flow) {
        let line = match line {
            Line::Text(line) => line,
            Line::TooLong(len) => {
                return (
                    Some(self.reject(format_args!("a line of {len} bytes is too long: skipped"))),
                    Flow::Go,
                );
            }
            Line::NotUtf8 => {
                return (
                    Some(self.reject("the line is not valid UTF-8: skipped")),
                    Flow::Go,
                );
            }
        };
        let reply = match command::parse(&line) {
            Ok(Command::Send { to, subject, body }) => return self.queue(to, subject, body),
            Ok(Command::Status) => self.status(),
            Ok(Command::Help) => HELP.to_owned(),
            Ok(Command::Quit) => return (None, Flow::Quit),
            Ok(Command::Shutdown) => return (None, Flow::Shutdown),
            Ok(Command::Nothing) => return (None, Flow::Go),
            Err(bad) => self.reject(bad),
        };
        (Some(reply), Flow::Go)
    }

    /// Counts a bad line; the error to show.
    fn reject(&self, why: impl Display) -> String {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        format!("error: {why}")
    }

    /// Queues a mail, remembered as pending until its delivery is reported.
    fn queue(&self, to: Mailbox, subject: String, body: String) -> (Option<String>, Flow) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shown = to.to_string();
        pending(&self.pending).insert(id, shown.clone());
        let job = MailJob {
            id,
            to,
            subject,
            body,
        };
        match self.mailer.send(job) {
            Ok(()) => (Some(format!("queued mail #{id} to {shown}")), Flow::Go),
            Err(e) => {
                pending(&self.pending).remove(&id);
                // A mailer that has ended takes no more: this input is done.
                let flow = if matches!(e, BlockingError::Ended(_)) {
                    Flow::Quit
                } else {
                    Flow::Go
                };
                (Some(format!("error: mail #{id} not queued: {e}")), flow)
            }
        }
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

    /// Stops the tree, lets the printer receive every delivery to the end, joins both,
    /// and reports every mail queued that was not reported: the stop deadline passed
    /// first.
    fn finish(self, printer: JoinHandle<Counts>, out: &Out) -> Summary {
        self.mailer.stop();
        let counts = printer.join().unwrap_or_default();
        match self.mailer.join() {
            Ok(Exit::Stopped | Exit::Completed) => {}
            Ok(exit) => say(out, format_args!("error: the mailer ended badly: {exit}")),
            Err(e) => say(out, format_args!("error: {e}")),
        }
        let unsent = std::mem::take(&mut *pending(&self.pending));
        for (id, to) in &unsent {
            say(
                out,
                format_args!(
                    "mail #{id} to {to}: not sent: the stop deadline passed first \
                     (it may have been in progress)"
                ),
            );
        }
        Summary {
            sent: counts.sent,
            failed: counts.failed,
            unsent: unsent.len() as u64,
            rejected: self.rejected.into_inner(),
        }
    }
}

/// Prints every delivery until the tree has ended and all were received; counts them.
fn print_deliveries(mailer: &BackgroundHandle<Mailer>, out: &Out, pending: &Pending) -> Counts {
    let mut counts = Counts::default();
    loop {
        match mailer.recv() {
            Ok(delivery) => {
                count(&mut counts, &delivery);
                self::pending(pending).remove(&delivery.id);
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

fn count(counts: &mut Counts, delivery: &Delivery) {
    if delivery.outcome.is_ok() {
        counts.sent += 1;
    } else {
        counts.failed += 1;
    }
}
