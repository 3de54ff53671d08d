//! `DataProcessor: IN: Packet, UP: Frame` — cuts one client's byte stream into frames.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use taskthread::prelude::*;
use tokio::time::Instant;

use super::budget::{Budget, Charge};
use super::frame::{FrameDecoder, FrameError, HEADER_LEN};
use super::receipt::Ledger;
use super::tcp_server::ServerConfig;
use super::{Frame, Packet, RelayStats};

/// Rebuilds the frames of one client from its packets and sends each one UP.
///
/// A frame is *admitted* as soon as its length prefix has arrived: it takes its whole size
/// from the relay's [`Budget`], waiting for room if the budget is spent. While it waits,
/// the processor takes no packet, its connection's reader runs out of credit and stops
/// reading the socket, and TCP slows the client down. Once admitted, the frame holds its
/// share of the budget until its last copy is dropped.
///
/// A frame that has started must arrive in full within the frame timeout; time the relay
/// itself makes the client wait (for room in the budget, or for room UP) does not count.
/// A client that takes longer (a slowloris) is disconnected and counted.
///
/// Bad input (a length over the limit, garbage) is the client's fault, not a failure of
/// the relay: the processor logs it, stops itself, and its parent closes the connection.
/// A frame left incomplete is discarded, logged and counted, whether the client closed the
/// connection in its middle (the end-of-stream packet) or the relay did (a stop, the idle
/// or frame timeout: the processor is stopped with bytes still buffered). Every frame
/// made is numbered in the client's [`Ledger`], which learns the total when the processor
/// ends; if it is aborted (dropped without ending), the ledger is abandoned.
#[derive(Debug)]
pub struct DataProcessor {
    client: SocketAddr,
    decoder: FrameDecoder,
    frames: u64,
    /// The stream has ended, or was rejected: nothing after can be a frame.
    finished: bool,
    budget: Budget,
    /// The share of the budget the frame at the front holds, once admitted.
    admitted: Option<Charge>,
    clock: FrameClock,
    ledger: Arc<Ledger>,
    /// Whether the ledger was told the total (by `exit`).
    ledger_finished: bool,
    stats: Arc<RelayStats>,
}

impl DataProcessor {
    /// A processor for the client at `client`, with the limits of `config`, taking frames'
    /// sizes from `budget` and numbering them in `ledger`.
    pub fn new(
        client: SocketAddr,
        config: &ServerConfig,
        budget: Budget,
        ledger: Arc<Ledger>,
        stats: Arc<RelayStats>,
    ) -> Self {
        Self {
            client,
            decoder: FrameDecoder::new(config.max_frame),
            frames: 0,
            finished: false,
            budget,
            admitted: None,
            clock: FrameClock::new(config.frame_timeout),
            ledger,
            ledger_finished: false,
            stats,
        }
    }
}

#[taskthread(up = Frame)]
impl DataProcessor {
    #[down]
    async fn packet(&mut self, ctx: &mut Ctx<Self>, packet: Packet) -> Result<()> {
        if self.finished {
            // After bad input the stream cannot be resynchronised: the rest is discarded.
            self.stats.count_discarded(packet.bytes.len());
            return Ok(());
        }
        if packet.is_end() {
            self.client_closed(ctx);
            return Ok(());
        }
        // A frame that starts in this packet starts its clock now, as does one the relay
        // makes wait.
        let mut restart_clock = self.decoder.buffered() == 0;
        self.decoder.push(&packet.bytes);
        drop(packet); // its credit goes back to the reader
        loop {
            if self.admitted.is_none() {
                match self.decoder.frame_len() {
                    // Room in the budget now (the usual case) needs no future.
                    Ok(Some(len)) if self.try_admit(len) => {}
                    Ok(Some(len)) => restart_clock |= self.admit(len).await,
                    Ok(None) => break,
                    Err(e) => {
                        self.reject(ctx, &e);
                        return Ok(());
                    }
                }
            }
            let payload = match self.decoder.next_frame() {
                Ok(Some(payload)) => payload,
                Ok(None) => break,
                Err(e) => {
                    self.reject(ctx, &e);
                    return Ok(());
                }
            };
            self.frames += 1;
            let charge = self.admitted.take().unwrap_or_default();
            let ledger = self.ledger.is_tracked().then(|| Arc::clone(&self.ledger));
            let frame = Frame::tracked(
                self.client,
                self.frames,
                payload,
                &self.stats,
                charge,
                ledger,
            );
            ctx.up(frame).await?;
            restart_clock = true;
        }
        self.watch_frame(ctx, restart_clock);
        Ok(())
    }

    /// Checks the incomplete frame against the frame timeout. Runs at the frame's deadline,
    /// which moves as frames complete and new ones start.
    #[rescheduling(manual)]
    async fn frame_deadline(&mut self, ctx: &mut Ctx<Self>) -> Reschedule {
        let timeout = match self.clock.overdue() {
            Ok(timeout) => timeout,
            Err(next) => return next,
        };
        let buffered = self.decoder.buffered();
        tracing::warn!(client = %self.client, frames = self.frames, "closing the connection: a frame took over {timeout:?} (frame timeout); {buffered} bytes of it had arrived");
        self.stats.count_slow();
        self.discard_partial();
        self.finished = true;
        ctx.stop();
        Reschedule::Done
    }

    /// Stopped with part of a frame buffered: the relay closed the connection (a stop, or
    /// the idle timeout), not the client.
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        let discarded = self.discard_partial();
        if discarded > 0 {
            tracing::info!(client = %self.client, frames = self.frames, "the relay closed the connection in the middle of a frame: {discarded} bytes discarded");
        }
        self.ledger.finish(self.frames);
        self.ledger_finished = true;
    }
}

impl DataProcessor {
    /// Takes the size of the frame at the front (`len` bytes of payload) from the budget if
    /// there is room now. Returns whether it did.
    fn try_admit(&mut self, len: usize) -> bool {
        let Some(charge) = self.budget.try_reserve(HEADER_LEN + len) else {
            return false;
        };
        self.admitted = Some(charge);
        self.decoder.reserve_frame();
        true
    }

    /// Takes the size of the frame at the front (`len` bytes of payload) from the budget,
    /// waiting for room. Returns whether it waited.
    async fn admit(&mut self, len: usize) -> bool {
        if self.try_admit(len) {
            return false;
        }
        tracing::debug!(client = %self.client, "the byte budget is spent: waiting for room for a frame of {len} bytes");
        let charge = self.budget.reserve(HEADER_LEN + len).await;
        self.admitted = Some(charge);
        self.decoder.reserve_frame();
        true
    }

    /// Starts, restarts or ends the clock of the incomplete frame, and makes sure its
    /// deadline is watched.
    fn watch_frame(&mut self, ctx: &mut Ctx<Self>, restart: bool) {
        if let Some(deadline) = self.clock.watch(self.decoder.buffered() > 0, restart)
            && !ctx.is_task_scheduled(Self::FRAME_DEADLINE)
        {
            ctx.reschedule_task_at(Self::FRAME_DEADLINE, deadline);
        }
    }

    /// The client closed its side: a frame it left incomplete will never be complete.
    fn client_closed(&mut self, ctx: &mut Ctx<Self>) {
        if let Err(e) = self.decoder.finish() {
            tracing::warn!(client = %self.client, frames = self.frames, "{e}");
            self.discard_partial();
        }
        self.finished = true;
        ctx.stop();
    }

    fn reject(&mut self, ctx: &mut Ctx<Self>, e: &FrameError) {
        tracing::warn!(client = %self.client, "closing the connection: {e}");
        self.ledger.record_discarded();
        self.stats.count_rejected(self.decoder.discard());
        self.admitted = None;
        self.clock.stop();
        self.finished = true;
        ctx.stop();
    }

    /// Discards an incomplete frame, counts it as truncated, and gives its share of the
    /// budget back; returns how many bytes it had.
    fn discard_partial(&mut self) -> usize {
        self.admitted = None;
        self.clock.stop();
        let discarded = self.decoder.discard();
        if discarded > 0 {
            self.ledger.record_discarded();
            self.stats.count_truncated(discarded);
        }
        discarded
    }
}

/// The clock of a client's incomplete frame against the frame timeout, for the processors
/// (local and remote) that cut the client's frames.
///
/// It runs while a frame is incomplete, from when the frame started or when the relay last
/// made the client wait, whichever is later.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameClock {
    timeout: Option<Duration>,
    started: Option<Instant>,
}

impl FrameClock {
    /// A clock against `timeout` (none: never overdue).
    pub(super) fn new(timeout: Option<Duration>) -> Self {
        Self {
            timeout,
            started: None,
        }
    }

    /// Starts the clock if a frame is `incomplete` and it is not running (or `restart`),
    /// or stops it if none is; returns the deadline to watch, if there is one.
    pub(super) fn watch(&mut self, incomplete: bool, restart: bool) -> Option<Instant> {
        if !incomplete {
            self.started = None; // the deadline, if watched, finds nothing to check
            return None;
        }
        if restart || self.started.is_none() {
            self.started = Some(Instant::now());
        }
        Some(self.started? + self.timeout?)
    }

    /// Stops the clock: no frame is incomplete any more.
    pub(super) fn stop(&mut self) {
        self.started = None;
    }

    /// At a deadline: the timeout if the incomplete frame has taken longer, else when to
    /// look again (never, if the clock has stopped).
    pub(super) fn overdue(&self) -> Result<Duration, Reschedule> {
        let (Some(started), Some(timeout)) = (self.started, self.timeout) else {
            return Err(Reschedule::Done);
        };
        let deadline = started + timeout;
        if Instant::now() < deadline {
            return Err(Reschedule::At(deadline));
        }
        Ok(timeout)
    }
}

/// Aborted (`exit` did not run), the processor still counts its incomplete frame, and
/// tells its ledger how many frames it made.
impl Drop for DataProcessor {
    fn drop(&mut self) {
        self.discard_partial();
        if !self.ledger_finished {
            self.ledger.abandon(self.frames);
        }
    }
}
