//! Integration tests of taskthread through its public API: one test binary, a module per
//! topic. Run one topic with a filter, e.g. `cargo test -p taskthread-tests --test it
//! stopping::`.
//!
//! The binary's tests share one process: a test that provokes panics hides them with
//! [`panics::hide_expected_panics`] (never its own panic hook), and a test that collects
//! logs with a scoped tracing subscriber first calls
//! [`tracing_interest::share_callsite_interest`]. The test that needs a global subscriber is
//! a binary of its own (`background_reports/main.rs`).

// Topics.
mod background;
mod blocking_limit;
mod control;
mod cores;
mod deadlines;
mod job_pool;
mod logging;
mod messages;
mod misuse;
mod own_places;
mod pass_up;
mod proptest_supervision;
mod proptest_tree;
mod proxy;
mod rescheduling;
mod run;
mod smoke;
mod soak;
mod stopping;
mod streams;
mod supervision;
mod tree;
mod ui;
mod waits;
mod watch;
mod web;
mod worker_pool;

// Shared by several topics.
mod common;
mod panics;
mod tracing_interest;
