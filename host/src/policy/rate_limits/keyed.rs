//! One keyed rate limit (governor's GCRA, one cell per key) whose memory
//! stays bounded however many distinct keys clients make up, and which can
//! be asked whether a request would pass without counting it.

use std::convert::Infallible;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as GovernorClockTrait;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{RateLimiter, StateStore};
use governor::{NotUntil, Quota};

use super::Limited;
use crate::policy::clock::Clock;

/// The most keys one limit remembers. An idle key is forgotten once its
/// window has passed; a key costs about 100 bytes (an address) to 300 (a
/// long reverse-path), so the cap holds one limit under 30 MB while being
/// far above the distinct clients an MX sees within one window.
pub(super) const MAX_KEYS: usize = 100_000;

/// How often a full limit may scan its keys to forget the idle ones: a
/// scan walks every key, so a flood of new keys must not run one each.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Governor's view of our [`Clock`]: the monotonic reading, in
/// nanoseconds, so that rate windows ignore wall-clock steps.
#[derive(Clone)]
pub(super) struct GovernorClock(pub(super) Arc<dyn Clock>);

impl GovernorClockTrait for GovernorClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.0.monotonic())
    }
}

/// Where a key's count is kept: its own cell, or, when the limit is full,
/// the one cell every key it has no room for shares.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Slot<K> {
    Key(K),
    Overflow,
}

/// A request to the store: count it, or only say whether it would pass.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Probe<K> {
    slot: Slot<K>,
    count: bool,
}

/// Governor's concurrent map of cells, with a cap on its keys and a
/// read-only probe.
struct BoundedStore<K: Hash + Eq> {
    cells: DashMapStateStore<Slot<K>>,
    overflow: Slot<K>,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    /// The slot a request for `slot` uses: its own while it has one or
    /// there is room, else the shared overflow cell. So a flood of distinct
    /// keys is itself limited, by one count, and memory stays bounded.
    fn resolve<'a>(&'a self, slot: &'a Slot<K>) -> &'a Slot<K> {
        if self.cells.contains_key(slot) || self.cells.len() < MAX_KEYS { slot } else { &self.overflow }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = Probe<K>;

    fn measure_and_replace<T, F, E>(&self, probe: &Probe<K>, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let slot = self.resolve(&probe.slot);
        if probe.count {
            return self.cells.measure_and_replace(slot, f);
        }
        if !self.cells.contains_key(slot) {
            // An unknown key has its whole burst; a probe must not insert it.
            return f(None).map(|(outcome, _)| outcome);
        }
        // Governor's cell stores the new state only when the closure says
        // Ok: answering Err with the outcome leaves the cell untouched.
        match self.cells.measure_and_replace::<Infallible, _, _>(slot, |state| Err(f(state).map(|(o, _)| o))) {
            Ok(never) => match never {},
            Err(outcome) => outcome,
        }
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<Probe<K>> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.cells.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.cells);
    }

    fn len(&self) -> usize {
        self.cells.len()
    }

    fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

/// One configured limit: `quota` requests per key, as a burst, then one
/// more each `window / count`.
pub(super) struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: RateLimiter<Probe<K>, BoundedStore<K>, GovernorClock, NoOpMiddleware<Nanos>>,
    clock: GovernorClock,
    /// The monotonic time, in nanoseconds, before which a full limit does
    /// not scan again.
    next_sweep: AtomicU64,
    /// What a refusal by this limit reports.
    refusal: Limited,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `count` requests per minute; `None` (off) when `count` is.
    pub(super) fn per_minute(count: Option<NonZeroU32>, clock: &GovernorClock, refusal: Limited) -> Option<Self> {
        count.map(|count| KeyedLimit::new(Quota::per_minute(count), clock, refusal))
    }

    /// `count` requests per hour; `None` (off) when `count` is.
    pub(super) fn per_hour(count: Option<NonZeroU32>, clock: &GovernorClock, refusal: Limited) -> Option<Self> {
        count.map(|count| KeyedLimit::new(Quota::per_hour(count), clock, refusal))
    }

    fn new(quota: Quota, clock: &GovernorClock, refusal: Limited) -> KeyedLimit<K> {
        let store = BoundedStore { cells: DashMapStateStore::default(), overflow: Slot::Overflow };
        KeyedLimit {
            limiter: RateLimiter::new(quota, store, clock.clone()),
            clock: clock.clone(),
            next_sweep: AtomicU64::new(0),
            refusal,
        }
    }

    /// Whether one more request for `key` would pass now; counts nothing.
    pub(super) fn allows(&self, key: &K) -> Result<(), Limited> {
        let probe = Probe { slot: Slot::Key(key.clone()), count: false };
        self.limiter.check_key(&probe).map_err(|_: NotUntil<Nanos>| self.refusal)
    }

    /// Counts one request for `key` (whether or not it passed: the caller
    /// has decided already, by [`KeyedLimit::allows`]).
    pub(super) fn count(&self, key: K) {
        self.sweep_if_full();
        let _ = self.limiter.check_key(&Probe { slot: Slot::Key(key), count: true });
    }

    /// Forgets the keys idle for a window, when the limit is full and has
    /// not scanned within [`SWEEP_INTERVAL`].
    fn sweep_if_full(&self) {
        if self.limiter.len() < MAX_KEYS {
            return;
        }
        let now = self.clock.now().as_u64();
        let next = self.next_sweep.load(Ordering::Relaxed);
        let after = now.saturating_add(Nanos::from(SWEEP_INTERVAL).as_u64());
        if now >= next && self.next_sweep.compare_exchange(next, after, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.limiter.retain_recent();
        }
    }

    /// How many keys the limit remembers (the overflow cell included).
    #[cfg(test)]
    pub(super) fn keys(&self) -> usize {
        self.limiter.len()
    }
}

/// [`KeyedLimit::allows`] for a limit that may be off (`None`: allows all).
pub(super) fn allows<K: Hash + Eq + Clone>(limit: &Option<KeyedLimit<K>>, key: &K) -> Result<(), Limited> {
    limit.as_ref().map_or(Ok(()), |limit| limit.allows(key))
}

/// [`KeyedLimit::count`] for a limit that may be off (`None`: nothing).
pub(super) fn count<K: Hash + Eq + Clone>(limit: &Option<KeyedLimit<K>>, key: K) {
    if let Some(limit) = limit {
        limit.count(key);
    }
}
