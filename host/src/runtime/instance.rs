//! One connection's sandbox: a Store and a `session` resource in a fresh
//! instance of a loaded component.

use std::fmt;
use std::sync::Arc;

use anyhow::Result;
use wasmtime::component::ResourceAny;
use wasmtime::{Store, StoreLimitsBuilder, Trap, UpdateDeadline};

use super::bindings::{ComponentInfo, GuestConfig, PeerInfo, SmtpReceiver};
use super::component::LoadedComponent;
use super::convert;
use super::engine::GuestState;
use smtp_core::{Action, Answer, TlsInfo};

/// Why a guest call failed. Every variant ends the connection (a trapped
/// instance is poisoned); none of them can affect another connection. The
/// kind comes from what wasmtime tells the host (the epoch trap, the
/// limiter's refusal, the trap code), never from an error's text.
#[derive(Debug)]
pub enum GuestFault {
    /// The call used its whole CPU budget (epoch deadline).
    CpuBudget,
    /// The instance tried to grow linear memory past its cap.
    MemoryLimit,
    /// Any other trap, with wasmtime's code: unreachable, out-of-bounds
    /// access, stack overflow…; `detail` is for the log.
    Trap { code: Trap, detail: String },
    /// A failure that is no trap: the instance could not be created (the
    /// pool is full) or the call failed in the host's bindings.
    Failed(String),
    /// The guest returned actions that break the contract.
    Contract(String),
}

impl fmt::Display for GuestFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestFault::CpuBudget => write!(f, "CPU budget per call exhausted (epoch deadline)"),
            GuestFault::MemoryLimit => write!(f, "linear memory limit reached"),
            GuestFault::Trap { detail, .. } => write!(f, "guest trapped: {detail}"),
            GuestFault::Failed(detail) => write!(f, "guest call failed: {detail}"),
            GuestFault::Contract(detail) => write!(f, "contract violation: {detail}"),
        }
    }
}

impl std::error::Error for GuestFault {}

impl GuestFault {
    /// The fault's kind, as metrics and logs label it: `cpu_budget`,
    /// `memory_limit`, `stack_overflow`, `out_of_bounds`, `unreachable`,
    /// `arithmetic`, `trap` (any other trap code), `failed`, `contract`.
    pub fn kind(&self) -> &'static str {
        match self {
            GuestFault::CpuBudget => "cpu_budget",
            GuestFault::MemoryLimit => "memory_limit",
            GuestFault::Trap { code, .. } => match code {
                Trap::StackOverflow => "stack_overflow",
                Trap::MemoryOutOfBounds | Trap::TableOutOfBounds | Trap::ArrayOutOfBounds => "out_of_bounds",
                Trap::UnreachableCodeReached => "unreachable",
                Trap::IntegerOverflow | Trap::IntegerDivisionByZero | Trap::BadConversionToInteger => "arithmetic",
                _ => "trap",
            },
            GuestFault::Failed(_) => "failed",
            GuestFault::Contract(_) => "contract",
        }
    }

    /// `err` from a call on `store`'s instance: the limiter's refusal
    /// first (a refused grow surfaces as whatever trap or error the guest
    /// then hits), then the trap code.
    fn classify(store: &Store<GuestState>, err: wasmtime::Error) -> GuestFault {
        if store.data().limits.grow_refused() {
            return GuestFault::MemoryLimit;
        }
        let err = anyhow::Error::from(err);
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => GuestFault::CpuBudget,
            Some(&code) => GuestFault::Trap { code, detail: format!("{err:#}") },
            None => GuestFault::Failed(format!("{err:#}")),
        }
    }
}

/// A live session inside its own instance.
pub struct GuestSession {
    store: Store<GuestState>,
    bindings: SmtpReceiver,
    session: ResourceAny,
    component: Arc<LoadedComponent>,
}

impl GuestSession {
    /// Instantiates `component` into a fresh Store and constructs the session.
    pub async fn start(
        component: &Arc<LoadedComponent>,
        config: &GuestConfig,
        peer: &PeerInfo,
    ) -> Result<Self, GuestFault> {
        let (mut store, bindings) = instantiate(component).await?;
        arm(&mut store, component);
        let session = bindings
            .smtp_session_receiver()
            .session()
            .call_constructor(&mut store, config, peer)
            .await
            .map_err(|err| GuestFault::classify(&store, err))?;
        Ok(GuestSession { store, bindings, session, component: component.clone() })
    }

    /// Asks a throw-away instance for the component's identity.
    pub(super) async fn probe_info(component: &LoadedComponent) -> Result<ComponentInfo, GuestFault> {
        let (mut store, bindings) = instantiate(component).await?;
        arm(&mut store, component);
        let info = bindings.smtp_session_receiver().call_info(&mut store).await;
        info.map_err(|err| GuestFault::classify(&store, err))
    }

    pub fn component(&self) -> &Arc<LoadedComponent> {
        &self.component
    }

    /// Linear memory this session's instance holds, in bytes: its peak,
    /// since WebAssembly memory never shrinks.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limits.memory_bytes()
    }

    pub async fn greeting(&mut self) -> Result<Vec<Action>, GuestFault> {
        arm(&mut self.store, &self.component);
        let api = self.bindings.smtp_session_receiver().session();
        let result = api.call_greeting(&mut self.store, self.session).await;
        actions(&self.store, result)
    }

    pub async fn feed(&mut self, input: &[u8]) -> Result<Vec<Action>, GuestFault> {
        arm(&mut self.store, &self.component);
        let api = self.bindings.smtp_session_receiver().session();
        let result = api.call_feed(&mut self.store, self.session, input).await;
        actions(&self.store, result)
    }

    pub async fn answer(&mut self, answer: &Answer) -> Result<Vec<Action>, GuestFault> {
        arm(&mut self.store, &self.component);
        let api = self.bindings.smtp_session_receiver().session();
        let result = api.call_answer(&mut self.store, self.session, &convert::answer(answer)).await;
        actions(&self.store, result)
    }

    pub async fn tls_started(&mut self, tls: &TlsInfo) -> Result<Vec<Action>, GuestFault> {
        arm(&mut self.store, &self.component);
        let api = self.bindings.smtp_session_receiver().session();
        let result = api.call_tls_started(&mut self.store, self.session, &convert::tls_info(tls)).await;
        actions(&self.store, result)
    }

    pub async fn timeout(&mut self) -> Result<Vec<Action>, GuestFault> {
        arm(&mut self.store, &self.component);
        let api = self.bindings.smtp_session_receiver().session();
        let result = api.call_timeout(&mut self.store, self.session).await;
        actions(&self.store, result)
    }

    pub async fn shutdown(&mut self) -> Result<Vec<Action>, GuestFault> {
        arm(&mut self.store, &self.component);
        let api = self.bindings.smtp_session_receiver().session();
        let result = api.call_shutdown(&mut self.store, self.session).await;
        actions(&self.store, result)
    }
}

/// A call's actions in smtp-core's types, or the fault that ended it.
fn actions(
    store: &Store<GuestState>,
    result: wasmtime::Result<Vec<super::bindings::Action>>,
) -> Result<Vec<Action>, GuestFault> {
    Ok(result.map_err(|err| GuestFault::classify(store, err))?.into_iter().map(convert::action).collect())
}

async fn instantiate(component: &LoadedComponent) -> Result<(Store<GuestState>, SmtpReceiver), GuestFault> {
    let limits = &component.runtime.limits;
    let store_limits = StoreLimitsBuilder::new()
        .memory_size(limits.max_memory)
        .instances(limits.store_instances)
        .tables(limits.store_tables)
        .memories(limits.store_memories)
        .table_elements(limits.table_elements)
        .trap_on_grow_failure(true)
        .build();
    let mut store = Store::new(&component.runtime.engine, GuestState::new(store_limits));
    store.limiter(|state| &mut state.limits);
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        if state.ticks_left == 0 {
            return Err(Trap::Interrupt.into());
        }
        state.ticks_left -= 1;
        Ok(UpdateDeadline::Yield(1))
    });
    arm(&mut store, component);
    let instantiated = component.pre.instantiate_async(&mut store).await;
    let bindings = instantiated.map_err(|err| GuestFault::classify(&store, err))?;
    Ok((store, bindings))
}

/// Gives the next call a fresh CPU budget: it may run for `ticks_per_call`
/// epoch ticks, yielding to the executor at each one.
fn arm(store: &mut Store<GuestState>, component: &LoadedComponent) {
    store.data_mut().ticks_left = component.runtime.limits.ticks_per_call();
    store.set_epoch_deadline(1);
}
