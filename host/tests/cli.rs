//! The `smtpcell` binary, end to end: its command line, `check`, a served
//! component reloaded over the control socket, by SIGHUP and by `--watch`,
//! graceful shutdown on SIGTERM and SIGINT, and the compile cache across
//! restarts.
//!
//! Each server is a child process on 127.0.0.1:0 (the address is read from
//! its `serving SMTP` log line) with its own temporary Maildir, control
//! socket and cache directory; a guard kills it if a test panics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_smtpcell");
const HOSTNAME: &str = "cli.test";

/// Start-up compiles the component (unless cached) and replays the whole
/// transcript corpus; on a busy 2-core machine that can take a while.
const START: Duration = Duration::from_secs(180);
/// A reload does the same work as a start.
const RELOAD: Duration = Duration::from_secs(180);
/// Exiting after a signal: draining idle sessions is immediate.
const EXIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- fixtures

/// A fresh directory under the system temporary directory, removed on drop.
/// Short paths on purpose: a Unix socket path must fit in 108 bytes.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("smtpcell-cli-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
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
struct Log {
    lines: Mutex<(Vec<String>, bool)>,
    grew: Condvar,
}

impl Log {
    fn collect(stderr: impl Read + Send + 'static, name: String) -> Arc<Log> {
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
    fn mark(&self) -> usize {
        self.lines.lock().unwrap().0.len()
    }

    /// The first line from index `from` on containing every one of `needles`.
    fn wait_for(&self, from: usize, needles: &[&str], within: Duration) -> String {
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
struct Served {
    child: Child,
    log: Arc<Log>,
    addr: SocketAddr,
    control: PathBuf,
    maildir: PathBuf,
}

/// What each server gets under `dir`: mail/, control.sock, cache/.
fn serve(dir: &Path, extra: &[&str]) -> Served {
    let maildir = dir.join("mail");
    let control = dir.join("control.sock");
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--hostname", HOSTNAME])
        .arg("--maildir")
        .arg(&maildir)
        .arg("--control")
        .arg(&control)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(extra)
        .env("SMTPCELL_LOG", "info")
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
    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) for the process to exit.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "smtpcell did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `smtpcell <command> --control <this server's socket>`.
    fn control(&self, command: &str) -> Output {
        Command::new(BIN).arg(command).arg("--control").arg(&self.control).output().unwrap()
    }

    fn delivered(&self) -> Vec<PathBuf> {
        let mut files = list(&self.maildir.join("new"));
        files.extend(list(&self.maildir.join("cur")));
        files
    }

    fn leftovers(&self) -> Vec<PathBuf> {
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

fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
}

/// `key=value` from a log line (value up to the next space).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key}= in {line:?}")) + key.len() + 1;
    line[at..].split_whitespace().next().unwrap_or("")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The milliseconds in `swapped A -> B in N ms (...)`.
fn swap_ms(text: &str) -> u64 {
    let after = &text[text.find(" in ").unwrap_or_else(|| panic!("no latency in {text:?}")) + 4..];
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// The embedded component with a custom section appended: the same
/// protocol, but other bytes, so the compile cache has never seen it.
fn component_variant(tag: &str) -> Vec<u8> {
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

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Client { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
    }

    /// Connected and greeted by this server.
    fn greeted(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr);
        let greeting = c.reply();
        assert!(greeting.starts_with(&format!("220 {HOSTNAME} ")), "{greeting:?}");
        c
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn reply(&mut self) -> String {
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

    fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    fn expect(&mut self, line: &str, code: &str) {
        let reply = self.command(line);
        assert!(reply.starts_with(code), "{line:?} got {reply:?}");
    }

    /// Up to the 354 of DATA.
    fn open_message(&mut self) {
        self.expect("EHLO client.example", "250");
        self.expect("MAIL FROM:<sender@example.org>", "250");
        self.expect("RCPT TO:<rcpt@example.org>", "250");
        self.expect("DATA", "354");
    }

    /// Everything until the server closes (a reset counts as a close).
    fn read_to_close(&mut self) -> String {
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

/// One whole session delivering one message.
fn deliver(addr: SocketAddr, subject: &str) {
    let mut c = Client::greeted(addr);
    c.open_message();
    let reply = c.command(&format!("Subject: {subject}\r\n\r\nhello\r\n."));
    assert!(reply.starts_with("250 2.0.0"), "{reply:?}");
    c.expect("QUIT", "221");
}

// ------------------------------------------------------------------- tests

#[test]
fn serve_help_lists_the_options() {
    let output = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let help = stdout(&output);
    for option in [
        "--listen",
        "--maildir",
        "--hostname",
        "--component",
        "--max-message-size",
        "--watch",
        "--control",
        "--cache-dir",
        "--no-cache",
        "--max-connections",
        "--max-connections-per-ip",
        "--command-timeout",
        "--data-timeout",
        "--data-end-timeout",
        "--shutdown-grace",
        "--guest-memory-mib",
        "--guest-call-budget-ms",
    ] {
        assert!(help.contains(option), "`smtpcell serve --help` does not mention {option}:\n{help}");
    }
}

#[test]
fn check_accepts_the_built_component() {
    let output = Command::new(BIN).arg("check").arg(smtpcell::EMBEDDED_COMPONENT_PATH).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).starts_with("ok "), "{:?}", stdout(&output));
}

#[test]
fn check_refuses_garbage_and_core_modules_naming_the_step() {
    let dir = TempDir::new("check");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not WebAssembly at all\n").unwrap();
    // The smallest valid core module: a module, not a component.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    for file in [&garbage, &core] {
        let output = Command::new(BIN).arg("check").arg(file).output().unwrap();
        assert!(!output.status.success(), "check {} succeeded: {output:?}", file.display());
        assert!(stderr(&output).contains("`compile`"), "check {} does not name the step: {output:?}", file.display());
        assert!(!stdout(&output).starts_with("ok"), "{output:?}");
    }
    let missing = Command::new(BIN).arg("check").arg(dir.path().join("missing.wasm")).output().unwrap();
    assert!(!missing.status.success(), "{missing:?}");
}

#[test]
fn reload_status_and_sighup_on_a_live_server() {
    let dir = TempDir::new("reload");
    let component = dir.path().join("component.wasm");
    let good = std::fs::read(smtpcell::EMBEDDED_COMPONENT_PATH).unwrap();
    std::fs::write(&component, &good).unwrap();
    let mut server = serve(dir.path(), &["--component", component.to_str().unwrap()]);

    deliver(server.addr, "first");
    assert_eq!(server.delivered().len(), 1);

    let status = server.control("status");
    assert!(status.status.success(), "{status:?}");
    let text = stdout(&status);
    let versions: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(versions.len(), 1, "{text:?}");
    assert!(versions[0].contains("(current)"), "{text:?}");

    // The same file again: compiled at start-up, so the cache has it.
    let reload = server.control("reload");
    assert!(reload.status.success(), "{reload:?}");
    let hit = stdout(&reload);
    assert!(hit.starts_with("swapped "), "{hit:?}");
    assert!(hit.contains("compile cache: Hit"), "{hit:?}");

    // Other bytes: compiled afresh.
    std::fs::write(&component, component_variant("miss")).unwrap();
    let reload = server.control("reload");
    assert!(reload.status.success(), "{reload:?}");
    let miss = stdout(&reload);
    assert!(miss.starts_with("swapped "), "{miss:?}");
    assert!(miss.contains("compile cache: Miss"), "{miss:?}");
    println!("swap latency: cache hit {} ms; cache miss {} ms", swap_ms(&hit), swap_ms(&miss));
    println!("  hit:  {}", hit.trim_end());
    println!("  miss: {}", miss.trim_end());

    // A broken file is refused, naming the step, and the server serves on.
    std::fs::write(&component, b"garbage, not a component").unwrap();
    let refused = server.control("reload");
    assert!(!refused.status.success(), "{refused:?}");
    assert!(stderr(&refused).contains("`compile`"), "{refused:?}");
    deliver(server.addr, "after a refused reload");
    assert_eq!(server.delivered().len(), 2);
    let status = server.control("status");
    assert!(status.status.success() && stdout(&status).contains("(current)"), "{status:?}");

    // SIGHUP reloads the (restored) file.
    std::fs::write(&component, &good).unwrap();
    let mark = server.log.mark();
    server.signal("HUP");
    server.log.wait_for(mark, &["component reloaded"], RELOAD);
    assert!(server.running(), "SIGHUP ended the server");
    let status = server.control("status");
    assert!(status.status.success() && stdout(&status).contains("(current)"), "{status:?}");
    deliver(server.addr, "after SIGHUP");
    assert_eq!(server.delivered().len(), 3);

    server.signal("TERM");
    assert_eq!(server.wait_exit(EXIT).code(), Some(0));
    assert!(server.leftovers().is_empty(), "{:?}", server.leftovers());
    assert!(!server.control.exists(), "the control socket outlives the server");
}

#[test]
fn watch_reloads_when_the_file_changes() {
    let dir = TempDir::new("watch");
    let component = dir.path().join("component.wasm");
    std::fs::copy(smtpcell::EMBEDDED_COMPONENT_PATH, &component).unwrap();
    let mut server = serve(dir.path(), &["--component", component.to_str().unwrap(), "--watch"]);

    // Rewritten in place (not renamed over), as `cp` would.
    let mark = server.log.mark();
    std::fs::write(&component, component_variant("watch")).unwrap();
    let line = server.log.wait_for(mark, &["component reloaded"], RELOAD);
    assert!(line.contains("swapped "), "{line}");

    // A broken rewrite is refused and the server serves on.
    let mark = server.log.mark();
    std::fs::write(&component, b"garbage, not a component").unwrap();
    let line = server.log.wait_for(mark, &["reload refused"], RELOAD);
    assert!(line.contains("`compile`"), "{line}");
    deliver(server.addr, "after a refused watch reload");
    assert_eq!(server.delivered().len(), 1);

    server.signal("TERM");
    assert_eq!(server.wait_exit(EXIT).code(), Some(0));
}

/// SIGTERM and SIGINT: an idle client hears the guest's 421 4.3.2, the
/// process exits 0 and nothing is left half-stored.
#[test]
fn sigterm_and_sigint_drain_idle_sessions_and_exit_0() {
    for signal in ["TERM", "INT"] {
        let dir = TempDir::new("signal");
        let mut server = serve(dir.path(), &[]);
        let mut c = Client::greeted(server.addr);
        c.expect("EHLO idle.example", "250");
        server.signal(signal);
        let rest = c.read_to_close();
        assert!(rest.starts_with("421 4.3.2 "), "SIG{signal}: {rest:?}");
        let status = server.wait_exit(EXIT);
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status:?}");
        assert!(server.leftovers().is_empty(), "SIG{signal}: {:?}", server.leftovers());
        assert!(server.delivered().is_empty());
        assert!(!server.control.exists(), "SIG{signal}: the control socket outlives the server");
    }
}

/// After the listener is closed, a new connection must not reach this
/// server: refused, or (if another process took the port meanwhile) at
/// least not greeted by us.
fn not_served_by(addr: SocketAddr) {
    if let Ok(mut stream) = TcpStream::connect(addr) {
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(!text.starts_with(&format!("220 {HOSTNAME}")), "greeted after shutdown began: {text:?}");
    }
}

#[test]
fn sigterm_lets_a_message_in_data_finish_within_the_grace() {
    let dir = TempDir::new("grace");
    let mut server = serve(dir.path(), &["--shutdown-grace", "60"]);
    let mut c = Client::greeted(server.addr);
    c.open_message();
    c.send(b"Subject: in flight\r\n\r\nfirst half\r\n");
    let mark = server.log.mark();
    server.signal("TERM");
    server.log.wait_for(mark, &["shutting down"], EXIT);
    not_served_by(server.addr);
    assert!(server.running(), "the server did not wait for the message in flight");
    c.send(b"second half\r\n.\r\n");
    let reply = c.reply();
    assert!(reply.starts_with("250 2.0.0"), "{reply:?}");
    // Between commands now: the guest says goodbye.
    let rest = c.read_to_close();
    assert!(rest.starts_with("421 4.3.2 "), "{rest:?}");
    assert_eq!(server.wait_exit(EXIT).code(), Some(0));
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 1);
    let stored = std::fs::read_to_string(&delivered[0]).unwrap();
    assert!(stored.ends_with("Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"), "{stored:?}");
    assert!(server.leftovers().is_empty(), "{:?}", server.leftovers());
}

#[test]
fn sigterm_cuts_off_a_message_that_outlasts_the_grace() {
    let dir = TempDir::new("cutoff");
    let mut server = serve(dir.path(), &["--shutdown-grace", "1"]);
    let mut c = Client::greeted(server.addr);
    c.open_message();
    c.send(b"Subject: too slow\r\n\r\nnever finished\r\n");
    let started = Instant::now();
    server.signal("TERM");
    assert_eq!(server.wait_exit(EXIT).code(), Some(0));
    // A loose bound: the grace is 1 s, not the 3-minute data timeout.
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    let rest = c.read_to_close();
    assert!(!rest.contains("250"), "{rest:?}");
    assert!(server.delivered().is_empty(), "{:?}", server.delivered());
    assert!(server.leftovers().is_empty(), "{:?}", server.leftovers());
}

#[test]
fn compile_cache_hits_on_the_second_start() {
    let dir = TempDir::new("cache");
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let mut server = serve(dir.path(), &[]);
        let line = server.log.wait_for(0, &["component validated"], START);
        outcomes.push((field(&line, "cache").to_string(), field(&line, "ms").to_string()));
        deliver(server.addr, "cached or not");
        server.signal("TERM");
        assert_eq!(server.wait_exit(EXIT).code(), Some(0));
    }
    println!("start-up validation: first {:?}, second {:?}", outcomes[0], outcomes[1]);
    assert_eq!(outcomes[0].0, "Miss", "{outcomes:?}");
    assert_eq!(outcomes[1].0, "Hit", "{outcomes:?}");
    let entries: Vec<PathBuf> =
        list(&dir.path().join("cache")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "cwasm")).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}
