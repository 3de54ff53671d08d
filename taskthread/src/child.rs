//! Addresses of threads ([`ChildRef`]) and the options a thread is spawned with.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::down::{DownQueue, Sending};
use crate::error::{AskError, SendError, TrySendError};
use crate::thread::{Accepts, Asks, ChildId, Thread};
use crate::tree::{Node, ThreadState, TreeSnapshot};

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
    pub fn id(&self) -> ChildId {
        self.node.id
    }

    /// The thread's name among its siblings, e.g. `tcp_connection-3`.
    pub fn name(&self) -> &str {
        self.node.name()
    }

    /// The thread's path in the tree, e.g. `master/tcp_server/tcp_connection-3`.
    pub fn path(&self) -> &str {
        self.node.path()
    }

    /// Where the thread is in its lifecycle.
    pub fn state(&self) -> ThreadState {
        self.node.state()
    }

    /// Whether the thread has stopped accepting messages (it is stopping or has ended).
    pub fn is_closed(&self) -> bool {
        self.node.queue.is_closed()
    }

    /// Sends a message DOWN, waiting while the queue is full (backpressure).
    ///
    /// Fails, giving the message back, if the thread no longer accepts messages.
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
    pub fn ask<Q, R>(&self, question: Q) -> AskFuture<'_, T, Q, R>
    where
        T: Asks<Q, Reply = R>,
    {
        let (reply, answer) = oneshot::channel();
        let down = T::__wrap_ask(question, crate::__private::Reply(reply));
        AskFuture {
            sending: Some(self.node.queue.send(down)),
            answer,
            unwrap: T::__unwrap,
        }
    }

    /// Asks the thread to stop gracefully. Returns at once; the parent hears of the exit.
    ///
    /// Stopping a thread that is already stopping or has ended does nothing.
    pub fn stop(&self) {
        self.node.request_stop();
    }

    /// A snapshot of the thread's subtree.
    pub fn snapshot(&self) -> TreeSnapshot {
        self.node.snapshot()
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match Pin::new(&mut this.sending).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(down)) => Poll::Ready(Err(SendError::new(
                (this.unwrap)(down),
                this.child.node.path(),
            ))),
        }
    }
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
    /// The question on its way into the queue; `None` once it is queued.
    sending: Option<Sending<'a, T::Down>>,
    answer: oneshot::Receiver<R>,
    unwrap: fn(T::Down) -> Q,
}

impl<T: Thread, Q, R> Future for AskFuture<'_, T, Q, R> {
    type Output = Result<R, AskError<Q>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(sending) = &mut this.sending {
            match Pin::new(sending).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(down)) => {
                    this.sending = None;
                    return Poll::Ready(Err(AskError::Ended((this.unwrap)(down))));
                }
                Poll::Ready(Ok(())) => this.sending = None,
            }
        }
        Pin::new(&mut this.answer)
            .poll(cx)
            .map_err(|_| AskError::NoReply)
    }
}

impl<T: Thread, Q, R> fmt::Debug for AskFuture<'_, T, Q, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AskFuture")
            .field("queued", &self.sending.is_none())
            .finish_non_exhaustive()
    }
}

/// Options for spawning a thread: name, queue capacity, stop stage, stop deadline, blocking
/// limit.
///
/// ```
/// use taskthread::ChildOptions;
///
/// let options = ChildOptions::new().name("conn").capacity(16).stop_stage(0);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ChildOptions {
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) capacity: Option<usize>,
    pub(crate) stage: u32,
    pub(crate) stop_deadline: StopDeadline,
    pub(crate) blocking_limit: Option<usize>,
    /// Tell watchers each time a DOWN message has been handled (a worker pool's workers).
    pub(crate) reports_done: bool,
}

/// A thread's stop deadline as given in its options.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum StopDeadline {
    /// The parent's (for a root: [`DEFAULT_STOP_DEADLINE`]).
    #[default]
    Inherit,
    After(Duration),
    Never,
}

impl StopDeadline {
    pub(crate) fn resolve(self, inherited: Option<Duration>) -> Option<Duration> {
        match self {
            Self::Inherit => inherited,
            Self::After(d) => Some(d),
            Self::Never => None,
        }
    }
}

/// The stop deadline of a root unless its options say otherwise; children inherit their
/// parent's.
pub const DEFAULT_STOP_DEADLINE: Duration = Duration::from_secs(30);

impl ChildOptions {
    /// The defaults: the type's snake-case name, the type's capacity, stop stage 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The base name; siblings with the same name get a numeric suffix (`conn`, `conn-2`, ...).
    ///
    /// # Panics
    /// If the name is empty or contains `/` (the path separator).
    #[track_caller]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        assert!(
            !name.is_empty() && !name.contains('/'),
            "a thread name must be non-empty and must not contain `/`, got {name:?}"
        );
        self.name = Some(name);
        self
    }

    /// The capacity of the thread's DOWN queue and of its inbound queue.
    ///
    /// # Panics
    /// If `capacity` is 0: a queue must hold at least one message.
    #[track_caller]
    pub fn capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "a queue capacity must be at least 1");
        self.capacity = Some(capacity);
        self
    }

    /// The stage in which the parent stops this child. On a graceful stop, a parent stops its
    /// children stage by stage in ascending order, all children of one stage concurrently,
    /// waiting for every child of a stage to exit before stopping the next. All children are
    /// in stage 0 unless told otherwise, so by default they stop concurrently.
    pub fn stop_stage(mut self, stage: u32) -> Self {
        self.stage = stage;
        self
    }

    /// How long a stop of this thread may take, counted from when it first has to wait for
    /// something (a handler, a child, a job) after the stop began. Past it, the thread and
    /// what remains of its subtree are aborted — their tasks cancelled, their `exit` hooks not
    /// run — and the thread reports [`Exit::Aborted`](crate::Exit::Aborted) with the number
    /// of queued messages dropped.
    ///
    /// By default a child inherits its parent's deadline, and a root has
    /// [`DEFAULT_STOP_DEADLINE`] (30 s). A deadline of zero aborts at the first wait.
    pub fn stop_deadline(mut self, deadline: Duration) -> Self {
        self.stop_deadline = StopDeadline::After(deadline);
        self
    }

    /// No stop deadline: a stop waits as long as it takes. Children inherit this too.
    pub fn no_stop_deadline(mut self) -> Self {
        self.stop_deadline = StopDeadline::Never;
        self
    }

    /// How many [`spawn_blocking`](crate::Ctx::spawn_blocking) jobs of this thread run at
    /// once; more wait their turn, in order. By default
    /// [`DEFAULT_BLOCKING_LIMIT`](crate::DEFAULT_BLOCKING_LIMIT); not inherited by children.
    ///
    /// # Panics
    /// If `limit` is 0: no job could ever run.
    #[track_caller]
    pub fn blocking_limit(mut self, limit: usize) -> Self {
        assert!(limit > 0, "a blocking limit must be at least 1");
        self.blocking_limit = Some(limit);
        self
    }

    /// For a worker pool's workers: the node counts the DOWN messages it has finished
    /// handling and wakes whoever waits for a count.
    pub(crate) fn reporting_done(mut self) -> Self {
        self.reports_done = true;
        self
    }
}
