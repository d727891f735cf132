//! STARTTLS (RFC 3207), implicit TLS (RFC 8314) and AUTH (RFC 4954) on a
//! live server, with a raw client over rustls: the refusals and the attacks
//! the real clients of real_clients_tls.rs never make.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use smtpcell_tests::client::RawClient;
use smtpcell_tests::server::{TestServer, stored_message};

/// `\0user\0password`, base64 (RFC 4616).
fn plain(user: &str, password: &str) -> String {
    use std::fmt::Write as _;
    let raw = format!("\0{user}\0{password}");
    // A tiny encoder keeps the test free of another base64 dependency.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in raw.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                let _ = write!(out, "=");
            }
        }
    }
    out
}

/// Whether an EHLO reply lists `keyword` (with its parameters, if given).
fn offers(ehlo: &str, keyword: &str) -> bool {
    ehlo.lines().any(|line| line.get(4..) == Some(keyword))
}

fn tls_server() -> TestServer {
    TestServer::builder().tls().users(&[("alice", "correct horse")]).start()
}

#[test]
fn starttls_then_auth_delivers_and_the_trace_records_tls() {
    let server = tls_server();
    let cert = server.cert.as_ref().unwrap();
    let mut c = RawClient::connect(server.addr).unwrap();
    assert!(c.reply().unwrap().starts_with("220 "));
    let ehlo = c.command("EHLO client.example").unwrap();
    assert!(offers(&ehlo, "STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "AUTH offered before TLS: {ehlo}");
    assert!(c.command(&format!("AUTH PLAIN {}", plain("alice", "correct horse"))).unwrap().starts_with("538 5.7.11"));
    assert!(c.command("STARTTLS").unwrap().starts_with("220 "));
    let mut c = c.start_tls(cert.client_config()).unwrap();
    assert!(c.tls_version().is_some());
    let ehlo = c.command("EHLO client.example").unwrap();
    assert!(!offers(&ehlo, "STARTTLS"), "{ehlo}");
    assert!(offers(&ehlo, "AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(c.command("STARTTLS").unwrap().starts_with("503 "), "a second STARTTLS");
    let auth = c.command(&format!("AUTH PLAIN {}", plain("alice", "correct horse"))).unwrap();
    assert!(auth.starts_with("235 2.7.0"), "{auth}");
    assert!(c.command("MAIL FROM:<alice@example.org>").unwrap().starts_with("250"));
    assert!(c.command("RCPT TO:<bob@example.org>").unwrap().starts_with("250"));
    assert!(c.command("DATA").unwrap().starts_with("354"));
    assert!(c.command("Subject: over TLS\r\n\r\nhello\r\n.").unwrap().starts_with("250"));
    assert!(c.command("QUIT").unwrap().starts_with("221"));
    let stored = stored_message(&server.delivered()[0]).unwrap();
    let trace = stored.trace_text();
    assert!(trace.contains("\t(using TLSv1.3 with cipher TLS_"), "{trace}");
    assert!(trace.contains(" with ESMTPSA id "), "{trace}");
    assert!(!trace.contains("authenticated as"), "identity written without --received-auth: {trace}");
    assert_eq!(stored.content, b"Subject: over TLS\r\n\r\nhello\r\n");
}

#[test]
fn plaintext_pipelined_behind_starttls_is_never_executed() {
    let server = tls_server();
    let cert = server.cert.as_ref().unwrap();
    // CVE-2011-0411: RSET (and a MAIL) in the same write as STARTTLS.
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    c.send(b"EHLO x\r\nSTARTTLS\r\nRSET\r\nMAIL FROM:<evil@example.org>\r\n").unwrap();
    assert!(c.reply().unwrap().starts_with("250-"));
    assert!(c.reply().unwrap().starts_with("220 "));
    // start_tls fails if anything (a reply to RSET) came after the 220.
    let mut c = c.start_tls(cert.client_config()).unwrap();
    assert!(c.command("MAIL FROM:<a@example.org>").unwrap().starts_with("503 "), "HELO was forgotten");
    assert!(c.command("EHLO x").unwrap().starts_with("250-"));
    assert!(c.command("MAIL FROM:<a@example.org>").unwrap().starts_with("250 "), "no MAIL survived the handshake");

    // Plaintext sent after the 220 and before the handshake reaches rustls
    // as a TLS record: the handshake fails, nothing is executed or answered.
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    assert!(c.command("EHLO x").unwrap().starts_with("250-"));
    assert!(c.command("STARTTLS").unwrap().starts_with("220 "));
    c.send(b"RSET\r\n").unwrap();
    let rest = c.read_to_close().unwrap_or_default();
    // Nothing, or a TLS alert record (content type 21): never a reply.
    assert!(rest.is_empty() || rest.as_bytes()[0] == 0x15, "a reply to plaintext after STARTTLS: {rest:?}");
}

#[test]
fn starttls_refusals() {
    let server = tls_server();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    c.command("EHLO x").unwrap();
    assert!(c.command("STARTTLS now").unwrap().starts_with("501 "));
    c.command("MAIL FROM:<a@example.org>").unwrap();
    assert!(c.command("STARTTLS").unwrap().starts_with("503 "), "STARTTLS inside a transaction");
    // Without a certificate STARTTLS is neither offered nor accepted.
    let plain = TestServer::start();
    let mut c = RawClient::connect(plain.addr).unwrap();
    c.reply().unwrap();
    assert!(!offers(&c.command("EHLO x").unwrap(), "STARTTLS"));
    assert!(c.command("STARTTLS").unwrap().starts_with("502 "));
}

/// A handshake that stalls or is garbage costs that connection only: it is
/// closed (the stalled one at the handshake timeout) while others are served.
#[test]
fn a_stalled_or_garbage_handshake_costs_only_its_connection() {
    let server = TestServer::builder()
        .tls()
        .users(&[("alice", "pw")])
        .implicit_tls()
        .config(|c| c.tls_handshake_timeout = Duration::from_secs(1))
        .start();
    let cert = server.cert.as_ref().unwrap();
    let tls_addr = server.tls_addr.unwrap();

    // Half a ClientHello, then silence.
    let mut stalled = TcpStream::connect(tls_addr).unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).unwrap();
    // In the middle of STARTTLS too.
    let mut mid = RawClient::connect(server.addr).unwrap();
    mid.reply().unwrap();
    mid.command("EHLO x").unwrap();
    assert!(mid.command("STARTTLS").unwrap().starts_with("220"));
    mid.send(&[0x16, 0x03, 0x01]).unwrap();

    // 1 MiB of garbage instead of a ClientHello.
    let mut garbage = TcpStream::connect(tls_addr).unwrap();
    garbage.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = garbage.write_all(&vec![b'G'; 1 << 20]);
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest);
    assert!(!rest.starts_with(b"220"), "garbage got a greeting");

    // Meanwhile a real client is served on each listener.
    let mut ok = RawClient::connect_tls(tls_addr, cert.client_config()).unwrap();
    assert!(ok.reply().unwrap().starts_with("220 "));
    assert!(ok.command("EHLO x").unwrap().starts_with("250-"));
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the stalled client got {rest:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "the stalled handshake was not cut off");
    assert_eq!(mid.read_to_close().unwrap_or_default(), "");
    let mut again = RawClient::connect(server.addr).unwrap();
    assert!(again.reply().unwrap().starts_with("220 "));
}

#[test]
fn implicit_tls_requires_auth_before_mail() {
    let server = TestServer::builder()
        .tls()
        .users(&[("alice", "correct horse")])
        .implicit_tls()
        .config(|c| c.received_auth = true)
        .start();
    let cert = server.cert.as_ref().unwrap();
    let mut c = RawClient::connect_tls(server.tls_addr.unwrap(), cert.client_config()).unwrap();
    assert!(c.reply().unwrap().starts_with("220 "));
    let ehlo = c.command("EHLO client.example").unwrap();
    assert!(!offers(&ehlo, "STARTTLS"), "{ehlo}");
    assert!(offers(&ehlo, "AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(c.command("MAIL FROM:<alice@example.org>").unwrap().starts_with("530 5.7.0"));
    // AUTH LOGIN: user name and password each in a 334 round (base64).
    assert!(c.command("AUTH LOGIN").unwrap().starts_with("334 "));
    assert!(c.command("YWxpY2U=").unwrap().starts_with("334 "));
    assert!(c.command("Y29ycmVjdCBob3JzZQ==").unwrap().starts_with("235 "));
    assert!(c.command("MAIL FROM:<alice@example.org> AUTH=<>").unwrap().starts_with("250 "));
    assert!(c.command("RCPT TO:<bob@example.org>").unwrap().starts_with("250 "));
    assert!(c.command("DATA").unwrap().starts_with("354"));
    assert!(c.command("Subject: 465\r\n\r\nbody\r\n.").unwrap().starts_with("250 "));
    let trace = stored_message(&server.delivered()[0]).unwrap().trace_text();
    assert!(trace.contains("\t(using TLSv1.3 with cipher TLS_"), "{trace}");
    assert!(trace.contains("\t(authenticated as alice)\r\n"), "{trace}");
    assert!(trace.contains(" with ESMTPSA id "), "{trace}");
}

#[test]
fn submission_requires_starttls_then_auth() {
    let server = TestServer::builder().tls().users(&[("alice", "pw")]).submission().start();
    let cert = server.cert.as_ref().unwrap();
    let mut c = RawClient::connect(server.submission_addr.unwrap()).unwrap();
    c.reply().unwrap();
    assert!(offers(&c.command("EHLO x").unwrap(), "STARTTLS"));
    assert!(c.command("MAIL FROM:<a@example.org>").unwrap().starts_with("530 5.7.0"), "before STARTTLS");
    assert!(c.command("AUTH PLAIN").unwrap().starts_with("530 5.7.0"), "AUTH before STARTTLS");
    assert!(c.command("NOOP").unwrap().starts_with("250 "));
    assert!(c.command("STARTTLS").unwrap().starts_with("220 "));
    let mut c = c.start_tls(cert.client_config()).unwrap();
    c.command("EHLO x").unwrap();
    let refused = c.command("MAIL FROM:<a@example.org>").unwrap();
    assert!(refused.starts_with("530 5.7.0 Authentication required"), "{refused}");
    assert!(c.command(&format!("AUTH PLAIN {}", plain("alice", "pw"))).unwrap().starts_with("235 "));
    assert!(c.command("MAIL FROM:<a@example.org>").unwrap().starts_with("250 "));
    // The MX listener keeps accepting mail without AUTH.
    let mut mx = RawClient::connect(server.addr).unwrap();
    mx.reply().unwrap();
    mx.command("EHLO x").unwrap();
    assert!(mx.command("MAIL FROM:<a@example.org>").unwrap().starts_with("250 "));
}

#[test]
fn require_tls_on_the_mx_listener() {
    let server = TestServer::builder().tls().config(|c| c.require_tls = true).start();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    assert!(c.command("HELO x").unwrap().starts_with("530 5.7.0"));
    assert!(c.command("EHLO x").unwrap().starts_with("250-"));
    assert!(c.command("MAIL FROM:<a@example.org>").unwrap().starts_with("530 5.7.0"));
    assert!(c.command("STARTTLS").unwrap().starts_with("220 "));
    let mut c = c.start_tls(server.cert.as_ref().unwrap().client_config()).unwrap();
    c.command("EHLO x").unwrap();
    assert!(c.command("MAIL FROM:<a@example.org>").unwrap().starts_with("250 "));
}

/// Every failed AUTH command counts, a cancelled or malformed exchange as
/// much as a wrong password (535 5.7.8): the connection's last allowed
/// failure (the default 3) is answered 421 4.7.0 and the connection
/// closes. The password is in no log line, at any level.
#[test]
fn failed_auth_is_limited_and_secrets_are_never_logged() {
    let server = TestServer::builder()
        .tls()
        .users(&[("alice", "correct horse")])
        .config(|c| c.allow_plaintext_auth = true)
        .capture_log()
        .start();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    assert!(offers(&c.command("EHLO x").unwrap(), "AUTH PLAIN LOGIN"), "--allow-plaintext-auth offers AUTH");
    let wrong = plain("alice", "Tr0ub4dor&3");
    assert_eq!(c.command("AUTH LOGIN").unwrap(), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.command("*").unwrap(), "501 5.0.0 Authentication cancelled\r\n");
    assert!(c.command(&format!("AUTH PLAIN {wrong}")).unwrap().starts_with("535 5.7.8"));
    // Base64 of "alice" and a password without PLAIN's NUL separators.
    let last = c.command("AUTH PLAIN YWxpY2VUcjB1YjRkb3ImMw==").unwrap();
    assert_eq!(last, "421 4.7.0 smtpcell.test Too many failed authentication attempts\r\n");
    assert_eq!(c.read_to_close().unwrap(), "");

    // A good login on a new connection; then the log, which must name the
    // user and never a password, whatever the level.
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    c.command("EHLO x").unwrap();
    assert!(c.command(&format!("AUTH PLAIN {}", plain("alice", "correct horse"))).unwrap().starts_with("235 "));
    c.command("QUIT").unwrap();
    drop(c);
    let log = server.log();
    assert!(log.contains("client authenticated") && log.contains("AUTH refused"), "{log}");
    for secret in ["correct horse", "Tr0ub4dor&3", &wrong, "YWxpY2VUcjB1YjRkb3ImMw==", &plain("alice", "correct horse")]
    {
        assert!(!log.contains(secret), "{secret:?} is in the log:\n{log}");
    }
}

/// The reply to a wrong password waits out the configured delay (slowing a
/// guesser); a right one does not.
#[test]
fn a_wrong_password_is_answered_after_the_delay() {
    let delay = Duration::from_millis(400);
    let server = TestServer::builder()
        .tls()
        .users(&[("alice", "correct horse")])
        .config(|c| {
            c.allow_plaintext_auth = true;
            c.auth_failure_delay = delay;
        })
        .start();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    c.command("EHLO x").unwrap();
    let asked = Instant::now();
    assert!(c.command(&format!("AUTH PLAIN {}", plain("alice", "wrong"))).unwrap().starts_with("535 5.7.8"));
    assert!(asked.elapsed() >= delay, "535 after {:?}", asked.elapsed());
}
