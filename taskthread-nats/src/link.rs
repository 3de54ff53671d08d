//! [`Link`]: one direction-agnostic end of an edge for one epoch — what makes a lossy,
//! reordering transport into an ordered stream of frames that loses nothing while the
//! other side lives, and what counts credits.
//!
//! - Each reliable frame gets the next sequence number and is kept until the other side
//!   acks it; [`Link::due`] gives the frames to send again.
//! - Arriving reliable frames are delivered in sequence order, each once: early ones wait
//!   in a reorder buffer, duplicates are dropped, and so are frames beyond the window or
//!   past [`MAX_EARLY_BYTES`] (the other side sends them again, as it does every frame not
//!   acked, so nothing is lost while the edge lives). The frame next in order is always
//!   taken, so the edge moves on whatever the buffer holds.
//! - Credits: the other side tells, in every frame, how many credited frames (DOWN or UP
//!   messages) it allows in all; [`Link::has_credit`] says whether one more may go.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::frame::{self, EdgeId, Head, Kind, VERSION};

/// The most bytes of early frames an edge keeps, waiting for the frames before them: each
/// counts its size and [`EARLY_FRAME_COST`]. It bounds what a peer can make this side hold
/// whatever window the edge has.
pub(crate) const MAX_EARLY_BYTES: usize = 16 * 1024 * 1024;

/// What keeping one early frame costs beyond its bytes: its place in the buffer.
const EARLY_FRAME_COST: usize = 128;

/// How far ahead of the last frame delivered an edge keeps frames that came early.
pub(crate) fn window(capacity: u64) -> u64 {
    capacity.saturating_mul(2).saturating_add(64)
}

/// A reliable frame sent and not acked yet.
struct Unacked {
    seq: u64,
    frame: Bytes,
    sent_at: Instant,
}

/// What arrived, for the life of the edge.
#[derive(Debug, Default)]
pub(crate) struct Arrived {
    /// Reliable frames now in order, and unreliable ones the life handles (`Refused`,
    /// `Abort`), oldest first.
    pub(crate) frames: Vec<(Kind, Bytes)>,
    /// The other side allows more credited frames than before.
    pub(crate) credit_grew: bool,
}

/// One end of an edge for one epoch.
pub(crate) struct Link {
    pub(crate) edge: EdgeId,
    pub(crate) epoch: u32,
    /// Where this end's frames go.
    pub(crate) peer: String,
    next_seq: u64,
    unacked: VecDeque<Unacked>,
    credited_sent: u64,
    peer_credit: u64,
    /// The highest sequence number delivered in order.
    delivered: u64,
    /// Early frames by sequence number, each with its cost against [`MAX_EARLY_BYTES`].
    reorder: BTreeMap<u64, (Kind, Bytes, usize)>,
    /// What the frames in `reorder` cost.
    reorder_bytes: usize,
    /// How far past `delivered` a frame may be and still wait in `reorder`.
    window: u64,
    /// The credit this end allows the other (cumulative).
    grant: u64,
    /// The ack and credit last told to the other side.
    told: (u64, u64),
    pub(crate) last_heard: Instant,
    pub(crate) last_sent: Instant,
    pub(crate) rtt: Option<Duration>,
    /// Contact was lost: nothing more is sent or delivered.
    pub(crate) lost: bool,
}

impl Link {
    pub(crate) fn new(edge: EdgeId, epoch: u32, peer: String, grant: u64, window: u64) -> Self {
        let now = Instant::now();
        Self {
            edge,
            epoch,
            peer,
            next_seq: 1,
            unacked: VecDeque::new(),
            credited_sent: 0,
            peer_credit: 0,
            delivered: 0,
            reorder: BTreeMap::new(),
            reorder_bytes: 0,
            window: window.max(16),
            grant,
            told: (0, 0),
            last_heard: now,
            last_sent: now,
            rtt: None,
            lost: false,
        }
    }

    fn head(&mut self, seq: u64, kind: Kind) -> Head {
        self.told = (self.delivered, self.grant);
        Head {
            version: VERSION,
            edge: self.edge,
            epoch: self.epoch,
            seq,
            ack: self.delivered,
            credit: self.grant,
            kind,
        }
    }

    /// Makes the next reliable frame, its payload written by `payload`, and keeps it until
    /// it is acked. A credited kind takes a credit: check [`has_credit`](Self::has_credit)
    /// first.
    pub(crate) fn reliable<E: From<postcard::Error>>(
        &mut self,
        kind: Kind,
        payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Bytes, E> {
        let credited = kind.is_credited();
        let seq = self.next_seq;
        let head = self.head(seq, kind);
        let frame = frame::encode(&head, payload)?;
        self.next_seq += 1;
        if credited {
            self.credited_sent += 1;
        }
        let now = Instant::now();
        self.last_sent = now;
        self.unacked.push_back(Unacked {
            seq,
            frame: frame.clone(),
            sent_at: now,
        });
        Ok(frame)
    }

    /// Makes a frame without delivery guarantee (an ack, a ping, an abort).
    pub(crate) fn bare(&mut self, kind: Kind) -> Bytes {
        self.last_sent = Instant::now();
        let head = self.head(0, kind);
        frame::encode_bare(&head)
    }

    /// Whether one more credited frame may be sent.
    pub(crate) fn has_credit(&self) -> bool {
        self.credited_sent < self.peer_credit
    }

    /// How many credited frames were sent and not yet covered by the other side's credit
    /// beyond them: those the other side may still be holding.
    pub(crate) fn credited_sent(&self) -> u64 {
        self.credited_sent
    }

    /// The credit the other side allows this one (cumulative).
    pub(crate) fn peer_credit(&self) -> u64 {
        self.peer_credit
    }

    /// Allows the other side `n` more credited frames.
    pub(crate) fn grant(&mut self, n: u64) {
        self.grant += n;
    }

    /// Whether the other side has not been told the latest ack or credit.
    pub(crate) fn owes_ack(&self) -> bool {
        self.told != (self.delivered, self.grant)
    }

    /// Whether every reliable frame sent has been acked.
    pub(crate) fn all_acked(&self) -> bool {
        self.unacked.is_empty()
    }

    /// A frame of this epoch arrived, `size` bytes in all.
    pub(crate) fn receive(&mut self, head: Head, payload: Bytes, size: usize) -> Arrived {
        let mut arrived = Arrived::default();
        if self.lost {
            return arrived;
        }
        self.last_heard = Instant::now();
        while self.unacked.front().is_some_and(|u| u.seq <= head.ack) {
            self.unacked.pop_front();
        }
        if head.credit > self.peer_credit {
            self.peer_credit = head.credit;
            arrived.credit_grew = true;
        }
        if head.seq == 0 {
            if matches!(head.kind, Kind::Refused(_) | Kind::Abort | Kind::Tree(_)) {
                arrived.frames.push((head.kind, payload));
            }
            return arrived;
        }
        if head.seq <= self.delivered || head.seq > self.delivered + self.window {
            // A copy of a frame already delivered (its ack was lost: it is owed again), or
            // too far ahead to keep: it will come again.
            self.told = (u64::MAX, u64::MAX);
            return arrived;
        }
        if head.seq != self.delivered + 1 {
            self.keep_early(head, payload, size);
            return arrived;
        }
        self.delivered += 1;
        arrived.frames.push((head.kind, payload));
        // Those that came early and are next now.
        while let Some((kind, payload, cost)) = self.reorder.remove(&(self.delivered + 1)) {
            self.reorder_bytes -= cost;
            self.delivered += 1;
            arrived.frames.push((kind, payload));
        }
        arrived
    }

    /// Keeps a frame that came before the ones it follows, if the buffer has room for it.
    fn keep_early(&mut self, head: Head, payload: Bytes, size: usize) {
        if self.reorder.contains_key(&head.seq) {
            return;
        }
        let cost = size.saturating_add(EARLY_FRAME_COST);
        if self.reorder_bytes.saturating_add(cost) > MAX_EARLY_BYTES {
            // As a frame beyond the window: it will come again.
            self.told = (u64::MAX, u64::MAX);
            return;
        }
        self.reorder_bytes += cost;
        // A copy: the payload shares the datagram it came in, which may be much larger.
        let payload = Bytes::copy_from_slice(&payload);
        self.reorder.insert(head.seq, (head.kind, payload, cost));
    }

    /// The reliable frames not acked `after` they were (last) sent, to send again.
    pub(crate) fn due(&mut self, now: Instant, after: Duration) -> Vec<Bytes> {
        let mut due = Vec::new();
        for unacked in &mut self.unacked {
            if now.duration_since(unacked.sent_at) >= after {
                unacked.sent_at = now;
                due.push(unacked.frame.clone());
            }
        }
        if !due.is_empty() {
            self.last_sent = now;
        }
        due
    }

    /// A pong came back for a ping sent at `sent`.
    pub(crate) fn pong(&mut self, sent: Instant) {
        let sample = Instant::now().saturating_duration_since(sent);
        self.rtt = Some(match self.rtt {
            // Smoothed as TCP does (RFC 6298): 7/8 of the old, 1/8 of the new.
            Some(rtt) => (rtt * 7 + sample) / 8,
            None => sample,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrive(to: &mut Link, frame: &Bytes) -> Arrived {
        let (head, payload) = frame::decode(frame).unwrap();
        to.receive(head, payload, frame.len())
    }

    fn tell(from: &mut Link, n: u8) -> Bytes {
        from.reliable::<postcard::Error>(Kind::Tell { index: 0 }, |buf| {
            buf.push(n);
            Ok(())
        })
        .unwrap()
    }

    fn payloads(arrived: &Arrived) -> Vec<u8> {
        arrived.frames.iter().map(|(_, p)| p[0]).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn frames_are_delivered_once_in_order_and_sent_again_until_acked() {
        let mut parent = Link::new(1, 1, "host".into(), 0, 16);
        let mut host = Link::new(1, 1, "parent".into(), 3, 16);
        // No credit until the host says so.
        assert!(!parent.has_credit());
        arrive(&mut parent, &host.bare(Kind::Ack));
        assert!(parent.has_credit());

        let frames: Vec<Bytes> = (1..=3).map(|n| tell(&mut parent, n)).collect();
        assert!(!parent.has_credit(), "three credits, three sent");
        // The second is lost, the third overtakes the first.
        assert_eq!(payloads(&arrive(&mut host, &frames[2])), Vec::<u8>::new());
        assert_eq!(payloads(&arrive(&mut host, &frames[0])), [1]);
        // The host acks what it has in order; the parent sends the rest again.
        arrive(&mut parent, &host.bare(Kind::Ack));
        tokio::time::advance(Duration::from_millis(200)).await;
        let again = parent.due(Instant::now(), Duration::from_millis(200));
        assert_eq!(again.len(), 2);
        assert_eq!(payloads(&arrive(&mut host, &again[0])), [2, 3]);
        // A copy is dropped, and owed an ack.
        let _ = host.bare(Kind::Ack);
        assert!(!host.owes_ack());
        assert_eq!(payloads(&arrive(&mut host, &again[1])), Vec::<u8>::new());
        assert!(host.owes_ack());
        arrive(&mut parent, &host.bare(Kind::Ack));
        assert!(parent.all_acked());
        // The host takes one: one more credit.
        host.grant(1);
        assert!(arrive(&mut parent, &host.bare(Kind::Ack)).credit_grew);
        assert!(parent.has_credit());
    }

    #[tokio::test(start_paused = true)]
    async fn frames_beyond_the_window_are_dropped() {
        let mut parent = Link::new(1, 1, "host".into(), 0, 16);
        let mut host = Link::new(1, 1, "parent".into(), 100, 16);
        arrive(&mut parent, &host.bare(Kind::Ack));
        let frames: Vec<Bytes> = (0..20).map(|n| tell(&mut parent, n)).collect();
        // The first is lost; the 17th and later are too far ahead to keep.
        for frame in &frames[1..] {
            assert!(arrive(&mut host, frame).frames.is_empty());
        }
        let delivered = arrive(&mut host, &frames[0]);
        assert_eq!(payloads(&delivered), (0..16).collect::<Vec<_>>());
        for frame in &frames[16..] {
            assert_eq!(arrive(&mut host, frame).frames.len(), 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn early_frames_are_kept_within_a_byte_bound_and_the_rest_come_again() {
        // A window as wide as the largest capacity allows, and frames of 64 KiB: more than
        // the buffer keeps come early.
        let window = window(crate::MAX_REMOTE_CAPACITY as u64);
        let mut parent = Link::new(1, 1, "host".into(), 0, window);
        let mut host = Link::new(1, 1, "parent".into(), 1_000, window);
        arrive(&mut parent, &host.bare(Kind::Ack));
        let count: u16 = 400;
        let frames: Vec<Bytes> = (0..count)
            .map(|n| {
                parent
                    .reliable::<postcard::Error>(Kind::Tell { index: 0 }, |buf| {
                        buf.extend_from_slice(&n.to_le_bytes());
                        buf.resize(64 * 1024, 0);
                        Ok(())
                    })
                    .unwrap()
            })
            .collect();
        let numbers = |arrived: &Arrived| -> Vec<u16> {
            arrived
                .frames
                .iter()
                .map(|(_, p)| u16::from_le_bytes([p[0], p[1]]))
                .collect()
        };
        // The first is lost; the others come early.
        for frame in &frames[1..] {
            assert!(arrive(&mut host, frame).frames.is_empty());
        }
        assert!(host.reorder_bytes <= MAX_EARLY_BYTES);
        // The first comes again: it and what was kept go on, in order.
        let mut delivered = numbers(&arrive(&mut host, &frames[0]));
        let kept = delivered.len();
        assert!(kept > 1 && kept < usize::from(count), "{kept} delivered");
        assert_eq!(delivered, (0..kept as u16).collect::<Vec<_>>());
        // The rest were not acked, so they come again, and none is lost or doubled.
        while delivered.len() < usize::from(count) {
            arrive(&mut parent, &host.bare(Kind::Ack));
            tokio::time::advance(Duration::from_millis(200)).await;
            for frame in parent.due(Instant::now(), Duration::from_millis(200)) {
                delivered.extend(numbers(&arrive(&mut host, &frame)));
            }
        }
        assert_eq!(delivered, (0..count).collect::<Vec<_>>());
        assert_eq!(host.reorder_bytes, 0);
    }
}
