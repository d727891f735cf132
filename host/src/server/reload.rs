//! Live upgrade: replace the component new connections get, without a
//! restart and without touching connections already running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;

use super::policy_slot::PolicySlot;
use crate::events::{self, Event};
use crate::policy::Policy;
use crate::runtime::{CacheOutcome, Refused, Registry, Runtime, Validated};
use crate::tls::Certificates;

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

/// Builds the policy again from its files, for a reload: the
/// configuration file, the tables it names, the users file. The lines
/// say what was loaded (for the reload's report).
pub type PolicyBuilder = Arc<dyn Fn() -> anyhow::Result<(Arc<dyn Policy>, Vec<String>)> + Send + Sync>;

/// What a reload reads again besides the component.
#[derive(Clone, Default)]
pub struct ReloadableFiles {
    /// The certificate and key.
    pub certificates: Option<Arc<Certificates>>,
    /// The policy in force and how to build it anew; `None` when nothing
    /// it is built from can change (the embedded default without users).
    pub policy: Option<(Arc<PolicySlot>, PolicyBuilder)>,
}

/// What [`Reloader::reload_all`] did: one line per part, and whether it
/// was applied (all parts) or refused (none).
#[derive(Debug)]
pub struct ReloadReport {
    pub ok: bool,
    pub lines: Vec<String>,
}

/// Reloads the component file the server was started with, and with
/// [`Reloader::reload_all`] the certificate and the policy.
pub struct Reloader {
    runtime: Arc<Runtime>,
    registry: Arc<Registry>,
    source: Option<PathBuf>,
    files: ReloadableFiles,
    /// One reload at a time: two racing reloads would otherwise finish in
    /// either order.
    busy: Mutex<()>,
}

impl Reloader {
    /// `source` is the `--component` file; `None` when serving the built-in
    /// component, which cannot change under a running binary.
    pub fn new(runtime: Arc<Runtime>, registry: Arc<Registry>, source: Option<PathBuf>) -> Arc<Reloader> {
        Self::with_files(runtime, registry, source, ReloadableFiles::default())
    }

    /// A reloader that also reloads `files` in [`Reloader::reload_all`].
    pub fn with_files(
        runtime: Arc<Runtime>,
        registry: Arc<Registry>,
        source: Option<PathBuf>,
        files: ReloadableFiles,
    ) -> Arc<Reloader> {
        Arc::new(Reloader { runtime, registry, source, files, busy: Mutex::new(()) })
    }

    /// `smtpcell reload` and SIGHUP: the component (when served from a
    /// file), the certificate, and the policy (the configuration file, the
    /// tables it names, the users file). Every part is read and checked
    /// first; only when all of them are good are they installed, together,
    /// and a reload with any bad part is refused whole, with every reason:
    /// what serves stays as it was. Connections in progress keep the
    /// component and the policy they started with. The outcome is logged.
    pub async fn reload_all(&self, trigger: &str) -> ReloadReport {
        let _one_at_a_time = self.busy.lock().await;
        let started = Instant::now();
        let mut refused = Vec::new();
        let nothing_else = self.files.certificates.is_none() && self.files.policy.is_none();
        let component = if self.source.is_some() || nothing_else {
            match self.validate().await {
                Ok(validated) => Some(validated),
                Err(reason) => {
                    refused.push(reason.to_string());
                    None
                }
            }
        } else {
            None
        };
        let certificate = match &self.files.certificates {
            Some(certificates) => match certificates.prepare() {
                Ok(prepared) => Some((certificates, prepared)),
                Err(err) => {
                    refused.push(format!("certificate: {err:#}"));
                    None
                }
            },
            None => None,
        };
        let policy = match &self.files.policy {
            Some((slot, build)) => {
                let build = build.clone();
                let built = tokio::task::spawn_blocking(move || build())
                    .await
                    .unwrap_or_else(|err| Err(anyhow::anyhow!("the policy build failed: {err}")));
                match built.and_then(|(policy, lines)| Ok((slot.prepare(policy)?, lines))) {
                    Ok((in_force, lines)) => Some((slot, in_force, lines)),
                    Err(err) => {
                        refused.push(format!("policy: {err:#}"));
                        None
                    }
                }
            }
            None => None,
        };
        if !refused.is_empty() {
            events::emit(Event::ReloadRefused { trigger, reasons: &refused });
            return ReloadReport { ok: false, lines: refused };
        }
        let mut lines = Vec::new();
        if let Some(validated) = component {
            let swapped = self.swap(validated, started);
            events::emit(Event::ComponentSwapped { trigger, swapped: &swapped });
            lines.push(swapped.to_string());
        }
        let swapped_lines = lines.len();
        if let Some((certificates, prepared)) = certificate {
            certificates.install(prepared);
            lines.push(format!("certificate reloaded from {}", certificates.files().cert.display()));
        }
        if let Some((slot, in_force, policy_lines)) = policy {
            slot.install(in_force);
            lines.extend(policy_lines);
        }
        events::emit(Event::Reloaded { trigger, parts: &lines[swapped_lines..] });
        ReloadReport { ok: true, lines }
    }

    pub fn source(&self) -> Option<&PathBuf> {
        self.source.as_ref()
    }

    /// Reads, validates (compile, link, identify, replay) and swaps in the
    /// component file. On any failure the current version keeps serving.
    /// Every outcome is logged with `trigger` (what asked for the reload),
    /// whoever else is told: an operator reading the server's log sees
    /// refusals asked for over the control socket too.
    pub async fn reload(&self, trigger: &str) -> Result<Swapped, Refused> {
        let outcome = self.try_reload().await;
        match &outcome {
            Ok(swapped) => {
                events::emit(Event::ComponentSwapped { trigger, swapped });
                events::emit(Event::Reloaded { trigger, parts: &[] });
            }
            Err(refused) => events::emit(Event::ReloadRefused { trigger, reasons: &[refused.to_string()] }),
        }
        outcome
    }

    async fn try_reload(&self) -> Result<Swapped, Refused> {
        let _one_at_a_time = self.busy.lock().await;
        let started = Instant::now();
        let validated = self.validate().await?;
        Ok(self.swap(validated, started))
    }

    /// Reads and validates the component file, without using it yet.
    async fn validate(&self) -> Result<Validated, Refused> {
        let Some(path) = &self.source else {
            return Err(Refused {
                step: "read",
                reason: "serving the built-in component; start with --component FILE to reload".into(),
            });
        };
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| Refused { step: "read", reason: format!("{}: {e}", path.display()) })?;
        self.runtime.validate(bytes).await
    }

    /// New connections get `validated` from now on.
    fn swap(&self, validated: Validated, started: Instant) -> Swapped {
        let to = validated.component.label();
        let from = self.registry.swap(validated.component).label();
        Swapped { from, to, elapsed: started.elapsed(), cache: validated.cache, transcripts: validated.transcripts }
    }

    /// `--watch`: reloads whenever the file changes from `loaded`, the
    /// stamp taken before the version now serving was read (so a change made
    /// while the server was starting is not missed). Polling (twice a second)
    /// needs no platform API and catches both in-place writes and atomic
    /// renames over the file.
    ///
    /// A change is acted on once the file has stopped changing for one poll.
    /// Reacting to the first change seen would validate a file still being
    /// written (and refuse it); and since file modification times come from
    /// a coarse clock, the rest of that write could then land with the same
    /// timestamp and never be noticed, leaving the old version serving.
    pub async fn watch(self: Arc<Self>, mut loaded: Option<FileStamp>) {
        let Some(path) = self.source.clone() else { return };
        let mut previous = loaded;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        // After a reload that took seconds, wait a whole period again rather
        // than firing the missed ticks back to back (which would make "stable
        // for one poll" mean "stable for a few microseconds").
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = FileStamp::of(&path);
            if now.is_some() && now == previous && now != loaded {
                loaded = now;
                let _ = self.reload("file changed").await;
            }
            previous = now;
        }
    }
}

/// What `--watch` compares: modification time, size and inode (the time
/// alone can stay the same across two writes within one tick of the
/// file-system clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// `None` when the file cannot be read (missing, say).
    pub fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp { modified: m.modified().ok(), len: m.len(), inode: m.ino() })
    }
}
