//! Failover (issue 17): a primary with a synchronous standby, two smtpcell
//! hosts given both in one multi-host URL (`target_session_attrs=read-write`),
//! clients sending under load; the primary is killed with SIGKILL in the
//! middle and the standby promoted. Every message acknowledged with 250 is
//! in the promoted cluster, no message is stored twice, and both hosts go
//! on accepting mail, now committed on the new primary.
//!
//! The clients never retry: a message refused with 4xx, or whose
//! connection broke after its content began, is in doubt (its COMMIT may
//! have reached the standby while its reply was lost) and may be stored, at
//! most once.

use std::time::Duration;

use smtpcell_tests::load::{Load, Outcome, by_message_id, host, stored};
use smtpcell_tests::postgres::{Postgres, multi_host_url};

const CLIENTS: usize = 10;
/// Messages acknowledged before the kill, and after the promotion.
const BEFORE: usize = 300;
const AFTER: usize = 300;
/// How long the hosts may take to accept mail again once the standby is
/// promoted (they find it on their next connection attempt).
const RECOVERY: Duration = Duration::from_secs(45);

#[test]
fn every_acknowledged_message_survives_killing_the_primary_and_the_hosts_continue_on_the_promoted_standby() {
    let primary = Postgres::start();
    let standby = primary.standby();
    let url = multi_host_url(&[&primary, &standby]);
    let hosts = [host(&url, "mx1.test"), host(&url, "mx2.test")];
    let addrs: Vec<_> = hosts.iter().map(|h| h.addr).collect();

    let load = Load::spawn(&addrs, CLIENTS, None);
    load.wait_accepted(BEFORE, Duration::from_secs(60));
    primary.kill9();
    let killed = load.now();
    standby.promote();
    let promoted = load.accepted();
    load.wait_accepted(promoted + AFTER, RECOVERY);
    load.stop();
    let sent = load.join();

    let rows = stored(&standby).unwrap();
    let rows_by_id = by_message_id(&rows);
    let known: std::collections::HashSet<&str> = sent.iter().map(|s| s.message_id.as_str()).collect();
    for (message_id, found) in &rows_by_id {
        assert!(known.contains(message_id), "a row no client sent: {message_id:?}");
        assert_eq!(found.len(), 1, "{message_id} stored {} times", found.len());
    }
    let (mut accepted, mut in_doubt, mut in_doubt_stored) = (0, 0, 0);
    for s in &sent {
        let found = rows_by_id.get(s.message_id.as_str());
        match &s.outcome {
            Outcome::Accepted(queue_id) => {
                accepted += 1;
                let row =
                    found.unwrap_or_else(|| panic!("{} was acknowledged ({queue_id}) and is lost", s.message_id))[0];
                assert_eq!(&row.queue_id, queue_id, "{}", s.message_id);
                assert!(row.content == s.content, "{}: stored content differs from what was sent", s.message_id);
            }
            Outcome::InDoubt(_) => {
                in_doubt += 1;
                in_doubt_stored += usize::from(found.is_some());
            }
            Outcome::NotSent(why) => assert!(found.is_none(), "{} was never sent ({why}) yet is stored", s.message_id),
        }
    }
    eprintln!("{accepted} acknowledged, {in_doubt} in doubt ({in_doubt_stored} of them stored), {} rows", rows.len());
    assert!(accepted >= BEFORE + AFTER);

    // Both hosts acknowledged mail that began after the kill: committed on
    // the promoted standby, the only primary left.
    for (index, name) in ["mx1.test", "mx2.test"].iter().enumerate() {
        let after = sent.iter().filter(|s| s.host == index && s.queue_id().is_some() && s.ended > killed).count();
        assert!(after > 0, "{name} acknowledged nothing after the failover");
    }
}
