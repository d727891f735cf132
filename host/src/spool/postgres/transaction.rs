//! One message bound for PostgreSQL, from `Spool::begin` to its commit.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::oneshot;

use super::commit::{Committer, Job};
use super::rows::MessageRows;
use crate::spool::content::Content;
use crate::spool::{CommitFuture, MessageMeta, Transaction, trace_headers};

/// A message being received. Dropping it drops its content (and closes
/// the unnamed spill file, which frees it): nothing was sent to the
/// database.
pub(super) struct PgTransaction {
    queue_id: String,
    /// `None` once committed.
    pending: Option<(Content, MessageMeta)>,
    committer: Committer,
}

impl PgTransaction {
    /// A message named `queue_id`, its content in `content` (without a
    /// provisional header block: the content is stored apart from it).
    pub fn begin(meta: &MessageMeta, queue_id: String, content: Content, committer: Committer) -> PgTransaction {
        PgTransaction { queue_id, pending: Some((content, meta.clone())), committer }
    }
}

impl Transaction for PgTransaction {
    fn queue_id(&self) -> &str {
        &self.queue_id
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.pending {
            Some((content, _)) => content.write(data),
            None => Err(io::Error::other("write after commit")),
        }
    }

    /// Builds the message's rows (the header block as the Maildir copy
    /// would have it, with `end_headers`; the content read back from the
    /// spill file on Tokio's blocking pool when it spilled) and queues them
    /// for the next batch. Resolves once the batch's COMMIT returned; an
    /// error when the database could not be reached, a statement or the
    /// COMMIT failed (the message may then still have been stored if only
    /// the COMMIT's answer was lost: the client hears 451 and sends it
    /// again, a duplicate, never a loss), or `cancelled` was set before the
    /// batch committed. Must be called within a Tokio runtime.
    fn commit(mut self: Box<Self>, end_headers: Vec<u8>, cancelled: Arc<AtomicBool>) -> CommitFuture {
        let (done, answer) = oneshot::channel();
        let (content, meta) = self.pending.take().expect("a transaction is committed at most once");
        let queue_id = std::mem::take(&mut self.queue_id);
        let committer = self.committer.clone();
        let spilled = content.spilled();
        let prepare = move || {
            let rows = content.into_vec().map(|content| {
                let headers = trace_headers(&meta, &queue_id, &end_headers);
                MessageRows::new(meta, queue_id, headers, content)
            });
            match rows {
                Ok(rows) => committer.submit(Job { rows, cancelled, done }),
                Err(err) => {
                    let _ = done.send(Err(err));
                }
            }
        };
        if spilled {
            tokio::task::spawn_blocking(prepare);
        } else {
            prepare();
        }
        Box::pin(async move { answer.await.unwrap_or_else(|_| Err(io::Error::other("the commit was dropped"))) })
    }
}
