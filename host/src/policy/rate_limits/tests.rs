//! Every limit with a fake clock: refused exactly past its count, back
//! after its window, counted per address and per network.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::keyed::MAX_KEYS;
use super::*;
use crate::policy::FakeClock;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn config(toml_text: &str) -> RateLimitsConfig {
    toml::from_str(toml_text).unwrap()
}

fn limits(toml_text: &str) -> (RateLimits, Arc<FakeClock>) {
    let clock = Arc::new(FakeClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
    (RateLimits::new(&config(toml_text), clock.clone(), None), clock)
}

/// The outcome of a local limit's request, which never waits: the async
/// methods wait only on a shared limit's database.
fn done<T>(request: impl Future<Output = T>) -> T {
    let mut request = std::pin::pin!(request);
    match request.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(outcome) => outcome,
        std::task::Poll::Pending => panic!("a local rate limit waited"),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Calls `request` until it is refused; how many passed.
fn passes(mut request: impl FnMut() -> Result<(), Limited>, expected: Limited) -> usize {
    for passed in 0..10_000 {
        if let Err(limited) = request() {
            assert_eq!(limited, expected);
            return passed;
        }
    }
    panic!("never refused");
}

#[test]
fn the_table_reads_with_defaults_and_names_bad_keys() {
    let defaults = config("exempt_networks = [\"192.0.2.0/24\"]");
    assert!(!defaults.any());
    let defaults = config("");
    assert_eq!(defaults, RateLimitsConfig::default());
    assert_eq!(defaults.ipv4_prefix.bits(), 24);
    assert_eq!(defaults.ipv6_prefix.bits(), 64);
    assert!(defaults.client_messages_per_minute.is_none());

    for (text, named) in [
        ("client_messages_per_minute = 0", "client_messages_per_minute"),
        ("ipv4_prefix = 33", "ipv4_prefix"),
        ("ipv6_prefix = 129", "ipv6_prefix"),
        ("exempt_networks = [\"10.0.0.0/33\"]", "10.0.0.0/33"),
        ("client_messages_per_mintue = 5", "client_messages_per_mintue"),
        ("sender_messages_per_hour = -1", "sender_messages_per_hour"),
    ] {
        let err = toml::from_str::<RateLimitsConfig>(text).unwrap_err().to_string();
        assert!(err.contains(named) && err.contains("line 1"), "{text}: {err}");
    }
    let set = config("exempt_networks = [\"192.0.2.0/24\", \"2001:db8::1\"]\nipv4_prefix = 16");
    assert!(set.exempt_networks.contains(ip("192.0.2.9")));
    assert!(config("sender_messages_per_hour = 1").any());
    assert_eq!(set.prefixes().ipv4.bits(), 16);
}

#[test]
fn unconfigured_limits_refuse_nothing() {
    let (limits, _clock) = limits("");
    for _ in 0..1000 {
        drop(limits.admit(ip("192.0.2.1")).unwrap());
        done(limits.message(ip("192.0.2.1"), Some("alice"), "a@example.org")).unwrap();
        done(limits.recipient(ip("192.0.2.1"))).unwrap();
        done(limits.auth_failed(ip("192.0.2.1")));
    }
    assert!(done(limits.auth_allowed(ip("192.0.2.1"))));
    assert!(limits.concurrency.is_none());
}

#[test]
fn connections_per_minute_refuse_past_the_count_and_come_back_after_a_minute() {
    let (limits, clock) = limits("client_connections_per_minute = 5");
    let client = ip("192.0.2.1");
    assert_eq!(passes(|| limits.admit(client).map(drop), Limited::ClientConnectionsPerMinute), 5);
    // A neighbour has its own count.
    drop(limits.admit(ip("192.0.2.2")).unwrap());
    clock.advance(MINUTE);
    assert_eq!(passes(|| limits.admit(client).map(drop), Limited::ClientConnectionsPerMinute), 5);
    // One more each fifth of the window, not the whole burst.
    clock.advance(MINUTE / 5);
    assert_eq!(passes(|| limits.admit(client).map(drop), Limited::ClientConnectionsPerMinute), 1);
}

#[test]
fn addresses_of_one_network_share_its_limit_and_other_networks_do_not() {
    let (limits, clock) = limits("network_messages_per_minute = 4\nclient_messages_per_minute = 3");
    let send = |from: &str| done(limits.message(ip(from), None, "a@example.org"));
    for _ in 0..3 {
        send("192.0.2.1").unwrap();
    }
    assert_eq!(send("192.0.2.1"), Err(Limited::ClientMessagesPerMinute));
    send("192.0.2.200").unwrap();
    assert_eq!(send("192.0.2.201"), Err(Limited::NetworkMessagesPerMinute));
    send("192.0.3.1").unwrap();
    // IPv6: the /64, and an IPv4-mapped address is its IPv4 network.
    for i in 1..=4 {
        send(&format!("2001:db8:0:1::{i}")).unwrap();
    }
    assert_eq!(send("2001:db8:0:1:ffff::9"), Err(Limited::NetworkMessagesPerMinute));
    send("2001:db8:0:2::1").unwrap();
    assert_eq!(send("::ffff:192.0.2.7"), Err(Limited::NetworkMessagesPerMinute));
    clock.advance(MINUTE);
    send("192.0.2.201").unwrap();
}

#[test]
fn a_refused_request_counts_against_no_limit() {
    let (limits, _clock) = limits("client_recipients_per_minute = 2\nnetwork_recipients_per_minute = 4");
    for _ in 0..2 {
        done(limits.recipient(ip("192.0.2.1"))).unwrap();
    }
    // The client goes on past its limit: its network's count stays at 2.
    for _ in 0..50 {
        assert_eq!(done(limits.recipient(ip("192.0.2.1"))), Err(Limited::ClientRecipientsPerMinute));
    }
    done(limits.recipient(ip("192.0.2.2"))).unwrap();
    done(limits.recipient(ip("192.0.2.2"))).unwrap();
    assert_eq!(done(limits.recipient(ip("192.0.2.3"))), Err(Limited::NetworkRecipientsPerMinute));
}

/// Each limit counts a request as it passes it; one that then refuses it
/// gives back what the limits before it counted.
#[test]
fn a_refusal_gives_back_the_counts_of_the_limits_before_it() {
    let (limits, clock) =
        limits("client_messages_per_minute = 2\nnetwork_messages_per_minute = 3\nsender_messages_per_hour = 1");
    let send = |from, sender| done(limits.message(ip(from), None, sender));
    send("192.0.2.1", "a@example.org").unwrap();
    // The sender limit refuses after the client's and the network's passed.
    for _ in 0..10 {
        assert_eq!(send("192.0.2.1", "a@example.org"), Err(Limited::SenderMessagesPerHour));
    }
    // Given back: the client has one message left, the network two.
    send("192.0.2.1", "b@example.org").unwrap();
    assert_eq!(send("192.0.2.1", "c@example.org"), Err(Limited::ClientMessagesPerMinute));
    send("192.0.2.2", "d@example.org").unwrap();
    // The network refuses after the client's passed.
    for _ in 0..10 {
        assert_eq!(send("192.0.2.3", "e@example.org"), Err(Limited::NetworkMessagesPerMinute));
    }
    // 20 s give the network one message back (3 a minute); the client's
    // ten counts were given back, or it would wait five minutes.
    clock.advance(Duration::from_secs(20));
    send("192.0.2.3", "f@example.org").unwrap();
}

/// The synchronous checks the connection takes before any future count
/// exactly as the asynchronous ones: a pass counts, a refusal does not.
#[test]
fn decided_now_the_limits_count_as_when_awaited() {
    let (limits, _clock) =
        limits("client_recipients_per_minute = 2\nnetwork_recipients_per_minute = 3\nsender_messages_per_hour = 1");
    let now = |text| limits.recipient_now(ip(text)).expect("local limits decide now");
    now("192.0.2.1").unwrap();
    done(limits.recipient(ip("192.0.2.1"))).unwrap();
    for _ in 0..10 {
        assert_eq!(now("192.0.2.1"), Err(Limited::ClientRecipientsPerMinute));
    }
    // The refusals counted nothing: the network has one recipient left.
    now("192.0.2.2").unwrap();
    assert_eq!(now("192.0.2.3"), Err(Limited::NetworkRecipientsPerMinute));

    let mail = |sender| limits.message_now(ip("198.51.100.1"), None, sender).expect("local limits decide now");
    mail("a@example.org").unwrap();
    assert_eq!(mail("A@example.org"), Err(Limited::SenderMessagesPerHour));
    assert_eq!(done(limits.message(ip("198.51.100.1"), None, "a@example.org")), Err(Limited::SenderMessagesPerHour));
    mail("b@example.org").unwrap();
}

#[test]
fn recipients_per_minute_refuse_past_the_count_and_come_back() {
    let (limits, clock) = limits("client_recipients_per_minute = 100");
    assert_eq!(passes(|| done(limits.recipient(ip("192.0.2.1"))), Limited::ClientRecipientsPerMinute), 100);
    clock.advance(MINUTE - Duration::from_secs(1));
    assert_eq!(passes(|| done(limits.recipient(ip("192.0.2.1"))), Limited::ClientRecipientsPerMinute), 98);
    clock.advance(MINUTE);
    assert_eq!(passes(|| done(limits.recipient(ip("192.0.2.1"))), Limited::ClientRecipientsPerMinute), 100);
}

#[test]
fn failed_auth_per_hour_closes_auth_until_the_window_lets_one_more_in() {
    let (limits, clock) = limits("client_auth_failures_per_hour = 3\nnetwork_auth_failures_per_hour = 5");
    let client = ip("192.0.2.1");
    for _ in 0..3 {
        assert!(done(limits.auth_allowed(client)));
        done(limits.auth_failed(client));
    }
    // Asking does not count: still refused, and its neighbours are not.
    for _ in 0..10 {
        assert!(!done(limits.auth_allowed(client)));
    }
    assert!(done(limits.auth_allowed(ip("192.0.2.2"))));
    done(limits.auth_failed(ip("192.0.2.2")));
    done(limits.auth_failed(ip("192.0.2.2")));
    // The network has had its 5: a third address of it is refused.
    assert!(!done(limits.auth_allowed(ip("192.0.2.3"))));
    assert!(done(limits.auth_allowed(ip("192.0.3.3"))));
    // One failure back each third of an hour for the client (each fifth
    // for the network).
    clock.advance(HOUR / 3 - Duration::from_secs(1));
    assert!(!done(limits.auth_allowed(client)));
    clock.advance(Duration::from_secs(1));
    assert!(done(limits.auth_allowed(client)));
    done(limits.auth_failed(client));
    assert!(!done(limits.auth_allowed(client)));
    clock.advance(HOUR);
    assert!(done(limits.auth_allowed(client)));
}

#[test]
fn messages_per_hour_count_per_user_and_per_reverse_path_and_bounces_pass() {
    let (limits, clock) = limits("user_messages_per_hour = 2\nsender_messages_per_hour = 3");
    // One user from any address.
    done(limits.message(ip("192.0.2.1"), Some("alice"), "")).unwrap();
    done(limits.message(ip("198.51.100.1"), Some("alice"), "")).unwrap();
    assert_eq!(done(limits.message(ip("203.0.113.1"), Some("alice"), "")), Err(Limited::UserMessagesPerHour));
    done(limits.message(ip("192.0.2.1"), Some("bob"), "")).unwrap();
    // One reverse-path, in any case, from anyone.
    done(limits.message(ip("192.0.2.1"), None, "Carol@Example.org")).unwrap();
    done(limits.message(ip("198.51.100.1"), None, "carol@example.org")).unwrap();
    done(limits.message(ip("203.0.113.1"), Some("bob"), "CAROL@EXAMPLE.ORG")).unwrap();
    assert_eq!(done(limits.message(ip("192.0.2.9"), None, "carol@example.org")), Err(Limited::SenderMessagesPerHour));
    // Refused by the sender limit: dan's message was not counted.
    assert_eq!(
        done(limits.message(ip("192.0.2.9"), Some("dan"), "carol@example.org")),
        Err(Limited::SenderMessagesPerHour)
    );
    done(limits.message(ip("192.0.2.9"), Some("dan"), "dave@example.org")).unwrap();
    done(limits.message(ip("192.0.2.9"), Some("dan"), "erin@example.org")).unwrap();
    assert_eq!(
        done(limits.message(ip("192.0.2.9"), Some("dan"), "frank@example.org")),
        Err(Limited::UserMessagesPerHour)
    );
    // The null reverse-path has no sender limit.
    for _ in 0..100 {
        done(limits.message(ip("192.0.2.1"), None, "")).unwrap();
    }
    clock.advance(HOUR);
    done(limits.message(ip("192.0.2.1"), Some("alice"), "carol@example.org")).unwrap();
}

#[test]
fn exempt_networks_pass_every_limit_and_are_not_counted() {
    let every_limit_at_one = [
        "exempt_networks = [\"192.0.2.0/24\", \"::1\"]",
        "client_connections_per_minute = 1",
        "network_connections_per_minute = 1",
        "client_concurrent_connections = 1",
        "network_concurrent_connections = 1",
        "client_messages_per_minute = 1",
        "network_messages_per_minute = 1",
        "client_recipients_per_minute = 1",
        "network_recipients_per_minute = 1",
        "client_auth_failures_per_hour = 1",
        "network_auth_failures_per_hour = 1",
        "user_messages_per_hour = 1",
        "sender_messages_per_hour = 1",
    ];
    let (limits, _clock) = limits(&every_limit_at_one.join("\n"));
    let mut slots = Vec::new();
    for exempt in [ip("192.0.2.1"), ip("::ffff:192.0.2.1"), ip("::1")] {
        for _ in 0..10 {
            slots.push(limits.admit(exempt).unwrap());
            done(limits.message(exempt, Some("alice"), "a@example.org")).unwrap();
            done(limits.recipient(exempt)).unwrap();
            done(limits.auth_failed(exempt));
            assert!(done(limits.auth_allowed(exempt)));
        }
    }
    assert_eq!(limits.concurrency.as_ref().unwrap().keys(), (0, 0));
    assert_eq!(limits.messages.client.as_ref().unwrap().keys(), 0);
    // Others are limited, and alice's and a@'s counts are still whole.
    let other = ip("198.51.100.1");
    let _slot = limits.admit(other).unwrap();
    assert_eq!(limits.admit(other).map(drop), Err(Limited::ClientConcurrentConnections));
    done(limits.message(other, Some("alice"), "a@example.org")).unwrap();
    assert_eq!(done(limits.message(other, None, "b@example.org")), Err(Limited::ClientMessagesPerMinute));
}

#[test]
fn a_concurrency_slot_is_given_back_when_dropped() {
    let (limits, _clock) = limits("client_concurrent_connections = 2\nnetwork_concurrent_connections = 3");
    let client = ip("192.0.2.1");
    let first = limits.admit(client).unwrap();
    let second = limits.admit(client).unwrap();
    assert_eq!(limits.admit(client).map(drop), Err(Limited::ClientConcurrentConnections));
    let neighbour = limits.admit(ip("192.0.2.2")).unwrap();
    assert_eq!(limits.admit(ip("192.0.2.3")).map(drop), Err(Limited::NetworkConcurrentConnections));
    let elsewhere = limits.admit(ip("192.0.3.1")).unwrap();
    drop(first);
    let third = limits.admit(client).unwrap();
    assert_eq!(limits.concurrency.as_ref().unwrap().keys(), (3, 2));
    drop((second, third, neighbour, elsewhere));
    // Every entry goes at zero: the maps hold only open connections.
    assert_eq!(limits.concurrency.as_ref().unwrap().keys(), (0, 0));
}

#[test]
fn a_connection_refused_by_concurrency_is_not_counted_per_minute() {
    let (limits, _clock) = limits("client_concurrent_connections = 1\nclient_connections_per_minute = 2");
    let client = ip("192.0.2.1");
    let slot = limits.admit(client).unwrap();
    for _ in 0..10 {
        assert_eq!(limits.admit(client).map(drop), Err(Limited::ClientConcurrentConnections));
    }
    drop(slot);
    let slot = limits.admit(client).unwrap();
    drop(slot);
    assert_eq!(limits.admit(client).map(drop), Err(Limited::ClientConnectionsPerMinute));
}

#[test]
fn the_key_cap_bounds_memory_under_a_million_distinct_addresses() {
    let (limits, clock) = limits("client_connections_per_minute = 5\nnetwork_connections_per_minute = 1000");
    let client_limit = limits.connections.client.as_ref().unwrap();
    let network_limit = limits.connections.network.as_ref().unwrap();
    let mut admitted = 0;
    for n in 0..1_000_000u32 {
        // Distinct addresses in distinct /24s, from 64.0.0.0 on.
        let from = IpAddr::V4(Ipv4Addr::from(0x4000_0000 | (n << 8) | 1));
        admitted += usize::from(limits.admit(from).is_ok());
    }
    assert!(client_limit.keys() <= MAX_KEYS + 1, "{}", client_limit.keys());
    assert!(network_limit.keys() <= MAX_KEYS + 1, "{}", network_limit.keys());
    // Each address past the cap counted in one shared cell: the flood of
    // new addresses got 5 connections in all, not 5 each.
    assert_eq!(admitted, MAX_KEYS + 5);
    // A window later the idle keys are forgotten and new ones get their own.
    clock.advance(3 * MINUTE);
    for _ in 0..5 {
        drop(limits.admit(ip("192.0.2.1")).unwrap());
    }
    assert!(client_limit.keys() < 10, "{}", client_limit.keys());
}

#[test]
fn a_connection_slot_can_live_in_any_task() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<ConnectionSlot>();
    shared::<RateLimits>();
}

#[test]
fn only_a_limit_on_messages_asks_about_mail() {
    for (text, counts) in [
        ("client_connections_per_minute = 5\nclient_concurrent_connections = 2", false),
        ("client_recipients_per_minute = 5\nclient_auth_failures_per_hour = 5", false),
        ("client_messages_per_minute = 5", true),
        ("network_messages_per_minute = 5", true),
        ("user_messages_per_hour = 5", true),
        ("sender_messages_per_hour = 5", true),
    ] {
        assert_eq!(limits(text).0.counts_messages(), counts, "{text}");
    }
}
