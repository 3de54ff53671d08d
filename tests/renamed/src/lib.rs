//! Compile tests of the `#[taskthread]` macro in a crate whose dependency on taskthread has
//! another name (`tt = { package = "taskthread" }`); they live in `tests/`.
