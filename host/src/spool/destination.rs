//! Where each accepted recipient's copy of a message goes: the one Maildir
//! of the embedded default (`maildir`), a local user's own Maildir under
//! `mailboxes`, or the outgoing Maildir handed to a delivery agent
//! (`outgoing`). The policy decides (from `domains` and the recipients
//! table); the spool writes one copy per destination.

use std::fmt;
use std::path::{Path, PathBuf};

/// One destination of a recipient's copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// The server's one Maildir (`--maildir`): every recipient routed here
    /// is named in the one copy, as before recipients tables existed.
    Inbox,
    /// A local user's own Maildir, `ROOT/domain/user/`.
    Mailbox(Mailbox),
    /// The outgoing Maildir, for this forward-path: mail for other
    /// domains accepted from an authenticated client or a relay network
    /// (the recipient's own address), or a recipients-table alias whose
    /// target is at another domain (the target). One copy per message
    /// holds them all, its trace naming each, for a delivery agent.
    Outgoing(String),
}

/// A local mailbox: a user at one of our domains, both lower case and safe
/// to use as path components (they come from the operator's recipients
/// table, never from a client's address).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox {
    domain: String,
    user: String,
}

/// Why a name cannot be a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadMailbox(pub String);

impl fmt::Display for BadMailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadMailbox {}

impl Mailbox {
    /// The mailbox of `user` at `domain`, both lowered. Errors unless the
    /// domain is a host name (letters, digits, `-`, dots between labels;
    /// at most 253 octets, RFC 1035) and the user is 1 to 64 octets (RFC
    /// 5321 section 4.5.3.1.1) of RFC 5322 atext and dots, not starting
    /// with a dot nor holding two in a row: neither can then name a parent
    /// directory, hold a `/`, or start a hidden Maildir folder (`.`).
    pub fn new(user: &str, domain: &str) -> Result<Mailbox, BadMailbox> {
        let domain = domain.to_ascii_lowercase();
        let user = user.to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if domain.len() > 253 || !domain.split('.').all(label_ok) {
            return Err(BadMailbox(format!("{domain:?} is not a domain name a mailbox can live under")));
        }
        let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-=?^_`{|}~".contains(&b);
        if user.is_empty()
            || user.len() > 64
            || user.starts_with('.')
            || user.ends_with('.')
            || user.contains("..")
            || !user.bytes().all(|b| atext(b) || b == b'.')
        {
            return Err(BadMailbox(format!("{user:?} is not a user name a mailbox can be named after")));
        }
        Ok(Mailbox { domain, user })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// `user@domain`: what its copy's `Delivered-To:` field says.
    pub fn address(&self) -> String {
        format!("{}@{}", self.user, self.domain)
    }

    /// Its Maildir under `root`: `root/domain/user` (Dovecot's `%d/%n`).
    pub fn path(&self, root: &Path) -> PathBuf {
        root.join(&self.domain).join(&self.user)
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox({}@{})", self.user, self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailbox_is_lower_case_and_lives_under_its_domain() {
        let m = Mailbox::new("Alice.Smith", "Example.ORG").unwrap();
        assert_eq!(m.address(), "alice.smith@example.org");
        assert_eq!(m.path(Path::new("/var/mail")), Path::new("/var/mail/example.org/alice.smith"));
        assert!(Mailbox::new("a+b=c", "x-y.example").is_ok());
    }

    #[test]
    fn names_that_could_leave_the_root_are_refused() {
        for (user, domain) in [
            ("..", "example.org"),
            (".hidden", "example.org"),
            ("a..b", "example.org"),
            ("a/b", "example.org"),
            ("a", ".."),
            ("a", "example.org/.."),
            ("a", "exa mple.org"),
            ("", "example.org"),
            ("a", ""),
            ("a\0", "example.org"),
            ("\"quoted\"", "example.org"),
            ("a", "[192.0.2.1]"),
            ("ü", "example.org"),
        ] {
            assert!(Mailbox::new(user, domain).is_err(), "{user:?} at {domain:?}");
        }
        assert!(Mailbox::new(&"a".repeat(65), "example.org").is_err());
    }
}
