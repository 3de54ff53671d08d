//! `DataProcessor: IN: Packet, UP: Frame` — cuts one client's byte stream into frames.

use std::net::SocketAddr;
use std::sync::Arc;

use taskthread::prelude::*;

use super::frame::FrameDecoder;
use super::{Frame, Packet, RelayStats};

/// Rebuilds the frames of one client from its packets and sends each one UP.
///
/// Bad input (a length over the limit, garbage) is the client's fault, not a failure of
/// the relay: the processor logs it, stops itself, and its parent closes the connection.
/// When it stops in the middle of a frame, the incomplete frame is logged and counted.
#[derive(Debug)]
pub struct DataProcessor {
    client: SocketAddr,
    decoder: FrameDecoder,
    frames: u64,
    rejected: bool,
    stats: Arc<RelayStats>,
}

impl DataProcessor {
    /// A processor for the client at `client`, accepting frames of up to `max_frame` bytes.
    pub fn new(client: SocketAddr, max_frame: usize, stats: Arc<RelayStats>) -> Self {
        Self {
            client,
            decoder: FrameDecoder::new(max_frame),
            frames: 0,
            rejected: false,
            stats,
        }
    }
}

#[taskthread(up = Frame)]
impl DataProcessor {
    #[down]
    async fn packet(&mut self, ctx: &mut Ctx<Self>, Packet(bytes): Packet) -> Result<()> {
        if self.rejected {
            return Ok(()); // the stream cannot be resynchronised: the rest is ignored
        }
        self.decoder.push(&bytes);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(payload)) => {
                    self.frames += 1;
                    let frame = Frame {
                        id: self.stats.count_received(&payload),
                        client: self.client,
                        seq: self.frames,
                        payload,
                    };
                    ctx.up(frame).await?;
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    tracing::warn!(client = %self.client, "closing the connection: {e}");
                    self.stats.count_rejected();
                    self.rejected = true;
                    ctx.stop();
                    return Ok(());
                }
            }
        }
    }

    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        if let (false, Err(e)) = (self.rejected, self.decoder.finish()) {
            tracing::warn!(client = %self.client, frames = self.frames, "{e}");
            self.stats.count_truncated();
        }
    }
}
