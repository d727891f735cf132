//! Policy state shared between hosts in PostgreSQL (issue 17): a real
//! cluster started by the test (tests/harness/postgres.rs), two smtpcell
//! hosts on it, each with its own fake clock set to the same time and
//! moved together (no test sleeps).
//!
//! - The SQL of the shared stores, against the cluster directly: the GCRA
//!   statement (burst, refusal, one more after the interval, all limits or
//!   none counted, a check that counts nothing, a count that checks
//!   nothing, the sweep) and the greylisting table (a first attempt never
//!   overwrites another host's pass).
//! - Greylisting: a first attempt via host 1 is deferred, the retry via
//!   host 2 after the delay passes.
//! - A shared limit: what host 1 used up, host 2 refuses.
//! - The database down: greylisting and the shared limits let mail
//!   through (the spool then answers the message itself), and both work
//!   again when it is back.

use std::net::IpAddr;
use std::time::Duration;

use smtpcell::policy::greylist::{GreylistStore, PostgresStore, Record, Triplet};
use smtpcell::policy::{CellRequest, Limited, PostgresCells, Take};
use smtpcell::postgres::Database;
use smtpcell_tests::client::RawClient;
use smtpcell_tests::configured::ConfiguredServer;
use smtpcell_tests::postgres::Postgres;
use smtpcell_tests::session::{greeted, loopback_at, status};

const MINUTE: Duration = Duration::from_secs(60);
const GREYLISTED: &str = "451 4.7.1 Greylisted, try again later\r\n";

/// 2026-01-01T00:00:00Z in microseconds: the SQL tests' "now".
const NOW_US: i64 = 1_767_225_600_000_000;
const SECOND_US: i64 = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// `n` per minute against `key`.
fn per_minute(limit: Limited, key: &str, n: i64) -> CellRequest {
    let interval_us = 60 * SECOND_US / n;
    CellRequest { limit, key: key.to_string(), interval_us, window_us: interval_us * n }
}

#[test]
fn the_gcra_statement_gives_the_burst_then_one_per_interval_and_counts_all_limits_or_none() {
    let pg = Postgres::start();
    let cells = PostgresCells::new(Database::open(&pg.url()).unwrap());
    runtime().block_on(async {
        let client = [per_minute(Limited::ClientMessagesPerMinute, "192.0.2.1", 3)];
        for n in 0..3 {
            assert_eq!(cells.take(&client, NOW_US, Take::CheckAndCount).await.unwrap(), None, "request {n}");
        }
        assert_eq!(
            cells.take(&client, NOW_US, Take::CheckAndCount).await.unwrap(),
            Some(Limited::ClientMessagesPerMinute)
        );
        // One more each 20 seconds: not at 19, at 20.
        let later = NOW_US + 19 * SECOND_US;
        assert_eq!(cells.take(&client, later, Take::Check).await.unwrap(), Some(Limited::ClientMessagesPerMinute));
        let later = NOW_US + 20 * SECOND_US;
        assert_eq!(cells.take(&client, later, Take::Check).await.unwrap(), None, "a check counts nothing");
        assert_eq!(cells.take(&client, later, Take::CheckAndCount).await.unwrap(), None);
        assert_eq!(
            cells.take(&client, later, Take::CheckAndCount).await.unwrap(),
            Some(Limited::ClientMessagesPerMinute)
        );

        // A request refused by its client's limit counts against none of
        // its limits: the network's stays untouched.
        let both = [client[0].clone(), per_minute(Limited::NetworkMessagesPerMinute, "192.0.2.0/24", 4)];
        assert_eq!(
            cells.take(&both, later, Take::CheckAndCount).await.unwrap(),
            Some(Limited::ClientMessagesPerMinute)
        );
        let network = &both[1..];
        for n in 0..4 {
            assert_eq!(cells.take(network, later, Take::CheckAndCount).await.unwrap(), None, "network request {n}");
        }
        assert_eq!(
            cells.take(network, later, Take::CheckAndCount).await.unwrap(),
            Some(Limited::NetworkMessagesPerMinute)
        );

        // A count counts even past the limit (a failed AUTH is a fact).
        let failures = [CellRequest {
            limit: Limited::ClientAuthFailuresPerHour,
            key: "192.0.2.7".into(),
            interval_us: 1800 * SECOND_US,
            window_us: 3600 * SECOND_US,
        }];
        for _ in 0..3 {
            assert_eq!(cells.take(&failures, NOW_US, Take::Count).await.unwrap(), None);
        }
        assert_eq!(cells.take(&failures, NOW_US, Take::Check).await.unwrap(), Some(Limited::ClientAuthFailuresPerHour));
        // Three failures at once (one past the limit of 2) set the TAT 90
        // minutes on: a try fits in the window again 60 minutes on, not 59.
        let at = |minutes: i64| NOW_US + minutes * 60 * SECOND_US;
        assert!(cells.take(&failures, at(59), Take::Check).await.unwrap().is_some());
        assert_eq!(cells.take(&failures, at(60), Take::Check).await.unwrap(), None);

        // The sweep removes exactly the cells that are idle by then.
        assert_eq!(pg.psql("SELECT count(*) FROM smtpcell_rate_limit_cell"), "3");
        assert_eq!(cells.sweep(at(2)).await.unwrap(), 2, "the client's and the network's minute cells");
        assert_eq!(
            pg.psql("SELECT rate_limit, key FROM smtpcell_rate_limit_cell"),
            "client_auth_failures_per_hour|192.0.2.7"
        );
    });
}

#[test]
fn the_greylisting_table_keeps_records_and_a_first_attempt_never_replaces_a_pass() {
    let pg = Postgres::start();
    let store = PostgresStore::new(Database::open(&pg.url()).unwrap());
    let triplet = Triplet {
        network: "192.0.2.0/24".parse().unwrap(),
        reverse_path: "news@pool.example".into(),
        forward_path: "alice@example.org".into(),
    };
    let other = Triplet { forward_path: "bob@example.org".into(), ..triplet.clone() };
    const T: u64 = 1_767_225_600;
    runtime().block_on(async {
        // The trait blocks: called from the blocking pool, as the greylist does.
        let (store, triplet, other) = (store.clone(), triplet.clone(), other.clone());
        tokio::task::spawn_blocking(move || {
            assert_eq!(store.get(&triplet).unwrap(), None);
            let first = Record { first_seen: T, passed: false, expires: T + 4 * 3600 };
            store.put(&triplet, first).unwrap();
            assert_eq!(store.get(&triplet).unwrap(), Some(first));

            // Host 2 passes the retry; host 1, having read no record at the
            // same time, writes a first attempt: the pass stays.
            let pass = Record { first_seen: T, passed: true, expires: T + 300 + 30 * 86_400 };
            store.put(&triplet, pass).unwrap();
            store.put(&triplet, Record { first_seen: T + 301, passed: false, expires: T + 301 + 4 * 3600 }).unwrap();
            assert_eq!(store.get(&triplet).unwrap(), Some(pass));
            // Once the pass has expired, a first attempt starts over.
            let again = Record { first_seen: pass.expires, passed: false, expires: pass.expires + 4 * 3600 };
            store.put(&triplet, again).unwrap();
            assert_eq!(store.get(&triplet).unwrap(), Some(again));

            store.put(&other, first).unwrap();
            assert_eq!(store.remove_expired(first.expires).unwrap(), 1);
            assert_eq!(store.get(&other).unwrap(), None);
            assert_eq!(store.get(&triplet).unwrap(), Some(again));
        })
        .await
        .unwrap();
    });
    assert_eq!(
        pg.psql("SELECT network, reverse_path, forward_path, passed FROM smtpcell_greylist_triplet"),
        "192.0.2.0/24|news@pool.example|alice@example.org|f"
    );
}

/// A host on `pg`'s database: greylisting on, and `more` in the file.
fn host(pg: &Postgres, more: &str) -> ConfiguredServer {
    let config = format!(
        r#"
listen = "127.0.0.1:0"
hostname = "mx.example.org"
store = "{url}"
domains = ["example.org"]
{more}
[greylisting]
enabled = true
"#,
        url = pg.url()
    );
    ConfiguredServer::start(&config, &[]).unwrap()
}

/// Moves both hosts' clocks on by `by`.
fn advance(hosts: &[&ConfiguredServer], by: Duration) {
    for host in hosts {
        host.clock.advance(by);
    }
}

const SENDER: IpAddr = loopback_at(0, 3);
const SENDER_RETRYING: IpAddr = loopback_at(0, 4);

/// A client from `source` through MAIL FROM:<reverse_path>; the client and
/// the MAIL reply.
fn mail(host: &ConfiguredServer, source: IpAddr, reverse_path: &str) -> (RawClient, String) {
    let mut c = greeted(host.addr, source).unwrap();
    let reply = c.command(&format!("MAIL FROM:<{reverse_path}>")).unwrap();
    (c, reply)
}

/// The RCPT reply to `forward_path` after [`mail`].
fn rcpt(host: &ConfiguredServer, source: IpAddr, reverse_path: &str, forward_path: &str) -> String {
    let (mut c, reply) = mail(host, source, reverse_path);
    assert_eq!(status(&reply), "250 2.1.0", "MAIL");
    c.command(&format!("RCPT TO:<{forward_path}>")).unwrap()
}

#[test]
fn a_retry_via_the_second_host_passes_greylisting_that_the_first_host_started() {
    let pg = Postgres::start();
    let (one, two) = (host(&pg, ""), host(&pg, ""));
    let sender = "news@pool.example";
    assert_eq!(rcpt(&one, SENDER, sender, "alice@example.org"), GREYLISTED, "first attempt, host 1");
    advance(&[&one, &two], 5 * MINUTE - Duration::from_secs(1));
    assert_eq!(rcpt(&two, SENDER_RETRYING, sender, "alice@example.org"), GREYLISTED, "too early, host 2");
    advance(&[&one, &two], Duration::from_secs(1));

    let (mut c, reply) = mail(&two, SENDER_RETRYING, sender);
    assert_eq!(status(&reply), "250 2.1.0");
    assert_eq!(status(&c.command("RCPT TO:<alice@example.org>").unwrap()), "250 2.1.5", "the retry, host 2");
    assert!(c.command("DATA").unwrap().starts_with("354"));
    assert!(c.command("Subject: retried\r\n\r\nx\r\n.").unwrap().starts_with("250 2.0.0"));

    // Passed on both hosts; another recipient is another triplet.
    assert_eq!(status(&rcpt(&one, SENDER, sender, "alice@example.org")), "250 2.1.5", "host 1 sees the pass");
    assert_eq!(rcpt(&one, SENDER, sender, "bob@example.org"), GREYLISTED);
    assert_eq!(
        pg.psql("SELECT network, forward_path, passed FROM smtpcell_greylist_triplet ORDER BY forward_path"),
        "127.0.0.0/24|alice@example.org|t\n127.0.0.0/24|bob@example.org|f"
    );
}

#[test]
fn a_shared_limit_refuses_on_the_second_host_what_the_first_used_up() {
    let pg = Postgres::start();
    let limits = "[rate_limits]\nshared = true\nclient_messages_per_minute = 2\nnetwork_recipients_per_minute = 3\n";
    let (one, two) = (host(&pg, limits), host(&pg, limits));
    let sender = "bulk@example.net";
    for n in 0..2 {
        assert_eq!(status(&mail(&one, SENDER, sender).1), "250 2.1.0", "message {n}, host 1");
    }
    let (_, refused) = mail(&two, SENDER, sender);
    assert_eq!(status(&refused), "451 4.7.1", "host 2: {refused}");
    // The limit is the client's: another address of the network may send.
    assert_eq!(status(&mail(&two, SENDER_RETRYING, sender).1), "250 2.1.0");
    // One more each 30 seconds, on either host.
    advance(&[&one, &two], 30 * Duration::from_secs(1));
    assert_eq!(status(&mail(&two, SENDER, sender).1), "250 2.1.0");
    assert_eq!(status(&mail(&one, SENDER, sender).1), "451 4.7.1");

    // Recipients per network: greylisted attempts count against nothing,
    // so three first attempts spread over both hosts, then past the
    // delay three retries pass on the two hosts and the fourth is refused.
    let recipients = ["alice@example.org", "bob@example.org", "carol@example.org", "dan@example.org"];
    advance(&[&one, &two], 5 * MINUTE);
    for (n, to) in recipients.iter().enumerate() {
        let host = if n % 2 == 0 { &one } else { &two };
        assert_eq!(rcpt(host, loopback_at(0, 10 + n as u8), "r@example.net", to), GREYLISTED, "{to}");
    }
    advance(&[&one, &two], 5 * MINUTE);
    for (n, to) in recipients[..3].iter().enumerate() {
        let host = if n % 2 == 0 { &two } else { &one };
        assert_eq!(status(&rcpt(host, loopback_at(0, 20 + n as u8), "r@example.net", to)), "250 2.1.5", "{to}");
    }
    let refused = rcpt(&one, loopback_at(0, 30), "r@example.net", recipients[3]);
    assert_eq!(status(&refused), "451 4.7.1", "the network's fourth recipient: {refused}");
}

#[test]
fn with_the_database_down_greylisting_and_shared_limits_let_mail_through_and_resume_when_it_returns() {
    let pg = Postgres::start();
    let limits = "[rate_limits]\nshared = true\nclient_messages_per_minute = 1\n";
    let one = host(&pg, limits);
    let sender = "down@example.net";
    assert_eq!(rcpt(&one, SENDER, sender, "alice@example.org"), GREYLISTED, "the database up");

    pg.stop();
    // Neither the used-up message limit nor a first attempt defers: both
    // stores fail open. (The message itself then gets the spool's 451:
    // with the database down, nothing can be stored.)
    for to in ["alice@example.org", "bob@example.org"] {
        let (mut c, reply) = mail(&one, SENDER, sender);
        assert_eq!(status(&reply), "250 2.1.0", "MAIL with the database down");
        assert_eq!(status(&c.command(&format!("RCPT TO:<{to}>")).unwrap()), "250 2.1.5", "RCPT {to}");
    }

    pg.restart();
    assert_eq!(status(&mail(&one, SENDER, sender).1), "451 4.7.1", "the limit holds again");
    advance(&[&one], MINUTE);
    assert_eq!(rcpt(&one, SENDER, sender, "carol@example.org"), GREYLISTED, "greylisting works again");
}

/// The cost of a shared limit's round trip, for bench/README.md (run with
/// `--ignored --nocapture`; prints, asserts nothing about time): 5,000
/// MAIL-like requests (client and network limits) one after another, then
/// 8 tasks at once, against a cluster on loopback.
#[test]
#[ignore = "a measurement, not a test"]
fn measure_shared_limit_round_trips() {
    let pg = Postgres::start();
    let cells = PostgresCells::new(Database::open(&pg.url()).unwrap());
    const N: usize = 5_000;
    let request = |i: usize| {
        let client = format!("192.0.{}.{}", (i / 250) % 250, i % 250);
        [
            per_minute(Limited::ClientMessagesPerMinute, &client, 1_000),
            per_minute(Limited::NetworkMessagesPerMinute, "192.0.0.0/16", 1_000_000),
        ]
    };
    runtime().block_on(async {
        cells.take(&request(0), NOW_US, Take::CheckAndCount).await.unwrap();
        let start = std::time::Instant::now();
        for i in 0..N {
            cells.take(&request(i), NOW_US + i as i64, Take::CheckAndCount).await.unwrap();
        }
        let serial = start.elapsed();
        let start = std::time::Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let cells = cells.clone();
                tokio::spawn(async move {
                    for i in 0..N / 8 {
                        let n = t * N + i;
                        cells.take(&request(n), NOW_US + n as i64, Take::CheckAndCount).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let parallel = start.elapsed();
        println!(
            "shared limit: {:.0} µs per request one at a time; {:.0} requests/s with 8 at once",
            serial.as_micros() as f64 / N as f64,
            N as f64 / parallel.as_secs_f64()
        );
    });
}
