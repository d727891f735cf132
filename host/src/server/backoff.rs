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
    warning: Throttle,
}

/// A warning that is due at most once per 10 s, carrying how often its
/// cause happened since the last one: a flood (of failures, of refused
/// clients) costs one log line per interval, not one per event.
#[derive(Debug, Default)]
pub struct Throttle {
    /// Occurrences since the last warning.
    unreported: u64,
    last_warn: Option<Instant>,
}

impl Throttle {
    /// Records one occurrence at `now`; `Some(occurrences since the last
    /// warning, this one included)` when a warning is due now.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        self.unreported += 1;
        let due = self.last_warn.is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
        due.then(|| {
            self.last_warn = Some(now);
            std::mem::take(&mut self.unreported)
        })
    }
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
        Backoff { next: FIRST, warning: Throttle::default() }
    }
}

impl Backoff {
    /// Records a failure at `now`: the delay doubles from 5 ms up to 1 s, and
    /// a warning is due for the first failure and then at most every 10 s.
    pub fn failed(&mut self, now: Instant) -> Failed {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX);
        Failed { delay, warn: self.warning.hit(now) }
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

    #[test]
    fn a_flood_of_events_is_one_warning_per_interval() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        let due: Vec<Option<u64>> =
            (0..1000).map(|n| throttle.hit(start + WARN_EVERY * 3 * n / 1000)).filter(Option::is_some).collect();
        // At 0, 10, 20 s: three warnings whose counts add up to every event.
        assert_eq!(due.len(), 3, "{due:?}");
        assert_eq!(due.iter().flatten().sum::<u64>() + throttle.unreported, 1000);
    }
}
