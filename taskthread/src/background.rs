//! Driving a tree from synchronous code: [`background`] starts it on its own OS thread with
//! its own tokio runtime and returns a [`BackgroundHandle`] usable from any thread.

mod error;
mod park;

pub use self::error::{BlockingError, JoinError, RecvError};

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};

use crate::child::{ChildOptions, ChildRef};
use crate::error::{AskError, SendError, TrySendError};
use crate::root::{Handle, spawn_with};
use crate::thread::{Accepts, Asks, ChildId, Exit, Thread};
use crate::tree::TreeSnapshot;

thread_local! {
    /// The background tree whose runtime runs on this OS thread (0: none), so that a join
    /// from inside the tree is refused rather than waiting for itself.
    static TREE_OF_THREAD: Cell<u64> = const { Cell::new(0) };
}

/// Starts `thread` as the root of a tree on a new OS thread with its own current-thread
/// tokio runtime, and returns a handle to drive it from synchronous code.
///
/// The handle is `Send + Sync + Clone`: give a clone to every OS thread that talks to the
/// tree. Dropping the last clone stops the tree gracefully and joins its OS thread. Use
/// [`Background`] for a multi-thread runtime, a thread name or a stop deadline.
///
/// ```
/// use taskthread::prelude::*;
///
/// #[derive(Default)]
/// struct Counter { total: u64 }
///
/// #[taskthread]
/// impl Counter {
///     #[down]
///     async fn add(&mut self, _ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
///         self.total += n;
///         Ok(())
///     }
///     #[down]
///     async fn total(&mut self, _ctx: &mut Ctx<Self>, _q: Total) -> Result<u64> {
///         Ok(self.total)
///     }
/// }
/// struct Total;
///
/// // A plain `fn main`: no runtime, no `async`.
/// fn main() {
///     let counter = taskthread::background(Counter::default());
///     let workers: Vec<_> = (0..4)
///         .map(|_| {
///             let counter = counter.clone();
///             std::thread::spawn(move || counter.send(10u64).unwrap())
///         })
///         .collect();
///     for worker in workers {
///         worker.join().unwrap();
///     }
///     assert_eq!(counter.ask(Total).unwrap(), 40);
///     assert!(matches!(counter.stop_and_join(), Ok(Exit::Stopped)));
/// }
/// ```
///
/// # Panics
/// If the OS cannot start a thread or a runtime (see [`Background::spawn`] for the fallible
/// form).
pub fn background<T: Thread>(thread: T) -> BackgroundHandle<T> {
    match Background::new().spawn(thread) {
        Ok(handle) => handle,
        Err(e) => panic!("cannot start a background tree: {e}"),
    }
}

/// Options for a tree run on its own OS thread: the runtime, the thread's name, the
/// root's options and stop deadline. [`spawn`](Self::spawn) starts it.
///
/// ```
/// use std::time::Duration;
/// use taskthread::{Background, ChildOptions};
/// # use taskthread::prelude::*;
/// # #[derive(Default)] struct Mailer;
/// # #[taskthread] impl Mailer {}
///
/// let mailer = Background::new()
///     .worker_threads(2)
///     .thread_name("mailer")
///     .options(ChildOptions::new().capacity(128).blocking_limit(4))
///     .stop_deadline(Duration::from_secs(5))
///     .spawn(Mailer)
///     .expect("a thread and a runtime");
/// # mailer.stop_and_join().unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct Background {
    options: ChildOptions,
    worker_threads: Option<usize>,
    thread_name: Option<String>,
}

impl Background {
    /// The defaults: a current-thread runtime on one OS thread named `taskthread`, the
    /// root's default options, and the [default stop deadline](crate::DEFAULT_STOP_DEADLINE).
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the tree on a multi-thread runtime with `n` worker threads (by default, a
    /// current-thread runtime on the tree's own OS thread).
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn worker_threads(mut self, n: usize) -> Self {
        assert!(n > 0, "a runtime needs at least one worker thread");
        self.worker_threads = Some(n);
        self
    }

    /// The name of the tree's OS thread and of its runtime's threads (by default
    /// `taskthread`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = Some(name.into());
        self
    }

    /// The root's options (name, queue capacity, blocking limit, stop deadline). Replaces
    /// any given before, including a [`stop_deadline`](Self::stop_deadline).
    pub fn options(mut self, options: ChildOptions) -> Self {
        self.options = options;
        self
    }

    /// How long a stop of the tree may take — on [`BackgroundHandle::stop_and_join`], on
    /// dropping the last handle, or on [`BackgroundHandle::stop`] — before what remains
    /// of it is aborted (see [`ChildOptions::stop_deadline`]).
    pub fn stop_deadline(mut self, deadline: Duration) -> Self {
        self.options = self.options.stop_deadline(deadline);
        self
    }

    /// Starts `thread` as the root of a tree on a new OS thread and returns its handle.
    ///
    /// # Errors
    /// If the OS cannot start the thread or the runtime.
    pub fn spawn<T: Thread>(self, thread: T) -> std::io::Result<BackgroundHandle<T>> {
        static NEXT_TREE: AtomicU64 = AtomicU64::new(1);
        let tree = NEXT_TREE.fetch_add(1, Ordering::Relaxed);
        let name = self.thread_name.unwrap_or_else(|| "taskthread".to_owned());
        let mut builder = match self.worker_threads {
            None => tokio::runtime::Builder::new_current_thread(),
            Some(n) => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(n);
                builder
            }
        };
        builder
            .enable_all()
            .thread_name(name.clone())
            .on_thread_start(move || TREE_OF_THREAD.set(tree));
        let runtime = builder.build()?;
        let root = {
            let _entered = runtime.enter();
            spawn_with(thread, self.options)
        };
        let runtime = RuntimeGuard(Some(runtime));
        let child = root.child_ref();
        let (up_tx, up_rx) = mpsc::channel(child.node.capacity);
        let (control_tx, control_rx) = watch::channel(Control::Run);
        let (finished_tx, finished_rx) = watch::channel(false);
        let exit = Arc::new(Mutex::new(None));
        let exit_slot = Arc::clone(&exit);

        let os_thread = std::thread::Builder::new().name(name).spawn(move || {
            TREE_OF_THREAD.set(tree);
            let mut runtime = runtime;
            let mut aborted = false;
            if let Some(rt) = &runtime.0 {
                let ended = rt.block_on(forward(root, up_tx, control_rx));
                aborted = matches!(ended, Exit::Aborted { .. });
                *lock(&exit_slot) = Some(ended);
            }
            // After a graceful end nothing of the tree is left on the runtime: wait (briefly)
            // for its worker and idle blocking threads to go too. After an abort,
            // `spawn_blocking` jobs that were running are left to finish on their own (they
            // cannot be cancelled), as under any runtime: do not wait for them.
            runtime.shut_down(if aborted {
                Duration::ZERO
            } else {
                SHUTDOWN_WAIT
            });
            finished_tx.send_replace(true);
        })?;

        Ok(BackgroundHandle {
            shared: Arc::new(Shared {
                child,
                up: tokio::sync::Mutex::new(up_rx),
                control: control_tx,
                finished: finished_rx,
                exit,
                os_thread: Mutex::new(Some(os_thread)),
                tree,
            }),
        })
    }
}

/// Shuts the runtime down without waiting when dropped, so that dropping it (after a failed
/// start, or from an async context) never blocks or panics.
struct RuntimeGuard(Option<Runtime>);

/// How long the tree's thread waits for its runtime's other threads after a graceful end:
/// they are idle and go at once, unless code outside the tree still runs a blocking task.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

impl RuntimeGuard {
    fn shut_down(&mut self, wait: Duration) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(wait);
        }
    }
}

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        self.shut_down(Duration::ZERO);
    }
}

/// What the handles ask of the tree's OS thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    /// Forward UP messages, waiting for room in the handles' buffer (backpressure).
    Run,
    /// A join waits: UP messages that find the buffer full are dropped (and counted), so
    /// the root never blocks on them while it stops.
    Join,
    /// Abort the tree.
    Abort,
}

/// The tree's side: forwards the root's UP messages to the handles until the root ends,
/// then joins (or aborts) it.
async fn forward<T: Thread>(
    mut root: Handle<T>,
    up: mpsc::Sender<T::Up>,
    mut control: watch::Receiver<Control>,
) -> Exit {
    let mut dropped = 0usize;
    // False once every handle is gone: then nothing changes any more.
    let mut watching = true;
    let abort = loop {
        let mode = *control.borrow_and_update();
        if mode == Control::Abort {
            break true;
        }
        let next = tokio::select! {
            next = root.recv() => next,
            changed = control.changed(), if watching => {
                watching = changed.is_ok();
                continue;
            }
        };
        let Some(msg) = next else {
            break false;
        };
        if mode != Control::Run || !watching {
            dropped += usize::from(up.try_send(msg).is_err());
            continue;
        }
        tokio::select! {
            permit = up.reserve() => match permit {
                Ok(permit) => permit.send(msg),
                Err(_) => dropped += 1,
            },
            changed = control.changed() => {
                watching = changed.is_ok();
                dropped += usize::from(up.try_send(msg).is_err());
            }
        }
    };
    drop(up);
    if dropped > 0 {
        tracing::warn!(
            root = %root.child_ref().path(),
            dropped,
            "background tree: dropped UP messages that no handle received"
        );
    }
    let exit = if abort {
        root.abort().await
    } else {
        root.join().await
    };
    tracing::debug!("background tree ended: {exit}");
    exit
}

fn lock<V>(mutex: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn in_async_context() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    // A timeout too long to represent is no timeout.
    Instant::now().checked_add(timeout)
}

/// What every clone of a handle shares; dropping it stops the tree and joins its thread.
struct Shared<T: Thread> {
    child: ChildRef<T>,
    up: tokio::sync::Mutex<mpsc::Receiver<T::Up>>,
    control: watch::Sender<Control>,
    finished: watch::Receiver<bool>,
    exit: Arc<Mutex<Option<Exit>>>,
    os_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    tree: u64,
}

impl<T: Thread> Shared<T> {
    /// Switches the forwarding to `mode` unless it is already more final.
    fn request(&self, mode: Control) {
        self.control.send_if_modified(|current| {
            let raise = matches!(
                (*current, mode),
                (Control::Run, Control::Join | Control::Abort) | (Control::Join, Control::Abort)
            );
            if raise {
                *current = mode;
            }
            raise
        });
    }

    /// Takes the exit of a tree that has ended, joining its OS thread.
    fn take_exit(&self) -> Result<Exit, JoinError> {
        let os_thread = lock(&self.os_thread).take();
        // The thread has ended or is returning: this join is short.
        let panicked = os_thread.and_then(|t| t.join().err());
        if let Some(exit) = lock(&self.exit).take() {
            return Ok(exit);
        }
        match panicked {
            Some(payload) => Ok(Exit::Panicked(crate::driver::panic_message(payload))),
            None => Err(JoinError::AlreadyJoined),
        }
    }
}

impl<T: Thread> Drop for Shared<T> {
    fn drop(&mut self) {
        self.child.stop();
        // Nobody can receive UP messages any more: the tree's thread drops them rather
        // than waiting for room.
        self.up.get_mut().close();
        self.join_on_drop();
        let unread = self.up.get_mut().len();
        if unread > 0 {
            tracing::warn!(
                root = %self.child.path(),
                unread,
                "the last BackgroundHandle was dropped: dropped UP messages that no handle received"
            );
        }
    }
}

impl<T: Thread> Shared<T> {
    /// Waits for the tree's thread, unless a join already did or waiting could deadlock;
    /// reports a failure nobody joined to hear.
    fn join_on_drop(&mut self) {
        let Some(os_thread) = self
            .os_thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        if in_async_context() || TREE_OF_THREAD.get() == self.tree {
            tracing::warn!(
                root = %self.child.path(),
                "the last BackgroundHandle was dropped inside an async context: the tree \
                 stops gracefully on its own thread, which is not waited for"
            );
            return;
        }
        let panicked = os_thread.join().err();
        let exit = lock(&self.exit).take();
        match (exit, panicked) {
            (Some(exit), _) if exit.is_failure() => {
                tracing::error!(root = %self.child.path(), "background tree ended: {exit}");
            }
            (None, Some(payload)) => tracing::error!(
                root = %self.child.path(),
                "background tree's thread panicked: {}",
                crate::driver::panic_message(payload)
            ),
            _ => {}
        }
    }
}

/// The handle of a tree running on its own OS thread, from [`background`] or
/// [`Background::spawn`]: send, ask, receive UP messages, snapshot, stop and join, from
/// any thread and without an async context.
///
/// `Send + Sync + Clone`: every clone drives the same tree. Dropping the last clone stops
/// the tree gracefully (within its [stop deadline](Background::stop_deadline)) and joins
/// its OS thread; UP messages nobody received are then dropped.
///
/// The blocking methods refuse to run inside an async context (a tokio task, or
/// `block_on`), where blocking could stall a runtime or deadlock: they return an
/// `InAsyncContext` error at once. There, use the `_async` methods, which work on any
/// runtime. (tokio's blocking pool counts as an async context too: from a
/// `spawn_blocking` closure, use `Handle::current().block_on(handle.send_async(msg))`.)
pub struct BackgroundHandle<T: Thread> {
    shared: Arc<Shared<T>>,
}

impl<T: Thread> Clone for BackgroundHandle<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: Thread> fmt::Debug for BackgroundHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundHandle")
            .field("root", &self.shared.child)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T: Thread> BackgroundHandle<T> {
    /// The root's address, for async code that sends to it.
    pub fn child_ref(&self) -> ChildRef<T> {
        self.shared.child.clone()
    }

    /// The root's id.
    pub fn id(&self) -> ChildId {
        self.shared.child.id()
    }

    // ---- DOWN ---------------------------------------------------------------------------

    /// Sends a message DOWN to the root, blocking while its queue is full.
    ///
    /// # Errors
    /// [`Ended`](BlockingError::Ended) if the tree no longer accepts messages,
    /// [`InAsyncContext`](BlockingError::InAsyncContext) if called inside an async context;
    /// the message comes back in the error.
    pub fn send<M>(&self, msg: M) -> Result<(), BlockingError<M>>
    where
        T: Accepts<M>,
    {
        self.send_until(msg, None)
    }

    /// [`send`](Self::send), giving up with [`Timeout`](BlockingError::Timeout) (and the
    /// message) if the queue is still full after `timeout`.
    pub fn send_timeout<M>(&self, msg: M, timeout: Duration) -> Result<(), BlockingError<M>>
    where
        T: Accepts<M>,
    {
        self.send_until(msg, deadline_after(timeout))
    }

    fn send_until<M>(&self, msg: M, deadline: Option<Instant>) -> Result<(), BlockingError<M>>
    where
        T: Accepts<M>,
    {
        if in_async_context() {
            return Err(BlockingError::InAsyncContext(msg));
        }
        // A permit first, the message after: a timeout never loses the message.
        match park::block_on(self.shared.child.node.queue.reserve(), deadline) {
            Some(Ok(permit)) => {
                permit.send(T::__wrap(msg));
                Ok(())
            }
            Some(Err(_)) => Err(BlockingError::Ended(msg)),
            None => Err(BlockingError::Timeout(msg)),
        }
    }

    /// Sends a message DOWN if the root's queue has room now. Never blocks, so it may be
    /// called from anywhere, async contexts included.
    pub fn try_send<M>(&self, msg: M) -> Result<(), TrySendError<M>>
    where
        T: Accepts<M>,
    {
        self.shared.child.try_send(msg)
    }

    /// Asks the root a question and blocks until the answer.
    ///
    /// # Errors
    /// [`Ended`](BlockingError::Ended) (with the question) if the tree no longer accepts
    /// messages, [`NoReply`](BlockingError::NoReply) if it ended before answering,
    /// [`InAsyncContext`](BlockingError::InAsyncContext) if called inside an async context.
    pub fn ask<Q>(&self, question: Q) -> Result<T::Reply, BlockingError<Q>>
    where
        T: Asks<Q>,
    {
        self.ask_until(question, None)
    }

    /// [`ask`](Self::ask), giving up after `timeout`, counted from the call: with
    /// [`Timeout`](BlockingError::Timeout) and the question if the queue stayed full, with
    /// [`ReplyTimeout`](BlockingError::ReplyTimeout) if the question was delivered but not
    /// answered in time (the root still handles it; the answer is dropped).
    pub fn ask_timeout<Q>(
        &self,
        question: Q,
        timeout: Duration,
    ) -> Result<T::Reply, BlockingError<Q>>
    where
        T: Asks<Q>,
    {
        self.ask_until(question, deadline_after(timeout))
    }

    fn ask_until<Q>(
        &self,
        question: Q,
        deadline: Option<Instant>,
    ) -> Result<T::Reply, BlockingError<Q>>
    where
        T: Asks<Q>,
    {
        if in_async_context() {
            return Err(BlockingError::InAsyncContext(question));
        }
        let permit = match park::block_on(self.shared.child.node.queue.reserve(), deadline) {
            Some(Ok(permit)) => permit,
            Some(Err(_)) => return Err(BlockingError::Ended(question)),
            None => return Err(BlockingError::Timeout(question)),
        };
        let (reply, answer) = oneshot::channel();
        permit.send(T::__wrap_ask(question, crate::__private::Reply(reply)));
        match park::block_on(answer, deadline) {
            Some(Ok(answer)) => Ok(answer),
            Some(Err(_)) => Err(BlockingError::NoReply),
            None => Err(BlockingError::ReplyTimeout),
        }
    }

    // ---- UP -----------------------------------------------------------------------------

    /// Blocks until the root sends a message UP.
    ///
    /// Clones share one stream of messages: each message goes to one receiver.
    ///
    /// # Errors
    /// [`Ended`](RecvError::Ended) once the tree has ended and every message it sent was
    /// received, [`InAsyncContext`](RecvError::InAsyncContext) if called inside an async
    /// context.
    pub fn recv(&self) -> Result<T::Up, RecvError> {
        self.recv_until(None)
    }

    /// [`recv`](Self::recv), giving up with [`Timeout`](RecvError::Timeout) after
    /// `timeout` (zero: take a message only if one is waiting).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T::Up, RecvError> {
        self.recv_until(deadline_after(timeout))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<T::Up, RecvError> {
        if in_async_context() {
            return Err(RecvError::InAsyncContext);
        }
        match park::block_on(self.recv_async(), deadline) {
            Some(Some(msg)) => Ok(msg),
            Some(None) => Err(RecvError::Ended),
            None => Err(RecvError::Timeout),
        }
    }

    // ---- the tree -----------------------------------------------------------------------

    /// A snapshot of the whole tree (after the end: the root, exited).
    pub fn snapshot(&self) -> TreeSnapshot {
        self.shared.child.snapshot()
    }

    /// Asks the tree to stop gracefully. Returns at once; [`join`](Self::join) waits for
    /// the end. UP messages the root sends while stopping can still be received.
    pub fn stop(&self) {
        self.shared.child.stop();
    }

    /// Whether the tree has ended and its OS thread is done with it.
    pub fn is_finished(&self) -> bool {
        *self.shared.finished.borrow()
    }

    /// Blocks until the tree has ended (by itself, or after a [`stop`](Self::stop) from
    /// any clone) and returns how its root ended; its OS thread is then joined.
    ///
    /// While a join waits, UP messages that find the handles' buffer full are dropped (and
    /// counted in a warning) instead of holding up the root; those already buffered can
    /// still be received. To keep every message, [`stop`](Self::stop) and
    /// [`recv`](Self::recv) until [`Ended`](RecvError::Ended) before joining.
    ///
    /// # Errors
    /// [`InAsyncContext`](JoinError::InAsyncContext) inside an async context;
    /// [`AlreadyJoined`](JoinError::AlreadyJoined) if another clone took the exit first.
    pub fn join(self) -> Result<Exit, JoinError> {
        self.join_until(None)
    }

    /// [`join`](Self::join), giving up with [`Timeout`](JoinError::Timeout) after
    /// `timeout`; the tree goes on, and may be joined again or
    /// [aborted](Self::abort). As with `join`, from this call on UP messages that find the
    /// handles' buffer full are dropped rather than holding up the root.
    pub fn join_timeout(&self, timeout: Duration) -> Result<Exit, JoinError> {
        self.join_until(deadline_after(timeout))
    }

    /// Stops the tree gracefully and blocks until it has ended: [`stop`](Self::stop)
    /// then [`join`](Self::join). The tree's [stop deadline](Background::stop_deadline)
    /// bounds the wait: past it, what remains is aborted and the exit says so.
    pub fn stop_and_join(self) -> Result<Exit, JoinError> {
        self.stop();
        self.join()
    }

    /// Stops the tree gracefully and blocks until it has ended, or for `deadline` at most:
    /// past it, what remains of the tree is aborted (see [`abort`](Self::abort)) and the
    /// exit is [`Exit::Aborted`]. For a deadline on every stop of the tree, including the
    /// one on dropping the last handle, see [`Background::stop_deadline`].
    pub fn stop_and_join_timeout(self, deadline: Duration) -> Result<Exit, JoinError> {
        self.stop();
        match self.join_timeout(deadline) {
            Err(JoinError::Timeout) => self.abort(),
            joined => joined,
        }
    }

    /// Aborts the tree at once (see [`Handle::abort`]) and blocks until it has ended.
    pub fn abort(self) -> Result<Exit, JoinError> {
        if in_async_context() {
            return Err(JoinError::InAsyncContext);
        }
        self.shared.request(Control::Abort);
        self.join_until(None)
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<Exit, JoinError> {
        if in_async_context() {
            return Err(JoinError::InAsyncContext);
        }
        self.shared.request(Control::Join);
        let mut finished = self.shared.finished.clone();
        // An error means the thread is gone without saying so (it panicked): ended too.
        if park::block_on(finished.wait_for(|&done| done), deadline).is_none() {
            return Err(JoinError::Timeout);
        }
        self.shared.take_exit()
    }

    // ---- async --------------------------------------------------------------------------

    /// Sends a message DOWN, waiting while the queue is full, from async code on any
    /// runtime (see [`ChildRef::send`]).
    pub async fn send_async<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        T: Accepts<M>,
    {
        self.shared.child.send(msg).await
    }

    /// Asks the root a question from async code on any runtime (see [`ChildRef::ask`]).
    pub async fn ask_async<Q>(&self, question: Q) -> Result<T::Reply, AskError<Q>>
    where
        T: Asks<Q>,
    {
        self.shared.child.ask(question).await
    }

    /// Receives the next message the root sent UP, from async code on any runtime; `None`
    /// once the tree has ended and every message was received.
    pub async fn recv_async(&self) -> Option<T::Up> {
        self.shared.up.lock().await.recv().await
    }

    /// [`join`](Self::join) from async code on any runtime.
    ///
    /// # Errors
    /// [`InsideTree`](JoinError::InsideTree) if called from the tree's own runtime;
    /// [`AlreadyJoined`](JoinError::AlreadyJoined) if another clone took the exit first.
    pub async fn join_async(self) -> Result<Exit, JoinError> {
        if TREE_OF_THREAD.get() == self.shared.tree {
            return Err(JoinError::InsideTree);
        }
        self.shared.request(Control::Join);
        let mut finished = self.shared.finished.clone();
        let _ = finished.wait_for(|&done| done).await;
        self.shared.take_exit()
    }

    /// [`stop_and_join`](Self::stop_and_join) from async code on any runtime.
    pub async fn stop_and_join_async(self) -> Result<Exit, JoinError> {
        self.stop();
        self.join_async().await
    }
}
