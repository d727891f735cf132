//! The one wasmtime Engine a server runs on: pooling allocator (instances
//! are pre-reserved slots, so creating one per connection costs microseconds)
//! and epoch interruption (a ticker thread bounds every guest call).

use std::sync::Arc;
use std::thread;

use anyhow::{Context, Result};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, StoreLimits};

use super::limiter::Limiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::cache::{CacheOutcome, CompileCache};
use super::limits::SandboxLimits;

/// Address space reserved for each linear memory when the pool can afford
/// it: the whole 32-bit space, so compiled guest code needs no explicit
/// bounds check (nor Spectre guard) on each load and store. DATA scanning ran
/// 1.6 to 2 times as fast as with a 16 MiB reservation.
const FULL_RESERVATION: u64 = 4 << 30;

/// Address space the memory pool may take with full reservations: 4 GiB
/// slots (plus wasmtime's guard regions) for up to about 11,000 instances.
/// A process has 128 TiB of it on x86-64; a pool of 25,000 full slots no
/// longer fits (measured: the mmap fails).
const POOL_ADDRESS_BUDGET: u64 = 48 << 40;

/// The reservation and guard size for each linear memory: full, or, when
/// `max_instances` full slots would not fit the budget, exactly the memory
/// cap with a small guard (explicit bounds checks, slower DATA scanning,
/// but hundreds of thousands of slots fit).
fn memory_layout(limits: &SandboxLimits) -> (u64, Option<u64>) {
    // Default guard regions are 32 MiB before and after each slot.
    let full_slot = FULL_RESERVATION + (64 << 20);
    if u64::from(limits.max_instances) * full_slot <= POOL_ADDRESS_BUDGET {
        (FULL_RESERVATION, None)
    } else {
        (limits.max_memory as u64, Some(64 << 10))
    }
}

/// How much of a slot's dirtied memory (and of its tables) is reset in place
/// and kept resident for the next connection. A session dirties about 24 KiB
/// of them (stack top, data, a little heap); a slot that dirtied more gets
/// the rest released with madvise. The cost is RSS that stays after a burst:
/// what sessions dirtied, for each slot that has ever been used (measured:
/// 72 MiB more than with madvise after 3,000 connections closed).
const RESIDENT_PER_SLOT: usize = 256 << 10;

/// Per-Store state: the WASI context (empty: no preopens, no environment, no
/// stdio, no sockets), the memory limiter and the CPU budget of the call in
/// progress.
pub struct GuestState {
    /// Built on first use only: our component imports nothing, so a session
    /// normally never touches it, and building one (it seeds random number
    /// generators) would cost every connection for nothing. It exists for
    /// components that do import WASI; they get this empty context.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(super) limits: Limiter,
    pub(super) ticks_left: u64,
}

impl GuestState {
    pub(super) fn new(limits: StoreLimits) -> Self {
        GuestState { wasi: None, table: ResourceTable::new(), limits: Limiter::new(limits), ticks_left: 0 }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self.wasi.get_or_insert_with(|| WasiCtx::builder().build());
        WasiCtxView { ctx, table: &mut self.table }
    }
}

/// The engine, the linker shared by every component version, and the limits.
pub struct Runtime {
    pub(super) engine: Engine,
    pub(super) linker: Linker<GuestState>,
    pub(super) limits: SandboxLimits,
    cache: Option<CompileCache>,
}

impl Runtime {
    /// An engine with these limits; compiled components are kept in `cache`
    /// when one is given.
    pub fn new(limits: SandboxLimits, cache: Option<CompileCache>) -> Result<Arc<Runtime>> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            // Rust's wasip2 output is one core module plus the small adapter
            // shims wit-component adds, so a handful of core instances each.
            .total_core_instances(limits.max_instances * 8)
            .total_memories(limits.max_instances)
            .total_tables(limits.max_instances * 4)
            .total_stacks(limits.max_instances)
            .max_memory_size(limits.max_memory)
            // A finished connection's slot is reset by rewriting only the
            // pages it dirtied (found with the PAGEMAP_SCAN ioctl) instead of
            // madvise: no syscall that shoots down TLBs on every core, and no
            // page faults when the next connection touches the same pages.
            // Kernels without the ioctl fall back to madvise.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(RESIDENT_PER_SLOT)
            .table_keep_resident(RESIDENT_PER_SLOT);
        let mut config = Config::new();
        config.epoch_interruption(true).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Growth is capped at `max_memory` whatever the reservation.
        let (reservation, guard) = memory_layout(&limits);
        config.memory_reservation(reservation);
        if let Some(guard) = guard {
            config.memory_guard_size(guard);
        }
        let engine = Engine::new(&config).map_err(anyhow::Error::from).context("configuring wasmtime")?;

        let mut linker = Linker::new(&engine);
        // Our component imports nothing, but Rust's std makes any wasip2
        // guest that uses it import wasi:cli and wasi:io; they are linked
        // against the empty context above, so such a guest sees no file,
        // variable, clock-dependent state it could leak, or socket.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;

        start_epoch_ticker(&engine, &limits);
        Ok(Arc::new(Runtime { engine, linker, limits, cache }))
    }

    /// Compiles a component (blocking: Cranelift), through the cache if any.
    pub(super) fn compile(&self, bytes: &[u8]) -> Result<(Component, CacheOutcome)> {
        match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes),
            None => Ok((Component::new(&self.engine, bytes).map_err(anyhow::Error::from)?, CacheOutcome::Disabled)),
        }
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }
}

/// One thread per engine advances the epoch; each Store's deadline callback
/// counts these ticks against the budget of the call in progress. The thread
/// holds only a weak handle, so it ends when the engine is dropped.
fn start_epoch_ticker(engine: &Engine, limits: &SandboxLimits) {
    let weak = engine.weak();
    let tick = limits.epoch_tick;
    thread::Builder::new()
        .name("smtpcell-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(tick);
            }
        })
        .expect("spawning the epoch ticker thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_reservations_while_they_fit_then_exact_ones() {
        let limits = |max_instances| SandboxLimits { max_instances, ..SandboxLimits::default() };
        assert_eq!(memory_layout(&limits(10_016)), (FULL_RESERVATION, None));
        let small = memory_layout(&limits(40_016));
        assert_eq!(small, (SandboxLimits::default().max_memory as u64, Some(64 << 10)));
    }

    /// 25,000 full slots need more address space than a process has (the
    /// pool's mmap fails): the engine must still come up, with exact
    /// reservations. (Far beyond this, the stack pool's guard pages run into
    /// vm.max_map_count, 65,530 mappings by default.)
    #[test]
    fn a_large_pool_still_starts() {
        Runtime::new(SandboxLimits { max_instances: 25_016, ..SandboxLimits::default() }, None).unwrap();
    }
}
