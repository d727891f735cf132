//! Real SMTP clients deliver to a live server; the stored content must be
//! byte-exact (after the clients' own dot-stuffing is undone by the server).

use std::process::Command;

use lettre::message::header::ContentType;
use lettre::{Message, SmtpTransport, Transport};
use smtpcell_tests::server::{TestServer, stored_message};

/// A body that exercises transparency: lines starting with dots, a lone
/// dot, 8-bit text, a long (but legal) line, and an empty line.
fn tricky_body() -> String {
    let long = "x".repeat(900);
    format!(
        "Subject: transparency\r\nFrom: a@example.org\r\nTo: b@example.org\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nh\u{e9}llo 8-bit\r\n{long}\r\n\r\nlast line\r\n"
    )
}

fn only_message(server: &TestServer) -> smtpcell_tests::server::StoredMessage {
    let files = server.delivered();
    assert_eq!(files.len(), 1, "expected exactly one stored message, found {files:?}");
    assert!(server.leftovers().is_empty(), "tmp/ is not empty: {:?}", server.leftovers());
    stored_message(&files[0]).unwrap()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn python_smtplib_delivers_byte_exact() {
    let server = TestServer::start();
    let script = r#"
import smtplib, sys
body = sys.stdin.buffer.read()
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.ehlo("python.example")
    assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("enhancedstatuscodes")
    assert s.esmtp_features["size"] == "10240000", s.esmtp_features
    refused = s.sendmail("alice@example.org", ["bob@example.org", "carol@example.net"], body)
    assert refused == {}, refused
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, &server.addr.ip().to_string(), &server.addr.port().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(tricky_body().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "smtplib failed: {}", String::from_utf8_lossy(&out.stderr));
    let stored = only_message(&server);
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body());
    let trace = stored.trace_text();
    assert!(trace.starts_with("Return-Path: <alice@example.org>\r\n"), "{trace}");
    assert!(trace.contains("X-Envelope-To: <bob@example.org>\r\n"), "{trace}");
    assert!(trace.contains("X-Envelope-To: <carol@example.net>\r\n"), "{trace}");
    assert!(trace.contains("Received: from python.example ([127.0.0.1])"), "{trace}");
    assert!(trace.contains(" with ESMTP id "), "{trace}");
}

#[test]
fn curl_delivers_byte_exact() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mail.eml");
    std::fs::write(&file, tricky_body()).unwrap();
    let url = format!("smtp://{}/curl.example", server.addr);
    run(Command::new("curl")
        .args(["-sS", "--mail-from", "sender@example.org", "--mail-rcpt", "rcpt@example.org"])
        .args(["--upload-file", file.to_str().unwrap(), &url]));
    let stored = only_message(&server);
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body());
    assert!(stored.trace_text().contains("Received: from curl.example ([127.0.0.1])"));
    assert!(stored.trace_text().contains("for <rcpt@example.org>;"));
}

#[test]
fn swaks_delivers_byte_exact() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mail.eml");
    std::fs::write(&file, tricky_body()).unwrap();
    let out = run(Command::new("swaks").args([
        "--server",
        &server.addr.ip().to_string(),
        "--port",
        &server.addr.port().to_string(),
        "--helo",
        "swaks.example",
        "--from",
        "swaks@example.org",
        "--to",
        "rcpt@example.org",
        "--data",
        &format!("@{}", file.display()),
    ]));
    assert!(out.contains("250 2.0.0"), "swaks did not see the queue reply:\n{out}");
    let stored = only_message(&server);
    // swaks always terminates with CRLF . CRLF after the body, so a body that
    // already ends in CRLF goes over the wire with one more, empty, line.
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body() + "\r\n");
}

#[test]
fn lettre_delivers_byte_exact() {
    let server = TestServer::start();
    let email = Message::builder()
        .from("Lettre <lettre@example.org>".parse().unwrap())
        .to("Rcpt <rcpt@example.org>".parse().unwrap())
        .subject("from rust")
        .header(ContentType::TEXT_PLAIN)
        .body(String::from(".starts with a dot\r\n..and two\r\nend\r\n"))
        .unwrap();
    let sent = email.formatted();
    let mailer = SmtpTransport::builder_dangerous(server.addr.ip().to_string()).port(server.addr.port()).build();
    let response = mailer.send(&email).expect("lettre delivers");
    assert!(response.is_positive());
    let queued = response.message().collect::<Vec<_>>().join(" ");
    let stored = only_message(&server);
    // Like swaks, lettre sends CRLF . CRLF after a body that ends in CRLF.
    assert_eq!(stored.content, [sent.as_slice(), b"\r\n"].concat());
    // The queue id the client was told is the one recorded in the trace.
    let id = queued.rsplit(' ').next().unwrap();
    assert!(stored.trace_text().contains(&format!(" id {id}")), "{queued} vs {}", stored.trace_text());
}
