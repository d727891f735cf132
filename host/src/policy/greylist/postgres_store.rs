//! The greylisting store in the PostgreSQL cluster that several smtpcell
//! hosts share (issue 17): a retry that reaches another host than the
//! first attempt finds the same triplet. The table is
//! `smtpcell_greylist_triplet` (host/migrations/V2__greylist.sql).
//!
//! [`GreylistStore`]'s calls block (the greylist runs them on
//! `tokio::task::spawn_blocking`), so each one waits here on the async
//! client with [`tokio::runtime::Handle::block_on`], which a blocking-pool
//! thread may do (it is not running a task).

use anyhow::{Context, Result};
use tokio::runtime::Handle;

use super::store::{GreylistStore, Record, Triplet};
use crate::postgres::Database;

const GET: &str = "SELECT extract(epoch FROM first_seen)::bigint, passed, extract(epoch FROM expires)::bigint \
                   FROM smtpcell_greylist_triplet \
                   WHERE network = $1::text::cidr AND reverse_path = $2 AND forward_path = $3";

/// An upsert that never replaces another host's pass, still running, by a
/// first attempt: two hosts may read the same missing record at once, and
/// the greylist's in-memory passes count on a pass never being taken back
/// before it expires (see `super::passes`).
const PUT: &str = "INSERT INTO smtpcell_greylist_triplet AS g \
                   (network, reverse_path, forward_path, first_seen, passed, expires) \
                   VALUES ($1::text::cidr, $2, $3, to_timestamp($4::bigint), $5, to_timestamp($6::bigint)) \
                   ON CONFLICT (network, reverse_path, forward_path) DO UPDATE \
                   SET first_seen = excluded.first_seen, passed = excluded.passed, expires = excluded.expires \
                   WHERE excluded.passed OR NOT g.passed OR g.expires <= excluded.first_seen";

const REMOVE_EXPIRED: &str = "DELETE FROM smtpcell_greylist_triplet WHERE expires <= to_timestamp($1::bigint)";

/// Greylisting's records in a PostgreSQL database, shared by every host
/// that uses it. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    database: Database,
}

impl PostgresStore {
    /// A store in `database`; no I/O until the first call.
    pub fn new(database: Database) -> PostgresStore {
        PostgresStore { database }
    }

    /// Runs `work` with a client of the pool, from a blocking thread.
    /// Errors when called outside a tokio runtime, or from one of its
    /// tasks (where blocking would stall the runtime: tokio panics, so
    /// this refuses first).
    fn blocking<T>(&self, work: impl AsyncFnOnce(&deadpool_postgres::Object) -> Result<T>) -> Result<T> {
        let handle = Handle::try_current().context("the PostgreSQL greylisting store runs on a tokio runtime")?;
        handle.block_on(async {
            let client = self.database.client().await?;
            work(&client).await
        })
    }
}

/// Seconds since the epoch, as PostgreSQL's bigint.
fn seconds(secs: u64) -> Result<i64> {
    i64::try_from(secs).context("a time past the year 292 billion")
}

impl GreylistStore for PostgresStore {
    fn get(&self, triplet: &Triplet) -> Result<Option<Record>> {
        let network = triplet.network.to_string();
        self.blocking(async |client| {
            let get = client.prepare_cached(GET).await?;
            let row = client.query_opt(&get, &[&network, &triplet.reverse_path, &triplet.forward_path]).await?;
            row.map(|row| {
                let (first_seen, passed, expires): (i64, bool, i64) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                // Written by us from u64 seconds; a negative time is a
                // record someone else wrote, read as long past.
                Ok(Record {
                    first_seen: u64::try_from(first_seen).unwrap_or(0),
                    passed,
                    expires: u64::try_from(expires).unwrap_or(0),
                })
            })
            .transpose()
        })
        .context("reading a greylisting triplet from PostgreSQL")
    }

    fn put(&self, triplet: &Triplet, record: Record) -> Result<()> {
        let network = triplet.network.to_string();
        let (first_seen, expires) = (seconds(record.first_seen)?, seconds(record.expires)?);
        self.blocking(async |client| {
            let put = client.prepare_cached(PUT).await?;
            client
                .execute(
                    &put,
                    &[&network, &triplet.reverse_path, &triplet.forward_path, &first_seen, &record.passed, &expires],
                )
                .await?;
            Ok(())
        })
        .context("writing a greylisting triplet to PostgreSQL")
    }

    fn remove_expired(&self, now: u64) -> Result<u64> {
        let now = seconds(now)?;
        self.blocking(async |client| Ok(client.execute(REMOVE_EXPIRED, &[&now]).await?))
            .context("removing expired greylisting triplets from PostgreSQL")
    }
}
