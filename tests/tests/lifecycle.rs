//! Connection lifecycle in the host: RFC 5321 timeouts (answered by the
//! guest's 421 4.4.2), connection limits overall and per client address
//! (answered by the host's 421 4.7.0), and the compile cache.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use smtpcell::runtime::{CacheOutcome, CompileCache, Runtime, SandboxLimits};
use smtpcell_tests::client::RawClient;
use smtpcell_tests::server::TestServer;

/// Waits (bounded) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn greeted(addr: SocketAddr) -> RawClient {
    let mut c = RawClient::connect(addr).unwrap();
    let greeting = c.reply().unwrap();
    assert!(greeting.starts_with("220 smtpcell.test "), "{greeting:?}");
    c
}

/// A refused client: one 421 4.7.0 from the host, then the close.
fn assert_refused(addr: SocketAddr) -> String {
    let mut c = RawClient::connect(addr).unwrap();
    let all = c.read_to_close().unwrap();
    assert!(all.starts_with("421 4.7.0 smtpcell.test "), "{all:?}");
    assert_eq!(all.lines().count(), 1, "{all:?}");
    all
}

#[test]
fn an_idle_client_times_out_with_421_4_4_2_and_is_closed() {
    let server = TestServer::builder().config(|c| c.command_timeout = Duration::from_secs(1)).start();
    let mut c = greeted(server.addr);
    c.command("EHLO slow.example").unwrap();
    let start = Instant::now();
    let reply = c.reply().unwrap();
    assert!(reply.starts_with("421 4.4.2 "), "{reply:?}");
    assert_eq!(c.read_to_close().unwrap(), "");
    // Loose: the point is that it is the 1 s timeout, not the default 5 min.
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
    // Before any command, too.
    let mut c = greeted(server.addr);
    let reply = c.reply().unwrap();
    assert!(reply.starts_with("421 4.4.2 "), "{reply:?}");
    assert_eq!(c.read_to_close().unwrap(), "");
    server.stop().unwrap();
}

#[test]
fn a_stalled_message_times_out_and_stores_nothing() {
    let server = TestServer::builder().config(|c| c.data_timeout = Duration::from_secs(1)).start();
    let mut c = greeted(server.addr);
    c.send(b"EHLO slow.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n").unwrap();
    assert_eq!((0..4).map(|_| c.code().unwrap()).collect::<Vec<_>>(), [250, 250, 250, 354]);
    c.send(b"Subject: stalled\r\n\r\nthe rest never comes\r\n").unwrap();
    let start = Instant::now();
    let reply = c.reply().unwrap();
    assert!(reply.starts_with("421 4.4.2 "), "{reply:?}");
    assert_eq!(c.read_to_close().unwrap(), "");
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
    eventually("tmp/ is cleaned up", || server.leftovers().is_empty());
    assert!(server.delivered().is_empty(), "{:?}", server.delivered());
    // The command timeout (default 5 min) is not what fired: a session
    // waiting for a command is still there.
    let mut idle = greeted(server.addr);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(idle.command("NOOP").unwrap().starts_with("250"));
    server.stop().unwrap();
}

#[test]
fn connections_past_the_limit_get_421_4_7_0() {
    let server = TestServer::builder().config(|c| c.max_connections = 2).start();
    let mut first = greeted(server.addr);
    let mut second = greeted(server.addr);
    let refused = assert_refused(server.addr);
    assert!(refused.contains("Too many connections"), "{refused:?}");
    // The two admitted sessions are unaffected.
    assert!(first.command("NOOP").unwrap().starts_with("250"));
    assert!(second.command("NOOP").unwrap().starts_with("250"));

    // One leaves; its slot is freed once its task ends (just after the
    // client sees the close), so the next client is served.
    assert!(first.command("QUIT").unwrap().starts_with("221"));
    first.read_to_close().unwrap();
    let mut third = served_eventually(server.addr);
    assert!(third.command("NOOP").unwrap().starts_with("250"));
    // And the limit holds again.
    assert_refused(server.addr);
    drop(second);
    server.stop().unwrap();
}

/// Connects until greeted rather than refused (bounded): a slot is released
/// asynchronously after the previous client saw its connection close.
fn served_eventually(addr: SocketAddr) -> RawClient {
    let start = Instant::now();
    loop {
        let mut c = RawClient::connect(addr).unwrap();
        let first = c.reply().unwrap();
        if first.starts_with("220 smtpcell.test ") {
            return c;
        }
        assert!(first.starts_with("421 4.7.0 "), "{first:?}");
        assert!(start.elapsed() < Duration::from_secs(30), "a freed slot was never reused");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Connects to `addr` from `source` (another loopback address), or `None`
/// when this machine cannot bind that address.
fn connect_from(source: &str, addr: SocketAddr) -> Option<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(format!("{source}:0").parse().unwrap()).ok()?;
        socket.connect(addr).await.ok()
    })?;
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    Some(stream)
}

#[test]
fn connections_past_the_per_ip_limit_get_421_4_7_0() {
    let server = TestServer::builder().config(|c| c.max_connections_per_ip = 1).start();
    let mut first = greeted(server.addr);
    let refused = assert_refused(server.addr);
    assert!(refused.contains("from your address"), "{refused:?}");
    assert!(first.command("NOOP").unwrap().starts_with("250"));
    // The limit is per address: another one is still served.
    match connect_from("127.0.0.2", server.addr) {
        Some(stream) => {
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            assert!(line.starts_with("220 smtpcell.test "), "from 127.0.0.2: {line:?}");
            (&stream).write_all(b"QUIT\r\n").unwrap();
        }
        None => eprintln!("127.0.0.2 is not usable here; skipped the other-address check"),
    }
    assert!(first.command("QUIT").unwrap().starts_with("221"));
    first.read_to_close().unwrap();
    let mut again = served_eventually(server.addr);
    assert!(again.command("NOOP").unwrap().starts_with("250"));
    server.stop().unwrap();
}

fn cache_entries(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn compile_cache_misses_then_hits_and_survives_a_corrupt_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let bytes = smtpcell::EMBEDDED_COMPONENT.to_vec();
        let limits = SandboxLimits { max_instances: 16, ..SandboxLimits::default() };
        let runtime = Runtime::new(limits.clone(), Some(CompileCache::open(&cache_dir).unwrap())).unwrap();

        let first = runtime.validate(bytes.clone()).await.unwrap();
        assert_eq!(first.cache, CacheOutcome::Miss);
        let entries = cache_entries(&cache_dir);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(entries[0].extension().is_some_and(|e| e == "cwasm"), "{entries:?}");
        let entry = entries[0].clone();

        let second = runtime.validate(bytes.clone()).await.unwrap();
        assert_eq!(second.cache, CacheOutcome::Hit);
        assert_eq!(second.component.label(), first.component.label());

        // A new engine with the same configuration (a restart) hits too.
        let restarted = Runtime::new(limits.clone(), Some(CompileCache::open(&cache_dir).unwrap())).unwrap();
        assert_eq!(restarted.validate(bytes.clone()).await.unwrap().cache, CacheOutcome::Hit);

        // Corrupt entries: garbage, and a file cut short (something other
        // than the cache's own write-then-rename rewrote it in place). Each
        // falls back to compiling, still works, and repairs the entry.
        // Meanwhile `second`, loaded from that entry, stays alive and is
        // dropped afterwards: while the cache mapped its entries, this
        // killed the process with SIGBUS.
        let good = std::fs::read(&entry).unwrap();
        for corrupt in [b"definitely not a compiled component".to_vec(), good[..good.len() / 2].to_vec()] {
            std::fs::write(&entry, &corrupt).unwrap();
            let fallback = runtime.validate(bytes.clone()).await.unwrap();
            assert_eq!(fallback.cache, CacheOutcome::Miss);
            assert_eq!(fallback.component.label(), first.component.label());
            assert!(fallback.transcripts > 0);
            assert_eq!(runtime.validate(bytes.clone()).await.unwrap().cache, CacheOutcome::Hit);
        }
        drop(second);
        drop(first);
        // One entry, no temporary files left behind.
        assert_eq!(cache_entries(&cache_dir), vec![entry]);
    });
}
