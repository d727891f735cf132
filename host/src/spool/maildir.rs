//! Maildir delivery (the format of qmail, Dovecot and Courier): a message is
//! written under tmp/, fsynced, renamed into new/, and new/ is fsynced. A
//! reader never sees a partial file, and a crash after the verdict cannot
//! lose the message: both the file's bytes and the directory entry that names
//! it are on disk before the client hears 250.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{MessageMeta, Spool, Transaction, trace_headers};

/// A Maildir rooted at a directory (created, with tmp/ new/ cur/, if missing).
pub struct Maildir {
    root: PathBuf,
    /// Kept open so that each commit can fsync new/ without reopening it.
    new_dir: Arc<File>,
    /// The host part of file names, with `/` and `:` escaped as the Maildir
    /// convention asks.
    host_part: String,
    counter: AtomicU64,
}

impl Maildir {
    pub fn open(root: impl Into<PathBuf>, hostname: &str) -> io::Result<Maildir> {
        let root = root.into();
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(root.join(sub))?;
        }
        let new_dir = Arc::new(File::open(root.join("new"))?);
        let host_part = hostname.replace('/', "\\057").replace(':', "\\072");
        Ok(Maildir { root, new_dir, host_part, counter: AtomicU64::new(0) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A name unique across processes and restarts: seconds and microseconds
    /// of the clock, the process id, and a per-process counter. Opening it
    /// with `create_new` turns any residual collision into a retry.
    fn unique(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}.M{}P{}Q{}", now.as_secs(), now.subsec_micros(), std::process::id(), n)
    }
}

impl Spool for Maildir {
    fn begin(&self, meta: &MessageMeta) -> io::Result<Box<dyn Transaction>> {
        let (unique, tmp_path, file) = loop {
            let unique = self.unique();
            let tmp_path = self.root.join("tmp").join(format!("{unique}.{}", self.host_part));
            match OpenOptions::new().write(true).create_new(true).open(&tmp_path) {
                Ok(file) => break (unique, tmp_path, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let mut txn = MaildirTransaction {
            new_path: self.root.join("new").join(tmp_path.file_name().expect("tmp path has a file name")),
            tmp_path,
            file: Some(BufWriter::with_capacity(64 << 10, file)),
            new_dir: self.new_dir.clone(),
            queue_id: unique,
        };
        let headers = trace_headers(meta, &txn.queue_id);
        txn.write(&headers)?;
        Ok(Box::new(txn))
    }
}

struct MaildirTransaction {
    tmp_path: PathBuf,
    new_path: PathBuf,
    /// `None` once committed: then Drop has nothing to clean up.
    file: Option<BufWriter<File>>,
    new_dir: Arc<File>,
    queue_id: String,
}

impl Transaction for MaildirTransaction {
    fn queue_id(&self) -> &str {
        &self.queue_id
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.write_all(data),
            None => Err(io::Error::other("write after commit")),
        }
    }

    fn commit(mut self: Box<Self>, cancelled: &AtomicBool) -> io::Result<()> {
        let writer = self.file.take().ok_or_else(|| io::Error::other("committed twice"))?;
        let result = (|| {
            let file = writer.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            if cancelled.load(Ordering::SeqCst) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "gave up waiting for storage"));
            }
            fs::rename(&self.tmp_path, &self.new_path)?;
            self.new_dir.sync_all()
        })();
        if result.is_err() {
            // Whatever happened, the message must not stay half-visible: the
            // client is about to hear 4xx and will send it again.
            let _ = fs::remove_file(&self.tmp_path);
            let _ = fs::remove_file(&self.new_path);
        }
        result
    }
}

impl Drop for MaildirTransaction {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}
