//! Panics a test provokes on purpose, kept out of the output: [`hide_expected_panics`].
//!
//! The panic hook is the process's: every test of the binary that provokes panics goes
//! through this one function, which adds to a single hook and never replaces it, so the
//! panics of the other tests (a failed assertion above all) still print.

use std::sync::{Mutex, Once};

static EXPECTED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Keeps panics whose message contains `marker` out of the test output (a test provokes
/// them on purpose), and shows every other one as usual, failed assertions included. Call
/// it from each test that provokes such a panic (once per case of a property test is fine);
/// markers add up, for the whole binary.
pub(crate) fn hide_expected_panics(marker: &'static str) {
    static HOOK: Once = Once::new();
    let mut expected = EXPECTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !expected.contains(&marker) {
        expected.push(marker);
    }
    drop(expected);
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or_default();
            // A failed `assert!` or `assert_eq!` may quote an expected message; it prints.
            let expected = !message.starts_with("assertion")
                && EXPECTED
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .any(|marker| message.contains(marker));
            if !expected {
                default(info);
            }
        }));
    });
}
