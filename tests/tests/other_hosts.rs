//! The built component in two other component-model hosts: Node.js (jco, in
//! tests/hosts/node) and Python (wasmtime-py, in tests/hosts/python). Each
//! runs the whole transcript corpus, and each serves a real client (Python
//! smtplib) over TCP into a Maildir, byte-exact.
//!
//! The tests install the hosts' pinned dependencies themselves (`npm ci`,
//! a virtual environment with `pip install`), once, and reuse them while
//! the lockfile and the requirements stay the same. A host that cannot be
//! set up fails the test with the installer's output: it is never skipped.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use smtpcell_tests::client::RawClient;
use smtpcell_tests::server::{delivered, stored_message};
use smtpcell_tests::transcript::{Transcript, corpus_dir};

/// How long a host server may take to print `listening on`.
const STARTUP: Duration = Duration::from_secs(60);

fn hosts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hosts")
}

/// Runs a command to completion; panics with everything it printed if it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{text}", out.status);
    text
}

/// Runs a setup step, reporting how long it took (visible with --nocapture).
fn timed(what: &str, cmd: &mut Command) {
    let start = Instant::now();
    run(cmd);
    eprintln!("other_hosts: {what} took {:.1}s", start.elapsed().as_secs_f64());
}

/// Runs `f` holding an exclusive lock that every test process shares: test
/// binaries and parallel `cargo test` runs may set up the same host at the
/// same moment, and two `npm ci` in one folder break each other.
fn locked<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.lock"));
    let file = File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    file.lock().unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    f()
    // Dropping `file` releases the lock.
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// tests/hosts/node with its dependencies installed and the component
/// transpiled (both cached across runs).
fn node_host() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        let dir = hosts_dir().join("node");
        locked("node-host-setup", || {
            // npm writes node_modules/.package-lock.json on every install: it
            // is the install's timestamp.
            let installed = modified(&dir.join("node_modules/.package-lock.json"));
            let lockfile = modified(&dir.join("package-lock.json")).expect("tests/hosts/node/package-lock.json exists");
            if installed.is_none_or(|at| at < lockfile) {
                timed("npm ci", Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir));
            }
            timed(
                "jco transpile (instant when cached)",
                Command::new("node")
                    .arg("transpile.mjs")
                    .arg("--component")
                    .arg(smtpcell::EMBEDDED_COMPONENT_PATH)
                    .current_dir(&dir),
            );
        });
        dir
    })
}

/// The Python interpreter of tests/hosts/python/.venv, with the pinned
/// requirements installed.
fn python_host() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        let dir = hosts_dir().join("python");
        let venv = dir.join(".venv");
        let python = venv.join("bin/python");
        let requirements =
            std::fs::read(dir.join("requirements.txt")).expect("tests/hosts/python/requirements.txt exists");
        // A copy of the requirements the venv was built from: a changed pin
        // rebuilds it.
        let stamp = venv.join("installed-requirements.txt");
        locked("python-host-setup", || {
            if !python.exists() || std::fs::read(&stamp).ok().as_ref() != Some(&requirements) {
                timed("python3 -m venv", Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv));
                timed(
                    "pip install -r requirements.txt",
                    Command::new(&python)
                        .args(["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", "requirements.txt"])
                        .current_dir(&dir),
                );
                std::fs::write(&stamp, &requirements).expect("writing the venv's requirements stamp");
            }
        });
        python
    })
}

/// Runs a host's transcript runner over the corpus and checks its report.
fn assert_corpus_passes(mut cmd: Command) {
    let expected = Transcript::corpus().expect("the corpus parses").len();
    let start = Instant::now();
    let report =
        run(cmd.arg("--component").arg(smtpcell::EMBEDDED_COMPONENT_PATH).arg("--transcripts").arg(corpus_dir()));
    eprintln!("other_hosts: {cmd:?} took {:.1}s", start.elapsed().as_secs_f64());
    let last = report.lines().last().unwrap_or_default();
    assert_eq!(last, format!("{expected} passed, 0 failed"), "unexpected report:\n{report}");
}

#[test]
fn node_host_passes_the_corpus() {
    let dir = node_host();
    let mut cmd = Command::new("node");
    cmd.arg("run-transcripts.mjs").current_dir(dir);
    assert_corpus_passes(cmd);
}

#[test]
fn python_host_passes_the_corpus() {
    let python = python_host();
    let mut cmd = Command::new(python);
    cmd.arg("run_transcripts.py").current_dir(hosts_dir().join("python"));
    assert_corpus_passes(cmd);
}

#[test]
fn node_host_serves_smtplib_into_a_maildir() {
    let dir = node_host();
    let mut cmd = Command::new("node");
    cmd.arg("server.mjs").current_dir(dir);
    deliver_through(cmd, "smtpcell node host");
}

#[test]
fn python_host_serves_smtplib_into_a_maildir() {
    let python = python_host();
    let mut cmd = Command::new(python);
    cmd.arg("server.py").current_dir(hosts_dir().join("python"));
    deliver_through(cmd, "smtpcell python host");
}

/// A host server process, killed when the test ends however it ends.
struct HostServer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl HostServer {
    fn start(mut cmd: Command, component: &str, maildir: &Path, log: PathBuf) -> HostServer {
        let log_file = File::create(&log).expect("creating the server log");
        cmd.args(["--listen", "127.0.0.1:0", "--hostname", "smtpcell.test", "--component", component])
            .arg("--maildir")
            .arg(maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.parse::<SocketAddr>());
                }
            }
        });
        let mut server = HostServer { child, addr: "127.0.0.1:0".parse().unwrap(), log };
        match rx.recv_timeout(STARTUP) {
            Ok(Ok(addr)) => server.addr = addr,
            Ok(Err(e)) => panic!("{cmd:?} printed a bad address ({e}); log:\n{}", server.log_text()),
            Err(_) => panic!("{cmd:?} did not print `listening on` within {STARTUP:?}; log:\n{}", server.log_text()),
        }
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines starting with dots (a lone one too), 8-bit text, a long line.
fn tricky_body() -> Vec<u8> {
    let long = "x".repeat(900);
    format!(
        "Subject: other hosts\r\nFrom: alice@example.org\r\nTo: bob@example.org\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nh\u{e9}llo 8-bit \u{2713}\r\n{long}\r\n\r\nlast line\r\n"
    )
    .into_bytes()
}

const SMTPLIB_CLIENT: &str = r#"
import smtplib, sys
body = sys.stdin.buffer.read()
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30) as s:
    s.ehlo("python.example")
    assert s.has_extn("8bitmime") and s.has_extn("pipelining"), s.esmtp_features
    refused = s.sendmail("alice@example.org", ["bob@example.org"], body, mail_options=["BODY=8BITMIME"])
    assert refused == {}, refused
"#;

fn deliver_through(server_cmd: Command, host_name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let maildir = tmp.path().join("mail");
    let server =
        HostServer::start(server_cmd, smtpcell::EMBEDDED_COMPONENT_PATH, &maildir, tmp.path().join("server.log"));

    let mut client = Command::new("python3")
        .args(["-c", SMTPLIB_CLIENT, &server.addr.ip().to_string(), &server.addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    client.stdin.take().unwrap().write_all(&tricky_body()).unwrap();
    let out = client.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "smtplib failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );

    // The 250 came after the commit, so the message is already in new/.
    let files = delivered(&maildir);
    assert_eq!(files.len(), 1, "expected one stored message, found {files:?}; log:\n{}", server.log_text());
    let leftovers: Vec<_> = std::fs::read_dir(maildir.join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "tmp/ is not empty: {leftovers:?}");
    let stored = stored_message(&files[0]).unwrap();
    assert_eq!(stored.content, tricky_body(), "content differs:\n{}", String::from_utf8_lossy(&stored.content));
    let trace = stored.trace_text();
    assert!(trace.starts_with("Return-Path: <alice@example.org>\r\nX-Envelope-To: <bob@example.org>\r\n"), "{trace}");
    assert!(trace.contains("X-Envelope-Body: 8BITMIME\r\n"), "{trace}");
    assert!(trace.contains("Received: from python.example ([127.0.0.1])\r\n\tby smtpcell.test"), "{trace}");
    assert!(trace.contains(&format!("({host_name}, ")), "{trace}");
    assert!(trace.contains("\r\n\tfor <bob@example.org>;\r\n\t"), "{trace}");
}

#[test]
fn node_host_contains_a_faulty_guest() {
    let dir = node_host();
    let mut cmd = Command::new("node");
    cmd.arg("server.mjs").current_dir(dir);
    // V8 has no per-call CPU budget or per-instance memory cap, so the
    // runaway-loop and memory-bomb triggers stay out of this host's test.
    contain_faults(cmd, &[]);
}

#[test]
fn python_host_contains_a_faulty_guest() {
    let python = python_host();
    let mut cmd = Command::new(python);
    cmd.arg("server.py").current_dir(hosts_dir().join("python"));
    contain_faults(cmd, &["X-LOOP", "X-ALLOC"]);
}

const GUEST_FAULT_REPLY: &str = "421 4.3.0 smtpcell.test Service unavailable, closing connection\r\n";

/// Serves the fault-injection build of the component (see
/// guest/component/src/testbed.rs): a trap in the middle of a message, a
/// contract violation, and `extra` triggers each end only their own
/// connection with 421 and leave nothing in the Maildir; the sandbox probes
/// find no environment, no files and no network; the server keeps serving.
fn contain_faults(server_cmd: Command, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let maildir = tmp.path().join("mail");
    let server =
        HostServer::start(server_cmd, smtpcell_tests::TESTBED_COMPONENT, &maildir, tmp.path().join("server.log"));
    let connect = || {
        let mut client = RawClient::connect(server.addr).unwrap();
        let greeting = client.reply().unwrap();
        // The testbed build, not the default one, is serving.
        assert!(greeting.contains("ESMTP smtpcell v2"), "{greeting}");
        assert!(client.command("EHLO client.example").unwrap().starts_with("250"));
        client
    };

    let mut client = connect();
    for (command, code) in [("MAIL FROM:<a@example.org>", 250), ("RCPT TO:<b@example.org>", 250), ("DATA", 354)] {
        client.send(format!("{command}\r\n").as_bytes()).unwrap();
        assert_eq!(client.code().unwrap(), code, "{command}");
    }
    client.send(b"a first line of content\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200)); // a read of its own: the message is open
    client.send(b"X-TRAP\r\n").unwrap();
    assert_eq!(client.read_to_close().unwrap(), GUEST_FAULT_REPLY, "log:\n{}", server.log_text());

    for trigger in ["X-END-WITHOUT-BEGIN", "X-INJECT-HEADER"].iter().chain(extra) {
        let mut client = connect();
        client.send(format!("{trigger}\r\n").as_bytes()).unwrap();
        assert_eq!(client.read_to_close().unwrap(), GUEST_FAULT_REPLY, "{trigger}; log:\n{}", server.log_text());
    }

    for probe in ["X-ENV", "X-FILE", "X-SOCKET"] {
        let reply = connect().command(probe).unwrap();
        assert!(reply.starts_with("250 denied "), "{probe}: {reply}");
    }

    assert!(delivered(&maildir).is_empty(), "a faulted message was stored: {:?}", delivered(&maildir));
    let leftovers: Vec<_> = std::fs::read_dir(maildir.join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "tmp/ is not empty: {leftovers:?}");
    assert_eq!(connect().command("QUIT").unwrap(), "221 2.0.0 Bye\r\n");
}
