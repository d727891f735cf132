//! How the spool names the files it writes in Maildirs.
//!
//! One name per file in tmp/, unique across processes and restarts (the
//! Maildir convention: time, process, counter, host), and one name per
//! message in new/: `{queue id}.{host}`, the same in every Maildir that
//! gets a copy, so the id in the 250 reply finds every copy
//! (`grep -r ID` over the Maildirs, or `ls */new/ID.*`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file naming of one spool, shared by its transactions.
pub(super) struct Names {
    /// The host part of file names, with `/` and `:` escaped as the Maildir
    /// convention asks.
    host_part: String,
    /// Read once: `std::process::id()` is a system call each time.
    pid: u32,
    counter: AtomicU64,
}

impl Names {
    pub fn new(hostname: &str) -> Names {
        let host_part = hostname.replace('/', "\\057").replace(':', "\\072");
        Names { host_part, pid: std::process::id(), counter: AtomicU64::new(0) }
    }

    /// What ends every file name, after a dot; the start-up sweep of tmp/
    /// ([`super::recovery`]) takes only files with it.
    pub fn host_part(&self) -> &str {
        &self.host_part
    }

    /// Creates a file in `tmp` (mode 0600, readable and writable) under a
    /// name unique across processes and restarts: seconds and microseconds
    /// of the clock, the process id, and a per-process counter (the
    /// start-up sweep of tmp/ recognises our files by this shape). Opening
    /// it with `create_new` turns any residual collision into a retry.
    /// Returns the unique part of the name (a queue id, for the message's
    /// first file), the path and the file.
    ///
    /// Errors: creating the file (a missing or unwritable `tmp`, a full
    /// disk as [`io::ErrorKind::StorageFull`]).
    pub fn create_tmp(&self, tmp: &Path) -> io::Result<(String, PathBuf, File)> {
        loop {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let unique = format!("{}.M{}P{}Q{}", now.as_secs(), now.subsec_micros(), self.pid, n);
            let path = tmp.join(format!("{unique}.{}", self.host_part));
            match OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path) {
                Ok(file) => return Ok((unique, path, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The name a message's copies get in new/, whatever their tmp/ names.
    pub fn delivered(&self, queue_id: &str) -> String {
        format!("{queue_id}.{}", self.host_part)
    }
}
