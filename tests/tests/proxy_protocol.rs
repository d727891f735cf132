//! The PROXY protocol over real sockets: swaks sending v1 and v2 headers,
//! HAProxy (`send-proxy`, `send-proxy-v2`) in front of the MX and the
//! implicit-TLS listeners, and the ways a connection from a proxy network
//! is refused (no header, a malformed one, a stalled proxy), while anyone
//! else's PROXY line is a bad command.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smtpcell::policy::Networks;
use smtpcell_tests::client::RawClient;
use smtpcell_tests::server::{TestServer, TestServerBuilder, stored_message};

/// What HAProxy connects from, and the peer every test's proxy is.
const PROXY: &str = "127.0.0.1/32";
/// A client address other than the proxy's, on loopback.
const CLIENT: &str = "127.0.0.5";

fn behind_proxy() -> TestServerBuilder {
    TestServer::builder().capture_log().config(|c| c.proxy_networks = Networks::parse(&[PROXY]).unwrap())
}

fn client_ip() -> IpAddr {
    CLIENT.parse().unwrap()
}

/// The Received header of the one message stored.
fn only_received(server: &TestServer) -> String {
    let files = server.delivered();
    assert_eq!(files.len(), 1, "expected exactly one stored message, found {files:?}");
    let trace = stored_message(&files[0]).unwrap().trace_text();
    let at = trace.find("Received: ").expect("a Received header");
    trace[at..].to_string()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// swaks through a PROXY header of `version` (its `--proxy-*` options),
/// claiming the client 192.0.2.7:40000.
fn swaks_via_proxy(server: &TestServer, version: &str, family: &str) -> String {
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", "127.0.0.1", "--port", &server.addr.port().to_string()])
        .args(["--helo", "swaks.example", "--from", "swaks@example.org", "--to", "rcpt@example.org"])
        .args(["--proxy-version", version, "--proxy-family", family])
        .args(["--proxy-source", "192.0.2.7", "--proxy-source-port", "40000"])
        .args(["--proxy-dest", "127.0.0.1", "--proxy-dest-port", "25"]);
    run(&mut cmd)
}

/// The log line of a connection via the proxy names both ends.
fn assert_logged_via_proxy(server: &TestServer, client: &str) {
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("via=127.0.0.1:") && l.contains(&format!("peer={client}:"))),
        "no log line names {client} via 127.0.0.1:\n{log}"
    );
}

#[test]
fn swaks_proxy_v1_names_the_real_client() {
    let server = behind_proxy().start();
    let out = swaks_via_proxy(&server, "1", "TCP4");
    assert!(out.contains("250 2.0.0"), "swaks did not see the queue reply:\n{out}");
    let received = only_received(&server);
    assert!(received.contains("from swaks.example ([192.0.2.7])"), "{received}");
    assert_logged_via_proxy(&server, "192.0.2.7");
}

#[test]
fn swaks_proxy_v2_names_the_real_client() {
    let server = behind_proxy().start();
    let out = swaks_via_proxy(&server, "2", "AF_INET");
    assert!(out.contains("250 2.0.0"), "swaks did not see the queue reply:\n{out}");
    let received = only_received(&server);
    assert!(received.contains("from swaks.example ([192.0.2.7])"), "{received}");
    assert_logged_via_proxy(&server, "192.0.2.7");
}

#[test]
fn local_and_unknown_headers_keep_the_proxy_as_the_client() {
    let server = behind_proxy().start();
    // v2 LOCAL (a health check) with TCP/IPv4 addresses, which it ignores.
    // Not swaks: its 20201014 release sends LOCAL as command 0x2 (the
    // specification's LOCAL is 0x0, and receivers drop unknown commands).
    let mut local = b"\r\n\r\n\0\r\nQUIT\n\x20\x11\x00\x0c".to_vec();
    local.extend([192, 0, 2, 7, 127, 0, 0, 1, 0x9c, 0x40, 0, 25]);
    let mut c = RawClient::connect(server.addr).unwrap();
    c.send(&local).unwrap();
    deliver(&mut c);
    let received = only_received(&server);
    assert!(received.contains("from client.example ([127.0.0.1])"), "{received}");
    // v1 UNKNOWN.
    std::fs::remove_file(&server.delivered()[0]).unwrap();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.send(b"PROXY UNKNOWN\r\n").unwrap();
    deliver(&mut c);
    let received = only_received(&server);
    assert!(received.contains("from client.example ([127.0.0.1])"), "{received}");
    assert!(!server.log().contains("192.0.2.7"), "{}", server.log());
}

/// Greeting to QUIT: one message from client.example.
fn deliver(c: &mut RawClient) {
    let greeting = c.reply().unwrap();
    assert!(greeting.starts_with("220 smtpcell.test "), "{greeting:?}");
    assert!(c.command("EHLO client.example").unwrap().starts_with("250"));
    assert!(c.command("MAIL FROM:<a@example.org>").unwrap().starts_with("250"));
    assert!(c.command("RCPT TO:<b@example.org>").unwrap().starts_with("250"));
    assert!(c.command("DATA").unwrap().starts_with("354"));
    let end = c.command("Subject: proxied\r\n\r\nhello\r\n.").unwrap();
    assert!(end.starts_with("250 2.0.0"), "{end:?}");
    assert!(c.command("QUIT").unwrap().starts_with("221"));
}

/// A refused proxy connection: closed with nothing sent, nothing stored,
/// the reason logged.
fn assert_cut_off(server: &TestServer, mut c: RawClient, reason: &str) {
    match c.read_to_close() {
        Ok(sent) => assert_eq!(sent, "", "a proxy without a valid header heard something"),
        // Closed with octets of the client's unread: TCP resets.
        Err(err) => assert_eq!(
            err.downcast_ref::<std::io::Error>().map(std::io::Error::kind),
            Some(std::io::ErrorKind::ConnectionReset),
            "{err:#}"
        ),
    }
    assert!(server.delivered().is_empty());
    let log = server.log();
    assert!(log.lines().any(|l| l.contains("closing a connection from a proxy") && l.contains(reason)), "{log}");
}

#[test]
fn a_proxy_peer_without_a_header_is_cut_off_without_a_greeting() {
    let server = behind_proxy().start();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.send(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n").unwrap();
    assert_cut_off(&server, c, "neither a v1 nor a v2 header");
}

#[test]
fn a_malformed_header_is_cut_off_without_a_greeting() {
    let server = behind_proxy().start();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.send(b"PROXY TCP4 192.0.2.7 not-an-address 40000 25\r\nEHLO client.example\r\n").unwrap();
    assert_cut_off(&server, c, "malformed PROXY header: v1");
    assert!(!server.log().contains("peer=192.0.2.7"));
}

#[test]
fn a_stalled_proxy_is_cut_off_at_the_header_timeout() {
    let timeout = Duration::from_millis(300);
    let server = behind_proxy().config(|c| c.proxy_header_timeout = timeout).start();
    let start = Instant::now();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.send(b"PROXY TCP4 192.0.2.7 ").unwrap();
    assert_cut_off(&server, c, "no complete PROXY header in time");
    let waited = start.elapsed();
    assert!(waited >= timeout && waited < Duration::from_secs(10), "cut off after {waited:?}");
}

#[test]
fn a_proxy_line_from_anyone_else_is_a_bad_command() {
    let server = behind_proxy().start();
    let mut c = RawClient::connect_from(client_ip(), server.addr).unwrap();
    let greeting = c.reply().unwrap();
    assert!(greeting.starts_with("220 smtpcell.test "), "not a proxy: greeted at once, {greeting:?}");
    let reply = c.command("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25").unwrap();
    assert!(reply.starts_with("500 5.5.2"), "{reply:?}");
    assert!(c.command("EHLO client.example").unwrap().starts_with("250"));
    assert!(c.command("MAIL FROM:<a@example.org>").unwrap().starts_with("250"));
    assert!(c.command("RCPT TO:<b@example.org>").unwrap().starts_with("250"));
    assert!(c.command("DATA").unwrap().starts_with("354"));
    assert!(c.command("hello\r\n.").unwrap().starts_with("250 2.0.0"));
    let received = only_received(&server);
    assert!(received.contains("([127.0.0.5])") && !received.contains("192.0.2.7"), "{received}");
}

/// The client a header names, greeted or refused.
fn via_proxy(server: &TestServer, client: &str) -> (RawClient, String) {
    let mut c = RawClient::connect(server.addr).unwrap();
    c.send(format!("PROXY TCP4 {client} 127.0.0.1 40000 25\r\n").as_bytes()).unwrap();
    let first = c.reply().unwrap();
    (c, first)
}

#[test]
fn the_per_ip_limit_counts_the_clients_behind_a_proxy() {
    let server = behind_proxy().config(|c| c.max_connections_per_ip = 1).start();
    let (mut first, greeting) = via_proxy(&server, "192.0.2.7");
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    // Another client behind the same proxy is not lumped with the first...
    let (mut other, greeting) = via_proxy(&server, "192.0.2.8");
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    // ...but the same client again is past its limit, told as at accept.
    let (mut refused, reply) = via_proxy(&server, "192.0.2.7");
    assert_eq!(reply, "421 4.7.0 smtpcell.test Too many connections from your address, try again later\r\n");
    assert_eq!(refused.read_to_close().unwrap(), "");
    for c in [&mut first, &mut other] {
        assert!(c.command("QUIT").unwrap().starts_with("221"));
        c.read_to_close().unwrap();
    }
    // The slot is freed with its connection.
    let start = Instant::now();
    loop {
        let (mut again, reply) = via_proxy(&server, "192.0.2.7");
        if reply.starts_with("220 ") {
            assert!(again.command("QUIT").unwrap().starts_with("221"));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the slot was never released: {reply:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free port on 127.0.0.1 (free when asked; HAProxy binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// HAProxy in TCP mode, started by the test and killed with it: one
/// frontend per backend, each backend one server line.
struct HaProxy {
    child: Child,
    frontends: Vec<SocketAddr>,
}

impl HaProxy {
    /// `servers`: the `server` lines' address and options (`send-proxy`...).
    fn start(dir: &Path, servers: &[(SocketAddr, &str)]) -> HaProxy {
        let mut config = String::from(
            "global\n    maxconn 100\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n",
        );
        let mut frontends = Vec::new();
        for (i, (server, options)) in servers.iter().enumerate() {
            let frontend: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            config.push_str(&format!(
                "frontend in{i}\n    bind {frontend}\n    default_backend out{i}\n\
                 backend out{i}\n    server smtpcell {server} {options}\n"
            ));
            frontends.push(frontend);
        }
        let file = dir.join("haproxy.cfg");
        std::fs::write(&file, config).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run haproxy ({e}): .ci/run installs it (Debian package haproxy)"));
        let mut haproxy = HaProxy { child, frontends };
        haproxy.wait_listening();
        haproxy
    }

    fn wait_listening(&mut self) {
        let start = Instant::now();
        for frontend in self.frontends.clone() {
            while TcpStream::connect(frontend).is_err() {
                if let Some(status) = self.child.try_wait().unwrap() {
                    panic!("haproxy exited: {status}");
                }
                assert!(start.elapsed() < Duration::from_secs(20), "haproxy is not listening on {frontend}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn haproxy_send_proxy_v1_and_v2_name_the_real_client() {
    let server = behind_proxy().start();
    let dir = tempfile::tempdir().unwrap();
    let haproxy = HaProxy::start(dir.path(), &[(server.addr, "send-proxy"), (server.addr, "send-proxy-v2")]);
    for (n, frontend) in haproxy.frontends.iter().enumerate() {
        let mut c = RawClient::connect_from(client_ip(), *frontend).unwrap();
        deliver(&mut c);
        let files = server.delivered();
        assert_eq!(files.len(), n + 1, "{files:?}");
        let received = files.iter().map(|f| stored_message(f).unwrap().trace_text()).collect::<Vec<_>>();
        assert!(received.iter().all(|t| t.contains("from client.example ([127.0.0.5])")), "{received:?}");
    }
    assert_logged_via_proxy(&server, "127.0.0.5");
}

#[test]
fn haproxy_sends_its_header_before_the_implicit_tls_handshake() {
    let server = behind_proxy().tls().users(&[("alice", "pw")]).implicit_tls().start();
    let dir = tempfile::tempdir().unwrap();
    let haproxy = HaProxy::start(dir.path(), &[(server.tls_addr.unwrap(), "send-proxy-v2")]);
    let cert = server.cert.as_ref().unwrap();
    let plain = RawClient::connect_from(client_ip(), haproxy.frontends[0]).unwrap();
    let mut c = plain.start_tls(cert.client_config()).unwrap();
    let greeting = c.reply().unwrap();
    assert!(greeting.starts_with("220 smtpcell.test "), "{greeting:?}");
    assert!(c.command("EHLO client.example").unwrap().starts_with("250"));
    // "\0alice\0pw"
    assert!(c.command("AUTH PLAIN AGFsaWNlAHB3").unwrap().starts_with("235"));
    assert!(c.command("MAIL FROM:<alice@example.org>").unwrap().starts_with("250"));
    assert!(c.command("RCPT TO:<b@example.org>").unwrap().starts_with("250"));
    assert!(c.command("DATA").unwrap().starts_with("354"));
    assert!(c.command("hello\r\n.").unwrap().starts_with("250 2.0.0"));
    let received = only_received(&server);
    assert!(received.contains("from client.example ([127.0.0.5])"), "{received}");
    assert_logged_via_proxy(&server, "127.0.0.5");
}
