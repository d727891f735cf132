//! The `smtpcell` binary, end to end: its command line, `check`, a served
//! component reloaded over the control socket, by SIGHUP and by `--watch`,
//! graceful shutdown on SIGTERM and SIGINT, and the compile cache across
//! restarts.
//!
//! The fixtures (a served child process, its log, a blocking client) are in
//! `support/`.

mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

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
        "--listen-submission",
        "--listen-tls",
        "--tls-cert",
        "--tls-key",
        "--tls-handshake-timeout",
        "--require-tls",
        "--users",
        "--allow-plaintext-auth",
        "--auth-failure-delay-ms",
        "--max-auth-failures",
        "--received-auth",
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
    // The whole reason is on the step's line (wasmparser's own message
    // spans lines), so a log or control answer carries it in one line.
    let output = Command::new(BIN).arg("check").arg(&garbage).output().unwrap();
    let text = stderr(&output);
    assert!(
        text.lines().any(|l| l.contains("refused at step `compile`") && l.contains("magic") && l.contains("actual=")),
        "{text}"
    );
    let missing = Command::new(BIN).arg("check").arg(dir.path().join("missing.wasm")).output().unwrap();
    assert!(!missing.status.success(), "{missing:?}");
}

#[test]
fn check_refuses_a_component_of_the_1_0_contract_naming_both_contracts() {
    let v1 = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/smtpcell-guest-contract-1.0.0.wasm");
    let output = Command::new(BIN).arg("check").arg(v1).output().unwrap();
    assert!(!output.status.success(), "{output:?}");
    let text = stderr(&output);
    assert!(
        text.contains("refused at step `link`: it implements smtp:session@1.0.0; this host needs smtp:session@3.x"),
        "{text}"
    );
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

#[test]
fn a_control_client_that_sends_nothing_is_cut_off() {
    use std::os::unix::net::UnixStream;
    let dir = TempDir::new("control-idle");
    let server = serve(dir.path(), &[]);
    let mut idle = UnixStream::connect(&server.control).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    // EOF, not the 60 s read timeout: the server gave up on the silent client.
    idle.read_to_end(&mut answer).unwrap();
    assert!(answer.is_empty(), "{answer:?}");
    assert!(start.elapsed() < Duration::from_secs(50), "{:?}", start.elapsed());
    // Meanwhile and after, the socket answers others.
    let status = server.control("status");
    assert!(status.status.success(), "{status:?}");
}
