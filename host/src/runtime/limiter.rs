//! The per-instance resource limiter: wasmtime's `StoreLimits` (memory cap,
//! trap on a refused grow) plus a count of the linear memory the instance
//! holds, so the host can report and the tests can bound what a session
//! costs. Linear memory never shrinks, so this is also the session's peak.
//! It also remembers that it refused a grow, which is how a fault is known
//! to be the memory cap's ([`super::GuestFault::MemoryLimit`]) without
//! reading the error's text.

use wasmtime::{ResourceLimiter, StoreLimits};

pub(super) struct Limiter {
    limits: StoreLimits,
    memory_bytes: usize,
    /// A grow was refused (over the cap) or failed: set once, never reset,
    /// since a refused grow traps (`trap_on_grow_failure`) and the
    /// instance is not used again.
    grow_refused: bool,
}

impl Limiter {
    pub(super) fn new(limits: StoreLimits) -> Self {
        Limiter { limits, memory_bytes: 0, grow_refused: false }
    }

    /// Bytes of linear memory across the instance's memories.
    pub(super) fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Whether this instance was refused linear memory.
    pub(super) fn grow_refused(&self) -> bool {
        self.grow_refused
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed =
            self.limits.memory_growing(current, desired, maximum).inspect_err(|_| self.grow_refused = true)?;
        if !allowed {
            self.grow_refused = true;
        } else {
            // Creation is reported as a grow from 0, so the sum of the
            // increments is the total held.
            self.memory_bytes += desired.saturating_sub(current);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_refused = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
