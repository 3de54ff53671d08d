//! Each workload in a fresh process: the parent re-runs this program (or, for `--against`,
//! another build of it) once per round, workload, runtime flavour and system, and reads the
//! figures back from its output.
//!
//! A process that has run other workloads (or other systems) keeps their heap: freed
//! blocks scattered over many pages, arenas grown by other threads. Every later allocation
//! then lands on colder memory, and how much that costs depends on the allocation pattern
//! of the system measured, so in one shared process a system's figures depend on what ran
//! before it. A fresh process per workload gives every system the same start. (The figures
//! of one workload — tell's two queue sizes, the four shutdown shapes — still share their
//! process, in a fixed order that is the same for every system.)
//!
//! The child prints one line per figure: `SLUG m VALUE` when measured, `SLUG n WHY` when
//! not applicable. What it writes to stderr goes to the parent's stderr.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Mutex, OnceLock};

use clap::ValueEnum as _;

use crate::model::{Figures, Flavour, Metric, Scale, System, Value, Workload};

/// This program, to run again: `/proc/self/exe` where there is one, which still runs this
/// very binary if it was rebuilt (replaced) while the run goes on.
pub(crate) fn this_program() -> PathBuf {
    let proc_self = PathBuf::from("/proc/self/exe");
    if proc_self.exists() {
        proc_self
    } else {
        std::env::current_exe().expect("this program's path")
    }
}

/// Runs one workload of one system in a fresh process and returns its figures.
///
/// # Panics
/// If the child fails, or does not print each figure of `workload` once: the report would
/// otherwise be silently incomplete.
pub(crate) fn run(
    system: &dyn System,
    workload: Workload,
    flavour: Flavour,
    quick: bool,
) -> Figures {
    run_in(&this_program(), system.name(), workload, flavour, quick)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one workload of the system named `system` in a fresh process of `program` (this
/// program, or another build of it) and returns its figures; an error says which run failed
/// and how.
pub(crate) fn run_in(
    program: &Path,
    system: &str,
    workload: Workload,
    flavour: Flavour,
    quick: bool,
) -> Result<Figures, String> {
    let mut command = Command::new(program);
    command
        .arg("--figure")
        .arg(spec(system, workload, flavour))
        .stderr(Stdio::inherit());
    if quick {
        command.arg("--quick");
    }
    let what = format!(
        "the run of {workload:?} {} {system} by {}",
        flavour.name(),
        program.display()
    );
    let out = command
        .output()
        .map_err(|e| format!("{what} could not start: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}; its stderr is above)",
            out.status
        ));
    }
    parse(workload, &stdout)
        .map_err(|e| format!("{what} printed an unreadable figure ({e}): {stdout:?}"))
}

/// Idle memory of one system, per child, measured in a fresh process of `program` (this
/// program, or another build of it).
pub(crate) fn idle_memory_in(
    program: &Path,
    system: &dyn System,
    flavour: Flavour,
    n: usize,
) -> Result<Value, String> {
    if let Some(why) = system.idle_memory_not_applicable(flavour) {
        return Ok(Value::NotApplicable(why));
    }
    let what = format!(
        "the memory probe of {} {} by {}",
        system.name(),
        flavour.name(),
        program.display()
    );
    let out = Command::new(program)
        .arg("--memory-probe")
        .arg(format!("{}:{}:{n}", system.name(), flavour.name()))
        .output()
        .map_err(|e| format!("{what} could not start: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    match (out.status.success(), fields.next(), fields.next()) {
        (true, Some(Ok(before)), Some(Ok(after))) => Ok(Value::Measured(
            after.saturating_sub(before) as f64 / n as f64,
        )),
        _ => Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Runs in the fresh process: measures `SYSTEM:WORKLOAD:RUNTIME` and prints its figures.
pub(crate) fn child(spec: &str, systems: Vec<Box<dyn System>>, scale: &Scale) -> ExitCode {
    let Some((name, workload, flavour)) = three_fields(spec) else {
        eprintln!("error: --figure takes SYSTEM:WORKLOAD:RUNTIME");
        return ExitCode::FAILURE;
    };
    let (Some(system), Ok(workload), Some(flavour)) = (
        systems.into_iter().find(|s| s.name() == name),
        Workload::from_str(workload, false),
        Flavour::parse(flavour),
    ) else {
        eprintln!("error: unknown system, workload or runtime in {spec:?}");
        return ExitCode::FAILURE;
    };
    for (metric, value) in system.run(workload, flavour, scale) {
        if !crate::print_out(&line(metric, value)) {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// The line the child prints for one figure.
fn line(metric: Metric, value: Value) -> String {
    match value {
        // `{:?}` prints an `f64` so that it parses back to the same value.
        Value::Measured(v) => format!("{} m {v:?}", metric.slug()),
        Value::NotApplicable(why) => {
            assert!(!why.contains('\n'), "a reason for n/a is one line: {why:?}");
            format!("{} n {why}", metric.slug())
        }
    }
}

/// The fields of a child's `A:B:C` argument, if it has exactly three.
pub(crate) fn three_fields(spec: &str) -> Option<(&str, &str, &str)> {
    let mut parts = spec.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c), None) => Some((a, b, c)),
        _ => None,
    }
}

/// The `--figure` argument naming one run.
fn spec(system: &str, workload: Workload, flavour: Flavour) -> String {
    let workload = workload
        .to_possible_value()
        .expect("every workload has a name");
    format!("{system}:{}:{}", workload.get_name(), flavour.name())
}

/// Reads the child's lines back into figures of `workload`: each of its figures once
/// (idle memory is measured apart, by the parent).
fn parse(workload: Workload, out: &str) -> Result<Figures, String> {
    let mut figures = Figures::new();
    for line in out.lines() {
        let mut fields = line.splitn(3, ' ');
        let (Some(slug), Some(kind), Some(rest)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("not SLUG KIND VALUE: {line:?}"));
        };
        let Some(&metric) = workload.metrics().iter().find(|m| m.slug() == slug) else {
            return Err(format!("{slug:?} is not a metric of {workload:?}"));
        };
        let value = match kind {
            "m" => Value::Measured(rest.parse().map_err(|e| format!("{rest:?}: {e}"))?),
            "n" => Value::NotApplicable(intern(rest)),
            _ => return Err(format!("unknown kind {kind:?}")),
        };
        if figures.iter().any(|&(m, _)| m == metric) {
            return Err(format!("{slug:?} twice"));
        }
        figures.push((metric, value));
    }
    let missing: Vec<&str> = workload
        .metrics()
        .iter()
        .filter(|&&m| m != Metric::IdleMemory && !figures.iter().any(|&(f, _)| f == m))
        .map(|m| m.slug())
        .collect();
    if !missing.is_empty() {
        return Err(format!("no figure for {}", missing.join(", ")));
    }
    Ok(figures)
}

/// A reason for "not applicable" as the report keeps it (`&'static str`, the type every
/// system gives in-process). Each distinct reason is kept once, for the life of the run.
fn intern(why: &str) -> &'static str {
    static KEPT: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut kept = KEPT
        .get_or_init(Default::default)
        .lock()
        .expect("no panic while interning");
    if let Some(&why) = kept.get(why) {
        return why;
    }
    let leaked: &'static str = Box::leak(why.to_owned().into_boxed_str());
    kept.insert(why.to_owned(), leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the child prints for `figures`, as it prints it.
    fn printed(figures: &[(Metric, Value)]) -> String {
        figures.iter().map(|&(m, v)| line(m, v) + "\n").collect()
    }

    #[test]
    fn figures_read_back_as_printed() {
        let cases = [0.1 + 0.2, 5e-324, 1e300, 162.999_418_000_000_02];
        for v in cases {
            let figures = vec![
                (Metric::PeriodicCpu, Value::Measured(v)),
                (Metric::PeriodicP50, Value::Measured(v / 3.0)),
                (
                    Metric::PeriodicP99,
                    Value::NotApplicable("no periodic tasks"),
                ),
            ];
            assert_eq!(parse(Workload::Periodic, &printed(&figures)), Ok(figures));
        }
    }

    #[test]
    fn idle_memory_is_not_expected_from_the_child() {
        let figures = vec![(Metric::Spawn, Value::Measured(0.88))];
        assert_eq!(parse(Workload::Spawn, &printed(&figures)), Ok(figures));
    }

    #[test]
    fn a_reason_is_kept_once() {
        let a = intern("the same reason");
        let b = intern(&String::from("the same reason"));
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn bad_output_is_an_error() {
        assert!(parse(Workload::Ask, "").is_err());
        assert!(parse(Workload::Ask, "ask m fast").is_err());
        assert!(parse(Workload::Ask, "ask x 1.0").is_err());
        assert!(parse(Workload::Ask, "tell-64 m 1.0").is_err());
        assert!(parse(Workload::Ask, "ask").is_err());
        assert!(parse(Workload::Ask, "ask m 1.0\nask m 2.0").is_err());
        assert!(parse(Workload::Tell, "tell-64 m 1.0").is_err());
    }

    #[test]
    #[should_panic(expected = "one line")]
    fn a_reason_of_two_lines_is_refused() {
        let _ = line(Metric::Ask, Value::NotApplicable("two\nlines"));
    }

    #[test]
    fn a_spec_has_three_fields() {
        assert_eq!(three_fields("a:b:c"), Some(("a", "b", "c")));
        assert_eq!(three_fields("a:b"), None);
        assert_eq!(three_fields("a:b:c:d"), None);
    }

    #[test]
    fn a_spec_names_workloads_as_the_command_line_does() {
        let spec = spec("tokio", Workload::FanIn, Flavour::MultiThread);
        assert_eq!(spec, "tokio:fan-in:multi-thread");
        let workload = spec.split(':').nth(1).unwrap();
        assert_eq!(Workload::from_str(workload, false), Ok(Workload::FanIn));
    }
}
