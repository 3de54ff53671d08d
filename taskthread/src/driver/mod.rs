//! The loop: what runs a thread. It owns each life of a thread — from `enter`, through the
//! serial loop of handlers and tasks and the stop sequence, to `exit` and the one exit
//! report — and lends the thread's [`Ctx`] to each handler.
//!
//! - [`spawn`]: `Ctx::spawn` and the seam every way of starting a thread goes through
//!   ([`Ctx::launch_child`], used by supervision and the worker pool too).
//! - [`life`]: one life, in four steps: start, turns, the stop sequence, finish.
//! - [`turn`]: one turn of the loop — what to wait for, and handling what came.
//! - [`user`]: running user code so that its error or panic ends the thread and a stop is
//!   still seen while it awaits.

mod life;
mod spawn;
mod turn;
mod user;

use life::run_owned;
pub(crate) use life::{Owned, run_thread};
pub(crate) use spawn::parent_port;
pub(crate) use user::panic_message;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::child::ChildRef;
use crate::ctx::Ctx;
use crate::exit::{ChildId, Exit, ExitReport, ThreadState};
use crate::node::{DownReceiver, Node, NodeInit};
use crate::port::UpPort;
use crate::queue::DownQueue;
use crate::record::{self, EventKind, recording};
use crate::thread::Thread;

/// Whether a thread's DOWN queue outlives one of its lives, for a supervised thread that
/// is started again and handles what is queued. By default a life's end closes it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeepQueue {
    /// Kept when the thread completes (`Ctx::stop`, a task's `Stop`).
    pub(crate) on_completion: bool,
    /// Kept when it fails or panics.
    pub(crate) on_failure: bool,
}

/// How a thread's lives are run, beyond the defaults.
#[derive(Default)]
pub(crate) struct LifeRules {
    pub(crate) keep_queue: KeepQueue,
    /// Told each time a DOWN message has been handled.
    pub(crate) done: Option<Arc<DoneSignal>>,
    /// Told each time a DOWN message is taken from the queue to be handled.
    pub(crate) taken: Option<Arc<DoneSignal>>,
    /// Kept by a supervisor: which DOWN message a life failed on.
    pub(crate) log: Option<DownLog>,
}

impl LifeRules {
    /// Whether the loop tells these rules of each DOWN message: most threads' rules do not,
    /// and their loop then looks no further.
    pub(super) fn watches_down(&self) -> bool {
        self.done.is_some() || self.taken.is_some() || self.log.is_some()
    }

    /// A DOWN message is about to be handled.
    #[inline]
    pub(super) fn taking<T: Thread>(&self, msg: T::Down) -> T::Down {
        if let Some(log) = &self.log {
            log.take(T::__down_index(&msg));
        }
        if let Some(taken) = &self.taken {
            taken.finish_one();
        }
        msg
    }

    /// The handler of the message taken last has returned; `failed`: with the error or
    /// panic that ends the life.
    #[inline]
    pub(super) fn handled(&self, failed: bool) {
        if let Some(done) = &self.done {
            done.finish_one();
        }
        if failed && let Some(log) = &self.log {
            log.fail();
        }
    }
}

/// What a supervisor learns of one life's DOWN messages: how many it took, and whether the
/// handler of the last one failed. Written by the life and read between lives, both in the
/// supervised child's own task, so plain loads and stores do (no locked instruction on the
/// way of a message).
#[derive(Default)]
pub(crate) struct DownLog {
    taken: AtomicU64,
    /// The [`Thread::DOWN_TYPES`] index of the last message taken.
    last: AtomicUsize,
    failed: AtomicBool,
}

impl DownLog {
    fn take(&self, index: usize) {
        let taken = self.taken.load(Ordering::Relaxed);
        self.taken.store(taken + 1, Ordering::Relaxed);
        self.last.store(index, Ordering::Relaxed);
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// After a life: the message whose handler ended it, if one did, as its
    /// [`Thread::DOWN_TYPES`] index and how many messages the life took before it. Clears
    /// the log for the next life.
    pub(crate) fn end_life(&self) -> Option<(usize, u64)> {
        let taken = self.taken.swap(0, Ordering::Relaxed);
        let failed = self.failed.swap(false, Ordering::Relaxed);
        failed.then(|| (self.last.load(Ordering::Relaxed), taken.saturating_sub(1)))
    }
}

/// The rules a thread's task runs its lives by. A plain child's are the defaults, known at
/// compile time ([`Plain`]), so its task stores nothing for them: every thread's task is a
/// hot allocation.
pub(crate) trait Rules: Send + Sync + 'static {
    fn get(&self) -> &LifeRules;
    /// The rules to tell of each DOWN message ([`LifeRules::watches_down`]), if any.
    fn watching(&self) -> Option<&LifeRules>;
}

/// The default rules: the DOWN queue closes with the life, nobody watches.
pub(crate) struct Plain;

impl Rules for Plain {
    #[inline]
    fn get(&self) -> &LifeRules {
        static DEFAULT: LifeRules = LifeRules {
            keep_queue: KeepQueue {
                on_completion: false,
                on_failure: false,
            },
            done: None,
            taken: None,
            log: None,
        };
        &DEFAULT
    }

    #[inline]
    fn watching(&self) -> Option<&LifeRules> {
        None
    }
}

impl Rules for LifeRules {
    #[inline]
    fn get(&self) -> &LifeRules {
        self
    }

    #[inline]
    fn watching(&self) -> Option<&LifeRules> {
        self.watches_down().then_some(self)
    }
}

/// How many DOWN messages a thread has finished handling (its handler returned, failed or
/// panicked), for a watcher that waits for a count: a worker pool hands a job only to a
/// worker that has finished the ones it was given. Also the count of messages a hosted
/// thread has taken from its queue ([`Taken`](crate::proxy::Taken)).
#[derive(Default)]
pub(crate) struct DoneSignal {
    finished: AtomicU64,
    waiter: AtomicWaker,
}

impl DoneSignal {
    /// One more DOWN message handled.
    pub(crate) fn finish_one(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        self.waiter.wake();
    }

    /// How many so far.
    pub(crate) fn count(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
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

/// Everything needed to start a thread, made before its task is spawned.
pub(crate) struct Prepared<'r, T: Thread> {
    pub(crate) ctx: Ctx<T>,
    pub(crate) rx: DownReceiver<T::Down>,
    /// The runtime to spawn the task on (its options', else its parent's), if known; else
    /// the current one.
    runtime: Option<&'r tokio::runtime::Handle>,
}

/// The runtime a thread spawned on `runtime` runs on: that one, or without one the
/// current runtime, where `tokio::spawn` puts its task.
#[inline]
fn resolve_runtime(runtime: Option<&tokio::runtime::Handle>) -> Option<tokio::runtime::Handle> {
    match runtime {
        Some(runtime) => Some(runtime.clone()),
        None => tokio::runtime::Handle::try_current().ok(),
    }
}

/// Makes a thread's node and queue, its address and its context.
#[inline]
pub(crate) fn prepare<T: Thread>(
    id: ChildId,
    init: NodeInit,
    up: Arc<dyn UpPort<T::Up>>,
    runtime: Option<&tokio::runtime::Handle>,
) -> (ChildRef<T>, Prepared<'_, T>) {
    let queue = DownQueue::new(init.capacity);
    let node = Arc::new(Node::new(id, init, queue));
    if recording() {
        let dynamic: &Node = &*node;
        dynamic.record_spawn(T::TYPE_NAME);
    }
    let prepared = Prepared {
        ctx: Ctx::new(Arc::clone(&node), up, resolve_runtime(runtime)),
        rx: DownReceiver::new(Arc::clone(&node)),
        runtime,
    };
    (ChildRef { node }, prepared)
}

pin_project_lite::pin_project! {
    /// A thread's task, polled as one: the waits of [`ChildRef`]s that block in it are
    /// reported to its loop (`node::polling_thread`), and the askers it answers are woken
    /// as its poll ends (`reply::holding_answers`).
    struct ThreadTask<F> {
        #[pin]
        task: F,
    }
}

impl<F: Future> Future for ThreadTask<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let task = self.project().task;
        crate::node::polling_thread(|| {
            crate::reply::holding_answers(|| crate::queue::inbound::sending_poll(|| task.poll(cx)))
        })
    }
}

impl<T: Thread> Prepared<'_, T> {
    /// Spawns the thread's task, made by `task` from the prepared parts, inside the thread's
    /// span.
    #[inline]
    pub(crate) fn launch_with<F>(
        self,
        task: impl FnOnce(Ctx<T>, DownReceiver<T::Down>) -> F,
    ) -> JoinHandle<Exit>
    where
        F: Future<Output = Exit> + Send + 'static,
    {
        // `parent: None`: the path already says where the thread sits; nesting the spawner's
        // span would repeat it on every line.
        let span = tracing::info_span!(parent: None, "thread", path = %self.ctx.node().path());
        let task = ThreadTask {
            task: task(self.ctx, self.rx),
        };
        // Bare when no subscriber wants the span: a disabled span would still be entered
        // and left on every poll, and take room in the task.
        if span.is_disabled() {
            spawn_on(self.runtime, task)
        } else {
            spawn_on(self.runtime, task.instrument(span))
        }
    }

    /// Spawns the thread's task. A child's task reports its exit UP; a root's returns it.
    pub(crate) fn launch(self, thread: T, report: bool) -> JoinHandle<Exit> {
        self.launch_with(|ctx, rx| drive(thread, ctx, rx, Plain, report))
    }

    /// Spawns a child's task that runs by `rules`.
    pub(crate) fn launch_by(self, thread: T, rules: LifeRules) -> JoinHandle<Exit> {
        self.launch_with(|ctx, rx| drive(thread, ctx, rx, rules, true))
    }

    /// Spawns a root's task that runs by `rules`.
    pub(crate) fn launch_root_by(self, thread: T, rules: LifeRules) -> JoinHandle<Exit> {
        self.launch_with(|ctx, rx| drive(thread, ctx, rx, rules, false))
    }
}

/// Spawns a thread's task on `runtime`, or on the current runtime. Through a `Handle` the
/// task's future, hundreds of bytes, is copied fewer times on its way into the task than
/// through `tokio::spawn`, which first finds the runtime in a thread-local.
#[inline]
fn spawn_on<F>(runtime: Option<&tokio::runtime::Handle>, task: F) -> JoinHandle<Exit>
where
    F: Future<Output = Exit> + Send + 'static,
{
    match runtime {
        Some(runtime) => runtime.spawn(task),
        None => tokio::spawn(task),
    }
}

/// The thread's task: its one life, then its exit reported (a child's) or returned (a
/// root's).
fn drive<T: Thread, R: Rules>(
    thread: T,
    ctx: Ctx<T>,
    down: DownReceiver<T::Down>,
    rules: R,
    report: bool,
) -> impl Future<Output = Exit> + Send {
    run_owned(thread, ctx, down, rules, move |mut ctx, exit, dropped| {
        if report {
            report_exit(ctx, exit, dropped, false);
            Exit::Stopped
        } else {
            if recording() {
                record_exit(ctx.node(), &exit);
            }
            ctx.node().set_state(ThreadState::Exited);
            ctx.set_ended();
            exit
        }
    })
}

/// Tells the parent how the thread ended, once.
pub(crate) fn report_exit<T: Thread>(ctx: Ctx<T>, exit: Exit, dropped: usize, escalated: bool) {
    // DEBUG only: the parent hears of the exit and decides how loud it is (its default
    // exit handling logs failures at ERROR); a root's exit is returned by `join`.
    tracing::debug!("thread {exit}");
    if recording() {
        record_exit(ctx.node(), &exit);
    }
    ctx.node().set_state(ThreadState::Exited);
    ctx.node().release_at_end();
    ctx.report(ExitReport::new(exit, dropped, escalated));
}

/// Records how a thread ended, for watchers.
#[cold]
#[inline(never)]
fn record_exit(node: &Node, exit: &Exit) {
    let kind = if exit.is_failure() {
        EventKind::Failed
    } else {
        EventKind::Exited
    };
    let detail: std::borrow::Cow<'static, str> = match exit {
        Exit::Completed => "completed".into(),
        Exit::Stopped => "stopped".into(),
        other => other.to_string().into(),
    };
    record::event(&node.lazy_path(), kind, detail);
}
