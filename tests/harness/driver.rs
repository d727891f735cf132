//! Drivers that exist only in tests: the core natively, and loaders for
//! the built components. The generic runner lives in `smtpcell::transcript`.

use std::sync::{Arc, OnceLock};

use anyhow::Result;
use smtp_core::{Action, Answer, TlsInfo};
use smtpcell::runtime::{LoadedComponent, Runtime, SandboxLimits};
use smtpcell::transcript::{Driver, TranscriptConfig};

/// smtp-core, natively.
pub struct CoreDriver(smtp_core::Session);

impl CoreDriver {
    pub fn new(config: &TranscriptConfig) -> Result<Self> {
        let peer = smtp_core::PeerInfo { ip: config.peer_ip.clone(), port: 40000 };
        Ok(CoreDriver(smtp_core::Session::new(config.session.clone(), peer)))
    }
}

impl Driver for CoreDriver {
    async fn greeting(&mut self) -> Result<Vec<Action>> {
        Ok(self.0.greeting())
    }

    async fn feed(&mut self, input: &[u8]) -> Result<Vec<Action>> {
        Ok(self.0.feed(input))
    }

    async fn answer(&mut self, answer: &Answer) -> Result<Vec<Action>> {
        Ok(self.0.answer(answer.clone()))
    }

    async fn tls_started(&mut self, tls: &TlsInfo) -> Result<Vec<Action>> {
        Ok(self.0.tls_started(tls.clone()))
    }
}

/// The embedded component, compiled once per test process.
pub fn embedded_component() -> Arc<LoadedComponent> {
    static LOADED: OnceLock<Arc<LoadedComponent>> = OnceLock::new();
    LOADED.get_or_init(|| load_component(smtpcell::EMBEDDED_COMPONENT).expect("the embedded component loads")).clone()
}

/// Compiles a component on its own thread and runtime, so this works from
/// inside or outside an async test.
pub fn load_component(bytes: &[u8]) -> Result<Arc<LoadedComponent>> {
    let bytes = bytes.to_vec();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async { Ok(Runtime::new(SandboxLimits::default(), None)?.validate(bytes).await?.component) })
    })
    .join()
    .expect("the loader thread does not panic")
}
