//! Limits on what one client may try (issue 14), over real sockets into a
//! server configured from a file: directory harvesting (a session that
//! has had its fill of refused recipients is ended).

use smtpcell_tests::configured::ConfiguredServer;
use smtpcell_tests::session::{greeted, loopback, status, transaction};
use smtpcell_tests::stored::copies;

const HARVEST: &str = r#"
listen = "127.0.0.1:0"
hostname = "mx.example.org"
maildir = "{dir}/inbox"
mailboxes = "{dir}/vmail"
outgoing = "{dir}/outgoing"
domains = ["example.org"]
recipients = "{dir}/recipients"
max_refused_recipients = 3
"#;

const RECIPIENTS: &str = "alice@example.org  alice@example.org\n";

const OUTSIDER: u8 = 3;

/// Sends RCPT TO:<forward_path>; the reply's status.
fn rcpt(c: &mut smtpcell_tests::client::RawClient, forward_path: &str) -> String {
    status(&c.command(&format!("RCPT TO:<{forward_path}>")).unwrap()).to_string()
}

/// After 3 refused recipients (unknown users and relay refusals alike) the
/// next RCPT, even for a known user, is answered 421 4.7.0 and the
/// connection closed; the recipients accepted in between do not count, and
/// the transaction they were in is not stored.
#[test]
fn the_rcpt_after_the_third_refused_recipient_ends_the_session() {
    let server = ConfiguredServer::start(HARVEST, &[("recipients", RECIPIENTS)]).unwrap();
    let mut c = greeted(server.addr, loopback(OUTSIDER)).unwrap();
    assert!(c.command("MAIL FROM:<harvester@client.test>").unwrap().starts_with("250"));
    for (forward_path, want) in [
        ("alice@example.org", "250 2.1.5"),
        ("nobody1@example.org", "550 5.1.1"),
        ("alice+a@example.org", "250 2.1.5"),
        ("alice+b@example.org", "250 2.1.5"),
        ("zed@other.example", "550 5.7.1"),
        ("alice+c@example.org", "250 2.1.5"),
        ("alice+d@example.org", "250 2.1.5"),
        ("nobody2@example.org", "550 5.1.1"),
    ] {
        assert_eq!(rcpt(&mut c, forward_path), want, "{forward_path}");
    }
    let cut = c.command("RCPT TO:<alice@example.org>").unwrap();
    assert_eq!(cut, "421 4.7.0 mx.example.org Refused by local policy\r\n");
    assert_eq!(c.read_to_close().unwrap(), "", "closed after the 421");
    assert!(copies(server.dir()).unwrap().is_empty());

    // A new session starts afresh.
    let mut c = greeted(server.addr, loopback(OUTSIDER)).unwrap();
    let t = transaction(
        &mut c,
        "harvester@client.test",
        &["nobody@example.org", "alice@example.org"],
        "Subject: fresh\r\n\r\nx",
    )
    .unwrap();
    assert_eq!(t.rcpt.iter().map(|r| status(r)).collect::<Vec<_>>(), ["550 5.1.1", "250 2.1.5"]);
    assert!(t.queued(), "{t:?}");
}

/// Refusals add up over the whole session, across transactions: a
/// message queued in between is stored, and the session still ends at
/// the RCPT after the third refusal.
#[test]
fn refused_recipients_add_up_across_transactions() {
    let server = ConfiguredServer::start(HARVEST, &[("recipients", RECIPIENTS)]).unwrap();
    let mut c = greeted(server.addr, loopback(OUTSIDER)).unwrap();
    let first = transaction(
        &mut c,
        "harvester@client.test",
        &["nobody1@example.org", "alice@example.org"],
        "Subject: one\r\n\r\nx",
    )
    .unwrap();
    assert!(first.queued(), "{first:?}");
    let second = transaction(
        &mut c,
        "harvester@client.test",
        &["nobody2@example.org", "zed@other.example"],
        "Subject: two\r\n\r\nx",
    )
    .unwrap();
    assert_eq!(second.rcpt.iter().map(|r| status(r)).collect::<Vec<_>>(), ["550 5.1.1", "550 5.7.1"]);
    assert!(c.command("MAIL FROM:<harvester@client.test>").unwrap().starts_with("250"));
    let cut = c.command("RCPT TO:<alice@example.org>").unwrap();
    assert!(cut.starts_with("421 4.7.0 mx.example.org "), "{cut:?}");
    assert_eq!(c.read_to_close().unwrap(), "");
    let stored = copies(server.dir()).unwrap();
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!((stored[0].maildir.as_str(), stored[0].subject()), ("vmail/example.org/alice", Some("one")));
}

/// Only unknown users and relay refusals count: forward-paths that are not
/// addresses at all (501) do not.
#[test]
fn syntax_errors_are_not_refused_recipients() {
    let server = ConfiguredServer::start(HARVEST, &[("recipients", RECIPIENTS)]).unwrap();
    let mut c = greeted(server.addr, loopback(OUTSIDER)).unwrap();
    assert!(c.command("MAIL FROM:<harvester@client.test>").unwrap().starts_with("250"));
    for _ in 0..5 {
        assert_eq!(status(&c.command("RCPT TO:<user@>").unwrap()), "501 5.1.3");
    }
    assert_eq!(rcpt(&mut c, "nobody1@example.org"), "550 5.1.1");
    assert_eq!(rcpt(&mut c, "nobody2@example.org"), "550 5.1.1");
    assert_eq!(rcpt(&mut c, "alice@example.org"), "250 2.1.5");
    assert_eq!(rcpt(&mut c, "nobody3@example.org"), "550 5.1.1");
    assert!(c.command("RCPT TO:<alice@example.org>").unwrap().starts_with("421 4.7.0 "));
}
