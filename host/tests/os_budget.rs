//! The server budgets what the operating system gives it (open files,
//! memory mappings) at start-up and never leaves a client hanging when a
//! limit is reached. Each test runs the `smtpcell` binary under `prlimit`.

mod support;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use support::*;

/// A meeting point for client threads that does not wait forever if one
/// of them failed before reaching it.
struct Barrier {
    waiting: Mutex<usize>,
    all_here: Condvar,
}

impl Barrier {
    fn new(clients: usize) -> Barrier {
        Barrier { waiting: Mutex::new(clients), all_here: Condvar::new() }
    }

    /// Waits until every client has arrived, for at most 60 s.
    fn wait(&self) {
        let mut waiting = self.waiting.lock().unwrap();
        *waiting -= 1;
        self.all_here.notify_all();
        let _ = self.all_here.wait_timeout_while(waiting, Duration::from_secs(60), |n| *n > 0).unwrap();
    }
}

/// Runs `clients` sessions at once, each on its own thread; `session` gets
/// a barrier every session reaches once its message is open (or refused).
fn concurrently<T: Send + 'static>(
    clients: usize,
    session: impl Fn(Arc<Barrier>) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(clients));
    let session = Arc::new(session);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (barrier, session) = (barrier.clone(), session.clone());
            std::thread::Builder::new().stack_size(256 << 10).spawn(move || session(barrier)).unwrap()
        })
        .collect();
    threads.into_iter().map(|t| t.join().expect("a client thread panicked")).collect()
}

#[test]
fn a_thousand_concurrent_messages_fit_under_the_systemd_default_soft_limit() {
    let dir = TempDir::new("nofile1024");
    let server = serve_under(
        &["prlimit", "--nofile=1024:4096", "--"],
        dir.path(),
        &["--max-connections", "1000", "--max-connections-per-ip", "1000"],
    );
    let addr = server.addr;
    let replies = concurrently(1000, move |barrier| {
        let mut c = Client::greeted(addr);
        c.open_message();
        // Every message is open (its file in tmp/) before any ends.
        barrier.wait();
        let reply = c.command("Subject: concurrent\r\n\r\nhello\r\n.");
        let _ = c.command("QUIT");
        reply
    });
    let accepted = replies.iter().filter(|r| r.starts_with("250 ")).count();
    let other: Vec<_> = replies.iter().filter(|r| !r.starts_with("250 ")).take(3).collect();
    assert_eq!(accepted, 1000, "e.g. {other:?}");
    assert_eq!(server.delivered().len(), 1000);
}

#[test]
fn under_a_small_limit_the_server_lowers_its_connection_limit_and_every_client_gets_a_reply() {
    let dir = TempDir::new("nofile256");
    let server = serve_under(&["prlimit", "--nofile=256:256", "--"], dir.path(), &["--max-connections-per-ip", "1000"]);
    let lowered = server.log.wait_for(0, &["--max-connections lowered"], Duration::from_secs(1));
    assert_eq!(field(&lowered, "max_connections"), "96", "{lowered}");
    assert_eq!(field(&lowered, "open_files"), "256", "{lowered}");
    let addr = server.addr;
    let start = Instant::now();
    let outcomes = concurrently(300, move |barrier| {
        let mut c = Client::connect(addr);
        c.reader.get_ref().set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let greeting = c.reply();
        if !greeting.starts_with("220 ") {
            barrier.wait();
            return greeting;
        }
        c.open_message();
        barrier.wait();
        c.command("Subject: small limit\r\n\r\nhello\r\n.")
    });
    let refused = outcomes.iter().filter(|r| r.starts_with("421 ")).count();
    let accepted = outcomes.iter().filter(|r| r.starts_with("250 ")).count();
    assert_eq!(
        accepted + refused,
        300,
        "{:?}",
        outcomes.iter().filter(|r| !r.starts_with("250 ")).take(3).collect::<Vec<_>>()
    );
    assert!(accepted >= 1, "nobody was served");
    assert_eq!(server.delivered().len(), accepted);
    assert!(start.elapsed() < Duration::from_secs(60), "clients took {:?}", start.elapsed());
}

#[test]
fn the_server_refuses_to_start_when_hardly_any_connection_fits() {
    let dir = TempDir::new("nofile64");
    let output = std::process::Command::new("prlimit")
        .args(["--nofile=64:64", "--", BIN, "serve", "--listen", "127.0.0.1:0", "--maildir"])
        .arg(dir.path().join("mail"))
        .arg("--control")
        .arg(dir.path().join("control.sock"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(text.contains("only 0 connections fit in 64 open files") && text.contains("LimitNOFILE="), "{text}");
}

#[test]
fn out_of_descriptors_the_waiting_clients_hear_421_instead_of_hanging() {
    let dir = TempDir::new("emfile");
    let server = serve(dir.path(), &[]);
    // Past the start-up budget: leave the running server 3 spare descriptors.
    let pid = server.child.id();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let limit = format!("--nofile={}:{}", open + 3, open + 3);
    let status = std::process::Command::new("prlimit").args(["--pid", &pid.to_string(), &limit]).status().unwrap();
    assert!(status.success());
    let addr = server.addr;
    let mark = server.log.mark();
    let replies = concurrently(20, move |barrier| {
        let mut c = Client::connect(addr);
        c.reader.get_ref().set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let first = c.reply();
        // Served clients keep their descriptors until everyone has a reply.
        barrier.wait();
        first
    });
    let turned_away = replies.iter().filter(|r| r.starts_with("421 4.3.2 cli.test ")).count();
    let greeted = replies.iter().filter(|r| r.starts_with("220 ")).count();
    assert_eq!(turned_away + greeted, 20, "{replies:?}");
    assert!(turned_away >= 1, "{replies:?}");
    let warned = server.log.wait_for(mark, &["accept failed: backing off"], Duration::from_secs(5));
    assert!(field(&warned, "failures").parse::<u64>().unwrap() >= 1, "{warned}");
}
