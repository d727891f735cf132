//! `smtpcell export --store URL --to-maildir DIR`: the stored messages
//! written out as Maildir files, each exactly what a Maildir copy of it
//! holds (its header block, then its content), for anyone who wants files.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::postgres::Database;
use crate::spool::dirs::{MaildirDirs, at};
use crate::spool::names::Names;

/// What an export did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exported {
    /// Messages written into new/.
    pub written: u64,
    /// Messages whose file was already in new/ or cur/ (an earlier export).
    pub present: u64,
    /// The highest id seen, for the next `--after`; `None` when no message
    /// was past `after`.
    pub last_id: Option<i64>,
}

/// Writes every message with an id above `after` into the Maildir at `dir`
/// (created if missing), in id order: each into tmp/, fsynced, renamed
/// into new/; new/ is fsynced once at the end, before this returns. A
/// message's file name comes from its row alone
/// (`{received seconds}.I{id}.{receiving host}`), so exporting again skips
/// what is already there, in new/ or, moved by a reader, in cur/. Memory
/// holds one message at a time.
///
/// Errors: the database's (the export stops there; what it wrote stays,
/// and a new run resumes), creating the Maildir, writing a file.
pub async fn export_to_maildir(database: &Database, dir: &Path, after: i64) -> Result<Exported> {
    let dirs = MaildirDirs::create(dir, false).with_context(|| format!("creating the Maildir {}", dir.display()))?;
    let present_names = names_in(&dirs.root)?;
    let client = database.client().await?;
    let listed = client
        .query(
            "SELECT id, floor(extract(epoch FROM received_at))::bigint, receiving_host FROM smtpcell_message \
             WHERE id > $1 ORDER BY id",
            &[&after],
        )
        .await
        .context("listing the stored messages")?;
    let fetch = client
        .prepare("SELECT trace_headers, content FROM smtpcell_message WHERE id = $1")
        .await
        .context("preparing the message query")?;
    let mut done = Exported { written: 0, present: 0, last_id: None };
    for row in listed {
        let (id, secs, host): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
        done.last_id = Some(id);
        let name = Names::new(&host).delivered(&format!("{secs}.I{id}"));
        if present_names.contains(&name) {
            done.present += 1;
            continue;
        }
        // Deleted since it was listed (a consumer took it): nothing to write.
        let Some(message) = client.query_opt(&fetch, &[&id]).await.context("reading a message")? else {
            continue;
        };
        let (headers, content): (&[u8], &[u8]) = (message.get(0), message.get(1));
        write_durably(&dirs, &name, &[headers, content])?;
        done.written += 1;
    }
    dirs.make_durable(None)?;
    Ok(done)
}

/// The file names in new/ and cur/, without cur/'s `:2,flags` suffix.
fn names_in(root: &Path) -> io::Result<HashSet<String>> {
    let mut names = HashSet::new();
    for sub in ["new", "cur"] {
        let dir = root.join(sub);
        for entry in fs::read_dir(&dir).map_err(|err| at(&dir, err))? {
            let name = entry.map_err(|err| at(&dir, err))?.file_name().to_string_lossy().into_owned();
            let base = name.split(':').next().unwrap_or_default().to_string();
            names.insert(base);
        }
    }
    Ok(names)
}

/// Writes `parts` into tmp/`name`, fsyncs it and renames it into new/.
fn write_durably(dirs: &MaildirDirs, name: &str, parts: &[&[u8]]) -> io::Result<()> {
    let tmp = dirs.tmp.join(name);
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(|e| at(&tmp, e))?;
    for part in parts {
        file.write_all(part).map_err(|e| at(&tmp, e))?;
    }
    file.sync_all().map_err(|e| at(&tmp, e))?;
    fs::rename(&tmp, dirs.new.join(name)).map_err(|e| at(&tmp, e))
}
