//! Worker pools: a [`WorkerPool`] is a thread that keeps N identical worker threads, hands
//! each job sent to it to one free worker, and is resized while it runs through a
//! [`PoolHandle`] (also from the control endpoint).
//!
//! - [`WorkerPool`]: the pool itself, a thread whose workers are its children.
//! - [`PoolHandle`], [`PoolCommand`], [`PoolStatus`]: resizing it from outside.
//! - [`PoolError`]: a resize command it refused.

mod error;
mod handle;

pub use error::PoolError;
pub use handle::{PoolCommand, PoolHandle, PoolStatus};

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::child::{ChildOptions, ChildRef};
use crate::ctx::Ctx;
use crate::driver::{DoneSignal, LifeRules};
use crate::error::{Result, TrySendError};
use crate::exit::{ChildExit, ChildId, log_exit};
use crate::reply::Reply;
use crate::reschedule::Reschedule;
use crate::thread::{Accepts, Asks, HandlesStream, Thread};
use handle::PoolControl;

/// A pool of identical worker threads of type `W`, itself a thread: its workers are its
/// children.
///
/// - **Jobs**: the pool takes DOWN every message type `W` takes (and answers every question
///   `W` answers), so `pool.send(job)` and `pool.ask(question)` work as they would on one
///   worker. Each job goes to exactly one worker, one that is free; while every worker is
///   busy the pool holds the job, and once its own queue is full too, senders wait
///   (backpressure).
/// - **UP**: the workers' UP messages go straight to the pool's parent, as if the pool sent
///   them, so the pool's up type is `W`'s; each worker has its own place in the parent's
///   queue (see [`Ctx::up`](crate::Ctx::up)).
/// - **Resizing**: [`ChildRef::pool`] gives a [`PoolHandle`] that starts and stops workers
///   while the pool works (also from the control endpoint, `taskthread::control`).
///   Stopping a worker is graceful: it finishes the jobs it holds, and jobs still waiting in
///   the pool go to the others. No job is lost by resizing.
///
/// A worker is given a job only once it has finished the last one it was given, so no job
/// ever waits behind another on a busy worker while a free one idles. A worker that ends on its own
/// (it fails, panics or completes) is logged and not replaced: [`PoolHandle::start`] adds
/// workers again. A pool stopping with jobs queued and no worker left starts one to finish
/// them.
///
/// ```
/// use taskthread::prelude::*;
/// use taskthread::pool::WorkerPool;
///
/// /// A worker: doubles numbers and sends them UP.
/// #[derive(Default)]
/// struct Doubler;
///
/// #[taskthread(up = u64)]
/// impl Doubler {
///     #[down]
///     async fn job(&mut self, ctx: &mut Ctx<Self>, n: u64) -> Result<()> {
///         ctx.up(n * 2).await?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> taskthread::Result<()> {
/// let mut root = taskthread::spawn(WorkerPool::new(|| Doubler).size(2).max(8));
/// let pool = root.child_ref().pool();
/// for n in 1..=10u64 {
///     root.send(n).await?;
/// }
/// pool.start(2).await?;                        // resize while it works
/// assert_eq!(pool.running(), 4);
/// let mut sum = 0;
/// for _ in 1..=10 {
///     sum += root.recv().await.unwrap();
/// }
/// assert_eq!(sum, 110);
/// root.stop();
/// root.join().await.into_result()?;
/// # Ok(())
/// # }
/// ```
pub struct WorkerPool<W: Thread> {
    factory: Box<dyn FnMut() -> W + Send>,
    size: usize,
    max: usize,
    /// The runtimes workers are started on, round-robin; none: the pool's own.
    runtimes: Vec<tokio::runtime::Handle>,
    /// The runtime the next worker is started on, modulo their number.
    next_runtime: usize,
    /// Workers that take jobs, oldest first; stopped ones are removed at once.
    workers: Vec<ChildRef<W>>,
    /// Workers that have finished every job they were given, in the order they became free.
    free: VecDeque<ChildId>,
    /// How many jobs each worker has been given, and how many it has finished.
    given: HashMap<ChildId, Tally>,
    ready_tx: mpsc::UnboundedSender<ChildId>,
    ready_rx: mpsc::UnboundedReceiver<ChildId>,
    /// One watcher per job handed out: it waits until the worker has finished it, then
    /// marks the worker free.
    watchers: JoinSet<()>,
    control: Option<Arc<PoolControl>>,
}

impl<W: Thread> fmt::Debug for WorkerPool<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("worker", &W::TYPE_NAME)
            .field("running", &self.workers.len())
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// The default maximum number of workers of a [`WorkerPool`].
pub const DEFAULT_MAX_WORKERS: usize = 64;

impl<W: Thread> WorkerPool<W> {
    /// A pool whose workers `factory` makes; it starts one worker, and has at most
    /// [`DEFAULT_MAX_WORKERS`].
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::WorkerPool;
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler));
    /// assert_eq!(pool.ask(Double(21)).await.unwrap(), 42); // answered by its one worker
    /// assert_eq!(pool.child_ref().pool().running(), 1);
    /// # }
    /// ```
    pub fn new(factory: impl FnMut() -> W + Send + 'static) -> Self {
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        Self {
            factory: Box::new(factory),
            size: 1,
            max: DEFAULT_MAX_WORKERS,
            runtimes: Vec::new(),
            next_runtime: 0,
            workers: Vec::new(),
            free: VecDeque::new(),
            given: HashMap::new(),
            ready_tx,
            ready_rx,
            watchers: JoinSet::new(),
            control: None,
        }
    }

    /// How many workers it starts with (it may be 0: jobs then wait until workers are
    /// started). More than the maximum starts the maximum.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::WorkerPool;
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler).size(3));
    /// pool.ask(Double(1)).await.unwrap(); // answered: the pool has started
    /// assert_eq!(pool.child_ref().pool().running(), 3);
    /// # }
    /// ```
    pub fn size(mut self, workers: usize) -> Self {
        self.size = workers;
        self
    }

    /// The most workers it may run at once.
    ///
    /// # Panics
    /// If `max` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::{PoolError, WorkerPool};
    /// use taskthread::prelude::*;
    /// # struct Double(u64);
    /// # struct Doubler;
    /// # #[taskthread]
    /// # impl Doubler {
    /// #     #[down]
    /// #     async fn double(&mut self, _ctx: &mut Ctx<Self>, Double(n): Double) -> Result<u64> {
    /// #         Ok(n * 2)
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // `Doubler` answers `Double(n)` with `n * 2`.
    /// let pool = taskthread::spawn(WorkerPool::new(|| Doubler).size(2).max(3));
    /// let workers = pool.child_ref().pool();
    /// assert_eq!(workers.start(1).await.unwrap().running, 3);
    /// assert!(matches!(workers.start(1).await, Err(PoolError::TooMany { .. })));
    /// # }
    /// ```
    #[track_caller]
    pub fn max(mut self, max: usize) -> Self {
        assert!(max > 0, "a worker pool needs room for at least one worker");
        self.max = max;
        self
    }

    /// Starts its workers on these runtimes, round-robin (each worker on the runtime after
    /// the last one's), rather than on the pool's own: the handles of
    /// [`Cores`](crate::Cores) spread a pool over one runtime per core. Each runtime must
    /// run until the workers on it have ended (see
    /// [`ChildOptions::runtime`](crate::ChildOptions::runtime)).
    ///
    /// # Panics
    /// If `runtimes` is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::pool::WorkerPool;
    /// use taskthread::prelude::*;
    /// use taskthread::Cores;
    ///
    /// struct Worker;
    ///
    /// #[taskthread(up = String)]
    /// impl Worker {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.up(std::thread::current().name().unwrap_or_default().to_owned()).await?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cores = Cores::new(2).unwrap();
    /// let pool = WorkerPool::new(|| Worker).size(4).spread_over(cores.handles().cloned());
    /// let mut pool = taskthread::spawn(pool);
    /// let mut at = Vec::new();
    /// for _ in 0..4 {
    ///     at.push(pool.recv().await.unwrap());
    /// }
    /// at.sort();
    /// assert_eq!(at, ["tt-core-0", "tt-core-0", "tt-core-1", "tt-core-1"]);
    /// pool.stop();
    /// pool.join().await;
    /// # }
    /// ```
    #[track_caller]
    pub fn spread_over(
        mut self,
        runtimes: impl IntoIterator<Item = tokio::runtime::Handle>,
    ) -> Self {
        self.runtimes = runtimes.into_iter().collect();
        assert!(
            !self.runtimes.is_empty(),
            "a worker pool spread over runtimes needs at least one runtime"
        );
        self
    }

    fn control(&self) -> &PoolControl {
        self.control
            .as_deref()
            .unwrap_or_else(|| unreachable!("the control is set in `enter`"))
    }

    fn start_workers(&mut self, ctx: &mut Ctx<Self>, n: usize) {
        for _ in 0..n {
            let done = Arc::new(DoneSignal::default());
            let rules = LifeRules {
                done: Some(Arc::clone(&done)),
                ..LifeRules::default()
            };
            let mut options = ChildOptions::new().name(W::DEFAULT_NAME).capacity(1);
            if !self.runtimes.is_empty() {
                let runtime = &self.runtimes[self.next_runtime % self.runtimes.len()];
                self.next_runtime = self.next_runtime.wrapping_add(1);
                options = options.runtime(runtime.clone());
            }
            let worker = (self.factory)();
            let worker = ctx.launch_child(options, Ctx::forward_port, |prepared| {
                prepared.launch_by(worker, rules)
            });
            self.given.insert(
                worker.id(),
                Tally {
                    given: 0,
                    done,
                    watcher: None,
                },
            );
            self.free.push_back(worker.id());
            self.workers.push(worker);
        }
        self.publish();
    }

    fn stop_workers(&mut self, n: usize) {
        for worker in self.workers.drain(self.workers.len() - n..).rev() {
            worker.stop();
            self.free.retain(|&id| id != worker.id());
            forget(&mut self.given, worker.id());
        }
        self.publish();
    }

    fn publish(&self) {
        let control = self.control();
        control.running.store(self.workers.len(), Ordering::Release);
        control.max.store(self.max, Ordering::Release);
    }

    fn apply(
        &mut self,
        ctx: &mut Ctx<Self>,
        command: PoolCommand,
    ) -> Result<PoolStatus, PoolError> {
        let running = self.workers.len();
        let too_many = |requested| PoolError::TooMany {
            pool: ctx.path().to_owned(),
            requested,
            running,
            max: self.max,
        };
        match command {
            PoolCommand::Start(n) if n > self.max.saturating_sub(running) => {
                return Err(too_many(running.saturating_add(n)));
            }
            PoolCommand::Start(n) => self.start_workers(ctx, n),
            PoolCommand::Stop(n) if n > running => {
                return Err(PoolError::TooFew {
                    pool: ctx.path().to_owned(),
                    requested: n,
                    running,
                });
            }
            PoolCommand::Stop(n) => self.stop_workers(n),
            PoolCommand::Resize(n) if n > self.max => return Err(too_many(n)),
            PoolCommand::Resize(n) if n >= running => self.start_workers(ctx, n - running),
            PoolCommand::Resize(n) => self.stop_workers(running - n),
        }
        Ok(self.control().status())
    }

    /// Applies the commands waiting in the control, answering each.
    fn apply_commands(&mut self, ctx: &mut Ctx<Self>) {
        let control = Arc::clone(self.control.as_ref().unwrap_or_else(|| unreachable!()));
        while let Some((command, reply)) = control.take() {
            let _ = reply.send(self.apply(ctx, command));
        }
    }

    fn take_ready(&mut self) {
        while let Ok(id) = self.ready_rx.try_recv() {
            if self.workers.iter().any(|w| w.id() == id) {
                self.free.push_back(id);
            }
        }
        // Watchers that are done: keep the set from growing with the number of jobs.
        while self.watchers.try_join_next().is_some() {}
    }

    /// Marks the worker free again once it has finished every job it was given.
    fn watch(&mut self, worker: &ChildRef<W>) {
        let id = worker.id();
        let Some(tally) = self.given.get_mut(&id) else {
            return;
        };
        let (given, done) = (tally.given, Arc::clone(&tally.done));
        let ready = self.ready_tx.clone();
        tally.watcher = Some(self.watchers.spawn(async move {
            std::future::poll_fn(|cx| done.poll_finished(given, cx)).await;
            let _ = ready.send(id);
        }));
    }

    /// Hands `job` to a free worker, waiting for one (and applying resize commands) while
    /// every worker is busy.
    async fn dispatch(&mut self, ctx: &mut Ctx<Self>, mut job: W::Down) -> Result<()> {
        let node = ctx.node_arc();
        let control = Arc::clone(self.control.as_ref().unwrap_or_else(|| unreachable!()));
        loop {
            self.apply_commands(ctx);
            self.take_ready();
            while let Some(id) = self.free.pop_front() {
                let Some(worker) = self.workers.iter().find(|w| w.id() == id) else {
                    continue;
                };
                match worker.node.queue.try_send(job) {
                    Ok(()) => {
                        if let Some(tally) = self.given.get_mut(&id) {
                            tally.given += 1;
                        }
                        let worker = worker.clone();
                        self.watch(&worker);
                        return Ok(());
                    }
                    // Stopping (or ended): the job goes to another worker.
                    Err(TrySendError::Ended(back)) => job = back,
                    // Not free after all: watch it again.
                    Err(TrySendError::Full(back)) => {
                        job = back;
                        let worker = worker.clone();
                        self.watch(&worker);
                    }
                }
            }
            // Wakes the wait for a stop requested from now on; one already seen has been
            // dealt with above and must not end every wait at once.
            let stopping = node.is_stop_requested();
            let stop = std::future::poll_fn(|cx| {
                if stopping {
                    std::task::Poll::Pending
                } else {
                    node.poll_stop_requested(cx)
                }
            });
            let commands = control.notify.notified();
            if self.workers.is_empty() && node.is_stop_requested() {
                tracing::warn!(
                    "stopping with jobs queued and no worker: starting one to finish them"
                );
                self.start_workers(ctx, 1);
                continue;
            }
            tokio::select! {
                Some(id) = self.ready_rx.recv() => {
                    if self.workers.iter().any(|w| w.id() == id) {
                        self.free.push_back(id);
                    }
                }
                () = commands => {}
                () = stop => {}
            }
        }
    }
}

impl<W: Thread> Drop for WorkerPool<W> {
    fn drop(&mut self) {
        if let Some(control) = &self.control {
            control.close();
        }
    }
}

/// The wake-up a [`PoolHandle`] gives the pool's loop when it has queued a command.
#[derive(Debug)]
#[doc(hidden)]
pub struct PoolWake(());

/// The pool's events: wake-ups for resize commands.
#[doc(hidden)]
pub struct PoolEvent(());

impl fmt::Debug for PoolEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PoolEvent")
    }
}

// Not offered as a hint in the errors about other threads' messages.
#[diagnostic::do_not_recommend]
impl<W: Thread> HandlesStream<PoolWake> for WorkerPool<W> {
    fn __wrap_item(_item: PoolWake) -> PoolEvent {
        PoolEvent(())
    }
}

impl<W: Thread> Thread for WorkerPool<W> {
    type Down = W::Down;
    type Up = W::Up;
    type Event = PoolEvent;
    type Timetable = crate::reschedule::NoTasks;

    const TYPE_NAME: &'static str = "WorkerPool";
    const DEFAULT_NAME: &'static str = "worker_pool";
    const DOWN_TYPES: &'static [&'static str] = W::DOWN_TYPES;
    const UP_TYPE: Option<&'static str> = W::UP_TYPE;
    const CAPACITY: usize = W::CAPACITY;

    async fn __enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let control = PoolControl::of(ctx.node());
        ctx.attach(WakeStream(control.open()));
        self.control = Some(control);
        let size = self.size.min(self.max);
        self.start_workers(ctx, size);
        self.apply_commands(ctx);
        Ok(())
    }

    async fn __exit(&mut self, _ctx: &mut Ctx<Self>) -> Result<()> {
        Ok(())
    }

    async fn __down(&mut self, ctx: &mut Ctx<Self>, msg: W::Down) -> Result<()> {
        self.dispatch(ctx, msg).await
    }

    // The pool takes its workers' messages: their types are its `DOWN_TYPES`.
    fn __down_index(msg: &W::Down) -> usize {
        W::__down_index(msg)
    }

    async fn __event(&mut self, ctx: &mut Ctx<Self>, _event: PoolEvent) -> Result<()> {
        self.apply_commands(ctx);
        Ok(())
    }

    async fn __exited(
        &mut self,
        ctx: &mut Ctx<Self>,
        from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        if let Some(at) = self.workers.iter().position(|w| w.id() == from) {
            // Not stopped by the pool: it ended on its own.
            self.workers.remove(at);
            self.free.retain(|&id| id != from);
            forget(&mut self.given, from);
            self.publish();
            if exit.exit.is_failure() {
                log_exit(ctx.path(), &exit);
            } else {
                tracing::info!(worker = %exit.path(), "worker {}: the pool runs one fewer", exit.exit);
            }
        } else {
            log_exit(ctx.path(), &exit);
        }
        self.apply_commands(ctx);
        Ok(())
    }

    async fn __task(&mut self, _ctx: &mut Ctx<Self>, _task: usize) -> Result<Reschedule> {
        // A pool has no `#[rescheduling]` tasks, so this is never called.
        Ok(Reschedule::Done)
    }
}

// Not offered as a hint in the errors about other threads' messages.
#[diagnostic::do_not_recommend]
impl<W: Accepts<M>, M> Accepts<M> for WorkerPool<W> {
    fn __wrap(msg: M) -> W::Down {
        W::__wrap(msg)
    }

    fn __unwrap(down: W::Down) -> M {
        W::__unwrap(down)
    }
}

// Not offered as a hint in the errors about other threads' messages.
#[diagnostic::do_not_recommend]
impl<W: Asks<Q>, Q> Asks<Q> for WorkerPool<W> {
    type Reply = W::Reply;

    fn __wrap_ask(question: Q, reply: Reply<W::Reply>) -> W::Down {
        W::__wrap_ask(question, reply)
    }
}

struct WakeStream(mpsc::Receiver<()>);

impl Stream for WakeStream {
    type Item = PoolWake;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PoolWake>> {
        self.0.poll_recv(cx).map(|o| o.map(|()| PoolWake(())))
    }
}

/// Forgets a worker's jobs: its watcher, if any, is cancelled. A worker that ended with a
/// job queued (it failed from a task, say) would never finish it.
fn forget(given: &mut HashMap<ChildId, Tally>, id: ChildId) {
    if let Some(Tally {
        watcher: Some(watcher),
        ..
    }) = given.remove(&id)
    {
        watcher.abort();
    }
}

/// What a pool knows of one worker's jobs.
struct Tally {
    /// Jobs handed to it.
    given: u64,
    /// Counts the jobs it has finished.
    done: Arc<DoneSignal>,
    /// The task waiting for it to finish the last job it was given.
    watcher: Option<AbortHandle>,
}
