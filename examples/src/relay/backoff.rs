//! Exponential backoff: how long to wait before the next connection attempt.

use std::time::Duration;

/// The waits between attempts: `min` first, doubled after each failure up to `max`, and
/// back to `min` after a success.
///
/// ```
/// use std::time::Duration;
/// use taskthread_examples::relay::backoff::Backoff;
///
/// let ms = Duration::from_millis;
/// let mut backoff = Backoff::new(ms(100), ms(300));
/// let waits = [(); 3].map(|()| backoff.next_wait());
/// assert_eq!(waits, [ms(100), ms(200), ms(300)]);
/// backoff.reset();
/// assert_eq!(backoff.next_wait(), ms(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits from `min` to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next attempt, after a failure; the one after is twice as long.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(self.max);
        wait
    }

    /// An attempt succeeded: the next wait is `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}
