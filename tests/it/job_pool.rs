//! `JobPool`: apply and lazy map under a limit, groups and their names, cancelling a job, a
//! group or all, results (outputs, errors, panics, cancellations) by stream and by flush,
//! the limit changed at run time, lock / close / join, and jobs never outliving the pool; a
//! pool that belongs to a thread (`JobPool::new_in`) accounting for every job at the
//! thread's stop, stop deadline and abort (with a property test over random job mixes and
//! stop timings); and every value of the user's that the pool drops (refused and cancelled
//! jobs, `map` sources and what they panic with, undelivered results) dropped outside its
//! lock, so that a `Drop` may use the pool and one that panics loses no other job, and
//! dropped before `join()` returns and the results stream ends.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use taskthread::jobs::{JobOutcome, JobPool, JobPoolError, JobResult};
use taskthread::prelude::*;

/// Counts jobs running now and the most ever running at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    async fn run(self: Arc<Self>, hold: Duration) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(hold).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

fn ok_values(results: &[JobResult<u64>]) -> Vec<u64> {
    let mut values: Vec<_> = results
        .iter()
        .filter_map(|r| match r.outcome {
            JobOutcome::Ok(v) => Some(v),
            _ => None,
        })
        .collect();
    values.sort_unstable();
    values
}

#[tokio::test(start_paused = true)]
async fn apply_runs_n_jobs_within_the_limit() {
    let (pool, mut results) = JobPool::<u64>::new(3);
    let gauge = Arc::new(Gauge::default());
    let group = pool
        .apply(
            || {
                let gauge = Arc::clone(&gauge);
                async move {
                    gauge.run(Duration::from_millis(10)).await;
                    Ok(7)
                }
            },
            10,
            None,
        )
        .unwrap();
    assert_eq!(&*group.name, "apply-1");
    assert_eq!(group.jobs.len(), 10);
    assert_eq!(pool.running(), 3);
    assert_eq!(pool.waiting(), 7);
    let results = results.flush().await;
    assert_eq!(results.len(), 10);
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 3);
    assert!(results.iter().all(|r| &*r.group == "apply-1"));
    let ids: HashSet<_> = results.iter().map(|r| r.id).collect();
    assert_eq!(ids, group.jobs.iter().copied().collect());
    assert_eq!(ok_values(&results), [7; 10]);
    assert!(pool.groups().is_empty(), "a finished group leaves the pool");
}

#[tokio::test(start_paused = true)]
async fn map_pulls_lazily_and_keeps_exactly_its_limit_running() {
    let (pool, mut results) = JobPool::<u64>::new(100);
    let pulled = Arc::new(AtomicUsize::new(0));
    let gauge = Arc::new(Gauge::default());
    let items = {
        let pulled = Arc::clone(&pulled);
        (0u64..).inspect(move |_| {
            pulled.fetch_add(1, Ordering::SeqCst);
        })
    };
    let g = Arc::clone(&gauge);
    pool.map(
        move |n| {
            let g = Arc::clone(&g);
            async move {
                g.run(Duration::from_millis(10)).await;
                Ok(n)
            }
        },
        items,
        4,
        Some("naturals"),
    )
    .unwrap();
    // Only as many items as slots were pulled from the infinite iterator.
    assert_eq!(pulled.load(Ordering::SeqCst), 4);
    assert_eq!(pool.running(), 4);
    for _ in 0..20 {
        results.next().await.unwrap();
        assert_eq!(pool.running(), 4, "a finished job is replaced at once");
        tokio::task::yield_now().await;
    }
    assert!(pulled.load(Ordering::SeqCst) <= 24 + 4);
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 4);
    let cancelled = pool.cancel_group("naturals").unwrap();
    assert_eq!(cancelled, 4);
    let pulled_then = pulled.load(Ordering::SeqCst);
    pool.join().await;
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        pulled_then,
        "no pull after the cancel"
    );
    let rest = results.flush().await;
    assert!(
        rest.iter()
            .filter(|r| matches!(r.outcome, JobOutcome::Cancelled))
            .count()
            == 4
    );
    assert!(pool.groups().is_empty());
}

#[tokio::test(start_paused = true)]
async fn map_stays_within_the_pools_limit_too_and_groups_take_turns() {
    let (pool, mut results) = JobPool::<u64>::new(2);
    let slow = |n: u64| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(n)
    };
    let a = pool.map(slow, 0..6u64, 10, None).unwrap();
    let b = pool.map(slow, 100..106u64, 10, None).unwrap();
    assert_eq!((&*a.name, &*b.name), ("map-1", "map-2"));
    assert_eq!(pool.running(), 2);
    let all = results.flush().await;
    assert_eq!(all.len(), 12);
    // The first map took both slots before the second came; from then on they take turns,
    // so neither starves the other.
    let groups: Vec<_> = all.iter().map(|r| &*r.group).collect();
    assert!(groups[..4].contains(&"map-2"), "{groups:?}");
    let last_of_first = groups.iter().rposition(|g| *g == "map-1").unwrap();
    assert!(last_of_first < 11, "{groups:?}");
    let mut values = ok_values(&all);
    values.dedup();
    assert_eq!(values.len(), 12);
}

#[tokio::test(start_paused = true)]
async fn starmap_is_map_with_a_destructuring_closure() {
    let (pool, mut results) = JobPool::<u64>::new(4);
    pool.map(
        |(a, b): (u64, u64)| async move { Ok(a * b) },
        [(1, 2), (3, 4), (5, 6)],
        2,
        None,
    )
    .unwrap();
    assert_eq!(ok_values(&results.flush().await), [2, 12, 30]);
}

#[tokio::test(start_paused = true)]
async fn outputs_errors_and_panics_are_all_reported() {
    let (pool, mut results) = JobPool::<u64>::new(4);
    pool.map(
        |n: u64| async move {
            match n {
                0 => Ok(10),
                1 => Err(Error::msg("no luck")),
                _ => panic!("job {n} exploded"),
            }
        },
        0..3u64,
        3,
        Some("mixed"),
    )
    .unwrap();
    pool.close();
    let mut got = Vec::new();
    while let Some(result) = results.next().await {
        got.push(result);
    }
    got.sort_by_key(|r| r.id);
    assert!(matches!(got[0].outcome, JobOutcome::Ok(10)));
    assert!(matches!(&got[1].outcome, JobOutcome::Err(e) if e.to_string() == "no luck"));
    assert!(matches!(&got[2].outcome, JobOutcome::Panicked(m) if m == "job 2 exploded"));
    let msg = match std::mem::replace(&mut got[2].outcome, JobOutcome::Cancelled) {
        JobOutcome::Panicked(m) => JobOutcome::<u64>::Panicked(m).into_result().unwrap_err(),
        _ => unreachable!(),
    };
    assert_eq!(msg.to_string(), "the job panicked: job 2 exploded");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_iterator_ends_its_group_with_a_panicked_result() {
    let (pool, mut results) = JobPool::<u64>::new(4);
    let items = (0u64..).map(|n| if n == 2 { panic!("bad item") } else { n });
    pool.map(|n| async move { Ok(n) }, items, 1, Some("fragile"))
        .unwrap();
    let all = results.flush().await;
    assert_eq!(ok_values(&all), [0, 1]);
    assert!(matches!(&all[2].outcome, JobOutcome::Panicked(m) if m == "bad item"));
    assert!(pool.groups().is_empty());
}

#[tokio::test(start_paused = true)]
async fn raising_the_limit_starts_waiting_jobs_at_once_and_lowering_cancels_nothing() {
    let (pool, mut results) = JobPool::<u64>::new(1);
    pool.apply(
        || async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(1)
        },
        6,
        None,
    )
    .unwrap();
    assert_eq!((pool.running(), pool.waiting()), (1, 5));
    pool.set_limit(4);
    assert_eq!(pool.limit(), 4);
    assert_eq!((pool.running(), pool.waiting()), (4, 2));
    pool.set_limit(0);
    assert_eq!(pool.running(), 4, "lowering the limit kills no job");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((pool.running(), pool.waiting()), (0, 2));
    pool.set_limit(2);
    let all = results.flush().await;
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|r| r.outcome.is_ok()));
}

#[tokio::test(start_paused = true)]
async fn cancel_a_waiting_job_a_running_job_and_all() {
    let (pool, mut results) = JobPool::<u64>::new(1);
    let forever = || async {
        std::future::pending::<()>().await;
        Ok(0)
    };
    let group = pool.apply(forever, 3, Some("stuck")).unwrap();
    let (running, waiting) = (group.jobs[0], group.jobs[2]);
    pool.cancel(waiting).unwrap();
    assert_eq!(pool.waiting(), 1);
    pool.cancel(running).unwrap();
    let first = results.next().await.unwrap();
    let second = results.next().await.unwrap();
    assert_eq!((first.id, second.id), (waiting, running));
    assert!(matches!(first.outcome, JobOutcome::Cancelled));
    assert!(matches!(second.outcome, JobOutcome::Cancelled));
    // The last one started when the running one was cancelled.
    tokio::task::yield_now().await;
    assert_eq!(pool.running(), 1);
    pool.apply(forever, 2, None).unwrap();
    assert_eq!(pool.cancel_all(), 3);
    let rest = results.flush().await;
    assert_eq!(rest.len(), 3);
    assert!(
        rest.iter()
            .all(|r| matches!(r.outcome, JobOutcome::Cancelled))
    );
    assert_eq!(pool.running() + pool.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn refusals_are_typed_and_read_as_sentences() {
    let (pool, _results) = JobPool::<u64>::new(1);
    let job = || async {
        std::future::pending::<()>().await;
        Ok(0)
    };
    let group = pool.apply(job, 1, Some("only")).unwrap();

    let err = pool.apply(job, 1, Some("only")).unwrap_err();
    assert_eq!(err, JobPoolError::DuplicateGroup("only".into()));
    assert_eq!(
        err.to_string(),
        "a group named `only` is already in the pool"
    );
    let err = pool.map(|n: u64| async move { Ok(n) }, 0..1u64, 1, Some("only"));
    assert_eq!(
        err.unwrap_err(),
        JobPoolError::DuplicateGroup("only".into())
    );

    let err = pool
        .map(|n: u64| async move { Ok(n) }, 0..1u64, 0, None)
        .unwrap_err();
    assert_eq!(err.to_string(), "a map needs a limit of at least 1");

    let err = pool.cancel_group("nope").unwrap_err();
    assert_eq!(err.to_string(), "no group named `nope` is in the pool");

    pool.cancel(group.jobs[0]).unwrap();
    pool.join().await;
    let err = pool.cancel(group.jobs[0]).unwrap_err();
    assert_eq!(err, JobPoolError::UnknownJob(group.jobs[0]));
    assert_eq!(
        err.to_string(),
        format!(
            "job {} is not running or waiting in the pool",
            group.jobs[0].get()
        )
    );
    // The finished group's name is free again.
    pool.apply(|| async { Ok(1) }, 1, Some("only")).unwrap();

    pool.pause();
    let err = pool.apply(job, 1, None).unwrap_err();
    assert_eq!(err, JobPoolError::Paused);
    assert_eq!(
        err.to_string(),
        "the pool is paused: it takes no new jobs until resumed"
    );
    pool.resume();
    pool.apply(|| async { Ok(1) }, 1, None).unwrap();

    pool.close();
    assert!(pool.is_closed());
    pool.resume();
    let err = pool
        .map(|n: u64| async move { Ok(n) }, 0..1u64, 1, None)
        .unwrap_err();
    assert_eq!(err, JobPoolError::Closed);
    assert_eq!(err.to_string(), "the pool is closed: it takes no new jobs");
}

#[tokio::test(start_paused = true)]
async fn a_generated_name_skips_names_in_use() {
    let (pool, _results) = JobPool::<u64>::new(0);
    pool.apply(|| async { Ok(0) }, 1, Some("apply-1")).unwrap();
    let group = pool.apply(|| async { Ok(0) }, 1, None).unwrap();
    assert_eq!(&*group.name, "apply-2");
    assert_eq!(&*pool.groups()[0], "apply-1");
}

#[tokio::test(start_paused = true)]
async fn adding_jobs_never_waits() {
    let (pool, mut results) = JobPool::<u64>::new(0);
    // Nothing runs (limit 0), and still the caller is never held up.
    pool.apply(|| async { Ok(1) }, 10_000, None).unwrap();
    pool.map(|n| async move { Ok(n) }, 0..10_000u64, 5, None)
        .unwrap();
    assert_eq!(pool.waiting(), 10_000);
    pool.set_limit(64);
    pool.close();
    let mut n = 0;
    while results.next().await.is_some() {
        n += 1;
    }
    assert_eq!(n, 20_000);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_pool_cancels_its_jobs() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let (pool, mut results) = JobPool::<u64>::new(2);
    let d = Arc::clone(&dropped);
    pool.apply(
        move || {
            let flag = Flag(Arc::clone(&d));
            async move {
                let _flag = flag;
                std::future::pending::<()>().await;
                Ok(0)
            }
        },
        3,
        None,
    )
    .unwrap();
    tokio::task::yield_now().await;
    drop(pool);
    // The results stream ends, and every job (running or waiting) was dropped.
    assert!(results.next().await.is_none());
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn close_ends_the_stream_after_the_last_result_and_join_waits() {
    let (pool, mut results) = JobPool::<u64>::new(2);
    pool.apply(
        || async {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Ok(1)
        },
        4,
        None,
    )
    .unwrap();
    pool.close();
    pool.join().await;
    assert_eq!(pool.running() + pool.waiting(), 0);
    let mut n = 0;
    while results.next().await.is_some() {
        n += 1;
    }
    assert_eq!(n, 4);
}

/// A thread that runs jobs in its own pool and handles their results as stream items.
struct Fetcher {
    pool: Option<JobPool<u64>>,
    sum: u64,
    seen: usize,
}

#[taskthread(up = u64)]
impl Fetcher {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let (pool, results) = JobPool::new(3);
        pool.map(|n: u64| async move { Ok(n * 10) }, 1..=5u64, 2, None)?;
        ctx.attach(results);
        self.pool = Some(pool);
        Ok(())
    }

    #[stream]
    async fn done(&mut self, ctx: &mut Ctx<Self>, result: JobResult<u64>) -> Result<()> {
        self.sum += result.outcome.into_result()?;
        self.seen += 1;
        if self.seen == 5 {
            ctx.up(self.sum).await?;
            ctx.stop();
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_thread_attaches_the_results_as_a_stream() {
    let mut root = taskthread::spawn(Fetcher {
        pool: None,
        sum: 0,
        seen: 0,
    });
    assert_eq!(root.recv().await, Some(150));
    assert!(matches!(root.join().await, Exit::Completed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_on_a_multi_thread_runtime_each_report_once() {
    let (pool, mut results) = JobPool::<u64>::new(8);
    pool.map(
        |n: u64| async move {
            tokio::task::yield_now().await;
            Ok(n)
        },
        0..2_000u64,
        6,
        None,
    )
    .unwrap();
    pool.apply(|| async { Ok(5_000) }, 100, None).unwrap();
    let all = results.flush().await;
    assert_eq!(all.len(), 2_100);
    let ids: HashSet<_> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 2_100);
}

/// How the results a thread handled ended, sent UP by its `exit` hook.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    ok: u64,
    err: u64,
    panicked: u64,
    cancelled: u64,
}

impl Tally {
    fn total(&self) -> u64 {
        self.ok + self.err + self.panicked + self.cancelled
    }
}

/// Jobs alive now (made and not yet dropped).
#[derive(Default)]
struct Alive(AtomicUsize);

struct AliveGuard(Arc<Alive>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Submits its planned jobs to a pool of its own (`JobPool::new_in`), each held for its time
/// then ending as planned (0: `Ok`, 1: `Err`, 2: a panic, 3: `Ok`); tallies the results it
/// handles and sends the tally UP from its `exit` hook.
struct Owner {
    plan: Vec<(Duration, u8)>,
    limit: usize,
    tally: Tally,
    alive: Arc<Alive>,
    pool: Arc<std::sync::Mutex<Option<JobPool<u64>>>>,
}

impl Owner {
    /// `jobs` jobs held `hold` times 1 to 3, ending in turn `Ok`, `Err`, a panic, `Ok`.
    fn new(jobs: u64, limit: usize, hold: Duration) -> Self {
        let plan = (0..jobs)
            .map(|i| (hold * (i % 3 + 1) as u32, (i % 4) as u8))
            .collect();
        Self::planned(plan, limit)
    }

    fn planned(plan: Vec<(Duration, u8)>, limit: usize) -> Self {
        Self {
            plan,
            limit,
            tally: Tally::default(),
            alive: Arc::default(),
            pool: Arc::default(),
        }
    }
}

#[taskthread(up = Tally)]
impl Owner {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let pool = JobPool::new_in(ctx, self.limit);
        for (i, &(hold, kind)) in self.plan.iter().enumerate() {
            self.alive.0.fetch_add(1, Ordering::SeqCst);
            let guard = AliveGuard(Arc::clone(&self.alive));
            pool.submit(async move {
                let _guard = guard;
                tokio::time::sleep(hold).await;
                match kind {
                    1 => Err(Error::msg("refused")),
                    2 => panic!("job {i} panicked"),
                    _ => Ok(i as u64),
                }
            })?;
        }
        *self.pool.lock().unwrap() = Some(pool);
        Ok(())
    }

    #[stream]
    async fn result(&mut self, _ctx: &mut Ctx<Self>, result: JobResult<u64>) -> Result<()> {
        match result.outcome {
            JobOutcome::Ok(_) => self.tally.ok += 1,
            JobOutcome::Err(_) => self.tally.err += 1,
            JobOutcome::Panicked(_) => self.tally.panicked += 1,
            JobOutcome::Cancelled => self.tally.cancelled += 1,
        }
        Ok(())
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx.up(self.tally).await;
    }
}

/// Waits until the pool is idle; `false` if it is not within a (virtual) day, so that a
/// pool left with work fails the test rather than hanging it.
async fn join_idle(pool: &JobPool<u64>) -> bool {
    tokio::time::timeout(Duration::from_secs(24 * 3600), pool.join())
        .await
        .is_ok()
}

fn owner_pool(owner: &Owner) -> Arc<std::sync::Mutex<Option<JobPool<u64>>>> {
    Arc::clone(&owner.pool)
}

fn take_pool(pool: &std::sync::Mutex<Option<JobPool<u64>>>) -> JobPool<u64> {
    pool.lock().unwrap().clone().expect("the pool was made")
}

#[tokio::test(start_paused = true)]
async fn a_stopping_owner_handles_every_result_before_exit() {
    let owner = Owner::new(50, 5, Duration::from_millis(10));
    let (shared, alive) = (owner_pool(&owner), Arc::clone(&owner.alive));
    let mut root = taskthread::spawn(owner);
    root.stop();
    let tally = root.recv().await.expect("exit sends the tally");
    assert!(matches!(root.join().await, Exit::Stopped));
    // The five running jobs ended on their own; the 45 waiting were cancelled.
    let expected = Tally {
        ok: 3,
        err: 1,
        panicked: 1,
        cancelled: 45,
    };
    assert_eq!(tally, expected);
    let pool = take_pool(&shared);
    let counts = pool.counts();
    assert_eq!(counts.submitted, 50);
    assert_eq!(counts.ended(), tally.total());
    assert_eq!(counts.cancelled, tally.cancelled);
    assert_eq!(alive.0.load(Ordering::SeqCst), 0);
    assert_eq!(pool.submit(async { Ok(1) }), Err(JobPoolError::Closed));
}

#[tokio::test(start_paused = true)]
async fn jobs_running_at_the_stop_deadline_are_cancelled_and_counted() {
    let owner = Owner::new(10, 3, Duration::from_secs(3600));
    let (shared, alive) = (owner_pool(&owner), Arc::clone(&owner.alive));
    let mut root = taskthread::spawn_with(
        owner,
        ChildOptions::new().stop_deadline(Duration::from_secs(1)),
    );
    root.stop();
    assert_eq!(root.recv().await, None, "aborted: no exit hook");
    assert!(matches!(root.join().await, Exit::Aborted { .. }));
    let pool = take_pool(&shared);
    assert!(join_idle(&pool).await, "the pool is left with work");
    let counts = pool.counts();
    assert_eq!((counts.submitted, counts.cancelled), (10, 10));
    assert_eq!(counts.ended(), counts.submitted);
    assert_eq!(
        alive.0.load(Ordering::SeqCst),
        0,
        "no job outlives its thread"
    );
}

#[tokio::test(start_paused = true)]
async fn an_aborted_owner_cancels_its_running_jobs() {
    let owner = Owner::new(20, 4, Duration::from_secs(3600));
    let (shared, alive) = (owner_pool(&owner), Arc::clone(&owner.alive));
    let root = taskthread::spawn(owner);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(matches!(root.abort().await, Exit::Aborted { .. }));
    let pool = take_pool(&shared);
    assert!(join_idle(&pool).await, "the pool is left with work");
    let counts = pool.counts();
    assert_eq!((counts.submitted, counts.cancelled), (20, 20));
    assert_eq!(
        alive.0.load(Ordering::SeqCst),
        0,
        "no job outlives its thread"
    );
}

#[tokio::test(start_paused = true)]
async fn the_owner_stopping_on_its_own_drains_its_pool() {
    // Jobs held 10, 20, 30 ms; stopped after 25 ms: some have ended, some run, most wait.
    let owner = Owner::new(30, 6, Duration::from_millis(10));
    let shared = owner_pool(&owner);
    let mut root = taskthread::spawn(owner);
    tokio::time::sleep(Duration::from_millis(25)).await;
    root.stop();
    let tally = root.recv().await.expect("exit sends the tally");
    assert!(matches!(root.join().await, Exit::Stopped));
    let counts = take_pool(&shared).counts();
    assert_eq!(tally.total(), 30);
    assert_eq!(counts.ended(), 30);
    assert!(tally.cancelled > 0 && tally.ok > 0);
}

#[tokio::test(start_paused = true)]
async fn submit_adds_one_job_in_a_group_of_its_own() {
    let (pool, mut results) = JobPool::<u64>::new(1);
    let first = pool.submit(async { Ok(1) }).unwrap();
    let second = pool.submit(async { Ok(2) }).unwrap();
    assert_ne!(first, second);
    assert_eq!(pool.groups().len(), 2);
    let done = results.flush().await;
    assert_eq!(ok_values(&done), [1, 2]);
    assert_eq!(
        done.iter().find(|r| r.id == first).unwrap().group.as_ref(),
        "submit-1"
    );
    pool.pause();
    assert_eq!(pool.submit(async { Ok(3) }), Err(JobPoolError::Paused));
}

/// How a proptest case ends the owner.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// A graceful stop, with this stop deadline (none: wait for every running job).
    Stop(Option<Duration>),
    /// An abort.
    Abort,
}

fn ending() -> impl proptest::strategy::Strategy<Value = Ending> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Ending::Stop(None)),
        (0u64..120).prop_map(|ms| Ending::Stop(Some(Duration::from_millis(ms)))),
        Just(Ending::Abort),
    ]
}

/// Runs one case: the owner's plan, its pool's limit, when it is ended and how. Checks that
/// every job submitted ends exactly once, that a thread whose `exit` ran had handled every
/// result by then, and that no job outlives the thread.
fn check_stop_accounts_for_every_job(
    plan: Vec<(Duration, u8)>,
    limit: usize,
    at: Duration,
    how: Ending,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let jobs = plan.len() as u64;
        let owner = Owner::planned(plan, limit);
        let (shared, alive) = (owner_pool(&owner), Arc::clone(&owner.alive));
        let options = match how {
            Ending::Stop(Some(deadline)) => ChildOptions::new().stop_deadline(deadline),
            _ => ChildOptions::new().no_stop_deadline(),
        };
        let mut root = taskthread::spawn_with(owner, options);
        tokio::time::sleep(at).await;
        let (exit, tally) = match how {
            Ending::Abort => (root.abort().await, None),
            Ending::Stop(_) => {
                root.stop();
                let tally = root.recv().await;
                (root.join().await, tally)
            }
        };
        let Some(pool) = shared.lock().unwrap().clone() else {
            // Aborted before `enter` ran: no job was submitted.
            let aborted = matches!((how, &exit), (Ending::Abort, Exit::Aborted { .. }));
            prop_assert!(aborted, "no pool only if aborted before `enter`: {}", exit);
            return Ok(());
        };
        prop_assert!(join_idle(&pool).await, "the pool is left with work");
        let counts = pool.counts();
        prop_assert_eq!(counts.submitted, jobs);
        prop_assert_eq!(counts.ended(), counts.submitted, "{:?}", counts);
        prop_assert_eq!(
            alive.0.load(Ordering::SeqCst),
            0,
            "no job outlives its thread"
        );
        match (how, tally) {
            (_, Some(tally)) => {
                prop_assert!(matches!(exit, Exit::Stopped), "{}", exit);
                let handled = (tally.ok, tally.err, tally.panicked, tally.cancelled);
                let ended = (
                    counts.succeeded,
                    counts.failed,
                    counts.panicked,
                    counts.cancelled,
                );
                prop_assert_eq!(handled, ended, "every result is handled before exit");
            }
            (Ending::Stop(None), None) => prop_assert!(false, "a stop with no deadline: {}", exit),
            (_, None) => prop_assert!(matches!(exit, Exit::Aborted { .. }), "{}", exit),
        }
        Ok(())
    })
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            proptest::test_runner::Config::default().cases
        } else {
            64
        },
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    #[test]
    fn every_job_is_accounted_for_at_any_stop(
        plan in proptest::collection::vec((0u64..100, 0u8..4), 0..40),
        limit in 0usize..6,
        at in 0u64..150,
        how in ending(),
    ) {
        let plan = plan.into_iter().map(|(ms, kind)| (Duration::from_millis(ms), kind)).collect();
        check_stop_accounts_for_every_job(plan, limit, Duration::from_millis(at), how)?;
    }
}

/// Runs `scenario` on an OS thread of its own, on a current-thread runtime, and fails if it
/// and the runtime's shutdown have not finished within a few seconds. This guards against
/// a deadlock, which would otherwise hang the test binary; the stuck thread is left behind.
fn finishes<F, Fut>(what: &str, scenario: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (done, finished) = std::sync::mpsc::channel();
    let scenario = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(scenario());
        // The tasks left are dropped with the runtime, and their jobs' reports run then:
        // inside the guard too.
        drop(runtime);
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(5)) {
        Ok(()) => scenario.join().expect("the scenario has finished"),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: not finished within 5 s, deadlocked")
        }
        // The scenario panicked (a failed assertion): fail with its panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = scenario.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// A value whose `Drop` uses the pool it belongs to, as an RAII guard that cancels "its"
/// jobs or logs the pool would: a pool that dropped it under its own lock would deadlock.
/// Counts the drops that got through.
struct UsesPool {
    pool: JobPool<u64>,
    dropped: Arc<AtomicUsize>,
}

impl UsesPool {
    fn new(pool: &JobPool<u64>, dropped: &Arc<AtomicUsize>) -> Self {
        Self {
            pool: pool.clone(),
            dropped: Arc::clone(dropped),
        }
    }
}

impl Drop for UsesPool {
    fn drop(&mut self) {
        let _ = format!("{:?}", self.pool);
        let _ = (self.pool.running(), self.pool.waiting(), self.pool.counts());
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A job that holds `guard` and ends with `Ok(1)`.
async fn holding(guard: UsesPool) -> Result<u64> {
    let _guard = guard;
    Ok(1)
}

/// A job that never ends.
fn forever() -> impl std::future::Future<Output = Result<u64>> + Send {
    std::future::pending()
}

#[test]
fn refused_jobs_and_sources_are_dropped_outside_the_pools_lock() {
    finishes("a refused submit, apply or map", || async {
        let dropped = Arc::new(AtomicUsize::new(0));
        let (pool, _results) = JobPool::<u64>::new(1);
        pool.apply(forever, 1, Some("taken")).unwrap();

        let guard = UsesPool::new(&pool, &dropped);
        let refused = pool.map(
            move |n| {
                let _ = &guard;
                async move { Ok(n) }
            },
            0..3u64,
            1,
            Some("taken"),
        );
        let refused = refused.unwrap_err();
        assert_eq!(refused, JobPoolError::DuplicateGroup("taken".into()));

        pool.pause();
        let refused = pool.apply(|| holding(UsesPool::new(&pool, &dropped)), 2, None);
        assert_eq!(refused.unwrap_err(), JobPoolError::Paused);

        pool.close();
        let refused = pool.submit(holding(UsesPool::new(&pool, &dropped)));
        assert_eq!(refused, Err(JobPoolError::Closed));
        assert_eq!(dropped.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn a_cancelled_waiting_job_is_dropped_outside_the_pools_lock() {
    finishes("cancel of a waiting job", || async {
        let dropped = Arc::new(AtomicUsize::new(0));
        let (pool, mut results) = JobPool::<u64>::new(1);
        pool.submit(forever()).unwrap();
        let waiting = pool
            .submit(holding(UsesPool::new(&pool, &dropped)))
            .unwrap();
        pool.cancel(waiting).unwrap();
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        let result = results.next().await.unwrap();
        assert_eq!(result.id, waiting);
        assert!(matches!(result.outcome, JobOutcome::Cancelled));
    });
}

#[test]
fn jobs_and_sources_cancelled_by_group_or_all_are_dropped_outside_the_pools_lock() {
    finishes("cancel_group and cancel_all", || async {
        let dropped = Arc::new(AtomicUsize::new(0));
        let (pool, _results) = JobPool::<u64>::new(1);
        pool.apply(forever, 1, Some("running")).unwrap();
        pool.apply(
            || holding(UsesPool::new(&pool, &dropped)),
            2,
            Some("waiting"),
        )
        .unwrap();
        let guard = UsesPool::new(&pool, &dropped);
        pool.map(
            move |n| {
                let _ = &guard;
                async move { Ok(n) }
            },
            0..3u64,
            1,
            Some("mapped"),
        )
        .unwrap();
        assert_eq!(pool.cancel_group("waiting"), Ok(2));
        assert_eq!(dropped.load(Ordering::SeqCst), 2);
        assert_eq!(pool.cancel_all(), 1, "the running job; the map pulled none");
        assert_eq!(dropped.load(Ordering::SeqCst), 3, "the map's source");
        pool.join().await;
        assert_eq!(pool.counts().ended(), pool.counts().submitted);
    });
}

/// Owns a pool (`JobPool::new_in`) of limit 0, so that every job it submits waits, each
/// holding a [`UsesPool`], as does its `map`'s function; sends UP the number of jobs
/// reported cancelled.
struct Holder {
    jobs: usize,
    dropped: Arc<AtomicUsize>,
    cancelled: usize,
}

#[taskthread(up = usize)]
impl Holder {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let pool = JobPool::new_in(ctx, 0);
        for _ in 0..self.jobs {
            pool.submit(holding(UsesPool::new(&pool, &self.dropped)))?;
        }
        let guard = UsesPool::new(&pool, &self.dropped);
        let mapped = move |n| {
            let _ = &guard;
            async move { Ok(n) }
        };
        pool.map(mapped, 0..3u64, 1, None)?;
        Ok(())
    }

    #[stream]
    async fn result(&mut self, _ctx: &mut Ctx<Self>, result: JobResult<u64>) -> Result<()> {
        if matches!(result.outcome, JobOutcome::Cancelled) {
            self.cancelled += 1;
        }
        Ok(())
    }

    async fn exit(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx.up(self.cancelled).await;
    }
}

#[test]
fn a_stopping_threads_waiting_jobs_are_dropped_outside_the_pools_lock() {
    finishes("the stop of a thread that owns a pool", || async {
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut root = taskthread::spawn(Holder {
            jobs: 2,
            dropped: Arc::clone(&dropped),
            cancelled: 0,
        });
        root.stop();
        assert_eq!(root.recv().await, Some(2));
        assert!(matches!(root.join().await, Exit::Stopped));
        assert_eq!(dropped.load(Ordering::SeqCst), 3, "two jobs and the source");
    });
}

#[test]
fn an_ended_map_source_is_dropped_outside_the_pools_lock() {
    crate::panics::hide_expected_panics("no more items");
    finishes("a map source that runs out or panics", || async {
        let dropped = Arc::new(AtomicUsize::new(0));
        let (pool, mut results) = JobPool::<u64>::new(4);
        let mapped = |guard: UsesPool| {
            move |n| {
                let _ = &guard;
                async move { Ok(n) }
            }
        };
        let guard = UsesPool::new(&pool, &dropped);
        pool.map(mapped(guard), 0..2u64, 1, Some("runs out"))
            .unwrap();
        let guard = UsesPool::new(&pool, &dropped);
        let items = (0..).map(|n| if n == 1 { panic!("no more items") } else { n });
        pool.map(mapped(guard), items, 1, Some("panics")).unwrap();
        pool.close();
        pool.join().await;
        assert_eq!(dropped.load(Ordering::SeqCst), 2);
        let all = results.flush().await;
        assert_eq!(ok_values(&all), [0, 0, 1]);
        assert!(
            all.iter()
                .any(|r| matches!(&r.outcome, JobOutcome::Panicked(m) if m == "no more items"))
        );
    });
}

#[test]
fn an_undeliverable_result_is_dropped_outside_the_pools_lock() {
    /// An output whose `Drop` uses the pool that made it.
    struct Output {
        pool: Arc<std::sync::OnceLock<JobPool<Output>>>,
        dropped: Arc<AtomicUsize>,
    }
    impl Drop for Output {
        fn drop(&mut self) {
            if let Some(pool) = self.pool.get() {
                let _ = (format!("{pool:?}"), pool.running());
                self.dropped.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    finishes("a result sent after the results were dropped", || async {
        let dropped = Arc::new(AtomicUsize::new(0));
        let cell = Arc::new(std::sync::OnceLock::new());
        let (pool, results) = JobPool::<Output>::new(1);
        let _ = cell.set(pool.clone());
        drop(results); // which discards every result
        let output = Output {
            pool: Arc::clone(&cell),
            dropped: Arc::clone(&dropped),
        };
        pool.submit(async move { Ok(output) }).unwrap();
        pool.join().await;
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_panicking_drop_of_a_cancelled_job_loses_no_other_job() {
    struct Boom;
    impl Drop for Boom {
        fn drop(&mut self) {
            panic!("boom as the job is dropped");
        }
    }
    crate::panics::hide_expected_panics("boom as the job is dropped");
    finishes("a cancel whose drop panics", || async {
        let (pool, mut results) = JobPool::<u64>::new(1);
        pool.apply(forever, 1, Some("running")).unwrap();
        let boom = || {
            let boom = Boom;
            async move {
                let _boom = boom;
                Ok(0)
            }
        };
        pool.apply(boom, 1, Some("a")).unwrap();
        pool.apply(|| async { Ok(1) }, 2, Some("b")).unwrap();
        let cancel = std::panic::AssertUnwindSafe(|| pool.cancel_group("a"));
        assert!(std::panic::catch_unwind(cancel).is_err());
        assert_eq!(pool.waiting(), 2, "group b's jobs still wait");
        assert_eq!(
            pool.groups().len(),
            2,
            "group a is gone: {:?}",
            pool.groups()
        );
        assert_eq!(pool.cancel_group("b"), Ok(2));
        assert_eq!(pool.cancel_all(), 1);
        pool.join().await;
        let counts = pool.counts();
        assert_eq!((counts.submitted, counts.cancelled), (4, 4));
        assert_eq!(results.flush().await.len(), 4);
        pool.apply(|| async { Ok(2) }, 1, Some("a")).unwrap();
    });
}

#[test]
fn a_map_panic_payload_is_dropped_outside_the_pools_lock() {
    finishes(
        "a map whose function panics with a value that uses the pool",
        || async {
            let dropped = Arc::new(AtomicUsize::new(0));
            let (pool, mut results) = JobPool::<u64>::new(1);
            let mut payload = Some(UsesPool::new(&pool, &dropped));
            let mapped = move |n| {
                if let Some(guard) = payload.take() {
                    std::panic::panic_any(guard);
                }
                async move { Ok(n) }
            };
            pool.map(mapped, 0..3u64, 1, Some("panics")).unwrap();
            pool.join().await;
            assert_eq!(dropped.load(Ordering::SeqCst), 1);
            let all = results.flush().await;
            assert_eq!(all.len(), 1);
            let message = "a panic with a non-string payload";
            assert!(matches!(&all[0].outcome, JobOutcome::Panicked(m) if m == message));
            assert!(pool.groups().is_empty(), "the group ended with its source");
        },
    );
}

/// Whether `join()` is ready at once.
fn join_is_ready<T: Send + 'static, E: Send + 'static>(pool: &JobPool<T, E>) -> bool {
    let join = std::pin::pin!(pool.join());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::future::Future::poll(join, &mut cx).is_ready()
}

/// Looks at `join()` from inside its own `Drop`: ready there, `join()` could return while a
/// value the pool dropped was still alive. Counts its drops, and the early joins it saw.
struct SeesJoin {
    pool: JobPool<u64>,
    dropped: Arc<AtomicUsize>,
    early: Arc<AtomicBool>,
}

impl Drop for SeesJoin {
    fn drop(&mut self) {
        if join_is_ready(&self.pool) {
            self.early.store(true, Ordering::SeqCst);
        }
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn join_returns_once_what_the_pool_drops_is_dropped() {
    /// An output that looks at `join()` of the pool that made it as it is dropped.
    struct Output {
        pool: Arc<std::sync::OnceLock<JobPool<Output>>>,
        early: Arc<AtomicBool>,
    }
    impl Drop for Output {
        fn drop(&mut self) {
            if self.pool.get().is_some_and(join_is_ready) {
                self.early.store(true, Ordering::SeqCst);
            }
        }
    }
    finishes("join and the values the pool drops", || async {
        let dropped = Arc::new(AtomicUsize::new(0));
        let early = Arc::new(AtomicBool::new(false));
        let sees_join = |pool: &JobPool<u64>| SeesJoin {
            pool: pool.clone(),
            dropped: Arc::clone(&dropped),
            early: Arc::clone(&early),
        };

        // A map source that runs out.
        let (pool, _results) = JobPool::<u64>::new(1);
        let guard = sees_join(&pool);
        let mapped = move |n| {
            let _ = &guard;
            async move { Ok(n) }
        };
        pool.map(mapped, 0..1u64, 1, None).unwrap();
        pool.join().await;
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        assert!(
            !early.load(Ordering::SeqCst),
            "join() ready with a source alive"
        );

        // A waiting job cancelled (a limit of 0 keeps it waiting).
        let (pool, _results) = JobPool::<u64>::new(0);
        let guard = sees_join(&pool);
        let waiting = pool
            .submit(async move {
                let _guard = guard;
                Ok(1)
            })
            .unwrap();
        pool.cancel(waiting).unwrap();
        assert_eq!(dropped.load(Ordering::SeqCst), 2);
        assert!(
            !early.load(Ordering::SeqCst),
            "join() ready with a job alive"
        );

        // A job started, then cancelled before its task first ran.
        let (pool, _results) = JobPool::<u64>::new(1);
        let guard = sees_join(&pool);
        let started = pool
            .submit(async move {
                let _guard = guard;
                Ok(1)
            })
            .unwrap();
        pool.cancel(started).unwrap();
        pool.join().await;
        assert_eq!(dropped.load(Ordering::SeqCst), 3);
        assert!(
            !early.load(Ordering::SeqCst),
            "join() ready with a cancelled job alive"
        );

        // An output no one will receive.
        let cell = Arc::new(std::sync::OnceLock::new());
        let (pool, results) = JobPool::<Output>::new(1);
        let _ = cell.set(pool.clone());
        drop(results);
        let output = Output {
            pool: Arc::clone(&cell),
            early: Arc::clone(&early),
        };
        pool.submit(async move { Ok(output) }).unwrap();
        pool.join().await;
        assert_eq!(pool.counts().succeeded, 1);
        assert!(
            !early.load(Ordering::SeqCst),
            "join() ready with an output alive"
        );
    });
}

#[test]
fn the_results_stream_ends_once_what_the_pool_drops_is_dropped() {
    /// A `map` function that, as it is dropped, cancels the last job of the pool and looks
    /// at the results stream: ended there, it ended with this function alive.
    struct Probe {
        pool: JobPool<u64>,
        results: Arc<std::sync::Mutex<taskthread::jobs::JobResults<u64>>>,
        early: Arc<AtomicBool>,
    }
    impl Drop for Probe {
        fn drop(&mut self) {
            assert_eq!(self.pool.cancel_group("waits"), Ok(1));
            let mut results = self.results.lock().unwrap();
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            loop {
                let next = std::pin::pin!(results.next());
                match std::future::Future::poll(next, &mut cx) {
                    std::task::Poll::Ready(Some(_)) => continue,
                    std::task::Poll::Ready(None) => self.early.store(true, Ordering::SeqCst),
                    std::task::Poll::Pending => {}
                }
                break;
            }
        }
    }
    finishes(
        "the results stream and the values the pool drops",
        || async {
            let early = Arc::new(AtomicBool::new(false));
            // A limit of 0: the map's source and the job both wait.
            let (pool, results) = JobPool::<u64>::new(0);
            let results = Arc::new(std::sync::Mutex::new(results));
            let probe = Probe {
                pool: pool.clone(),
                results: Arc::clone(&results),
                early: Arc::clone(&early),
            };
            let mapped = move |n| {
                let _ = &probe;
                async move { Ok(n) }
            };
            pool.map(mapped, 0..1u64, 1, Some("mapped")).unwrap();
            pool.apply(|| async { Ok(1) }, 1, Some("waits")).unwrap();
            pool.close();
            assert_eq!(pool.cancel_group("mapped"), Ok(0));
            assert!(
                !early.load(Ordering::SeqCst),
                "the stream ended with a source alive"
            );
            let results = Arc::try_unwrap(results).expect("the source is dropped");
            let mut results = results.into_inner().unwrap();
            assert!(
                results.next().await.is_none(),
                "the stream ends after the drop"
            );
        },
    );
}

#[test]
fn an_apply_of_no_job_leaves_no_group() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let (pool, _results) = JobPool::<u64>::new(1);
    let group = pool.apply(|| async { Ok(1) }, 0, Some("none")).unwrap();
    assert!(group.jobs.is_empty());
    assert!(pool.groups().is_empty());
    assert!(pool.apply(|| async { Ok(1) }, 0, Some("none")).is_ok());
    assert_eq!(
        pool.cancel_group("none"),
        Err(JobPoolError::UnknownGroup("none".into()))
    );
}
