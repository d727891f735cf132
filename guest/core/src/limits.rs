//! Every length and count limit of the protocol, each measured the way the
//! RFC that sets it counts, in one place.
//!
//! # Command lines
//!
//! RFC 5321 section 4.5.3.1.4 caps a command line at 512 octets including
//! the verb and CR LF, and adds that "the maximum length of a command line
//! may be increased by extensions" (RFC 1869 section 4.1.2 likewise). The
//! service extensions that define MAIL and RCPT parameters each say how much
//! they add; only an enabled (advertised) extension raises the limit, and
//! only for the command that takes its parameters. Every other command keeps
//! 512. Where an RFC gives no figure, the allowance is the longest text its
//! parameters can take, space included. AUTH (RFC 4954 section 5) counts
//! when the session offers it, that is when the host configured SASL
//! mechanisms, whether or not TLS has made it visible yet.

use crate::config::Config;

/// The longest command line, CR LF included (RFC 5321 section 4.5.3.1.4).
pub(crate) const COMMAND_LINE: usize = 512;

/// RFC 1870 section 3 item (5): SIZE adds 26 characters to MAIL
/// (` SIZE=` and at most 20 digits).
pub(crate) const SIZE_ALLOWANCE: usize = 26;
/// RFC 6152 section 2 (BODY=8BITMIME) and RFC 3030 section 3
/// (BODY=BINARYMIME): BODY adds 16 characters to MAIL
/// (` BODY=BINARYMIME`, the longest value).
pub(crate) const BODY_ALLOWANCE: usize = 16;
/// RFC 6531 section 3.1 item 5: SMTPUTF8 adds 10 characters to MAIL.
pub(crate) const SMTPUTF8_ALLOWANCE: usize = 10;
/// RFC 3461 section 4 (RET, section 4.3; ENVID, section 4.4, whose value
/// is at most 100 characters): ` RET=HDRS` (9) and ` ENVID=` with 100
/// characters (107) on MAIL.
pub(crate) const DSN_MAIL_ALLOWANCE: usize = 9 + 7 + MAX_ENVID;
/// RFC 3461 section 4 (NOTIFY, section 4.1; ORCPT, section 4.2, whose value
/// is at most 500 characters): ` NOTIFY=SUCCESS,FAILURE,DELAY` (29) and
/// ` ORCPT=` with 500 characters (507) on RCPT.
pub(crate) const DSN_RCPT_ALLOWANCE: usize = 29 + 7 + MAX_ORCPT;
/// RFC 4954 section 5: a server offering AUTH "MUST increase the line
/// length limit by 500" for MAIL, whose `AUTH=` parameter names the
/// original submitter.
pub(crate) const AUTH_ALLOWANCE: usize = 500;

/// MAIL with every parameter: SIZE, BODY, SMTPUTF8, DSN and AUTH.
const LONGEST_MAIL: usize =
    COMMAND_LINE + SIZE_ALLOWANCE + BODY_ALLOWANCE + SMTPUTF8_ALLOWANCE + DSN_MAIL_ALLOWANCE + AUTH_ALLOWANCE;
/// RCPT with DSN.
const LONGEST_RCPT: usize = COMMAND_LINE + DSN_RCPT_ALLOWANCE;

/// The longest command line any configuration accepts, in octets with CR
/// LF: the larger of MAIL with every parameter (1,180, when AUTH is
/// offered) and RCPT with DSN (1,048). No envelope string (each is part of
/// one command line) is longer, which is what a host may check
/// (wit/session.wit, `envelope`). The line reader holds at most the
/// longest line of its own configuration minus one octet (see
/// [`SASL_RESPONSE_LINE`] for the exception).
pub const LONGEST_COMMAND_LINE: usize = if LONGEST_MAIL > LONGEST_RCPT { LONGEST_MAIL } else { LONGEST_RCPT };

/// RFC 3461 section 4.4: an ENVID value is at most 100 characters.
pub(crate) const MAX_ENVID: usize = 100;
/// RFC 3461 section 4.2: an ORCPT value is at most 500 characters.
pub(crate) const MAX_ORCPT: usize = 500;

/// RFC 5321 section 4.5.3.1.3: a reverse-path or forward-path is at most
/// 256 octets "including the punctuation and element separators", that is
/// from `<` to `>` inclusive, source route included. Longer paths get
/// `501 Path too long`, the reply section 4.5.3.1.10 names.
///
/// The 64-octet local-part of section 4.5.3.1.1 is deliberately not
/// enforced: section 4.5.3.1 asks servers to impose no limits where they
/// can, and VERP and SRS senders routinely exceed 64; the path limit still
/// bounds the local-part.
pub(crate) const MAX_PATH: usize = 256;
/// RFC 5321 section 4.5.3.1.2 and RFC 1035 section 2.3.4: a domain is at
/// most 255 octets, a label at most 63.
pub(crate) const MAX_DOMAIN: usize = 255;
pub(crate) const MAX_LABEL: usize = 63;

/// The hostname written into replies is cut to a domain's length (RFC 1035
/// section 2.3.4, RFC 5321 section 4.5.3.1.2), so that every reply, and so
/// the reply bound, has a known maximum whatever the host configures.
pub(crate) const MAX_HOSTNAME: usize = MAX_DOMAIN;

/// The most of a host's refusal text that reaches a reply (wit/session.wit,
/// `refusal`), in octets of printable ASCII: room for a URL, and a known
/// maximum for the reply bound.
pub(crate) const MAX_HOST_TEXT: usize = 200;

/// The longest identity recorded after AUTH: the client's authorization or
/// authentication id is cut to it (a host's text is already cut to
/// [`MAX_HOST_TEXT`]).
pub(crate) const MAX_IDENTITY: usize = MAX_DOMAIN;

/// The longest TLS version or cipher suite name kept for the envelope (IANA
/// names are under 64 octets).
pub(crate) const MAX_TLS_NAME: usize = 64;

/// RFC 4954 section 4: a server must take SASL response lines of up to
/// 12,288 octets. The line reader holds that much only when AUTH
/// mechanisms are configured; command lines keep their own limits.
pub const SASL_RESPONSE_LINE: usize = 12_288;

/// Protocol errors a session tolerates: after the 20th reply in 500-504
/// or 555 (a command the client got wrong: unknown, malformed, out of
/// sequence, not implemented, bad parameter, line too long) the session
/// answers `421 4.7.0 <hostname> Too many errors, closing connection` and
/// closes, aborting an open message first. Postfix's
/// `smtpd_hard_error_limit` has the same default; RFC 5321 section 3.8
/// lets a server close with 421 when it must.
pub const MAX_PROTOCOL_ERRORS: u32 = 20;

/// The contract's bound on replies, per octet of input: the `Send` bytes
/// of one call total at most
/// `MAX_REPLY_OCTETS_PER_INPUT_OCTET * input + MAX_REPLY_OCTETS_PER_CALL_FIXED`,
/// where `input` is what the call processes (`feed`: its input;
/// `answer`: the input kept behind the question, never more than the
/// input of the `feed` call that asked; the other calls: 0).
///
/// Why it holds: every reply answers input that ended in this call (a
/// command line, the end of DATA, the end of a BDAT chunk), and none is
/// longer than 64 octets per octet of the shortest input that triggers it:
/// a bare LF (1 octet) gets 54 octets, `EHLO a` CR LF (8 octets, 512
/// allowed) gets the EHLO reply, at most 424 octets with every extension
/// and a 255-octet hostname. What is not paid for by its own octets within
/// the call fits in the fixed part: one reply whose input began in an
/// earlier call, the reply `answer` writes for the host's decision, the
/// greeting, a 421, each at most a few hundred octets. A 421 that replaces
/// a reply (the error limit's, or `Config::max_auth_failures`' on the
/// failed AUTH command that reaches it: `*` CR LF, 3 octets, pays for 192
/// octets, the 421 with a 255-octet hostname takes 307) closes the session,
/// so a call writes at most one.
pub const MAX_REPLY_OCTETS_PER_INPUT_OCTET: usize = 64;
/// The fixed part of the reply bound (see
/// [`MAX_REPLY_OCTETS_PER_INPUT_OCTET`]), in octets; also the whole bound
/// of the calls that take no input (`greeting`, `timeout`, `shutdown`,
/// `tls_started`).
pub const MAX_REPLY_OCTETS_PER_CALL_FIXED: usize = 4096;

/// The most `Send` octets one call may return after processing `input`
/// octets (see [`MAX_REPLY_OCTETS_PER_INPUT_OCTET`]).
pub const fn max_reply_octets(input: usize) -> usize {
    input.saturating_mul(MAX_REPLY_OCTETS_PER_INPUT_OCTET).saturating_add(MAX_REPLY_OCTETS_PER_CALL_FIXED)
}

/// The longest a line may be (octets with CR LF), given its verb and what
/// the session offers: the enabled extensions, and AUTH when SASL
/// mechanisms are configured. `line` is the command line without CR LF.
pub(crate) fn command_line(line: &[u8], config: &Config) -> usize {
    let ext = &config.extensions;
    let verb = line.split(|&b| b == b' ').next().unwrap_or_default();
    let on = |enabled: bool, allowance: usize| if enabled { allowance } else { 0 };
    COMMAND_LINE
        + if verb.eq_ignore_ascii_case(b"MAIL") {
            on(ext.size, SIZE_ALLOWANCE)
                + on(ext.eightbitmime || (ext.binarymime && ext.chunking), BODY_ALLOWANCE)
                + on(ext.smtputf8, SMTPUTF8_ALLOWANCE)
                + on(ext.dsn, DSN_MAIL_ALLOWANCE)
                + on(config.auth_mechanisms.any(), AUTH_ALLOWANCE)
        } else if verb.eq_ignore_ascii_case(b"RCPT") {
            on(ext.dsn, DSN_RCPT_ALLOWANCE)
        } else {
            0
        }
}

/// The longest command line of this configuration: the longest line any
/// verb may have.
pub(crate) fn longest_command_line(config: &Config) -> usize {
    command_line(b"MAIL", config).max(command_line(b"RCPT", config))
}

/// The most the line reader must hold for this configuration: the longest
/// command line, or a SASL response line when AUTH mechanisms are
/// configured.
pub(crate) fn longest_line(config: &Config) -> usize {
    let command = longest_command_line(config);
    if config.auth_mechanisms.any() { command.max(SASL_RESPONSE_LINE) } else { command }
}

/// Parses `1*DIGIT` (RFC 1870 `size-value`, RFC 3030 `chunk-size`),
/// saturating at `u64::MAX`: a well-formed number too large for any limit
/// is "too large" (552), not "bad syntax" (501). RFC 1870 allows at most 20
/// digits, but a longer string of digits can only denote a larger number,
/// so it is answered for what it says. `None` when it is not digits.
pub(crate) fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::{AuthMechanisms, Extensions};

    fn config(extensions: Extensions, plain: bool) -> Config {
        Config { extensions, auth_mechanisms: AuthMechanisms { plain, login: false }, ..Config::default() }
    }

    #[test]
    fn only_enabled_extensions_raise_only_their_commands() {
        let all = config(Extensions::DEFAULT, false);
        let none = config(Extensions::NONE, false);
        assert_eq!(command_line(b"MAIL FROM:<a@b>", &all), 512 + 26 + 16 + 10 + 116);
        assert_eq!(command_line(b"rcpt TO:<a@b>", &all), 512 + 536);
        assert_eq!(command_line(b"NOOP", &all), 512);
        assert_eq!(command_line(b"MAILFROM:<a@b>", &all), 512);
        assert_eq!(command_line(b"MAIL FROM:<a@b>", &none), 512);
        assert_eq!(
            command_line(b"RCPT TO:<a@b>", &config(Extensions { dsn: false, ..Extensions::DEFAULT }, false)),
            512
        );
        assert_eq!(longest_command_line(&all), 512 + 536, "RCPT with DSN is the longest without AUTH");
        assert_eq!(longest_command_line(&none), COMMAND_LINE);
    }

    #[test]
    fn offering_auth_raises_mail_by_500() {
        let all = config(Extensions::DEFAULT, true);
        assert_eq!(command_line(b"MAIL FROM:<a@b>", &all), 512 + 26 + 16 + 10 + 116 + 500);
        assert_eq!(command_line(b"RCPT TO:<a@b>", &all), 512 + 536);
        // RFC 4954 section 4: the AUTH command keeps the line limit of SMTP.
        assert_eq!(command_line(b"AUTH PLAIN", &all), 512);
        assert_eq!(command_line(b"MAIL FROM:<a@b>", &config(Extensions::NONE, true)), 512 + 500);
        assert_eq!(longest_command_line(&all), LONGEST_COMMAND_LINE);
        assert_eq!(LONGEST_COMMAND_LINE, 1180);
        // The reader holds a SASL response line anyway whenever AUTH is offered.
        assert_eq!(longest_line(&all), SASL_RESPONSE_LINE);
        assert_eq!(longest_line(&config(Extensions::DEFAULT, false)), 1048);
    }

    #[test]
    fn decimals_saturate() {
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("00042"), Some(42));
        assert_eq!(decimal("18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal("99999999999999999999999"), Some(u64::MAX));
        for bad in ["", "-1", "+1", "1e3", " 1", "0x10", "１"] {
            assert_eq!(decimal(bad), None, "{bad}");
        }
    }
}
