//! The GCRA cells of shared rate limits in PostgreSQL (issue 17): one row
//! per (limit, key) in `smtpcell_rate_limit_cell` (host/migrations/V3__rate_limits.sql)
//! holding the theoretical arrival time (TAT) of the key's next request,
//! and one statement per request that checks every limit it concerns and
//! counts it against all of them only when none refuses: the rule the
//! in-memory limits follow (see the parent module).
//!
//! The generic cell rate algorithm (ITU-T I.371; the one governor
//! implements): a limit of `n` per `window` has an emission interval
//! `T = window / n`; a request at `now` passes when
//! `max(tat, now) + T - now <= window` (so a fresh key has its burst of
//! `n`), and counting it sets `tat = max(tat, now) + T`.
//!
//! The check reads the cells, then the same statement writes them: two
//! hosts' requests racing for a key's last slot may both pass, as two
//! connections of one host may with the in-memory limits; a count is
//! never lost, since the write advances the row as it then is.

use anyhow::{Context, Result};

use super::Limited;
use crate::postgres::Database;

/// `$1..$4`: the requests' limits, keys, intervals and windows (µs);
/// `$5`: now (µs since the epoch); `$6`: whether to check, `$7`: whether
/// to count. Returns the limits that refuse (only those that have a
/// cell: a key never seen, or idle, has its whole burst).
const TAKE: &str = "\
WITH request AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
        AS r(rate_limit, key, interval_us, window_us)
), refused AS (
    SELECT r.rate_limit FROM request r JOIN smtpcell_rate_limit_cell c USING (rate_limit, key)
    WHERE $6 AND greatest(c.tat_us, $5::bigint) + r.interval_us - $5::bigint > r.window_us
), counted AS (
    INSERT INTO smtpcell_rate_limit_cell AS c (rate_limit, key, tat_us)
    SELECT rate_limit, key, $5::bigint + interval_us FROM request
    WHERE $7 AND NOT EXISTS (SELECT 1 FROM refused)
    ON CONFLICT (rate_limit, key) DO UPDATE
    SET tat_us = greatest(c.tat_us, $5::bigint) + (excluded.tat_us - $5::bigint)
)
SELECT rate_limit FROM refused";

/// A cell whose TAT has passed is no different from a missing one.
const SWEEP: &str = "DELETE FROM smtpcell_rate_limit_cell WHERE tat_us < $1";

/// What [`PostgresCells::take`] does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// Refuse it if any limit is reached, else count it against all.
    CheckAndCount,
    /// Only say whether it would pass.
    Check,
    /// Count it whatever the limits say (the decision was taken
    /// elsewhere, as for a failed AUTH).
    Count,
}

/// One limit a request is counted against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellRequest {
    /// The limit; its [`Limited::name`] names the cell.
    pub limit: Limited,
    /// The counted thing: an address, a network in CIDR notation, a user,
    /// a lowercased reverse-path.
    pub key: String,
    /// The limit's emission interval `T`, in microseconds (at least 1).
    pub interval_us: i64,
    /// The limit's window (`n * T`), in microseconds.
    pub window_us: i64,
}

/// The cells of every shared limit, in one PostgreSQL database. Cheap to
/// clone.
#[derive(Clone)]
pub struct PostgresCells {
    database: Database,
}

impl PostgresCells {
    /// Cells in `database`; no I/O until the first call.
    pub fn new(database: Database) -> PostgresCells {
        PostgresCells { database }
    }

    /// Decides and counts one request against `requests` at `now_us`
    /// (microseconds since the UNIX epoch), in one statement and one
    /// round trip. `Ok(Some(limit))`: refused by that limit (the first
    /// in `requests`' order of those that refuse), nothing counted.
    /// Errors when the database cannot be reached or the statement fails.
    pub async fn take(&self, requests: &[CellRequest], now_us: i64, take: Take) -> Result<Option<Limited>> {
        if requests.is_empty() {
            return Ok(None);
        }
        let client = self.database.client().await?;
        let statement = client.prepare_cached(TAKE).await.context("preparing the rate-limit statement")?;
        let limits: Vec<&str> = requests.iter().map(|r| r.limit.name()).collect();
        let keys: Vec<&str> = requests.iter().map(|r| r.key.as_str()).collect();
        let intervals: Vec<i64> = requests.iter().map(|r| r.interval_us).collect();
        let windows: Vec<i64> = requests.iter().map(|r| r.window_us).collect();
        let (check, count) = (take != Take::Count, take != Take::Check);
        let rows = client
            .query(&statement, &[&limits, &keys, &intervals, &windows, &now_us, &check, &count])
            .await
            .context("counting against the shared rate limits")?;
        let refused: Vec<String> = rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
        Ok(requests.iter().map(|r| r.limit).find(|limit| refused.iter().any(|name| name == limit.name())))
    }

    /// Removes the cells idle at `now_us` (µs since the epoch); returns
    /// how many.
    pub async fn sweep(&self, now_us: i64) -> Result<u64> {
        let client = self.database.client().await?;
        client.execute(SWEEP, &[&now_us]).await.context("sweeping idle rate-limit cells")
    }
}
