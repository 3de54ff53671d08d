//! A `WebsocketSub`'s frames on their way to its destination: a bounded buffer of frames
//! waiting to be written, and the frames written but not yet confirmed.
//!
//! A frame counts as delivered only once the destination has read it. After every
//! [`PING_EVERY`] frames, and whenever the buffer runs empty, the outbox sends a ping
//! carrying the number of frames written on the link so far; the destination's pong (which
//! every websocket server sends, after reading what came before the ping) confirms them.
//! Frames not confirmed when a link breaks go back to the front of the buffer, to be
//! written again on the next link: a destination may see a frame twice, never zero times.
//! Every frame leaves the outbox settled (see [`Delivery`](super::delivery::Delivery)):
//! delivered when confirmed, lost when it falls off the full buffer or is abandoned.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::Frame;
use super::link::{Heard, Link};

/// A ping goes out at least every this many frames written.
pub const PING_EVERY: u64 = 64;

/// The frames of one destination that it has not confirmed yet.
#[derive(Debug)]
pub struct Outbox {
    capacity: usize,
    /// Frames waiting to be written, oldest first.
    waiting: VecDeque<Frame>,
    /// Frames written on the current link and not yet confirmed, oldest first.
    unconfirmed: VecDeque<Frame>,
    /// Frames written on the current link; the last ping carried `pinged`.
    written: u64,
    pinged: u64,
    delivered: u64,
    dropped: u64,
}

impl Outbox {
    /// An outbox that buffers up to `capacity` frames while they cannot be written.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            waiting: VecDeque::new(),
            unconfirmed: VecDeque::new(),
            written: 0,
            pinged: 0,
            delivered: 0,
            dropped: 0,
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

    /// Frames the destination confirmed.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Frames dropped from the full buffer, as lost.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues a frame to write. If the buffer is full, the oldest waiting frame is
    /// dropped and settled as lost.
    pub fn push(&mut self, frame: Frame) {
        self.waiting.push_back(frame);
        self.trim();
    }

    /// Writes the waiting frames to `link`, oldest first, with the pings that ask for
    /// their confirmation. On error the link is broken and the frame that could not be
    /// written is still first in the buffer.
    pub async fn send(&mut self, link: &mut Link) -> Result<(), String> {
        while let Some(frame) = self.waiting.front() {
            link.send(Message::Binary(frame.payload.clone())).await?;
            self.unconfirmed.extend(self.waiting.pop_front());
            self.written += 1;
            if self.written - self.pinged >= PING_EVERY {
                self.ping(link).await?;
            }
        }
        if self.written > self.pinged {
            self.ping(link).await?;
        }
        Ok(())
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
            frame.delivery.delivered();
        }
        self.delivered += n;
    }

    /// The link broke: the frames it did not confirm go back to the front of the buffer,
    /// to be written again on the next link.
    pub fn requeue(&mut self) {
        while let Some(frame) = self.unconfirmed.pop_back() {
            self.waiting.push_front(frame);
        }
        self.trim();
        (self.written, self.pinged) = (0, 0);
    }

    /// For `exit`: writes what waits, then reads the destination's answers until every
    /// frame is confirmed, the link breaks, or `limit` has passed.
    pub async fn flush(&mut self, link: &mut Link, limit: Duration) {
        if self.send(link).await.is_err() {
            return;
        }
        // Ask again: the answer to the last ping may have gone with the attached stream,
        // which the thread dropped unread when it started stopping.
        if !self.unconfirmed.is_empty() && self.ping(link).await.is_err() {
            return;
        }
        let deadline = Instant::now() + limit;
        while !self.unconfirmed.is_empty() {
            match link.hear_directly(deadline).await {
                Heard::Pong(pong) => self.confirm(&pong),
                Heard::Nothing => {}
                Heard::Gone(_) => return,
            }
        }
    }

    /// Settles every frame left as lost; returns how many there were.
    pub fn abandon(&mut self) -> usize {
        let n = self.len();
        for frame in self.unconfirmed.drain(..).chain(self.waiting.drain(..)) {
            frame.delivery.lost();
        }
        n
    }

    async fn ping(&mut self, link: &mut Link) -> Result<(), String> {
        let payload = self.written.to_be_bytes().to_vec();
        link.send(Message::Ping(payload.into())).await?;
        self.pinged = self.written;
        Ok(())
    }

    /// Drops the oldest waiting frames beyond the capacity, as lost.
    fn trim(&mut self) {
        while self.waiting.len() > self.capacity {
            let Some(oldest) = self.waiting.pop_front() else {
                return;
            };
            if self.dropped == 0 {
                tracing::warn!(
                    "buffer full ({} frames): dropping the oldest, counted as lost",
                    self.capacity
                );
            }
            self.dropped += 1;
            oldest.delivery.lost();
        }
    }
}
