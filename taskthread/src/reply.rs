//! The way an ask's answer travels back: [`Reply`], the slot the answering thread sends it
//! through, and [`Answer`], the future the asker waits on.
//!
//! A one-shot channel like tokio's `oneshot`, with one difference that matters on a
//! multi-thread runtime: an answer sent from inside a thread's task wakes the asker only
//! when that task's poll ends ([`holding_answers`]). Woken in the middle of the poll, the
//! asker can wait in its worker's run queue (tokio puts it there, and wakes an idle worker,
//! when the worker's LIFO slot is taken or capped) while the thread's task runs the rest
//! of its turn, and the idle worker can steal it: the ping-pong then crosses workers, and
//! one of them parks and is woken again. Woken as the poll ends, the asker runs next on
//! the same worker, and its next question finds the thread's task idle and schedules it
//! there too.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::lock::lock;

/// [`HOLDING`]: no thread's task is being polled on this OS thread.
const NOT_HOLDING: u8 = 0;
/// [`HOLDING`]: a thread's task is being polled; no asker is held.
const HOLDING_NONE: u8 = 1;
/// [`HOLDING`]: a thread's task is being polled, and [`HELD`] holds an asker.
const HOLDING_ONE: u8 = 2;

thread_local! {
    /// Whether answers hold their wake, and whether one does: a poll that answers nobody
    /// looks at this plain byte only, never at [`HELD`] (a waker, whose slot needs a
    /// destructor and so a check on every access).
    static HOLDING: Cell<u8> = const { Cell::new(NOT_HOLDING) };
    /// The asker to wake when the poll ends.
    static HELD: Cell<Option<Waker>> = const { Cell::new(None) };
}

/// Runs `poll`, a poll of a thread's task, and wakes the asker answered in it as it ends
/// (even by a panic).
#[inline]
pub(crate) fn holding_answers<R>(poll: impl FnOnce() -> R) -> R {
    struct Release;
    impl Drop for Release {
        #[inline]
        fn drop(&mut self) {
            if HOLDING.replace(NOT_HOLDING) == HOLDING_ONE {
                wake_held();
            }
        }
    }
    HOLDING.set(HOLDING_NONE);
    let _release = Release;
    poll()
}

#[inline(never)]
fn wake_held() {
    if let Some(asker) = HELD.take() {
        asker.wake();
    }
}

/// Wakes an asker: at the end of the thread's poll if inside one, else now. One asker
/// is held at a time; one answered before it is woken at once.
#[inline]
fn wake_asker(asker: Waker) {
    match HOLDING.get() {
        NOT_HOLDING => asker.wake(),
        _ => {
            HOLDING.set(HOLDING_ONE);
            if let Some(earlier) = HELD.replace(Some(asker)) {
                earlier.wake();
            }
        }
    }
}

/// What the two ends share.
struct Slot<R> {
    state: Mutex<State<R>>,
}

struct State<R> {
    answer: Option<R>,
    /// The asker, while it waits.
    asker: Option<Waker>,
    /// The [`Reply`] is gone: it sent the answer, or it was dropped without one.
    replied: bool,
    /// The [`Answer`] is gone: nobody waits for the answer any more.
    given_up: bool,
}

impl<R> Slot<R> {
    fn state(&self) -> MutexGuard<'_, State<R>> {
        lock(&self.state)
    }
}

/// The reply slot of an asked message: the generated dispatch sends the handler's answer
/// through it to the asker. A [proxy](crate::proxy) carries it across: it keeps the asker's
/// slot and answers it when the answer comes back, and the other side makes one with
/// [`Reply::pair`] to wait for the handler's answer.
///
/// Dropped without an answer (the handler failed, the message was dropped), it tells the
/// asker that no answer comes.
pub struct Reply<R>(Option<Arc<Slot<R>>>);

impl<R> Reply<R> {
    /// A reply slot and the future its answer arrives on (an error, without an answer, if
    /// the slot is dropped: the handler failed or the message was dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::proxy::Reply;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (reply, answer) = Reply::pair();
    /// reply.send(42);
    /// assert_eq!(answer.await.unwrap(), 42);
    ///
    /// let (reply, answer) = Reply::<u32>::pair();
    /// drop(reply); // no answer comes
    /// assert!(answer.await.is_err());
    /// # }
    /// ```
    pub fn pair() -> (Self, Answer<R>) {
        Self::pair_with(None)
    }

    /// A pair whose slot already holds the asker's waker: the answer wakes `asker` without
    /// a poll of the [`Answer`] first.
    pub(crate) fn pair_waiting(asker: &Waker) -> (Self, Answer<R>) {
        Self::pair_with(Some(asker.clone()))
    }

    #[inline]
    fn pair_with(asker: Option<Waker>) -> (Self, Answer<R>) {
        let slot = Arc::new(Slot {
            state: Mutex::new(State {
                answer: None,
                asker,
                replied: false,
                given_up: false,
            }),
        });
        (
            Self(Some(Arc::clone(&slot))),
            Answer {
                slot,
                settled: false,
            },
        )
    }

    /// Sends the answer; an asker that gave up is not an error.
    pub fn send(mut self, answer: R) {
        crate::node::answering();
        let Some(slot) = self.0.take() else { return };
        let mut state = slot.state();
        state.replied = true;
        if state.given_up {
            drop(state);
            drop(answer);
            return;
        }
        state.answer = Some(answer);
        let asker = state.asker.take();
        drop(state);
        if let Some(asker) = asker {
            wake_asker(asker);
        }
    }

    /// Whether the asker has given up waiting.
    pub fn is_closed(&self) -> bool {
        self.0.as_ref().is_none_or(|slot| slot.state().given_up)
    }
}

impl<R> Drop for Reply<R> {
    fn drop(&mut self) {
        let Some(slot) = self.0.take() else { return };
        let asker = {
            let mut state = slot.state();
            state.replied = true;
            state.asker.take()
        };
        if let Some(asker) = asker {
            wake_asker(asker);
        }
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}

/// The future of an answer sent through a [`Reply`] made by [`Reply::pair`]: the answer,
/// or [`NoAnswer`] if the reply slot was dropped without one.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Answer<R> {
    slot: Arc<Slot<R>>,
    /// The answer (or its absence) was taken: nothing more to look at.
    settled: bool,
}

impl<R> Future for Answer<R> {
    type Output = Result<R, NoAnswer>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut state = this.slot.state();
        if let Some(answer) = state.answer.take() {
            drop(state);
            this.settled = true;
            return Poll::Ready(Ok(answer));
        }
        if state.replied {
            drop(state);
            this.settled = true;
            return Poll::Ready(Err(NoAnswer));
        }
        match &mut state.asker {
            Some(asker) if asker.will_wake(cx.waker()) => {}
            asker => *asker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<R> Drop for Answer<R> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Given up: a reply that comes is dropped; one that came is dropped here, out of
        // the lock.
        let (answer, asker) = {
            let mut state = self.slot.state();
            state.given_up = true;
            (state.answer.take(), state.asker.take())
        };
        drop((answer, asker));
    }
}

impl<R> fmt::Debug for Answer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("settled", &self.settled)
            .finish_non_exhaustive()
    }
}

/// No answer came through a [`Reply`]: it was dropped without one (the handler failed or
/// the message was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAnswer;

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no answer came: the handler failed or the question was dropped")
    }
}

impl std::error::Error for NoAnswer {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    fn poll<R>(answer: &mut Answer<R>, waker: &Waker) -> Poll<Result<R, NoAnswer>> {
        Pin::new(answer).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn an_answer_sent_in_a_threads_poll_wakes_the_asker_as_the_poll_ends() {
        let (count, waker) = counting();
        let (reply, mut answer) = Reply::pair();
        assert!(poll(&mut answer, &waker).is_pending());
        holding_answers(|| {
            reply.send(7);
            assert_eq!(count.0.load(Ordering::SeqCst), 0);
        });
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut answer, &waker), Poll::Ready(Ok(7)));
    }

    #[test]
    fn of_two_answers_in_one_poll_the_first_wakes_at_once() {
        let (first_count, first_waker) = counting();
        let (second_count, second_waker) = counting();
        let (first, mut first_answer) = Reply::pair();
        let (second, mut second_answer) = Reply::pair();
        assert!(poll(&mut first_answer, &first_waker).is_pending());
        assert!(poll(&mut second_answer, &second_waker).is_pending());
        holding_answers(|| {
            first.send(1);
            second.send(2);
            assert_eq!(first_count.0.load(Ordering::SeqCst), 1);
            assert_eq!(second_count.0.load(Ordering::SeqCst), 0);
        });
        assert_eq!(second_count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_held_asker_is_woken_when_the_poll_panics() {
        let (count, waker) = counting();
        let (reply, mut answer) = Reply::pair();
        assert!(poll(&mut answer, &waker).is_pending());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            holding_answers(|| {
                reply.send(7);
                panic!("in the poll");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // Outside a thread's poll, a wake is not held.
        let (reply, mut answer) = Reply::pair();
        assert!(poll(&mut answer, &waker).is_pending());
        reply.send(8);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_pair_made_waiting_wakes_its_asker_without_a_poll_first() {
        let (count, waker) = counting();
        let (reply, mut answer) = Reply::pair_waiting(&waker);
        reply.send(5);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut answer, &waker), Poll::Ready(Ok(5)));

        let (reply, mut answer) = Reply::<u32>::pair_waiting(&waker);
        drop(reply);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(poll(&mut answer, &waker), Poll::Ready(Err(NoAnswer)));
    }

    #[test]
    fn a_reply_dropped_unanswered_tells_the_asker() {
        let (count, waker) = counting();
        let (reply, mut answer) = Reply::<u32>::pair();
        assert!(poll(&mut answer, &waker).is_pending());
        drop(reply);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut answer, &waker), Poll::Ready(Err(NoAnswer)));
    }

    #[test]
    fn an_asker_that_gives_up_closes_the_reply_and_drops_its_answer() {
        let dropped = Arc::new(());
        let (reply, answer) = Reply::pair();
        assert!(!reply.is_closed());
        drop(answer);
        assert!(reply.is_closed());
        reply.send(Arc::clone(&dropped));
        assert_eq!(Arc::strong_count(&dropped), 1);

        // An answer that came before the asker gave up goes with it.
        let (reply, answer) = Reply::pair();
        reply.send(Arc::clone(&dropped));
        assert_eq!(Arc::strong_count(&dropped), 2);
        drop(answer);
        assert_eq!(Arc::strong_count(&dropped), 1);
    }
}
