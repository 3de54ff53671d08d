//! The `_async` methods of a [`BackgroundHandle`]: the same operations for code that runs
//! in an async context, on any runtime.

use crate::child::{AskFuture, SendFuture};
use crate::exit::Exit;
use crate::thread::{Accepts, Asks, Thread};

use super::error::JoinError;
use super::handle::BackgroundHandle;
use super::shared::Flow;

impl<T: Thread> BackgroundHandle<T> {
    /// Sends a message DOWN, waiting while the queue is full, from async code on any
    /// runtime (see [`ChildRef::send`](crate::ChildRef::send)).
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Counter` adds up the `u64`s it is sent and answers `Total` with the sum.
    /// let counter = taskthread::sync::background(Counter::default());
    /// counter.send_async(2u64).await.unwrap();
    /// assert_eq!(counter.ask_async(Total).await.unwrap(), 2);
    /// # counter.stop_and_join_async().await.unwrap();
    /// # }
    /// ```
    pub fn send_async<M>(&self, msg: M) -> SendFuture<'_, T, M>
    where
        T: Accepts<M>,
    {
        // The named future rather than an `async fn`: a message of a type the thread does
        // not handle is then reported once, at the call.
        self.shared.child.send(msg)
    }

    /// Asks the root a question from async code on any runtime (see [`ChildRef::ask`](crate::ChildRef::ask)).
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Counter` adds up the `u64`s it is sent and answers `Total` with the sum.
    /// let counter = taskthread::sync::background(Counter::default());
    /// counter.send_async(40u64).await.unwrap();
    /// counter.send_async(2u64).await.unwrap();
    /// assert_eq!(counter.ask_async(Total).await.unwrap(), 42);
    /// # counter.stop_and_join_async().await.unwrap();
    /// # }
    /// ```
    pub fn ask_async<Q>(&self, question: Q) -> AskFuture<'_, T, Q, T::Reply>
    where
        T: Asks<Q>,
    {
        // A named future, as `send_async`'s.
        self.shared.child.ask(question)
    }

    /// Receives the next message the root sent UP, from async code on any runtime; `None`
    /// once the tree has ended and every message was received.
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let countdown = taskthread::sync::background(Countdown);
    /// let mut heard = Vec::new();
    /// while let Some(n) = countdown.recv_async().await {
    ///     heard.push(n);
    /// }
    /// assert_eq!(heard, [3, 2, 1]);
    /// # }
    /// ```
    pub async fn recv_async(&self) -> Option<T::Up> {
        self.shared.up.lock().await.recv().await
    }

    /// [`join`](Self::join) from async code on any runtime.
    ///
    /// # Errors
    /// [`InsideTree`](JoinError::InsideTree) if called from the tree's own runtime, or from
    /// a thread of the tree placed on another (a task such a thread started with
    /// `spawn_task` is not detected, and waits until the tree is stopped);
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let countdown = taskthread::sync::background(Countdown);
    /// assert!(matches!(countdown.join_async().await, Ok(Exit::Completed)));
    /// # }
    /// ```
    pub async fn join_async(self) -> Result<Exit, JoinError> {
        if self.shared.joined_from_inside() {
            return Err(JoinError::InsideTree);
        }
        self.shared.request(Flow::Join);
        let mut finished = self.shared.finished.clone();
        let _ = finished.wait_for(|&done| done).await;
        self.shared.take_exit()
    }

    /// [`stop_and_join`](Self::stop_and_join) from async code on any runtime.
    ///
    /// # Errors
    /// As [`join_async`](Self::join_async). The stop is asked for first, so a refused join
    /// still stops the tree.
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Counter` adds up the `u64`s it is sent and answers `Total` with the sum.
    /// let counter = taskthread::sync::background(Counter::default());
    /// counter.send_async(1u64).await.unwrap();
    /// assert!(matches!(counter.stop_and_join_async().await, Ok(Exit::Stopped)));
    /// # }
    /// ```
    pub async fn stop_and_join_async(self) -> Result<Exit, JoinError> {
        self.stop();
        self.join_async().await
    }
}
