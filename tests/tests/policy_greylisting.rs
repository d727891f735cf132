//! Greylisting (issue 14) over real sockets, with the server's fake clock
//! (no test sleeps): the key is the client's network, not its address, so
//! a sender's pool retries from any of its addresses; the first attempt
//! and early retries get 451 4.7.1, a retry after the delay passes and the
//! key then passes for 30 days; a retry after the expiry starts over;
//! authenticated clients and relay networks are not greylisted; the state
//! survives a restart; greylisted attempts do not count against the
//! recipients rate limit. (tests/tests/limits_live.rs covers the basic
//! delay and a reload that keeps the database.)

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use smtpcell_tests::client::RawClient;
use smtpcell_tests::configured::ConfiguredServer;
use smtpcell_tests::session::{authenticated, greeted, loopback, loopback_at, status, transaction, users_file};
use smtpcell_tests::stored::copies;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

const GREYLISTED: &str = "451 4.7.1 Greylisted, try again later\r\n";

/// Greylisting on, its database at `database`, and `more` appended.
fn config(database: &str, more: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
hostname = "mx.example.org"
maildir = "{{dir}}/inbox"
mailboxes = "{{dir}}/vmail"
outgoing = "{{dir}}/outgoing"
domains = ["example.org"]
recipients = "{{dir}}/recipients"
relay_networks = ["127.0.0.2/32"]
users = "{{dir}}/users"
allow_plaintext_auth = true
{more}
[greylisting]
enabled = true
database = "{database}"
"#
    )
}

const RECIPIENTS: &str = "\
alice@example.org  alice@example.org
bob@example.org    bob@example.org
carol@example.org  carol@example.org
";

fn start(database: &str, more: &str) -> ConfiguredServer {
    let users = users_file(&[("submitter", "pw")]).unwrap();
    ConfiguredServer::start(&config(database, more), &[("recipients", RECIPIENTS), ("users", &users)]).unwrap()
}

/// A new connection from `source`: MAIL FROM:<reverse_path>, RCPT
/// TO:<forward_path>; the client (in its transaction) and the RCPT reply.
fn attempt(server: &ConfiguredServer, source: IpAddr, reverse_path: &str, forward_path: &str) -> (RawClient, String) {
    let mut c = greeted(server.addr, source).unwrap();
    assert!(c.command(&format!("MAIL FROM:<{reverse_path}>")).unwrap().starts_with("250"));
    let reply = c.command(&format!("RCPT TO:<{forward_path}>")).unwrap();
    (c, reply)
}

/// Three addresses of one sender's pool (one /24), and one elsewhere.
const POOL_A: IpAddr = loopback_at(0, 3);
const POOL_B: IpAddr = loopback_at(0, 4);
const POOL_C: IpAddr = loopback_at(0, 5);
const ELSEWHERE: IpAddr = loopback_at(1, 3);

fn rcpt_reply(server: &ConfiguredServer, source: IpAddr, reverse_path: &str, forward_path: &str) -> String {
    attempt(server, source, reverse_path, forward_path).1
}

#[test]
fn a_pool_retrying_from_another_address_passes_after_the_delay_and_then_for_30_days() {
    let server = start("{dir}/greylist.redb", "");
    let sender = "news@pool.example";
    assert_eq!(rcpt_reply(&server, POOL_A, sender, "alice@example.org"), GREYLISTED, "first attempt");
    // Recipients are checked before greylisting: an unknown one is told so.
    assert_eq!(status(&rcpt_reply(&server, POOL_A, sender, "nobody@example.org")), "550 5.1.1");
    server.clock.advance(5 * MINUTE - Duration::from_secs(1));
    assert_eq!(rcpt_reply(&server, POOL_B, sender, "alice@example.org"), GREYLISTED, "a retry too early");
    server.clock.advance(Duration::from_secs(1));

    // The retry comes from a third address of the pool's /24, and passes.
    let (mut c, reply) = attempt(&server, POOL_C, sender, "alice@example.org");
    assert_eq!(status(&reply), "250 2.1.5");
    assert!(c.command("DATA").unwrap().starts_with("354"));
    assert!(c.command("Subject: retried\r\n\r\nx\r\n.").unwrap().starts_with("250 2.0.0"));
    let stored = copies(server.dir()).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].maildir.as_str(), stored[0].subject()), ("vmail/example.org/alice", Some("retried")));

    // Passed for the whole network; another network, another reverse-path
    // or another recipient is another key.
    assert_eq!(status(&rcpt_reply(&server, POOL_A, sender, "alice@example.org")), "250 2.1.5");
    assert_eq!(rcpt_reply(&server, ELSEWHERE, sender, "alice@example.org"), GREYLISTED);
    assert_eq!(rcpt_reply(&server, POOL_A, "other@pool.example", "alice@example.org"), GREYLISTED);
    assert_eq!(rcpt_reply(&server, POOL_A, sender, "bob@example.org"), GREYLISTED);

    // The pass lasts 30 days and is renewed by mail that passes.
    server.clock.advance(29 * DAY);
    assert_eq!(status(&rcpt_reply(&server, POOL_B, sender, "alice@example.org")), "250 2.1.5");
    server.clock.advance(29 * DAY);
    assert_eq!(status(&rcpt_reply(&server, POOL_B, sender, "alice@example.org")), "250 2.1.5", "renewed");
    server.clock.advance(31 * DAY);
    assert_eq!(rcpt_reply(&server, POOL_B, sender, "alice@example.org"), GREYLISTED, "expired");
}

#[test]
fn a_retry_after_the_expiry_is_a_first_attempt_again() {
    let server = start("{dir}/greylist.redb", "");
    let sender = "slow@pool.example";
    assert_eq!(rcpt_reply(&server, POOL_A, sender, "alice@example.org"), GREYLISTED);
    server.clock.advance(4 * HOUR + MINUTE);
    assert_eq!(rcpt_reply(&server, POOL_A, sender, "alice@example.org"), GREYLISTED, "past the 4-hour expiry");
    server.clock.advance(4 * MINUTE);
    assert_eq!(rcpt_reply(&server, POOL_A, sender, "alice@example.org"), GREYLISTED, "the delay runs anew");
    server.clock.advance(MINUTE);
    assert_eq!(status(&rcpt_reply(&server, POOL_A, sender, "alice@example.org")), "250 2.1.5");
}

#[test]
fn authenticated_clients_and_relay_networks_are_not_greylisted() {
    let server = start("{dir}/greylist.redb", "");
    let sender = "someone@client.test";
    let mut relay = greeted(server.addr, loopback(2)).unwrap();
    let t = transaction(&mut relay, sender, &["alice@example.org", "zed@other.example"], "Subject: relay\r\n\r\nx")
        .unwrap();
    assert_eq!(t.rcpt.iter().map(|r| status(r)).collect::<Vec<_>>(), ["250 2.1.5", "250 2.1.5"]);
    assert!(t.queued());
    let mut submitter = authenticated(server.addr, POOL_A, "submitter", "pw").unwrap();
    let t = transaction(&mut submitter, sender, &["bob@example.org", "zed@other.example"], "Subject: auth\r\n\r\nx")
        .unwrap();
    assert_eq!(t.rcpt.iter().map(|r| status(r)).collect::<Vec<_>>(), ["250 2.1.5", "250 2.1.5"]);
    assert!(t.queued());
    // Their mail left no greylisting record: the same key from an
    // unauthenticated client of the same network is a first attempt.
    assert_eq!(rcpt_reply(&server, POOL_B, sender, "bob@example.org"), GREYLISTED);
    let mut stored: Vec<(String, String)> =
        copies(server.dir()).unwrap().into_iter().map(|c| (c.maildir.clone(), c.subject().unwrap().into())).collect();
    stored.sort();
    let expected = [
        ("outgoing", "auth"),
        ("outgoing", "relay"),
        ("vmail/example.org/alice", "relay"),
        ("vmail/example.org/bob", "auth"),
    ];
    assert_eq!(stored, expected.map(|(m, s)| (m.to_string(), s.to_string())));
}

/// Two servers, one after the other, on the same database file (outside
/// either server's directory), their clocks at the same time: what the
/// first learnt, the second knows.
#[test]
fn greylisting_state_survives_a_restart() {
    let shared = tempfile::tempdir().unwrap();
    let database = shared.path().join("greylist.redb");
    let database = database.to_str().unwrap();
    let sender = "mta@pool.example";
    {
        let first = start(database, "");
        assert_eq!(rcpt_reply(&first, POOL_A, sender, "alice@example.org"), GREYLISTED);
        first.clock.advance(5 * MINUTE);
        assert_eq!(status(&rcpt_reply(&first, POOL_A, sender, "alice@example.org")), "250 2.1.5");
        // Bob's first attempt, at +5 min.
        assert_eq!(rcpt_reply(&first, POOL_A, sender, "bob@example.org"), GREYLISTED);
    }
    assert!(Path::new(database).is_file());
    let second = start(database, "");
    second.clock.advance(5 * MINUTE);
    // Alice's key passed before the restart.
    assert_eq!(status(&rcpt_reply(&second, POOL_B, sender, "alice@example.org")), "250 2.1.5");
    // Bob's retry after the delay passes without a new first attempt: his
    // first attempt was remembered. Carol's key was never seen.
    second.clock.advance(5 * MINUTE);
    assert_eq!(status(&rcpt_reply(&second, POOL_B, sender, "bob@example.org")), "250 2.1.5");
    assert_eq!(rcpt_reply(&second, POOL_B, sender, "carol@example.org"), GREYLISTED);
}

/// With at most 2 recipients a minute, greylisted recipients are not
/// counted: after any number of them, two recipients still pass in the
/// same minute, and the third is refused by the rate limit, not by
/// greylisting.
#[test]
fn greylisted_attempts_do_not_count_against_the_recipient_rate() {
    let server = start("{dir}/greylist.redb", "[rate_limits]\nclient_recipients_per_minute = 2\n");
    let sender = "mta@pool.example";
    let mut c = greeted(server.addr, POOL_A).unwrap();
    assert!(c.command(&format!("MAIL FROM:<{sender}>")).unwrap().starts_with("250"));
    for forward_path in ["alice@example.org", "bob@example.org"] {
        assert_eq!(c.command(&format!("RCPT TO:<{forward_path}>")).unwrap(), GREYLISTED);
    }
    server.clock.advance(5 * MINUTE);
    // A new minute: first attempts for carol, again and again, greylisted...
    for _ in 0..5 {
        assert_eq!(c.command("RCPT TO:<carol@example.org>").unwrap(), GREYLISTED);
    }
    // ...and alice's and bob's retries pass: the rate is untouched.
    assert_eq!(status(&c.command("RCPT TO:<alice@example.org>").unwrap()), "250 2.1.5");
    assert_eq!(status(&c.command("RCPT TO:<bob@example.org>").unwrap()), "250 2.1.5");
    let limited = c.command("RCPT TO:<alice@example.org>").unwrap();
    assert_eq!(limited, "451 4.7.1 Rate limit exceeded, try again later\r\n");
}
