//! [`Ctx`]: a thread's handle on the tree — send UP, spawn and address children, schedule
//! tasks, attach streams and background work.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use crate::blocking::BlockingLimit;
use crate::child::{ChildOptions, ChildRef};
use crate::down::DownQueue;
use crate::driver::{
    ForwardPort, ParentSink, Prepared, UpPort, launch, launch_supervised, prepare,
};
use crate::error::{SendError, TrySendError};
use crate::inbox::{Inbound, Inbox, Refused, Take, inbox};
use crate::reschedule::{TaskRef, Timetable};
use crate::roster::Roster;
use crate::supervise::RestartPolicy;
use crate::thread::{Accepts, ChildId, Exit, HandlesStream, HandlesUp, SendsUp, Thread};
use crate::tree::{ChildNode, Node, NodeInit, ThreadMeta, ThreadState, TreeSnapshot};

pub(crate) struct ChildEntry {
    child: Arc<dyn ChildNode>,
    stage: u32,
    join: JoinHandle<Exit>,
}

impl ChildEntry {
    #[inline]
    fn node(&self) -> &Node {
        self.child.node()
    }

    /// The child's address if it is a `C`.
    fn typed<C: Thread>(&self) -> Option<ChildRef<C>> {
        let node = Arc::clone(&self.child)
            .into_any()
            .downcast::<Node<DownQueue<C::Down>>>()
            .ok()?;
        Some(ChildRef { node })
    }
}

/// What only a thread with children, streams or background jobs needs; boxed and created on
/// first use, so a leaf thread stays small.
pub(crate) struct Family<T: Thread> {
    pub(crate) inbox: Inbox<T::Event>,
    /// The children's way UP, shared by all of them.
    sink: Arc<ParentSink<T>>,
    /// In spawn order: stopping them and handling their exits in that order walks their
    /// memory in allocation order.
    children: Roster<ChildEntry>,
    stage_counts: BTreeMap<u32, usize>,
    signalled_stage: Option<u32>,
    names: HashMap<Cow<'static, str>, u32>,
    /// The last `'static` name given and how many children have had it.
    last_name: Option<(&'static str, u32)>,
    pub(crate) jobs: JoinSet<()>,
    blocking: Option<BlockingLimit>,
    stream_aborts: Vec<AbortHandle>,
    reaping: Vec<JoinHandle<Exit>>,
}

impl<T: Thread> Family<T> {
    /// The family in `slot`, made on first use.
    fn made<'a>(slot: &'a mut Option<Box<Self>>, node: &Arc<Node>) -> &'a mut Self {
        slot.get_or_insert_with(|| Box::new(Self::new(node)))
    }

    fn new(node: &Arc<Node>) -> Self {
        let (inbox_tx, inbox) = inbox(node.capacity);
        let sink = Arc::new(ParentSink {
            tx: inbox_tx,
            parent: Arc::clone(node),
        });
        Self {
            inbox,
            sink,
            children: Roster::default(),
            stage_counts: BTreeMap::new(),
            signalled_stage: None,
            names: HashMap::new(),
            last_name: None,
            jobs: JoinSet::new(),
            blocking: None,
            stream_aborts: Vec::new(),
            reaping: Vec::new(),
        }
    }

    /// The suffix that makes `base` unique among the siblings: 0 (none) for the first of a
    /// name, then 2, 3, ...
    fn name_suffix(&mut self, base: Cow<'static, str>) -> (Cow<'static, str>, u32) {
        // The usual case, many children of one type in a row, is counted without hashing:
        // the last name is kept aside with its count (and out of `names` while it is).
        if let Some((last, count)) = &mut self.last_name
            && **last == *base
        {
            *count += 1;
            return (base, *count);
        }
        if let Some((last, count)) = self.last_name.take() {
            self.names.insert(Cow::Borrowed(last), count);
        }
        let count = match self.names.get_mut(&*base) {
            Some(count) => {
                *count += 1;
                *count
            }
            None => 1,
        };
        match base {
            Cow::Borrowed(name) => {
                // Moved aside; `names` gets it back when another name comes.
                self.names.remove(name);
                self.last_name = Some((name, count));
            }
            Cow::Owned(_) if count == 1 => {
                self.names.insert(base.clone(), 1);
            }
            Cow::Owned(_) => {}
        }
        (base, if count == 1 { 0 } else { count })
    }
}

impl<T: Thread> Drop for Family<T> {
    fn drop(&mut self) {
        // Empty after a stop; not after an abort of this thread's task, whose children
        // must not outlive it (a dropped `JoinHandle` would only detach them).
        for entry in self.children.values() {
            entry.join.abort();
        }
    }
}

/// The port of an ordinary child: its UP messages and its exit go to its parent `T`,
/// through the sink all of `T`'s children share (no allocation per child).
fn parent_port<T, C>(family: &Family<T>) -> Arc<dyn UpPort<C::Up>>
where
    T: HandlesUp<C::Up>,
    C: Thread,
{
    family.sink.clone()
}

struct Children<'a> {
    inner: std::vec::IntoIter<&'a ChildEntry>,
}

impl<'a> Iterator for Children<'a> {
    type Item = ChildInfo<'a>;

    fn next(&mut self) -> Option<ChildInfo<'a>> {
        let node = self.inner.next()?.node();
        Some(ChildInfo {
            id: node.id,
            name: node.name(),
            path: node.path(),
            type_name: node.meta.type_name,
            state: node.state(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Children<'_> {}

/// A brief description of a child, from [`Ctx::children`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ChildInfo<'a> {
    /// The child's id.
    pub id: ChildId,
    /// Its name among its siblings.
    pub name: &'a str,
    /// Its path in the tree.
    pub path: &'a str,
    /// Its type, e.g. `"TcpConnection"`.
    pub type_name: &'static str,
    /// Where it is in its lifecycle.
    pub state: ThreadState,
}

/// The future of [`Ctx::up`]: resolves once the message is in the parent's queue, or gives
/// it back in the error if the parent no longer exists.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct UpFuture<'a, T: Thread> {
    ctx: &'a Ctx<T>,
    msg: Option<T::Up>,
    /// Waiting for a place in the parent's full queue.
    wait: Option<Take<'a>>,
}

// The message is only moved, never pinned.
impl<T: Thread> Unpin for UpFuture<'_, T> {}

impl<T: Thread> Future for UpFuture<'_, T> {
    type Output = Result<(), SendError<T::Up>>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;

        let this = self.get_mut();
        let ctx = this.ctx;
        let from = ctx.node.id;
        if this.wait.is_none() {
            let msg = this
                .msg
                .take()
                .expect("an UP send polled after it finished");
            match ctx.up.try_send(from, msg) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(TrySendError::Ended(msg)) => {
                    return Poll::Ready(Err(SendError::new(msg, ctx.up.target())));
                }
                // The parent's queue is full: wait for room.
                Err(TrySendError::Full(msg)) => {
                    this.msg = Some(msg);
                    this.wait = Some(ctx.up.meter().take());
                }
            }
        }
        let wait = this.wait.as_mut().expect("waiting for room");
        let Poll::Ready(room) = Pin::new(wait).poll(cx) else {
            return Poll::Pending;
        };
        this.wait = None;
        let msg = this
            .msg
            .take()
            .expect("an UP send polled after it finished");
        Poll::Ready(match room {
            Ok(()) => {
                ctx.up.send_permitted(from, msg);
                Ok(())
            }
            Err(_) => Err(SendError::new(msg, ctx.up.target())),
        })
    }
}

impl<T: Thread> fmt::Debug for UpFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpFuture")
            .field("from", &self.ctx.node.path())
            .field("waiting", &self.wait.is_some())
            .finish_non_exhaustive()
    }
}

/// A thread's context: everything a handler does to the tree goes through it.
///
/// Every handler, hook and task of a thread `T` receives `&mut Ctx<T>` next to `&mut self`.
/// Through it the thread sends UP to its parent, spawns, finds and addresses its children,
/// starts and cancels its `#[rescheduling]` tasks, and attaches streams and background work
/// whose results come back to its `#[stream]` handlers.
pub struct Ctx<T: Thread> {
    pub(crate) node: Arc<Node>,
    up: Arc<dyn UpPort<T::Up>>,
    pub(crate) family: Option<Box<Family<T>>>,
    pub(crate) timetable: Timetable,
    pub(crate) stopping: bool,
    pub(crate) completed: bool,
}

impl<T: Thread> fmt::Debug for Ctx<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("path", self.node.path())
            .field("children", &self.child_count())
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

impl<T: Thread> Ctx<T> {
    pub(crate) fn new(node: Arc<Node>, up: Arc<dyn UpPort<T::Up>>) -> Self {
        Self {
            node,
            up,
            family: None,
            timetable: Timetable::new(T::TASKS),
            stopping: false,
            completed: false,
        }
    }

    /// This thread's id.
    pub fn id(&self) -> ChildId {
        self.node.id
    }

    /// This thread's name among its siblings.
    pub fn name(&self) -> &str {
        self.node.name()
    }

    /// This thread's path in the tree, e.g. `master/tcp_server/conn-17`.
    pub fn path(&self) -> &str {
        self.node.path()
    }

    /// Whether this thread is stopping (draining its queue, stopping its children).
    pub fn is_stopping(&self) -> bool {
        self.stopping || self.completed
    }

    /// A snapshot of this thread's subtree.
    pub fn snapshot(&self) -> TreeSnapshot {
        self.node.snapshot()
    }

    // ---- UP -------------------------------------------------------------------------------

    /// Sends a message UP to the parent, waiting while the parent's queue is full.
    ///
    /// The message is of the thread's up type, declared with `#[taskthread(up = Type)]`.
    /// Fails, giving the message back, if the parent no longer exists.
    pub fn up<M>(&self, msg: M) -> UpFuture<'_, T>
    where
        T: SendsUp<M>,
    {
        // A named future rather than an `async fn`: a message of another type is then
        // reported once, at the call, and not again at the `.await`.
        UpFuture {
            ctx: self,
            msg: Some(T::__into_up(msg)),
            wait: None,
        }
    }

    /// Sends a message UP if the parent's queue has room now.
    pub fn try_up<M>(&self, msg: M) -> Result<(), TrySendError<T::Up>>
    where
        T: SendsUp<M>,
    {
        self.up.try_send(self.node.id, T::__into_up(msg))
    }

    // ---- children -------------------------------------------------------------------------

    /// Spawns a child with default options and returns its address.
    ///
    /// `Self` must have an `#[up]` handler for the child's up type; this is checked at
    /// compile time.
    pub fn spawn<C>(&mut self, child: C) -> ChildRef<C>
    where
        C: Thread,
        T: HandlesUp<C::Up>,
    {
        self.spawn_with(child, ChildOptions::new())
    }

    /// Spawns a child with a name, a queue capacity, a stop stage or a stop deadline.
    pub fn spawn_with<C>(&mut self, child: C, options: ChildOptions) -> ChildRef<C>
    where
        C: Thread,
        T: HandlesUp<C::Up>,
    {
        self.spawn_inner(options, (false, false), parent_port::<T, C>, |prepared| {
            launch(child, prepared, true)
        })
    }

    /// For a [`WorkerPool`](crate::WorkerPool): spawns a child whose UP messages go
    /// straight to this thread's parent, as if this thread sent them, and whose exit is
    /// reported to this thread.
    pub(crate) fn spawn_forwarding<C>(&mut self, child: C, options: ChildOptions) -> ChildRef<C>
    where
        C: Thread<Up = T::Up>,
    {
        let up = Arc::clone(&self.up);
        let pool = self.node.id;
        let port = move |family: &Family<T>| {
            Arc::new(ForwardPort::<T> {
                up,
                pool,
                exits: family.sink.tx.clone(),
            }) as Arc<dyn UpPort<C::Up>>
        };
        self.spawn_inner(options, (false, false), port, |prepared| {
            launch(child, prepared, true)
        })
    }

    /// Spawns a supervised child: `factory` makes it, and makes it again after it fails (or
    /// whenever it ends, as `policy` says), with backoff and a limit on restarts in a window;
    /// past the limit the child ends for good and this thread fails with an error naming it
    /// and its last failure.
    ///
    /// The returned address stays valid across restarts (same id, same queue): messages
    /// queued for the child wait for its next life instead of being lost. Each restart is
    /// counted in the [snapshot](TreeSnapshot::restarts). A stop from outside (this thread
    /// stopping, [`ChildRef::stop`], [`stop_child`](Self::stop_child)) is final.
    pub fn supervise<C, F>(&mut self, factory: F, policy: RestartPolicy) -> ChildRef<C>
    where
        C: Thread,
        F: FnMut() -> C + Send + 'static,
        T: HandlesUp<C::Up>,
    {
        self.supervise_with(factory, policy, ChildOptions::new())
    }

    /// [`supervise`](Self::supervise) with spawn options.
    pub fn supervise_with<C, F>(
        &mut self,
        factory: F,
        policy: RestartPolicy,
        options: ChildOptions,
    ) -> ChildRef<C>
    where
        C: Thread,
        F: FnMut() -> C + Send + 'static,
        T: HandlesUp<C::Up>,
    {
        let keep_queue = policy.keeps_queue();
        self.spawn_inner(options, keep_queue, parent_port::<T, C>, move |prepared| {
            launch_supervised(factory, prepared, policy)
        })
    }

    fn spawn_inner<C>(
        &mut self,
        options: ChildOptions,
        keep_queue: (bool, bool),
        port: impl FnOnce(&Family<T>) -> Arc<dyn UpPort<C::Up>>,
        launch: impl FnOnce(Prepared<C>) -> JoinHandle<Exit>,
    ) -> ChildRef<C>
    where
        C: Thread,
    {
        let id = ChildId::next();
        let stopping = self.stopping;
        // Borrowed field by field: the family mutably, the node (the parent) shared.
        let parent = &self.node;
        let family = Family::made(&mut self.family, parent);
        let (name, suffix) =
            family.name_suffix(options.name.unwrap_or(Cow::Borrowed(C::DEFAULT_NAME)));
        let port = port(family);
        let init = NodeInit {
            parent: Some(Arc::clone(parent.path())),
            name,
            suffix,
            meta: ThreadMeta::of::<C>(),
            capacity: options.capacity.unwrap_or(C::CAPACITY),
            stop_deadline: options.stop_deadline.resolve(parent.stop_deadline),
            blocking_limit: options
                .blocking_limit
                .unwrap_or(crate::DEFAULT_BLOCKING_LIMIT),
            reports_done: options.reports_done,
            keep_queue,
        };
        let (child_ref, prepared) = prepare::<C>(id, init, port);
        let join = launch(prepared);
        child_ref.node.set_task(join.abort_handle());
        parent.add_child(Arc::clone(&child_ref.node) as Arc<Node>);
        *family.stage_counts.entry(options.stage).or_default() += 1;
        if stopping && family.signalled_stage.is_some_and(|s| options.stage <= s) {
            tracing::warn!(
                child = %child_ref.node.path(),
                "spawned while stopping, in a stage already stopped: it is stopped at once"
            );
            child_ref.node.request_stop();
        }
        family.children.push(
            id,
            ChildEntry {
                child: Arc::clone(&child_ref.node) as Arc<dyn ChildNode>,
                stage: options.stage,
                join,
            },
        );
        child_ref
    }

    /// The address of the child with this id, if it is alive and of type `C`.
    pub fn child<C: Thread>(&self, id: ChildId) -> Option<ChildRef<C>> {
        self.family.as_ref()?.children.get(id)?.typed()
    }

    /// The addresses of all live children of type `C`, in spawn order.
    pub fn children_of<C: Thread>(&self) -> Vec<ChildRef<C>> {
        self.child_entries()
            .into_iter()
            .filter_map(ChildEntry::typed)
            .collect()
    }

    /// All live children, in spawn order.
    pub fn children(&self) -> impl ExactSizeIterator<Item = ChildInfo<'_>> + '_ {
        Children {
            inner: self.child_entries().into_iter(),
        }
    }

    /// The number of live children.
    pub fn child_count(&self) -> usize {
        self.family.as_ref().map_or(0, |f| f.children.len())
    }

    /// Sends a clone of `msg` to every live child of type `C`; returns how many accepted it.
    ///
    /// Children that are stopping refuse it and are not counted.
    pub async fn broadcast<C, M>(&self, msg: M) -> usize
    where
        C: Accepts<M>,
        M: Clone,
    {
        let mut accepted = 0;
        for entry in self.child_entries() {
            if let Some(queue) = entry
                .node()
                .queue
                .as_any()
                .downcast_ref::<DownQueue<C::Down>>()
                && queue.send(C::__wrap(msg.clone())).await.is_ok()
            {
                accepted += 1;
            }
        }
        accepted
    }

    /// Asks the child with this id to stop gracefully; `false` if there is no such child.
    pub fn stop_child(&self, id: ChildId) -> bool {
        match self.family.as_ref().and_then(|f| f.children.get(id)) {
            Some(entry) => {
                entry.node().request_stop();
                true
            }
            None => false,
        }
    }

    // ---- lifecycle ----------------------------------------------------------------------

    /// Stops this thread gracefully once the current handler returns; it will end as
    /// [`Exit::Completed`].
    pub fn stop(&mut self) {
        if !self.stopping {
            self.completed = true;
        }
    }

    // ---- tasks ------------------------------------------------------------------------

    /// Starts a `#[rescheduling]` task that is not scheduled (a `manual` one, or one that
    /// returned [`Done`](crate::Reschedule::Done)); it first runs after its `delay`.
    /// Starting a scheduled task does nothing.
    pub fn start_task(&mut self, task: TaskRef<T>) {
        if !self.stopping {
            self.timetable.start(task.index(), Instant::now());
        }
    }

    /// Schedules the task's next run `after` from now, replacing its schedule.
    pub fn reschedule_task(&mut self, task: TaskRef<T>, after: Duration) {
        if !self.stopping {
            self.timetable
                .schedule(task.index(), Instant::now() + after);
        }
    }

    /// Schedules the task's next run at `at`, replacing its schedule.
    pub fn reschedule_task_at(&mut self, task: TaskRef<T>, at: Instant) {
        if !self.stopping {
            self.timetable.schedule(task.index(), at);
        }
    }

    /// Cancels the task's next run. A run in progress finishes; its return value is then
    /// ignored. Start it again with [`start_task`](Self::start_task).
    pub fn cancel_task(&mut self, task: TaskRef<T>) {
        self.timetable.cancel(task.index());
    }

    /// Whether the task has a next run scheduled.
    pub fn is_task_scheduled(&self, task: TaskRef<T>) -> bool {
        self.timetable.is_scheduled(task.index())
    }

    /// How many times the task has run (or started running).
    pub fn task_runs(&self, task: TaskRef<T>) -> u64 {
        self.timetable.runs(task.index())
    }

    // ---- streams and background work ---------------------------------------------------

    /// Forwards every item of `stream` to this thread's `#[stream]` handler for its type.
    ///
    /// The stream is polled on its own task, so waiting for it never blocks the loop; items
    /// wait in the inbound queue (backpressure). When the thread starts stopping, attached
    /// streams are dropped: they are inputs, like the DOWN queue. Every item the stream has
    /// produced is still handled: an item is never held back waiting for room (with no
    /// room, it is queued anyway and the stream is read again only once there is room), so
    /// none is lost when the stream is dropped.
    pub fn attach<S>(&mut self, stream: S)
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
        T: HandlesStream<S::Item>,
    {
        if self.stopping {
            tracing::warn!("attach called while stopping: the stream is dropped unread");
            return;
        }
        let family = self.family();
        let tx = family.sink.tx.clone();
        let forward = async move {
            let mut stream = pin!(stream);
            // An item is never held while waiting, so stopping (which cancels this task)
            // never loses one that was already read, and an idle stream holds no room in
            // the queue. With no room when an item comes, it is queued anyway (one over the
            // capacity at most, per stream) and the stream is read again only once there
            // is room.
            while let Some(item) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
                match tx.meter().try_take() {
                    Ok(()) => tx.send_permitted(T::__wrap_item(item)),
                    Err(Refused::Closed) => break,
                    Err(Refused::Full) => {
                        tx.send_unmetered(Inbound::Output(T::__wrap_item(item)));
                        if tx.meter().wait_for_room().await.is_err() {
                            break;
                        }
                    }
                }
            }
        };
        let abort = family.jobs.spawn(forward.in_current_span());
        family.stream_aborts.retain(|a| !a.is_finished());
        family.stream_aborts.push(abort);
    }

    /// Runs `future` on its own task and delivers its output to this thread's `#[stream]`
    /// handler for its type.
    ///
    /// The task belongs to the thread: a stopping thread waits for it (and handles its
    /// result) before running `exit`. A panic in it fails the thread.
    pub fn spawn_task<F>(&mut self, future: F)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        T: HandlesStream<F::Output>,
    {
        let family = self.family();
        let tx = family.sink.tx.clone();
        let task = async move {
            let output = future.await;
            tx.send_unmetered(Inbound::Output(T::__wrap_item(output)));
        };
        family.jobs.spawn(task.in_current_span());
    }

    /// Runs blocking code on tokio's blocking pool and delivers its result to this thread's
    /// `#[stream]` handler for its type.
    ///
    /// At most [`DEFAULT_BLOCKING_LIMIT`](crate::DEFAULT_BLOCKING_LIMIT) jobs of this thread
    /// run at once (or the thread's [`ChildOptions::blocking_limit`]); the others wait their
    /// turn, in order, without holding up the loop, and start as earlier ones finish.
    ///
    /// Blocking code cannot be interrupted: a stopping thread waits for it, and for the jobs
    /// still waiting their turn. An abort cancels the jobs that have not started and leaves
    /// the running ones to finish on their own.
    pub fn spawn_blocking<F, R>(&mut self, f: F)
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
        T: HandlesStream<R>,
    {
        let limit = self.node.blocking_limit;
        let family = self.family();
        let tx = family.sink.tx.clone();
        let span = tracing::Span::current();
        let job = move || {
            let _entered = span.enter();
            let output = f();
            tx.send_unmetered(Inbound::Output(T::__wrap_item(output)));
        };
        family
            .blocking
            .get_or_insert_with(|| BlockingLimit::new(limit))
            .spawn(&mut family.jobs, job);
    }

    // ---- internals used by the driver -----------------------------------------------------

    fn family(&mut self) -> &mut Family<T> {
        Family::made(&mut self.family, &self.node)
    }

    /// The children in spawn order.
    fn child_entries(&self) -> Vec<&ChildEntry> {
        self.family
            .iter()
            .flat_map(|f| f.children.values())
            .collect()
    }

    pub(crate) fn begin_stopping(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.node.set_state(ThreadState::Stopping);
        self.timetable.cancel_all();
        if let Some(family) = &mut self.family {
            for abort in family.stream_aborts.drain(..) {
                abort.abort();
            }
        }
    }

    /// Whether nothing of the thread's family is left: no child, no job, no queued event.
    pub(crate) fn family_idle(&self) -> bool {
        self.family
            .as_ref()
            .is_none_or(|f| f.children.is_empty() && f.jobs.is_empty() && f.inbox.is_empty())
    }

    /// Signals the lowest stage that still has children, once per stage.
    pub(crate) fn stop_next_stage(&mut self) {
        let Some(family) = &mut self.family else {
            return;
        };
        let Some((&stage, _)) = family.stage_counts.iter().next() else {
            return;
        };
        if family.signalled_stage == Some(stage) {
            return;
        }
        family.signalled_stage = Some(stage);
        for entry in family.children.values().filter(|e| e.stage == stage) {
            entry.node().request_stop();
        }
    }

    /// Forgets an ended child; its node, if it was still known.
    pub(crate) fn on_child_exit(&mut self, id: ChildId) -> Option<Arc<dyn ChildNode>> {
        let family = self.family.as_mut()?;
        let entry = family.children.remove(id)?;
        self.node.remove_child(id);
        if let Some(count) = family.stage_counts.get_mut(&entry.stage) {
            *count -= 1;
            if *count == 0 {
                family.stage_counts.remove(&entry.stage);
            }
        }
        if family.reaping.len() >= 32 {
            family.reaping.retain(|j| !j.is_finished());
        }
        family.reaping.push(entry.join);
        Some(entry.child)
    }

    /// For an abort: forgets the children (their tasks are being cancelled), cancels the
    /// jobs, and returns how many events were still queued in the inbox (dropped).
    pub(crate) fn abort_family(&mut self) -> usize {
        let Some(family) = &mut self.family else {
            return 0;
        };
        let mut dropped = 0;
        while let Some(inbound) = family.inbox.try_recv() {
            if !matches!(inbound, Inbound::Exit(..)) {
                dropped += 1;
            }
        }
        for entry in family.children.drain() {
            self.node.remove_child(entry.node().id);
            entry.join.abort();
            family.reaping.push(entry.join);
        }
        family.stage_counts.clear();
        // `spawn_task` jobs are cancelled; `spawn_blocking` jobs cannot be, and are left to
        // finish on their own rather than holding up the abort.
        family.jobs.abort_all();
        family.jobs.detach_all();
        dropped
    }

    /// Waits for every task this thread owns to be gone, so that after a root is joined no
    /// task of the tree is alive.
    pub(crate) async fn reap_all(&mut self) {
        if let Some(family) = &mut self.family {
            // Children spawned by the `exit` hook (stopped at once): their reports come too
            // late to be handled, but their tasks are waited for like the others.
            for entry in family.children.drain() {
                entry.node().request_stop();
                self.node.remove_child(entry.node().id);
                family.reaping.push(entry.join);
            }
            family.jobs.shutdown().await;
            for join in family.reaping.drain(..) {
                let _ = join.await;
            }
        }
    }

    /// A fresh context for the next life of a supervised thread: same node, same port.
    pub(crate) fn renew(self) -> Self {
        Self::new(self.node, self.up)
    }

    pub(crate) fn into_port(self) -> Arc<dyn UpPort<T::Up>> {
        self.up
    }
}
