//! Scoped tracing subscribers in a binary whose other tests log on other threads.
//!
//! tracing caches each callsite's interest process-wide. While a single dispatcher exists,
//! a callsite first reached on some thread takes its interest from that thread's default
//! alone: if the one dispatcher is a scoped subscriber on another test's thread, the
//! callsite is cached as of no interest and that subscriber misses its events. With a
//! second dispatcher alive for the whole run, tracing asks every live dispatcher instead,
//! and each thread's own subscriber decides for the events on that thread (see
//! `tracing_core::callsite`, `Dispatchers::rebuilder`).

use std::sync::OnceLock;

use tracing::Dispatch;
use tracing::subscriber::NoSubscriber;

/// Makes tracing compute each callsite's interest with every live dispatcher for the rest
/// of the run. Call it before installing a scoped subscriber.
pub(crate) fn share_callsite_interest() {
    static BYSTANDER: OnceLock<Dispatch> = OnceLock::new();
    BYSTANDER.get_or_init(|| Dispatch::new(NoSubscriber::default()));
}
