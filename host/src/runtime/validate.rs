//! Everything a component must pass before it serves a single client, in
//! order. Used at start-up, on every reload, and by `smtpcell check`; a
//! component refused at any step never reaches the registry.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cache::CacheOutcome;
use super::component::LoadedComponent;
use super::engine::Runtime;
use crate::transcript::replay_corpus;

/// The contract major version this host drives. Minor versions are
/// compatible by semver (wasmtime's export lookup matches any 3.y).
pub const CONTRACT_PREFIX: &str = "smtp:session@3.";

/// The interface a protocol component exports, without its version.
const EXPORT: &str = "smtp:session/receiver@";

/// The contract a compiled component exports (`smtp:session@1.0.0`), read
/// from its type before linking: a component of another major version
/// fails to link with wasmtime's "no export" error, which names neither
/// what the component implements nor what this host needs.
fn exported_contract(engine: &wasmtime::Engine, component: &wasmtime::component::Component) -> Option<String> {
    let ty = component.component_type();
    ty.exports(engine).find_map(|(name, _)| name.strip_prefix(EXPORT).map(|v| format!("smtp:session@{v}")))
}

/// Why a component was refused, naming the step that failed.
#[derive(Debug)]
pub struct Refused {
    pub step: &'static str,
    pub reason: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused at step `{}`: {}", self.step, self.reason)
    }
}

impl std::error::Error for Refused {}

/// What validation measured, for logs and `smtpcell check`.
pub struct Validated {
    pub component: Arc<LoadedComponent>,
    pub cache: CacheOutcome,
    pub transcripts: usize,
    pub elapsed: Duration,
}

/// The reason is put on one line: it goes into one log line and one
/// control-socket answer, and some errors (wasmparser's, with byte arrays
/// in their debug form) span several.
fn refuse(step: &'static str) -> impl FnOnce(anyhow::Error) -> Refused {
    move |err| Refused { step, reason: format!("{err:#}").split_whitespace().collect::<Vec<_>>().join(" ") }
}

impl Runtime {
    /// compile → link (its exported contract must be 3.x, then the
    /// type-check against it) → identify (its
    /// `info`, which must name a 3.x contract) → replay (the transcript corpus
    /// on fresh instances: same reply codes, same stored messages).
    pub async fn validate(self: &Arc<Self>, bytes: Vec<u8>) -> Result<Validated, Refused> {
        let started = Instant::now();
        let runtime = self.clone();
        // Cranelift takes a few hundred milliseconds of CPU: keep it off the
        // async executor that is serving connections.
        let (component, cache) = tokio::task::spawn_blocking(move || runtime.compile(&bytes))
            .await
            .map_err(|e| refuse("compile")(e.into()))?
            .map_err(refuse("compile"))?;
        if let Some(contract) = exported_contract(&self.engine, &component)
            && !contract.starts_with(CONTRACT_PREFIX)
        {
            return Err(Refused {
                step: "link",
                reason: format!(
                    "it implements {contract}; this host needs {CONTRACT_PREFIX}x (rebuild it against wit/session.wit)"
                ),
            });
        }
        let loaded = LoadedComponent::link(self.clone(), component).map_err(refuse("link"))?;
        let loaded = loaded.identify().await.map_err(refuse("identify"))?;
        let contract = &loaded.info().contract;
        if !contract.starts_with(CONTRACT_PREFIX) {
            return Err(Refused {
                step: "identify",
                reason: format!("it implements {contract:?}; this host drives {CONTRACT_PREFIX}x"),
            });
        }
        let transcripts = replay_corpus(&loaded).await.map_err(refuse("replay"))?;
        Ok(Validated { component: loaded, cache, transcripts, elapsed: started.elapsed() })
    }
}
