//! The results of a run: medians over rounds, the markdown table and the JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{Flavour, Metric, Scale, Value};
use crate::probe;

/// The name of the reference system in every ratio.
pub(crate) const REFERENCE: &str = "tokio";

/// What one system gave for one metric on one runtime, over all rounds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cell {
    /// One figure per round.
    pub(crate) samples: Vec<f64>,
    /// Why the system cannot run this, if it cannot.
    pub(crate) not_applicable: Option<&'static str>,
}

impl Cell {
    /// The median of the rounds, if any were measured.
    pub(crate) fn median(&self) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        Some(probe::median(&mut self.samples.clone()))
    }
}

/// All figures of a run.
#[derive(Debug)]
pub(crate) struct Results {
    /// The systems in column order, with their notes.
    pub(crate) systems: Vec<(&'static str, Option<&'static str>)>,
    /// Figures by (metric, runtime, system index).
    pub(crate) cells: BTreeMap<(Metric, Flavour, usize), Cell>,
    /// The sizes used.
    pub(crate) scale: Scale,
}

/// One entry of the JSON output.
#[derive(Debug, Serialize)]
struct JsonResult {
    workload: String,
    runtime: &'static str,
    system: &'static str,
    median: Option<f64>,
    unit: &'static str,
    ratio_to_tokio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_applicable: Option<&'static str>,
}

/// The JSON document.
#[derive(Debug, Serialize)]
struct JsonReport {
    results: Vec<JsonResult>,
}

impl Results {
    /// Empty results for these systems.
    pub(crate) fn new(systems: Vec<(&'static str, Option<&'static str>)>, scale: Scale) -> Self {
        Self {
            systems,
            cells: BTreeMap::new(),
            scale,
        }
    }

    /// Records one figure.
    pub(crate) fn record(&mut self, metric: Metric, flavour: Flavour, system: usize, value: Value) {
        let cell = self.cells.entry((metric, flavour, system)).or_default();
        match value {
            Value::Measured(v) => cell.samples.push(v),
            Value::NotApplicable(why) => cell.not_applicable = Some(why),
        }
    }

    /// The (metric, runtime) pairs that have figures, in report order.
    pub(crate) fn rows(&self) -> Vec<(Metric, Flavour)> {
        let mut rows: Vec<_> = self.cells.keys().map(|&(m, f, _)| (m, f)).collect();
        rows.dedup();
        rows
    }

    /// The median of one system's figure.
    pub(crate) fn median(&self, metric: Metric, flavour: Flavour, system: usize) -> Option<f64> {
        self.cells.get(&(metric, flavour, system))?.median()
    }

    /// The reference (hand-written tokio) median for a row.
    fn reference(&self, metric: Metric, flavour: Flavour) -> Option<f64> {
        let i = self.systems.iter().position(|(n, _)| *n == REFERENCE)?;
        self.median(metric, flavour, i)
    }

    /// A system's cost relative to tokio on a row: above 1 is worse than tokio.
    pub(crate) fn ratio(&self, metric: Metric, flavour: Flavour, system: usize) -> Option<f64> {
        let value = self.median(metric, flavour, system)?;
        let tokio = self.reference(metric, flavour)?;
        Some(metric.ratio(value, tokio))
    }

    /// The markdown table: one row per metric and runtime, one column per system, each
    /// cell the median and its ratio to tokio; reasons for "n/a" as numbered notes below.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let mut notes: Vec<&'static str> = Vec::new();
        out.push_str("| workload | runtime | unit |");
        for (name, _) in &self.systems {
            let _ = write!(out, " {name} |");
        }
        out.push_str("\n| --- | --- | --- |");
        for _ in &self.systems {
            out.push_str(" ---: |");
        }
        out.push('\n');
        for (metric, flavour) in self.rows() {
            let _ = write!(
                out,
                "| {} | {} | {} |",
                metric.name(&self.scale),
                flavour.name(),
                metric.unit()
            );
            for i in 0..self.systems.len() {
                let cell = self.cells.get(&(metric, flavour, i));
                let text = match (cell.and_then(Cell::median), cell) {
                    (Some(v), _) => match self.ratio(metric, flavour, i) {
                        Some(r) if self.systems[i].0 != REFERENCE => {
                            format!("{} ({r:.2}×)", format_value(v))
                        }
                        _ => format_value(v),
                    },
                    (
                        None,
                        Some(Cell {
                            not_applicable: Some(why),
                            ..
                        }),
                    ) => {
                        let n = match notes.iter().position(|w| w == why) {
                            Some(n) => n + 1,
                            None => {
                                notes.push(why);
                                notes.len()
                            }
                        };
                        format!("n/a ({n})")
                    }
                    _ => "—".into(),
                };
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
        out.push_str(
            "\nEach cell: the median over the rounds, then in brackets its cost relative to \
             hand-written tokio on the same runtime (time, CPU, lateness or memory ÷ tokio's; \
             for frames/s, tokio's ÷ the system's): **above 1× is worse than tokio**, below \
             1× is better.\n",
        );
        if !notes.is_empty() {
            out.push_str("\nNot applicable:\n\n");
            for (i, why) in notes.iter().enumerate() {
                let _ = writeln!(out, "({}) {why}", i + 1);
                out.push('\n');
            }
        }
        let system_notes: Vec<_> = self
            .systems
            .iter()
            .filter_map(|(name, note)| note.map(|n| (name, n)))
            .collect();
        if !system_notes.is_empty() {
            out.push_str("Systems:\n\n");
            for (name, note) in system_notes {
                let _ = writeln!(out, "- {name}: {note}");
            }
        }
        out
    }

    /// The JSON document: `{"results":[{"workload","runtime","system","median","unit",
    /// "ratio_to_tokio"}]}`, with `not_applicable` (and null figures) where a system cannot
    /// run a workload.
    pub(crate) fn json(&self) -> String {
        let mut results = Vec::new();
        for (&(metric, flavour, i), cell) in &self.cells {
            results.push(JsonResult {
                workload: metric.name(&self.scale),
                runtime: flavour.name(),
                system: self.systems[i].0,
                median: cell.median(),
                unit: metric.unit(),
                ratio_to_tokio: self.ratio(metric, flavour, i),
                not_applicable: if cell.samples.is_empty() {
                    cell.not_applicable
                } else {
                    None
                },
            });
        }
        serde_json::to_string_pretty(&JsonReport { results }).expect("plain data serialises")
    }
}

/// A figure as a progress line shows it: ` SLUG=VALUE UNIT`, or ` SLUG n/a`.
pub(crate) fn describe(metric: Metric, value: Value) -> String {
    match value {
        Value::Measured(v) => format!(" {}={} {}", metric.slug(), format_value(v), metric.unit()),
        Value::NotApplicable(_) => format!(" {} n/a", metric.slug()),
    }
}

/// A figure with three significant digits or so, without a thousands separator.
pub(crate) fn format_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
