//! `smtpcell serve --store postgres://...`, `smtpcell export` and `config
//! check` as a user runs them, against a real PostgreSQL cluster (the
//! fixture of tests/harness/postgres.rs): a server that starts while the
//! database is down, answers 451 4.3.0 and stores once it is back, without
//! a restart, and logs the database without its password; an export that
//! writes each message byte for byte as its Maildir copy, once.

mod support;

#[path = "../../tests/harness/postgres.rs"]
#[allow(dead_code)]
mod postgres;

/// `postgres` takes one helper from the Dovecot fixture (directory modes
/// when running as root).
#[path = "../../tests/harness/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;

use std::path::Path;
use std::process::Command;

use postgres::Postgres;
use support::{BIN, Client, START, TempDir, serve, stderr, stdout};

/// A password the cluster does not ask for (trust authentication), so it
/// may be in the URL, and must be in no log line.
const PASSWORD: &str = "hunter2-not-logged";

fn url_with_password(pg: &Postgres) -> String {
    pg.url().replace("smtpcell@", &format!("smtpcell:{PASSWORD}@"))
}

fn count(pg: &Postgres) -> usize {
    pg.psql("SELECT count(*) FROM smtpcell_message").parse().unwrap()
}

/// One message on an open session (after EHLO); returns the final reply.
fn message(c: &mut Client, subject: &str) -> String {
    c.expect("MAIL FROM:<sender@example.org>", "250");
    c.expect("RCPT TO:<rcpt@example.org>", "250");
    c.expect("DATA", "354");
    c.command(&format!("Subject: {subject}\r\n\r\nhello\r\n."))
}

#[test]
fn serve_answers_451_while_the_database_is_down_and_stores_once_it_is_back() {
    let pg = Postgres::start();
    pg.stop();
    let dir = TempDir::new("pg-down");
    let served = serve(dir.path(), &["--store", &url_with_password(&pg)]);
    let shown = format!("store=postgres://smtpcell@127.0.0.1:{}/smtpcell", pg.port());
    served.log.wait_for(0, &["storing mail in PostgreSQL", &shown], START);
    served.log.wait_for(0, &["PostgreSQL unreachable", "451 4.3.0", "127.0.0.1"], START);

    // Down at start-up: the server serves, and refuses each message for now.
    let mut c = Client::greeted(served.addr);
    c.expect("EHLO client.example", "250");
    let reply = message(&mut c, "while down");
    assert!(reply.starts_with("451 4.3.0 "), "{reply:?}");

    // Up: the same server, the same session, stores.
    let mark = served.log.mark();
    pg.restart();
    let reply = message(&mut c, "after start");
    assert!(reply.starts_with("250 2.0.0 "), "{reply:?}");
    assert_eq!(count(&pg), 1);
    served.log.wait_for(0, &["PostgreSQL schema migrated", "V1__spool"], START);
    served.log.wait_for(mark, &["PostgreSQL reachable"], START);

    // Stopped mid-run, then back: each change is logged once.
    let mark = served.log.mark();
    pg.stop();
    // The first may still be tried on a pooled connection the server closed;
    // the second must connect anew, and finds the database gone.
    for subject in ["stopped mid-run", "still stopped"] {
        let reply = message(&mut c, subject);
        assert!(reply.starts_with("451 4.3.0 "), "{reply:?}");
    }
    served.log.wait_for(mark, &["PostgreSQL unreachable", "451 4.3.0"], START);
    let mark = served.log.mark();
    pg.restart();
    let reply = message(&mut c, "back again");
    assert!(reply.starts_with("250 2.0.0 "), "{reply:?}");
    served.log.wait_for(mark, &["PostgreSQL reachable"], START);
    c.expect("QUIT", "221");
    assert_eq!(
        pg.psql("SELECT string_agg(substring(encode(content, 'escape') from 'Subject: ([a-z ]*)'), ',' ORDER BY id) FROM smtpcell_message"),
        "after start,back again"
    );
    let log = served.log.lines_so_far();
    assert!(log.contains("cannot make the message durable"), "{log}");
    assert!(!log.contains(PASSWORD), "the password is in the log:\n{log}");
}

#[test]
fn export_writes_each_message_as_its_maildir_copy_once() {
    let pg = Postgres::start();
    let dir = TempDir::new("pg-export");
    let served = serve(dir.path(), &["--store", &pg.url()]);
    let mut c = Client::greeted(served.addr);
    c.expect("EHLO client.example", "250");
    let mut sent = Vec::new();
    for subject in ["one", "two"] {
        assert!(message(&mut c, subject).starts_with("250 "));
        sent.push(format!("Subject: {subject}\r\n\r\nhello\r\n").into_bytes());
    }
    // Past what a connection holds in memory, with a dot-stuffed line.
    let large: Vec<u8> = (0..5000).flat_map(|i| format!("line {i:05} {}\r\n", "x".repeat(60)).into_bytes()).collect();
    let large = [&b"Subject: large\r\n\r\n.dot\r\n"[..], &large].concat();
    c.expect("MAIL FROM:<sender@example.org>", "250");
    c.expect("RCPT TO:<rcpt@example.org>", "250");
    c.expect("DATA", "354");
    let stuffed = String::from_utf8(large.clone()).unwrap().replace("\r\n.", "\r\n..");
    c.send(format!("{stuffed}.\r\n").as_bytes());
    assert!(c.reply().starts_with("250 "));
    sent.push(large);
    c.expect("QUIT", "221");

    let out_dir = dir.path().join("exported");
    let export = |after: &str, to: &Path| {
        let out = Command::new(BIN)
            .args(["export", "--store", &pg.url(), "--to-maildir"])
            .arg(to)
            .args(["--after", after])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let to = out_dir.display();
    assert_eq!(export("0", &out_dir), format!("exported 3 messages to {to} (0 already there, last id 3)\n"));
    let files = support::list(&out_dir.join("new"));
    assert_eq!(files.len(), 3);
    assert!(support::list(&out_dir.join("tmp")).is_empty());
    for (id, content) in (1..=3).zip(&sent) {
        let expected =
            pg.psql(&format!("SELECT encode(trace_headers || content, 'hex') FROM smtpcell_message WHERE id = {id}"));
        let file = files.iter().find(|f| f.to_str().unwrap().contains(&format!(".I{id}.cli.test"))).unwrap();
        // The name's seconds are the reception's, truncated as time(2)
        // gives them, never rounded up.
        let seconds = pg.psql(&format!(
            "SELECT floor(extract(epoch FROM received_at))::bigint FROM smtpcell_message WHERE id = {id}"
        ));
        assert!(file.file_name().unwrap().to_str().unwrap().starts_with(&format!("{seconds}.I{id}.")), "{file:?}");
        let bytes = std::fs::read(file).unwrap();
        assert_eq!(hex(&bytes), expected, "message {id}");
        assert!(bytes.ends_with(content), "message {id}: the content as sent");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("Return-Path: <sender@example.org>\r\nX-Envelope-To: <rcpt@example.org>\r\n"));
    }

    // Again: nothing new, even for a message a reader moved to cur/.
    let first = &files[0];
    let read = out_dir.join("cur").join(format!("{}:2,S", first.file_name().unwrap().to_str().unwrap()));
    std::fs::rename(first, &read).unwrap();
    assert_eq!(export("0", &out_dir), format!("exported 0 messages to {to} (3 already there, last id 3)\n"));
    assert_eq!(support::list(&out_dir.join("new")).len() + support::list(&out_dir.join("cur")).len(), 3);

    let later = dir.path().join("later");
    assert_eq!(
        export("2", &later),
        format!("exported 1 message to {} (0 already there, last id 3)\n", later.display())
    );
    let only = support::list(&later.join("new"));
    assert!(only.len() == 1 && std::fs::read(&only[0]).unwrap().ends_with(&sent[2]));
}

#[test]
fn config_check_validates_the_store_url_and_shows_it_without_its_password() {
    let dir = TempDir::new("pg-config");
    let file = dir.path().join("smtpcell.toml");
    let check = |store: &str| {
        std::fs::write(&file, format!("store = \"{store}\"\n")).unwrap();
        Command::new(BIN).args(["config", "check"]).arg(&file).output().unwrap()
    };
    let out = check(&format!(
        "postgres://mail:{PASSWORD}@db1.example:5433,db2.example:5433/smtpcell?target_session_attrs=read-write"
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "store postgres://mail@db1.example:5433,db2.example:5433/smtpcell?target_session_attrs=read-write"
        ),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains(PASSWORD));
    let out = check(&format!("postgres://mail:{PASSWORD}@db.example:port/smtpcell"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("store") && err.contains("not a PostgreSQL URL"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");

    // Greylisting keeps its state in the store, and the check says so.
    let store = format!("postgres://mail:{PASSWORD}@db.example/smtpcell");
    std::fs::write(&file, format!("store = \"{store}\"\n[greylisting]\nenabled = true\n")).unwrap();
    let out = Command::new(BIN).args(["config", "check"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("greylisting on (PostgreSQL postgres://mail@db.example:5432/smtpcell)"),
        "{}",
        stdout(&out)
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
