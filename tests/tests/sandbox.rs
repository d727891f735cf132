//! The sandbox, proven: a component that traps, loops, allocates without
//! bound, breaks the contract or reaches for the outside world harms only
//! its own connection. The misbehaving component is the `testbed` build of
//! guest/component (fault-injection feature), triggered by words in the
//! client's input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use smtpcell::policy::Role;
use smtpcell::runtime::{GuestConfig, GuestFault, GuestSession, LoadedComponent, PeerInfo};
use smtpcell::server::ServerConfig;
use smtpcell_tests::TESTBED_COMPONENT;
use smtpcell_tests::client::RawClient;
use smtpcell_tests::driver::load_component;
use smtpcell_tests::server::{TestServer, stored_message};

fn testbed() -> Arc<LoadedComponent> {
    load_component(&std::fs::read(TESTBED_COMPONENT).unwrap()).expect("the testbed component validates")
}

fn guest_config() -> GuestConfig {
    smtpcell::runtime::guest_config(
        &ServerConfig { hostname: "smtpcell.test".into(), ..ServerConfig::default() }.session_config(
            Role::Mx,
            Default::default(),
            Default::default(),
        ),
    )
}

/// Runs one `feed` with `input` on a fresh instance and returns the fault.
fn fault_of(component: &Arc<LoadedComponent>, input: &[u8]) -> GuestFault {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let peer = PeerInfo { ip: "192.0.2.1".into(), port: 1 };
        let mut guest = GuestSession::start(component, &guest_config(), &peer).await.unwrap();
        guest.greeting().await.unwrap();
        match guest.feed(input).await {
            Ok(actions) => panic!("expected a fault, got {actions:?}"),
            Err(fault) => fault,
        }
    })
}

#[test]
fn each_fault_is_classified_as_the_limit_it_hit() {
    let component = testbed();
    assert!(matches!(fault_of(&component, b"X-LOOP\r\n"), GuestFault::CpuBudget));
    assert!(matches!(fault_of(&component, b"X-ALLOC\r\n"), GuestFault::MemoryLimit));
    let trap = fault_of(&component, b"X-TRAP\r\n");
    assert!(matches!(trap, GuestFault::Trap { .. }), "{trap}");
    assert_eq!(trap.kind(), "unreachable");
}

/// A session that sends `count` messages one after the other and returns
/// the latency of each.
fn healthy_session(addr: std::net::SocketAddr, count: usize) -> Vec<Duration> {
    let mut c = RawClient::connect(addr).unwrap();
    assert_eq!(c.code().unwrap(), 220);
    c.command("EHLO healthy.example").unwrap();
    (0..count)
        .map(|i| {
            let start = Instant::now();
            assert!(c.command("MAIL FROM:<ok@example.org>").unwrap().starts_with("250"));
            assert!(c.command("RCPT TO:<ok@example.org>").unwrap().starts_with("250"));
            assert!(c.command("DATA").unwrap().starts_with("354"));
            let reply = c.command(&format!("Subject: healthy {i}\r\n\r\nfine\r\n.")).unwrap();
            assert!(reply.starts_with("250 2.0.0"), "{reply}");
            start.elapsed()
        })
        .collect()
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

#[test]
fn a_faulting_guest_ends_only_its_own_connection() {
    // The only test of this process whose guests fault through a server.
    let metrics = smtpcell::events::install_metrics();
    let server = TestServer::builder().component(testbed()).start();
    let baseline = median(healthy_session(server.addr, 20));
    // Traps and limits fire inside DATA, with content already in tmp/;
    // contract violations are actions that make no sense where they come.
    let faults = [("X-TRAP", true), ("X-LOOP", true), ("X-ALLOC", true)];
    let violations = [
        ("X-DATA-WITHOUT-BEGIN", false),
        ("X-END-WITHOUT-BEGIN", false),
        ("X-ASK-TWICE", false),
        ("X-INJECT-HEADER", false),
    ];
    let triggers = faults.len() + violations.len();
    for (trigger, in_data) in faults.into_iter().chain(violations) {
        let addr = server.addr;
        let healthy = std::thread::spawn(move || healthy_session(addr, 20));
        let mut c = RawClient::connect(server.addr).unwrap();
        c.reply().unwrap();
        c.command("EHLO faulty.example").unwrap();
        if in_data {
            c.command("MAIL FROM:<a@example.org>").unwrap();
            c.command("RCPT TO:<b@example.org>").unwrap();
            assert!(c.command("DATA").unwrap().starts_with("354"));
            c.send(b"Subject: doomed\r\n\r\nsome content already written\r\n").unwrap();
        }
        c.send(format!("{trigger}\r\n").as_bytes()).unwrap();
        let rest = c.read_to_close().unwrap();
        assert!(rest.starts_with("421 4.3.0 "), "{trigger}: {rest:?}");
        let during = healthy.join().expect("the healthy session completes all its messages");
        println!("{trigger}: healthy median {:?} during the fault, {baseline:?} before", median(during));
        assert!(server.leftovers().is_empty(), "{trigger} left a file in tmp/");
        for file in server.delivered() {
            let content = stored_message(&file).unwrap().content;
            assert!(content.starts_with(b"Subject: healthy"), "{trigger}: its transaction was stored");
            assert!(!stored_message(&file).unwrap().trace_text().contains("X-Injected"), "header injection");
        }
    }
    // One healthy run before the faults, and one beside each.
    assert_eq!(server.delivered().len(), 20 * (1 + triggers), "every healthy message was stored");
    // Each fault is counted by its kind, as wasmtime reported it.
    let snapshot = smtpcell::events::snapshot(metrics);
    let faults = |kind: &str| -> f64 {
        let samples = snapshot.as_array().unwrap().iter();
        let of_kind = samples.filter(|s| s["name"] == "smtpcell_guest_faults_total" && s["labels"]["kind"] == kind);
        of_kind.map(|s| s["value"].as_f64().unwrap()).sum()
    };
    assert_eq!(
        [faults("unreachable"), faults("cpu_budget"), faults("memory_limit"), faults("contract")],
        [1.0, 1.0, 1.0, 4.0]
    );
}

#[test]
fn the_guest_sees_no_file_no_environment_and_no_socket() {
    let server = TestServer::builder().component(testbed()).start();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    for (trigger, what) in [("X-FILE", "file"), ("X-ENV", "env"), ("X-SOCKET", "socket")] {
        let reply = c.command(trigger).unwrap();
        assert!(reply.starts_with(&format!("250 denied {what}")), "{trigger}: {reply}");
    }
}
