//! One message being stored, from `Spool::begin` to its commit: its content
//! (see [`super::content`]) and the copies it becomes.
//!
//! The message's own file is created at begin in the first copy's tmp/
//! (the inbox's when the inbox gets one): it gives the message its queue
//! id, holds the content that outgrows memory, and becomes the first copy
//! when it can (no end headers, or content that never spilled). Every
//! other copy is a new tmp/ file in its Maildir, written at commit with
//! its own header block and the content: from memory, or from the message's
//! own file by `copy_file_range`, so the content is read from userspace
//! once at most. Copies, not hard links: each copy's header block differs
//! (its `Delivered-To`, its own envelope recipients), and the header block
//! comes first in the file.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::oneshot;

use super::commit::{Committer, Job, Written};
use super::content::{Content, HELD_CONTENT_MAX};
use super::dirs::{MaildirDirs, at};
use super::names::Names;
use super::trace::copy_headers;
use super::{CommitFuture, MessageMeta, StoredRecipient, Transaction};

/// One copy of a message: the Maildir it goes to and what its header
/// block names.
pub(super) struct Route {
    pub dirs: Arc<MaildirDirs>,
    /// The mailbox address of a user's copy, for its `Delivered-To` field.
    pub delivered_to: Option<String>,
    /// The recipients its header block names: the envelope recipients
    /// routed to this Maildir, or for the outgoing Maildir the
    /// forward-paths to deliver to.
    pub envelope: Vec<StoredRecipient>,
}

/// A message of one or more copies being written.
pub(super) struct RoutedTransaction {
    queue_id: String,
    /// `None` once committed; dropping it removes the message's file.
    pending: Option<Pending>,
    committer: Committer,
}

/// Everything a message needs until its copies are written.
struct Pending {
    content: Content,
    /// The message's own file (in the first route's tmp/), removed if the
    /// message is dropped before its copies are handed to the committer.
    own: TmpFiles,
    meta: MessageMeta,
    /// At least one; the first gets the message's own file.
    routes: Vec<Route>,
    names: Arc<Names>,
}

impl RoutedTransaction {
    /// Creates the message's own file in the first route's tmp/; nothing is
    /// written yet. `routes` must not be empty.
    ///
    /// Errors: creating the file.
    pub fn begin(
        meta: &MessageMeta,
        routes: Vec<Route>,
        names: Arc<Names>,
        committer: Committer,
    ) -> io::Result<RoutedTransaction> {
        let first = routes.first().expect("a message has at least one copy");
        let (queue_id, own_path, file) = names.create_tmp(&first.dirs.tmp).map_err(|err| at(&first.dirs.tmp, err))?;
        let provisional = headers(meta, first, &queue_id, &[]);
        let pending = Pending {
            content: Content::new(file, provisional),
            own: TmpFiles(vec![own_path]),
            meta: meta.clone(),
            routes,
            names,
        };
        Ok(RoutedTransaction { queue_id, pending: Some(pending), committer })
    }
}

impl Transaction for RoutedTransaction {
    fn queue_id(&self) -> &str {
        &self.queue_id
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.pending {
            Some(pending) => pending.content.write(data),
            None => Err(io::Error::other("write after commit")),
        }
    }

    /// Writes the copies, then hands them to the committer. Where: on the
    /// calling thread when that writes no more than a message did before
    /// copies existed (one copy, unless spilled content must be copied
    /// behind end headers; or several copies of held content together at
    /// most `HELD_CONTENT_MAX` octets), else on Tokio's blocking pool, as
    /// copying megabytes would hold up the executor. Must be called within
    /// a Tokio runtime.
    fn commit(mut self: Box<Self>, end_headers: Vec<u8>, cancelled: Arc<AtomicBool>) -> CommitFuture {
        let (done, answer) = oneshot::channel();
        let pending = self.pending.take().expect("a transaction is committed at most once");
        let queue_id = std::mem::take(&mut self.queue_id);
        let committer = self.committer.clone();
        let submit = move |written: io::Result<Vec<Written>>| match written {
            Ok(copies) => committer.submit(Job { copies, cancelled, done }),
            Err(err) => {
                let _ = done.send(Err(err));
            }
        };
        if pending.light(&end_headers) {
            submit(pending.write(&queue_id, &end_headers));
        } else {
            // If the task never runs (the runtime shuts down), dropping it
            // drops `pending`, which removes the message's file.
            tokio::task::spawn_blocking(move || submit(pending.write(&queue_id, &end_headers)));
        }
        Box::pin(async move { answer.await.unwrap_or_else(|_| Err(io::Error::other("the commit was dropped"))) })
    }
}

impl Pending {
    /// Whether writing the copies is as little work as one message was
    /// before copies existed (see [`RoutedTransaction::commit`]).
    fn light(&self, end_headers: &[u8]) -> bool {
        match self.routes.len() {
            1 => !(self.content.spilled() && !end_headers.is_empty()),
            n => !self.content.spilled() && n.saturating_mul(self.content.held_len()) <= HELD_CONTENT_MAX,
        }
    }

    /// Writes every copy into its tmp/ file: the copies but the first from
    /// the content, then the first into the message's own file (or, for
    /// spilled content with end headers, into a new one, removing the
    /// spill file). On error every file is removed.
    fn write(self, queue_id: &str, end_headers: &[u8]) -> io::Result<Vec<Written>> {
        let Pending { content, mut own, meta, routes, names } = self;
        let delivered = names.delivered(queue_id);
        let mut written = Vec::with_capacity(routes.len());
        for route in &routes[1..] {
            let (_, tmp_path, file) = names.create_tmp(&route.dirs.tmp).map_err(|err| at(&route.dirs.tmp, err))?;
            own.0.push(tmp_path.clone());
            content.copy_behind(&headers(&meta, route, queue_id, end_headers), &file).map_err(|e| at(&tmp_path, e))?;
            written.push(Written { file, tmp_path, new_path: route.dirs.new.join(&delivered), dirs: route.dirs.clone() });
        }
        let first = &routes[0];
        let first_headers = headers(&meta, first, queue_id, end_headers);
        let own_path = own.0[0].clone();
        let (tmp_path, file) = if !content.spilled() {
            (own_path.clone(), content.write_held_behind(&first_headers).map_err(|e| at(&own_path, e))?)
        } else if end_headers.is_empty() {
            (own_path.clone(), content.finish_in_place().map_err(|e| at(&own_path, e))?)
        } else {
            let (_, path, file) = names.create_tmp(&first.dirs.tmp).map_err(|err| at(&first.dirs.tmp, err))?;
            own.0.push(path.clone());
            content.copy_behind(&first_headers, &file).map_err(|e| at(&path, e))?;
            drop(content);
            // Removed before the commit's syncfs: whatever of it was not
            // written back yet is dropped, never written to the device.
            let _ = fs::remove_file(&own_path);
            (path, file)
        };
        written.insert(0, Written { file, tmp_path, new_path: first.dirs.new.join(&delivered), dirs: first.dirs.clone() });
        own.keep();
        Ok(written)
    }
}

/// The header block of `route`'s copy.
fn headers(meta: &MessageMeta, route: &Route, queue_id: &str, end_headers: &[u8]) -> Vec<u8> {
    copy_headers(meta, route.delivered_to.as_deref(), &route.envelope, queue_id, end_headers)
}

/// tmp/ files removed when this is dropped, unless kept: a message's files
/// until they are handed to the committer, whatever fails first.
struct TmpFiles(Vec<PathBuf>);

impl TmpFiles {
    /// The files are someone else's now.
    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for TmpFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}
