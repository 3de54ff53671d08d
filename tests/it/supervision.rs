//! Supervision: `ctx.supervise(factory, policy)` restarts a child on failure (or always),
//! with backoff, keeps its address and its queue across restarts, escalates past the
//! restart limit, and restarts groups of siblings together. Paused clock throughout.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskthread::prelude::*;
use taskthread::supervise::RestartPolicy;
use taskthread::supervise::{Restart, RestartGroup};
use taskthread::{AskError, ThreadState};
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

/// Supervises workers and records the exits and restarts it hears of.
#[derive(Default)]
struct Boss {
    exits: Arc<Mutex<Vec<String>>>,
    restarts: Arc<Mutex<Vec<Restarted>>>,
}

/// What the boss heard of one restart.
#[derive(Debug, Clone, PartialEq)]
struct Restarted {
    from: ChildId,
    path: String,
    life: u32,
    exit: String,
    /// The failed message's type and position.
    message: Option<(&'static str, u64)>,
    backoff: Duration,
    restarts_left: u32,
    by_group: bool,
    /// Whether the child was still among the boss's children.
    listed: bool,
}

struct HireStore;

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

    #[down]
    async fn hire_store(&mut self, ctx: &mut Ctx<Self>, _h: HireStore) -> Result<ChildRef<Store>> {
        let policy = RestartPolicy::on_failure().backoff(Duration::ZERO, Duration::ZERO);
        Ok(ctx.supervise_with(|| Store, policy, ChildOptions::new().name("store")))
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        let escalated = if exit.escalated { " (escalated)" } else { "" };
        self.exits
            .lock()
            .unwrap()
            .push(format!("{exit}{escalated}"));
        Ok(())
    }

    #[up]
    async fn restarted(
        &mut self,
        ctx: &mut Ctx<Self>,
        from: ChildId,
        restart: ChildRestart,
    ) -> Result<()> {
        self.restarts.lock().unwrap().push(Restarted {
            from,
            path: restart.path().to_owned(),
            life: restart.life,
            exit: restart.exit.to_string(),
            message: restart.message.map(|m| (m.type_name, m.position)),
            backoff: restart.backoff,
            restarts_left: restart.restarts_left,
            by_group: restart.by_group,
            listed: ctx.children().any(|c| c.id() == from),
        });
        Ok(())
    }
}

fn boss() -> (Handle<Boss>, Arc<Mutex<Vec<String>>>) {
    let (boss, exits, _restarts) = watched_boss();
    (boss, exits)
}

/// A boss, the exits it hears of and the restarts.
#[allow(clippy::type_complexity)]
fn watched_boss() -> (
    Handle<Boss>,
    Arc<Mutex<Vec<String>>>,
    Arc<Mutex<Vec<Restarted>>>,
) {
    let boss = Boss::default();
    let (exits, restarts) = (boss.exits.clone(), boss.restarts.clone());
    (taskthread::spawn(boss), exits, restarts)
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

#[tokio::test(start_paused = true)]
async fn a_child_waiting_out_its_backoff_is_restarting_and_takes_messages_for_its_next_life() {
    let (boss, _exits) = boss();
    let shared = Arc::new(Shared::default());
    let policy =
        RestartPolicy::on_failure().backoff(Duration::from_secs(10), Duration::from_secs(10));
    let worker = hire(&boss, &shared, policy, "w").await;
    worker.send(Job::Fail).await.unwrap();
    settle().await;

    assert_eq!(worker.state(), ThreadState::Restarting);
    assert!(!worker.is_closed(), "the queue stays open across a restart");
    let snapshot = boss.snapshot();
    assert_eq!(
        snapshot.find("boss/w").unwrap().state,
        ThreadState::Restarting
    );
    assert!(
        snapshot.to_string().contains("[boss/w] restarting"),
        "{snapshot}"
    );
    // Sent between lives: handled by the next.
    worker.send(Job::Work(1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    settle().await;
    assert_eq!(done(&shared), [("w life 2".to_owned(), 1)]);
    assert_eq!(worker.state(), ThreadState::Running);

    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
    assert_eq!(worker.state(), ThreadState::Exited);
    assert!(worker.is_closed());
}

#[tokio::test(start_paused = true)]
async fn the_parent_hears_of_each_restart_with_the_message_that_failed() {
    let (boss, exits, restarts) = watched_boss();
    let shared = Arc::new(Shared::default());
    let policy = RestartPolicy::on_failure()
        .backoff(Duration::from_secs(1), Duration::from_secs(4))
        .max_restarts(3, Duration::from_secs(60));
    let worker = hire(&boss, &shared, policy, "w").await;
    // Life 1 takes two messages and fails on the second; life 2 takes `Work(2)`, then
    // panics on the message after it.
    worker.send(Job::Work(1)).await.unwrap();
    worker.send(Job::Fail).await.unwrap();
    worker.send(Job::Work(2)).await.unwrap();
    worker.send(Job::Panic).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;

    let seen = restarts.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (first, second) = (&seen[0], &seen[1]);
    assert_eq!(first.from, worker.id());
    assert_eq!(first.path, "boss/w");
    assert_eq!(
        (first.life, first.exit.as_str(), first.message),
        (1, "failed: disk full", Some(("Job", 1)))
    );
    assert_eq!(
        (second.life, second.exit.as_str(), second.message),
        (2, "panicked: bad state", Some(("Job", 1)))
    );
    // The backoff of the n-th restart in the window, shortened by at most a half.
    let within = |wait: Duration, full: Duration| wait >= full / 2 && wait <= full;
    assert!(within(first.backoff, Duration::from_secs(1)), "{first:?}");
    assert!(within(second.backoff, Duration::from_secs(2)), "{second:?}");
    assert_eq!((first.restarts_left, second.restarts_left), (2, 1));
    assert!(seen.iter().all(|r| !r.by_group && r.listed), "{seen:?}");
    // Restarts are not exits.
    assert!(exits.lock().unwrap().is_empty());
    assert_eq!(shared.lives.load(Ordering::SeqCst), 3);

    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
    assert_eq!(*exits.lock().unwrap(), ["`boss/w` (Worker) stopped"]);
}

#[tokio::test(start_paused = true)]
async fn a_restart_without_a_failed_message_and_a_restart_by_the_group_are_reported() {
    let (boss, _exits, restarts) = watched_boss();
    let group = RestartGroup::new();
    let (a, b) = (Arc::new(Shared::default()), Arc::new(Shared::default()));
    let policy = RestartPolicy::always()
        .backoff(Duration::ZERO, Duration::ZERO)
        .group(&group);
    let _wa = hire(&boss, &a, policy.clone(), "a").await;
    let wb = hire(&boss, &b, policy, "b").await;
    settle().await;
    // `b` completes (no handler failed) and its group restarts `a` with it.
    wb.send(Job::Finish).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut seen = restarts.lock().unwrap().clone();
    seen.sort_by(|x, y| x.path.cmp(&y.path));
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (a, b) = (&seen[0], &seen[1]);
    assert_eq!(
        (a.path.as_str(), a.life, a.exit.as_str(), a.by_group),
        ("boss/a", 1, "stopped", true)
    );
    assert_eq!(a.backoff, Duration::ZERO);
    assert_eq!(
        (b.path.as_str(), b.life, b.exit.as_str(), b.by_group),
        ("boss/b", 1, "completed", false)
    );
    assert_eq!((a.message, b.message), (None, None));
    assert_eq!((a.restarts_left, b.restarts_left), (5, 4));

    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
}

#[tokio::test(start_paused = true)]
async fn the_escalation_reaches_the_exit_handler_and_then_the_parent_fails() {
    let (boss, exits, restarts) = watched_boss();
    let shared = Arc::new(Shared::default());
    let policy = RestartPolicy::on_failure().max_restarts(1, Duration::from_secs(60));
    let worker = hire(&boss, &shared, policy, "db").await;
    worker.send(Job::Fail).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = worker.send(Job::Fail).await;

    match boss.join().await {
        Exit::Failed(e) => {
            let message = e.to_string();
            assert!(message.contains("`boss/db` (Worker)"), "{message}");
            assert!(message.contains("1 restart in"), "{message}");
        }
        other => panic!("expected the parent to fail, got {other}"),
    }
    assert_eq!(restarts.lock().unwrap().len(), 1);
    let exits = exits.lock().unwrap();
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert!(
        exits[0].starts_with("`boss/db` (Worker) failed: supervised"),
        "{exits:?}"
    );
    assert!(exits[0].ends_with("(escalated)"), "{exits:?}");
}

/// Answers `Get`s, and fails on a missing key: to see which of two message types failed.
#[derive(Default)]
struct Store;

struct Put;
struct Get(u32);

#[taskthread]
impl Store {
    #[down]
    async fn put(&mut self, _ctx: &mut Ctx<Self>, _put: Put) -> Result<()> {
        Ok(())
    }

    #[down]
    async fn get(&mut self, _ctx: &mut Ctx<Self>, get: Get) -> Result<u32> {
        if get.0 == 0 {
            return Err(Error::msg("no key 0"));
        }
        Ok(get.0)
    }
}

#[tokio::test(start_paused = true)]
async fn the_failed_message_is_named_by_its_type_whether_sent_or_asked() {
    let (boss, _exits, restarts) = watched_boss();
    let store = boss.ask(HireStore).await.unwrap();
    store.send(Put).await.unwrap();
    store.send(Put).await.unwrap();
    // Asked: the asker hears of the failure itself.
    assert!(matches!(store.ask(Get(0)).await, Err(AskError::NoReply)));
    settle().await;
    // Sent: only the restart event tells.
    store.send(Get(0)).await.unwrap();
    settle().await;

    let seen = restarts.lock().unwrap().clone();
    let failed: Vec<_> = seen.iter().map(|r| (r.life, r.message)).collect();
    assert_eq!(failed, [(1, Some(("Get", 2))), (2, Some(("Get", 0)))]);
    boss.stop();
    assert!(matches!(boss.join().await, Exit::Stopped));
}

/// What a [`Keeper`] is told: wait at the gate, nothing, or end this life.
enum Turn {
    Gate(Arc<tokio::sync::Notify>),
    Nothing,
    End,
}

/// A child whose exit hook waits until `held` is closed: its parent's stop waits for it.
struct Lingering {
    held: Arc<tokio::sync::Semaphore>,
}

#[taskthread]
impl Lingering {
    async fn exit(&mut self, _ctx: &mut Ctx<Self>) {
        let _closed = self.held.acquire().await;
    }
}

/// Restarted always, with its queue kept across lives; each life has a [`Lingering`] child.
struct Keeper {
    held: Arc<tokio::sync::Semaphore>,
}

#[taskthread(capacity = 3)]
impl Keeper {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.spawn(Lingering {
            held: Arc::clone(&self.held),
        });
        Ok(())
    }

    #[down]
    async fn turn(&mut self, ctx: &mut Ctx<Self>, turn: Turn) -> Result<()> {
        match turn {
            Turn::Gate(gate) => gate.notified().await,
            Turn::Nothing => {}
            Turn::End => ctx.stop(),
        }
        Ok(())
    }
}

/// DOWN to [`KeeperHome`]: its keeper.
struct TheKeeper;

/// Supervises one [`Keeper`].
struct KeeperHome {
    held: Arc<tokio::sync::Semaphore>,
    keeper: Option<ChildRef<Keeper>>,
}

#[taskthread]
impl KeeperHome {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        let held = Arc::clone(&self.held);
        let factory = move || Keeper {
            held: Arc::clone(&held),
        };
        let policy = RestartPolicy::new(Restart::Always);
        self.keeper = Some(ctx.supervise_with(factory, policy, ChildOptions::new()));
        Ok(())
    }

    #[down]
    async fn the_keeper(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _q: TheKeeper,
    ) -> Result<ChildRef<Keeper>> {
        Ok(self.keeper.clone().expect("supervised in enter"))
    }
}

/// Sends `turn` to `keeper` from a task of its own; whether it was sent.
fn send_from_a_task(keeper: &ChildRef<Keeper>, turn: Turn) -> tokio::task::JoinHandle<bool> {
    let keeper = keeper.clone();
    tokio::spawn(async move { keeper.send(turn).await.is_ok() })
}

/// A life that ends with messages still taken out of its queue, which is kept for the next
/// life, gives the places its messages freed to the senders waiting for them at once, not
/// once its stop (here, a child lingering in its exit hook) is over.
#[tokio::test(start_paused = true)]
async fn a_life_that_ends_keeping_its_queue_gives_waiting_senders_their_places_at_once() {
    let held = Arc::new(tokio::sync::Semaphore::new(0));
    let home = taskthread::spawn(KeeperHome {
        held: Arc::clone(&held),
        keeper: None,
    });
    let keeper = home.ask(TheKeeper).await.unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    assert!(keeper.try_send(Turn::Gate(Arc::clone(&gate))).is_ok());
    settle().await;
    for turn in [Turn::Nothing, Turn::End, Turn::Nothing] {
        assert!(keeper.try_send(turn).is_ok(), "room");
    }
    let first = send_from_a_task(&keeper, Turn::Nothing);
    settle().await;
    let second = send_from_a_task(&keeper, Turn::Nothing);
    settle().await;
    assert!(
        !first.is_finished() && !second.is_finished(),
        "the queue is full"
    );
    // The keeper takes the three queued turns at once: the place of the first goes to the
    // first sender; `End` ends the life with the last still taken out, and the place of
    // `End` is the second sender's while the life's stop waits for its lingering child.
    gate.notify_one();
    assert!(first.await.unwrap());
    let sent = tokio::time::timeout(Duration::from_secs(1), second).await;
    assert!(matches!(sent, Ok(Ok(true))), "the place of `End`");
    held.close();
    home.stop();
    home.join().await;
}
