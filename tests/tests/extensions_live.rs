//! The ESMTP extensions against a live server, with a real client wherever
//! one implements the extension: Python's smtplib for EHLO, SIZE, 8BITMIME,
//! SMTPUTF8, DSN, HELP, VRFY and EXPN. No common client speaks CHUNKING
//! (smtplib, curl, swaks and lettre all send DATA), so BDAT goes through the
//! raw client, pipelined the way a CHUNKING client would send it.

use std::io::Write;
use std::process::{Command, Stdio};

use smtpcell_tests::client::RawClient;
use smtpcell_tests::server::{StoredMessage, TestServer, stored_message};

/// Runs a Python script with `host port` as arguments and `stdin` as its
/// standard input; fails the test unless it exits 0. Returns its stdout.
fn python(server: &TestServer, script: &str, stdin: &[u8]) -> String {
    let mut child = Command::new("python3")
        .args(["-c", script, &server.addr.ip().to_string(), &server.addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().expect("piped stdin").write_all(stdin).expect("script reads its input");
    let out = child.wait_with_output().expect("python3 finishes");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "script failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The one message the server stored; tmp/ must be empty.
fn only_message(server: &TestServer) -> StoredMessage {
    let files = server.delivered();
    assert_eq!(files.len(), 1, "expected exactly one stored message, found {files:?}");
    assert!(server.leftovers().is_empty(), "tmp/ is not empty: {:?}", server.leftovers());
    stored_message(&files[0]).expect("a stored message with trace headers")
}

fn nothing_stored(server: &TestServer) {
    assert_eq!(server.delivered(), Vec::<std::path::PathBuf>::new(), "a message was stored");
    assert!(server.leftovers().is_empty(), "tmp/ is not empty: {:?}", server.leftovers());
}

#[test]
fn smtplib_sees_every_extension_in_ehlo() {
    let server = TestServer::start();
    let out = python(
        &server,
        r#"
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    code, _ = s.ehlo("python.example")
    assert code == 250, code
    print(" ".join(sorted(s.esmtp_features)))
    print(s.esmtp_features["size"])
"#,
        b"",
    );
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("8bitmime binarymime chunking dsn enhancedstatuscodes help pipelining size smtputf8"),
        "STARTTLS is not offered until the host terminates TLS"
    );
    assert_eq!(lines.next(), Some("10240000"));
}

#[test]
fn smtplib_smtputf8_delivers_and_records_it() {
    let server = TestServer::start();
    let body = "Subject: caf\u{e9}\r\nFrom: j\u{f6}rg@b\u{fc}cher.example\r\n\r\nGr\u{fc}\u{df}e\r\n";
    python(
        &server,
        r#"
import smtplib, sys
body = sys.stdin.buffer.read()
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.ehlo("python.example")
    assert s.has_extn("smtputf8")
    refused = s.sendmail("jörg@bücher.example", ["zoë@ünïcode.example"], body,
                         mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert refused == {}, refused
"#,
        body.as_bytes(),
    );
    let stored = only_message(&server);
    assert_eq!(String::from_utf8(stored.content.clone()).unwrap(), body);
    let trace = String::from_utf8(stored.trace.clone()).expect("UTF-8 trace");
    assert!(trace.starts_with("Return-Path: <j\u{f6}rg@b\u{fc}cher.example>\r\n"), "{trace}");
    assert!(trace.contains("X-Envelope-To: <zo\u{eb}@\u{fc}n\u{ef}code.example>\r\n"), "{trace}");
    assert!(trace.contains("X-Envelope-Body: 8BITMIME SMTPUTF8\r\n"), "{trace}");
    assert!(trace.contains(" with UTF8SMTP id "), "{trace}");
}

#[test]
fn smtplib_utf8_address_without_smtputf8_gets_553() {
    let server = TestServer::start();
    let out = python(
        &server,
        r#"
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.ehlo("python.example")
    # smtplib only sends UTF-8 commands once SMTPUTF8 was asked for; a
    # client that forgets the parameter is what this test plays.
    s.command_encoding = "utf-8"
    print(*s.mail("jörg@bücher.example"))
    print(*s.mail("ascii@example.org"))
    print(*s.rcpt("zoë@example.org"))
"#,
        b"",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "553 b'5.6.7 Non-ASCII address requires the SMTPUTF8 parameter'",
            "250 b'2.1.0 Ok'",
            "553 b'5.6.7 Non-ASCII address requires the SMTPUTF8 parameter'",
        ]
    );
    nothing_stored(&server);
}

#[test]
fn smtplib_8bitmime_stores_8bit_bytes_unchanged() {
    let server = TestServer::start();
    // Latin-1 bytes, not UTF-8: 8BITMIME promises octets, not a charset.
    let body =
        b"Subject: 8bit\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nd\xe9j\xe0 vu \xff\x80\r\n.\x85\r\n";
    python(
        &server,
        r#"
import smtplib, sys
body = sys.stdin.buffer.read()
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.ehlo("python.example")
    assert s.has_extn("8bitmime")
    assert s.sendmail("a@example.org", ["b@example.org"], body, mail_options=["BODY=8BITMIME"]) == {}
"#,
        body,
    );
    let stored = only_message(&server);
    assert_eq!(stored.content, body);
    let trace = stored.trace_text();
    assert!(trace.contains("X-Envelope-Body: 8BITMIME\r\n"), "{trace}");
    assert!(trace.contains(" with ESMTP id "), "{trace}");
}

#[test]
fn smtplib_dsn_parameters_are_recorded() {
    let server = TestServer::start();
    python(
        &server,
        r#"
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.ehlo("python.example")
    assert s.has_extn("dsn")
    code, _ = s.mail("a@example.org", ["RET=HDRS", "ENVID=QQ314159+2Bx"])
    assert code == 250, code
    for rcpt, options in [
        ("b@example.org", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@example.org"]),
        ("c@example.org", ["NOTIFY=NEVER"]),
        ("d@example.org", []),
    ]:
        code, _ = s.rcpt(rcpt, options)
        assert code == 250, (rcpt, code)
    code, _ = s.data(b"Subject: dsn\r\n\r\nbody\r\n")
    assert code == 250, code
"#,
        b"",
    );
    let trace = only_message(&server).trace_text();
    assert!(trace.contains("X-Envelope-To: <b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org\r\n"));
    assert!(trace.contains("X-Envelope-To: <c@example.org> NOTIFY=NEVER\r\n"), "{trace}");
    assert!(trace.contains("X-Envelope-To: <d@example.org>\r\n"), "{trace}");
    assert!(trace.contains("X-Envelope-Body: 7BIT RET=HDRS ENVID=QQ314159+2Bx\r\n"), "{trace}");
}

#[test]
fn smtplib_bad_dsn_values_get_501() {
    let server = TestServer::start();
    let out = python(
        &server,
        r#"
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.ehlo("python.example")
    print(s.mail("a@example.org", ["RET=EVERYTHING"])[0])
    print(s.mail("a@example.org", ["ENVID=" + "x" * 101])[0])
    print(s.mail("a@example.org", ["RET=FULL"])[0])
    print(s.rcpt("b@example.org", ["NOTIFY=NEVER,SUCCESS"])[0])
    print(s.rcpt("b@example.org", ["ORCPT=rfc822"])[0])
    print(s.rcpt("b@example.org", ["NOTIFY=DELAY", "NOTIFY=DELAY"])[0])
"#,
        b"",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["501", "501", "250", "501", "501", "501"]);
    nothing_stored(&server);
}

#[test]
fn smtplib_size_over_the_limit_is_refused_before_data() {
    let server = TestServer::builder().config(|c| c.max_message_size = 1000).start();
    // smtplib declares SIZE= on MAIL by itself when the server offers SIZE.
    let out = python(
        &server,
        r#"
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.ehlo("python.example")
    assert s.esmtp_features["size"] == "1000", s.esmtp_features
    try:
        s.sendmail("a@example.org", ["b@example.org"], b"x" * 2000 + b"\r\n")
        print("sent")
    except smtplib.SMTPSenderRefused as e:
        print(e.smtp_code, e.smtp_error.decode())
"#,
        b"",
    );
    assert_eq!(out.trim_end(), "552 5.3.4 Message size exceeds fixed maximum message size");
    nothing_stored(&server);
}

#[test]
fn smtplib_help_vrfy_expn() {
    let server = TestServer::start();
    let out = python(
        &server,
        r#"
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.ehlo("python.example")
    for command in ["HELP", "HELP MAIL", "VRFY postmaster", "VRFY nobody@example.org", "EXPN staff"]:
        code, text = s.docmd(command)
        print(code, text.decode())
    print(*s.verify("root"))
"#,
        b"",
    );
    let commands = "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY";
    let cannot_vrfy = "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery";
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("214 2.0.0 {commands}"),
            format!("214 2.0.0 {commands}"),
            // The same answer whether or not the mailbox exists.
            cannot_vrfy.to_string(),
            cannot_vrfy.to_string(),
            "502 5.5.1 Error: command not implemented".to_string(),
            format!("252 b'{}'", &cannot_vrfy[4..]),
        ]
    );
}

/// EHLO, then MAIL and RCPT; returns the client.
fn bdat_client(server: &TestServer, mail_params: &str) -> RawClient {
    let mut client = RawClient::connect(server.addr).unwrap();
    assert_eq!(client.code().unwrap(), 220);
    assert!(client.command("EHLO raw.example").unwrap().contains("250-CHUNKING\r\n"));
    assert_eq!(client.command(&format!("MAIL FROM:<a@example.org>{mail_params}")).unwrap(), "250 2.1.0 Ok\r\n");
    assert_eq!(client.command("RCPT TO:<b@example.org>").unwrap(), "250 2.1.5 Ok\r\n");
    client
}

#[test]
fn bdat_chunks_pipelined_in_one_write_are_stored_literally() {
    let server = TestServer::start();
    let mut client = bdat_client(&server, " BODY=BINARYMIME");
    // Binary content: everything DATA would refuse or un-stuff is literal
    // in a chunk, including a DATA terminator and a command after it.
    let chunks: [&[u8]; 3] =
        [b"Subject: chunks\r\n\r\n", b"..dots\r\n.\r\nMAIL FROM:<x@y>\r\n", b"bare\nlf\rcr\0nul\xff"];
    let mut write = Vec::new();
    for chunk in chunks {
        write.extend_from_slice(format!("BDAT {}\r\n", chunk.len()).as_bytes());
        write.extend_from_slice(chunk);
    }
    write.extend_from_slice(b"BDAT 0 LAST\r\n");
    client.send(&write).unwrap();
    for chunk in chunks {
        assert_eq!(client.reply().unwrap(), format!("250 2.0.0 Ok: {} octets received\r\n", chunk.len()));
    }
    let queued = client.reply().unwrap();
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    assert_eq!(client.command("QUIT").unwrap(), "221 2.0.0 Bye\r\n");
    let stored = only_message(&server);
    assert_eq!(stored.content, chunks.concat());
    let trace = stored.trace_text();
    assert!(trace.contains("X-Envelope-Body: BINARYMIME\r\n"), "{trace}");
    let id = queued.trim_end().rsplit(' ').next().unwrap();
    assert!(trace.contains(&format!(" id {id}\r\n")), "{trace}");
}

#[test]
fn bdat_zero_last_alone_stores_an_empty_message() {
    let server = TestServer::start();
    let mut client = bdat_client(&server, "");
    assert!(client.command("BDAT 0 LAST").unwrap().starts_with("250 2.0.0 Ok: queued as "));
    assert_eq!(only_message(&server).content, b"");
}

#[test]
fn bdat_over_the_size_limit_gets_552_and_stores_nothing() {
    let server = TestServer::builder().config(|c| c.max_message_size = 100).start();
    let mut client = bdat_client(&server, "");
    // The second chunk passes the limit; the client has already pipelined
    // it and a third one, whose bytes must be skipped, not run as commands.
    let mut write = Vec::new();
    write.extend_from_slice(b"BDAT 60\r\n");
    write.extend_from_slice(&[b'a'; 60]);
    write.extend_from_slice(b"BDAT 60\r\n");
    write.extend_from_slice(&[b'b'; 60]);
    write.extend_from_slice(b"BDAT 14 LAST\r\nRSET\r\nQUIT\r\n\r\n");
    client.send(&write).unwrap();
    assert_eq!(client.reply().unwrap(), "250 2.0.0 Ok: 60 octets received\r\n");
    assert_eq!(client.reply().unwrap(), "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
    assert_eq!(client.reply().unwrap(), "503 5.5.1 Error: need MAIL command\r\n");
    nothing_stored(&server);
    // A first chunk over the limit is refused the same way, and the
    // session is ready for a new transaction afterwards.
    assert_eq!(client.command("MAIL FROM:<a@example.org>").unwrap(), "250 2.1.0 Ok\r\n");
    assert_eq!(client.command("RCPT TO:<b@example.org>").unwrap(), "250 2.1.5 Ok\r\n");
    client.send(b"BDAT 101 LAST\r\n").unwrap();
    client.send(&[b'c'; 101]).unwrap();
    assert_eq!(client.reply().unwrap(), "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
    assert_eq!(client.command("MAIL FROM:<a@example.org>").unwrap(), "250 2.1.0 Ok\r\n");
    assert_eq!(client.command("RCPT TO:<b@example.org>").unwrap(), "250 2.1.5 Ok\r\n");
    client.send(b"BDAT 100 LAST\r\n").unwrap();
    client.send(&[b'd'; 100]).unwrap();
    assert!(client.reply().unwrap().starts_with("250 2.0.0 Ok: queued as "));
    assert_eq!(only_message(&server).content, [b'd'; 100]);
}

#[test]
fn data_inside_a_bdat_transaction_gets_503() {
    let server = TestServer::start();
    let mut client = bdat_client(&server, "");
    client.send(b"BDAT 3\r\nabc").unwrap();
    assert_eq!(client.reply().unwrap(), "250 2.0.0 Ok: 3 octets received\r\n");
    assert_eq!(client.command("DATA").unwrap(), "503 5.5.1 Error: DATA not allowed in a BDAT transaction\r\n");
    client.send(b"BDAT 3 LAST\r\ndef").unwrap();
    assert!(client.reply().unwrap().starts_with("250 2.0.0 Ok: queued as "));
    assert_eq!(only_message(&server).content, b"abcdef");
}
