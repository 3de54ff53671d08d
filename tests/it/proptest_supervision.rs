//! Property tests of supervision and stop deadlines.
//!
//! # Supervision
//!
//! A parent supervises one `Worker` with a random [`RestartPolicy`] (restart kind, backoff
//! bounds, restart limit and window), then a random schedule sends it `Fail`, `Panic`,
//! `Finish` (stops itself) and `Work` commands with random gaps of virtual time. The worker
//! writes down, at the virtual instant it happens, when each life starts and how it ends.
//!
//! The policy is then replayed over the observed endings, which gives the only correct
//! decisions, and the run must agree with it:
//!
//! - an ending the policy restarts is followed by a new life after a wait within the
//!   backoff (between half and all of `min(max, min * 2^(n-1))` for the `n`-th restart in
//!   the window); one it does not restart ends the child for good, reported to the parent
//!   once, with its exit;
//! - past the restart limit the child ends for good and the parent fails, with an error
//!   naming the child; never before;
//! - every `Work` a send accepted is handled by some life, or counted in the child's
//!   `ChildExit::dropped` when it ends for good; sends refused give the message back;
//! - after the parent is joined, no task is alive.
//!
//! # Stop deadlines
//!
//! A random tree (up to 40 threads, 4 levels) with random stop deadlines (or none) and a few
//! threads stuck in a handler that never returns; the root is stopped. The root's join must
//! return within the root's deadline (its stop can never take longer), as `Aborted` if and
//! only if a stuck thread was left for the root itself to cut, and with no task alive after.
//!
//! Run more cases with `PROPTEST_CASES=2000 cargo test --release -p taskthread-tests --test
//! proptest_supervision`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use taskthread::prelude::*;
use taskthread::supervise::Restart;
use taskthread::supervise::RestartPolicy;
use tokio::time::Instant;

const DEFAULT_CASES: u32 = 256;
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptest-regressions/proptest_supervision.txt"
);

fn config() -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            DEFAULT_CASES
        },
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..base
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

// ---- supervision ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Work(u32),
    Fail,
    Panic,
    Finish,
}

/// How a life ended, and when (virtual time since the case started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Failed,
    Panicked,
    Completed,
}

#[derive(Default)]
struct Record {
    starts: Vec<Duration>,
    /// `(life, how, when)`: a life may record more than one (a `Finish` then a `Fail`
    /// still queued, which its graceful stop handles); the first failure decides.
    ends: Vec<(usize, End, Duration)>,
    handled: Vec<u32>,
    /// Every command handled, of any kind.
    commands: usize,
}

struct Worker {
    life: usize,
    origin: Instant,
    record: Arc<Mutex<Record>>,
}

#[taskthread]
impl Worker {
    #[down]
    async fn cmd(&mut self, ctx: &mut Ctx<Self>, cmd: Cmd) -> Result<()> {
        let now = self.origin.elapsed();
        let mut record = self.record.lock().unwrap();
        record.commands += 1;
        match cmd {
            Cmd::Work(n) => {
                record.handled.push(n);
                Ok(())
            }
            Cmd::Fail => {
                record.ends.push((self.life, End::Failed, now));
                Err(Error::msg("planned failure"))
            }
            Cmd::Panic => {
                record.ends.push((self.life, End::Panicked, now));
                drop(record);
                panic!("planned panic");
            }
            Cmd::Finish => {
                record.ends.push((self.life, End::Completed, now));
                ctx.stop();
                Ok(())
            }
        }
    }
}

#[derive(Default)]
struct Boss {
    exits: Arc<Mutex<Vec<(String, usize)>>>,
}

struct Hire(RestartPolicy, Instant, Arc<Mutex<Record>>);

#[taskthread]
impl Boss {
    #[down]
    async fn hire(
        &mut self,
        ctx: &mut Ctx<Self>,
        Hire(policy, origin, record): Hire,
    ) -> Result<ChildRef<Worker>> {
        let factory = move || {
            let mut starts = record.lock().unwrap();
            starts.starts.push(origin.elapsed());
            let life = starts.starts.len() - 1;
            drop(starts);
            Worker {
                life,
                origin,
                record: record.clone(),
            }
        };
        Ok(ctx.supervise_with(factory, policy, ChildOptions::new().name("w")))
    }

    #[up]
    async fn exited(
        &mut self,
        _ctx: &mut Ctx<Self>,
        _from: ChildId,
        exit: ChildExit,
    ) -> Result<()> {
        self.exits
            .lock()
            .unwrap()
            .push((exit.exit.to_string(), exit.dropped));
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Policy {
    restart: Restart,
    min_ms: u64,
    factor: u32,
    max_restarts: u32,
    window_ms: u64,
}

impl Policy {
    fn build(&self) -> RestartPolicy {
        RestartPolicy::new(self.restart)
            .backoff(self.min(), self.max())
            .max_restarts(self.max_restarts, Duration::from_millis(self.window_ms))
    }

    fn min(&self) -> Duration {
        Duration::from_millis(self.min_ms)
    }

    fn max(&self) -> Duration {
        self.min() * self.factor
    }

    fn restarts(&self, end: End) -> bool {
        match self.restart {
            Restart::Never => false,
            Restart::OnFailure => end != End::Completed,
            _ => true,
        }
    }

    /// The full wait before the `n`-th restart of a window (before jitter).
    fn full_delay(&self, n: usize) -> Duration {
        let doublings = (n - 1).min(31) as u32;
        self.min().saturating_mul(1 << doublings).min(self.max())
    }
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![
            Just(Restart::OnFailure),
            Just(Restart::Always),
            Just(Restart::Never)
        ],
        prop_oneof![Just(0u64), Just(10), Just(100), Just(700)],
        prop_oneof![Just(1u32), Just(4), Just(16)],
        0u32..4,
        prop_oneof![Just(500u64), Just(3_000), Just(60_000)],
    )
        .prop_map(
            |(restart, min_ms, factor, max_restarts, window_ms)| Policy {
                restart,
                min_ms,
                factor,
                max_restarts,
                window_ms,
            },
        )
}

fn schedule() -> impl Strategy<Value = Vec<(u64, Cmd)>> {
    prop::collection::vec(
        (
            prop_oneof![Just(0u64), 0u64..50, 0u64..3_000],
            prop_oneof![
                4 => Just(Cmd::Work(0)),
                2 => Just(Cmd::Fail),
                1 => Just(Cmd::Panic),
                1 => Just(Cmd::Finish),
            ],
        ),
        1..40,
    )
}

fn check_supervision(policy: &Policy, schedule: &[(u64, Cmd)]) -> Result<(), TestCaseError> {
    // Keep the planned panics out of the output, and everything else in.
    crate::panics::hide_expected_panics("planned panic");
    runtime().block_on(async {
        let baseline = alive_tasks();
        let origin = Instant::now();
        let record = Arc::new(Mutex::new(Record::default()));
        let exits = Arc::new(Mutex::new(Vec::new()));
        let boss = taskthread::spawn(Boss {
            exits: exits.clone(),
        });
        let worker = boss
            .ask(Hire(policy.build(), origin, record.clone()))
            .await
            .unwrap();
        let mut accepted = Vec::new();
        let mut sent = 0usize;
        let mut next = 0;
        for &(gap, cmd) in schedule {
            tokio::time::sleep(Duration::from_millis(gap)).await;
            let cmd = match cmd {
                Cmd::Work(_) => {
                    next += 1;
                    Cmd::Work(next)
                }
                other => other,
            };
            match worker.send(cmd).await {
                Ok(()) => {
                    sent += 1;
                    if let Cmd::Work(n) = cmd {
                        accepted.push(n);
                    }
                }
                Err(e) => {
                    prop_assert_eq!(e.into_inner(), cmd, "a refused send gives the message back")
                }
            }
        }
        // Let every pending restart happen (longest possible backoff, with room).
        tokio::time::sleep(policy.max() + Duration::from_secs(1)).await;
        let boss_ended = boss.child_ref().is_closed();
        if !boss_ended {
            boss.stop();
        }
        let boss_exit = boss.join().await;
        prop_assert_eq!(alive_tasks(), baseline, "no task outlives the tree");

        // Replay the policy over the observed endings.
        let record = record.lock().unwrap();
        let mut restarts: Vec<Duration> = Vec::new();
        let mut escalated = false;
        let mut ended_for_good = None;
        for i in 0..record.starts.len() {
            // How life `i` ended: its first failure, else its completion; none if it was
            // still running at the final stop.
            let ends: Vec<(End, Duration)> = record
                .ends
                .iter()
                .filter(|e| e.0 == i)
                .map(|e| (e.1, e.2))
                .collect();
            let Some(&(end, at)) = ends
                .iter()
                .find(|e| e.0 != End::Completed)
                .or_else(|| ends.first())
            else {
                prop_assert_eq!(record.starts.len(), i + 1, "only the last life is stopped");
                break;
            };
            // A life that completed under a policy that does not restart completions has
            // closed its queue: a failure while it handles what was queued is final too.
            let closed = ends[0].0 == End::Completed && !policy.restarts(End::Completed);
            if closed || !policy.restarts(end) {
                ended_for_good = Some(end);
                prop_assert_eq!(record.starts.len(), i + 1, "no life after a final end");
                break;
            }
            let window = Duration::from_millis(policy.window_ms);
            let recent = restarts.iter().filter(|&&r| at - r < window).count();
            if recent >= policy.max_restarts as usize {
                escalated = true;
                prop_assert_eq!(record.starts.len(), i + 1, "no life after an escalation");
                break;
            }
            restarts.push(at);
            let Some(&next_start) = record.starts.get(i + 1) else {
                // Stopped for good during the backoff, by the final stop.
                break;
            };
            let waited = next_start - at;
            let full = policy.full_delay(recent + 1);
            prop_assert!(
                // The timer wheel rounds a wait up to the next millisecond.
                waited >= full / 2 && waited <= full + Duration::from_millis(1),
                "restart {} waited {:?}, backoff {:?}",
                i + 1,
                waited,
                full
            );
        }
        let exits = exits.lock().unwrap();
        if escalated {
            match &boss_exit {
                Exit::Failed(e) => prop_assert!(e.to_string().contains("`boss/w` (Worker)"), "{e}"),
                other => prop_assert!(false, "expected the parent to fail, got {other}"),
            }
        } else {
            prop_assert!(matches!(boss_exit, Exit::Stopped), "{boss_exit}");
            prop_assert_eq!(exits.len(), 1, "the child ends for good once: {:?}", exits);
            let expected = match ended_for_good {
                Some(End::Failed) => "failed: planned failure",
                Some(End::Panicked) => "panicked: planned panic",
                Some(End::Completed) => "completed",
                None => "stopped",
            };
            prop_assert_eq!(&exits[0].0, expected);
        }
        // Conservation: handled once each, in order; the rest counted as dropped.
        let handled = &record.handled;
        prop_assert!(handled.windows(2).all(|w| w[0] < w[1]), "{handled:?}");
        prop_assert!(handled.iter().all(|n| accepted.contains(n)));
        if !escalated {
            prop_assert_eq!(sent, record.commands + exits[0].1);
        } else {
            prop_assert!(record.commands <= sent);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn supervised_children_restart_within_their_policy_and_escalate_past_it(
        policy in policy(),
        schedule in schedule(),
    ) {
        check_supervision(&policy, &schedule)?;
    }

    #[test]
    fn every_stop_completes_within_its_deadline(tree in tree()) {
        check_deadlines(&tree)?;
    }
}

// ---- deadlines --------------------------------------------------------------------------

/// A node of the random tree: its stop deadline in seconds (`None`: inherit), whether it
/// hangs, and its children.
#[derive(Debug, Clone)]
struct Shape {
    deadline: Option<Option<u64>>,
    hangs: bool,
    children: Vec<Shape>,
}

fn tree() -> impl Strategy<Value = Shape> {
    let leaf = (
        prop::option::of(prop::option::of(1u64..20)),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(deadline, hangs)| Shape {
            deadline,
            hangs,
            children: Vec::new(),
        });
    leaf.prop_recursive(4, 40, 4, |inner| {
        (
            prop::option::of(prop::option::of(1u64..20)),
            prop::bool::weighted(0.2),
            prop::collection::vec(inner, 0..4),
        )
            .prop_map(|(deadline, hangs, children)| Shape {
                deadline,
                hangs,
                children,
            })
    })
}

/// A thread that builds its subtree from a [`Shape`] and hangs on `Hang` if told to.
struct Part {
    shape: Shape,
    hung: Arc<AtomicU32>,
}

struct Hang;

#[taskthread]
impl Part {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        for child in self.shape.children.clone() {
            let mut options = ChildOptions::new();
            match child.deadline {
                Some(Some(secs)) => options = options.stop_deadline(Duration::from_secs(secs)),
                Some(None) => options = options.no_stop_deadline(),
                None => {}
            }
            let hangs = child.hangs;
            let part = ctx.spawn_with(
                Part {
                    shape: child,
                    hung: self.hung.clone(),
                },
                options,
            );
            if hangs {
                part.send(Hang).await?;
            }
        }
        Ok(())
    }

    #[down]
    async fn hang(&mut self, _ctx: &mut Ctx<Self>, _h: Hang) -> Result<()> {
        self.hung.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
        Ok(())
    }
}

fn count(shape: &Shape) -> usize {
    1 + shape.children.iter().map(count).sum::<usize>()
}

fn hanging(shape: &Shape, root: bool) -> usize {
    usize::from(shape.hangs && !root)
        + shape
            .children
            .iter()
            .map(|c| hanging(c, false))
            .sum::<usize>()
}

fn check_deadlines(shape: &Shape) -> Result<(), TestCaseError> {
    runtime().block_on(async {
        let baseline = alive_tasks();
        let hung = Arc::new(AtomicU32::new(0));
        let root_deadline = Duration::from_secs(25);
        let root = taskthread::spawn_with(
            Part {
                shape: shape.clone(),
                hung: hung.clone(),
            },
            ChildOptions::new().stop_deadline(root_deadline),
        );
        // Let the tree build itself and the stuck threads get stuck.
        while root.snapshot().len() < count(shape) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        prop_assert_eq!(hung.load(Ordering::SeqCst) as usize, hanging(shape, true));
        let start = Instant::now();
        root.stop();
        let exit = tokio::time::timeout(root_deadline * 2, root.join())
            .await
            .map_err(|_| TestCaseError::fail("the root's stop outlived twice its deadline"))?;
        let took = start.elapsed();
        prop_assert!(took <= root_deadline, "the stop took {took:?}");
        let stuck = hanging(shape, true) > 0;
        match exit {
            // Stuck threads under shorter deadlines abort themselves and report it.
            Exit::Stopped => {}
            Exit::Aborted { .. } => {
                prop_assert!(stuck);
                prop_assert_eq!(took, root_deadline);
            }
            other => prop_assert!(false, "unexpected exit {other}"),
        }
        prop_assert_eq!(alive_tasks(), baseline, "no task outlives the tree");
        Ok(())
    })
}
