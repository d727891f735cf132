//! Connections open at once, per client address and per network: a count
//! per key, held by a [`ConnectionSlot`] for the life of a connection.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;

use super::Limited;

/// Open connections per key. Only keys with a connection open have an
/// entry (removed at zero), so the maps hold at most as many entries as
/// the server has connections, which its own limits bound.
#[derive(Default)]
struct Counts {
    clients: HashMap<IpAddr, u32>,
    networks: HashMap<IpNet, u32>,
}

/// The concurrency limits; either may be off.
pub(super) struct Concurrency {
    client: Option<NonZeroU32>,
    network: Option<NonZeroU32>,
    counts: Mutex<Counts>,
}

/// A connection's place in the concurrency counts, given back on drop.
/// Holds nothing when no concurrency limit is configured or the client is
/// exempt.
#[must_use = "the connection's slot is given back when this is dropped"]
pub struct ConnectionSlot {
    held: Option<Held>,
}

struct Held {
    concurrency: Arc<Concurrency>,
    client: IpAddr,
    network: IpNet,
}

impl Concurrency {
    /// `None` when neither limit is configured: nothing to count.
    pub(super) fn new(client: Option<NonZeroU32>, network: Option<NonZeroU32>) -> Option<Arc<Concurrency>> {
        (client.is_some() || network.is_some())
            .then(|| Arc::new(Concurrency { client, network, counts: Mutex::default() }))
    }

    /// Locks the counts: the caller checks, decides on its other limits,
    /// then [`Admission::take`]s, all under the one lock, so that two
    /// connections racing for the last slot cannot both get it.
    pub(super) fn lock(self: &Arc<Self>) -> Admission<'_> {
        // A panic while holding the lock leaves counts that are still
        // whole numbers: go on with them.
        Admission { concurrency: self, counts: self.counts.lock().unwrap_or_else(|e| e.into_inner()) }
    }
}

/// The concurrency counts, locked for one admission.
pub(super) struct Admission<'a> {
    concurrency: &'a Arc<Concurrency>,
    counts: MutexGuard<'a, Counts>,
}

impl Admission<'_> {
    /// Whether one more connection from `client` in `network` fits.
    pub(super) fn allows(&self, client: IpAddr, network: IpNet) -> Result<(), Limited> {
        let full = |max: Option<NonZeroU32>, open: Option<&u32>| {
            max.is_some_and(|max| open.copied().unwrap_or(0) >= max.get())
        };
        if full(self.concurrency.client, self.counts.clients.get(&client)) {
            return Err(Limited::ClientConcurrentConnections);
        }
        if full(self.concurrency.network, self.counts.networks.get(&network)) {
            return Err(Limited::NetworkConcurrentConnections);
        }
        Ok(())
    }

    /// Counts the connection, until the slot is dropped.
    pub(super) fn take(mut self, client: IpAddr, network: IpNet) -> ConnectionSlot {
        if self.concurrency.client.is_some() {
            *self.counts.clients.entry(client).or_default() += 1;
        }
        if self.concurrency.network.is_some() {
            *self.counts.networks.entry(network).or_default() += 1;
        }
        ConnectionSlot { held: Some(Held { concurrency: Arc::clone(self.concurrency), client, network }) }
    }
}

impl ConnectionSlot {
    /// A slot that counts nothing.
    pub(super) fn none() -> ConnectionSlot {
        ConnectionSlot { held: None }
    }
}

impl std::fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSlot").field("held", &self.held.is_some()).finish()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let Some(held) = &self.held else { return };
        let mut counts = held.concurrency.counts.lock().unwrap_or_else(|e| e.into_inner());
        let counts = &mut *counts;
        release(&mut counts.clients, held.client);
        release(&mut counts.networks, held.network);
    }
}

/// One fewer open connection for `key`; the entry goes at zero.
fn release<K: Hash + Eq>(counts: &mut HashMap<K, u32>, key: K) {
    if let Entry::Occupied(mut open) = counts.entry(key) {
        *open.get_mut() -= 1;
        if *open.get() == 0 {
            open.remove();
        }
    }
}

#[cfg(test)]
impl Concurrency {
    /// How many keys have a connection counted (clients, networks).
    pub(super) fn keys(&self) -> (usize, usize) {
        let counts = self.counts.lock().unwrap();
        (counts.clients.len(), counts.networks.len())
    }
}
