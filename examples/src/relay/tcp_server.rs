//! `TcpServer: UP: Frame` — accepts clients and spawns one `TcpConnection` per client.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use taskthread::prelude::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;

use super::{Frame, RelayStats, TcpConnection};

/// The limits the server applies to its clients.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The largest frame accepted, in bytes.
    pub max_frame: usize,
    /// How many clients may be connected at once; more are refused.
    pub max_clients: usize,
    /// How long a client may send nothing before it is disconnected.
    pub idle_timeout: Option<Duration>,
}

/// The TCP side of the relay: its listener is attached as a stream, and every accepted
/// socket becomes a `TcpConnection` child.
#[derive(Debug)]
pub struct TcpServer {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    config: ServerConfig,
    stats: Arc<RelayStats>,
}

impl TcpServer {
    /// Binds the listener, so that a busy port is an error at start-up and an ephemeral
    /// port (`127.0.0.1:0`) is known before the tree starts.
    pub async fn bind(
        addr: SocketAddr,
        config: ServerConfig,
        stats: Arc<RelayStats>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            addr: listener.local_addr()?,
            listener: Some(listener),
            config,
            stats,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

#[taskthread(up = Frame)]
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
        let config = &self.config;
        let connection = TcpConnection::new(
            socket,
            client,
            config.max_frame,
            config.idle_timeout,
            Arc::clone(&self.stats),
        );
        ctx.spawn_with(connection, ChildOptions::new().name("conn"));
    }

    #[up]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, frame: Frame) -> Result<()> {
        ctx.up(frame).await?;
        Ok(())
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
