//! Live upgrade: replace the component new connections get, without a
//! restart and without touching connections already running.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::runtime::{CacheOutcome, Refused, Registry, Runtime};

/// A successful swap.
#[derive(Debug)]
pub struct Swapped {
    pub from: String,
    pub to: String,
    /// From the reload request to the new version serving new connections.
    pub elapsed: Duration,
    pub cache: CacheOutcome,
    pub transcripts: usize,
}

impl std::fmt::Display for Swapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "swapped {} -> {} in {} ms (compile cache: {:?}, {} transcripts replayed)",
            self.from,
            self.to,
            self.elapsed.as_millis(),
            self.cache,
            self.transcripts
        )
    }
}

/// Reloads the component file the server was started with.
pub struct Reloader {
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    source: Option<PathBuf>,
    /// One reload at a time: two racing reloads would otherwise finish in
    /// either order.
    busy: Mutex<()>,
}

impl Reloader {
    /// `source` is the `--component` file; `None` when serving the built-in
    /// component, which cannot change under a running binary.
    pub fn new(runtime: Arc<Runtime>, registry: Arc<Registry>, source: Option<PathBuf>) -> Arc<Reloader> {
        Arc::new(Reloader { runtime, registry, source, busy: Mutex::new(()) })
    }

    pub fn source(&self) -> Option<&PathBuf> {
        self.source.as_ref()
    }

    /// Reads, validates (compile, link, identify, replay) and swaps in the
    /// component file. On any failure the current version keeps serving.
    pub async fn reload(&self) -> Result<Swapped, Refused> {
        let _one_at_a_time = self.busy.lock().await;
        let started = Instant::now();
        let Some(path) = &self.source else {
            return Err(Refused {
                step: "read",
                reason: "serving the built-in component; start with --component FILE to reload".into(),
            });
        };
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| Refused { step: "read", reason: format!("{}: {e}", path.display()) })?;
        let validated = self.runtime.validate(bytes).await?;
        let to = validated.component.label();
        let from = self.registry.swap(validated.component).label();
        let swapped = Swapped {
            from,
            to,
            elapsed: started.elapsed(),
            cache: validated.cache,
            transcripts: validated.transcripts,
        };
        info!(%swapped, "component reloaded");
        Ok(swapped)
    }

    /// Logs the outcome of a reload that nobody waits for (SIGHUP, --watch).
    pub async fn reload_and_log(&self, trigger: &str) {
        if let Err(refused) = self.reload().await {
            warn!(trigger, %refused, "reload refused; the current component keeps serving");
        }
    }

    /// `--watch`: reloads whenever the file's modification time changes.
    /// Polling (twice a second) needs no platform API and catches both
    /// in-place writes and atomic renames over the file.
    pub async fn watch(self: Arc<Self>) {
        let Some(path) = self.source.clone() else { return };
        let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut seen: Option<SystemTime> = modified(&path);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let now = modified(&path);
            if now.is_some() && now != seen {
                seen = now;
                self.reload_and_log("file changed").await;
            }
        }
    }
}
