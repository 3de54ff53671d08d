//! [`BackgroundHandle`]: driving a background tree from any thread, blocking or async.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::child::ChildRef;
use crate::error::TrySendError;
use crate::exit::ChildId;
use crate::node::TreeSnapshot;
use crate::reply::Reply;
use crate::thread::{Accepts, Asks, Thread};

use super::error::{BlockingError, RecvError};
use super::park;
use super::shared::{Shared, deadline_after, in_async_context};
use std::time::Instant;

/// The handle of a tree running on its own OS thread, from [`background`](super::background) or
/// [`Background::spawn`](super::Background::spawn): send, ask, receive UP messages, snapshot, stop and join, from
/// any thread and without an async context.
///
/// `Send + Sync + Clone`: every clone drives the same tree. Dropping the last clone stops
/// the tree gracefully (within its [stop deadline](super::Background::stop_deadline)) and joins
/// its OS thread; UP messages nobody received are then dropped.
///
/// The blocking methods refuse to run inside an async context (a tokio task, or
/// `block_on`), where blocking could stall a runtime or deadlock: they return an
/// `InAsyncContext` error at once. There, use the `_async` methods, which work on any
/// runtime. (tokio's blocking pool counts as an async context too: from a
/// `spawn_blocking` closure, use `Handle::current().block_on(handle.send_async(msg))`.)
pub struct BackgroundHandle<T: Thread> {
    pub(super) shared: Arc<Shared<T>>,
}

impl<T: Thread> Clone for BackgroundHandle<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: Thread> fmt::Debug for BackgroundHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundHandle")
            .field("root", &self.shared.child)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T: Thread> BackgroundHandle<T> {
    /// The root's address, for async code that sends to it.
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
    /// let addr = counter.child_ref();
    /// // Async code on another runtime sends through the address.
    /// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// runtime.block_on(addr.send(5u64)).unwrap();
    /// assert_eq!(counter.ask(Total).unwrap(), 5);
    /// ```
    pub fn child_ref(&self) -> ChildRef<T> {
        self.shared.child.clone()
    }

    /// The root's id.
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
    /// assert_eq!(counter.id(), counter.child_ref().id());
    /// assert_eq!(counter.id(), counter.snapshot().id);
    /// ```
    pub fn id(&self) -> ChildId {
        self.shared.child.id()
    }

    // ---- DOWN ---------------------------------------------------------------------------

    /// Sends a message DOWN to the root, blocking while its queue is full.
    ///
    /// # Errors
    /// [`Ended`](BlockingError::Ended) if the tree no longer accepts messages,
    /// [`InAsyncContext`](BlockingError::InAsyncContext) if called inside an async context;
    /// the message comes back in the error.
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
    /// counter.send(2u64).unwrap();
    /// counter.send(3u64).unwrap();
    /// assert_eq!(counter.ask(Total).unwrap(), 5);
    /// ```
    pub fn send<M>(&self, msg: M) -> Result<(), BlockingError<M>>
    where
        T: Accepts<M>,
    {
        self.send_until(msg, None)
    }

    /// [`send`](Self::send), giving up with [`Timeout`](BlockingError::Timeout) (and the
    /// message) if the queue is still full after `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// use taskthread::sync::{Background, BlockingError};
    /// # struct Total;
    /// # /// Its `enter` never returns, so it never takes a message.
    /// # struct SlowStart;
    /// # #[taskthread]
    /// # impl SlowStart {
    /// #     async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
    /// #         std::future::pending().await
    /// #     }
    /// #     #[down]
    /// #     async fn add(&mut self, _ctx: &mut Ctx<Self>, _n: u64) {}
    /// #     #[down]
    /// #     async fn total(&mut self, _ctx: &mut Ctx<Self>, _t: Total) -> Result<u64> { Ok(0) }
    /// # }
    ///
    /// // `SlowStart`'s `enter` never returns: it takes no message.
    /// let options = ChildOptions::new().capacity(1);
    /// let slow = Background::new().options(options).spawn(SlowStart).unwrap();
    /// slow.send(1u64).unwrap(); // fills the queue
    /// let refused = slow.send_timeout(2u64, Duration::from_millis(10));
    /// assert!(matches!(refused, Err(BlockingError::Timeout(2)))); // the message comes back
    /// # slow.abort().unwrap();
    /// ```
    pub fn send_timeout<M>(&self, msg: M, timeout: Duration) -> Result<(), BlockingError<M>>
    where
        T: Accepts<M>,
    {
        self.send_until(msg, deadline_after(timeout))
    }

    fn send_until<M>(&self, msg: M, deadline: Option<Instant>) -> Result<(), BlockingError<M>>
    where
        T: Accepts<M>,
    {
        if in_async_context() {
            return Err(BlockingError::InAsyncContext(msg));
        }
        // A permit first, the message after: a timeout never loses the message.
        match park::block_on(self.shared.child.node.queue.reserve(), deadline) {
            Some(Ok(permit)) => permit
                .send(T::__wrap(msg))
                .map_err(|down| BlockingError::Ended(T::__unwrap(down))),
            Some(Err(_)) => Err(BlockingError::Ended(msg)),
            None => Err(BlockingError::Timeout(msg)),
        }
    }

    /// Sends a message DOWN if the root's queue has room now. Never blocks, so it may be
    /// called from anywhere, async contexts included.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::TrySendError;
    /// use taskthread::prelude::*;
    /// use taskthread::sync::Background;
    /// # struct Total;
    /// # /// Its `enter` never returns, so it never takes a message.
    /// # struct SlowStart;
    /// # #[taskthread]
    /// # impl SlowStart {
    /// #     async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
    /// #         std::future::pending().await
    /// #     }
    /// #     #[down]
    /// #     async fn add(&mut self, _ctx: &mut Ctx<Self>, _n: u64) {}
    /// #     #[down]
    /// #     async fn total(&mut self, _ctx: &mut Ctx<Self>, _t: Total) -> Result<u64> { Ok(0) }
    /// # }
    ///
    /// // `SlowStart`'s `enter` never returns: it takes no message.
    /// let options = ChildOptions::new().capacity(1);
    /// let slow = Background::new().options(options).spawn(SlowStart).unwrap();
    /// assert!(slow.try_send(1u64).is_ok());
    /// assert!(matches!(slow.try_send(2u64), Err(TrySendError::Full(2))));
    /// # slow.abort().unwrap();
    /// ```
    pub fn try_send<M>(&self, msg: M) -> Result<(), TrySendError<M>>
    where
        T: Accepts<M>,
    {
        self.shared.child.try_send(msg)
    }

    /// Asks the root a question and blocks until the answer.
    ///
    /// # Errors
    /// [`Ended`](BlockingError::Ended) (with the question) if the tree no longer accepts
    /// messages, [`NoReply`](BlockingError::NoReply) if it ended before answering,
    /// [`InAsyncContext`](BlockingError::InAsyncContext) if called inside an async context.
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
    /// counter.send(7u64).unwrap();
    /// assert_eq!(counter.ask(Total).unwrap(), 7);
    /// ```
    pub fn ask<Q>(&self, question: Q) -> Result<T::Reply, BlockingError<Q>>
    where
        T: Asks<Q>,
    {
        self.ask_until(question, None)
    }

    /// [`ask`](Self::ask), giving up after `timeout`, counted from the call: with
    /// [`Timeout`](BlockingError::Timeout) and the question if the queue stayed full, with
    /// [`ReplyTimeout`](BlockingError::ReplyTimeout) if the question was delivered but not
    /// answered in time (the root still handles it; the answer is dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// use taskthread::sync::BlockingError;
    /// # struct Total;
    /// # /// Its `enter` never returns, so it never takes a message.
    /// # struct SlowStart;
    /// # #[taskthread]
    /// # impl SlowStart {
    /// #     async fn enter(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
    /// #         std::future::pending().await
    /// #     }
    /// #     #[down]
    /// #     async fn add(&mut self, _ctx: &mut Ctx<Self>, _n: u64) {}
    /// #     #[down]
    /// #     async fn total(&mut self, _ctx: &mut Ctx<Self>, _t: Total) -> Result<u64> { Ok(0) }
    /// # }
    ///
    /// // `SlowStart`'s `enter` never returns: it takes no message.
    /// let slow = taskthread::sync::background(SlowStart);
    /// let answer = slow.ask_timeout(Total, Duration::from_millis(10));
    /// assert!(matches!(answer, Err(BlockingError::ReplyTimeout))); // delivered, not answered
    /// # slow.abort().unwrap();
    /// ```
    pub fn ask_timeout<Q>(
        &self,
        question: Q,
        timeout: Duration,
    ) -> Result<T::Reply, BlockingError<Q>>
    where
        T: Asks<Q>,
    {
        self.ask_until(question, deadline_after(timeout))
    }

    fn ask_until<Q>(
        &self,
        question: Q,
        deadline: Option<Instant>,
    ) -> Result<T::Reply, BlockingError<Q>>
    where
        T: Asks<Q>,
    {
        if in_async_context() {
            return Err(BlockingError::InAsyncContext(question));
        }
        let permit = match park::block_on(self.shared.child.node.queue.reserve(), deadline) {
            Some(Ok(permit)) => permit,
            Some(Err(_)) => return Err(BlockingError::Ended(question)),
            None => return Err(BlockingError::Timeout(question)),
        };
        let (reply, answer) = Reply::pair();
        if let Err(down) = permit.send(T::__wrap_ask(question, reply)) {
            return Err(BlockingError::Ended(T::__unwrap(down)));
        }
        match park::block_on(answer, deadline) {
            Some(Ok(answer)) => Ok(answer),
            Some(Err(_)) => Err(BlockingError::NoReply),
            None => Err(BlockingError::ReplyTimeout),
        }
    }

    // ---- UP -----------------------------------------------------------------------------

    /// Blocks until the root sends a message UP.
    ///
    /// Clones share one stream of messages: each message goes to one receiver.
    ///
    /// # Errors
    /// [`Ended`](super::RecvError::Ended) once the tree has ended and every message it sent was
    /// received, [`InAsyncContext`](RecvError::InAsyncContext) if called inside an async
    /// context.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::sync::RecvError;
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
    /// assert_eq!(countdown.recv(), Ok(3));
    /// assert_eq!(countdown.recv(), Ok(2));
    /// assert_eq!(countdown.recv(), Ok(1));
    /// assert_eq!(countdown.recv(), Err(RecvError::Ended));
    /// ```
    pub fn recv(&self) -> Result<T::Up, RecvError> {
        self.recv_until(None)
    }

    /// [`recv`](Self::recv), giving up with [`Timeout`](RecvError::Timeout) after
    /// `timeout` (zero: take a message only if one is waiting).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskthread::prelude::*;
    /// use taskthread::sync::RecvError;
    /// # struct Hello;
    /// # #[taskthread(up = &'static str)]
    /// # impl Hello {
    /// #     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    /// #         ctx.up("hello").await?;
    /// #         Ok(())
    /// #     }
    /// # }
    ///
    /// // `Hello` sends one message UP, then waits.
    /// let hello = taskthread::sync::background(Hello);
    /// assert_eq!(hello.recv_timeout(Duration::from_secs(60)), Ok("hello"));
    /// assert_eq!(hello.recv_timeout(Duration::ZERO), Err(RecvError::Timeout));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T::Up, RecvError> {
        self.recv_until(deadline_after(timeout))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<T::Up, RecvError> {
        if in_async_context() {
            return Err(RecvError::InAsyncContext);
        }
        match park::block_on(self.recv_async(), deadline) {
            Some(Some(msg)) => Ok(msg),
            Some(None) => Err(RecvError::Ended),
            None => Err(RecvError::Timeout),
        }
    }

    // ---- the tree -----------------------------------------------------------------------

    /// A snapshot of the whole tree (after the end: the root, exited).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::ThreadState;
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
    /// counter.ask(Total).unwrap(); // answered: it is running
    /// assert_eq!(counter.snapshot().state, ThreadState::Running);
    /// let other = counter.clone();
    /// counter.stop_and_join().unwrap();
    /// assert_eq!(other.snapshot().state, ThreadState::Exited);
    /// ```
    pub fn snapshot(&self) -> TreeSnapshot {
        self.shared.child.snapshot()
    }

    /// Asks the tree to stop gracefully. Returns at once; [`join`](Self::join) waits for
    /// the end. UP messages the root sends while stopping can still be received.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Saver;
    ///
    /// #[taskthread(up = &'static str)]
    /// impl Saver {
    ///     async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.up("saved").await?; // cleanup runs on a graceful stop
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let saver = taskthread::sync::background(Saver);
    /// saver.stop();
    /// assert_eq!(saver.recv(), Ok("saved"));
    /// assert!(matches!(saver.join(), Ok(Exit::Stopped)));
    /// ```
    pub fn stop(&self) {
        self.shared.child.stop();
    }
}
