//! How a [`BackgroundHandle`]'s tree ends, seen from synchronous code: join it (with or
//! without a timeout), stop and join it, abort it.

use std::time::Duration;

use crate::exit::Exit;
use crate::thread::Thread;

use super::error::JoinError;
use super::handle::BackgroundHandle;
use super::park;
use super::shared::{Flow, deadline_after, in_async_context};
use std::time::Instant;

impl<T: Thread> BackgroundHandle<T> {
    /// Whether the tree has ended and its OS thread is done with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Total;
    /// # #[derive(Default)]
    /// # struct Counter { total: u64 }
    /// # #[taskthread]
    /// # impl Counter {
    /// #     #[down]
    /// #     async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) { self.total += n; }
    /// #     #[down]
    /// #     async fn total(&mut self, _ctx: &mut Ctx<Self>, _t: Total) -> Result<u64> { Ok(self.total) }
    /// # }
    ///
    /// // `Counter` adds up the `u64`s it is sent and answers `Total` with the sum.
    /// let counter = taskthread::sync::background(Counter::default());
    /// assert!(!counter.is_finished());
    /// counter.clone().stop_and_join().unwrap();
    /// assert!(counter.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        *self.shared.finished.borrow()
    }

    /// Blocks until the tree has ended (by itself, or after a [`stop`](Self::stop) from
    /// any clone) and returns how its root ended; its OS thread is then joined.
    ///
    /// While a join waits, UP messages that find the handles' buffer full are dropped (and
    /// counted in a warning) instead of holding up the root; those already buffered can
    /// still be received. To keep every message, [`stop`](Self::stop) and
    /// [`recv`](Self::recv) until [`Ended`](super::RecvError::Ended) before joining.
    ///
    /// # Errors
    /// [`InAsyncContext`](JoinError::InAsyncContext) inside an async context;
    /// [`AlreadyJoined`](JoinError::AlreadyJoined) if another clone took the exit first.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// /// Sends 3, 2, 1 UP, then ends.
    /// struct Countdown;
    ///
    /// #[taskthread(up = u32)]
    /// impl Countdown {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         for n in (1..=3).rev() {
    ///             ctx.up(n).await?;
    ///         }
    ///         ctx.stop();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let countdown = taskthread::sync::background(Countdown);
    /// let other = countdown.clone();
    /// assert!(matches!(countdown.join(), Ok(Exit::Completed))); // it ended by itself
    /// assert!(other.is_finished());
    /// ```
    pub fn join(self) -> Result<Exit, JoinError> {
        self.join_until(None)
    }

    /// [`join`](Self::join), giving up with [`Timeout`](JoinError::Timeout) after
    /// `timeout`; the tree goes on, and may be joined again or
    /// [aborted](Self::abort). As with `join`, from this call on UP messages that find the
    /// handles' buffer full are dropped rather than holding up the root.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// use taskthread::sync::JoinError;
    /// # struct Total;
    /// # #[derive(Default)]
    /// # struct Counter { total: u64 }
    /// # #[taskthread]
    /// # impl Counter {
    /// #     #[down]
    /// #     async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) { self.total += n; }
    /// #     #[down]
    /// #     async fn total(&mut self, _ctx: &mut Ctx<Self>, _t: Total) -> Result<u64> { Ok(self.total) }
    /// # }
    ///
    /// // `Counter` adds up the `u64`s it is sent and answers `Total` with the sum.
    /// let counter = taskthread::sync::background(Counter::default());
    /// // Nothing ends it: the wait gives up, and the tree goes on.
    /// assert_eq!(counter.join_timeout(Duration::from_millis(10)).unwrap_err(), JoinError::Timeout);
    /// counter.send(1u64).unwrap();
    /// assert!(matches!(counter.stop_and_join(), Ok(Exit::Stopped)));
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<Exit, JoinError> {
        self.join_until(deadline_after(timeout))
    }

    /// Stops the tree gracefully and blocks until it has ended: [`stop`](Self::stop)
    /// then [`join`](Self::join). The tree's [stop deadline](super::Background::stop_deadline)
    /// bounds the wait: past it, what remains is aborted and the exit says so.
    ///
    /// # Errors
    /// As [`join`](Self::join). The stop is asked for first, so a refused join still stops
    /// the tree.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Total;
    /// # #[derive(Default)]
    /// # struct Counter { total: u64 }
    /// # #[taskthread]
    /// # impl Counter {
    /// #     #[down]
    /// #     async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) { self.total += n; }
    /// #     #[down]
    /// #     async fn total(&mut self, _ctx: &mut Ctx<Self>, _t: Total) -> Result<u64> { Ok(self.total) }
    /// # }
    ///
    /// // `Counter` adds up the `u64`s it is sent and answers `Total` with the sum.
    /// let counter = taskthread::sync::background(Counter::default());
    /// counter.send(1u64).unwrap();
    /// assert!(matches!(counter.stop_and_join(), Ok(Exit::Stopped)));
    /// ```
    pub fn stop_and_join(self) -> Result<Exit, JoinError> {
        self.stop();
        self.join()
    }

    /// Stops the tree gracefully and blocks until it has ended, or for `deadline` at most:
    /// past it, what remains of the tree is aborted (see [`abort`](Self::abort)) and the
    /// exit is [`Exit::Aborted`]. For a deadline on every stop of the tree, including the
    /// one on dropping the last handle, see [`Background::stop_deadline`](super::Background::stop_deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// # struct Stuck;
    /// # #[taskthread]
    /// # impl Stuck {
    /// #     async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
    /// #         std::future::pending::<()>().await; // never finishes cleaning up
    /// #     }
    /// # }
    ///
    /// // `Stuck`'s `exit` hook never returns.
    /// let stuck = taskthread::sync::background(Stuck);
    /// let exit = stuck.stop_and_join_timeout(Duration::from_millis(10)).unwrap();
    /// assert!(matches!(exit, Exit::Aborted { .. }));
    /// ```
    pub fn stop_and_join_timeout(self, deadline: Duration) -> Result<Exit, JoinError> {
        self.stop();
        match self.join_timeout(deadline) {
            Err(JoinError::Timeout) => self.abort(),
            joined => joined,
        }
    }

    /// Aborts the tree at once (see [`Handle::abort`](crate::Handle::abort)) and blocks until it has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Stuck;
    /// # #[taskthread]
    /// # impl Stuck {
    /// #     async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
    /// #         std::future::pending::<()>().await; // never finishes cleaning up
    /// #     }
    /// # }
    ///
    /// // `Stuck`'s `exit` hook never returns.
    /// let stuck = taskthread::sync::background(Stuck);
    /// stuck.stop(); // would wait for `exit` until the stop deadline
    /// assert!(matches!(stuck.abort(), Ok(Exit::Aborted { .. })));
    /// ```
    pub fn abort(self) -> Result<Exit, JoinError> {
        if in_async_context() {
            return Err(JoinError::InAsyncContext);
        }
        self.shared.request(Flow::Abort);
        self.join_until(None)
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<Exit, JoinError> {
        if in_async_context() {
            return Err(JoinError::InAsyncContext);
        }
        self.shared.request(Flow::Join);
        let mut finished = self.shared.finished.clone();
        // An error means the thread is gone without saying so (it panicked): ended too.
        if park::block_on(finished.wait_for(|&done| done), deadline).is_none() {
            return Err(JoinError::Timeout);
        }
        self.shared.take_exit()
    }

    // ---- async --------------------------------------------------------------------------
}
