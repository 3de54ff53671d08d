//! [`Ctx`]: a thread's handle on the tree — send UP, address and stop its children,
//! schedule its tasks, attach streams and background work. Spawning and supervising
//! children are added by the layers that run them (`Ctx::spawn` in the loop's module,
//! `Ctx::supervise` in `supervise`), and addressing children by type next to [`ChildRef`].
//!
//! [`ChildRef`]: crate::ChildRef

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{SendError, TrySendError};
use crate::exit::{ChildId, ThreadState};
use crate::family::Family;
use crate::node::{ChildNode, Node, TreeSnapshot};
use crate::port::{Inbound, UpPort};
use crate::queue::Refused;
use crate::reschedule::{TaskRef, Timetable};
use crate::thread::{HandlesStream, Thread};

/// The family of a thread of type `T`.
pub(crate) type FamilyOf<T> = Family<T, <T as Thread>::Event>;

/// A brief description of a child, from [`Ctx::children`].
#[derive(Clone)]
pub struct ChildInfo {
    child: Arc<dyn ChildNode>,
}

impl ChildInfo {
    /// The child's id.
    pub fn id(&self) -> ChildId {
        self.child.node().id
    }

    /// Its name among its siblings, e.g. `tcp_connection-3`.
    pub fn name(&self) -> &str {
        self.child.node().name()
    }

    /// Its path in the tree, e.g. `master/tcp_server/tcp_connection-3`.
    pub fn path(&self) -> &str {
        self.child.node().path()
    }

    /// Its type, e.g. `"TcpConnection"`.
    pub fn type_name(&self) -> &'static str {
        self.child.node().meta.type_name
    }

    /// Where it is in its lifecycle now.
    pub fn state(&self) -> ThreadState {
        self.child.node().state()
    }
}

impl fmt::Debug for ChildInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildInfo")
            .field("id", &self.id())
            .field("path", &self.path())
            .field("type_name", &self.type_name())
            .field("state", &self.state())
            .finish()
    }
}

/// A thread's context: everything a handler does to the tree goes through it.
///
/// Every handler, hook and task of a thread `T` receives `&mut Ctx<T>` next to `&mut self`.
/// Through it the thread sends UP to its parent, spawns, finds and addresses its children,
/// starts and cancels its `#[rescheduling]` tasks, and attaches streams and background work
/// whose results come back to its `#[stream]` handlers.
pub struct Ctx<T: Thread> {
    node: Arc<Node>,
    up: Arc<dyn UpPort<T::Up>>,
    family: Option<Box<FamilyOf<T>>>,
    timetable: Timetable,
    stopping: bool,
    completed: bool,
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
    /// Fails, giving the message back, if the parent no longer exists.
    pub async fn up(&self, msg: T::Up) -> Result<(), SendError<T::Up>> {
        let from = self.node.id;
        match self.up.try_send(from, msg) {
            Ok(()) => Ok(()),
            // The parent's queue is full: wait for room.
            Err(TrySendError::Full(msg)) => match self.up.meter().take().await {
                Ok(()) => {
                    self.up.send_permitted(from, msg);
                    Ok(())
                }
                Err(_) => Err(SendError::new(msg, self.up.target())),
            },
            Err(TrySendError::Ended(msg)) => Err(SendError::new(msg, self.up.target())),
        }
    }

    /// Sends a message UP if the parent's queue has room now.
    pub fn try_up(&self, msg: T::Up) -> Result<(), TrySendError<T::Up>> {
        self.up.try_send(self.node.id, msg)
    }

    // ---- children -------------------------------------------------------------------------

    /// All live children, in spawn order.
    pub fn children(&self) -> impl ExactSizeIterator<Item = ChildInfo> + use<T> {
        self.node
            .children_now()
            .into_iter()
            .map(|child| ChildInfo { child })
    }

    /// The number of live children.
    pub fn child_count(&self) -> usize {
        self.family.as_ref().map_or(0, |f| f.child_count())
    }

    /// Asks the child with this id to stop gracefully; `false` if there is no such child.
    pub fn stop_child(&self, id: ChildId) -> bool {
        match self.node.child(id) {
            Some(child) => {
                child.node().request_stop();
                true
            }
            None => false,
        }
    }

    // ---- lifecycle ----------------------------------------------------------------------

    /// Stops this thread gracefully once the current handler returns; it will end as
    /// [`Exit::Completed`](crate::Exit::Completed).
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
        let tx = family.sender();
        let forward = async move {
            let mut stream = pin!(stream);
            // An item is never held while waiting, so stopping (which cancels this task)
            // never loses one that was already read, and an idle stream holds no room in
            // the queue. With no room when an item comes, it is queued anyway (one over the
            // capacity at most, per stream) and the stream is read again only once there
            // is room.
            while let Some(item) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
                match tx.meter().try_take() {
                    Ok(()) => tx.send_permitted(Inbound::Event(T::__wrap_item(item))),
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
        family.spawn_stream(forward.in_current_span());
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
        let tx = family.sender();
        let task = async move {
            let output = future.await;
            tx.send_unmetered(Inbound::Output(T::__wrap_item(output)));
        };
        family.spawn_job(task.in_current_span());
    }

    /// Runs blocking code on tokio's blocking pool and delivers its result to this thread's
    /// `#[stream]` handler for its type.
    ///
    /// At most [`DEFAULT_BLOCKING_LIMIT`](crate::DEFAULT_BLOCKING_LIMIT) jobs of this thread
    /// run at once (or the thread's [`ChildOptions::blocking_limit`](crate::ChildOptions::blocking_limit)); the others wait their
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
        let tx = family.sender();
        let span = tracing::Span::current();
        let job = move || {
            let _entered = span.enter();
            let output = f();
            tx.send_unmetered(Inbound::Output(T::__wrap_item(output)));
        };
        family.spawn_blocking(limit, job);
    }

    // ---- the loop's view: what the layers that run a thread use ------------------------

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

    /// A fresh context for the next life of a supervised thread: same node, same port.
    pub(crate) fn renew(self) -> Self {
        Self::new(self.node, self.up)
    }

    /// The thread's node.
    #[inline]
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The thread's way UP.
    pub(crate) fn up_port(&self) -> &Arc<dyn UpPort<T::Up>> {
        &self.up
    }

    /// Gives up the context for its port, to report the exit through it.
    pub(crate) fn into_port(self) -> Arc<dyn UpPort<T::Up>> {
        self.up
    }

    /// The family, made on first use.
    pub(crate) fn family(&mut self) -> &mut FamilyOf<T> {
        Family::made(&mut self.family, &self.node)
    }

    /// The family, if the thread has made one.
    #[inline]
    pub(crate) fn family_if_any(&mut self) -> Option<&mut FamilyOf<T>> {
        self.family.as_deref_mut()
    }

    #[inline]
    pub(crate) fn has_family(&self) -> bool {
        self.family.is_some()
    }

    #[inline]
    pub(crate) fn timetable(&mut self) -> &mut Timetable {
        &mut self.timetable
    }

    /// Whether the stop sequence has begun.
    #[inline]
    pub(crate) fn stop_begun(&self) -> bool {
        self.stopping
    }

    /// Whether the thread asked to end ([`stop`](Self::stop) or a task's `Stop`).
    #[inline]
    pub(crate) fn is_completed(&self) -> bool {
        self.completed
    }

    /// Begins the stop sequence: the tasks are cancelled and the streams dropped.
    pub(crate) fn begin_stopping(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.node.set_state(ThreadState::Stopping);
        self.timetable.cancel_all();
        if let Some(family) = &mut self.family {
            family.stop_streams();
        }
    }

    /// Whether nothing of the thread's family is left: no child, no job, no queued event.
    pub(crate) fn family_idle(&self) -> bool {
        self.family.as_ref().is_none_or(|f| f.is_idle())
    }
}
