//! Operations through the `smtpcell` binary (issue 16): `/metrics` scraped
//! during a live run and parsed by a real Prometheus text parser (Python's
//! prometheus_client), JSON log lines, the per-connection summary, no
//! secret at debug level, `status --json`, readiness over NOTIFY_SOCKET,
//! and the systemd unit checked by `systemd-analyze`.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::{BIN, Client, Log, START, TempDir, stderr, stdout};

const USER: &str = "alice@example.test";
const PASSWORD: &str = "Sup3r-Secret-Passw0rd";
const BODY_MARKER: &str = "BODY-MARKER-7f3a9c";

/// A server with a configuration (a local domain, a users file, AUTH
/// without TLS, no failure delay), `/metrics` on, JSON logs at debug
/// level, and systemd's NOTIFY_SOCKET pointing at `notify`.
struct JsonServer {
    child: std::process::Child,
    log: Arc<Log>,
    smtp: SocketAddr,
    metrics: SocketAddr,
    control: std::path::PathBuf,
}

impl Drop for JsonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_json_server(dir: &Path, notify: &UnixDatagram) -> JsonServer {
    let users = dir.join("users");
    let mut passwd =
        Command::new(BIN).args(["passwd", "--users"]).arg(&users).arg(USER).stdin(Stdio::piped()).spawn().unwrap();
    passwd.stdin.as_mut().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    assert!(passwd.wait().unwrap().success());
    let config = dir.join("smtpcell.toml");
    std::fs::write(
        &config,
        format!(
            "domains = [\"example.test\"]\nusers = {:?}\nallow_plaintext_auth = true\nauth_failure_delay_ms = 0\n\
             metrics = \"127.0.0.1:0\"\nlog_format = \"json\"\n",
            users.display().to_string()
        ),
    )
    .unwrap();
    let control = dir.join("control.sock");
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--hostname", support::HOSTNAME])
        .arg("--maildir")
        .arg(dir.join("mail"))
        .arg("--control")
        .arg(&control)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        // No DNS here; tests/tests/mail_auth_live.rs has its own.
        .arg("--no-mail-auth")
        .env("SMTPCELL_LOG", "debug")
        .env("NOTIFY_SOCKET", notify.local_addr().unwrap().as_pathname().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Log::collect(child.stderr.take().unwrap(), format!("serve {}", child.id()));
    let listen = |message: &str| {
        let line = log.wait_for(0, &[&format!("\"message\":\"{message}")], START);
        let json: Value = serde_json::from_str(&line).unwrap();
        json["listen"].as_str().unwrap_or_else(|| panic!("no listen in {line}")).parse().unwrap()
    };
    let metrics = listen("serving metrics");
    let smtp = listen("serving SMTP");
    JsonServer { child, log, smtp, metrics, control }
}

/// One sample as Python's prometheus_client parsed it.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses an OpenMetrics exposition with prometheus_client (Debian's
/// python3-prometheus-client, which imports under /usr/bin/python3).
fn parse_with_prometheus_client(text: &str) -> Vec<Sample> {
    const SCRIPT: &str = "import sys, json\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        print(json.dumps([[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) \
        for s in f.samples]))\n";
    let mut python = Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (.ci/run installs python3-prometheus-client)");
    python.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "prometheus_client refused the exposition: {}\n{text}", stderr(&out));
    let rows: Vec<(String, HashMap<String, String>, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter().map(|(name, labels, value)| Sample { name, labels, value }).collect()
}

/// `GET /metrics`, the body.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    body.to_string()
}

/// The sum of the samples named `name` whose labels include `labels`.
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// The JSON log line of the connection `id` with `message`.
fn connection_line(lines: &[Value], id: u64, message: &str) -> Value {
    lines
        .iter()
        .find(|l| l["message"] == message && l["span"]["id"] == id)
        .unwrap_or_else(|| panic!("no {message:?} line for connection {id}"))
        .clone()
}

#[test]
fn metrics_logs_and_summary_agree_with_what_the_clients_did() {
    let dir = TempDir::new("ops");
    let notify = UnixDatagram::bind(dir.path().join("notify")).unwrap();
    notify.set_read_timeout(Some(START)).unwrap();
    let server = start_json_server(dir.path(), &notify);

    // Readiness: READY=1, once the component is validated and every
    // listener (SMTP, metrics) is bound.
    let mut datagram = [0u8; 256];
    let n = notify.recv(&mut datagram).expect("READY=1 on NOTIFY_SOCKET");
    assert_eq!(&datagram[..n], b"READY=1\n");
    let so_far = server.log.lines_so_far();
    assert!(so_far.contains("component validated") && so_far.contains("serving metrics"), "{so_far}");

    let before = parse_with_prometheus_client(&scrape(server.metrics));
    let content_a = format!("Subject: a\r\n\r\n{BODY_MARKER}\r\n");
    let content_b = "Subject: b\r\n\r\nhello\r\n".to_string();

    // A: a failed AUTH, a good one, one message.
    let mut a = Client::greeted(server.smtp);
    a.expect("EHLO a.example", "250");
    a.expect(&format!("AUTH PLAIN {}", base64(format!("\0{USER}\0wrong-password").as_bytes())), "535");
    let credentials = base64(format!("\0{USER}\0{PASSWORD}").as_bytes());
    a.expect(&format!("AUTH PLAIN {credentials}"), "235");
    a.expect("MAIL FROM:<a@example.org>", "250");
    a.expect("RCPT TO:<ok@example.test>", "250");
    a.expect("DATA", "354");
    a.expect(&format!("{content_a}."), "250");
    a.expect("QUIT", "221");
    // B: unauthenticated; one recipient refused (relay), one message.
    let mut b = Client::greeted(server.smtp);
    b.expect("EHLO b.example", "250");
    b.expect("MAIL FROM:<b@example.org>", "250");
    b.expect("RCPT TO:<someone@elsewhere.test>", "550");
    b.expect("RCPT TO:<ok@example.test>", "250");
    b.expect("DATA", "354");
    b.expect(&format!("{content_b}."), "250");
    b.expect("QUIT", "221");
    drop((a, b));
    // Both summaries are logged: the connections are over.
    server.log.wait_for(0, &["\"message\":\"disconnect\"", "\"commands_total\":7,"], START);
    server.log.wait_for(0, &["\"message\":\"disconnect\"", "\"commands_total\":6,"], START);

    let after = parse_with_prometheus_client(&scrape(server.metrics));
    let delta = |name: &str, labels: &[(&str, &str)]| sum(&after, name, labels) - sum(&before, name, labels);
    assert_eq!(delta("smtpcell_connections_opened_total", &[("listener", "mx")]), 2.0);
    assert_eq!(sum(&after, "smtpcell_connections", &[]), 0.0);
    assert_eq!(sum(&after, "smtpcell_guest_instances", &[]), 0.0);
    assert_eq!(delta("smtpcell_session_duration_seconds_count", &[]), 2.0);
    assert_eq!(delta("smtpcell_messages_stored_total", &[]), 2.0);
    assert_eq!(delta("smtpcell_message_size_bytes_count", &[]), 2.0);
    assert_eq!(delta("smtpcell_message_size_bytes_sum", &[]), (content_a.len() + content_b.len()) as f64);
    assert_eq!(delta("smtpcell_commit_latency_seconds_count", &[]), 2.0);
    // Two messages in one or two batches, never more or fewer.
    assert_eq!(delta("smtpcell_commit_batch_size_sum", &[]), 2.0);
    assert!((1.0..=2.0).contains(&delta("smtpcell_commit_batch_size_count", &[])));
    assert_eq!(delta("smtpcell_auth_total", &[("result", "ok")]), 1.0);
    assert_eq!(delta("smtpcell_auth_total", &[("result", "failed")]), 1.0);
    assert_eq!(delta("smtpcell_refusals_total", &[("stage", "rcpt"), ("reason", "relay-denied")]), 1.0);
    assert_eq!(delta("smtpcell_refusals_total", &[]), 1.0);
    assert_eq!(delta("smtpcell_tls_handshakes_total", &[]), 0.0);
    assert_eq!(delta("smtpcell_guest_faults_total", &[]), 0.0);
    let component = after
        .iter()
        .find(|s| s.name == "smtpcell_messages_stored_total")
        .map(|s| s.labels["component"].clone())
        .unwrap();
    assert!(component.starts_with("smtpcell-guest@"), "{component}");

    // `status --json`: the same figures (no traffic since the scrape).
    let status = Command::new(BIN).args(["status", "--json", "--control"]).arg(&server.control).output().unwrap();
    assert!(status.status.success(), "{status:?}");
    let status: Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["components"][0]["label"], component.as_str());
    for name in ["smtpcell_messages_stored_total", "smtpcell_connections_opened_total", "smtpcell_auth_total"] {
        let from_status: f64 = status["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["name"] == name)
            .map(|s| s["value"].as_f64().unwrap())
            .sum();
        assert_eq!(from_status, sum(&after, name, &[]), "{name}");
    }

    // Every line is JSON with the stable fields; connection lines carry
    // the connection's id, peer and component.
    let text = server.log.lines_so_far();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        for field in ["timestamp", "level", "target"] {
            assert!(line[field].is_string(), "no {field}: {line}");
        }
        if line["span"]["name"] == "conn" {
            assert!(line["span"]["id"].is_u64() && line["span"]["peer"].is_string(), "{line}");
            assert_eq!(line["span"]["component"], component.as_str(), "{line}");
        }
    }
    let stored: Vec<&Value> = lines.iter().filter(|l| l["message"] == "message stored").collect();
    assert_eq!(stored.len(), 2);
    let id_a = stored.iter().find(|l| l["size"] == content_a.len()).unwrap()["span"]["id"].as_u64().unwrap();
    let id_b = stored.iter().find(|l| l["size"] == content_b.len()).unwrap()["span"]["id"].as_u64().unwrap();

    // The summaries match what each client sent.
    let summary_a = connection_line(&lines, id_a, "disconnect");
    assert_eq!(summary_a["commands"], "ehlo=1 auth=2 mail=1 rcpt=1 data=1 quit=1", "{summary_a}");
    assert_eq!(summary_a["commands_total"], 7);
    // Greeting, EHLO, 235, MAIL, RCPT, the message's 250, 221; the 354; the 535.
    assert_eq!([&summary_a["replies_2xx"], &summary_a["replies_3xx"], &summary_a["replies_5xx"]], [7, 1, 1]);
    assert_eq!(summary_a["messages"], 1);
    assert_eq!(summary_a["bytes"], content_a.len());
    assert_eq!(summary_a["user"], USER);
    assert_eq!(summary_a["tls"], "no");
    assert!(summary_a["duration_ms"].is_u64());
    let summary_b = connection_line(&lines, id_b, "disconnect");
    assert_eq!(summary_b["commands"], "ehlo=1 mail=1 rcpt=2 data=1 quit=1", "{summary_b}");
    // Greeting, EHLO, MAIL, RCPT, the message's 250, 221; the 354; the 550.
    assert_eq!([&summary_b["replies_2xx"], &summary_b["replies_3xx"], &summary_b["replies_5xx"]], [6, 1, 1]);
    assert!(summary_b.get("user").is_none(), "{summary_b}");
    assert_eq!(connection_line(&lines, id_a, "AUTH refused")["user"], USER);
    assert_eq!(connection_line(&lines, id_b, "refused")["reason"], "relay-denied");

    // Nothing secret at debug level: neither the password, nor the AUTH
    // exchange that carries it, nor message content.
    for secret in [PASSWORD, credentials.as_str(), BODY_MARKER, "wrong-password"] {
        assert!(!text.contains(secret), "{secret:?} was logged");
    }
}

/// The unit as shipped, with ExecStart pointing at this build (verify
/// checks that the binary exists and is executable). `systemd-analyze
/// verify` works offline, without systemd running (as in a container): it
/// parses every directive, and refuses unknown keys and bad values, which
/// it reports on stderr. It does not start the service, so the sandbox's
/// effect on a running smtpcell is not exercised here; `security
/// --offline` scores the sandboxing the unit asks for.
#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/smtpcell.service")).unwrap();
    for directive in [
        "Type=notify",
        "User=smtpcell",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/mail/smtpcell",
        "CacheDirectory=smtpcell",
        "NoNewPrivileges=yes",
        "SystemCallFilter=@system-service",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(shipped.lines().any(|l| l == directive), "{directive} missing");
    }
    // The configuration the unit starts with passes the server's checks.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/smtpcell.toml");
    let check = Command::new(BIN).args(["config", "check", example]).output().unwrap();
    assert!(check.status.success(), "{check:?}");
    let dir = TempDir::new("unit");
    let unit = dir.path().join("smtpcell.service");
    std::fs::write(&unit, shipped.replace("/usr/local/bin/smtpcell", BIN)).unwrap();
    let verify = Command::new("systemd-analyze").arg("verify").arg(&unit).output().expect("systemd-analyze (.ci/run)");
    assert!(verify.status.success() && stderr(&verify).trim().is_empty(), "{verify:?}");
    // Exposure 2.0 or less of 10 ("OK"); the threshold is in tenths.
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(security.status.success(), "{}", stdout(&security));
    // The test can fail: a misspelt directive is reported.
    std::fs::write(&unit, shipped.replace("/usr/local/bin/smtpcell", BIN).replace("ProtectHome=", "ProtectHomes="))
        .unwrap();
    let verify = Command::new("systemd-analyze").arg("verify").arg(&unit).output().unwrap();
    assert!(stderr(&verify).contains("Unknown key"), "{verify:?}");
}

/// The default text format: the summary reads like Postfix's.
#[test]
fn the_text_summary_line_counts_commands_like_postfix() {
    let dir = TempDir::new("summary");
    let server = support::serve(dir.path(), &[]);
    let mark = server.log.mark();
    support::deliver(server.addr, "counted");
    let line = server.log.wait_for(mark, &["disconnect"], START);
    assert!(line.contains("commands=ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands_total=5"), "{line}");
    assert!(line.contains("replies_2xx=6 replies_3xx=1 replies_4xx=0 replies_5xx=0 messages=1"), "{line}");
}
