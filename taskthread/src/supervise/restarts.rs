//! [`Restarts`]: what a [`RestartPolicy`] decides after each life, for a child whose lives
//! are run by something other than [`Ctx::supervise`](crate::Ctx::supervise) — a
//! [proxy](crate::proxy)'s, whose lives run elsewhere.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::RestartPolicy;
use crate::exit::Exit;

/// The restarts of one child under a [`RestartPolicy`]: after each life, whether to start
/// another, after which backoff, within the limit in the window.
///
/// ```
/// use std::time::Duration;
/// use taskthread::Exit;
/// use taskthread::supervise::{AfterLife, RestartPolicy, Restarts};
///
/// let policy = RestartPolicy::on_failure()
///     .backoff(Duration::ZERO, Duration::ZERO)
///     .max_restarts(1, Duration::from_secs(60));
/// let mut restarts = Restarts::new(policy);
/// let lost = Exit::Lost("host gone".into());
/// assert!(matches!(restarts.after(&lost), AfterLife::Restart { restarts_left: 0, .. }));
/// assert!(matches!(restarts.after(&lost), AfterLife::Escalate { restarts: 1 }));
/// assert!(matches!(restarts.after(&Exit::Completed), AfterLife::End));
/// ```
#[derive(Debug, Clone)]
pub struct Restarts {
    policy: RestartPolicy,
    /// When the restarts of the current window were.
    recent: VecDeque<Instant>,
    seed: u64,
}

/// What a [`RestartPolicy`] says after a life: see [`Restarts::after`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterLife {
    /// Start another life after `backoff`; `restarts_left` more are allowed in the window.
    Restart {
        /// The wait before the next life.
        backoff: Duration,
        /// How many more restarts the window allows.
        restarts_left: u32,
    },
    /// The policy does not restart after such an end: the child ends for good.
    End,
    /// Past the limit: the child ends for good and its parent fails (the exit is to be
    /// reported escalated). `restarts` were made in the window.
    Escalate {
        /// The restarts made in the window.
        restarts: usize,
    },
}

impl Restarts {
    /// The restarts of a child under `policy`, none made yet.
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RestartPolicy {
        &self.policy
    }

    /// A life ended with `exit` (not by a stop from outside, which is final in every
    /// policy): what next. A restart is counted in the window.
    pub fn after(&mut self, exit: &Exit) -> AfterLife {
        if !self.policy.restarts_after(exit) {
            return AfterLife::End;
        }
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.policy.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts as usize {
            return AfterLife::Escalate {
                restarts: self.recent.len(),
            };
        }
        self.recent.push_back(now);
        AfterLife::Restart {
            backoff: self.policy.delay(self.recent.len(), &mut self.seed),
            restarts_left: self
                .policy
                .max_restarts
                .saturating_sub(self.recent.len() as u32),
        }
    }
}
