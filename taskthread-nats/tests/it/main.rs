//! Integration tests of taskthread-nats through its public API: one test binary, a module
//! per topic. The protocol's tests run on the memory transport with tokio's paused clock;
//! `nats.rs` runs against a real `nats-server` on a free loopback port.

mod bad_input;
mod basics;
mod guarantees;
mod limits;
mod nats;
mod snapshot;
mod supervision;
mod world;
