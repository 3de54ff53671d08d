//! One turn of a thread's loop: what it waits for, in which order ([`poll_next`]), and the
//! handling of what came — a short batch of DOWN messages, of inbound events, a due task,
//! a finished job.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::JoinError;
use tokio::time::Instant;

use super::DoneSignal;
use super::user::{StopWatch, panic_message, run_user};
use crate::ctx::Ctx;
use crate::exit::{ChildExit, Exit, log_exit};
use crate::node::{DownReceiver, Node};
use crate::port::Inbound;
use crate::thread::Thread;

/// How many DOWN messages (or inbound events) a thread handles back to back before a full
/// loop turn.
const DOWN_BATCH: usize = 16;

/// The loop's own bookkeeping for one life.
pub(super) struct LoopState {
    /// Boxed: rare, and it would otherwise size every thread's task.
    pub(super) failure: Option<Box<Exit>>,
    /// The stop deadline passed: what remains is aborted.
    pub(super) aborted: bool,
    pub(super) down_open: bool,
    /// Messages dropped unhandled after a failure.
    pub(super) dropped: usize,
    pub(super) tasks_turn: bool,
    family_turns: bool,
    /// Told each time a DOWN message has been handled, if anyone watches.
    done: Option<Arc<DoneSignal>>,
}

impl LoopState {
    pub(super) fn new(done: Option<Arc<DoneSignal>>) -> Self {
        Self {
            failure: None,
            aborted: false,
            down_open: true,
            dropped: 0,
            tasks_turn: true,
            family_turns: false,
            done,
        }
    }

    /// Records the first failure and starts stopping: the queue closes, what is queued is
    /// dropped (and counted), children are stopped.
    pub(super) fn fail<T: Thread>(
        &mut self,
        ctx: &mut Ctx<T>,
        down: &mut DownReceiver<T::Down>,
        stop: &StopWatch,
        exit: Exit,
    ) {
        if let Exit::Aborted { .. } = exit {
            self.aborted = true;
        } else if self.failure.is_none() {
            self.failure = Some(Box::new(exit));
        }
        ctx.begin_stopping();
        if stop.failure_closes_queue(ctx.node()) {
            down.close();
        } else {
            // Restarted on failure: what is queued waits for the next life.
            self.down_open = false;
        }
    }
}

/// What woke the loop.
enum Next<T: Thread> {
    Inbound(Inbound<T::Event>),
    Down(Option<T::Down>),
    Task,
    Job(Result<(), JoinError>),
    Stop,
    /// The stop deadline passed while the thread waited.
    Deadline,
}

/// One turn of the loop's wait, in priority order: DOWN and children (taking turns), then
/// the timer (due tasks also get their turn at the top of the loop), then finished jobs,
/// and the stop signal last — it is also checked with one atomic load at the top of every
/// turn, so it is only waited on when there is nothing else to do. A hand-written poll
/// rather than `select!`: it builds no futures per message.
fn poll_next<T: Thread>(
    cx: &mut Context<'_>,
    ctx: &mut Ctx<T>,
    down: &mut DownReceiver<T::Down>,
    down_open: bool,
    down_first: bool,
    stop: &mut StopWatch,
) -> Poll<Next<T>> {
    // DOWN and inbound take turns being polled first, so a busy inbound queue cannot keep
    // a stopping thread from seeing its DOWN queue drained (and so from stopping its
    // children), and neither queue starves the other.
    if down_first
        && down_open
        && let Poll::Ready(msg) = down.poll_recv(cx)
    {
        return Poll::Ready(Next::Down(msg));
    }
    if let Some(family) = ctx.family_if_any()
        && let Poll::Ready(Some(inbound)) = family.poll_inbound(cx)
    {
        return Poll::Ready(Next::Inbound(inbound));
    }
    if !down_first
        && down_open
        && let Poll::Ready(msg) = down.poll_recv(cx)
    {
        return Poll::Ready(Next::Down(msg));
    }
    let stopping = ctx.stop_begun();
    // A task due now is taken without waiting for the timer wheel, whose resolution (1 ms)
    // would otherwise delay every `Now` and period-less `Again`.
    if !stopping && ctx.timetable().is_armed() {
        if ctx.timetable().is_due(Instant::now()) {
            // Taking a due task without the timer bypasses tokio's cooperative budget, so
            // spend it explicitly: a task returning `Now` must not starve the runtime.
            if let Poll::Ready(progress) = tokio::task::coop::poll_proceed(cx) {
                progress.made_progress();
                return Poll::Ready(Next::Task);
            }
        } else if ctx.timetable().poll_wait(cx).is_ready() {
            return Poll::Ready(Next::Task);
        }
    }
    if let Some(family) = ctx.family_if_any()
        && let Poll::Ready(Some(joined)) = family.poll_job(cx)
    {
        return Poll::Ready(Next::Job(joined));
    }
    if !stopping && stop.requested(ctx.node(), cx) {
        return Poll::Ready(Next::Stop);
    }
    if stopping && stop.deadline_passed(ctx.node(), cx) {
        return Poll::Ready(Next::Deadline);
    }
    Poll::Pending
}

/// Waits for the next thing to do and does it. A plain `fn` returning an `async move`
/// block (not an `async fn`), so its arguments are stored once in the thread's task; the
/// same for the functions below.
#[allow(clippy::manual_async_fn)]
pub(super) fn turn<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
    state: &'a mut LoopState,
    stop: &'a mut StopWatch,
    node: &'a Node,
) -> impl Future<Output = ()> + 'a {
    async move {
        let down_open = state.down_open;
        let down_first = state.family_turns && ctx.has_family();
        state.family_turns = !state.family_turns;
        let next = poll_fn(|cx| poll_next(cx, ctx, down, down_open, down_first, stop)).await;
        match next {
            Next::Down(Some(first)) => {
                handle_down(thread, ctx, down, state, stop, node, first).await
            }
            Next::Down(None) => state.down_open = false,
            Next::Inbound(first) => {
                let mut inbound = first;
                let mut left = DOWN_BATCH;
                // A short batch of UP messages and exits from children, while DOWN has
                // nothing waiting (the queues keep taking turns).
                loop {
                    handle_inbound(thread, ctx, down, state, inbound, stop, node).await;
                    left -= 1;
                    if left == 0
                        || state.failure.is_some()
                        || ctx.stop_begun()
                        || ctx.is_completed()
                        || node.is_stop_requested()
                        || ctx.timetable().is_armed()
                        || (state.down_open && !down.is_empty())
                    {
                        break;
                    }
                    match ctx.family_if_any().and_then(|f| f.try_inbound()) {
                        Some(next) => inbound = next,
                        None => break,
                    }
                }
            }
            Next::Task => {
                state.tasks_turn = false;
                run_due_task(thread, ctx, down, state, stop, node).await;
            }
            Next::Job(joined) => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    let exit = Exit::Panicked(panic_message(e.into_panic()));
                    state.fail(ctx, down, stop, exit);
                }
            }
            Next::Stop => {}
            Next::Deadline => state.aborted = true,
        }
    }
}

/// A short batch of DOWN messages: while only DOWN has work (no due task, no inbound
/// event, no stop), the next message is taken without a full loop turn. Bounded so the
/// runtime's cooperative budget still applies.
#[allow(clippy::manual_async_fn)]
fn handle_down<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
    state: &'a mut LoopState,
    stop: &'a mut StopWatch,
    node: &'a Node,
    first: T::Down,
) -> impl Future<Output = ()> + 'a {
    async move {
        let mut msg = first;
        let mut left = DOWN_BATCH;
        loop {
            if state.failure.is_some() {
                state.dropped += 1;
                break;
            }
            node.count_handled();
            let outcome = {
                let stopping = ctx.stop_begun();
                let handler = pin!(thread.__down(ctx, msg));
                run_user(handler, node, down, stopping, stop).await
            };
            if let Some(done) = state.done.as_deref() {
                done.finish_one();
            }
            if let Err(exit) = outcome {
                state.fail(ctx, down, stop, exit);
                break;
            }
            left -= 1;
            if left == 0
                || ctx.stop_begun()
                || ctx.is_completed()
                || node.is_stop_requested()
                || ctx.timetable().is_armed()
                || ctx.has_family()
            {
                break;
            }
            match down.try_recv() {
                Some(next) => msg = next,
                None => break,
            }
        }
    }
}

/// Handles one inbound event: an UP message or stream item, a job's output, or a child's
/// exit report.
#[allow(clippy::manual_async_fn)]
fn handle_inbound<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
    state: &'a mut LoopState,
    inbound: Inbound<T::Event>,
    stop: &'a mut StopWatch,
    node: &'a Node,
) -> impl Future<Output = ()> + 'a {
    async move {
        match inbound {
            Inbound::Event(event) | Inbound::Output(event) => {
                if state.failure.is_some() {
                    state.dropped += 1;
                    return;
                }
                node.count_handled();
                let outcome = {
                    let stopping = ctx.stop_begun();
                    let handler = pin!(thread.__event(ctx, event));
                    run_user(handler, node, down, stopping, stop).await
                };
                if let Err(exit) = outcome {
                    state.fail(ctx, down, stop, exit);
                }
            }
            Inbound::Exit(from, report) => {
                let exit = {
                    let Some(child) = ctx.family_if_any().and_then(|f| f.on_child_exit(from))
                    else {
                        // Forgotten already (an abort of this thread is under way).
                        return;
                    };
                    let (exit, dropped, escalated) = report.into_parts();
                    let child = child.node();
                    ChildExit {
                        id: from,
                        type_name: child.meta.type_name,
                        path: child.lazy_path(),
                        exit,
                        dropped,
                        escalated,
                    }
                };
                if exit.escalated {
                    // A supervised child past its restart limit: this thread fails with it.
                    log_exit(node.path(), &exit);
                    state.fail(ctx, down, stop, exit.exit);
                    return;
                }
                if state.failure.is_some() {
                    log_exit(node.path(), &exit);
                    return;
                }
                let outcome = {
                    let stopping = ctx.stop_begun();
                    let handler = pin!(thread.__exited(ctx, from, exit));
                    run_user(handler, node, down, stopping, stop).await
                };
                if let Err(exit) = outcome {
                    state.fail(ctx, down, stop, exit);
                }
            }
        }
    }
}

/// Runs the task that is due, if one still is, and schedules its next run as it says.
#[allow(clippy::manual_async_fn)]
pub(super) fn run_due_task<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
    state: &'a mut LoopState,
    stop: &'a mut StopWatch,
    node: &'a Node,
) -> impl Future<Output = ()> + 'a {
    async move {
        let Some((index, due)) = ctx.timetable().take_due(Instant::now()) else {
            return;
        };
        node.count_handled();
        let outcome = {
            let stopping = ctx.stop_begun();
            let task = pin!(thread.__task(ctx, index));
            run_user(task, node, down, stopping, stop).await
        };
        match outcome {
            Ok(decision) => {
                if ctx.timetable().finish(index, due, Instant::now(), decision) {
                    ctx.stop();
                }
            }
            Err(exit) => state.fail(ctx, down, stop, exit),
        }
    }
}
