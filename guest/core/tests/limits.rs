//! The contract's quantitative promises through the public API: the reply
//! bound per call (`smtp_core::max_reply_octets`), one reply per pipelined
//! command, the protocol error limit, and when a failed message is aborted.

mod common;

use common::split;
use proptest::prelude::*;
use smtp_core::{
    Action, Config, MAX_PROTOCOL_ERRORS, MAX_REPLY_OCTETS_PER_CALL_FIXED, PeerInfo, Question, Session, max_reply_octets,
};

fn config() -> Config {
    Config { hostname: "smtpcell.test".to_string(), ..Config::default() }
}

fn session(config: Config) -> Session {
    Session::new(config, PeerInfo { ip: "192.0.2.1".to_string(), port: 40000 })
}

fn sent(actions: &[Action]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(bytes) => Some(bytes.as_slice()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat()
}

/// Runs `pieces` one `feed` each, answering every question at once,
/// and asserts the reply bound on every call. Returns all replies.
fn bounded_run(config: Config, pieces: &[&[u8]]) -> Vec<u8> {
    let mut session = session(config);
    let greeting = session.greeting();
    let mut output = sent(&greeting);
    assert!(output.len() <= MAX_REPLY_OCTETS_PER_CALL_FIXED, "greeting of {} octets", output.len());
    for piece in pieces {
        let mut actions = session.feed(piece);
        let mut replies = sent(&actions);
        assert!(
            replies.len() <= max_reply_octets(piece.len()),
            "{} octets for {} of input",
            replies.len(),
            piece.len()
        );
        output.extend_from_slice(&replies);
        while let Some(Action::Ask(question)) = actions.last() {
            // `answer` processes at most what the feed that asked brought.
            let answer = match question {
                Question::MessageEnd => smtp_core::Answer::Accept(Some("Q1".to_string())),
                _ => smtp_core::Answer::ACCEPT,
            };
            actions = session.answer(answer);
            replies = sent(&actions);
            assert!(replies.len() <= max_reply_octets(piece.len()), "answer: {} octets", replies.len());
            output.extend_from_slice(&replies);
        }
        if actions.last() == Some(&Action::Close) {
            return output;
        }
    }
    let timeout = sent(&session.timeout());
    assert!(timeout.len() <= MAX_REPLY_OCTETS_PER_CALL_FIXED);
    output.extend_from_slice(&timeout);
    output
}

/// The most expensive configuration: every extension, STARTTLS included,
/// and the longest hostname a reply can carry.
fn widest() -> Config {
    let mut config = Config { hostname: "h".repeat(400), max_message_size: u64::MAX, ..Config::default() };
    config.extensions.starttls = true;
    config.auth_mechanisms = smtp_core::AuthMechanisms { plain: true, login: true };
    config.auth_without_tls = true;
    config
}

/// The shortest input that triggers each reply, and a few longer ones.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"x\n".to_vec()),
        Just(b"\0\r\n".to_vec()),
        Just(b"EHLO a\r\n".to_vec()),
        Just(b"HELO a\r\n".to_vec()),
        Just(b"HELP\r\n".to_vec()),
        Just(b"VRFY a\r\n".to_vec()),
        Just(b"EXPN\r\n".to_vec()),
        Just(b"AUTH\r\n".to_vec()),
        Just(b"NOOP\r\n".to_vec()),
        Just(b"RSET\r\n".to_vec()),
        Just(b"DATA\r\n".to_vec()),
        Just(b"BDAT 0\r\n".to_vec()),
        Just(b"BDAT 1\r\n".to_vec()),
        Just(b"BDAT 0 LAST\r\n".to_vec()),
        Just(b"BDAT 18446744073709551615\r\n".to_vec()),
        Just(b"STARTTLS\r\n".to_vec()),
        Just(b"MAIL FROM:<>\r\n".to_vec()),
        Just(b"MAIL FROM:<\xc3\xa9@b>\r\n".to_vec()),
        Just(b"MAIL FROM:<a@b> SIZE=99999999999999999999999\r\n".to_vec()),
        Just(b"RCPT TO:<c@d>\r\n".to_vec()),
        Just(b".\r\n".to_vec()),
        Just(b"a\nb\r\n".to_vec()),
        Just(vec![b'y'; 600]),
        Just(b"QUIT\r\n".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn replies_stay_within_the_contract_bound(
        tokens in proptest::collection::vec(token(), 0..60),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
        wide in any::<bool>(),
    ) {
        let input = tokens.concat();
        let mut config = if wide { widest() } else { config() };
        // Every step asked (and accepted): answers process parked input.
        config.questions = smtp_core::Questions { connect: wide, helo: wide, mail: wide, rcpt: wide };
        bounded_run(config.clone(), &split(&input, &cuts));
        bounded_run(config, &input.chunks(1).collect::<Vec<_>>());
    }
}

#[test]
fn the_longest_replies_fit_their_shortest_input() {
    let mut ehlo = session(widest());
    ehlo.greeting();
    let reply = sent(&ehlo.feed(b"EHLO a\r\n"));
    assert!(reply.len() <= 64 * 8, "EHLO reply of {} octets", reply.len());
    assert!(reply.starts_with(format!("250-{}\r\n", "h".repeat(255)).as_bytes()));
    let mut bare = session(widest());
    bare.greeting();
    assert!(sent(&bare.feed(b"\n")).len() <= 64);
}

#[test]
fn the_hostname_in_replies_is_at_most_255_octets() {
    let mut session = session(widest());
    let greeting = sent(&session.greeting());
    assert_eq!(greeting, format!("220 {} ESMTP smtpcell\r\n", "h".repeat(255)).into_bytes());
}

#[test]
fn six_thousand_pipelined_ehlo_are_all_answered_in_one_call() {
    let input = b"EHLO a\r\n".repeat(6899);
    let mut session = session(config());
    session.greeting();
    let replies = sent(&session.feed(&input));
    assert!(replies.len() <= max_reply_octets(input.len()));
    let text = String::from_utf8(replies).unwrap();
    assert_eq!(text.matches("250 HELP\r\n").count(), 6899);
}

#[test]
fn twenty_protocol_errors_close_the_session() {
    let input = b"\r\n".repeat(25_576);
    let actions = {
        let mut session = session(config());
        session.greeting();
        session.feed(&input)
    };
    let mut expected = "500 5.5.2 Error: command not recognized\r\n".repeat(MAX_PROTOCOL_ERRORS as usize);
    expected += "421 4.7.0 smtpcell.test Too many errors, closing connection\r\n";
    assert_eq!(actions, [Action::Send(expected.into_bytes()), Action::Close]);
    // Errors add up across calls, and good commands do not reset them.
    let mut session = session(config());
    session.greeting();
    for _ in 0..19 {
        assert_eq!(session.feed(b"FOO\r\nNOOP\r\n").len(), 1);
    }
    let last = session.feed(b"FOO\r\n");
    assert_eq!(last.last(), Some(&Action::Close));
}

#[test]
fn the_error_limit_aborts_an_open_message_first() {
    let mut session = session(config());
    session.greeting();
    session.feed(b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 1\r\nx");
    let actions = session.feed(&b"DATA\r\n".repeat(20));
    let refused = "503 5.5.1 Error: DATA not allowed in a BDAT transaction\r\n".repeat(20);
    let closing = "421 4.7.0 smtpcell.test Too many errors, closing connection\r\n";
    assert_eq!(
        actions,
        [
            Action::Send(refused.into_bytes()),
            Action::MessageAbort,
            Action::Send(closing.as_bytes().to_vec()),
            Action::Close
        ]
    );
}

/// The field report: a message doomed by a bare LF, then silence. The
/// message stays open (the host keeps its data timeout) and no content of
/// it reaches the host after the failure.
#[test]
fn a_failed_data_message_stays_open_until_its_end() {
    let mut session = session(config());
    session.greeting();
    let begun = session.feed(b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    assert!(matches!(begun[1], Action::MessageBegin(_)));
    let doomed = session.feed(b"Subject: s\r\n\r\nabc\ndef\r\n");
    assert!(doomed.iter().all(|a| !matches!(a, Action::MessageAbort | Action::Send(_))), "{doomed:?}");
    assert_eq!(session.feed(b"more text\r\n"), []);
    let timeout = session.timeout();
    assert_eq!(timeout[0], Action::MessageAbort);
    assert_eq!(timeout.last(), Some(&Action::Close));
    // Had the client finished, the abort would have come with the 554.
    let mut session = self::session(config());
    session.greeting();
    session.feed(b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nabc\ndef\r\n");
    assert_eq!(
        session.feed(b".\r\n"),
        [Action::MessageAbort, Action::Send(b"554 5.6.0 Error: bare CR or LF in message content\r\n".to_vec())]
    );
}

#[test]
fn an_oversized_bdat_chunk_aborts_when_it_is_over() {
    let mut session = session(Config { max_message_size: 4, ..config() });
    session.greeting();
    session.feed(b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 2\r\nab");
    let refused = session.feed(b"BDAT 5\r\nxyz");
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(
        session.feed(b"zy"),
        [Action::MessageAbort, Action::Send(b"552 5.3.4 Message size exceeds fixed maximum message size\r\n".to_vec())]
    );
    // A size beyond u64 is too large, and its chunk is never read as
    // commands.
    let mut session = self::session(config());
    session.greeting();
    session.feed(b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 1\r\nx");
    assert_eq!(session.feed(b"BDAT 99999999999999999999999\r\nQUIT\r\n"), []);
    let timeout = session.timeout();
    assert_eq!(timeout[0], Action::MessageAbort);
}
