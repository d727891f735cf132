//! The reply each refusal reason gets at each step (wit/session.wit,
//! `reason`). The host says why; the session says it in SMTP: a reply code
//! of the right class for the step (RFC 5321 section 4.2), an RFC 3463
//! enhanced status code, and a text to which the host's own short text is
//! appended once sanitised.
//!
//! | reason | permanent | temporary |
//! | --- | --- | --- |
//! | relay-denied | 550 5.7.1 | 450 4.7.1 |
//! | no-such-user | 550 5.1.1 | 450 4.1.1 |
//! | mailbox-full | 552 5.2.2 | 452 4.2.2 |
//! | sender-refused | 550 5.7.23 | 451 4.7.24 (RFC 7372: SPF fail / SPF error) |
//! | policy | 550 5.7.1 | 451 4.7.1 |
//! | greylisted | (never) | 451 4.7.1 |
//! | rate-limited | 550 5.7.1 | 451 4.7.1 |
//! | auth-failed | 535 5.7.8 | 454 4.7.0 (RFC 4954 section 6) |
//! | auth-required | 530 5.7.0 | (the same) (RFC 4954 section 6) |
//! | encryption-required | 530 5.7.0; at AUTH 538 5.7.11 | (the same) (RFC 3207, RFC 4954) |
//! | storage-full | 552 5.3.1 | 452 4.3.1 |
//! | local-error | 554 5.3.0 | 451 4.3.0 |
//!
//! At connect the reply is the greeting's: 554 with the permanent code, or
//! 421 (RFC 5321 section 3.1), naming the server. A refusal that
//! disconnects is 421 naming the server at any step (RFC 5321 section
//! 3.8); the session then closes. A 421 carries the reason's temporary
//! code, except that every security or policy reason (class X.7.y:
//! relay-denied, sender-refused, policy, greylisted, rate-limited, the
//! AUTH and TLS reasons) says 4.7.0, RFC 3463's "other or undefined
//! security status": the session ends over the client as a whole, not over
//! the one item the reason's own code would name. That is what Postfix
//! says, and what the session's own 421s say (`reply.rs`). So a 421 is
//! 4.7.0, 4.1.1, 4.2.2, 4.3.0 or 4.3.1, never a 5.y.z.

use crate::limits::MAX_HOST_TEXT;
use crate::prelude::*;
use crate::question::{Reason, Refusal};
use crate::reply::Reply;
use alloc::borrow::Cow;

/// The step a question was asked at, which picks the reply class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Auth,
    MessageEnd,
}

/// The reply for `refusal` at `step`. `hostname` is only used at connect.
pub(crate) fn reply(step: Step, refusal: &Refusal, hostname: &str) -> Reply {
    let permanent = refusal.permanent && !refusal.disconnect;
    let (code, enhanced, text) = base(step, refusal.reason, permanent);
    let mut text = String::from(text);
    if let Some(extra) = refusal.text.as_deref().map(sanitise).filter(|t| !t.is_empty()) {
        text.push_str(": ");
        text.push_str(&extra);
    }
    if refusal.disconnect || step == Step::Connect {
        let text = Cow::Owned(format!("{hostname} {text}"));
        if code >= 500 && !refusal.disconnect {
            return Reply { code: 554, enhanced: Some(enhanced), text };
        }
        return Reply { code: 421, enhanced: Some(closing_code(enhanced)), text };
    }
    Reply { code, enhanced: Some(enhanced), text: Cow::Owned(text) }
}

/// The enhanced code of a 421 for a reason whose code is `enhanced`: 4.7.0
/// for the security/policy class (see the module table), the reason's
/// own otherwise. Reasons with one class only (auth-required is always
/// 5.7.0) fall in X.7.y, so a 421 never carries a permanent class.
fn closing_code(enhanced: &'static str) -> &'static str {
    if enhanced.get(1..4) == Some(".7.") { "4.7.0" } else { enhanced }
}

fn base(step: Step, reason: Reason, permanent: bool) -> (u16, &'static str, &'static str) {
    let pick = |p: (u16, &'static str, &'static str), t: (u16, &'static str, &'static str)| {
        if permanent { p } else { t }
    };
    match reason {
        Reason::RelayDenied => pick((550, "5.7.1", "Relay access denied"), (450, "4.7.1", "Relay access denied")),
        Reason::NoSuchUser => pick((550, "5.1.1", "No such user here"), (450, "4.1.1", "Recipient not verified")),
        Reason::MailboxFull => pick((552, "5.2.2", "Mailbox full"), (452, "4.2.2", "Mailbox full")),
        Reason::SenderRefused => pick(
            (550, "5.7.23", "Sender not authorized"),
            (451, "4.7.24", "Sender could not be verified, try again later"),
        ),
        Reason::Policy => pick((550, "5.7.1", "Refused by local policy"), (451, "4.7.1", "Refused by local policy")),
        Reason::Greylisted => (451, "4.7.1", "Greylisted, try again later"),
        Reason::RateLimited => {
            pick((550, "5.7.1", "Rate limit exceeded"), (451, "4.7.1", "Rate limit exceeded, try again later"))
        }
        Reason::AuthFailed => pick(
            (535, "5.7.8", "Authentication credentials invalid"),
            (454, "4.7.0", "Temporary authentication failure"),
        ),
        Reason::AuthRequired => (530, "5.7.0", "Authentication required"),
        Reason::EncryptionRequired if step == Step::Auth => {
            (538, "5.7.11", "Encryption required for requested authentication mechanism")
        }
        Reason::EncryptionRequired => (530, "5.7.0", "Must issue a STARTTLS command first"),
        Reason::StorageFull => pick((552, "5.3.1", "Mail system full"), (452, "4.3.1", "Insufficient system storage")),
        Reason::LocalError => {
            pick((554, "5.3.0", "Transaction failed"), (451, "4.3.0", "Temporary failure, please try again later"))
        }
    }
}

/// Printable ASCII only (no CR, LF or other control that could end or
/// split a reply), at most [`MAX_HOST_TEXT`] octets, trimmed.
pub(crate) fn sanitise(text: &str) -> String {
    let kept: String = text.chars().filter(|c| (' '..='~').contains(c)).take(MAX_HOST_TEXT).collect();
    kept.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(step: Step, reason: Reason, permanent: bool, text: Option<&str>) -> String {
        let mut out = Vec::new();
        let refusal = Refusal { reason, permanent, text: text.map(String::from), disconnect: false };
        reply(step, &refusal, "mx.test").write_to(&mut out, true);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn class_follows_permanence_except_where_the_reason_has_one() {
        for reason in Reason::ALL {
            let p = wire(Step::Rcpt, reason, true, None);
            let t = wire(Step::Rcpt, reason, false, None);
            match reason {
                Reason::Greylisted => assert!(p.starts_with("451 4.") && t == p),
                Reason::AuthRequired | Reason::EncryptionRequired => assert!(p.starts_with("530 5.7.0") && t == p),
                _ => assert!(p.starts_with('5') && t.starts_with('4'), "{reason:?}: {p} / {t}"),
            }
        }
        assert_eq!(wire(Step::Rcpt, Reason::NoSuchUser, true, None), "550 5.1.1 No such user here\r\n");
        assert_eq!(wire(Step::Auth, Reason::EncryptionRequired, true, None).get(..10), Some("538 5.7.11"));
    }

    #[test]
    fn host_text_is_appended_sanitised_and_bounded() {
        assert_eq!(
            wire(Step::Mail, Reason::SenderRefused, true, Some(" see https://x.test/spf\r\n250 ok ")),
            "550 5.7.23 Sender not authorized: see https://x.test/spf250 ok\r\n"
        );
        let long = wire(Step::Rcpt, Reason::Policy, true, Some(&"é".repeat(10).repeat(100)));
        assert_eq!(long, "550 5.7.1 Refused by local policy\r\n", "nothing printable is left");
        let bounded = wire(Step::Rcpt, Reason::Policy, true, Some(&"a".repeat(1000)));
        assert_eq!(bounded.len(), "550 5.7.1 Refused by local policy: \r\n".len() + MAX_HOST_TEXT);
    }

    #[test]
    fn a_disconnecting_refusal_is_421_naming_the_server_at_any_step() {
        let refusal = Refusal { reason: Reason::AuthFailed, permanent: true, text: None, disconnect: true };
        let mut out = Vec::new();
        reply(Step::Auth, &refusal, "mx.test").write_to(&mut out, true);
        assert_eq!(out, b"421 4.7.0 mx.test Temporary authentication failure\r\n");
    }

    #[test]
    fn connect_refusals_are_greetings_naming_the_server() {
        assert_eq!(wire(Step::Connect, Reason::Policy, true, None), "554 5.7.1 mx.test Refused by local policy\r\n");
        assert_eq!(
            wire(Step::Connect, Reason::RateLimited, false, None),
            "421 4.7.0 mx.test Rate limit exceeded, try again later\r\n"
        );
        assert_eq!(
            wire(Step::Connect, Reason::LocalError, false, None),
            "421 4.3.0 mx.test Temporary failure, please try again later\r\n"
        );
    }

    #[test]
    fn a_421_says_4_7_0_for_policy_reasons_and_keeps_other_classes() {
        let closing = |step: Step, reason: Reason, permanent: bool, disconnect: bool| {
            let refusal = Refusal { reason, permanent, text: None, disconnect };
            let mut out = Vec::new();
            reply(step, &refusal, "mx.test").write_to(&mut out, true);
            String::from_utf8(out).unwrap()
        };
        for step in [Step::Connect, Step::Helo, Step::Mail, Step::Rcpt, Step::Auth, Step::MessageEnd] {
            for reason in Reason::ALL {
                for permanent in [true, false] {
                    // auth-required and encryption-required are permanent
                    // only: at connect without `disconnect` they are a 554.
                    let one_class = matches!(reason, Reason::AuthRequired | Reason::EncryptionRequired);
                    let connect_421 = step == Step::Connect && !permanent && !one_class;
                    for disconnect in [true, false] {
                        if !disconnect && !connect_421 {
                            continue;
                        }
                        let out = closing(step, reason, permanent, disconnect);
                        let expected = match reason {
                            Reason::NoSuchUser => "421 4.1.1 mx.test ",
                            Reason::MailboxFull => "421 4.2.2 mx.test ",
                            Reason::StorageFull => "421 4.3.1 mx.test ",
                            Reason::LocalError => "421 4.3.0 mx.test ",
                            _ => "421 4.7.0 mx.test ",
                        };
                        assert!(out.starts_with(expected), "{step:?} {reason:?} {permanent} {disconnect}: {out}");
                    }
                }
            }
        }
        // A permanent refusal at connect stays a 554 with its own code.
        assert!(closing(Step::Connect, Reason::SenderRefused, true, false).starts_with("554 5.7.23 mx.test "));
    }
}
