//! One compiled component version, ready to serve connections.

use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::component::Component;

use super::bindings::{ComponentInfo, SmtpReceiverPre};
use super::engine::Runtime;
use super::instance::GuestSession;

/// A component compiled and pre-linked once (InstancePre), so that each
/// connection only pays for instantiation into a pooled slot.
pub struct LoadedComponent {
    pub(super) runtime: Arc<Runtime>,
    pub(super) pre: SmtpReceiverPre<super::engine::GuestState>,
    info: ComponentInfo,
}

impl LoadedComponent {
    /// Links the component against the host (type-checking its exports
    /// against the contract) and asks a probe instance who it is.
    pub(super) async fn new(runtime: Arc<Runtime>, component: Component) -> Result<Arc<LoadedComponent>> {
        let pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("linking the component (it may import something the host does not provide)")?;
        let pre = SmtpReceiverPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export the smtp:session/receiver@1 interface the host expects")?;
        let mut loaded = LoadedComponent {
            runtime,
            pre,
            info: ComponentInfo {
                name: String::new(),
                version: String::new(),
                contract: String::new(),
                capabilities: vec![],
            },
        };
        loaded.info = GuestSession::probe_info(&loaded).await.context("asking the component for its info")?;
        Ok(Arc::new(loaded))
    }

    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    /// `name@version`, the tag every log line of a connection carries.
    pub fn label(&self) -> String {
        format!("{}@{}", self.info.name, self.info.version)
    }
}
