//! The [`Thread`] trait the `#[taskthread]` macro implements, and the traits that wire
//! messages to handlers by type.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::reschedule::{Reschedule, TaskSpec};

/// The default capacity of a thread's DOWN queue and of its inbound (UP) queue.
///
/// A thread type can change it with `#[taskthread(capacity = N)]`, and a single child with
/// [`ChildOptions::capacity`](crate::ChildOptions::capacity).
pub const DEFAULT_CAPACITY: usize = 64;

/// A long-lived unit of state with its own serial event loop: a node of the tree.
///
/// Implemented by the [`#[taskthread]`](macro@crate::taskthread) attribute on an `impl`
/// block; the hidden methods are the generated wiring and are not meant to be written by
/// hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a thread",
    label = "`{Self}` has no `#[taskthread]` impl block",
    note = "a type becomes a thread through `#[taskthread]` on an `impl` block of it, which holds its handlers and hooks: `#[taskthread] impl {Self} {{ ... }}`"
)]
pub trait Thread: Send + Sized + 'static {
    /// The generated enum of DOWN messages (one variant per `#[down]` handler).
    type Down: Send + 'static;
    /// The type this thread sends UP to its parent (`#[taskthread(up = T)]`), or [`NoUp`].
    type Up: Send + 'static;
    /// The generated enum of events: UP messages from children and `#[stream]` items.
    type Event: Send + 'static;

    /// The type's name as written, e.g. `"TcpServer"`.
    const TYPE_NAME: &'static str;
    /// The default name of a thread of this type, e.g. `"tcp_server"`.
    const DEFAULT_NAME: &'static str;
    /// The types its `#[down]` handlers take, as written.
    const DOWN_TYPES: &'static [&'static str];
    /// The type it sends UP, as written, if it declares one.
    const UP_TYPE: Option<&'static str>;
    /// The capacity of its queues unless the parent says otherwise.
    const CAPACITY: usize = DEFAULT_CAPACITY;
    /// Its `#[rescheduling]` tasks, in declaration order.
    const TASKS: &'static [TaskSpec] = &[];

    #[doc(hidden)]
    fn __enter<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
    ) -> impl Future<Output = Result<()>> + Send + 'a;

    #[doc(hidden)]
    fn __exit<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
    ) -> impl Future<Output = Result<()>> + Send + 'a;

    #[doc(hidden)]
    fn __down<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
        msg: Self::Down,
    ) -> impl Future<Output = Result<()>> + Send + 'a;

    #[doc(hidden)]
    fn __event<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
        event: Self::Event,
    ) -> impl Future<Output = Result<()>> + Send + 'a;

    #[doc(hidden)]
    fn __exited<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
        from: ChildId,
        exit: ChildExit,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        // Logged at once, so the future holds nothing: it is part of every thread's task.
        let _ = from;
        crate::tree::log_exit(ctx.path(), &exit);
        std::future::ready(Ok(()))
    }

    #[doc(hidden)]
    fn __task<'a>(
        &'a mut self,
        ctx: &'a mut Ctx<Self>,
        task: usize,
    ) -> impl Future<Output = Result<Reschedule>> + Send + 'a;
}

/// `Self` has a `#[down]` handler for messages of type `M`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[down]` handler for `{M}`",
    label = "`{Self}` cannot receive `{M}`",
    note = "add `#[down] async fn name(&mut self, ctx: &mut Ctx<Self>, msg: {M}) -> Result<()>` to the `#[taskthread]` impl of `{Self}`"
)]
pub trait Accepts<M>: Thread {
    #[doc(hidden)]
    fn __wrap(msg: M) -> Self::Down;
    #[doc(hidden)]
    fn __unwrap(down: Self::Down) -> M;
}

/// `Self` has a `#[down]` handler for `Q` that returns a value, so `Q` can be
/// [asked](crate::ChildRef::ask).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[down]` handler for `{Q}` that returns a value",
    label = "`{Self}` cannot answer `{Q}`",
    note = "to ask, the handler must return the answer: `#[down] async fn name(&mut self, ctx: &mut Ctx<Self>, q: {Q}) -> Result<Answer>`"
)]
pub trait Asks<Q>: Accepts<Q> {
    /// The type of the answer.
    type Reply: Send + 'static;
    #[doc(hidden)]
    fn __wrap_ask(question: Q, reply: crate::__private::Reply<Self::Reply>) -> Self::Down;
}

/// `Self` has an `#[up]` handler for messages of type `U` from its children.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[up]` handler for `{U}`, the up type of the child it spawns",
    label = "the child sends `{U}` up, and `{Self}` has no handler for it",
    note = "add `#[up] async fn name(&mut self, ctx: &mut Ctx<Self>, from: ChildId, msg: {U}) -> Result<()>` to the `#[taskthread]` impl of `{Self}`"
)]
pub trait HandlesUp<U>: Thread {
    #[doc(hidden)]
    fn __wrap_up(from: ChildId, msg: U) -> Self::Event;
}

/// `Self` has a `#[stream]` handler for items of type `I` (from
/// [`Ctx::attach`], [`Ctx::spawn_task`] or [`Ctx::spawn_blocking`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `#[stream]` handler for `{I}`",
    label = "items of type `{I}` would have nowhere to go",
    note = "add `#[stream] async fn name(&mut self, ctx: &mut Ctx<Self>, item: {I}) -> Result<()>` to the `#[taskthread]` impl of `{Self}`"
)]
pub trait HandlesStream<I>: Thread {
    #[doc(hidden)]
    fn __wrap_item(item: I) -> Self::Event;
}

/// `Self` sends messages of type `M` up to its parent: `M` is the type it declares with
/// `#[taskthread(up = M)]`. The bound of [`Ctx::up`] and [`Ctx::try_up`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not send `{M}` up",
    label = "`{M}` is not the up type of `{Self}`",
    note = "a thread sends up the one type it declares: to send `{M}`, write `#[taskthread(up = {M})]` on the `#[taskthread]` impl of `{Self}`"
)]
pub trait SendsUp<M>: Thread {
    #[doc(hidden)]
    fn __into_up(msg: M) -> Self::Up;
}

// Through the generated event type rather than `Up = M`, so that a thread that declares no
// up type has no candidate impl: the compiler then reports the message's type instead of
// inferring `NoUp` and reporting a type mismatch.
#[diagnostic::do_not_recommend]
impl<T: Thread, M> SendsUp<M> for T
where
    T::Event: UpTo<M, Up = T::Up>,
{
    fn __into_up(msg: M) -> T::Up {
        <T::Event as UpTo<M>>::__up(msg)
    }
}

/// Implemented by the generated event type of a thread for the up type it declares.
#[doc(hidden)]
pub trait UpTo<M> {
    type Up;
    fn __up(msg: M) -> Self::Up;
}

/// The up type of a thread that sends nothing up. It has no values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoUp {}

impl<T: Thread> HandlesUp<NoUp> for T {
    fn __wrap_up(_from: ChildId, msg: NoUp) -> T::Event {
        match msg {}
    }
}

/// The identity of a thread, unique in the process for its lifetime.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId(u64);

impl ChildId {
    pub(crate) fn as_u64(self) -> u64 {
        self.0
    }

    #[cfg(test)]
    pub(crate) fn from_u64(n: u64) -> Self {
        Self(n)
    }

    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How a thread ended. Every thread ends exactly once with one of these.
#[derive(Debug)]
#[non_exhaustive]
pub enum Exit {
    /// It ended on its own: [`Ctx::stop`] or a task returning [`Reschedule::Stop`].
    Completed,
    /// It was stopped from outside (its parent, a handle, or Ctrl-C) and stopped gracefully.
    Stopped,
    /// A handler, hook or task returned an error.
    Failed(Error),
    /// A handler, hook or task panicked; the panic message.
    Panicked(String),
    /// Its stop took longer than its stop deadline (see
    /// [`ChildOptions::stop_deadline`](crate::ChildOptions::stop_deadline)), or the tree was
    /// aborted (a second Ctrl-C under [`run`](crate::run)): it and what remained of its
    /// subtree were cancelled without running their `exit` hooks.
    Aborted {
        /// Messages still queued in the aborted subtree, dropped unhandled: the DOWN
        /// messages of every aborted thread, and the UP messages and stream items queued
        /// for the thread that aborted (those queued for its descendants are not counted).
        /// An ask among them fails with [`AskError::NoReply`](crate::AskError::NoReply).
        dropped: usize,
    },
}

impl Exit {
    /// Whether it ended by an error, a panic or an abort.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::Failed(_) | Self::Panicked(_) | Self::Aborted { .. }
        )
    }

    /// Converts into a `Result`: `Ok` for [`Completed`](Self::Completed) and
    /// [`Stopped`](Self::Stopped), an error that says what happened otherwise.
    pub fn into_result(self) -> Result<()> {
        match self {
            Self::Completed | Self::Stopped => Ok(()),
            Self::Failed(e) => Err(e),
            other => Err(Error::msg(other.to_string())),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Completed => f.write_str("completed"),
            Self::Stopped => f.write_str("stopped"),
            Self::Failed(e) => write!(f, "failed: {e:#}"),
            Self::Panicked(m) => write!(f, "panicked: {m}"),
            Self::Aborted { dropped: 0 } => f.write_str("aborted"),
            Self::Aborted { dropped } => {
                write!(f, "aborted, {dropped} queued messages dropped")
            }
        }
    }
}

/// The report a parent receives, as an UP event, when one of its children ends.
///
/// Handle it with an `#[up]` handler taking `ChildExit`; without one, the exit is logged:
/// failures and panics at `ERROR`, aborts at `WARN`, completed and stopped at `DEBUG`.
#[non_exhaustive]
pub struct ChildExit {
    /// The child's id.
    pub id: ChildId,
    /// The child's path, built only if asked for.
    pub(crate) path: crate::tree::LazyPath,
    /// The child's type, e.g. `"TcpConnection"`.
    pub type_name: &'static str,
    /// How it ended.
    pub exit: Exit,
    /// Messages queued for it that it dropped unhandled: those still queued (or arriving)
    /// after it failed, those lost in an abort, and, for a supervised child ended for good
    /// between two lives (stopped during its backoff), what was queued for the next life.
    /// Zero after a graceful stop of a running thread, which handles everything queued.
    pub dropped: usize,
    /// A supervised child past its restart limit: the parent fails with it.
    pub(crate) escalated: bool,
}

impl ChildExit {
    /// Tells the framework's `ChildExit` from any other type of the same name: the
    /// generated code calls `<M>::__from_exit`, which finds this inherent function for
    /// `ChildExit` and [`NotChildExit`](crate::__private::NotChildExit)'s for every other type.
    #[doc(hidden)]
    #[allow(clippy::result_large_err)] // moved once per exit, never stored
    pub fn __from_exit(exit: ChildExit) -> Result<Self, ChildExit> {
        Ok(exit)
    }

    /// `true` here, `false` through [`NotChildExit`](crate::__private::NotChildExit) for
    /// every other type.
    #[doc(hidden)]
    pub const __IS_CHILD_EXIT: bool = true;

    /// The child's path in the tree, e.g. `master/tcp_server/conn-17`; [`name`](Self::name)
    /// is its last segment.
    pub fn path(&self) -> &str {
        self.path.get()
    }

    /// The child's name among its siblings.
    pub fn name(&self) -> &str {
        self.path.name()
    }
}

impl fmt::Debug for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildExit")
            .field("id", &self.id)
            .field("path", &self.path())
            .field("type_name", &self.type_name)
            .field("exit", &self.exit)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({}) {}", self.path(), self.type_name, self.exit)
    }
}
