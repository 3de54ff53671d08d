//! The relay's byte budget: how many bytes of frames it holds at once, whole or in part.
//!
//! A frame takes its size from the budget as soon as its length prefix has arrived, before
//! the relay reads the rest of it, and gives it back when its last copy is dropped: once
//! it is stored and every websocket destination has confirmed or dropped it. In between,
//! wherever the frame is (a decoder's buffer, a queue, the database's batch, a
//! destination's buffer), its bytes are counted once, however many copies share them.
//!
//! When the budget is spent, the next frame waits for room before its connection reads
//! on, so the relay stops reading from that socket and TCP slows the client down: nothing
//! is dropped, and the frames in memory never add up to more than the budget. Waiting
//! frames are served in arrival order, so a large frame is not starved by small ones.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use taskthread_examples::relay::budget::Budget;
//!
//! let budget = Budget::new(100);
//! let frame = budget.reserve(60).await;
//! assert_eq!(budget.in_use(), 60);
//! assert!(budget.try_reserve(50).is_none(), "only 40 bytes are left");
//! drop(frame);
//! assert_eq!(budget.in_use(), 0);
//! assert_eq!(budget.peak(), 60);
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// The default budget of `relay serve` and of the demo: 256 MiB of frame bytes.
pub const DEFAULT_MAX_BUFFERED: usize = 256 << 20;

/// A budget of bytes shared by the whole relay; clones share it.
#[derive(Clone)]
pub struct Budget(Arc<Inner>);

struct Inner {
    room: Semaphore,
    limit: usize,
    peak: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes.
    ///
    /// # Panics
    /// If `limit` is 0, or larger than tokio's semaphore can count (2^61 bytes).
    pub fn new(limit: usize) -> Self {
        assert!(limit > 0, "a byte budget must hold at least one byte");
        Self(Arc::new(Inner {
            room: Semaphore::new(limit),
            limit,
            peak: AtomicUsize::new(0),
        }))
    }

    /// The budget's size in bytes.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes held now.
    pub fn in_use(&self) -> usize {
        self.0.limit - self.0.room.available_permits()
    }

    /// The most bytes held at once so far.
    pub fn peak(&self) -> usize {
        self.0.peak.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget, waiting for room if need be; waiters are served in
    /// the order they came. A request larger than the whole budget is served as the whole
    /// budget (it could never be served otherwise).
    pub async fn reserve(&self, bytes: usize) -> Charge {
        let bytes = bytes.min(self.0.limit);
        // Held as it is taken: a reservation given up half-way gives back what it took.
        let mut charge = Charge {
            budget: Some(self.clone()),
            bytes: 0,
        };
        while charge.bytes < bytes {
            let n = u32::try_from(bytes - charge.bytes).unwrap_or(u32::MAX);
            let permits = self.0.room.acquire_many(n).await;
            permits
                .expect("the budget's semaphore is never closed")
                .forget();
            charge.bytes += n as usize;
        }
        self.note_peak();
        charge
    }

    /// Takes `bytes` from the budget if there is room now.
    pub fn try_reserve(&self, bytes: usize) -> Option<Charge> {
        let n = u32::try_from(bytes).ok()?;
        self.0.room.try_acquire_many(n).ok()?.forget();
        self.note_peak();
        Some(Charge {
            budget: Some(self.clone()),
            bytes,
        })
    }

    fn note_peak(&self) {
        self.0.peak.fetch_max(self.in_use(), Ordering::Relaxed);
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("limit", &self.limit())
            .field("in_use", &self.in_use())
            .finish()
    }
}

/// Bytes taken from a [`Budget`], given back when dropped.
#[derive(Default)]
pub struct Charge {
    budget: Option<Budget>,
    bytes: usize,
}

impl Charge {
    /// A charge on no budget: for frames made outside a relay's TCP side (tests,
    /// benchmarks).
    pub fn none() -> Self {
        Self::default()
    }

    /// How many bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget
            && self.bytes > 0
        {
            budget.0.room.add_permits(self.bytes);
        }
    }
}

impl fmt::Debug for Charge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Charge({} bytes)", self.bytes)
    }
}
