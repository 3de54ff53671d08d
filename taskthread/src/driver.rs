//! The serial loop that drives one thread from `enter` to its exit report, and the ports
//! through which a thread talks to its parent.

use std::any::Any;
use std::future::Future;
use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::child::ChildRef;
use crate::ctx::Ctx;
use crate::error::{Result, TrySendError};
use crate::thread::{ChildExit, ChildId, Exit, Thread};
use crate::tree::{Node, NodeInit, ThreadState};

/// What arrives on a thread's inbound queue.
pub(crate) enum Inbound<E> {
    /// An UP message from a child, or an item from an attached stream or task.
    Event(E),
    /// A child's exit report.
    Exit(ChildExit),
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The way UP, type-erased over the parent's type so `Ctx<T>` does not name its parent.
pub(crate) trait UpPort<U>: Send + Sync {
    fn try_send(&self, msg: U) -> Result<(), TrySendError<U>>;
    /// The slow path, only taken when the parent's queue is full.
    fn send(&self, msg: U) -> BoxFuture<'_, Result<(), U>>;
    fn report(&self, exit: ChildExit) -> BoxFuture<'_, ()>;
    fn target(&self) -> &str;
}

pub(crate) struct ParentPort<P: Thread, U> {
    pub(crate) from: ChildId,
    pub(crate) tx: mpsc::Sender<Inbound<P::Event>>,
    pub(crate) wrap: fn(ChildId, U) -> P::Event,
    pub(crate) parent_path: Arc<str>,
}

impl<P: Thread, U: Send + 'static> UpPort<U> for ParentPort<P, U> {
    fn try_send(&self, msg: U) -> Result<(), TrySendError<U>> {
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(Inbound::Event((self.wrap)(self.from, msg)));
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(TrySendError::Full(msg)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(TrySendError::Ended(msg)),
        }
    }

    fn send(&self, msg: U) -> BoxFuture<'_, Result<(), U>> {
        Box::pin(async move {
            match self.tx.reserve().await {
                Ok(permit) => {
                    permit.send(Inbound::Event((self.wrap)(self.from, msg)));
                    Ok(())
                }
                Err(_) => Err(msg),
            }
        })
    }

    fn report(&self, exit: ChildExit) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // The parent drains its inbound queue until every child has reported, so this
            // only fails if the parent itself was aborted.
            let _ = self.tx.send(Inbound::Exit(exit)).await;
        })
    }

    fn target(&self) -> &str {
        &self.parent_path
    }
}

/// The port of a root: UP messages go to its [`Handle`](crate::Handle); the exit is the
/// root task's output.
pub(crate) struct RootPort<U> {
    pub(crate) tx: mpsc::Sender<U>,
}

impl<U: Send + 'static> UpPort<U> for RootPort<U> {
    fn try_send(&self, msg: U) -> Result<(), TrySendError<U>> {
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(m) => TrySendError::Full(m),
            mpsc::error::TrySendError::Closed(m) => TrySendError::Ended(m),
        })
    }

    fn send(&self, msg: U) -> BoxFuture<'_, Result<(), U>> {
        Box::pin(async move { self.tx.send(msg).await.map_err(|e| e.0) })
    }

    fn report(&self, _exit: ChildExit) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn target(&self) -> &str {
        "the root's handle"
    }
}

/// Polls a future, turning a panic inside it into an error. The future is pinned by the
/// caller, so this needs no unsafe pin projection.
struct CatchUnwind<'a, F>(Pin<&'a mut F>);

impl<F: Future> Future for CatchUnwind<'_, F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(move || fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(panic_message(payload))),
        }
    }
}

pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Runs one piece of user code, turning its error or panic into the exit it causes.
async fn guarded<R>(fut: impl Future<Output = Result<R>>) -> Result<R, Exit> {
    let fut = pin!(fut);
    match CatchUnwind(fut).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(Exit::Failed(e)),
        Err(message) => Err(Exit::Panicked(message)),
    }
}

/// Everything needed to start a thread, made before its task is spawned.
pub(crate) struct Prepared<T: Thread> {
    pub(crate) child: ChildRef<T>,
    ctx: Ctx<T>,
    rx: mpsc::Receiver<T::Down>,
}

pub(crate) fn prepare<T: Thread>(
    id: ChildId,
    init: NodeInit,
    up: Box<dyn UpPort<T::Up>>,
) -> Prepared<T> {
    let (tx, rx) = mpsc::channel(init.capacity);
    let weak = tx.downgrade();
    let depth = Box::new(move || {
        weak.upgrade()
            .map_or(0, |s| s.max_capacity() - s.capacity())
    });
    let node = Arc::new(Node::new(id, init, depth));
    let child = ChildRef {
        tx,
        node: Arc::clone(&node),
    };
    Prepared {
        child,
        ctx: Ctx::new(node, up),
        rx,
    }
}

/// Spawns the thread's task. A child's task reports its exit UP; a root's returns it.
pub(crate) fn launch<T: Thread>(
    thread: T,
    prepared: Prepared<T>,
    report: bool,
) -> JoinHandle<Exit> {
    let Prepared { ctx, rx, .. } = prepared;
    // `parent: None`: the path already says where the thread sits; nesting the spawner's
    // span would repeat it on every line.
    let span = tracing::info_span!(parent: None, "thread", path = %ctx.node.path);
    tokio::spawn(drive(thread, ctx, rx, report).instrument(span))
}

/// Receives from an inbound queue that may not exist yet.
async fn recv_inbound<E>(rx: &mut Option<mpsc::Receiver<Inbound<E>>>) -> Option<Inbound<E>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Reaps one finished job (attached stream, spawned task or blocking job).
async fn join_job(
    jobs: &mut Option<tokio::task::JoinSet<()>>,
) -> Option<Result<(), tokio::task::JoinError>> {
    match jobs {
        Some(jobs) if !jobs.is_empty() => jobs.join_next().await,
        _ => std::future::pending().await,
    }
}

/// Runs a handler, hook or task. While it awaits, the thread still reacts to a stop: it
/// stops accepting DOWN messages at once and shows as stopping; the handler itself is let
/// finish (the framework never drops user code half-way on a graceful stop).
async fn run_user<R, D>(
    fut: impl Future<Output = Result<R>>,
    node: &Node,
    down: &mut mpsc::Receiver<D>,
) -> Result<R, Exit> {
    let mut fut = pin!(guarded(fut));
    // Fast path: most handlers finish on their first poll, so the stop signal is only
    // watched (which registers a waiter) for handlers that actually wait.
    if let Poll::Ready(done) = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        return done;
    }
    if !node.stop.is_cancelled() {
        tokio::select! {
            biased;
            done = fut.as_mut() => return done,
            () = node.stop.cancelled() => {}
        }
    }
    down.close();
    node.set_state(ThreadState::Stopping);
    fut.await
}

async fn drive<T: Thread>(
    mut thread: T,
    mut ctx: Ctx<T>,
    mut down: mpsc::Receiver<T::Down>,
    report: bool,
) -> Exit {
    let node = Arc::clone(&ctx.node);
    let mut failure: Option<Exit> = None;
    let mut down_open = true;
    let mut dropped = 0usize;
    let mut tasks_turn = true;

    // Scheduled before `enter` (they cannot run before it returns) so that `enter` can
    // cancel or reschedule them by name.
    if !ctx.timetable.is_empty() {
        ctx.timetable.start_automatic(Instant::now());
    }
    if let Err(exit) = run_user(thread.__enter(&mut ctx), &node, &mut down).await {
        failure = Some(exit);
    }
    if failure.is_none() {
        node.set_state(ThreadState::Running);
    } else {
        ctx.begin_stopping();
        down.close();
    }

    loop {
        if !ctx.stopping && (ctx.completed || node.stop.is_cancelled()) {
            ctx.begin_stopping();
            down.close();
        }
        if ctx.stopping {
            if !down_open && ctx.children.is_empty() && ctx.jobs_idle() && ctx.inbound_empty() {
                break;
            }
            if !down_open {
                ctx.stop_next_stage();
            }
        } else {
            ctx.timetable.rearm();
            // Tasks and messages take turns: a due task runs before the next message, but
            // not twice in a row while messages wait, so a task returning `Now` cannot
            // starve the queues and a busy queue cannot starve the tasks.
            if tasks_turn && ctx.timetable.is_due(Instant::now()) {
                tasks_turn = false;
                run_due_task(&mut thread, &mut ctx, &mut down, &mut failure).await;
                continue;
            }
            tasks_turn = true;
        }

        // Biased: children first (their exits and UP messages unblock stops), then DOWN,
        // then the timer (due tasks also get their turn at the top of the loop), and the
        // stop signal last — it is also checked with one atomic load at the top of every
        // iteration, so it is only waited on when there is nothing else to do.
        tokio::select! {
            biased;
            Some(inbound) = recv_inbound(&mut ctx.inbound_rx) => match inbound {
                Inbound::Event(event) => {
                    if failure.is_some() {
                        dropped += 1;
                        continue;
                    }
                    node.count_handled();
                    if let Err(exit) = run_user(thread.__event(&mut ctx, event), &node, &mut down).await {
                        fail(&mut ctx, &mut down, &mut failure, exit);
                    }
                }
                Inbound::Exit(exit) => {
                    ctx.on_child_exit(exit.id);
                    if failure.is_some() {
                        crate::tree::log_exit(&node.path, &exit);
                        continue;
                    }
                    let from = exit.id;
                    if let Err(e) = run_user(thread.__exited(&mut ctx, from, exit), &node, &mut down).await {
                        fail(&mut ctx, &mut down, &mut failure, e);
                    }
                }
            },
            msg = down.recv(), if down_open => match msg {
                Some(msg) => {
                    if failure.is_some() {
                        dropped += 1;
                        continue;
                    }
                    node.count_handled();
                    if let Err(exit) = run_user(thread.__down(&mut ctx, msg), &node, &mut down).await {
                        fail(&mut ctx, &mut down, &mut failure, exit);
                    }
                }
                None => down_open = false,
            },
            () = ctx.timetable.wait(), if !ctx.stopping && ctx.timetable.is_armed() => {
                tasks_turn = false;
                run_due_task(&mut thread, &mut ctx, &mut down, &mut failure).await;
            }
            Some(joined) = join_job(&mut ctx.jobs) => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    let exit = Exit::Panicked(panic_message(e.into_panic()));
                    fail(&mut ctx, &mut down, &mut failure, exit);
                }
            }
            () = node.stop.cancelled(), if !ctx.stopping => {}
        }
    }

    if dropped > 0 {
        tracing::warn!(
            dropped,
            "dropped messages that arrived after the thread failed"
        );
    }
    match run_user(thread.__exit(&mut ctx), &node, &mut down).await {
        Ok(()) => {}
        Err(exit) if failure.is_none() => failure = Some(exit),
        // The exit hook runs after a failure too, so resources are released; its own error
        // cannot replace the first failure.
        Err(exit) => tracing::warn!("exit hook after failure: {exit}"),
    }
    ctx.reap_all().await;
    let exit = failure.unwrap_or(if ctx.completed {
        Exit::Completed
    } else {
        Exit::Stopped
    });
    match &exit {
        Exit::Failed(e) => tracing::error!("thread failed: {e:#}"),
        Exit::Panicked(m) => tracing::error!("thread panicked: {m}"),
        other => tracing::trace!("thread {other}"),
    }
    node.set_state(ThreadState::Exited);
    drop(thread);
    if report {
        let exit_report = ChildExit {
            id: node.id,
            name: node.name.clone(),
            path: node.path.clone(),
            type_name: node.type_name,
            exit,
        };
        let up = ctx.into_port();
        up.report(exit_report).await;
        Exit::Stopped
    } else {
        exit
    }
}

async fn run_due_task<T: Thread>(
    thread: &mut T,
    ctx: &mut Ctx<T>,
    down: &mut mpsc::Receiver<T::Down>,
    failure: &mut Option<Exit>,
) {
    let node = Arc::clone(&ctx.node);
    let Some((index, due)) = ctx.timetable.take_due(Instant::now()) else {
        return;
    };
    node.count_handled();
    match run_user(thread.__task(ctx, index), &node, down).await {
        Ok(decision) => {
            if ctx.timetable.finish(index, due, Instant::now(), decision) {
                ctx.stop();
            }
        }
        Err(exit) => fail(ctx, down, failure, exit),
    }
}

fn fail<T: Thread>(
    ctx: &mut Ctx<T>,
    down: &mut mpsc::Receiver<T::Down>,
    failure: &mut Option<Exit>,
    exit: Exit,
) {
    if failure.is_none() {
        *failure = Some(exit);
    }
    ctx.begin_stopping();
    down.close();
}
