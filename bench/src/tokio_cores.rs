//! Hand-written tokio spread over one current-thread runtime per core: a control for the
//! periodic workload, run only when named (`--system tokio-cores`).
//!
//! On "multi-thread" actix runs its actors on arbiters, each a current-thread runtime of
//! its own, and taskthread-cores runs its threads on `taskthread::Cores` the same way. This
//! control runs hand-written tokio's periodic tasks (the same `tokio::time::interval` loop
//! as [`crate::tokio_hand`]'s) spread the same way, so that a run tells how much of a
//! figure is the runtime's way of running timers and how much is the framework's.
//!
//! Its runtimes are started by hand, as a tokio user would start them, not through
//! `taskthread::Cores`: the control measures tokio alone. They are built as `Cores` builds
//! its own (current-thread, every driver enabled, one OS thread each), so that the two
//! differ in the framework only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::model::{
    Countdown, Figures, Flavour, Scale, System, Workload, not_applicable, periodic_figures, ticks,
};
use crate::probe;
use crate::tokio_hand::run_ticker;

/// Hand-written tokio on one current-thread runtime per core.
#[derive(Debug)]
pub(crate) struct TokioCores;

/// Why it has no figure but periodic ones.
const PERIODIC_ONLY: &str = "a control for the periodic workload only";

/// Why it has no current-thread figures.
const ONE_CORE: &str = "on one core, hand-written tokio on cores is hand-written tokio";

impl System for TokioCores {
    fn name(&self) -> &'static str {
        "tokio-cores"
    }

    fn note(&self) -> Option<&'static str> {
        Some(
            "a control, run only when named: \"multi-thread\" = the driver on a current-thread runtime, the periodic tasks spread round-robin over one more current-thread runtime per core (fresh for each run), each task the same interval loop as tokio's; periodic only, n/a on \"current-thread\"",
        )
    }

    fn run(&self, workload: Workload, flavour: Flavour, scale: &Scale) -> Figures {
        match (flavour, workload) {
            (Flavour::CurrentThread, _) => not_applicable(workload, ONE_CORE),
            (Flavour::MultiThread, Workload::Periodic) => {
                let (tasks, run_for) = (scale.periodic_tasks, scale.periodic_for);
                let cores = CoreRuntimes::start(Flavour::workers());
                let handles = cores.handles.clone();
                let (cpu, mut lateness) = Flavour::CurrentThread
                    .block_on(move || async move { periodic(&handles, tasks, run_for).await });
                drop(cores);
                periodic_figures(cpu, &mut lateness)
            }
            (Flavour::MultiThread, _) => not_applicable(workload, PERIODIC_ONLY),
        }
    }

    fn idle_memory_not_applicable(&self, _flavour: Flavour) -> Option<&'static str> {
        Some(PERIODIC_ONLY)
    }

    fn idle_memory(&self, _flavour: Flavour, _n: usize) -> (u64, u64) {
        unreachable!("{PERIODIC_ONLY}")
    }
}

/// Current-thread runtimes, each on an OS thread of its own until dropped.
struct CoreRuntimes {
    handles: Vec<tokio::runtime::Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CoreRuntimes {
    /// Starts `n` runtimes and waits until each is built.
    fn start(n: usize) -> Self {
        let mut cores = Self {
            handles: Vec::with_capacity(n),
            stops: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
        };
        for i in 0..n {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("tokio-core-{i}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime");
                    handle_tx
                        .send(runtime.handle().clone())
                        .expect("the starter waits");
                    runtime.block_on(async move {
                        let _ = stop_rx.await;
                    });
                })
                .expect("an OS thread per core");
            cores
                .handles
                .push(handle_rx.recv().expect("the core's runtime starts"));
            cores.stops.push(stop_tx);
            cores.threads.push(thread);
        }
        cores
    }
}

impl Drop for CoreRuntimes {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for thread in self.threads.drain(..) {
            thread.join().expect("a core's thread ends without a panic");
        }
    }
}

/// The periodic workload with the tasks spread round-robin over the runtimes of `cores`,
/// measured while they run (their OS threads' CPU time counts): the CPU time and each
/// tick's lateness in nanoseconds.
async fn periodic(
    cores: &[tokio::runtime::Handle],
    tasks: usize,
    run_for: Duration,
) -> (Duration, Vec<u64>) {
    let ticks = ticks(run_for);
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(tasks * ticks as usize)));
    let ended = Arc::new(Countdown::new(tasks));
    let cpu = probe::cpu_time();
    for i in 0..tasks {
        let lateness = Arc::clone(&lateness);
        let ended = Arc::clone(&ended);
        cores[i % cores.len()].spawn(async move {
            run_ticker(ticks, lateness).await;
            ended.count();
        });
    }
    ended.wait().await;
    let cpu = probe::cpu_time().saturating_sub(cpu);
    let lateness = std::mem::take(&mut *lateness.lock().expect("no panic"));
    (cpu, lateness)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Metric, Value};

    /// Each runtime runs on an OS thread of its own, one per core asked for.
    #[test]
    fn each_runtime_has_a_thread_of_its_own() {
        let cores = CoreRuntimes::start(3);
        let handles = cores.handles.clone();
        let names = Flavour::CurrentThread.block_on(move || async move {
            let mut names = Vec::new();
            for handle in &handles {
                let name = handle
                    .spawn(async { std::thread::current().name().map(str::to_owned) })
                    .await
                    .expect("the task ends");
                names.push(name);
            }
            names
        });
        drop(cores);
        let expected: Vec<Option<String>> =
            (0..3).map(|i| Some(format!("tokio-core-{i}"))).collect();
        assert_eq!(names, expected);
    }

    /// A small periodic run on two cores gives every tick of every task, and the figures
    /// measured from them.
    #[test]
    fn every_tick_of_every_task_is_measured() {
        let (tasks, run_for) = (8, Duration::from_millis(30));
        let cores = CoreRuntimes::start(2);
        let handles = cores.handles.clone();
        let (cpu, lateness) = Flavour::CurrentThread.block_on(move || async move {
            // Generous: a task that never ends fails the test rather than hanging it.
            tokio::time::timeout(Duration::from_secs(60), periodic(&handles, tasks, run_for))
                .await
                .expect("every task ends")
        });
        drop(cores);
        assert_eq!(lateness.len(), tasks * ticks(run_for) as usize);
        assert!(cpu > Duration::ZERO, "the cores' CPU time is counted");

        let scale = Scale {
            periodic_tasks: tasks,
            periodic_for: run_for,
            ..Scale::quick()
        };
        let figures = TokioCores.run(Workload::Periodic, Flavour::MultiThread, &scale);
        let metrics: Vec<Metric> = figures.iter().map(|(m, _)| *m).collect();
        assert_eq!(metrics, Workload::Periodic.metrics());
        assert!(
            figures.iter().all(|(_, v)| matches!(v, Value::Measured(_))),
            "{figures:?}"
        );
    }

    /// Nothing but periodic tasks, and only where there is more than one core to spread
    /// them over: every other figure says why not.
    #[test]
    fn every_other_figure_is_not_applicable_with_its_reason() {
        let scale = Scale::quick();
        for workload in Workload::ALL {
            let figures = TokioCores.run(workload, Flavour::CurrentThread, &scale);
            assert!(
                figures
                    .iter()
                    .all(|(_, v)| *v == Value::NotApplicable(ONE_CORE)),
                "{workload:?}: {figures:?}"
            );
            if workload != Workload::Periodic {
                let figures = TokioCores.run(workload, Flavour::MultiThread, &scale);
                assert!(
                    figures
                        .iter()
                        .all(|(_, v)| *v == Value::NotApplicable(PERIODIC_ONLY)),
                    "{workload:?}: {figures:?}"
                );
            }
        }
        assert_eq!(
            TokioCores.idle_memory_not_applicable(Flavour::MultiThread),
            Some(PERIODIC_ONLY)
        );
    }
}
