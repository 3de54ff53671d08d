//! `TcpConnection: UP: Frame` — one client: greets it, reads its socket, and passes the
//! frames its `DataProcessor` rebuilds UP.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt, stream};
use taskthread::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use tokio_util::io::ReaderStream;

use super::frame;
use super::{DataProcessor, Frame, Packet, RelayStats};

/// How much one socket read takes at most.
const READ_SIZE: usize = 64 * 1024;

/// What the socket reader tells its connection.
#[derive(Debug)]
pub enum SocketEvent {
    /// A packet of this many bytes was read and handed to the processor.
    Data(usize),
    /// The client closed the connection (`None`) or reading failed.
    Closed(Option<io::Error>),
}

/// One client connection.
///
/// Its socket is attached as a stream whose reader hands each packet straight to the
/// `DataProcessor`'s queue: a busy processor slows the reader, which slows the client
/// (TCP backpressure), while this thread's loop stays free to pass frames UP. Were the
/// connection itself to wait on its child's full queue while the child waits on the
/// connection's full queue to send a frame UP, both would wait forever.
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
    last_data: Instant,
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
            last_data: Instant::now(),
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

        let processor = DataProcessor::new(self.client, self.max_frame, Arc::clone(&self.stats));
        let processor = ctx.spawn(processor);
        ctx.attach(read_packets(reader, processor));
        if let Some(idle) = self.idle_timeout {
            ctx.reschedule_task(Self::IDLE, idle);
        }
        tracing::debug!(client = %self.client, "connected");
        Ok(())
    }

    #[stream]
    async fn socket(&mut self, ctx: &mut Ctx<Self>, event: SocketEvent) {
        match event {
            SocketEvent::Data(_) => self.last_data = Instant::now(),
            SocketEvent::Closed(None) => {
                tracing::debug!(client = %self.client, "the client closed the connection");
                ctx.stop();
            }
            SocketEvent::Closed(Some(e)) => {
                tracing::warn!(client = %self.client, "closing the connection: read failed: {e}");
                ctx.stop();
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

    /// Closes the connection once `idle_timeout` has passed since the last data.
    #[rescheduling(manual)]
    async fn idle(&mut self, _ctx: &mut Ctx<Self>) -> Reschedule {
        let timeout = self
            .idle_timeout
            .expect("only started with an idle timeout");
        let deadline = self.last_data + timeout;
        if Instant::now() < deadline {
            return Reschedule::At(deadline);
        }
        tracing::warn!(client = %self.client, "closing the connection: no data for {timeout:?} (idle timeout)");
        self.stats.count_idle();
        Reschedule::Stop
    }
}

/// Reads the socket, hands each packet to the processor, and reports what it did.
fn read_packets(
    reader: OwnedReadHalf,
    processor: ChildRef<DataProcessor>,
) -> impl Stream<Item = SocketEvent> + Send + 'static {
    let packets = ReaderStream::with_capacity(reader, READ_SIZE);
    stream::unfold(Some((packets, processor)), |state| async move {
        let (mut packets, processor) = state?;
        match packets.next().await {
            Some(Ok(bytes)) => {
                let n = bytes.len();
                // Fails only once the processor has stopped: the connection is closing.
                processor.send(Packet(bytes)).await.ok()?;
                Some((SocketEvent::Data(n), Some((packets, processor))))
            }
            Some(Err(e)) => Some((SocketEvent::Closed(Some(e)), None)),
            None => Some((SocketEvent::Closed(None), None)),
        }
    })
}
