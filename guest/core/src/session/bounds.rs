//! The memory bound of the module documentation, held against hostile
//! clients: what a session keeps between calls (the unfinished command
//! line, the stash, the transaction) is measured by heap capacity after
//! each call, not inferred from the code.
//!
//! What one call allocates while it runs (its actions) is proportional to
//! its input and handed to the host; the host bounds it by its read size.

use super::*;
use crate::envelope::{Envelope, Recipient};
use crate::limits::LONGEST_COMMAND_LINE as MAX_COMMAND_LINE;
use crate::question::Question;

const MB: usize = 1 << 20;

fn session(config: Config) -> Session {
    let mut session = Session::new(config, PeerInfo { ip: "192.0.2.1".to_string(), port: 40000 });
    session.greeting();
    session
}

/// Heap bytes the session holds between calls.
fn retained(session: &Session) -> usize {
    let envelope = match &session.phase {
        Phase::ExpectRcpt(txn) | Phase::ExpectContent(txn) => envelope_bytes(&txn.envelope),
        _ => 0,
    };
    session.lines.retained() + session.stash.capacity() + envelope
}

fn envelope_bytes(envelope: &Envelope) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
    let recipients: usize =
        envelope.recipients.iter().map(|r| r.address.capacity() + text(&r.notify) + text(&r.orcpt)).sum();
    envelope.helo.capacity()
        + envelope.reverse_path.capacity()
        + envelope.protocol.capacity()
        + text(&envelope.dsn_envid)
        + envelope.recipients.capacity() * mem::size_of::<Recipient>()
        + recipients
}

/// The most a transaction can hold: every string it keeps comes from one
/// command line, so each recipient costs at most a line plus its record.
fn transaction_bound(max_recipients: usize) -> usize {
    let recipient = MAX_COMMAND_LINE + mem::size_of::<Recipient>();
    // Vec growth may leave up to twice the slots the recipients need.
    3 * MAX_COMMAND_LINE + 2 * max_recipients * recipient
}

fn sent(actions: &[Action]) -> String {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn ten_megabytes_without_a_line_break_keep_less_than_two_command_lines() {
    for piece in [10 * MB, 64 * 1024, 1000, 7] {
        let mut session = session(Config::default());
        let junk = vec![b'x'; piece];
        let mut replies = String::new();
        for _ in 0..(10 * MB / piece) {
            replies += &sent(&session.feed(&junk));
            assert!(retained(&session) < 2 * MAX_COMMAND_LINE, "piece {piece}: {}", retained(&session));
        }
        assert_eq!(replies, "500 5.5.6 Error: line too long\r\n", "piece {piece}");
        assert_eq!(sent(&session.feed(b"\r\nNOOP\r\n")), "250 2.0.0 Ok\r\n");
        assert_eq!(retained(&session), 0);
    }
}

#[test]
fn a_ten_megabyte_data_line_is_dropped_as_it_arrives() {
    let mut session = session(Config::default());
    session.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    let base = retained(&session);
    let junk = vec![b'x'; 64 * 1024];
    // The line limit passes inside the first call, which hands over the
    // 998 octets before it; from there on no content reaches the host, and
    // the message stays open (the client is still sending it) until its end.
    assert_eq!(session.feed(&junk), [Action::MessageData(vec![b'x'; 998])]);
    for _ in 1..(10 * MB / junk.len()) {
        assert_eq!(session.feed(&junk), []);
        assert!(retained(&session) <= base, "{} > {base}", retained(&session));
    }
    assert_eq!(
        session.feed(b"\r\n.\r\n"),
        [Action::MessageAbort, Action::Send(b"552 5.3.4 Message line too long\r\n".to_vec())]
    );
}

#[test]
fn recipients_past_the_limit_cost_nothing() {
    for max_recipients in [1, 100, 1000] {
        let mut session = session(Config { max_recipients, ..Config::default() });
        session.feed(b"EHLO c\r\nMAIL FROM:<a@b>\r\n");
        // Recipients as long as a command line can make them: a 256-octet
        // path, NOTIFY and a 500-character ORCPT.
        let domain = format!("{}.{}.{}.example", "d".repeat(63), "e".repeat(63), "f".repeat(53));
        let orcpt = format!("rfc822;{}", "o".repeat(493));
        let mut refused = 0;
        for i in 0..5000 {
            let local = format!("{i:0>64}");
            let line = format!("RCPT TO:<{local}@{domain}> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT={orcpt}\r\n");
            assert!(line.len() > 800 && line.len() <= MAX_COMMAND_LINE);
            refused += sent(&session.feed(line.as_bytes())).matches("452 4.5.3").count();
            assert!(retained(&session) <= transaction_bound(max_recipients as usize));
        }
        assert_eq!(refused, 5000 - max_recipients as usize);
    }
}

#[test]
fn input_behind_a_question_is_kept_only_until_the_answer() {
    let mut session = session(Config::default());
    let mut input = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\n".to_vec();
    let behind = input.len();
    input.extend(std::iter::repeat_n(b"NOOP\r\n", MB / 6).flatten());
    let actions = session.feed(&input);
    assert_eq!(actions.last(), Some(&Action::Ask(Question::MessageEnd)));
    // The stash holds at most what this one call brought.
    assert!(session.stash.len() <= input.len() - behind);
    let replies = session.answer(Answer::Accept(Some("Q1".to_string())));
    assert_eq!(sent(&replies).matches("250 2.0.0 Ok\r\n").count(), MB / 6);
    assert_eq!(session.stash.capacity(), 0, "the stash outlived the verdict");
    assert_eq!(retained(&session), 0);
}
