//! A thread's inbound queue: UP messages from its children, items of attached streams, the
//! outputs of its background jobs, and its children's exit reports, in one FIFO.
//!
//! Only UP messages and stream items are metered: each takes one of `capacity` places until
//! the thread takes it off the queue, which gives children and streams backpressure. Exit
//! reports and job outputs are not metered — there is at most one per child or job, so they
//! are bounded anyway — and so sending them never waits. That matters when many children
//! stop at once: none of them parks on a full queue to say it has ended, and its report
//! still comes after every UP message it sent before it.
//!
//! The meter is a counter, not a semaphore: taking a place is one compare-and-swap, giving
//! one back is one atomic subtraction, and only senders that found the queue full ever
//! touch a lock (the [`Notify`] they wait on). A semaphore would lock on every release, that
//! is on every UP message handled.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{Notify, mpsc};

use crate::error::TrySendError;
use crate::thread::{ChildId, Exit};

/// What arrives on a thread's inbound queue.
pub(crate) enum Inbound<E> {
    /// An UP message from a child or an item from an attached stream (metered).
    Event(E),
    /// The output of a `spawn_task` / `spawn_blocking` job (not metered: one per job).
    Output(E),
    /// A child's exit report.
    Exit(ChildId, ExitReport),
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

    /// `(exit, dropped, escalated)`.
    pub(crate) fn into_parts(self) -> (Exit, usize, bool) {
        match self {
            Self::Completed => (Exit::Completed, 0, false),
            Self::Stopped => (Exit::Stopped, 0, false),
            Self::Other(other) => (other.exit, other.dropped, other.escalated),
        }
    }
}

/// The metered places of a queue, shared by its senders and its receiver.
pub(crate) struct Meter {
    /// Places taken, plus [`CLOSED`] once the receiver is gone.
    taken: AtomicUsize,
    capacity: usize,
    /// Senders waiting for a place (registered on `room` before they last looked).
    waiting: AtomicUsize,
    room: Notify,
}

const CLOSED: usize = 1 << (usize::BITS - 1);

/// The receiver is gone.
#[derive(Debug)]
pub(crate) struct Closed;

impl Meter {
    fn new(capacity: usize) -> Self {
        Self {
            taken: AtomicUsize::new(0),
            // `ChildOptions::capacity` refuses 0 and the count must stay below `CLOSED`.
            capacity: capacity.clamp(1, CLOSED - 1),
            waiting: AtomicUsize::new(0),
            room: Notify::new(),
        }
    }

    /// Takes a place if there is one now.
    #[inline]
    pub(crate) fn try_take(&self) -> Result<(), Refused> {
        // SeqCst, like the compare-and-swap below: in `wait` this is the look that must
        // see a place given back once the sender counts as waiting (`give_back` pairs
        // with it). On x86 it costs no more than a relaxed load.
        let mut taken = self.taken.load(Ordering::SeqCst);
        loop {
            if taken & CLOSED != 0 {
                return Err(Refused::Closed);
            }
            if taken >= self.capacity {
                return Err(Refused::Full);
            }
            // SeqCst pairs with `give_back`: a sender that then registers as waiting is
            // either seen by the receiver or sees the place it gave back.
            match self.taken.compare_exchange_weak(
                taken,
                taken + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => taken = now,
            }
        }
    }

    /// Takes a place, waiting for one; fails once the receiver is gone.
    ///
    /// A plain `fn` returning `wait`'s future, not an `async fn` around it: this future is
    /// part of every `Ctx::up` future, and so of the tasks of threads that send UP.
    pub(crate) fn take(&self) -> impl Future<Output = Result<(), Closed>> + '_ {
        self.wait(Self::try_take)
    }

    /// Waits until there is a place, without taking it; fails once the receiver is gone.
    pub(crate) async fn wait_for_room(&self) -> Result<(), Closed> {
        let room = self
            .wait(|meter| {
                let taken = meter.taken.load(Ordering::SeqCst);
                if taken & CLOSED != 0 {
                    Err(Refused::Closed)
                } else if taken >= meter.capacity {
                    Err(Refused::Full)
                } else {
                    Ok(())
                }
            })
            .await;
        // The place is left for others: pass on the wake-up this waiter may have taken,
        // or a sender waiting to take a place could sleep with one free.
        if room.is_ok() && self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_one();
        }
        room
    }

    async fn wait(&self, look: impl Fn(&Self) -> Result<(), Refused>) -> Result<(), Closed> {
        loop {
            let mut notified = pin!(self.room.notified());
            // Registered before looking, so a place given back after the look wakes it.
            notified.as_mut().enable();
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let now = look(self);
            if !matches!(now, Err(Refused::Full)) {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return now.map_err(|_| Closed);
            }
            {
                // Dropped before being woken (the sender gave up): `Notify` passes a
                // wake-up it already received on to the next waiter, so none is lost.
                let _unregister = Unregister(&self.waiting);
                notified.await;
            }
            // Woken because a place was given back: look before registering again, which
            // (with the drop of a registration that was not needed) takes `Notify`'s lock.
            // Every place given back while a sender waits wakes one, so if another sender
            // took this one first, the next wakes this sender (or one registered before).
            let now = look(self);
            if !matches!(now, Err(Refused::Full)) {
                return now.map_err(|_| Closed);
            }
        }
    }

    /// Gives a place back (the receiver took a metered event off the queue).
    #[inline]
    fn give_back(&self) {
        self.taken.fetch_sub(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_one();
        }
    }

    fn close(&self) {
        self.taken.fetch_or(CLOSED, Ordering::SeqCst);
        self.room.notify_waiters();
    }
}

/// Counts a waiting sender out when it stops waiting, woken or not.
struct Unregister<'a>(&'a AtomicUsize);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The receiving side, owned by the thread (or, for a root's UP messages, by its handle).
pub(crate) struct Inbox<E> {
    rx: mpsc::UnboundedReceiver<Inbound<E>>,
    meter: Arc<Meter>,
}

/// A sending side: held by each parent's sink and by stream and job tasks.
pub(crate) struct InboxSender<E> {
    tx: mpsc::UnboundedSender<Inbound<E>>,
    meter: Arc<Meter>,
}

impl<E> Clone for InboxSender<E> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            meter: Arc::clone(&self.meter),
        }
    }
}

/// Why a metered send did not happen now.
pub(crate) enum Refused {
    Full,
    Closed,
}

impl Refused {
    /// The error a caller of `try_send` sees, with its message back.
    pub(crate) fn with<M>(self, msg: M) -> TrySendError<M> {
        match self {
            Self::Full => TrySendError::Full(msg),
            Self::Closed => TrySendError::Ended(msg),
        }
    }
}

/// A queue with `capacity` places for metered events. The receiver sees the end (`None`)
/// once every sender is gone.
pub(crate) fn inbox<E>(capacity: usize) -> (InboxSender<E>, Inbox<E>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let meter = Arc::new(Meter::new(capacity));
    let sender = InboxSender {
        tx,
        meter: Arc::clone(&meter),
    };
    (sender, Inbox { rx, meter })
}

impl<E> Inbox<E> {
    #[inline]
    fn taken(&self, inbound: &Inbound<E>) {
        if let Inbound::Event(_) = inbound {
            self.meter.give_back();
        }
    }

    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Inbound<E>>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(inbound)) = &polled {
            self.taken(inbound);
        }
        polled
    }

    pub(crate) fn try_recv(&mut self) -> Option<Inbound<E>> {
        let inbound = self.rx.try_recv().ok()?;
        self.taken(&inbound);
        Some(inbound)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl<E> Drop for Inbox<E> {
    fn drop(&mut self) {
        // Wakes anyone waiting for room: the queue is gone.
        self.meter.close();
    }
}

impl<E> InboxSender<E> {
    /// Queues a metered event if there is room now; `make` runs only then.
    #[inline]
    pub(crate) fn try_send_with<M>(
        &self,
        msg: M,
        make: impl FnOnce(M) -> E,
    ) -> Result<(), (Refused, M)> {
        match self.meter.try_take() {
            Ok(()) => {
                // The receiver only goes away after closing the meter, so this fails only
                // in a race with it; the thread is gone then and there is no one to tell.
                let _ = self.tx.send(Inbound::Event(make(msg)));
                Ok(())
            }
            Err(refused) => Err((refused, msg)),
        }
    }

    /// The metered places, for a caller that waits for one itself.
    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Queues a metered event for which the caller has taken a place from
    /// [`meter`](Self::meter).
    pub(crate) fn send_permitted(&self, event: E) {
        let _ = self.tx.send(Inbound::Event(event));
    }

    /// Queues a job's output or an exit report; never waits.
    pub(crate) fn send_unmetered(&self, inbound: Inbound<E>) -> bool {
        self.tx.send(inbound).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    /// Sends like `Ctx::up`: a place now, or wait for one.
    async fn send_up(tx: &InboxSender<u64>, v: u64) {
        if let Err((refused, v)) = tx.try_send_with(v, |m| m) {
            assert!(matches!(refused, Refused::Full), "the receiver is alive");
            tx.meter().take().await.expect("the receiver is alive");
            tx.send_permitted(v);
        }
    }

    /// Sends like an attached stream: queued at once, then wait for room without taking it.
    async fn send_item(tx: &InboxSender<u64>, v: u64) {
        if tx.meter().try_take().is_ok() {
            tx.send_permitted(v);
        } else {
            tx.send_unmetered(Inbound::Output(v));
            tx.meter()
                .wait_for_room()
                .await
                .expect("the receiver is alive");
        }
    }

    #[test]
    fn many_senders_through_a_tiny_queue_lose_nothing_and_never_stall() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .expect("a runtime");
        rt.block_on(async {
            const SENDERS: u64 = 8;
            const EACH: u64 = 2_000;
            let (tx, mut rx) = inbox::<u64>(2);
            for s in 0..SENDERS {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..EACH {
                        let v = s * EACH + i;
                        if s % 2 == 0 {
                            send_up(&tx, v).await;
                        } else {
                            send_item(&tx, v).await;
                        }
                    }
                });
            }
            drop(tx);
            let mut seen = vec![false; (SENDERS * EACH) as usize];
            let mut max_metered = 0;
            while let Some(inbound) = poll_fn(|cx| rx.poll_recv(cx)).await {
                let v = match inbound {
                    Inbound::Event(v) | Inbound::Output(v) => v,
                    Inbound::Exit(..) => unreachable!("no exit is sent"),
                };
                assert!(!seen[v as usize], "{v} arrived twice");
                seen[v as usize] = true;
                max_metered = max_metered.max(rx.meter.taken.load(Ordering::SeqCst));
            }
            assert!(seen.iter().all(|s| *s), "every message arrived");
            assert!(max_metered <= 2, "at most `capacity` places taken");
        });
    }

    #[test]
    fn a_dropped_receiver_wakes_waiting_senders_with_closed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let (tx, rx) = inbox::<u64>(1);
            send_up(&tx, 1).await;
            let waiting = {
                let tx = tx.clone();
                tokio::spawn(async move { tx.meter().take().await.is_err() })
            };
            tokio::task::yield_now().await;
            drop(rx);
            assert!(waiting.await.expect("no panic"), "woken with Closed");
            assert!(matches!(tx.meter().try_take(), Err(Refused::Closed)));
        });
    }
}
