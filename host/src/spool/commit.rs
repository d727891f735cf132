//! Group commit of Maildir deliveries on one thread.
//!
//! Why: a message is durable once its bytes, its inode and the new/ entry
//! that names it are on disk. Doing that per message (fsync the file, rename,
//! fsync new/) costs three synchronous device round trips and a blocking-pool
//! hop per message; profiles of 20 concurrent sessions showed storage as
//! 40 % of the server's CPU. Messages that finish at about the same time can
//! share the flushes instead (group commit): durability is kept as long as
//! no 250 is sent before the bytes and the rename are on disk.
//!
//! How: connections hand a message's written (not yet synced) tmp/ files,
//! one per copy and possibly in several Maildirs, to this thread and await
//! a one-shot answer. The thread takes everything queued as one batch and:
//! 1. `syncfs` once on each filesystem the batch's files are on: every file
//!    of the batch was written before this call, so their data and inodes
//!    are on disk when it returns (ext4, XFS and btrfs end it with a device
//!    flush or log force). Each file is then asked for its own writeback
//!    error (a `sync_file_range` wait that reports the file's error state),
//!    so a failed write fails that message even if `syncfs` reported it to
//!    another batch.
//! 2. Renames every copy into its Maildir's new/ (a cancelled message's
//!    copies are removed instead), then fsyncs each new/ directory of the
//!    batch once, with the directories created for a Maildir since the
//!    last batch. Only then are the messages acknowledged.
//!
//! A message is all or nothing: if any of its copies fails (a write, a
//! rename, a directory flush), every copy is removed, those already renamed
//! included (nobody was told 250 for them) and the message gets that
//! error, its kind kept (a full disk stays [`io::ErrorKind::StorageFull`],
//! 452). Removals are not flushed: a crash right after one can bring a copy
//! back, a duplicate of a message the client will send again, never a loss.
//!
//! New messages queue while a batch is being flushed and form the next one,
//! so the batch size follows the load: one message alone pays two flushes,
//! twenty concurrent ones pay two flushes together, and a message with
//! copies in three users' Maildirs adds an fsync of each new/ directory,
//! shared with the batch's other messages to them.
//!
//! The cost of `syncfs` is that it flushes whatever else is dirty on the
//! same filesystem: keep the Maildirs off filesystems with bulk writers
//! (the README says so).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::dirs::{MaildirDirs, NewDir};
use crate::events::{self, Event};

/// One copy of a message, written to its tmp/ file.
pub(super) struct Written {
    /// Written and flushed to the page cache; closed after the flush.
    pub file: File,
    pub tmp_path: PathBuf,
    pub new_path: PathBuf,
    /// The Maildir `new_path` is in.
    pub dirs: Arc<MaildirDirs>,
}

/// One message waiting to become durable and visible: all its copies, or
/// none.
pub(super) struct Job {
    pub copies: Vec<Written>,
    /// Set by the connection when it gave up waiting (the client heard 451):
    /// the message must then not become visible.
    pub cancelled: Arc<AtomicBool>,
    pub done: oneshot::Sender<io::Result<()>>,
}

impl Job {
    fn fail(self, err: io::Error) {
        // Whatever happened, the message must not stay half-visible: the
        // client is about to hear 4xx and will send it again.
        for copy in &self.copies {
            let _ = fs::remove_file(&copy.tmp_path);
            let _ = fs::remove_file(&copy.new_path);
        }
        let _ = self.done.send(Err(err));
    }

    /// Checks each copy's writeback, then renames them all into new/.
    fn check_and_rename(&self, synced: &Synced) -> io::Result<()> {
        for copy in &self.copies {
            match &synced[&copy.dirs.dev()] {
                Ok(Ok(())) => writeback_error(&copy.file)?,
                Ok(Err(err)) | Err(err) => return Err(clone(err)),
            }
        }
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "gave up waiting for storage"));
        }
        for copy in &self.copies {
            fs::rename(&copy.tmp_path, &copy.new_path)?;
        }
        Ok(())
    }
}

/// Phase 1's outcome for each filesystem of a batch (`st_dev`): the
/// `syncfs`, or when no new/ directory on it could be opened, why.
type Synced = HashMap<u64, io::Result<io::Result<()>>>;

/// The sending side, shared by the spool and its open transactions. The
/// thread ends when every sender is gone, after finishing what was queued.
#[derive(Clone)]
pub(super) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the commit thread.
    pub fn start() -> io::Result<Committer> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new().name("maildir-commit".into()).spawn(move || run(&queue))?;
        Ok(Committer { jobs })
    }

    /// Queues a message; the answer says whether it is durable and visible.
    pub fn submit(&self, job: Job) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            job.fail(io::Error::other("the Maildir commit thread has stopped"));
        }
    }
}

fn run(queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        let (messages, started) = (batch.len(), std::time::Instant::now());
        commit_batch(batch);
        events::emit(Event::CommitBatch { messages, duration: started.elapsed() });
    }
}

fn commit_batch(batch: Vec<Job>) {
    // Phase 1: the contents of every file in the batch on disk, one
    // syncfs per filesystem, through any new/ of the batch on it that
    // opens: a user's Maildir removed meanwhile must fail only the
    // messages to it, not every message on its filesystem.
    let mut synced: Synced = HashMap::new();
    // A user's new/ (not kept open) opened for the syncfs serves its fsync
    // in phase 2 as well: one open per batch instead of two. The Arc keeps
    // the Maildir, and so the key, alive.
    let mut opened: HashMap<*const MaildirDirs, (Arc<MaildirDirs>, File)> = HashMap::new();
    for copy in batch.iter().flat_map(|job| &job.copies) {
        let dev = copy.dirs.dev();
        if !matches!(synced.get(&dev), Some(Ok(_))) {
            let outcome = copy.dirs.new_dir().map(|dir| match dir {
                NewDir::Kept(dir) => syncfs(dir),
                NewDir::Opened(dir) => {
                    let outcome = syncfs(&dir);
                    opened.insert(Arc::as_ptr(&copy.dirs), (Arc::clone(&copy.dirs), dir));
                    outcome
                }
            });
            synced.insert(dev, outcome);
        }
    }
    let mut renamed = Vec::with_capacity(batch.len());
    for job in batch {
        match job.check_and_rename(&synced) {
            Ok(()) => renamed.push(job),
            Err(err) => job.fail(err),
        }
    }
    // Phase 2: the names in each new/ on disk, one fsync per directory
    // (and those created for it); only now may anyone hear 250.
    let mut flushed: HashMap<*const MaildirDirs, io::Result<()>> = HashMap::new();
    for copy in renamed.iter().flat_map(|job| &job.copies) {
        let maildir = Arc::as_ptr(&copy.dirs);
        flushed.entry(maildir).or_insert_with(|| copy.dirs.make_durable(opened.get(&maildir).map(|(_, dir)| dir)));
    }
    for job in renamed {
        let failed = job.copies.iter().find_map(|copy| flushed[&Arc::as_ptr(&copy.dirs)].as_ref().err());
        match failed {
            None => {
                let _ = job.done.send(Ok(()));
            }
            Some(err) => {
                let err = clone(err);
                job.fail(err);
            }
        }
    }
}

/// `syncfs(2)`: writes back and flushes the whole filesystem holding `fd`.
/// Since Linux 5.8 it reports writeback errors, which is what makes it
/// usable as a durability barrier.
fn syncfs(fd: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a file descriptor this thread owns.
    if unsafe { libc::syncfs(fd.as_raw_fd()) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The file's own writeback error since it was opened, if any. After
/// `syncfs` nothing is left to write, so this only waits and reports.
fn writeback_error(file: &File) -> io::Result<()> {
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: plain syscall on a file descriptor the job owns.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One error for each message of a batch (io::Error is not Clone); the kind
/// is kept because it decides between 451 and 452.
fn clone(err: &io::Error) -> io::Error {
    io::Error::new(err.kind(), err.to_string())
}
