//! `TcpConnection: UP: Frame` — one client: greets it, reads its socket, and passes the
//! frames its `DataProcessor` rebuilds UP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use taskthread::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

use super::frame;
use super::packet_reader::{PacketReader, READ_AHEAD, ReadEnd};
use super::{DataProcessor, Frame, RelayStats};

/// One client connection.
///
/// Its socket is read by a [`PacketReader`], attached as a stream, that hands each packet
/// straight to the `DataProcessor`'s queue: a busy processor slows the reader, which slows
/// the client (TCP backpressure), while this thread's loop stays free to pass frames UP.
/// Were the connection itself to wait on its child's full queue while the child waits on
/// the connection's full queue to send a frame UP, both would wait forever.
///
/// The connection ends when the client closes it, when the processor stops (bad input),
/// or after `idle_timeout` without data. Ending closes the socket, which tells the client
/// that everything it sent has been taken.
#[derive(Debug)]
pub struct TcpConnection {
    socket: Option<TcpStream>,
    writer: Option<OwnedWriteHalf>,
    client: SocketAddr,
    max_frame: usize,
    idle_timeout: Option<Duration>,
    stats: Arc<RelayStats>,
}

impl TcpConnection {
    /// A connection on an accepted socket.
    pub fn new(
        socket: TcpStream,
        client: SocketAddr,
        max_frame: usize,
        idle_timeout: Option<Duration>,
        stats: Arc<RelayStats>,
    ) -> Self {
        Self {
            socket: Some(socket),
            writer: None,
            client,
            max_frame,
            idle_timeout,
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
        // Kept, not used again: dropping it, when the thread ends, closes the connection.
        self.writer = Some(writer);

        let (client, stats) = (self.client, Arc::clone(&self.stats));
        let processor = DataProcessor::new(client, self.max_frame, Arc::clone(&stats));
        let processor = ctx.spawn_with(processor, ChildOptions::new().capacity(READ_AHEAD));
        let reader = PacketReader::new(reader, processor, client, self.idle_timeout, stats);
        // A stream, not a task: a stopping connection drops it instead of waiting for it.
        ctx.attach(stream::once(reader.run()));
        tracing::debug!(%client, "connected");
        Ok(())
    }

    #[stream]
    async fn read_ended(&mut self, ctx: &mut Ctx<Self>, end: ReadEnd) {
        let client = self.client;
        match end {
            ReadEnd::Closed => tracing::debug!(%client, "the client closed the connection"),
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
