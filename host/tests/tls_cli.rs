//! TLS and AUTH through the `smtpcell` binary: `smtpcell passwd`, a server
//! on all three listeners, certificate and users reloads without dropping
//! a connection (a bad pair refused, the old one serving on), and a debug
//! log that never holds a password.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use support::*;

/// `\0alice\0s3cret pass` and `\0bob\0hunter2 hunter2` in base64 (RFC 4616).
const ALICE_PLAIN: &str = "AGFsaWNlAHMzY3JldCBwYXNz";
const BOB_PLAIN: &str = "AGJvYgBodW50ZXIyIGh1bnRlcjI=";
/// `\0carol\0carol's password`: added to the users file with a reload that is refused.
const CAROL_PLAIN: &str = "AGNhcm9sAGNhcm9sJ3MgcGFzc3dvcmQ=";

fn passwd(users: &Path, user: &str, password: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["passwd", "--users"])
        .arg(users)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    stdout(&output)
}

/// A self-signed certificate for localhost, as PEM (certificate, key).
fn certificate() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

fn trusting(cert_pem: &str) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Tls = BufReader<StreamOwned<ClientConnection, TcpStream>>;

/// Connects to the implicit-TLS listener trusting only `cert_pem`; the
/// handshake's error if the server's certificate is another.
fn connect_tls(addr: SocketAddr, cert_pem: &str) -> Result<Tls, String> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = StreamOwned::new(ClientConnection::new(trusting(cert_pem), name).unwrap(), tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| e.to_string())?;
    }
    let mut tls = BufReader::new(tls);
    assert!(reply(&mut tls).starts_with("220 "));
    Ok(tls)
}

fn reply(tls: &mut Tls) -> String {
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        assert!(tls.read_line(&mut line).unwrap() > 0, "connection closed after {reply:?}");
        reply.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return reply;
        }
    }
}

fn command(tls: &mut Tls, line: &str) -> String {
    tls.get_mut().write_all(format!("{line}\r\n").as_bytes()).unwrap();
    reply(tls)
}

#[test]
fn passwd_creates_a_private_file_and_replaces_passwords() {
    let dir = TempDir::new("passwd");
    let users = dir.path().join("users");
    assert!(passwd(&users, "alice", "first").contains("added alice"));
    assert_eq!(std::fs::metadata(&users).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(passwd(&users, "alice", "second").contains("updated alice"));
    let text = std::fs::read_to_string(&users).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("alice:{ARGON2ID}$argon2id$"), "{text}");
    assert!(!text.contains("second"), "the password itself is in the file");
    let bad = Command::new(BIN).args(["passwd", "--users"]).arg(&users).arg("a:b").stdin(Stdio::null()).output();
    assert!(!bad.unwrap().status.success(), "a user name with ':' was taken");
}

#[test]
fn certificates_and_users_reload_without_dropping_connections() {
    let dir = TempDir::new("tlsreload");
    let (cert_a, key_a) = certificate();
    let (cert_b, key_b) = certificate();
    let (cert, key, users) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("users"));
    std::fs::write(&cert, &cert_a).unwrap();
    std::fs::write(&key, &key_a).unwrap();
    passwd(&users, "alice", "s3cret pass");
    let paths = [&cert, &key, &users].map(|p| p.to_str().unwrap().to_string());
    let args = [
        "--tls-cert",
        &paths[0],
        "--tls-key",
        &paths[1],
        "--users",
        &paths[2],
        "--listen-tls",
        "127.0.0.1:0",
        "--listen-submission",
        "127.0.0.1:0",
        "--auth-failure-delay-ms",
        "0",
    ];
    let server = serve_logging(&[], dir.path(), &args, "debug");
    let line = server.log.wait_for(0, &["serving SMTP", "role=submissions"], START);
    let tls_addr: SocketAddr = field(&line, "listen").parse().unwrap();
    assert!(server.log.wait_for(0, &["serving SMTP", "role=submission "], START).contains("listen="));

    let mut before = connect_tls(tls_addr, &cert_a).unwrap();
    assert!(command(&mut before, "EHLO x").contains("AUTH PLAIN LOGIN"));
    assert!(command(&mut before, &format!("AUTH PLAIN {ALICE_PLAIN}")).starts_with("235 "));

    // A new pair and a new user.
    std::fs::write(&cert, &cert_b).unwrap();
    std::fs::write(&key, &key_b).unwrap();
    passwd(&users, "bob", "hunter2 hunter2");
    let reload = server.control("reload");
    assert!(reload.status.success(), "{reload:?}");
    let text = stdout(&reload);
    assert!(text.contains("certificate reloaded") && text.contains("2 users from"), "{text}");
    // The connection from before goes on, on the old certificate.
    assert!(command(&mut before, "MAIL FROM:<alice@example.org>").starts_with("250 "));
    // New connections get the new certificate, and bob may log in.
    assert!(connect_tls(tls_addr, &cert_a).is_err(), "the old certificate is still served");
    let mut after = connect_tls(tls_addr, &cert_b).unwrap();
    command(&mut after, "EHLO x");
    assert!(command(&mut after, &format!("AUTH PLAIN {BOB_PLAIN}")).starts_with("235 "));

    // A key that does not fit the certificate refuses the whole reload:
    // B serves on, and carol, added to the users file at the same time,
    // is not let in.
    std::fs::write(&key, &key_a).unwrap();
    passwd(&users, "carol", "carol's password");
    let refused = server.control("reload");
    assert!(!refused.status.success(), "{refused:?}");
    let reason = stderr(&refused);
    assert!(reason.contains("nothing changed") && reason.contains("certificate: the key"), "{reason}");
    assert!(connect_tls(tls_addr, &cert_b).is_ok());
    let mut carol = connect_tls(tls_addr, &cert_b).unwrap();
    command(&mut carol, "EHLO x");
    assert!(command(&mut carol, &format!("AUTH PLAIN {CAROL_PLAIN}")).starts_with("535 "));
    assert!(command(&mut before, "QUIT").starts_with("221 "));

    // Debug logging shows who logged in, never a password.
    let mut wrong = connect_tls(tls_addr, &cert_b).unwrap();
    command(&mut wrong, "EHLO x");
    assert!(command(&mut wrong, "AUTH LOGIN YWxpY2U=").starts_with("334 "));
    assert!(command(&mut wrong, "bm90IHRoZSBwYXNzd29yZA==").starts_with("535 5.7.8"));
    let mark = server.log.mark();
    assert!(command(&mut wrong, "QUIT").starts_with("221"));
    server.log.wait_for(mark.saturating_sub(50), &["AUTH refused"], START);
    let log = server.log.lines_so_far();
    assert!(log.contains("client authenticated"), "{log}");
    for secret in [
        "s3cret pass",
        "hunter2",
        ALICE_PLAIN,
        BOB_PLAIN,
        "czNjcmV0IHBhc3M=",
        "not the password",
        "bm90IHRoZSBwYXNzd29yZA==",
    ] {
        assert!(!log.contains(secret), "{secret:?} is in the debug log");
    }
}
