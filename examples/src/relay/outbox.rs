//! A `WebsocketSub`'s frames on their way to its destination: a buffer bounded in bytes of
//! frames waiting to be written, and of frames written but not yet confirmed.
//!
//! A frame counts as delivered only once the destination has read it. Frames are written
//! in batches (at most [`BATCH_FRAMES`] frames or [`BATCH_BYTES`] bytes), each followed by
//! a ping carrying the number of frames written on the link so far; the destination's
//! pong (which every websocket server sends, after reading what came before the ping)
//! confirms them. Frames not confirmed when a link breaks go back to the front of the
//! buffer, to be written again on the next link: a destination may see a frame twice,
//! never zero times.
//!
//! The buffer holds at most its limit in bytes, waiting and unconfirmed frames together,
//! so a destination that is slow, unreachable or never confirms holds a bounded share of
//! the relay's memory. When a frame does not fit, the oldest waiting frames are dropped
//! (the destination is *lagging*): one warning when dropping starts, one when the
//! destination has caught up (its buffer half empty again), and every frame dropped is
//! counted for the destination. Every frame leaves the outbox settled (see
//! [`Delivery`](super::delivery::Delivery)): delivered when confirmed, lost when dropped
//! or abandoned.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::link::{Batch, LastWords};
use super::{Frame, RelayStats};

/// A batch holds at most this many frames...
pub const BATCH_FRAMES: usize = 64;
/// ... and this many payload bytes (or one frame, if it is larger): small enough that a
/// slow destination confirms what it reads every few seconds, so that what it read before
/// the relay stops counts as delivered.
pub const BATCH_BYTES: usize = 64 * 1024;

/// The frames of one destination that it has not confirmed yet.
#[derive(Debug)]
pub struct Outbox {
    /// The most payload bytes held.
    limit: usize,
    /// Payload bytes held, waiting and unconfirmed.
    bytes: usize,
    /// Frames waiting to be written, oldest first.
    waiting: VecDeque<Frame>,
    /// Frames written (or being written) on the current link and not yet confirmed, oldest
    /// first.
    unconfirmed: VecDeque<Frame>,
    /// Frames written on the current link.
    written: u64,
    delivered: u64,
    dropped: u64,
    lag: Lag,
    stats: Arc<RelayStats>,
}

impl Outbox {
    /// An outbox of the destination at `url` holding at most `limit` payload bytes.
    pub fn new(url: &str, limit: usize, stats: Arc<RelayStats>) -> Self {
        Self {
            limit,
            bytes: 0,
            waiting: VecDeque::new(),
            unconfirmed: VecDeque::new(),
            written: 0,
            delivered: 0,
            dropped: 0,
            lag: Lag::new(url),
            stats,
        }
    }

    /// Frames not yet confirmed: waiting, or written and unconfirmed.
    pub fn len(&self) -> usize {
        self.waiting.len() + self.unconfirmed.len()
    }

    /// Whether every frame has been confirmed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether frames wait to be written.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Frames the destination confirmed.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Frames the destination will not get: dropped while it lagged, or abandoned.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether the destination is lagging: frames are being dropped.
    pub fn is_lagging(&self) -> bool {
        self.lag.dropping
    }

    /// Queues a frame to write. Past the limit, the oldest waiting frames are dropped
    /// (this one, if nothing else waits).
    pub fn push(&mut self, frame: Frame) {
        self.bytes += frame.payload.len();
        self.waiting.push_back(frame);
        self.trim();
    }

    /// Takes the next batch to write: moves it to the unconfirmed frames and returns its
    /// payloads and the ping that asks for its confirmation; `None` if nothing waits.
    pub fn next_batch(&mut self) -> Option<(Vec<Bytes>, u64)> {
        let mut payloads = Vec::new();
        let mut bytes = 0;
        while let Some(frame) = self.waiting.front() {
            let len = frame.payload.len();
            if !payloads.is_empty() && (payloads.len() == BATCH_FRAMES || bytes + len > BATCH_BYTES)
            {
                break;
            }
            bytes += len;
            payloads.push(frame.payload.clone());
            self.unconfirmed.extend(self.waiting.pop_front());
        }
        if payloads.is_empty() {
            return None;
        }
        self.written += payloads.len() as u64;
        Some((payloads, self.written))
    }

    /// A pong: the destination has read the frames written before the ping it answers.
    pub fn confirm(&mut self, pong: &[u8]) {
        let Ok(written) = <[u8; 8]>::try_from(pong).map(u64::from_be_bytes) else {
            return; // not one of ours
        };
        let confirmed = self.written - self.unconfirmed.len() as u64;
        let n = written
            .saturating_sub(confirmed)
            .min(self.unconfirmed.len() as u64);
        for frame in self.unconfirmed.drain(..n as usize) {
            self.bytes -= frame.payload.len();
            frame.delivery.delivered();
        }
        self.delivered += n;
        if self.bytes <= self.limit / 2 {
            self.lag.caught_up(self.dropped);
        }
    }

    /// The link broke: the frames it did not confirm go back to the front of the buffer,
    /// to be written again on the next link.
    pub fn requeue(&mut self) {
        while let Some(frame) = self.unconfirmed.pop_back() {
            self.waiting.push_front(frame);
        }
        self.written = 0;
        self.trim();
    }

    /// For `exit`: writes what waits, batch by batch, taking the destination's answers as
    /// they come, then waits for the last ones, until every frame is confirmed, or the
    /// connection is gone or out of time.
    pub async fn flush(&mut self, last: &mut LastWords) {
        // The last batch asks again: the answer to an earlier ping may have gone with the
        // link's task.
        while !self.unconfirmed.is_empty() || !self.waiting.is_empty() {
            let batch = match self.next_batch() {
                Some((payloads, ping)) => Batch {
                    payloads,
                    ping: Some(ping),
                },
                None => Batch {
                    payloads: Vec::new(),
                    ping: Some(self.written),
                },
            };
            let asked_again = batch.payloads.is_empty();
            if !last.write(batch, |pong| self.confirm(pong)).await {
                return;
            }
            if asked_again {
                break;
            }
        }
        while !self.unconfirmed.is_empty() {
            match last.next_pong().await {
                Some(pong) => self.confirm(&pong),
                None => return,
            }
        }
    }

    /// Settles every frame left as lost, counting them as dropped; returns how many there
    /// were.
    pub fn abandon(&mut self) -> usize {
        let n = self.len();
        for frame in self.unconfirmed.drain(..).chain(self.waiting.drain(..)) {
            frame.delivery.lost();
        }
        self.bytes = 0;
        self.dropped += n as u64;
        self.stats.count_ws_dropped(n as u64);
        n
    }

    /// Drops the oldest waiting frames while over the limit, as lost.
    fn trim(&mut self) {
        while self.bytes > self.limit {
            let Some(oldest) = self.waiting.pop_front() else {
                return; // only unconfirmed frames: they go once confirmed or abandoned
            };
            self.bytes -= oldest.payload.len();
            oldest.delivery.lost();
            self.dropped += 1;
            self.stats.count_ws_dropped(1);
            let limit = self.limit;
            self.lag.dropping(self.dropped, || {
                format!("its buffer of {limit} bytes is full")
            });
        }
    }
}

/// Whether a destination is dropping frames: one warning when it starts, one when it
/// stops, never one per frame.
#[derive(Debug)]
pub struct Lag {
    url: String,
    dropping: bool,
    /// The destination's drops before the current episode.
    dropped_before: u64,
}

impl Lag {
    /// The lag of the destination at `url`, not dropping.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            dropping: false,
            dropped_before: 0,
        }
    }

    /// A frame was dropped (the destination's `dropped` so far includes it), for the
    /// reason `why` gives.
    pub fn dropping(&mut self, dropped: u64, why: impl FnOnce() -> String) {
        if !self.dropping {
            self.dropping = true;
            self.dropped_before = dropped - 1;
            let why = why();
            tracing::warn!(url = %self.url, "the destination is lagging ({why}): dropping frames for it until it catches up");
        }
    }

    /// The destination has room again.
    pub fn caught_up(&mut self, dropped: u64) {
        if self.dropping {
            self.dropping = false;
            let n = dropped - self.dropped_before;
            tracing::warn!(url = %self.url, dropped = n, "the destination caught up: {n} frames dropped while it lagged");
        }
    }
}
