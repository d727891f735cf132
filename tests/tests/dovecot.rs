//! Dovecot reads the per-user Maildirs smtpcell writes (issue 14): a
//! server configured as `smtpcell serve --config` is (a local domain, a
//! recipients table with an alias, `mailboxes`) takes mail from python3's
//! smtplib, then a private Dovecot (Debian's dovecot-imapd, on loopback
//! with its own configuration, `mail_location = maildir:ROOT/%d/%n`, the
//! users file `smtpcell passwd` writes as its passdb) serves each user's
//! INBOX over IMAP, and every message fetched is byte for byte
//! the file smtpcell wrote: `Delivered-To` its mailbox, the content as
//! sent (8-bit, 998-octet lines, dots), no other recipient named.
//!
//! Dovecot is installed by .ci/run; without it the test fails saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

use smtpcell_tests::configured::ConfiguredServer;
use smtpcell_tests::dovecot::{Dovecot, hand_over, share_users_file};
use smtpcell_tests::server::stored_message;

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
hostname = "mx.example.org"
maildir = "{dir}/inbox"
domains = ["example.org"]
recipients = "{dir}/recipients"
mailboxes = "{dir}/vmail"
"#;

const RECIPIENTS: &str = "\
# virtual(5): address, then the mailboxes it delivers to.
alice@example.org  alice@example.org
bob@example.org    bob@example.org
team@example.org   alice@example.org, bob@example.org
";

const USERS: [(&str, &str); 2] = [("alice@example.org", "alice-secret"), ("bob@example.org", "bob-secret")];

/// A line of exactly 998 octets, RFC 5322's limit, half of them 8-bit.
fn long_line() -> String {
    // "Grüße-€ " is 12 octets: 83 of them and "ok" make 998.
    let line = format!("{}ok", "Grüße-€ ".repeat(83));
    assert_eq!(line.len(), 998);
    line
}

/// To alice, bob blind-copied (he is in the envelope only).
fn to_alice_bcc_bob() -> Vec<u8> {
    let mut m = b"From: Carol <carol@client.example>\r\nTo: Alice <alice@example.org>\r\n\
        Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        .to_vec();
    m.extend(format!("Grüße aus Köln, ½ € 🦀\r\n{}\r\n", long_line()).as_bytes());
    // A lone dot (smtplib stuffs it), a leading dot, trailing white space,
    // and an octet that is not UTF-8 at all (Latin-1 "été").
    m.extend(b".\r\n.hidden\r\ntrailing \t \r\n\xe9t\xe9\r\n");
    m
}

/// To the alias, which delivers to alice and bob.
fn to_the_team() -> Vec<u8> {
    let mut m = b"From: Carol <carol@client.example>\r\nTo: team@example.org\r\nSubject: team\r\n\
        MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        .to_vec();
    // "From " opening a line: a Maildir keeps it as it is (no mbox ">From").
    m.extend(format!("From the desk of Carol: ça va?\r\n{}\r\n\r\n", long_line()).as_bytes());
    m
}

/// Sends `message` from carol@client.example to `recipients` with python3's
/// smtplib (BODY=8BITMIME); every recipient must be accepted.
fn send(server: &ConfiguredServer, recipients: &[&str], message: &[u8]) {
    let file = server.dir().join("message.eml");
    std::fs::write(&file, message).unwrap();
    let script = r#"
import smtplib, sys
host, port, rcpts, path = sys.argv[1:5]
with smtplib.SMTP(host, int(port), timeout=30) as s:
    s.ehlo("client.example")
    refused = s.sendmail("carol@client.example", rcpts.split(","), open(path, "rb").read(),
                         mail_options=["BODY=8BITMIME"])
    assert refused == {}, refused
"#;
    let out = Command::new("python3")
        .args(["-c", script, &server.addr.ip().to_string(), &server.addr.port().to_string()])
        .arg(recipients.join(","))
        .arg(&file)
        .output()
        .expect("python3 runs (.ci/run installs it)");
    assert!(out.status.success(), "smtplib: {}", String::from_utf8_lossy(&out.stderr));
}

/// The files smtpcell stored in `user`'s Maildir under `vmail/example.org/`,
/// and what each holds.
fn stored(server: &ConfiguredServer, user: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let files = server.delivered(&format!("vmail/example.org/{user}"));
    files.into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect()
}

/// Each of `user`'s stored copies: `Delivered-To: user@example.org` first,
/// a trace that names none of `others`, and one of `sent` after it.
fn check_copies(copies: &[(PathBuf, Vec<u8>)], user: &str, others: &[&str], sent: &[&[u8]]) {
    let mut contents = Vec::new();
    for (path, bytes) in copies {
        let delivered_to = format!("Delivered-To: {user}@example.org\r\n");
        assert!(bytes.starts_with(delivered_to.as_bytes()), "{}: {}", path.display(), head(bytes));
        let message = stored_message(path).unwrap();
        let trace = message.trace_text();
        for other in others {
            assert!(!trace.contains(other), "{} names {other}:\n{trace}", path.display());
        }
        contents.push(message.content);
    }
    contents.sort();
    let mut expected: Vec<Vec<u8>> = sent.iter().map(|m| m.to_vec()).collect();
    expected.sort();
    assert!(contents == expected, "{user}'s stored contents are not what was sent");
}

/// What Dovecot serves `user` is, message for message, what is on disk.
fn assert_fetched_exactly(dovecot: &Dovecot, user: &str, password: &str, on_disk: &[(PathBuf, Vec<u8>)]) {
    let mut fetched = dovecot.fetch_inbox(user, password).unwrap();
    let mut files: Vec<Vec<u8>> = on_disk.iter().map(|(_, bytes)| bytes.clone()).collect();
    assert_eq!(fetched.len(), files.len(), "{user}: {} messages over IMAP, {} on disk", fetched.len(), files.len());
    fetched.sort();
    files.sort();
    for (got, want) in fetched.iter().zip(&files) {
        if let Some(at) = first_difference(got, want) {
            panic!(
                "{user}: the fetched message differs from the stored file at octet {at} \
                 ({} octets fetched, {} stored):\nfetched: {}\nstored:  {}",
                got.len(),
                want.len(),
                head(&got[at.saturating_sub(20)..]),
                head(&want[at.saturating_sub(20)..])
            );
        }
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn head(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
}

#[test]
fn dovecot_serves_each_users_maildir_byte_exact() {
    let server = ConfiguredServer::start(CONFIG, &[("recipients", RECIPIENTS)]).unwrap();
    let (first, second) = (to_alice_bcc_bob(), to_the_team());
    send(&server, &["alice@example.org", "bob@example.org"], &first);
    send(&server, &["team@example.org"], &second);

    let alice = stored(&server, "alice");
    let bob = stored(&server, "bob");
    let names = |copies: &[(PathBuf, Vec<u8>)]| copies.iter().map(|(path, _)| path.clone()).collect::<Vec<_>>();
    assert_eq!((alice.len(), bob.len()), (2, 2), "alice's copies {:?}, bob's {:?}", names(&alice), names(&bob));
    check_copies(&alice, "alice", &["bob@"], &[&first, &second]);
    check_copies(&bob, "bob", &["alice@"], &[&first, &second]);
    // The blind copy: bob's address is nowhere in what alice can read.
    for (path, bytes) in &alice {
        assert!(!String::from_utf8_lossy(bytes).contains("bob@"), "{} names bob", path.display());
    }

    // The users file smtpcell's AUTH reads, shared with Dovecot as its passdb.
    let users = server.dir().join("users");
    for (user, password) in USERS {
        smtpcell::users::set_password(&users, user, password.as_bytes()).unwrap();
    }
    share_users_file(&users).unwrap();
    let vmail: &Path = &server.dir().join("vmail");
    hand_over(vmail).unwrap();
    let dovecot = Dovecot::start(vmail, &users).unwrap();
    assert_fetched_exactly(&dovecot, USERS[0].0, USERS[0].1, &alice);
    assert_fetched_exactly(&dovecot, USERS[1].0, USERS[1].1, &bob);
    // A user's password does not open another's mailbox.
    let refused = dovecot.fetch_inbox(USERS[0].0, USERS[1].1).unwrap_err().to_string();
    assert!(refused.contains("AUTHENTICATIONFAILED"), "{refused}");
}
