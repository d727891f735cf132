//! Real SMTP clients (swaks, curl, Python's smtplib, lettre, msmtp and a
//! private Postfix instance relaying through us) deliver over STARTTLS and
//! implicit TLS with AUTH (issue 13). Each stored message must be
//! byte-exact, and its trace must say TLS, ESMTPSA and who authenticated.
//!
//! The tools are installed by .ci/run; a missing tool fails its test with
//! a message naming it. Every child process runs under a deadline and is
//! killed past it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use smtpcell_tests::client::RawClient;
use smtpcell_tests::server::{StoredMessage, TestServer, stored_message};

const USER: &str = "alice";
/// No spaces or colons: it goes into curl's `-u`, msmtp's `passwordeval`
/// and Postfix's `static:` map as it is.
const PASSWORD: &str = "tls-client-pw";
/// The deadline of every client process (each finishes in well under a
/// second when things work).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long Postfix may take to relay a message it accepted.
const RELAY_TIMEOUT: Duration = Duration::from_secs(60);

/// A server with all three listeners, one user, and the identity written
/// into Received.
fn tls_server() -> TestServer {
    TestServer::builder()
        .tls()
        .users(&[(USER, PASSWORD)])
        .submission()
        .implicit_tls()
        .config(|c| c.received_auth = true)
        .start()
}

fn submission(server: &TestServer) -> SocketAddr {
    server.submission_addr.expect("a submission listener")
}

fn implicit(server: &TestServer) -> SocketAddr {
    server.tls_addr.expect("an implicit-TLS listener")
}

fn cert_path(server: &TestServer) -> PathBuf {
    server.cert.as_ref().expect("a certificate").cert_path()
}

/// The same body as real_clients.rs: lines starting with dots, a lone dot,
/// 8-bit text, a long (but legal) line, and an empty line.
fn tricky_body() -> String {
    let long = "x".repeat(900);
    format!(
        "Subject: transparency\r\nFrom: a@example.org\r\nTo: b@example.org\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nh\u{e9}llo 8-bit\r\n{long}\r\n\r\nlast line\r\n"
    )
}

fn only_message(server: &TestServer) -> StoredMessage {
    let files = server.delivered();
    assert_eq!(files.len(), 1, "expected exactly one stored message, found {files:?}");
    assert!(server.leftovers().is_empty(), "tmp/ is not empty: {:?}", server.leftovers());
    stored_message(&files[0]).unwrap()
}

/// The trace of a message `helo` sent over TLS after AUTH as [`USER`]:
/// the TLS comment, the identity comment, and ESMTPSA.
fn assert_tls_trace(stored: &StoredMessage, helo: &str) {
    let trace = stored.trace_text();
    let from = format!("\r\nReceived: from {helo} ([127.0.0.1])\r\n\t(using TLSv1.3 with cipher TLS_");
    assert!(trace.contains(&from), "no TLS comment after the from clause of {helo}:\n{trace}");
    let identity = format!(")\r\n\t(authenticated as {USER})\r\n\tby smtpcell.test (smtpcell, ");
    assert!(trace.contains(&identity), "no identity comment:\n{trace}");
    assert!(trace.contains(" with ESMTPSA id "), "not ESMTPSA:\n{trace}");
}

fn write_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// What a finished client process said (stdout then stderr) and how it
/// ended.
struct Finished {
    status: ExitStatus,
    output: String,
}

/// Runs `cmd` with `stdin` (or nothing) as input, killing it after
/// `timeout`. A program that is not installed fails the test, naming it.
fn run_bounded(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Finished {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} is not installed (.ci/run installs it): {err}")
        }
        Err(err) => panic!("cannot run {cmd:?}: {err}"),
    };
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        // A client that quits early closes its end: the error is its story.
        std::thread::spawn(move || drop(pipe.write_all(&input)))
    });
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let status = wait_bounded(&mut child, timeout);
    if let Some(writer) = writer {
        writer.join().unwrap();
    }
    let output = format!("{}{}", stdout.join().unwrap(), stderr.join().unwrap());
    match status {
        Some(status) => Finished { status, output },
        None => panic!("{cmd:?} did not finish in {timeout:?} and was killed; it said:\n{output}"),
    }
}

/// Like [`run_bounded`], and the program must succeed.
fn run_ok(cmd: &mut Command, stdin: Option<&[u8]>) -> String {
    let done = run_bounded(cmd, stdin, CLIENT_TIMEOUT);
    assert!(done.status.success(), "{cmd:?} failed ({}):\n{}", done.status, done.output);
    done.output
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The child's status, or None after killing it at the deadline.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------- swaks

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

// ---------------------------------------------------------------- Postfix

/// A private Postfix instance under a temporary directory (its own
/// config, queue and data directories; /etc/postfix is left alone): an smtpd
/// on 127.0.0.1 to inject into, and a relayhost that is our submission
/// listener, reached over STARTTLS with the certificate verified
/// (`secure`, the name `localhost`) and SASL PLAIN/LOGIN as [`USER`].
/// Stopped (and killed if it will not stop) when dropped.
struct Postfix {
    dir: tempfile::TempDir,
    /// Where the test injects.
    smtpd: SocketAddr,
}

impl Postfix {
    fn start(relay: SocketAddr, cert: &Path) -> Postfix {
        assert!(
            std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).ok() == Some(0),
            "the Postfix test must run as root: Postfix's master starts as root and drops to mail_owner"
        );
        let installed = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|dir| dir.join("postfix").is_file()))
            .unwrap_or(false);
        assert!(installed, "postfix is not installed, or not on PATH (.ci/run installs it)");
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        // Postfix's daemons run as the postfix user and must reach their
        // directories (tempdir makes 0700 directories).
        std::fs::set_permissions(r, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        for sub in ["etc", "spool", "data"] {
            std::fs::create_dir(r.join(sub)).unwrap();
        }
        run_ok(Command::new("chown").args(["postfix", r.join("data").to_str().unwrap()]), None);
        // A world-readable copy of the certificate, next to the config.
        std::fs::copy(cert, r.join("etc/cert.pem")).unwrap();
        let smtpd = free_port();
        let r = r.display();
        let main = format!(
            "compatibility_level = 3.6
config_directory = {r}/etc
queue_directory = {r}/spool
data_directory = {r}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.example
mydomain = example
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# Nothing is rewritten or added to mail from the injecting client.
local_header_rewrite_clients =
alias_maps =
alias_database =
biff = no
smtp_dns_support_level = disabled
relayhost = [localhost]:{port}
smtp_tls_security_level = secure
smtp_tls_secure_cert_match = nexthop
smtp_tls_CAfile = {r}/etc/cert.pem
smtp_tls_loglevel = 1
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = static:{USER}:{PASSWORD}
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
maillog_file_prefixes = {r}
maillog_file = {r}/maillog
",
            port = relay.port(),
        );
        let master = format!(
            "{smtpd} inet n - n - - smtpd
pickup     unix  n - n 60   1 pickup
cleanup    unix  n - n -    0 cleanup
qmgr       unix  n - n 300  1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -    - trivial-rewrite
bounce     unix  - - n -    0 bounce
defer      unix  - - n -    0 bounce
trace      unix  - - n -    0 bounce
verify     unix  - - n -    1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -    - proxymap
proxywrite unix  - - n -    1 proxymap
smtp       unix  - - n -    - smtp
relay      unix  - - n -    - smtp
showq      unix  n - n -    - showq
error      unix  - - n -    - error
retry      unix  - - n -    - error
discard    unix  - - n -    - discard
anvil      unix  - - n -    1 anvil
scache     unix  - - n -    1 scache
postlog    unix-dgram n - n - 1 postlogd
"
        );
        let postfix = Postfix { smtpd, dir };
        std::fs::write(postfix.etc().join("main.cf"), main).unwrap();
        std::fs::write(postfix.etc().join("master.cf"), master).unwrap();
        // From here on, Drop stops whatever started.
        let out = run_bounded(postfix.command().arg("start"), None, CLIENT_TIMEOUT);
        assert!(out.status.success(), "postfix start failed:\n{}\nlog:\n{}", out.output, postfix.log());
        postfix
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("postfix");
        cmd.arg("-c").arg(self.etc());
        cmd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The master's pid, while its pid file is there.
    fn master_pid(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.path().join("spool/pid/master.pid")).ok()?;
        Some(text.trim().to_string()).filter(|pid| !pid.is_empty())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = self.master_pid();
        let _ = run_bounded(self.command().arg("stop"), None, Duration::from_secs(30));
        // `postfix stop` signals the master and returns; make sure it and
        // its children are gone before the directory is removed.
        if let Some(pid) = pid {
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while proc.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if proc.exists() {
                let _ = run_bounded(Command::new("kill").args(["-KILL", &pid]), None, Duration::from_secs(10));
            }
        }
    }
}

/// A port nobody listens on now (the listener is closed before Postfix
/// binds it).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The tricky body as SMTP DATA: dot-stuffed, then the terminator.
fn dot_stuffed(body: &str) -> String {
    let mut out = String::new();
    for line in body.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    out + ".\r\n"
}

#[test]
fn postfix_relays_over_starttls_with_sasl_byte_exact() {
    let server = tls_server();
    let postfix = Postfix::start(submission(&server), &cert_path(&server));
    let mut c = RawClient::connect(postfix.smtpd).unwrap();
    assert!(c.reply().unwrap().starts_with("220 "));
    assert!(c.command("EHLO inject.example").unwrap().starts_with("250"));
    assert!(c.command("MAIL FROM:<postfix@example.org> BODY=8BITMIME").unwrap().starts_with("250"));
    assert!(c.command("RCPT TO:<rcpt@example.org>").unwrap().starts_with("250"));
    assert!(c.command("DATA").unwrap().starts_with("354"));
    c.send(dot_stuffed(&tricky_body()).as_bytes()).unwrap();
    let queued = c.reply().unwrap();
    assert!(queued.starts_with("250 "), "Postfix did not take the message: {queued}");
    let _ = c.command("QUIT");

    let deadline = Instant::now() + RELAY_TIMEOUT;
    while server.delivered().is_empty() {
        assert!(Instant::now() < deadline, "nothing relayed in {RELAY_TIMEOUT:?}; Postfix's log:\n{}", postfix.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = postfix.log();
    let stored = only_message(&server);
    assert_tls_trace(&stored, "postfix.example");
    assert!(stored.trace_text().starts_with("Return-Path: <postfix@example.org>\r\n"), "{}", stored.trace_text());
    assert!(stored.trace_text().contains("X-Envelope-Body: 8BITMIME\r\n"), "{}", stored.trace_text());
    // Postfix prepends its own Received header (folded) and nothing else.
    let content = String::from_utf8_lossy(&stored.content).into_owned();
    assert!(content.starts_with("Received: from inject.example ("), "{content}");
    let end = content.match_indices("\r\n").map(|(at, _)| at + 2).find(|&at| !content[at..].starts_with(['\t', ' ']));
    let (received, rest) = content.split_at(end.unwrap());
    assert!(received.contains("\tby postfix.example (Postfix) with ESMTP id "), "{received}");
    assert_eq!(rest, tricky_body(), "Postfix's Received header was:\n{received}");
    // Postfix checked our certificate against the name and trusted it.
    assert!(log.contains("Verified TLS connection established to localhost[127.0.0.1]"), "{log}");
    assert!(log.contains("status=sent"), "{log}");
}
