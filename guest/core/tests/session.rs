//! Whole-session properties through the public API: the contract's action
//! rules, the smuggling table, STARTTLS, timeouts, envelopes, and split
//! invariance under proptest.

mod common;

use common::split;
use proptest::prelude::*;
use smtp_core::contract::{Call, Checker, Step};
use smtp_core::{
    Action, Answer, BodyType, Config, DsnReturn, Envelope, PeerInfo, Question, Reason, Recipient, Session, TlsInfo,
    info,
};

fn config() -> Config {
    Config { hostname: "smtpcell.test".to_string(), ..Config::default() }
}

fn peer() -> PeerInfo {
    PeerInfo { ip: "203.0.113.7".to_string(), port: 40000 }
}

/// Everything a host observes, with messages collected by their fate.
#[derive(Debug, Default, PartialEq, Eq)]
struct Observed {
    output: Vec<u8>,
    envelopes: Vec<Envelope>,
    stored: Vec<Vec<u8>>,
    begins: usize,
    ends: usize,
    aborts: usize,
    closed: bool,
}

/// Feeds `pieces` one call each, answering every question with the next
/// answer (or accepting: with the queue id `id` at the end of a message),
/// and checks every call with the contract's ordering checker.
fn drive(config: Config, pieces: &[&[u8]], answers: &[Answer]) -> Observed {
    let mut checker = Checker::new(config.max_message_size, config.max_recipients);
    let mut session = Session::new(config, peer());
    let mut seen = Observed::default();
    let mut open: Option<Vec<u8>> = None;
    let mut answers = answers.iter();
    let mut actions = session.greeting();
    let mut call = Call::Greeting;
    let mut pieces = pieces.iter();
    loop {
        if let Err(violation) = checker.check(call, actions.iter().map(Step::of)) {
            panic!("{violation} in {actions:?}");
        }
        let mut next = None;
        for action in actions {
            match action {
                Action::Send(bytes) => {
                    assert_well_formed(&bytes);
                    seen.output.extend_from_slice(&bytes);
                }
                Action::MessageBegin(envelope) => {
                    seen.envelopes.push(envelope);
                    seen.begins += 1;
                    open = Some(Vec::new());
                }
                Action::MessageData(bytes) => {
                    assert!(!bytes.is_empty());
                    open.as_mut().expect("checked").extend_from_slice(&bytes);
                }
                Action::Ask(question) => {
                    let default = match question {
                        Question::MessageEnd => Answer::Accept(Some("id".into())),
                        _ => Answer::ACCEPT,
                    };
                    let answer = answers.next().cloned().unwrap_or(default);
                    if question == Question::MessageEnd {
                        let content = open.take().expect("checked");
                        if matches!(answer, Answer::Accept(_)) {
                            seen.stored.push(content);
                        }
                        seen.ends += 1;
                    }
                    next = Some((Call::Answer, session.answer(answer)));
                }
                Action::MessageAbort => {
                    open = None;
                    seen.aborts += 1;
                }
                Action::StartTls => next = Some((Call::TlsStarted, session.tls_started(tls()))),
                Action::Close => seen.closed = true,
            }
        }
        (call, actions) = match next {
            Some(next) => next,
            None => match pieces.next() {
                Some(piece) if !seen.closed => (Call::Feed(piece.len()), session.feed(piece)),
                _ => return seen,
            },
        };
    }
}

fn tls() -> TlsInfo {
    TlsInfo { version: "TLSv1.3".into(), cipher: "TLS_AES_256_GCM_SHA384".into() }
}

/// Every Send is a sequence of complete `ddd[ -]text CRLF` lines.
fn assert_well_formed(bytes: &[u8]) {
    assert!(bytes.ends_with(b"\r\n"), "reply not ended by CRLF: {bytes:?}");
    for line in bytes[..bytes.len() - 2].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(line.len() >= 4, "short reply line {line:?}");
        assert!(line[..3].iter().all(u8::is_ascii_digit) && matches!(line[0], b'2'..=b'5'));
        assert!(line[3] == b' ' || line[3] == b'-');
        assert!(!line.contains(&b'\r') && !line.contains(&0));
    }
}

fn whole(input: &[u8]) -> Observed {
    drive(config(), &[input], &[])
}

const PRELUDE: &[u8] = b"EHLO client.example\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<b@smtpcell.test>\r\nDATA\r\n";

#[test]
fn greeting_and_ehlo_bytes() {
    let seen = whole(b"EHLO client.example\r\n");
    assert_eq!(
        String::from_utf8(seen.output).unwrap(),
        "220 smtpcell.test ESMTP smtpcell\r\n250-smtpcell.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
         250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-BINARYMIME\r\n\
         250-DSN\r\n250 HELP\r\n"
    );
}

#[test]
fn smuggling_table() {
    // Each sequence sits between "hello" and a pipelined MAIL FROM, then the
    // real end follows. None may end DATA early or begin a second message;
    // all make the message fail (see dot.rs), so none is stored.
    let sequences: [&[u8]; 10] = [
        b"\n.\n",
        b"\r\n.\n",
        b"\n.\r\n",
        b"\r.\r\n",
        b"\r\n.\r\r\n",
        b"\r\n.\r",
        b"\r\n\0.\r\n",
        b"\r\n.\0\r\n",
        b"\r\n.\r\0\n",
        b"\r.\r",
    ];
    for seq in sequences {
        let mut input = PRELUDE.to_vec();
        input.extend_from_slice(b"hello");
        input.extend_from_slice(seq);
        input.extend_from_slice(b"MAIL FROM:<x@y>\r\nRCPT TO:<b@smtpcell.test>\r\nDATA\r\nsmuggled\r\n.\r\nNOOP\r\n");
        for cut in 0..=input.len() {
            let seen = drive(config(), &[&input[..cut], &input[cut..]], &[]);
            assert_eq!((seen.begins, seen.ends, seen.aborts), (1, 0, 1), "{seq:?} cut at {cut}");
            let text = String::from_utf8_lossy(&seen.output);
            assert!(
                text.ends_with("554 5.6.0 Error: bare CR or LF in message content\r\n250 2.0.0 Ok\r\n")
                    || text.ends_with("554 5.6.0 Error: NUL in message content\r\n250 2.0.0 Ok\r\n"),
                "{seq:?}: {text}"
            );
            assert_eq!(text.matches("2.1.0").count(), 1, "{seq:?}: the smuggled MAIL ran");
        }
    }
    // The control: a real end followed by the same pipelined commands
    // ends exactly one message, and the pipelined MAIL does run.
    let mut input = PRELUDE.to_vec();
    input.extend_from_slice(b"hello\r\n.\r\nMAIL FROM:<x@y>\r\n");
    let seen = whole(&input);
    assert_eq!((seen.begins, seen.ends, seen.aborts), (1, 1, 0));
    assert_eq!(seen.stored, vec![b"hello\r\n".to_vec()]);
    assert!(seen.output.ends_with(b"250 2.0.0 Ok: queued as id\r\n250 2.1.0 Ok\r\n"));
}

#[test]
fn replies_of_one_call_are_one_send_and_content_one_chunk() {
    let mut session = Session::new(config(), peer());
    session.greeting();
    let actions =
        session.feed(b"HELO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nline 1\r\n..line 2\r\nline 3\r\n");
    assert!(matches!(actions.as_slice(), [Action::Send(_), Action::MessageBegin(_), Action::MessageData(_)]));
    assert_eq!(actions[2], Action::MessageData(b"line 1\r\n.line 2\r\nline 3\r\n".to_vec()));
    let actions = session.feed(b".\r\nNOOP\r\nNOOP\r\n");
    assert_eq!(actions, vec![Action::Ask(Question::MessageEnd)]);
    // The host must not feed now; answer() replies and runs the stash.
    assert_eq!(
        session.answer(Answer::Accept(Some("Q9".into()))),
        vec![Action::Send(b"250 2.0.0 Ok: queued as Q9\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n".to_vec())]
    );
    assert_eq!(session.answer(Answer::Accept(Some("again".into()))), vec![], "no question pending");
}

#[test]
fn envelope_records_everything_mail_and_rcpt_said() {
    let seen = whole(
        b"EHLO client.example\r\nMAIL FROM:<a@client.example> SIZE=100 BODY=8BITMIME RET=FULL ENVID=abc\r\n\
          RCPT TO:<b@smtpcell.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40smtpcell.test\r\nRCPT TO:<Postmaster>\r\nDATA\r\n.\r\n",
    );
    assert_eq!(
        seen.envelopes,
        vec![Envelope {
            helo: "client.example".into(),
            reverse_path: "a@client.example".into(),
            recipients: vec![
                Recipient {
                    address: "b@smtpcell.test".into(),
                    notify: Some("SUCCESS,DELAY".into()),
                    orcpt: Some("rfc822;b+40smtpcell.test".into()),
                },
                Recipient { address: "Postmaster".into(), notify: None, orcpt: None },
            ],
            protocol: "ESMTP".into(),
            body: BodyType::EightBitMime,
            smtputf8: false,
            declared_size: Some(100),
            dsn_return: Some(DsnReturn::Full),
            dsn_envid: Some("abc".into()),
            tls: None,
            authenticated: None,
        }]
    );
    let helo = whole(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@d>\r\nDATA\r\n.\r\n");
    assert_eq!((helo.envelopes[0].protocol.as_str(), helo.envelopes[0].reverse_path.as_str()), ("SMTP", ""));
    let utf8 = whole("EHLO c\r\nMAIL FROM:<ü@d> SMTPUTF8\r\nRCPT TO:<b@d>\r\nBDAT 0 LAST\r\n".as_bytes());
    assert_eq!(utf8.envelopes[0].protocol, "UTF8SMTP");
    assert!(utf8.envelopes[0].smtputf8);
}

#[test]
fn starttls_discards_pipelined_plaintext_and_resets() {
    let mut config = config();
    config.extensions.starttls = true;
    let mut session = Session::new(config, peer());
    session.greeting();
    let ehlo = session.feed(b"EHLO a\r\n");
    assert!(matches!(&ehlo[..], [Action::Send(b)] if b.ends_with(b"250 STARTTLS\r\n")));
    assert_eq!(
        session.feed(b"MAIL FROM:<a@b>\r\nSTARTTLS now\r\n")[0],
        Action::Send(b"250 2.1.0 Ok\r\n501 5.5.4 Syntax: no parameters allowed\r\n".to_vec())
    );
    assert_eq!(
        session.feed(b"STARTTLS\r\n"),
        vec![Action::Send(b"503 5.5.1 Error: MAIL transaction in progress\r\n".to_vec())]
    );
    session.feed(b"RSET\r\n");
    // CVE-2011-0411: the MAIL pipelined behind STARTTLS must not survive.
    assert_eq!(
        session.feed(b"STARTTLS\r\nMAIL FROM:<injected@evil>\r\n"),
        vec![Action::Send(b"220 2.0.0 Ready to start TLS\r\n".to_vec()), Action::StartTls]
    );
    assert_eq!(session.feed(b"NOOP\r\n"), vec![], "nothing is read before the handshake");
    assert_eq!(session.tls_started(tls()), vec![]);
    assert_eq!(
        session.feed(b"MAIL FROM:<a@b>\r\n"),
        vec![Action::Send(b"503 5.5.1 Error: send HELO/EHLO first\r\n".to_vec())]
    );
    let ehlo = session.feed(b"EHLO a\r\n");
    assert!(matches!(&ehlo[..], [Action::Send(b)] if b.ends_with(b"250 HELP\r\n")), "STARTTLS no longer offered");
    let actions = session.feed(b"STARTTLS\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    assert_eq!(actions[0], Action::Send(b"503 5.5.1 Error: TLS already active\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n".to_vec()));
    assert!(matches!(&actions[1], Action::MessageBegin(e) if e.protocol == "ESMTPS"));
}

/// RFC 4954 section 5: with AUTH offered, MAIL may carry `AUTH=`, which is
/// accepted and recorded nowhere, and its line may be 500 octets longer.
#[test]
fn mail_auth_parameter_earns_500_octets_and_is_not_recorded() {
    let mut with_auth = config();
    with_auth.auth_mechanisms.plain = true;
    // The longest MAIL line: 512 + SIZE 26 + BODY 16 + SMTPUTF8 10 + DSN 116
    // + AUTH 500 = 1180 octets with CR LF, however its parameters share it.
    let fixed = "MAIL FROM:<a@client.example> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=e AUTH=\r\n";
    let mail = |len: usize| fixed.replace("AUTH=", &format!("AUTH={}", "x".repeat(len - fixed.len())));
    assert_eq!(mail(smtp_core::LONGEST_COMMAND_LINE).len(), 1180);
    let session = |config: &Config, mail: &str| {
        let seen =
            drive(config.clone(), &[format!("EHLO c\r\n{mail}RCPT TO:<b@d>\r\nBDAT 1 LAST\r\nx").as_bytes()], &[]);
        let replies = String::from_utf8(seen.output).unwrap();
        // The reply to MAIL, after the greeting and the 10 lines of EHLO.
        (replies.lines().nth(11).unwrap_or_default().to_string(), seen.envelopes)
    };
    let (reply, envelopes) = session(&with_auth, &mail(1180));
    assert_eq!(reply, "250 2.1.0 Ok");
    assert_eq!(envelopes[0].authenticated, None, "AUTH= names nobody the session authenticated");
    assert_eq!(session(&with_auth, &mail(1181)).0, "500 5.5.6 Error: line too long");
    assert_eq!(session(&with_auth, "MAIL FROM:<a@b> AUTH=<>\r\n").0, "250 2.1.0 Ok");
    assert_eq!(session(&with_auth, "MAIL FROM:<a@b> AUTH=a+2\r\n").0, "501 5.5.4 Bad parameter syntax");
    // Without AUTH: an unknown parameter, and no extra octets.
    assert_eq!(session(&config(), "MAIL FROM:<a@b> AUTH=<>\r\n").0, "555 5.5.4 Unsupported parameter");
    let without = "MAIL FROM:<a@b> SIZE=1000 X=".to_string() + &"x".repeat(700) + "\r\n";
    assert_eq!(session(&config(), &without).0, "500 5.5.6 Error: line too long");
}

#[test]
fn timeout_and_shutdown_close_and_abort_open_messages() {
    let mut session = Session::new(config(), peer());
    session.greeting();
    session.feed(b"HELO a\r\n");
    assert_eq!(
        session.timeout(),
        vec![Action::Send(b"421 4.4.2 smtpcell.test Error: timeout exceeded\r\n".to_vec()), Action::Close]
    );
    assert_eq!(session.feed(b"NOOP\r\n"), vec![]);
    assert_eq!(session.shutdown(), vec![]);

    let mut session = Session::new(config(), peer());
    session.greeting();
    session.feed(b"HELO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\npartial");
    assert_eq!(
        session.shutdown(),
        vec![
            Action::MessageAbort,
            Action::Send(b"421 4.3.2 smtpcell.test Service shutting down\r\n".to_vec()),
            Action::Close
        ]
    );

    let mut session = Session::new(config(), peer());
    session.feed(b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 3\r\nabc");
    assert_eq!(session.timeout()[0], Action::MessageAbort);
}

#[test]
fn hostname_cannot_inject_replies() {
    let config = Config { hostname: "evil\r\n250 ok".to_string(), ..Config::default() };
    let seen = drive(config, &[], &[]);
    assert_eq!(seen.output, b"220 evil250ok ESMTP smtpcell\r\n");
}

#[test]
fn recipients_stay_bounded() {
    let mut input = b"HELO a\r\nMAIL FROM:<a@b>\r\n".to_vec();
    for i in 0..5000 {
        input.extend_from_slice(format!("RCPT TO:<r{i}@example.org>\r\n").as_bytes());
    }
    input.extend_from_slice(b"DATA\r\n.\r\n");
    let seen = whole(&input);
    assert_eq!(seen.envelopes[0].recipients.len(), 100);
    let refused = String::from_utf8(seen.output).unwrap().matches("452 4.5.3").count();
    assert_eq!(refused, 4900);
}

#[test]
fn endless_input_without_line_breaks_costs_one_reply() {
    let junk = vec![b'x'; 1 << 20];
    let mut session = Session::new(config(), peer());
    session.greeting();
    let first = session.feed(&junk);
    assert_eq!(first, vec![Action::Send(b"500 5.5.6 Error: line too long\r\n".to_vec())]);
    for _ in 0..10 {
        assert_eq!(session.feed(&junk), vec![]);
    }
    assert!(format!("{session:?}").len() < 4096, "the session grew");
    assert_eq!(session.feed(b"\r\nNOOP\r\n"), vec![Action::Send(b"250 2.0.0 Ok\r\n".to_vec())]);
}

#[test]
fn info_reports_contract() {
    let info = info();
    assert_eq!((info.name, info.contract), ("smtpcell-guest", "smtp:session@3.0.0"));
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.capabilities[0], "PIPELINING");
}

/// Pieces a hostile or sloppy client might send, in any order.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"EHLO c\r\n".to_vec()),
        Just(b"HELO c\r\n".to_vec()),
        Just(b"MAIL FROM:<a@b>\r\n".to_vec()),
        Just(b"MAIL FROM:<a@b> BODY=BINARYMIME\r\n".to_vec()),
        Just(b"RCPT TO:<c@d>\r\n".to_vec()),
        Just(b"DATA\r\n".to_vec()),
        Just(b"BDAT 3\r\n".to_vec()),
        Just(b"BDAT 2 LAST\r\n".to_vec()),
        Just(b"BDAT 0 LAST\r\n".to_vec()),
        Just(b"RSET\r\n".to_vec()),
        Just(b"NOOP\r\n".to_vec()),
        Just(b".\r\n".to_vec()),
        Just(b"..x\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b".".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"body text ".to_vec()),
        Just(vec![b'y'; 300]),
        Just(b"QUIT\r\n".to_vec()),
    ]
}

/// Any answer to any question: accept (with or without text) or any
/// reason, either way.
fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        proptest::option::of("[a-zA-Z0-9$]{0,5}").prop_map(Answer::Accept),
        (0..Reason::ALL.len(), any::<bool>()).prop_map(|(i, permanent)| Answer::refuse(Reason::ALL[i], permanent)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_split_gives_the_same_session(
        tokens in proptest::collection::vec(token(), 0..40),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..6),
        verdicts in proptest::collection::vec(answer(), 0..6),
        asked in any::<[bool; 4]>(),
        small in any::<bool>(),
        transaction in any::<bool>(),
    ) {
        // Often start inside a transaction so that content phases are reached.
        let prefix: &[u8] = if transaction { b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n" } else { b"" };
        let input = [prefix, &tokens.concat()].concat();
        let config = if small {
            // Small limits make size and line failures reachable.
            Config { max_message_size: 40, max_recipients: 2, ..config() }
        } else {
            config()
        };
        let mut config = config;
        config.questions = smtp_core::Questions { connect: asked[0], helo: asked[1], mail: asked[2], rcpt: asked[3] };
        let pieces = split(&input, &cuts);
        let expected = drive(config.clone(), &[&input], &verdicts);
        prop_assert_eq!(&drive(config.clone(), &pieces, &verdicts), &expected);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(drive(config, &bytes, &verdicts), expected);
    }
}

proptest! {
    /// dot.rs proves the decoder un-stuffs; this proves the session around
    /// it does too: any text lines, dot-stuffed behind DATA and split
    /// anywhere, are stored exactly, and the same bytes sent as BDAT
    /// chunks are stored literally (no un-stuffing).
    #[test]
    fn content_round_trips_through_the_session(
        lines in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![Just(b'.'), Just(b' '), 1u8..=255u8]
                .prop_filter("text bytes", |b| !matches!(b, b'\r' | b'\n')), 0..30),
            0..10,
        ),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..5),
        chunk_cut in any::<proptest::sample::Index>(),
    ) {
        let mut content = Vec::new();
        let mut stuffed = Vec::new();
        for line in &lines {
            if line.first() == Some(&b'.') {
                stuffed.push(b'.');
            }
            stuffed.extend_from_slice(line);
            stuffed.extend_from_slice(b"\r\n");
            content.extend_from_slice(line);
            content.extend_from_slice(b"\r\n");
        }
        let mut input = PRELUDE.to_vec();
        input.extend_from_slice(&stuffed);
        input.extend_from_slice(b".\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<b@smtpcell.test>\r\n");
        let (first, second) = content.split_at(chunk_cut.index(content.len() + 1));
        input.extend_from_slice(format!("BDAT {}\r\n", first.len()).as_bytes());
        input.extend_from_slice(first);
        input.extend_from_slice(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
        input.extend_from_slice(second);
        let seen = drive(config(), &split(&input, &cuts), &[]);
        // Lines with NUL are refused by DATA (554); BDAT takes any byte.
        let data_ok = !content.contains(&0);
        let mut expected = Vec::new();
        if data_ok {
            expected.push(content.clone());
        }
        expected.push(content);
        prop_assert_eq!(seen.stored, expected);
    }
}
