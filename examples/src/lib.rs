//! Runnable templates for taskthread: see the files next to this crate (`cargo run --example
//! NAME`).
//!
//! The threads of the flagship example, [`relay`], live in this library so that its tests
//! (`examples/tests/relay/`) can drive them through the real components; the example's
//! binary (`examples/relay.rs`) is only its command line. So do those of [`notify`] (a
//! synchronous program driving a background tree; `examples/notify.rs`, tested in
//! `examples/tests/notify.rs`).

pub mod notify;
pub mod relay;
