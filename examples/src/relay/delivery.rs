//! How far a frame has got on its way to the websocket destinations and into the
//! database: a counter and two flags per frame in flight, shared by the frame's copies, so
//! the relay's bookkeeping is as large as what is in flight and no larger. The same shared
//! state holds the frame's [`Origin`] and its bytes in the relay's
//! [`Budget`](super::budget::Budget) until its last copy is dropped.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::budget::Charge;
use super::receipt::Ledger;
use super::{Origin, RelayStats};

/// A frame's delivery to the websocket destinations, shared by every copy of the frame.
///
/// The websocket master [opens](Self::open) it for its destinations; each destination then
/// settles its share once, as [delivered](Self::delivered) or [lost](Self::lost). When the
/// last share is settled, the frame counts as forwarded in [`RelayStats`] if no
/// destination lost it; the first loss counts it as undelivered. A share still open when
/// the last copy of the frame is dropped (a thread that failed with frames in its queue)
/// counts as lost then: nothing vanishes uncounted.
///
/// A frame of a client with a [`Ledger`] is also [stored](Self::stored) once, by the
/// database; if its last copy is dropped before that, its client's ledger records a lost
/// frame.
///
/// ```
/// use std::sync::Arc;
/// use taskthread_examples::relay::RelayStats;
/// use taskthread_examples::relay::delivery::Delivery;
///
/// let stats = Arc::new(RelayStats::new());
/// let delivery = Delivery::new(Arc::clone(&stats));
/// delivery.open(2); // two destinations
/// delivery.delivered();
/// assert_eq!((stats.forwarded(), stats.frames_in_flight()), (0, 1));
/// delivery.delivered();
/// assert_eq!((stats.forwarded(), stats.frames_in_flight()), (1, 0));
/// ```
#[derive(Clone)]
pub struct Delivery(Arc<State>);

struct State {
    /// Where the frame comes from.
    origin: Origin,
    /// Destinations that have not settled their share yet.
    pending: AtomicUsize,
    /// Whether a destination lost the frame.
    lost: AtomicBool,
    /// Whether the database has committed the frame.
    stored: AtomicBool,
    /// The client's receipt, if the client is told what is stored.
    ledger: Option<Arc<Ledger>>,
    /// The frame's bytes in the relay's budget, given back with the last copy.
    _charge: Charge,
    stats: Arc<RelayStats>,
}

impl Delivery {
    /// The delivery of a frame of no known origin, not yet on its way, outside any budget
    /// or ledger.
    pub fn new(stats: Arc<RelayStats>) -> Self {
        let origin = Origin {
            id: 0,
            client: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            seq: 0,
        };
        Self::tracked(origin, stats, Charge::none(), None)
    }

    /// The delivery of a frame just received from `origin` that holds `charge` of the
    /// relay's budget and is recorded in its client's `ledger`.
    pub fn tracked(
        origin: Origin,
        stats: Arc<RelayStats>,
        charge: Charge,
        ledger: Option<Arc<Ledger>>,
    ) -> Self {
        Self(Arc::new(State {
            origin,
            pending: AtomicUsize::new(0),
            lost: AtomicBool::new(false),
            stored: AtomicBool::new(false),
            ledger,
            _charge: charge,
            stats,
        }))
    }

    /// Where the frame comes from.
    pub fn origin(&self) -> &Origin {
        &self.0.origin
    }

    /// Puts the frame on its way to `destinations` destinations, each of which must settle
    /// its share once. With none, the frame is forwarded at once.
    pub fn open(&self, destinations: usize) {
        self.0.stats.count_on_the_way();
        self.0.pending.store(destinations, Ordering::Release);
        if destinations == 0 {
            self.0.finish();
        }
    }

    /// A destination confirmed it has read the frame.
    pub fn delivered(&self) {
        self.0.stats.count_confirmed();
        self.settle(false);
    }

    /// A destination will never get the frame.
    pub fn lost(&self) {
        self.settle(true);
    }

    /// The database committed the frame. The caller records it in the client's
    /// [`ledger`](Self::ledger), once for a run of the client's frames.
    pub fn stored(&self) {
        self.0.stored.store(true, Ordering::Release);
    }

    /// The ledger of the frame's client, if it has one.
    pub fn ledger(&self) -> Option<&Arc<Ledger>> {
        self.0.ledger.as_ref()
    }

    fn settle(&self, lost: bool) {
        if lost {
            self.0.mark_lost();
        }
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.finish();
        }
    }
}

impl State {
    fn mark_lost(&self) {
        if !self.lost.swap(true, Ordering::AcqRel) {
            self.stats.count_undelivered();
        }
    }

    /// The last share is settled.
    fn finish(&self) {
        let forwarded = !self.lost.load(Ordering::Acquire);
        self.stats.count_settled(forwarded);
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(ledger) = &self.ledger
            && !*self.stored.get_mut()
        {
            ledger.record_lost();
        }
        let pending = *self.pending.get_mut();
        if pending > 0 {
            tracing::warn!(
                "a frame was dropped before {pending} destinations had it: counted as lost"
            );
            self.mark_lost();
            self.finish();
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("origin", &self.0.origin)
            .field("pending", &self.0.pending)
            .field("lost", &self.0.lost)
            .field("stored", &self.0.stored)
            .finish()
    }
}
