//! Command lines to [`Command`]s (RFC 5321 section 4.1).
//!
//! Pure grammar: whether a command is allowed now, and which parameters
//! are enabled, is the session's business. Verbs are case-insensitive;
//! trailing spaces are tolerated. A line holding control characters (a
//! stray CR, NUL, ...) or invalid UTF-8 is refused whole, before its verb
//! is looked at, so nothing hidden in it is ever executed.
//!
//! `MAIL FROM: <a@b>` and `RCPT TO: <a@b>`, with spaces after the colon,
//! are not RFC 5321 grammar but are sent by many deployed clients; they are
//! accepted (RFC 5321 section 4.1.1.2 asks servers to be liberal where no
//! ambiguity follows).

use crate::address::{self, ForwardPath, PathError, ReversePath};
use crate::limits;
use crate::reply::Reply;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Helo(&'a str),
    Ehlo(&'a str),
    /// `params` is the unparsed text after the path (empty or starting with SP).
    Mail {
        path: ReversePath,
        params: &'a str,
    },
    Rcpt {
        path: ForwardPath,
        params: &'a str,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Help,
    Vrfy,
    Expn,
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 section 4).
    Auth {
        mechanism: &'a str,
        initial: Option<&'a str>,
    },
    /// Known but not offered (TURN, ETRN, ...): 502.
    NotImplemented,
}

/// Parses one command line (without its CR LF).
pub(crate) fn parse(line: &[u8]) -> Result<Command<'_>, Reply> {
    let line = core::str::from_utf8(line).map_err(|_| Reply::INVALID_CHARACTER)?;
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Reply::INVALID_CHARACTER);
    }
    let line = line.trim_end_matches(' ');
    let (verb, args) = match line.split_once(' ') {
        Some((verb, args)) => (verb, args),
        None => (line, ""),
    };
    match verb.to_ascii_uppercase().as_str() {
        "HELO" => hello(args, Reply::SYNTAX_HELO).map(Command::Helo),
        "EHLO" => hello(args, Reply::SYNTAX_EHLO).map(Command::Ehlo),
        "MAIL" => mail(args),
        "RCPT" => rcpt(args),
        "DATA" => no_args(args, Command::Data),
        "BDAT" => bdat(args),
        "RSET" => no_args(args, Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(args, Command::Quit),
        "HELP" => Ok(Command::Help),
        "VRFY" if args.trim_start_matches(' ').is_empty() => Err(Reply::SYNTAX_VRFY),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "STARTTLS" => no_args(args, Command::StartTls),
        "AUTH" => auth(args),
        "TURN" | "ETRN" | "ATRN" | "SEND" | "SOML" | "SAML" | "VERB" | "BURL" => Ok(Command::NotImplemented),
        _ => Err(Reply::UNKNOWN_COMMAND),
    }
}

fn no_args(args: &str, command: Command<'static>) -> Result<Command<'static>, Reply> {
    if args.is_empty() { Ok(command) } else { Err(Reply::NO_PARAMETERS) }
}

/// `HELO SP Domain` / `EHLO SP ( Domain / address-literal )`. The name is
/// only recorded (RFC 5321 section 4.1.4: a server must not refuse a client
/// for its HELO name), so any single token of visible ASCII is accepted:
/// real clients send bare hostnames, underscores and odd literals.
fn hello(args: &str, syntax: Reply) -> Result<&str, Reply> {
    let name = args.trim_start_matches(' ');
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(syntax);
    }
    Ok(name)
}

/// `MAIL FROM:Reverse-path [SP Mail-parameters]`
fn mail(args: &str) -> Result<Command<'_>, Reply> {
    let path = strip_keyword(args, "FROM:").ok_or(Reply::SYNTAX_MAIL)?;
    let (path, params) = match address::reverse_path(path) {
        Ok((path, params)) if params.is_empty() || params.starts_with(' ') => (path, params),
        Err(PathError::TooLong) => return Err(Reply::SENDER_PATH_TOO_LONG),
        _ => return Err(Reply::BAD_SENDER),
    };
    Ok(Command::Mail { path, params })
}

/// `RCPT TO:Forward-path [SP Rcpt-parameters]`
fn rcpt(args: &str) -> Result<Command<'_>, Reply> {
    let path = strip_keyword(args, "TO:").ok_or(Reply::SYNTAX_RCPT)?;
    let (path, params) = match address::forward_path(path) {
        Ok((path, params)) if params.is_empty() || params.starts_with(' ') => (path, params),
        Err(PathError::TooLong) => return Err(Reply::RECIPIENT_PATH_TOO_LONG),
        _ => return Err(Reply::BAD_RECIPIENT),
    };
    Ok(Command::Rcpt { path, params })
}

/// Strips `FROM:` / `TO:` (any case) and the spaces clients put after it.
fn strip_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| args[keyword.len()..].trim_start_matches(' '))
        .filter(|path| !path.is_empty())
}

/// `AUTH SP sasl-mech [SP initial-response]` (RFC 4954 section 4).
fn auth(args: &str) -> Result<Command<'_>, Reply> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let mechanism = words.next().ok_or(Reply::SYNTAX_AUTH)?;
    let initial = words.next();
    if words.next().is_some() {
        return Err(Reply::SYNTAX_AUTH);
    }
    Ok(Command::Auth { mechanism, initial })
}

/// `BDAT SP chunk-size [SP end-marker]` (RFC 3030 section 2). A size too
/// large for a `u64` saturates at `u64::MAX`: it is still a size (the
/// session refuses it as too large and skips the chunk, so the chunk's
/// bytes are never read as commands), not a syntax error.
fn bdat(args: &str) -> Result<Command<'_>, Reply> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let size = words.next().and_then(limits::decimal).ok_or(Reply::SYNTAX_BDAT)?;
    let last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(Reply::SYNTAX_BDAT),
    };
    if words.next().is_some() {
        return Err(Reply::SYNTAX_BDAT);
    }
    Ok(Command::Bdat { size, last })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    fn code(line: &str) -> u16 {
        parse(line.as_bytes()).unwrap_err().code
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(parse(b"helo client.example"), Ok(Command::Helo("client.example")));
        assert_eq!(parse(b"EhLo [192.0.2.9]"), Ok(Command::Ehlo("[192.0.2.9]")));
        assert_eq!(parse(b"data"), Ok(Command::Data));
        assert_eq!(parse(b"QUIT  "), Ok(Command::Quit));
        assert_eq!(parse(b"noop anything at all"), Ok(Command::Noop));
        assert_eq!(parse(b"help mail"), Ok(Command::Help));
        assert_eq!(parse(b"VRFY root"), Ok(Command::Vrfy));
        assert_eq!(parse(b"expn staff"), Ok(Command::Expn));
        assert_eq!(parse(b"StartTLS"), Ok(Command::StartTls));
        assert_eq!(parse(b"ETRN example.org"), Ok(Command::NotImplemented));
        assert_eq!(parse(b"AUTH PLAIN"), Ok(Command::Auth { mechanism: "PLAIN", initial: None }));
        assert_eq!(parse(b"auth login YQ=="), Ok(Command::Auth { mechanism: "login", initial: Some("YQ==") }));
        assert_eq!(parse(b"AUTH").unwrap_err(), Reply::SYNTAX_AUTH);
    }

    #[test]
    fn mail_and_rcpt() {
        assert_eq!(parse(b"MAIL FROM:<>"), Ok(Command::Mail { path: ReversePath::Null, params: "" }));
        let Ok(Command::Mail { path: ReversePath::Mailbox(m), params }) = parse(b"mail from: <a@b.example> SIZE=10")
        else {
            panic!("not parsed");
        };
        assert_eq!((m.as_str(), params), ("a@b.example", " SIZE=10"));
        let Ok(Command::Rcpt { path, params }) = parse(b"RCPT To:<postmaster>") else {
            panic!("not parsed");
        };
        assert_eq!((path.as_str(), params), ("postmaster", ""));
    }

    #[test]
    fn errors() {
        for (line, expected) in [
            ("", 500),
            ("FOO", 500),
            ("MAILFROM:<a@b>", 500),
            ("HELO", 501),
            ("EHLO ", 501),
            ("EHLO a b", 501),
            ("MAIL", 501),
            ("MAIL TO:<a@b>", 501),
            ("MAIL FROM:", 501),
            ("MAIL FROM:a@b", 501),
            ("MAIL FROM:<a@b", 501),
            ("RCPT TO:<>", 501),
            ("RCPT FROM:<a@b>", 501),
            ("RCPT TO:<a@b>x", 501),
            ("DATA now", 501),
            ("RSET x", 501),
            ("QUIT now", 501),
            ("VRFY", 501),
            ("BDAT", 501),
            ("BDAT x", 501),
            ("BDAT -1", 501),
            ("BDAT 10 FIRST", 501),
            ("BDAT 10 LAST x", 501),
            ("NOOP\r", 500),
            ("NO\0OP", 500),
        ] {
            assert_eq!(code(line), expected, "{line:?}");
        }
        assert_eq!(parse(b"NOOP \xff"), Err(Reply::INVALID_CHARACTER));
        let long = format!("<{}@example.org>", "a".repeat(257 - 14));
        assert_eq!(long.len(), 257);
        assert_eq!(parse(format!("MAIL FROM:{long}").as_bytes()), Err(Reply::SENDER_PATH_TOO_LONG));
        assert_eq!(parse(format!("RCPT TO:{long}").as_bytes()), Err(Reply::RECIPIENT_PATH_TOO_LONG));
    }

    #[test]
    fn bdat_arguments() {
        assert_eq!(parse(b"BDAT 0 LAST"), Ok(Command::Bdat { size: 0, last: true }));
        assert_eq!(parse(b"bdat 42 last"), Ok(Command::Bdat { size: 42, last: true }));
        assert_eq!(parse(b"BDAT 42"), Ok(Command::Bdat { size: 42, last: false }));
        assert_eq!(parse(b"BDAT 99999999999999999999999 LAST"), Ok(Command::Bdat { size: u64::MAX, last: true }));
    }
}
