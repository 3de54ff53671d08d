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
//! The items are under one short lock, with the receiver's waker: a send locks once, and
//! wakes the receiver only if it waits. The receiver takes everything queued at once into a
//! buffer of its own and hands the items out from there, so a thread that handles a burst
//! (many children sending UP, many children ending) locks once per burst. A receiver that
//! waits looks again with one atomic load while nothing has come. The queue is one
//! allocation besides its items, which are kept in chunks below 64 KB, each freed once
//! handed out (`Chunks`), so a parent whose children only report their exits keeps
//! a few words per report.
//!
//! The meter is a counter, not a semaphore: taking a place is one compare-and-swap, giving
//! one back is one atomic subtraction, and only senders that found the queue full ever
//! touch its lock (the queue of waiting senders). A semaphore would lock on every release,
//! that is on every UP message handled. A place is given back as its item is handed out,
//! not as the burst is taken: the places bound what is queued and not yet handled. When
//! the waiting senders each take many places (children sending bursts UP), a burst of
//! places given back wakes one of them, which fills them, rather than one per place, each
//! of the others then finding the places gone (see [`Wait`]). For the same reason, places
//! given back while such a sender, woken, goes on sending in the same poll of its task
//! wake nobody while anything is still queued: it takes them itself, and the end of its
//! poll wakes the next sender if any are left (see [`run`]).
//!
//! Besides the metered places, each sender of UP messages has one place of its own
//! ([`OwnPlace`], kept in its node): with the metered places all taken and no sender
//! waiting for one, a sender whose own place is free queues its message there and goes on
//! without waiting; the place is free again once that message is handed out. So a parent's
//! queue holds at most its capacity in metered items plus one message per sender, and a
//! burst of children that each send once (as each reports that it has started) does not
//! wait while none does, nor is each polled again for it. With senders waiting, a sender waits behind them
//! rather than overtake them through its own place: children that send streams UP keep to
//! the places and their order of waiting. The items in own places are not metered; the
//! queue lists where they are (`owned`, positions in the items it holds), and the receiver,
//! as it hands the items of a burst out, frees each own place with its item.

use std::cell::Cell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::waiters::Waiters;
use crate::error::TrySendError;
use crate::lock::lock;

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
    /// One past the highest ticket woken from `waiters` (`u64::MAX` once closed): waiters
    /// are woken in ticket order, so a sender whose ticket is below it has been woken, and
    /// sees it without the lock.
    woken_below: AtomicU64,
    /// A sender has been woken and has not yet looked for a place.
    woken: AtomicBool,
    /// Senders take more than one place each (the last one woken came back to wait for
    /// another): a place given back while a woken sender has yet to look then wakes nobody
    /// else, as that sender will see every such place when it looks. Decided at each wake.
    greedy: AtomicBool,
    /// Who was woken last (0: nobody, or a sender that did not say who it is).
    last_woken: AtomicU64,
    /// The sender woken last has queued again since.
    came_back: AtomicBool,
    /// A place was given back while a woken sender had yet to look, or while a sender
    /// was running, and woke nobody: that sender wakes the next if places are left once
    /// it has taken its own, or once its poll has ended.
    skipped: AtomicBool,
    /// Greedy senders, woken, that run: they go on taking places until the end of the
    /// poll of their task that found them woken ([`sending_poll`]), and places given back
    /// meanwhile wake nobody while something is still queued.
    running: AtomicUsize,
    /// Places given back that woke nobody because a sender was running, since senders
    /// began to run: at [`capacity`](Self::capacity), the others are woken again, so that
    /// a sender that keeps taking places does not keep them waiting for long.
    skips: AtomicUsize,
    /// Senders waiting for a place, in arrival order. Only senders that found the queue full
    /// ever come here, and only they and a receiver that sees `waiting` above 0 lock it.
    waiters: Mutex<Waiters>,
}

const CLOSED: usize = 1 << (usize::BITS - 1);

/// The receiver is gone.
#[derive(Debug)]
pub(crate) struct Closed;

/// A sender's own place in the inbound queue it sends to: one message beyond the metered
/// places, taken when they are all taken, free again once that message is handed out.
#[derive(Debug, Default)]
pub(crate) struct OwnPlace(AtomicBool);

impl OwnPlace {
    /// Takes the place if it is free.
    #[inline]
    pub(crate) fn try_take(&self) -> bool {
        self.0
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Frees the place: its message has been handed out.
    fn free(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What keeps a sender's [`OwnPlace`] (its node), held by the queue while the place's
/// message is in it.
pub(crate) trait HoldsOwnPlace: Send + Sync {
    fn own_place(&self) -> &OwnPlace;
}

/// What holds a sender's own place while its message is queued.
type Owner = Arc<dyn HoldsOwnPlace>;

/// Messages in their senders' own places, by position among the items queued with them.
type Owned = VecDeque<(usize, Owner)>;

impl Meter {
    fn new(capacity: usize) -> Self {
        Self {
            taken: AtomicUsize::new(0),
            // `ChildOptions::capacity` refuses 0 and the count must stay below `CLOSED`.
            capacity: capacity.clamp(1, CLOSED - 1),
            waiting: AtomicUsize::new(0),
            woken_below: AtomicU64::new(0),
            woken: AtomicBool::new(false),
            greedy: AtomicBool::new(false),
            last_woken: AtomicU64::new(0),
            came_back: AtomicBool::new(false),
            skipped: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            skips: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// How many places are taken: metered items queued (or being sent).
    #[cfg(feature = "watch")]
    pub(crate) fn depth(&self) -> usize {
        self.taken.load(Ordering::Relaxed) & !CLOSED
    }

    #[cfg(feature = "watch")]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many senders wait for a place.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        lock(&self.waiters)
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
        let mut waiters = self.waiters();
        let ticket = waiters.push(waker, owner);
        if owner != 0 && owner == self.last_woken.load(Ordering::Relaxed) {
            self.came_back.store(true, Ordering::Relaxed);
        }
        // SeqCst pairs with `give_back`: see `try_take`. Counted in under the lock that
        // lists it, as a wake counts out under it: `waiting` never falls below the senders
        // listed, which `has_waiting` (the detection of wait cycles) relies on.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        drop(waiters);
        ticket
    }

    /// For a registered sender polled again: whether it is still waiting (not woken); if
    /// so, its waker is brought up to date.
    fn still_waiting(&self, ticket: u64, waker: &Waker) -> bool {
        // The usual case: polled because it was woken. It is about to look, so places
        // given back from now on wake the next sender (SeqCst pairs with `skips_wake`).
        if ticket < self.woken_below.load(Ordering::Acquire) {
            self.woken.store(false, Ordering::SeqCst);
            return false;
        }
        if self.waiters().refresh(ticket, waker) {
            return true;
        }
        // Woken as it looked, before `woken_below` said so (another worker was waking it,
        // under the lock just taken): it is about to look all the same. Left set, the
        // mark would make every place given back from now on wake nobody.
        self.woken.store(false, Ordering::SeqCst);
        false
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
            // Woken, and gone without looking: the next sender looks instead.
            self.woken.store(false, Ordering::SeqCst);
            self.wake_one();
        }
    }

    /// Whether `owner` waits for a place (and has not been woken).
    ///
    /// Senders left waiting while places are free, because a sender runs and takes them,
    /// are not stuck: they would be woken once its poll ends. When `owner` is one of them,
    /// they are woken now, one per free place, so that a wait by this queue's thread
    /// (which keeps it from handing anything out) is not taken for a cycle; one that finds
    /// its place gone queues again, and looks for a cycle itself.
    pub(crate) fn has_waiting(&self, owner: u64) -> bool {
        if self.waiting.load(Ordering::SeqCst) == 0 || !self.waiters().has_owner(owner) {
            return false;
        }
        if self.running.load(Ordering::SeqCst) == 0 && !self.skipped.load(Ordering::SeqCst) {
            return true;
        }
        self.wake_for_free_places();
        self.waiters().has_owner(owner)
    }

    /// Wakes one waiting sender per free place.
    #[cold]
    fn wake_for_free_places(&self) {
        let taken = self.taken.load(Ordering::SeqCst);
        let free = self.capacity.saturating_sub(taken & !CLOSED);
        for _ in 0..free {
            if self.waiting.load(Ordering::SeqCst) == 0 {
                break;
            }
            self.wake_first();
        }
    }

    /// Who waits for a place, among the senders that said who they are.
    pub(crate) fn waiting_owners(&self) -> Vec<u64> {
        self.waiters().owners().collect()
    }

    /// Wakes the sender that has waited longest, if any, unless senders are greedy and
    /// one woken has yet to look.
    #[inline]
    fn wake_one(&self) {
        // The usual case, looked at where a place is given back: nobody waits.
        if self.waiting.load(Ordering::SeqCst) != 0 && !self.skips_wake() {
            self.wake_first();
        }
    }

    /// Whether a place given back wakes nobody: a greedy sender runs (it takes the place
    /// itself), or senders are greedy and a woken one has yet to look. It is told so
    /// (`skipped`), then looked at again: a running sender counts out, and a woken sender
    /// clears `woken`, before it looks at `skipped` (all SeqCst), so either it sees
    /// `skipped` or this sees it gone.
    #[inline]
    fn skips_wake(&self) -> bool {
        if self.running.load(Ordering::SeqCst) != 0 && self.skips_for_running() {
            return true;
        }
        if !self.woken.load(Ordering::SeqCst) || !self.greedy.load(Ordering::Relaxed) {
            return false;
        }
        self.skipped.store(true, Ordering::SeqCst);
        self.woken.load(Ordering::SeqCst)
    }

    /// For a woken sender that has taken its place: if places given back meanwhile woke
    /// nobody and some are left, wakes the next, so that no sender waits while a place is
    /// free.
    #[inline]
    fn pass_on(&self) {
        if self.skipped.swap(false, Ordering::SeqCst) && self.has_room().is_ok() {
            self.wake_one();
        }
    }

    /// A sender runs: whether this place skips the wake (the running sender will see
    /// it). Not once senders have run past their share of places, nor with nothing
    /// queued: a place given back then may be the last for a while (the running sender
    /// may have stopped sending, and the receiver waits).
    #[inline(never)]
    fn skips_for_running(&self) -> bool {
        if self.taken.load(Ordering::SeqCst) & !CLOSED == 0
            || self.skips.load(Ordering::Relaxed) >= self.capacity
        {
            return false;
        }
        self.skips.fetch_add(1, Ordering::Relaxed);
        self.skipped.store(true, Ordering::SeqCst);
        if self.running.load(Ordering::SeqCst) != 0 {
            return true;
        }
        // The running sender ended its poll as this looked. If it took the mark, it wakes
        // the next; if not, this does.
        !self.skipped.swap(false, Ordering::SeqCst)
    }

    /// A greedy sender, woken, has taken its place: it runs until the end of its poll.
    fn start_running(&self) {
        if self.running.fetch_add(1, Ordering::SeqCst) == 0 {
            self.skips.store(0, Ordering::Relaxed);
        }
    }

    /// A running sender's poll has ended: if places given back meanwhile woke nobody and
    /// some are left, the next sender is woken.
    fn stop_running(&self) {
        if self.running.fetch_sub(1, Ordering::SeqCst) == 1
            && self.skipped.swap(false, Ordering::SeqCst)
            && self.has_room().is_ok()
        {
            self.wake_one();
        }
    }

    /// Wakes the sender that has waited longest: some sender was counted in as waiting.
    #[inline(never)]
    fn wake_first(&self) {
        let woken = {
            let mut waiters = self.waiters();
            let woken = waiters.pop_front_ticket();
            woken.map(|(ticket, owner, waker)| {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                // The last one woken came back for more places: senders are greedy.
                let greedy = self.came_back.swap(false, Ordering::Relaxed);
                self.greedy.store(greedy, Ordering::Relaxed);
                self.last_woken.store(owner, Ordering::Relaxed);
                // Before the sender can see that it was woken: it clears the flag then.
                self.woken.store(true, Ordering::SeqCst);
                self.woken_below.store(ticket + 1, Ordering::Release);
                waker
            })
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
        // The usual case: nobody waits. A sender that registers from now on sees `CLOSED`
        // as it looks after registering (SeqCst, as in `try_take`), and gives up.
        if self.waiting.load(Ordering::SeqCst) == 0 {
            self.woken_below.store(u64::MAX, Ordering::Release);
            return;
        }
        let woken = {
            let mut waiters = self.waiters();
            self.waiting.fetch_sub(waiters.len(), Ordering::SeqCst);
            self.woken_below.store(u64::MAX, Ordering::Release);
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
/// A place given back while senders wait wakes the one that has waited longest. When senders
/// take more than one place each (the last one woken came back to wait again), a place given
/// back while a woken sender has yet to look wakes nobody else: that sender will see every
/// such place, so a burst of places (a receiver handling a burst of items) wakes one sender,
/// which fills them, rather than one per place, each finding the places gone; once it has
/// taken its own, it wakes the next if places are left. Senders that take one place each
/// are woken one per place. One that is woken but finds the place gone (a sender that did
/// not wait took it first) queues again, and the next place given back wakes the next in
/// line; one that goes away without looking passes its wake-up on. A greedy sender woken
/// that has taken its place may go on to run ([`Wait::will_run`], [`run`]).
pub(crate) struct Wait<'a, F> {
    meter: &'a Meter,
    look: F,
    /// Its place in the queue while registered ([`NO_TICKET`] otherwise, or
    /// [`WOKEN_GREEDY`] once done), with [`SEEN`] set once its sender has seen that it
    /// blocks.
    ticket: u64,
    /// Who waits: a thread's id, or 0.
    owner: u64,
}

/// A [`Wait`] that is not registered. Tickets count up from 0 and never reach it, nor
/// [`SEEN`].
const NO_TICKET: u64 = u64::MAX;

/// The bit of a [`Wait`]'s ticket that says its sender has seen that it blocks.
const SEEN: u64 = 1 << 62;

/// A [`Wait`] that took its place once woken, while senders were greedy: not registered.
const WOKEN_GREEDY: u64 = u64::MAX - 1;

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

    /// After a `Ready(Ok)`: whether the sender took its place once woken, while senders
    /// were greedy (each came back for more places). Such a sender is likely to go on
    /// sending: if it will [`run`], it says so here (and the wait passes nothing on);
    /// otherwise dropping the wait passes on what the sender will not take.
    #[inline]
    pub(crate) fn will_run(&mut self) -> bool {
        if self.ticket != WOKEN_GREEDY {
            return false;
        }
        self.ticket = NO_TICKET;
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
                Ok(()) => {
                    if this.meter.greedy.load(Ordering::Relaxed) {
                        // Its caller decides: it runs, or passes on as it drops this.
                        this.ticket = WOKEN_GREEDY;
                    } else {
                        // Places this sender will not take may be left: the next one looks.
                        this.meter.pass_on();
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(Refused::Closed) => return Poll::Ready(Err(Closed)),
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
        if self.ticket == WOKEN_GREEDY {
            // Done, and its sender will not run: places it will not take may be left.
            self.meter.pass_on();
            return;
        }
        // Dropped while waiting (the sender gave up, or its thread was aborted).
        if self.ticket != NO_TICKET {
            self.meter.unregister(self.ticket & !SEEN);
            self.ticket = NO_TICKET;
        }
    }
}

/// Where the task being polled on this OS thread stands ([`POLL`]): outside a
/// [`sending_poll`], a sender there cannot run.
const OUTSIDE: u8 = 0;
/// Inside a [`sending_poll`].
const INSIDE: u8 = 1;
/// Inside a [`sending_poll`], with a sender running.
const RUNS: u8 = 2;

thread_local! {
    /// Where the task being polled stands: what the end of every poll looks at, one byte
    /// without a destructor.
    static POLL: Cell<u8> = const { Cell::new(OUTSIDE) };
    /// The places of the queue whose sender runs, while one does.
    static RUNNING: Cell<Option<Places>> = const { Cell::new(None) };
}

/// Whether a sender woken may run: it is polled inside a [`sending_poll`] (a thread's
/// task, or a task polled in place inside one), whose end ends the run.
#[inline]
pub(crate) fn may_run() -> bool {
    POLL.get() != OUTSIDE
}

/// For a sender woken while senders are greedy, that has taken its place
/// ([`Wait::will_run`]) in a [`sending_poll`] ([`may_run`]): it runs until the end of
/// this poll of its task. Places given back meanwhile wake nobody while something is
/// queued, as it goes on taking them; the end of the poll wakes the next sender if
/// places are left.
pub(crate) fn run(places: Places) {
    places.start_running();
    POLL.set(RUNS);
    if let Some(before) = RUNNING.replace(Some(places)) {
        before.stop_running();
    }
}

/// Ends the run of the sender that runs in the task being polled.
#[cold]
#[inline(never)]
fn end_run() {
    if let Some(places) = RUNNING.take() {
        places.stop_running();
    }
}

/// Polls a thread's task: a sender woken in it may [`run`], and its run ends with the
/// poll, also when the poll panics.
#[inline]
pub(crate) fn sending_poll<R>(poll: impl FnOnce() -> R) -> R {
    struct End(u8);
    impl Drop for End {
        #[inline]
        fn drop(&mut self) {
            if POLL.replace(self.0) == RUNS {
                end_run();
            }
        }
    }
    let _end = End(POLL.replace(INSIDE));
    poll()
}

/// Items in order, in chunks that are each one allocation below 64 KB (of at most
/// [`Chunks::LIMIT`] items): glibc's `free` of a larger block consolidates the heap and
/// gives its top back to the system, so a parent taking the exit reports of a large tree
/// that is freed at the same time would make the next tree fault all its memory in again.
/// A chunk emptied by the receiver is freed, so a burst leaves at most one chunk behind.
struct Chunks<E> {
    /// The oldest items; the only chunk of a queue that never holds more than
    /// [`LIMIT`](Self::LIMIT) (so a small queue makes one allocation, as it grows).
    first: VecDeque<E>,
    /// The chunks after it, each made whole, while a burst is larger.
    rest: VecDeque<VecDeque<E>>,
}

impl<E> Chunks<E> {
    /// Items per chunk: 32 KB of them, at least one.
    const LIMIT: usize = {
        let size = std::mem::size_of::<E>();
        if size == 0 || size > 32 * 1024 {
            1
        } else {
            32 * 1024 / size
        }
    };

    const fn new() -> Self {
        Self {
            first: VecDeque::new(),
            rest: VecDeque::new(),
        }
    }

    /// Items a queue has room for as it is made: what a `VecDeque` makes room for on its
    /// first push.
    const FIRST_ROOM: usize = if std::mem::size_of::<E>() > 1024 {
        1
    } else {
        4
    };

    /// Empty, with room for a few items: a thread's inbound queue is made with its first
    /// child, and the first items it takes are often the exit reports of a stop, whose
    /// cost (the stop of a tree) should not include the allocation. The receiver swaps
    /// its buffer with the queue's, so both are made so.
    fn with_room() -> Self {
        Self {
            first: VecDeque::with_capacity(Self::FIRST_ROOM),
            rest: VecDeque::new(),
        }
    }

    /// Whether there is no item (the first chunk is empty only when it is the only one).
    fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    /// How many items there are.
    fn len(&self) -> usize {
        self.first.len() + self.rest.iter().map(VecDeque::len).sum::<usize>()
    }

    #[inline]
    fn push_back(&mut self, item: E) {
        if self.rest.is_empty() && self.first.len() < Self::LIMIT {
            self.first.push_back(item);
            return;
        }
        self.push_chunked(item);
    }

    #[cold]
    fn push_chunked(&mut self, item: E) {
        match self.rest.back_mut() {
            Some(last) if last.len() < Self::LIMIT => last.push_back(item),
            _ => {
                let mut chunk = VecDeque::with_capacity(Self::LIMIT);
                chunk.push_back(item);
                self.rest.push_back(chunk);
            }
        }
    }

    /// The item is returned in the `Option` it was taken in, not unwrapped and wrapped
    /// again: each of those would copy it.
    #[inline]
    fn pop_front(&mut self) -> Option<E> {
        let item = self.first.pop_front();
        if self.first.is_empty()
            && let Some(next) = self.rest.pop_front()
        {
            // The emptied chunk is freed: a burst leaves at most one chunk behind.
            self.first = next;
        }
        item
    }
}

impl<E> Default for Chunks<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// What the senders and the receiver of one queue share: its places, and its items under
/// one short lock.
struct Shared<E> {
    /// The data pointer of the receiver's waker while it waits with its waker stored and
    /// nothing queued; null otherwise. Set under the lock by the receiver as it begins to
    /// wait (or takes everything queued), cleared under the lock by whatever takes the
    /// stored waker, before the receiver is woken.
    parked: AtomicPtr<()>,
    /// Live senders: the receiver sees the end once none is left and all is read.
    senders: AtomicUsize,
    meter: Meter,
    state: Mutex<State<E>>,
}

struct State<E> {
    items: Chunks<E>,
    /// Which of `items` are in their senders' own places.
    owned: Owned,
    /// The receiver, when it waits.
    receiver: Option<Waker>,
    /// The receiver is gone: nothing put in from now on would ever be taken out.
    gone: bool,
}

impl<E> Shared<E> {
    fn state(&self) -> MutexGuard<'_, State<E>> {
        lock(&self.state)
    }

    /// Under the lock: takes the receiver's waker, to be woken once the lock is released.
    #[inline]
    fn take_receiver(&self, state: &mut State<E>) -> Option<Waker> {
        let receiver = state.receiver.take();
        if receiver.is_some() {
            self.parked.store(std::ptr::null_mut(), Ordering::Release);
        }
        receiver
    }

    /// Under the lock, with nothing queued: stores the receiver's waker and sets `parked`.
    #[inline]
    fn park(&self, state: &mut State<E>, cx: &Context<'_>) {
        match &mut state.receiver {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        self.parked
            .store(cx.waker().data().cast_mut(), Ordering::Release);
    }

    /// Queues `item`; gives it back if the receiver is gone.
    #[inline]
    fn put(&self, item: E) -> Result<(), E> {
        let receiver = {
            let mut state = self.state();
            if state.gone {
                return Err(item);
            }
            state.items.push_back(item);
            self.take_receiver(&mut state)
        };
        if let Some(receiver) = receiver {
            receiver.wake();
        }
        Ok(())
    }
}

impl<E> Shared<E> {
    /// Queues the item `make` makes of `msg` in its sender's own place, taken by the sender
    /// and held by `owner`; gives both back if the receiver is gone.
    #[cold]
    fn put_own<M>(
        &self,
        msg: M,
        make: impl FnOnce(M) -> E,
        owner: Arc<dyn HoldsOwnPlace>,
    ) -> Result<(), (M, Owner)> {
        let receiver = {
            let mut state = self.state();
            if state.gone {
                return Err((msg, owner));
            }
            let at = state.items.len();
            state.owned.push_back((at, owner));
            state.items.push_back(make(msg));
            self.take_receiver(&mut state)
        };
        if let Some(receiver) = receiver {
            receiver.wake();
        }
        Ok(())
    }
}

/// The places of an inbound queue, as its thread's node keeps them: the node names neither
/// the queue nor its items.
#[derive(Clone)]
pub(crate) struct Places(Arc<dyn HoldsMeter>);

/// A queue, seen only for its places.
trait HoldsMeter: Send + Sync {
    fn meter(&self) -> &Meter;
}

impl<E: Send> HoldsMeter for Shared<E> {
    fn meter(&self) -> &Meter {
        &self.meter
    }
}

impl std::ops::Deref for Places {
    type Target = Meter;

    fn deref(&self) -> &Meter {
        self.0.meter()
    }
}

/// The receiving side, owned by the thread (or, for a root's UP messages, by its handle).
///
/// It takes everything queued at once, under one lock, into a buffer of its own, and hands
/// the items out from there: a thread that handles a burst from many children locks once
/// per burst, not once per item.
pub(crate) struct Inbox<E> {
    shared: Arc<Shared<E>>,
    /// Items taken off the shared queue and not yet handed out, in order: all of them came
    /// before anything queued now. Behind a lock only so that the inbox is `Sync` for items
    /// that are `Send` alone (a thread's context is shared across its awaits): the
    /// receiver reaches it through `&mut self`, without locking.
    taken: Mutex<Taken<E>>,
}

/// The receiver's buffer: items taken off the shared queue and not yet handed out, and
/// which of them are in their senders' own places.
struct Taken<E> {
    items: Chunks<E>,
    /// The items in their senders' own places, by position from the first item taken with
    /// them; each place is freed as its item is handed out.
    owned: Owned,
    /// How many items are to be handed out up to the first of `owned`, that one included;
    /// 0 with none (one test per item).
    until_own: usize,
}

impl<E> Taken<E> {
    fn new() -> Self {
        Self {
            items: Chunks::with_room(),
            owned: Owned::new(),
            until_own: 0,
        }
    }

    /// Takes the queue's items into this empty buffer, with the list of those in their
    /// senders' own places (every own place of the last burst was freed as its item was
    /// handed out, so this one's list is empty).
    #[inline]
    fn swap_in(&mut self, state: &mut State<E>) {
        debug_assert!(self.owned.is_empty() && self.until_own == 0);
        std::mem::swap(&mut self.items, &mut state.items);
        if !state.owned.is_empty() {
            std::mem::swap(&mut self.owned, &mut state.owned);
            self.until_own = self.owned.front().map_or(0, |(at, _)| at + 1);
        }
    }

    /// The item just handed out was in its sender's own place: frees the place.
    #[cold]
    fn free_own_place(&mut self) {
        if let Some((at, owner)) = self.owned.pop_front() {
            owner.own_place().free();
            self.until_own = self.owned.front().map_or(0, |(next, _)| {
                debug_assert!(*next > at, "one item per position");
                next - at
            });
        }
        // The list of a large burst is freed with its last item, as the items' chunks
        // are: kept, it would hold a few words per child of the burst for good.
        if self.owned.is_empty() && self.owned.capacity() > Self::OWNED_KEPT {
            self.owned = Owned::new();
        }
    }

    /// The room kept in a list of items in own places once it is empty.
    const OWNED_KEPT: usize = 64;
}

/// The receiver's own buffer, reached without locking.
#[inline]
fn own<E>(taken: &mut Mutex<Taken<E>>) -> &mut Taken<E> {
    taken.get_mut().unwrap_or_else(PoisonError::into_inner)
}

impl<E: Send + 'static> Inbox<E> {
    /// The metered places, for the thread's node: who waits on the thread for a place, and
    /// how many places are taken.
    pub(crate) fn places(&self) -> Places {
        Places(Arc::clone(&self.shared) as Arc<dyn HoldsMeter>)
    }
}

/// A sending side: held by each parent's sink and by stream and job tasks.
pub(crate) struct InboxSender<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Clone for InboxSender<E> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E> Drop for InboxSender<E> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last sender: a waiting receiver is woken to see the end. One that is gone
        // (it closed the meter as it went) has nothing to see.
        if self.shared.meter.taken.load(Ordering::Acquire) & CLOSED != 0 {
            return;
        }
        let receiver = {
            let mut state = self.shared.state();
            self.shared.take_receiver(&mut state)
        };
        if let Some(receiver) = receiver {
            receiver.wake();
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
    let shared = Arc::new(Shared {
        parked: AtomicPtr::new(std::ptr::null_mut()),
        senders: AtomicUsize::new(1),
        meter: Meter::new(capacity),
        state: Mutex::new(State {
            items: Chunks::with_room(),
            owned: Owned::new(),
            receiver: None,
            gone: false,
        }),
    });
    let sender = InboxSender {
        shared: Arc::clone(&shared),
    };
    let inbox = Inbox {
        shared,
        taken: Mutex::new(Taken::new()),
    };
    (sender, inbox)
}

impl<E: Metered> Inbox<E> {
    /// Hands out the next item taken, giving its place back. Always inlined: called apart,
    /// it would return the item through memory, for its caller to read back at once.
    #[inline(always)]
    fn hand_out(&mut self) -> Option<E> {
        // Looked at in place: moved out of its `Option` and back, an item is copied twice.
        let taken = own(&mut self.taken);
        let item = taken.items.pop_front();
        if let Some(handed) = &item {
            if handed.is_metered() {
                self.shared.meter.give_back();
            }
            if taken.until_own != 0 {
                taken.until_own -= 1;
                if taken.until_own == 0 {
                    taken.free_own_place();
                }
            }
        }
        item
    }

    /// Takes the next item; `Ready(None)` once every sender is gone and all is read.
    ///
    /// Spends the task's cooperative budget like tokio's own channels, so a thread whose
    /// inbound queue never empties still lets the other tasks of its worker run.
    #[inline]
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<E>> {
        let empty = own(&mut self.taken).items.is_empty();
        if empty {
            // Waiting already with this waker, and nothing has come since (whatever would
            // change that clears `parked` before it wakes the receiver).
            let parked = self.shared.parked.load(Ordering::Acquire);
            if !parked.is_null() && std::ptr::eq(parked, cx.waker().data()) {
                return Poll::Pending;
            }
        }
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        if empty {
            std::task::ready!(self.take_all(cx));
        }
        coop.made_progress();
        Poll::Ready(self.hand_out())
    }

    /// Under one lock, takes everything queued (and begins to wait, so that the looks
    /// after handling it need no lock while nothing comes); with nothing queued, waits, or
    /// sees the end. `Ready` with items in `taken`, or with none at the end.
    fn take_all(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.shared.state();
        if state.items.is_empty() {
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                return Poll::Ready(());
            }
            self.shared.park(&mut state, cx);
            return Poll::Pending;
        }
        own(&mut self.taken).swap_in(&mut state);
        // An item queued from now on wakes the receiver, as it would wake a waiting one.
        // With every sender gone nothing will come: it finds the end under the lock.
        if self.shared.senders.load(Ordering::Acquire) != 0 {
            self.shared.park(&mut state, cx);
        }
        Poll::Ready(())
    }

    /// Takes the next item if there is one now.
    #[inline]
    pub(crate) fn try_recv(&mut self) -> Option<E> {
        if own(&mut self.taken).items.is_empty() {
            // The receiver waits with its waker stored: nothing has come since.
            if !self.shared.parked.load(Ordering::Acquire).is_null() {
                return None;
            }
            let mut state = self.shared.state();
            if state.items.is_empty() {
                return None;
            }
            own(&mut self.taken).swap_in(&mut state);
        }
        self.hand_out()
    }
}

impl<E> Inbox<E> {
    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        // Uncontended: only the receiver, which holds the inbox, ever locks `taken`.
        lock(&self.taken).items.is_empty()
            && (!self.shared.parked.load(Ordering::Acquire).is_null()
                || self.shared.state().items.is_empty())
    }
}

impl<E> Drop for Inbox<E> {
    fn drop(&mut self) {
        // Wakes anyone waiting for room: the queue is gone.
        self.shared.meter.close();
        let left = {
            let mut state = self.shared.state();
            state.gone = true;
            state.receiver = None;
            self.shared
                .parked
                .store(std::ptr::null_mut(), Ordering::Release);
            (
                std::mem::take(&mut state.items),
                std::mem::take(&mut state.owned),
            )
        };
        // Dropped outside the lock: an item's drop may send (a reply slot closing).
        drop(left);
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
        match self.shared.meter.try_take() {
            Ok(()) => {
                // The receiver only goes away after closing the meter, so this fails only
                // in a race with it; the thread is gone then and there is no one to tell.
                let _ = self.shared.put(make(msg));
                Ok(())
            }
            Err(refused) => Err((refused, msg)),
        }
    }

    /// The metered places, for a caller that waits for one itself.
    pub(crate) fn meter(&self) -> &Meter {
        &self.shared.meter
    }

    /// The metered places, held.
    pub(crate) fn places(&self) -> Places
    where
        E: Send + 'static,
    {
        Places(Arc::clone(&self.shared) as Arc<dyn HoldsMeter>)
    }

    /// Queues a metered item for which the caller has taken a place from
    /// [`meter`](Self::meter).
    pub(crate) fn send_permitted(&self, item: E) {
        let _ = self.shared.put(item);
    }

    /// Queues an item that is not metered; never waits. `false` if the receiver is gone.
    pub(crate) fn send_unmetered(&self, item: E) -> bool {
        self.shared.put(item).is_ok()
    }

    /// Queues the item `make` makes of `msg`, not metered, in its sender's own place, which
    /// the sender has taken and `owner` holds; the place is freed as the item is handed
    /// out. If the receiver is gone, frees the place and gives `msg` back.
    pub(crate) fn send_own<M>(
        &self,
        msg: M,
        make: impl FnOnce(M) -> E,
        owner: Arc<dyn HoldsOwnPlace>,
    ) -> Result<(), M> {
        self.shared
            .put_own(msg, make, owner)
            .map_err(|(msg, owner)| {
                owner.own_place().free();
                msg
            })
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

    /// Sends like `Ctx::up` from the thread `owner`: a place now, or wait for one.
    async fn send_up(tx: &InboxSender<Item>, owner: u64, v: u64) {
        if let Err((refused, v)) = tx.try_send_with(v, Item::Metered) {
            assert!(matches!(refused, Refused::Full), "the receiver is alive");
            tx.meter().take(owner).await.expect("the receiver is alive");
            tx.send_permitted(Item::Metered(v));
        }
    }

    /// Sends like `Ctx::up` in a thread's task: a place now, or wait for one, and run once
    /// woken among greedy senders.
    async fn send_up_running(tx: &InboxSender<Item>, owner: u64, v: u64) {
        if let Err((refused, v)) = tx.try_send_with(v, Item::Metered) {
            assert!(matches!(refused, Refused::Full), "the receiver is alive");
            let mut wait = tx.meter().take(owner);
            let room = poll_fn(|cx| Pin::new(&mut wait).poll(cx)).await;
            room.expect("the receiver is alive");
            if wait.will_run() {
                run(tx.places());
            }
            drop(wait);
            tx.send_permitted(Item::Metered(v));
        }
    }

    /// A task polled as a thread's task is: a sender's run ends with each poll.
    struct AsThread<F>(Pin<Box<F>>);

    impl<F: Future> Future for AsThread<F> {
        type Output = F::Output;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            sending_poll(|| self.0.as_mut().poll(cx))
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
                tokio::spawn(AsThread(Box::pin(async move {
                    for i in 0..EACH {
                        let v = s * EACH + i;
                        match s % 4 {
                            // Saying who they are, as threads do: they come back for
                            // more places, so the meter takes them for greedy.
                            0 => send_up(&tx, s + 1, v).await,
                            // And, woken, going on to take places until their poll ends.
                            2 => send_up_running(&tx, s + 1, v).await,
                            _ => send_item(&tx, v).await,
                        }
                    }
                })));
            }
            drop(tx);
            let mut seen = vec![false; (SENDERS * EACH) as usize];
            let mut last = vec![None; SENDERS as usize];
            let mut max_metered = 0;
            while let Some(inbound) = poll_fn(|cx| rx.poll_recv(cx)).await {
                let v = match inbound {
                    Item::Metered(v) | Item::Unmetered(v) => v,
                };
                assert!(!seen[v as usize], "{v} arrived twice");
                let sender = (v / EACH) as usize;
                assert!(
                    last[sender].is_none_or(|l| l < v),
                    "{v} arrived after {:?} from the same sender",
                    last[sender]
                );
                last[sender] = Some(v);
                seen[v as usize] = true;
                max_metered = max_metered.max(rx.shared.meter.taken.load(Ordering::SeqCst));
            }
            assert!(seen.iter().all(|s| *s), "every message arrived");
            assert!(max_metered <= 2, "at most `capacity` places taken");
        });
    }

    #[test]
    fn running_senders_through_a_tiny_queue_lose_nothing_and_never_stall() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("a runtime");
        // A stall fails the test rather than hanging it.
        let _enter = rt.enter();
        rt.block_on(tokio::time::timeout(
            std::time::Duration::from_secs(60),
            async {
                const SENDERS: u64 = 50;
                const EACH: u64 = 400;
                let (tx, mut rx) = inbox::<Item>(4);
                for s in 0..SENDERS {
                    let tx = tx.clone();
                    tokio::spawn(AsThread(Box::pin(async move {
                        for i in 0..EACH {
                            send_up_running(&tx, s + 1, s * EACH + i).await;
                            if i % 100 == 99 {
                                // Away for a while, as a thread awaiting something else.
                                tokio::task::yield_now().await;
                            }
                        }
                    })));
                }
                drop(tx);
                let mut next = vec![0; SENDERS as usize];
                let mut got = 0;
                while let Some(inbound) = poll_fn(|cx| rx.poll_recv(cx)).await {
                    let Item::Metered(v) = inbound else {
                        unreachable!("only metered items are sent")
                    };
                    let sender = (v / EACH) as usize;
                    assert_eq!(v % EACH, next[sender], "in order from each sender");
                    next[sender] += 1;
                    got += 1;
                    assert!(rx.shared.meter.taken.load(Ordering::SeqCst) <= 4);
                }
                assert_eq!(got, SENDERS * EACH, "every message arrived");
                assert_eq!(rx.shared.meter.running.load(Ordering::SeqCst), 0);
            },
        ))
        .expect("no sender is left waiting while a place is free");
    }

    /// Waits for `owners` (each in order) on a full queue, each with a waker that counts.
    fn waiting<'a>(
        tx: &'a InboxSender<Item>,
        owners: &[u64],
    ) -> (Vec<Take<'a>>, Vec<Arc<Count>>, Vec<Waker>) {
        let counts: Vec<Arc<Count>> = owners.iter().map(|_| Arc::new(Count::default())).collect();
        let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(Arc::clone(c))).collect();
        let mut waits: Vec<Take<'_>> = owners.iter().map(|&o| tx.meter().take(o)).collect();
        for (wait, waker) in waits.iter_mut().zip(&wakers) {
            let mut cx = Context::from_waker(waker);
            assert!(
                Pin::new(wait).poll(&mut cx).is_pending(),
                "the queue is full"
            );
        }
        (waits, counts, wakers)
    }

    /// Readies a queue of capacity 2 for greedy senders: owner 1 is woken for a place and
    /// takes it, so that it is greedy once it waits again. Leaves items 2 and 3 queued
    /// (the queue full), item 2 already in the receiver's own buffer.
    fn greedy_senders(tx: &InboxSender<Item>, rx: &mut Inbox<Item>, rcx: &mut Context<'_>) {
        assert!(tx.try_send_with(1, Item::Metered).is_ok());
        assert!(tx.try_send_with(2, Item::Metered).is_ok());
        let (mut first, counts, wakers) = waiting(tx, &[1]);
        assert_eq!(next_now(rx, rcx), Some(Some(1)));
        assert_eq!(counts[0].0.load(Ordering::SeqCst), 1);
        let mut cx = Context::from_waker(&wakers[0]);
        assert!(matches!(
            Pin::new(&mut first[0]).poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert!(!first[0].will_run(), "senders are not greedy yet");
        drop(first);
        tx.send_permitted(Item::Metered(3));
    }

    /// In a sending poll, on a queue readied by `greedy_senders`: the receiver hands out
    /// item 2, which wakes the sender of `wait` (greedy); it takes its place, runs, and
    /// queues `item`.
    fn first_runs(
        tx: &InboxSender<Item>,
        rx: &mut Inbox<Item>,
        rcx: &mut Context<'_>,
        wait: &mut Take<'_>,
        waker: &Waker,
        item: u64,
    ) {
        assert_eq!(next_now(rx, rcx), Some(Some(2)));
        let mut cx = Context::from_waker(waker);
        assert!(matches!(
            Pin::new(&mut *wait).poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert!(wait.will_run(), "woken among greedy senders");
        run(tx.places());
        tx.send_permitted(Item::Metered(item));
    }

    /// On a queue readied by `greedy_senders`, with owners 1 and 2 waiting: in a sending
    /// poll, owner 1 is woken, runs and queues `item` (`first_runs`); then `then` goes on
    /// in the same poll, with how often owner `i` has been woken.
    fn while_owner_1_runs(
        item: u64,
        then: impl FnOnce(
            &InboxSender<Item>,
            &mut Inbox<Item>,
            &mut Context<'_>,
            &dyn Fn(usize) -> usize,
        ),
    ) {
        let receiver = Waker::from(Arc::new(Count::default()));
        let mut rcx = Context::from_waker(&receiver);
        let (tx, mut rx) = inbox::<Item>(2);
        greedy_senders(&tx, &mut rx, &mut rcx);
        let (mut waits, counts, wakers) = waiting(&tx, &[1, 2]);
        let woken = |i: usize| counts[i].0.load(Ordering::SeqCst);
        sending_poll(|| {
            first_runs(&tx, &mut rx, &mut rcx, &mut waits[0], &wakers[0], item);
            then(&tx, &mut rx, &mut rcx, &woken);
        });
    }

    #[test]
    fn places_given_back_while_a_woken_sender_runs_wake_nobody_until_its_poll_ends() {
        let receiver = Waker::from(Arc::new(Count::default()));
        let mut rcx = Context::from_waker(&receiver);
        let (tx, mut rx) = inbox::<Item>(2);
        greedy_senders(&tx, &mut rx, &mut rcx);
        // Owner 1 comes back (greedy), then owners 2 and 3 wait behind it.
        let (mut waits, counts, wakers) = waiting(&tx, &[1, 2, 3]);
        let woken = |i: usize| counts[i].0.load(Ordering::SeqCst);

        sending_poll(|| {
            // A place back wakes owner 1, which takes it and runs.
            first_runs(&tx, &mut rx, &mut rcx, &mut waits[0], &wakers[0], 4);
            assert_eq!((woken(0), woken(1), woken(2)), (1, 0, 0));
            // Places given back while it runs wake nobody: it takes them itself.
            assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(3)));
            assert!(tx.try_send_with(5, Item::Metered).is_ok());
            assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(4)));
            assert_eq!((woken(1), woken(2)), (0, 0));
        });
        // Its poll ended with a place left: the sender that has waited longest is woken.
        assert_eq!((woken(1), woken(2)), (1, 0));
        assert!(matches!(
            Pin::new(&mut waits[1]).poll(&mut Context::from_waker(&wakers[1])),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(tx.meter().running.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_running_sender_that_keeps_taking_places_holds_the_others_up_for_one_queue_of_places() {
        while_owner_1_runs(10, |tx, rx, rcx, woken| {
            // Two places (the capacity) wake nobody; the third wakes owner 2.
            for v in [3, 10] {
                assert_eq!(next_now(rx, rcx), Some(Some(v)));
                assert!(tx.try_send_with(v + 100, Item::Metered).is_ok());
                assert_eq!(woken(1), 0);
            }
            assert_eq!(next_now(rx, rcx), Some(Some(103)));
            assert_eq!(woken(1), 1, "woken although the sender still runs");
        });
    }

    #[test]
    fn a_running_sender_that_stops_sending_leaves_nobody_waiting_once_the_queue_is_empty() {
        while_owner_1_runs(4, |_tx, rx, rcx, woken| {
            // The sender sends nothing more, and the receiver hands out what is queued:
            // a place back with item 4 still queued wakes nobody; the last one does.
            assert_eq!(next_now(rx, rcx), Some(Some(3)));
            assert_eq!(woken(1), 0);
            assert_eq!(next_now(rx, rcx), Some(Some(4)));
            assert_eq!(woken(1), 1, "the queue is empty: the next sender is woken");
            assert_eq!(next_now(rx, rcx), None);
        });
    }

    #[test]
    fn senders_left_waiting_by_a_running_sender_are_not_taken_for_stuck_while_places_are_free() {
        while_owner_1_runs(4, |tx, rx, rcx, woken| {
            assert_eq!(next_now(rx, rcx), Some(Some(3)));
            // The queue is full again: owner 2 waits, and is left waiting.
            assert!(tx.try_send_with(5, Item::Metered).is_ok());
            assert!(tx.meter().has_waiting(2));
            assert_eq!(woken(1), 0);
            // A place is free, and owner 2 was left waiting for it: it is woken.
            assert_eq!(next_now(rx, rcx), Some(Some(4)));
            assert_eq!(woken(1), 0);
            assert!(!tx.meter().has_waiting(2), "woken for the free place");
            assert_eq!(woken(1), 1);
        });
    }

    #[test]
    fn a_sender_may_run_only_inside_a_sending_poll_which_leaves_things_as_it_found_them() {
        assert!(!may_run());
        sending_poll(|| {
            assert!(may_run());
            sending_poll(|| assert!(may_run()));
            assert!(may_run(), "the outer poll is still a sending poll");
        });
        assert!(!may_run());
        let panicked = std::panic::catch_unwind(|| sending_poll(|| panic!("the poll panics")));
        assert!(panicked.is_err());
        assert!(
            !may_run(),
            "a poll that panicked leaves no sending poll behind"
        );
    }

    #[test]
    fn a_running_sender_whose_poll_panics_still_ends_its_run() {
        let receiver = Waker::from(Arc::new(Count::default()));
        let mut rcx = Context::from_waker(&receiver);
        let (tx, mut rx) = inbox::<Item>(2);
        greedy_senders(&tx, &mut rx, &mut rcx);
        let (mut waits, counts, wakers) = waiting(&tx, &[1, 2]);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sending_poll(|| {
                first_runs(&tx, &mut rx, &mut rcx, &mut waits[0], &wakers[0], 4);
                assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(3)));
                panic!("the sender's handler panics");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(tx.meter().running.load(Ordering::SeqCst), 0);
        assert_eq!(
            counts[1].0.load(Ordering::SeqCst),
            1,
            "the place given back during the poll wakes the next sender"
        );
    }

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The value of the next item if one is there now; `Some(None)` at the end.
    fn next_now(rx: &mut Inbox<Item>, cx: &mut Context<'_>) -> Option<Option<u64>> {
        match rx.poll_recv(cx) {
            Poll::Ready(Some(Item::Metered(v) | Item::Unmetered(v))) => Some(Some(v)),
            Poll::Ready(None) => Some(None),
            Poll::Pending => None,
        }
    }

    /// A sender with an own place, as a thread's node keeps it.
    #[derive(Default)]
    struct Sender(OwnPlace);

    impl HoldsOwnPlace for Sender {
        fn own_place(&self) -> &OwnPlace {
            &self.0
        }
    }

    /// Sends like `Ctx::try_up` from `sender`: a metered place, else its own place, else
    /// the value back.
    fn try_up(tx: &InboxSender<Item>, sender: &Arc<Sender>, v: u64) -> Result<(), u64> {
        match tx.try_send_with(v, Item::Metered) {
            Ok(()) => Ok(()),
            Err((_, v)) if sender.0.try_take() => {
                let owner = Arc::clone(sender) as Arc<dyn HoldsOwnPlace>;
                tx.send_own(v, Item::Unmetered, owner)
            }
            Err((_, v)) => Err(v),
        }
    }

    #[test]
    fn each_sender_has_one_place_of_its_own_beyond_the_capacity() {
        let waker = Waker::from(Arc::new(Count::default()));
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = inbox::<Item>(2);
        let senders: Vec<Arc<Sender>> = (0..3).map(|_| Arc::default()).collect();

        // Two metered places, then each sender's own place, then nothing.
        for (v, sender) in [(1, 0), (2, 1), (3, 0), (4, 1), (5, 2)] {
            assert_eq!(try_up(&tx, &senders[sender], v), Ok(()), "item {v}");
        }
        assert_eq!(try_up(&tx, &senders[0], 6), Err(6));
        assert_eq!(try_up(&tx, &senders[2], 7), Err(7));

        // In order; each own place is free again once its item is handed out, not before.
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(1)));
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(2)));
        assert!(!senders[0].0.try_take(), "item 3 is still queued");
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(3)));
        assert_eq!(try_up(&tx, &senders[0], 8), Ok(()), "in a metered place");
        assert_eq!(try_up(&tx, &senders[0], 9), Ok(()), "in a metered place");
        assert_eq!(
            try_up(&tx, &senders[0], 10),
            Ok(()),
            "in its own place again"
        );
        assert_eq!(try_up(&tx, &senders[0], 11), Err(11));
        for v in [4, 5, 8, 9, 10] {
            assert_eq!(next_now(&mut rx, &mut cx), Some(Some(v)));
        }
        assert_eq!(next_now(&mut rx, &mut cx), None);
        assert!(
            senders.iter().all(|s| s.0.try_take()),
            "every own place is free"
        );
    }

    #[test]
    fn own_places_are_freed_across_bursts_and_by_try_recv() {
        let waker = Waker::from(Arc::new(Count::default()));
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = inbox::<Item>(1);
        let a: Arc<Sender> = Arc::default();
        let b: Arc<Sender> = Arc::default();
        // A burst: an exit-like unmetered item first, then a metered item, then two in
        // own places.
        assert!(tx.send_unmetered(Item::Unmetered(0)));
        assert_eq!(try_up(&tx, &a, 1), Ok(()));
        assert_eq!(try_up(&tx, &a, 2), Ok(()));
        assert_eq!(try_up(&tx, &b, 3), Ok(()));
        let next = |rx: &mut Inbox<Item>| match rx.try_recv() {
            Some(Item::Metered(v) | Item::Unmetered(v)) => Some(v),
            None => None,
        };
        assert_eq!(next(&mut rx), Some(0));
        assert_eq!(next(&mut rx), Some(1));
        assert_eq!(next(&mut rx), Some(2));
        // The next burst comes while `b`'s item is still to be handed out.
        assert_eq!(try_up(&tx, &a, 4), Ok(()), "a's own place is free");
        assert!(!b.0.try_take());
        assert_eq!(next(&mut rx), Some(3));
        assert!(b.0.try_take(), "freed with its item");
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(4)));
        assert!(a.0.try_take(), "freed with its item, in the next burst");
    }

    #[test]
    fn an_own_place_is_freed_and_the_message_given_back_if_the_receiver_is_gone() {
        let (tx, rx) = inbox::<Item>(1);
        let a: Arc<Sender> = Arc::default();
        assert_eq!(try_up(&tx, &a, 1), Ok(()));
        // The receiver goes between a sender finding the places taken and its send.
        assert!(a.0.try_take());
        drop(rx);
        let owner = Arc::clone(&a) as Arc<dyn HoldsOwnPlace>;
        assert!(matches!(tx.send_own(2, Item::Unmetered, owner), Err(2)));
        assert!(a.0.try_take(), "the place was freed");
        assert_eq!(Arc::strong_count(&a), 1);
    }

    #[test]
    fn own_places_are_freed_past_a_chunk_boundary() {
        let limit = Chunks::<Item>::LIMIT;
        let waker = Waker::from(Arc::new(Count::default()));
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = inbox::<Item>(limit + 1);
        let senders: Vec<Arc<Sender>> = (0..3).map(|_| Arc::default()).collect();
        let mut sent = 0;
        for _ in 0..=limit {
            assert_eq!(try_up(&tx, &senders[0], sent), Ok(()));
            sent += 1;
        }
        // The own items come after the first chunk, in the second.
        for sender in &senders {
            assert_eq!(try_up(&tx, sender, sent), Ok(()));
            sent += 1;
        }
        for v in 0..sent {
            assert!(
                !senders[2].0.try_take(),
                "freed before item {v} was handed out"
            );
            assert_eq!(next_now(&mut rx, &mut cx), Some(Some(v)));
        }
        assert!(
            senders.iter().all(|s| s.0.try_take()),
            "every own place is free"
        );
    }

    #[test]
    fn the_list_of_a_large_burst_of_own_places_is_freed_with_its_last_item() {
        let waker = Waker::from(Arc::new(Count::default()));
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = inbox::<Item>(1);
        let senders: Vec<Arc<Sender>> = (0..1_000).map(|_| Arc::default()).collect();
        for (v, sender) in (0..).zip(&senders) {
            assert_eq!(try_up(&tx, sender, v), Ok(()));
        }
        for v in 0..1_000 {
            assert_eq!(next_now(&mut rx, &mut cx), Some(Some(v)));
        }
        assert_eq!(own(&mut rx.taken).owned.capacity(), 0);
        assert!(lock(&rx.shared.state).owned.capacity() <= Taken::<Item>::OWNED_KEPT);
        assert!(
            senders.iter().all(|s| s.0.try_take()),
            "every own place is free"
        );
    }

    #[test]
    fn own_places_of_items_left_behind_go_with_the_receiver() {
        let (tx, rx) = inbox::<Item>(1);
        let a: Arc<Sender> = Arc::default();
        assert_eq!(try_up(&tx, &a, 1), Ok(()));
        assert_eq!(try_up(&tx, &a, 2), Ok(()));
        drop(rx);
        assert_eq!(
            Arc::strong_count(&a),
            1,
            "the queue holds the sender no more"
        );
        // Nothing will be taken out: the place stays taken, and a send finds the end.
        assert!(!a.0.try_take());
        assert!(matches!(
            tx.try_send_with(3, Item::Metered),
            Err((Refused::Closed, 3))
        ));
    }

    #[test]
    fn the_end_comes_after_the_last_items_whenever_the_senders_left() {
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);

        // Gone before the receiver took anything.
        let (tx, mut rx) = inbox::<Item>(4);
        tx.send_unmetered(Item::Unmetered(1));
        tx.send_unmetered(Item::Unmetered(2));
        drop(tx);
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(1)));
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(2)));
        assert_eq!(next_now(&mut rx, &mut cx), Some(None));

        // Gone while the receiver hands out what it took: it is woken, and sees the end.
        let (tx, mut rx) = inbox::<Item>(4);
        let other = tx.clone();
        tx.send_unmetered(Item::Unmetered(1));
        tx.send_unmetered(Item::Unmetered(2));
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(1)));
        drop(tx);
        other.send_unmetered(Item::Unmetered(3));
        let woken = count.0.load(Ordering::SeqCst);
        drop(other);
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(2)));
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(3)));
        assert_eq!(next_now(&mut rx, &mut cx), Some(None));
        assert!(
            woken >= 1,
            "an item put after a burst was taken wakes the receiver"
        );

        // Gone while the receiver waits: it is woken to see the end.
        let (tx, mut rx) = inbox::<Item>(4);
        assert_eq!(next_now(&mut rx, &mut cx), None);
        let before = count.0.load(Ordering::SeqCst);
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), before + 1, "woken");
        assert_eq!(next_now(&mut rx, &mut cx), Some(None));
    }

    #[test]
    fn a_burst_of_places_wakes_one_greedy_sender_and_none_waits_while_a_place_is_free() {
        let receiver = Waker::from(Arc::new(Count::default()));
        let mut rcx = Context::from_waker(&receiver);
        let (tx, mut rx) = inbox::<Item>(2);
        assert!(tx.try_send_with(1, Item::Metered).is_ok());
        assert!(tx.try_send_with(2, Item::Metered).is_ok());
        // Four senders (owners 1 to 4), and the second again later (owner 2).
        let owners = [1, 2, 3, 4, 2];
        let counts: Vec<Arc<Count>> = owners.iter().map(|_| Arc::new(Count::default())).collect();
        let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(Arc::clone(c))).collect();
        let mut waits: Vec<Take<'_>> = owners.iter().map(|&o| tx.meter().take(o)).collect();
        // Polls sender `i`; one that is done drops its wait, as a send does.
        let mut poll = |i: usize| {
            let mut cx = Context::from_waker(&wakers[i]);
            let polled = Pin::new(&mut waits[i]).poll(&mut cx);
            if polled.is_ready() {
                drop(std::mem::replace(&mut waits[i], tx.meter().take(0)));
            }
            polled
        };
        let woken = |i: usize| counts[i].0.load(Ordering::SeqCst);
        for i in 0..4 {
            assert!(poll(i).is_pending(), "the queue is full");
        }

        // Senders that take one place each are woken one per place.
        assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(1)));
        assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(2)));
        assert_eq!((woken(0), woken(1), woken(2), woken(3)), (1, 1, 0, 0));
        assert!(matches!(poll(0), Poll::Ready(Ok(()))));
        tx.send_permitted(Item::Metered(3));
        assert!(matches!(poll(1), Poll::Ready(Ok(()))));
        tx.send_permitted(Item::Metered(4));

        // The last one woken comes back for another place: senders are greedy, and two
        // places back wake the sender that has waited longest, once; it will see both.
        assert!(poll(4).is_pending(), "the queue is full");
        assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(3)));
        assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(4)));
        assert_eq!((woken(2), woken(3), woken(4)), (1, 0, 0));

        // It takes one place and goes on: the next is woken for the place left.
        assert!(matches!(poll(2), Poll::Ready(Ok(()))));
        assert_eq!((woken(3), woken(4)), (1, 0));
        assert!(matches!(poll(3), Poll::Ready(Ok(()))));
        assert!(poll(4).is_pending(), "the queue is full");
    }

    /// A sender polled on one worker while the receiver wakes it on another finds itself
    /// gone from the queue before `woken_below` says it was woken: replayed here by
    /// holding `woken_below` back. It counts as woken all the same, so with greedy
    /// senders a place given back later still wakes the next one.
    #[test]
    fn a_sender_woken_as_it_looks_does_not_hold_up_the_next() {
        let receiver = Waker::from(Arc::new(Count::default()));
        let mut rcx = Context::from_waker(&receiver);
        let (tx, mut rx) = inbox::<Item>(1);
        assert!(tx.try_send_with(1, Item::Metered).is_ok());
        // Owner 1 waits, then owner 2, then owner 1 again (so senders are greedy), then 3.
        let owners = [1, 2, 1, 3];
        let counts: Vec<Arc<Count>> = owners.iter().map(|_| Arc::new(Count::default())).collect();
        let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(Arc::clone(c))).collect();
        let mut waits: Vec<Take<'_>> = owners.iter().map(|&o| tx.meter().take(o)).collect();
        let poll = |waits: &mut [Take<'_>], i: usize| {
            let mut cx = Context::from_waker(&wakers[i]);
            Pin::new(&mut waits[i]).poll(&mut cx)
        };
        let woken = |i: usize| counts[i].0.load(Ordering::SeqCst);
        assert!(poll(&mut waits, 0).is_pending(), "the queue is full");
        assert!(poll(&mut waits, 1).is_pending());
        assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(1)));
        assert_eq!(woken(0), 1);
        assert!(matches!(poll(&mut waits, 0), Poll::Ready(Ok(()))));
        tx.send_permitted(Item::Metered(2));
        assert!(poll(&mut waits, 2).is_pending(), "owner 1 is back: greedy");
        assert!(poll(&mut waits, 3).is_pending());

        // The receiver wakes owner 2, which looks before it sees `woken_below` say so.
        assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(2)));
        assert_eq!(woken(1), 1);
        let ticket = waits[1].ticket & !SEEN;
        tx.meter().woken_below.store(ticket, Ordering::SeqCst);
        assert!(matches!(poll(&mut waits, 1), Poll::Ready(Ok(()))));
        tx.send_permitted(Item::Metered(3));

        // The place given back next wakes owner 1's second wait.
        assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(3)));
        assert_eq!((woken(2), woken(3)), (1, 0), "the next in line is woken");
        assert!(matches!(poll(&mut waits, 2), Poll::Ready(Ok(()))));
    }

    #[test]
    fn a_woken_sender_that_goes_away_passes_its_wake_up_on() {
        let (tx, mut rx) = inbox::<Item>(1);
        let receiver = Waker::from(Arc::new(Count::default()));
        let mut rcx = Context::from_waker(&receiver);
        assert!(tx.try_send_with(1, Item::Metered).is_ok());
        let counts: Vec<Arc<Count>> = (0..2).map(|_| Arc::new(Count::default())).collect();
        let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(Arc::clone(c))).collect();
        let mut first = tx.meter().take(0);
        let mut second = tx.meter().take(0);
        let mut cx = Context::from_waker(&wakers[0]);
        assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
        let mut cx = Context::from_waker(&wakers[1]);
        assert!(Pin::new(&mut second).poll(&mut cx).is_pending());
        assert_eq!(next_now(&mut rx, &mut rcx), Some(Some(1)));
        assert_eq!(counts[0].0.load(Ordering::SeqCst), 1);
        assert_eq!(counts[1].0.load(Ordering::SeqCst), 0);
        drop(first);
        assert_eq!(counts[1].0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            Pin::new(&mut second).poll(&mut cx),
            Poll::Ready(Ok(()))
        ));
    }

    #[test]
    fn items_keep_their_order_across_bursts_and_places_come_back_as_they_are_handed_out() {
        let waker = Waker::from(Arc::new(Count::default()));
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = inbox::<Item>(2);
        assert!(tx.try_send_with(1, Item::Metered).is_ok());
        tx.send_unmetered(Item::Unmetered(2));
        assert!(tx.try_send_with(3, Item::Metered).is_ok());
        assert!(matches!(
            tx.try_send_with(9, Item::Metered),
            Err((Refused::Full, 9))
        ));
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(1)));
        // One place back, though the rest of the burst is taken off the shared queue.
        assert!(tx.try_send_with(4, Item::Metered).is_ok());
        assert!(matches!(
            tx.try_send_with(9, Item::Metered),
            Err((Refused::Full, 9))
        ));
        assert_eq!(
            rx.try_recv().map(|i| matches!(i, Item::Unmetered(2))),
            Some(true)
        );
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(3)));
        assert!(!rx.is_empty());
        assert_eq!(next_now(&mut rx, &mut cx), Some(Some(4)));
        assert!(rx.is_empty());
        assert_eq!(next_now(&mut rx, &mut cx), None);
        assert!(rx.try_recv().is_none());
    }

    /// A thread's context holds its inbox and is shared across its awaits: the inbox must be
    /// `Sync` for items that are only `Send`, as its senders are.
    #[test]
    fn the_queue_is_shared_across_threads_for_items_that_are_only_send() {
        fn shared<T: Send + Sync>() {}
        shared::<Inbox<std::cell::Cell<u8>>>();
        shared::<InboxSender<std::cell::Cell<u8>>>();
        shared::<Places>();
    }

    #[test]
    fn a_large_burst_is_kept_in_chunks_below_64_kb_and_leaves_one_behind() {
        let waker = Waker::from(Arc::new(Count::default()));
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = inbox::<Item>(4);
        let burst = 3 * Chunks::<Item>::LIMIT + 7;
        for v in 0..burst as u64 {
            tx.send_unmetered(Item::Unmetered(v));
        }
        {
            let state = rx.shared.state();
            assert_eq!(state.items.rest.len(), 3);
            let size = std::mem::size_of::<Item>();
            assert!(state.items.first.capacity() * size < 64 * 1024);
            assert!(
                state
                    .items
                    .rest
                    .iter()
                    .all(|c| c.capacity() * size < 64 * 1024)
            );
        }
        for v in 0..burst as u64 {
            assert_eq!(next_now(&mut rx, &mut cx), Some(Some(v)));
        }
        assert!(
            own(&mut rx.taken).items.rest.is_empty(),
            "emptied chunks are freed"
        );
        assert_eq!(next_now(&mut rx, &mut cx), None);
    }

    #[test]
    fn a_dropped_receiver_wakes_waiting_senders_with_closed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let (tx, rx) = inbox::<Item>(1);
            send_up(&tx, 1, 1).await;
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

    #[test]
    fn senders_that_come_after_the_receiver_went_see_it_closed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let (tx, rx) = inbox::<Item>(1);
            // Nobody waits as the receiver goes.
            drop(rx);
            assert!(matches!(tx.meter().try_take(), Err(Refused::Closed)));
            assert!(tx.meter().take(0).await.is_err(), "a wait ends with Closed");
            assert!(tx.meter().wait_for_room().await.is_err());
            assert!(!tx.send_unmetered(Item::Unmetered(1)), "nothing is queued");
            // The last sender goes after the receiver.
            drop(tx);
        });
    }
}
