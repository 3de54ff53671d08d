//! Child exits that only the runtime's log reports.
//!
//! A thread that has failed runs no more handlers: the exits of its children then reach no
//! `#[up]` handler and are only logged (guide, chapter 5: "its children's exits are only
//! logged"). To count *every* report of an exit, the test installs this subscriber for the
//! case and collects those log events: the ones with both a `parent` and a `child` field
//! (`child` being the child's path). Everything else is disabled, so the runtime's other
//! events and spans cost nothing.
//!
//! tracing caches per-callsite interest process-wide, and other tests of the binary log on
//! other threads at the same time: the case installs it only after making that cache
//! consider every subscriber ([`crate::tracing_interest`]), and each case makes a new
//! dispatcher, which makes tracing compute the interest again.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

/// One logged child exit.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoggedExit {
    pub(crate) parent: String,
    pub(crate) child: String,
    pub(crate) message: String,
}

/// The subscriber; clones share the list.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExitLog(Arc<Mutex<Vec<LoggedExit>>>);

impl ExitLog {
    pub(crate) fn take(&self) -> Vec<LoggedExit> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn is_exit_event(meta: &Metadata<'_>) -> bool {
    meta.is_event()
        && meta.fields().field("parent").is_some()
        && meta.fields().field("child").is_some()
}

impl Visit for LoggedExit {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `child = %path` and the message are `Display` values, whose `Debug` is `Display`.
        self.record(field, format!("{value:?}"));
    }
}

impl LoggedExit {
    fn record(&mut self, field: &Field, value: String) {
        match field.name() {
            "parent" => self.parent = value,
            "child" => self.child = value,
            "message" => self.message = value,
            _ => {}
        }
    }
}

impl Subscriber for ExitLog {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_exit_event(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        is_exit_event(meta)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Never called: no span is enabled.
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut exit = LoggedExit::default();
        event.record(&mut exit);
        self.0.lock().unwrap().push(exit);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
