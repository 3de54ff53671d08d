//! Supervision: a child started again by its own task when it fails (or whenever it ends),
//! with backoff, a limit on restarts in a window, escalation to the parent past it, and
//! groups of siblings restarted together.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use crate::ctx::Ctx;
use crate::driver::{panic_message, report_exit, run_thread};
use crate::error::Error;
use crate::thread::{ChildId, Exit, Thread};
use crate::tree::{Node, ThreadState};

/// When a supervised child is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restart {
    /// Never: supervision only adds the restart group and the snapshot's count.
    Never,
    /// When it fails: `Failed` or `Panicked`. A child that stops itself (`Completed`)
    /// handles what is queued and ends for good, even if one of those messages then makes
    /// it fail.
    OnFailure,
    /// Whenever it ends on its own, `Completed` included. A stop from outside (its parent,
    /// its [`ChildRef::stop`](crate::ChildRef::stop)) and an abort past the stop deadline
    /// are final in every policy.
    Always,
}

/// How a supervised child is restarted: when, how long to wait first, how often at most.
///
/// ```
/// use std::time::Duration;
/// use taskthread::{RestartGroup, RestartPolicy};
///
/// let group = RestartGroup::new();
/// let policy = RestartPolicy::on_failure()
///     .backoff(Duration::from_millis(50), Duration::from_secs(2))
///     .max_restarts(3, Duration::from_secs(60))
///     .group(&group);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    restart: Restart,
    backoff_min: Duration,
    backoff_max: Duration,
    max_restarts: u32,
    window: Duration,
    group: Option<RestartGroup>,
}

impl RestartPolicy {
    /// A policy with the defaults: backoff from 100 ms up to 10 s, at most 5 restarts in
    /// 60 s, no group.
    pub fn new(restart: Restart) -> Self {
        Self {
            restart,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            max_restarts: 5,
            window: Duration::from_secs(60),
            group: None,
        }
    }

    /// Restart when it fails.
    pub fn on_failure() -> Self {
        Self::new(Restart::OnFailure)
    }

    /// Restart whenever it ends on its own.
    pub fn always() -> Self {
        Self::new(Restart::Always)
    }

    /// Never restart.
    pub fn never() -> Self {
        Self::new(Restart::Never)
    }

    /// The wait before a restart: `min` before the first of a window, doubled for each
    /// further one up to `max`, each then shortened by a random part of up to a half
    /// (jitter, so siblings that failed together do not come back in lockstep).
    ///
    /// # Panics
    /// If `min` is greater than `max`.
    #[track_caller]
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        assert!(
            min <= max,
            "the minimum backoff ({min:?}) must not exceed the maximum ({max:?})"
        );
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// At most `restarts` restarts within any `window`; the next failure escalates: the
    /// child ends for good and its parent fails with an error that names the child and its
    /// last failure.
    pub fn max_restarts(mut self, restarts: u32, window: Duration) -> Self {
        self.max_restarts = restarts;
        self.window = window;
        self
    }

    /// Makes the child a member of `group`: when any member is restarted after ending, the
    /// others are stopped gracefully and started again too (keeping their queues), at once:
    /// a member waiting out its own backoff starts without waiting further. A restart asked
    /// by the group does not count towards the member's restart limit.
    pub fn group(mut self, group: &RestartGroup) -> Self {
        self.group = Some(group.clone());
        self
    }

    /// `(on completion, on failure)`: whether the child's queue is kept for its next life.
    pub(crate) fn keeps_queue(&self) -> (bool, bool) {
        match self.restart {
            Restart::Never => (false, false),
            Restart::OnFailure => (false, true),
            Restart::Always => (true, true),
        }
    }

    fn restarts_after(&self, exit: &Exit) -> bool {
        match self.restart {
            Restart::Never => false,
            Restart::OnFailure => matches!(exit, Exit::Failed(_) | Exit::Panicked(_)),
            Restart::Always => !matches!(exit, Exit::Aborted { .. }),
        }
    }

    /// The wait before restart number `n` (1-based) of the current window.
    fn delay(&self, n: usize, seed: &mut u64) -> Duration {
        // At most 31 doublings: `1 << 31` is the largest factor a `u32` holds.
        let doublings = n.saturating_sub(1).min(31) as u32;
        let full = self
            .backoff_min
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max);
        // xorshift64: jitter needs no more than this.
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let half = full / 2;
        let jitter = half.mul_f64((*seed % 1_000_001) as f64 / 1_000_000.0);
        full - jitter
    }
}

/// Siblings restarted together ("one for all"): see [`RestartPolicy::group`].
#[derive(Clone, Default)]
pub struct RestartGroup {
    members: Arc<Mutex<Vec<Weak<Node>>>>,
}

impl RestartGroup {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    fn join(&self, node: &Arc<Node>) {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|m| m.strong_count() > 0);
        members.push(Arc::downgrade(node));
    }

    fn restart_others(&self, me: ChildId) {
        let members: Vec<Arc<Node>> = self
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for member in members {
            if member.id != me && member.state() != ThreadState::Exited {
                member.request_restart();
            }
        }
    }
}

impl fmt::Debug for RestartGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members = self
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("RestartGroup")
            .field("members", &members)
            .finish()
    }
}

/// The task of a supervised child: runs lives of it made by `factory` until the policy says
/// stop, then reports the last exit once (escalated past the restart limit).
#[allow(clippy::manual_async_fn)]
pub(crate) fn supervise<C, F>(
    mut factory: F,
    mut ctx: Ctx<C>,
    mut down: crate::down::DownReceiver<C::Down>,
    policy: RestartPolicy,
) -> impl Future<Output = Exit> + Send
where
    C: Thread,
    F: FnMut() -> C + Send + 'static,
{
    async move {
        let node = Arc::clone(&ctx.node);
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
            let (exit, dropped) = run_thread(&mut thread, &mut ctx, &mut down).await;
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
                        "supervised `{}` ({}) {exit} after {} restarts in {:?}",
                        node.path(),
                        node.meta.type_name,
                        recent.len(),
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
