//! The schema, as versioned SQL files in `host/migrations/`
//! (`V1__spool.sql`, `V2__...`), embedded at build time by refinery and
//! applied in version order; refinery records each in
//! `refinery_schema_history` and refuses a database whose applied
//! migrations differ from ours (a file changed after it was applied).
//!
//! Several hosts may start together on one database: each takes a
//! session-level advisory lock before migrating, so one applies the files
//! and the others find them applied.

use anyhow::{Context, Result};

refinery::embed_migrations!("migrations");

/// The version of `V1__spool.sql`, the spool's tables.
pub const SPOOL_SCHEMA_VERSION: i32 = 1;

/// The advisory lock key the migrating host holds: "smtpcell" in ASCII.
const MIGRATION_LOCK: i64 = 0x736d_7470_6365_6c6c;

/// Applies the migrations not yet applied, on `client`, holding the
/// migration lock. Returns the names of those it applied (none when
/// another host was first).
///
/// Errors: the database's (the lock, a statement of a migration), or a
/// database that has migrations this build does not know of or that
/// differ from ours.
pub(super) async fn run(client: &mut deadpool_postgres::Object) -> Result<Vec<String>> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.context("taking the migration lock")?;
    let report = migrations::runner().set_abort_divergent(true).run_async(&mut ***client).await;
    // Unlocked even after a failure: the connection goes back to the pool.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    let report = report.context("applying the migrations")?;
    unlocked.context("releasing the migration lock")?;
    Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
}
