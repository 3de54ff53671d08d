//! [`Node`]: what the rest of the tree sees of one thread — identity, path, state, counters,
//! its stop signal, its DOWN queue and its children. Written by the thread's own loop (and
//! its parent, for the children list), read by anyone holding an address.
//!
//! Nothing here knows what the thread does; supervision, pools and the other extensions
//! keep their own state, and an extension that must be found from the node (a worker
//! pool's resize hook) hangs it on the node as an [attachment](Node::attachment). What a
//! watched thread records of itself is its [probe](Node::probe).

mod children;
mod probe;
mod receiver;
mod roster;
mod snapshot;
#[cfg(test)]
pub(crate) mod testing;
mod waits;

pub(crate) use children::ChildEntry;
#[cfg_attr(not(feature = "watch"), allow(unused_imports))]
pub(crate) use probe::{Budget, Kind, Percentiles, Probe, ProbeReading, StopPhase};
pub(crate) use receiver::DownReceiver;
pub(crate) use snapshot::RemoteView;
pub use snapshot::{RemoteLink, TreeSnapshot, Waiting};
pub(crate) use waits::{
    CONFIRMED, answering, closes_cycle, has_report, in_thread_task, polling_thread, report, settle,
    verdict,
};

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::task::AbortHandle;

use crate::exit::{ChildId, ThreadState};
use crate::lock::lock;
use crate::path::{LazyPath, Located};
use crate::queue::{DownQueue, HoldsOwnPlace, OwnPlace};
use crate::record::{self, EventKind};
use crate::reschedule::TaskSpec;
use children::Kin;
use probe::Extra;

/// The DOWN queue of a thread, type-erased: its depth for snapshots, and the senders that
/// wait for room in it.
pub(crate) trait Queue: Send + Sync {
    fn depth(&self) -> usize;
    fn capacity(&self) -> usize;
    /// A sender queued as `ticket` says who it is (see [`DownQueue::own`]).
    fn own(&self, ticket: u64, owner: u64, listed: &AtomicBool) -> bool;
    /// Whether the thread `owner` waits for room (see [`DownQueue::has_waiting`]).
    fn has_waiting(&self, owner: u64, listed: &AtomicBool) -> bool;
    /// The threads that wait for room.
    fn waiting_owners(&self) -> Vec<u64>;
    /// How many senders wait for room.
    #[cfg(feature = "watch")]
    fn waiting(&self) -> usize;
    /// Stamps one message in `every` for its wait, while watched.
    #[cfg(feature = "watch")]
    fn sample_every(&self, every: u64);
}

impl<D: Send + 'static> Queue for DownQueue<D> {
    fn depth(&self) -> usize {
        self.len()
    }

    fn capacity(&self) -> usize {
        DownQueue::capacity(self)
    }

    fn own(&self, ticket: u64, owner: u64, listed: &AtomicBool) -> bool {
        DownQueue::own(self, ticket, owner, listed)
    }

    fn has_waiting(&self, owner: u64, listed: &AtomicBool) -> bool {
        DownQueue::has_waiting(self, owner, listed)
    }

    fn waiting_owners(&self) -> Vec<u64> {
        DownQueue::waiting_owners(self)
    }

    #[cfg(feature = "watch")]
    fn waiting(&self) -> usize {
        self.waiting_senders()
    }

    #[cfg(feature = "watch")]
    fn sample_every(&self, every: u64) {
        DownQueue::sample_every(self, every);
    }
}

/// A child's node as its parent keeps it: untyped for everything the parent does to any
/// child, and typed again (by a checked downcast) to address the child as its own type.
pub(crate) trait ChildNode: Located + Send + Sync {
    fn node(&self) -> &Node;
    fn into_node(self: Arc<Self>) -> Arc<Node>;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<Q: ?Sized + Queue> Located for Node<Q> {
    #[inline]
    fn location(&self) -> &LazyPath {
        &self.path
    }
}

impl<Q: Queue + 'static> ChildNode for Node<Q> {
    #[inline]
    fn node(&self) -> &Node {
        self
    }

    fn into_node(self: Arc<Self>) -> Arc<Node> {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// What the rest of the tree can see of one thread.
///
/// Generic over its queue, which is its last field and lives in the same allocation: the
/// thread's own end and its addresses hold it typed (`Arc<Node<DownQueue<D>>>`), the rest
/// of the tree as `Arc<Node>`, to which the typed one coerces.
///
/// `repr(C)`, in an order chosen for the loop: what it reads or writes on every turn (the
/// message count, the stop flags, the state) comes last, right before the queue, whose
/// first field the loop reads too; a turn of an idle thread then touches one cache line of
/// its node rather than three. What a stopping parent touches of each child (the stop
/// deadline, the waker, the stop flags) comes just before, and its id and type first,
/// beside the counts of the `Arc` that holds it, which its parent touches as it handles
/// the child's exit.
#[repr(C)]
pub(crate) struct Node<Q: ?Sized + Queue = dyn Queue> {
    pub(crate) id: ChildId,
    pub(crate) meta: &'static ThreadMeta,
    /// Built on first use: a thread nobody names in a log, a span, a snapshot or an error
    /// never pays for it (spawning is a hot path).
    path: LazyPath,
    /// The one list of the thread's children, in spawn order, the places of its inbound
    /// queue, and who waits for its answer; made when the first child is spawned, or an
    /// asker first waits (most threads never need it).
    kin: OnceLock<Box<Kin>>,
    /// How many `spawn_blocking` jobs run at once.
    pub(crate) blocking_limit: usize,
    /// The thread's task, for aborting it from above. Taken out by the task itself as it
    /// reports its end from its last step if [`task_ends_alone`](Self::task_ends_alone):
    /// see [`Node::set_task`].
    task: Mutex<Option<AbortHandle>>,
    /// What few threads need (an extension's attachment, a restart budget, a watched
    /// thread's probe), made by whichever asks first.
    extra: OnceLock<Box<Extra>>,
    /// How long a stop may take before what remains of the subtree is aborted.
    pub(crate) stop_deadline: Option<Duration>,
    /// The thread's task, woken by a request. Only that task waits for one, so a single
    /// waker slot does (no waiter list, no lock, nothing stored in the task per waiter).
    stop_waker: AtomicWaker,
    handled: AtomicU64,
    /// [`STOP`] and [`RESTART`] requests.
    stop_requested: AtomicU8,
    state: AtomicU8,
    /// Whether a sender waiting for room in the queue may have said who it is (see
    /// [`DownQueue::own`]): `false` lets a thread see without a lock that none waits on it.
    listed: AtomicBool,
    /// Whether `kin` was made, set (SeqCst) once it is: a thread starting to wait looks at
    /// it to see whether it may be waited on (see `Node::may_be_waited_on`).
    kin_made: AtomicBool,
    /// The thread's own place in the inbound queue it sends UP to (see
    /// [`OwnPlace`]).
    up_place: OwnPlace,
    /// Whether nothing waits for the thread's task once it has reported its end, so that
    /// it drops its own handle then (see [`Node::set_task`]).
    task_ends_alone: AtomicBool,
    pub(crate) queue: Q,
}

impl<Q: ?Sized + Queue> HoldsOwnPlace for Node<Q> {
    fn own_place(&self) -> &OwnPlace {
        &self.up_place
    }
}

/// What a thread's type says of it, shared by every thread of the type: one pointer in
/// each node instead of three fields.
pub(crate) struct ThreadMeta {
    pub(crate) type_name: &'static str,
    pub(crate) down_types: &'static [&'static str],
    pub(crate) up_type: Option<&'static str>,
    pub(crate) tasks: &'static [TaskSpec],
}

/// Stop flags: a stop for good, and a restart (this life stops, another begins).
const STOP: u8 = 1;
const RESTART: u8 = 2;
/// With [`STOP`]: the stop was asked by a stopping parent whose stop deadline ends no later
/// than this thread's would (see [`Node::request_covered_stop`]).
const COVERED: u8 = 4;

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("path", self.path())
            .finish_non_exhaustive()
    }
}

/// What a node is made from.
pub(crate) struct NodeInit {
    /// The parent's path, if any.
    pub(crate) parent: Option<Arc<str>>,
    pub(crate) name: Cow<'static, str>,
    /// `name-suffix` unless 0.
    pub(crate) suffix: u32,
    pub(crate) meta: &'static ThreadMeta,
    pub(crate) capacity: usize,
    pub(crate) stop_deadline: Option<Duration>,
    pub(crate) blocking_limit: usize,
}

impl<Q: Queue> Node<Q> {
    pub(crate) fn new(id: ChildId, init: NodeInit, queue: Q) -> Self {
        Self {
            id,
            path: LazyPath::new(init.parent, init.name, init.suffix),
            meta: init.meta,
            stop_requested: AtomicU8::new(0),
            stop_waker: AtomicWaker::new(),
            state: AtomicU8::new(0),
            handled: AtomicU64::new(0),
            kin: OnceLock::new(),
            listed: AtomicBool::new(false),
            kin_made: AtomicBool::new(false),
            stop_deadline: init.stop_deadline,
            blocking_limit: init.blocking_limit,
            task: Mutex::new(None),
            up_place: OwnPlace::default(),
            task_ends_alone: AtomicBool::new(false),
            extra: OnceLock::new(),
            queue,
        }
    }
}

impl<Q: ?Sized + Queue> Node<Q> {
    /// The path in the tree (`master/tcp_server/conn-17`), built the first time it is asked.
    pub(crate) fn path(&self) -> &Arc<str> {
        self.path.get()
    }

    /// The name among its siblings: the path's last segment.
    pub(crate) fn name(&self) -> &str {
        self.path.name()
    }

    /// The path's parts, for a report that outlives the node's other uses.
    pub(crate) fn lazy_path(&self) -> LazyPath {
        self.path.clone()
    }

    /// Asks the thread to stop. Idempotent.
    pub(crate) fn request_stop(&self) {
        if self.ask_stop(false) {
            self.stop_waker.wake();
        }
    }

    /// Asks the thread to stop, as part of its parent's stop, when the parent's stop
    /// deadline is no longer than the thread's own: the thread then starts no deadline
    /// timer of its own. The parent's (or a stopping ancestor's) deadline covers it: past
    /// it, that ancestor aborts what remains of its subtree, this thread included. The
    /// parent starts its timer as it first waits, right after asking its children, so the
    /// thread's own deadline would end at the same time (within the time the parent takes
    /// to ask the rest of its children): a stopping tree keeps one timer, not one per
    /// thread that has children. A thread already asked to stop or restart keeps its own.
    pub(crate) fn request_covered_stop(&self) {
        if self.ask_stop(true) {
            self.stop_waker.wake();
        }
    }

    /// Asks the thread to stop as [`request_stop`](Self::request_stop) does (or as
    /// [`request_covered_stop`](Self::request_covered_stop) does if `covered`), but hands its
    /// task's waker back instead of waking it, for the caller to wake on the thread's own
    /// runtime. `None` if the thread was asked already, has not waited yet (it sees the
    /// request as it first looks), or is registering its waker right now (it then wakes
    /// itself).
    pub(crate) fn request_stop_deferred(&self, covered: bool) -> Option<Waker> {
        if self.ask_stop(covered) {
            self.stop_waker.take()
        } else {
            None
        }
    }

    /// Marks the stop as asked (and covered by an ancestor's deadline if `covered`, unless
    /// the thread was asked to stop or restart already); whether it was newly asked.
    fn ask_stop(&self, covered: bool) -> bool {
        if covered
            && self
                .stop_requested
                .compare_exchange(0, STOP | COVERED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return true;
        }
        self.stop_requested.fetch_or(STOP, Ordering::AcqRel) & STOP == 0
    }

    /// Whether a stopping ancestor's deadline covers this thread's stop.
    pub(crate) fn is_stop_covered(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire) & COVERED != 0
    }

    /// Asks the thread to end this life gracefully so that another can begin, keeping its
    /// queue (a supervised thread's sibling in its restart group failed).
    pub(crate) fn request_restart(&self) {
        if self.stop_requested.fetch_or(RESTART, Ordering::AcqRel) == 0 {
            self.stop_waker.wake();
        }
    }

    /// One atomic load: checked by the loop on every turn. A restart request counts.
    #[inline]
    pub(crate) fn is_stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire) != 0
    }

    /// Whether a stop for good was requested (not only a restart).
    pub(crate) fn is_final_stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire) & STOP != 0
    }

    /// Whether only a restart was requested (no stop for good).
    pub(crate) fn is_restart_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire) == RESTART
    }

    /// Whether a restart was requested (and no stop for good); clears the request.
    pub(crate) fn take_restart_request(&self) -> bool {
        self.stop_requested.fetch_and(!RESTART, Ordering::AcqRel) == RESTART
    }

    /// Counts one more life after the first (the count stops at `u32::MAX`).
    pub(crate) fn count_restart(&self) {
        let _ = self
            .extra()
            .restarts
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
    }

    pub(crate) fn restarts(&self) -> u32 {
        self.extra
            .get()
            .map_or(0, |extra| extra.restarts.load(Ordering::Relaxed))
    }

    /// The thread's own place in the inbound queue it sends UP to.
    #[inline]
    pub(crate) fn up_place(&self) -> &OwnPlace {
        &self.up_place
    }

    /// Whether a stop (or restart) was requested; if not, `cx`'s task is woken by the next
    /// request. Registered before the flag is looked at, so no request is missed.
    pub(crate) fn poll_stop_requested(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.stop_waker.register(cx.waker());
        if self.is_stop_requested() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Drops the registered waker of an ended thread: it holds the thread's task.
    pub(crate) fn forget_waker(&self) {
        drop(self.stop_waker.take());
    }

    pub(crate) fn set_state(&self, state: ThreadState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Sets the state to `Exited`; whether it was not already.
    pub(crate) fn mark_exited(&self) -> bool {
        self.state.swap(ThreadState::Exited as u8, Ordering::AcqRel) != ThreadState::Exited as u8
    }

    pub(crate) fn state(&self) -> ThreadState {
        ThreadState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Counts one handled message. Only the thread's own loop writes, so a load and a store
    /// (no read-modify-write) are enough and keep the hot path free of locked instructions.
    #[inline]
    pub(crate) fn count_handled(&self) {
        let n = self.handled.load(Ordering::Relaxed);
        self.handled.store(n + 1, Ordering::Relaxed);
    }

    pub(crate) fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    pub(crate) fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// The capacity of the DOWN queue (and of the inbound queue, if the thread makes one).
    pub(crate) fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Keeps the handle of the thread's task. `ends_alone`: nothing will wait for the
    /// task once the thread has reported its end — its parent kept no `JoinHandle`, since on
    /// a current-thread runtime, its parent's, the task has always finished by the time the
    /// report is handled (see `ChildEntry::join`). The task then drops the handle itself as
    /// it reports ([`Node::release_at_end`]), so that tokio frees the finished task at once,
    /// while it is still in the cache, rather than the parent as it drops the node, cold by
    /// then.
    pub(crate) fn set_task(&self, task: AbortHandle, ends_alone: bool) {
        self.task_ends_alone.store(ends_alone, Ordering::Relaxed);
        *lock(&self.task) = Some(task);
    }

    /// The handle of the thread's task, if it still has one.
    pub(crate) fn task(&self) -> Option<AbortHandle> {
        lock(&self.task).clone()
    }

    /// Whether the thread runs as task `id`.
    pub(crate) fn runs_as(&self, id: tokio::task::Id) -> bool {
        lock(&self.task).as_ref().is_some_and(|t| t.id() == id)
    }

    /// Cancels the thread's task, if it still has one; its handle, to wait until it is gone.
    pub(crate) fn abort_task(&self) -> Option<AbortHandle> {
        let task = self.task()?;
        task.abort();
        Some(task)
    }

    /// Drops the handle of the thread's task as the thread reports its end from its last
    /// step, if nothing waits for the task after that (see [`Node::set_task`]).
    pub(crate) fn release_at_end(&self) {
        if self.task_ends_alone.load(Ordering::Relaxed) {
            drop(lock(&self.task).take());
        }
    }

    fn extra(&self) -> &Extra {
        self.extra.get_or_init(Box::default)
    }

    /// The extension state of type `X` kept with this thread, made by `init` if there is
    /// none yet; `None` if the node keeps another type.
    pub(crate) fn attachment_or_init<X: Any + Send + Sync>(
        &self,
        init: impl FnOnce() -> X,
    ) -> Option<Arc<X>> {
        let any = self.extra().attachment.get_or_init(|| Arc::new(init()));
        Arc::clone(any).downcast().ok()
    }

    /// The extension state of type `X` kept with this thread, if any.
    pub(crate) fn attachment<X: Any + Send + Sync>(&self) -> Option<Arc<X>> {
        Arc::clone(self.extra.get()?.attachment.get()?)
            .downcast()
            .ok()
    }

    /// Keeps a supervised thread's restart budget, for watchers (only with the `watch`
    /// feature: nobody else asks).
    pub(crate) fn set_budget(&self, budget: impl FnOnce() -> Budget) {
        if cfg!(feature = "watch") {
            self.extra().set_budget(budget());
        }
    }

    /// A supervised thread's restart budget.
    #[cfg(feature = "watch")]
    pub(crate) fn budget(&self) -> Option<Budget> {
        self.extra.get()?.budget()
    }

    /// What the thread has recorded of itself, if it has.
    #[cfg(feature = "watch")]
    pub(crate) fn probe_if_any(&self) -> Option<&Probe> {
        self.extra.get()?.probe.get()
    }

    /// What the thread records of itself while watched, made on first use.
    #[inline]
    pub(crate) fn probe(&self) -> &Probe {
        self.extra()
            .probe
            .get_or_init(|| Probe::new(self.meta, self.path.clone()))
    }

    /// A sampled DOWN message, queued at `queued`, was just taken off the queue. Out of
    /// line: only the sampled messages of a watched thread come here.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_sample(&self, queued: tokio::time::Instant) {
        self.probe().taken_sample(queued);
    }
}

/// The loop's records while watched, out of line so that an unwatched loop carries one
/// check for each and nothing more.
impl Node {
    /// A handler of `kind` begins.
    #[inline(never)]
    pub(crate) fn record_begin(&self, kind: Kind) {
        self.probe().begin(kind);
    }

    /// The handler that began last has returned.
    #[inline(never)]
    pub(crate) fn record_end(&self) {
        self.probe().end();
    }

    /// The stop has reached `phase`.
    #[cold]
    pub(crate) fn record_phase(&self, phase: StopPhase) {
        self.probe().set_phase(phase);
    }

    /// The children of stop stage `stage` are being stopped.
    #[cold]
    pub(crate) fn record_stop_stage(&self, stage: u32) {
        self.probe().stopping_stage(stage);
    }

    /// The stop must be over by `deadline`.
    #[cold]
    pub(crate) fn record_stop_deadline(&self, deadline: tokio::time::Instant) {
        self.probe().stop_deadline(deadline);
    }

    /// The thread was spawned (as a thread of this type).
    #[cold]
    #[inline(never)]
    pub(crate) fn record_spawn(&self, type_name: &'static str) {
        record::event(&self.path, EventKind::Spawned, type_name);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Context;

    use super::testing::{Counted, waiting};

    fn node() -> Arc<super::Node<crate::queue::DownQueue<u8>>> {
        super::testing::node(None)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn only_a_task_nothing_waits_for_lets_go_of_its_handle_as_it_reports() {
        let task = tokio::spawn(std::future::pending::<()>());
        let alone = node();
        alone.set_task(task.abort_handle(), true);
        let waited = node();
        waited.set_task(task.abort_handle(), false);
        alone.release_at_end();
        waited.release_at_end();
        assert!(alone.task().is_none(), "dropped by the task itself");
        assert_eq!(waited.task().map(|t| t.id()), Some(task.id()), "kept");
        task.abort();
    }

    #[test]
    fn a_deferred_stop_hands_the_waker_back_once_instead_of_waking_it() {
        let node = node();
        let counted = waiting(&node);
        let waker = node.request_stop_deferred(false).expect("it waits");
        assert_eq!(counted.wakes(), 0, "not woken by the request");
        assert!(node.is_stop_requested());
        assert!(!node.is_stop_covered());
        assert!(node.request_stop_deferred(false).is_none(), "asked already");
        node.request_stop();
        assert_eq!(counted.wakes(), 0, "asked already: no second wake");
        waker.wake();
        assert_eq!(counted.wakes(), 1);
    }

    #[test]
    fn a_deferred_covered_stop_is_covered_unless_asked_before() {
        let node = node();
        let _counted = waiting(&node);
        assert!(node.request_stop_deferred(true).is_some());
        assert!(node.is_stop_requested() && node.is_stop_covered());

        let restarting = self::node();
        let counted = waiting(&restarting);
        restarting.request_restart();
        assert_eq!(counted.wakes(), 1);
        // Waiting again (the restart request is seen at once, and the waker kept).
        let (_again, waker) = Counted::new();
        let seen = restarting.poll_stop_requested(&mut Context::from_waker(&waker));
        assert!(seen.is_ready());
        assert!(
            restarting.request_stop_deferred(true).is_some(),
            "a stop after a restart"
        );
        assert!(restarting.is_stop_requested() && !restarting.is_stop_covered());
    }

    #[test]
    fn a_deferred_stop_of_a_thread_not_yet_waiting_has_no_waker_but_is_seen() {
        let node = node();
        assert!(node.request_stop_deferred(false).is_none());
        let (_counted, waker) = Counted::new();
        let ready = node.poll_stop_requested(&mut Context::from_waker(&waker));
        assert!(ready.is_ready(), "seen as it first looks");
    }

    /// Every thread has a node, and spawning many is a hot path: a larger node slows spawn
    /// and stop of many children measurably (with glibc's allocator, 296 bytes against 224
    /// cost about a fifth). The node holds the DOWN queue too (in place of a channel
    /// allocated apart), and must stay within 344 bytes. Smaller is not always less
    /// memory: each node is allocated next to its thread's task, which is aligned to 128
    /// bytes, and with glibc's allocator a node of 328 bytes leaves gaps that no later
    /// allocation uses: about 180 bytes more per idle thread in the spawn benchmark than a
    /// node of 344. Measure idle memory (`taskthread-bench --only spawn`) before changing
    /// its size.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_node_stays_small() {
        let size = std::mem::size_of::<super::Node<crate::queue::DownQueue<u8>>>();
        assert!(size <= 344, "a node takes {size} bytes");
    }
}
