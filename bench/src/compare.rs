//! `--against PATH`: this build of the benchmark and another, figure by figure, in turn.
//!
//! Whether a change helps is told by building the benchmark before and after it and running
//! the two builds in turn within the same stretch of time: the machine's speed drifts over
//! minutes and hours, and each figure is one short run in a fresh process. For every round,
//! workload, runtime and system, both builds measure the figure, each in a fresh process of
//! its own, the one that goes first swapped every round; the report gives both medians, their
//! spread and this build's cost relative to the other's. A build compared with itself shows
//! how far the machine alone moves a figure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::isolate;
use crate::model::{Flavour, Metric, Scale, System, Value, Workload};
use crate::report::{Cell, format_value};

/// The two builds, in the order of a comparison's columns.
const BUILDS: [&str; 2] = ["this build", "other build"];

/// What to compare.
pub(crate) struct Plan<'a> {
    /// The other build of taskthread-bench.
    pub(crate) other: &'a Path,
    pub(crate) systems: &'a [Box<dyn System>],
    pub(crate) workloads: &'a [Workload],
    pub(crate) flavours: &'a [Flavour],
    pub(crate) rounds: u32,
    pub(crate) scale: &'a Scale,
}

/// Checks that `program` is a build of taskthread-bench: runs it with `--version`.
pub(crate) fn check(program: &Path) -> Result<(), String> {
    let out = Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && version.starts_with("taskthread-bench ") {
        Ok(())
    } else {
        Err(format!(
            "{} is not a build of taskthread-bench: its --version printed {:?}",
            program.display(),
            version.trim_end()
        ))
    }
}

/// Runs the comparison, with a line of progress per figure on stderr; an error says which
/// run failed.
pub(crate) fn run(plan: &Plan<'_>) -> Result<Comparison, String> {
    let programs: [PathBuf; 2] = [isolate::this_program(), plan.other.to_path_buf()];
    let mut comparison = Comparison::new(
        plan.systems.iter().map(|s| s.name()).collect(),
        plan.scale.clone(),
    );
    let started = Instant::now();
    for round in 1..=plan.rounds {
        // The build that goes first takes turns, so that neither always runs on the
        // machine as the other left it.
        let order: [usize; 2] = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for &workload in plan.workloads {
            for &flavour in plan.flavours {
                for (i, system) in plan.systems.iter().enumerate() {
                    let mut line = format!(
                        "[{:>4.0}s] round {round}/{} {workload:?} {} {}:",
                        started.elapsed().as_secs_f64(),
                        plan.rounds,
                        flavour.name(),
                        system.name()
                    );
                    for build in order {
                        let program = &programs[build];
                        let mut figures = isolate::run_in(
                            program,
                            system.name(),
                            workload,
                            flavour,
                            plan.scale.quick,
                        )?;
                        if workload == Workload::Spawn {
                            let n = plan.scale.spawn_children;
                            let memory =
                                isolate::idle_memory_in(program, system.as_ref(), flavour, n)?;
                            figures.push((Metric::IdleMemory, memory));
                        }
                        let _ = write!(line, " {}:", BUILDS[build]);
                        for (metric, value) in figures {
                            comparison.record(metric, flavour, i, build, value);
                            line.push_str(&describe(metric, value));
                        }
                    }
                    eprintln!("{line}");
                }
            }
        }
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(comparison)
}

fn describe(metric: Metric, value: Value) -> String {
    match value {
        Value::Measured(v) => format!(" {}={}", metric.slug(), format_value(v)),
        Value::NotApplicable(_) => format!(" {} n/a", metric.slug()),
    }
}

/// The figures of both builds.
#[derive(Debug)]
pub(crate) struct Comparison {
    systems: Vec<&'static str>,
    /// Figures by (metric, runtime, system index), one cell per build.
    cells: BTreeMap<(Metric, Flavour, usize), [Cell; 2]>,
    scale: Scale,
}

impl Comparison {
    fn new(systems: Vec<&'static str>, scale: Scale) -> Self {
        Self {
            systems,
            cells: BTreeMap::new(),
            scale,
        }
    }

    /// Records one figure of one build (0: this one, 1: the other).
    fn record(&mut self, metric: Metric, flavour: Flavour, system: usize, build: usize, v: Value) {
        let cell = &mut self.cells.entry((metric, flavour, system)).or_default()[build];
        match v {
            Value::Measured(v) => cell.samples.push(v),
            Value::NotApplicable(why) => cell.not_applicable = Some(why),
        }
    }

    /// The markdown table: a row per metric, runtime and system; each build's median with
    /// its lowest and highest figure, and this build's cost relative to the other's.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::from(
            "| workload | runtime | system | unit | this build | other build | this ÷ other |\n\
             | --- | --- | --- | --- | ---: | ---: | ---: |\n",
        );
        for (&(metric, flavour, system), cells) in &self.cells {
            let [this, other] = cells.each_ref().map(summary);
            let ratio = match (cells[0].median(), cells[1].median()) {
                (Some(this), Some(other)) => format!("{:.2}×", metric.ratio(this, other)),
                _ => "n/a".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {this} | {other} | {ratio} |",
                metric.name(&self.scale),
                flavour.name(),
                self.systems[system],
                metric.unit()
            );
        }
        out.push_str(
            "\nEach build's cell: the median over the rounds, then the lowest and highest figure. \
             The last column is this build's cost relative to the other's (time, CPU, lateness \
             or memory ÷ the other's; for frames/s, the other's ÷ this one's): **below 1× this \
             build is better**. Both builds ran every figure in every round, each in a fresh \
             process, the first of the two swapped every round.\n",
        );
        out
    }
}

/// A build's cell: `median (lowest–highest)`, or `n/a`.
fn summary(cell: &Cell) -> String {
    let (Some(median), Some(low), Some(high)) = (
        cell.median(),
        cell.samples.iter().copied().reduce(f64::min),
        cell.samples.iter().copied().reduce(f64::max),
    ) else {
        return "n/a".to_owned();
    };
    format!(
        "{} ({}–{})",
        format_value(median),
        format_value(low),
        format_value(high)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison() -> Comparison {
        let mut c = Comparison::new(vec!["tokio", "taskthread"], Scale::quick());
        let cur = Flavour::CurrentThread;
        for (this, other) in [(1.0, 2.0), (3.0, 4.0), (2.0, 3.0)] {
            c.record(Metric::Ask, cur, 1, 0, Value::Measured(this));
            c.record(Metric::Ask, cur, 1, 1, Value::Measured(other));
            c.record(Metric::Relay, cur, 1, 0, Value::Measured(this * 1000.0));
            c.record(Metric::Relay, cur, 1, 1, Value::Measured(other * 1000.0));
            c.record(Metric::IdleMemory, cur, 1, 0, Value::Measured(this));
            c.record(Metric::IdleMemory, cur, 1, 1, Value::NotApplicable("gone"));
        }
        c
    }

    fn row<'a>(table: &'a str, starts: &str) -> &'a str {
        table
            .lines()
            .find(|l| l.starts_with(starts))
            .unwrap_or_else(|| panic!("no row {starts:?} in {table}"))
    }

    #[test]
    fn a_cost_compares_this_build_over_the_other() {
        let table = comparison().markdown();
        assert_eq!(
            row(&table, "| ask |"),
            "| ask | current-thread | taskthread | ns/round trip | 2.00 (1.00–3.00) | 3.00 (2.00–4.00) | 0.67× |"
        );
    }

    #[test]
    fn a_throughput_compares_the_other_build_over_this_one() {
        let table = comparison().markdown();
        let relay = row(&table, "| relay |");
        assert!(
            relay.ends_with("| 2000 (1000–3000) | 3000 (2000–4000) | 1.50× |"),
            "{relay}"
        );
    }

    #[test]
    fn a_figure_one_build_cannot_give_has_no_ratio() {
        let table = comparison().markdown();
        let memory = row(&table, "| idle memory |");
        assert!(
            memory.ends_with("| 2.00 (1.00–3.00) | n/a | n/a |"),
            "{memory}"
        );
    }

    #[test]
    fn a_missing_program_is_refused() {
        let err = check(Path::new("/nonexistent/taskthread-bench")).unwrap_err();
        assert!(
            err.starts_with("cannot run /nonexistent/taskthread-bench"),
            "{err}"
        );
    }

    #[test]
    fn another_program_is_refused() {
        let err = check(Path::new("/bin/sh")).unwrap_err();
        assert!(err.contains("is not a build of taskthread-bench"), "{err}");
    }
}
