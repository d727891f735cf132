//! The spool that stores each message where its recipients'
//! [`Destination`]s say: one copy per distinct destination, all or nothing.
//!
//! - [`Destination::Inbox`]: one copy in the inbox Maildir naming the
//!   recipients routed there (every recipient, on a server without a
//!   recipients table: byte for byte the layout of a single Maildir).
//! - [`Destination::Mailbox`]: one copy per distinct mailbox, in
//!   `ROOT/domain/user/`, starting with `Delivered-To: user@domain` and
//!   naming only the envelope recipients routed to that mailbox (an alias
//!   and the address itself, both routed to one mailbox, give it one copy
//!   naming both): a Bcc recipient is never visible in another's copy.
//! - [`Destination::Outgoing`]: one copy in the outgoing Maildir naming the
//!   distinct forward-paths to deliver to, each with the NOTIFY and ORCPT
//!   of the first recipient that led to it: the envelope a delivery agent
//!   takes over (Return-Path: the reverse-path).
//!
//! Copies rather than hard links, since each copy's header block differs
//! (see [`super::transaction`]). Every copy is named in new/ after the
//! message's queue id, so the id in the 250 reply finds each of them. No
//! copy is acknowledged before every copy's file, its rename and its new/
//! directory are on disk, and if any copy fails none stays (see
//! [`super::commit`]).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::commit::Committer;
use super::dirs::MaildirDirs;
use super::mailboxes::Mailboxes;
use super::names::Names;
use super::recovery::sweep_tmp_once;
use super::transaction::{Route, RoutedTransaction};
use super::{Destination, Mailbox, MessageMeta, Spool, StoredRecipient, Transaction};

/// Where the spool may store besides the inbox Maildir (configuration keys
/// `mailboxes` and `outgoing`); `None` refuses messages routed there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    /// The root of the users' Maildirs, `ROOT/domain/user/`.
    pub mailboxes: Option<PathBuf>,
    /// The outgoing Maildir, handed to a delivery agent.
    pub outgoing: Option<PathBuf>,
}

/// A [`Spool`] storing in the inbox Maildir, the users' Maildirs and the
/// outgoing Maildir, as each recipient's destinations say.
pub struct Router {
    inbox: Arc<MaildirDirs>,
    outgoing: Option<Arc<MaildirDirs>>,
    mailboxes: Option<Mailboxes>,
    names: Arc<Names>,
    /// Makes written messages durable and visible, in batches.
    committer: Committer,
}

impl Router {
    /// Opens the spool for a server named `hostname`: the inbox Maildir at
    /// `inbox` and the outgoing one at `routes.outgoing` are created if
    /// missing (with tmp/ new/ cur/, mode 0700) and their tmp/ swept of a
    /// crashed predecessor's partial files (once per process, see
    /// [`super::recovery`]); the users' Maildirs under `routes.mailboxes`
    /// are made ready as mail comes to each (see [`super::mailboxes`]).
    ///
    /// Errors: creating or reading a directory (the error names it), a
    /// path that exists as anything but a directory
    /// ([`io::ErrorKind::NotADirectory`]), an outgoing Maildir that is the
    /// inbox ([`io::ErrorKind::InvalidInput`]), starting the commit thread.
    pub fn open(inbox: impl Into<PathBuf>, routes: Routes, hostname: &str) -> io::Result<Router> {
        let names = Arc::new(Names::new(hostname));
        let open = |root: &PathBuf| -> io::Result<Arc<MaildirDirs>> {
            let dirs = MaildirDirs::create(root, true)?;
            sweep_tmp_once(&dirs.tmp, names.host_part()).map_err(|err| super::dirs::at(&dirs.tmp, err))?;
            Ok(Arc::new(dirs))
        };
        let inbox = open(&inbox.into())?;
        let outgoing = routes.outgoing.as_ref().map(open).transpose()?;
        if let Some(outgoing) = &outgoing
            && outgoing.same_as(&inbox)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the outgoing Maildir {} is the inbox Maildir", outgoing.root.display()),
            ));
        }
        let others = std::iter::once(&inbox).chain(&outgoing).cloned().collect();
        let mailboxes = routes.mailboxes.map(|root| Mailboxes::open(root, names.clone(), others)).transpose()?;
        Ok(Router { inbox, outgoing, mailboxes, names, committer: Committer::start()? })
    }

    /// The inbox Maildir's root.
    pub fn inbox(&self) -> &std::path::Path {
        &self.inbox.root
    }

    /// One route per copy: the inbox's, then each mailbox's in the order
    /// recipients first name it, then the outgoing one's.
    fn route(&self, meta: &MessageMeta) -> io::Result<Vec<Route>> {
        let mut inbox: Vec<usize> = Vec::new();
        let mut mailboxes: Vec<(&Mailbox, Vec<usize>)> = Vec::new();
        let mut mailbox_at: HashMap<&Mailbox, usize> = HashMap::new();
        let mut outgoing: Vec<(usize, &str)> = Vec::new();
        let mut forward_paths: HashSet<&str> = HashSet::new();
        for (i, rcpt) in meta.recipients.iter().enumerate() {
            if rcpt.destinations.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the recipient <{}> has no destination", rcpt.address),
                ));
            }
            for destination in &rcpt.destinations {
                // `last() != Some(&i)`: a recipient named once per copy,
                // however often its destinations name the same place.
                match destination {
                    Destination::Inbox if inbox.last() != Some(&i) => inbox.push(i),
                    Destination::Inbox => {}
                    Destination::Mailbox(mailbox) => {
                        let at = *mailbox_at.entry(mailbox).or_insert_with(|| {
                            mailboxes.push((mailbox, Vec::new()));
                            mailboxes.len() - 1
                        });
                        let named = &mut mailboxes[at].1;
                        if named.last() != Some(&i) {
                            named.push(i);
                        }
                    }
                    Destination::Outgoing(forward_path) => {
                        if forward_paths.insert(forward_path) {
                            outgoing.push((i, forward_path));
                        }
                    }
                }
            }
        }
        let mut routes = Vec::with_capacity(usize::from(!inbox.is_empty()) + mailboxes.len() + 1);
        let envelope = |named: &[usize]| named.iter().map(|&i| as_named(&meta.recipients[i], None)).collect();
        if !inbox.is_empty() {
            routes.push(Route { dirs: self.inbox.clone(), delivered_to: None, envelope: envelope(&inbox) });
        }
        if let Some((mailbox, named)) = mailboxes.first() {
            let Some(table) = &self.mailboxes else {
                return Err(not_opened_for(&meta.recipients[named[0]], &format!("the mailbox {}", mailbox.address()), "mailboxes"));
            };
            for (mailbox, named) in &mailboxes {
                let dirs = table.dirs(mailbox)?;
                routes.push(Route { dirs, delivered_to: Some(mailbox.address()), envelope: envelope(named) });
            }
        }
        if let Some(&(i, forward_path)) = outgoing.first() {
            let Some(dirs) = &self.outgoing else {
                return Err(not_opened_for(&meta.recipients[i], &format!("<{forward_path}> in the outgoing Maildir"), "outgoing"));
            };
            let envelope = outgoing.iter().map(|&(i, path)| as_named(&meta.recipients[i], Some(path))).collect();
            routes.push(Route { dirs: dirs.clone(), delivered_to: None, envelope });
        }
        if routes.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a message without recipients"));
        }
        Ok(routes)
    }
}

impl Spool for Router {
    /// Resolves the message's copies (making a user's Maildir ready on the
    /// first message to it) and creates the message's file, which names it.
    ///
    /// Errors: a recipient without destinations, or routed where this spool
    /// was not opened for ([`io::ErrorKind::Unsupported`]: a mailbox without
    /// a mailboxes root, outgoing without an outgoing Maildir); a mailbox
    /// that cannot be made ready; creating the file. The message is then
    /// refused with 451 (452 for a full disk).
    fn begin(&self, meta: &MessageMeta) -> io::Result<Box<dyn Transaction>> {
        let routes = self.route(meta)?;
        Ok(Box::new(RoutedTransaction::begin(meta, routes, self.names.clone(), self.committer.clone())?))
    }
}

/// `rcpt` as a copy's header block names it: its address, or the
/// forward-path it leads to, with its DSN parameters.
fn as_named(rcpt: &StoredRecipient, forward_path: Option<&str>) -> StoredRecipient {
    StoredRecipient {
        address: forward_path.unwrap_or(&rcpt.address).to_string(),
        notify: rcpt.notify.clone(),
        orcpt: rcpt.orcpt.clone(),
        destinations: Vec::new(),
    }
}

fn not_opened_for(rcpt: &StoredRecipient, place: &str, key: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("the recipient <{}> is routed to {place}, but the spool has no `{key}` configured", rcpt.address),
    )
}

#[cfg(test)]
mod tests;
