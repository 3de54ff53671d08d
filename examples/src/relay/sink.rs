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

use std::io;
use std::net::SocketAddr;

use futures_util::{StreamExt, stream};
use taskthread::prelude::*;
use tokio::net::{TcpListener, TcpStream};
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
    received: Checksum,
}

impl WebsocketSink {
    /// Binds the sink's listener (`127.0.0.1:0` for an ephemeral port).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            addr: listener.local_addr()?,
            listener: Some(listener),
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

/// What a connection's reader saw: a message, an error, or the end (`None`).
#[derive(Debug)]
pub struct SinkEvent(Option<Result<Message, tungstenite::Error>>);

/// One websocket connection to the sink: completes the handshake, sends the checksum of
/// each binary message UP, and ends when the peer closes.
#[derive(Debug)]
pub struct SinkConnection {
    socket: Option<TcpStream>,
    peer: SocketAddr,
}

impl SinkConnection {
    /// A connection on an accepted socket.
    pub fn new(socket: TcpStream, peer: SocketAddr) -> Self {
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
        let end = stream::once(async { SinkEvent(None) });
        ctx.attach(socket.map(|m| SinkEvent(Some(m))).chain(end));
        Ok(())
    }

    #[stream]
    async fn event(&mut self, ctx: &mut Ctx<Self>, SinkEvent(event): SinkEvent) -> Result<()> {
        match event {
            Some(Ok(Message::Binary(payload))) => ctx.up(Checksum::of(&payload)).await?,
            Some(Ok(_)) => {} // pings are answered by the reader; the close ends the stream
            Some(Err(e)) => {
                tracing::warn!(peer = %self.peer, "sink: reading failed: {e}");
                ctx.stop();
            }
            None => ctx.stop(),
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
