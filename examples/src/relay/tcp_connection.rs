//! `TcpConnection: UP: Frame` — one client: greets it, reads its socket, passes the frames
//! its `DataProcessor` rebuilds UP (`pass_up`: straight on, past its own loop), and tells
//! the client what became of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::stream;
use taskthread::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::budget::Budget;
use super::frame::{self, HEADER_LEN};
use super::packet_reader::{PacketReader, Processor, READ_AHEAD, ReadEnd};
use super::receipt::Ledger;
use super::remote::{Decoded, FrameScanner, ProcessorArgs};
use super::replies::{Closed, Replies};
use super::tcp_server::{Receipts, ServerConfig};
use super::{DataProcessor, Frame, RelayStats};

/// One client connection.
///
/// Its socket is read by a [`PacketReader`], attached as a stream, that hands each packet
/// straight to the `DataProcessor`'s queue: a busy processor slows the reader, which slows
/// the client (TCP backpressure), and this thread's loop never waits on its child. The
/// processor's frames pass through this thread (`pass_up`): they go to the server's parent
/// as the server's own, without a hop through this thread's or the server's queue.
///
/// The writing half goes to the connection's [`Replies`], a task of the thread: they
/// follow the client's [`Ledger`], acknowledge what is stored (with acknowledgements on),
/// and close the connection once every frame of the client is stored (cleanly) or will
/// never be (with a reset). The connection reads until the client closes its side, the
/// processor stops (bad input, a frame over the frame timeout), or `idle_timeout` passes
/// without data; it ends once its replies have closed the connection.
///
/// With [remote processors](ServerConfig::processors), the processor runs in a worker
/// process: its frames come back here as [`Decoded`] messages, and take their size from
/// the byte budget as they arrive. A gap in their numbers (frames lost with a worker) is
/// counted as frames received and lost, as are frames the client sent in full that the
/// processor never passed back when it ends.
#[derive(Debug)]
pub struct TcpConnection {
    socket: Option<TcpStream>,
    client: SocketAddr,
    config: ServerConfig,
    budget: Budget,
    ledger: Arc<Ledger>,
    stats: Arc<RelayStats>,
    /// With a remote processor: the number of the last frame it passed back, and the
    /// frames the bytes handed to it hold in full.
    remote: Option<RemoteFrames>,
}

#[derive(Debug, Default)]
struct RemoteFrames {
    last_seq: u64,
    handed: Arc<AtomicU64>,
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
            remote: None,
        }
    }

    /// Frames `from` to `to` (numbers among the client's frames) were lost with a worker:
    /// counted as received and lost.
    fn count_lost(&self, from: u64, to: u64) {
        if to >= from {
            let n = to - from + 1;
            tracing::warn!(client = %self.client, "{n} frames were lost with a worker process");
            self.stats.count_lost_with_worker(n);
            self.ledger.record_lost();
        }
    }
}

#[taskthread(up = Frame, pass_up)]
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
        let processor = if let Some(processors) = &config.processors {
            let remote = RemoteFrames::default();
            let processor = Processor::Remote {
                child: processors.spawn(
                    ctx,
                    ProcessorArgs {
                        max_frame: config.max_frame as u64,
                        frame_timeout: config.frame_timeout,
                    },
                )?,
                scanner: FrameScanner::new(config.max_frame),
                frames: Arc::clone(&remote.handed),
            };
            self.remote = Some(remote);
            processor
        } else {
            let processor = DataProcessor::new(
                client,
                config,
                self.budget.clone(),
                Arc::clone(&ledger),
                Arc::clone(stats),
            );
            Processor::Local(ctx.spawn_with(processor, ChildOptions::new().capacity(READ_AHEAD)))
        };
        let config = &self.config;
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

    /// A frame, or news of a frame, from a remote processor.
    #[up]
    async fn decoded(
        &mut self,
        ctx: &mut Ctx<Self>,
        _from: ChildId,
        decoded: Decoded,
    ) -> Result<()> {
        let client = self.client;
        match decoded {
            Decoded::Frame { seq, payload } => {
                let last = self.remote.as_ref().map_or(0, |r| r.last_seq);
                self.count_lost(last.saturating_add(1), seq.saturating_sub(1));
                if let Some(remote) = &mut self.remote {
                    remote.last_seq = remote.last_seq.max(seq);
                }
                let size = HEADER_LEN + payload.len();
                let charge = match self.budget.try_reserve(size) {
                    Some(charge) => charge,
                    None => self.budget.reserve(size).await,
                };
                let ledger = self.ledger.is_tracked().then(|| Arc::clone(&self.ledger));
                let frame = Frame::tracked(client, seq, payload, &self.stats, charge, ledger);
                ctx.up(frame).await?;
            }
            Decoded::Truncated { bytes } => {
                tracing::info!(%client, "an incomplete frame was discarded: {bytes} bytes");
                self.ledger.record_discarded();
                self.stats
                    .count_truncated(usize::try_from(bytes).unwrap_or(usize::MAX));
            }
            Decoded::TimedOut { timeout, bytes } => {
                tracing::warn!(%client, "closing the connection: a frame took over {timeout:?} (frame timeout); {bytes} bytes of it had arrived");
                self.stats.count_slow();
                if bytes > 0 {
                    self.ledger.record_discarded();
                    self.stats
                        .count_truncated(usize::try_from(bytes).unwrap_or(usize::MAX));
                }
            }
            Decoded::Discarded { bytes } => {
                self.stats
                    .count_discarded(usize::try_from(bytes).unwrap_or(usize::MAX));
            }
            Decoded::Rejected { reason, discarded } => {
                tracing::warn!(%client, "closing the connection: {reason}");
                self.ledger.record_discarded();
                self.stats
                    .count_rejected(usize::try_from(discarded).unwrap_or(usize::MAX));
            }
        }
        Ok(())
    }

    /// A remote processor's worker was lost: it starts again on another.
    #[up]
    async fn processor_restarted(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        restart: ChildRestart,
    ) {
        tracing::warn!(client = %self.client, "the processor starts again: life {} {}", restart.life, restart.exit);
        self.stats.count_processor_restart();
    }

    /// The processor ended: it logged why (bad input, or this connection stopping).
    #[up]
    async fn processor_exited(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, exit: ChildExit) {
        if exit.exit.is_failure() {
            tracing::error!(client = %self.client, "{exit}");
        }
        if let Some(remote) = &self.remote {
            // Frames the client sent in full that never came back were lost on the way.
            let handed = remote.handed.load(Ordering::Relaxed);
            self.count_lost(remote.last_seq.saturating_add(1), handed);
            let total = handed.max(remote.last_seq);
            if exit.exit.is_failure() {
                self.ledger.abandon(total);
            } else {
                self.ledger.finish(total);
            }
        }
        ctx.stop();
    }
}
