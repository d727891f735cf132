//! The one source of time for the policy's rate limits and greylisting, so
//! that tests move time forward instead of sleeping (issue 14: "Time is
//! injected").

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A source of time, shared as `Arc<dyn Clock>`.
///
/// Two readings, because the two users need different things: greylisting
/// stores wall-clock times that must mean the same after a restart, while a
/// rate window must not jump when the wall clock is stepped (NTP, an
/// administrator's `date`): a step back would lock every client out for
/// as long as the step, a step forward would forget every window.
pub trait Clock: Send + Sync + 'static {
    /// The wall-clock time.
    fn now(&self) -> SystemTime;

    /// Time elapsed since an origin fixed for the life of the process;
    /// never decreases.
    fn monotonic(&self) -> Duration;
}

/// The operating system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Duration {
        // One origin for every SystemClock, so that readings of two of
        // them compare.
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// A clock that stands still until told to move: both readings advance
/// together, by [`FakeClock::advance`] only. Share it as `Arc<FakeClock>`
/// (it coerces to `Arc<dyn Clock>`) and keep a handle to move it.
#[derive(Debug)]
pub struct FakeClock {
    start: SystemTime,
    /// Nanoseconds advanced since `start` (u64 nanoseconds last 584 years).
    elapsed: AtomicU64,
}

impl FakeClock {
    /// A clock that reads `start` until advanced.
    pub fn new(start: SystemTime) -> FakeClock {
        FakeClock { start, elapsed: AtomicU64::new(0) }
    }

    /// Moves both readings forward by `by`.
    ///
    /// # Panics
    /// If the total advanced exceeds 584 years.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).ok();
        self.elapsed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |elapsed| elapsed.checked_add(by?))
            .expect("a fake clock advances less than 584 years");
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        self.start + self.monotonic()
    }

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.elapsed.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_fake_clock_moves_only_when_advanced() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let fake = Arc::new(FakeClock::new(start));
        let clock: Arc<dyn Clock> = fake.clone();
        assert_eq!(clock.now(), start);
        assert_eq!(clock.monotonic(), Duration::ZERO);
        fake.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + Duration::from_secs(90));
        assert_eq!(clock.monotonic(), Duration::from_secs(90));
    }

    #[test]
    fn system_clock_monotonic_readings_never_go_back() {
        let a = SystemClock.monotonic();
        let b = SystemClock.monotonic();
        assert!(b >= a);
    }
}
