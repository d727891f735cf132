//! Replies as data (RFC 5321 section 4.2): a three-digit code, an RFC 3463
//! enhanced status code and a text. Every reply text the server can send is
//! named here, so the wording of the protocol lives in one place instead of
//! being scattered through the handlers as byte literals.
//!
//! Enhanced status codes (RFC 2034) are written whenever the extension is
//! enabled, on every reply except those RFC 2034 section 3 and RFC 3463
//! leave without one: the 220 greeting, the HELO/EHLO 250 replies (clients
//! parse EHLO keywords from those lines), the 354 go-ahead and the 334 SASL
//! challenges (RFC 3463 defines classes 2, 4 and 5 only). Those are built without an
//! enhanced code, so switching ENHANCEDSTATUSCODES off just drops the codes.

use crate::prelude::*;
use alloc::borrow::Cow;

/// One SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    /// RFC 3463 `class.subject.detail`, when the reply has one.
    pub enhanced: Option<&'static str>,
    pub text: Cow<'static, str>,
}

const fn reply(code: u16, enhanced: &'static str, text: &'static str) -> Reply {
    Reply { code, enhanced: Some(enhanced), text: Cow::Borrowed(text) }
}

impl Reply {
    // Positive completion.
    pub const OK: Reply = reply(250, "2.0.0", "Ok");
    pub const MAIL_OK: Reply = reply(250, "2.1.0", "Ok");
    pub const RCPT_OK: Reply = reply(250, "2.1.5", "Ok");
    pub const BYE: Reply = reply(221, "2.0.0", "Bye");
    /// RFC 5321 section 3.5.3: VRFY answers 252 so that it never tells
    /// whether a mailbox exists (no address harvesting).
    pub const CANNOT_VRFY: Reply =
        reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
    pub const READY_FOR_TLS: Reply = reply(220, "2.0.0", "Ready to start TLS");

    // Intermediate.
    pub const START_DATA: Reply =
        Reply { code: 354, enhanced: None, text: Cow::Borrowed("End data with <CR><LF>.<CR><LF>") };

    // Command line errors.
    pub const UNKNOWN_COMMAND: Reply = reply(500, "5.5.2", "Error: command not recognized");
    pub const INVALID_CHARACTER: Reply = reply(500, "5.5.2", "Error: invalid character in command");
    pub const BARE_LF_IN_COMMAND: Reply = reply(500, "5.5.2", "Error: command line must end with <CR><LF>");
    pub const LINE_TOO_LONG: Reply = reply(500, "5.5.6", "Error: line too long");
    pub const NOT_IMPLEMENTED: Reply = reply(502, "5.5.1", "Error: command not implemented");

    // Syntax errors in arguments.
    pub const SYNTAX_HELO: Reply = reply(501, "5.5.4", "Syntax: HELO hostname");
    pub const SYNTAX_EHLO: Reply = reply(501, "5.5.4", "Syntax: EHLO hostname");
    pub const SYNTAX_MAIL: Reply = reply(501, "5.5.4", "Syntax: MAIL FROM:<address>");
    pub const SYNTAX_RCPT: Reply = reply(501, "5.5.4", "Syntax: RCPT TO:<address>");
    pub const SYNTAX_BDAT: Reply = reply(501, "5.5.4", "Syntax: BDAT size [LAST]");
    pub const SYNTAX_AUTH: Reply = reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
    pub const SYNTAX_VRFY: Reply = reply(501, "5.5.4", "Syntax: VRFY address");
    pub const NO_PARAMETERS: Reply = reply(501, "5.5.4", "Syntax: no parameters allowed");
    pub const BAD_SENDER: Reply = reply(501, "5.1.7", "Bad sender address syntax");
    pub const BAD_RECIPIENT: Reply = reply(501, "5.1.3", "Bad recipient address syntax");
    /// RFC 5321 section 4.5.3.1.10 names `501 Path too long`; the enhanced
    /// code is the one for a bad address of that side (RFC 3463 X.1.7
    /// sender, X.1.3 recipient), as for any other unusable path.
    pub const SENDER_PATH_TOO_LONG: Reply = reply(501, "5.1.7", "Path too long");
    pub const RECIPIENT_PATH_TOO_LONG: Reply = reply(501, "5.1.3", "Path too long");
    pub const NON_ASCII_ADDRESS: Reply = reply(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter");
    pub const BAD_PARAMETER: Reply = reply(501, "5.5.4", "Bad parameter syntax");
    pub const DUPLICATE_PARAMETER: Reply = reply(501, "5.5.4", "Duplicate parameter");
    pub const UNSUPPORTED_PARAMETER: Reply = reply(555, "5.5.4", "Unsupported parameter");

    // Bad sequence of commands.
    pub const NEED_HELO: Reply = reply(503, "5.5.1", "Error: send HELO/EHLO first");
    pub const NEED_MAIL: Reply = reply(503, "5.5.1", "Error: need MAIL command");
    pub const NEED_RCPT: Reply = reply(503, "5.5.1", "Error: need RCPT command");
    pub const NESTED_MAIL: Reply = reply(503, "5.5.1", "Error: nested MAIL command");
    pub const DATA_AFTER_BDAT: Reply = reply(503, "5.5.1", "Error: DATA not allowed in a BDAT transaction");
    pub const RCPT_AFTER_BDAT: Reply = reply(503, "5.5.1", "Error: RCPT not allowed after BDAT");
    pub const BINARYMIME_NEEDS_BDAT: Reply = reply(503, "5.5.1", "Error: BODY=BINARYMIME requires BDAT");
    pub const TRANSACTION_IN_PROGRESS: Reply = reply(503, "5.5.1", "Error: MAIL transaction in progress");
    pub const TLS_ALREADY_ACTIVE: Reply = reply(503, "5.5.1", "Error: TLS already active");
    pub const ALREADY_AUTHENTICATED: Reply = reply(503, "5.5.1", "Error: already authenticated");
    /// RFC 5321 section 3.1: after a 554 greeting only QUIT is served.
    pub const ONLY_QUIT: Reply = reply(503, "5.5.1", "Error: no service here, send QUIT");

    // AUTH (RFC 4954 sections 4 and 6).
    pub const AUTH_OK: Reply = reply(235, "2.7.0", "Authentication successful");
    pub const UNKNOWN_MECHANISM: Reply = reply(504, "5.5.4", "Unrecognized authentication type");
    pub const AUTH_CANCELLED: Reply = reply(501, "5.0.0", "Authentication cancelled");
    pub const CANNOT_DECODE: Reply = reply(501, "5.5.2", "Cannot decode response");
    /// RFC 3207 section 4: TLS required before anything but NOOP, EHLO,
    /// STARTTLS and QUIT.
    pub const ENCRYPTION_REQUIRED: Reply = reply(530, "5.7.0", "Must issue a STARTTLS command first");
    pub const AUTH_NEEDS_TLS: Reply =
        reply(538, "5.7.11", "Encryption required for requested authentication mechanism");

    // Limits.
    pub const TOO_MANY_RECIPIENTS: Reply = reply(452, "4.5.3", "Error: too many recipients");
    /// RFC 1870 section 6.1 wording, for SIZE= and for content over the limit.
    pub const SIZE_EXCEEDED: Reply = reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
    pub const MESSAGE_LINE_TOO_LONG: Reply = reply(552, "5.3.4", "Message line too long");

    // Content refused by the DATA decoder (see `dot.rs`).
    pub const BARE_LINE_ENDING: Reply = reply(554, "5.6.0", "Error: bare CR or LF in message content");
    pub const NUL_IN_MESSAGE: Reply = reply(554, "5.6.0", "Error: NUL in message content");

    /// The opening 220, without enhanced code (RFC 2034 section 3).
    pub fn greeting(hostname: &str) -> Reply {
        Reply { code: 220, enhanced: None, text: Cow::Owned(format!("{hostname} ESMTP smtpcell")) }
    }

    /// The 250 to HELO, without enhanced code (RFC 2034 section 3).
    pub fn helo(hostname: &str) -> Reply {
        Reply { code: 250, enhanced: None, text: Cow::Owned(hostname.to_string()) }
    }

    /// A SASL challenge (RFC 4954 section 4): `334 ` and base64 text, no
    /// enhanced code (RFC 3463 has no class 3).
    pub fn challenge(base64: &'static str) -> Reply {
        Reply { code: 334, enhanced: None, text: Cow::Borrowed(base64) }
    }

    /// The same code and enhanced code with a text built at run time.
    pub fn with_text(self, text: String) -> Reply {
        Reply { text: Cow::Owned(text), ..self }
    }

    /// 250 after the host made the message durable. The id comes from the
    /// host; only `[A-Za-z0-9._-]`, at most 64 characters, reach the client,
    /// so a faulty host can never inject CR/LF or bulk into a reply.
    pub fn queued(id: &str) -> Reply {
        let id: String =
            id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')).take(64).collect();
        if id.is_empty() {
            Reply::OK.with_text("Ok: queued".to_string())
        } else {
            Reply::OK.with_text(format!("Ok: queued as {id}"))
        }
    }

    /// 250 to a BDAT chunk that is not the last one (RFC 3030 section 2).
    pub fn chunk_received(size: u64) -> Reply {
        Reply::OK.with_text(format!("Ok: {size} octets received"))
    }

    pub fn help(commands: &str) -> Reply {
        reply(214, "2.0.0", "").with_text(format!("Commands: {commands}"))
    }

    /// RFC 5321 section 3.8: 421 names the server.
    pub fn timeout(hostname: &str) -> Reply {
        reply(421, "4.4.2", "").with_text(format!("{hostname} Error: timeout exceeded"))
    }

    pub fn shutting_down(hostname: &str) -> Reply {
        reply(421, "4.3.2", "").with_text(format!("{hostname} Service shutting down"))
    }

    /// After `limits::MAX_PROTOCOL_ERRORS` errors (RFC 5321 section 3.8:
    /// 421 names the server; RFC 3463 X.7.0: other security or policy
    /// status).
    pub fn too_many_errors(hostname: &str) -> Reply {
        reply(421, "4.7.0", "").with_text(format!("{hostname} Too many errors, closing connection"))
    }

    /// After `Config::max_auth_failures` failed AUTH commands, in place of
    /// the last one's reply (RFC 5321 section 3.8: 421 names the server;
    /// 4.7.0 as in RFC 4954 section 6's authentication failures).
    pub fn too_many_auth_failures(hostname: &str) -> Reply {
        reply(421, "4.7.0", "").with_text(format!("{hostname} Too many failed authentication attempts"))
    }

    /// A reply the client earned by getting its command wrong (RFC 5321
    /// section 4.2.2: 500-504 syntax and sequence errors; 555 unrecognised
    /// MAIL/RCPT parameters, section 4.1.1.11): what
    /// `limits::MAX_PROTOCOL_ERRORS` counts.
    pub fn is_protocol_error(&self) -> bool {
        matches!(self.code, 500..=504 | 555)
    }

    /// Appends the reply in wire form, with or without its enhanced code.
    pub fn write_to(&self, out: &mut Vec<u8>, enhanced_codes: bool) {
        write_line(out, self.code, b' ', self.enhanced.filter(|_| enhanced_codes), &self.text);
    }
}

/// Appends a multi-line reply without enhanced codes (only the EHLO reply
/// is multi-line): `250-first`, ..., `250 last` (RFC 5321 section 4.2.1).
pub(crate) fn write_multiline(out: &mut Vec<u8>, code: u16, lines: &[String]) {
    for (i, line) in lines.iter().enumerate() {
        let separator = if i + 1 == lines.len() { b' ' } else { b'-' };
        write_line(out, code, separator, None, line);
    }
}

fn write_line(out: &mut Vec<u8>, code: u16, separator: u8, enhanced: Option<&str>, text: &str) {
    out.extend_from_slice(code.to_string().as_bytes());
    out.push(separator);
    if let Some(enhanced) = enhanced {
        out.extend_from_slice(enhanced.as_bytes());
        if !text.is_empty() {
            out.push(b' ');
        }
    }
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply, enhanced: bool) -> String {
        let mut out = Vec::new();
        reply.write_to(&mut out, enhanced);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn enhanced_code_is_written_only_when_enabled() {
        assert_eq!(wire(&Reply::OK, true), "250 2.0.0 Ok\r\n");
        assert_eq!(wire(&Reply::OK, false), "250 Ok\r\n");
        assert_eq!(wire(&Reply::START_DATA, true), "354 End data with <CR><LF>.<CR><LF>\r\n");
    }

    #[test]
    fn queue_id_is_sanitised_and_bounded() {
        assert_eq!(Reply::queued("Q1\r\n250 evil").text, "Ok: queued as Q1250evil");
        assert_eq!(Reply::queued(&"a".repeat(100)).text.len(), "Ok: queued as ".len() + 64);
        assert_eq!(Reply::queued("\r\n").text, "Ok: queued");
    }

    #[test]
    fn multiline_uses_dash_until_the_last_line() {
        let mut out = Vec::new();
        write_multiline(&mut out, 250, &["a".to_string(), "B".to_string(), "C 1".to_string()]);
        assert_eq!(out, b"250-a\r\n250-B\r\n250 C 1\r\n");
    }
}
