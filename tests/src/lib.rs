//! Integration tests of taskthread live in `tests/`; this library is empty.
