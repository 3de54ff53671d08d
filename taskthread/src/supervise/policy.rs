//! [`RestartPolicy`]: when a supervised child is started again, how long to wait first, how
//! often at most, and with which siblings.

use std::time::Duration;

use super::RestartGroup;
use crate::driver::KeepQueue;
use crate::exit::Exit;

/// When a supervised child is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restart {
    /// Never: supervision only adds the restart group and the snapshot's count.
    Never,
    /// When it fails: `Failed`, `Panicked` or `Lost`. A child that stops itself (`Completed`)
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
/// use taskthread::supervise::{RestartGroup, RestartPolicy};
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
    pub(crate) max_restarts: u32,
    pub(crate) window: Duration,
    pub(crate) group: Option<RestartGroup>,
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
    /// by the group does not count towards the member's restart limit. A member whose stop
    /// for the restart takes longer than its stop deadline is aborted, which is final: it
    /// ends for good, its queue dropped (counted in
    /// [`ChildExit::dropped`](crate::ChildExit::dropped)).
    pub fn group(mut self, group: &RestartGroup) -> Self {
        self.group = Some(group.clone());
        self
    }

    /// Whether the child's queue is kept for its next life.
    pub(crate) fn keep_queue(&self) -> KeepQueue {
        match self.restart {
            Restart::Never => KeepQueue::default(),
            Restart::OnFailure => KeepQueue {
                on_completion: false,
                on_failure: true,
            },
            Restart::Always => KeepQueue {
                on_completion: true,
                on_failure: true,
            },
        }
    }

    pub(crate) fn restarts_after(&self, exit: &Exit) -> bool {
        match self.restart {
            Restart::Never => false,
            Restart::OnFailure => {
                matches!(exit, Exit::Failed(_) | Exit::Panicked(_) | Exit::Lost(_))
            }
            Restart::Always => !matches!(exit, Exit::Aborted { .. }),
        }
    }

    /// The wait before restart number `n` (1-based) of the current window.
    pub(crate) fn delay(&self, n: usize, seed: &mut u64) -> Duration {
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
