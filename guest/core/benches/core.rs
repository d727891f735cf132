//! Native cost of the protocol core: one command, and DATA decoding.
//!
//! `cargo bench -p smtp-core --bench core`. The same workloads run through
//! the WebAssembly component in host/benches/component.rs, so the two reports
//! compare the sandbox's price directly.

mod body;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smtp_core::{Action, Answer, Config, PeerInfo, Session};

const EHLO: &[u8] = b"EHLO client.example.org\r\n";
const MAIL: &[u8] = b"MAIL FROM:<sender@example.org> SIZE=1024\r\n";
const RCPT: &[u8] = b"RCPT TO:<rcpt@example.net>\r\n";
const RSET: &[u8] = b"RSET\r\n";

fn session() -> Session {
    let config = Config { max_message_size: 64 << 20, ..Config::default() };
    let mut s = Session::new(config, PeerInfo { ip: "127.0.0.1".into(), port: 2525 });
    black_box(s.greeting());
    black_box(s.feed(EHLO));
    s
}

/// Times only `timed` of the MAIL, RCPT, RSET cycle (the others set the
/// state up for it), so each command is measured in the state it needs.
fn cycle(s: &mut Session, iters: u64, timed: &[u8]) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        for cmd in [MAIL, RCPT, RSET] {
            if cmd == timed {
                let t = Instant::now();
                black_box(s.feed(black_box(cmd)));
                total += t.elapsed();
            } else {
                black_box(s.feed(cmd));
            }
        }
    }
    total
}

fn commands(c: &mut Criterion) {
    let mut g = c.benchmark_group("native/command");
    g.bench_function("EHLO", |b| {
        let mut s = session();
        b.iter(|| black_box(s.feed(black_box(EHLO))))
    });
    for (name, cmd) in [("MAIL", MAIL), ("RCPT", RCPT), ("RSET", RSET)] {
        g.bench_function(name, |b| {
            let mut s = session();
            b.iter_custom(|iters| cycle(&mut s, iters, cmd))
        });
    }
    g.finish();
}

/// One whole transaction per iteration: MAIL, RCPT, DATA, the body in 64 KiB
/// reads (the host's read size), the verdict. Throughput is body octets.
fn data(c: &mut Criterion) {
    let mut g = c.benchmark_group("native/data");
    for (label, size) in [("1KiB", 1usize << 10), ("100KiB", 100 << 10), ("10MiB", 10 << 20)] {
        let body = body::stuffed_body(size);
        g.throughput(Throughput::Bytes(body.len() as u64));
        if size >= 1 << 20 {
            g.sample_size(10);
        } else {
            g.sample_size(50);
        }
        g.bench_with_input(BenchmarkId::from_parameter(label), &body, |b, body| {
            let mut s = session();
            b.iter(|| {
                s.feed(MAIL);
                s.feed(RCPT);
                s.feed(b"DATA\r\n");
                let mut ended = false;
                for chunk in body.chunks(64 << 10) {
                    for action in s.feed(chunk) {
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
                black_box(s.answer(Answer::Accept(Some("bench".into()))))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, commands, data);
criterion_main!(benches);
