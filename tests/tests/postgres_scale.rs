//! Scale-out (issue 17): two smtpcell hosts on different ports store into
//! one PostgreSQL cluster; 20 clients spread over both send 2,000
//! messages. Every message is stored exactly once, byte for byte, under
//! the queue id its 250 named, by the host that acknowledged it, and the
//! ids grow with acknowledgement.

use std::collections::HashSet;

use smtpcell_tests::load::{Load, by_message_id, host, ids_follow_acknowledgements, stored};
use smtpcell_tests::postgres::Postgres;

const CLIENTS: usize = 20;
const PER_CLIENT: usize = 100;

#[test]
fn two_hosts_store_2000_messages_from_20_clients_exactly_once_in_one_cluster() {
    let pg = Postgres::start();
    let hosts = [host(&pg.url(), "mx1.test"), host(&pg.url(), "mx2.test")];
    let addrs: Vec<_> = hosts.iter().map(|h| h.addr).collect();
    assert_ne!(addrs[0].port(), addrs[1].port());

    let load = Load::spawn(&addrs, CLIENTS, Some(PER_CLIENT));
    let sent = load.join();
    assert_eq!(sent.len(), CLIENTS * PER_CLIENT);
    let refused: Vec<_> = sent.iter().filter(|s| s.queue_id().is_none()).collect();
    assert!(refused.is_empty(), "{} messages not accepted, first: {:?}", refused.len(), refused[0].outcome);

    let rows = stored(&pg).unwrap();
    assert_eq!(rows.len(), CLIENTS * PER_CLIENT, "one row per message");
    let rows_by_id = by_message_id(&rows);
    for s in &sent {
        let found = &rows_by_id[s.message_id.as_str()];
        assert_eq!(found.len(), 1, "{} stored {} times", s.message_id, found.len());
        let row = found[0];
        assert_eq!(Some(row.queue_id.as_str()), s.queue_id(), "{}: the queue id of the 250", s.message_id);
        assert_eq!(row.receiving_host, ["mx1.test", "mx2.test"][s.host], "{}: the host it was sent to", s.message_id);
        assert!(row.content == s.content, "{}: stored content differs from what was sent", s.message_id);
    }
    let queue_ids: HashSet<_> = rows.iter().map(|r| r.queue_id.as_str()).collect();
    assert_eq!(queue_ids.len(), rows.len(), "queue ids are unique across hosts");
    // Both hosts took their share, and large messages were among them.
    for name in ["mx1.test", "mx2.test"] {
        assert_eq!(rows.iter().filter(|r| r.receiving_host == name).count(), CLIENTS * PER_CLIENT / 2, "{name}");
    }
    assert!(rows.iter().filter(|r| r.content.len() > 64 * 1024).count() >= 40);

    ids_follow_acknowledgements(&sent, &rows_by_id).unwrap();
    // One client's messages were sent one after another: their ids too.
    for client in 0..CLIENTS {
        let prefix = format!("<c{client}.m");
        let ids: Vec<i64> = sent
            .iter()
            .filter(|s| s.message_id.starts_with(&prefix))
            .map(|s| rows_by_id[s.message_id.as_str()][0].id)
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "client {client}'s ids are not increasing: {ids:?}");
    }
}
