//! The task of a supervised child: one life after another, as its policy says.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::RestartPolicy;
use crate::ctx::Ctx;
use crate::driver::{LifeRules, panic_message, report_exit, run_thread};
use crate::error::Error;
use crate::exit::{Count, Exit, ThreadState};
use crate::node::{DownReceiver, Node};
use crate::thread::Thread;

/// The task of a supervised child: runs lives of it made by `factory` until the policy says
/// stop, then reports the last exit once (escalated past the restart limit).
#[allow(clippy::manual_async_fn)]
pub(crate) fn supervise<C, F>(
    mut factory: F,
    mut ctx: Ctx<C>,
    mut down: DownReceiver<C::Down>,
    rules: LifeRules,
    policy: RestartPolicy,
) -> impl Future<Output = Exit> + Send
where
    C: Thread,
    F: FnMut() -> C + Send + 'static,
{
    async move {
        let node = Arc::clone(ctx.node());
        if let Some(group) = &policy.group {
            group.join(&node);
        }
        let mut recent: VecDeque<Instant> = VecDeque::new();
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
                        panic_message(payload)
                    ));
                    break (Exit::Failed(error), true);
                }
            };
            let (exit, dropped) = run_thread(&mut thread, &mut ctx, &mut down, &rules).await;
            dropped_before += dropped;
            drop(thread);
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
            if own {
                let now = Instant::now();
                while recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= policy.window)
                {
                    recent.pop_front();
                }
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
                if let Some(group) = &policy.group {
                    group.restart_others(node.id);
                }
                let delay = policy.delay(recent.len(), &mut seed);
                tracing::warn!(
                    restart = node.restarts() + 1,
                    ?delay,
                    "supervised thread {exit}: starting it again"
                );
                if !wait_unless_stopped(&node, delay).await {
                    break (Exit::Stopped, false);
                }
                node.take_restart_request();
            } else {
                tracing::info!("restarted with its group");
            }
            node.count_restart();
            node.set_state(ThreadState::Starting);
            ctx = ctx.renew();
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
        report_exit(ctx, exit, dropped_before + dropped, escalated);
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
