//! One compiled component version, ready to serve connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use wasmtime::component::Component;

use super::bindings::{ComponentInfo, SmtpReceiverPre};
use super::engine::{GuestState, Runtime};
use super::instance::GuestSession;

/// A component compiled and pre-linked once (InstancePre), so that each
/// connection only pays for instantiation into a pooled slot.
pub struct LoadedComponent {
    pub(super) runtime: Arc<Runtime>,
    pub(super) pre: SmtpReceiverPre<GuestState>,
    info: ComponentInfo,
    /// Live connections served by this version (see [`Lease`]).
    connections: AtomicUsize,
}

impl LoadedComponent {
    /// Links the component against the host. This is the type check: every
    /// import must be satisfiable by the (capability-free) WASI the host
    /// links, and the exports must match the contract's types.
    pub(super) fn link(runtime: Arc<Runtime>, component: Component) -> Result<LoadedComponent> {
        let pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("it imports something the host does not provide")?;
        let pre = SmtpReceiverPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("it does not export a compatible smtp:session/receiver@1")?;
        let info = ComponentInfo {
            name: String::new(),
            version: String::new(),
            contract: String::new(),
            capabilities: vec![],
        };
        Ok(LoadedComponent { runtime, pre, info, connections: AtomicUsize::new(0) })
    }

    /// Asks a throw-away instance who the component is.
    pub(super) async fn identify(mut self) -> Result<Arc<LoadedComponent>> {
        self.info = GuestSession::probe_info(&self).await.context("calling its `info` export")?;
        Ok(Arc::new(self))
    }

    /// The runtime (engine and limits) this version runs on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    /// `name@version`, the tag every log line of a connection carries.
    pub fn label(&self) -> String {
        format!("{}@{}", self.info.name, self.info.version)
    }

    /// Counts a connection against this version until the lease is dropped.
    pub fn lease(self: &Arc<Self>) -> Lease {
        self.connections.fetch_add(1, Ordering::Relaxed);
        Lease(self.clone())
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// Held by each connection for its whole life: the version it started with
/// stays loaded (and counted) until the connection ends, whatever reloads
/// happen meanwhile.
pub struct Lease(Arc<LoadedComponent>);

impl Lease {
    pub fn component(&self) -> &Arc<LoadedComponent> {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
