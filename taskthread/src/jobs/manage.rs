//! Managing a [`JobPool`]: cancel jobs, change its limit, pause and resume its intake,
//! close it, wait for it, and count what became of its jobs.

use super::outcome::{JobCounts, JobId, JobPoolError};
use super::state::{Entry, Live};

use std::sync::Arc;

use super::JobPool;

impl<T: Send + 'static, E: Send + 'static> JobPool<T, E> {
    /// How many jobs the pool has taken, and how those that ended ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(1);
    /// pool.apply(|| async { Ok(1) }, 2, None).unwrap();
    /// pool.submit(async { Err(taskthread::Error::msg("no")) }).unwrap();
    /// let waiting = pool.submit(async { Ok(3) }).unwrap();
    /// pool.cancel(waiting).unwrap();
    /// pool.join().await;
    /// let counts = pool.counts();
    /// assert_eq!((counts.submitted, counts.succeeded, counts.failed), (4, 2, 1));
    /// assert_eq!(counts.cancelled, 1);
    /// assert_eq!(counts.ended(), counts.submitted);
    /// # }
    /// ```
    pub fn counts(&self) -> JobCounts {
        self.inner.lock().counts
    }

    /// Cancels a job: one waiting never starts, one running is dropped at its next await.
    /// Its result is [`Cancelled`](super::JobOutcome::Cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::{JobOutcome, JobPool};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, mut results) = JobPool::<u32>::new(1);
    /// let slow = pool.apply(|| std::future::pending(), 1, Some("slow")).unwrap(); // never ends
    /// let next = pool.apply(|| async { Ok(2) }, 1, Some("next")).unwrap();
    /// pool.cancel(next.jobs[0]).unwrap(); // waiting: it never starts
    /// pool.cancel(slow.jobs[0]).unwrap(); // running: dropped at its next await
    /// let done = results.flush().await;
    /// assert!(done.iter().all(|r| matches!(r.outcome, JobOutcome::Cancelled)));
    /// # }
    /// ```
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
            if let Some(entry) = state.waiting.remove(at) {
                state.withdraw(entry);
            }
            Ok(())
        })
    }

    /// Cancels every job of a group, waiting or running, and stops pulling its `map`
    /// source. Returns how many jobs were cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(4);
    /// // Endless: a job per number, two at a time, each waiting forever.
    /// pool.map(|_| std::future::pending(), 0.., 2, Some("watch")).unwrap();
    /// assert_eq!(pool.cancel_group("watch").unwrap(), 2);
    /// pool.join().await; // no job left, and the source is no longer pulled
    /// assert!(pool.groups().is_empty());
    /// # }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(2);
    /// pool.apply(|| std::future::pending(), 3, None).unwrap(); // jobs that never end
    /// assert_eq!(pool.cancel_all(), 3); // two running, one waiting
    /// pool.join().await;
    /// assert_eq!(pool.running() + pool.waiting(), 0);
    /// # }
    /// ```
    pub fn cancel_all(&self) -> usize {
        self.update(|state| state.cancel_where(|_| true))
    }

    /// The most jobs that run at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(4);
    /// assert_eq!(pool.limit(), 4);
    /// # }
    /// ```
    pub fn limit(&self) -> usize {
        self.inner.lock().limit
    }

    /// Changes the limit. Raising it starts waiting jobs at once; lowering it lets the jobs
    /// running finish (none is cancelled), and no new one starts until fewer run.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(0);
    /// pool.apply(|| std::future::pending(), 3, None).unwrap(); // jobs that never end
    /// assert_eq!((pool.running(), pool.waiting()), (0, 3));
    /// pool.set_limit(2); // starts two at once
    /// assert_eq!((pool.running(), pool.waiting()), (2, 1));
    /// pool.set_limit(1); // lets both run on
    /// assert_eq!((pool.running(), pool.waiting()), (2, 1));
    /// # }
    /// ```
    pub fn set_limit(&self, limit: usize) {
        self.update(|state| state.limit = limit);
    }

    /// The number of jobs running.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(2);
    /// pool.apply(|| std::future::pending(), 3, None).unwrap(); // jobs that never end
    /// assert_eq!(pool.running(), 2); // the limit
    /// # }
    /// ```
    pub fn running(&self) -> usize {
        self.inner.lock().running.len()
    }

    /// The number of jobs waiting for a slot (items a `map` has not pulled yet are not
    /// jobs yet, and not counted).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(2);
    /// pool.apply(|| std::future::pending(), 3, None).unwrap(); // jobs that never end
    /// assert_eq!(pool.waiting(), 1);
    /// pool.map(|_| std::future::pending(), 0.., 1, None).unwrap();
    /// assert_eq!(pool.waiting(), 1); // the map's items are not jobs yet
    /// # }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(4);
    /// pool.apply(|| std::future::pending(), 1, Some("fetch")).unwrap(); // never ends
    /// pool.map(|_| std::future::pending(), 0.., 1, None).unwrap(); // never runs dry
    /// let groups = pool.groups();
    /// assert_eq!(groups.iter().map(|g| &**g).collect::<Vec<_>>(), ["fetch", "map-1"]);
    /// # }
    /// ```
    pub fn groups(&self) -> Vec<Arc<str>> {
        let mut names: Vec<_> = self.inner.lock().groups.keys().cloned().collect();
        names.sort();
        names
    }

    /// Pauses the pool's intake: new jobs are refused ([`JobPoolError::Paused`]) until
    /// [`resume`](Self::resume); jobs in the pool go on.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::{JobPool, JobPoolError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(4);
    /// pool.pause();
    /// let refused = pool.apply(|| async { Ok(1) }, 1, None).unwrap_err();
    /// assert_eq!(refused, JobPoolError::Paused);
    /// # }
    /// ```
    pub fn pause(&self) {
        self.inner.lock().paused = true;
    }

    /// Takes new jobs again after [`pause`](Self::pause) (a closed pool stays closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(4);
    /// pool.pause();
    /// assert!(pool.apply(|| async { Ok(1) }, 1, None).is_err());
    /// pool.resume();
    /// assert!(pool.apply(|| async { Ok(1) }, 1, None).is_ok());
    /// # }
    /// ```
    pub fn resume(&self) {
        self.inner.lock().paused = false;
    }

    /// Refuses new jobs for good ([`JobPoolError::Closed`]); jobs in the pool go on, and the
    /// results stream ends after the last of them.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::{JobPool, JobPoolError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, mut results) = JobPool::<u32>::new(4);
    /// pool.apply(|| async { Ok(7) }, 1, None).unwrap();
    /// pool.close();
    /// let refused = pool.apply(|| async { Ok(8) }, 1, None).unwrap_err();
    /// assert_eq!(refused, JobPoolError::Closed);
    /// assert!(results.next().await.unwrap().outcome.is_ok()); // the job in the pool ran
    /// assert!(results.next().await.is_none()); // and the stream ended after it
    /// # }
    /// ```
    pub fn close(&self) {
        self.update(|state| state.closed = true);
    }

    /// Whether the pool is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, _results) = JobPool::<u32>::new(4);
    /// assert!(!pool.is_closed());
    /// pool.close();
    /// assert!(pool.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Waits until no job is waiting or running and every `map` source is exhausted. With
    /// an infinite `map` in the pool, that is after it is cancelled; with a limit of 0 and
    /// jobs waiting, after the limit is raised.
    ///
    /// By then, the values of yours the pool has ended are dropped: cancelled jobs, ended
    /// `map` sources and what they panicked with, results no one receives. So an [`Arc`]
    /// they shared with the caller is the caller's alone again. It follows that the `Drop`
    /// of such a value must not wait for `join` itself (from a blocking wrapper, say): the
    /// pool waits for that drop to end.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskthread::jobs::JobPool;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (pool, mut results) = JobPool::<u32>::new(2);
    /// pool.apply(|| async { Ok(1) }, 5, None).unwrap();
    /// pool.join().await;
    /// assert_eq!((pool.running(), pool.waiting()), (0, 0));
    /// assert_eq!(results.flush().await.len(), 5);
    /// # }
    /// ```
    pub async fn join(&self) {
        let mut live = self.inner.live.subscribe();
        let _ = live.wait_for(Live::is_idle).await;
    }
}
