//! A `TcpConnection`'s socket reader: reads packets no further ahead of the processor
//! than its credit allows, hands each one on at once, and watches for idle clients.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use taskthread::prelude::*;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_util::io::ReaderStream;

use super::receipt::Ledger;
use super::remote::{FrameScanner, RemoteProcessor, WirePacket};
use super::{DataProcessor, Packet, RelayStats};

/// How much one socket read takes at most.
pub const READ_SIZE: usize = 64 * 1024;

/// How many packets the reader may read ahead of the processor; give the processor's
/// queue at least this capacity. With [`READ_SIZE`], it bounds the bytes a connection
/// holds outside the relay's byte budget: what it has read and not yet cut into frames.
pub const READ_AHEAD: usize = 4;

/// Why a [`PacketReader`] stopped reading.
#[derive(Debug)]
pub enum ReadEnd {
    /// The client closed the connection; the processor was sent the end of the stream.
    Closed,
    /// Reading failed; the processor was sent the end of the stream.
    Failed(io::Error),
    /// The client sent nothing for this long.
    Idle(Duration),
    /// The processor has ended (it said why), so there is no one to read for.
    ProcessorEnded,
}

/// The processor a [`PacketReader`] reads for: in this process, or in a worker process.
#[derive(Debug)]
pub enum Processor {
    /// A `DataProcessor` child of the connection.
    Local(ChildRef<DataProcessor>),
    /// A `RemoteProcessor` on a host, with the scanner that follows the frame boundaries
    /// of the bytes handed to it, and the count of frames they hold in full, which the
    /// connection reads when the processor ends.
    Remote {
        /// The processor.
        child: ChildRef<RemoteProcessor>,
        /// Follows the frames of what was handed over.
        scanner: FrameScanner,
        /// Frames the bytes handed over hold in full.
        frames: Arc<std::sync::atomic::AtomicU64>,
    },
}

/// Reads a client's socket for its `DataProcessor`.
///
/// It reads only with a unit of credit in hand; the credit travels with the packet and
/// comes back once the processor has handled it, and the processor's queue has room for
/// all of it. So a packet read is handed over at once, never held while waiting: when the
/// connection stops and drops the reader, whatever it was waiting for, no byte read is
/// lost on the way. A busy processor keeps the reader waiting for credit, which slows the
/// client (TCP backpressure) and does not count as the client being idle. So does a
/// processor waiting for room in the relay's byte budget.
///
/// A remote processor's queue is bounded by its capacity across the wire: the reader
/// waits for room to hand a packet over, and a packet it holds when it is dropped (the
/// connection stopping) is counted as discarded.
#[derive(Debug)]
pub struct PacketReader {
    packets: ReaderStream<OwnedReadHalf>,
    credit: Arc<Semaphore>,
    processor: Processor,
    client: SocketAddr,
    idle_timeout: Option<Duration>,
    ledger: Arc<Ledger>,
    stats: Arc<RelayStats>,
}

impl PacketReader {
    /// A reader of `socket` for `processor`, giving up after `idle_timeout` without data;
    /// bytes it cannot hand on are recorded in the client's `ledger`.
    pub fn new(
        socket: OwnedReadHalf,
        processor: Processor,
        client: SocketAddr,
        idle_timeout: Option<Duration>,
        ledger: Arc<Ledger>,
        stats: Arc<RelayStats>,
    ) -> Self {
        Self {
            packets: ReaderStream::with_capacity(socket, READ_SIZE),
            credit: Arc::new(Semaphore::new(READ_AHEAD)),
            processor,
            client,
            idle_timeout,
            ledger,
            stats,
        }
    }

    /// Reads until the stream ends, the client is idle, or the processor has ended.
    pub async fn run(mut self) -> ReadEnd {
        loop {
            let credit = Arc::clone(&self.credit).acquire_owned().await;
            let credit = credit.expect("the credit is never closed");
            let read = match self.idle_timeout {
                Some(idle) => timeout(idle, self.packets.next()).await,
                None => Ok(self.packets.next().await),
            };
            let (bytes, end) = match read {
                Ok(Some(Ok(bytes))) => (bytes, None),
                Ok(Some(Err(e))) => (Bytes::new(), Some(ReadEnd::Failed(e))),
                Ok(None) => (Bytes::new(), Some(ReadEnd::Closed)),
                Err(_) => return ReadEnd::Idle(self.idle_timeout.unwrap_or_default()),
            };
            self.stats.count_read(bytes.len());
            let handed = match &mut self.processor {
                Processor::Local(child) => hand_over(
                    child,
                    Packet::new(bytes, credit),
                    self.client,
                    &self.ledger,
                    &self.stats,
                ),
                Processor::Remote {
                    child,
                    scanner,
                    frames,
                } => {
                    drop(credit); // the remote queue's capacity bounds what is read ahead
                    let discard = Discard::armed(bytes.len(), &self.ledger, &self.stats);
                    let packet = WirePacket {
                        offset: scanner.offset(),
                        first_frame: scanner.scan(&bytes),
                        bytes,
                    };
                    let sent = child.send(packet).await;
                    let handed = discard.settle(sent.is_ok(), self.client);
                    frames.store(scanner.frames(), std::sync::atomic::Ordering::Relaxed);
                    handed
                }
            };
            if !handed {
                return ReadEnd::ProcessorEnded;
            }
            if let Some(end) = end {
                return end;
            }
        }
    }
}

/// Hands a packet to a local processor without waiting: the credit it carries guarantees
/// room. Fails only once the processor has ended (bad input, or the connection is
/// closing); the bytes are then counted as discarded, and logged.
fn hand_over(
    processor: &ChildRef<DataProcessor>,
    packet: Packet,
    client: SocketAddr,
    ledger: &Ledger,
    stats: &RelayStats,
) -> bool {
    let Err(e) = processor.try_send(packet) else {
        return true;
    };
    let why = if e.is_full() {
        "its queue is full"
    } else {
        "it has ended"
    };
    let n = e.into_inner().bytes.len();
    if n > 0 {
        tracing::info!(%client, "discarding {n} bytes read: the processor cannot take them ({why})");
        ledger.record_discarded();
        stats.count_discarded(n);
    }
    false
}

/// Counts `n` bytes read as discarded unless they were handed over: when settled with
/// `false`, or dropped unsettled (the reader dropped while it waited for room).
struct Discard<'a> {
    n: usize,
    ledger: &'a Ledger,
    stats: &'a RelayStats,
}

impl<'a> Discard<'a> {
    fn armed(n: usize, ledger: &'a Ledger, stats: &'a RelayStats) -> Self {
        Self { n, ledger, stats }
    }

    fn settle(mut self, handed: bool, client: SocketAddr) -> bool {
        if handed {
            self.n = 0;
        } else if self.n > 0 {
            tracing::info!(%client, "discarding {} bytes read: the processor has ended", self.n);
        }
        handed
    }
}

impl Drop for Discard<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.ledger.record_discarded();
            self.stats.count_discarded(self.n);
        }
    }
}
