//! `/metrics`: a snapshot's figures in the Prometheus text exposition format (version
//! 0.0.4), one series per thread (label `path`), per message type and per task.

use std::fmt::Write as _;

use crate::watch::{Fill, MessageView, Snapshot, ThreadView, Timing, WatchMessage};

/// The snapshot's figures, as Prometheus text.
pub(super) fn render(message: &WatchMessage) -> String {
    let WatchMessage::Snapshot(snapshot) = message else {
        return String::new();
    };
    let mut out = Metrics::default();
    out.family(
        "taskthread_threads",
        "gauge",
        "Threads in the watched tree.",
    );
    out.sample("taskthread_threads", &[], snapshot.threads.len() as f64);
    render_threads(&mut out, snapshot);
    out.text
}

fn render_threads(out: &mut Metrics, snapshot: &Snapshot) {
    let threads = &snapshot.threads;
    let each = |out: &mut Metrics,
                name: &str,
                kind: &str,
                help: &str,
                f: &dyn Fn(&mut Metrics, &ThreadView)| {
        out.family(name, kind, help);
        for t in threads {
            f(out, t);
        }
    };
    each(
        out,
        "taskthread_thread_up",
        "gauge",
        "1 for each thread, labelled with its type and state.",
        &|out, t| {
            out.sample(
                "taskthread_thread_up",
                &[
                    ("path", &t.path),
                    ("type", &t.type_name),
                    ("state", &t.state),
                ],
                1.0,
            );
        },
    );
    each(
        out,
        "taskthread_handled_total",
        "counter",
        "DOWN and UP messages, stream items and task runs handled.",
        &|out, t| {
            out.sample(
                "taskthread_handled_total",
                &[("path", &t.path)],
                t.handled as f64,
            );
        },
    );
    each(
        out,
        "taskthread_queue_depth",
        "gauge",
        "Messages queued, by queue (down or inbound).",
        &|out, t| {
            queue(out, "taskthread_queue_depth", t, |f| f.depth);
        },
    );
    each(
        out,
        "taskthread_queue_capacity",
        "gauge",
        "The capacity of each queue.",
        &|out, t| {
            queue(out, "taskthread_queue_capacity", t, |f| f.capacity);
        },
    );
    each(
        out,
        "taskthread_queue_waiting_senders",
        "gauge",
        "Senders waiting for room in a full queue.",
        &|out, t| {
            queue(out, "taskthread_queue_waiting_senders", t, |f| f.waiting);
        },
    );
    each(
        out,
        "taskthread_restarts_total",
        "counter",
        "Lives after the first.",
        &|out, t| {
            out.sample(
                "taskthread_restarts_total",
                &[("path", &t.path)],
                f64::from(t.restarts),
            );
        },
    );
    each(
        out,
        "taskthread_restart_budget_used",
        "gauge",
        "Restarts within the policy's window (supervised threads).",
        &|out, t| {
            if let Some(b) = t.budget {
                out.sample(
                    "taskthread_restart_budget_used",
                    &[("path", &t.path)],
                    f64::from(b.used),
                );
            }
        },
    );
    each(
        out,
        "taskthread_restart_budget_max",
        "gauge",
        "The most restarts the policy allows within its window.",
        &|out, t| {
            if let Some(b) = t.budget {
                out.sample(
                    "taskthread_restart_budget_max",
                    &[("path", &t.path)],
                    f64::from(b.max),
                );
            }
        },
    );
    each(
        out,
        "taskthread_messages_handled_total",
        "counter",
        "Messages handled while watched, by kind and type.",
        &|out, t| {
            for m in &t.messages {
                out.sample(
                    "taskthread_messages_handled_total",
                    &message_labels(t, m),
                    m.handled as f64,
                );
            }
        },
    );
    each(
        out,
        "taskthread_handler_seconds",
        "summary",
        "Handler time (sampled) by message type.",
        &|out, t| {
            for m in &t.messages {
                summary(
                    out,
                    "taskthread_handler_seconds",
                    &message_labels(t, m),
                    m.handler,
                );
            }
        },
    );
    each(
        out,
        "taskthread_queue_wait_seconds",
        "summary",
        "Time in the DOWN queue (sampled) by message type.",
        &|out, t| {
            for m in &t.messages {
                summary(
                    out,
                    "taskthread_queue_wait_seconds",
                    &message_labels(t, m),
                    m.wait,
                );
            }
        },
    );
    each(
        out,
        "taskthread_task_lateness_seconds",
        "gauge",
        "How late the last run of a rescheduling task started.",
        &|out, t| {
            for task in &t.tasks {
                out.sample(
                    "taskthread_task_lateness_seconds",
                    &[("path", &t.path), ("task", &task.name)],
                    task.late_last_us as f64 / 1e6,
                );
            }
        },
    );
    each(
        out,
        "taskthread_task_lateness_max_seconds",
        "gauge",
        "The latest a run of a rescheduling task started while watched.",
        &|out, t| {
            for task in &t.tasks {
                out.sample(
                    "taskthread_task_lateness_max_seconds",
                    &[("path", &t.path), ("task", &task.name)],
                    task.late_max_us as f64 / 1e6,
                );
            }
        },
    );
    each(
        out,
        "taskthread_pool_workers",
        "gauge",
        "A worker pool's workers: running, busy, max.",
        &|out, t| {
            if let Some(p) = t.pool {
                for (state, n) in [("running", p.running), ("busy", p.busy), ("max", p.max)] {
                    out.sample(
                        "taskthread_pool_workers",
                        &[("path", &t.path), ("state", state)],
                        n as f64,
                    );
                }
            }
        },
    );
    each(
        out,
        "taskthread_stop_deadline_left_seconds",
        "gauge",
        "For a stopping thread: the time left before its stop deadline aborts it.",
        &|out, t| {
            if let Some(left) = t.stop.as_ref().and_then(|s| s.deadline_left_ms) {
                out.sample(
                    "taskthread_stop_deadline_left_seconds",
                    &[("path", &t.path)],
                    left as f64 / 1e3,
                );
            }
        },
    );
}

fn queue(out: &mut Metrics, name: &str, t: &ThreadView, figure: impl Fn(Fill) -> usize) {
    out.sample(
        name,
        &[("path", &t.path), ("queue", "down")],
        figure(t.queue) as f64,
    );
    if let Some(inbound) = t.inbound {
        out.sample(
            name,
            &[("path", &t.path), ("queue", "inbound")],
            figure(inbound) as f64,
        );
    }
}

fn message_labels<'a>(t: &'a ThreadView, m: &'a MessageView) -> [(&'a str, &'a str); 3] {
    let kind = match m.kind {
        crate::watch::MessageKind::Down => "down",
        crate::watch::MessageKind::Up => "up",
        crate::watch::MessageKind::Exit => "exit",
        crate::watch::MessageKind::Restart => "restart",
        crate::watch::MessageKind::Task => "task",
    };
    [("path", &t.path), ("kind", kind), ("message", &m.name)]
}

fn summary(out: &mut Metrics, name: &str, labels: &[(&str, &str)], timing: Option<Timing>) {
    let Some(timing) = timing else {
        return;
    };
    for (quantile, us) in [("0.5", timing.p50_us), ("0.99", timing.p99_us)] {
        let mut with = labels.to_vec();
        with.push(("quantile", quantile));
        out.sample(name, &with, us as f64 / 1e6);
    }
    out.sample(&format!("{name}_count"), labels, timing.samples as f64);
}

/// The text being written.
#[derive(Default)]
struct Metrics {
    text: String,
}

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"");
                escape(&mut self.text, value);
                self.text.push('"');
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
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
        let mut m = Metrics::default();
        m.sample("x", &[("path", "a\"b\\c\nd")], 1.5);
        assert_eq!(m.text, "x{path=\"a\\\"b\\\\c\\nd\"} 1.5\n");
        let mut m = Metrics::default();
        m.sample("y", &[], 2.0);
        assert_eq!(m.text, "y 2\n");
    }
}
