//! The macro in a crate that depends on taskthread under another name: it finds the crate
//! through Cargo.toml, without `#[taskthread(crate = "...")]`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/*.rs");
}
