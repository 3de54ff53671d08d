//! One websocket connection from a `WebsocketSub` to its destination.
//!
//! The connection belongs to one task, the [`LinkTask`], which reads and writes it in the
//! same poll: it writes the batches the sub hands it through its [`Link`], and reports
//! what happens as [`LinkEvent`]s (a batch written, a pong, the connection gone) on a stream
//! the sub attaches. Reading and writing in one task, on one waker, means neither can miss
//! the other's wake-up, however long a write waits for a slow destination. When the sub
//! stops, it drops that stream; the task then ends and gives the connection back
//! ([`LinkDone`]) for the sub's last flush.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep, timeout, timeout_at};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// A connection to a destination.
pub type Socket = WebSocketStream<Stalling<TcpStream>>;

/// The outcome of a connection attempt: the sub's handle, the task that runs the
/// connection, and the stream of its events; or why not.
#[derive(Debug)]
pub struct Connected(pub Result<(Link, LinkTask, Events), String>);

/// The events of a link, as a stream to attach.
pub type Events = UnboundedReceiverStream<LinkEvent>;

/// Frames to write on a link, then a ping carrying `ping` (if any).
#[derive(Debug)]
pub struct Batch {
    /// The payloads, one binary message each.
    pub payloads: Vec<Bytes>,
    /// The ping that asks for their confirmation.
    pub ping: Option<u64>,
}

/// The sub's handle on a link: hands batches to its task, one at a time.
#[derive(Debug)]
pub struct Link {
    id: u64,
    batches: mpsc::Sender<Batch>,
}

impl Link {
    /// One connection attempt to `url` (`ws://host:port/path`) within `connect_timeout`.
    /// A write on the link then fails once the destination has given no sign of life for
    /// `write_timeout` (see [`Stalling`]).
    pub async fn connect(
        url: String,
        connect_timeout: Duration,
        write_timeout: Duration,
    ) -> Connected {
        let heartbeat = Heartbeat::new();
        let attempt = timeout(connect_timeout, open(&url, write_timeout, &heartbeat)).await;
        let socket = match attempt {
            Ok(Ok(socket)) => socket,
            Ok(Err(e)) => return Connected(Err(e)),
            Err(_) => return Connected(Err(format!("no answer within {connect_timeout:?}"))),
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (batches, batches_rx) = mpsc::channel(1);
        let (events, events_rx) = mpsc::unbounded_channel();
        let closed = {
            let events = events.clone();
            Box::pin(async move { events.closed().await })
        };
        let conn = Conn {
            socket,
            unsent: VecDeque::new(),
            flushing: false,
            heartbeat,
        };
        let task = LinkTask {
            id,
            conn: Some(conn),
            batches: batches_rx,
            events,
            closed,
        };
        let link = Link { id, batches };
        Connected(Ok((link, task, UnboundedReceiverStream::new(events_rx))))
    }

    /// The link's number, which its events carry.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Hands a batch to the link's task. Refused if the task is still writing the last
    /// one, or has ended.
    pub fn write(&self, batch: Batch) -> Result<(), Batch> {
        self.batches.try_send(batch).map_err(|e| e.into_inner())
    }
}

/// What happened on a link.
#[derive(Debug)]
pub struct LinkEvent {
    /// The link's number.
    pub link: u64,
    /// What happened.
    pub heard: Heard,
}

/// What a destination said or did, as far as its sub is concerned.
#[derive(Debug)]
pub enum Heard {
    /// The last batch is written (to the socket, not yet confirmed).
    Written,
    /// A pong, carrying the payload of the ping it answers.
    Pong(Bytes),
    /// Nothing that matters to the sub.
    Nothing,
}

/// How a link's task ended: the connection, if it is still usable, and the messages it
/// had not handed to it yet; or why the connection is gone.
#[derive(Debug)]
pub struct LinkDone {
    /// The link's number.
    pub link: u64,
    /// The connection (with what it had not sent yet) when the task ended because the sub
    /// is stopping; why it is gone otherwise.
    pub outcome: Result<Conn, String>,
}

/// A connection and the batch it is writing: written and read in one poll, so that
/// neither can miss the other's wake-up.
#[derive(Debug)]
pub struct Conn {
    socket: Socket,
    /// The messages of the batch in progress not yet handed to the socket.
    unsent: VecDeque<Message>,
    /// Whether messages handed to the socket wait to be flushed.
    flushing: bool,
    heartbeat: Arc<Heartbeat>,
}

impl Conn {
    /// Whether a batch is being written.
    fn is_writing(&self) -> bool {
        !self.unsent.is_empty() || self.flushing
    }

    /// Starts writing `batch` after what is being written.
    fn queue(&mut self, batch: Batch) {
        self.unsent
            .extend(batch.payloads.into_iter().map(Message::Binary));
        let ping = batch.ping.map(|n| Bytes::copy_from_slice(&n.to_be_bytes()));
        self.unsent.extend(ping.map(Message::Ping));
    }

    /// Reads what has arrived, handing each answer to `heard`. `Err` once the connection
    /// is gone.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        mut heard: impl FnMut(Heard),
    ) -> Result<(), String> {
        while let Poll::Ready(message) = self.socket.poll_next_unpin(cx) {
            self.heartbeat.beat();
            heard(interpret(message)?);
        }
        Ok(())
    }

    /// Writes what is queued; ready once it is all flushed.
    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        while !self.unsent.is_empty() {
            ready!(self.socket.poll_ready_unpin(cx)).map_err(describe)?;
            let message = self.unsent.pop_front().expect("not empty");
            self.socket.start_send_unpin(message).map_err(describe)?;
            self.flushing = true;
        }
        if self.flushing {
            ready!(self.socket.poll_flush_unpin(cx)).map_err(describe)?;
            self.flushing = false;
        }
        Poll::Ready(Ok(()))
    }
}

/// The task that runs one connection: writes the batches its [`Link`] hands it while
/// reading what the destination says, until the connection is gone or the sub stops
/// listening to its events.
pub struct LinkTask {
    id: u64,
    conn: Option<Conn>,
    batches: mpsc::Receiver<Batch>,
    events: mpsc::UnboundedSender<LinkEvent>,
    /// Completes once the sub has dropped the events' stream.
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for LinkTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTask")
            .field("id", &self.id)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl LinkTask {
    /// The connection, for a sub that will not run the task (it connected while
    /// stopping).
    pub fn into_conn(mut self) -> Conn {
        self.conn.take().expect("taken once")
    }

    fn done(&mut self, outcome: Result<(), String>) -> Poll<LinkDone> {
        let mut conn = self.conn.take().expect("taken once, at the end");
        // A batch handed over but not started yet is the connection's to send too: the
        // sub counts it as written, and the next ping's answer confirms it.
        self.batches.close();
        while let Ok(batch) = self.batches.try_recv() {
            conn.queue(batch);
        }
        Poll::Ready(LinkDone {
            link: self.id,
            outcome: outcome.map(|()| conn),
        })
    }
}

/// Tells the sub what happened on link `link` (unless it no longer listens).
fn report(events: &mpsc::UnboundedSender<LinkEvent>, link: u64, heard: Heard) {
    let _ = events.send(LinkEvent { link, heard });
}

impl Future for LinkTask {
    type Output = LinkDone;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LinkDone> {
        let this = &mut *self;
        if this.events.is_closed() || this.closed.as_mut().poll(cx).is_ready() {
            return this.done(Ok(())); // the sub is stopping: it takes the connection back
        }
        let conn = this.conn.as_mut().expect("open while running");
        let (events, id) = (&this.events, this.id);
        if let Err(gone) = conn.poll_read(cx, |heard| report(events, id, heard)) {
            return this.done(Err(gone));
        }
        loop {
            if !conn.is_writing() {
                match this.batches.poll_recv(cx) {
                    Poll::Ready(Some(batch)) => conn.queue(batch),
                    Poll::Ready(None) | Poll::Pending => return Poll::Pending,
                }
            }
            match conn.poll_written(cx) {
                Poll::Ready(Ok(())) => report(events, id, Heard::Written),
                Poll::Ready(Err(gone)) => return this.done(Err(gone)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Opens the TCP connection and makes the websocket handshake.
async fn open(
    url: &str,
    write_timeout: Duration,
    heartbeat: &Arc<Heartbeat>,
) -> Result<Socket, String> {
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
    let stalling = Stalling::new(tcp, write_timeout, Arc::clone(heartbeat));
    let (socket, _response) = client_async_with_config(request, stalling, Some(config))
        .await
        .map_err(describe)?;
    Ok(socket)
}

fn describe(e: tungstenite::Error) -> String {
    e.to_string()
}

/// Makes sense of a message (or the end of the connection, `None`); an error once the
/// connection is gone.
fn interpret(message: Option<Result<Message, tungstenite::Error>>) -> Result<Heard, String> {
    match message {
        Some(Ok(Message::Pong(payload))) => Ok(Heard::Pong(payload)),
        Some(Ok(Message::Close(_))) | None => {
            Err("the destination closed the connection".to_owned())
        }
        Some(Err(e)) => Err(e.to_string()),
        // Pings are answered by the reader; destinations have nothing else to say.
        Some(Ok(_)) => Ok(Heard::Nothing),
    }
}

/// For a stopping sub: the last writes and reads on a connection taken back from its
/// task, until `deadline` at most.
#[derive(Debug)]
pub struct LastWords {
    conn: Conn,
    deadline: Instant,
}

impl LastWords {
    /// The connection (what its task had not sent yet goes first).
    pub fn new(conn: Conn, deadline: Instant) -> Self {
        Self { conn, deadline }
    }

    /// Writes a batch while reading what the destination says, handing each pong to
    /// `pong` as it comes; `false` if the connection is gone or out of time.
    pub async fn write(&mut self, batch: Batch, mut pong: impl FnMut(&[u8])) -> bool {
        self.conn.queue(batch);
        let conn = &mut self.conn;
        let written = poll_fn(|cx| {
            let read = conn.poll_read(cx, |heard| {
                if let Heard::Pong(payload) = heard {
                    pong(&payload);
                }
            });
            if let Err(gone) = read {
                return Poll::Ready(Err(gone));
            }
            conn.poll_written(cx)
        });
        matches!(timeout_at(self.deadline, written).await, Ok(Ok(())))
    }

    /// The next pong, or `None` once the connection is gone or out of time.
    pub async fn next_pong(&mut self) -> Option<Bytes> {
        loop {
            let message = timeout_at(self.deadline, self.conn.socket.next())
                .await
                .ok()?;
            if let Heard::Pong(pong) = interpret(message).ok()? {
                return Some(pong);
            }
        }
    }

    /// Closes the connection: sends the close frame, then reads until the destination's
    /// answer ends it, so that neither side resets it with messages unread.
    pub async fn close(mut self) {
        let socket = &mut self.conn.socket;
        if timeout_at(self.deadline, socket.close(None)).await.is_err() {
            return;
        }
        while let Ok(Some(Ok(_))) = timeout_at(self.deadline, socket.next()).await {}
    }
}

/// When a destination last said something (any message, a pong most often): a sign that
/// it is alive and reading, even while a write waits on a full socket buffer.
#[derive(Debug)]
pub struct Heartbeat(Mutex<Instant>);

impl Heartbeat {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Instant::now())))
    }

    fn beat(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stream whose writes fail once the destination has given no sign of life for `limit`:
/// no write made progress and it said nothing. A destination that reads slowly (and
/// answers the pings between batches) is served at its pace; one that is stuck is given
/// up.
#[derive(Debug)]
pub struct Stalling<S> {
    inner: S,
    limit: Duration,
    heartbeat: Arc<Heartbeat>,
    /// Armed while a write waits.
    stall: Pin<Box<Sleep>>,
    /// Since when a write has been waiting, if one is.
    waiting_since: Option<Instant>,
}

impl<S> Stalling<S> {
    /// Wraps `inner`; the destination's messages beat `heartbeat`.
    pub fn new(inner: S, limit: Duration, heartbeat: Arc<Heartbeat>) -> Self {
        Self {
            inner,
            limit,
            heartbeat,
            stall: Box::pin(tokio::time::sleep(limit)),
            waiting_since: None,
        }
    }

    /// A write is waiting: fails it once the destination has given no sign of life for
    /// `limit`.
    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.waiting_since = None;
            return poll;
        }
        let since = *self.waiting_since.get_or_insert_with(|| {
            let now = Instant::now();
            self.stall.as_mut().reset(now + self.limit);
            now
        });
        while self.stall.as_mut().poll(cx).is_ready() {
            let alive = since.max(self.heartbeat.last()) + self.limit;
            if alive <= Instant::now() {
                let limit = self.limit;
                let msg = format!("the destination took nothing and said nothing for {limit:?}");
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, msg)));
            }
            self.stall.as_mut().reset(alive);
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
