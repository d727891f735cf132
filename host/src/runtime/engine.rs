//! The one wasmtime Engine a server runs on: pooling allocator (instances
//! are pre-reserved slots, so creating one per connection costs microseconds)
//! and epoch interruption (a ticker thread bounds every guest call).

use std::sync::Arc;
use std::thread;

use anyhow::{Context, Result};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, StoreLimits};

use super::limiter::Limiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::cache::{CacheOutcome, CompileCache};
use super::limits::SandboxLimits;

/// Per-Store state: the WASI context (empty: no preopens, no environment, no
/// stdio, no sockets), the memory limiter and the CPU budget of the call in
/// progress.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limits: Limiter,
    pub(super) ticks_left: u64,
}

impl GuestState {
    pub(super) fn new(limits: StoreLimits) -> Self {
        GuestState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: Limiter::new(limits),
            ticks_left: 0,
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
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
            .total_memories(limits.max_instances * 2)
            .total_tables(limits.max_instances * 4)
            .total_stacks(limits.max_instances)
            .max_memory_size(limits.max_memory);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            // Linear memory is small: reserve exactly the cap, so thousands
            // of idle instances do not each hold 4 GiB of address space.
            .memory_reservation(limits.max_memory as u64)
            .memory_guard_size(64 << 10);
        let engine = Engine::new(&config).map_err(anyhow::Error::from).context("configuring wasmtime")?;

        let mut linker = Linker::new(&engine);
        // Rust's std makes every wasip2 guest import wasi:cli and wasi:io;
        // they are linked against the empty context above, so the guest can
        // see no file, variable, clock-dependent state it could leak, or socket.
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
