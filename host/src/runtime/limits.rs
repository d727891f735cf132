//! The sandbox's knobs: how much memory, CPU and how many instances one
//! connection's guest may use.

use std::time::Duration;

/// Per-instance and engine-wide limits.
///
/// Defaults and why:
/// - `max_memory`: 16 MiB of linear memory per instance. The core keeps at
///   most a 512-octet command buffer, one read of input, and the recipient
///   list (≤ `max_recipients` paths of ≤ 256 octets), so a healthy session
///   stays well under 1 MiB; 16 MiB leaves room for allocator slack while a
///   runaway guest is cut off long before it hurts the host.
/// - `call_budget`: 200 ms of CPU per guest call. Processing one 64 KiB read
///   takes well under a millisecond; a guest that needs 200 ms is broken or
///   hostile. The ticker makes a long call yield every `epoch_tick`, so other
///   connections keep running while it burns its budget.
/// - `max_instances`: the pooling allocator reserves this many instance
///   slots up front; it bounds live connections plus validation instances.
/// - `store_instances`, `store_tables`, `store_memories`, `table_elements`:
///   what one connection's Store may create. A Rust wasip2 component is one
///   core module plus a few adapter shims with one memory and small tables;
///   the caps leave headroom for a bigger build and refuse anything that
///   tries to multiply itself.
#[derive(Clone, Debug)]
pub struct SandboxLimits {
    pub max_memory: usize,
    pub call_budget: Duration,
    pub epoch_tick: Duration,
    pub max_instances: u32,
    pub store_instances: usize,
    pub store_tables: usize,
    pub store_memories: usize,
    pub table_elements: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            max_memory: 16 << 20,
            call_budget: Duration::from_millis(200),
            epoch_tick: Duration::from_millis(5),
            max_instances: 1024,
            store_instances: 16,
            store_tables: 16,
            store_memories: 4,
            table_elements: 10_000,
        }
    }
}

impl SandboxLimits {
    /// How many epoch ticks one call may run before it is interrupted.
    pub fn ticks_per_call(&self) -> u64 {
        (self.call_budget.as_nanos() / self.epoch_tick.as_nanos().max(1)).max(1) as u64
    }
}
