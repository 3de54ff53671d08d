//! The pool's shared state: the waiting line, the running jobs, the groups, what they leave
//! to drop once the lock is released, whether the pool is idle, and the tasks that run and
//! report each job.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::JobPool;
use super::outcome::{JobCounts, JobId, JobOutcome, JobPoolError, JobResult};
use crate::driver::panic_message;

pub(super) type BoxJob<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// What pulling a `map` source gives: the next job, the end, or the panic of the iterator
/// or of the function, with its payload (the user's, to drop once the lock is released).
pub(super) enum Pulled<T, E> {
    Job(BoxJob<T, E>),
    End,
    Panicked {
        message: String,
        payload: Box<dyn Any + Send>,
    },
}

pub(super) type Source<T, E> = Box<dyn FnMut() -> Pulled<T, E> + Send>;

pub(super) enum Entry<T, E> {
    Job {
        id: JobId,
        group: Arc<str>,
        job: BoxJob<T, E>,
    },
    Source {
        group: Arc<str>,
        source: Source<T, E>,
    },
}

impl<T, E> Entry<T, E> {
    pub(super) fn group(&self) -> &Arc<str> {
        match self {
            Self::Job { group, .. } | Self::Source { group, .. } => group,
        }
    }
}

pub(super) struct GroupState {
    /// Jobs waiting or running.
    pub(super) live: usize,
    /// For a map: its limit, its running jobs, and whether its source is still pulled.
    pub(super) map_limit: usize,
    pub(super) map_running: usize,
    pub(super) source: bool,
}

impl GroupState {
    pub(super) fn new(live: usize, map_limit: usize) -> Self {
        Self {
            live,
            map_limit,
            map_running: 0,
            source: map_limit > 0,
        }
    }
}

pub(super) struct RunningJob {
    pub(super) group: Arc<str>,
    /// Set once its task is spawned (outside the lock).
    pub(super) abort: Option<AbortHandle>,
    /// Cancelled before its task was spawned: aborted as soon as it is.
    pub(super) cancelled: bool,
}

impl RunningJob {
    pub(super) fn cancel(&mut self) {
        match &self.abort {
            Some(abort) => abort.abort(),
            None => self.cancelled = true,
        }
    }
}

/// What the pool takes out of its state under its lock and drops only once the lock is
/// released: waiting jobs that were cancelled (the futures and what they capture), `map`
/// sources that ended (the iterator and the function) and what one panicked with, and the
/// outcome of a job no one will receive. Their `Drop` is the user's and may call the pool,
/// or panic. A refused job goes back to the caller instead.
///
/// Empty on the hot paths (adding, starting and ending jobs), where it allocates nothing: it
/// fills only when jobs are cancelled, a source ends, or the results were dropped.
///
/// The fields drop in the order they are declared, and `results` must stay last: a receiver
/// then sees the stream end only once the rest is dropped.
pub(super) struct Graveyard<T, E> {
    entries: Vec<Entry<T, E>>,
    payloads: Vec<Box<dyn Any + Send>>,
    /// The outcome of the job that ended in this change, if no one will receive it.
    outcome: Option<JobOutcome<T, E>>,
    /// The results sender, once a closed pool is idle. With the receiver gone, dropping it
    /// frees the channel, and with it any result a send slipped in as the receiver dropped.
    results: Option<mpsc::UnboundedSender<JobResult<T, E>>>,
}

impl<T, E> Default for Graveyard<T, E> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            payloads: Vec::new(),
            outcome: None,
            results: None,
        }
    }
}

impl<T, E> Graveyard<T, E> {
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.payloads.is_empty()
            && self.outcome.is_none()
            && self.results.is_none()
    }
}

/// Whether the pool is idle, for [`JobPool::join`] and the end of the results stream to
/// wait on. Each change publishes it under the pool's lock, and each graveyard as it is
/// dropped: a graveyard counts as live until then, so the pool is idle only once nothing it
/// took out of its work is alive any more.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Live {
    /// Jobs waiting or running, plus `map` sources still pulled.
    pub(super) work: usize,
    /// Graveyards taken out of the state and not yet dropped.
    pub(super) burials: usize,
    /// Closed with the results stream not ended yet: it ends once the pool is idle.
    pub(super) ending: bool,
}

impl Live {
    pub(super) fn is_idle(&self) -> bool {
        self.work == 0 && self.burials == 0
    }
}

/// A job to spawn once the lock is released.
pub(super) struct Launch<T, E> {
    pub(super) id: JobId,
    pub(super) job: BoxJob<T, E>,
}

thread_local! {
    /// Whether this OS thread is spawning jobs. A task dropped synchronously while it is
    /// spawned (its runtime is shutting down) must not start the next job from inside the
    /// spawn: that would recurse once per waiting job.
    pub(super) static LAUNCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(super) struct State<T, E> {
    pub(super) limit: usize,
    pub(super) running: HashMap<JobId, RunningJob>,
    pub(super) waiting: VecDeque<Entry<T, E>>,
    pub(super) groups: HashMap<Arc<str>, GroupState>,
    pub(super) next_job: u64,
    pub(super) next_group: u64,
    pub(super) paused: bool,
    pub(super) closed: bool,
    pub(super) results: Option<mpsc::UnboundedSender<JobResult<T, E>>>,
    /// How the jobs that ended ended.
    pub(super) counts: JobCounts,
    /// What changes to the state took out of it, for [`JobPool::update`] to drop once it
    /// has released the lock: always empty with the lock free.
    pub(super) graveyard: Graveyard<T, E>,
}

pub(super) struct Inner<T, E> {
    pub(super) state: Mutex<State<T, E>>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) live: watch::Sender<Live>,
}

impl<T, E> Drop for Inner<T, E> {
    fn drop(&mut self) {
        // The last handle is gone: no job outlives the pool.
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        for job in state.running.values_mut() {
            job.cancel();
        }
    }
}

impl<T, E> State<T, E> {
    pub(super) fn next_id(&mut self) -> JobId {
        let id = JobId(self.next_job);
        self.next_job += 1;
        self.counts.submitted += 1;
        id
    }

    /// Takes the first job that may start off the waiting line and counts it as running:
    /// `None` if none may start, `Some(None)` if a `map` source ended instead (it goes to
    /// the graveyard).
    pub(super) fn take_next(&mut self) -> Option<Option<Launch<T, E>>> {
        let at = self.waiting.iter().position(|e| match e {
            Entry::Job { .. } => true,
            Entry::Source { group, .. } => self
                .groups
                .get(group)
                .is_some_and(|g| g.map_running < g.map_limit),
        })?;
        let (id, group, job) = match self.waiting.remove(at)? {
            Entry::Job { id, group, job } => (id, group, job),
            Entry::Source { group, mut source } => match source() {
                Pulled::Job(job) => {
                    let id = self.next_id();
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.live += 1;
                        g.map_running += 1;
                    }
                    // To the back of the line: groups take turns.
                    self.waiting.push_back(Entry::Source {
                        group: Arc::clone(&group),
                        source,
                    });
                    (id, group, job)
                }
                Pulled::End => {
                    self.end_source(&group);
                    self.bury(Entry::Source { group, source });
                    return Some(None);
                }
                Pulled::Panicked { message, payload } => {
                    let id = self.next_id();
                    // A panic's result holds no user value: undelivered, it may drop here.
                    let _ = self.send(id, &group, JobOutcome::Panicked(message));
                    self.end_source(&group);
                    self.bury(Entry::Source { group, source });
                    self.graveyard.payloads.push(payload);
                    return Some(None);
                }
            },
        };
        self.running.insert(
            id,
            RunningJob {
                group,
                abort: None,
                cancelled: false,
            },
        );
        Some(Some(Launch { id, job }))
    }

    pub(super) fn live(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    pub(super) fn new_group(
        &mut self,
        name: Option<&str>,
        kind: &str,
    ) -> Result<Arc<str>, JobPoolError> {
        if self.closed {
            return Err(JobPoolError::Closed);
        }
        if self.paused {
            return Err(JobPoolError::Paused);
        }
        if let Some(name) = name {
            if self.groups.contains_key(name) {
                return Err(JobPoolError::DuplicateGroup(name.to_owned()));
            }
            return Ok(Arc::from(name));
        }
        loop {
            let name = format!("{kind}-{}", self.next_group);
            self.next_group += 1;
            if !self.groups.contains_key(name.as_str()) {
                return Ok(Arc::from(name));
            }
        }
    }

    /// Counts a job's outcome and sends its result. Returns the result if no one will
    /// receive it (the results were dropped), for the caller to drop once the lock is
    /// released: its output or error is the user's.
    #[must_use]
    pub(super) fn send(
        &mut self,
        id: JobId,
        group: &Arc<str>,
        outcome: JobOutcome<T, E>,
    ) -> Option<JobResult<T, E>> {
        self.counts.count(&outcome);
        let result = JobResult {
            id,
            group: Arc::clone(group),
            outcome,
        };
        match &self.results {
            Some(results) => results.send(result).err().map(|unsent| unsent.0),
            None => Some(result),
        }
    }

    /// Reports a job that ended (or was cancelled before starting) and updates its group.
    /// Returns its result if no one will receive it, as [`send`](Self::send) does.
    #[must_use]
    pub(super) fn finish(
        &mut self,
        id: JobId,
        group: &Arc<str>,
        outcome: JobOutcome<T, E>,
        ran: bool,
    ) -> Option<JobResult<T, E>> {
        let unsent = self.send(id, group, outcome);
        if let Some(g) = self.groups.get_mut(group) {
            g.live -= 1;
            if ran && g.map_limit > 0 {
                g.map_running -= 1;
            }
            if g.live == 0 && !g.source {
                self.groups.remove(group);
            }
        }
        unsent
    }

    pub(super) fn end_source(&mut self, group: &Arc<str>) {
        if let Some(g) = self.groups.get_mut(group) {
            g.source = false;
            if g.live == 0 {
                self.groups.remove(group);
            }
        }
    }

    /// Puts an entry taken out of the state in the graveyard, to be dropped once the lock
    /// is released.
    pub(super) fn bury(&mut self, entry: Entry<T, E>) {
        self.graveyard.entries.push(entry);
    }

    /// Puts the outcome of a job no one will receive in the graveyard. A change ends one job
    /// at most.
    pub(super) fn bury_outcome(&mut self, outcome: JobOutcome<T, E>) {
        debug_assert!(self.graveyard.outcome.is_none(), "one job ends per change");
        self.graveyard.outcome = Some(outcome);
    }

    /// Takes out what the changes since the lock was taken left to drop.
    pub(super) fn take_graveyard(&mut self) -> Graveyard<T, E> {
        std::mem::take(&mut self.graveyard)
    }

    /// Withdraws an entry taken off the waiting line: its job is reported cancelled, its
    /// source ends, and the entry goes to the graveyard. Returns whether it was a job.
    pub(super) fn withdraw(&mut self, entry: Entry<T, E>) -> bool {
        let job = match &entry {
            Entry::Job { id, group, .. } => {
                // A cancellation holds no user value: undelivered, it may drop here.
                let _ = self.finish(*id, group, JobOutcome::Cancelled, false);
                true
            }
            Entry::Source { group, .. } => {
                self.end_source(group);
                false
            }
        };
        self.bury(entry);
        job
    }

    /// Takes no new job and cancels the waiting ones; the running ones go on.
    pub(super) fn stop_intake(&mut self) {
        self.closed = true;
        let waiting = std::mem::take(&mut self.waiting);
        self.graveyard.entries.reserve(waiting.len());
        for entry in waiting {
            self.withdraw(entry);
        }
    }

    pub(super) fn cancel_where(&mut self, hit: impl Fn(&Arc<str>) -> bool) -> usize {
        let mut cancelled = 0;
        for job in self.running.values_mut().filter(|j| hit(&j.group)) {
            job.cancel();
            cancelled += 1;
        }
        let waiting = std::mem::take(&mut self.waiting);
        for entry in waiting {
            if !hit(entry.group()) {
                self.waiting.push_back(entry);
            } else if self.withdraw(entry) {
                cancelled += 1;
            }
        }
        cancelled
    }

    /// Ends the results stream of a closed, idle pool.
    pub(super) fn end_results(&mut self) {
        if let Some(results) = self.results.take() {
            self.graveyard.results = Some(results);
        }
    }
}

/// Reports a job's outcome when its task ends, or [`JobOutcome::Cancelled`] when its task
/// is dropped first (cancelled).
pub(super) struct Finish<T: Send + 'static, E: Send + 'static> {
    pub(super) pool: Weak<Inner<T, E>>,
    pub(super) id: JobId,
    pub(super) outcome: Option<JobOutcome<T, E>>,
}

impl<T: Send + 'static, E: Send + 'static> Drop for Finish<T, E> {
    fn drop(&mut self) {
        let Some(inner) = self.pool.upgrade() else {
            return;
        };
        let outcome = self.outcome.take().unwrap_or(JobOutcome::Cancelled);
        let pool = JobPool { inner };
        pool.update(|state| {
            let unsent = match state.running.remove(&self.id) {
                Some(job) => state
                    .finish(self.id, &job.group, outcome, true)
                    .map(|unsent| unsent.outcome),
                None => Some(outcome),
            };
            // No one will receive it: it drops once the lock is released.
            if let Some(outcome) = unsent {
                state.bury_outcome(outcome);
            }
        });
    }
}

/// Polls a job, turning a panic into its message.
pub(super) struct CatchUnwind<T, E> {
    pub(super) job: BoxJob<T, E>,
}

impl<T, E> Future for CatchUnwind<T, E> {
    type Output = Result<Result<T, E>, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.job.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Err(payload) => Poll::Ready(Err(panic_message(&*payload))),
        }
    }
}
