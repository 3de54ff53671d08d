//! Addresses of threads ([`ChildRef`]), the options a thread is spawned with
//! ([`ChildOptions`]), and a parent's view of its children ([`ChildInfo`],
//! [`Ctx::children`](crate::Ctx::children), [`Ctx::child`](crate::Ctx::child),
//! [`Ctx::broadcast`](crate::Ctx::broadcast)).

mod family;
mod options;

pub use family::{BroadcastFuture, ChildInfo};
pub use options::{ChildOptions, DEFAULT_STOP_DEADLINE};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::{AskError, SendError, TrySendError};
use crate::exit::{ChildId, ThreadState};
use crate::node::{ChildNode, Node, TreeSnapshot};
use crate::queue::DownQueue;
use crate::queue::down::Sending;
use crate::reply::{Answer, Reply};
use crate::thread::{Accepts, Asks, Thread};
use crate::wait::{WaitCycle, WaitKind};

/// The address of a running thread: send it messages, ask it questions, stop it.
///
/// Cheap to clone (one reference count: the thread's node, which holds its queue). It stays
/// valid after the thread ends: sends then fail and give the message back.
pub struct ChildRef<T: Thread> {
    pub(crate) node: Arc<Node<DownQueue<T::Down>>>,
}

impl<T: Thread> Clone for ChildRef<T> {
    fn clone(&self) -> Self {
        Self {
            node: Arc::clone(&self.node),
        }
    }
}

impl<T: Thread> fmt::Debug for ChildRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildRef")
            .field("id", &self.node.id)
            .field("path", self.node.path())
            .field("type", &T::TYPE_NAME)
            .finish()
    }
}

impl<T: Thread> ChildRef<T> {
    /// The thread's id.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Ping;
    /// # struct Echo;
    /// # #[taskthread]
    /// # impl Echo {
    /// #     #[down]
    /// #     async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<&'static str> { Ok("pong") }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Echo` answers a `Ping` with "pong".
    /// let one = taskthread::spawn(Echo).child_ref();
    /// let two = taskthread::spawn(Echo).child_ref();
    /// assert_eq!(one.id(), one.clone().id()); // clones address the same thread
    /// assert_ne!(one.id(), two.id()); // ids are unique in the process
    /// # }
    /// ```
    pub fn id(&self) -> ChildId {
        self.node.id
    }

    /// The thread's name among its siblings, e.g. `tcp_connection-3`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Conn;
    /// # #[taskthread] impl Conn {}
    ///
    /// struct Names;
    /// struct Server;
    ///
    /// #[taskthread]
    /// impl Server {
    ///     #[down]
    ///     async fn names(&mut self, ctx: &mut Ctx<Self>, _n: Names) -> Result<Vec<String>> {
    ///         let first = ctx.spawn(Conn);
    ///         let second = ctx.spawn(Conn);
    ///         Ok(vec![first.name().to_owned(), second.name().to_owned()])
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = taskthread::spawn(Server);
    /// assert_eq!(server.ask(Names).await.unwrap(), ["conn", "conn-2"]);
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        self.node.name()
    }

    /// The thread's path in the tree, e.g. `master/tcp_server/tcp_connection-3`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct TcpServer;
    /// # #[taskthread] impl TcpServer {}
    ///
    /// struct Start;
    /// struct Master;
    ///
    /// #[taskthread]
    /// impl Master {
    ///     #[down]
    ///     async fn start(&mut self, ctx: &mut Ctx<Self>, _s: Start) -> Result<String> {
    ///         let server = ctx.spawn(TcpServer);
    ///         Ok(server.path().to_owned())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let master = taskthread::spawn(Master);
    /// assert_eq!(master.ask(Start).await.unwrap(), "master/tcp_server");
    /// # }
    /// ```
    pub fn path(&self) -> &str {
        self.node.path()
    }

    /// Where the thread is in its lifecycle.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::ThreadState;
    /// # struct Ping;
    /// # struct Echo;
    /// # #[taskthread]
    /// # impl Echo {
    /// #     #[down]
    /// #     async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<&'static str> { Ok("pong") }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Echo` answers a `Ping` with "pong".
    /// let echo = taskthread::spawn(Echo);
    /// let child = echo.child_ref();
    /// echo.ask(Ping).await.unwrap(); // answered: it has started
    /// assert_eq!(child.state(), ThreadState::Running);
    /// echo.stop();
    /// echo.join().await;
    /// assert_eq!(child.state(), ThreadState::Exited);
    /// # }
    /// ```
    pub fn state(&self) -> ThreadState {
        self.node.state()
    }

    /// Whether the thread has stopped accepting messages: it is stopping for good or has
    /// ended.
    ///
    /// A supervised thread's queue stays open across its restarts — while a life that will
    /// be followed by another ends, while it is
    /// [`Restarting`](crate::ThreadState::Restarting), and into the next life — so what is
    /// sent meanwhile waits for the next life. It closes when the thread ends for good.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Ping;
    /// # struct Echo;
    /// # #[taskthread]
    /// # impl Echo {
    /// #     #[down]
    /// #     async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<&'static str> { Ok("pong") }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Echo` answers a `Ping` with "pong".
    /// let echo = taskthread::spawn(Echo);
    /// let child = echo.child_ref();
    /// assert!(!child.is_closed());
    /// echo.stop();
    /// echo.join().await;
    /// assert!(child.is_closed());
    /// assert!(child.send(Ping).await.is_err());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.node.queue.is_closed()
    }

    /// Sends a message DOWN, waiting while the queue is full (backpressure).
    ///
    /// The thread takes what is queued at once and gives the places back together, when it
    /// looks for more messages or waits: a send that finds the queue full may wait until the
    /// thread has handled, without waiting, the messages it took with the one whose place
    /// this send gets. Waiting senders get places in the order they came.
    ///
    /// Fails, giving the message back, if the thread no longer accepts messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Total;
    ///
    /// #[derive(Default)]
    /// struct Counter { total: u64 }
    ///
    /// #[taskthread]
    /// impl Counter {
    ///     #[down]
    ///     async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) {
    ///         self.total += n;
    ///     }
    /// #     #[down]
    /// #     async fn total(&mut self, _ctx: &mut Ctx<Self>, _t: Total) -> Result<u64> {
    /// #         Ok(self.total)
    /// #     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handle = taskthread::spawn(Counter::default());
    /// let counter = handle.child_ref();
    /// counter.send(2u64).await.unwrap();
    /// counter.send(3u64).await.unwrap();
    /// assert_eq!(counter.ask(Total).await.unwrap(), 5); // `Total` asks for the sum
    ///
    /// handle.stop();
    /// handle.join().await;
    /// let err = counter.send(4u64).await.unwrap_err(); // ended: the message comes back
    /// assert_eq!(err.into_inner(), 4);
    /// # }
    /// ```
    pub fn send<M>(&self, msg: M) -> SendFuture<'_, T, M>
    where
        T: Accepts<M>,
    {
        // A named future rather than an `async fn`: the bound is then checked once, at
        // the call, and not again by the future's type at the `.await`.
        SendFuture {
            child: self,
            sending: self.node.queue.send(T::__wrap(msg)),
            unwrap: T::__unwrap,
        }
    }

    /// Sends a message DOWN if there is room now, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::TrySendError;
    /// # struct Sink;
    /// # #[taskthread]
    /// # impl Sink {
    /// #     #[down]
    /// #     async fn take(&mut self, _ctx: &mut Ctx<Self>, _n: u32) {}
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Sink` takes `u32`s.
    /// // A queue of one, and the thread has not run yet.
    /// let sink = taskthread::spawn_with(Sink, ChildOptions::new().capacity(1)).child_ref();
    /// assert!(sink.try_send(1u32).is_ok());
    /// match sink.try_send(2u32) {
    ///     Err(TrySendError::Full(n)) => assert_eq!(n, 2), // the message comes back
    ///     other => panic!("expected a full queue, got {other:?}"),
    /// }
    /// # }
    /// ```
    pub fn try_send<M>(&self, msg: M) -> Result<(), TrySendError<M>>
    where
        T: Accepts<M>,
    {
        match self.node.queue.try_send(T::__wrap(msg)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(d)) => Err(TrySendError::Full(T::__unwrap(d))),
            Err(TrySendError::Ended(d)) => Err(TrySendError::Ended(T::__unwrap(d))),
        }
    }

    /// Sends a question DOWN and waits for the handler's answer.
    ///
    /// The handler for `Q` must return a value (`-> Result<Answer>`).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Double(u64);
    /// struct Calculator;
    ///
    /// #[taskthread]
    /// impl Calculator {
    ///     #[down]
    ///     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    ///         Ok(n * 2)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let calc = taskthread::spawn(Calculator).child_ref();
    /// assert_eq!(calc.ask(Double(21)).await.unwrap(), 42);
    /// # }
    /// ```
    pub fn ask<Q, R>(&self, question: Q) -> AskFuture<'_, T, Q, R>
    where
        T: Asks<Q, Reply = R>,
    {
        AskFuture {
            child: self,
            question: Some(question),
            sending: None,
            answer: None,
            wrap: T::__wrap_ask,
            unwrap: T::__unwrap,
            waiter: NOT_BLOCKED,
        }
    }

    /// Asks the thread to stop gracefully. Returns at once; the parent hears of the exit.
    ///
    /// The thread takes the stop at its loop's next turn; until then it still accepts
    /// messages, and it handles every message it accepted before it ends. Stopping a thread
    /// that is already stopping or has ended does nothing. A supervised thread stopped while
    /// it waits out its backoff between two lives starts no further life: what was queued
    /// for it is dropped and counted in [`ChildExit::dropped`](crate::ChildExit::dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Ping;
    /// # struct Echo;
    /// # #[taskthread]
    /// # impl Echo {
    /// #     #[down]
    /// #     async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<&'static str> { Ok("pong") }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Echo` answers a `Ping` with "pong".
    /// let echo = taskthread::spawn(Echo);
    /// let child = echo.child_ref();
    /// child.stop();
    /// child.stop(); // already stopping: nothing more happens
    /// assert!(matches!(echo.join().await, Exit::Stopped));
    /// # }
    /// ```
    pub fn stop(&self) {
        self.node.request_stop();
    }

    /// A snapshot of the thread's subtree.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// # struct Ping;
    /// # struct Echo;
    /// # #[taskthread]
    /// # impl Echo {
    /// #     #[down]
    /// #     async fn ping(&mut self, _ctx: &mut Ctx<Self>, _p: Ping) -> Result<&'static str> { Ok("pong") }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Echo` answers a `Ping` with "pong".
    /// let echo = taskthread::spawn(Echo);
    /// echo.ask(Ping).await.unwrap();
    /// let snapshot = echo.child_ref().snapshot();
    /// assert_eq!(snapshot.type_name, "Echo");
    /// assert_eq!(snapshot.down_types, ["Ping"]);
    /// assert_eq!(snapshot.path, "echo");
    /// # }
    /// ```
    pub fn snapshot(&self) -> TreeSnapshot {
        self.node.snapshot()
    }
}

impl<T: Thread> ChildRef<T> {
    /// The address of a child if it is a `T`.
    pub(crate) fn downcast(child: Arc<dyn ChildNode>) -> Option<Self> {
        let node = child
            .into_any()
            .downcast::<Node<DownQueue<T::Down>>>()
            .ok()?;
        Some(Self { node })
    }
}

/// The future of [`ChildRef::send`] (and [`Handle::send`](crate::Handle::send)): resolves
/// once the message is queued, or gives it back in the error if the thread no longer
/// accepts messages.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct SendFuture<'a, T: Thread, M> {
    child: &'a ChildRef<T>,
    sending: Sending<'a, T::Down>,
    unwrap: fn(T::Down) -> M,
}

impl<T: Thread, M> Future for SendFuture<'_, T, M> {
    type Output = Result<(), SendError<M>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match Pin::new(&mut this.sending).poll(cx) {
            Poll::Pending => this.waiting(),
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(down)) => Poll::Ready(Err(SendError::new(
                (this.unwrap)(down),
                this.child.node.path(),
            ))),
        }
    }
}

impl<T: Thread, M> SendFuture<'_, T, M> {
    /// The send waits for room: it reports that it blocked, or takes the verdict on it (see
    /// `node::settle`).
    #[inline(never)]
    fn waiting(&mut self) -> Poll<Result<(), SendError<M>>> {
        let node = &self.child.node;
        let Some(cycle) = room_verdict(&mut self.sending, node) else {
            return Poll::Pending;
        };
        match self.sending.take_back() {
            Some(down) => Poll::Ready(Err(SendError::cycle_of(
                (self.unwrap)(down),
                node.path(),
                cycle,
            ))),
            None => unreachable!("a send polled after it finished"),
        }
    }
}

/// For a send waiting for room in `node`'s queue: reports the wait if it has just begun;
/// the cycle it would close if the verdict on it says so.
fn room_verdict<D: Send + 'static>(
    sending: &mut Sending<'_, D>,
    node: &Arc<Node<DownQueue<D>>>,
) -> Option<WaitCycle> {
    if let Some(ticket) = sending.newly_blocked() {
        crate::node::report(|| Arc::clone(node) as Arc<Node>, WaitKind::Down, ticket);
        return None;
    }
    let ticket = sending.blocked_ticket()?;
    crate::node::verdict(node.id, WaitKind::Down, ticket)?.cycle
}

impl<T: Thread, M> fmt::Debug for SendFuture<'_, T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture")
            .field("to", &self.child.node.path())
            .finish_non_exhaustive()
    }
}

/// The future of [`ChildRef::ask`] (and [`Handle::ask`](crate::Handle::ask)): resolves to
/// the answer `R` of the handler.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct AskFuture<'a, T: Thread, Q, R> {
    child: &'a ChildRef<T>,
    /// The question until the first poll, which sends it with a reply slot that already
    /// holds the asker's waker.
    question: Option<Q>,
    /// The question on its way into the queue; `None` before the first poll and once it
    /// is queued.
    sending: Option<Sending<'a, T::Down>>,
    /// `None` before the first poll.
    answer: Option<Answer<R>>,
    wrap: fn(Q, Reply<R>) -> T::Down,
    unwrap: fn(T::Down) -> Q,
    /// The wait for the answer: [`NOT_BLOCKED`], [`REPORTED`], or the id of the thread
    /// that waits, marked in the asked thread's node until the answer comes.
    waiter: u64,
}

/// An [`AskFuture`] has not waited for its answer.
const NOT_BLOCKED: u64 = 0;
/// An [`AskFuture`] reported that it waits for its answer (see `node::settle`).
const REPORTED: u64 = u64::MAX;

// The question is only moved, never pinned.
impl<T: Thread, Q, R> Unpin for AskFuture<'_, T, Q, R> {}

impl<T: Thread, Q, R> Future for AskFuture<'_, T, Q, R> {
    type Output = Result<R, AskError<Q>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(question) = this.question.take() {
            // The reply slot is made holding this task's waker, so the answer wakes it
            // from the moment the question is queued: once it is, there is nothing to look
            // at before the answer comes.
            let (reply, answer) = Reply::pair_waiting(cx.waker());
            this.answer = Some(answer);
            let mut sending = this.child.node.queue.send((this.wrap)(question, reply));
            match Pin::new(&mut sending).poll(cx) {
                Poll::Ready(Ok(())) => return this.waiting_for_answer(),
                Poll::Ready(Err(down)) => {
                    return Poll::Ready(Err(AskError::Ended((this.unwrap)(down))));
                }
                Poll::Pending => {
                    this.sending = Some(sending);
                    return this.waiting_for_room();
                }
            }
        }
        if let Some(sending) = &mut this.sending {
            match Pin::new(&mut *sending).poll(cx) {
                Poll::Pending => return this.waiting_for_room(),
                Poll::Ready(Err(down)) => {
                    this.sending = None;
                    return Poll::Ready(Err(AskError::Ended((this.unwrap)(down))));
                }
                Poll::Ready(Ok(())) => this.sending = None,
            }
        }
        let Some(answer) = &mut this.answer else {
            unreachable!("an ask has its answer slot from its first poll")
        };
        match Pin::new(answer).poll(cx) {
            Poll::Ready(answer) => {
                if this.waiter != NOT_BLOCKED {
                    this.answered();
                }
                Poll::Ready(answer.map_err(|_| AskError::NoReply))
            }
            Poll::Pending => this.waiting_for_answer(),
        }
    }
}

impl<T: Thread, Q, R> AskFuture<'_, T, Q, R> {
    /// The question waits for room: see [`SendFuture`]'s wait.
    #[inline(never)]
    fn waiting_for_room(&mut self) -> Poll<Result<R, AskError<Q>>> {
        let Some(sending) = &mut self.sending else {
            unreachable!("an ask waits for room with its question")
        };
        let Some(cycle) = room_verdict(sending, &self.child.node) else {
            return Poll::Pending;
        };
        let question = sending.take_back().map(self.unwrap);
        self.sending = None;
        Poll::Ready(Err(AskError::Cycle { cycle, question }))
    }

    /// The answer has not come: the first time, report the wait; the next, take the
    /// verdict: fail if the wait closes a cycle, else confirm the mark made for it.
    #[inline(never)]
    fn waiting_for_answer(&mut self) -> Poll<Result<R, AskError<Q>>> {
        let node = &self.child.node;
        match self.waiter {
            // Outside a thread's task (`main`, a `block_on`, a plain tokio task), nothing in
            // the tree can wait on the asker: the ask is not marked, and its answer has no
            // mark to take away.
            NOT_BLOCKED
                if crate::node::report(|| Arc::clone(node) as Arc<Node>, WaitKind::Answer, 0) =>
            {
                self.waiter = REPORTED;
            }
            REPORTED => {
                if let Some(verdict) = crate::node::verdict(node.id, WaitKind::Answer, 0) {
                    if let Some(cycle) = verdict.cycle {
                        node.unmark_awaited(verdict.me);
                        self.waiter = NOT_BLOCKED;
                        return Poll::Ready(Err(AskError::Cycle {
                            cycle,
                            question: None,
                        }));
                    }
                    if node.confirm_awaited(verdict.me) {
                        self.waiter = verdict.me.as_u64();
                    }
                }
            }
            // Confirmed: the asked thread may have started to wait on the asker before the
            // mark counted (see `node::settle`).
            waiter if waiter != NOT_BLOCKED => {
                if let Some(verdict) =
                    crate::node::verdict(node.id, WaitKind::Answer, crate::node::CONFIRMED)
                    && let Some(cycle) = verdict.cycle
                {
                    node.unmark_awaited(verdict.me);
                    self.waiter = NOT_BLOCKED;
                    return Poll::Ready(Err(AskError::Cycle {
                        cycle,
                        question: None,
                    }));
                }
            }
            _ => {}
        }
        Poll::Pending
    }

    /// The answer came: the mark made for the wait goes.
    #[inline(never)]
    fn answered(&mut self) {
        let node = &self.child.node;
        if self.waiter == REPORTED {
            if let Some(verdict) = crate::node::verdict(node.id, WaitKind::Answer, 0) {
                node.unmark_awaited(verdict.me);
            }
        } else {
            node.unmark_awaited(ChildId::from_raw(self.waiter));
        }
        self.waiter = NOT_BLOCKED;
    }
}

impl<T: Thread, Q, R> Drop for AskFuture<'_, T, Q, R> {
    fn drop(&mut self) {
        // Given up while waiting for the answer.
        if self.waiter != NOT_BLOCKED && self.waiter != REPORTED {
            self.child
                .node
                .unmark_awaited(ChildId::from_raw(self.waiter));
        }
    }
}

impl<T: Thread, Q, R> fmt::Debug for AskFuture<'_, T, Q, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AskFuture")
            .field(
                "queued",
                &(self.question.is_none() && self.sending.is_none()),
            )
            .finish_non_exhaustive()
    }
}
