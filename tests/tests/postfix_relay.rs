//! Postfix as a relaying client (issue 13): a private Postfix instance,
//! started and stopped by the test, relays a message to our submission
//! listener over STARTTLS with the certificate verified and SASL AUTH; the
//! stored message must be byte-exact and its trace say TLS and ESMTPSA.
//! Postfix and its SASL client plugins are installed by .ci/run.

mod tls_clients;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use smtpcell_tests::client::RawClient;

use tls_clients::*;

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
