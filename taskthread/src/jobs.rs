//! [`JobPool`]: ad-hoc async jobs with a concurrency limit, in named groups, with their
//! results collected in a stream.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::error::Error;

type BoxJob<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// What pulling a `map` source gives: the next job, the end, or the panic of the iterator
/// or of the function.
enum Pulled<T, E> {
    Job(BoxJob<T, E>),
    End,
    Panicked(String),
}

type Source<T, E> = Box<dyn FnMut() -> Pulled<T, E> + Send>;

/// The id of one job of a [`JobPool`], unique in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(u64);

impl JobId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job {}", self.0)
    }
}

/// How a job ended.
#[derive(Debug)]
pub enum JobOutcome<T, E = Error> {
    /// It returned `Ok` with this output.
    Ok(T),
    /// It returned this error.
    Err(E),
    /// It panicked; the panic message.
    Panicked(String),
    /// It was cancelled (by [`JobPool::cancel`] and friends) before it finished, or before
    /// it started.
    Cancelled,
}

impl<T, E> JobOutcome<T, E> {
    /// Whether the job returned `Ok`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }
}

impl<T, E: fmt::Display> JobOutcome<T, E> {
    /// The output, or an [`Error`] saying why there is none.
    pub fn into_result(self) -> Result<T, Error>
    where
        E: Into<Error>,
    {
        match self {
            Self::Ok(t) => Ok(t),
            Self::Err(e) => Err(e.into()),
            Self::Panicked(m) => Err(Error::msg(format!("the job panicked: {m}"))),
            Self::Cancelled => Err(Error::msg("the job was cancelled")),
        }
    }
}

/// The result of one job: which job, of which group, and how it ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct JobResult<T, E = Error> {
    /// The job's id.
    pub id: JobId,
    /// The name of its group.
    pub group: Arc<str>,
    /// How it ended.
    pub outcome: JobOutcome<T, E>,
}

/// A group of jobs added by one [`apply`](JobPool::apply) or [`map`](JobPool::map).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Group {
    /// Its name: the one given, or a generated one (`apply-1`, `map-2`, ...).
    pub name: Arc<str>,
    /// The ids of its jobs, for `apply` (a `map` makes its jobs as it goes: none here).
    pub jobs: Vec<JobId>,
}

/// What a [`JobPool`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobPoolError {
    /// A group of this name is still running or waiting.
    DuplicateGroup(String),
    /// The pool is locked: it takes no new jobs until it is unlocked.
    Locked,
    /// The pool is closed: it takes no new jobs.
    Closed,
    /// No group of this name is running or waiting.
    UnknownGroup(String),
    /// No job of this id is running or waiting.
    UnknownJob(JobId),
    /// A `map` with a limit of 0 would never run a job.
    ZeroLimit,
}

impl fmt::Display for JobPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateGroup(name) => {
                write!(f, "a group named `{name}` is already in the pool")
            }
            Self::Locked => f.write_str("the pool is locked: it takes no new jobs until unlocked"),
            Self::Closed => f.write_str("the pool is closed: it takes no new jobs"),
            Self::UnknownGroup(name) => write!(f, "no group named `{name}` is in the pool"),
            Self::UnknownJob(id) => write!(f, "{id} is not running or waiting in the pool"),
            Self::ZeroLimit => f.write_str("a map needs a limit of at least 1"),
        }
    }
}

impl std::error::Error for JobPoolError {}

enum Entry<T, E> {
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
    fn group(&self) -> &Arc<str> {
        match self {
            Self::Job { group, .. } | Self::Source { group, .. } => group,
        }
    }
}

struct GroupState {
    /// Jobs waiting or running.
    live: usize,
    /// For a map: its limit, its running jobs, and whether its source is still pulled.
    map_limit: usize,
    map_running: usize,
    source: bool,
}

impl GroupState {
    fn new(live: usize, map_limit: usize) -> Self {
        Self {
            live,
            map_limit,
            map_running: 0,
            source: map_limit > 0,
        }
    }
}

struct RunningJob {
    group: Arc<str>,
    /// Set once its task is spawned (outside the lock).
    abort: Option<AbortHandle>,
    /// Cancelled before its task was spawned: aborted as soon as it is.
    cancelled: bool,
}

impl RunningJob {
    fn cancel(&mut self) {
        match &self.abort {
            Some(abort) => abort.abort(),
            None => self.cancelled = true,
        }
    }
}

/// A job to spawn once the lock is released.
struct Launch<T, E> {
    id: JobId,
    job: BoxJob<T, E>,
}

thread_local! {
    /// Whether this OS thread is spawning jobs. A task dropped synchronously while it is
    /// spawned (its runtime is shutting down) must not start the next job from inside the
    /// spawn: that would recurse once per waiting job.
    static LAUNCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

struct State<T, E> {
    limit: usize,
    running: HashMap<JobId, RunningJob>,
    waiting: VecDeque<Entry<T, E>>,
    groups: HashMap<Arc<str>, GroupState>,
    next_job: u64,
    next_group: u64,
    locked: bool,
    closed: bool,
    results: Option<mpsc::UnboundedSender<JobResult<T, E>>>,
}

struct Inner<T, E> {
    state: Mutex<State<T, E>>,
    runtime: tokio::runtime::Handle,
    /// Jobs waiting or running, plus `map` sources still pulled: 0 when the pool is idle.
    live: watch::Sender<usize>,
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

/// A pool of ad-hoc async jobs, run at most `limit` at a time: for work that is not a
/// long-lived thread (fetch these URLs, resize these images), from any async code or from
/// inside a thread.
///
/// - [`apply`](Self::apply) runs a function n times; [`map`](Self::map) runs it over the
///   items of an iterator, pulled lazily (infinite iterators work), keeping at most its own
///   limit of jobs running. Jobs are added in named [groups](Group) and never block the
///   caller: those over the limit wait their turn, in the order they came.
/// - [`cancel`](Self::cancel) one job, a [group](Self::cancel_group) or
///   [all](Self::cancel_all).
/// - Every job's [result](JobResult) — output, error, panic or cancellation — arrives on the
///   [`JobResults`] stream made with the pool (attach it to a thread with
///   [`Ctx::attach`](crate::Ctx::attach), or [`flush`](JobResults::flush) it).
/// - [`set_limit`](Self::set_limit) changes the limit at run time: raising it starts waiting
///   jobs at once, lowering it lets running jobs finish.
/// - [`lock`](Self::lock) (no new jobs for now), [`close`](Self::close) (no new jobs ever;
///   the results stream ends after the last result) and [`join`](Self::join).
///
/// The jobs run on tokio tasks that belong to the pool: when the last handle is dropped, the
/// jobs still running are cancelled, so none outlives it.
///
/// ```
/// use taskthread::{JobOutcome, JobPool};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (pool, mut results) = JobPool::<u64>::new(4);
/// pool.map(|n| async move { Ok(n * n) }, 1..=10u64, 2, Some("squares")).unwrap();
/// pool.close();
/// let mut sum = 0;
/// while let Some(result) = results.next().await {
///     if let JobOutcome::Ok(sq) = result.outcome {
///         sum += sq;
///     }
/// }
/// assert_eq!(sum, 385);
/// # }
/// ```
pub struct JobPool<T, E = Error> {
    inner: Arc<Inner<T, E>>,
}

impl<T, E> Clone for JobPool<T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T, E> fmt::Debug for JobPool<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("JobPool")
            .field("limit", &state.limit)
            .field("running", &state.running.len())
            .field("groups", &state.groups.len())
            .finish_non_exhaustive()
    }
}

impl<T, E> Inner<T, E> {
    fn lock(&self) -> MutexGuard<'_, State<T, E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Send + 'static, E: Send + 'static> JobPool<T, E> {
    /// A pool that runs at most `limit` jobs at once, and the stream of their results.
    ///
    /// Results are kept until they are received: receive them (or drop the [`JobResults`],
    /// which discards them).
    ///
    /// # Panics
    /// If called outside a tokio runtime: the jobs run on it.
    pub fn new(limit: usize) -> (Self, JobResults<T, E>) {
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let (live, live_rx) = watch::channel(0);
        let inner = Inner {
            state: Mutex::new(State {
                limit,
                running: HashMap::new(),
                waiting: VecDeque::new(),
                groups: HashMap::new(),
                next_job: 1,
                next_group: 1,
                locked: false,
                closed: false,
                results: Some(results_tx),
            }),
            runtime: tokio::runtime::Handle::current(),
            live,
        };
        let pool = Self {
            inner: Arc::new(inner),
        };
        let results = JobResults {
            rx: results_rx,
            live: live_rx,
        };
        (pool, results)
    }

    /// Adds `n` jobs, each running the future `f()` makes, in a new group named `group` (or
    /// a generated name). Never waits: jobs over the limit wait their turn.
    ///
    /// Fails if the pool is locked or closed, or a group of that name is still in the pool.
    pub fn apply<F, Fut>(
        &self,
        mut f: F,
        n: usize,
        group: Option<&str>,
    ) -> Result<Group, JobPoolError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        // Made before taking the lock: `f` is the caller's code.
        let made: Vec<BoxJob<T, E>> = (0..n).map(|_| Box::pin(f()) as BoxJob<T, E>).collect();
        self.update(|state| {
            let name = state.new_group(group, "apply")?;
            let mut jobs = Vec::with_capacity(n);
            for job in made {
                let id = state.next_id();
                jobs.push(id);
                let group = Arc::clone(&name);
                state.waiting.push_back(Entry::Job { id, group, job });
            }
            state
                .groups
                .insert(Arc::clone(&name), GroupState::new(n, 0));
            Ok(Group { name, jobs })
        })
    }

    /// Runs `f(item)` for each item of `items`, in a new group named `group` (or a generated
    /// name), keeping at most `limit` of its jobs running (and within the pool's limit).
    ///
    /// The iterator is pulled lazily, one item each time a slot frees, so it may be
    /// infinite. It and `f` are called while the pool holds its internal lock: they must not
    /// call the pool. A panic in either ends the group's source and is reported as a
    /// [`Panicked`](JobOutcome::Panicked) result. For Python's `starmap`, destructure in
    /// the closure: `pool.map(|(a, b)| job(a, b), pairs, 4, None)`.
    ///
    /// Fails if the pool is locked or closed, a group of that name is still in the pool, or
    /// `limit` is 0.
    pub fn map<I, F, Fut>(
        &self,
        mut f: F,
        items: I,
        limit: usize,
        group: Option<&str>,
    ) -> Result<Group, JobPoolError>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        F: FnMut(I::Item) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if limit == 0 {
            return Err(JobPoolError::ZeroLimit);
        }
        let mut items = items.into_iter();
        let source: Source<T, E> =
            Box::new(
                move || match catch_unwind(AssertUnwindSafe(|| items.next().map(&mut f))) {
                    Ok(Some(job)) => Pulled::Job(Box::pin(job)),
                    Ok(None) => Pulled::End,
                    Err(payload) => Pulled::Panicked(crate::driver::panic_message(payload)),
                },
            );
        self.update(|state| {
            let name = state.new_group(group, "map")?;
            state
                .groups
                .insert(Arc::clone(&name), GroupState::new(0, limit));
            let group = Arc::clone(&name);
            state.waiting.push_back(Entry::Source { group, source });
            let jobs = Vec::new();
            Ok(Group { name, jobs })
        })
    }

    /// Cancels a job: one waiting never starts, one running is dropped at its next await.
    /// Its result is [`Cancelled`](JobOutcome::Cancelled).
    pub fn cancel(&self, job: JobId) -> Result<(), JobPoolError> {
        self.update(|state| {
            if let Some(running) = state.running.get_mut(&job) {
                // Its task reports the cancellation as it is dropped.
                running.cancel();
                return Ok(());
            }
            let at = state
                .waiting
                .iter()
                .position(|e| matches!(e, Entry::Job { id, .. } if *id == job))
                .ok_or(JobPoolError::UnknownJob(job))?;
            if let Some(Entry::Job { id, group, .. }) = state.waiting.remove(at) {
                state.finish(id, group, JobOutcome::Cancelled, false);
            }
            Ok(())
        })
    }

    /// Cancels every job of a group, waiting or running, and stops pulling its `map`
    /// source. Returns how many jobs were cancelled.
    pub fn cancel_group(&self, group: &str) -> Result<usize, JobPoolError> {
        self.update(|state| {
            if !state.groups.contains_key(group) {
                return Err(JobPoolError::UnknownGroup(group.to_owned()));
            }
            Ok(state.cancel_where(|g| &**g == group))
        })
    }

    /// Cancels every job in the pool and stops pulling every `map` source. Returns how many
    /// jobs were cancelled.
    pub fn cancel_all(&self) -> usize {
        self.update(|state| state.cancel_where(|_| true))
    }

    /// The most jobs that run at once.
    pub fn limit(&self) -> usize {
        self.inner.lock().limit
    }

    /// Changes the limit. Raising it starts waiting jobs at once; lowering it lets the jobs
    /// running finish (none is cancelled), and no new one starts until fewer run.
    pub fn set_limit(&self, limit: usize) {
        self.update(|state| state.limit = limit);
    }

    /// The number of jobs running.
    pub fn running(&self) -> usize {
        self.inner.lock().running.len()
    }

    /// The number of jobs waiting for a slot (items a `map` has not pulled yet are not
    /// jobs yet, and not counted).
    pub fn waiting(&self) -> usize {
        let state = self.inner.lock();
        state
            .waiting
            .iter()
            .filter(|e| matches!(e, Entry::Job { .. }))
            .count()
    }

    /// The names of the groups in the pool (with jobs waiting or running, or a `map` source
    /// not yet exhausted).
    pub fn groups(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = self.inner.lock().groups.keys().cloned().collect();
        names.sort();
        names
    }

    /// Refuses new jobs ([`JobPoolError::Locked`]) until [`unlock`](Self::unlock); jobs in
    /// the pool go on.
    pub fn lock(&self) {
        self.inner.lock().locked = true;
    }

    /// Takes new jobs again after [`lock`](Self::lock) (a closed pool stays closed).
    pub fn unlock(&self) {
        self.inner.lock().locked = false;
    }

    /// Refuses new jobs for good ([`JobPoolError::Closed`]); jobs in the pool go on, and the
    /// results stream ends after the last of them.
    pub fn close(&self) {
        self.update(|state| state.closed = true);
    }

    /// Whether the pool is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Waits until no job is waiting or running and every `map` source is exhausted. With
    /// an infinite `map` in the pool, that is after it is cancelled; with a limit of 0 and
    /// jobs waiting, after the limit is raised.
    pub async fn join(&self) {
        let mut live = self.inner.live.subscribe();
        let _ = live.wait_for(|&n| n == 0).await;
    }

    /// Changes the state under the lock, then starts what may start, outside it.
    fn update<R>(&self, change: impl FnOnce(&mut State<T, E>) -> R) -> R {
        let mut state = self.inner.lock();
        let out = change(&mut state);
        let launches = self.settle(&mut state);
        drop(state);
        self.launch_all(launches);
        out
    }

    /// Takes what may start now off the waiting line (to be spawned by the caller, once it
    /// has released the lock), publishes the count of live work and ends the results stream
    /// of a closed, idle pool. Called after every change, with the lock held.
    #[must_use]
    fn settle(&self, state: &mut State<T, E>) -> Vec<Launch<T, E>> {
        let mut launches = Vec::new();
        if !LAUNCHING.get() {
            while state.running.len() < state.limit {
                match state.take_next() {
                    Some(Some(launch)) => launches.push(launch),
                    Some(None) => {}
                    None => break,
                }
            }
        }
        let live = state.live();
        self.inner.live.send_replace(live);
        if state.closed && live == 0 {
            state.results = None;
        }
        launches
    }

    /// Spawns the jobs [`settle`](Self::settle) took, without the lock held.
    fn launch_all(&self, launches: Vec<Launch<T, E>>) {
        if launches.is_empty() {
            return;
        }
        let was = LAUNCHING.replace(true);
        for Launch { id, job } in launches {
            let guard = Finish {
                pool: Arc::downgrade(&self.inner),
                id,
                outcome: None,
            };
            let task = self.inner.runtime.spawn(async move {
                let mut guard = guard;
                let outcome = match (CatchUnwind { job }).await {
                    Ok(Ok(t)) => JobOutcome::Ok(t),
                    Ok(Err(e)) => JobOutcome::Err(e),
                    Err(message) => JobOutcome::Panicked(message),
                };
                guard.outcome = Some(outcome);
            });
            let mut state = self.inner.lock();
            // Gone already if it has ended.
            if let Some(running) = state.running.get_mut(&id) {
                running.abort = Some(task.abort_handle());
                if running.cancelled {
                    task.abort();
                }
            }
        }
        LAUNCHING.set(was);
    }
}

impl<T, E> State<T, E> {
    fn next_id(&mut self) -> JobId {
        let id = JobId(self.next_job);
        self.next_job += 1;
        id
    }

    /// Takes the first job that may start off the waiting line and counts it as running:
    /// `None` if none may start, `Some(None)` if a `map` source ended instead.
    fn take_next(&mut self) -> Option<Option<Launch<T, E>>> {
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
                    return Some(None);
                }
                Pulled::Panicked(message) => {
                    let id = self.next_id();
                    self.send(id, &group, JobOutcome::Panicked(message));
                    self.end_source(&group);
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

    fn live(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    fn new_group(&mut self, name: Option<&str>, kind: &str) -> Result<Arc<str>, JobPoolError> {
        if self.closed {
            return Err(JobPoolError::Closed);
        }
        if self.locked {
            return Err(JobPoolError::Locked);
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

    fn send(&self, id: JobId, group: &Arc<str>, outcome: JobOutcome<T, E>) {
        if let Some(results) = &self.results {
            let _ = results.send(JobResult {
                id,
                group: Arc::clone(group),
                outcome,
            });
        }
    }

    /// Reports a job that ended (or was cancelled before starting) and updates its group.
    fn finish(&mut self, id: JobId, group: Arc<str>, outcome: JobOutcome<T, E>, ran: bool) {
        self.send(id, &group, outcome);
        if let Some(g) = self.groups.get_mut(&group) {
            g.live -= 1;
            if ran && g.map_limit > 0 {
                g.map_running -= 1;
            }
            if g.live == 0 && !g.source {
                self.groups.remove(&group);
            }
        }
    }

    fn end_source(&mut self, group: &Arc<str>) {
        if let Some(g) = self.groups.get_mut(group) {
            g.source = false;
            if g.live == 0 {
                self.groups.remove(group);
            }
        }
    }

    fn cancel_where(&mut self, hit: impl Fn(&Arc<str>) -> bool) -> usize {
        let mut cancelled = 0;
        for job in self.running.values_mut().filter(|j| hit(&j.group)) {
            job.cancel();
            cancelled += 1;
        }
        let waiting = std::mem::take(&mut self.waiting);
        for entry in waiting {
            if !hit(entry.group()) {
                self.waiting.push_back(entry);
                continue;
            }
            match entry {
                Entry::Job { id, group, .. } => {
                    cancelled += 1;
                    self.finish(id, group, JobOutcome::Cancelled, false);
                }
                Entry::Source { group, .. } => self.end_source(&group),
            }
        }
        cancelled
    }
}

/// Reports a job's outcome when its task ends, or [`JobOutcome::Cancelled`] when its task
/// is dropped first (cancelled).
struct Finish<T: Send + 'static, E: Send + 'static> {
    pool: Weak<Inner<T, E>>,
    id: JobId,
    outcome: Option<JobOutcome<T, E>>,
}

impl<T: Send + 'static, E: Send + 'static> Drop for Finish<T, E> {
    fn drop(&mut self) {
        let Some(inner) = self.pool.upgrade() else {
            return;
        };
        let outcome = self.outcome.take().unwrap_or(JobOutcome::Cancelled);
        JobPool { inner }.update(|state| {
            if let Some(job) = state.running.remove(&self.id) {
                state.finish(self.id, job.group, outcome, true);
            }
        });
    }
}

/// Polls a job, turning a panic into its message.
struct CatchUnwind<T, E> {
    job: BoxJob<T, E>,
}

impl<T, E> Future for CatchUnwind<T, E> {
    type Output = Result<Result<T, E>, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.job.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Err(payload) => Poll::Ready(Err(crate::driver::panic_message(payload))),
        }
    }
}

/// The results of a [`JobPool`]'s jobs, in the order they end: a [`Stream`] of
/// [`JobResult`]s that ends once the pool is closed and idle (or dropped).
pub struct JobResults<T, E = Error> {
    rx: mpsc::UnboundedReceiver<JobResult<T, E>>,
    live: watch::Receiver<usize>,
}

impl<T, E> fmt::Debug for JobResults<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobResults")
            .field("ready", &self.rx.len())
            .finish_non_exhaustive()
    }
}

impl<T, E> JobResults<T, E> {
    /// The next result; `None` once the pool is closed (or dropped) and every result has
    /// been received.
    pub async fn next(&mut self) -> Option<JobResult<T, E>> {
        self.rx.recv().await
    }

    /// Waits until the pool is idle (see [`JobPool::join`]), then returns every result not
    /// received yet.
    pub async fn flush(&mut self) -> Vec<JobResult<T, E>> {
        let _ = self.live.wait_for(|&n| n == 0).await;
        let mut results = Vec::with_capacity(self.rx.len());
        while let Ok(result) = self.rx.try_recv() {
            results.push(result);
        }
        results
    }
}

impl<T, E> Stream for JobResults<T, E> {
    type Item = JobResult<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
