//! Fixtures shared by the tests that run the `smtpcell` binary: a
//! temporary directory, a served child process with its log, and a small
//! blocking SMTP client.
//!
//! Each server is a child process on 127.0.0.1:0 (the address is read from
//! its `serving SMTP` log line) with its own temporary Maildir, control
//! socket and cache directory; dropping it kills the process if a test
//! panics.

// Each test binary uses a part of these fixtures.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_smtpcell");
pub const HOSTNAME: &str = "cli.test";

/// Start-up compiles the component (unless cached) and replays the whole
/// transcript corpus; on a busy 2-core machine that can take a while.
pub const START: Duration = Duration::from_secs(180);
/// A reload does the same work as a start.
pub const RELOAD: Duration = Duration::from_secs(180);
/// Exiting after a signal: draining idle sessions is immediate.
pub const EXIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- fixtures

/// A fresh directory under the system temporary directory, removed on drop.
/// Short paths on purpose: a Unix socket path must fit in 108 bytes.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("smtpcell-cli-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines the server wrote to stderr, as they arrive.
#[derive(Default)]
pub struct Log {
    lines: Mutex<(Vec<String>, bool)>,
    grew: Condvar,
}

impl Log {
    pub fn collect(stderr: impl Read + Send + 'static, name: String) -> Arc<Log> {
        let log = Arc::new(Log::default());
        let writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Shown when a test fails (the harness captures it otherwise).
                eprintln!("[{name}] {line}");
                writer.lines.lock().unwrap().0.push(line);
                writer.grew.notify_all();
            }
            writer.lines.lock().unwrap().1 = true;
            writer.grew.notify_all();
        });
        log
    }

    /// How many lines so far: pass it to [`Log::wait_for`] to only look at
    /// what comes after.
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap().0.len()
    }

    /// Every line so far, joined.
    pub fn lines_so_far(&self) -> String {
        self.lines.lock().unwrap().0.join("\n")
    }

    /// The first line from index `from` on containing every one of `needles`.
    pub fn wait_for(&self, from: usize, needles: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut guard = self.lines.lock().unwrap();
        loop {
            let (lines, ended) = &*guard;
            if let Some(line) = lines.iter().skip(from).find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.clone();
            }
            let now = Instant::now();
            assert!(!*ended, "the server's stderr ended before a line with {needles:?}");
            assert!(now < deadline, "no log line with {needles:?} within {within:?}");
            guard = self.grew.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }
}

/// A running `smtpcell serve`. Dropping it kills the process.
pub struct Served {
    pub child: Child,
    pub log: Arc<Log>,
    pub addr: SocketAddr,
    pub control: PathBuf,
    pub maildir: PathBuf,
}

/// What each server gets under `dir`: mail/, control.sock, cache/.
pub fn serve(dir: &Path, extra: &[&str]) -> Served {
    serve_under(&[], dir, extra)
}

/// [`serve`], with the server started by `wrapper` (a command that execs
/// the rest of its arguments, such as `prlimit --nofile=256:256 --`).
pub fn serve_under(wrapper: &[&str], dir: &Path, extra: &[&str]) -> Served {
    serve_logging(wrapper, dir, extra, "info")
}

/// [`serve_under`] with `SMTPCELL_LOG` set to `level`.
pub fn serve_logging(wrapper: &[&str], dir: &Path, extra: &[&str], level: &str) -> Served {
    let maildir = dir.join("mail");
    let control = dir.join("control.sock");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(BIN);
            command
        }
        None => Command::new(BIN),
    };
    let mut child = command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--hostname", HOSTNAME])
        .arg("--maildir")
        .arg(&maildir)
        .arg("--control")
        .arg(&control)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        // These tests reach no DNS; tests/tests/mail_auth*.rs check mail
        // authentication against their own.
        .arg("--no-mail-auth")
        .args(extra)
        .env("SMTPCELL_LOG", level)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning smtpcell serve");
    let log = Log::collect(child.stderr.take().unwrap(), format!("serve {}", child.id()));
    let mut served = Served { child, log, addr: "127.0.0.1:0".parse().unwrap(), control, maildir };
    let line = served.log.wait_for(0, &["serving SMTP"], START);
    served.addr = field(&line, "listen").parse().unwrap_or_else(|e| panic!("no listen= in {line:?}: {e}"));
    served
}

impl Served {
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "smtpcell did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `smtpcell <command> --control <this server's socket>`.
    pub fn control(&self, command: &str) -> Output {
        Command::new(BIN).arg(command).arg("--control").arg(&self.control).output().unwrap()
    }

    pub fn delivered(&self) -> Vec<PathBuf> {
        let mut files = list(&self.maildir.join("new"));
        files.extend(list(&self.maildir.join("cur")));
        files
    }

    pub fn leftovers(&self) -> Vec<PathBuf> {
        list(&self.maildir.join("tmp"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
}

/// `key=value` from a log line (value up to the next space).
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key}= in {line:?}")) + key.len() + 1;
    line[at..].split_whitespace().next().unwrap_or("")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The milliseconds in `swapped A -> B in N ms (...)`.
pub fn swap_ms(text: &str) -> u64 {
    let after = &text[text.find(" in ").unwrap_or_else(|| panic!("no latency in {text:?}")) + 4..];
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// The embedded component with a custom section appended: the same
/// protocol, but other bytes, so the compile cache has never seen it.
pub fn component_variant(tag: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(smtpcell::EMBEDDED_COMPONENT_PATH).unwrap();
    let name = b"smtpcell-cli-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    bytes.push(0); // custom section
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        bytes.push(if len == 0 { byte } else { byte | 0x80 });
        if len == 0 {
            break;
        }
    }
    bytes.extend_from_slice(&payload);
    bytes
}

// ------------------------------------------------------------- SMTP client

pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Client { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
    }

    /// Connected and greeted by this server.
    pub fn greeted(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr);
        let greeting = c.reply();
        assert!(greeting.starts_with(&format!("220 {HOSTNAME} ")), "{greeting:?}");
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    pub fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "connection closed; so far {reply:?}");
            reply.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return reply;
            }
        }
    }

    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    pub fn expect(&mut self, line: &str, code: &str) {
        let reply = self.command(line);
        assert!(reply.starts_with(code), "{line:?} got {reply:?}");
    }

    /// Up to the 354 of DATA.
    pub fn open_message(&mut self) {
        self.expect("EHLO client.example", "250");
        self.expect("MAIL FROM:<sender@example.org>", "250");
        self.expect("RCPT TO:<rcpt@example.org>", "250");
        self.expect("DATA", "354");
    }

    /// Everything until the server closes (a reset counts as a close).
    pub fn read_to_close(&mut self) -> String {
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

/// One whole session delivering one message.
pub fn deliver(addr: SocketAddr, subject: &str) {
    let mut c = Client::greeted(addr);
    c.open_message();
    let reply = c.command(&format!("Subject: {subject}\r\n\r\nhello\r\n."));
    assert!(reply.starts_with("250 2.0.0"), "{reply:?}");
    c.expect("QUIT", "221");
}
