//! The task of a supervised child: one life after another, as its policy says.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::RestartPolicy;
use crate::ctx::Ctx;
use crate::driver::{DownLog, LifeRules, Owned, panic_message, report_exit, run_thread};
use crate::error::Error;
use crate::exit::{ChildRestart, Count, Exit, FailedMessage, ThreadState};
use crate::node::{Budget, DownReceiver, Node};
use crate::record::{self, EventKind, recording};
use crate::thread::Thread;

/// The task of a supervised child: runs lives of it made by `factory` until the policy says
/// stop, reporting each restart to the parent, then reports the last exit once (escalated
/// past the restart limit).
#[allow(clippy::manual_async_fn)]
pub(crate) fn supervise<C, F>(
    mut factory: F,
    ctx: Ctx<C>,
    down: DownReceiver<C::Down>,
    rules: LifeRules,
    policy: RestartPolicy,
) -> impl Future<Output = Exit> + Send
where
    C: Thread,
    F: FnMut() -> C + Send + 'static,
{
    // One value, so that an unfinished task drops the context before the queue (see
    // `Owned`).
    let mut owned = Owned { ctx, down };
    async move {
        let Owned { ctx, down } = &mut owned;
        let node = ctx.node_arc();
        if let Some(group) = &policy.group {
            group.join(&node);
        }
        let mut recent: VecDeque<Instant> = VecDeque::new();
        let budget = |recent: &VecDeque<Instant>| Budget {
            max: policy.max_restarts,
            window: policy.window,
            recent: recent.clone(),
        };
        node.set_budget(|| budget(&recent));
        let mut seed = node.id.as_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        // Messages dropped by lives that failed for good (none while it restarts: the queue
        // is kept for the next life).
        let mut dropped_before = 0usize;
        let (exit, escalated) = loop {
            let mut thread = match catch_unwind(AssertUnwindSafe(&mut factory)) {
                Ok(thread) => thread,
                Err(payload) => {
                    // No life can start: the child ends for good and its parent fails.
                    let error = Error::msg(format!(
                        "supervised `{}` ({}): its factory panicked: {}",
                        node.path(),
                        node.meta.type_name,
                        panic_message(&*payload)
                    ));
                    break (Exit::Failed(error), true);
                }
            };
            let (exit, dropped) = run_thread(&mut thread, ctx, down, &rules).await;
            // Places freed by what this life took go to waiting senders before any backoff.
            down.give_back();
            dropped_before += dropped;
            drop(thread);
            let failed_on = rules.log.as_ref().and_then(DownLog::end_life);
            let asked = node.take_restart_request();
            // Final whatever the policy or the group: a stop from outside, an abort past
            // the stop deadline, or a life that closed its queue (it completed or failed
            // for good) — a new life could receive nothing.
            if node.is_final_stop_requested()
                || matches!(exit, Exit::Aborted { .. })
                || down.is_closed()
            {
                break (exit, false);
            }
            // A life the group stopped ends `Stopped`: that is the group's restart, not one
            // of this child's own (which `Always` would otherwise count).
            let own = !(asked && matches!(exit, Exit::Stopped)) && policy.restarts_after(&exit);
            if !own && !asked {
                break (exit, false);
            }
            let now = Instant::now();
            while recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= policy.window)
            {
                recent.pop_front();
            }
            let mut backoff = Duration::ZERO;
            if own {
                if recent.len() >= policy.max_restarts as usize {
                    let error = Error::msg(format!(
                        "supervised `{}` ({}) {exit} after {} in {:?}",
                        node.path(),
                        node.meta.type_name,
                        Count(recent.len(), "restart"),
                        policy.window,
                    ));
                    break (Exit::Failed(error), true);
                }
                recent.push_back(now);
                node.set_budget(|| budget(&recent));
                if let Some(group) = &policy.group {
                    group.restart_others(node.id);
                }
                backoff = policy.delay(recent.len(), &mut seed);
            }
            // Between lives: the queue stays open for the next.
            node.set_state(ThreadState::Restarting);
            let restart = ChildRestart {
                id: node.id,
                path: node.lazy_path(),
                type_name: node.meta.type_name,
                life: node.restarts().saturating_add(1),
                exit,
                message: failed_on.and_then(|(index, position)| {
                    Some(FailedMessage {
                        type_name: C::DOWN_TYPES.get(index)?,
                        position,
                    })
                }),
                backoff,
                restarts_left: policy.max_restarts.saturating_sub(recent.len() as u32),
                by_group: !own,
            };
            // DEBUG only: the parent hears of the restart and decides how loud it is (its
            // default handling logs it at WARN).
            tracing::debug!("{restart}");
            if recording() {
                record::event(&node.lazy_path(), EventKind::Restarted, restart.to_string());
            }
            ctx.up_port().report_restart(node.id, Box::new(restart));
            if own {
                if !wait_unless_stopped(&node, backoff).await {
                    break (Exit::Stopped, false);
                }
                node.take_restart_request();
            }
            node.count_restart();
            node.set_state(ThreadState::Starting);
            ctx.renew();
        };
        // For good now: what is still queued will not be handled.
        down.close();
        let mut dropped = 0usize;
        while down.try_recv().is_some() {
            dropped += 1;
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "supervised thread ended for good: dropped queued messages"
            );
        }
        report_exit(owned.ctx, exit, dropped_before + dropped, escalated);
        Exit::Stopped
    }
}

/// Waits `delay`; `false` if a stop for good comes first (a restart request ends the wait
/// early).
async fn wait_unless_stopped(node: &Node, delay: Duration) -> bool {
    let mut sleep = pin!(tokio::time::sleep(delay));
    poll_fn(|cx| {
        if node.poll_stop_requested(cx).is_ready() {
            return Poll::Ready(());
        }
        sleep.as_mut().poll(cx)
    })
    .await;
    !node.is_final_stop_requested()
}
