//! `DataProcessor: IN: Packet, UP: Frame` — cuts one client's byte stream into frames.

use std::net::SocketAddr;
use std::sync::Arc;

use taskthread::prelude::*;

use super::frame::{FrameDecoder, FrameError};
use super::{Frame, Packet, RelayStats};

/// Rebuilds the frames of one client from its packets and sends each one UP.
///
/// Bad input (a length over the limit, garbage) is the client's fault, not a failure of
/// the relay: the processor logs it, stops itself, and its parent closes the connection.
/// A frame left incomplete is discarded, logged and counted, whether the client closed the
/// connection in its middle (the end-of-stream packet) or the relay did (a stop, or the
/// idle timeout: the processor is stopped with bytes still buffered).
#[derive(Debug)]
pub struct DataProcessor {
    client: SocketAddr,
    decoder: FrameDecoder,
    frames: u64,
    /// The stream has ended, or was rejected: nothing after can be a frame.
    finished: bool,
    stats: Arc<RelayStats>,
}

impl DataProcessor {
    /// A processor for the client at `client`, accepting frames of up to `max_frame` bytes.
    pub fn new(client: SocketAddr, max_frame: usize, stats: Arc<RelayStats>) -> Self {
        Self {
            client,
            decoder: FrameDecoder::new(max_frame),
            frames: 0,
            finished: false,
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
        self.decoder.push(&packet.bytes);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(payload)) => {
                    self.frames += 1;
                    let frame = Frame::received(self.client, self.frames, payload, &self.stats);
                    ctx.up(frame).await?;
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.reject(ctx, &e);
                    return Ok(());
                }
            }
        }
    }

    /// Stopped with part of a frame buffered: the relay closed the connection (a stop, or
    /// the idle timeout), not the client.
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        let discarded = self.decoder.discard();
        if discarded > 0 {
            tracing::info!(client = %self.client, frames = self.frames, "the relay closed the connection in the middle of a frame: {discarded} bytes discarded");
            self.stats.count_truncated(discarded);
        }
    }
}

impl DataProcessor {
    /// The client closed its side: a frame it left incomplete will never be complete.
    fn client_closed(&mut self, ctx: &mut Ctx<Self>) {
        if let Err(e) = self.decoder.finish() {
            tracing::warn!(client = %self.client, frames = self.frames, "{e}");
            self.stats.count_truncated(self.decoder.discard());
        }
        self.finished = true;
        ctx.stop();
    }

    fn reject(&mut self, ctx: &mut Ctx<Self>, e: &FrameError) {
        tracing::warn!(client = %self.client, "closing the connection: {e}");
        self.stats.count_rejected(self.decoder.discard());
        self.finished = true;
        ctx.stop();
    }
}
