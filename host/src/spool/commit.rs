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
//! How: connections hand a written (not yet synced) tmp/ file to this thread
//! and await a one-shot answer. The thread takes everything queued as one
//! batch and:
//! 1. `syncfs` on the Maildir's filesystem: every file of the batch was
//!    written before this call, so their data and inodes are on disk when it
//!    returns (ext4, XFS and btrfs end it with a device flush or log force).
//!    Each file is then asked for its own writeback error (a
//!    `sync_file_range` wait that reports the file's error state), so a
//!    failed write fails that message even if `syncfs` reported it to
//!    another batch.
//! 2. Renames every file into new/ (cancelled ones are removed instead), then
//!    fsyncs new/ once. Only then are the messages acknowledged.
//!
//! New messages queue while a batch is being flushed and form the next one,
//! so the batch size follows the load: one message alone pays two flushes,
//! twenty concurrent ones pay two flushes together.
//!
//! The cost of `syncfs` is that it flushes whatever else is dirty on the
//! same filesystem: keep the Maildir off filesystems with bulk writers (the
//! README says so).

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

/// One written message waiting to become durable and visible.
pub(super) struct Job {
    /// Written and flushed to the page cache; closed after the flush.
    pub file: File,
    pub tmp_path: PathBuf,
    pub new_path: PathBuf,
    /// Set by the connection when it gave up waiting (the client heard 451):
    /// the message must then not become visible.
    pub cancelled: Arc<AtomicBool>,
    pub done: oneshot::Sender<io::Result<()>>,
}

impl Job {
    fn fail(self, err: io::Error) {
        // Whatever happened, the message must not stay half-visible: the
        // client is about to hear 4xx and will send it again.
        let _ = fs::remove_file(&self.tmp_path);
        let _ = fs::remove_file(&self.new_path);
        let _ = self.done.send(Err(err));
    }
}

/// The sending side, shared by the Maildir and its open transactions. The
/// thread ends when every sender is gone, after finishing what was queued.
#[derive(Clone)]
pub(super) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the commit thread for a Maildir whose new/ is `new_dir`.
    pub fn start(new_dir: File) -> io::Result<Committer> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new().name("maildir-commit".into()).spawn(move || run(&new_dir, &queue))?;
        Ok(Committer { jobs })
    }

    /// Queues a message; the answer says whether it is durable and visible.
    pub fn submit(&self, job: Job) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            job.fail(io::Error::other("the Maildir commit thread has stopped"));
        }
    }
}

fn run(new_dir: &File, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        commit_batch(new_dir, batch);
    }
}

fn commit_batch(new_dir: &File, batch: Vec<Job>) {
    // Phase 1: the contents of every file in the batch on disk.
    let synced = syncfs(new_dir);
    let mut renamed = Vec::with_capacity(batch.len());
    for job in batch {
        let outcome = match &synced {
            Err(err) => Err(copy(err)),
            Ok(()) => writeback_error(&job.file).and_then(|()| {
                if job.cancelled.load(Ordering::SeqCst) {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "gave up waiting for storage"))
                } else {
                    fs::rename(&job.tmp_path, &job.new_path)
                }
            }),
        };
        match outcome {
            Ok(()) => renamed.push(job),
            Err(err) => job.fail(err),
        }
    }
    if renamed.is_empty() {
        return;
    }
    // Phase 2: the names in new/ on disk; only now may anyone hear 250.
    match new_dir.sync_all() {
        Ok(()) => {
            for job in renamed {
                let _ = job.done.send(Ok(()));
            }
        }
        Err(err) => {
            for job in renamed {
                job.fail(copy(&err));
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
fn copy(err: &io::Error) -> io::Error {
    io::Error::new(err.kind(), err.to_string())
}
