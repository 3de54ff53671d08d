//! Supervision: `ctx.supervise(factory, policy)` restarts a child on failure (or always),
//! with backoff, keeps its address and its queue across restarts, escalates past the
//! restart limit, and restarts groups of siblings together. Paused clock throughout.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
use taskthread::supervise::{Restart, RestartGroup};
use tokio::time::Instant;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// What a worker is told to do.
#[derive(Debug, Clone, Copy)]
enum Job {
    Work(u32),
    Fail,
    Panic,
    Finish,
}

/// Everything the workers of one test share: how many lives were started, what was done.
#[derive(Default)]
struct Shared {
    lives: AtomicU32,
    done: Mutex<Vec<(String, u32)>>,
}

struct Worker {
    life: u32,
    shared: Arc<Shared>,
}

fn factory(shared: &Arc<Shared>) -> impl FnMut() -> Worker + Send + 'static {
    let shared = shared.clone();
    move || Worker {
        life: shared.lives.fetch_add(1, Ordering::SeqCst) + 1,
        shared: shared.clone(),
    }
}

#[taskthread]
impl Worker {
    #[down]
    async fn job(&mut self, ctx: &mut Ctx<Self>, job: Job) -> Result<()> {
        match job {
            Job::Work(n) => {
                let who = format!("{} life {}", ctx.name(), self.life);
                self.shared.done.lock().unwrap().push((who, n));
                Ok(())
            }
            Job::Fail => Err(Error::msg("disk full")),
            Job::Panic => panic!("bad state"),
            Job::Finish => {
                ctx.stop();
                Ok(())
            }
        }
    }
}

/// Supervises workers and records the exits it hears of.
#[derive(Default)]
struct Boss {
    exits: Arc<Mutex<Vec<String>>>,
}

struct Hire {
    shared: Arc<Shared>,
    policy: RestartPolicy,
    name: &'static str,
}

#[taskthread]
impl Boss {
    #[down]
    async fn hire(&mut self, ctx: &mut Ctx<Self>, hire: Hire) -> Result<ChildRef<Worker>> {
        Ok(ctx.supervise_with(
            factory(&hire.shared),
            hire.policy,
            ChildOptions::new().name(hire.name),
        ))
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        self.exits.lock().unwrap().push(exit.to_string());
        Ok(())
    }
}

fn boss() -> (Handle<Boss>, Arc<Mutex<Vec<String>>>) {
    let exits = Arc::new(Mutex::new(Vec::new()));
    let boss = Boss {
        exits: exits.clone(),
    };
    (taskthread::spawn(boss), exits)
}

async fn hire(
    boss: &Handle<Boss>,
    shared: &Arc<Shared>,
    policy: RestartPolicy,
    name: &'static str,
) -> ChildRef<Worker> {
    boss.ask(Hire {
        shared: shared.clone(),
        policy,
        name,
    })
    .await
    .unwrap()
}

/// Lets the tree run until nothing is left to do now (timers not included).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn done(shared: &Shared) -> Vec<(String, u32)> {
    shared.done.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn a_failed_child_restarts_with_the_same_address_and_its_queue() {
    let baseline = alive_tasks();
    let (boss, exits) = boss();
    let shared = Arc::new(Shared::default());
    let worker = hire(&boss, &shared, RestartPolicy::on_failure(), "w").await;
    let id = worker.id();
    // Queued behind the failure: handled by the next life, not lost.
    worker.send(Job::Work(1)).await.unwrap();
    worker.send(Job::Fail).await.unwrap();
    worker.send(Job::Work(2)).await.unwrap();
    worker.send(Job::Panic).await.unwrap();
    worker.send(Job::Work(3)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    settle().await;

    assert_eq!(shared.lives.load(Ordering::SeqCst), 3);
    assert_eq!(
        done(&shared),
        [
            ("w life 1".to_owned(), 1),
            ("w life 2".to_owned(), 2),
            ("w life 3".to_owned(), 3)
        ]
    );
    // The same address reaches the third life.
    assert_eq!(worker.id(), id);
    worker.send(Job::Work(4)).await.unwrap();
    settle().await;
    assert_eq!(done(&shared).last().unwrap(), &("w life 3".to_owned(), 4));
    let snapshot = boss.snapshot();
    let w = snapshot.find("boss/w").unwrap();
    assert_eq!(w.restarts, 2);
    assert!(snapshot.to_string().contains("restarts 2"), "{snapshot}");
    // Restarts are not exits: the parent has heard of none.
    assert!(exits.lock().unwrap().is_empty());

    // A stop from outside is final.
    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
    assert_eq!(*exits.lock().unwrap(), ["`boss/w` (Worker) stopped"]);
    assert_eq!(shared.lives.load(Ordering::SeqCst), 3);
    assert_eq!(alive_tasks(), baseline);
}

#[tokio::test(start_paused = true)]
async fn restarts_wait_with_exponential_backoff_and_jitter() {
    let (boss, _exits) = boss();
    let shared = Arc::new(Shared::default());
    let policy = RestartPolicy::on_failure()
        .backoff(Duration::from_secs(1), Duration::from_secs(4))
        .max_restarts(10, Duration::from_secs(3600));
    let worker = hire(&boss, &shared, policy, "w").await;
    let mut waits = Vec::new();
    for life in 1..=4u32 {
        worker.send(Job::Fail).await.unwrap();
        settle().await;
        let failed_at = Instant::now();
        while shared.lives.load(Ordering::SeqCst) == life {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        waits.push(failed_at.elapsed());
    }
    // Each wait is the full backoff shortened by at most a half: 1 s, 2 s, 4 s, then the
    // 4 s cap (to the 10 ms step of the polling above).
    let full = [1, 2, 4, 4].map(Duration::from_secs);
    for (wait, full) in waits.iter().zip(full) {
        assert!(
            *wait >= full / 2 && *wait <= full + Duration::from_millis(10),
            "{waits:?}"
        );
    }
    boss.stop();
    boss.join().await;
}

#[tokio::test(start_paused = true)]
async fn past_the_restart_limit_the_parent_fails_naming_the_child() {
    let baseline = alive_tasks();
    let (boss, _exits) = boss();
    let shared = Arc::new(Shared::default());
    let policy = RestartPolicy::on_failure().max_restarts(2, Duration::from_secs(60));
    let worker = hire(&boss, &shared, policy, "db").await;
    for _ in 0..3 {
        // Sends may fail once the child has ended for good; the point is the third failure.
        let _ = worker.send(Job::Fail).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    match boss.join().await {
        Exit::Failed(e) => {
            let message = e.to_string();
            assert!(message.contains("`boss/db` (Worker)"), "{message}");
            assert!(message.contains("failed: disk full"), "{message}");
            assert!(message.contains("2 restarts"), "{message}");
        }
        other => panic!("expected the parent to fail, got {other}"),
    }
    assert_eq!(shared.lives.load(Ordering::SeqCst), 3);
    assert_eq!(alive_tasks(), baseline);
}

#[tokio::test(start_paused = true)]
async fn failures_spread_beyond_the_window_do_not_escalate() {
    let (boss, _exits) = boss();
    let shared = Arc::new(Shared::default());
    let policy = RestartPolicy::on_failure().max_restarts(1, Duration::from_secs(10));
    let worker = hire(&boss, &shared, policy, "w").await;
    for _ in 0..3 {
        worker.send(Job::Fail).await.unwrap();
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
    assert_eq!(shared.lives.load(Ordering::SeqCst), 4);
    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn never_reports_the_failure_and_always_restarts_a_completed_child() {
    let (boss, exits) = boss();
    let once = Arc::new(Shared::default());
    let worker = hire(&boss, &once, RestartPolicy::never(), "once").await;
    worker.send(Job::Fail).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(once.lives.load(Ordering::SeqCst), 1);
    assert_eq!(
        *exits.lock().unwrap(),
        ["`boss/once` (Worker) failed: disk full"]
    );
    assert!(worker.send(Job::Work(1)).await.is_err());

    let again = Arc::new(Shared::default());
    let policy = RestartPolicy::new(Restart::Always);
    let worker = hire(&boss, &again, policy, "again").await;
    worker.send(Job::Finish).await.unwrap();
    worker.send(Job::Work(7)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(again.lives.load(Ordering::SeqCst), 2);
    assert_eq!(done(&again), [("again life 2".to_owned(), 7)]);
    boss.stop();
    boss.join().await;
}

#[tokio::test(start_paused = true)]
async fn a_group_restarts_together_and_keeps_every_queue() {
    let (boss, _exits) = boss();
    let group = RestartGroup::new();
    let a = Arc::new(Shared::default());
    let b = Arc::new(Shared::default());
    let policy = RestartPolicy::on_failure().group(&group);
    let wa = hire(&boss, &a, policy.clone(), "a").await;
    let wb = hire(&boss, &b, policy, "b").await;
    wb.send(Job::Work(1)).await.unwrap();
    settle().await;
    wa.send(Job::Fail).await.unwrap();
    settle().await;
    wb.send(Job::Work(2)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(a.lives.load(Ordering::SeqCst), 2);
    assert_eq!(b.lives.load(Ordering::SeqCst), 2);
    let handled: Vec<u32> = done(&b).into_iter().map(|(_, n)| n).collect();
    assert_eq!(handled, [1, 2]);
    let snapshot = boss.snapshot();
    assert_eq!(snapshot.find("boss/a").unwrap().restarts, 1);
    assert_eq!(snapshot.find("boss/b").unwrap().restarts, 1);
    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_the_backoff_is_final() {
    let baseline = alive_tasks();
    let (boss, exits) = boss();
    let shared = Arc::new(Shared::default());
    let policy =
        RestartPolicy::on_failure().backoff(Duration::from_secs(60), Duration::from_secs(60));
    let worker = hire(&boss, &shared, policy, "w").await;
    worker.send(Job::Fail).await.unwrap();
    settle().await;
    let start = Instant::now();
    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(shared.lives.load(Ordering::SeqCst), 1);
    assert_eq!(*exits.lock().unwrap(), ["`boss/w` (Worker) stopped"]);
    assert_eq!(alive_tasks(), baseline);
}

#[test]
#[should_panic(expected = "must not exceed the maximum")]
fn a_backoff_minimum_above_its_maximum_is_refused() {
    let _ = RestartPolicy::on_failure().backoff(Duration::from_secs(2), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_restart_asked_by_the_group_is_not_counted_against_always_members() {
    let (boss, _exits) = boss();
    let group = RestartGroup::new();
    let a = Arc::new(Shared::default());
    let b = Arc::new(Shared::default());
    // One own restart a minute each: a group restart counted as an own one would make the
    // second failure below escalate.
    let policy = RestartPolicy::always()
        .max_restarts(1, Duration::from_secs(60))
        .group(&group);
    let wa = hire(&boss, &a, policy.clone(), "a").await;
    let wb = hire(&boss, &b, policy, "b").await;
    wa.send(Job::Fail).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    wb.send(Job::Fail).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(a.lives.load(Ordering::SeqCst), 3);
    assert_eq!(b.lives.load(Ordering::SeqCst), 3);
    assert!(!boss.child_ref().is_closed(), "the parent did not fail");
    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn a_failure_while_a_completed_child_drains_its_queue_is_final() {
    // Found by proptest_supervision: the completion closed the queue, so a restart would
    // have started a life that could receive nothing.
    let (boss, exits) = boss();
    let shared = Arc::new(Shared::default());
    let worker = hire(&boss, &shared, RestartPolicy::on_failure(), "w").await;
    worker.send(Job::Finish).await.unwrap();
    worker.send(Job::Fail).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(shared.lives.load(Ordering::SeqCst), 1);
    assert_eq!(
        *exits.lock().unwrap(),
        ["`boss/w` (Worker) failed: disk full"]
    );
    assert!(worker.send(Job::Work(1)).await.is_err());
    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
}
