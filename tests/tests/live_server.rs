//! The live server over TCP: pipelining, disconnects, concurrency, storage
//! failures, shutdown, and DATA smuggling attempts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use smtpcell_tests::client::RawClient;
use smtpcell_tests::server::{TestServer, stored_message};

/// Waits (bounded) until `cond` holds: the server finishes a disconnected
/// session asynchronously.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn greeted(server: &TestServer) -> RawClient {
    let mut c = RawClient::connect(server.addr).unwrap();
    assert!(c.reply().unwrap().starts_with("220 smtpcell.test "));
    c
}

#[test]
fn pipelined_session_in_one_write_is_answered_in_order() {
    let server = TestServer::start();
    let mut c = greeted(&server);
    c.send(
        b"EHLO pipe.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\nSubject: p\r\n\r\n..dot\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n",
    )
    .unwrap();
    let codes: Vec<u16> = (0..7).map(|_| c.code().unwrap()).collect();
    assert_eq!(codes, [250, 250, 250, 250, 354, 250, 250]);
    assert!(c.reply().unwrap().starts_with("221 "));
    let files = server.delivered();
    assert_eq!(files.len(), 1);
    assert_eq!(stored_message(&files[0]).unwrap().content, b"Subject: p\r\n\r\n.dot\r\nbody\r\n");
}

#[test]
fn disconnect_in_the_middle_of_data_stores_nothing() {
    let server = TestServer::start();
    let mut c = greeted(&server);
    c.send(b"EHLO x.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n").unwrap();
    for _ in 0..4 {
        c.reply().unwrap();
    }
    c.send(&b"partial line of a message\r\n".repeat(5000)).unwrap();
    // Give the server time to open the tmp file and write into it.
    eventually("content reaches tmp/", || !server.leftovers().is_empty());
    c.abort();
    eventually("tmp/ is cleaned up", || server.leftovers().is_empty());
    assert!(server.delivered().is_empty());
    // The server still serves.
    let mut c = greeted(&server);
    assert!(c.command("NOOP").unwrap().starts_with("250"));
}

#[test]
fn fifty_concurrent_sessions_each_deliver_twenty_distinct_messages() {
    let server = TestServer::start();
    let addr = server.addr;
    let threads: Vec<_> = (0..50)
        .map(|session| {
            std::thread::spawn(move || {
                let mut c = RawClient::connect(addr).unwrap();
                assert_eq!(c.code().unwrap(), 220);
                assert_eq!(c.command("EHLO load.example").unwrap().lines().last().unwrap().get(..3), Some("250"));
                for message in 0..20 {
                    assert!(c.command("MAIL FROM:<load@example.org>").unwrap().starts_with("250"));
                    assert!(c.command(&format!("RCPT TO:<s{session}@example.org>")).unwrap().starts_with("250"));
                    assert!(c.command("DATA").unwrap().starts_with("354"));
                    let body = format!("Subject: {session}/{message}\r\n\r\n.{}\r\n", "y".repeat(message * 37));
                    c.send(format!("{}.\r\n", body.replace("\r\n.", "\r\n..")).as_bytes()).unwrap();
                    assert!(c.reply().unwrap().starts_with("250 2.0.0"));
                }
                assert!(c.command("QUIT").unwrap().starts_with("221"));
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread succeeds");
    }
    let files = server.delivered();
    assert_eq!(files.len(), 1000);
    let mut seen = std::collections::HashSet::new();
    for file in &files {
        let content = String::from_utf8(stored_message(file).unwrap().content).unwrap();
        let subject = content.lines().next().unwrap().strip_prefix("Subject: ").unwrap().to_string();
        let (_, message) = subject.split_once('/').unwrap();
        let message: usize = message.parse().unwrap();
        assert_eq!(content, format!("Subject: {subject}\r\n\r\n.{}\r\n", "y".repeat(message * 37)));
        assert!(seen.insert(subject), "duplicate message");
    }
    assert!(server.leftovers().is_empty());
}

#[test]
fn oversized_message_gets_552_and_nothing_is_stored() {
    let server = TestServer::builder().config(|c| c.max_message_size = 10_000).start();
    let mut c = greeted(&server);
    c.command("EHLO big.example").unwrap();
    c.command("MAIL FROM:<a@example.org>").unwrap();
    c.command("RCPT TO:<b@example.org>").unwrap();
    assert!(c.command("DATA").unwrap().starts_with("354"));
    c.send(&b"0123456789012345678901234567890123456789\r\n".repeat(1000)).unwrap();
    c.send(b".\r\n").unwrap();
    assert!(c.reply().unwrap().starts_with("552 5.3.4"));
    // The session goes on and a small message is accepted.
    c.command("MAIL FROM:<a@example.org>").unwrap();
    c.command("RCPT TO:<b@example.org>").unwrap();
    c.command("DATA").unwrap();
    assert!(c.command("small\r\n.").unwrap().starts_with("250"));
    assert_eq!(server.delivered().len(), 1);
    assert!(server.leftovers().is_empty());
}

/// Every end-of-data look-alike, followed by a pipelined second transaction:
/// none may end DATA early or get a second message stored.
#[test]
fn smuggled_end_of_data_never_yields_a_second_message() {
    let server = TestServer::start();
    let sequences: [&[u8]; 8] =
        [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r\r\n", b"\r\n.\r", b"\r\n\0.\r\n", b"\r\n.\0\r\n"];
    for seq in sequences {
        let mut c = greeted(&server);
        c.command("EHLO smuggle.example").unwrap();
        c.command("MAIL FROM:<a@example.org>").unwrap();
        c.command("RCPT TO:<b@example.org>").unwrap();
        assert!(c.command("DATA").unwrap().starts_with("354"));
        let mut body = b"Subject: outer\r\n\r\nhello".to_vec();
        body.extend_from_slice(seq);
        body.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n");
        c.send(&body).unwrap();
        // Exactly one final reply: the real end of the outer message.
        let reply = c.reply().unwrap();
        assert!(reply.starts_with('5') || reply.starts_with("250"), "{seq:?}: {reply}");
        assert!(c.command("NOOP").unwrap().starts_with("250"), "{seq:?}: the session is in sync");
        c.command("QUIT").unwrap();
        for file in server.delivered() {
            let content = stored_message(&file).unwrap().content;
            assert!(!content.starts_with(b"Subject: smuggled"), "{seq:?} smuggled a message in");
        }
    }
}

#[test]
fn shutdown_says_421_to_idle_sessions() {
    let server = TestServer::start();
    let mut c = greeted(&server);
    c.command("EHLO idle.example").unwrap();
    let stopper = std::thread::spawn(move || server.stop());
    let rest = c.read_to_close().unwrap();
    assert!(rest.starts_with("421 4.3.2 "), "{rest:?}");
    stopper.join().unwrap().unwrap();
}

/// A tmpfs of 64 KiB mounted for the test: a real full disk.
struct TinyFs(std::path::PathBuf);

impl TinyFs {
    fn mount(at: &Path) -> TinyFs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(at).status().unwrap();
        assert!(status.success(), "mounting a tmpfs needs root (CI runs as root)");
        TinyFs(at.to_path_buf())
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn send_message(c: &mut RawClient, body: &[u8]) -> String {
    c.command("MAIL FROM:<a@example.org>").unwrap();
    c.command("RCPT TO:<b@example.org>").unwrap();
    assert!(c.command("DATA").unwrap().starts_with("354"));
    c.send(body).unwrap();
    c.send(b".\r\n").unwrap();
    c.reply().unwrap()
}

#[test]
fn full_disk_gets_452_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mount = TinyFs::mount(&dir.path().join("full"));
    let server = TestServer::builder().maildir(&mount.0.join("mail")).start();
    let mut c = greeted(&server);
    c.command("EHLO full.example").unwrap();
    let reply = send_message(&mut c, &b"a line of text that fills the disk up\r\n".repeat(4000));
    assert!(reply.starts_with("452 4.3.1"), "{reply}");
    assert!(server.delivered().is_empty());
    assert!(server.leftovers().is_empty(), "a partial file stayed in tmp/");
    // The server keeps serving: a small message fits again.
    let reply = send_message(&mut c, b"small\r\n");
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    assert_eq!(server.delivered().len(), 1);
    drop(server);
}

#[test]
fn unwritable_maildir_gets_451_and_the_server_recovers() {
    let server = TestServer::start();
    let tmp = server.maildir.join("tmp");
    let chattr = |flag: &str| {
        let status = Command::new("chattr").arg(flag).arg(&tmp).status().unwrap();
        assert!(status.success(), "chattr {flag} needs root and an ext4/tmpfs-like filesystem");
    };
    chattr("+i");
    let mut c = greeted(&server);
    c.command("EHLO ro.example").unwrap();
    let reply = send_message(&mut c, b"Subject: x\r\n\r\nbody\r\n");
    chattr("-i");
    assert!(reply.starts_with("451 4.3.0"), "{reply}");
    assert!(server.delivered().is_empty());
    let reply = send_message(&mut c, b"Subject: y\r\n\r\nbody\r\n");
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    assert_eq!(server.delivered().len(), 1);
}
