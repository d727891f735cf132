//! A cache of compiled components, so that a restart or a swap back to a
//! known component skips Cranelift. Entries are wasmtime's own serialized
//! form, keyed by the SHA-256 of the component and the engine's
//! compatibility hash (wasmtime version, target, and every setting that
//! changes generated code), so an entry is only ever loaded into an engine
//! that could have produced it.
//!
//! Loading a serialized component is trusted (it is native code): the cache
//! directory is created owner-only, and must not be writable by anyone the
//! server does not trust.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a compile was served from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    Disabled,
}

#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// Opens (creating, mode 0700) a cache directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<CompileCache> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating the compile cache {}", dir.display()))?;
        let mode = fs::metadata(&dir)?.permissions().mode();
        if mode & 0o022 != 0 {
            anyhow::bail!(
                "the compile cache {} is writable by others (mode {:o}); refusing to use it",
                dir.display(),
                mode & 0o777
            );
        }
        Ok(CompileCache { dir })
    }

    /// `$XDG_CACHE_HOME/smtpcell` or `$HOME/.cache/smtpcell`.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
        Some(base.join("smtpcell"))
    }

    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut engine_hash = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut engine_hash);
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}-{:016x}.cwasm", engine_hash.finish()))
    }

    /// The compiled component, from the cache when an entry exists and
    /// loads; otherwise compiled and stored for next time.
    pub fn load_or_compile(&self, engine: &Engine, bytes: &[u8]) -> Result<(Component, CacheOutcome)> {
        let entry = self.entry(engine, bytes);
        // Read into memory rather than `deserialize_file`, which maps the
        // file: a component loaded from a mapping keeps depending on the
        // file, and if anything then truncates or rewrites the entry in place
        // (a cleaner, a `cp` over it), touching its pages raises SIGBUS and
        // the whole server dies (seen when the version is dropped after a
        // swap: unwind-info deregistration reads the mapping). The copy costs
        // well under a millisecond for a component of this size.
        if let Ok(serialized) = fs::read(&entry) {
            // SAFETY: the entry was written by `store` below from a component
            // this engine configuration compiled, in an owner-only directory.
            match unsafe { Component::deserialize(engine, &serialized) } {
                Ok(component) => {
                    debug!(entry = %entry.display(), "compiled component loaded from cache");
                    return Ok((component, CacheOutcome::Hit));
                }
                Err(err) => warn!(entry = %entry.display(), %err, "ignoring an unusable cache entry"),
            }
        }
        let component = Component::new(engine, bytes).map_err(anyhow::Error::from)?;
        if let Err(err) = self.store(&entry, &component) {
            warn!(entry = %entry.display(), %err, "cannot write the compile cache");
        }
        Ok((component, CacheOutcome::Miss))
    }

    /// Written to a temporary name and renamed, so a reader never sees half
    /// an entry.
    fn store(&self, entry: &Path, component: &Component) -> Result<()> {
        let bytes = component.serialize().map_err(anyhow::Error::from)?;
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, entry)?;
        Ok(())
    }
}
