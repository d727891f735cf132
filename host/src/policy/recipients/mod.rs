//! Local domains and the recipients table: which forward-paths are ours,
//! and where each one's copy goes.
//!
//! The table (config key `recipients`) is in the format Postfix users know
//! from virtual(5), read as postmap reads it (see [`lines`]):
//!
//! ```text
//! # key                 targets (commas and/or whitespace between them)
//! alice@example.org     alice@example.org
//! sales@example.org     alice@example.org, bob@example.org
//!                       carol@example.org        # continues the entry above
//! bob@example.org       bob@example.org bob@elsewhere.example
//! @example.net          alice@example.org        # catch-all for example.net
//! ```
//!
//! A key is an address at one of our domains (`user@domain`), or `@domain`
//! for that domain's catch-all. A target at one of our domains is that
//! user's own mailbox ([`Destination::Mailbox`]); a target at another
//! domain is forwarded there ([`Destination::Outgoing`], the hand-off to a
//! delivery agent). A target is never looked up again as a key (unlike
//! Postfix's recursive virtual aliasing): `alice@example.org` is a mailbox
//! only if some entry names it as a target, and an entry whose key is its
//! own target (`alice@example.org alice@example.org`) is how a plain
//! mailbox is listed. Keys and targets are compared and stored in lower
//! case (ASCII), as Postfix does.

mod domains;
mod lines;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use anyhow::{Result, anyhow, bail};

pub use domains::Domains;

use self::domains::host_name_error;
use super::address::split;
use crate::spool::{Destination, Mailbox};

/// What the table says of a forward-path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Its domain is not one of ours (relaying, the caller's decision).
    NotLocal,
    /// Its domain is ours but nothing in the table takes it: 550 5.1.1.
    Unknown,
    /// Where its copy goes: one destination or more, each once.
    Found(&'a [Destination]),
}

/// The recipients table: forward-paths at our domains and their
/// destinations. Lookups are a few hash-map probes; loading 10,000 entries
/// takes milliseconds.
pub struct RecipientTable {
    domains: Domains,
    delimiters: Vec<char>,
    /// Keys, lower case: `user@domain` or `@domain` (the catch-all).
    entries: HashMap<String, Box<[Destination]>>,
}

impl RecipientTable {
    /// Reads the table at `path`; see [`RecipientTable::parse`].
    ///
    /// # Errors
    /// The file cannot be read, is not UTF-8, or does not parse; every
    /// message starts with `PATH:` (then the line, where there is one).
    pub fn load(path: &Path, domains: &Domains, delimiter: &str) -> Result<RecipientTable> {
        let at = path.display();
        let bytes = std::fs::read(path).map_err(|err| anyhow!("{at}: cannot read the recipients table: {err}"))?;
        let text = std::str::from_utf8(&bytes).map_err(|err| {
            let line = 1 + bytes[..err.valid_up_to()].iter().filter(|b| **b == b'\n').count();
            anyhow!("{at}:{line}: not valid UTF-8")
        })?;
        RecipientTable::parse(text, &at.to_string(), domains, delimiter)
    }

    /// Parses table text (format: the module documentation). `origin` names
    /// the text in errors (the file's path). `delimiter` is the set of
    /// recipient delimiter characters (config `recipient_delimiter`,
    /// Postfix's setting of that name: `"+"`, or `"+-"` for either), empty
    /// for no subaddressing.
    ///
    /// # Errors
    /// `ORIGIN:LINE: ...`, naming the word at fault (never the whole line),
    /// for the first of: an indented line with no entry to continue, a key
    /// that is not `user@domain` or `@domain`, a key whose domain is not
    /// in `domains` (the table cannot make us receive mail for a domain the
    /// configuration does not name), a key listed twice, an entry without
    /// targets, a target that is not `user@domain`, a target at one of our
    /// domains that cannot be a mailbox name ([`Mailbox::new`]). A delimiter
    /// character that is not printable ASCII, or is `@` or `"`, is an error
    /// naming the delimiter.
    pub fn parse(text: &str, origin: &str, domains: &Domains, delimiter: &str) -> Result<RecipientTable> {
        let delimiters = parse_delimiter(delimiter)?;
        let entries = lines::entries(text, origin)?;
        let mut table = HashMap::with_capacity(entries.len());
        let mut first_line = HashMap::with_capacity(entries.len());
        for entry in entries {
            let at = |line: usize| format!("{origin}:{line}");
            let key = entry.key.text.to_ascii_lowercase();
            check_key(&key, domains).map_err(|why| anyhow!("{}: key {}: {why}", at(entry.key.line), shown(&key)))?;
            if let Some(earlier) = first_line.insert(key.clone(), entry.key.line) {
                bail!("{}: key {} is already listed on line {earlier}", at(entry.key.line), shown(&key));
            }
            if entry.targets.is_empty() {
                bail!("{}: key {} has no target", at(entry.key.line), shown(&key));
            }
            let mut destinations: Vec<Destination> = Vec::with_capacity(entry.targets.len());
            for target in entry.targets {
                let destination = destination(target.text, domains)
                    .map_err(|why| anyhow!("{}: target {}: {why}", at(target.line), shown(target.text)))?;
                if !destinations.contains(&destination) {
                    destinations.push(destination);
                }
            }
            table.insert(key, destinations.into_boxed_slice());
        }
        Ok(RecipientTable { domains: domains.clone(), delimiters, entries: table })
    }

    /// Where `forward_path`'s copy goes. The forward-path is as the guest
    /// hands it over (no angle brackets, no source route); it is split at
    /// its last `@` ([`split`]), compared case-insensitively, and otherwise
    /// taken as written (`user@example.org.` is not at `example.org`).
    ///
    /// In order: a domain not in the table's domains is [`Lookup::NotLocal`];
    /// then the exact key `user@domain`; then, when the local part holds a
    /// recipient delimiter after its first character, `user@domain` for
    /// the part before the first delimiter (`user+tag@domain` finds
    /// `user@domain`); then the domain's catch-all `@domain`; else
    /// [`Lookup::Unknown`]. As in Postfix, a local part that starts with
    /// the delimiter (`+tag@domain`) is not split, since that would leave
    /// no user: it is found only as its own key or by the catch-all, like
    /// any other unknown user.
    ///
    /// A bare `postmaster` (no domain, which RFC 5321 section 4.5.1 says a
    /// server must accept) is looked up as `postmaster@` the first
    /// configured domain; list that address in the table. Any other
    /// forward-path without a domain is not local.
    pub fn lookup(&self, forward_path: &str) -> Lookup<'_> {
        let (local_part, domain) = match split(forward_path) {
            (local_part, Some(domain)) if self.domains.contains(domain) => (local_part, domain),
            (local_part, None) if local_part.eq_ignore_ascii_case("postmaster") => match self.domains.first() {
                Some(first) => (local_part, first),
                None => return Lookup::NotLocal,
            },
            _ => return Lookup::NotLocal,
        };
        let mut key = String::with_capacity(local_part.len() + 1 + domain.len());
        key.push_str(local_part);
        key.push('@');
        key.push_str(domain);
        key.make_ascii_lowercase();
        if let Some(found) = self.entries.get(&key) {
            return Lookup::Found(found);
        }
        let user = local_part.find(|c| self.delimiters.contains(&c)).filter(|&at| at > 0);
        if let Some(at) = user {
            // `key` is `local_part@domain` lowered; keep the user and the
            // `@domain` after the extension.
            key.replace_range(at..local_part.len(), "");
            if let Some(found) = self.entries.get(&key) {
                return Lookup::Found(found);
            }
            key.replace_range(..at, "");
        } else {
            key.replace_range(..local_part.len(), "");
        }
        match self.entries.get(&key) {
            Some(found) => Lookup::Found(found),
            None => Lookup::Unknown,
        }
    }

    /// How many keys the table has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for RecipientTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientTable")
            .field("domains", &self.domains)
            .field("delimiters", &self.delimiters)
            .field("keys", &self.entries.len())
            .finish()
    }
}

/// The recipient delimiter characters, each printable ASCII other than
/// `@` and `"` (which would split an address or a quoted local part).
fn parse_delimiter(delimiter: &str) -> Result<Vec<char>> {
    let mut set: Vec<char> = Vec::new();
    for c in delimiter.chars() {
        if !c.is_ascii_graphic() || c == '@' || c == '"' {
            bail!(
                "recipient delimiter {delimiter:?}: {c:?} cannot separate a user from an extension \
                 (use printable ASCII other than '@' and '\"', for example \"+\")"
            );
        }
        if !set.contains(&c) {
            set.push(c);
        }
    }
    Ok(set)
}

/// Checks a lowered key: `user@domain` or `@domain`, the domain ours.
fn check_key(key: &str, domains: &Domains) -> std::result::Result<(), String> {
    let (local_part, Some(domain)) = split(key) else {
        return Err("a key is user@domain, or @domain for a catch-all".into());
    };
    if local_part.chars().any(char::is_control) {
        return Err("the user holds a control character".into());
    }
    if let Some(why) = host_name_error(domain) {
        return Err(format!("the domain is not a host name: {why}"));
    }
    if !domains.contains(domain) {
        return Err(format!(
            "{domain:?} is not in the configuration's domains; \
             the table can only name recipients at those"
        ));
    }
    Ok(())
}

/// A target's destination: a mailbox at one of our domains, or forwarding
/// to an address at another (stored lower case).
fn destination(target: &str, domains: &Domains) -> std::result::Result<Destination, String> {
    let (user, Some(domain)) = split(target) else {
        return Err("a target is user@domain".into());
    };
    if domains.contains(domain) {
        // The domain is ours, so a host name: only the user can be refused,
        // and `BadMailbox` would echo it whole.
        return Mailbox::new(user, domain).map(Destination::Mailbox).map_err(|_| {
            "not a user name a mailbox can be named after (1 to 64 octets of letters, digits, dots \
             and !#$%&'*+-=?^_`{|}~, no leading, trailing or double dot)"
                .to_string()
        });
    }
    if user.is_empty() || user.len() > 64 || user.chars().any(char::is_control) {
        return Err("the user must be 1 to 64 octets without control characters (RFC 5321 4.5.3.1.1)".into());
    }
    if let Some(why) = host_name_error(domain) {
        return Err(format!("the domain is not a host name: {why}"));
    }
    Ok(Destination::Outgoing(target.to_ascii_lowercase()))
}

/// A word of the table for an error message: quoted, and cut short so a
/// stray paste cannot fill the log.
fn shown(word: &str) -> String {
    const MAX: usize = 80;
    match word.char_indices().nth(MAX) {
        Some((at, _)) => format!("{:?}...", &word[..at]),
        None => format!("{word:?}"),
    }
}

#[cfg(test)]
mod tests;
