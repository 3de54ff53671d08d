//! [`JobPool`]: ad-hoc async jobs with a concurrency limit, in named groups, with their
//! results collected in a stream.
//!
//! - [`JobPool`]: the pool — apply, lazy map with a concurrency limit, named groups,
//!   cancellation, pause and resume, close and join.
//! - [`JobResults`]: the stream of every job's [`JobResult`].
//! - [`JobOutcome`], [`JobId`], [`Group`], [`JobCounts`], [`JobPoolError`]: what a job is
//!   and how it ended.

mod manage;
mod outcome;
mod results;
mod state;

pub use outcome::{Group, JobCounts, JobId, JobOutcome, JobPoolError, JobResult};
pub use results::JobResults;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};

use crate::ctx::Ctx;
use crate::driver::panic_message;
use crate::error::Error;
use crate::family::Drained;
use crate::lock::lock;
use crate::thread::{HandlesStream, Thread};
use state::{
    BoxJob, CatchUnwind, Entry, Finish, Graveyard, GroupState, Inner, LAUNCHING, Launch, Live,
    Pulled, Source, State,
};

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
/// - [`pause`](Self::pause) (no new jobs for now), [`close`](Self::close) (no new jobs ever;
///   the results stream ends after the last result) and [`join`](Self::join).
///
/// The jobs run on tokio tasks that belong to the pool: when the last handle is dropped, the
/// jobs still running are cancelled, so none outlives it. A pool kept in a thread is best
/// made with [`new_in`](Self::new_in): it then takes part in the thread's stop, and every
/// job's result reaches the thread before its `exit` hook.
///
/// The pool never drops a value of yours while it holds its internal lock: a job it refuses
/// or cancels before it started, a `map`'s iterator and function and what either panics
/// with, and a result no one will receive (the [`JobResults`] were dropped) are dropped once
/// the lock is released. (What a `map`'s iterator and function drop as they run is the
/// exception: see [`map`](Self::map).) So their `Drop` may use the pool, and one that panics
/// does so with the pool's state whole: the panic goes on from the call that ended the value
/// ([`cancel_group`](Self::cancel_group), say, or the task of the job whose result it is),
/// and no other job is lost. For a pool made with [`new_in`](Self::new_in), that call may be
/// the thread's own stop, and the panic then fails the thread. [`join`](Self::join) returns,
/// and the results stream ends, only once the cancelled jobs, ended sources and undelivered
/// results are dropped.
///
/// ```
/// use taskthread::jobs::{JobOutcome, JobPool};
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
        // Copied out first: the formatter writes to the caller's sink, run without the lock.
        let (limit, running, groups) = {
            let state = self.inner.lock();
            (state.limit, state.running.len(), state.groups.len())
        };
        f.debug_struct("JobPool")
            .field("limit", &limit)
            .field("running", &running)
            .field("groups", &groups)
            .finish_non_exhaustive()
    }
}

impl<T, E> Inner<T, E> {
    fn lock(&self) -> MutexGuard<'_, State<T, E>> {
        lock(&self.state)
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
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::{JobOutcome, JobPool};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, mut results) = JobPool::<u32>::new(4);
    /// pool.apply(|| async { Ok(7) }, 1, None).unwrap();
    /// let result = results.next().await.unwrap();
    /// assert!(matches!(result.outcome, JobOutcome::Ok(7)));
    /// # }
    /// ```
    pub fn new(limit: usize) -> (Self, JobResults<T, E>) {
        Self::new_on(limit, tokio::runtime::Handle::current())
    }

    /// A pool whose jobs run on `runtime`, and the stream of their results.
    fn new_on(limit: usize, runtime: tokio::runtime::Handle) -> (Self, JobResults<T, E>) {
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let (live, live_rx) = watch::channel(Live::default());
        let inner = Inner {
            state: Mutex::new(State {
                limit,
                running: HashMap::new(),
                waiting: VecDeque::new(),
                groups: HashMap::new(),
                next_job: 1,
                next_group: 1,
                paused: false,
                closed: false,
                results: Some(results_tx),
                counts: JobCounts::default(),
                graveyard: Graveyard::default(),
            }),
            runtime,
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

    /// A pool that belongs to the thread of `ctx`: its results go to the thread's
    /// `#[stream]` handler for [`JobResult<T, E>`], and it takes part in the thread's stop.
    ///
    /// When the thread starts stopping, the pool takes no new job ([`JobPoolError::Closed`]),
    /// reports every waiting job as [`Cancelled`](JobOutcome::Cancelled), stops pulling its
    /// `map` sources, and lets the running jobs finish; the thread handles every result
    /// before its `exit` hook runs. A job still running at the thread's stop deadline is
    /// cancelled with the rest of the thread (counted in [`counts`](Self::counts); the
    /// thread, aborted, handles no more results). So no job is lost: once the pool is idle,
    /// [`JobCounts::ended`] equals [`JobCounts::submitted`]. The pool lives as long as the
    /// thread, even if every handle to it is dropped; one made while the thread stops (in
    /// its `exit` hook, say) is closed at once. Its jobs run on the runtime the thread runs
    /// on.
    ///
    /// The waiting jobs and `map` sources are dropped in the thread's stop: a `Drop` among
    /// them that panics fails the thread, which ends
    /// [`Panicked`](crate::Exit::Panicked) without running its `exit` hook.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::{JobOutcome, JobPool, JobResult};
    /// use taskthread::prelude::*;
    ///
    /// #[derive(Default)]
    /// struct Crawler {
    ///     pool: Option<JobPool<u32>>,
    ///     fetched: u32,
    ///     cancelled: u32,
    /// }
    ///
    /// #[taskthread(up = (u32, u32))]
    /// impl Crawler {
    ///     async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         let pool = JobPool::new_in(ctx, 2);
    ///         pool.apply(|| async { Ok(1) }, 5, Some("pages"))?;
    ///         self.pool = Some(pool);
    ///         Ok(())
    ///     }
    ///
    ///     #[stream]
    ///     async fn fetched(&mut self, _ctx: &mut Ctx<Self>, result: JobResult<u32>) -> Result<()> {
    ///         match result.outcome {
    ///             JobOutcome::Cancelled => self.cancelled += 1,
    ///             _ => self.fetched += 1,
    ///         }
    ///         Ok(())
    ///     }
    ///
    ///     async fn exit(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
    ///         ctx.up((self.fetched, self.cancelled)).await?; // every result is in by now
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut crawler = taskthread::spawn(Crawler::default());
    /// crawler.stop(); // the two running jobs finish, the three waiting are cancelled
    /// assert_eq!(crawler.recv().await, Some((2, 3)));
    /// # }
    /// ```
    pub fn new_in<Th>(ctx: &mut Ctx<Th>, limit: usize) -> Self
    where
        Th: Thread + HandlesStream<JobResult<T, E>>,
    {
        let runtime = ctx
            .runtime()
            .map_or_else(tokio::runtime::Handle::current, Clone::clone);
        let (pool, results) = Self::new_on(limit, runtime);
        ctx.attach_drained(results, Box::new(pool.clone()));
        pool
    }

    /// Adds one job, running `job`, in a new group of its own (named `submit-1`,
    /// `submit-2`, ...), and returns its id. Never waits: over the limit, it waits its turn.
    ///
    /// Fails if the pool is paused or closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::{JobOutcome, JobPool};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, mut results) = JobPool::<u32>::new(4);
    /// let id = pool.submit(async { Ok(6 * 7) }).unwrap();
    /// let result = results.next().await.unwrap();
    /// assert_eq!(result.id, id);
    /// assert!(matches!(result.outcome, JobOutcome::Ok(42)));
    /// # }
    /// ```
    pub fn submit<Fut>(&self, job: Fut) -> Result<JobId, JobPoolError>
    where
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let job: BoxJob<T, E> = Box::pin(job);
        self.update(|state| {
            let group = match state.new_group(None, "submit") {
                Ok(group) => group,
                Err(refused) => return Err((refused, job)),
            };
            let id = state.next_id();
            state
                .groups
                .insert(Arc::clone(&group), GroupState::new(1, 0));
            state.waiting.push_back(Entry::Job { id, group, job });
            Ok(id)
        })
        // The refused job drops here, outside the lock.
        .map_err(|(refused, _job)| refused)
    }

    /// Adds `n` jobs, each running the future `f()` makes, in a new group named `group` (or
    /// a generated name). Never waits: jobs over the limit wait their turn.
    ///
    /// Fails if the pool is paused or closed, or a group of that name is still in the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, mut results) = JobPool::<String>::new(2);
    /// let group = pool.apply(|| async { Ok("done".to_owned()) }, 3, Some("greet")).unwrap();
    /// assert_eq!((&*group.name, group.jobs.len()), ("greet", 3));
    /// let done = results.flush().await;
    /// assert_eq!(done.len(), 3);
    /// assert!(done.iter().all(|r| r.group == group.name && r.outcome.is_ok()));
    /// # }
    /// ```
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
            let name = match state.new_group(group, "apply") {
                Ok(name) => name,
                Err(refused) => return Err((refused, made)),
            };
            let mut jobs = Vec::with_capacity(n);
            for job in made {
                let id = state.next_id();
                jobs.push(id);
                let group = Arc::clone(&name);
                state.waiting.push_back(Entry::Job { id, group, job });
            }
            // A group with no job would never end, and keep its name taken.
            if n > 0 {
                state
                    .groups
                    .insert(Arc::clone(&name), GroupState::new(n, 0));
            }
            Ok(Group { name, jobs })
        })
        // The refused jobs drop here, outside the lock.
        .map_err(|(refused, _made)| refused)
    }

    /// Runs `f(item)` for each item of `items`, in a new group named `group` (or a generated
    /// name), keeping at most `limit` of its jobs running (and within the pool's limit).
    ///
    /// The iterator is pulled lazily, one item each time a slot frees, so it may be
    /// infinite. It and `f` are called while the pool holds its internal lock: they must not
    /// call the pool, and neither may the `Drop` of anything they drop as they run (an item
    /// `f` does not keep, say). The iterator and `f` themselves are dropped outside the lock,
    /// so their `Drop` may use the pool: when the iterator ends or panics, when the group is
    /// cancelled or the map refused, or with the pool. A panic in either ends the group's
    /// source and is reported as a [`Panicked`](JobOutcome::Panicked) result; the value it
    /// panicked with is dropped outside the lock too. For Python's
    /// `starmap`, destructure in the closure: `pool.map(|(a, b)| job(a, b), pairs, 4, None)`.
    ///
    /// Fails if the pool is paused or closed, a group of that name is still in the pool, or
    /// `limit` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, mut results) = JobPool::<u64>::new(8);
    /// let group = pool.map(|n| async move { Ok(n * n) }, 1..=4u64, 2, Some("squares")).unwrap();
    /// assert!(group.jobs.is_empty()); // a map makes its jobs as it pulls items
    /// assert_eq!(pool.running(), 2); // at most 2 of its jobs at once
    /// pool.close();
    /// let mut squares = Vec::new();
    /// while let Some(result) = results.next().await {
    ///     squares.push(result.outcome.into_result().unwrap());
    /// }
    /// squares.sort();
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// # }
    /// ```
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
                    Err(payload) => Pulled::Panicked {
                        message: panic_message(&*payload),
                        payload,
                    },
                },
            );
        self.update(|state| {
            let name = match state.new_group(group, "map") {
                Ok(name) => name,
                Err(refused) => return Err((refused, source)),
            };
            state
                .groups
                .insert(Arc::clone(&name), GroupState::new(0, limit));
            let group = Arc::clone(&name);
            state.waiting.push_back(Entry::Source { group, source });
            let jobs = Vec::new();
            Ok(Group { name, jobs })
        })
        // The refused source (the iterator and `f`) drops here, outside the lock.
        .map_err(|(refused, _source)| refused)
    }
}

/// A pool made with [`JobPool::new_in`] is drained at its thread's stop: it ends its results
/// stream once the jobs in hand have ended.
impl<T: Send + 'static, E: Send + 'static> Drained for JobPool<T, E> {
    fn stop(&mut self) {
        self.update(State::stop_intake);
    }

    fn abort(&mut self) {
        self.update(|state| {
            state.closed = true;
            state.cancel_where(|_| true);
        });
    }
}

/// The pool's engine: every change to its state that can take a value of the user's out of
/// it, or let a job start, goes through [`update`](Self::update), which starts the jobs the
/// change lets start and drops what it took out of the state, once the lock is released.
/// (`pause`, `resume` and the spawn of a job only set a flag or a handle, under the lock.)
impl<T: Send + 'static, E: Send + 'static> JobPool<T, E> {
    /// Changes the state under the lock, then starts what may start and drops what the
    /// change and the start took out of the state, outside it.
    ///
    /// Nothing of the user's is dropped under the lock: a `Drop` may call the pool (std's
    /// mutex is not re-entrant, so that would deadlock the OS thread), and one that panics
    /// does so once the state is whole and the jobs it lets start have started. So `change`
    /// hands back, in `R`, any user value it does not keep (a refused job), and the state
    /// puts what it takes out in its graveyard, which counts as live until it is dropped.
    fn update<R>(&self, change: impl FnOnce(&mut State<T, E>) -> R) -> R {
        let mut state = self.inner.lock();
        let out = change(&mut state);
        let launches = self.settle(&mut state);
        let burial = Burial {
            pool: self,
            graveyard: state.take_graveyard(),
        };
        drop(state);
        self.launch_all(launches);
        drop(burial);
        out
    }

    /// Takes what may start now off the waiting line (to be spawned by the caller, once it
    /// has released the lock), publishes whether the pool is idle, ends the results stream of
    /// a closed, idle pool, and counts the graveyard, if any, as live. Called after every
    /// change, with the lock held.
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
        // All in one modification of the watch: a burial that ends on another OS thread
        // meanwhile sees either none of it or all of it.
        self.inner.live.send_if_modified(|live| {
            let was = *live;
            live.work = state.live();
            if state.closed && live.is_idle() {
                state.end_results();
            }
            live.burials += usize::from(!state.graveyard.is_empty());
            live.ending = state.closed && state.results.is_some();
            *live != was
        });
        launches
    }

    /// Counts a graveyard as dropped; if that leaves a closed pool idle with its results
    /// stream not ended, ends it.
    fn end_burial(&self) {
        let mut end_results = false;
        self.inner.live.send_if_modified(|live| {
            live.burials -= 1;
            end_results = live.ending && live.is_idle();
            live.is_idle()
        });
        if end_results {
            self.update(|_| ());
        }
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
                // `job` named first: a task cancelled before it first runs drops what the
                // block took in the order the block names it, and the job, the user's, must
                // be gone before `Finish` reports it ended. Once running, the job being
                // awaited is dropped before `guard`, as a temporary of the statement.
                let job = CatchUnwind { job };
                let mut guard = guard;
                let outcome = match job.await {
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

/// A graveyard taken out of a pool's state, dropped once the lock is released, and counted
/// as live until then (even when a `Drop` in it panics: the pool would never be idle again).
struct Burial<'a, T: Send + 'static, E: Send + 'static> {
    pool: &'a JobPool<T, E>,
    graveyard: Graveyard<T, E>,
}

impl<T: Send + 'static, E: Send + 'static> Drop for Burial<'_, T, E> {
    fn drop(&mut self) {
        if self.graveyard.is_empty() {
            return;
        }
        let graveyard = std::mem::take(&mut self.graveyard);
        let dropped = catch_unwind(AssertUnwindSafe(move || drop(graveyard)));
        self.pool.end_burial();
        if let Err(panic) = dropped {
            resume_unwind(panic);
        }
    }
}
