//! Back-off for accept loops whose accept(2) fails (out of file
//! descriptors, out of memory, …): failing again at once would spin a core
//! and fill the log, and the condition only clears when connections end.

use std::time::{Duration, Instant};

/// First delay after a failure.
const FIRST: Duration = Duration::from_millis(5);
/// Longest delay: a waiting client is taken within a second of a
/// descriptor coming free.
const MAX: Duration = Duration::from_secs(1);
/// At most one warning per this interval; it carries the count since the last.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Bounded exponential back-off with a rate-limited warning.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    /// Failures since the last warning.
    unreported: u64,
    last_warn: Option<Instant>,
}

/// What to do after one failure.
#[derive(Debug, PartialEq, Eq)]
pub struct Failed {
    /// How long to wait before accepting again.
    pub delay: Duration,
    /// `Some(failures since the last warning)` when a warning is due now.
    pub warn: Option<u64>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST, unreported: 0, last_warn: None }
    }
}

impl Backoff {
    /// Records a failure at `now`: the delay doubles from 5 ms up to 1 s, and
    /// a warning is due for the first failure and then at most every 10 s.
    pub fn failed(&mut self, now: Instant) -> Failed {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX);
        self.unreported += 1;
        let due = self.last_warn.is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
        let warn = due.then(|| {
            self.last_warn = Some(now);
            std::mem::take(&mut self.unreported)
        });
        Failed { delay, warn }
    }

    /// An accept succeeded: the next failure starts from the first delay.
    pub fn succeeded(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_up_to_a_second_and_resets_on_success() {
        let mut backoff = Backoff::default();
        let now = Instant::now();
        let delays: Vec<u64> = (0..10).map(|_| backoff.failed(now).delay.as_millis() as u64).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(now).delay, FIRST);
    }

    #[test]
    fn warns_once_then_every_ten_seconds_with_the_count() {
        let mut backoff = Backoff::default();
        let start = Instant::now();
        assert_eq!(backoff.failed(start).warn, Some(1));
        for _ in 0..5 {
            assert_eq!(backoff.failed(start + Duration::from_secs(1)).warn, None);
        }
        assert_eq!(backoff.failed(start + WARN_EVERY).warn, Some(6));
    }
}
