//! [`Settings`]: how often each side of an edge speaks, and how long a silence may last
//! before the edge is lost; the bounds of a remote child's queue capacity; and how many
//! remote children a host runs at once.

use std::time::Duration;

/// The queue capacity of a remote child whose options set none and whose type declares none
/// (`#[taskthread(capacity = N)]`); a local child's default is
/// [`taskthread::DEFAULT_CAPACITY`] (64).
///
/// The capacity is also the edge's window: a message's credit returns only once the child
/// has taken it on its host, a round trip later, so a remote child takes at most about
/// *capacity / round-trip time* messages a second. Across a NATS server on loopback a round
/// trip takes 100–250 µs; 1 024 keeps a child that takes small messages fast at that,
/// and costs memory only as messages actually queue. Set a capacity on
/// [`RemoteOptions::child`](crate::RemoteOptions::child) for a tighter bound.
pub const DEFAULT_REMOTE_CAPACITY: usize = 1024;

/// The largest queue capacity of a remote child: a larger one, set on its options or
/// declared by its type, is taken as this.
///
/// A host holds what a parent sends up to the child's capacity (queued for the thread, and
/// early frames waiting for a lost one before them), so it grants no parent more than this,
/// whatever the parent asks for. 65 536 places are 64 times the default's window.
pub const MAX_REMOTE_CAPACITY: usize = 65_536;

/// How many remote children a [`Host`](crate::Host) runs at once, for all its parents
/// together, unless set otherwise with
/// [`HostBuilder::max_remote_children`](crate::HostBuilder::max_remote_children).
///
/// Each remote child may make its host hold up to [`MAX_REMOTE_CAPACITY`] queued messages
/// and 16 MiB of frames that came early, besides its subtree, so this limit is what bounds
/// what parents, however many and however they behave, can make a host hold. At the
/// default that bound is far above most hosts' memory: 4 096 × 16 MiB = 64 GiB of early
/// frames, and 4 096 × 65 536 ≈ 268 million queued messages. 4 096 lets a host serve a
/// remote child for each of thousands of connections; where peers are not trusted, set a
/// limit whose worst case the host's memory holds, and a higher one where it serves more.
pub const DEFAULT_MAX_REMOTE_CHILDREN: usize = 4096;

/// The timing of the edges of a [`Remotes`](crate::Remotes) or a [`Host`](crate::Host).
///
/// A parent's settings hold for each of its remote children: the host follows the
/// heartbeat and the limit the parent asked for, up to [`MAX_HEARTBEAT`](Self::MAX_HEARTBEAT)
/// and [`MAX_LOST_AFTER`](Self::MAX_LOST_AFTER), which no parent can go past. A host's own
/// `lost_after` bounds how long it sends an exit nobody acks (see [`Host::stop`](crate::Host::stop)).
///
/// **When an edge is lost.** Each side pings an edge it has sent nothing on for a
/// `heartbeat`, and is answered at once. A side that has heard nothing at all on an edge for
/// `lost_after` takes the other side as gone: a parent then reports the child's exit as
/// [`Exit::Lost`](taskthread::Exit::Lost), a host stops the subtree it ran for that parent.
/// The silence is checked every `retransmit / 2`, so a host that dies is known lost at most
/// `lost_after + retransmit / 2` after the last frame it sent (5.1 s with the defaults).
///
/// ```
/// use std::time::Duration;
/// use taskthread_nats::Settings;
///
/// let settings = Settings::new()
///     .heartbeat(Duration::from_millis(500))
///     .lost_after(Duration::from_secs(2));
/// assert_eq!(settings.get_lost_after(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub(crate) heartbeat: Duration,
    pub(crate) lost_after: Duration,
    pub(crate) retransmit: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            lost_after: Duration::from_secs(5),
            retransmit: Duration::from_millis(200),
        }
    }
}

impl Settings {
    /// The longest heartbeat: a longer one is taken as this, and a host takes a longer one
    /// a parent asks for as this too.
    pub const MAX_HEARTBEAT: Duration = Duration::from_secs(60);

    /// The longest `lost_after`: a longer one is taken as this, and a host takes a longer one
    /// a parent asks for as this too, so that a host finds a parent that has gone quiet
    /// lost within five minutes whatever it asked for.
    pub const MAX_LOST_AFTER: Duration = Duration::from_secs(300);

    /// The defaults: a heartbeat every second, lost after 5 s of silence, unacked frames
    /// sent again after 200 ms.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long an edge may be quiet before a ping is sent on it; at most
    /// [`MAX_HEARTBEAT`](Self::MAX_HEARTBEAT), which a longer one is taken as.
    ///
    /// # Panics
    /// If `every` is zero.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        assert!(!every.is_zero(), "a heartbeat must be longer than zero");
        self.heartbeat = every.min(Self::MAX_HEARTBEAT);
        self
    }

    /// How long a silence of the other side makes an edge lost; at most
    /// [`MAX_LOST_AFTER`](Self::MAX_LOST_AFTER), which a longer one is taken as.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread_nats::Settings;
    ///
    /// let patient = Settings::new().lost_after(Duration::from_secs(24 * 3600));
    /// assert_eq!(patient.get_lost_after(), Settings::MAX_LOST_AFTER);
    /// ```
    ///
    /// # Panics
    /// If `after` is zero.
    pub fn lost_after(mut self, after: Duration) -> Self {
        assert!(!after.is_zero(), "`lost_after` must be longer than zero");
        self.lost_after = after.min(Self::MAX_LOST_AFTER);
        self
    }

    /// How long a reliable frame waits for its ack before it is sent again.
    ///
    /// # Panics
    /// If `after` is zero.
    pub fn retransmit(mut self, after: Duration) -> Self {
        assert!(!after.is_zero(), "`retransmit` must be longer than zero");
        self.retransmit = after;
        self
    }

    /// The heartbeat.
    pub fn get_heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// How long a silence makes an edge lost.
    pub fn get_lost_after(&self) -> Duration {
        self.lost_after
    }

    /// How long a frame waits for its ack before it is sent again.
    pub fn get_retransmit(&self) -> Duration {
        self.retransmit
    }
}
