//! The errors of a [`BackgroundHandle`](super::BackgroundHandle)'s blocking calls.

use std::error::Error as StdError;
use std::fmt;

/// A blocking [`send`](super::BackgroundHandle::send) or
/// [`ask`](super::BackgroundHandle::ask) that did not go through. Whenever the message was
/// not delivered, it comes back inside: nothing vanishes silently.
pub enum BlockingError<M> {
    /// The call was made from inside an async context (a task or `block_on` of a tokio
    /// runtime), where blocking would stall the runtime or deadlock. Nothing was sent. Use
    /// the `_async` method of the handle there.
    InAsyncContext(M),
    /// The tree has ended, or its root is stopping and no longer accepts messages.
    Ended(M),
    /// The root's queue stayed full until the deadline; the message was not sent.
    Timeout(M),
    /// The question was delivered, but the root ended before replying (its handler
    /// failed or panicked, or the tree was aborted).
    NoReply,
    /// The question was delivered, but no answer came before the deadline. The answer, if
    /// it comes, is dropped.
    ReplyTimeout,
}

impl<M> BlockingError<M> {
    /// Takes the undelivered message back, if it was not delivered.
    pub fn into_inner(self) -> Option<M> {
        match self {
            Self::InAsyncContext(m) | Self::Ended(m) | Self::Timeout(m) => Some(m),
            Self::NoReply | Self::ReplyTimeout => None,
        }
    }

    /// Whether a deadline passed ([`Timeout`](Self::Timeout) or
    /// [`ReplyTimeout`](Self::ReplyTimeout)).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::ReplyTimeout)
    }
}

impl<M> fmt::Display for BlockingError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InAsyncContext(_) => {
                "a blocking call was made from inside an async context, where it could stall \
                 the runtime or deadlock; use the handle's `_async` method there (the message \
                 is returned in this error)"
            }
            Self::Ended(_) => {
                "the background tree has ended or is stopping and no longer accepts messages \
                 (the message is returned in this error)"
            }
            Self::Timeout(_) => {
                "the root's queue stayed full until the deadline (the message is returned in \
                 this error)"
            }
            Self::NoReply => {
                "the root ended before replying (its handler failed or panicked, or the tree \
                 was aborted)"
            }
            Self::ReplyTimeout => {
                "the question was delivered but no answer came before the deadline"
            }
        })
    }
}

impl<M> fmt::Debug for BlockingError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InAsyncContext(_) => "InAsyncContext(..)",
            Self::Ended(_) => "Ended(..)",
            Self::Timeout(_) => "Timeout(..)",
            Self::NoReply => "NoReply",
            Self::ReplyTimeout => "ReplyTimeout",
        })
    }
}

impl<M> StdError for BlockingError<M> {}

/// A blocking [`recv`](super::BackgroundHandle::recv) that got no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// The call was made from inside an async context, where blocking could deadlock; use
    /// [`recv_async`](super::BackgroundHandle::recv_async) there.
    InAsyncContext,
    /// No message came before the deadline.
    Timeout,
    /// The tree has ended and every message its root sent UP has been received.
    Ended,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InAsyncContext => {
                "a blocking receive was made from inside an async context, where it could stall \
                 the runtime or deadlock; use `recv_async` there"
            }
            Self::Timeout => "no message came UP from the root before the deadline",
            Self::Ended => {
                "the background tree has ended and every message it sent UP was received"
            }
        })
    }
}

impl StdError for RecvError {}

/// A [`join`](super::BackgroundHandle::join) that did not return the tree's exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// A blocking join was made from inside an async context, where it could deadlock; use
    /// [`join_async`](super::BackgroundHandle::join_async) there.
    InAsyncContext,
    /// The join was made from a thread of the very tree it joins, or from any task on the
    /// tree's own runtime: it would wait for itself forever. A task that a thread placed on
    /// another runtime started with `spawn_task` is not a thread and is not detected: such a
    /// join waits until the tree is stopped.
    InsideTree,
    /// The tree had not ended by the deadline. It goes on; join again, or
    /// [`abort`](super::BackgroundHandle::abort) it.
    Timeout,
    /// The tree has ended, and its exit was taken by an earlier join through another clone
    /// of the handle.
    AlreadyJoined,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InAsyncContext => {
                "a blocking join was made from inside an async context, where it could deadlock; \
                 use `join_async` there"
            }
            Self::InsideTree => {
                "a background tree was joined from one of its own threads: it would wait for \
                 itself forever; stop it and let its owner join it"
            }
            Self::Timeout => "the background tree had not ended by the deadline",
            Self::AlreadyJoined => {
                "the background tree has ended and its exit was taken by an earlier join"
            }
        })
    }
}

impl StdError for JoinError {}
