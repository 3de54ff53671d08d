//! `--against PATH`: this build of the benchmark and another, figure by figure, in turn.
//!
//! Whether a change helps is told by building the benchmark before and after it and running
//! the two builds in turn within the same stretch of time: the machine's speed drifts over
//! minutes and hours, and each figure is one short run in a fresh process. For every round,
//! workload, runtime and system, both builds measure the figure, each in a fresh process of
//! its own, the one that goes first swapped every round (over an even number of rounds, so
//! that each goes first as often); the report gives both medians, their spread and this
//! build's cost relative to the other's. A build compared with a copy of itself shows how
//! far the machine alone moves a figure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::isolate;
use crate::model::{Flavour, Metric, Scale, System, Value, Workload};
use crate::report::{Cell, describe, format_value};

/// One of the two builds compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    /// The program running the comparison.
    This,
    /// The one at `--against PATH`.
    Other,
}

impl Build {
    fn name(self) -> &'static str {
        match self {
            Build::This => "this build",
            Build::Other => "other build",
        }
    }

    /// Its place in a comparison's cells.
    fn index(self) -> usize {
        match self {
            Build::This => 0,
            Build::Other => 1,
        }
    }

    /// Which build measures first in `round` (counted from 1): this one in odd rounds.
    fn order(round: u32) -> [Build; 2] {
        if round % 2 == 1 {
            [Build::This, Build::Other]
        } else {
            [Build::Other, Build::This]
        }
    }
}

/// What to compare.
pub(crate) struct Plan<'a> {
    /// The other build of taskthread-bench, as [`resolve`] found it.
    pub(crate) other: &'a Path,
    pub(crate) systems: &'a [Box<dyn System>],
    pub(crate) workloads: &'a [Workload],
    pub(crate) flavours: &'a [Flavour],
    /// Rounds asked for; run rounded up to an even number.
    pub(crate) rounds: u32,
    pub(crate) scale: &'a Scale,
}

/// The rounds a comparison runs for `asked`: an even number, so that each build goes first
/// as often as the other.
pub(crate) fn even_rounds(asked: u32) -> u32 {
    asked + asked % 2
}

/// Finds the other build: `path` made absolute (a bare name is a file in the current
/// directory, not a program looked up in `PATH`), and checked to be a build of
/// taskthread-bench by running it with `--version`.
pub(crate) fn resolve(path: &Path) -> Result<PathBuf, String> {
    let program =
        std::fs::canonicalize(path).map_err(|e| format!("cannot find {}: {e}", path.display()))?;
    let out = Command::new(&program)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && version.starts_with("taskthread-bench ") {
        Ok(program)
    } else {
        Err(format!(
            "{} is not a build of taskthread-bench: its --version printed {:?}",
            program.display(),
            version.trim_end()
        ))
    }
}

/// Runs the comparison, with a line of progress per figure on stderr. If a run fails (the
/// other build cannot run a system or workload this one can, say), the comparison stops
/// there: what was compared until then comes with the error.
pub(crate) fn run(plan: &Plan<'_>) -> (Comparison, Option<String>) {
    let this = isolate::this_program();
    let program = |build: Build| match build {
        Build::This => this.as_path(),
        Build::Other => plan.other,
    };
    let rounds = even_rounds(plan.rounds);
    let mut comparison = Comparison::new(
        plan.systems.iter().map(|s| s.name()).collect(),
        plan.scale.clone(),
    );
    let started = Instant::now();
    for round in 1..=rounds {
        for &workload in plan.workloads {
            for &flavour in plan.flavours {
                for (i, system) in plan.systems.iter().enumerate() {
                    let mut line = format!(
                        "[{:>4.0}s] round {round}/{rounds} {workload:?} {} {}:",
                        started.elapsed().as_secs_f64(),
                        flavour.name(),
                        system.name()
                    );
                    for build in Build::order(round) {
                        let figures = measure(
                            program(build),
                            system.as_ref(),
                            workload,
                            flavour,
                            plan.scale,
                        );
                        let figures = match figures {
                            Ok(figures) => figures,
                            Err(e) => return (comparison, Some(e)),
                        };
                        let _ = write!(line, " {}:", build.name());
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
    (comparison, None)
}

/// One build's figures of one workload, with idle memory for the spawn workload, as the
/// full run measures them.
fn measure(
    program: &Path,
    system: &dyn System,
    workload: Workload,
    flavour: Flavour,
    scale: &Scale,
) -> Result<Vec<(Metric, Value)>, String> {
    let mut figures = isolate::run_in(program, system.name(), workload, flavour, scale.quick)?;
    if workload == Workload::Spawn {
        let n = scale.spawn_children;
        let memory = isolate::idle_memory_in(program, system, flavour, n)?;
        figures.push((Metric::IdleMemory, memory));
    }
    Ok(figures)
}

/// The figures of both builds.
#[derive(Debug)]
pub(crate) struct Comparison {
    systems: Vec<&'static str>,
    /// Figures by (metric, runtime, system index), one cell per build (see
    /// [`Build::index`]).
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

    /// Records one figure of one build.
    fn record(&mut self, metric: Metric, flavour: Flavour, system: usize, build: Build, v: Value) {
        let cell = &mut self.cells.entry((metric, flavour, system)).or_default()[build.index()];
        match v {
            Value::Measured(v) => cell.samples.push(v),
            Value::NotApplicable(why) => cell.not_applicable = Some(why),
        }
    }

    /// The markdown table: a row per metric, runtime and system that either build measured;
    /// each build's median with its lowest and highest figure, and this build's cost
    /// relative to the other's. Why a build could not give a figure is in numbered notes.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::from(
            "| workload | runtime | system | unit | this build | other build | this ÷ other |\n\
             | --- | --- | --- | --- | ---: | ---: | ---: |\n",
        );
        let mut notes: Vec<&'static str> = Vec::new();
        for (&(metric, flavour, system), cells) in &self.cells {
            if cells.iter().all(|c| c.samples.is_empty()) {
                continue;
            }
            let [this, other] = cells.each_ref().map(|cell| summarise(cell, &mut notes));
            let ratio = match (cells[0].median(), cells[1].median()) {
                (Some(this), Some(other)) if this > 0.0 && other > 0.0 => {
                    format!("{:.2}×", metric.ratio(this, other))
                }
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
            "\nEach build's cell: the median over the rounds, then the lowest and highest figure \
             (and in how many rounds, if not all gave one). The last column is this build's \
             cost relative to the other's (time, CPU, lateness or memory ÷ the other's; for \
             frames/s, the other's ÷ this one's): **below 1× this build is better**. Both \
             builds ran every figure in every round, each in a fresh process, the first of the \
             two swapped every round.\n",
        );
        for (i, why) in notes.iter().enumerate() {
            let _ = write!(out, "\n({}) {why}\n", i + 1);
        }
        out
    }
}

/// A build's cell: `median (lowest–highest)`, with how many rounds gave a figure when some
/// did not (their reason as a numbered note), or `n/a (k)` with the reason as note `k`.
fn summarise(cell: &Cell, notes: &mut Vec<&'static str>) -> String {
    let note = |notes: &mut Vec<&'static str>, why| {
        let k = notes.iter().position(|&n| n == why).unwrap_or_else(|| {
            notes.push(why);
            notes.len() - 1
        });
        k + 1
    };
    let (Some(median), Some(low), Some(high)) = (
        cell.median(),
        cell.samples.iter().copied().reduce(f64::min),
        cell.samples.iter().copied().reduce(f64::max),
    ) else {
        return match cell.not_applicable {
            Some(why) => format!("n/a ({})", note(notes, why)),
            None => "n/a".to_owned(),
        };
    };
    let spread = format!("{}–{}", format_value(low), format_value(high));
    match cell.not_applicable {
        Some(why) => {
            let k = cell.samples.len();
            format!(
                "{} ({spread}, in {k} round{}; the others ({}))",
                format_value(median),
                if k == 1 { "" } else { "s" },
                note(notes, why)
            )
        }
        None => format!("{} ({spread})", format_value(median)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison() -> Comparison {
        let mut c = Comparison::new(vec!["tokio", "taskthread"], Scale::quick());
        let cur = Flavour::CurrentThread;
        for (this, other) in [(1.0, 2.0), (3.0, 4.0), (2.0, 3.0)] {
            c.record(Metric::Ask, cur, 1, Build::This, Value::Measured(this));
            c.record(Metric::Ask, cur, 1, Build::Other, Value::Measured(other));
            c.record(
                Metric::Relay,
                cur,
                1,
                Build::This,
                Value::Measured(this * 1000.0),
            );
            c.record(
                Metric::Relay,
                cur,
                1,
                Build::Other,
                Value::Measured(other * 1000.0),
            );
            c.record(
                Metric::IdleMemory,
                cur,
                1,
                Build::This,
                Value::Measured(this),
            );
            c.record(
                Metric::IdleMemory,
                cur,
                1,
                Build::Other,
                Value::NotApplicable("gone"),
            );
            c.record(
                Metric::Spawn,
                cur,
                1,
                Build::This,
                Value::NotApplicable("never"),
            );
            c.record(
                Metric::Spawn,
                cur,
                1,
                Build::Other,
                Value::NotApplicable("never"),
            );
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
    fn a_figure_one_build_cannot_give_has_no_ratio_and_a_noted_reason() {
        let table = comparison().markdown();
        let memory = row(&table, "| idle memory |");
        assert!(
            memory.ends_with("| 2.00 (1.00–3.00) | n/a (1) | n/a |"),
            "{memory}"
        );
        assert!(table.contains("\n(1) gone\n"), "{table}");
    }

    #[test]
    fn a_figure_neither_build_gives_has_no_row() {
        let table = comparison().markdown();
        assert!(!table.contains("| spawn"), "{table}");
        assert!(!table.contains("never"), "{table}");
    }

    #[test]
    fn a_figure_some_rounds_did_not_give_says_so() {
        let mut c = Comparison::new(vec!["taskthread"], Scale::quick());
        let cur = Flavour::CurrentThread;
        c.record(Metric::Ask, cur, 0, Build::This, Value::Measured(2.0));
        c.record(
            Metric::Ask,
            cur,
            0,
            Build::This,
            Value::NotApplicable("flaky"),
        );
        c.record(Metric::Ask, cur, 0, Build::Other, Value::Measured(4.0));
        let table = c.markdown();
        let ask = row(&table, "| ask |");
        assert!(
            ask.ends_with(
                "| 2.00 (2.00–2.00, in 1 round; the others (1)) | 4.00 (4.00–4.00) | 0.50× |"
            ),
            "{ask}"
        );
    }

    #[test]
    fn a_zero_figure_has_no_ratio() {
        let mut c = Comparison::new(vec!["taskthread"], Scale::quick());
        let cur = Flavour::CurrentThread;
        c.record(
            Metric::IdleMemory,
            cur,
            0,
            Build::This,
            Value::Measured(10.0),
        );
        c.record(
            Metric::IdleMemory,
            cur,
            0,
            Build::Other,
            Value::Measured(0.0),
        );
        let table = c.markdown();
        assert!(
            row(&table, "| idle memory |").ends_with("| n/a |"),
            "{table}"
        );
    }

    #[test]
    fn each_build_goes_first_as_often() {
        assert_eq!(even_rounds(5), 6);
        assert_eq!(even_rounds(6), 6);
        let firsts: Vec<Build> = (1..=even_rounds(3)).map(|r| Build::order(r)[0]).collect();
        assert_eq!(
            firsts,
            [Build::This, Build::Other, Build::This, Build::Other]
        );
        for round in 1..=4 {
            let [a, b] = Build::order(round);
            assert_ne!(a, b);
        }
    }

    #[test]
    fn a_missing_program_is_refused() {
        let err = resolve(Path::new("/nonexistent/taskthread-bench")).unwrap_err();
        assert!(
            err.starts_with("cannot find /nonexistent/taskthread-bench"),
            "{err}"
        );
    }

    /// An executable script in a fresh directory that prints `version` for `--version`.
    #[cfg(unix)]
    fn script(name: &str, version: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let dir =
            std::env::temp_dir().join(format!("taskthread-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\necho '{version}'\n")).expect("the script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("mode");
        path
    }

    #[cfg(unix)]
    #[test]
    fn another_program_is_refused() {
        let path = script("other", "other-tool 1.0");
        let err = resolve(&path).unwrap_err();
        assert!(err.contains("is not a build of taskthread-bench"), "{err}");
        assert!(err.contains("other-tool 1.0"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_build_of_the_benchmark_is_found_by_its_whole_path() {
        let path = script("bench", "taskthread-bench 0.1.0");
        let found = resolve(&path).expect("accepted");
        assert!(found.is_absolute());
        assert_eq!(found, std::fs::canonicalize(&path).expect("exists"));
    }
}
