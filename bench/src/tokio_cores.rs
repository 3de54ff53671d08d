//! Hand-written tokio spread over one current-thread runtime per core: a control for the
//! periodic workload, run only when named (`--system tokio-cores`).
//!
//! On "multi-thread" actix runs its actors on arbiters, each a current-thread runtime of
//! its own, and taskthread-cores runs its threads on `taskthread::Cores` the same way. This
//! control runs hand-written tokio's periodic tasks (the same `tokio::time::interval` loop
//! as [`crate::tokio_hand`]'s) spread the same way, so that a run tells how much of a
//! figure is the runtime's way of running timers and how much is the framework's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::model::{
    Countdown, Figures, Flavour, Scale, System, Workload, not_applicable, periodic_figures, ticks,
};
use crate::probe;
use crate::tokio_hand::ticker;

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
                let figures = Flavour::CurrentThread
                    .block_on(move || async move { periodic(&handles, tasks, run_for).await });
                drop(cores);
                figures
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
    /// Starts `n` runtimes and waits until each runs.
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
            let _ = thread.join();
        }
    }
}

/// The periodic workload with the tasks spread round-robin over the runtimes of `cores`,
/// measured while they run: their OS threads' CPU time counts.
async fn periodic(cores: &[tokio::runtime::Handle], tasks: usize, run_for: Duration) -> Figures {
    let ticks = ticks(run_for);
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(tasks * ticks as usize)));
    let ended = Arc::new(Countdown::new(tasks));
    let cpu = probe::cpu_time();
    for i in 0..tasks {
        let lateness = Arc::clone(&lateness);
        let ended = Arc::clone(&ended);
        cores[i % cores.len()].spawn(async move {
            ticker(ticks, lateness).await;
            ended.count();
        });
    }
    ended.wait().await;
    let cpu = probe::cpu_time().saturating_sub(cpu);
    let mut lateness = std::mem::take(&mut *lateness.lock().expect("no panic"));
    periodic_figures(cpu, &mut lateness)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Metric, Value};

    /// A small periodic run: every figure measured, each task's ticks counted in the
    /// lateness samples (the run would hang if a task never ended).
    #[test]
    fn the_periodic_tasks_run_on_cores_and_are_measured() {
        let scale = Scale {
            periodic_tasks: 8,
            periodic_for: Duration::from_millis(30),
            ..Scale::quick()
        };
        let figures = TokioCores.run(Workload::Periodic, Flavour::MultiThread, &scale);
        let metrics: Vec<Metric> = figures.iter().map(|(m, _)| *m).collect();
        assert_eq!(metrics, Workload::Periodic.metrics());
        for (metric, value) in &figures {
            assert!(
                matches!(value, Value::Measured(v) if *v >= 0.0),
                "{metric:?}: {value:?}"
            );
        }
        let cpu = figures[0].1;
        assert!(matches!(cpu, Value::Measured(ms) if ms > 0.0), "{cpu:?}");
    }

    /// Nothing but periodic tasks, and only where there is more than one core to spread
    /// them over: every other figure says why not, without starting a runtime.
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
