//! Maildir delivery (the format of qmail, Dovecot and Courier): a message is
//! written under tmp/, fsynced, renamed into new/, and new/ is fsynced. A
//! reader never sees a partial file, and a crash after the verdict cannot
//! lose the message: both the file's bytes and the directory entry that names
//! it are on disk before the client hears 250.
//!
//! The directory fsync is group-committed (see [`DirSync`]): concurrent
//! commits share one fsync of new/ that starts after all their renames, so
//! each message still has its file fsync, its rename and a directory fsync
//! that covers the rename before its verdict, at one flush per batch instead
//! of one per message.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{MessageMeta, Spool, Transaction, trace_headers};

/// A Maildir rooted at a directory (created, with tmp/ new/ cur/, if missing).
pub struct Maildir {
    root: PathBuf,
    /// new/, kept open; commits fsync it through the group commit.
    new_dir: Arc<DirSync>,
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
        let new_dir = Arc::new(DirSync::new(File::open(root.join("new"))?));
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
    new_dir: Arc<DirSync>,
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
            // Returns only after an fsync of new/ that began after this rename.
            self.new_dir.sync_after_rename()
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

/// Group commit of a directory fsync.
///
/// Why: every message needs new/ fsynced after its rename (invariant 1), and
/// on this kind of disk each fsync is a device cache flush. With 20 sessions
/// committing at once, one fsync of new/ started after all of their renames
/// makes all of them durable, so they share it instead of queueing 20
/// flushes.
///
/// How: a caller takes a ticket after its rename. An fsync that *starts*
/// when `requested` is R covers every ticket <= R (those renames happened
/// before it began). One caller at a time runs the fsync (the leader); the
/// others wait until `synced` reaches their ticket, or lead the next round.
/// A failed fsync fails every ticket it was meant to cover that no later
/// successful fsync has covered: nobody is told "durable" on a failed flush.
pub(super) struct DirSync {
    dir: File,
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Tickets handed out (renames waiting for, or covered by, an fsync).
    requested: u64,
    /// Every ticket <= this is covered by a successful fsync.
    synced: u64,
    /// Every ticket <= this (and > `synced`) was covered by a failed fsync.
    failed: u64,
    leader: bool,
}

impl DirSync {
    pub(super) fn new(dir: File) -> DirSync {
        DirSync { dir, state: Mutex::new(SyncState::default()), done: Condvar::new() }
    }

    /// Call after the rename: returns once a directory fsync that started
    /// after it has completed (or failed).
    pub(super) fn sync_after_rename(&self) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.requested += 1;
        let ticket = st.requested;
        loop {
            if st.synced >= ticket {
                return Ok(());
            }
            if st.failed >= ticket {
                return Err(io::Error::other("fsync of the Maildir's new/ failed"));
            }
            if !st.leader {
                st.leader = true;
                let covers = st.requested;
                drop(st);
                let result = self.dir.sync_all();
                st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                st.leader = false;
                match &result {
                    Ok(()) => st.synced = st.synced.max(covers),
                    Err(_) => st.failed = st.failed.max(covers),
                }
                self.done.notify_all();
                result?;
                continue;
            }
            st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}
