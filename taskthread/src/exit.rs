//! How threads end and are known: [`ChildId`], [`Exit`], the [`ChildExit`] and
//! [`ChildRestart`] reports a parent receives, and [`ThreadState`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::path::{LazyPath, Located};

/// The identity of a thread, unique in the process for its lifetime.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId(u64);

impl ChildId {
    pub(crate) fn as_u64(self) -> u64 {
        self.0
    }

    /// An id kept as its number (by a wait's mark).
    pub(crate) fn from_raw(n: u64) -> Self {
        Self(n)
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

/// Renders as `#` and the number, e.g. `#17`: the same in logs, in
/// [`ChildExit`]'s debug output and in the control endpoint's `stats`.
impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How a thread ended. Every thread ends exactly once with one of these.
#[derive(Debug)]
#[non_exhaustive]
pub enum Exit {
    /// It ended on its own: [`Ctx::stop`](crate::Ctx::stop) or a task returning
    /// [`Reschedule::Stop`](crate::Reschedule::Stop).
    Completed,
    /// It was stopped from outside (its parent, a handle, or Ctrl-C) and stopped gracefully.
    Stopped,
    /// A handler, hook or task returned an error.
    Failed(Error),
    /// A handler, hook or task panicked; the panic message.
    Panicked(String),
    /// Its stop took longer than its stop deadline (see
    /// [`ChildOptions::stop_deadline`](crate::ChildOptions::stop_deadline)), or the tree was
    /// aborted (a second Ctrl-C under [`run`](crate::run)), or the runtime its task ran on
    /// shut down under it (see [`ChildOptions::runtime`](crate::ChildOptions::runtime)): it
    /// and what remained of its subtree were cancelled without running their `exit` hooks.
    Aborted {
        /// Messages still queued in the aborted subtree, dropped unhandled: the DOWN
        /// messages of every aborted thread, and the UP messages and stream items queued
        /// for the thread that aborted (those queued for its descendants are not counted).
        /// A thread cancelled with its runtime counts the DOWN messages of its own queue.
        /// An ask among them fails with [`AskError::NoReply`](crate::AskError::NoReply).
        dropped: usize,
    },
    /// It ran elsewhere — a child whose work a [proxy](crate::proxy) carries to another
    /// process or machine — and contact with it was lost: no word of its end can come any
    /// more (the other side died, or the link stayed down past its limit). What it was
    /// doing when contact was lost is unknown. The reason, e.g. `no heartbeat from host
    /// "a" for 5s`.
    Lost(String),
}

impl Exit {
    /// Whether it ended by an error, a panic, an abort, or lost contact.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::Failed(_) | Self::Panicked(_) | Self::Aborted { .. } | Self::Lost(_)
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
                write!(f, "aborted, {} dropped", Count(*dropped, "queued message"))
            }
            Self::Lost(reason) => write!(f, "lost: {reason}"),
        }
    }
}

/// A count and what it counts, in the singular: renders `1 queued message`,
/// `2 queued messages`.
pub(crate) struct Count<'a>(pub(crate) usize, pub(crate) &'a str);

impl fmt::Display for Count<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(n, noun) = *self;
        write!(f, "{n} {noun}{}", if n == 1 { "" } else { "s" })
    }
}

/// The report a parent receives, as an UP event, when one of its children ends.
///
/// Handle it with an `#[up]` handler taking `ChildExit`; without one, the exit is logged:
/// failures, panics and lost children at `ERROR`, aborts at `WARN`, completed and stopped at `DEBUG`.
#[non_exhaustive]
pub struct ChildExit {
    /// The child's id.
    pub id: ChildId,
    /// Where the child's path is kept (its node), built only if asked for.
    pub(crate) at: Arc<dyn Located>,
    /// The child's type, e.g. `"TcpConnection"`.
    pub type_name: &'static str,
    /// How it ended.
    pub exit: Exit,
    /// Messages queued for it that it dropped unhandled: those still queued (or arriving)
    /// after it failed, those lost in an abort, UP messages and results from the children
    /// and tasks its `exit` hook started (no handler runs after the hook), and, for a
    /// supervised child ended for good between two lives (stopped during its backoff), what
    /// was queued for the next life. Zero after a graceful stop of a running thread whose
    /// `exit` hook started nothing, which handles everything queued.
    pub dropped: usize,
    /// Whether a supervised child ended for good past its restart limit (or because its
    /// factory panicked): [`exit`](Self::exit) is then the error that names it and its last
    /// failure, and once the parent's handler has seen it, the parent fails with it.
    pub escalated: bool,
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
        self.at.location().get()
    }

    /// The child's name among its siblings.
    pub fn name(&self) -> &str {
        self.at.location().name()
    }

    /// What the parent of an [escalated](Self::escalated) child fails with: a copy of
    /// [`exit`](Self::exit), which goes to the parent's handler.
    pub(crate) fn escalation(&self) -> Exit {
        match &self.exit {
            Exit::Failed(e) => Exit::Failed(Error::msg(format!("{e:#}"))),
            Exit::Panicked(message) => Exit::Panicked(message.clone()),
            other => Exit::Failed(Error::msg(other.to_string())),
        }
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
            .field("escalated", &self.escalated)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({}) {}", self.path(), self.type_name, self.exit)
    }
}

/// The report a parent receives, as an UP event, each time one of its supervised children
/// is started again (see [`Ctx::supervise`](crate::Ctx::supervise)): which life ended, how,
/// which message it failed on, and when the next life starts.
///
/// Handle it with an `#[up]` handler taking `ChildRestart`, as exits are handled; without
/// one, the restart is logged at `WARN`. The child stays among the parent's children: only
/// its final exit ([`ChildExit`]) removes it. Past its restart limit a child is not started
/// again: the parent hears of that as a [`ChildExit`] that is
/// [`escalated`](ChildExit::escalated).
///
/// ```
/// use std::time::Duration;
/// use taskthread::prelude::*;
/// use taskthread::supervise::RestartPolicy;
///
/// struct Job(u32);
///
/// #[derive(Default)]
/// struct Fragile;
///
/// #[taskthread]
/// impl Fragile {
///     #[down]
///     async fn job(&mut self, _ctx: &mut Ctx<Self>, job: Job) -> Result<()> {
///         if job.0 == 2 { Err(Error::msg("bad job")) } else { Ok(()) }
///     }
/// }
///
/// struct Boss;
///
/// #[taskthread(up = String)]
/// impl Boss {
///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         let policy = RestartPolicy::on_failure().backoff(Duration::ZERO, Duration::ZERO);
///         let fragile = ctx.supervise(|| Fragile, policy);
///         for n in 1..=3 {
///             fragile.send(Job(n)).await?;
///         }
///         Ok(())
///     }
///
///     #[up]
///     async fn restarted(&mut self, ctx: &mut Ctx<Self>, _from: ChildId, r: ChildRestart) -> Result<()> {
///         let failed = r.message.expect("a `#[down]` handler failed");
///         let report = format!("life {} {} on {}", r.life, r.exit, failed.type_name);
///         ctx.up(format!("{report} at position {}", failed.position)).await?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut boss = taskthread::spawn(Boss);
/// assert_eq!(boss.recv().await.unwrap(), "life 1 failed: bad job on Job at position 1");
/// # }
/// ```
#[non_exhaustive]
pub struct ChildRestart {
    /// The child's id, the same in every life.
    pub id: ChildId,
    /// The child's path, built only if asked for.
    pub(crate) path: LazyPath,
    /// The child's type, e.g. `"Database"`.
    pub type_name: &'static str,
    /// Which life ended: 1 for the first.
    pub life: u32,
    /// How it ended: a failure or a panic, a completion under
    /// [`Restart::Always`](crate::supervise::Restart::Always), or `Stopped` when its
    /// [restart group](crate::supervise::RestartGroup) restarted it.
    pub exit: Exit,
    /// The `#[down]` message whose handler failed or panicked and so ended the life, if
    /// one did (an asker of it gets [`AskError::NoReply`](crate::AskError::NoReply)).
    pub message: Option<FailedMessage>,
    /// The wait before the next life starts (zero for a restart asked by its group).
    pub backoff: Duration,
    /// How many more restarts its policy allows within the current window; one more failure
    /// past that ends the child for good and fails the parent.
    pub restarts_left: u32,
    /// Whether the restart was asked by its [restart group](crate::supervise::RestartGroup)
    /// (a sibling was restarted) rather than caused by its own end: such a restart waits for
    /// no backoff and does not count towards its limit.
    pub by_group: bool,
}

impl ChildRestart {
    /// Tells the framework's `ChildRestart` from any other type of the same name, as
    /// [`ChildExit::__from_exit`] does for exits, with
    /// [`NotChildRestart`](crate::__private::NotChildRestart) for every other type.
    #[doc(hidden)]
    #[allow(clippy::result_large_err)] // moved once per restart, never stored
    pub fn __from_restart(restart: ChildRestart) -> Result<Self, ChildRestart> {
        Ok(restart)
    }

    /// `true` here, `false` through [`NotChildRestart`](crate::__private::NotChildRestart)
    /// for every other type.
    #[doc(hidden)]
    pub const __IS_CHILD_RESTART: bool = true;

    /// The child's path in the tree, e.g. `master/db`; [`name`](Self::name) is its last
    /// segment.
    pub fn path(&self) -> &str {
        self.path.get()
    }

    /// The child's name among its siblings.
    pub fn name(&self) -> &str {
        self.path.name()
    }
}

impl fmt::Debug for ChildRestart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildRestart")
            .field("id", &self.id)
            .field("path", &self.path())
            .field("type_name", &self.type_name)
            .field("life", &self.life)
            .field("exit", &self.exit)
            .field("message", &self.message)
            .field("backoff", &self.backoff)
            .field("restarts_left", &self.restarts_left)
            .field("by_group", &self.by_group)
            .finish_non_exhaustive()
    }
}

/// Renders e.g. `` `app/db` (Database) life 2 failed: disk full, on `Query` after 2
/// messages: restarting in 200ms, 3 restarts left``.
impl fmt::Display for ChildRestart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` ({}) life {} {}",
            self.path(),
            self.type_name,
            self.life,
            self.exit
        )?;
        if let Some(message) = &self.message {
            write!(f, ", on {message}")?;
        }
        if self.by_group {
            f.write_str(": restarting with its group")
        } else {
            write!(
                f,
                ": restarting in {:?}, {} left",
                self.backoff,
                Count(self.restarts_left as usize, "restart")
            )
        }
    }
}

/// The DOWN message whose handler failed (or panicked), ending a supervised child's life:
/// see [`ChildRestart::message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedMessage {
    /// The message's type as its `#[down]` handler takes it, one of the thread's
    /// [`DOWN_TYPES`](crate::Thread::DOWN_TYPES), e.g. `"Query"`.
    pub type_name: &'static str,
    /// How many DOWN messages the life had taken before it: 0 for its first.
    pub position: u64,
}

/// Renders e.g. `` `Query` after 2 messages``.
impl fmt::Display for FailedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` after {}",
            self.type_name,
            Count(
                usize::try_from(self.position).unwrap_or(usize::MAX),
                "message"
            )
        )
    }
}

/// Where a thread is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadState {
    /// Running its `enter` hook.
    Starting,
    /// Handling messages and running tasks.
    Running,
    /// Stopping: draining its queue, stopping its children, running `exit`. Its queue no
    /// longer takes messages, unless it is a supervised thread whose life ends to be started
    /// again (its queue is kept for the next life).
    Stopping,
    /// A supervised thread between two lives: its last life has ended and it waits out the
    /// backoff before its supervisor starts the next. Its queue stays open: what is sent
    /// meanwhile waits for the next life.
    Restarting,
    /// Ended; its parent has been told.
    Exited,
}

impl ThreadState {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Starting,
            1 => Self::Running,
            2 => Self::Stopping,
            3 => Self::Restarting,
            _ => Self::Exited,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Restarting => "restarting",
            Self::Exited => "exited",
        }
    }
}

impl fmt::Display for ThreadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a child ended, as sent UP: the usual graceful ends fit in a word, so reporting them
/// allocates nothing; the parent adds what it knows of the child (path, type) itself.
pub(crate) enum ExitReport {
    Completed,
    Stopped,
    /// Anything else, or messages dropped, or a supervised child past its limit.
    Other(Box<OtherExit>),
}

/// The rare exits, boxed so they do not size every slot of the queue.
pub(crate) struct OtherExit {
    pub(crate) exit: Exit,
    pub(crate) dropped: usize,
    pub(crate) escalated: bool,
}

impl ExitReport {
    pub(crate) fn new(exit: Exit, dropped: usize, escalated: bool) -> Self {
        match exit {
            Exit::Completed if dropped == 0 && !escalated => Self::Completed,
            Exit::Stopped if dropped == 0 && !escalated => Self::Stopped,
            exit => Self::Other(Box::new(OtherExit {
                exit,
                dropped,
                escalated,
            })),
        }
    }

    /// Whether the report is a graceful end with nothing dropped: only
    /// [`report_exit`](crate::driver::report_exit) makes those, right after
    /// [`Node::release_at_end`](crate::node::Node::release_at_end), so a child whose parent
    /// keeps no handle of its task has dropped that handle already. The other reports come
    /// from there too, or from a task cancelled or unwinding, and the parent looks for the
    /// handle.
    #[inline]
    pub(crate) fn released_task(&self) -> bool {
        !matches!(self, Self::Other(_))
    }

    /// `(exit, dropped, escalated)`.
    pub(crate) fn into_parts(self) -> (Exit, usize, bool) {
        match self {
            Self::Completed => (Exit::Completed, 0, false),
            Self::Stopped => (Exit::Stopped, 0, false),
            Self::Other(other) => (other.exit, other.dropped, other.escalated),
        }
    }
}

/// The default handling of a child's restart: a warning.
pub(crate) fn log_restart(parent: &str, restart: &ChildRestart) {
    tracing::warn!(parent, child = %restart.path(), "child {restart}");
}

/// The default handling of a child's exit: a log line at a level fitting the exit.
pub(crate) fn log_exit(parent: &str, exit: &ChildExit) {
    match &exit.exit {
        Exit::Completed | Exit::Stopped => {
            tracing::debug!(parent, child = %exit.path(), "child {}", exit.exit);
        }
        Exit::Aborted { .. } => {
            tracing::warn!(parent, child = %exit.path(), "child {}", exit.exit);
        }
        Exit::Failed(e) => tracing::error!(parent, child = %exit.path(), "child failed: {e:#}"),
        Exit::Panicked(m) => tracing::error!(parent, child = %exit.path(), "child panicked: {m}"),
        Exit::Lost(reason) => tracing::error!(parent, child = %exit.path(), "child lost: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    /// A child's exit report is made straight into the parent's handler, whose future is
    /// part of every task of the parent's type: it keeps the child's node rather than a copy
    /// of its path, and must stay within 88 bytes.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_child_exit_stays_small() {
        let size = std::mem::size_of::<super::ChildExit>();
        assert!(size <= 88, "a ChildExit takes {size} bytes");
    }

    /// Only a graceful end with nothing dropped says the child's task handle is gone.
    #[test]
    fn only_graceful_reports_say_the_task_handle_is_released() {
        use super::{Exit, ExitReport};
        assert!(ExitReport::new(Exit::Completed, 0, false).released_task());
        assert!(ExitReport::new(Exit::Stopped, 0, false).released_task());
        assert!(!ExitReport::new(Exit::Completed, 1, false).released_task());
        assert!(!ExitReport::new(Exit::Stopped, 0, true).released_task());
        assert!(!ExitReport::new(Exit::Aborted { dropped: 0 }, 0, false).released_task());
        assert!(!ExitReport::new(Exit::Panicked("p".to_owned()), 0, false).released_task());
    }
}
