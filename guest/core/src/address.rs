//! Paths of MAIL and RCPT: the RFC 5321 section 4.1.2 grammar, with the
//! RFC 6531 section 3.3 additions (UTF-8 in atoms, quoted strings and
//! domain labels).
//!
//! The parser always accepts UTF-8; whether it is allowed depends on the
//! SMTPUTF8 parameter, which comes after the path, so the session checks
//! [`Mailbox::is_ascii`] once the parameters are known (553 5.6.7).
//!
//! Source routes (`<@a,@b:user@example.org>`) are parsed and dropped, as
//! RFC 5321 section 4.1.1.3 and appendix C ask. Address literals are
//! validated: four decimal octets, or `IPv6:` followed by an address that
//! `std::net::Ipv6Addr` accepts (it implements the RFC 4291 text forms that
//! section 4.1.3 refers to). General address literals with other tags are
//! refused: no other tag is registered.

use crate::limits::{MAX_DOMAIN, MAX_LABEL, MAX_PATH};
use crate::prelude::*;
use core::net::Ipv6Addr;

/// A mailbox, without angle brackets and source route, exactly as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox(String);

impl Mailbox {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }
}

/// The argument of MAIL FROM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReversePath {
    /// `<>`: no bounce address (RFC 5321 section 4.5.5).
    Null,
    Mailbox(Mailbox),
}

/// The argument of RCPT TO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardPath {
    /// `<postmaster>` without a domain, in any case, as written
    /// (RFC 5321 section 4.5.1: always accepted).
    Postmaster(String),
    Mailbox(Mailbox),
}

impl ForwardPath {
    pub fn as_str(&self) -> &str {
        match self {
            ForwardPath::Postmaster(text) => text,
            ForwardPath::Mailbox(mailbox) => mailbox.as_str(),
        }
    }

    pub fn is_ascii(&self) -> bool {
        self.as_str().is_ascii()
    }
}

/// The path does not follow the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadPath;

/// Why a path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// Not RFC 5321 section 4.1.2 grammar: `501 5.1.7` / `501 5.1.3`.
    Syntax,
    /// Well-formed, but longer than [`MAX_PATH`] octets: `501 Path too
    /// long` (RFC 5321 section 4.5.3.1.10).
    TooLong,
}

impl From<BadPath> for PathError {
    fn from(_: BadPath) -> PathError {
        PathError::Syntax
    }
}

/// Parses `<...>` at the start of `text`; returns the path and what follows.
pub(crate) fn reverse_path(text: &str) -> Result<(ReversePath, &str), PathError> {
    if let Some(rest) = text.strip_prefix("<>") {
        return Ok((ReversePath::Null, rest));
    }
    let (mailbox, rest) = path(text)?;
    Ok((ReversePath::Mailbox(mailbox), rest))
}

/// Parses `<...>` at the start of `text`; returns the path and what follows.
/// The null path is not a forward-path.
pub(crate) fn forward_path(text: &str) -> Result<(ForwardPath, &str), PathError> {
    const POSTMASTER: &str = "<postmaster>";
    if let Some(head) = text.get(..POSTMASTER.len())
        && head.eq_ignore_ascii_case(POSTMASTER)
    {
        let name = head[1..head.len() - 1].to_string();
        return Ok((ForwardPath::Postmaster(name), &text[POSTMASTER.len()..]));
    }
    let (mailbox, rest) = path(text)?;
    Ok((ForwardPath::Mailbox(mailbox), rest))
}

/// `Path = "<" [ A-d-l ":" ] Mailbox ">"`, at most [`MAX_PATH`] octets
/// from `<` to `>` (RFC 5321 section 4.5.3.1.3).
fn path(text: &str) -> Result<(Mailbox, &str), PathError> {
    let mut cursor = Cursor { bytes: text.as_bytes(), at: 0 };
    cursor.expect(b'<')?;
    if cursor.peek() == Some(b'@') {
        // A-d-l = At-domain *( "," At-domain ), At-domain = "@" Domain
        loop {
            cursor.expect(b'@')?;
            cursor.domain()?;
            if !cursor.eat(b',') {
                break;
            }
        }
        cursor.expect(b':')?;
    }
    let start = cursor.at;
    cursor.local_part()?;
    cursor.expect(b'@')?;
    cursor.domain_or_literal()?;
    let end = cursor.at;
    cursor.expect(b'>')?;
    if cursor.at > MAX_PATH {
        return Err(PathError::TooLong);
    }
    // The cursor only stops on ASCII bytes, so these are char boundaries.
    Ok((Mailbox(text[start..end].to_string()), &text[cursor.at..]))
}

/// RFC 5321 `atext` plus RFC 6531 UTF8-non-ascii (any byte >= 0x80 of the
/// already validated UTF-8 text).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// `Let-dig` of a domain label, with RFC 6531 U-labels.
fn is_let_dig(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn expect(&mut self, b: u8) -> Result<(), BadPath> {
        if self.eat(b) { Ok(()) } else { Err(BadPath) }
    }

    /// Advances over bytes matching `pred`; returns how many.
    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> usize {
        let start = self.at;
        while self.peek().is_some_and(&pred) {
            self.at += 1;
        }
        self.at - start
    }

    /// `Local-part = Dot-string / Quoted-string`
    fn local_part(&mut self) -> Result<(), BadPath> {
        if self.eat(b'"') {
            // QcontentSMTP = qtextSMTP / quoted-pairSMTP
            loop {
                match self.peek().ok_or(BadPath)? {
                    b'"' => {
                        self.at += 1;
                        return Ok(());
                    }
                    b'\\' => {
                        self.at += 1;
                        match self.peek() {
                            Some(32..=126) => self.at += 1,
                            _ => return Err(BadPath),
                        }
                    }
                    32..=126 | 0x80.. => self.at += 1,
                    _ => return Err(BadPath),
                }
            }
        }
        // Dot-string = Atom *("." Atom)
        loop {
            if self.take_while(is_atext) == 0 {
                return Err(BadPath);
            }
            if !self.eat(b'.') {
                return Ok(());
            }
        }
    }

    fn domain_or_literal(&mut self) -> Result<(), BadPath> {
        if self.peek() == Some(b'[') { self.address_literal() } else { self.domain() }
    }

    /// `Domain = sub-domain *("." sub-domain)`, at most 255 octets, labels
    /// at most 63 (RFC 5321 section 4.5.3.1.2, RFC 1035).
    fn domain(&mut self) -> Result<(), BadPath> {
        let start = self.at;
        loop {
            let label = self.at;
            if !self.peek().is_some_and(is_let_dig) {
                return Err(BadPath);
            }
            self.take_while(|b| is_let_dig(b) || b == b'-');
            if self.bytes[self.at - 1] == b'-' || self.at - label > MAX_LABEL {
                return Err(BadPath);
            }
            if !self.eat(b'.') {
                break;
            }
        }
        if self.at - start > MAX_DOMAIN {
            return Err(BadPath);
        }
        Ok(())
    }

    /// `address-literal = "[" ( IPv4-address-literal / IPv6-address-literal
    /// / General-address-literal ) "]"`
    fn address_literal(&mut self) -> Result<(), BadPath> {
        self.expect(b'[')?;
        let start = self.at;
        self.take_while(|b| b != b']' && b.is_ascii_graphic());
        let inner = core::str::from_utf8(&self.bytes[start..self.at]).map_err(|_| BadPath)?;
        self.expect(b']')?;
        let valid = match inner.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..].parse::<Ipv6Addr>().is_ok(),
            _ => is_ipv4(inner),
        };
        if valid { Ok(()) } else { Err(BadPath) }
    }
}

/// `IPv4-address-literal = Snum 3("."  Snum)`, `Snum = 1*3DIGIT` (0-255).
fn is_ipv4(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            (1..=3).contains(&part.len())
                && part.bytes().all(|b| b.is_ascii_digit())
                && part.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(text: &str) -> Option<(String, &str)> {
        match reverse_path(text) {
            Ok((ReversePath::Mailbox(m), rest)) => Some((m.as_str().to_string(), rest)),
            Ok((ReversePath::Null, _)) => Some((String::new(), "")),
            Err(_) => None,
        }
    }

    #[test]
    fn good_paths() {
        for (text, expected) in [
            ("<user@example.org>", "user@example.org"),
            ("<first.last+tag@sub.example.org>", "first.last+tag@sub.example.org"),
            ("<\"a b\"@example.org>", "\"a b\"@example.org"),
            ("<\"a\\\"b\\\\c\"@example.org>", "\"a\\\"b\\\\c\"@example.org"),
            ("<\"\"@example.org>", "\"\"@example.org"),
            ("<x@[192.0.2.1]>", "x@[192.0.2.1]"),
            ("<x@[IPv6:2001:db8::1]>", "x@[IPv6:2001:db8::1]"),
            ("<x@[ipv6:::ffff:192.0.2.1]>", "x@[ipv6:::ffff:192.0.2.1]"),
            ("<@a.example,@b.example:user@c.example>", "user@c.example"),
            ("<x@localhost>", "x@localhost"),
            ("<x@a-b.c0>", "x@a-b.c0"),
            ("<用户@例子.广告>", "用户@例子.广告"),
        ] {
            assert_eq!(mailbox(text), Some((expected.to_string(), "")), "{text}");
        }
        assert_eq!(mailbox("<a@b> SIZE=1"), Some(("a@b".to_string(), " SIZE=1")));
        assert_eq!(mailbox("<>"), Some((String::new(), "")));
    }

    #[test]
    fn bad_paths() {
        for text in [
            "user@example.org",
            "<user@example.org",
            "<user>",
            "<@example.org>",
            "<user@>",
            "<.user@example.org>",
            "<user.@example.org>",
            "<us..er@example.org>",
            "<us er@example.org>",
            "<user@-example.org>",
            "<user@example-.org>",
            "<user@example..org>",
            "<user@example.org.>",
            "<\"unterminated@example.org>",
            "<\"tab\there\"@example.org>",
            "<x@[192.0.2.256]>",
            "<x@[192.0.2]>",
            "<x@[1.2.3.4.5]>",
            "<x@[1234.0.0.1]>",
            "<x@[IPv6:2001:db8::g]>",
            "<x@[IPv6:1:2:3:4:5:6:7:8:9]>",
            "<x@[IPv6:fe80::1%eth0]>",
            "<x@[foo:bar]>",
            "<x@[]>",
            "<@a.example:>",
            "<@a.example user@b.example>",
            "<a@b@c>",
            "<user@example.org>>",
        ] {
            let parsed = mailbox(text);
            assert!(
                parsed.is_none() || parsed.as_ref().is_some_and(|(_, rest)| !rest.is_empty()),
                "{text} accepted as {parsed:?}"
            );
        }
        let long_label = format!("<x@{}.org>", "a".repeat(64));
        assert_eq!(mailbox(&long_label), None);
    }

    #[test]
    fn paths_are_at_most_256_octets_with_brackets() {
        // A 64-octet local-part and a domain that brings the path to 256.
        let domain = |len: usize| {
            let labels: Vec<String> = (0..(len - 1) / 50).map(|_| "d".repeat(49)).collect();
            let head = labels.join(".");
            let rest = len - head.len() - 1;
            format!("{head}.{}", "e".repeat(rest))
        };
        let local = "l".repeat(64);
        let max = format!("<{local}@{}>", domain(256 - 64 - 3));
        assert_eq!(max.len(), 256);
        assert!(forward_path(&max).is_ok());
        assert!(reverse_path(&max).is_ok());
        let over = format!("<{local}@{}>", domain(257 - 64 - 3));
        assert_eq!(forward_path(&over), Err(PathError::TooLong));
        assert_eq!(reverse_path(&over), Err(PathError::TooLong));
        // The source route is part of the path.
        let routed = format!("<@{}:x@example.org>", domain(250));
        assert_eq!(routed.len(), 267);
        assert_eq!(forward_path(&routed), Err(PathError::TooLong));
        // A local-part over RFC 5321's 64 octets is accepted (section
        // 4.5.3.1: impose no limit where none is needed).
        assert!(forward_path(&format!("<{}@example.org>", "v".repeat(100))).is_ok());
    }

    #[test]
    fn postmaster_only_as_forward_path() {
        assert_eq!(forward_path("<PostMaster>"), Ok((ForwardPath::Postmaster("PostMaster".to_string()), "")));
        assert_eq!(reverse_path("<postmaster>"), Err(PathError::Syntax));
        assert_eq!(forward_path("<>"), Err(PathError::Syntax));
        let (path, _) = forward_path("<postmaster@example.org>").unwrap();
        assert_eq!(path.as_str(), "postmaster@example.org");
    }

    #[test]
    fn ascii_check() {
        let (path, _) = forward_path("<ü@example.org>").unwrap();
        assert!(!path.is_ascii());
        let (path, _) = forward_path("<u@example.org>").unwrap();
        assert!(path.is_ascii());
    }
}
