//! Live upgrade: replace the component new connections get, without a
//! restart and without touching connections already running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::policy::PasswordFile;
use crate::runtime::{CacheOutcome, Refused, Registry, Runtime};
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

/// The files other than the component that a reload reads again.
#[derive(Clone, Default)]
pub struct ReloadableFiles {
    /// `--tls-cert` and `--tls-key`.
    pub certificates: Option<Arc<Certificates>>,
    /// `--users`.
    pub users: Option<Arc<PasswordFile>>,
}

/// What [`Reloader::reload_all`] did: one line per part, and whether every
/// part succeeded.
#[derive(Debug)]
pub struct ReloadReport {
    pub ok: bool,
    pub lines: Vec<String>,
}

/// Reloads the component file the server was started with, and with
/// [`Reloader::reload_all`] the certificate and the users file.
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
    /// file), the certificate and the users file, each on its own: a part
    /// that fails keeps what it had, the others still reload. Each part's
    /// outcome is logged.
    pub async fn reload_all(&self, trigger: &str) -> ReloadReport {
        let mut report = ReloadReport { ok: true, lines: Vec::new() };
        let nothing_else = self.files.certificates.is_none() && self.files.users.is_none();
        if self.source.is_some() || nothing_else {
            match self.reload(trigger).await {
                Ok(swapped) => report.lines.push(swapped.to_string()),
                Err(refused) => report.failed(refused.to_string()),
            }
        }
        if let Some(certificates) = &self.files.certificates {
            let cert = certificates.files().cert.display();
            match certificates.reload() {
                Ok(()) => {
                    info!(trigger, %cert, "TLS certificate reloaded");
                    report.lines.push(format!("certificate reloaded from {cert}"));
                }
                Err(err) => {
                    warn!(
                        trigger,
                        err = format!("{err:#}"),
                        "certificate reload refused; the current one keeps serving"
                    );
                    report.failed(format!("certificate refused, the current one keeps serving: {err:#}"));
                }
            }
        }
        if let Some(users) = &self.files.users {
            let path = users.path().display();
            match users.reload() {
                Ok(count) => {
                    info!(trigger, %path, count, "users file reloaded");
                    report.lines.push(format!("{count} users reloaded from {path}"));
                }
                Err(err) => {
                    warn!(trigger, err = format!("{err:#}"), "users file refused; the current users stay");
                    report.failed(format!("users file refused, the current users stay: {err:#}"));
                }
            }
        }
        report
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
            Ok(swapped) => info!(trigger, %swapped, "component reloaded"),
            Err(refused) => warn!(trigger, %refused, "reload refused; the current component keeps serving"),
        }
        outcome
    }

    async fn try_reload(&self) -> Result<Swapped, Refused> {
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
        Ok(swapped)
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

impl ReloadReport {
    fn failed(&mut self, line: String) {
        self.ok = false;
        self.lines.push(line);
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
