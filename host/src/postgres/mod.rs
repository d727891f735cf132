//! The PostgreSQL database that smtpcell hosts share (issue 17): the
//! message spool (`crate::spool` with `--store postgres://...`) and the
//! policy state every host must see.
//!
//! - [`Database`]: a pool of connections (deadpool-postgres over
//!   tokio-postgres) to the server or cluster a URL names, libpq's
//!   multi-host form included, and the schema migrations, applied on the
//!   first connection that succeeds.
//! - `target`: the URL, checked, with what smtpcell adds to every session
//!   and its redacted form for logs.
//! - `migrations`: the embedded SQL files of `host/migrations/` and how they
//!   are applied (one host at a time).
//!
//! Why nothing connects at start-up: a host must start and keep serving
//! while the database is down (it answers 451 4.3.0 to each message until
//! then), so connecting and migrating are retried by every
//! [`Database::client`] call that finds them not done.

mod migrations;
mod target;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;
use tracing::{info, warn};

pub use deadpool_postgres::Object as Client;
pub use migrations::SPOOL_SCHEMA_VERSION;
pub use target::Target;

/// A PostgreSQL database shared by smtpcell hosts: a connection pool, and
/// the schema migrations run once per process before the first client is
/// handed out. Cheap to clone (one `Arc`); every clone shares the pool.
///
/// `Display` shows the target without its password (for logs).
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    target: Target,
    /// Set once the migrations ran on this process's behalf.
    migrated: OnceCell<()>,
    /// [`UNKNOWN`], [`REACHABLE`] or [`UNREACHABLE`]: what the last
    /// [`Database::client`] found, so that only changes are logged.
    reachability: AtomicU8,
}

const UNKNOWN: u8 = 0;
const REACHABLE: u8 = 1;
const UNREACHABLE: u8 = 2;

impl Database {
    /// Connections the pool keeps open at most: the spool uses one at a
    /// time (its batches are serial), the policy a few.
    pub const MAX_CONNECTIONS: usize = 16;

    /// The database `url` names: a `postgres://` or `postgresql://` URL or
    /// a libpq key=value conninfo string, several hosts allowed
    /// (`postgres://u@10.0.0.1:5432,10.0.0.2:5432/smtpcell?target_session_attrs=read-write`:
    /// the first that answers, and is a primary with `read-write`, is used,
    /// so a host follows a failover). Connections use no TLS (see the
    /// README). No I/O: nothing connects until [`Database::client`].
    ///
    /// Errors: a string tokio-postgres cannot parse, one that names no host.
    pub fn open(url: &str) -> Result<Database> {
        let target = Target::parse(url)?;
        let manager = Manager::from_config(
            target.config().clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let connect = target.connect_timeout();
        let pool = Pool::builder(manager)
            .max_size(Self::MAX_CONNECTIONS)
            .runtime(Runtime::Tokio1)
            // Bounded waits: a client finds out the database is away (and
            // its message gets 451) instead of hanging until its timeout.
            .create_timeout(Some(connect))
            .wait_timeout(Some(connect + Duration::from_secs(5)))
            .recycle_timeout(Some(connect))
            .build()
            .context("building the PostgreSQL connection pool")?;
        Ok(Database {
            inner: Arc::new(Inner { pool, target, migrated: OnceCell::new(), reachability: AtomicU8::new(UNKNOWN) }),
        })
    }

    /// A pooled connection (returned to the pool when dropped), on a
    /// database whose schema is migrated: the first call that connects
    /// applies the migrations (one host at a time, see `migrations`).
    ///
    /// Errors: no connection could be made (the database is down, no
    /// primary among the hosts with `target_session_attrs=read-write`,
    /// refused credentials), or the migrations failed; the next call tries
    /// again. The error names the redacted target.
    pub async fn client(&self) -> Result<Client> {
        let client = self.connected().await;
        self.note_reachability(&client);
        client
    }

    async fn connected(&self) -> Result<Client> {
        let mut client = self
            .inner
            .pool
            .get()
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", self.inner.target))?;
        self.inner
            .migrated
            .get_or_try_init(|| async {
                let applied = migrations::run(&mut client)
                    .await
                    .with_context(|| format!("migrating the schema of PostgreSQL at {}", self.inner.target))?;
                if applied.is_empty() {
                    info!(database = %self.inner.target, "PostgreSQL schema up to date");
                } else {
                    info!(database = %self.inner.target, applied = ?applied, "PostgreSQL schema migrated");
                }
                anyhow::Ok(())
            })
            .await?;
        Ok(client)
    }

    /// Logs the changes only: one warning when the database stops
    /// answering (every message gets 451 until it is back; the messages'
    /// own failures are logged with them), one line when it answers again.
    fn note_reachability(&self, outcome: &Result<Client>) {
        let now = if outcome.is_ok() { REACHABLE } else { UNREACHABLE };
        if self.inner.reachability.swap(now, Ordering::Relaxed) == now {
            return;
        }
        match outcome {
            Ok(_) => info!(database = %self, "PostgreSQL reachable"),
            Err(err) => warn!(
                error = %format!("{err:#}"),
                "PostgreSQL unreachable; every message is answered 451 4.3.0 until it is back"
            ),
        }
    }

    /// Connects and migrates at start-up, retrying until that succeeds
    /// ([`Database::client`] logs the first failure and the success). On
    /// a task of its own: messages do not wait for it, and each of them
    /// tries on its own.
    pub async fn connect_in_background(self) {
        let mut delay = Duration::from_millis(250);
        while self.client().await.is_err() {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    /// The target, for summaries (`config check`, `status`).
    pub fn target(&self) -> &Target {
        &self.inner.target
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.target.fmt(f)
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Database({})", self.inner.target)
    }
}
