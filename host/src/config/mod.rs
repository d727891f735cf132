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

/// The settings of `flags` over the file at `config` (when given) over the
/// defaults; errors as [`ConfigFile::read`] and [`Settings::resolve`] give them.
pub fn load(flags: &Options, config: Option<&Path>) -> Result<Settings> {
    let file = config.map(ConfigFile::read).transpose()?;
    Settings::resolve(flags, file.as_ref())
}

/// The spool `storage` names, for a server called `hostname`: the inbox
/// Maildir, and the per-user Maildirs and the outgoing Maildir when
/// configured. Errors name the directory at fault.
pub fn open_spool(storage: &StoragePaths, hostname: &str) -> Result<std::sync::Arc<dyn crate::spool::Spool>> {
    use anyhow::Context;
    let routes = crate::spool::Routes { mailboxes: storage.mailboxes.clone(), outgoing: storage.outgoing.clone() };
    let router = crate::spool::Router::open(&storage.maildir, routes, hostname)
        .with_context(|| format!("opening the spool (Maildir {})", storage.maildir.display()))?;
    Ok(std::sync::Arc::new(router))
}
