//! One keyed rate limit (governor's GCRA, one cell per key) whose memory
//! stays bounded however many distinct keys clients make up, and which can
//! be asked whether a request would pass without counting it.

use std::hash::Hash;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use governor::clock::Clock as GovernorClockTrait;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
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

/// One key's GCRA state: the theoretical arrival time, in nanoseconds
/// since the limiter started, 0 for a key that has its whole burst. It is
/// governor's `InMemoryState` (the same compare-and-swap loop, the same
/// encoding), which keeps its one-step update crate-private: owning the
/// cell lets the store answer a request with one map lookup instead of
/// three.
#[derive(Default)]
struct Cell(AtomicU64);

impl Cell {
    /// Governor's `f` decides from the state; `Ok` carries the state to
    /// store, which is stored only when `count` is set (else the request
    /// is only measured).
    fn measure<T, F, E>(&self, count: bool, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let state = |tat: u64| NonZeroU64::new(tat).map(|tat| Nanos::from(tat.get()));
        let mut previous = self.0.load(Ordering::Acquire);
        loop {
            let (outcome, next) = f(state(previous))?;
            if !count {
                return Ok(outcome);
            }
            match self.0.compare_exchange_weak(previous, next.as_u64(), Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return Ok(outcome),
                Err(current) => previous = current,
            }
        }
    }

    /// Takes one request's emission interval `t` (ns) back off the
    /// theoretical arrival time. GCRA stored `max(tat, now) + t` for the
    /// request; `max(tat, now)` decides every later request as `tat` did,
    /// so this undoes the count, whatever was counted since.
    fn give_back(&self, t: u64) {
        let _ = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| Some(tat.saturating_sub(t)));
    }

    /// Whether the state is no different from a fresh key's at `drop_below`.
    fn is_idle(&self, drop_below: Nanos) -> bool {
        self.0.load(Ordering::Relaxed) <= drop_below.as_u64()
    }
}

/// The cells of one limit: a concurrent map (dashmap, as governor's own
/// keyed store) with a cap on its keys.
struct Cells<K: Hash + Eq> {
    map: DashMap<Slot<K>, Cell>,
    overflow: Slot<K>,
    /// Set when a new key found the map full: idle keys are then worth a
    /// sweep (see [`KeyedLimit::count`]).
    crowded: AtomicBool,
}

/// Governor's view of the cells (the limiter owns its store; the limit
/// keeps the same cells to sweep them).
struct BoundedStore<K: Hash + Eq>(Arc<Cells<K>>);

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = Probe<K>;

    fn measure_and_replace<T, F, E>(&self, probe: &Probe<K>, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let cells = &self.0;
        if let Some(cell) = cells.map.get(&probe.slot) {
            return cell.measure(probe.count, f);
        }
        // A new key takes a cell while there is room, else shares the
        // overflow cell: a flood of distinct keys is itself limited, by
        // one count, and memory stays bounded.
        if cells.map.len() >= MAX_KEYS {
            cells.crowded.store(true, Ordering::Relaxed);
            let overflow = cells.map.entry(cells.overflow.clone()).or_default();
            return overflow.measure(probe.count, f);
        }
        if !probe.count {
            // A new key has its whole burst; a probe must not insert it.
            return f(None).map(|(outcome, _)| outcome);
        }
        cells.map.entry(probe.slot.clone()).or_default().measure(true, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<Probe<K>> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.map.retain(|_, cell| !cell.is_idle(drop_below));
    }

    fn shrink_to_fit(&self) {
        self.0.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.map.len()
    }

    fn is_empty(&self) -> bool {
        self.0.map.is_empty()
    }
}

/// One configured limit: `quota` requests per key, as a burst, then one
/// more each `window / count`.
pub(super) struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: RateLimiter<Probe<K>, BoundedStore<K>, GovernorClock, NoOpMiddleware<Nanos>>,
    cells: Arc<Cells<K>>,
    clock: GovernorClock,
    /// The monotonic time, in nanoseconds, before which a full limit does
    /// not scan again.
    next_sweep: AtomicU64,
    /// What a refusal by this limit reports.
    refusal: Limited,
    /// The quota's emission interval, in nanoseconds: what one counted
    /// request adds to its key's state.
    interval: u64,
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
        let cells =
            Arc::new(Cells { map: DashMap::default(), overflow: Slot::Overflow, crowded: AtomicBool::new(false) });
        KeyedLimit {
            limiter: RateLimiter::new(quota, BoundedStore(Arc::clone(&cells)), clock.clone()),
            cells,
            clock: clock.clone(),
            next_sweep: AtomicU64::new(0),
            refusal,
            // Governor's GCRA uses the same interval, at least 1 ns.
            interval: Nanos::from(quota.replenish_interval()).as_u64().max(1),
        }
    }

    /// Whether one more request for `key` would pass now; counts nothing.
    /// One map lookup.
    pub(super) fn allows(&self, key: &K) -> Result<(), Limited> {
        let probe = Probe { slot: Slot::Key(key.clone()), count: false };
        self.limiter.check_key(&probe).map_err(|_: NotUntil<Nanos>| self.refusal)
    }

    /// Counts one request for `key` if it passes; a refused one counts
    /// nothing. One map lookup for a known key, where asking
    /// ([`KeyedLimit::allows`]) and then counting takes two; a request
    /// that other limits must pass too gives its count back with
    /// [`KeyedLimit::give_back`] when one of them refuses it. A crowded
    /// limit first forgets its idle keys, so that a key new after a flood
    /// gets a cell of its own.
    pub(super) fn take(&self, key: &K) -> Result<(), Limited> {
        if self.cells.crowded.load(Ordering::Relaxed) {
            self.sweep();
        }
        let probe = Probe { slot: Slot::Key(key.clone()), count: true };
        self.limiter.check_key(&probe).map_err(|_: NotUntil<Nanos>| self.refusal)
    }

    /// Undoes one [`KeyedLimit::take`] for `key` that passed: in its own
    /// cell, or in the overflow cell that a key without room counted in.
    pub(super) fn give_back(&self, key: &K) {
        let cells = &self.cells;
        let cell = cells.map.get(&Slot::Key(key.clone())).or_else(|| cells.map.get(&cells.overflow));
        if let Some(cell) = cell {
            cell.give_back(self.interval);
        }
    }

    /// Forgets the keys idle for a window, unless the limit scanned within
    /// [`SWEEP_INTERVAL`]: a scan walks every key, so a flood of new keys
    /// must not run one each.
    fn sweep(&self) {
        let now = self.clock.now().as_u64();
        let next = self.next_sweep.load(Ordering::Relaxed);
        let after = now.saturating_add(Nanos::from(SWEEP_INTERVAL).as_u64());
        if now >= next && self.next_sweep.compare_exchange(next, after, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.limiter.retain_recent();
            self.cells.crowded.store(self.cells.map.len() >= MAX_KEYS, Ordering::Relaxed);
        }
    }

    /// How many keys the limit remembers (the overflow cell included).
    #[cfg(test)]
    pub(super) fn keys(&self) -> usize {
        self.cells.map.len()
    }
}

/// [`KeyedLimit::allows`] for a limit that may be off (`None`: allows all).
pub(super) fn allows<K: Hash + Eq + Clone>(limit: &Option<KeyedLimit<K>>, key: &K) -> Result<(), Limited> {
    limit.as_ref().map_or(Ok(()), |limit| limit.allows(key))
}

/// [`KeyedLimit::take`] for a limit that may be off (`None`: passes).
pub(super) fn take<K: Hash + Eq + Clone>(limit: &Option<KeyedLimit<K>>, key: &K) -> Result<(), Limited> {
    limit.as_ref().map_or(Ok(()), |limit| limit.take(key))
}

/// [`KeyedLimit::give_back`] for a limit that may be off (`None`: nothing).
pub(super) fn give_back<K: Hash + Eq + Clone>(limit: &Option<KeyedLimit<K>>, key: &K) {
    if let Some(limit) = limit {
        limit.give_back(key);
    }
}
