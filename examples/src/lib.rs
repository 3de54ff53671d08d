//! Runnable templates for taskthread: see the files next to this crate (`cargo run --example NAME`).
