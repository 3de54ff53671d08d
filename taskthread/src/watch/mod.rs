//! Watching a running tree: a stream of one snapshot, then the changes of each sampling,
//! with the figures that say how the tree is doing — queues along the tree against their
//! capacity, messages handled per type with handler and queue-wait times, restart budgets,
//! how late periodic tasks run, pool utilisation, what each thread waits on, and how far a
//! stop has got and what holds it up.
//!
//! Opt-in: the `watch` feature (the `control` feature brings it). A [`Watcher`] samples a
//! [`Subtree`] every interval while a [`WatchStream`] of it is open; the control endpoint
//! serves the same stream to `taskthread-ctl watch` and `taskthread-ctl top`.
//!
//! ```
//! use std::time::Duration;
//! use taskthread::prelude::*;
//! use taskthread::watch::{WatchMessage, Watcher};
//!
//! #[derive(Default)]
//! struct Counter { n: u64 }
//!
//! #[taskthread]
//! impl Counter {
//!     #[down]
//!     async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
//!         self.n += n;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> taskthread::Result<()> {
//! let counter = taskthread::spawn(Counter::default());
//! let mut stream = Watcher::with_interval(&counter, Duration::from_millis(100)).subscribe();
//! assert!(matches!(stream.next().await, WatchMessage::Snapshot(_)));
//! for n in 0..10 {
//!     counter.send(n).await?;
//! }
//! let WatchMessage::Changes(changes) = stream.next().await else { unreachable!() };
//! let view = &changes.threads[0];
//! assert_eq!((view.path.as_str(), view.handled), ("counter", 10));
//! assert_eq!(view.messages[0].name, "u64");
//! # Ok(()) }
//! ```
//!
//! # What it costs
//!
//! Nothing is recorded while no stream is open: each place that would record first asks
//! whether anyone watches, one relaxed load of a counter nobody writes. While a stream is
//! open, every thread of the process (not only those of the watched subtree) counts what
//! it handles by kind and notes the handler running now. One message in a few is timed
//! (its handler, and a DOWN message's wait in the queue): one in 64 at first, then, for the
//! threads of the watched subtree, as many as make about 32 a sampling, at most one in
//! 1 024, so that a quiet thread has every message timed. Every run of a task is timed.
//! Events (spawns, stops, exits, failures, restarts) go to a ring of the last 1 024 in the
//! process. `docs/benchmarks.md` has the figures.
//!
//! # Reading the figures
//!
//! - Times are percentiles of the sampled messages since the watch began, each the top
//!   of a half-octave bucket (within about 20 % above the true value).
//! - Queue wait is timed for DOWN messages only.
//! - A handler shows as a wait ([`WaitKind::Handler`]) once it has been running across
//!   two samplings; its duration is known to the interval.
//! - A stopping thread waits on each child it is stopping ([`WaitKind::Child`], with the
//!   child as the target): following targets gives the chain that holds a stop up.
//! - A stop that began before the watch shows as [`StopStage::Unknown`], without its
//!   deadline.

mod hub;
mod sample;
pub(crate) mod series;
mod state;
mod subtree;
mod view;

#[cfg(feature = "web")]
pub(crate) use self::hub::Update;
pub use self::hub::{DEFAULT_INTERVAL, WatchStream, Watcher};
pub use self::sample::RECENT_EVENTS;
pub use self::state::{SequenceGap, WaitChain, WatchedTree};
pub use self::subtree::{Subtree, SubtreeRoot};
pub use self::view::{
    Changes, EventKind, Fill, LinkView, MessageKind, MessageView, PoolView, RestartBudget,
    Snapshot, StopStage, StopView, TaskView, ThreadView, Timing, WaitKind, WaitView, WatchEvent,
    WatchMessage,
};
