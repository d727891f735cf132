//! Local users' own Maildirs, `ROOT/domain/user/` (what Dovecot reads with
//! `mail_location = maildir:ROOT/%d/%n`), made ready on first delivery.
//!
//! The first message to a mailbox in this process creates what is missing
//! of it (`ROOT/domain/user/` and its tmp/, new/ and cur/, mode 0700; the
//! directories that gained an entry are fsynced by the committer before the
//! message is acknowledged, see [`super::dirs`]) and sweeps its tmp/ of the
//! partial files a crashed predecessor left there (see
//! [`super::recovery`]). The mailbox is then remembered, so that later
//! deliveries neither stat nor create anything: one entry per mailbox,
//! and mailboxes come from the operator's recipients table, never from a
//! client, so the table is bounded by the recipients table's entries.
//!
//! A mailbox that cannot be made ready (a file where a directory belongs,
//! a directory that cannot be created) fails the messages to it, each
//! with that error (451), and is tried again for the next one; it never
//! stops the server.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::Mailbox;
use super::dirs::{MaildirDirs, at};
use super::names::Names;
use super::recovery::sweep_tmp_once;

/// The users' Maildirs under one root.
pub(super) struct Mailboxes {
    root: PathBuf,
    names: Arc<Names>,
    /// The spool's other Maildirs (inbox, outgoing): a user's Maildir that
    /// is one of them would get two copies under one name.
    others: Vec<Arc<MaildirDirs>>,
    ready: Mutex<HashMap<Mailbox, Arc<MaildirDirs>>>,
}

impl Mailboxes {
    /// The mailboxes under `root`, which is created with the first of them
    /// if missing.
    ///
    /// Errors: `root` exists and is not a directory
    /// ([`io::ErrorKind::NotADirectory`]), or cannot be looked at.
    pub fn open(root: PathBuf, names: Arc<Names>, others: Vec<Arc<MaildirDirs>>) -> io::Result<Mailboxes> {
        match fs::metadata(&root) {
            Ok(meta) if !meta.is_dir() => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("the mailboxes root {} is not a directory", root.display()),
                ));
            }
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(at(&root, err)),
            _ => {}
        }
        Ok(Mailboxes { root, names, others, ready: Mutex::new(HashMap::new()) })
    }

    /// `mailbox`'s Maildir, made ready on first use.
    ///
    /// Errors (nothing is remembered then): creating a directory, a path
    /// that exists as anything but a directory
    /// ([`io::ErrorKind::NotADirectory`]), a Maildir that is the inbox or
    /// the outgoing one ([`io::ErrorKind::InvalidInput`]), reading its tmp/;
    /// each names the mailbox and keeps the failing call's kind.
    pub fn dirs(&self, mailbox: &Mailbox) -> io::Result<Arc<MaildirDirs>> {
        // Held while making one ready: a second first delivery to the same
        // mailbox must find it ready, not create and sweep it again.
        let mut ready = self.ready.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(dirs) = ready.get(mailbox) {
            return Ok(dirs.clone());
        }
        let dirs = self.make_ready(mailbox).map_err(|err| {
            io::Error::new(err.kind(), format!("the mailbox {} cannot take mail: {err}", mailbox.address()))
        })?;
        ready.insert(mailbox.clone(), dirs.clone());
        Ok(dirs)
    }

    fn make_ready(&self, mailbox: &Mailbox) -> io::Result<Arc<MaildirDirs>> {
        let dirs = MaildirDirs::create(&mailbox.path(&self.root), false)?;
        if self.others.iter().any(|other| other.same_as(&dirs)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is also the inbox or the outgoing Maildir", dirs.root.display()),
            ));
        }
        sweep_tmp_once(&dirs.tmp, self.names.host_part()).map_err(|err| at(&dirs.tmp, err))?;
        Ok(Arc::new(dirs))
    }
}
