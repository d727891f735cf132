//! smtpcell is not an open relay (issue 14, "Relay control"): the usual
//! open-relay probes from an unauthenticated outsider over a real socket.
//! Every one is refused at RCPT, with 550 5.1.1 when it parses as an
//! unknown user at a local domain, 550 5.7.1 when its domain is another,
//! 501 when it is not a forward-path at all; those that name a local user
//! reach only that user's Maildir, and nothing ever reaches the outgoing
//! Maildir. A configuration without `domains` is closed to everyone.

use smtpcell_tests::configured::ConfiguredServer;
use smtpcell_tests::session::{greeted, loopback, status};
use smtpcell_tests::stored::copies;

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
hostname = "mx.example.org"
maildir = "{dir}/inbox"
mailboxes = "{dir}/vmail"
outgoing = "{dir}/outgoing"
domains = ["example.org"]
recipients = "{dir}/recipients"
"#;

const RECIPIENTS: &str = "\
alice@example.org       alice@example.org
postmaster@example.org  alice@example.org
";

const OUTSIDER: u8 = 3;

/// What follows `RCPT TO:` in each probe, and the status it must get.
const REFUSED: &[(&str, &str)] = &[
    // The percent hack: the local part of a local address, unknown.
    ("<user%other.example@example.org>", "550 5.1.1"),
    ("<alice%other.example@example.org>", "550 5.1.1"),
    ("<user%other.example@[127.0.0.1]>", "550 5.7.1"),
    // Source routes are dropped (RFC 5321 section 4.1.1.3 and appendix C):
    // what is left is the final mailbox.
    ("<@example.org,@other.example:user@other.example>", "550 5.7.1"),
    ("<@example.org:user@other.example>", "550 5.7.1"),
    ("<@other.example:user@example.org>", "550 5.1.1"),
    // A quoted local part holding an address.
    ("<\"user@other.example\"@example.org>", "550 5.1.1"),
    ("<\"user%other.example\"@example.org>", "550 5.1.1"),
    // Bang paths (UUCP).
    ("<other.example!user@example.org>", "550 5.1.1"),
    ("<other.example!alice@example.org>", "550 5.1.1"),
    // Address literals, our own address included: not in `domains`.
    ("<user@[192.0.2.1]>", "550 5.7.1"),
    ("<user@[127.0.0.1]>", "550 5.7.1"),
    ("<alice@[127.0.0.1]>", "550 5.7.1"),
    ("<user@[IPv6:::1]>", "550 5.7.1"),
    // Trailing dots are not in the RFC 5321 grammar.
    ("<user@other.example.>", "501 5.1.3"),
    ("<user@example.org.>", "501 5.1.3"),
    ("<alice@example.org.>", "501 5.1.3"),
    // Case does not make a domain ours, nor another domain's postmaster.
    ("<USER@OTHER.EXAMPLE>", "550 5.7.1"),
    ("<postmaster@other.example>", "550 5.7.1"),
    // Our host name is not one of our mail domains.
    ("<user@mx.example.org>", "550 5.7.1"),
    ("<user@localhost>", "550 5.7.1"),
    // A subdomain of ours, and ours as a suffix of another.
    ("<user@sub.example.org>", "550 5.7.1"),
    ("<user@notexample.org>", "550 5.7.1"),
    ("<user@example.org.other.example>", "550 5.7.1"),
    // Empty and odd forms.
    ("<>", "501 5.1.3"),
    ("<user>", "501 5.1.3"),
    ("<user@>", "501 5.1.3"),
    ("<@example.org>", "501 5.1.3"),
    ("<@other.example:>", "501 5.1.3"),
    ("<user@other.example@example.org>", "501 5.1.3"),
    ("<user@example.org@other.example>", "501 5.1.3"),
    ("<user@other.example%example.org>", "501 5.1.3"),
    ("<\"\"@other.example>", "550 5.7.1"),
    ("<\"\"@example.org>", "550 5.1.1"),
];

/// Probes that name a local mailbox: delivered there, never relayed.
const LOCAL: &[&str] = &[
    // The source route is dropped: the mailbox is ours.
    "<@other.example:alice@example.org>",
    // RFC 5321 section 4.5.1: `postmaster` without a domain is always ours.
    "<postmaster>",
    "<Postmaster@EXAMPLE.ORG>",
];

/// One probe on a fresh connection from `source`: MAIL, then RCPT TO:`probe`;
/// the RCPT reply, and, when accepted, the reply to a one-line message.
fn probe(server: &ConfiguredServer, source: u8, probe: &str) -> (String, Option<String>) {
    let mut c = greeted(server.addr, loopback(source)).unwrap();
    assert!(c.command("MAIL FROM:<prober@client.test>").unwrap().starts_with("250"));
    let rcpt = c.command(&format!("RCPT TO:{probe}")).unwrap();
    let data = c.command("DATA").unwrap();
    let queued = if data.starts_with("354") {
        Some(c.command(&format!("Subject: {probe}\r\n\r\nprobe\r\n.")).unwrap())
    } else {
        // No recipient: no message (RFC 5321 section 3.3: 554 or 503).
        assert!(data.starts_with("554 ") || data.starts_with("503 "), "{probe}: DATA answered {data:?}");
        None
    };
    assert!(c.command("QUIT").unwrap().starts_with("221"));
    (rcpt, queued)
}

#[test]
fn open_relay_probes_from_an_outsider_are_all_refused() {
    let server = ConfiguredServer::start(CONFIG, &[("recipients", RECIPIENTS)]).unwrap();
    let mut wrong = Vec::new();
    for (forward_path, want) in REFUSED {
        let (rcpt, queued) = probe(&server, OUTSIDER, forward_path);
        if status(&rcpt) != *want || queued.is_some() {
            wrong.push(format!("{forward_path}: {rcpt:?} (expected {want}), message {queued:?}"));
        }
    }
    for forward_path in LOCAL {
        let (rcpt, queued) = probe(&server, OUTSIDER, forward_path);
        if status(&rcpt) != "250 2.1.5" || !queued.as_deref().is_some_and(|q| q.starts_with("250 2.0.0")) {
            wrong.push(format!("{forward_path}: {rcpt:?}, message {queued:?} (expected local delivery)"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // Only the local probes were stored, each in alice's Maildir (the
    // postmaster alias is hers); the outgoing Maildir and the inbox hold
    // nothing.
    let stored = copies(server.dir()).unwrap();
    let mut subjects: Vec<&str> = stored.iter().map(|c| c.subject().unwrap()).collect();
    subjects.sort();
    let mut local = LOCAL.to_vec();
    local.sort();
    assert_eq!(subjects, local, "{stored:#?}");
    assert!(stored.iter().all(|c| c.maildir == "vmail/example.org/alice"), "{stored:#?}");
    assert!(server.dir().join("outgoing/new").is_dir(), "the outgoing Maildir exists");
    assert!(server.delivered("outgoing").is_empty());
}

/// A probe refused for relay counts as a refused recipient, so a prober
/// cannot go through the list on one connection: the harvest limit ends
/// the session (10 by default).
#[test]
fn a_prober_on_one_connection_is_cut_off_by_the_harvest_limit() {
    let server = ConfiguredServer::start(CONFIG, &[("recipients", RECIPIENTS)]).unwrap();
    let mut c = greeted(server.addr, loopback(OUTSIDER)).unwrap();
    assert!(c.command("MAIL FROM:<prober@client.test>").unwrap().starts_with("250"));
    let relay: Vec<&str> = REFUSED.iter().filter(|(_, want)| *want == "550 5.7.1").map(|(p, _)| *p).collect();
    assert!(relay.len() > 10);
    for forward_path in &relay[..10] {
        assert_eq!(status(&c.command(&format!("RCPT TO:{forward_path}")).unwrap()), "550 5.7.1", "{forward_path}");
    }
    let cut = c.command(&format!("RCPT TO:{}", relay[10])).unwrap();
    assert!(cut.starts_with("421 4.7.0 mx.example.org "), "{cut:?}");
    assert_eq!(c.read_to_close().unwrap(), "");
    assert!(server.delivered("outgoing").is_empty());
}

/// With a configuration file, relaying is closed until configured: no
/// `domains`, no `relay_networks`, no users: every recipient at any domain
/// is refused for relay, from any address, loopback included. The bare
/// `postmaster` of RFC 5321 section 4.5.1 stays ours (the inbox).
#[test]
fn a_configuration_without_domains_relays_for_nobody() {
    let config = r#"
listen = "127.0.0.1:0"
maildir = "{dir}/inbox"
outgoing = "{dir}/outgoing"
"#;
    let server = ConfiguredServer::start(config, &[]).unwrap();
    let mut wrong = Vec::new();
    for source in [1, OUTSIDER] {
        for forward_path in [
            "<user@example.org>",
            "<user@other.example>",
            "<postmaster@smtpcell.test>",
            "<user@[127.0.0.1]>",
            "<USER@LOCALHOST>",
        ] {
            let (rcpt, queued) = probe(&server, source, forward_path);
            if status(&rcpt) != "550 5.7.1" || queued.is_some() {
                wrong.push(format!("from 127.0.0.{source} {forward_path}: {rcpt:?}, message {queued:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let (rcpt, queued) = probe(&server, OUTSIDER, "<postmaster>");
    assert_eq!(status(&rcpt), "250 2.1.5");
    assert!(queued.unwrap().starts_with("250 2.0.0"));
    assert!(server.delivered("outgoing").is_empty());
    let stored = copies(server.dir()).unwrap();
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0].maildir, "inbox");
    assert_eq!(stored[0].fields("X-Envelope-To"), ["<postmaster>"]);
}
