//! The `Mailer` thread: builds each mail and sends it with lettre on tokio's blocking pool,
//! a bounded number at once, and reports every outcome UP.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{FileTransport, Message, SmtpTransport, Transport};
use taskthread::prelude::*;

/// Where mails go.
#[derive(Debug, Clone)]
pub enum Outbox {
    /// Each mail is written to `DIR/<id>.eml` (lettre's file transport): nothing to install.
    Directory(PathBuf),
    /// Each mail is sent to an SMTP server, in plain text (no TLS), over its own
    /// connection.
    Smtp {
        /// The server's host name or address.
        host: String,
        /// Its port.
        port: u16,
    },
}

impl fmt::Display for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(dir) => write!(f, "files in {}", dir.display()),
            Self::Smtp { host, port } => write!(f, "smtp://{host}:{port} (no TLS)"),
        }
    }
}

/// An outbox ready to send: the lettre transport. Cheap to clone into each job.
#[derive(Clone)]
enum Transporter {
    Files(FileTransport),
    Smtp(SmtpTransport),
}

impl Transporter {
    fn new(outbox: &Outbox) -> Self {
        match outbox {
            Outbox::Directory(dir) => Self::Files(FileTransport::new(dir)),
            Outbox::Smtp { host, port } => Self::Smtp(
                SmtpTransport::builder_dangerous(host.as_str())
                    .port(*port)
                    .timeout(Some(Duration::from_secs(10)))
                    .build(),
            ),
        }
    }

    /// Sends one mail; blocks (file or network I/O). Returns where it went.
    fn send(&self, message: &Message) -> Result<String, String> {
        match self {
            Self::Files(files) => files
                .send(message)
                .map(|id| format!("written as {id}.eml"))
                .map_err(|e| e.to_string()),
            Self::Smtp(smtp) => smtp
                .send(message)
                .map(|response| {
                    format!(
                        "accepted: {}",
                        response.message().collect::<Vec<_>>().join(" ")
                    )
                })
                .map_err(|e| e.to_string()),
        }
    }
}

/// A mail to send: from the front to the mailer (DOWN).
#[derive(Debug, Clone)]
pub struct MailJob {
    /// The front's number for it, to match the delivery report.
    pub id: u64,
    /// The recipient.
    pub to: Mailbox,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// What became of a mail: from the mailer to the front (UP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The job's number.
    pub id: u64,
    /// The recipient, as written in the mail.
    pub to: String,
    /// Where it went, or why it could not be sent.
    pub outcome: Result<String, String>,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(done) => write!(f, "mail #{} to {}: sent, {done}", self.id, self.to),
            Err(why) => write!(f, "mail #{} to {}: failed: {why}", self.id, self.to),
        }
    }
}

/// The result of one blocking send, back in the mailer's loop.
struct Attempt(Delivery);

/// Ask the mailer what it has done so far.
#[derive(Debug, Clone, Copy)]
pub struct Status;

/// The mailer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Jobs received and not yet done.
    pub in_flight: u64,
    /// Mails sent.
    pub sent: u64,
    /// Mails that could not be built or sent.
    pub failed: u64,
}

/// Sends mails: one blocking lettre send per job on tokio's blocking pool (at most the
/// thread's blocking limit at once; the others wait their turn), each outcome sent UP.
///
/// A graceful stop handles every job already queued and waits for every send in progress,
/// so no accepted job goes unreported.
pub struct Mailer {
    from: Mailbox,
    transport: Transporter,
    counts: Counts,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer sending from `from` to `outbox`.
    pub fn new(from: Mailbox, outbox: &Outbox) -> Self {
        Self {
            from,
            transport: Transporter::new(outbox),
            counts: Counts::default(),
        }
    }

    /// Counts a job as done.
    fn count(&mut self, delivery: Delivery) -> Delivery {
        self.counts.in_flight -= 1;
        match &delivery.outcome {
            Ok(_) => self.counts.sent += 1,
            Err(why) => {
                self.counts.failed += 1;
                tracing::warn!(id = delivery.id, to = %delivery.to, "not sent: {why}");
            }
        }
        delivery
    }

    fn build(&self, job: MailJob) -> Result<Message, String> {
        Message::builder()
            .from(self.from.clone())
            .to(job.to)
            .subject(job.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(job.body)
            .map_err(|e| e.to_string())
    }
}

#[taskthread(up = Delivery)]
impl Mailer {
    #[down]
    async fn job(&mut self, ctx: &mut Ctx<Self>, job: MailJob) -> Result<()> {
        let (id, to) = (job.id, job.to.to_string());
        self.counts.in_flight += 1;
        match self.build(job) {
            Ok(message) => {
                let transport = self.transport.clone();
                ctx.spawn_blocking(move || {
                    Attempt(Delivery {
                        id,
                        to,
                        outcome: transport.send(&message),
                    })
                });
            }
            Err(why) => {
                let outcome = Err(format!("cannot build the mail: {why}"));
                let delivery = self.count(Delivery { id, to, outcome });
                ctx.up(delivery).await?;
            }
        }
        Ok(())
    }

    #[stream]
    async fn attempted(&mut self, ctx: &mut Ctx<Self>, Attempt(delivery): Attempt) -> Result<()> {
        let delivery = self.count(delivery);
        ctx.up(delivery).await?;
        Ok(())
    }

    #[down]
    async fn status(&mut self, _ctx: &mut Ctx<Self>, _q: Status) -> Result<Counts> {
        Ok(self.counts)
    }
}
