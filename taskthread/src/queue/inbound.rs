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
//! touch a lock (the queue of waiting senders). A semaphore would lock on every release,
//! that is on every UP message handled.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc;

use super::waiters::Waiters;
use crate::error::TrySendError;

/// An item of an inbound queue: it says whether it takes one of the queue's places.
pub(crate) trait Metered {
    /// Whether the item was sent with a place taken (and gives it back when received).
    fn is_metered(&self) -> bool;
}

/// The metered places of a queue, shared by its senders and its receiver.
pub(crate) struct Meter {
    /// Places taken, plus [`CLOSED`] once the receiver is gone.
    taken: AtomicUsize,
    capacity: usize,
    /// How many senders are in `waiters` (counted in before they last looked).
    waiting: AtomicUsize,
    /// Senders waiting for a place, in arrival order. Only senders that found the queue full
    /// ever come here, and only they and a receiver that sees `waiting` above 0 lock it.
    waiters: Mutex<Waiters>,
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
            waiters: Mutex::new(Waiters::default()),
        }
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place if there is one now.
    #[inline]
    pub(crate) fn try_take(&self) -> Result<(), Refused> {
        // SeqCst, like the compare-and-swap below: in a wait this is the look that must
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

    /// Whether there is a place now, without taking it.
    fn has_room(&self) -> Result<(), Refused> {
        let taken = self.taken.load(Ordering::SeqCst);
        if taken & CLOSED != 0 {
            Err(Refused::Closed)
        } else if taken >= self.capacity {
            Err(Refused::Full)
        } else {
            Ok(())
        }
    }

    /// Takes a place, waiting for one; fails once the receiver is gone.
    ///
    /// The future is three words: it is part of every `Ctx::up` future, and so of the task
    /// of every thread that sends UP.
    ///
    /// `owner` says who waits (a thread's id, 0 if none): a sender that has to wait is
    /// listed with it.
    pub(crate) fn take(&self, owner: u64) -> Take<'_> {
        Wait {
            meter: self,
            look: TakePlace,
            ticket: NO_TICKET,
            owner,
        }
    }

    /// Waits until there is a place, without taking it; fails once the receiver is gone.
    pub(crate) async fn wait_for_room(&self) -> Result<(), Closed> {
        let room = Wait {
            meter: self,
            look: Self::has_room,
            ticket: NO_TICKET,
            owner: 0,
        }
        .await;
        // The place is left for others: pass on the wake-up this waiter may have taken,
        // or a sender waiting to take a place could sleep with one free.
        if room.is_ok() {
            self.wake_one();
        }
        room
    }

    /// Queues a waiting sender and counts it in; it must look again afterwards.
    fn register(&self, waker: &Waker, owner: u64) -> u64 {
        let ticket = self.waiters().push(waker, owner);
        // SeqCst pairs with `give_back`: see `try_take`.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        ticket
    }

    /// For a registered sender polled again: whether it is still waiting (not woken); if
    /// so, its waker is brought up to date.
    fn still_waiting(&self, ticket: u64, waker: &Waker) -> bool {
        self.waiters().refresh(ticket, waker)
    }

    /// For a registered sender that stops waiting without having been woken: takes it out
    /// of the queue. If it was woken, the wake-up it did not use goes to the next sender,
    /// so none is lost.
    fn unregister(&self, ticket: u64) {
        let mut waiters = self.waiters();
        if waiters.remove(ticket) {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        } else {
            drop(waiters);
            self.wake_one();
        }
    }

    /// Whether `owner` waits for a place (and has not been woken).
    pub(crate) fn has_waiting(&self, owner: u64) -> bool {
        self.waiting.load(Ordering::SeqCst) != 0 && self.waiters().has_owner(owner)
    }

    /// Who waits for a place, among the senders that said who they are.
    pub(crate) fn waiting_owners(&self) -> Vec<u64> {
        self.waiters().owners().collect()
    }

    /// Wakes the sender that has waited longest, if any.
    fn wake_one(&self) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut waiters = self.waiters();
            let woken = waiters.pop_front();
            if woken.is_some() {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
            woken
        };
        if let Some(waker) = woken {
            waker.wake();
        }
    }

    /// Gives a place back (the receiver took a metered event off the queue).
    #[inline]
    fn give_back(&self) {
        self.taken.fetch_sub(1, Ordering::SeqCst);
        // `wake_one` looks at `waiting` (SeqCst) before locking anything.
        self.wake_one();
    }

    fn close(&self) {
        self.taken.fetch_or(CLOSED, Ordering::SeqCst);
        let woken = {
            let mut waiters = self.waiters();
            self.waiting.fetch_sub(waiters.len(), Ordering::SeqCst);
            waiters.take_all()
        };
        for waker in woken {
            waker.wake();
        }
    }
}

/// A sender's wait for a place: `look` says whether it can go on (and takes the place if
/// that is what the sender waits for).
///
/// It registers (takes a ticket in the queue) before it looks, so a place given back after
/// the look wakes it: `give_back` subtracts and then reads `waiting`, the waiter adds to
/// `waiting` and then reads `taken`, all SeqCst, so at least one of them sees the other.
/// Every place given back while senders wait wakes the one that has waited longest; one
/// that is woken but finds the place gone (a sender that did not wait took it first) queues
/// again, and the next place given back wakes the next in line.
pub(crate) struct Wait<'a, F> {
    meter: &'a Meter,
    look: F,
    /// Its place in the queue while registered ([`NO_TICKET`] otherwise), with [`SEEN`]
    /// set once its sender has seen that it blocks.
    ticket: u64,
    /// Who waits: a thread's id, or 0.
    owner: u64,
}

/// A [`Wait`] that is not registered. Tickets count up from 0 and never reach it, nor
/// [`SEEN`].
const NO_TICKET: u64 = u64::MAX;

/// The bit of a [`Wait`]'s ticket that says its sender has seen that it blocks.
const SEEN: u64 = 1 << 62;

impl<F> Wait<'_, F> {
    /// After a `Pending`: whether the sender waits in the queue and has not yet seen it
    /// (then it sees it now: the next call says `false` until the sender queues again).
    #[inline]
    pub(crate) fn newly_blocked(&mut self) -> bool {
        if self.ticket == NO_TICKET || self.ticket & SEEN != 0 {
            return false;
        }
        self.ticket |= SEEN;
        true
    }
}

/// What a [`Wait`] looks for each time it is woken.
pub(crate) trait Look: Unpin {
    fn look(&self, meter: &Meter) -> Result<(), Refused>;
}

impl<F: Fn(&Meter) -> Result<(), Refused> + Unpin> Look for F {
    fn look(&self, meter: &Meter) -> Result<(), Refused> {
        self(meter)
    }
}

/// The look of [`Meter::take`]: a type with a name, so that a future holding the wait
/// ([`UpFuture`](crate::UpFuture)) can name its type.
pub(crate) struct TakePlace;

impl Look for TakePlace {
    #[inline]
    fn look(&self, meter: &Meter) -> Result<(), Refused> {
        meter.try_take()
    }
}

/// The future of [`Meter::take`].
pub(crate) type Take<'a> = Wait<'a, TakePlace>;

impl<F: Look> Future for Wait<'_, F> {
    type Output = Result<(), Closed>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.ticket != NO_TICKET {
            if this.meter.still_waiting(this.ticket & !SEEN, cx.waker()) {
                return Poll::Pending;
            }
            // Woken: a place was given back, or the receiver went away. Look before
            // queueing again, which would lock.
            this.ticket = NO_TICKET;
            match this.look.look(this.meter) {
                Err(Refused::Full) => {}
                now => return Poll::Ready(now.map_err(|_| Closed)),
            }
        }
        let ticket = this.meter.register(cx.waker(), this.owner);
        match this.look.look(this.meter) {
            Err(Refused::Full) => {
                this.ticket = ticket;
                Poll::Pending
            }
            now => {
                this.meter.unregister(ticket);
                Poll::Ready(now.map_err(|_| Closed))
            }
        }
    }
}

impl<F> Drop for Wait<'_, F> {
    fn drop(&mut self) {
        // Dropped while waiting (the sender gave up, or its thread was aborted).
        if self.ticket != NO_TICKET {
            self.meter.unregister(self.ticket & !SEEN);
            self.ticket = NO_TICKET;
        }
    }
}

/// The receiving side, owned by the thread (or, for a root's UP messages, by its handle).
pub(crate) struct Inbox<E> {
    rx: mpsc::UnboundedReceiver<E>,
    meter: Arc<Meter>,
}

impl<E> Inbox<E> {
    /// The metered places, for the thread's node: who waits on the thread for a place.
    pub(crate) fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }
}

/// A sending side: held by each parent's sink and by stream and job tasks.
pub(crate) struct InboxSender<E> {
    tx: mpsc::UnboundedSender<E>,
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

/// A queue with `capacity` places for metered items. The receiver sees the end (`None`)
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

impl<E: Metered> Inbox<E> {
    #[inline]
    fn taken(&self, inbound: &E) {
        if inbound.is_metered() {
            self.meter.give_back();
        }
    }

    #[inline]
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<E>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(inbound)) = &polled {
            self.taken(inbound);
        }
        polled
    }

    #[inline]
    pub(crate) fn try_recv(&mut self) -> Option<E> {
        let inbound = self.rx.try_recv().ok()?;
        self.taken(&inbound);
        Some(inbound)
    }
}

impl<E> Inbox<E> {
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
    /// Queues a metered item if there is room now; `make` runs only then, and must make
    /// an item that [is metered](Metered::is_metered).
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
                let _ = self.tx.send(make(msg));
                Ok(())
            }
            Err(refused) => Err((refused, msg)),
        }
    }

    /// The metered places, for a caller that waits for one itself.
    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Queues a metered item for which the caller has taken a place from
    /// [`meter`](Self::meter).
    pub(crate) fn send_permitted(&self, item: E) {
        let _ = self.tx.send(item);
    }

    /// Queues an item that is not metered; never waits. `false` if the receiver is gone.
    pub(crate) fn send_unmetered(&self, item: E) -> bool {
        self.tx.send(item).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    /// An item as the tests send it: metered or not.
    enum Item {
        Metered(u64),
        Unmetered(u64),
    }

    impl Metered for Item {
        fn is_metered(&self) -> bool {
            matches!(self, Self::Metered(_))
        }
    }

    /// Sends like `Ctx::up`: a place now, or wait for one.
    async fn send_up(tx: &InboxSender<Item>, v: u64) {
        if let Err((refused, v)) = tx.try_send_with(v, Item::Metered) {
            assert!(matches!(refused, Refused::Full), "the receiver is alive");
            tx.meter().take(0).await.expect("the receiver is alive");
            tx.send_permitted(Item::Metered(v));
        }
    }

    /// Sends like an attached stream: queued at once, then wait for room without taking it.
    async fn send_item(tx: &InboxSender<Item>, v: u64) {
        if tx.meter().try_take().is_ok() {
            tx.send_permitted(Item::Metered(v));
        } else {
            tx.send_unmetered(Item::Unmetered(v));
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
            let (tx, mut rx) = inbox::<Item>(2);
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
                    Item::Metered(v) | Item::Unmetered(v) => v,
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
            let (tx, rx) = inbox::<Item>(1);
            send_up(&tx, 1).await;
            let waiting = {
                let tx = tx.clone();
                tokio::spawn(async move { tx.meter().take(0).await.is_err() })
            };
            tokio::task::yield_now().await;
            drop(rx);
            assert!(waiting.await.expect("no panic"), "woken with Closed");
            assert!(matches!(tx.meter().try_take(), Err(Refused::Closed)));
        });
    }
}
