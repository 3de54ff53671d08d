//! `taskthread-bench`: taskthread side by side with hand-written tokio (the limit) and
//! with the frameworks users would pick instead, on the same workloads, in one run.
//!
//! Every workload runs for every system on the current-thread and on the multi-thread
//! runtime, for several rounds (systems interleaved within a round), and the medians are
//! printed as a markdown table with each system's cost relative to hand-written tokio.
//!
//! ```text
//! cargo run --release -p taskthread-bench -- --quick
//! cargo run --release -p taskthread-bench -- --json docs/bench/results.json --charts docs/bench --markdown table.md
//! cargo run --release -p taskthread-bench -- --only tell --only ask --rounds 3
//! ```
//!
//! The workloads, the model each system follows and what is not applicable are described in
//! `docs/benchmarks.md`. Every workload is measured in a fresh process (this binary re-runs
//! itself, see [`isolate`]): a process that has already run other workloads keeps their
//! heap, and a system's figures would depend on what ran before it. Idle memory has a fresh
//! process of its own too, because a process keeps freed memory resident and would
//! under-count.
//!
//! `--against PATH` compares this build with another build of the program instead, figure
//! by figure, in turn (see [`compare`]):
//!
//! ```text
//! cargo run --release -p taskthread-bench -- --against /tmp/before --only shutdown --rounds 10
//! ```

mod actix_sys;
mod chart;
mod compare;
mod isolate;
mod kameo_sys;
mod model;
mod probe;
mod ractor_sys;
mod relay;
mod report;
mod taskthread_sys;
mod tgs_sys;
mod tokio_cores;
mod tokio_hand;

use std::io::Write as _;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::model::{Flavour, Metric, Scale, System, Value, Workload};
use crate::report::Results;

/// Runs every workload for every system, on both tokio runtime flavours, and reports the
/// medians with each system's ratio to hand-written tokio.
#[derive(Debug, Parser)]
#[command(name = "taskthread-bench", version)]
struct Cli {
    /// A reduced run that finishes in under two minutes (smaller workloads, 3 rounds unless
    /// --rounds says otherwise).
    #[arg(long)]
    quick: bool,
    /// Rounds per figure; the report gives the median (default: 5, or 3 with --quick).
    #[arg(long, value_name = "N")]
    rounds: Option<NonZeroU32>,
    /// Run only this workload (repeat for several).
    #[arg(long, value_enum, value_name = "WORKLOAD")]
    only: Vec<Workload>,
    /// Run only this system (repeat for several); include tokio for the ratios. By default
    /// every system runs but tokio-cores, a control for the periodic workload (hand-written
    /// tokio on one current-thread runtime per core), run only when named.
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(SYSTEM_NAMES))]
    system: Vec<String>,
    /// Run only on this runtime flavour (repeat for both, the default).
    #[arg(long, value_name = "RUNTIME", value_parser = clap::builder::PossibleValuesParser::new(["current-thread", "multi-thread"]))]
    runtime: Vec<String>,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write the markdown table to this file (it is printed on stdout in any case).
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    /// Write one SVG bar chart per workload into this directory.
    #[arg(long, value_name = "DIR")]
    charts: Option<PathBuf>,
    /// Run every workload in this one process instead of a fresh process each: figures then
    /// depend on what ran before them (the heap other workloads and systems left).
    #[arg(long)]
    shared_process: bool,
    /// Compare this build with another build of taskthread-bench (the one at PATH, built
    /// before a change, say): run every selected figure in both, in turn, each in a fresh
    /// process, and report both medians and their ratio instead of the ratios to tokio.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["shared_process", "json", "charts"])]
    against: Option<PathBuf>,
    /// Internal: run SYSTEM:WORKLOAD:RUNTIME once in this process and print its figures.
    #[arg(long, hide = true, value_name = "SYSTEM:WORKLOAD:RUNTIME")]
    figure: Option<String>,
    /// Internal: measure idle memory of SYSTEM:RUNTIME:N in this process and print
    /// "before after" in bytes.
    #[arg(long, hide = true, value_name = "SYSTEM:RUNTIME:N")]
    memory_probe: Option<String>,
}

/// The systems, in column order (the first is the reference).
const SYSTEM_NAMES: [&str; 8] = [
    "tokio",
    "tokio-cores",
    "taskthread",
    "taskthread-cores",
    "kameo",
    "ractor",
    "actix",
    "tokio-graceful-shutdown",
];

/// The controls: systems run only when named with `--system`, not frameworks users would
/// pick.
const CONTROLS: [&str; 1] = ["tokio-cores"];

fn systems() -> Vec<Box<dyn System>> {
    vec![
        Box::new(tokio_hand::TokioHand),
        Box::new(tokio_cores::TokioCores),
        Box::new(taskthread_sys::TaskthreadSys),
        Box::new(taskthread_sys::TaskthreadCoresSys),
        Box::new(kameo_sys::KameoSys),
        Box::new(ractor_sys::RactorSys),
        Box::new(actix_sys::ActixSys),
        Box::new(tgs_sys::TgsSys),
    ]
}

/// The systems `--system` names, in column order; with none named, every system but the
/// [`CONTROLS`] ones.
fn select_systems(named: &[String]) -> Vec<Box<dyn System>> {
    systems()
        .into_iter()
        .filter(|s| {
            if named.is_empty() {
                !CONTROLS.contains(&s.name())
            } else {
                named.iter().any(|n| n == s.name())
            }
        })
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(spec) = &cli.memory_probe {
        return memory_probe(spec);
    }
    let scale = if cli.quick {
        Scale::quick()
    } else {
        Scale::full()
    };
    if let Some(spec) = &cli.figure {
        return isolate::child(spec, systems(), &scale);
    }
    let rounds = cli
        .rounds
        .map_or(if cli.quick { 3 } else { 5 }, NonZeroU32::get);
    let workloads: Vec<Workload> = if cli.only.is_empty() {
        Workload::ALL.to_vec()
    } else {
        Workload::ALL
            .into_iter()
            .filter(|w| cli.only.contains(w))
            .collect()
    };
    let systems = select_systems(&cli.system);
    let flavours: Vec<Flavour> = Flavour::ALL
        .into_iter()
        .filter(|f| cli.runtime.is_empty() || cli.runtime.iter().any(|r| r == f.name()))
        .collect();
    if scale.quick {
        eprintln!(
            "quick run: {rounds} rounds, smaller workloads (tell {} messages, ask {}, fan-in {} per child, shutdown flat {} instead of 100000, periodic for {:?}, relay {} frames per client)",
            scale.tell_messages,
            scale.asks,
            scale.fan_in_per_child,
            scale.shutdown_flat,
            scale.periodic_for,
            scale.relay_frames
        );
    }

    if let Some(other) = &cli.against {
        return compare_against(
            other,
            &systems,
            &workloads,
            &flavours,
            rounds,
            &scale,
            cli.markdown.as_deref(),
        );
    }

    let started = Instant::now();
    let mut results = Results::new(
        systems.iter().map(|s| (s.name(), s.note())).collect(),
        scale.clone(),
    );
    for round in 1..=rounds {
        for &workload in &workloads {
            for &flavour in &flavours {
                for (i, system) in systems.iter().enumerate() {
                    let t = Instant::now();
                    let figures = if cli.shared_process {
                        system.run(workload, flavour, &scale)
                    } else {
                        isolate::run(system.as_ref(), workload, flavour, scale.quick)
                    };
                    let mut line = format!(
                        "[{:>4.0}s] round {round}/{rounds} {workload:?} {} {}:",
                        started.elapsed().as_secs_f64(),
                        flavour.name(),
                        system.name()
                    );
                    for (metric, value) in figures {
                        results.record(metric, flavour, i, value);
                        line.push_str(&report::describe(metric, value));
                    }
                    if workload == Workload::Spawn {
                        let value = idle_memory(system.as_ref(), flavour, scale.spawn_children);
                        results.record(Metric::IdleMemory, flavour, i, value);
                        line.push_str(&report::describe(Metric::IdleMemory, value));
                    }
                    eprintln!("{line} ({:.1}s)", t.elapsed().as_secs_f64());
                }
            }
        }
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());

    let table = results.markdown();
    let mut ok = print_out(&table);
    if let Some(path) = &cli.markdown {
        ok &= write_file(path, table.as_bytes());
    }
    if let Some(path) = &cli.json {
        ok &= write_file(path, results.json().as_bytes());
    }
    if let Some(dir) = &cli.charts {
        match chart::write_all(&results, dir) {
            Ok(files) => eprintln!("{} charts written to {}", files.len(), dir.display()),
            Err(e) => {
                eprintln!("error: cannot write the charts to {}: {e}", dir.display());
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `--against`: compares this build with the one at `other`, prints the table, and writes it
/// to `markdown` if asked. A run that fails stops the comparison: what was compared until
/// then is printed before the error.
fn compare_against(
    other: &Path,
    systems: &[Box<dyn System>],
    workloads: &[Workload],
    flavours: &[Flavour],
    rounds: u32,
    scale: &Scale,
    markdown: Option<&Path>,
) -> ExitCode {
    let other = match compare::resolve(other) {
        Ok(other) => other,
        Err(e) => {
            eprintln!("error: --against: {e}");
            return ExitCode::FAILURE;
        }
    };
    if rounds != compare::even_rounds(rounds) {
        eprintln!(
            "comparing over {} rounds, so that each build goes first as often",
            compare::even_rounds(rounds)
        );
    }
    let plan = compare::Plan {
        other: &other,
        systems,
        workloads,
        flavours,
        rounds,
        scale,
    };
    let (comparison, failure) = compare::run(&plan);
    let table = comparison.markdown();
    let printed = print_out(&table);
    let written = markdown.is_none_or(|path| write_file(path, table.as_bytes()));
    if let Some(e) = failure {
        eprintln!("error: the comparison stopped: {e}");
        return ExitCode::FAILURE;
    }
    if printed && written {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints `text` and a newline on stdout. A stdout closed early (the table piped into
/// `head`, say) is an error reported on stderr rather than a panic, so that the files asked
/// for after the table are still written.
pub(crate) fn print_out(text: &str) -> bool {
    match writeln!(std::io::stdout().lock(), "{text}") {
        Ok(()) => true,
        Err(e) => {
            eprintln!("error: cannot print to stdout: {e}");
            false
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> bool {
    match std::fs::File::create(path).and_then(|mut f| f.write_all(bytes)) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            false
        }
    }
}

/// Idle memory of one system, per child: the growth of its anonymous resident memory
/// (heap and stacks, not code), measured in a fresh process.
fn idle_memory(system: &dyn System, flavour: Flavour, n: usize) -> Value {
    isolate::idle_memory_in(&isolate::this_program(), system, flavour, n)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs in a fresh process: prints "before after" (bytes).
fn memory_probe(spec: &str) -> ExitCode {
    let Some((name, flavour, n)) = isolate::three_fields(spec) else {
        eprintln!("error: --memory-probe takes SYSTEM:RUNTIME:N");
        return ExitCode::FAILURE;
    };
    let (Some(system), Some(flavour), Ok(n)) = (
        systems().into_iter().find(|s| s.name() == name),
        Flavour::parse(flavour),
        n.parse::<usize>(),
    ) else {
        eprintln!("error: unknown system, runtime or count in {spec:?}");
        return ExitCode::FAILURE;
    };
    let (before, after) = system.idle_memory(flavour, n);
    if print_out(&format!("{before} {after}")) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::{CONTROLS, Cli, SYSTEM_NAMES, select_systems, systems};

    /// The names `--system` accepts are the systems', in column order.
    #[test]
    fn every_system_has_its_name_in_column_order() {
        let names: Vec<&str> = systems().iter().map(|s| s.name()).collect();
        assert_eq!(names, SYSTEM_NAMES);
        assert!(CONTROLS.iter().all(|name| SYSTEM_NAMES.contains(name)));
    }

    /// A run that names no system runs every one but the controls; a control runs when
    /// named, with the others named beside it.
    #[test]
    fn controls_run_only_when_named() {
        let default: Vec<&str> = select_systems(&[]).iter().map(|s| s.name()).collect();
        assert_eq!(default.len(), SYSTEM_NAMES.len() - CONTROLS.len());
        assert!(!default.contains(&"tokio-cores"), "{default:?}");
        assert!(default.contains(&"tokio") && default.contains(&"taskthread-cores"));

        let named = [
            "taskthread".to_owned(),
            "tokio-cores".into(),
            "tokio".into(),
        ];
        let chosen: Vec<&str> = select_systems(&named).iter().map(|s| s.name()).collect();
        assert_eq!(chosen, ["tokio", "tokio-cores", "taskthread"]);
    }

    /// `--against` takes a build for one whose `--version` says so.
    #[test]
    fn the_version_names_the_program() {
        let version = Cli::command().render_version();
        assert!(version.starts_with("taskthread-bench "), "{version:?}");
    }
}
