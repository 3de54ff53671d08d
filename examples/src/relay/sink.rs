//! The embedded websocket destination ("the cloud"): a small tree of its own that accepts
//! websocket connections and counts the frames that arrive.
//!
//! ```text
//! WebsocketSink: IN: Count, UP: ConnectionClosed
//!     SinkConnection: UP: Checksum       (one per websocket connection; one Checksum per frame)
//! ```
//!
//! The relay starts one when no destination URL is given, so that it runs with nothing to
//! install; the demo starts two and checks their counts against what the relay received.
//! A sink can also read slowly ([`WebsocketSink::bind_throttled`]), to see what a slow
//! destination does to the relay (`relay sink --read-rate 20KiB`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use taskthread::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_tungstenite::accept_async_with_config;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use super::frame::Checksum;

/// Asks a sink what has arrived so far.
#[derive(Debug, Clone, Copy)]
pub struct Count;

/// What a sink has received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkReport {
    /// Connections open (or being opened) now.
    pub open: usize,
    /// The frames received so far.
    pub received: Checksum,
}

/// Sent UP to the sink's handle each time a connection ends, so that a waiter can ask
/// again (see [`settle`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionClosed;

/// A websocket server that counts binary messages.
#[derive(Debug)]
pub struct WebsocketSink {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    read_rate: Option<usize>,
    received: Checksum,
}

impl WebsocketSink {
    /// Binds the sink's listener (`127.0.0.1:0` for an ephemeral port).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            addr: listener.local_addr()?,
            listener: Some(listener),
            read_rate: None,
            received: Checksum::default(),
        })
    }

    /// Binds a sink that reads each connection at `bytes_per_second` at most, with small
    /// socket buffers, so that it is as slow as a distant destination and the kernel does
    /// not hide it.
    pub async fn bind_throttled(addr: SocketAddr, bytes_per_second: usize) -> io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(SLOW_RECV_BUFFER)?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(128)?;
        Ok(Self {
            addr: listener.local_addr()?,
            listener: Some(listener),
            read_rate: Some(bytes_per_second.max(1)),
            received: Checksum::default(),
        })
    }

    /// The address the sink listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to give the relay: `ws://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

#[taskthread(up = ConnectionClosed)]
impl WebsocketSink {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let listener = self.listener.take().expect("enter runs once");
        ctx.attach(TcpListenerStream::new(listener));
        tracing::info!(url = %self.url(), "embedded websocket sink listening");
        Ok(())
    }

    /// Each connection is a child from the moment it is accepted, so the count of open
    /// connections never misses one between the accept and the handshake.
    #[stream]
    async fn accepted(&mut self, ctx: &mut Ctx<Self>, socket: io::Result<TcpStream>) {
        match socket.and_then(|s| Ok((s.peer_addr()?, s))) {
            Ok((peer, socket)) => {
                let socket = Throttled::new(socket, self.read_rate);
                let connection = SinkConnection::new(socket, peer);
                ctx.spawn_with(connection, ChildOptions::new().name("ws"));
            }
            Err(e) => tracing::warn!("sink: accepting a connection failed: {e}"),
        }
    }

    #[up]
    async fn arrived(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, frame: Checksum) {
        self.received.merge(frame);
    }

    #[up]
    async fn connection_ended(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        if exit.exit.is_failure() {
            tracing::warn!("sink: {exit}");
        }
        // A wake-up only: if the handle's queue is full, the waiter has one to read anyway.
        let _ = ctx.try_up(ConnectionClosed);
    }

    #[down]
    async fn count(&mut self, ctx: &mut Ctx<Self>, _q: Count) -> Result<SinkReport> {
        Ok(SinkReport {
            open: ctx.child_count(),
            received: self.received,
        })
    }
}

/// What a connection's reader saw. A frame is summed as it is read, so that the
/// connection's queue holds checksums, not payloads.
#[derive(Debug)]
pub enum SinkEvent {
    /// A binary message: a frame.
    Frame(Checksum),
    /// Another message (pings are answered by the reader).
    Other,
    /// Reading failed.
    Failed(tungstenite::Error),
    /// The peer closed the connection.
    End,
}

impl SinkEvent {
    fn of(message: Result<Message, tungstenite::Error>) -> Self {
        match message {
            Ok(Message::Binary(payload)) => Self::Frame(Checksum::of(&payload)),
            Ok(_) => Self::Other,
            Err(e) => Self::Failed(e),
        }
    }
}

/// One websocket connection to the sink: completes the handshake, sends the checksum of
/// each binary message UP, and ends when the peer closes.
#[derive(Debug)]
pub struct SinkConnection {
    socket: Option<Throttled<TcpStream>>,
    peer: SocketAddr,
}

impl SinkConnection {
    /// A connection on an accepted socket.
    pub fn new(socket: Throttled<TcpStream>, peer: SocketAddr) -> Self {
        Self {
            socket: Some(socket),
            peer,
        }
    }
}

#[taskthread(up = Checksum)]
impl SinkConnection {
    /// The handshake; a failed one ends the connection as failed, which the sink logs.
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let socket = self.socket.take().expect("enter runs once");
        // The relay sends frames up to 16 MiB; leave room for more.
        let config = WebSocketConfig::default()
            .max_frame_size(Some(64 << 20))
            .max_message_size(Some(64 << 20));
        let socket = accept_async_with_config(socket, Some(config)).await?;
        let end = stream::once(async { SinkEvent::End });
        ctx.attach(socket.map(SinkEvent::of).chain(end));
        Ok(())
    }

    #[stream]
    async fn event(&mut self, ctx: &mut Ctx<Self>, event: SinkEvent) -> Result<()> {
        match event {
            SinkEvent::Frame(checksum) => ctx.up(checksum).await?,
            SinkEvent::Other => {} // the close ends the stream
            SinkEvent::Failed(e) => {
                tracing::warn!(peer = %self.peer, "sink: reading failed: {e}");
                ctx.stop();
            }
            SinkEvent::End => ctx.stop(),
        }
        Ok(())
    }
}

/// Waits until the sink has no open connection (every sender has closed and every frame
/// has been read), then returns its report.
///
/// Call it once the senders are done, e.g. after the relay has been joined.
pub async fn settle(sink: &mut Handle<WebsocketSink>) -> Option<SinkReport> {
    loop {
        let report = sink.ask(Count).await.ok()?;
        if report.open == 0 {
            return Some(report);
        }
        sink.recv().await?;
    }
}

/// The receive buffer of a throttled sink's sockets.
const SLOW_RECV_BUFFER: u32 = 16 * 1024;

/// How often a throttled reader's allowance is renewed.
const THROTTLE_TICK: Duration = Duration::from_millis(100);

/// A stream read at a limited rate: a tenth of the rate per tenth of a second (writes go
/// through unchanged). Without a rate, a plain stream.
#[derive(Debug)]
pub struct Throttled<S> {
    inner: S,
    /// Bytes per tick, if limited.
    per_tick: Option<usize>,
    allowance: usize,
    tick: Pin<Box<Sleep>>,
}

impl<S> Throttled<S> {
    /// Reads `inner` at `bytes_per_second` at most (unlimited with `None`).
    pub fn new(inner: S, bytes_per_second: Option<usize>) -> Self {
        let per_tick = bytes_per_second.map(|rate| (rate / 10).max(1));
        Self {
            inner,
            per_tick,
            allowance: per_tick.unwrap_or(0),
            tick: Box::pin(tokio::time::sleep(THROTTLE_TICK)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Throttled<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(per_tick) = self.per_tick else {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        };
        if self.allowance == 0 {
            ready!(self.tick.as_mut().poll(cx));
            self.allowance = per_tick;
            self.tick.as_mut().reset(Instant::now() + THROTTLE_TICK);
        }
        let n = self.allowance.min(buf.remaining());
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(n));
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut limited))?;
        let read = limited.filled().len();
        buf.advance(read);
        self.allowance -= read;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Throttled<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
