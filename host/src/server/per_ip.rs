//! Concurrent connections per client address: one client must not take
//! every slot of the server. The accept loop applies it to the peer; for
//! a peer that is a proxy, the connection applies it to the client the
//! PROXY header names (super::proxy), on the same counts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::backoff::Throttle;

pub struct PerIpLimit {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
    /// The warning for clients refused at the limit, wherever refused.
    refusals: Mutex<Throttle>,
}

impl PerIpLimit {
    pub fn new(max: usize) -> Arc<PerIpLimit> {
        Arc::new(PerIpLimit { max, counts: Mutex::new(HashMap::new()), refusals: Mutex::default() })
    }

    /// Records a client refused at the limit at `now`; `Some(refusals since
    /// the last warning)` when a warning is due (see [`Throttle`]).
    pub fn refused(&self, now: Instant) -> Option<u64> {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner()).hit(now)
    }

    /// A slot for one more connection from `ip`, or `None` at the limit.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot { limit: self.clone(), ip })
    }
}

/// Released when the connection ends.
pub struct IpSlot {
    limit: Arc<PerIpLimit>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.limit.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_releases() {
        let limit = PerIpLimit::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limit.try_acquire(a).unwrap();
        let _second = limit.try_acquire(a).unwrap();
        assert!(limit.try_acquire(a).is_none());
        assert!(limit.try_acquire(b).is_some());
        drop(first);
        assert!(limit.try_acquire(a).is_some());
    }
}
