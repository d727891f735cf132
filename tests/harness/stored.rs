//! What a configured server stored, and where: every Maildir under its
//! directory (the inbox, the outgoing Maildir, each user's Maildir under
//! `mailboxes`), each copy split into the header block smtpcell wrote and
//! the content the client sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::server::{delivered, stored_message};

/// One stored copy of a message.
#[derive(Clone, Debug)]
pub struct Copy {
    /// The Maildir it is in, relative to the root searched, with `/`
    /// (`vmail/example.org/alice`, `outgoing`).
    pub maildir: String,
    pub path: PathBuf,
    /// The header block smtpcell wrote above the content: `Delivered-To`
    /// (a user's copy), `Return-Path`, `X-Envelope-To`... through the end
    /// of its `Received` field.
    pub header_block: String,
    /// The content as the client sent it (after dot-unstuffing).
    pub content: String,
}

impl Copy {
    /// The value of the content's first `Subject:` field, if any.
    pub fn subject(&self) -> Option<&str> {
        self.content.split("\r\n").take_while(|line| !line.is_empty()).find_map(|line| line.strip_prefix("Subject: "))
    }

    /// The values of the header block's fields named `name` (`X-Envelope-To`).
    pub fn fields(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{name}: ");
        self.header_block.split("\r\n").filter_map(|line| line.strip_prefix(prefix.as_str())).collect()
    }
}

/// Every copy in every Maildir under `root` (any directory holding a
/// `new/` directory, searched recursively; new/ and cur/ are read), sorted
/// by Maildir and file name.
///
/// # Errors
/// A directory or file that cannot be read, or a stored file without
/// smtpcell's header block.
pub fn copies(root: &Path) -> Result<Vec<Copy>> {
    let mut found = Vec::new();
    for maildir in maildirs(root)? {
        let name = maildir.strip_prefix(root).unwrap_or(&maildir).to_string_lossy().replace('\\', "/");
        for path in delivered(&maildir) {
            let stored = stored_message(&path)?;
            found.push(Copy {
                maildir: name.clone(),
                header_block: String::from_utf8(stored.trace).context("a header block in UTF-8")?,
                content: String::from_utf8_lossy(&stored.content).into_owned(),
                path,
            });
        }
    }
    Ok(found)
}

/// The Maildirs holding each subject: subject to the sorted Maildir names
/// of its copies (a name twice when a Maildir holds two copies).
pub fn where_stored(copies: &[Copy]) -> BTreeMap<String, Vec<String>> {
    let mut by_subject: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for copy in copies {
        let subject = copy.subject().unwrap_or("(no subject)").to_string();
        by_subject.entry(subject).or_default().push(copy.maildir.clone());
    }
    for maildirs in by_subject.values_mut() {
        maildirs.sort();
    }
    by_subject
}

/// The Maildirs under `root`, sorted.
fn maildirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if dir.join("new").is_dir() {
            found.push(dir.clone());
        }
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name();
            if entry.file_type()?.is_dir() && !matches!(name.to_str(), Some("new" | "cur" | "tmp")) {
                pending.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}
