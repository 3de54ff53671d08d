//! `WorkerPool`: every job handled exactly once by one worker, backpressure, asks through
//! the pool, UP messages reaching the pool's parent, resizing (also while busy, losing no
//! job), and every refused command.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::pool::{PoolError, PoolStatus, WorkerPool};
use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
use taskthread::{ThreadState, TrySendError};

/// A job: its number, and how long it takes.
#[derive(Debug, Clone, Copy)]
struct Job(u64, Duration);
#[derive(Debug)]
struct Square(u64);
#[derive(Debug)]
struct Fail;

/// Records which worker handled which job, and sends the job's number UP.
struct Worker {
    seen: Arc<Mutex<Vec<(u64, String)>>>,
    name: String,
}

#[taskthread(up = u64)]
impl Worker {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.name = ctx.name().to_owned();
        Ok(())
    }

    #[down]
    async fn job(&mut self, ctx: &mut Ctx<Self>, job: Job) -> Result<()> {
        tokio::time::sleep(job.1).await;
        self.seen.lock().unwrap().push((job.0, self.name.clone()));
        ctx.up(job.0).await?;
        Ok(())
    }

    #[down]
    async fn square(&mut self, _ctx: &mut Ctx<Self>, q: Square) -> Result<u64> {
        Ok(q.0 * q.0)
    }

    #[down]
    async fn fail(&mut self, _ctx: &mut Ctx<Self>, _f: Fail) -> Result<()> {
        Err(Error::msg("worker gave up"))
    }
}

type Seen = Arc<Mutex<Vec<(u64, String)>>>;

fn pool(seen: &Seen) -> WorkerPool<Worker> {
    let seen = Arc::clone(seen);
    WorkerPool::new(move || Worker {
        seen: Arc::clone(&seen),
        name: String::new(),
    })
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

fn counts(seen: &Seen) -> HashMap<u64, usize> {
    let mut counts = HashMap::new();
    for (job, _) in seen.lock().unwrap().iter() {
        *counts.entry(*job).or_default() += 1;
    }
    counts
}

#[tokio::test(start_paused = true)]
async fn every_job_is_handled_once_and_its_up_message_reaches_the_parent() {
    let seen = Seen::default();
    let mut root = taskthread::spawn(pool(&seen).size(4));
    for n in 0..100 {
        root.send(Job(n, Duration::from_millis(n % 7)))
            .await
            .unwrap();
    }
    let mut ups = Vec::new();
    for _ in 0..100 {
        ups.push(root.recv().await.unwrap());
    }
    ups.sort_unstable();
    assert_eq!(ups, (0..100).collect::<Vec<_>>());
    let counts = counts(&seen);
    assert_eq!(counts.len(), 100);
    assert!(counts.values().all(|&c| c == 1));
    // The work was shared: more than one worker handled jobs.
    let workers: std::collections::HashSet<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, w)| w.clone())
        .collect();
    assert_eq!(workers.len(), 4);
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn asks_go_through_the_pool_to_a_worker() {
    let seen = Seen::default();
    let root = taskthread::spawn(pool(&seen).size(2));
    for n in 1..=10 {
        assert_eq!(root.ask(Square(n)).await.unwrap(), n * n);
    }
    root.stop();
    root.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_workers_are_the_pools_children_in_the_snapshot() {
    let seen = Seen::default();
    let root = taskthread::spawn(pool(&seen).size(3));
    let handle = root.child_ref().pool();
    handle.start(0).await.unwrap();
    let snapshot = root.snapshot();
    assert_eq!(snapshot.type_name, "WorkerPool");
    assert_eq!(snapshot.down_types, &["Job", "Square", "Fail"]);
    assert_eq!(snapshot.up_type, Some("u64"));
    let names: Vec<_> = snapshot.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["worker", "worker-2", "worker-3"]);
    assert!(snapshot.children.iter().all(|c| c.type_name == "Worker"));
    root.stop();
    root.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_full_pool_applies_backpressure() {
    let seen = Seen::default();
    // One worker; the pool's own queue holds 2.
    let root = taskthread::spawn_with(pool(&seen).size(1), ChildOptions::new().capacity(2));
    let long = Duration::from_secs(3600);
    let mut accepted = 0;
    loop {
        match root.try_send(Job(accepted, long)) {
            Ok(()) => accepted += 1,
            Err(TrySendError::Full(job)) => {
                assert_eq!(job.0, accepted);
                break;
            }
            Err(TrySendError::Ended(_)) => panic!("the pool ended"),
        }
        // Let the pool hand the job on, if it can.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(accepted < 100, "no backpressure");
    }
    // One being handled (a worker is given a job only once it has finished the last), one
    // held by the pool, two in its queue.
    assert_eq!(accepted, 4);
    // A worker more takes the held job and the next one: room again.
    root.child_ref().pool().start(1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    root.try_send(Job(accepted, long)).unwrap();
    drop(root.abort().await);
}

#[tokio::test(start_paused = true)]
async fn resizing_while_busy_loses_no_job() {
    let seen = Seen::default();
    let mut root = taskthread::spawn(pool(&seen).size(3).max(10));
    let handle = root.child_ref().pool();
    let sender = root.child_ref();
    let total = 400u64;
    let feed = tokio::spawn(async move {
        for n in 0..total {
            sender
                .send(Job(n, Duration::from_millis(1 + n % 5)))
                .await
                .unwrap();
        }
    });
    let resize = tokio::spawn({
        let handle = handle.clone();
        async move {
            for round in 0..40u64 {
                let result = match round % 4 {
                    0 => handle.start(3).await,
                    1 => handle.stop(2).await,
                    2 => handle.resize(1).await,
                    _ => handle.resize(6).await,
                };
                result.unwrap();
                tokio::time::sleep(Duration::from_millis(7)).await;
            }
        }
    });
    let mut ups = 0;
    while ups < total {
        root.recv().await.unwrap();
        ups += 1;
    }
    feed.await.unwrap();
    resize.await.unwrap();
    let counts = counts(&seen);
    assert_eq!(counts.len() as u64, total, "every job was handled");
    assert!(counts.values().all(|&c| c == 1), "no job was handled twice");
    // Many workers were started and stopped on the way.
    let workers: std::collections::HashSet<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, w)| w.clone())
        .collect();
    assert!(workers.len() > 6, "{workers:?}");
    assert_eq!(handle.running(), 6);
    root.stop();
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn stopping_workers_finish_the_jobs_they_hold() {
    let seen = Seen::default();
    let mut root = taskthread::spawn(pool(&seen).size(4));
    let handle = root.child_ref().pool();
    for n in 0..8 {
        root.send(Job(n, Duration::from_secs(1))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    // Every worker holds one job: stopping all four still handles those four.
    let status = handle.stop(4).await.unwrap();
    assert_eq!(status.running, 0);
    for _ in 0..4 {
        root.recv().await.unwrap();
    }
    assert_eq!(counts(&seen).len(), 4);
    // The other four waited in the pool, and go to the next worker.
    handle.start(1).await.unwrap();
    for _ in 0..4 {
        root.recv().await.unwrap();
    }
    assert_eq!(counts(&seen).len(), 8);
    assert!(counts(&seen).values().all(|&c| c == 1));
    root.stop();
    root.join().await.into_result().unwrap();
}

/// What a `Brittle` worker's task gives it, to fail on.
struct Cracked;

/// A worker whose jobs start a task; the task's result fails it once `fail` is opened.
struct Brittle {
    started: Arc<tokio::sync::Notify>,
    fail: Arc<tokio::sync::Semaphore>,
}

#[taskthread]
impl Brittle {
    #[down]
    async fn job(&mut self, ctx: &mut Ctx<Self>, _job: Job) {
        ctx.spawn_task(async { Cracked });
    }

    #[stream]
    async fn cracked(&mut self, _ctx: &mut Ctx<Self>, _c: Cracked) -> Result<()> {
        self.started.notify_one();
        let _ = self.fail.acquire().await;
        Err(Error::msg("cracked"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_fails_with_a_job_queued_leaves_no_task_behind() {
    let started = Arc::new(tokio::sync::Notify::new());
    let fail = Arc::new(tokio::sync::Semaphore::new(0));
    let (s, f) = (Arc::clone(&started), Arc::clone(&fail));
    let root = taskthread::spawn(WorkerPool::new(move || Brittle {
        started: Arc::clone(&s),
        fail: Arc::clone(&f),
    }));
    let handle = root.child_ref().pool();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let start = alive_tasks();
    // The first job is done at once; its task's result holds the worker in a handler.
    root.send(Job(1, Duration::ZERO)).await.unwrap();
    started.notified().await;
    // Free as far as the pool knows: the second job is queued, not started.
    root.send(Job(2, Duration::ZERO)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    fail.add_permits(1);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(handle.running(), 0, "the worker failed");
    assert_eq!(handle.resize(1).await.unwrap().running, 1);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        alive_tasks(),
        start,
        "nothing waits for the failed worker's queued job"
    );
    root.stop();
    root.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_worker_aborted_with_a_job_in_hand_leaves_no_task_behind() {
    let seen = Seen::default();
    // The workers inherit the pool's stop deadline.
    let root = taskthread::spawn_with(
        pool(&seen).size(1),
        ChildOptions::new().stop_deadline(Duration::from_secs(1)),
    );
    let handle = root.child_ref().pool();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let start = alive_tasks();
    for n in 0..5 {
        root.send(Job(n, Duration::from_secs(3600))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Stopped with the job in hand, then aborted at its deadline.
        assert_eq!(handle.resize(0).await.unwrap().running, 0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(handle.resize(1).await.unwrap().running, 1);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        alive_tasks(),
        start,
        "nothing waits for the aborted workers' jobs"
    );
    assert!(seen.lock().unwrap().is_empty());
    root.stop();
    root.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn start_stop_and_resize_report_the_new_size() {
    let seen = Seen::default();
    let root = taskthread::spawn(pool(&seen).size(2).max(5));
    let handle = root.child_ref().pool();
    assert_eq!(handle.path(), root.child_ref().path());
    let status = handle.start(2).await.unwrap();
    assert_eq!((status.running, status.max), (4, 5));
    assert_eq!(handle.stop(3).await.unwrap().running, 1);
    assert_eq!(handle.resize(5).await.unwrap().running, 5);
    assert_eq!(handle.resize(0).await.unwrap().running, 0);
    assert_eq!(handle.running(), 0);
    assert_eq!(handle.status().max, 5);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(root.snapshot().children.is_empty());
    root.stop();
    root.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn refused_commands_say_why() {
    let seen = Seen::default();
    let root = taskthread::spawn(pool(&seen).size(2).max(3));
    let handle = root.child_ref().pool();
    let path = root.child_ref().path().to_owned();

    let err = handle.start(2).await.unwrap_err();
    assert_eq!(
        err,
        PoolError::TooMany {
            pool: path.clone(),
            requested: 4,
            running: 2,
            max: 3
        }
    );
    assert_eq!(
        err.to_string(),
        format!("pool `{path}` may run at most 3 workers: cannot run 4 (2 running)")
    );
    let err = handle.stop(3).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("pool `{path}` runs 2 workers: cannot stop 3")
    );
    // Past what a count can hold: refused like any other, and the pool goes on.
    let err = handle.start(usize::MAX).await.unwrap_err();
    assert_eq!(
        err,
        PoolError::TooMany {
            pool: path.clone(),
            requested: usize::MAX,
            running: 2,
            max: 3
        }
    );
    assert_eq!(handle.running(), 2);
    // Counts of one read in the singular.
    let one = PoolError::TooMany {
        pool: path.clone(),
        requested: 2,
        running: 1,
        max: 1,
    };
    assert_eq!(
        one.to_string(),
        format!("pool `{path}` may run at most 1 worker: cannot run 2 (1 running)")
    );
    let one = PoolError::TooFew {
        pool: path.clone(),
        requested: 2,
        running: 1,
    };
    assert_eq!(
        one.to_string(),
        format!("pool `{path}` runs 1 worker: cannot stop 2")
    );
    assert!(matches!(
        handle.resize(4).await,
        Err(PoolError::TooMany { requested: 4, .. })
    ));
    // Nothing changed.
    assert_eq!(handle.running(), 2);

    root.stop();
    root.join().await.into_result().unwrap();
    assert!(handle.is_ended());
    let err = handle.start(1).await.unwrap_err();
    assert_eq!(
        err,
        PoolError::Ended {
            pool: Some(path.clone())
        }
    );
    assert_eq!(err.to_string(), format!("pool `{path}` has ended"));
    assert_eq!(handle.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_size_over_the_maximum_starts_the_maximum() {
    let seen = Seen::default();
    let root = taskthread::spawn(pool(&seen).size(10).max(3));
    let handle = root.child_ref().pool();
    assert_eq!(
        handle.start(0).await.unwrap(),
        handle.status(),
        "start(0) answers the status"
    );
    assert_eq!(handle.running(), 3);
    root.stop();
    root.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_pool_without_workers_holds_jobs_until_one_starts() {
    let seen = Seen::default();
    let mut root = taskthread::spawn(pool(&seen).size(0));
    let handle = root.child_ref().pool();
    root.send(Job(1, Duration::ZERO)).await.unwrap();
    root.send(Job(2, Duration::ZERO)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(seen.lock().unwrap().is_empty());
    // The pool is waiting for a worker, and still takes commands.
    assert_eq!(handle.start(1).await.unwrap().running, 1);
    assert_eq!(root.recv().await, Some(1));
    assert_eq!(root.recv().await, Some(2));
    root.stop();
    root.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_pool_stopping_without_workers_starts_one_to_finish_its_jobs() {
    let seen = Seen::default();
    let mut root = taskthread::spawn(pool(&seen).size(0));
    for n in 0..3 {
        root.send(Job(n, Duration::ZERO)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    root.stop();
    let mut ups = Vec::new();
    while let Some(n) = root.recv().await {
        ups.push(n);
    }
    assert_eq!(ups, [0, 1, 2]);
    assert!(matches!(root.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn a_failed_worker_is_not_replaced() {
    let seen = Seen::default();
    let root = taskthread::spawn(pool(&seen).size(2));
    let handle = root.child_ref().pool();
    root.send(Fail).await.unwrap();
    while handle.running() != 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(root.snapshot().children.len(), 1);
    // The pool still works with the other one, and grows again on request.
    assert_eq!(root.ask(Square(3)).await.unwrap(), 9);
    assert_eq!(handle.start(1).await.unwrap().running, 2);
    root.stop();
    root.join().await.into_result().unwrap();
}

/// A parent that forwards its pool's UP messages to its own handle.
struct Boss {
    seen: Seen,
    pool: Option<ChildRef<WorkerPool<Worker>>>,
    pool_id: Option<ChildId>,
}

#[taskthread(up = (ChildId, u64))]
impl Boss {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let pool = ctx.spawn_with(pool(&self.seen).size(2), ChildOptions::new().name("pool"));
        self.pool_id = Some(pool.id());
        for n in 0..5 {
            pool.send(Job(n, Duration::ZERO)).await?;
        }
        self.pool = Some(pool);
        Ok(())
    }

    #[up]
    async fn done(&mut self, ctx: &mut Ctx<Self>, from: ChildId, n: u64) -> Result<()> {
        ctx.up((from, n)).await?;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn up_messages_reach_the_pools_parent_from_the_pool() {
    let mut root = taskthread::spawn(Boss {
        seen: Seen::default(),
        pool: None,
        pool_id: None,
    });
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(root.recv().await.unwrap());
    }
    let pool = root.snapshot().children[0].clone();
    assert_eq!(pool.path, "boss/pool");
    assert!(got.iter().all(|(from, _)| *from == pool.id));
    let mut jobs: Vec<_> = got.iter().map(|(_, n)| *n).collect();
    jobs.sort_unstable();
    assert_eq!(jobs, [0, 1, 2, 3, 4]);
    root.stop();
    root.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stopped_pool_stops_its_workers_and_refuses_jobs() {
    let seen = Seen::default();
    let root = taskthread::spawn(pool(&seen).size(2));
    let pool = root.child_ref();
    // The counts are published by the pool once it runs: a command waits for that.
    let status: PoolStatus = pool.pool().start(0).await.unwrap();
    assert_eq!(status.running, 2);
    assert_eq!(pool.pool().status(), status);
    root.stop();
    root.join().await.into_result().unwrap();
    assert_eq!(pool.state(), ThreadState::Exited);
    assert!(pool.send(Job(0, Duration::ZERO)).await.is_err());
}

/// Fails when told to, restarting its restart group.
#[derive(Default)]
struct Fragile;

#[taskthread]
impl Fragile {
    #[down]
    async fn fail(&mut self, _ctx: &mut Ctx<Self>, _f: Fail) -> Result<()> {
        Err(Error::msg("fragile failed"))
    }
}

/// A supervised pool in a restart group with `Fragile`.
struct Supervisor {
    seen: Seen,
    pool: Option<ChildRef<WorkerPool<Worker>>>,
    fragile: Option<ChildRef<Fragile>>,
}

#[derive(Debug)]
struct Parts;

#[taskthread]
impl Supervisor {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let group = taskthread::supervise::RestartGroup::new();
        let policy = || RestartPolicy::on_failure().group(&group);
        let seen = Arc::clone(&self.seen);
        self.pool = Some(ctx.supervise(move || pool(&seen).size(2), policy()));
        self.fragile = Some(ctx.supervise(Fragile::default, policy()));
        Ok(())
    }

    #[down]
    async fn parts(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _q: Parts,
    ) -> Result<(ChildRef<WorkerPool<Worker>>, ChildRef<Fragile>)> {
        Ok((self.pool.clone().unwrap(), self.fragile.clone().unwrap()))
    }

    #[up]
    async fn done(&mut self, _ctx: &mut Ctx<Self>, _from: ChildId, _n: u64) -> Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_supervised_pool_takes_commands_again_after_a_restart() {
    let root = taskthread::spawn(Supervisor {
        seen: Seen::default(),
        pool: None,
        fragile: None,
    });
    let (pool, fragile) = root.ask(Parts).await.unwrap();
    let handle = pool.pool();
    assert_eq!(handle.start(1).await.unwrap().running, 3);
    fragile.send(Fail).await.unwrap();
    while root.snapshot().children[0].restarts == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The new life starts with its configured size, and takes commands.
    assert_eq!(handle.start(2).await.unwrap().running, 4);
    assert_eq!(pool.ask(Square(4)).await.unwrap(), 16);
    root.stop();
    root.join().await.into_result().unwrap();
    assert!(handle.is_ended());
}

#[tokio::test(start_paused = true)]
async fn a_job_never_waits_behind_a_busy_worker_while_another_is_idle() {
    let seen = Seen::default();
    let mut root = taskthread::spawn(pool(&seen).size(2));
    // One long job occupies a worker; the short ones must all go to the other, one after
    // the other, rather than wait in the busy worker's queue.
    root.send(Job(0, Duration::from_secs(100))).await.unwrap();
    for n in 1..=3 {
        root.send(Job(n, Duration::ZERO)).await.unwrap();
    }
    // Their UP messages come before the long job's: none waited for it.
    for n in 1..=3 {
        assert_eq!(root.recv().await, Some(n));
    }
    assert_eq!(root.recv().await, Some(0));
    let seen = seen.lock().unwrap().clone();
    let worker_of = |job: u64| seen.iter().find(|(j, _)| *j == job).unwrap().1.clone();
    assert_ne!(worker_of(0), worker_of(1));
    assert_eq!(worker_of(1), worker_of(2));
    assert_eq!(worker_of(2), worker_of(3));
    root.stop();
    root.join().await.into_result().unwrap();
}
