//! [`ControlClient`]: sends request lines to a control endpoint and reads its framed
//! answers.

use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::connection::Connection;
use super::protocol::{self, Header, JSON_FLAG, Line};
use crate::watch::WatchMessage;

/// An answer of the control endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// Whether the request succeeded (`OK`) or not (`ERR`).
    pub ok: bool,
    /// The payload: the answer, or the error message (the final `\n` removed).
    pub payload: String,
}

/// The largest answer a [`ControlClient`] accepts, in bytes. The payload is kept as it
/// arrives: a header that announces a large answer reserves nothing by itself.
pub const MAX_ANSWER: usize = 64 << 20;

/// How long a [`ControlClient`] waits for an answer, unless [`ControlClient::timeout`]
/// says otherwise: 30 seconds, from sending the request to the answer's last byte (for a
/// watch, from one message to the next, which comes every sampling interval: a second by
/// default). An answer takes milliseconds; this bounds the wait on an endpoint that has
/// stopped answering. A pool command the pool is slow to apply is the exception: the
/// endpoint answers it `ERR` after its own idle timeout (a minute by default), so a client
/// that waits less sees its own timeout first.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The room a payload starts with; it grows as the payload arrives.
const FIRST_ROOM: usize = 64 << 10;

/// A client of the control endpoint: sends request lines and reads framed answers. The
/// `taskthread-ctl` tool is built on it.
///
/// It waits for each answer at most its [timeout](Self::timeout), on tokio's timer: its
/// runtime needs time enabled (as `#[tokio::main]` and taskthread's threads do).
///
/// ```no_run
/// # // `no_run`: it needs a live endpoint; the tests and the guide run one.
/// use taskthread::control::ControlClient;
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let mut client = ControlClient::connect_unix("/run/app/control.sock").await?;
/// let tree = client.request("tree").await?;
/// println!("{}", tree.payload);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ControlClient {
    session: BufReader<Connection>,
    timeout: Duration,
    /// Set when a wait was cut short in the middle of an answer: what comes next on the
    /// session is not the start of one.
    out_of_step: bool,
}

impl ControlClient {
    fn new(connection: Connection) -> Self {
        Self {
            session: BufReader::new(connection),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            out_of_step: false,
        }
    }

    /// Connects to an endpoint on a Unix socket.
    #[cfg(unix)]
    pub async fn connect_unix(path: impl AsRef<Path>) -> io::Result<Self> {
        let stream = tokio::net::UnixStream::connect(path).await?;
        Ok(Self::new(Connection::Unix(stream)))
    }

    /// Connects to an endpoint on TCP.
    pub async fn connect_tcp(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        Ok(Self::new(Connection::Tcp(stream)))
    }

    /// Waits at most `timeout` for each answer: from sending a request to the answer's last
    /// byte, and in a [watch](Self::watch), for each message (so it must be longer than the
    /// endpoint's watch interval). The default is [`DEFAULT_REQUEST_TIMEOUT`] (30 seconds).
    ///
    /// A request or message not answered in time fails with
    /// [`TimedOut`](io::ErrorKind::TimedOut), and the session cannot be used any more (an
    /// answer may be half read): every later request fails at once; connect again. So does
    /// a session whose last request failed part-way (an answer not framed as the protocol
    /// says) or was cancelled (its future dropped) before its answer was read whole.
    ///
    /// # Panics
    /// If `timeout` is zero: no answer could ever arrive in time.
    ///
    /// ```no_run
    /// # // `no_run`: it needs a live endpoint; the tests run one.
    /// use std::time::Duration;
    /// use taskthread::control::ControlClient;
    ///
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let mut client = ControlClient::connect_unix("/run/app/control.sock")
    ///     .await?
    ///     .timeout(Duration::from_secs(5));
    /// let tree = client.request("tree").await?;
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "a control client's timeout must not be zero"
        );
        self.timeout = timeout;
        self
    }

    /// Sends one request line (without its `\n`) and reads the answer.
    ///
    /// Fails on I/O errors, on a line that holds a `\n`, on an answer that is not framed
    /// as the protocol says, and on an answer that does not arrive whole within the
    /// [timeout](Self::timeout). An endpoint that answered and closed the session before
    /// the request was sent (a refusal) gives that answer, not the error of sending.
    pub async fn request(&mut self, line: &str) -> io::Result<Answer> {
        if line.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a request is one line: it must not contain `\\n`",
            ));
        }
        let mut request = Vec::with_capacity(line.len() + 1);
        request.extend_from_slice(line.as_bytes());
        request.push(b'\n');
        self.in_step()?;
        // Out of step until the answer is read whole: a request cancelled part-way, or
        // whose answer is malformed, leaves the session so.
        self.out_of_step = true;
        let answered = tokio::time::timeout(self.timeout, self.exchange(&request)).await;
        let answer = self.unless_timed_out(answered)?;
        self.out_of_step = false;
        Ok(answer)
    }

    /// Sends `request` and reads its answer.
    async fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        let out = self.session.get_mut();
        let sent = async {
            out.write_all(request).await?;
            out.flush().await
        };
        if let Err(e) = sent.await {
            // The endpoint may have answered and closed before reading the request (it
            // refuses a session over its limit that way): its answer beats "broken pipe".
            return self.read_answer().await.map_err(|_| e);
        }
        self.read_answer().await
    }

    /// Fails if an earlier wait was cut short.
    fn in_step(&self) -> io::Result<()> {
        if self.out_of_step {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "an earlier request to the control endpoint timed out, failed part-way or was cancelled: this session cannot be used any more; connect again",
            ));
        }
        Ok(())
    }

    /// The outcome of a wait bounded by the timeout; cut short, it leaves the session out
    /// of step.
    fn unless_timed_out<T>(
        &mut self,
        waited: Result<io::Result<T>, tokio::time::error::Elapsed>,
    ) -> io::Result<T> {
        waited.unwrap_or_else(|_| {
            self.out_of_step = true;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer from the control endpoint within {:?}",
                    self.timeout
                ),
            ))
        })
    }

    async fn read_answer(&mut self) -> io::Result<Answer> {
        let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let header = match protocol::read_line(&mut self.session).await? {
            Line::Request(header) => header,
            Line::End => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the control endpoint closed the session",
                ));
            }
            Line::TooLong => return Err(bad("answer header too long".to_owned())),
        };
        let Header { ok, len } = Header::parse(&String::from_utf8_lossy(&header)).map_err(bad)?;
        if len > MAX_ANSWER {
            return Err(bad(format!("answer of {len} bytes is too large")));
        }
        // Kept as it arrives: the header alone reserves little.
        let mut payload = Vec::with_capacity(len.min(FIRST_ROOM));
        (&mut self.session)
            .take(len as u64)
            .read_to_end(&mut payload)
            .await?;
        if payload.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the control endpoint closed the session in the middle of an answer",
            ));
        }
        let mut payload =
            String::from_utf8(payload).map_err(|_| bad("answer is not UTF-8".to_owned()))?;
        if payload.ends_with('\n') {
            payload.pop();
        }
        Ok(Answer { ok, payload })
    }
}

impl ControlClient {
    /// Tells a watching endpoint that its messages were taken: any line acknowledges them.
    /// A failure to send is left to the next read to report, as the message in hand is
    /// whole.
    async fn acknowledge(&mut self) {
        let out = self.session.get_mut();
        let _ = async {
            out.write_all(b"\n").await?;
            out.flush().await
        }
        .await;
    }

    /// Turns the session into a watch: sends `watch --json` and returns the stream of
    /// [`WatchMessage`]s, a snapshot first. The watch lasts until the stream is dropped
    /// (the session is closed); open another client for requests meanwhile.
    ///
    /// [`ControlWatch::next`] acknowledges each message it reads, so the endpoint keeps the
    /// watch open for as long as the messages are taken; a watch whose messages are not
    /// taken for the endpoint's idle timeout is closed by the endpoint (see the protocol's
    /// [sessions](crate::control#sessions)).
    ///
    /// ```no_run
    /// # // `no_run`: it needs a live endpoint; the tests run one.
    /// use taskthread::control::ControlClient;
    ///
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let client = ControlClient::connect_unix("/run/app/control.sock").await?;
    /// let mut watch = client.watch().await?;
    /// loop {
    ///     let message = watch.next().await?;
    ///     println!("{message}");
    /// }
    /// # }
    /// ```
    pub async fn watch(mut self) -> io::Result<ControlWatch> {
        let out = self.session.get_mut();
        out.write_all(format!("watch {JSON_FLAG}\n").as_bytes())
            .await?;
        out.flush().await?;
        Ok(ControlWatch { client: self })
    }
}

/// The watch stream of a control endpoint: see [`ControlClient::watch`].
#[derive(Debug)]
pub struct ControlWatch {
    client: ControlClient,
}

impl ControlWatch {
    /// The next message: waits for the endpoint's next sampling.
    ///
    /// Fails on I/O errors, on an `ERR` answer (the endpoint refused the watch), on a
    /// message that is not the JSON of a [`WatchMessage`], and on a message that does not
    /// arrive whole within the client's [timeout](ControlClient::timeout).
    pub async fn next(&mut self) -> io::Result<WatchMessage> {
        let client = &mut self.client;
        client.in_step()?;
        let read = tokio::time::timeout(client.timeout, client.read_answer()).await;
        let answer = client.unless_timed_out(read)?;
        if !answer.ok {
            return Err(io::Error::other(answer.payload));
        }
        let _ = tokio::time::timeout(client.timeout, client.acknowledge()).await;
        serde_json::from_str(&answer.payload).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("malformed watch message: {e}"),
            )
        })
    }
}
