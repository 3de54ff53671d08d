//! A thread's DOWN queue: bounded, many senders, one receiver (the thread's loop), and kept
//! inside the thread's node rather than in an allocation of its own.
//!
//! Spawning a thread is a hot path, and so is stopping one. A queue in the node costs no
//! allocation and no memory beyond a few words until the first message (its buffer grows
//! on demand, up to the capacity), and it goes when the node goes. An idle child, the
//! common case in a large tree, never pays for a queue it does not use.
//!
//! Everything is under one short lock: the messages, the closed flag, the receiver's waker,
//! and the senders waiting for room. A send locks once; nothing is allocated per message
//! beyond the buffer's growth. A receive that finds more than one message queued takes them
//! all at once into the receiver's [`Batch`] (kept by the receiver, not in the queue: the
//! queue's buffer and the batch's change places, so neither is made again) and hands them
//! out from there without any lock. So the receiver locks once per burst, not once per
//! message, and many senders on several workers do not queue behind the receiver for the
//! lock. A receiver that waits with its waker stored looks again without the lock: one
//! atomic load says nothing has changed for it, so a thread woken for something else (a
//! timer, a child) does not touch the lock. A receiver that takes the last message begins
//! to wait under the same lock, so the looks that follow its handling of the message (is
//! there another? then, wait) need no lock either: a thread that handles its messages one
//! at a time as they come (an ask, a tell to many threads) locks once per message instead of
//! three times. A message that comes while it handles the last one wakes it, as it would
//! wake a waiting receiver.
//!
//! The places of a batch's messages stay taken, for `send`, until the receiver gives them
//! back ([`DownQueue::give_back`]), together and under one lock: when it looks for more
//! messages once the batch is handed out, and before its task waits or yields with
//! messages left in it, whichever comes first. Handing a message out touches nothing the
//! senders touch: it counts the message in [`Handed`], on a line of the receiver's own, so
//! that a receiver handing out a burst does not take the lock's line from senders on other
//! workers once per message. A place is nonetheless free as soon as its message is handed
//! out to those that cannot wait: `try_send` takes it from [`Handed`] (under the lock, and
//! not while senders wait), and so does a look for a cycle of waits through the queue,
//! which promises it to a waiting sender. A `send` that finds the queue full waits at most
//! until the receiver has handled, without waiting itself, the messages it took with the
//! one whose place it gets.
//!
//! Senders that find the queue full wait in arrival order ([`Waiters`]). A place freed
//! while senders wait is promised to the one that has waited longest, which is woken to
//! take it: a sender that arrives later cannot take it first, so no waiting sender starves.
//!
//! While the tree is watched ([`recording`]), one message in a few ([`Stamps::every`]) is
//! stamped with the time it was queued ([`Stamps`], beside the messages, made only then),
//! and the receiver is told that stamp when it hands the message out, to time its wait:
//! the stamps of the messages taken into the receiver's batch go into the batch with them.
//! Unwatched, a send and a receive each look at one more word, and nothing else; without
//! the `watch` feature, not even that.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;

use super::waiters::Waiters;
use crate::error::TrySendError;
use crate::lock::lock;
use crate::record::{FIRST_SAMPLE_EVERY, recording};

/// An empty buffer with room for more messages than this is given back.
const KEEP_BUFFER: usize = 1024;

/// What `parked` points to once the queue is closed with nothing left to receive (by
/// [`DownQueue::close`]): never a waker's data, and not null, so a look without the lock
/// sees that nothing will come.
static ENDED: u8 = 0;

fn ended() -> *mut () {
    std::ptr::from_ref(&ENDED).cast_mut().cast()
}

/// The largest capacity a queue takes: its places are counted in `u32`s.
pub(crate) const MAX_CAPACITY: usize = (u32::MAX >> 1) as usize;

/// The receiver's batch: messages it took out of the queue at once and has not handed out
/// yet. Kept by the receiver (its `DownReceiver`), which alone uses it, always through
/// `&mut`; the buffer is made the first time more than one message is taken at once.
///
/// The batch also counts the messages handed out of it since their places were last given
/// back to the queue ([`DownQueue::give_back`]), and shares that count with the queue
/// ([`Handed`]) so that `try_send` finds those places free.
pub(crate) struct Batch<D> {
    buffer: Option<Box<BatchBuffer<D>>>,
    /// Messages handed out whose places the queue still counts as taken.
    handed: u32,
}

/// The messages of a [`Batch`], and the count it shares with the queue.
///
/// The messages sit in a [`Mutex`] that is never locked ([`Mutex::get_mut`] reaches them
/// through `&mut`, at no cost): only so that the receiver, and a [`Proxy`](crate::Proxy)
/// that holds it, can be shared between threads while the messages are only `Send`.
struct BatchBuffer<D> {
    messages: Mutex<VecDeque<D>>,
    handed: Arc<Handed>,
    /// The stamps of the sampled messages in the batch, in order, each with how many
    /// messages are left in the batch once it is handed out (while watched).
    stamps: VecDeque<(usize, Instant)>,
}

/// How many messages the receiver handed out of its batch since it last gave their places
/// back to the queue: those places are free, though the queue's count of the batch
/// (`DownQueue::batched`) still holds them. Made with the receiver's first batch, and
/// shared by it with the queue.
///
/// Senders do not look here: a `send` that finds the queue full waits, and is promised a
/// place when the receiver gives them back (once its batch is handed out and it looks for
/// more, or before its task waits). `try_send`, which cannot wait, and a look for a cycle
/// of waits ([`DownQueue::has_waiting`]) take such a place from here, under the queue's
/// lock. On a cache line of its own: the receiver writes `count` for every message it hands
/// out, while senders come and go on the queue's lock.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct Handed {
    /// Written by the receiver alone: a store as it hands a message out, and back to 0,
    /// under the queue's lock, as it gives the places back.
    count: AtomicU32,
    /// How many of those places were taken already (by `try_send`, or promised by a look
    /// for a cycle): given back to the queue's count at once, under its lock, and so not
    /// again by the receiver. Read and written under the queue's lock only.
    claimed: AtomicU32,
}

impl<D> Default for Batch<D> {
    fn default() -> Self {
        Self {
            buffer: None,
            handed: 0,
        }
    }
}

impl<D> Drop for Batch<D> {
    #[inline]
    fn drop(&mut self) {
        if self.buffer.is_some() {
            self.drop_buffer();
        }
    }
}

impl<D> Batch<D> {
    /// Drops the buffer and what is left in it: out of line, as most threads never make
    /// one, and the end of a thread's task stays small.
    #[cold]
    #[inline(never)]
    fn drop_buffer(&mut self) {
        self.buffer = None;
    }

    /// The buffer, if made.
    #[inline]
    fn buffer_mut(&mut self) -> Option<&mut VecDeque<D>> {
        let buffer = self.buffer.as_mut()?;
        Some(
            buffer
                .messages
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// A message was handed out: counted, and the count shared with the queue.
    #[inline]
    fn count_handed(&mut self) {
        self.handed += 1;
        if let Some(buffer) = &self.buffer {
            // Release, as the lock would be: a `try_send` that learnt of the handing out
            // (from the thread's handler, through anything that orders the two) finds the
            // place free.
            buffer.handed.count.store(self.handed, Ordering::Release);
        }
    }

    /// Whether no message waits in the batch.
    #[inline]
    pub(crate) fn is_empty(&mut self) -> bool {
        self.buffer_mut().is_none_or(|batch| batch.is_empty())
    }

    /// Hands out the next message, and gives a large buffer back once the batch is empty
    /// (a thread with a large capacity keeps no burst's worth of memory while idle). If it
    /// was sampled, `sampled` is told when it was queued.
    #[inline]
    fn pop(&mut self, sampled: impl FnOnce(Instant)) -> Option<D> {
        let buffer = &mut **self.buffer.as_mut()?;
        let batch = buffer
            .messages
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let msg = batch.pop_front()?;
        let left = batch.len();
        if left == 0 && batch.capacity() > KEEP_BUFFER {
            *batch = VecDeque::new();
        }
        if cfg!(feature = "watch") && !buffer.stamps.is_empty() {
            hand_stamp(&mut buffer.stamps, left, sampled);
        }
        Some(msg)
    }

    /// Moves everything in `items` into the batch (empty) and hands out the first: the two
    /// buffers change places, so neither is made again. How many are left in the batch.
    /// The first batch shares its count of handed out messages with the queue (`handed`).
    #[inline]
    fn fill(
        &mut self,
        items: &mut VecDeque<D>,
        handed: &mut Option<Arc<Handed>>,
    ) -> Option<(D, usize)> {
        let batch = self
            .buffer
            .get_or_insert_with(|| {
                Box::new(BatchBuffer {
                    messages: Mutex::default(),
                    handed: Arc::clone(handed.get_or_insert_with(Arc::default)),
                    stamps: VecDeque::new(),
                })
            })
            .messages
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(items, batch);
        let msg = batch.pop_front()?;
        Some((msg, batch.len()))
    }

    /// Where the stamps of the messages in the batch go (made with the batch).
    fn stamps_mut(&mut self) -> Option<&mut VecDeque<(usize, Instant)>> {
        Some(&mut self.buffer.as_mut()?.stamps)
    }

    /// The capacity of the batch's buffer.
    #[cfg(test)]
    fn buffer(&mut self) -> usize {
        self.buffer_mut().map_or(0, |batch| batch.capacity())
    }
}

/// A message was handed out of a batch, `left` messages before its end: if the first of
/// the batch's `stamps` is its own, `sampled` is told when it was queued. A large buffer
/// of stamps is given back once empty, as the batch's own. Out of line: only the batches
/// of a watched thread have stamps.
#[cold]
#[inline(never)]
fn hand_stamp(stamps: &mut VecDeque<(usize, Instant)>, left: usize, sampled: impl FnOnce(Instant)) {
    if let Some(&(at_left, queued)) = stamps.front()
        && at_left == left
    {
        stamps.pop_front();
        if stamps.is_empty() && stamps.capacity() > KEEP_BUFFER {
            *stamps = VecDeque::new();
        }
        sampled(queued);
    }
}

/// The queue itself; the last field of its thread's node.
///
/// `repr(C)`, `parked` first: the node puts the fields its loop reads on every turn right
/// before the queue, so that they and `parked` share a cache line.
#[repr(C)]
pub(crate) struct DownQueue<D> {
    /// The data pointer of the receiver's waker while it waits with the queue empty and
    /// open, its waker stored; [`ENDED`]'s address once closed with nothing left; null
    /// otherwise. Set under the lock by the receiver as it begins to wait (or takes the
    /// last message), cleared under the lock by whatever takes the stored waker or closes
    /// the queue, before the receiver is woken.
    parked: AtomicPtr<()>,
    /// How many messages the receiver took into its [`Batch`] whose places it has not
    /// given back yet: handed out or not, their places count as taken for `send` until the
    /// receiver gives them back ([`DownQueue::give_back`]). Read and written under the lock
    /// only; an atomic outside the lock so that it shares a word with `capacity` and the
    /// node (which holds the queue) stays as small.
    batched: AtomicU32,
    /// At most [`MAX_CAPACITY`].
    capacity: u32,
    state: Mutex<State<D>>,
}

struct State<D> {
    items: VecDeque<D>,
    /// The thread stopped accepting messages (or its receiver is gone).
    closed: bool,
    /// The receiver is gone: nothing put in from now on would ever be taken out.
    gone: bool,
    /// The receiver, when it waits for a message.
    receiver: Option<Waker>,
    /// Senders waiting for room, in arrival order.
    senders: Waiters,
    /// Places promised to senders woken from `senders` that have not taken them yet. A
    /// `u32`, as `reserved`.
    promised: u32,
    /// Places held by [`Permit`]s. A `u32`, as `held`: the two share the word the flags
    /// above are padded to, so the node (which holds the queue) stays as small.
    reserved: u32,
    /// Places of messages the receiver took with [`DownQueue::poll_recv_held`] and has not
    /// [released](DownQueue::release_held) yet: a proxy's messages on their way elsewhere.
    held: u32,
    /// The stamps of sampled messages, while watched.
    stamps: Option<Box<Stamps>>,
    /// The receiver's count of messages handed out of its batch, once it has taken one.
    handed: Option<Arc<Handed>>,
}

/// Which queued messages are sampled, and when they were queued. Messages are counted as
/// they are put in and taken out, so the `n`th taken is the `n`th put: only the sampled
/// ones keep a stamp.
struct Stamps {
    put: u64,
    taken: u64,
    /// One message in this many is stamped: a power of two.
    every: u64,
    /// `(n, queued at)` of each sampled message still queued, in order.
    sampled: VecDeque<(u64, Instant)>,
}

impl Stamps {
    /// Counts a message put in (the `queued`th in the queue now), stamping one in
    /// [`every`](Self::every) while watched.
    #[inline]
    fn put(stamps: &mut Option<Box<Self>>, queued: usize) {
        let Some(this) = stamps else {
            // The messages ahead of this one were not counted in: the first counted put is
            // taken after them.
            *stamps = Some(Box::new(Self {
                put: 1,
                taken: 0u64.wrapping_sub(queued as u64 - 1),
                every: FIRST_SAMPLE_EVERY,
                sampled: VecDeque::new(),
            }));
            return;
        };
        this.put += 1;
        if this.put & (this.every - 1) == 0 {
            this.stamp();
        }
    }

    #[cold]
    fn stamp(&mut self) {
        if recording() {
            self.sampled.push_back((self.put, Instant::now()));
        }
    }

    /// Counts a message taken out; its stamp, if it was sampled. Drops the stamps once
    /// nothing sampled is queued and nobody watches.
    #[inline]
    fn take(stamps: &mut Option<Box<Self>>) -> Option<Instant> {
        let this = stamps.as_mut()?;
        this.taken = this.taken.wrapping_add(1);
        if let Some(&(n, at)) = this.sampled.front()
            && n == this.taken
        {
            this.sampled.pop_front();
            return Some(at);
        }
        if this.taken == this.put && this.sampled.is_empty() && !recording() {
            *stamps = None;
        }
        None
    }

    /// Counts the first message of a batch, handed out now (`sampled` is told its stamp,
    /// if it has one), and the `rest` taken into the batch after it, whose stamps go into
    /// `batch`, each with how many messages are left in the batch once it is handed out.
    #[cold]
    #[inline(never)]
    fn take_batch(
        stamps: &mut Option<Box<Self>>,
        rest: usize,
        batch: &mut VecDeque<(usize, Instant)>,
        sampled: impl FnOnce(Instant),
    ) {
        batch.clear();
        if let Some(queued) = Self::take(stamps) {
            sampled(queued);
        }
        let Some(this) = stamps.as_mut() else {
            return;
        };
        // The number of the first message of the batch, as counted when put.
        let first = this.taken.wrapping_add(1);
        this.taken = this.taken.wrapping_add(rest as u64);
        while let Some(&(n, queued)) = this.sampled.front()
            && n.wrapping_sub(first) < rest as u64
        {
            this.sampled.pop_front();
            let at = n.wrapping_sub(first) as usize;
            batch.push_back((rest - 1 - at, queued));
        }
        if this.taken == this.put && this.sampled.is_empty() && !recording() {
            *stamps = None;
        }
    }
}

impl<D> State<D> {
    /// Room for a sender that holds no promise, with the places of `batched` messages of
    /// the receiver's batch taken.
    #[inline]
    fn has_room(&self, capacity: u32, batched: u32) -> bool {
        self.items.len()
            + (batched as usize)
            + (self.promised as usize)
            + (self.reserved as usize)
            + (self.held as usize)
            < capacity as usize
    }

    /// Takes the next message, and gives a large buffer back once it is empty (a thread
    /// with a large capacity keeps no burst's worth of memory while idle). `sampled` is
    /// told when the message was queued, if it was sampled.
    #[inline]
    fn take(&mut self, sampled: impl FnOnce(Instant)) -> Option<D> {
        let msg = self.items.pop_front()?;
        if self.items.is_empty() && self.items.capacity() > KEEP_BUFFER {
            self.items = VecDeque::new();
        }
        if cfg!(feature = "watch")
            && self.stamps.is_some()
            && let Some(at) = Stamps::take(&mut self.stamps)
        {
            sampled(at);
        }
        Some(msg)
    }
}

impl<D> DownQueue<D> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            // `ChildOptions::capacity` refuses 0; a larger capacity than `MAX_CAPACITY` is
            // clamped here, so that it is a `u32` from here on.
            capacity: capacity.clamp(1, MAX_CAPACITY) as u32,
            batched: AtomicU32::new(0),
            parked: AtomicPtr::new(std::ptr::null_mut()),
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                gone: false,
                receiver: None,
                senders: Waiters::new(),
                promised: 0,
                reserved: 0,
                held: 0,
                stamps: None,
                handed: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<D>> {
        lock(&self.state)
    }

    /// Under the lock: room for a sender that holds no promise.
    #[inline]
    fn has_room(&self, state: &State<D>) -> bool {
        state.has_room(self.capacity, self.batched.load(Ordering::Relaxed))
    }

    /// Under the lock, after a place was freed: promises it to the sender that has waited
    /// longest, if any, and returns its waker (to be woken once the lock is released).
    #[inline]
    fn promise_next(&self, state: &mut State<D>) -> Option<Waker> {
        if state.senders.is_empty() || !self.has_room(state) {
            return None;
        }
        let waker = state.senders.pop_front()?;
        state.promised += 1;
        Some(waker)
    }

    /// Under the lock: takes the place of a message the receiver handed out of its batch
    /// and has not given back yet, if there is one, giving it back to the queue's count
    /// now (see [`Handed`]). For `try_send`, which cannot wait for the receiver, and for a
    /// look for a cycle of waits.
    #[inline(never)]
    fn claim_handed(&self, state: &State<D>) -> bool {
        let Some(handed) = &state.handed else {
            return false;
        };
        // Acquire: pairs with the receiver's store as it hands a message out.
        let count = handed.count.load(Ordering::Acquire);
        let claimed = handed.claimed.load(Ordering::Relaxed);
        if count <= claimed {
            return false;
        }
        handed.claimed.store(claimed + 1, Ordering::Relaxed);
        self.batched.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// The receiver handed out a message of its `batch`. Its place stays taken for `send`
    /// until the receiver gives it back ([`give_back`](Self::give_back)); `try_send` may
    /// take it at once.
    #[inline]
    fn handed_out(batch: &mut Batch<D>) {
        batch.count_handed();
    }

    /// Under the lock (`_locked` says it is held): gives back to the queue the places of
    /// the messages handed out of the receiver's `batch` since it last did (but those taken
    /// already, see [`claim_handed`](Self::claim_handed)). Whether it gave any back.
    #[inline]
    fn settle(&self, _locked: &State<D>, batch: &mut Batch<D>) -> bool {
        let handed = std::mem::take(&mut batch.handed);
        if handed == 0 {
            return false;
        }
        let mut claimed = 0;
        if let Some(buffer) = &batch.buffer {
            claimed = buffer.handed.claimed.swap(0, Ordering::Relaxed);
            buffer.handed.count.store(0, Ordering::Relaxed);
        }
        self.batched.fetch_sub(handed - claimed, Ordering::Relaxed);
        true
    }

    /// Gives back to the queue the places of the messages handed out of `batch` since the
    /// receiver last did, and promises them to the senders that have waited longest.
    ///
    /// The receiver does so when it looks for more messages once its batch is handed out,
    /// and before its task waits or yields with messages handed out (the loop calls this
    /// whenever a handler is pending, [`poll_recv_sampled`](Self::poll_recv_sampled) when
    /// the task's budget is spent), so that no sender waits on a thread that waits itself.
    /// Between those, handing a message out touches nothing the senders touch (one store
    /// to a line of its own, [`Handed`]), and the places come back, and their senders are
    /// woken, together, under one lock: a receiver handing out a burst does not take the
    /// line of the lock from senders on other workers once per message. A look for a cycle
    /// of waits through this queue promises such places at once (see
    /// [`has_waiting`](Self::has_waiting)), and `try_send` takes one.
    #[inline]
    pub(crate) fn give_back(&self, batch: &mut Batch<D>) {
        if batch.handed != 0 {
            self.promise_freed(Some(batch));
        }
    }

    /// Gives back the places of `batch` (if given) and promises the free places to the
    /// senders that have waited longest, and wakes them (a few at a time, with the lock
    /// released).
    #[inline(never)]
    fn promise_freed(&self, mut batch: Option<&mut Batch<D>>) {
        loop {
            let mut woken = Woken::default();
            {
                let mut state = self.state();
                if let Some(batch) = batch.take() {
                    self.settle(&state, batch);
                }
                woken.promise(self, &mut state);
            }
            if !woken.wake() {
                return;
            }
        }
    }

    /// Under the lock: takes the receiver's waker, to be woken once the lock is released.
    #[inline]
    fn take_receiver(&self, state: &mut State<D>) -> Option<Waker> {
        let receiver = state.receiver.take();
        if receiver.is_some() {
            self.parked.store(std::ptr::null_mut(), Ordering::Release);
        }
        receiver
    }

    /// Under the lock: puts a message in and takes the receiver's waker, to be woken once
    /// the lock is released.
    #[inline]
    fn put(&self, state: &mut State<D>, msg: D) -> Option<Waker> {
        state.items.push_back(msg);
        if cfg!(feature = "watch") && (state.stamps.is_some() || recording()) {
            Stamps::put(&mut state.stamps, state.items.len());
        }
        self.take_receiver(state)
    }

    /// Queues `msg` if there is room now.
    #[inline]
    pub(crate) fn try_send(&self, msg: D) -> Result<(), TrySendError<D>> {
        let receiver = {
            let mut state = self.state();
            if state.closed {
                return Err(TrySendError::Ended(msg));
            }
            // A place the receiver freed as it handed a message out, and has not given back
            // yet, is free for a `try_send`, as long as no sender waits for one.
            if !state.senders.is_empty() || !self.has_room(&state) && !self.claim_handed(&state) {
                return Err(TrySendError::Full(msg));
            }
            self.put(&mut state, msg)
        };
        if let Some(receiver) = receiver {
            receiver.wake();
        }
        Ok(())
    }

    /// Queues `msg`, waiting for room; gives it back if the queue is closed.
    pub(crate) fn send(&self, msg: D) -> Sending<'_, D> {
        Sending {
            turn: Turn {
                queue: self,
                wait: Waiting::No,
            },
            msg: Some(msg),
        }
    }

    /// Waits for room and holds a place for a message sent later through the [`Permit`];
    /// fails if the queue is closed.
    pub(crate) fn reserve(&self) -> Reserve<'_, D> {
        Reserve {
            turn: Turn {
                queue: self,
                wait: Waiting::No,
            },
        }
    }

    /// Under the lock: whether the sender waiting as `wait` may put a message in now (its
    /// place is not counted anywhere yet), or must wait (queued, woken when its turn comes),
    /// or the queue is closed.
    fn poll_place(
        &self,
        state: &mut State<D>,
        wait: &mut Waiting,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed>> {
        if state.closed {
            // A close took every waiter off the queue and cancelled every promise.
            *wait = Waiting::No;
            return Poll::Ready(Err(Closed));
        }
        if let Waiting::Queued(ticket) | Waiting::Reported(ticket) = *wait {
            if state.senders.refresh(ticket, cx.waker()) {
                return Poll::Pending;
            }
            // Woken: a place was promised to this sender.
            state.promised -= 1;
            *wait = Waiting::No;
            return Poll::Ready(Ok(()));
        }
        if state.senders.is_empty() && self.has_room(state) {
            return Poll::Ready(Ok(()));
        }
        // Full, or others wait already: queue behind them, to be promised a place as one
        // comes free (the receiver gives back the places of its batch together, see
        // `give_back`).
        *wait = Waiting::Queued(state.senders.push(cx.waker(), 0));
        Poll::Pending
    }

    /// A sender queued as `ticket` gives up (its future was dropped). A promise it was
    /// given and did not use goes to the next sender.
    fn give_up(&self, ticket: u64) {
        let next = {
            let mut state = self.state();
            if state.closed {
                return;
            }
            if state.senders.remove(ticket) {
                None
            } else {
                state.promised -= 1;
                self.promise_next(&mut state)
            }
        };
        if let Some(next) = next {
            next.wake();
        }
    }

    /// Takes the next message, one at a time (no batch); `Ready(None)` once the queue is
    /// closed and empty.
    #[cfg(test)]
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<D>> {
        self.poll_recv_locked(None, cx, |_| {})
    }

    /// Takes the next message, from the receiver's `batch` first; `Ready(None)` once the
    /// queue is closed and empty. If the message was sampled, `sampled` is told when it was
    /// queued.
    ///
    /// Spends the task's cooperative budget like tokio's own channels, so a thread whose
    /// queue never empties still lets the other tasks of its worker run.
    #[inline]
    pub(crate) fn poll_recv_sampled(
        &self,
        batch: &mut Batch<D>,
        cx: &mut Context<'_>,
        sampled: impl FnOnce(Instant),
    ) -> Poll<Option<D>> {
        // Waiting already with this waker, and nothing has come or closed since (whatever
        // would change that clears `parked` before it wakes the receiver; a receiver with
        // messages in its batch never waits).
        let parked = self.parked.load(Ordering::Acquire);
        if !parked.is_null() && std::ptr::eq(parked, cx.waker().data()) {
            return Poll::Pending;
        }
        if !batch.is_empty() {
            return self.poll_batch(batch, cx, sampled);
        }
        self.poll_recv_locked(Some(batch), cx, sampled)
    }

    /// Hands out the next message of the receiver's batch (not empty). Out of line, so the
    /// look that leads here stays small enough to be inlined into the loop.
    #[inline(never)]
    fn poll_batch(
        &self,
        batch: &mut Batch<D>,
        cx: &mut Context<'_>,
        sampled: impl FnOnce(Instant),
    ) -> Poll<Option<D>> {
        let Poll::Ready(coop) = tokio::task::coop::poll_proceed(cx) else {
            // The task yields: the places of the messages handed out are given back first.
            self.give_back(batch);
            return Poll::Pending;
        };
        let msg = batch.pop(sampled);
        coop.made_progress();
        Self::handed_out(batch);
        Poll::Ready(msg)
    }

    /// Takes the next message under the lock; with a `batch` (empty), everything else
    /// queued goes into it, once the places of the messages handed out of it are given
    /// back.
    fn poll_recv_locked(
        &self,
        mut batch: Option<&mut Batch<D>>,
        cx: &mut Context<'_>,
        sampled: impl FnOnce(Instant),
    ) -> Poll<Option<D>> {
        let Poll::Ready(coop) = tokio::task::coop::poll_proceed(cx) else {
            // The task yields: the places of the messages handed out are given back first.
            if let Some(batch) = batch {
                self.give_back(batch);
            }
            return Poll::Pending;
        };
        let mut state = self.state();
        let settled = batch
            .as_deref_mut()
            .is_some_and(|batch| self.settle(&state, batch) && !state.senders.is_empty());
        match self.take_next(&mut state, batch, sampled) {
            Some((msg, _)) if settled => {
                let woken = Woken::promising(self, &mut state);
                drop(state);
                coop.made_progress();
                woken.wake_all(self);
                Poll::Ready(Some(msg))
            }
            Some((msg, batched)) => {
                let sender = self.promise_next(&mut state);
                if sender.is_none() && !batched && state.items.is_empty() && !state.closed {
                    // The last message: the receiver begins to wait now, under this lock,
                    // so that its next looks (after handling the message) need none.
                    self.park(&mut state, cx);
                }
                drop(state);
                coop.made_progress();
                if let Some(sender) = sender {
                    sender.wake();
                }
                Poll::Ready(Some(msg))
            }
            None if state.closed && state.reserved == 0 => {
                coop.made_progress();
                Poll::Ready(None)
            }
            None => {
                if state.closed {
                    Self::store_receiver(&mut state, cx);
                } else {
                    self.park(&mut state, cx);
                }
                if settled {
                    let woken = Woken::promising(self, &mut state);
                    drop(state);
                    woken.wake_all(self);
                }
                Poll::Pending
            }
        }
    }

    /// Under the lock: takes the next message; with a `batch` (empty) and more than one
    /// message queued, the rest go into it, with their stamps. The message, and whether a
    /// batch was taken.
    #[inline]
    fn take_next(
        &self,
        state: &mut State<D>,
        batch: Option<&mut Batch<D>>,
        sampled: impl FnOnce(Instant),
    ) -> Option<(D, bool)> {
        match batch {
            Some(batch) if state.items.len() > 1 => self
                .take_batch(state, batch, sampled)
                .map(|msg| (msg, true)),
            _ => state.take(sampled).map(|msg| (msg, false)),
        }
    }

    /// Under the lock: moves everything queued (more than one message) into the
    /// receiver's empty `batch`, counted in `batched`, and takes the first. Out of line:
    /// a thread that takes its messages one at a time (or none, as most) keeps its loop
    /// small.
    #[inline(never)]
    fn take_batch(
        &self,
        state: &mut State<D>,
        batch: &mut Batch<D>,
        sampled: impl FnOnce(Instant),
    ) -> Option<D> {
        let (msg, rest) = batch.fill(&mut state.items, &mut state.handed)?;
        // At most the capacity.
        self.batched.fetch_add(rest as u32, Ordering::Relaxed);
        if cfg!(feature = "watch")
            && state.stamps.is_some()
            && let Some(stamps) = batch.stamps_mut()
        {
            Stamps::take_batch(&mut state.stamps, rest, stamps, sampled);
        }
        Some(msg)
    }

    /// Under the lock, with the queue empty and open: stores the receiver's waker and
    /// sets `parked`.
    #[inline]
    fn park(&self, state: &mut State<D>, cx: &mut Context<'_>) {
        Self::store_receiver(state, cx);
        self.parked
            .store(cx.waker().data().cast_mut(), Ordering::Release);
    }

    /// Under the lock: stores the receiver's waker, to be woken by a put.
    #[inline]
    fn store_receiver(state: &mut State<D>, cx: &mut Context<'_>) {
        match &mut state.receiver {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
    }

    /// Takes the next message as [`poll_recv_sampled`](Self::poll_recv_sampled) does (from
    /// the receiver's `batch` first), but keeps its place taken until
    /// [`release_held`](Self::release_held) frees it: senders wait while the queued
    /// messages and the held places fill the capacity.
    pub(crate) fn poll_recv_held(
        &self,
        batch: &mut Batch<D>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<D>> {
        self.give_back(batch);
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let mut state = self.state();
        match self.take_held(&mut state, batch) {
            Some(msg) => {
                drop(state);
                coop.made_progress();
                Poll::Ready(Some(msg))
            }
            None if state.closed && state.reserved == 0 => {
                coop.made_progress();
                Poll::Ready(None)
            }
            None => {
                Self::store_receiver(&mut state, cx);
                Poll::Pending
            }
        }
    }

    /// Under the lock: takes the next message (from the receiver's `batch` first, its place
    /// moving from the batch's count to the held ones), holding its place.
    fn take_held(&self, state: &mut State<D>, batch: &mut Batch<D>) -> Option<D> {
        let msg = match batch.pop(|_| {}) {
            Some(msg) => {
                self.batched.fetch_sub(1, Ordering::Relaxed);
                msg
            }
            None => state.take(|_| {})?,
        };
        state.held += 1;
        Some(msg)
    }

    /// Frees `n` places held by [`poll_recv_held`](Self::poll_recv_held) (at most as many
    /// as are held), promising them to waiting senders.
    pub(crate) fn release_held(&self, n: usize) {
        let mut woken = Vec::new();
        {
            let mut state = self.state();
            state.held -= u32::try_from(n).unwrap_or(u32::MAX).min(state.held);
            while let Some(waker) = self.promise_next(&mut state) {
                woken.push(waker);
            }
        }
        for waker in woken {
            waker.wake();
        }
    }

    /// Takes the next message if there is one now, holding its place as
    /// [`poll_recv_held`](Self::poll_recv_held) does.
    pub(crate) fn try_recv_held(&self, batch: &mut Batch<D>) -> Option<D> {
        self.give_back(batch);
        self.take_held(&mut self.state(), batch)
    }

    /// How many places are held by taken messages not yet released.
    pub(crate) fn held(&self) -> usize {
        self.state().held as usize
    }

    /// Takes the next message if there is one now, one at a time (no batch).
    #[cfg(test)]
    pub(crate) fn try_recv(&self) -> Option<D> {
        self.try_recv_locked(None, |_| {})
    }

    /// Takes the next message if there is one now (from the receiver's `batch` first); if
    /// it was sampled, `sampled` is told when it was queued.
    #[inline]
    pub(crate) fn try_recv_sampled(
        &self,
        batch: &mut Batch<D>,
        sampled: impl FnOnce(Instant),
    ) -> Option<D> {
        if !batch.is_empty() {
            return self.try_batch(batch, sampled);
        }
        // The receiver waits with its waker stored: nothing has come since.
        if !self.parked.load(Ordering::Acquire).is_null() {
            return None;
        }
        self.try_recv_locked(Some(batch), sampled)
    }

    /// Hands out the next message of the receiver's batch (not empty), out of line as
    /// [`poll_batch`](Self::poll_batch).
    #[inline(never)]
    fn try_batch(&self, batch: &mut Batch<D>, sampled: impl FnOnce(Instant)) -> Option<D> {
        let msg = batch.pop(sampled);
        Self::handed_out(batch);
        msg
    }

    /// Takes the next message if there is one now, under the lock; with a `batch` (empty),
    /// everything else queued goes into it.
    fn try_recv_locked(
        &self,
        mut batch: Option<&mut Batch<D>>,
        sampled: impl FnOnce(Instant),
    ) -> Option<D> {
        let mut state = self.state();
        let settled = batch
            .as_deref_mut()
            .is_some_and(|batch| self.settle(&state, batch) && !state.senders.is_empty());
        let taken = self.take_next(&mut state, batch, sampled);
        if settled {
            let woken = Woken::promising(self, &mut state);
            drop(state);
            woken.wake_all(self);
            return taken.map(|(msg, _)| msg);
        }
        let (msg, _) = taken?;
        let sender = self.promise_next(&mut state);
        drop(state);
        if let Some(sender) = sender {
            sender.wake();
        }
        Some(msg)
    }

    /// Stops accepting messages; what is queued (or sent through a permit taken before)
    /// can still be received. Waiting senders get their messages back.
    ///
    /// Returns whether nothing is left to receive (nothing queued, none in the receiver's
    /// batch, no place held by a [`Permit`]): the receiver need not look again to find the
    /// end.
    pub(crate) fn close(&self) -> bool {
        let (senders, drained, receiver) = {
            let mut state = self.state();
            let drained = self.close_locked(&mut state);
            // Closed with nothing left: nothing can come any more (sends and reservations
            // fail, no permit is out), so `parked` says so for good, and the end of the
            // receiver finds nothing to do. The receiver's waker, its own (only the
            // receiver closes), is not needed again.
            let receiver = if drained {
                self.parked.store(ended(), Ordering::Release);
                state.receiver.take()
            } else {
                None
            };
            let senders = state.senders.take_all();
            (senders, drained, receiver)
        };
        for waker in senders {
            waker.wake();
        }
        drop(receiver);
        drained
    }

    /// Under the lock: closes the queue; whether nothing is left to receive.
    fn close_locked(&self, state: &mut State<D>) -> bool {
        self.parked.store(std::ptr::null_mut(), Ordering::Release);
        state.closed = true;
        state.promised = 0;
        state.items.is_empty() && state.reserved == 0 && Self::batch_left(state, &self.batched) == 0
    }

    /// Closes the queue and drops what is in it: the receiver is gone. Askers whose
    /// questions are dropped see their reply channel close.
    pub(crate) fn close_for_good(&self) {
        // Closed with nothing left already: nothing can have come since. The stop of a
        // thread closes its queue, then drops its receiver; this spares the second lock.
        if self.parked.load(Ordering::Acquire) == ended() {
            return;
        }
        let (senders, left) = {
            let mut state = self.state();
            self.close_locked(&mut state);
            state.gone = true;
            state.stamps = None;
            // The receiver's batch goes with the receiver. Nothing counts places of a closed
            // queue any more (a close took every waiting sender off), except `len`.
            self.batched.store(0, Ordering::Relaxed);
            state.handed = None;
            (state.senders.take_all(), std::mem::take(&mut state.items))
        };
        for waker in senders {
            waker.wake();
        }
        drop(left);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// How many messages are queued, counting those in the receiver's batch.
    pub(crate) fn len(&self) -> usize {
        let state = self.state();
        state.items.len() + Self::batch_left(&state, &self.batched) as usize
    }

    /// Under the lock: how many messages are left in the receiver's batch (`batched`
    /// counts those handed out too until the receiver gives their places back).
    fn batch_left(state: &State<D>, batched: &AtomicU32) -> u32 {
        let handed = state.handed.as_ref().map_or(0, |handed| {
            // Acquire, as `claim_handed`.
            handed.count.load(Ordering::Acquire) - handed.claimed.load(Ordering::Relaxed)
        });
        batched.load(Ordering::Relaxed) - handed
    }

    /// How many senders wait for room.
    #[cfg(feature = "watch")]
    pub(crate) fn waiting_senders(&self) -> usize {
        self.state().senders.len()
    }

    /// Stamps one message in `every` (a power of two) from now on, while watched.
    #[cfg(feature = "watch")]
    pub(crate) fn sample_every(&self, every: u64) {
        if let Some(stamps) = &mut self.state().stamps {
            stamps.every = every;
        }
    }

    /// Whether nothing is queued (the receiver's batch aside). A receiver that waits with
    /// its waker stored has nothing queued (whatever puts a message clears `parked` first):
    /// one atomic load, no lock, for the loop that asks between inbound events.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        !self.parked.load(Ordering::Acquire).is_null() || self.state().items.is_empty()
    }

    /// A sender queued as `ticket` blocks and says who it is; `false` if it was woken
    /// (promised a place) meanwhile. `listed` is set, under the lock, if it did: see
    /// [`has_waiting`](Self::has_waiting).
    pub(crate) fn own(&self, ticket: u64, owner: u64, listed: &AtomicBool) -> bool {
        let mut state = self.state();
        let owned = state.senders.own(ticket, owner);
        if owned {
            // SeqCst: a thread that lists itself elsewhere and then looks here sees it,
            // or this sender sees that thread's listing when it looks in turn.
            listed.store(true, Ordering::SeqCst);
        }
        owned
    }

    /// Whether `owner` waits for room (and has not been promised a place). `listed` (see
    /// [`own`](Self::own)) lets a look skip the lock when no sender said who it is; it is
    /// cleared here, under the lock, once none does.
    pub(crate) fn has_waiting(&self, owner: u64, listed: &AtomicBool) -> bool {
        if !listed.load(Ordering::SeqCst) {
            return false;
        }
        let mut state = self.state();
        if state.senders.owners().next().is_none() {
            listed.store(false, Ordering::SeqCst);
            return false;
        }
        // Places the receiver freed as it handed messages out, not given back yet (it gives
        // them back together, see `give_back`): promised now, so that a sender that would
        // have one is not taken for waiting, and a wait on this thread for a cycle.
        let mut woken = Vec::new();
        loop {
            if let Some(next) = self.promise_next(&mut state) {
                woken.push(next);
            } else if state.senders.is_empty() || !self.claim_handed(&state) {
                break;
            }
        }
        let waits = state.senders.has_owner(owner);
        drop(state);
        for next in woken {
            next.wake();
        }
        waits
    }

    /// Who waits for room, among the senders that said who they are.
    pub(crate) fn waiting_owners(&self) -> Vec<u64> {
        self.state().senders.owners().collect()
    }
}

/// Senders promised a place under the lock, to be woken once it is released: a few at a
/// time, on the stack, so that promising allocates nothing.
#[derive(Default)]
struct Woken {
    wakers: [Option<Waker>; Woken::AT_ONCE],
    n: usize,
}

impl Woken {
    const AT_ONCE: usize = 16;

    /// Under the lock: promises the free places to the senders that have waited longest,
    /// up to [`AT_ONCE`](Self::AT_ONCE) of them.
    fn promise<D>(&mut self, queue: &DownQueue<D>, state: &mut State<D>) {
        while self.n < Self::AT_ONCE
            && let Some(next) = queue.promise_next(state)
        {
            self.wakers[self.n] = Some(next);
            self.n += 1;
        }
    }

    /// Under the lock: the senders promised the free places, up to
    /// [`AT_ONCE`](Self::AT_ONCE) of them. Out of line: only a receiver that gave places
    /// back with senders waiting needs it.
    #[inline(never)]
    fn promising<D>(queue: &DownQueue<D>, state: &mut State<D>) -> Self {
        let mut woken = Self::default();
        woken.promise(queue, state);
        woken
    }

    /// Wakes them, with the lock released; whether more may be owed a place (as many were
    /// promised as fit).
    fn wake(self) -> bool {
        let full = self.n == Self::AT_ONCE;
        for waker in self.wakers.into_iter().flatten() {
            waker.wake();
        }
        full
    }

    /// Wakes them, with the lock released, and promises the places left to the senders
    /// that wait still, if as many were promised as fit.
    #[inline(never)]
    fn wake_all<D>(self, queue: &DownQueue<D>) {
        if self.wake() {
            queue.promise_freed(None);
        }
    }
}

/// The queue is closed.
#[derive(Debug)]
pub(crate) struct Closed;

/// Where a waiting sender is.
enum Waiting {
    /// Not queued.
    No,
    /// Queued with this ticket (or woken with a promise, once the ticket is gone).
    Queued(u64),
    /// Queued, and the sender has seen that it blocks.
    Reported(u64),
}

/// A sender's turn at a place: queued behind earlier senders while the queue is full.
/// Dropped while queued, it gives up its turn, or the place promised to it.
struct Turn<'a, D> {
    queue: &'a DownQueue<D>,
    wait: Waiting,
}

impl<D> Turn<'_, D> {
    /// Runs `take` under the lock once the place is this sender's. Spends the task's
    /// cooperative budget, like tokio's channels: out of budget, it returns before looking
    /// (a place promised to it stays promised).
    fn poll<R>(
        &mut self,
        cx: &mut Context<'_>,
        take: impl FnOnce(&mut State<D>) -> R,
    ) -> Poll<Result<R, Closed>> {
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let mut state = self.queue.state();
        let polled = match self.queue.poll_place(&mut state, &mut self.wait, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(closed)) => Poll::Ready(Err(closed)),
            Poll::Ready(Ok(())) => Poll::Ready(Ok(take(&mut state))),
        };
        coop.made_progress();
        polled
    }
}

impl<D> Drop for Turn<'_, D> {
    fn drop(&mut self) {
        self.leave();
    }
}

impl<D> Turn<'_, D> {
    /// Gives up a wait (the sender's task was dropped, its select moved on, or the wait
    /// would never end): the queue forgets the sender, and a place promised to it goes to
    /// the next.
    fn leave(&mut self) {
        if let Waiting::Queued(ticket) | Waiting::Reported(ticket) = self.wait {
            self.wait = Waiting::No;
            self.queue.give_up(ticket);
        }
    }
}

/// The future of [`DownQueue::send`]: `Err(msg)` if the queue closed first.
pub(crate) struct Sending<'a, D> {
    turn: Turn<'a, D>,
    msg: Option<D>,
}

// `D` is only moved, never pinned.
impl<D> Unpin for Sending<'_, D> {}

impl<D> Future for Sending<'_, D> {
    type Output = Result<(), D>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let msg = &mut this.msg;
        let queue = this.turn.queue;
        let taken = |state: &mut State<D>| {
            queue.put(state, msg.take().expect("a send polled after it finished"))
        };
        match this.turn.poll(cx, taken) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(Closed)) => Poll::Ready(Err(this
                .msg
                .take()
                .expect("a send polled after it finished"))),
            Poll::Ready(Ok(receiver)) => {
                if let Some(receiver) = receiver {
                    receiver.wake();
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<D> Sending<'_, D> {
    /// After a `Pending`: the ticket of a sender that has just started to wait, seen once
    /// (the next call says `None`).
    #[inline]
    pub(crate) fn newly_blocked(&mut self) -> Option<u64> {
        match self.turn.wait {
            Waiting::Queued(ticket) => {
                self.turn.wait = Waiting::Reported(ticket);
                Some(ticket)
            }
            Waiting::No | Waiting::Reported(_) => None,
        }
    }

    /// The ticket of a sender that waits and has seen that it blocks.
    pub(crate) fn blocked_ticket(&self) -> Option<u64> {
        match self.turn.wait {
            Waiting::Reported(ticket) => Some(ticket),
            Waiting::No | Waiting::Queued(_) => None,
        }
    }

    /// Gives up the wait and takes the message back.
    pub(crate) fn take_back(&mut self) -> Option<D> {
        self.turn.leave();
        self.msg.take()
    }
}

/// The future of [`DownQueue::reserve`].
pub(crate) struct Reserve<'a, D> {
    turn: Turn<'a, D>,
}

impl<'a, D> Future for Reserve<'a, D> {
    type Output = Result<Permit<'a, D>, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let queue = this.turn.queue;
        this.turn
            .poll(cx, |state| state.reserved += 1)
            .map_ok(|()| Permit { queue })
    }
}

/// A place held in a queue: [`send`](Self::send) fills it, dropping it frees it.
pub(crate) struct Permit<'a, D> {
    queue: &'a DownQueue<D>,
}

impl<D> Permit<'_, D> {
    /// Puts `msg` in the held place. Even if the queue closed since, the message is
    /// received (the place was taken before the close); if the receiver is gone (the
    /// thread was aborted while the place was held), `msg` comes back.
    pub(crate) fn send(self, msg: D) -> Result<(), D> {
        let queue = self.queue;
        std::mem::forget(self);
        let receiver = {
            let mut state = queue.state();
            state.reserved -= 1;
            if state.gone {
                return Err(msg);
            }
            queue.put(&mut state, msg)
        };
        if let Some(receiver) = receiver {
            receiver.wake();
        }
        Ok(())
    }
}

impl<D> Drop for Permit<'_, D> {
    fn drop(&mut self) {
        // Unused: the place goes to the next waiting sender, and a receiver waiting for
        // the end of a closed queue may have it now.
        let (next, receiver) = {
            let mut state = self.queue.state();
            state.reserved -= 1;
            let receiver = if state.closed && state.reserved == 0 {
                self.queue.take_receiver(&mut state)
            } else {
                None
            };
            (self.queue.promise_next(&mut state), receiver)
        };
        if let Some(next) = next {
            next.wake();
        }
        if let Some(receiver) = receiver {
            receiver.wake();
        }
    }
}

#[cfg(test)]
mod tests;
