//! A client's receipt: how many of its frames the database holds, whether one will never
//! get there, and whether everything it sent became a frame. Its connection and every
//! frame it sent share one [`Ledger`]; the connection reads it to send acknowledgements
//! and to decide how to close.
//!
//! ```
//! use taskthread_examples::relay::receipt::Ledger;
//!
//! let ledger = Ledger::new();
//! ledger.record_stored(1, 3); // frames 1 to 3 committed
//! ledger.record_stored(4, 4);
//! ledger.finish(4); // the client sent 4 frames in all
//! let receipt = ledger.receipt();
//! assert_eq!(receipt.stored, 4);
//! assert!(receipt.is_settled() && receipt.is_complete());
//!
//! // A gap: frame 6 was stored, frame 5 was not. Nothing after frame 4 is acknowledged.
//! let ledger = Ledger::new();
//! ledger.record_stored(1, 4);
//! ledger.record_stored(6, 6);
//! let receipt = ledger.receipt();
//! assert_eq!((receipt.stored, receipt.lost), (4, true));
//! ```

use tokio::sync::watch;

/// What has become of one client's frames so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Receipt {
    /// The client's frames 1 to `stored` are committed to the database (and no other of
    /// its frames is).
    pub stored: u64,
    /// One of the client's frames will never be stored (the relay failed or was aborted
    /// with it on its way).
    pub lost: bool,
    /// Bytes the client sent did not become frames: an incomplete frame at the end of its
    /// connection, bad input, or bytes read as the connection was closing.
    pub discarded: bool,
    /// How many frames the connection passed on, once it has stopped reading.
    pub total: Option<u64>,
    /// Whether the frames are followed into the database (not for a relay without one:
    /// then `stored` stays 0 and reading to the end is all there is to wait for).
    pub tracked: bool,
}

impl Receipt {
    /// Nothing will change any more: the connection has stopped reading, and every frame it
    /// passed on is stored, or one never will be.
    pub fn is_settled(&self) -> bool {
        self.lost
            || self
                .total
                .is_some_and(|total| !self.tracked || self.stored >= total)
    }

    /// Everything the client sent is stored (or, untracked, was cut into frames): a clean
    /// close of its connection says so.
    pub fn is_complete(&self) -> bool {
        !self.lost
            && !self.discarded
            && self
                .total
                .is_some_and(|total| !self.tracked || self.stored == total)
    }
}

/// One client's [`Receipt`], shared by its connection and its frames, and watched by the
/// connection.
#[derive(Debug)]
pub struct Ledger {
    receipt: watch::Sender<Receipt>,
    /// The receipt's `tracked`, which never changes: read for every frame, without the
    /// watch's lock.
    tracked: bool,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledger {
    /// A ledger of a client that has sent nothing yet, whose frames are followed into the
    /// database.
    pub fn new() -> Self {
        Self::with(true)
    }

    /// A ledger for a relay without a database: it follows the reading only.
    pub fn untracked() -> Self {
        Self::with(false)
    }

    fn with(tracked: bool) -> Self {
        Self {
            receipt: watch::Sender::new(Receipt {
                tracked,
                ..Receipt::default()
            }),
            tracked,
        }
    }

    /// Whether the client's frames are followed into the database: only then do they
    /// carry the ledger.
    pub fn is_tracked(&self) -> bool {
        self.tracked
    }

    /// The receipt now.
    pub fn receipt(&self) -> Receipt {
        *self.receipt.borrow()
    }

    /// A receiver that sees every change of the receipt.
    pub fn watch(&self) -> watch::Receiver<Receipt> {
        self.receipt.subscribe()
    }

    /// The client's frames `first` to `last` (their numbers among its frames, from 1) were
    /// committed. Counted only if they follow the frames stored before: after a gap the
    /// count stays where it was, and the gap's frames are lost.
    pub fn record_stored(&self, first: u64, last: u64) {
        self.receipt.send_if_modified(|r| {
            if first == r.stored + 1 && last >= first {
                r.stored = last;
                true
            } else {
                let changed = !r.lost;
                r.lost = true;
                changed
            }
        });
    }

    /// One of the client's frames will never be stored.
    pub fn record_lost(&self) {
        self.receipt
            .send_if_modified(|r| !std::mem::replace(&mut r.lost, true));
    }

    /// Some of the client's bytes did not become frames.
    pub fn record_discarded(&self) {
        self.receipt
            .send_if_modified(|r| !std::mem::replace(&mut r.discarded, true));
    }

    /// The connection has stopped reading, after passing on `total` frames.
    pub fn finish(&self, total: u64) {
        self.receipt.send_modify(|r| r.total = Some(total));
    }

    /// The connection was torn down (the relay was aborted) after passing on `total`
    /// frames: whatever is stored, the client is not told all is well.
    pub fn abandon(&self, total: u64) {
        self.receipt.send_modify(|r| {
            r.total = Some(total);
            r.lost = true;
        });
    }
}
