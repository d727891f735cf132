//! The host never trusts what a guest returns: every call's actions are
//! checked against the contract before any of them touches the socket or
//! the disk. A violation is a guest fault, handled exactly like a trap.
//!
//! The ordering rules are smtp-core's [`Checker`], the one statement of
//! them every Rust driver uses; this guard adds what only the host cares
//! about: the content of envelopes (they become header fields), and that
//! TLS is asked for only when the host offered it, and only once.
//!
//! Every bound here is one a correct guest cannot reach from any input a
//! client may legitimately send: a guard limit that a correct guest can
//! reach turns a client's legitimate traffic into a "guest fault" and a
//! 421 4.3.0 for nobody's error.

use smtp_core::contract::{Call, Checker, Step};
use smtp_core::{Action, Envelope, Question};

use crate::runtime::GuestFault;

/// Longest string the host accepts in an envelope field, in octets. Each
/// client-given field (HELO name, reverse-path, forward-path, ENVID, ORCPT,
/// NOTIFY) is part of one command line, taken as sent (wit/session.wit,
/// `envelope`), so no field a correct guest produces is longer than the
/// longest command line it accepts (512 octets raised by the MAIL/RCPT
/// extension allowances of RFC 1870, 6152, 6531, 3461 and 4954: 1,180); the
/// others (protocol, authenticated identity, TLS names) are shorter still.
const MAX_FIELD: usize = smtp_core::LONGEST_COMMAND_LINE;

/// Longest credential field: a SASL response line (RFC 4954 section 4).
const MAX_CREDENTIAL: usize = smtp_core::SASL_RESPONSE_LINE;

/// Tracks the session state the actions imply.
pub struct ActionGuard {
    checker: Checker,
    max_recipients: usize,
    /// Whether the host offered STARTTLS to this session (a certificate is
    /// loaded and TLS is not already on).
    tls_offered: bool,
}

impl ActionGuard {
    pub fn new(max_size: u64, max_recipients: u32, tls_offered: bool) -> Self {
        ActionGuard {
            checker: Checker::new(max_size, max_recipients),
            max_recipients: max_recipients as usize,
            tls_offered,
        }
    }

    /// Whether the client is sending message content: from `message-begin`
    /// to `ask(message-end)` or `message-abort` (wit/session.wit emits
    /// `message-abort` only once the client's content is over).
    pub fn in_message(&self) -> bool {
        self.checker.in_message()
    }

    /// Checks one call's whole list before any of it is executed.
    pub fn check(&mut self, call: Call, actions: &[Action]) -> Result<(), GuestFault> {
        for action in actions {
            match action {
                Action::MessageBegin(envelope) => check_envelope(envelope, self.max_recipients)?,
                Action::Ask(question) => check_question(question)?,
                // The checker refuses a second start-tls before tls-started;
                // after it TLS is on and nothing more may be offered.
                Action::StartTls if !self.tls_offered => {
                    return violation("start-tls, but the host offered no TLS");
                }
                Action::StartTls => self.tls_offered = false,
                _ => {}
            }
        }
        self.checker.check(call, actions.iter().map(Step::of)).map_err(|v| GuestFault::Contract(v.0))
    }
}

fn violation<T>(what: &str) -> Result<T, GuestFault> {
    Err(GuestFault::Contract(what.to_string()))
}

/// A string that may become part of a header field or a log line.
fn clean(field: &str, max: usize) -> bool {
    field.len() <= max && !field.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

fn check_envelope(e: &Envelope, max_recipients: usize) -> Result<(), GuestFault> {
    if e.recipients.is_empty() || e.recipients.len() > max_recipients {
        return violation("message-begin with no recipients or more than the limit");
    }
    let mut fields = vec![e.helo.as_str(), e.reverse_path.as_str(), e.protocol.as_str()];
    fields.extend(e.dsn_envid.as_deref());
    fields.extend(e.authenticated.as_deref());
    if let Some(tls) = &e.tls {
        fields.extend([tls.version.as_str(), tls.cipher.as_str()]);
    }
    for r in &e.recipients {
        fields.push(&r.address);
        fields.extend(r.notify.as_deref());
        fields.extend(r.orcpt.as_deref());
    }
    if !fields.into_iter().all(|field| clean(field, MAX_FIELD)) {
        return violation("envelope field with CR, LF, NUL or longer than any command line");
    }
    if e.helo.is_empty() || e.protocol.is_empty() || e.protocol.bytes().any(|b| !b.is_ascii_alphanumeric()) {
        return violation("envelope without HELO name or with a malformed protocol name");
    }
    Ok(())
}

/// Questions carry client-given tokens the policy may log or look up.
fn check_question(question: &Question) -> Result<(), GuestFault> {
    let ok = match question {
        Question::Connect | Question::MessageEnd => true,
        Question::Helo(h) => clean(&h.domain, MAX_FIELD),
        Question::Mail(m) => {
            [m.helo.as_str(), &m.reverse_path].into_iter().chain(m.dsn_envid.as_deref()).all(|f| clean(f, MAX_FIELD))
        }
        Question::Rcpt(r) => [r.reverse_path.as_str(), &r.recipient.address]
            .into_iter()
            .chain(r.recipient.notify.as_deref())
            .chain(r.recipient.orcpt.as_deref())
            .all(|f| clean(f, MAX_FIELD)),
        // The secret may hold anything but NUL (RFC 4616); only its length
        // is the host's business.
        Question::Auth(c) => {
            clean(&c.mechanism, MAX_FIELD)
                && clean(&c.authorization_id, MAX_CREDENTIAL)
                && clean(&c.authentication_id, MAX_CREDENTIAL)
                && c.secret.len() <= MAX_CREDENTIAL
        }
    };
    if ok { Ok(()) } else { violation("question with CR, LF, NUL or a field longer than the protocol allows") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_core::{BodyType, Recipient};

    fn envelope() -> Envelope {
        Envelope {
            helo: "a".into(),
            reverse_path: String::new(),
            recipients: vec![Recipient { address: "r@x".into(), notify: None, orcpt: None }],
            protocol: "ESMTP".into(),
            body: BodyType::SevenBit,
            smtputf8: false,
            declared_size: None,
            dsn_return: None,
            dsn_envid: None,
            tls: None,
            authenticated: None,
        }
    }

    #[test]
    fn fields_as_long_as_an_extended_rcpt_line_allows_are_accepted() {
        let mut envelope = envelope();
        // RCPT TO:<r@x> ORCPT=rfc822;… : 512 + 500 octets of line.
        envelope.recipients[0].orcpt = Some(format!("rfc822;{}", "o".repeat(1000)));
        assert!(check_envelope(&envelope, 10).is_ok());
        envelope.recipients[0].orcpt = Some("o".repeat(MAX_FIELD + 1));
        assert!(check_envelope(&envelope, 10).is_err());
        let mut envelope = self::envelope();
        envelope.authenticated = Some("alice\r\nX-Injected: 1".into());
        assert!(check_envelope(&envelope, 10).is_err());
    }

    #[test]
    fn ordering_comes_from_the_checker_and_tls_only_when_offered() {
        let mut guard = ActionGuard::new(1000, 10, false);
        let ask = Action::Ask(Question::Connect);
        assert!(guard.check(Call::Greeting, &[ask.clone(), ask.clone()]).is_err(), "a second question");
        let mut guard = ActionGuard::new(1000, 10, false);
        guard.check(Call::Greeting, &[Action::Send(b"220 x\r\n".to_vec())]).unwrap();
        assert!(guard.check(Call::Feed(1), &[Action::StartTls]).is_err());
        assert!(guard.check(Call::Answer, &[]).is_err(), "an answer without a question");

        let mut guard = ActionGuard::new(1000, 10, true);
        guard.check(Call::Greeting, &[]).unwrap();
        guard.check(Call::Feed(10), &[Action::Send(b"220 go\r\n".to_vec()), Action::StartTls]).unwrap();
        guard.check(Call::TlsStarted, &[]).unwrap();
        assert!(guard.check(Call::Feed(10), &[Action::StartTls]).is_err(), "TLS twice");
    }
}
