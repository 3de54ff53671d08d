//! `/metrics`: a snapshot's series (`watch`'s `series`) in the Prometheus text exposition
//! format, version 0.0.4.

use std::fmt::Write as _;

use crate::watch::series::{self, Kind, Label, Sink};
use crate::watch::{Timing, WatchMessage};

/// The snapshot's figures, as Prometheus text.
pub(super) fn render(message: &WatchMessage) -> String {
    let WatchMessage::Snapshot(snapshot) = message else {
        return String::new();
    };
    let mut text = Text::default();
    series::write_all(&snapshot.threads, &mut text);
    text.0
}

/// The text being written.
#[derive(Default)]
struct Text(String);

impl Sink for Text {
    fn describe(&mut self, name: &'static str, kind: Kind, help: &'static str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Timing => "summary",
        };
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn value(&mut self, name: &'static str, labels: &[Label<'_>], value: f64) {
        self.sample(name, "", labels, value);
    }

    fn timing(&mut self, name: &'static str, labels: &[Label<'_>], timing: Timing) {
        for (quantile, us) in [("0.5", timing.p50_us), ("0.99", timing.p99_us)] {
            let mut with = labels.to_vec();
            with.push(("quantile", quantile));
            self.sample(name, "", &with, us as f64 / 1e6);
        }
        self.sample(name, "_count", labels, timing.samples as f64);
    }
}

impl Text {
    fn sample(&mut self, name: &str, suffix: &str, labels: &[Label<'_>], value: f64) {
        self.0.push_str(name);
        self.0.push_str(suffix);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"");
                escape(&mut self.0, value);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut text = Text::default();
        text.value("x", &[("path", "a\"b\\c\nd")], 1.5);
        assert_eq!(text.0, "x{path=\"a\\\"b\\\\c\\nd\"} 1.5\n");
        let mut text = Text::default();
        text.value("y", &[], 2.0);
        assert_eq!(text.0, "y 2\n");
    }

    #[test]
    fn timings_are_summaries() {
        let mut text = Text::default();
        text.describe("t", Kind::Timing, "help");
        let timing = Timing {
            samples: 3,
            p50_us: 1_500,
            p99_us: 20_000,
        };
        text.timing("t", &[("path", "a")], timing);
        assert_eq!(
            text.0,
            "# HELP t help\n# TYPE t summary\nt{path=\"a\",quantile=\"0.5\"} 0.0015\nt{path=\"a\",quantile=\"0.99\"} 0.02\nt_count{path=\"a\"} 3\n"
        );
    }
}
