//! The PostgreSQL spool (issue 17) against a real PostgreSQL cluster
//! (tests/harness/postgres.rs): every stored row byte for byte what the
//! client sent, with its envelope and DSN parameters; nothing stored for a
//! transaction that did not end in 250; group commit, cancellation and a
//! failed batch; the session settings and the migrations the pool relies on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use smtpcell::postgres::Database;
use smtpcell::spool::{Destination, Mailbox, MessageMeta, PostgresSpool, Spool, StoredRecipient, trace_headers};
use smtpcell_tests::TESTBED_COMPONENT;
use smtpcell_tests::client::RawClient;
use smtpcell_tests::driver::load_component;
use smtpcell_tests::postgres::Postgres;
use smtpcell_tests::server::{TestServer, TestServerBuilder};

/// A test server storing into `pg`.
fn server(pg: &Postgres) -> TestServerBuilder {
    let database = Database::open(&pg.url()).unwrap();
    TestServer::builder().spool(Arc::new(PostgresSpool::open(database, std::env::temp_dir())))
}

fn unhex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex length");
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// One `bytea` column of the message `queue_id`.
fn bytes(pg: &Postgres, column: &str, queue_id: &str) -> Vec<u8> {
    unhex(&pg.psql(&format!("SELECT encode({column}, 'hex') FROM smtpcell_message WHERE queue_id = '{queue_id}'")))
}

fn count(pg: &Postgres) -> usize {
    pg.psql("SELECT count(*) FROM smtpcell_message").parse().unwrap()
}

/// The queue id of a `250 2.0.0 Ok: queued as ID` reply.
fn queued(reply: &str) -> String {
    let id = reply.strip_prefix("250 2.0.0 Ok: queued as ").unwrap_or_else(|| panic!("not accepted: {reply:?}"));
    id.trim_end().to_string()
}

/// Dot-stuffs `content` (RFC 5321 section 4.5.2) and ends it.
fn data(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 64);
    for line in content.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// `len` octets of CRLF lines holding every octet value but CR, LF and NUL.
fn eight_bit_content(len: usize) -> Vec<u8> {
    let mut content = b"Subject: large\r\n\r\n".to_vec();
    let mut n = 0u32;
    while content.len() < len {
        let line: Vec<u8> =
            (0..70).map(|i| ((n * 71 + i) % 253 + 1) as u8).filter(|&b| b != b'\r' && b != b'\n').collect();
        content.extend_from_slice(&line);
        content.extend_from_slice(b"\r\n");
        n += 1;
    }
    content
}

#[test]
fn every_row_holds_the_content_and_envelope_the_client_sent() {
    let pg = Postgres::start();
    let server = server(&pg).start();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    c.command("EHLO client.example").unwrap();

    // DSN parameters, two recipients, dot-stuffed lines and 8-bit text.
    let small = "Subject: dsn\r\n\r\n.starts with a dot\r\n..two dots\r\nna\u{ef}ve caf\u{e9}\r\n".as_bytes();
    c.command("MAIL FROM:<alice@example.org> BODY=8BITMIME RET=HDRS ENVID=env+2D42").unwrap();
    c.command("RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.org").unwrap();
    c.command("RCPT TO:<carol@example.net> NOTIFY=NEVER").unwrap();
    assert!(c.command("DATA").unwrap().starts_with("354"));
    c.send(&data(small)).unwrap();
    let dsn = queued(&c.reply().unwrap());

    // Larger than what a connection holds in memory: spilled, read back.
    let large = eight_bit_content(300_000);
    c.command("MAIL FROM:<> BODY=8BITMIME SMTPUTF8").unwrap();
    c.command("RCPT TO:<d\u{f6}rte@example.org>").unwrap();
    assert!(c.command("DATA").unwrap().starts_with("354"));
    c.send(&data(&large)).unwrap();
    let spilled = queued(&c.reply().unwrap());

    // BDAT: no dot-stuffing, binary content.
    let binary = b"Subject: bdat\r\n\r\n.not stuffed\r\n\x00\x01\xff\r\n".to_vec();
    c.command("MAIL FROM:<alice@example.org> BODY=BINARYMIME").unwrap();
    c.command("RCPT TO:<bob@example.org>").unwrap();
    c.send(format!("BDAT {} LAST\r\n", binary.len()).as_bytes()).unwrap();
    c.send(&binary).unwrap();
    let bdat = queued(&c.reply().unwrap());
    c.command("QUIT").unwrap();

    assert_eq!(count(&pg), 3);
    assert!(bytes(&pg, "content", &dsn) == small, "the small message differs");
    assert!(bytes(&pg, "content", &spilled) == large, "the spilled message differs");
    assert!(bytes(&pg, "content", &bdat) == binary, "the BDAT message differs");

    let envelope = |id: &str| {
        pg.psql(&format!(
            "SELECT receiving_host, host(client_ip), helo, reverse_path, protocol, body_type, smtputf8, \
             coalesce(dsn_ret, '-'), coalesce(dsn_envid, '-'), coalesce(tls_version, '-'), \
             coalesce(authenticated, '-'), component LIKE 'smtpcell-guest@%' \
             FROM smtpcell_message WHERE queue_id = '{id}'"
        ))
    };
    assert_eq!(
        envelope(&dsn),
        "smtpcell.test|127.0.0.1|client.example|alice@example.org|ESMTP|8BITMIME|f|HDRS|env+2D42|-|-|t"
    );
    assert_eq!(envelope(&spilled), "smtpcell.test|127.0.0.1|client.example||UTF8SMTP|8BITMIME|t|-|-|-|-|t");
    assert_eq!(
        envelope(&bdat),
        "smtpcell.test|127.0.0.1|client.example|alice@example.org|ESMTP|BINARYMIME|f|-|-|-|-|t"
    );

    let recipients = |id: &str| {
        pg.psql(&format!(
            "SELECT r.ordinal, r.recipient, r.address, coalesce(r.notify, '-'), coalesce(r.orcpt, '-'), \
             r.destination, coalesce(r.target, '-') \
             FROM smtpcell_recipient r JOIN smtpcell_message m ON m.id = r.message_id \
             WHERE m.queue_id = '{id}' ORDER BY r.ordinal"
        ))
    };
    assert_eq!(
        recipients(&dsn),
        "0|0|bob@example.org|SUCCESS,FAILURE|rfc822;bob@example.org|inbox|-\n1|1|carol@example.net|NEVER|-|inbox|-"
    );
    assert_eq!(recipients(&spilled), "0|0|d\u{f6}rte@example.org|-|-|inbox|-");

    // The header block is the Maildir copy's, naming the queue id of the 250.
    let headers = String::from_utf8(bytes(&pg, "trace_headers", &dsn)).unwrap();
    assert!(
        headers.starts_with(
            "Return-Path: <alice@example.org>\r\n\
             X-Envelope-To: <bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.org\r\n\
             X-Envelope-To: <carol@example.net> NOTIFY=NEVER\r\n\
             X-Envelope-Body: 8BITMIME RET=HDRS ENVID=env+2D42\r\n\
             Received: from client.example ([127.0.0.1])\r\n\tby smtpcell.test (smtpcell, smtpcell-guest@"
        ),
        "{headers}"
    );
    assert!(headers.contains(&format!(") with ESMTP id {dsn};\r\n\t")), "{headers}");
    let spilled_headers = String::from_utf8(bytes(&pg, "trace_headers", &spilled)).unwrap();
    assert!(spilled_headers.starts_with(
        "Return-Path: <>\r\nX-Envelope-To: <d\u{f6}rte@example.org>\r\nX-Envelope-Body: 8BITMIME SMTPUTF8\r\n"
    ));

    // Ids increase in the order the messages were acknowledged (one
    // connection, one after the other).
    let ids = pg.psql(&format!(
        "SELECT string_agg(queue_id, ',' ORDER BY id) FROM smtpcell_message WHERE queue_id IN ('{dsn}', '{spilled}', '{bdat}')"
    ));
    assert_eq!(ids, format!("{dsn},{spilled},{bdat}"));
    server.stop().unwrap();
}

#[test]
fn a_disconnect_an_oversized_message_and_a_guest_fault_store_nothing() {
    let pg = Postgres::start();
    let testbed = load_component(&std::fs::read(TESTBED_COMPONENT).unwrap()).unwrap();
    let server = server(&pg).component(testbed).config(|c| c.max_message_size = 100_000).start();
    let open = |subject: &str| {
        let mut c = RawClient::connect(server.addr).unwrap();
        c.reply().unwrap();
        c.command("EHLO client.example").unwrap();
        c.command("MAIL FROM:<a@example.org>").unwrap();
        c.command("RCPT TO:<b@example.org>").unwrap();
        assert!(c.command("DATA").unwrap().starts_with("354"));
        c.send(format!("Subject: {subject}\r\n\r\n").as_bytes()).unwrap();
        c
    };

    // Disconnected mid-DATA, past the held bound (content already spilled).
    let mut c = open("disconnected");
    c.send(&eight_bit_content(200_000)[..150_000]).unwrap();
    c.abort();

    // Over max_message_size: refused at the end, stored nowhere.
    let mut c = open("oversized");
    c.send(&data(&eight_bit_content(150_000))).unwrap();
    let reply = c.reply().unwrap();
    assert!(reply.starts_with("552 "), "{reply:?}");

    // The guest traps inside DATA: the connection ends with 421.
    let mut c = open("doomed");
    c.send(b"some content already written\r\nX-TRAP\r\n").unwrap();
    let rest = c.read_to_close().unwrap();
    assert!(rest.starts_with("421 4.3.0 "), "{rest:?}");

    // The server still stores a message that ends well.
    let mut c = open("healthy");
    c.send(b"fine\r\n.\r\n").unwrap();
    let healthy = queued(&c.reply().unwrap());
    c.command("QUIT").unwrap();
    // Stopped (every connection ended) before counting: a late store of
    // any of the others would show.
    server.stop().unwrap();
    assert_eq!(pg.psql("SELECT string_agg(queue_id, ',') FROM smtpcell_message"), healthy);
    assert_eq!(pg.psql("SELECT count(*) FROM smtpcell_recipient"), "1");
}

fn meta(helo: &str) -> MessageMeta {
    let mailbox = Mailbox::new("bob", "example.org").unwrap();
    MessageMeta {
        server_hostname: "mx.test".into(),
        client_ip: "192.0.2.7".parse().unwrap(),
        helo: helo.into(),
        reverse_path: "alice@example.org".into(),
        recipients: vec![
            StoredRecipient {
                address: "bob@example.org".into(),
                notify: Some("DELAY".into()),
                orcpt: None,
                destinations: vec![Destination::Mailbox(mailbox)],
            },
            StoredRecipient {
                address: "team@example.org".into(),
                notify: None,
                orcpt: Some("rfc822;team@example.org".into()),
                destinations: vec![Destination::Inbox, Destination::Outgoing("team@elsewhere.example".into())],
            },
        ],
        protocol: "ESMTPSA".into(),
        body: "7BIT",
        smtputf8: false,
        dsn_return: Some("FULL"),
        dsn_envid: None,
        received_at: UNIX_EPOCH + Duration::from_secs(1_795_875_172),
        handled_by: "smtpcell-guest@9.9.9".into(),
        tls: Some(smtp_core::TlsInfo { version: "TLSv1.3".into(), cipher: "TLS_AES_256_GCM_SHA384".into() }),
        authenticated: Some("alice".into()),
    }
}

#[test]
fn messages_that_end_together_share_one_commit_and_a_cancelled_one_is_not_stored() {
    let pg = Postgres::start();
    // One thread: the commit task runs only when the test awaits, so every
    // message below is queued before the first batch starts.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let spool = PostgresSpool::open(Database::open(&pg.url()).unwrap(), std::env::temp_dir());
    let end = b"Authentication-Results: mx.test; spf=pass smtp.mailfrom=example.org\r\n".to_vec();
    let (ids, outcomes) = rt.block_on(async {
        let (mut ids, mut commits, mut flags) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..5 {
            let m = meta(&format!("client{i}.example"));
            let mut txn = spool.begin(&m).unwrap();
            txn.write(format!("Subject: {i}\r\n\r\n").as_bytes()).unwrap();
            txn.write(b"body\r\n").unwrap();
            ids.push(txn.queue_id().to_string());
            let cancelled = Arc::new(AtomicBool::new(false));
            commits.push(txn.commit(end.clone(), cancelled.clone()));
            flags.push(cancelled);
        }
        // The connection of message 2 gave up waiting (its client heard 451).
        flags[2].store(true, Ordering::SeqCst);
        let mut outcomes = Vec::new();
        for commit in commits {
            outcomes.push(commit.await);
        }
        (ids, outcomes)
    });
    for (i, outcome) in outcomes.iter().enumerate() {
        match i {
            2 => assert_eq!(outcome.as_ref().unwrap_err().kind(), std::io::ErrorKind::TimedOut),
            _ => assert!(outcome.is_ok(), "{i}: {outcome:?}"),
        }
    }
    let stored = pg.psql("SELECT string_agg(queue_id, ',' ORDER BY id) FROM smtpcell_message");
    assert_eq!(stored, [&ids[0], &ids[1], &ids[3], &ids[4]].map(|s| s.as_str()).join(","));
    // One transaction wrote them all: one xmin.
    assert_eq!(pg.psql("SELECT count(DISTINCT xmin::text) FROM smtpcell_message"), "1");

    // Every column as the metadata gave it, the header block exactly
    // trace_headers' (end headers included), destinations one row each.
    let id = &ids[0];
    assert_eq!(
        pg.psql(&format!(
            "SELECT receiving_host, host(client_ip), helo, protocol, body_type, dsn_ret, tls_version, tls_cipher, \
             authenticated, component, extract(epoch FROM received_at)::bigint FROM smtpcell_message WHERE queue_id = '{id}'"
        )),
        "mx.test|192.0.2.7|client0.example|ESMTPSA|7BIT|FULL|TLSv1.3|TLS_AES_256_GCM_SHA384|alice|smtpcell-guest@9.9.9|1795875172"
    );
    assert!(bytes(&pg, "trace_headers", id) == trace_headers(&meta("client0.example"), id, &end));
    assert_eq!(bytes(&pg, "content", id), b"Subject: 0\r\n\r\nbody\r\n");
    assert_eq!(
        pg.psql(&format!(
            "SELECT string_agg(concat_ws('|', ordinal, recipient, address, notify, orcpt, destination, target), E'\\n' ORDER BY ordinal) \
             FROM smtpcell_recipient WHERE message_id = (SELECT id FROM smtpcell_message WHERE queue_id = '{id}')"
        )),
        "0|0|bob@example.org|DELAY|mailbox|bob@example.org\n\
         1|1|team@example.org|rfc822;team@example.org|inbox\n\
         2|1|team@example.org|rfc822;team@example.org|outgoing|team@elsewhere.example"
    );
}

#[test]
fn a_failed_batch_fails_its_own_messages_and_the_next_batch_is_stored() {
    let pg = Postgres::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let database = Database::open(&pg.url()).unwrap();
    drop(rt.block_on(database.client()).expect("the schema is created"));
    // A message from this HELO makes its INSERT fail, as a broken
    // constraint or a full disk on the server would.
    pg.psql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.helo = 'refused.example' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON smtpcell_message FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    let spool = PostgresSpool::open(database, std::env::temp_dir());
    let commit = |helo: &str| {
        let mut txn = spool.begin(&meta(helo)).unwrap();
        txn.write(b"Subject: x\r\n\r\nx\r\n").unwrap();
        (txn.queue_id().to_string(), txn.commit(Vec::new(), Arc::new(AtomicBool::new(false))))
    };
    let (first, second, third) = rt.block_on(async {
        // One batch: a good message beside the refused one.
        let ((_, good), (_, refused)) = (commit("good.example"), commit("refused.example"));
        let first = (good.await, refused.await);
        let (id, next) = commit("next.example");
        (first.0, first.1, (id, next.await))
    });
    assert!(first.is_err(), "the batch's other message failed with it");
    let err = second.unwrap_err().to_string();
    assert!(err.contains("refused by the test"), "{err}");
    third.1.expect("the next batch is stored");
    assert_eq!(pg.psql("SELECT string_agg(queue_id, ',') FROM smtpcell_message"), third.0);
}

#[test]
fn sessions_commit_synchronously_whatever_the_server_default_and_migrate_once() {
    let pg = Postgres::start();
    pg.psql("ALTER SYSTEM SET synchronous_commit = off");
    pg.psql("SELECT pg_reload_conf()");
    assert_eq!(pg.psql("SHOW synchronous_commit"), "off", "the server's default is off");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        // Two hosts starting together on an empty database.
        let (one, two) = (Database::open(&pg.url()).unwrap(), Database::open(&pg.url()).unwrap());
        let (a, b) = tokio::join!(one.client(), two.client());
        let (a, _b) = (a.unwrap(), b.unwrap());
        let row = a.query_one("SHOW synchronous_commit", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "on");
        let row = a.query_one("SELECT current_setting('application_name')", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "smtpcell");
    });
    assert_eq!(pg.psql("SELECT count(*) FROM refinery_schema_history WHERE version = 1"), "1");
    assert_eq!(pg.psql("SELECT name FROM refinery_schema_history WHERE version = 1"), "spool");
}
