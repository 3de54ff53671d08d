//! [`ControlClient`]: sends request lines to a control endpoint and reads its framed
//! answers.

use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::Path;

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

/// The largest answer a [`ControlClient`] accepts, in bytes.
pub const MAX_ANSWER: usize = 64 << 20;

/// A client of the control endpoint: sends request lines and reads framed answers. The
/// `taskthread-ctl` tool is built on it.
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
}

impl ControlClient {
    /// Connects to an endpoint on a Unix socket.
    #[cfg(unix)]
    pub async fn connect_unix(path: impl AsRef<Path>) -> io::Result<Self> {
        let stream = tokio::net::UnixStream::connect(path).await?;
        Ok(Self {
            session: BufReader::new(Connection::Unix(stream)),
        })
    }

    /// Connects to an endpoint on TCP.
    pub async fn connect_tcp(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        Ok(Self {
            session: BufReader::new(Connection::Tcp(stream)),
        })
    }

    /// Sends one request line (without its `\n`) and reads the answer.
    ///
    /// Fails on I/O errors, on a line that holds a `\n`, and on an answer that is not
    /// framed as the protocol says. An endpoint that answered and closed the session before
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
        let out = self.session.get_mut();
        let sent = async {
            out.write_all(&request).await?;
            out.flush().await
        };
        if let Err(e) = sent.await {
            // The endpoint may have answered and closed before reading the request (it
            // refuses a session over its limit that way): its answer beats "broken pipe".
            return self.read_answer().await.map_err(|_| e);
        }
        self.read_answer().await
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
        let mut payload = vec![0; len];
        self.session.read_exact(&mut payload).await?;
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
    /// Fails on I/O errors, on an `ERR` answer (the endpoint refused the watch), and on a
    /// message that is not the JSON of a [`WatchMessage`].
    pub async fn next(&mut self) -> io::Result<WatchMessage> {
        let answer = self.client.read_answer().await?;
        if !answer.ok {
            return Err(io::Error::other(answer.payload));
        }
        self.client.acknowledge().await;
        serde_json::from_str(&answer.payload).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("malformed watch message: {e}"),
            )
        })
    }
}
