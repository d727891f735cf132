//! The host's side of the policy per message, without the sandbox or the
//! network: the decisions `Rules` takes for one message of workload b (one
//! MAIL, one RCPT, the recipient's destinations), for the configurations of
//! `bench/policy.py`:
//!
//! - "domains": `domains` only;
//! - "rate limits": that plus every `[rate_limits]` limit, far above what
//!   the bench sends (each is checked and counted; 4e9, not
//!   `bench/policy.py`'s 10^6: criterion sends millions);
//! - "policy": that plus a 10,102-key recipients table;
//! - "greylisting": that plus greylisting, the triplet already passed;
//! - "policy, decided now": "policy"'s decisions as the connection takes
//!   them, through `Policy::decide_now` (no future).
//!
//! `cargo bench -p smtpcell --bench policy`; bench/README.md has figures.
//! What this does not show (the guest stopping at the question and being
//! called again with the answer) is what `bench/policy.py` adds.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use smtp_core::{Answer, BodyType, MailRequest, Question, RcptRequest, Recipient};
use smtpcell::policy::{
    Client, Domains, GreylistingConfig, Policy, RateLimitsConfig, Role, Rules, RulesConfig, SystemClock,
};

const RATE_LIMITS: &str = "
client_connections_per_minute = 4000000000
network_connections_per_minute = 4000000000
client_concurrent_connections = 4000000000
network_concurrent_connections = 4000000000
client_messages_per_minute = 4000000000
network_messages_per_minute = 4000000000
client_recipients_per_minute = 4000000000
network_recipients_per_minute = 4000000000
client_auth_failures_per_hour = 4000000000
network_auth_failures_per_hour = 4000000000
user_messages_per_hour = 4000000000
sender_messages_per_hour = 4000000000
";

/// bench/policy.py's table: 10,000 users, 100 aliases, a catch-all of
/// another domain, and the bench's own recipient.
fn write_table(path: &Path) {
    let mut text = String::from("rcpt@bench.example rcpt@bench.example\n@catchall.example rcpt@bench.example\n");
    for user in 0..10_000 {
        writeln!(text, "user{user}@bench.example user{user}@bench.example").unwrap();
    }
    for alias in 0..100 {
        writeln!(text, "alias{alias}@bench.example user{alias}@bench.example, user{}@bench.example", alias + 1)
            .unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn rules(dir: &Path, rate_limits: bool, table: bool, greylisting: bool) -> Rules {
    let mut config = RulesConfig {
        domains: Domains::parse(&["bench.example", "catchall.example"]).unwrap(),
        recipient_delimiter: "+".into(),
        ..RulesConfig::default()
    };
    if rate_limits {
        config.rate_limits = toml::from_str::<RateLimitsConfig>(RATE_LIMITS).unwrap();
    }
    if table {
        let path = dir.join("recipients");
        write_table(&path);
        config.recipients = Some(path);
    }
    if greylisting {
        let text = format!("enabled = true\nmin_delay_secs = 0\ndatabase = {:?}\n", dir.join("greylist.redb"));
        config.greylisting = toml::from_str::<GreylistingConfig>(&text).unwrap();
    }
    Rules::build(config, None, Arc::new(SystemClock), None, None).unwrap()
}

/// One message's decisions: MAIL when asked, RCPT, the destinations.
async fn message(rules: &Rules, client: &Client, mail: &MailRequest, rcpt: &RcptRequest) {
    if rules.questions().mail {
        assert_eq!(rules.mail(client, mail).await, Answer::ACCEPT);
    }
    assert_eq!(rules.rcpt(client, rcpt).await, Answer::ACCEPT);
    assert_eq!(rules.destinations(client, &rcpt.recipient.address).len(), 1);
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::connected(Role::Mx, IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
    let mail = MailRequest {
        helo: "client.example".into(),
        reverse_path: "bench@bench.example".into(),
        body: BodyType::SevenBit,
        smtputf8: false,
        declared_size: None,
        dsn_return: None,
        dsn_envid: None,
    };
    let rcpt = RcptRequest {
        reverse_path: mail.reverse_path.clone(),
        recipient: Recipient { address: "rcpt@bench.example".into(), notify: None, orcpt: None },
        accepted: 0,
    };
    let mut group = c.benchmark_group("policy per message");
    for (name, rate_limits, table, greylisting) in [
        ("domains", false, false, false),
        ("rate limits", true, false, false),
        ("policy", true, true, false),
        ("greylisting", true, true, true),
    ] {
        let rules = rules(dir.path(), rate_limits, table, greylisting);
        if greylisting {
            // The first attempt is deferred; with no minimum delay the
            // retry passes, and the triplet stays passed.
            runtime.block_on(async {
                let _ = rules.rcpt(&client, &rcpt).await;
                assert_eq!(rules.rcpt(&client, &rcpt).await, Answer::ACCEPT);
            });
        }
        group.bench_function(name, |b| b.iter(|| runtime.block_on(message(&rules, &client, &mail, &rcpt))));
    }
    // The same decisions as the connection takes them when the policy
    // decides in memory (`Policy::decide_now`): no future, no runtime.
    let rules = rules(dir.path(), true, true, false);
    let (mail, rcpt) = (Question::Mail(mail), Question::Rcpt(rcpt));
    group.bench_function("policy, decided now", |b| {
        b.iter(|| {
            assert_eq!(rules.decide_now(&client, &mail), Some(Answer::ACCEPT));
            assert_eq!(rules.decide_now(&client, &rcpt), Some(Answer::ACCEPT));
            assert_eq!(rules.destinations(&client, "rcpt@bench.example").len(), 1);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
