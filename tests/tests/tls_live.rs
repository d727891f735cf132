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
