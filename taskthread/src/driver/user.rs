//! Running user code — a handler, a hook or a task run — so that its error or panic ends
//! the thread, and so that the thread still reacts to a stop (and to its stop deadline)
//! while the code awaits.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Sleep;

use super::KeepQueue;
use crate::error::Result;
use crate::exit::{Exit, ThreadState};
use crate::node::{DownReceiver, Node, has_report, settle};
use crate::record::recording;

/// The message of a panic: its payload if a string. Borrows the payload, for the caller to
/// drop where it may.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Polls user code once, turning its error or panic into the exit it causes.
///
/// Pending, the code waits: the places of the messages handed out of the DOWN queue's
/// batch are given back first and promised to the senders waiting for them, so that no
/// sender (this thread's own code among them) is kept waiting while this thread waits, and
/// a wait that has just blocked is judged with them promised.
#[inline]
fn poll_user<R, D: Send + 'static>(
    mut fut: Pin<&mut impl Future<Output = Result<R>>>,
    down: &mut DownReceiver<D>,
    cx: &mut Context<'_>,
) -> Poll<Result<R, Box<Exit>>> {
    let polled = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
    if let Ok(Poll::Pending) = polled {
        down.give_back();
        if has_report() {
            return poll_user_blocked(fut, down.node(), cx);
        }
    }
    if !matches!(polled, Ok(Poll::Pending)) {
        down.node().after_handler();
    }
    exit_of(polled)
}

/// A wait of the user code has just blocked: see whether it could ever end (see
/// `node::settle`), and poll again at once if it has a verdict to take.
#[inline(never)]
fn poll_user_blocked<R>(
    mut fut: Pin<&mut impl Future<Output = Result<R>>>,
    node: &Node,
    cx: &mut Context<'_>,
) -> Poll<Result<R, Box<Exit>>> {
    let polled = settle(
        node,
        || catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))),
        |polled| matches!(polled, Ok(Poll::Pending)),
    )
    .unwrap_or(Ok(Poll::Pending));
    if !matches!(polled, Ok(Poll::Pending)) {
        node.after_handler();
    }
    exit_of(polled)
}

/// The outcome of a poll of user code: its error or panic is the exit it causes.
///
/// The exit is boxed: an outcome so stays within two registers for the common results
/// (none, or a task's [`Reschedule`](crate::Reschedule)), returned in them rather than
/// through memory the loop reads back at once after every handler and task run.
#[inline]
fn exit_of<R>(polled: std::thread::Result<Poll<Result<R>>>) -> Poll<Result<R, Box<Exit>>> {
    match polled {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(Ok(r))) => Poll::Ready(Ok(r)),
        Ok(Poll::Ready(Err(e))) => Poll::Ready(Err(Box::new(Exit::Failed(e)))),
        Err(payload) => Poll::Ready(Err(Box::new(Exit::Panicked(panic_message(&*payload))))),
    }
}

/// The loop's stop signal and stop deadline: the node's flag and waker slot, and the
/// deadline's timer, made the first time the thread has to wait after its stop began (a
/// thread that stops without waiting never makes one).
pub(crate) struct StopWatch {
    registered: bool,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether a stop of this life keeps the DOWN queue for the next.
    keep: KeepQueue,
}

impl StopWatch {
    pub(crate) fn new(keep: KeepQueue) -> Self {
        Self {
            registered: false,
            deadline: None,
            keep,
        }
    }

    /// Whether a stop, for this reason, closes the DOWN queue: not when the thread will be
    /// started again and handle what is queued.
    pub(crate) fn stop_closes_queue(&self, node: &Node, completed: bool) -> bool {
        if node.is_final_stop_requested() {
            true
        } else if node.is_restart_requested() {
            false
        } else if completed {
            !self.keep.on_completion
        } else {
            true
        }
    }

    /// Whether a failure closes the DOWN queue: not for a thread restarted on failure
    /// (unless it is being stopped for good).
    pub(crate) fn failure_closes_queue(&self, node: &Node) -> bool {
        !self.keep.on_failure || node.is_final_stop_requested()
    }

    /// Whether a stop was requested; if not, makes sure this task will be woken by one.
    ///
    /// A thread's future only ever runs as its own tokio task, so its waker never changes:
    /// once registered with the node, later calls need only the flag (one atomic load). A
    /// request takes the waker, but it also sets the flag for the rest of this life.
    #[inline]
    pub(crate) fn requested(&mut self, node: &Node, cx: &mut Context<'_>) -> bool {
        if node.is_stop_requested() {
            return true;
        }
        if !self.registered {
            self.registered = true;
            return node.poll_stop_requested(cx).is_ready();
        }
        false
    }

    /// Whether the stop deadline runs: the thread is stopping and has had to wait since.
    #[inline(always)]
    pub(crate) fn deadline_runs(&self) -> bool {
        self.deadline.is_some()
    }

    /// For a stopping thread about to wait: whether its stop deadline has passed. The first
    /// call starts the deadline, unless a stopping ancestor's covers it (the ancestor then
    /// aborts what remains when its own passes).
    pub(crate) fn deadline_passed(&mut self, node: &Node, cx: &mut Context<'_>) -> bool {
        let Some(after) = node.stop_deadline else {
            return false;
        };
        if self.deadline.is_none() && node.is_stop_covered() {
            return false;
        }
        self.deadline
            .get_or_insert_with(|| {
                let sleep = Box::pin(tokio::time::sleep(after));
                if recording() {
                    node.record_stop_deadline(sleep.deadline());
                }
                sleep
            })
            .as_mut()
            .poll(cx)
            .is_ready()
    }
}

/// Runs a handler, hook or task, pinned by the caller so it is stored once. While it
/// awaits, the thread still reacts to a stop: it stops accepting DOWN messages at once and
/// shows as stopping; the handler itself is let finish (the framework never drops user code
/// half-way on a graceful stop) unless the stop deadline passes, which ends the run with
/// [`Exit::Aborted`] (and drops the handler).
///
/// `stopping`: whether the thread is stopping already. `stop` is the loop's own stop
/// signal. A plain `poll_fn` rather than an `async fn`: it adds no state of its own to the
/// thread's task.
pub(crate) fn run_user<'a, R, D: Send + 'static>(
    mut fut: Pin<&'a mut impl Future<Output = Result<R>>>,
    down: &'a mut DownReceiver<D>,
    stopping: bool,
    stop: &'a mut StopWatch,
) -> impl Future<Output = Result<R, Box<Exit>>> + 'a {
    let mut stopping = stopping;
    poll_fn(move |cx| {
        if let Poll::Ready(done) = poll_user(fut.as_mut(), down, cx) {
            return Poll::Ready(done);
        }
        // Most handlers finish on their first poll; the stop signal is only looked at for
        // those that wait.
        if !stopping && stop.requested(down.node(), cx) {
            stopping = true;
            if stop.stop_closes_queue(down.node(), false) {
                down.close();
            }
            down.node().set_state(ThreadState::Stopping);
        }
        if stopping && stop.deadline_passed(down.node(), cx) {
            return Poll::Ready(Err(Box::new(Exit::Aborted { dropped: 0 })));
        }
        Poll::Pending
    })
}
