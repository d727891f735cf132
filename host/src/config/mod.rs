//! The configuration: `smtpcell serve`'s flags and the file `--config`
//! names (TOML), merged into the [`Settings`] the server runs with. Every
//! flag is a key of the file, with `_` for `-`; the policy (domains,
//! recipients, relay, rate limits, greylisting) is in the file only. A
//! flag given overrides the file. `smtpcell config check FILE` runs the
//! same checks offline.

mod file;
mod options;
mod policy;
mod settings;

pub use file::ConfigFile;
pub use options::Options;
pub use policy::{policy_builder, policy_summary};
pub use settings::{Settings, StoragePaths};

use std::path::Path;

use anyhow::Result;

use crate::postgres::Database;

/// The settings of `flags` over the file at `config` (when given) over the
/// defaults; errors as [`ConfigFile::read`] and [`Settings::resolve`] give them.
pub fn load(flags: &Options, config: Option<&Path>) -> Result<Settings> {
    let file = config.map(ConfigFile::read).transpose()?;
    Settings::resolve(flags, file.as_ref())
}

/// The spool `storage` names, for a server called `hostname`: the inbox
/// Maildir, and the per-user Maildirs and the outgoing Maildir when
/// configured; or with `store`, the PostgreSQL spool (its own
/// [`Database`]; see [`open_spool_with`] to share one). Errors name the
/// directory at fault, or the `store` URL's problem (without its password).
/// Must be called within a Tokio runtime.
pub fn open_spool(storage: &StoragePaths, hostname: &str) -> Result<std::sync::Arc<dyn crate::spool::Spool>> {
    open_spool_with(storage, hostname, open_database(storage)?)
}

/// The database `store` names, if any (no I/O: see [`Database::open`]).
pub fn open_database(storage: &StoragePaths) -> Result<Option<Database>> {
    use anyhow::Context;
    storage.store.as_deref().map(|url| Database::open(url).context("store")).transpose()
}

/// As [`open_spool`], storing into `database` when given (it should be
/// [`open_database`]'s, which the policy can share).
pub fn open_spool_with(
    storage: &StoragePaths,
    hostname: &str,
    database: Option<Database>,
) -> Result<std::sync::Arc<dyn crate::spool::Spool>> {
    use anyhow::Context;
    if let Some(database) = database {
        return Ok(std::sync::Arc::new(crate::spool::PostgresSpool::open(database, std::env::temp_dir())));
    }
    let routes = crate::spool::Routes { mailboxes: storage.mailboxes.clone(), outgoing: storage.outgoing.clone() };
    let router = crate::spool::Router::open(&storage.maildir, routes, hostname)
        .with_context(|| format!("opening the spool (Maildir {})", storage.maildir.display()))?;
    Ok(std::sync::Arc::new(router))
}
