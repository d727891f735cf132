//! Upkeep without timers: a task (a sweep, a warning) is done by the first
//! caller that finds it due, and then not again for an interval.

use std::sync::atomic::{AtomicU64, Ordering};

/// Whether the time `due` holds has come at `now`; if so, moves it
/// `interval` on, so that only one of the callers racing gets true. Both
/// are in the caller's unit (seconds, microseconds).
pub(crate) fn take_due(due: &AtomicU64, now: u64, interval: u64) -> bool {
    let next = due.load(Ordering::Relaxed);
    now >= next
        && due.compare_exchange(next, now.saturating_add(interval), Ordering::Relaxed, Ordering::Relaxed).is_ok()
}
