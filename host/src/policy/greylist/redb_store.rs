//! The greylisting store in one file of redb, an embedded, pure-Rust,
//! crash-safe key-value database.

use std::path::Path;

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, TableDefinition};

use super::store::{GreylistStore, Record, Triplet};

/// (network in CIDR notation, reverse-path, forward-path) ->
/// (first_seen, passed, expires). The network keeps its prefix length, so
/// that a changed prefix starts new keys instead of mixing them; the name's
/// version changes with the layout.
const TRIPLETS: TableDefinition<(&str, &str, &str), (u64, bool, u64)> = TableDefinition::new("greylist_triplets_v1");

/// A redb database file. It is locked while open: one process, and one
/// [`RedbStore`] in it, per file.
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens the database at `path`, creating the file if it does not
    /// exist. Errors (a missing directory, a file that is not a redb
    /// database, a file already open) name the path.
    pub fn open(path: &Path) -> Result<RedbStore> {
        let opened = || -> Result<RedbStore> {
            let db = Database::create(path)?;
            // Made now, so that reads find the table before any write.
            let txn = db.begin_write()?;
            txn.open_table(TRIPLETS)?;
            txn.commit()?;
            Ok(RedbStore { db })
        };
        opened().with_context(|| format!("greylisting database {}", path.display()))
    }

    /// How many records are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> u64 {
        use redb::ReadableTableMetadata;
        self.db.begin_read().unwrap().open_table(TRIPLETS).unwrap().len().unwrap()
    }
}

impl GreylistStore for RedbStore {
    fn get(&self, triplet: &Triplet) -> Result<Option<Record>> {
        let table = self.db.begin_read()?.open_table(TRIPLETS)?;
        let network = triplet.network.to_string();
        let found = table.get((network.as_str(), triplet.reverse_path.as_str(), triplet.forward_path.as_str()))?;
        Ok(found.map(|value| {
            let (first_seen, passed, expires) = value.value();
            Record { first_seen, passed, expires }
        }))
    }

    fn put(&self, triplet: &Triplet, record: Record) -> Result<()> {
        let network = triplet.network.to_string();
        let txn = self.db.begin_write()?;
        txn.open_table(TRIPLETS)?.insert(
            (network.as_str(), triplet.reverse_path.as_str(), triplet.forward_path.as_str()),
            (record.first_seen, record.passed, record.expires),
        )?;
        // The default durability: on disk when commit returns.
        txn.commit()?;
        Ok(())
    }

    fn remove_expired(&self, now: u64) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let mut removed = 0;
        {
            let mut table = txn.open_table(TRIPLETS)?;
            for entry in table.extract_if(|_, (_, _, expires)| expires <= now)? {
                entry?;
                removed += 1;
            }
        }
        txn.commit()?;
        Ok(removed)
    }
}
