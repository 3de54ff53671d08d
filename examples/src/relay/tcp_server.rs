//! `TcpServer: UP: Frame` — accepts clients and spawns one `TcpConnection` per client,
//! whose frames pass through it UP (`pass_up`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use taskthread::prelude::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;

use super::budget::{Budget, DEFAULT_MAX_BUFFERED};
use super::remote::Processors;
use super::{Frame, RelayStats, TcpConnection};

/// The limits the server applies to its clients, and what it tells them.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The largest frame accepted, in bytes (default 16 MiB).
    pub max_frame: usize,
    /// How many clients may be connected at once; more are refused (default 1024).
    pub max_clients: usize,
    /// How long a client may send nothing before it is disconnected (default 60 s).
    pub idle_timeout: Option<Duration>,
    /// How long a frame may take to arrive in full once it has started (default 10 s);
    /// watched where the frames are cut, by remote processors too.
    pub frame_timeout: Option<Duration>,
    /// The relay's byte budget: the frame bytes it holds at once, from the moment a frame's
    /// length prefix has arrived until its last copy is dropped (default
    /// [`DEFAULT_MAX_BUFFERED`]; see [`budget`](super::budget)).
    pub max_buffered: usize,
    /// What clients are told of their frames (see the
    /// [wire protocol](super::frame#receipts)); by default [`Receipts::Close`].
    pub receipts: Receipts,
    /// Where the connections' frames are cut out of their byte streams: by default (`None`)
    /// by a `DataProcessor` in this process, else by remote processors in worker processes.
    pub processors: Option<Processors>,
}

/// What a relay tells its clients about their frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Receipts {
    /// Nothing: a connection closes cleanly once the relay has read and cut everything the
    /// client sent, whatever becomes of the frames. For a relay without a database.
    None,
    /// A connection closes cleanly only once every frame of the client is stored, and is
    /// reset if one never will be.
    #[default]
    Close,
    /// As `Close`, and after each database commit, the count of the client's frames
    /// stored so far (`--ack`).
    Acks,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_frame: 16 << 20,
            max_clients: 1024,
            idle_timeout: Some(Duration::from_secs(60)),
            frame_timeout: Some(Duration::from_secs(10)),
            max_buffered: DEFAULT_MAX_BUFFERED,
            receipts: Receipts::Close,
            processors: None,
        }
    }
}

/// The TCP side of the relay: its listener is attached as a stream, and every accepted
/// socket becomes a `TcpConnection` child.
#[derive(Debug)]
pub struct TcpServer {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    config: ServerConfig,
    budget: Budget,
    stats: Arc<RelayStats>,
}

impl TcpServer {
    /// Binds the listener, so that a busy port is an error at start-up and an ephemeral
    /// port (`127.0.0.1:0`) is known before the tree starts.
    ///
    /// # Panics
    /// If `config.max_buffered` is 0.
    pub async fn bind(
        addr: SocketAddr,
        config: ServerConfig,
        stats: Arc<RelayStats>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            addr: listener.local_addr()?,
            listener: Some(listener),
            budget: Budget::new(config.max_buffered),
            config,
            stats,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's byte budget, which every connection's frames take from.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }
}

#[taskthread(up = Frame, pass_up)]
impl TcpServer {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let listener = self.listener.take().expect("enter runs once");
        ctx.attach(TcpListenerStream::new(listener));
        tracing::info!(addr = %self.addr, "listening");
        Ok(())
    }

    #[stream]
    async fn accepted(&mut self, ctx: &mut Ctx<Self>, socket: io::Result<TcpStream>) {
        let (socket, client) = match socket.and_then(|s| Ok((s.peer_addr()?, s))) {
            Ok((client, socket)) => (socket, client),
            Err(e) => return tracing::warn!("accepting a client failed: {e}"),
        };
        let max = self.config.max_clients;
        if ctx.children().len() >= max {
            // Dropping the socket closes it before the greeting: the client knows.
            tracing::warn!(%client, "refusing the client: {max} clients are connected (max clients)");
            self.stats.count_refused();
            return;
        }
        self.stats.count_accepted();
        let budget = self.budget.clone();
        let stats = Arc::clone(&self.stats);
        let connection = TcpConnection::new(socket, client, &self.config, budget, stats);
        ctx.spawn_with(connection, ChildOptions::new().name("conn"));
    }

    /// A connection ended: count it, and log it if it failed (a bug, not bad input: that
    /// was logged where it was found).
    #[up]
    async fn connection_closed(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        self.stats.count_closed();
        if exit.exit.is_failure() {
            tracing::warn!("{exit}");
        }
    }
}
