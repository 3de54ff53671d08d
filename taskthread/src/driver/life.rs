//! One life of a thread, in four steps: [start](start) (`enter`), the [turns](super::turn)
//! of the loop, the [stop sequence](stop_sequence) run at the top of every turn once a stop
//! has begun, and [finish](finish) (`exit`, then waiting for or aborting what remains).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use tokio::time::Instant;

use super::LifeRules;
use super::turn::{LoopState, run_due_task, turn};
use super::user::{StopWatch, run_user};
use crate::ctx::Ctx;
use crate::exit::{Exit, ThreadState};
use crate::node::{DownReceiver, Node};
use crate::thread::Thread;

/// One life of a thread, from `enter` to its exit value and the number of queued messages
/// it dropped.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run_thread<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
    rules: &'a LifeRules,
) -> impl Future<Output = (Exit, usize)> + Send + 'a {
    async move {
        let node = Arc::clone(ctx.node());
        let mut state = LoopState::new(rules.done.clone());
        let mut stop = StopWatch::new(rules.keep_queue);
        start(thread, ctx, down, &mut state, &mut stop, &node).await;
        while !state.aborted && stop_sequence(ctx, down, &mut state, &stop, &node) {
            if !ctx.stop_begun() && !ctx.timetable().is_empty() {
                ctx.timetable().rearm();
                // Tasks and messages take turns: a due task runs before the next message,
                // but not twice in a row while messages wait, so a task returning `Now`
                // cannot starve the queues and a busy queue cannot starve the tasks.
                if state.tasks_turn
                    && ctx.timetable().is_armed()
                    && ctx.timetable().is_due(Instant::now())
                {
                    state.tasks_turn = false;
                    run_due_task(thread, ctx, down, &mut state, &mut stop, &node).await;
                    continue;
                }
                state.tasks_turn = true;
            }
            turn(thread, ctx, down, &mut state, &mut stop, &node).await;
        }
        finish(thread, ctx, down, state, stop, node).await
    }
}

/// Runs `enter`; the thread is running once it returns, failed if it fails.
#[allow(clippy::manual_async_fn)]
fn start<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
    state: &'a mut LoopState,
    stop: &'a mut StopWatch,
    node: &'a Node,
) -> impl Future<Output = ()> + 'a {
    async move {
        // Scheduled before `enter` (they cannot run before it returns) so that `enter` can
        // cancel or reschedule them by name.
        if !ctx.timetable().is_empty() {
            ctx.timetable().start_automatic(Instant::now());
        }
        let outcome = {
            let enter = pin!(thread.__enter(ctx));
            run_user(enter, node, down, false, stop).await
        };
        if let Err(exit) = outcome {
            state.fail(ctx, down, stop, exit);
        } else {
            node.set_state(ThreadState::Running);
        }
    }
}

/// The stop sequence, one step per turn: a requested stop (or the thread's own) begins it
/// — the DOWN queue closes and what is queued is still handled — then its children are
/// stopped stage by stage while their UP messages are still handled; once the queue is
/// drained and nothing of the family is left, the loop ends (`false`).
fn stop_sequence<T: Thread>(
    ctx: &mut Ctx<T>,
    down: &mut DownReceiver<T::Down>,
    state: &mut LoopState,
    stop: &StopWatch,
    node: &Node,
) -> bool {
    if !ctx.stop_begun() && (ctx.is_completed() || node.is_stop_requested()) {
        ctx.begin_stopping();
        if stop.stop_closes_queue(node, ctx.is_completed()) {
            down.close();
        } else {
            // Starting again: what is queued waits for the next life.
            state.down_open = false;
        }
    }
    if ctx.stop_begun() && !state.down_open {
        if ctx.family_idle() {
            return false;
        }
        if let Some(family) = ctx.family_if_any() {
            family.stop_next_stage();
        }
    }
    true
}

/// Ends the life: runs `exit` (unless aborted), then waits for the thread's children and
/// jobs to be gone — or, past the stop deadline, aborts what remains — and gives the exit.
#[allow(clippy::manual_async_fn)]
fn finish<'a, T: Thread>(
    thread: &'a mut T,
    ctx: &'a mut Ctx<T>,
    down: &'a mut DownReceiver<T::Down>,
    mut state: LoopState,
    mut stop: StopWatch,
    node: Arc<Node>,
) -> impl Future<Output = (Exit, usize)> + 'a {
    async move {
        if state.dropped > 0 {
            tracing::warn!(
                dropped = state.dropped,
                "dropped messages that arrived after the thread failed"
            );
        }
        if !state.aborted {
            let outcome = {
                let exit_hook = pin!(thread.__exit(ctx));
                run_user(exit_hook, &node, down, true, &mut stop).await
            };
            match outcome {
                Ok(()) => {}
                Err(Exit::Aborted { .. }) => state.aborted = true,
                Err(exit) if state.failure.is_none() => state.failure = Some(Box::new(exit)),
                // The exit hook runs after a failure too, so resources are released; its own
                // error cannot replace the first failure.
                Err(exit) => tracing::warn!("exit hook after failure: {exit}"),
            }
        }
        node.forget_waker();
        if state.aborted {
            if let Some(failure) = state.failure.take() {
                tracing::warn!("aborted while stopping after: {failure}");
            }
            // Boxed: rare, and its timer would otherwise size every thread's task.
            let dropped = state.dropped + Box::pin(abort_rest(ctx, down)).await;
            tracing::warn!(
                deadline = ?node.stop_deadline.unwrap_or_default(),
                dropped,
                "the stop took longer than its deadline: aborted what remained"
            );
            return (Exit::Aborted { dropped }, dropped);
        }
        if let Some(family) = ctx.family_if_any() {
            // Boxed: only a thread that had children or jobs has anything to wait for.
            Box::pin(family.reap_all()).await;
        }
        let exit = match state.failure.take() {
            Some(failure) => *failure,
            None if ctx.is_completed() => Exit::Completed,
            None => Exit::Stopped,
        };
        (exit, state.dropped)
    }
}

/// Aborts what remains of a thread whose stop deadline passed: its queued messages are
/// dropped and counted, its descendants' tasks and its jobs cancelled (and waited for, so no
/// task outlives the tree). Returns how many queued messages were dropped in the subtree.
async fn abort_rest<T: Thread>(ctx: &mut Ctx<T>, down: &mut DownReceiver<T::Down>) -> usize {
    down.close();
    let mut dropped = 0;
    while down.try_recv().is_some() {
        dropped += 1;
    }
    let mut aborted = Vec::new();
    dropped += ctx.node().abort_descendants(&mut aborted);
    if let Some(family) = ctx.family_if_any() {
        dropped += family.abort();
    }
    wait_gone(&aborted).await;
    if let Some(family) = ctx.family_if_any() {
        family.reap_all().await;
    }
    dropped
}

/// Waits until cancelled tasks are gone: the runtime drops each when it next gets to it, or
/// when its current poll returns if it is running on another worker.
pub(crate) async fn wait_gone(aborted: &[tokio::task::AbortHandle]) {
    let mut turns = 0u32;
    while !aborted.iter().all(tokio::task::AbortHandle::is_finished) {
        turns += 1;
        if turns <= 64 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        if turns == 64 + 5_000 {
            tracing::warn!(
                "aborted threads are still running after about 5 s: stuck in blocking code?"
            );
        }
    }
}
