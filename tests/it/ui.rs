//! Compile tests of the `#[taskthread]` macro: what must compile (`tests/ui/pass`) and what
//! must be rejected, with which message (`tests/ui/fail`, one scenario per file).
//!
//! After changing a message on purpose, regenerate the snapshots with
//! `TRYBUILD=overwrite cargo test -p taskthread-tests --test it ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
