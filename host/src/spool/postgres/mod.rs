//! The PostgreSQL spool (`--store postgres://...`): every accepted message
//! becomes one row of `smtpcell_message` (envelope, header block, content)
//! and one row of `smtpcell_recipient` per recipient and destination, in a
//! database that several smtpcell hosts share (the schema is
//! `host/migrations/V1__spool.sql`, documented in the README as a contract
//! with consumers).
//!
//! - `transaction`: one message while it arrives; its content held in
//!   memory up to [`super::HELD_CONTENT_MAX`], spilled past that to an
//!   unnamed temporary file (see [`super::content`]), so a connection
//!   holds at most one message's content, and only at commit.
//! - `commit`: group commit: messages that end together are inserted by
//!   one database transaction, acknowledged once its COMMIT returned.
//! - `rows`: the row set of one message and the statement inserting it.
//! - `export`: `smtpcell export --to-maildir`, the rows back as Maildir files.
//!
//! Destinations: the rows carry every recipient's destinations as the
//! policy decided them (inbox, a local mailbox, outgoing to a forward-path)
//! instead of storing one copy per destination as the Maildir router does:
//! consumers select the rows they serve (`destination`, `target`).

mod commit;
mod export;
mod rows;
mod transaction;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use export::{Exported, export_to_maildir};

use self::commit::Committer;
use self::transaction::PgTransaction;
use super::content::Content;
use super::{MessageMeta, Spool, Transaction};
use crate::postgres::Database;

/// A [`Spool`] storing into a PostgreSQL database.
pub struct PostgresSpool {
    committer: Committer,
    ids: QueueIds,
    /// Where content past [`super::HELD_CONTENT_MAX`] spills (unnamed files).
    spill_dir: Arc<Path>,
}

impl PostgresSpool {
    /// A spool storing into `database`, spilling large content into
    /// unnamed files in `spill_dir` (`O_TMPFILE`: gone when closed, whatever
    /// ends the process; opened only for content that outgrows the held
    /// bound). No I/O: the database is first used by the first message's
    /// commit, which also starts the group-commit task on its runtime.
    pub fn open(database: Database, spill_dir: PathBuf) -> PostgresSpool {
        PostgresSpool { committer: Committer::new(database), ids: QueueIds::new(), spill_dir: spill_dir.into() }
    }
}

impl Spool for PostgresSpool {
    /// Names the message. Its spill file is created only if its content
    /// outgrows [`super::HELD_CONTENT_MAX`] (a failure then is that write's).
    ///
    /// Errors: a recipient without destinations, or no recipient
    /// ([`io::ErrorKind::InvalidInput`]).
    fn begin(&self, meta: &MessageMeta) -> io::Result<Box<dyn Transaction>> {
        if meta.recipients.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a message without recipients"));
        }
        if let Some(rcpt) = meta.recipients.iter().find(|r| r.destinations.is_empty()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the recipient <{}> has no destination", rcpt.address),
            ));
        }
        let spill_dir = Arc::clone(&self.spill_dir);
        let content = Content::spilling_later(move || tempfile::tempfile_in(spill_dir));
        Ok(Box::new(PgTransaction::begin(meta, self.ids.next(), content, self.committer.clone())))
    }
}

/// Queue ids unique across hosts and restarts without asking the database
/// (a message is named before it is stored: its Received field names it):
/// the Maildir shape (seconds, microseconds, process, counter) and a random
/// tag per process, since hosts in containers share process ids. A
/// collision anyway fails that batch's INSERT (`queue_id` is UNIQUE), and
/// its clients hear 451 and send again.
struct QueueIds {
    pid: u32,
    tag: u32,
    counter: AtomicU64,
}

impl QueueIds {
    fn new() -> QueueIds {
        // RandomState is seeded from the operating system's randomness.
        let tag = RandomState::new().hash_one(std::process::id()) as u32;
        QueueIds { pid: std::process::id(), tag, counter: AtomicU64::new(0) }
    }

    fn next(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}.M{}P{}Q{}R{:08x}", now.as_secs(), now.subsec_micros(), self.pid, n, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::QueueIds;

    #[test]
    fn queue_ids_differ_within_and_across_processes() {
        let (one, other) = (QueueIds::new(), QueueIds::new());
        let ids: std::collections::HashSet<String> = (0..1000).flat_map(|_| [one.next(), other.next()]).collect();
        assert_eq!(ids.len(), 2000);
        assert_ne!(one.tag, other.tag, "each spool draws its own tag");
    }
}
