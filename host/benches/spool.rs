//! Storing one message in the Maildir, from `Spool::begin` until it is
//! durable, for 1 KiB to 10 MiB of content: the write path of today (header
//! block written at commit; content held in memory up to
//! `HELD_CONTENT_MAX`, past it spilled to tmp/ behind the provisional header
//! block, and copied behind the final block with `copy_file_range` only
//! when end headers come), without end headers ("new") and with two
//! (`END`, "new+end"), against the path it replaced (header block written
//! first, content streamed behind it through a 64 KiB buffer), which is
//! kept here, and only here, for this comparison. A fourth path stores the
//! message with end headers as four copies ("4 copies"), as a [`Router`]
//! does for a message to the inbox, two users' Maildirs and the outgoing
//! one: its ratio is to "new+end", the same message as one copy.
//!
//! `cargo bench -p smtpcell --bench spool [-- DIR...]` measures in a fresh
//! Maildir under each DIR (default: the temporary directory, and /dev/shm
//! when there is one: on tmpfs the device flushes cost nothing, which leaves
//! the write paths themselves). Old and new alternate message by message,
//! so drift on a shared machine touches both alike. It prints the time per
//! message and the CPU per message (this process, every thread: the
//! connection's, the commit thread, the blocking pool), each a trimmed mean
//! (see `summary`), and the ratios new / old; bench/README.md has figures.
//! Without `--bench` (`cargo test --benches`) it stores one message of each
//! size each way, as a smoke test.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smtpcell::spool::{
    Destination, HELD_CONTENT_MAX, Mailbox, Maildir, MessageMeta, Router, Routes, Spool, StoredRecipient, trace_headers,
};

/// Message sizes (octets of content) and messages per size and path.
const SIZES: [(usize, usize); 5] =
    [(1 << 10, 300), (HELD_CONTENT_MAX, 300), (100 << 10, 300), (1 << 20, 60), (10 << 20, 20)];

/// The piece of content handed to the spool at a time: one read of the
/// server (`READ_SIZE` in server/connection.rs).
const PIECE: usize = 64 << 10;

/// Messages of each size stored each way before measuring.
const WARM_UP: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let mut dirs: Vec<PathBuf> = args.iter().filter(|a| !a.starts_with("--")).map(PathBuf::from).collect();
    if dirs.is_empty() {
        dirs.push(std::env::temp_dir());
        if measuring && Path::new("/dev/shm").is_dir() {
            dirs.push("/dev/shm".into());
        }
    }
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for dir in dirs {
        let root = tempfile::Builder::new().prefix("spool-bench").tempdir_in(&dir).unwrap();
        let maildir = Maildir::open(root.path().join("mail"), "new.bench.test").unwrap();
        let mut old = OldMaildir::open(&root.path().join("mail")).unwrap();
        let routes =
            Routes { mailboxes: Some(root.path().join("users")), outgoing: Some(root.path().join("outgoing")) };
        let router = Router::open(root.path().join("routed"), routes, "routed.bench.test").unwrap();
        println!("\n{} ({}), content in {} KiB pieces", dir.display(), fs_type(&dir), PIECE >> 10);
        println!(
            "| content | messages | old: time | new: time | new+end: time | 4 copies: time \
             | old: CPU | new: CPU | new+end: CPU | 4 copies: CPU |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (size, count) in SIZES {
            let count = if measuring { count } else { 1 };
            let content = content(size);
            let mut runs: [Vec<(Duration, Duration)>; 4] = Default::default();
            for i in 0..count + if measuring { WARM_UP } else { 0 } {
                // Rotate which goes first, so none always follows another.
                for k in 0..4 {
                    let path = (i + k) % 4;
                    let run = measure(|| match path {
                        0 => tokio.block_on(old.store(&meta(), &content)),
                        1 => tokio.block_on(store(&maildir, &meta(), &content, b"")),
                        2 => tokio.block_on(store(&maildir, &meta(), &content, END)),
                        _ => tokio.block_on(store(&router, &four_copies(), &content, END)),
                    });
                    if !measuring || i >= WARM_UP {
                        runs[path].push(run);
                    }
                }
            }
            let [old, new, end, copies] = runs.map(|r| summary(&r));
            let ratio = |a: Duration, b: Duration| format!("{:.2}", a.as_secs_f64() / b.as_secs_f64());
            println!(
                "| {} | {} | {} | {} ({}) | {} ({}) | {} ({}) | {} | {} ({}) | {} ({}) | {} ({}) |",
                human(size),
                count,
                ms(old.0),
                ms(new.0),
                ratio(new.0, old.0),
                ms(end.0),
                ratio(end.0, old.0),
                ms(copies.0),
                ratio(copies.0, end.0),
                ms(old.1),
                ms(new.1),
                ratio(new.1, old.1),
                ms(end.1),
                ratio(end.1, old.1),
                ms(copies.1),
                ratio(copies.1, end.1),
            );
        }
    }
}

/// Two end headers of the size SPF and DKIM checks add.
const END: &[u8] = b"Authentication-Results: mx.bench.test; spf=pass smtp.mailfrom=a.test; dkim=pass header.d=a.test\r\n\
                     Received-SPF: pass (mx.bench.test: domain of a@a.test designates 192.0.2.1) client-ip=192.0.2.1\r\n";

/// Today's path: what a connection does with a message, with `end` as the
/// end headers.
async fn store(spool: &dyn Spool, meta: &MessageMeta, content: &[u8], end: &[u8]) -> io::Result<()> {
    let mut txn = spool.begin(meta)?;
    for piece in content.chunks(PIECE) {
        txn.write(piece)?;
    }
    txn.commit(end.to_vec(), Arc::new(AtomicBool::new(false))).await
}

/// The write path before end headers, as `host/src/spool/maildir.rs` had it
/// up to commit 2f850c0: the header block written at begin, the content
/// through a 64 KiB `BufWriter`, flushed at commit; then what the commit
/// thread does for a batch of one (`syncfs`, the file's writeback error,
/// the rename into new/, an fsync of new/), on Tokio's blocking pool so
/// that, like the commit thread, it runs on another thread than the
/// connection's.
struct OldMaildir {
    tmp: PathBuf,
    new: PathBuf,
    new_dir: Arc<File>,
    counter: u64,
}

impl OldMaildir {
    fn open(root: &Path) -> io::Result<OldMaildir> {
        Ok(OldMaildir {
            tmp: root.join("tmp"),
            new: root.join("new"),
            new_dir: Arc::new(File::open(root.join("new"))?),
            counter: 0,
        })
    }

    async fn store(&mut self, meta: &MessageMeta, content: &[u8]) -> io::Result<()> {
        // begin
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        self.counter += 1;
        let unique = format!("{}.M{}P{}Q{}", now.as_secs(), now.subsec_micros(), std::process::id(), self.counter);
        let name = format!("{unique}.old.bench.test");
        let tmp_path = self.tmp.join(&name);
        let new_path = self.new.join(&name);
        let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp_path)?;
        let mut file = BufWriter::with_capacity(64 << 10, file);
        file.write_all(&trace_headers(meta, &unique, b""))?;
        // write
        for piece in content.chunks(PIECE) {
            file.write_all(piece)?;
        }
        // commit
        let file = file.into_inner().map_err(|e| e.into_error())?;
        let new_dir = self.new_dir.clone();
        tokio::task::spawn_blocking(move || {
            // SAFETY: plain syscalls on descriptors this closure owns.
            check(unsafe { libc::syncfs(new_dir.as_raw_fd()) })?;
            let flags =
                libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
            // SAFETY: as above.
            check(unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) })?;
            std::fs::rename(&tmp_path, &new_path)?;
            new_dir.sync_all()
        })
        .await
        .unwrap()
    }
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// One message's wall time and the CPU time this process spent meanwhile.
fn measure(store: impl FnOnce() -> io::Result<()>) -> (Duration, Duration) {
    let (start, cpu) = (Instant::now(), cpu_time());
    store().expect("the message is stored");
    (start.elapsed(), cpu_time() - cpu)
}

/// Wall and CPU time per message, each the mean of the middle 80 % of the
/// runs. Not the median: on the VM these figures come from, a device flush
/// completes in steps of about 4 ms, so wall times cluster at a few values
/// and the median jumps between them on small differences; the trimmed mean
/// moves with the share of runs in each step and still ignores the runs a
/// neighbour's burst of work disturbed.
fn summary(runs: &[(Duration, Duration)]) -> (Duration, Duration) {
    let trimmed_mean = |mut values: Vec<Duration>| {
        values.sort();
        let cut = values.len() / 10;
        let middle = &values[cut..values.len() - cut];
        middle.iter().sum::<Duration>() / middle.len() as u32
    };
    (trimmed_mean(runs.iter().map(|r| r.0).collect()), trimmed_mean(runs.iter().map(|r| r.1).collect()))
}

/// User and system CPU time of this process, every thread.
fn cpu_time() -> Duration {
    // SAFETY: rusage is plain integers, for which all zeroes is valid, and
    // getrusage only writes into the struct it is given.
    let mut usage = unsafe { std::mem::zeroed::<libc::rusage>() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn meta() -> MessageMeta {
    MessageMeta {
        server_hostname: "mx.bench.test".into(),
        client_ip: "192.0.2.1".parse().unwrap(),
        helo: "client.bench.test".into(),
        reverse_path: "sender@example.org".into(),
        recipients: vec![StoredRecipient {
            address: "rcpt@example.net".into(),
            notify: None,
            orcpt: None,
            destinations: vec![Destination::Inbox],
        }],
        protocol: "ESMTP".into(),
        body: "8BITMIME",
        smtputf8: false,
        dsn_return: None,
        dsn_envid: None,
        received_at: SystemTime::now(),
        handled_by: "smtpcell-guest@0.1.0".into(),
        tls: None,
        authenticated: None,
    }
}

/// A message to the inbox, two users (one of them also through an alias)
/// and a remote address: four copies.
fn four_copies() -> MessageMeta {
    let user = |name: &str| Destination::Mailbox(Mailbox::new(name, "example.net").unwrap());
    let rcpt = |address: &str, destinations: Vec<Destination>| StoredRecipient {
        address: address.into(),
        notify: None,
        orcpt: None,
        destinations,
    };
    MessageMeta {
        recipients: vec![
            rcpt("postmaster@example.net", vec![Destination::Inbox]),
            rcpt("alice@example.net", vec![user("alice")]),
            rcpt("team@example.net", vec![user("alice"), user("bob")]),
            rcpt("carol@example.com", vec![Destination::Outgoing("carol@example.com".into())]),
        ],
        ..meta()
    }
}

/// `len` octets of a plain message: a few header fields, then 78-octet lines.
fn content(len: usize) -> Vec<u8> {
    let mut c = b"From: <sender@example.org>\r\nTo: <rcpt@example.net>\r\nSubject: bench\r\n\r\n".to_vec();
    let line = format!("{}\r\n", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd");
    while c.len() < len {
        c.extend_from_slice(line.as_bytes());
    }
    c.truncate(len);
    c
}

fn human(size: usize) -> String {
    if size >= 1 << 20 { format!("{} MiB", size >> 20) } else { format!("{} KiB", size >> 10) }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The filesystem type holding `dir`, from /proc/self/mounts (the longest
/// mount point that contains it).
fn fs_type(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (point, kind) = (fields.nth(1)?, fields.next()?);
            dir.starts_with(point).then(|| (point.len(), kind.to_string()))
        })
        .max()
        .map_or_else(|| "unknown filesystem".into(), |(_, kind)| kind)
}
