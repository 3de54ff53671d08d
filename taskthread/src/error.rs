//! Error types: the boxed [`Error`] handlers return, and the typed errors of sends and asks.

use std::error::Error as StdError;
use std::fmt;

use crate::wait::WaitCycle;

/// The result type of handlers and hooks: `Result<T, taskthread::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error a handler, hook or task can fail with.
///
/// Every `std::error::Error + Send + Sync + 'static` converts into it with `?`, so a handler
/// can mix I/O errors, parse errors and the framework's own send errors. Its `Display` is the
/// error's message; the alternate form (`{:#}`) also prints the chain of sources.
///
/// ```
/// use taskthread::Error;
///
/// let io = std::io::Error::new(std::io::ErrorKind::Other, "disk on fire");
/// let err = Error::from(io);
/// assert_eq!(err.to_string(), "disk on fire");
/// assert_eq!(Error::msg("bad frame").to_string(), "bad frame");
/// ```
pub struct Error {
    inner: Box<dyn StdError + Send + Sync + 'static>,
}

impl Error {
    /// Wraps any error.
    pub fn new<E: StdError + Send + Sync + 'static>(error: E) -> Self {
        Self {
            inner: Box::new(error),
        }
    }

    /// Wraps an already boxed error (such as `Box<dyn Error + Send + Sync>` from another
    /// library, which does not implement `std::error::Error` itself and so has no `From`).
    pub fn from_boxed(error: Box<dyn StdError + Send + Sync + 'static>) -> Self {
        Self { inner: error }
    }

    /// An error made of a message.
    pub fn msg<M: fmt::Display + fmt::Debug + Send + Sync + 'static>(message: M) -> Self {
        Self::new(MessageError(message))
    }

    /// The wrapped error, to inspect its sources or downcast it.
    pub fn as_std(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }

    /// Returns the wrapped error if it is an `E`.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.inner.downcast_ref::<E>()
    }

    /// The wrapped error followed by each of its sources, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &(dyn StdError + 'static)> {
        let first: &(dyn StdError + 'static) = &*self.inner;
        std::iter::successors(Some(first), |e: &&(dyn StdError + 'static)| (*e).source())
    }

    /// Unwraps the boxed error.
    pub fn into_inner(self) -> Box<dyn StdError + Send + Sync + 'static> {
        self.inner
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        Self::new(error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)?;
        if f.alternate() {
            for source in self.chain().skip(1) {
                write!(f, ": {source}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl AsRef<dyn StdError + Send + Sync + 'static> for Error {
    fn as_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }
}

struct MessageError<M>(M);

impl<M: fmt::Display> fmt::Display for MessageError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<M: fmt::Debug> fmt::Debug for MessageError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<M: fmt::Display + fmt::Debug> StdError for MessageError<M> {}

/// A [`send`](crate::ChildRef::send) (or [`up`](crate::Ctx::up)) that could not deliver its
/// message: the thread has ended (or stopped accepting messages), or waiting for room would
/// never end because the threads waited on wait back on the sender ([`cycle`](Self::cycle)).
/// The message comes back inside: nothing vanishes silently.
///
/// It converts into [`Error`] with `?` for any `Send` message, `Sync` or not.
pub struct SendError<M> {
    // A mutex makes the error `Sync` for any `M: Send`, so `?` can box it into `Error`
    // without asking every message type to be `Sync`. It is never locked: `into_inner`
    // and `message_mut` own or borrow it exclusively.
    message: std::sync::Mutex<M>,
    path: String,
    cycle: Option<WaitCycle>,
}

impl<M> SendError<M> {
    pub(crate) fn new(message: M, path: &str) -> Self {
        Self {
            message: std::sync::Mutex::new(message),
            path: path.to_owned(),
            cycle: None,
        }
    }

    /// A send whose wait for room failed: it would close `cycle`.
    pub(crate) fn cycle_of(message: M, path: &str, cycle: WaitCycle) -> Self {
        Self {
            cycle: Some(cycle),
            ..Self::new(message, path)
        }
    }

    /// The cycle of waits the send would have closed, if that is why it failed: the sender
    /// waited for room in a queue of a thread that waits (directly or through others) on
    /// the sender. `None` if the thread no longer accepts messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    ///
    /// struct Go;
    /// struct Chat;
    /// struct Report;
    /// struct Boss;
    /// struct Chatty;
    ///
    /// #[taskthread(up = u32)]
    /// impl Chatty {
    ///     #[down]
    ///     async fn chat(&mut self, ctx: &mut Ctx<Self>, _c: Chat) -> Result<()> {
    ///         ctx.up(1).await?; // takes the boss's one shared place
    ///         ctx.up(2).await?; // and chatty's own place
    ///         // The boss waits for our answer and cannot take them off: no room, ever.
    ///         let err = ctx.up(3).await.unwrap_err();
    ///         assert_eq!(err.cycle().unwrap().to_string(), "boss/chatty → boss → boss/chatty");
    ///         assert_eq!(err.into_inner(), 3); // the message comes back
    ///         Ok(())
    ///     }
    ///     #[down]
    ///     async fn report(&mut self, _ctx: &mut Ctx<Self>, _r: Report) -> Result<&'static str> {
    ///         Ok("done")
    ///     }
    /// }
    ///
    /// #[taskthread]
    /// impl Boss {
    ///     #[down]
    ///     async fn go(&mut self, ctx: &mut Ctx<Self>, _g: Go) -> Result<&'static str> {
    ///         let chatty = ctx.spawn(Chatty);
    ///         chatty.send(Chat).await?;
    ///         Ok(chatty.ask(Report).await?) // answered once chatty gives up its wait
    ///     }
    ///     #[up]
    ///     async fn heard(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _n: u32) {}
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let boss = taskthread::spawn_with(Boss, ChildOptions::new().capacity(1));
    /// assert_eq!(boss.ask(Go).await.unwrap(), "done");
    /// # }
    /// ```
    pub fn cycle(&self) -> Option<&WaitCycle> {
        self.cycle.as_ref()
    }

    /// The message that could not be delivered.
    pub fn message_mut(&mut self) -> &mut M {
        self.message
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the undelivered message back.
    pub fn into_inner(self) -> M {
        self.message
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The path in the tree of the thread the message was for.
    pub fn thread(&self) -> &str {
        &self.path
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cycle {
            None => write!(
                f,
                "cannot send to `{}`: it is no longer accepting messages (the message is returned in this error)",
                self.path
            ),
            Some(cycle) => write!(
                f,
                "cannot send to `{}`: waiting for room would never end, the threads wait on each other ({cycle}) (the message is returned in this error)",
                self.path
            ),
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("SendError");
        debug.field("thread", &self.path);
        if let Some(cycle) = &self.cycle {
            debug.field("cycle", cycle);
        }
        debug.finish_non_exhaustive()
    }
}

impl<M> StdError for SendError<M> {}

/// A [`try_send`](crate::ChildRef::try_send) that could not deliver at once. The message comes
/// back inside.
pub enum TrySendError<M> {
    /// The queue is full; the message may be sent later.
    Full(M),
    /// The thread has ended or stopped accepting messages.
    Ended(M),
}

impl<M> TrySendError<M> {
    /// Takes the undelivered message back.
    pub fn into_inner(self) -> M {
        match self {
            Self::Full(m) | Self::Ended(m) => m,
        }
    }

    /// Whether the queue was full (as opposed to the thread having ended).
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }
}

impl<M> fmt::Display for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("the queue is full (the message is returned in this error)"),
            Self::Ended(_) => f.write_str(
                "the thread is no longer accepting messages (the message is returned in this error)",
            ),
        }
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Ended(_) => f.write_str("Ended(..)"),
        }
    }
}

impl<M> StdError for TrySendError<M> {}

/// An [`ask`](crate::ChildRef::ask) that got no answer.
pub enum AskError<Q> {
    /// The thread is no longer accepting messages; the question comes back inside.
    Ended(Q),
    /// The question was delivered but the thread ended (failed, panicked or was aborted)
    /// before replying.
    NoReply,
    /// Waiting would never end: the thread asked waits (directly or through others) on the
    /// asker. The question comes back if the wait that failed was for room in the queue;
    /// once delivered (the wait for the answer failed), the thread still handles it, and
    /// its answer is dropped.
    Cycle {
        /// The threads waiting on each other, starting with the asker.
        cycle: WaitCycle,
        /// The question, if it was not delivered.
        question: Option<Q>,
    },
}

impl<Q> AskError<Q> {
    /// The undelivered question, if it was never delivered.
    pub fn into_inner(self) -> Option<Q> {
        match self {
            Self::Ended(q) => Some(q),
            Self::NoReply => None,
            Self::Cycle { question, .. } => question,
        }
    }

    /// The cycle of waits the ask would have closed, if that is why it failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::prelude::*;
    /// use taskthread::AskError;
    ///
    /// struct Me(ChildRef<Oracle>);
    /// struct Question;
    /// struct Oracle;
    ///
    /// #[taskthread]
    /// impl Oracle {
    ///     #[down]
    ///     async fn me(&mut self, _ctx: &mut Ctx<Self>, Me(me): Me) -> Result<String> {
    ///         // Only this thread answers, and it is busy waiting for the answer.
    ///         let err = me.ask(Question).await.unwrap_err();
    ///         assert!(matches!(err, AskError::Cycle { question: None, .. }));
    ///         Ok(err.cycle().unwrap().to_string())
    ///     }
    ///     #[down]
    ///     async fn question(&mut self, _ctx: &mut Ctx<Self>, _q: Question) -> Result<u32> {
    ///         Ok(42)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let oracle = taskthread::spawn(Oracle);
    /// assert_eq!(oracle.ask(Me(oracle.child_ref())).await.unwrap(), "oracle → oracle");
    /// # }
    /// ```
    pub fn cycle(&self) -> Option<&WaitCycle> {
        match self {
            Self::Cycle { cycle, .. } => Some(cycle),
            Self::Ended(_) | Self::NoReply => None,
        }
    }
}

impl<Q> fmt::Display for AskError<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ended(_) => f.write_str(
                "the thread is no longer accepting messages (the question is returned in this error)",
            ),
            Self::NoReply => {
                f.write_str("the thread ended before replying (its handler failed or it was aborted)")
            }
            Self::Cycle {
                cycle,
                question: Some(_),
            } => write!(
                f,
                "waiting for room to ask would never end, the threads wait on each other ({cycle}) (the question is returned in this error)"
            ),
            Self::Cycle {
                cycle,
                question: None,
            } => write!(
                f,
                "waiting for the answer would never end, the threads wait on each other ({cycle})"
            ),
        }
    }
}

impl<Q> fmt::Debug for AskError<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ended(_) => f.write_str("Ended(..)"),
            Self::NoReply => f.write_str("NoReply"),
            Self::Cycle { cycle, question } => f
                .debug_struct("Cycle")
                .field("cycle", cycle)
                .field("question", &question.as_ref().map(|_| ..))
                .finish(),
        }
    }
}

impl<Q> StdError for AskError<Q> {}

impl<M> From<SendError<M>> for AskError<M> {
    fn from(mut e: SendError<M>) -> Self {
        match e.cycle.take() {
            Some(cycle) => Self::Cycle {
                cycle,
                question: Some(e.into_inner()),
            },
            None => Self::Ended(e.into_inner()),
        }
    }
}
