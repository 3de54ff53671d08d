//! Integration tests of taskthread live in `tests/`; this library holds only what several of
//! them share without a thread type: [`hide_expected_panics`].

use std::sync::{Mutex, Once};

static EXPECTED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Keeps panics whose message contains `marker` out of the test output (a test provokes
/// them on purpose), and shows every other one as usual. Call it from each test that
/// provokes such a panic; markers add up.
pub fn hide_expected_panics(marker: &'static str) {
    static HOOK: Once = Once::new();
    EXPECTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(marker);
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or_default();
            let expected = EXPECTED
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
