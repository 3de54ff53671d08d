//! Waiting for a future on a plain OS thread, by parking it: the blocking side of a
//! [`BackgroundHandle`](super::BackgroundHandle).
//!
//! The futures waited on are tokio's channel and semaphore operations, which need no
//! runtime to make progress (the tree's runtime, on its own thread, does the other side),
//! so the calling thread needs no runtime either: it polls, parks until woken, and polls
//! again.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

/// Wakes a parked thread.
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// One waker per OS thread, made on first use: a blocking call allocates nothing.
    static WAKER: Waker = Waker::from(Arc::new(Unparker(thread::current())));
}

/// Polls `future` to completion on this thread, parking between polls; `None` if
/// `deadline` passes first (the future is then dropped, which the callers' futures are
/// safe for: nothing they hold is lost).
///
/// Must not be called inside an async context (the callers check): parking a runtime's
/// thread would stall the tasks it runs.
pub(super) fn block_on<F: Future>(future: F, deadline: Option<Instant>) -> Option<F::Output> {
    let mut future = pin!(future);
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return Some(output);
            }
            // A wake-up between the poll and the park leaves the token set, so the park
            // returns at once; a spurious return only costs one more poll.
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
    })
}
