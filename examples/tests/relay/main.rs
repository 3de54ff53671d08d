//! Tests of the `relay` example through its library (`taskthread_examples::relay`): one
//! test binary, a module per topic. Run one topic with a filter, e.g.
//! `cargo test -p taskthread-examples --test relay end_to_end::`.

mod bad_input;
mod budget;
mod delivery;
mod destinations;
mod distributed;
mod end_to_end;
mod frame;
mod receipts;
mod serve;
mod slow_peers;

// Shared by several topics.
mod common;
