//! Group commit into PostgreSQL, as the Maildir's commit thread does it
//! for files (see [`crate::spool`]'s `commit`): one task takes every
//! message queued since its last batch and stores them in one database
//! transaction, so messages that end together share one COMMIT, and with
//! it one WAL flush (and, with a synchronous standby, one round trip to
//! it). The batch size follows the load: one message alone is a batch of
//! one. A message is acknowledged only once the COMMIT returned; a batch
//! that fails fails its own messages only (each hears 451), and the next
//! batch tries again on a fresh connection.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

use super::rows::{DELETE, INSERT, MessageRows, NOTIFY};
use crate::events::{self, Event};
use crate::postgres::Database;

/// One message waiting to be stored.
pub(super) struct Job {
    pub rows: MessageRows,
    /// Set by the connection when it gave up waiting (the client heard
    /// 451): the message must then not be stored.
    pub cancelled: Arc<AtomicBool>,
    pub done: oneshot::Sender<io::Result<()>>,
}

/// The sending side, shared by the spool and its open transactions. The
/// task ends when every sender is gone, after storing what was queued.
#[derive(Clone)]
pub(super) struct Committer {
    jobs: mpsc::UnboundedSender<Job>,
    /// What the task takes once it runs: spawned by the first message, on
    /// the runtime that commits it, so that a spool can be opened before
    /// any runtime is (as `smtpcell serve` and the tests open spools).
    idle: Arc<Mutex<Option<Idle>>>,
}

/// The commit task's inputs before it starts.
type Idle = (Database, mpsc::UnboundedReceiver<Job>);

impl Committer {
    /// The committer of `database`; its task starts with the first message.
    pub fn new(database: Database) -> Committer {
        let (jobs, queue) = mpsc::unbounded_channel();
        Committer { jobs, idle: Arc::new(Mutex::new(Some((database, queue)))) }
    }

    /// Queues a message; the answer says whether it is stored. Must be
    /// called within a Tokio runtime (the first call starts the task there).
    pub fn submit(&self, job: Job) {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some((database, queue)) = idle {
            tokio::spawn(run(database, queue));
        }
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(job) {
            let _ = job.done.send(Err(io::Error::other("the PostgreSQL commit task has stopped")));
        }
    }
}

async fn run(database: Database, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while let Ok(job) = queue.try_recv() {
            batch.push(job);
        }
        // Those given up on before the batch starts are not even sent.
        let (cancelled, batch): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(Job::is_cancelled);
        for job in cancelled {
            job.answer(Err(gave_up()));
        }
        if batch.is_empty() {
            continue;
        }
        let (messages, started) = (batch.len(), Instant::now());
        match store(&database, &batch).await {
            Ok(stored) => {
                for (job, stored) in batch.into_iter().zip(stored) {
                    job.answer(if stored { Ok(()) } else { Err(gave_up()) });
                }
            }
            Err(err) => {
                let err = format!("{err:#}");
                for job in batch {
                    job.answer(Err(io::Error::other(err.clone())));
                }
            }
        }
        events::emit(Event::CommitBatch { messages, duration: started.elapsed() });
    }
}

impl Job {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn answer(self, outcome: io::Result<()>) {
        let _ = self.done.send(outcome);
    }
}

/// Stores `batch` in one transaction. Returns, per message, whether it is
/// stored: a message cancelled while the batch ran is deleted again before
/// the COMMIT. Any error rolls the whole batch back (the transaction is
/// dropped unfinished).
async fn store(database: &Database, batch: &[Job]) -> anyhow::Result<Vec<bool>> {
    let mut client = database.client().await?;
    let tx = client.transaction().await.context("starting a transaction")?;
    let insert = tx.prepare_cached(INSERT).await.context("preparing the insert")?;
    let mut ids = Vec::with_capacity(batch.len());
    for job in batch {
        let row = tx.query_one(&insert, &job.rows.params()).await.context("inserting a message")?;
        ids.push(row.get::<_, i64>(0));
    }
    // Last look before the COMMIT: from here on a message is either
    // stored or the connection's 451 raced it (the same window the
    // Maildir's rename has).
    let stored: Vec<bool> = batch.iter().map(|job| !job.is_cancelled()).collect();
    let keep: Vec<i64> = ids.iter().zip(&stored).filter(|&(_, &s)| s).map(|(&id, _)| id).collect();
    let drop: Vec<i64> = ids.iter().zip(&stored).filter(|&(_, &s)| !s).map(|(&id, _)| id).collect();
    if !drop.is_empty() {
        tx.execute(DELETE, &[&drop]).await.context("removing cancelled messages")?;
    }
    tx.execute(NOTIFY, &[&keep]).await.context("notifying listeners")?;
    tx.commit().await.context("committing")?;
    Ok(stored)
}

fn gave_up() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "gave up waiting for storage")
}
