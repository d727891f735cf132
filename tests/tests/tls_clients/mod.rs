//! What the real-client TLS tests share (real_clients_tls.rs,
//! postfix_relay.rs): the server they deliver to, the body they send, the
//! trace they expect, and child processes run under a deadline.

// Each test binary uses a part of these.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smtpcell_tests::server::{StoredMessage, TestServer, stored_message};

pub const USER: &str = "alice";
/// No spaces or colons: it goes into curl's `-u`, msmtp's `passwordeval`
/// and Postfix's `static:` map as it is.
pub const PASSWORD: &str = "tls-client-pw";
/// The deadline of every client process (each finishes in well under a
/// second when things work).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long Postfix may take to relay a message it accepted.
pub const RELAY_TIMEOUT: Duration = Duration::from_secs(60);

/// A server with all three listeners, one user, and the identity written
/// into Received.
pub fn tls_server() -> TestServer {
    TestServer::builder()
        .tls()
        .users(&[(USER, PASSWORD)])
        .submission()
        .implicit_tls()
        .config(|c| c.received_auth = true)
        .start()
}

pub fn submission(server: &TestServer) -> SocketAddr {
    server.submission_addr.expect("a submission listener")
}

pub fn implicit(server: &TestServer) -> SocketAddr {
    server.tls_addr.expect("an implicit-TLS listener")
}

pub fn cert_path(server: &TestServer) -> PathBuf {
    server.cert.as_ref().expect("a certificate").cert_path()
}

/// The same body as real_clients.rs: lines starting with dots, a lone dot,
/// 8-bit text, a long (but legal) line, and an empty line.
pub fn tricky_body() -> String {
    let long = "x".repeat(900);
    format!(
        "Subject: transparency\r\nFrom: a@example.org\r\nTo: b@example.org\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nh\u{e9}llo 8-bit\r\n{long}\r\n\r\nlast line\r\n"
    )
}

pub fn only_message(server: &TestServer) -> StoredMessage {
    let files = server.delivered();
    assert_eq!(files.len(), 1, "expected exactly one stored message, found {files:?}");
    assert!(server.leftovers().is_empty(), "tmp/ is not empty: {:?}", server.leftovers());
    stored_message(&files[0]).unwrap()
}

/// The trace of a message `helo` sent over TLS after AUTH as [`USER`]:
/// the TLS comment, the identity comment, and ESMTPSA.
pub fn assert_tls_trace(stored: &StoredMessage, helo: &str) {
    let trace = stored.trace_text();
    let from = format!("\r\nReceived: from {helo} ([127.0.0.1])\r\n\t(using TLSv1.3 with cipher TLS_");
    assert!(trace.contains(&from), "no TLS comment after the from clause of {helo}:\n{trace}");
    let identity = format!(")\r\n\t(authenticated as {USER})\r\n\tby smtpcell.test (smtpcell, ");
    assert!(trace.contains(&identity), "no identity comment:\n{trace}");
    assert!(trace.contains(" with ESMTPSA id "), "not ESMTPSA:\n{trace}");
}

pub fn write_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// What a finished client process said (stdout then stderr) and how it
/// ended.
pub struct Finished {
    pub status: ExitStatus,
    pub output: String,
}

/// Runs `cmd` with `stdin` (or nothing) as input, killing it after
/// `timeout`. A program that is not installed fails the test, naming it.
pub fn run_bounded(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Finished {
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
pub fn run_ok(cmd: &mut Command, stdin: Option<&[u8]>) -> String {
    let done = run_bounded(cmd, stdin, CLIENT_TIMEOUT);
    assert!(done.status.success(), "{cmd:?} failed ({}):\n{}", done.status, done.output);
    done.output
}

pub fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The child's status, or None after killing it at the deadline.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
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
