//! The local domains: the domains smtpcell receives mail for (config key
//! `domains`). A recipient at any other domain is relaying.

use std::collections::HashSet;
use std::fmt;

use anyhow::{Result, bail};

/// The set of local domains, lower case, in the order configured (the
/// first one is where a bare `postmaster` goes, see
/// [`super::RecipientTable::lookup`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Domains {
    ordered: Vec<String>,
    set: HashSet<String>,
}

impl Domains {
    /// Parses each entry as a host name (RFC 1035 section 2.3.1 labels:
    /// letters, digits and `-`, 1 to 63 octets each, at most 253 in all)
    /// and lowers it; a name listed twice counts once.
    ///
    /// # Errors
    /// Names the first entry that is not a host name: an empty string, an
    /// address literal (`[192.0.2.1]`: mail for an address is not mail for
    /// a domain), a trailing dot, a non-ASCII name (write its `xn--` form).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Domains> {
        let mut domains = Domains::default();
        for entry in entries {
            let entry = entry.as_ref();
            if let Some(why) = host_name_error(entry) {
                bail!("domain {entry:?} is not a host name: {why}");
            }
            let lowered = entry.to_ascii_lowercase();
            if domains.set.insert(lowered.clone()) {
                domains.ordered.push(lowered);
            }
        }
        Ok(domains)
    }

    /// Whether `domain` is one of ours, compared case-insensitively (ASCII)
    /// and otherwise exactly: `example.org.` is not `example.org`.
    pub fn contains(&self, domain: &str) -> bool {
        if domain.bytes().any(|b| b.is_ascii_uppercase()) {
            self.set.contains(&domain.to_ascii_lowercase())
        } else {
            self.set.contains(domain)
        }
    }

    /// The first domain configured, lower case; `None` when there are none.
    pub fn first(&self) -> Option<&str> {
        self.ordered.first().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    /// The domains in the order configured, lower case, each once.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.ordered.iter().map(String::as_str)
    }
}

impl fmt::Debug for Domains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.ordered).finish()
    }
}

/// Why `name` is not a host name (RFC 1035 section 2.3.1, the rules
/// `Mailbox::new` applies to a mailbox's domain), or `None` if it is one.
pub(super) fn host_name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.starts_with('[') {
        return Some("an address literal is not a domain");
    }
    if name.len() > 253 {
        return Some("it is longer than 253 octets");
    }
    if name.ends_with('.') {
        return Some("write it without the trailing dot");
    }
    if !name.is_ascii() {
        return Some("write an internationalised name in its ASCII (xn--) form");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("it has an empty label");
        }
        if label.len() > 63 {
            return Some("a label is longer than 63 octets");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Some("a label holds something other than letters, digits and '-'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a label starts or ends with '-'");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lowered_kept_in_order_and_matched_case_insensitively() {
        let domains = Domains::parse(&["Example.ORG", "mail.example.net", "example.org", "localhost"]).unwrap();
        assert_eq!(domains.iter().collect::<Vec<_>>(), ["example.org", "mail.example.net", "localhost"]);
        assert_eq!(domains.first(), Some("example.org"));
        for ours in ["example.org", "EXAMPLE.ORG", "Mail.Example.Net", "localhost"] {
            assert!(domains.contains(ours), "{ours}");
        }
        for theirs in ["example.org.", "sub.example.org", "example.net", "[127.0.0.1]", "", "org"] {
            assert!(!domains.contains(theirs), "{theirs}");
        }
        let none = Domains::parse::<&str>(&[]).unwrap();
        assert!(none.is_empty() && none.first().is_none() && !none.contains("example.org"));
    }

    #[test]
    fn an_entry_that_is_not_a_host_name_is_named() {
        for (bad, why) in [
            ("", "empty"),
            ("[192.0.2.1]", "address literal"),
            ("[IPv6:2001:db8::1]", "address literal"),
            ("example.org.", "trailing dot"),
            ("a..b", "empty label"),
            (".example.org", "empty label"),
            ("exa mple.org", "letters, digits"),
            ("under_score.org", "letters, digits"),
            ("-x.org", "'-'"),
            ("bücher.example", "xn--"),
        ] {
            let err = Domains::parse(&["example.org", bad]).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")) && err.contains(why), "{bad:?}: {err}");
        }
        assert!(Domains::parse(&[format!("{}.org", "a".repeat(64))]).is_err());
        assert!(Domains::parse(&[["a"; 128].join(".")]).is_err(), "255 octets is over 253");
    }
}
