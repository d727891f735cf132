//! Greylisting (issue 14, "Greylisting"; the technique of Harris, 2003):
//! the first attempt of a (client network, reverse-path, forward-path)
//! triplet is deferred at RCPT with 451 4.7.1, which a real MTA retries
//! (RFC 5321 section 4.5.4.1) and much spamware does not. A retry after
//! `min_delay_secs` and before `expiry_secs` passes, and the triplet then
//! passes for `pass_secs`, renewed as its mail keeps passing.
//!
//! The state is in a [`GreylistStore`] and survives a restart: a redb file
//! by default, the PostgreSQL database when the server stores its mail
//! there (`store = "postgres://..."`), so that every host sharing the
//! database sees the same triplets. Expired records are swept by the
//! first check an hour after the last sweep (and the first check after
//! start), in that check's blocking task: no timer to spawn, and one RCPT
//! an hour waits for the scan. Wall-clock time is read only through the injected [`Clock`].
//! A passed triplet is also kept in memory ([`passes`]), so that a known
//! sender's mail does not wait on the store.

mod config;
mod passes;
mod postgres_store;
mod redb_store;
mod store;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use anyhow::Result;
use tracing::{debug, warn};

pub use config::GreylistingConfig;
pub use postgres_store::PostgresStore;
pub use redb_store::RedbStore;
pub use store::{GreylistStore, Record, Triplet};

use crate::policy::client_network::NetworkPrefixes;
use crate::policy::clock::Clock;
use crate::policy::due::take_due;
use crate::postgres::Database;
use passes::Passes;

/// How often expired records are swept, in seconds.
const SWEEP_INTERVAL_SECS: u64 = 3600;

/// How often a failing store is logged, in seconds: every RCPT would
/// otherwise log it.
const WARNING_INTERVAL_SECS: u64 = 300;

/// A pass is renewed (written) only once it would gain this fraction of
/// `pass_secs`, a day for the default 30 days: each write is a sync to
/// disk, and a day's slack in a month's pass changes nothing.
const RENEWALS_PER_PASS: u64 = 30;

/// The answer for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the other checks.
    Pass,
    /// Refuse this recipient for now: 451 4.7.1 (RFC 3463: delivery not
    /// authorized, transient), "Greylisted, please try again later".
    Defer,
}

/// The durations of [`GreylistingConfig`], in seconds.
#[derive(Clone, Copy, Debug)]
struct Timings {
    min_delay: u64,
    expiry: u64,
    pass: u64,
}

/// The next record, and the answer, for a triplet with `record` kept,
/// at `now`; `None` when the record stays as it is.
fn decide(record: Option<Record>, now: u64, t: Timings) -> (Verdict, Option<Record>) {
    match record {
        Some(r) if r.expires > now && r.passed => {
            let expires = now.saturating_add(t.pass);
            let renewed = expires >= r.expires.saturating_add(t.pass / RENEWALS_PER_PASS);
            (Verdict::Pass, renewed.then_some(Record { expires, ..r }))
        }
        Some(r) if r.expires > now && now >= r.first_seen.saturating_add(t.min_delay) => {
            (Verdict::Pass, Some(Record { passed: true, expires: now.saturating_add(t.pass), ..r }))
        }
        // Too early: the first-seen time stays, or retrying early would
        // push the pass away forever.
        Some(r) if r.expires > now => (Verdict::Defer, None),
        // Never seen, or so long ago that it is a new attempt.
        _ => (Verdict::Defer, Some(Record { first_seen: now, passed: false, expires: now.saturating_add(t.expiry) })),
    }
}

/// Upkeep shared by a greylist and the ones reconfigured from it.
#[derive(Default)]
struct Upkeep {
    /// Seconds since the epoch from which the next check sweeps.
    next_sweep: AtomicU64,
    /// Seconds since the epoch from which the next failure is logged.
    next_warning: AtomicU64,
}

/// Greylisting over one store; shared by every connection (`Arc`).
pub struct Greylist {
    store: Arc<dyn GreylistStore>,
    clock: Arc<dyn Clock>,
    timings: Timings,
    prefixes: NetworkPrefixes,
    /// Where the state is, for logs.
    location: String,
    /// The redb file, if the store is one: a new configuration naming
    /// another opens that instead.
    file: Option<PathBuf>,
    upkeep: Arc<Upkeep>,
    /// The store's passes, in memory (shared like the store).
    passes: Arc<Passes>,
}

impl Greylist {
    /// Validates `config` and opens (creating) its redb database. Errors
    /// name the key or the database path. Opening a file that is already
    /// open, in this process or another, is an error: on reload, use
    /// [`Greylist::reconfigured`], which keeps the open store.
    pub fn open(config: &GreylistingConfig, clock: Arc<dyn Clock>) -> Result<Greylist> {
        config.validate()?;
        let store = RedbStore::open(&config.database)?;
        let mut greylist = Greylist::with_store(config, Arc::new(store), clock)?;
        greylist.file = Some(config.database.clone());
        Ok(greylist)
    }

    /// Greylisting timed by `config` with its state in `database` (whose
    /// `smtpcell_greylist_triplet` table every host using it shares); `database`
    /// in `config` is not used. No I/O: a database that is down is found
    /// by the checks, which then pass mail (see [`Greylist::check`]).
    pub fn in_postgres(config: &GreylistingConfig, database: Database, clock: Arc<dyn Clock>) -> Result<Greylist> {
        let location = format!("PostgreSQL {database}");
        let mut greylist = Greylist::with_store(config, Arc::new(PostgresStore::new(database)), clock)?;
        greylist.location = location;
        Ok(greylist)
    }

    /// Greylisting over `store` (any [`GreylistStore`]), timed by `config`,
    /// whose `database` is then only a name for logs.
    pub fn with_store(
        config: &GreylistingConfig,
        store: Arc<dyn GreylistStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Greylist> {
        config.validate()?;
        Ok(Greylist {
            store,
            clock,
            timings: Timings { min_delay: config.min_delay_secs, expiry: config.expiry_secs, pass: config.pass_secs },
            prefixes: config.prefixes(),
            location: config.database.display().to_string(),
            file: None,
            upkeep: Arc::default(),
            passes: Arc::default(),
        })
    }

    /// The greylist a reloaded `config` asks for: the same store, with the
    /// new timings and prefixes, unless the store is a redb file and
    /// `database` names another path (as written): then
    /// [`Greylist::open`] of the new one. Both may serve at once
    /// (connections in progress keep the old).
    pub fn reconfigured(&self, config: &GreylistingConfig) -> Result<Greylist> {
        if self.file.as_ref().is_some_and(|file| *file != config.database) {
            return Greylist::open(config, Arc::clone(&self.clock));
        }
        let mut greylist = Greylist::with_store(config, Arc::clone(&self.store), Arc::clone(&self.clock))?;
        greylist.location = self.location.clone();
        greylist.file = self.file.clone();
        greylist.upkeep = Arc::clone(&self.upkeep);
        greylist.passes = Arc::clone(&self.passes);
        Ok(greylist)
    }

    /// Where the state is: the redb file's path, or `PostgreSQL` and the
    /// database's URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Greylists one RCPT from `ip`: `reverse_path` without angle brackets
    /// (empty for `<>`), `recipient` the forward-path's address; both are
    /// compared lowercased. Fails open: when the store fails, the mail
    /// passes (and the failure is logged, at most every 5 minutes) rather
    /// than every message being deferred until someone notices.
    pub async fn check(&self, ip: IpAddr, reverse_path: &str, recipient: &str) -> Verdict {
        let triplet = Triplet {
            network: self.prefixes.network(ip),
            reverse_path: reverse_path.to_lowercase(),
            forward_path: recipient.to_lowercase(),
        };
        let now = self.clock.now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let sweep = take_due(&self.upkeep.next_sweep, now, SWEEP_INTERVAL_SECS);
        // A known pass that needs no renewal is answered from memory.
        if !sweep
            && let Some(record) = self.passes.get(&triplet)
            && decide(Some(record), now, self.timings) == (Verdict::Pass, None)
        {
            return Verdict::Pass;
        }
        let (store, timings, passes) = (Arc::clone(&self.store), self.timings, Arc::clone(&self.passes));
        let work = tokio::task::spawn_blocking(move || {
            let checked = check_in(&*store, &triplet, now, timings).map(|(verdict, record)| {
                passes.keep(&triplet, record);
                verdict
            });
            let swept = sweep.then(|| {
                passes.forget_expired(now);
                store.remove_expired(now)
            });
            (checked, swept)
        });
        let (checked, swept) = match work.await {
            Ok(done) => done,
            Err(panicked) => (Err(anyhow::anyhow!("the check panicked: {panicked}")), None),
        };
        match swept {
            Some(Ok(removed)) => debug!(removed, "greylisting: expired records removed"),
            Some(Err(err)) => self.warn(now, &err),
            None => {}
        }
        checked.unwrap_or_else(|err| {
            self.warn(now, &err);
            Verdict::Pass
        })
    }

    fn warn(&self, now: u64, err: &anyhow::Error) {
        if take_due(&self.upkeep.next_warning, now, WARNING_INTERVAL_SECS) {
            warn!(
                database = %self.location,
                err = format!("{err:#}"),
                "greylisting failed: mail passes ungreylisted until it works again"
            );
        }
    }
}

/// One check against the store: read, decide, write if the record changed.
/// The answer, and the triplet's record as the store now keeps it.
fn check_in(
    store: &dyn GreylistStore,
    triplet: &Triplet,
    now: u64,
    timings: Timings,
) -> Result<(Verdict, Option<Record>)> {
    let kept = store.get(triplet)?;
    match decide(kept, now, timings) {
        (verdict, Some(record)) => {
            store.put(triplet, record)?;
            Ok((verdict, Some(record)))
        }
        (verdict, None) => Ok((verdict, kept)),
    }
}
