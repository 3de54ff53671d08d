//! One websocket connection from a `WebsocketSub` to its destination: connecting within a
//! time limit, writing batches of frames over a socket that gives up on a destination that
//! stops reading, the reading half handed to the thread as a stream of [`LinkEvent`]s, and
//! taken back at exit to read the destination's last answers.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep, timeout, timeout_at};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

type Socket = WebSocketStream<Stalling<TcpStream>>;
type Reader = SplitStream<Socket>;

/// The outcome of a connection attempt: a link and its incoming messages, or why not.
#[derive(Debug)]
pub struct Connected(pub Result<(Link, Incoming), String>);

/// The writing half of a connection to a destination, and where its reading half comes
/// back to.
#[derive(Debug)]
pub struct Link {
    /// Tells this link's events from those of an earlier link.
    id: u64,
    writer: SplitSink<Socket, Message>,
    /// The reading half, once [`Incoming`] has given it back.
    reader: Option<Reader>,
    reader_back: Option<oneshot::Receiver<Reader>>,
}

/// What a destination said, as far as its sub is concerned.
#[derive(Debug)]
pub enum Heard {
    /// A pong, carrying the payload of the ping it answers.
    Pong(Bytes),
    /// A ping: reading it queued the pong, which the next write (or a flush) sends.
    Ping,
    /// The connection is gone, for this reason.
    Gone(String),
    /// Nothing that matters to the sub.
    Nothing,
}

impl Link {
    /// One connection attempt to `url` (`ws://host:port/path`) within `connect_timeout`.
    /// A write on the link then fails once the destination has taken no byte for
    /// `write_timeout`: slow destinations are served at their pace, stuck ones given up.
    pub async fn connect(
        url: String,
        connect_timeout: Duration,
        write_timeout: Duration,
    ) -> Connected {
        let attempt = timeout(connect_timeout, open(&url, write_timeout)).await;
        let socket = match attempt {
            Ok(Ok(socket)) => socket,
            Ok(Err(e)) => return Connected(Err(e)),
            Err(_) => return Connected(Err(format!("no answer within {connect_timeout:?}"))),
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (writer, reader) = socket.split();
        let (back, reader_back) = oneshot::channel();
        let link = Link {
            id,
            writer,
            reader: None,
            reader_back: Some(reader_back),
        };
        let incoming = Incoming {
            link: id,
            reader: Some(reader),
            back: Some(back),
        };
        Connected(Ok((link, incoming)))
    }

    /// The link's number, which its events carry.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Writes `payloads`, one binary message each, then a ping carrying `ping` (if any),
    /// and flushes.
    pub async fn write(&mut self, payloads: Vec<Bytes>, ping: Option<u64>) -> Result<(), String> {
        for payload in payloads {
            self.writer
                .feed(Message::Binary(payload))
                .await
                .map_err(describe)?;
        }
        if let Some(ping) = ping {
            let payload = Bytes::copy_from_slice(&ping.to_be_bytes());
            self.writer
                .feed(Message::Ping(payload))
                .await
                .map_err(describe)?;
        }
        self.writer.flush().await.map_err(describe)
    }

    /// Reads the next message directly, waiting until `deadline` at most: for `exit`, once
    /// the attached [`Incoming`] has been dropped and has given the reading half back.
    pub async fn hear_directly(&mut self, deadline: Instant) -> Heard {
        if self.reader.is_none()
            && let Some(back) = self.reader_back.take()
        {
            self.reader = timeout_at(deadline, back).await.ok().and_then(Result::ok);
        }
        let Some(reader) = self.reader.as_mut() else {
            return Heard::Gone("the connection ended".to_owned());
        };
        match timeout_at(deadline, reader.next()).await {
            Ok(message) => interpret(message),
            Err(_) => Heard::Gone("the destination did not answer in time".to_owned()),
        }
    }

    /// Closes the connection, waiting until `deadline` at most: sends the close frame,
    /// then reads until the destination's answer ends the connection, so that neither
    /// side resets it with messages unread.
    pub async fn close(mut self, deadline: Instant) {
        if timeout_at(deadline, self.writer.close()).await.is_err() {
            return;
        }
        while !matches!(self.hear_directly(deadline).await, Heard::Gone(_)) {}
    }
}

/// Opens the TCP connection and makes the websocket handshake.
async fn open(url: &str, write_timeout: Duration) -> Result<Socket, String> {
    let request = url.into_client_request().map_err(describe)?;
    let uri = request.uri();
    if uri.scheme_str() != Some("ws") {
        return Err(format!("`{url}`: only ws:// destinations are supported"));
    }
    let host = uri.host().unwrap_or_default();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    // Frames go out as they are: room for the largest the relay accepts, and more.
    let config = WebSocketConfig::default()
        .max_frame_size(Some(64 << 20))
        .max_message_size(Some(64 << 20));
    let stalling = Stalling::new(tcp, write_timeout);
    let (socket, _response) = client_async_with_config(request, stalling, Some(config))
        .await
        .map_err(describe)?;
    Ok(socket)
}

fn describe(e: tungstenite::Error) -> String {
    e.to_string()
}

/// Makes sense of a message (or the end of the connection, `None`).
fn interpret(message: Option<Result<Message, tungstenite::Error>>) -> Heard {
    match message {
        Some(Ok(Message::Pong(payload))) => Heard::Pong(payload),
        Some(Ok(Message::Ping(_))) => Heard::Ping,
        Some(Ok(Message::Close(_))) | None => {
            Heard::Gone("the destination closed the connection".to_owned())
        }
        Some(Err(e)) => Heard::Gone(e.to_string()),
        Some(Ok(_)) => Heard::Nothing, // destinations have nothing else to say to the relay
    }
}

/// One message from a destination, or the end of its connection (`None`), tagged with
/// its link.
#[derive(Debug)]
pub struct LinkEvent {
    link: u64,
    message: Option<Result<Message, tungstenite::Error>>,
}

impl LinkEvent {
    /// The number of the link it came from.
    pub fn link(&self) -> u64 {
        self.link
    }

    /// What it means to the sub.
    pub fn heard(self) -> Heard {
        interpret(self.message)
    }
}

/// The messages of a link's destination, as a stream to attach; its last event is the
/// end of the connection.
///
/// A thread's attached streams are dropped as soon as it starts stopping, but a sub still
/// needs to read the pongs that confirm its last frames in `exit`: dropped, this stream
/// gives the reading half back to its [`Link`].
#[derive(Debug)]
pub struct Incoming {
    link: u64,
    reader: Option<Reader>,
    back: Option<oneshot::Sender<Reader>>,
}

impl Stream for Incoming {
    type Item = LinkEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LinkEvent>> {
        let Some(reader) = self.reader.as_mut() else {
            return Poll::Ready(None);
        };
        let message = ready!(reader.poll_next_unpin(cx));
        if message.is_none() {
            self.reader = None; // ended: nothing to give back
        }
        let link = self.link;
        Poll::Ready(Some(LinkEvent { link, message }))
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let (Some(reader), Some(back)) = (self.reader.take(), self.back.take()) {
            let _ = back.send(reader);
        }
    }
}

/// A stream whose writes fail once they have made no progress for `limit`: a destination
/// that takes no byte for that long is given up, however slowly it reads otherwise.
#[derive(Debug)]
pub struct Stalling<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write waits; reset whenever one makes progress.
    stall: Pin<Box<Sleep>>,
    waiting: bool,
}

impl<S> Stalling<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stall: Box::pin(tokio::time::sleep(limit)),
            waiting: false,
        }
    }

    /// A write is waiting: fails it once it has waited `limit` in all.
    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.waiting = false;
            return poll;
        }
        if !self.waiting {
            self.waiting = true;
            self.stall.as_mut().reset(Instant::now() + self.limit);
        }
        if self.stall.as_mut().poll(cx).is_ready() {
            let limit = self.limit;
            let msg = format!("the destination took no byte for {limit:?}");
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, msg)));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stalling<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stalling<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, poll)
    }
}
