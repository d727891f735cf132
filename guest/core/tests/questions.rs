//! The question/answer round trip (wit/session.wit `ask` and `answer`):
//! what each answer leads to at each step, input parked behind a question,
//! and AUTH's SASL framing. The transcripts in tests/transcripts show the
//! same for every driver; these check what they cannot (envelopes,
//! credentials, TLS).

use smtp_core::{
    Action, Answer, AuthMechanisms, Config, Credentials, PeerInfo, Question, Questions, Reason, Session, TlsInfo,
};

fn session(questions: Questions, auth: bool) -> Session {
    limited(questions, auth, Config::DEFAULT_MAX_AUTH_FAILURES)
}

fn limited(questions: Questions, auth: bool, max_auth_failures: u32) -> Session {
    let config = Config {
        hostname: "mx.test".into(),
        questions,
        auth_mechanisms: AuthMechanisms { plain: auth, login: auth },
        max_auth_failures,
        ..Config::default()
    };
    Session::new(config, PeerInfo { ip: "192.0.2.1".into(), port: 1 })
}

fn all() -> Questions {
    Questions { connect: true, helo: true, mail: true, rcpt: true }
}

fn text(actions: &[Action]) -> String {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

fn asked(actions: &[Action]) -> Option<&Question> {
    match actions.last() {
        Some(Action::Ask(q)) => Some(q),
        _ => None,
    }
}

fn tls() -> TlsInfo {
    TlsInfo { version: "TLSv1.3".into(), cipher: "TLS_AES_128_GCM_SHA256".into() }
}

#[test]
fn pipelined_commands_wait_behind_each_question() {
    let mut s = session(all(), false);
    assert_eq!(s.greeting(), [Action::Ask(Question::Connect)]);
    let actions = s.answer(Answer::ACCEPT);
    assert_eq!(text(&actions), "220 mx.test ESMTP smtpcell\r\n");
    // One write with the whole transaction: each step asks in turn.
    let actions =
        s.feed(b"HELO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<x@mx.test>\r\nRCPT TO:<y@mx.test>\r\nNOOP\r\n");
    assert!(matches!(asked(&actions), Some(Question::Helo(h)) if h.domain == "c.test" && !h.extended));
    let actions = s.answer(Answer::ACCEPT);
    assert!(text(&actions).starts_with("250 mx.test\r\n"));
    let Some(Question::Mail(mail)) = asked(&actions) else { panic!("{actions:?}") };
    assert_eq!((mail.helo.as_str(), mail.reverse_path.as_str()), ("c.test", "a@c.test"));
    let actions = s.answer(Answer::ACCEPT);
    let Some(Question::Rcpt(rcpt)) = asked(&actions) else { panic!("{actions:?}") };
    assert_eq!((rcpt.recipient.address.as_str(), rcpt.accepted), ("x@mx.test", 0));
    let actions = s.answer(Answer::refuse(Reason::NoSuchUser, true));
    assert_eq!(text(&actions), "550 5.1.1 No such user here\r\n");
    let Some(Question::Rcpt(rcpt)) = asked(&actions) else { panic!("{actions:?}") };
    assert_eq!((rcpt.recipient.address.as_str(), rcpt.accepted), ("y@mx.test", 0), "the refused one was not added");
    let actions = s.answer(Answer::ACCEPT);
    assert_eq!(text(&actions), "250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n");
    assert_eq!(asked(&actions), None);
    let actions = s.feed(b"DATA\r\nhi\r\n.\r\n");
    let Some(Action::MessageBegin(envelope)) = actions.get(1) else { panic!("{actions:?}") };
    assert_eq!(envelope.recipients.len(), 1);
    assert_eq!(asked(&actions), Some(&Question::MessageEnd));
    let actions = s.answer(Answer::Refuse(smtp_core::Refusal {
        reason: Reason::Policy,
        permanent: true,
        text: Some("see https://mx.test/why".into()),
        disconnect: false,
    }));
    assert_eq!(text(&actions), "550 5.7.1 Refused by local policy: see https://mx.test/why\r\n");
}

#[test]
fn refused_steps_leave_the_session_where_it_was() {
    let mut s = session(Questions { helo: true, mail: true, ..Questions::default() }, false);
    s.greeting();
    s.feed(b"EHLO c\r\n");
    let actions = s.answer(Answer::refuse(Reason::Policy, false));
    assert_eq!(text(&actions), "451 4.7.1 Refused by local policy\r\n");
    assert_eq!(text(&s.feed(b"MAIL FROM:<a@b>\r\n")), "503 5.5.1 Error: send HELO/EHLO first\r\n");
    s.feed(b"EHLO c\r\n");
    s.answer(Answer::ACCEPT);
    s.feed(b"MAIL FROM:<a@b>\r\n");
    assert_eq!(text(&s.answer(Answer::refuse(Reason::SenderRefused, true))), "550 5.7.23 Sender not authorized\r\n");
    assert_eq!(text(&s.feed(b"RCPT TO:<c@d>\r\n")), "503 5.5.1 Error: need MAIL command\r\n");
}

#[test]
fn a_refused_connection_serves_only_quit_or_closes() {
    let mut s = session(all(), false);
    s.greeting();
    let actions = s.answer(Answer::refuse(Reason::Policy, true));
    assert_eq!(text(&actions), "554 5.7.1 mx.test Refused by local policy\r\n");
    assert_eq!(
        text(&s.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\n")),
        "503 5.5.1 Error: no service here, send QUIT\r\n".repeat(2)
    );
    let actions = s.feed(b"QUIT\r\n");
    assert_eq!(actions.last(), Some(&Action::Close));
    let mut s = session(all(), false);
    s.greeting();
    let actions = s.answer(Answer::refuse(Reason::RateLimited, false));
    assert_eq!(text(&actions), "421 4.7.0 mx.test Rate limit exceeded, try again later\r\n");
    assert_eq!(actions.last(), Some(&Action::Close));
}

fn credentials(actions: &[Action]) -> Credentials {
    match asked(actions) {
        Some(Question::Auth(credentials)) => credentials.clone(),
        _ => panic!("no AUTH question: {actions:?}"),
    }
}

#[test]
fn auth_is_offered_after_tls_and_asks_the_host() {
    let mut s = session(Questions::default(), true);
    s.greeting();
    assert!(!text(&s.feed(b"EHLO c\r\n")).contains("AUTH"), "no AUTH on plaintext");
    assert_eq!(
        text(&s.feed(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    let mut s = session(Questions::default(), true);
    assert_eq!(s.tls_started(tls()), [], "implicit TLS, before the greeting");
    s.greeting();
    assert!(text(&s.feed(b"EHLO c\r\n")).contains("250-AUTH PLAIN LOGIN\r\n"));
    let actions = s.feed(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    let creds = credentials(&actions);
    assert_eq!((creds.authentication_id.as_str(), creds.secret.as_str()), ("alice", "secret"));
    assert_eq!(
        text(&s.answer(Answer::refuse(Reason::AuthFailed, true))),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    // LOGIN, then accepted: the identity and TLS reach the envelope.
    assert_eq!(text(&s.feed(b"AUTH LOGIN\r\n")), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(text(&s.feed(b"YWxpY2U=\r\n")), "334 UGFzc3dvcmQ6\r\n");
    let creds = credentials(&s.feed(b"c2VjcmV0\r\n"));
    assert_eq!(creds.mechanism, "LOGIN");
    assert_eq!(text(&s.answer(Answer::ACCEPT)), "235 2.7.0 Authentication successful\r\n");
    assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n")), "503 5.5.1 Error: already authenticated\r\n");
    let actions = s.feed(b"MAIL FROM:<alice@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n");
    let Some(Action::MessageBegin(envelope)) = actions.get(1) else { panic!("{actions:?}") };
    assert_eq!(envelope.protocol, "ESMTPSA");
    assert_eq!(envelope.authenticated.as_deref(), Some("alice"));
    assert_eq!(envelope.tls, Some(tls()));
}

#[test]
fn tls_names_reach_the_envelope_as_visible_ascii_only() {
    let mut s = session(Questions::default(), false);
    s.tls_started(TlsInfo { version: "TLSv1.3\r\nX-Injected: 1".into(), cipher: "C".repeat(100) });
    s.greeting();
    let actions = s.feed(b"EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n");
    let Some(Action::MessageBegin(envelope)) = actions.get(1) else { panic!("{actions:?}") };
    let tls = envelope.tls.as_ref().unwrap();
    assert_eq!((tls.version.as_str(), tls.cipher.len()), ("TLSv1.3X-Injected:1", 64));
}

#[test]
fn auth_cancel_and_framing_errors_end_the_exchange() {
    // Three failures here: no limit, so that the fourth exchange can succeed.
    let mut s = limited(Questions::default(), true, 0);
    s.tls_started(tls());
    s.greeting();
    s.feed(b"EHLO c\r\n");
    assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n")), "334 \r\n");
    assert_eq!(text(&s.feed(b"*\r\n")), "501 5.0.0 Authentication cancelled\r\n");
    assert_eq!(text(&s.feed(b"AUTH CRAM-MD5\r\n")), "504 5.5.4 Unrecognized authentication type\r\n");
    assert_eq!(text(&s.feed(b"AUTH LOGIN\r\n!!\r\n")), "334 VXNlcm5hbWU6\r\n501 5.5.2 Cannot decode response\r\n");
    // The host names the identity: printable ASCII only.
    let actions = s.feed(b"AUTH PLAIN YWRtaW4AYWxpY2UAc2VjcmV0\r\n");
    assert_eq!(credentials(&actions).authorization_id, "admin");
    s.answer(Answer::Accept(Some("alice@mx.test\r\n".into())));
    let actions = s.feed(b"MAIL FROM:<a@c>\r\nRCPT TO:<b@d>\r\nDATA\r\n");
    let Some(Action::MessageBegin(envelope)) = actions.get(1) else { panic!("{actions:?}") };
    assert_eq!(envelope.authenticated.as_deref(), Some("alice@mx.test"));
}

const TOO_MANY: &str = "421 4.7.0 mx.test Too many failed authentication attempts\r\n";

/// A session over TLS after EHLO, AUTH offered, with this failure limit.
fn authenticating(max_auth_failures: u32) -> Session {
    let mut s = limited(Questions::default(), true, max_auth_failures);
    s.tls_started(tls());
    s.greeting();
    s.feed(b"EHLO c\r\n");
    s
}

#[test]
fn the_third_cancelled_auth_is_answered_421_and_closes() {
    assert_eq!(Config::default().max_auth_failures, 3);
    let mut s = authenticating(Config::DEFAULT_MAX_AUTH_FAILURES);
    for _ in 0..2 {
        assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n*\r\n")), "334 \r\n501 5.0.0 Authentication cancelled\r\n");
    }
    let actions = s.feed(b"AUTH LOGIN\r\n*\r\nNOOP\r\n");
    assert_eq!(text(&actions), format!("334 VXNlcm5hbWU6\r\n{TOO_MANY}"), "the 421 replaces the 501");
    assert_eq!(actions.last(), Some(&Action::Close));
    assert_eq!(s.feed(b"NOOP\r\n"), [], "closed");
}

#[test]
fn refused_malformed_and_cancelled_auth_all_count() {
    // Refused by the host, then a PLAIN response without its NULs.
    let mut s = authenticating(3);
    credentials(&s.feed(b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n"));
    assert_eq!(
        text(&s.answer(Answer::refuse(Reason::AuthFailed, true))),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    assert_eq!(text(&s.feed(b"AUTH PLAIN YWxpY2U=\r\n")), "501 5.5.2 Cannot decode response\r\n");
    let actions = s.feed(b"AUTH PLAIN\r\n*\r\n");
    assert_eq!(text(&actions), format!("334 \r\n{TOO_MANY}"));
    assert_eq!(actions.last(), Some(&Action::Close));

    // Bad base64, a mechanism not offered, then the host's refusal reaches it.
    let mut s = authenticating(3);
    assert_eq!(text(&s.feed(b"AUTH LOGIN\r\n!!\r\n")), "334 VXNlcm5hbWU6\r\n501 5.5.2 Cannot decode response\r\n");
    assert_eq!(text(&s.feed(b"AUTH CRAM-MD5\r\n")), "504 5.5.4 Unrecognized authentication type\r\n");
    credentials(&s.feed(b"AUTH PLAIN AGFsaWNlAHdyb25n\r\nNOOP\r\n"));
    let actions = s.answer(Answer::refuse(Reason::AuthFailed, true));
    assert_eq!(text(&actions), TOO_MANY, "the 421 replaces the 535; the NOOP behind it is dropped");
    assert_eq!(actions.last(), Some(&Action::Close));

    // Out of sequence (before EHLO, no mechanism) and a syntax error count too.
    let mut s = limited(Questions::default(), true, 2);
    s.tls_started(tls());
    s.greeting();
    assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n")), "503 5.5.1 Error: send HELO/EHLO first\r\n");
    let actions = s.feed(b"AUTH\r\n");
    assert_eq!(text(&actions), TOO_MANY);
    assert_eq!(actions.last(), Some(&Action::Close));

    // Before TLS: 538, then the limit.
    let mut s = limited(Questions::default(), true, 1);
    s.greeting();
    s.feed(b"EHLO c\r\n");
    let actions = s.feed(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert_eq!(text(&actions), TOO_MANY);
    assert_eq!(actions.last(), Some(&Action::Close));
}

#[test]
fn a_limit_of_zero_is_no_limit() {
    let mut s = authenticating(0);
    // 20 failures, 10 of them 501s (below the limit of 20 protocol errors).
    for _ in 0..10 {
        assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n*\r\n")), "334 \r\n501 5.0.0 Authentication cancelled\r\n");
        credentials(&s.feed(b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n"));
        s.answer(Answer::refuse(Reason::AuthFailed, true));
    }
    credentials(&s.feed(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"));
    assert_eq!(text(&s.answer(Answer::ACCEPT)), "235 2.7.0 Authentication successful\r\n");
}

#[test]
fn a_success_does_not_reset_the_count_and_a_second_auth_counts() {
    let mut s = authenticating(3);
    assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n*\r\n")), "334 \r\n501 5.0.0 Authentication cancelled\r\n");
    credentials(&s.feed(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"));
    assert_eq!(text(&s.answer(Answer::ACCEPT)), "235 2.7.0 Authentication successful\r\n");
    assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n")), "503 5.5.1 Error: already authenticated\r\n");
    let actions = s.feed(b"AUTH LOGIN\r\n");
    assert_eq!(text(&actions), TOO_MANY, "1 cancelled + 2 after success");
    assert_eq!(actions.last(), Some(&Action::Close));
}

#[test]
fn a_refusal_with_disconnect_still_closes_at_once() {
    let mut s = authenticating(3);
    credentials(&s.feed(b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n"));
    let refusal = smtp_core::Refusal { reason: Reason::AuthFailed, permanent: true, text: None, disconnect: true };
    let actions = s.answer(Answer::Refuse(refusal));
    assert_eq!(text(&actions), "421 4.7.0 mx.test Temporary authentication failure\r\n");
    assert_eq!(actions.last(), Some(&Action::Close));
}

#[test]
fn auth_without_mechanisms_is_not_a_failed_auth() {
    let mut s = limited(Questions::default(), false, 1);
    s.greeting();
    s.feed(b"EHLO c\r\n");
    for _ in 0..3 {
        assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n")), "502 5.5.1 Error: command not implemented\r\n");
    }
}

#[test]
fn auth_during_a_transaction_or_before_ehlo_is_out_of_sequence() {
    let mut s = session(Questions::default(), true);
    s.tls_started(tls());
    s.greeting();
    assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n")), "503 5.5.1 Error: send HELO/EHLO first\r\n");
    s.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\n");
    assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n")), "503 5.5.1 Error: MAIL transaction in progress\r\n");
    let mut s = session(Questions::default(), false);
    s.greeting();
    s.feed(b"EHLO c\r\n");
    assert_eq!(text(&s.feed(b"AUTH PLAIN\r\n")), "502 5.5.1 Error: command not implemented\r\n");
}

#[test]
fn required_tls_refuses_all_but_noop_ehlo_starttls_and_quit_until_it_starts() {
    let mut config = Config { hostname: "mx.test".into(), require_tls: true, ..Config::default() };
    config.extensions.starttls = true;
    let mut s = Session::new(config, PeerInfo { ip: "192.0.2.1".into(), port: 1 });
    s.greeting();
    let refused = "530 5.7.0 Must issue a STARTTLS command first\r\n";
    assert_eq!(text(&s.feed(b"HELO c\r\n")), refused);
    assert!(text(&s.feed(b"EHLO c\r\n")).ends_with("250 STARTTLS\r\n"));
    assert_eq!(text(&s.feed(b"MAIL FROM:<a@b>\r\nVRFY x\r\n")), refused.repeat(2));
    assert_eq!(text(&s.feed(b"NOOP\r\n")), "250 2.0.0 Ok\r\n");
    assert_eq!(s.feed(b"STARTTLS\r\n").last(), Some(&Action::StartTls));
    s.tls_started(tls());
    s.feed(b"EHLO c\r\n");
    assert_eq!(text(&s.feed(b"MAIL FROM:<a@b>\r\n")), "250 2.1.0 Ok\r\n");
}
