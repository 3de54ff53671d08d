//! The live tree: each thread's shared node, snapshots of the tree, and their rendering in
//! the hierarchical notation of the TaskThread docs.

use std::any::Any;
use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::task::AbortHandle;

use crate::down::DownQueue;
use crate::roster::Roster;
use crate::thread::{ChildExit, ChildId, Exit};

/// Where a thread is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadState {
    /// Running its `enter` hook.
    Starting,
    /// Handling messages and running tasks.
    Running,
    /// Stopping: draining its queue, stopping its children, running `exit`.
    Stopping,
    /// Ended; its parent has been told.
    Exited,
}

impl ThreadState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Starting,
            1 => Self::Running,
            2 => Self::Stopping,
            _ => Self::Exited,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Exited => "exited",
        }
    }
}

impl fmt::Display for ThreadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The DOWN queue of a thread, type-erased: its depth for snapshots, and the typed queue
/// for a parent's broadcasts (recovered by downcasting).
pub(crate) trait Queue: Send + Sync {
    fn depth(&self) -> usize;
    fn as_any(&self) -> &dyn Any;
}

impl<D: Send + 'static> Queue for DownQueue<D> {
    fn depth(&self) -> usize {
        self.len()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A child's node as its parent keeps it: untyped for everything the parent does to any
/// child, and typed again (by a checked downcast) to address the child as its own type.
pub(crate) trait ChildNode: Send + Sync {
    fn node(&self) -> &Node;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<Q: Queue + 'static> ChildNode for Node<Q> {
    #[inline]
    fn node(&self) -> &Node {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// What the rest of the tree can see of one thread: identity, counters, its stop signal and
/// its children (for snapshots). Written by the thread's own loop, read by anyone.
///
/// Generic over its queue, which is its last field and lives in the same allocation: the
/// thread's own end and its addresses hold it typed (`Arc<Node<DownQueue<D>>>`), the rest
/// of the tree as `Arc<Node>`, to which the typed one coerces.
pub(crate) struct Node<Q: ?Sized + Queue = dyn Queue> {
    pub(crate) id: ChildId,
    /// Built on first use: a thread nobody names in a log, a span, a snapshot or an error
    /// never pays for it (spawning is a hot path).
    path: LazyPath,
    pub(crate) meta: &'static ThreadMeta,
    pub(crate) capacity: usize,
    /// [`STOP`] and [`RESTART`] requests.
    stop_requested: AtomicU8,
    /// The thread's task, woken by a request. Only that task waits for one, so a single
    /// waker slot does (no waiter list, no lock, nothing stored in the task per waiter).
    stop_waker: AtomicWaker,
    state: AtomicU8,
    handled: AtomicU64,
    /// In spawn order; made when the first child is spawned (most threads have none).
    children: OnceLock<Box<Mutex<Roster<Arc<Node>>>>>,
    /// How long a stop may take before what remains of the subtree is aborted.
    pub(crate) stop_deadline: Option<Duration>,
    /// How many `spawn_blocking` jobs run at once.
    pub(crate) blocking_limit: usize,
    /// For a worker pool's workers only: DOWN messages finished, and who waits for them.
    pub(crate) done: Option<Box<DoneSignal>>,
    /// The thread's task, for aborting it from above.
    task: OnceLock<AbortHandle>,
    /// How often a supervisor has started it again.
    restarts: AtomicU32,
    /// Supervised: a completion or a failure is followed by a restart, so it keeps its queue.
    pub(crate) keep_queue_on_completion: bool,
    pub(crate) keep_queue_on_failure: bool,
    /// A worker pool's resize hook, made by whichever asks first: the pool or a handle.
    pool: OnceLock<Arc<crate::pool::PoolControl>>,
    pub(crate) queue: Q,
}

/// What a thread's type says of it, shared by every thread of the type: one pointer in
/// each node instead of three fields.
pub(crate) struct ThreadMeta {
    pub(crate) type_name: &'static str,
    pub(crate) down_types: &'static [&'static str],
    pub(crate) up_type: Option<&'static str>,
}

impl ThreadMeta {
    /// The one of thread type `T`.
    pub(crate) fn of<T: crate::Thread>() -> &'static Self {
        <T as MetaOf>::META
    }
}

trait MetaOf {
    const META: &'static ThreadMeta;
}

impl<T: crate::Thread> MetaOf for T {
    const META: &'static ThreadMeta = &ThreadMeta {
        type_name: T::TYPE_NAME,
        down_types: T::DOWN_TYPES,
        up_type: T::UP_TYPE,
    };
}

/// A thread's path, from its parent's path, its name and its suffix, built (one
/// allocation) the first time something asks for it. Cloning it copies the parts and the
/// path if it is built: no allocation.
#[derive(Clone)]
pub(crate) struct LazyPath {
    parent: Option<Arc<str>>,
    name: Name,
    /// `name-suffix` unless 0.
    suffix: u32,
    built: OnceLock<Arc<str>>,
}

/// A thread's name: its type's default, or one it was given.
#[derive(Clone)]
enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl LazyPath {
    pub(crate) fn get(&self) -> &Arc<str> {
        self.built.get_or_init(|| {
            let name = match &self.name {
                Name::Static(name) => name,
                Name::Shared(name) => &**name,
            };
            build_path(self.parent.as_deref(), name, self.suffix)
        })
    }

    /// The last segment of the path: the name and its suffix.
    pub(crate) fn name(&self) -> &str {
        let at = self.parent.as_ref().map_or(0, |p| p.len() + 1);
        &self.get()[at..]
    }
}

/// Stop flags: a stop for good, and a restart (stop, then start again).
const STOP: u8 = 1;
const RESTART: u8 = 2;

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("path", self.path())
            .finish_non_exhaustive()
    }
}

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
    pub(crate) reports_done: bool,
    /// `(on completion, on failure)`: see [`Node::stop_closes_queue`].
    pub(crate) keep_queue: (bool, bool),
}

/// `parent/name-suffix` (or without the parent or the suffix) in one allocation, the
/// `Arc<str>` itself, for the usual short paths.
fn build_path(parent: Option<&str>, name: &str, suffix: u32) -> Arc<str> {
    let mut digits = [0u8; 10];
    let mut first = digits.len();
    let mut n = suffix;
    while n > 0 {
        first -= 1;
        digits[first] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let digits = &digits[first..];
    let mut buf = [0u8; 128];
    let parts: [&[u8]; 5] = [
        parent.map_or(&[][..], str::as_bytes),
        if parent.is_some() { b"/" } else { b"" },
        name.as_bytes(),
        if digits.is_empty() { b"" } else { b"-" },
        digits,
    ];
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > buf.len() {
        let mut path = String::with_capacity(len);
        for part in parts {
            // Every part is UTF-8 (a `str` or ASCII).
            path.push_str(std::str::from_utf8(part).unwrap_or_default());
        }
        return Arc::from(path);
    }
    let mut at = 0;
    for part in parts {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Arc::from(std::str::from_utf8(&buf[..len]).unwrap_or_default())
}

/// How many DOWN messages a thread has finished handling, for a worker pool that hands a
/// job only to a worker that has finished the ones it was given.
#[derive(Default)]
pub(crate) struct DoneSignal {
    finished: AtomicU64,
    waiter: AtomicWaker,
}

impl DoneSignal {
    /// One more DOWN message handled (its handler returned, failed or panicked).
    pub(crate) fn finish_one(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        self.waiter.wake();
    }

    /// Ready once `count` DOWN messages have been handled; else `cx` is woken by the next.
    pub(crate) fn poll_finished(&self, count: u64, cx: &mut Context<'_>) -> Poll<()> {
        self.waiter.register(cx.waker());
        if self.finished.load(Ordering::SeqCst) >= count {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Node {
    /// The live node of this subtree with this path.
    #[cfg(feature = "control")]
    pub(crate) fn find(self: &Arc<Self>, path: &str) -> Option<Arc<Node>> {
        if **self.path() == *path {
            return Some(Arc::clone(self));
        }
        // Only descend into a child whose path is a prefix of the one sought.
        self.children_now().into_iter().find_map(|c| {
            let under = path.strip_prefix(&**c.path())?;
            (under.is_empty() || under.starts_with('/'))
                .then(|| c.find(path))
                .flatten()
        })
    }
}

impl<Q: Queue> Node<Q> {
    pub(crate) fn new(id: ChildId, init: NodeInit, queue: Q) -> Self {
        Self {
            id,
            path: LazyPath {
                parent: init.parent,
                name: match init.name {
                    Cow::Borrowed(name) => Name::Static(name),
                    Cow::Owned(name) => Name::Shared(Arc::from(name)),
                },
                suffix: init.suffix,
                built: OnceLock::new(),
            },
            meta: init.meta,
            capacity: init.capacity,
            stop_requested: AtomicU8::new(0),
            stop_waker: AtomicWaker::new(),
            state: AtomicU8::new(0),
            handled: AtomicU64::new(0),
            children: OnceLock::new(),
            stop_deadline: init.stop_deadline,
            blocking_limit: init.blocking_limit,
            done: init.reports_done.then(Box::default),
            task: OnceLock::new(),
            restarts: AtomicU32::new(0),
            keep_queue_on_completion: init.keep_queue.0,
            keep_queue_on_failure: init.keep_queue.1,
            pool: OnceLock::new(),
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
        if self.stop_requested.fetch_or(STOP, Ordering::AcqRel) & STOP == 0 {
            self.stop_waker.wake();
        }
    }

    /// Asks a supervised thread to stop gracefully and start again, keeping its queue (a
    /// sibling in its restart group failed).
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

    /// Whether a restart was requested (and no stop for good).
    pub(crate) fn take_restart_request(&self) -> bool {
        self.stop_requested.fetch_and(!RESTART, Ordering::AcqRel) == RESTART
    }

    /// Whether a stop, for this reason, closes the DOWN queue: not when a supervised thread
    /// will start again and handle what is queued.
    pub(crate) fn stop_closes_queue(&self, completed: bool) -> bool {
        let flags = self.stop_requested.load(Ordering::Acquire);
        if flags & STOP != 0 {
            true
        } else if flags & RESTART != 0 {
            false
        } else if completed {
            !self.keep_queue_on_completion
        } else {
            true
        }
    }

    /// Whether a failure closes the DOWN queue: not for a supervised thread restarted on
    /// failure (unless it is being stopped for good).
    pub(crate) fn failure_closes_queue(&self) -> bool {
        !self.keep_queue_on_failure || self.is_final_stop_requested()
    }

    pub(crate) fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
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

    pub(crate) fn set_task(&self, task: AbortHandle) {
        let _ = self.task.set(task);
    }

    /// Aborts the tasks of this thread's descendants (not its own), deepest first, and
    /// returns how many DOWN messages were queued for them. Their handles are pushed to
    /// `aborted`, so the caller can wait until the tasks are gone.
    pub(crate) fn abort_descendants(&self, aborted: &mut Vec<AbortHandle>) -> usize {
        let children = self.children_now();
        let mut dropped = 0;
        for child in children {
            dropped += child.abort_descendants(aborted);
            dropped += child.queue_depth();
            child.set_state(ThreadState::Exited);
            if let Some(task) = child.task.get() {
                task.abort();
                aborted.push(task.clone());
            }
        }
        dropped
    }

    /// The path of the thread of this subtree that runs as task `task`, if any.
    pub(crate) fn path_of_task(&self, task: tokio::task::Id) -> Option<Arc<str>> {
        if self.task.get().is_some_and(|t| t.id() == task) {
            return Some(Arc::clone(self.path()));
        }
        // Walked under the locks, top down (nothing takes a parent's lock while holding a
        // child's), without copying any list: `Handle::join` asks this on every call.
        let children = self.children()?;
        children.values().find_map(|c| c.path_of_task(task))
    }

    /// The live children at this moment (the lock is not held while the caller uses them).
    /// In spawn order.
    fn children_now(&self) -> Vec<Arc<Node>> {
        self.children()
            .map(|children| children.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The list of children, locked; `None` if there never was a child.
    fn children(&self) -> Option<MutexGuard<'_, Roster<Arc<Node>>>> {
        let children = self.children.get()?;
        Some(children.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The resize hook of the worker pool this node runs (only pools call this).
    pub(crate) fn pool_control(&self) -> &Arc<crate::pool::PoolControl> {
        self.pool.get_or_init(Default::default)
    }

    /// The resize hook, if this node runs a worker pool that has made one.
    #[cfg(feature = "control")]
    pub(crate) fn pool_control_if_any(&self) -> Option<&Arc<crate::pool::PoolControl>> {
        self.pool.get()
    }

    pub(crate) fn add_child(&self, child: Arc<Node>) {
        let mut children = self
            .children
            .get_or_init(Box::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        children.push(child.id, child);
    }

    pub(crate) fn remove_child(&self, child: ChildId) {
        let removed = self.children().and_then(|mut c| c.remove(child));
        // Dropped outside the lock.
        drop(removed);
    }

    pub(crate) fn snapshot(&self) -> TreeSnapshot {
        let children = self.children_now();
        TreeSnapshot {
            id: self.id,
            name: self.name().to_owned(),
            path: self.path().to_string(),
            type_name: self.meta.type_name,
            down_types: self.meta.down_types,
            up_type: self.meta.up_type,
            state: self.state(),
            queue_depth: self.queue_depth(),
            queue_capacity: self.capacity,
            handled: self.handled(),
            restarts: self.restarts(),
            children: children.iter().map(|c| c.snapshot()).collect(),
        }
    }
}

/// A picture of a subtree at one moment: names, types, states, queue depths, message counts.
///
/// Its `Display` renders the hierarchical notation of the original TaskThread docs, one
/// thread per line, children indented by four spaces:
///
/// ```text
/// Master [master] running, queue 0/64, handled 0
///     TcpServer: UP: Frame [master/tcp_server] running, queue 0/64, handled 0
///         TcpConnection: UP: Frame [master/tcp_server/tcp_connection] running, queue 0/64, handled 3
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeSnapshot {
    /// The thread's id.
    pub id: ChildId,
    /// Its name among its siblings.
    pub name: String,
    /// Its path in the tree, e.g. `master/tcp_server/conn-17`.
    pub path: String,
    /// Its type, e.g. `TcpServer`.
    pub type_name: &'static str,
    /// The message types it takes DOWN.
    pub down_types: &'static [&'static str],
    /// The type it sends UP, if any.
    pub up_type: Option<&'static str>,
    /// Where it is in its lifecycle.
    pub state: ThreadState,
    /// Messages waiting in its DOWN queue.
    pub queue_depth: usize,
    /// The capacity of its DOWN queue.
    pub queue_capacity: usize,
    /// DOWN messages, UP messages, stream items and task runs it has handled.
    pub handled: u64,
    /// How often its supervisor has started it again (see [`Ctx::supervise`](crate::Ctx::supervise)).
    pub restarts: u32,
    /// Its live children, in the order they were spawned.
    pub children: Vec<TreeSnapshot>,
}

impl TreeSnapshot {
    /// The number of threads in this subtree, itself included.
    pub fn len(&self) -> usize {
        1 + self.children.iter().map(TreeSnapshot::len).sum::<usize>()
    }

    /// Always `false`: a snapshot holds at least its root. Present for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Finds a thread of this subtree by path.
    pub fn find(&self, path: &str) -> Option<&TreeSnapshot> {
        if self.path == path {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(path))
    }

    /// Renders only the hierarchy and the types, exactly in the original's notation
    /// (`TcpServer: UP: Frame`), without names or counters.
    pub fn render_types(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0, false);
        out
    }

    fn render_into(&self, out: &mut String, depth: usize, stats: bool) {
        for _ in 0..depth {
            out.push_str("    ");
        }
        out.push_str(self.type_name);
        let mut parts = Vec::new();
        if !self.down_types.is_empty() {
            parts.push(format!("IN: {}", self.down_types.join(", ")));
        }
        if let Some(up) = self.up_type {
            parts.push(format!("UP: {up}"));
        }
        if !parts.is_empty() {
            let _ = write!(out, ": {}", parts.join(", "));
        }
        if stats {
            let _ = write!(
                out,
                " [{}] {}, queue {}/{}, handled {}",
                self.path, self.state, self.queue_depth, self.queue_capacity, self.handled
            );
            if self.restarts > 0 {
                let _ = write!(out, ", restarts {}", self.restarts);
            }
        }
        out.push('\n');
        for child in &self.children {
            child.render_into(out, depth + 1, stats);
        }
    }
}

impl fmt::Display for TreeSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.render_into(&mut out, 0, true);
        f.write_str(out.trim_end_matches('\n'))
    }
}

/// The default handling of a child's exit: a log line at a level fitting the exit.
pub(crate) fn log_exit(parent: &str, exit: &ChildExit) {
    match &exit.exit {
        Exit::Completed | Exit::Stopped => {
            tracing::debug!(parent, child = %exit.path(), "child {}", exit.exit);
        }
        Exit::Aborted { .. } => {
            tracing::warn!(parent, child = %exit.path(), "child {}", exit.exit);
        }
        Exit::Failed(e) => tracing::error!(parent, child = %exit.path(), "child failed: {e:#}"),
        Exit::Panicked(m) => tracing::error!(parent, child = %exit.path(), "child panicked: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::build_path;

    /// Every thread has a node, and spawning many is a hot path: with glibc's allocator, a
    /// 296-byte node (without its queue) made spawn + stop of 10 000 children about a fifth
    /// slower than a 224-byte one did. The node now holds the DOWN queue too (120 bytes, in
    /// place of a 512-byte channel allocated apart), and must not grow past that.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_node_stays_small() {
        let size = std::mem::size_of::<super::Node<crate::down::DownQueue<u8>>>();
        assert!(size <= 344, "a node takes {size} bytes");
    }

    #[test]
    fn paths_join_parent_name_and_suffix() {
        assert_eq!(&*build_path(None, "master", 0), "master");
        assert_eq!(&*build_path(Some("master"), "conn", 0), "master/conn");
        assert_eq!(&*build_path(Some("master"), "conn", 17), "master/conn-17");
        assert_eq!(
            &*build_path(Some("a"), "b", u32::MAX),
            format!("a/b-{}", u32::MAX)
        );
        assert_eq!(&*build_path(Some("größe"), "naïve", 2), "größe/naïve-2");
    }

    #[test]
    fn long_paths_are_built_whole() {
        let parent = "p".repeat(200);
        let name = "ñ".repeat(50);
        assert_eq!(
            &*build_path(Some(&parent), &name, 3),
            format!("{parent}/{name}-3")
        );
    }
}
