//! The protocol through the sandbox: the same workloads as
//! guest/core/benches/core.rs, but each call crosses into a wasmtime
//! component instance the way the server drives it (async calls, epoch
//! deadline armed, pooled instance). Also: instance creation latency, and
//! the resident memory each live session costs.
//!
//! `cargo bench -p smtpcell --bench component`.

#[path = "../../guest/core/benches/body.rs"]
mod body;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use smtp_core::{Action, Answer, AuthMechanisms, Questions};
use smtpcell::policy::Role;
use smtpcell::runtime::{GuestConfig, GuestSession, LoadedComponent, PeerInfo, Runtime, SandboxLimits, guest_config};
use smtpcell::server::ServerConfig;
use tokio::runtime::Runtime as Tokio;

const EHLO: &[u8] = b"EHLO client.example.org\r\n";
const MAIL: &[u8] = b"MAIL FROM:<sender@example.org> SIZE=1024\r\n";
const RCPT: &[u8] = b"RCPT TO:<rcpt@example.net>\r\n";
const RSET: &[u8] = b"RSET\r\n";

/// Live sessions held for the memory figure (below the pool's slots).
const LIVE: usize = 1000;

/// Which part of a session's life an instance benchmark times.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Span {
    Start,
    StartAndGreeting,
    Teardown,
}

struct Fixture {
    tokio: Tokio,
    component: Arc<LoadedComponent>,
    config: GuestConfig,
    peer: PeerInfo,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::asking(Questions::default())
    }

    /// A fixture whose sessions ask the host the `questions`.
    fn asking(questions: Questions) -> Fixture {
        // Current-thread: one core measures one call, as a connection task runs it.
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let component = tokio.block_on(async {
            let limits = SandboxLimits { max_instances: LIVE as u32 + 64, ..SandboxLimits::default() };
            let runtime = Runtime::new(limits, None).unwrap();
            runtime.validate(smtpcell::EMBEDDED_COMPONENT.to_vec()).await.unwrap().component
        });
        let mut config =
            guest_config(&ServerConfig::default().session_config(Role::Mx, questions, AuthMechanisms::default()));
        // Room for the 10 MiB body.
        config.max_message_size = 64 << 20;
        Fixture { tokio, component, config, peer: PeerInfo { ip: "127.0.0.1".into(), port: 2525 } }
    }

    /// Runs `iters` session lifecycles (start, greeting, drop) and returns
    /// the time spent in `span` of them.
    fn lifecycle(&self, iters: u64, span: Span) -> Duration {
        self.tokio.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let mut s = GuestSession::start(&self.component, &self.config, &self.peer).await.unwrap();
                if span == Span::Start {
                    total += t.elapsed();
                }
                black_box(s.greeting().await.unwrap());
                if span == Span::StartAndGreeting {
                    total += t.elapsed();
                }
                let t = Instant::now();
                drop(s);
                if span == Span::Teardown {
                    total += t.elapsed();
                }
            }
            total
        })
    }

    fn session(&self) -> GuestSession {
        self.tokio.block_on(async {
            let mut s = GuestSession::start(&self.component, &self.config, &self.peer).await.unwrap();
            black_box(s.greeting().await.unwrap());
            black_box(s.feed(EHLO).await.unwrap());
            s
        })
    }
}

fn commands(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut g = c.benchmark_group("component/command");
    g.bench_function("EHLO", |b| {
        let mut s = fx.session();
        b.iter_custom(|iters| {
            fx.tokio.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(s.feed(black_box(EHLO)).await.unwrap());
                }
                t.elapsed()
            })
        })
    });
    for (name, timed) in [("MAIL", MAIL), ("RCPT", RCPT), ("RSET", RSET)] {
        g.bench_function(name, |b| {
            let mut s = fx.session();
            // Only `timed` is counted; the rest of the cycle sets its state up.
            b.iter_custom(|iters| {
                fx.tokio.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        for cmd in [MAIL, RCPT, RSET] {
                            let t = Instant::now();
                            black_box(s.feed(cmd).await.unwrap());
                            if cmd == timed {
                                total += t.elapsed();
                            }
                        }
                    }
                    total
                })
            })
        });
    }
    // The same RCPT when the policy asks about recipients: the guest
    // stops at the question and is called again with the answer.
    g.bench_function("RCPT asked", |b| {
        let asking = Fixture::asking(Questions { rcpt: true, ..Questions::default() });
        let mut s = asking.session();
        b.iter_custom(|iters| {
            asking.tokio.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    black_box(s.feed(MAIL).await.unwrap());
                    let t = Instant::now();
                    let actions = s.feed(RCPT).await.unwrap();
                    assert!(matches!(actions.last(), Some(Action::Ask(_))));
                    black_box(s.answer(&Answer::ACCEPT).await.unwrap());
                    total += t.elapsed();
                    black_box(s.feed(RSET).await.unwrap());
                }
                total
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("component/instance");
    // Creation, what the target is about: InstancePre into a pooled
    // slot, the Store, and the session constructor.
    g.bench_function("start", |b| b.iter_custom(|iters| fx.lifecycle(iters, Span::Start)));
    // Teardown after a connection ends (the client has gone by then): the
    // slot's dirtied pages are reset for the next connection.
    g.bench_function("teardown", |b| b.iter_custom(|iters| fx.lifecycle(iters, Span::Teardown)));
    // What a client waits for before it sees the 220: start plus greeting.
    g.bench_function("start+greeting", |b| b.iter_custom(|iters| fx.lifecycle(iters, Span::StartAndGreeting)));
    g.finish();
}

/// One transaction per iteration, the body in 64 KiB feeds (the server's read
/// size); message-data is copied out of the guest as the server receives it.
fn data(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut g = c.benchmark_group("component/data");
    for (label, size) in [("1KiB", 1usize << 10), ("100KiB", 100 << 10), ("10MiB", 10 << 20)] {
        let body = body::stuffed_body(size);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.sample_size(if size >= 1 << 20 { 10 } else { 50 });
        g.bench_with_input(BenchmarkId::from_parameter(label), &body, |b, body| {
            let mut s = fx.session();
            b.iter(|| {
                fx.tokio.block_on(async {
                    s.feed(MAIL).await.unwrap();
                    s.feed(RCPT).await.unwrap();
                    s.feed(b"DATA\r\n").await.unwrap();
                    let mut ended = false;
                    for chunk in body.chunks(64 << 10) {
                        for action in s.feed(chunk).await.unwrap() {
                            match action {
                                Action::MessageData(bytes) => {
                                    black_box(bytes);
                                }
                                Action::Ask(_) => ended = true,
                                _ => {}
                            }
                        }
                    }
                    assert!(ended, "the body must end the message");
                    black_box(s.answer(&Answer::Accept(Some("bench".into()))).await.unwrap())
                })
            })
        });
    }
    g.finish();
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory per live session: LIVE sessions started, greeted and past
/// EHLO (so each has touched its linear memory, tables and fiber stack), held
/// at once; the RSS difference divided by LIVE. Printed, not asserted.
fn memory_per_session() {
    let fx = Fixture::new();
    // Warm: one session through a whole transaction, so lazily built host
    // state is not charged to the first live session.
    drop(fx.session());
    let before = rss_kib();
    let sessions: Vec<GuestSession> = (0..LIVE).map(|_| fx.session()).collect();
    let after = rss_kib();
    let per = (after.saturating_sub(before)) as f64 / LIVE as f64;
    println!(
        "component/memory: {LIVE} live sessions after EHLO: RSS {before} KiB -> {after} KiB = {per:.1} KiB per session"
    );
    drop(sessions);
}

criterion_group!(benches, commands, data);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only when benchmarking (not under `cargo test --benches` smoke runs).
    if std::env::args().any(|a| a == "--bench") {
        memory_per_session();
    }
}
