//! Maildir delivery (the format of qmail, Dovecot and Courier): a message is
//! written under tmp/, made durable, renamed into new/, and new/ is made
//! durable. A reader never sees a partial file, and a crash after the verdict
//! cannot lose the message: both the file's bytes and the directory entry
//! that names it are on disk before the client hears 250.
//!
//! The flushes are group-committed on one thread (see [`super::commit`]):
//! messages that finish together share one filesystem sync before their
//! renames and one fsync of new/ after them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::commit::{Committer, Job};
use super::recovery::sweep_tmp;
use super::{CommitFuture, MessageMeta, Spool, Transaction, trace_headers};

/// A Maildir rooted at a directory (created, with tmp/ new/ cur/, if missing).
pub struct Maildir {
    root: PathBuf,
    /// Makes written messages durable and visible, in batches.
    committer: Committer,
    /// The host part of file names, with `/` and `:` escaped as the Maildir
    /// convention asks.
    host_part: String,
    /// Read once: `std::process::id()` is a system call each time.
    pid: u32,
    counter: AtomicU64,
}

impl Maildir {
    /// Opens (creating if missing) the Maildir at `root` for a server named
    /// `hostname`, and removes the partial messages a crashed or killed
    /// server left in its `tmp/` (see [`super::recovery`]; one process
    /// should open a given Maildir once, since the sweep takes files named
    /// with its own pid for a predecessor's).
    ///
    /// Errors: creating or reading the directories, starting the commit thread.
    pub fn open(root: impl Into<PathBuf>, hostname: &str) -> io::Result<Maildir> {
        let root = root.into();
        for sub in ["tmp", "new", "cur"] {
            // Mail is private: directories we create are the owner's alone
            // (existing ones keep the mode the operator gave them).
            fs::DirBuilder::new().recursive(true).mode(0o700).create(root.join(sub))?;
        }
        let committer = Committer::start(File::open(root.join("new"))?)?;
        let host_part = hostname.replace('/', "\\057").replace(':', "\\072");
        let pid = std::process::id();
        let swept = sweep_tmp(&root.join("tmp"), &host_part, pid)?;
        if swept.removed > 0 {
            warn!(
                files = swept.removed,
                bytes = swept.bytes,
                maildir = %root.display(),
                "removed partial messages left in tmp/ by a server that stopped without finishing them \
                 (crash or kill); none had been acknowledged"
            );
        }
        if swept.live > 0 {
            info!(files = swept.live, "tmp/ holds messages in flight in another running smtpcell; kept");
        }
        Ok(Maildir { root, committer, host_part, pid, counter: AtomicU64::new(0) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A name unique across processes and restarts: seconds and microseconds
    /// of the clock, the process id, and a per-process counter (the start-up
    /// sweep of `tmp/`, [`sweep_tmp`], recognises our files by this shape). Opening it
    /// with `create_new` turns any residual collision into a retry.
    fn unique(&self) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}.M{}P{}Q{}", now.as_secs(), now.subsec_micros(), self.pid, n)
    }
}

impl Spool for Maildir {
    fn begin(&self, meta: &MessageMeta) -> io::Result<Box<dyn Transaction>> {
        let (unique, tmp_path, file) = loop {
            let unique = self.unique();
            let tmp_path = self.root.join("tmp").join(format!("{unique}.{}", self.host_part));
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp_path) {
                Ok(file) => break (unique, tmp_path, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let mut txn = MaildirTransaction {
            new_path: self.root.join("new").join(tmp_path.file_name().expect("tmp path has a file name")),
            tmp_path,
            file: Some(BufWriter::with_capacity(64 << 10, file)),
            committer: self.committer.clone(),
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
    committer: Committer,
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

    fn commit(mut self: Box<Self>, end_headers: Vec<u8>, cancelled: Arc<AtomicBool>) -> CommitFuture {
        // Placeholder until the header block is written at commit (branch
        // spool-end-headers): no policy returns header fields yet.
        debug_assert!(end_headers.is_empty());
        let (done, answer) = oneshot::channel();
        // Some until commit or drop, and commit consumes the transaction.
        let writer = self.file.take().expect("a transaction is committed at most once");
        match writer.into_inner() {
            Ok(file) => self.committer.submit(Job {
                file,
                tmp_path: std::mem::take(&mut self.tmp_path),
                new_path: std::mem::take(&mut self.new_path),
                cancelled,
                done,
            }),
            Err(err) => {
                let _ = fs::remove_file(&self.tmp_path);
                let _ = done.send(Err(err.into_error()));
            }
        }
        Box::pin(async move { answer.await.unwrap_or_else(|_| Err(io::Error::other("the commit was dropped"))) })
    }
}

impl Drop for MaildirTransaction {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn meta() -> MessageMeta {
        MessageMeta {
            server_hostname: "mx.test".into(),
            client_ip: Ipv4Addr::LOCALHOST.into(),
            helo: "client.test".into(),
            reverse_path: "a@b.test".into(),
            recipients: vec![super::super::StoredRecipient { address: "c@d.test".into(), notify: None, orcpt: None }],
            protocol: "ESMTP".into(),
            body: "7BIT",
            smtputf8: false,
            dsn_return: None,
            dsn_envid: None,
            received_at: SystemTime::now(),
            handled_by: "test@0".into(),
        }
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_are_all_durable_visible_and_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Arc::new(Maildir::open(dir.path(), "mx.test").unwrap());
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..200 {
            let maildir = maildir.clone();
            tasks.spawn(async move {
                let mut txn = maildir.begin(&meta()).unwrap();
                txn.write(format!("Subject: {n}\r\n\r\nbody {n}\r\n").as_bytes()).unwrap();
                txn.commit(Vec::new(), Arc::new(AtomicBool::new(false))).await
            });
        }
        while let Some(outcome) = tasks.join_next().await {
            outcome.unwrap().unwrap();
        }
        let stored = files(&dir.path().join("new"));
        assert_eq!(stored.len(), 200);
        let mut bodies: Vec<String> = stored
            .iter()
            .map(|p| fs::read_to_string(p).unwrap().rsplit("\r\n\r\n").next().unwrap().to_string())
            .collect();
        bodies.sort();
        bodies.dedup();
        assert_eq!(bodies.len(), 200, "every message is stored once, whole");
        assert!(files(&dir.path().join("tmp")).is_empty());
    }

    /// A fresh Maildir and one open transaction with `content` written.
    fn one_written(content: &[u8]) -> (tempfile::TempDir, Maildir, Box<dyn Transaction>) {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(dir.path(), "mx.test").unwrap();
        let mut txn = maildir.begin(&meta()).unwrap();
        txn.write(content).unwrap();
        (dir, maildir, txn)
    }

    #[tokio::test]
    async fn stored_mail_and_the_maildir_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, _maildir, txn) = one_written(b"Subject: private\r\n\r\nx\r\n");
        txn.commit(Vec::new(), Arc::new(AtomicBool::new(false))).await.unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let stored = files(&dir.path().join("new"));
        assert_eq!(stored.len(), 1);
        assert_eq!(mode(&stored[0]), 0o600, "a stored message is readable by its owner only");
        for sub in ["tmp", "new", "cur"] {
            assert_eq!(mode(&dir.path().join(sub)), 0o700, "{sub}/");
        }
    }

    #[tokio::test]
    async fn a_cancelled_commit_stores_nothing() {
        let (dir, _maildir, txn) = one_written(b"Subject: late\r\n\r\nx\r\n");
        let err = txn.commit(Vec::new(), Arc::new(AtomicBool::new(true))).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(files(&dir.path().join("new")).is_empty());
        assert!(files(&dir.path().join("tmp")).is_empty());
    }

    #[tokio::test]
    async fn a_dropped_transaction_leaves_nothing_behind() {
        let (dir, _maildir, txn) = one_written(b"Subject: abandoned\r\n");
        assert_eq!(files(&dir.path().join("tmp")).len(), 1);
        drop(txn);
        assert!(files(&dir.path().join("tmp")).is_empty());
        assert!(files(&dir.path().join("new")).is_empty());
    }
}
