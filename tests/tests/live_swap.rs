//! A live server moves between two component versions ten times while
//! twenty clients send mail without pause: no transaction fails, is lost or
//! is duplicated, every stored message is complete, each connection is
//! served by exactly one version, and swaps to broken files are refused
//! while traffic goes on.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smtpcell::server::{Reloader, control};
use smtpcell_tests::client::RawClient;
use smtpcell_tests::driver::embedded_component;
use smtpcell_tests::server::{TestServer, stored_message};
use smtpcell_tests::{TESTBED_COMPONENT, WRONG_REPLIES_COMPONENT};

const CLIENTS: usize = 20;
const SWAPS: usize = 10;

/// Replaces the component file the way an operator's deploy would: write
/// elsewhere, rename over it.
fn install(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// One acknowledged message: who sent it, and which version the client saw
/// in the greeting of the connection that carried it.
struct Acked {
    subject: String,
    version: &'static str,
}

fn client(addr: std::net::SocketAddr, id: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<Acked>>>) -> usize {
    let mut failures = 0;
    let mut connection = 0;
    while !stop.load(Ordering::Relaxed) {
        connection += 1;
        let mut c = RawClient::connect(addr).unwrap();
        let greeting = c.reply().unwrap();
        let version = if greeting.contains("ESMTP smtpcell v2") { "2.0.0-testbed" } else { "0.1.0" };
        assert!(c.command("EHLO swap.example").unwrap().starts_with("250"));
        for message in 0..2 {
            let subject = format!("client {id} connection {connection} message {message}");
            let ok = c.command("MAIL FROM:<swap@example.org>").unwrap().starts_with("250")
                && c.command("RCPT TO:<swap@example.org>").unwrap().starts_with("250")
                && c.command("DATA").unwrap().starts_with("354");
            let reply = if ok {
                c.command(&format!("Subject: {subject}\r\n\r\n{}\r\n.", "z".repeat(500))).unwrap()
            } else {
                String::new()
            };
            if reply.starts_with("250 2.0.0") {
                acked.lock().unwrap().push(Acked { subject, version });
            } else {
                failures += 1;
                eprintln!("client {id}: transaction failed: {reply:?}");
            }
        }
        assert!(c.command("QUIT").unwrap().starts_with("221"));
    }
    failures
}

/// smtpcell's own component as built against the 1.0 contract (from
/// commit 2f850c0; see tests/fixtures/README.md).
const CONTRACT_1_COMPONENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/smtpcell-guest-contract-1.0.0.wasm");

#[test]
fn swapping_versions_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("component.wasm");
    let v1 = smtpcell::EMBEDDED_COMPONENT.to_vec();
    let v2 = std::fs::read(TESTBED_COMPONENT).unwrap();
    install(&file, &v1);
    let server = TestServer::start();
    let runtime = embedded_component().runtime().clone();
    let reloader = Reloader::new(runtime, server.registry.clone(), Some(file.clone()));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (stop, acked, addr) = (stop.clone(), acked.clone(), server.addr);
            std::thread::spawn(move || client(addr, id, stop, acked))
        })
        .collect();

    let mut latencies = Vec::new();
    for swap in 0..SWAPS {
        std::thread::sleep(Duration::from_millis(200));
        let (bytes, label) =
            if swap % 2 == 0 { (&v2, "smtpcell-guest@2.0.0-testbed") } else { (&v1, "smtpcell-guest@0.1.0") };
        install(&file, bytes);
        let swapped = rt.block_on(reloader.reload("test")).expect("a good component is swapped in");
        assert_eq!(swapped.to, label);
        latencies.push(swapped.elapsed);
        if swap == SWAPS / 2 {
            // Broken files are refused, naming the step, and the current
            // version keeps serving.
            install(&file, &std::fs::read(WRONG_REPLIES_COMPONENT).unwrap());
            let refused = rt.block_on(reloader.reload("test")).unwrap_err();
            assert_eq!(refused.step, "replay", "{refused}");
            install(&file, b"\0asm garbage");
            let refused = rt.block_on(reloader.reload("test")).unwrap_err();
            assert_eq!(refused.step, "compile", "{refused}");
            // A component built against the 1.0 contract says so.
            install(&file, &std::fs::read(CONTRACT_1_COMPONENT).unwrap());
            let refused = rt.block_on(reloader.reload("test")).unwrap_err();
            assert_eq!(refused.step, "link", "{refused}");
            assert!(refused.reason.contains("smtp:session@1.0.0") && refused.reason.contains("smtp:session@3."));
            assert_eq!(server.registry.current().label(), label);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let failures: usize = clients.into_iter().map(|c| c.join().expect("client thread")).sum();
    println!("swap latencies: {latencies:?}");
    assert_eq!(failures, 0, "failed transactions during swaps");

    let acked = acked.lock().unwrap();
    let files = server.delivered();
    assert_eq!(files.len(), acked.len(), "stored messages differ from acknowledged ones");
    let versions: std::collections::HashMap<&str, &str> =
        acked.iter().map(|a| (a.subject.as_str(), a.version)).collect();
    let mut seen = HashSet::new();
    let mut served = HashSet::new();
    for file in &files {
        let stored = stored_message(file).unwrap();
        let content = String::from_utf8_lossy(&stored.content);
        let subject = content.lines().next().unwrap().strip_prefix("Subject: ").unwrap().to_string();
        assert_eq!(content, format!("Subject: {subject}\r\n\r\n{}\r\n", "z".repeat(500)), "incomplete message");
        let version = versions.get(subject.as_str()).expect("a stored message was acknowledged");
        // The version in the trace is the one the connection was greeted by.
        assert!(stored.trace_text().contains(&format!("(smtpcell, smtpcell-guest@{version})")), "{subject}");
        served.insert(*version);
        assert!(seen.insert(subject), "duplicate message");
    }
    assert_eq!(served.len(), 2, "both versions served connections");
    assert!(server.leftovers().is_empty());
}

/// The server's log, captured: what `tracing` writes while the test runs.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_reload_refused_over_the_control_socket_is_answered_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("component.wasm");
    install(&file, b"\0asm garbage");
    let socket = dir.path().join("control.sock");
    let server = TestServer::start();
    let runtime = embedded_component().runtime().clone();
    let reloader = Reloader::new(runtime, server.registry.clone(), Some(file));
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let listener = control::bind(&socket).await.unwrap();
            let serving = tokio::spawn(control::serve(listener, reloader, server.registry.clone()));
            let answer = control::request(&socket, "reload").await;
            serving.abort();
            answer
        })
    });
    let refusal = answer.expect_err("a garbage component is refused").to_string();
    assert!(refusal.contains("compile"), "{refusal}");
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = log.lines().find(|l| l.contains("reload refused")).unwrap_or_else(|| panic!("not logged: {log}"));
    assert!(line.contains("WARN") && line.contains("trigger=\"control socket\"") && line.contains("compile"), "{line}");
    assert_eq!(server.registry.current().label(), "smtpcell-guest@0.1.0");
}
