//! `TcpConnection: UP: Frame` — one client: greets it, reads its socket, passes the frames
//! its `DataProcessor` rebuilds UP, and tells the client what became of them.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::stream;
use taskthread::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::budget::Budget;
use super::frame;
use super::packet_reader::{PacketReader, READ_AHEAD, ReadEnd};
use super::receipt::Ledger;
use super::replies::{Closed, Replies};
use super::tcp_server::{Receipts, ServerConfig};
use super::{DataProcessor, Frame, RelayStats};

/// One client connection.
///
/// Its socket is read by a [`PacketReader`], attached as a stream, that hands each packet
/// straight to the `DataProcessor`'s queue: a busy processor slows the reader, which slows
/// the client (TCP backpressure), while this thread's loop stays free to pass frames UP.
/// Were the connection itself to wait on its child's full queue while the child waits on
/// the connection's full queue to send a frame UP, both would wait forever.
///
/// The writing half goes to the connection's [`Replies`], a task of the thread: they
/// follow the client's [`Ledger`], acknowledge what is stored (with acknowledgements on),
/// and close the connection once every frame of the client is stored (cleanly) or will
/// never be (with a reset). The connection reads until the client closes its side, the
/// processor stops (bad input, a frame over the frame timeout), or `idle_timeout` passes
/// without data; it ends once its replies have closed the connection.
#[derive(Debug)]
pub struct TcpConnection {
    socket: Option<TcpStream>,
    client: SocketAddr,
    config: ServerConfig,
    budget: Budget,
    ledger: Arc<Ledger>,
    stats: Arc<RelayStats>,
}

impl TcpConnection {
    /// A connection on an accepted socket, with the limits of `config`, whose frames take
    /// their size from `budget`.
    pub fn new(
        socket: TcpStream,
        client: SocketAddr,
        config: &ServerConfig,
        budget: Budget,
        stats: Arc<RelayStats>,
    ) -> Self {
        let ledger = match config.receipts {
            Receipts::None => Ledger::untracked(),
            Receipts::Close | Receipts::Acks => Ledger::new(),
        };
        Self {
            socket: Some(socket),
            client,
            config: config.clone(),
            budget,
            ledger: Arc::new(ledger),
            stats,
        }
    }
}

#[taskthread(up = Frame)]
impl TcpConnection {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let socket = self.socket.take().expect("enter runs once");
        let (reader, mut writer) = socket.into_split();
        writer.write_all(&frame::greeting()).await?;

        let (client, config, stats) = (self.client, &self.config, &self.stats);
        let replies = Replies::new(
            writer,
            self.ledger.watch(),
            config.receipts == Receipts::Acks,
            client,
            Arc::clone(stats),
        );
        ctx.spawn_task(replies.run());

        let ledger = Arc::clone(&self.ledger);
        let processor = DataProcessor::new(
            client,
            config,
            self.budget.clone(),
            Arc::clone(&ledger),
            Arc::clone(stats),
        );
        let processor = ctx.spawn_with(processor, ChildOptions::new().capacity(READ_AHEAD));
        let idle = config.idle_timeout;
        let reader = PacketReader::new(reader, processor, client, idle, ledger, Arc::clone(stats));
        // A stream, not a task: a stopping connection drops it instead of waiting for it.
        ctx.attach(stream::once(reader.run()));
        tracing::debug!(%client, "connected");
        Ok(())
    }

    #[stream]
    async fn read_ended(&mut self, ctx: &mut Ctx<Self>, end: ReadEnd) {
        let client = self.client;
        match end {
            ReadEnd::Closed => tracing::debug!(%client, "the client closed its side"),
            ReadEnd::Failed(e) => {
                tracing::warn!(%client, "closing the connection: read failed: {e}");
            }
            ReadEnd::Idle(idle) => {
                tracing::warn!(%client, "closing the connection: no data for {idle:?} (idle timeout)");
                self.stats.count_idle();
            }
            ReadEnd::ProcessorEnded => {} // it logged why
        }
        ctx.stop();
    }

    /// The replies closed the connection: the thread's last task is done.
    #[stream]
    async fn closed(&mut self, _ctx: &mut Ctx<Self>, closed: Closed) {
        let client = self.client;
        match closed {
            Closed::Cleanly { stored } => {
                tracing::debug!(%client, stored, "closed the connection: every frame is stored");
            }
            Closed::Reset(receipt) if receipt.lost => {
                tracing::warn!(%client, stored = receipt.stored, total = ?receipt.total, "reset the connection: some of its frames will never be stored");
            }
            Closed::Reset(receipt) => {
                tracing::debug!(%client, stored = receipt.stored, "reset the connection: not everything the client sent became a frame");
            }
        }
    }

    #[up]
    async fn frame(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, frame: Frame) -> Result<()> {
        ctx.up(frame).await?;
        Ok(())
    }

    /// The processor ended: it logged why (bad input, or this connection stopping).
    #[up]
    async fn processor_exited(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        if exit.exit.is_failure() {
            tracing::error!(client = %self.client, "{exit}");
        }
        ctx.stop();
    }
}
