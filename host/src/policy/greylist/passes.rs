//! The passed triplets a greylist has seen, kept in memory in front of its
//! store: a known sender's every RCPT is a pass, and answering it from
//! memory spares it the blocking task and the database read (about 40 µs
//! against well under 1 µs; bench/README.md, "Policy cost (issue 14)").
//!
//! Only passes are kept, and a kept record is the store's own: a pass is
//! never taken back before it expires (only renewed, which goes through
//! the store: see [`Passes::get`]), so a copy stays true even when other
//! servers share the store. First sights and early retries always go to
//! the store, which alone orders them.

use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::DashMap;

use super::store::{Record, Triplet};

/// The most passes kept. A pass costs about 150 bytes (two addresses and
/// a network), so this holds under 16 MB; a busier MX pays the store read
/// for the rest.
const MAX_PASSES: usize = 100_000;

/// Passed triplets and their records, bounded by [`MAX_PASSES`].
#[derive(Default)]
pub(super) struct Passes {
    records: DashMap<Triplet, Record>,
    /// Set once an insert found the map full: the next sweep then frees
    /// room (see [`Passes::forget_expired`]).
    full: AtomicBool,
}

impl Passes {
    /// The kept record of `triplet`, if it passed. One map lookup.
    pub(super) fn get(&self, triplet: &Triplet) -> Option<Record> {
        self.records.get(triplet).map(|record| *record)
    }

    /// Keeps `record` for `triplet` when it is a pass and there is room;
    /// forgets any kept record otherwise.
    pub(super) fn keep(&self, triplet: &Triplet, record: Option<Record>) {
        match record {
            Some(record) if record.passed => {
                if self.records.contains_key(triplet) || self.records.len() < MAX_PASSES {
                    self.records.insert(triplet.clone(), record);
                } else {
                    self.full.store(true, Ordering::Relaxed);
                }
            }
            _ => {
                self.records.remove(triplet);
            }
        }
    }

    /// Forgets the passes that expire at or before `now` (the store's
    /// hourly sweep calls it), and, when the map has been full, every pass:
    /// a flood of senders must not hold the room forever, and a forgotten
    /// pass is only read from the store again.
    pub(super) fn forget_expired(&self, now: u64) {
        if self.full.swap(false, Ordering::Relaxed) {
            self.records.clear();
        } else {
            self.records.retain(|_, record| record.expires > now);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }
}
