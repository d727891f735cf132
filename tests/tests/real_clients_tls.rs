//! Real SMTP clients (swaks, curl, Python's smtplib, lettre and msmtp; a
//! relaying Postfix is in postfix_relay.rs) deliver over STARTTLS and
//! implicit TLS with AUTH (issue 13). Each stored message must be
//! byte-exact, and its trace must say TLS, ESMTPSA and who authenticated.
//!
//! The tools are installed by .ci/run; a missing tool fails its test with
//! a message naming it. Every child process runs under a deadline and is
//! killed past it.

mod tls_clients;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use smtpcell_tests::server::TestServer;

use tls_clients::*;

/// swaks' arguments for one message from swaks.example to `server`.
fn swaks(addr: SocketAddr, cert: &Path, mail: &Path) -> Command {
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &addr.ip().to_string(), "--port", &addr.port().to_string()])
        .args(["--tls-verify", "--tls-ca-path", cert.to_str().unwrap()])
        .args(["--helo", "swaks.example", "--from", "swaks@example.org", "--to", "rcpt@example.org"])
        .args(["--data", &format!("@{}", mail.display()), "--timeout", "30"]);
    cmd
}

/// swaks' arguments for AUTH as [`USER`].
fn auth<'a>(mechanism: &'a str, password: &'a str) -> [&'a str; 6] {
    ["--auth", mechanism, "--auth-user", USER, "--auth-password", password]
}

#[test]
fn swaks_starttls_auth_plain_delivers_byte_exact() {
    let server = tls_server();
    let dir = tempfile::tempdir().unwrap();
    let mail = write_file(dir.path(), "mail.eml", tricky_body().as_bytes());
    let out =
        run_ok(swaks(submission(&server), &cert_path(&server), &mail).arg("--tls").args(auth("PLAIN", PASSWORD)), None);
    assert!(out.contains("<~  235 2.7.0"), "no AUTH success over TLS:\n{out}");
    assert!(out.contains("<~  250 2.0.0"), "swaks did not see the queue reply over TLS:\n{out}");
    let stored = only_message(&server);
    // swaks always ends with CRLF . CRLF after the body (see real_clients.rs).
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body() + "\r\n");
    assert_tls_trace(&stored, "swaks.example");
}

#[test]
fn swaks_implicit_tls_auth_login_pipelined_delivers_byte_exact() {
    let server = tls_server();
    let dir = tempfile::tempdir().unwrap();
    let mail = write_file(dir.path(), "mail.eml", tricky_body().as_bytes());
    let out = run_ok(
        swaks(implicit(&server), &cert_path(&server), &mail)
            .args(["--tls-on-connect", "--pipeline"])
            .args(auth("LOGIN", PASSWORD)),
        None,
    );
    assert!(!out.contains("STARTTLS"), "STARTTLS on the implicit-TLS listener:\n{out}");
    assert!(out.contains(" ~> AUTH LOGIN\n"), "{out}");
    assert!(out.contains("<~  235 2.7.0"), "no AUTH success:\n{out}");
    // Pipelined: MAIL, RCPT and DATA go out before the reply to MAIL.
    let after = |from: usize, what: &str| {
        out[from..].find(what).map(|at| at + from).unwrap_or_else(|| panic!("no {what:?} in:\n{out}"))
    };
    let mail_from = after(0, " ~> MAIL FROM:");
    let data = after(mail_from, " ~> DATA\n");
    let first_reply = after(mail_from, "\n<~  ");
    assert!(data < first_reply, "MAIL, RCPT and DATA were not pipelined:\n{out}");
    assert!(out.contains("<~  250 2.0.0"), "swaks did not see the queue reply:\n{out}");
    let stored = only_message(&server);
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body() + "\r\n");
    assert_tls_trace(&stored, "swaks.example");
}

#[test]
fn swaks_wrong_password_gets_535_and_nothing_is_stored() {
    let server = tls_server();
    let dir = tempfile::tempdir().unwrap();
    let mail = write_file(dir.path(), "mail.eml", tricky_body().as_bytes());
    let done = run_bounded(
        swaks(submission(&server), &cert_path(&server), &mail).arg("--tls").args(auth("PLAIN", "not-the-password")),
        None,
        CLIENT_TIMEOUT,
    );
    assert!(!done.status.success(), "swaks succeeded with a wrong password:\n{}", done.output);
    assert!(done.output.contains("<~* 535 5.7.8"), "no 535 5.7.8 over TLS:\n{}", done.output);
    assert!(!done.output.contains("MAIL FROM"), "swaks went on after the 535:\n{}", done.output);
    assert!(server.delivered().is_empty(), "stored: {:?}", server.delivered());
    assert!(server.leftovers().is_empty(), "tmp/ is not empty: {:?}", server.leftovers());
}

// ---------------------------------------------------------------- curl

/// curl uploads the tricky body as `alice` to `url`, trusting the test
/// certificate; `localhost` is pinned to 127.0.0.1, where the server
/// listens, whatever the resolver would say first.
fn curl(extra: &[&str], url: &str, port: u16, cert: &Path, mail: &Path) -> String {
    run_ok(
        Command::new("curl")
            .args(extra)
            .args(["-sS", "--max-time", "30", "--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(["--cacert", cert.to_str().unwrap(), "-u", &format!("{USER}:{PASSWORD}")])
            .args(["--mail-from", "curl@example.org", "--mail-rcpt", "rcpt@example.org"])
            .args(["--upload-file", mail.to_str().unwrap(), url]),
        None,
    )
}

#[test]
fn curl_starttls_submission_delivers_byte_exact() {
    let server = tls_server();
    let dir = tempfile::tempdir().unwrap();
    let mail = write_file(dir.path(), "mail.eml", tricky_body().as_bytes());
    let port = submission(&server).port();
    let url = format!("smtp://localhost:{port}/curl.example");
    curl(&["--ssl-reqd"], &url, port, &cert_path(&server), &mail);
    let stored = only_message(&server);
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body());
    assert_tls_trace(&stored, "curl.example");
    assert!(stored.trace_text().contains("\r\n\tfor <rcpt@example.org>;"), "{}", stored.trace_text());
}

#[test]
fn curl_smtps_implicit_tls_delivers_byte_exact() {
    let server = tls_server();
    let dir = tempfile::tempdir().unwrap();
    let mail = write_file(dir.path(), "mail.eml", tricky_body().as_bytes());
    let port = implicit(&server).port();
    curl(&[], &format!("smtps://localhost:{port}/curl.example"), port, &cert_path(&server), &mail);
    let stored = only_message(&server);
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body());
    assert_tls_trace(&stored, "curl.example");
}

// ---------------------------------------------------------------- Python

/// smtplib, with an ssl context that trusts only the test certificate and
/// checks the name `localhost`; `mode` is `starttls` or `ssl`. The script
/// also checks what EHLO offers before and after TLS.
const SMTPLIB: &str = r#"
import smtplib, ssl, sys
mode, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = sys.stdin.buffer.read()
ctx = ssl.create_default_context(cafile=cafile)
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
if mode == "starttls":
    s = smtplib.SMTP("localhost", port, local_hostname="python.example", timeout=30)
    s.ehlo()
    assert s.has_extn("starttls"), s.esmtp_features
    assert not s.has_extn("auth"), "AUTH offered before TLS: %r" % s.esmtp_features
    s.starttls(context=ctx)
else:
    s = smtplib.SMTP_SSL("localhost", port, local_hostname="python.example", context=ctx, timeout=30)
s.ehlo()
assert not s.has_extn("starttls"), s.esmtp_features
assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"], s.esmtp_features
print("tls:", s.sock.version(), s.sock.cipher()[0])
code, reply = s.login("alice", sys.argv[4])
assert code == 235, (code, reply)
refused = s.sendmail("python@example.org", ["rcpt@example.org"], body)
assert refused == {}, refused
s.quit()
"#;

fn smtplib(mode: &str, addr: SocketAddr, cert: &Path) -> String {
    let port = addr.port().to_string();
    run_ok(
        Command::new("python3").args(["-c", SMTPLIB, mode, &port, cert.to_str().unwrap(), PASSWORD]),
        Some(tricky_body().as_bytes()),
    )
}

#[test]
fn python_smtplib_starttls_login_delivers_byte_exact() {
    let server = tls_server();
    let out = smtplib("starttls", submission(&server), &cert_path(&server));
    assert!(out.contains("tls: TLSv1.3 TLS_"), "{out}");
    let stored = only_message(&server);
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body());
    assert_tls_trace(&stored, "python.example");
}

#[test]
fn python_smtp_ssl_login_delivers_byte_exact() {
    let server = tls_server();
    let out = smtplib("ssl", implicit(&server), &cert_path(&server));
    assert!(out.contains("tls: TLSv1.3 TLS_"), "{out}");
    let stored = only_message(&server);
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body());
    assert_tls_trace(&stored, "python.example");
}

// ---------------------------------------------------------------- lettre

/// Sends one message with lettre over `tls` (which names the server
/// `localhost` and trusts only the test certificate) after AUTH with
/// `mechanism`; checks the stored copy and the queue id.
fn lettre_delivers(server: &TestServer, addr: SocketAddr, wrapper: bool, mechanism: Mechanism) {
    let pem = server.cert.as_ref().unwrap().pem.as_bytes();
    let parameters = TlsParameters::builder("localhost".into())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(pem).expect("the test certificate parses"))
        .build_rustls()
        .expect("TLS parameters");
    let tls = if wrapper { Tls::Wrapper(parameters) } else { Tls::Required(parameters) };
    let email = Message::builder()
        .from("Lettre <lettre@example.org>".parse().unwrap())
        .to("Rcpt <rcpt@example.org>".parse().unwrap())
        .subject("from rust over TLS")
        .header(ContentType::TEXT_PLAIN)
        .body(String::from(".starts with a dot\r\n..and two\r\n.\r\nend\r\n"))
        .unwrap();
    let sent = email.formatted();
    let mailer = SmtpTransport::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .tls(tls)
        .hello_name(ClientId::Domain("lettre.example".into()))
        .credentials(Credentials::new(USER.into(), PASSWORD.into()))
        .authentication(vec![mechanism])
        .timeout(Some(Duration::from_secs(30)))
        .build();
    let response = mailer.send(&email).expect("lettre delivers");
    assert!(response.is_positive());
    let queued = response.message().collect::<Vec<_>>().join(" ");
    let stored = only_message(server);
    // lettre sends CRLF . CRLF after a body that ends in CRLF.
    assert_eq!(stored.content, [sent.as_slice(), b"\r\n"].concat());
    assert_tls_trace(&stored, "lettre.example");
    let id = queued.rsplit(' ').next().unwrap();
    assert!(stored.trace_text().contains(&format!(" id {id}")), "{queued} vs {}", stored.trace_text());
}

#[test]
fn lettre_starttls_required_auth_plain_delivers_byte_exact() {
    let server = tls_server();
    lettre_delivers(&server, submission(&server), false, Mechanism::Plain);
}

#[test]
fn lettre_implicit_tls_auth_login_delivers_byte_exact() {
    let server = tls_server();
    lettre_delivers(&server, implicit(&server), true, Mechanism::Login);
}

// ---------------------------------------------------------------- msmtp

/// msmtp with its options on the command line only: `--file` names an
/// empty configuration, so no system or user msmtprc takes part; it adds
/// no From, Date or Message-ID header, so the content stays the sender's.
fn msmtp(addr: SocketAddr, cert: &Path, starttls: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "msmtprc", b"");
    // msmtp refuses a configuration file others may read.
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    run_ok(
        Command::new("msmtp")
            .arg(format!("--file={}", config.display()))
            .args([format!("--host={}", addr.ip()), format!("--port={}", addr.port())])
            .args(["--tls=on", &format!("--tls-starttls={}", if starttls { "on" } else { "off" })])
            .arg(format!("--tls-trust-file={}", cert.display()))
            .args(["--auth=plain", &format!("--user={USER}"), &format!("--passwordeval=echo {PASSWORD}")])
            .args(["--domain=msmtp.example", "--from=msmtp@example.org", "--timeout=30"])
            .args(["--set-from-header=off", "--set-date-header=off", "--set-msgid-header=off"])
            .args(["--debug", "--", "rcpt@example.org"]),
        Some(tricky_body().as_bytes()),
    )
}

#[test]
fn msmtp_starttls_auth_plain_delivers_byte_exact() {
    let server = tls_server();
    let out = msmtp(submission(&server), &cert_path(&server), true);
    assert!(out.contains("--> STARTTLS"), "msmtp did not use STARTTLS:\n{out}");
    let stored = only_message(&server);
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body());
    assert_tls_trace(&stored, "msmtp.example");
}

#[test]
fn msmtp_implicit_tls_auth_plain_delivers_byte_exact() {
    let server = tls_server();
    let out = msmtp(implicit(&server), &cert_path(&server), false);
    assert!(!out.contains("--> STARTTLS"), "STARTTLS on the implicit-TLS listener:\n{out}");
    let stored = only_message(&server);
    assert_eq!(String::from_utf8_lossy(&stored.content), tricky_body());
    assert_tls_trace(&stored, "msmtp.example");
}
