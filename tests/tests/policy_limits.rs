//! Limits on what one client may try (issue 14), over real sockets into a
//! server configured from a file: directory harvesting (a session that
//! has had its fill of refused recipients is ended), and the rate limits
//! with the server's fake clock (no test sleeps for a window): each is
//! refused at its step with its code, and recovers once the clock has
//! moved on; exempt networks are never limited. (tests/tests/limits_live.rs
//! covers connections and recipients per minute per client address.)

use std::net::IpAddr;
use std::time::{Duration, Instant};

use smtpcell_tests::client::RawClient;
use smtpcell_tests::configured::ConfiguredServer;
use smtpcell_tests::session::{authenticated, greeted, loopback, loopback_at, plain, status, transaction, users_file};
use smtpcell_tests::stored::copies;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

const RATE_LIMITED: &str = "451 4.7.1 Rate limit exceeded, try again later\r\n";

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

const RECIPIENTS: &str = "alice@example.org  alice@example.org\nbob@example.org    bob@example.org\n";

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
    assert_eq!(cut, "421 4.7.0 mx.example.org Refused by local policy: too many refused recipients\r\n");
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

/// A server whose `[rate_limits]` table is `limits`; users `submitter`
/// and `other` (password `pw`), AUTH over plaintext without a delay.
fn limited(limits: &str) -> ConfiguredServer {
    let config = format!(
        r#"
listen = "127.0.0.1:0"
hostname = "mx.example.org"
maildir = "{{dir}}/inbox"
mailboxes = "{{dir}}/vmail"
outgoing = "{{dir}}/outgoing"
domains = ["example.org"]
recipients = "{{dir}}/recipients"
users = "{{dir}}/users"
allow_plaintext_auth = true
auth_failure_delay_ms = 0

[rate_limits]
{limits}
"#
    );
    let users = users_file(&[("submitter", "pw"), ("other", "pw")]).unwrap();
    ConfiguredServer::start(&config, &[("recipients", RECIPIENTS), ("users", &users)]).unwrap()
}

/// Connects from `source`; the client and its first reply.
fn connect(server: &ConfiguredServer, source: IpAddr) -> (RawClient, String) {
    let mut c = RawClient::connect_from(source, server.addr).unwrap();
    let first = c.reply().unwrap();
    (c, first)
}

/// The host's refusal at the door: one line, then the connection closes.
fn assert_turned_away(server: &ConfiguredServer, source: IpAddr, why: &str) {
    let (mut c, reply) = connect(server, source);
    assert_eq!(reply, format!("421 4.7.0 mx.example.org {why}, try again later\r\n"), "from {source}");
    assert_eq!(c.read_to_close().unwrap(), "", "closed after the 421");
}

#[test]
fn connections_past_the_rate_of_their_address_or_network_are_turned_away_at_the_door() {
    let server = limited("client_connections_per_minute = 2\nnetwork_connections_per_minute = 3\n");
    let mut open = Vec::new();
    for source in [loopback_at(0, 3), loopback_at(0, 3), loopback_at(0, 4)] {
        let (c, greeting) = connect(&server, source);
        assert!(greeting.starts_with("220 "), "{greeting:?}");
        open.push(c);
    }
    assert_turned_away(&server, loopback_at(0, 3), "too many connections from your address");
    assert_turned_away(&server, loopback_at(0, 5), "too many connections from your network");
    // Another /24 is another network.
    assert!(connect(&server, loopback_at(1, 3)).1.starts_with("220 "));
    // Refused connections were not counted: a minute later, all is back.
    server.clock.advance(MINUTE);
    assert!(connect(&server, loopback_at(0, 5)).1.starts_with("220 "));
    assert!(connect(&server, loopback_at(0, 3)).1.starts_with("220 "));
}

#[test]
fn concurrent_connections_are_limited_until_one_ends() {
    let server = limited("client_concurrent_connections = 2\nnetwork_concurrent_connections = 3\n");
    let (mut first, _) = connect(&server, loopback_at(0, 3));
    let (_second, _) = connect(&server, loopback_at(0, 3));
    assert_turned_away(&server, loopback_at(0, 3), "too many concurrent connections from your address");
    let (_third, greeting) = connect(&server, loopback_at(0, 4));
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    assert_turned_away(&server, loopback_at(0, 5), "too many concurrent connections from your network");
    assert!(connect(&server, loopback_at(1, 3)).1.starts_with("220 "), "another network");

    // No clock involved: a connection that ends frees its slot. The server
    // drops it just after closing the socket, so the test polls briefly.
    assert!(first.command("QUIT").unwrap().starts_with("221"));
    assert_eq!(first.read_to_close().unwrap(), "");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_c, greeting) = connect(&server, loopback_at(0, 3));
        if greeting.starts_with("220 ") {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed: {greeting:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// MAIL, then RSET: the MAIL reply.
fn mail(c: &mut RawClient, reverse_path: &str) -> String {
    let reply = c.command(&format!("MAIL FROM:<{reverse_path}>")).unwrap();
    assert!(c.command("RSET").unwrap().starts_with("250"));
    reply
}

#[test]
fn messages_past_the_rate_of_their_address_or_network_are_refused_at_mail() {
    let server = limited("client_messages_per_minute = 2\nnetwork_messages_per_minute = 3\n");
    let mut a = greeted(server.addr, loopback_at(0, 3)).unwrap();
    let mut b = greeted(server.addr, loopback_at(0, 4)).unwrap();
    assert_eq!(status(&mail(&mut a, "s@client.test")), "250 2.1.0");
    assert_eq!(status(&mail(&mut a, "s@client.test")), "250 2.1.0");
    assert_eq!(mail(&mut a, "s@client.test"), RATE_LIMITED);
    // a's refused MAIL was not counted against the network: b has one left.
    assert_eq!(status(&mail(&mut b, "s@client.test")), "250 2.1.0");
    assert_eq!(mail(&mut b, "s@client.test"), RATE_LIMITED);
    // The session goes on after a refusal; a minute later MAIL passes.
    server.clock.advance(MINUTE);
    let t = transaction(&mut a, "s@client.test", &["alice@example.org"], "Subject: later\r\n\r\nx").unwrap();
    assert!(t.queued(), "{t:?}");
    assert_eq!(status(&mail(&mut b, "s@client.test")), "250 2.1.0");
}

#[test]
fn recipients_past_the_rate_of_their_network_are_refused_at_rcpt() {
    let server = limited("network_recipients_per_minute = 3\n");
    let mut a = greeted(server.addr, loopback_at(0, 3)).unwrap();
    let mut b = greeted(server.addr, loopback_at(0, 4)).unwrap();
    let t =
        transaction(&mut a, "s@client.test", &["alice@example.org", "bob@example.org"], "Subject: a\r\n\r\nx").unwrap();
    assert!(t.queued(), "{t:?}");
    assert!(b.command("MAIL FROM:<s@client.test>").unwrap().starts_with("250"));
    assert_eq!(status(&b.command("RCPT TO:<alice@example.org>").unwrap()), "250 2.1.5");
    assert_eq!(b.command("RCPT TO:<bob@example.org>").unwrap(), RATE_LIMITED);
    let mut c = greeted(server.addr, loopback_at(1, 3)).unwrap();
    let t = transaction(&mut c, "s@client.test", &["bob@example.org"], "Subject: c\r\n\r\nx").unwrap();
    assert!(t.queued(), "another network: {t:?}");
    server.clock.advance(MINUTE);
    assert_eq!(status(&b.command("RCPT TO:<bob@example.org>").unwrap()), "250 2.1.5");
}

/// AUTH PLAIN as `user` with `password`: the reply.
fn auth(c: &mut RawClient, user: &str, password: &str) -> String {
    c.command(&format!("AUTH PLAIN {}", plain(user, password))).unwrap()
}

#[test]
fn failed_auth_past_the_rate_ends_the_session_and_even_the_right_password_is_refused() {
    let server = limited("client_auth_failures_per_hour = 2\n");
    let mut c = greeted(server.addr, loopback_at(0, 3)).unwrap();
    assert_eq!(status(&auth(&mut c, "submitter", "wrong")), "535 5.7.8");
    assert_eq!(status(&auth(&mut c, "submitter", "wrong")), "535 5.7.8");
    // The limit is reached: the password is not checked, the session ends.
    let cut = auth(&mut c, "submitter", "pw");
    assert_eq!(cut, "421 4.7.0 mx.example.org Temporary authentication failure\r\n");
    assert_eq!(c.read_to_close().unwrap(), "");
    // On a new connection too; another address is not limited.
    let mut c = greeted(server.addr, loopback_at(0, 3)).unwrap();
    assert!(auth(&mut c, "submitter", "pw").starts_with("421 4.7.0 "));
    let mut c = greeted(server.addr, loopback_at(0, 4)).unwrap();
    assert_eq!(status(&auth(&mut c, "submitter", "pw")), "235 2.7.0");
    // An hour later the address may try again.
    server.clock.advance(HOUR);
    let mut c = greeted(server.addr, loopback_at(0, 3)).unwrap();
    assert_eq!(status(&auth(&mut c, "submitter", "pw")), "235 2.7.0");
}

#[test]
fn messages_past_the_rate_of_their_user_or_sender_are_refused_at_mail() {
    let server = limited("user_messages_per_hour = 2\nsender_messages_per_hour = 3\n");
    // Per authenticated user, whatever the reverse-path and the address.
    let mut submitter = authenticated(server.addr, loopback_at(0, 3), "submitter", "pw").unwrap();
    assert_eq!(status(&mail(&mut submitter, "one@client.test")), "250 2.1.0");
    let mut again = authenticated(server.addr, loopback_at(1, 3), "submitter", "pw").unwrap();
    assert_eq!(status(&mail(&mut again, "two@client.test")), "250 2.1.0");
    assert_eq!(mail(&mut submitter, "three@client.test"), RATE_LIMITED);
    let mut other = authenticated(server.addr, loopback_at(0, 3), "other", "pw").unwrap();
    assert_eq!(status(&mail(&mut other, "four@client.test")), "250 2.1.0");

    // Per reverse-path, compared without case, from any client.
    for (network, host) in [(0, 5), (1, 5), (2, 5)] {
        let mut c = greeted(server.addr, loopback_at(network, host)).unwrap();
        assert_eq!(status(&mail(&mut c, "bulk@sender.example")), "250 2.1.0");
    }
    let mut c = greeted(server.addr, loopback_at(3, 5)).unwrap();
    assert_eq!(mail(&mut c, "BULK@Sender.Example"), RATE_LIMITED);
    // The null reverse-path (bounces, RFC 5321 section 4.5.5) is never limited.
    for _ in 0..5 {
        assert_eq!(status(&mail(&mut c, "")), "250 2.1.0");
    }

    server.clock.advance(HOUR);
    assert_eq!(status(&mail(&mut submitter, "five@client.test")), "250 2.1.0");
    assert_eq!(status(&mail(&mut c, "bulk@sender.example")), "250 2.1.0");
}

#[test]
fn exempt_networks_are_never_limited() {
    let server = limited(
        "exempt_networks = [\"127.0.0.2/32\"]\n\
         client_connections_per_minute = 1\nnetwork_connections_per_minute = 1\n\
         client_concurrent_connections = 1\nnetwork_concurrent_connections = 1\n\
         client_messages_per_minute = 1\nnetwork_messages_per_minute = 1\n\
         client_recipients_per_minute = 1\nnetwork_recipients_per_minute = 1\n\
         client_auth_failures_per_hour = 1\nnetwork_auth_failures_per_hour = 1\n\
         user_messages_per_hour = 1\nsender_messages_per_hour = 1\n",
    );
    let exempt = loopback(2);
    let mut clients: Vec<RawClient> = (0..5).map(|_| greeted(server.addr, exempt).unwrap()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        // Two each: the session itself ends at its third (max_auth_failures).
        for _ in 0..2 {
            assert_eq!(status(&auth(c, "submitter", "wrong")), "535 5.7.8", "client {i}");
        }
    }
    let c = &mut clients[0];
    assert_eq!(status(&auth(c, "submitter", "pw")), "235 2.7.0");
    for message in 0..3 {
        let t = transaction(
            c,
            "same@client.test",
            &["alice@example.org", "bob@example.org", "alice+x@example.org"],
            &format!("Subject: exempt {message}\r\n\r\nx"),
        )
        .unwrap();
        assert!(t.queued(), "{t:?}");
    }
    // Its traffic counted against nobody: another client has its one of each.
    let (mut outsider, greeting) = connect(&server, loopback_at(0, 3));
    assert!(greeting.starts_with("220 "));
    assert!(outsider.command("EHLO client.test").unwrap().starts_with("250"));
    let t =
        transaction(&mut outsider, "same@client.test", &["alice@example.org"], "Subject: outsider\r\n\r\nx").unwrap();
    assert!(t.queued(), "{t:?}");
    assert_eq!(mail(&mut outsider, "another@client.test"), RATE_LIMITED);
    assert_eq!(copies(server.dir()).unwrap().len(), 3 * 2 + 1);
}
