//! tls-source: Postfix's smtp-source, over STARTTLS or implicit TLS.
//!
//! ```text
//! tls-source [--starttls | --tls-on-connect] [--auth USER:PASS] [--stats]
//!            [-c] [-s SESSIONS] [-m MESSAGES] [-l BYTES] [-d] [-f FROM] [-t TO] [-M HELO] HOST:PORT
//! ```
//!
//! The flags `../shared/bench/peers.py` passes to smtp-source (and `tls_source.py`'s), so either
//! script can drive it with `--source`. `-s` sessions run at once on one thread; without `-d`
//! every message gets a new connection, with `-d` a session keeps its connection and sends
//! messages until the shared count reaches `-m`. One command per round trip, like smtp-source.
//! Every reply is checked: a message counts only when the end of its DATA got 250; anything
//! else is a failed message, listed on stderr at the end, and the exit status is 1.
//! `-c` prints the running count of delivered messages like `smtp-source -c` (`N\r`, every 100,
//! and the final count). `--stats` prints one line at the end:
//! `handshakes=N messages=N seconds=F handshakes_per_s=F messages_per_s=F client_cpu_s=F`.
//!
//! Loopback targets only: the server's certificate is not verified (its handshake signature
//! is), and TLS sessions are never resumed, so every connection is a full handshake.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::signal::unix::{SignalKind, signal};
use tokio_rustls::TlsConnector;

mod args;
mod tls;

use args::{Mode, Opts, loopback_target, parse_args};
use tls::connector;
use tokio_rustls::client::TlsStream;

/// Longest wait for one message (connection set-up included), as tls_source.py's socket timeout.
const TIMEOUT: Duration = Duration::from_secs(60);
/// One read buffer per connection; replies are short (EHLO's is the longest).
const READ_BUF: usize = 4096;

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The message as tls_source.py sends it: From/To/Subject, then 78 x's per line up to -l bytes
/// (at least one line), then the end of data.
fn message_bytes(from: &str, to: &str, length: usize) -> Vec<u8> {
    let mut m = format!("From: {from}\r\nTo: {to}\r\nSubject: bench\r\n\r\n").into_bytes();
    for _ in 0..(length / 80).max(1) {
        m.extend_from_slice(&[b'x'; 78]);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b".\r\n");
    m
}

/// What failed, where: collected (counted by text) and printed at the end.
struct Failure {
    stage: &'static str,
    detail: String,
}

impl Failure {
    fn io(stage: &'static str, e: io::Error) -> Self {
        Failure { stage, detail: e.to_string() }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One SMTP connection and its read buffer: `buf[start..end]` is received and not yet consumed.
struct Conn {
    io: Stream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Conn {
    fn new(io: Stream) -> Self {
        Conn { io, buf: vec![0; READ_BUF].into_boxed_slice(), start: 0, end: 0 }
    }

    /// Reads one reply, all its lines; returns its code and the range of its last line's text.
    async fn reply(&mut self) -> io::Result<(u16, usize, usize)> {
        loop {
            while let Some(nl) = self.buf[self.start..self.end].iter().position(|&b| b == b'\n') {
                let line_start = self.start;
                let mut text_end = line_start + nl;
                self.start = text_end + 1;
                if text_end > line_start && self.buf[text_end - 1] == b'\r' {
                    text_end -= 1;
                }
                let line = &self.buf[line_start..text_end];
                let code = match line.get(..3) {
                    Some(d) if d.iter().all(u8::is_ascii_digit) => {
                        d.iter().fold(0u16, |n, &b| n * 10 + u16::from(b - b'0'))
                    }
                    _ => 0,
                };
                match line.get(3) {
                    _ if code == 0 => return Ok((0, line_start, text_end)),
                    None | Some(b' ') => return Ok((code, line_start, text_end)),
                    Some(b'-') => continue,
                    Some(_) => return Ok((0, line_start, text_end)),
                }
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.end == self.buf.len() {
                if self.start == 0 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "reply line longer than 4 KiB"));
                }
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.io.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed by the server"));
            }
            self.end += n;
        }
    }

    async fn expect(&mut self, want: u16, also: u16, stage: &'static str) -> Result<(), Failure> {
        match self.reply().await {
            Ok((code, _, _)) if code == want || code == also => Ok(()),
            Ok((_, a, b)) => {
                let text = &self.buf[a..b.min(a + 200)];
                Err(Failure { stage, detail: String::from_utf8_lossy(text).into_owned() })
            }
            Err(e) => Err(Failure::io(stage, e)),
        }
    }

    async fn send(&mut self, data: &[u8], stage: &'static str) -> Result<(), Failure> {
        self.io.write_all(data).await.map_err(|e| Failure::io(stage, e))?;
        self.io.flush().await.map_err(|e| Failure::io(stage, e))
    }

    async fn cmd(&mut self, data: &[u8], want: u16, stage: &'static str) -> Result<(), Failure> {
        self.send(data, stage).await?;
        self.expect(want, want, stage).await
    }
}

/// What every session shares: the prepared commands, the TLS client, the counters.
struct Ctx {
    tls: Mode,
    count: bool,
    reuse: bool,
    messages: usize,
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: TlsConnector,
    ehlo: Vec<u8>,
    auth: Option<Vec<u8>>,
    mail: Vec<u8>,
    rcpt: Vec<u8>,
    body: Vec<u8>,
    taken: AtomicUsize,
    delivered: AtomicUsize,
    failed: AtomicUsize,
    other_errors: AtomicUsize,
    handshakes: AtomicUsize,
    errors: Mutex<HashMap<String, usize>>,
}

impl Ctx {
    fn take(&self) -> bool {
        self.taken.fetch_add(1, Ordering::Relaxed) < self.messages
    }

    fn delivered(&self) {
        let n = self.delivered.fetch_add(1, Ordering::Relaxed) + 1;
        if self.count && n.is_multiple_of(100) {
            let mut out = io::stdout().lock();
            let _ = write!(out, "{n}\r");
            let _ = out.flush();
        }
    }

    fn record(&self, f: Failure) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(format!("{}: {}", f.stage, f.detail)).or_insert(0) += 1;
    }

    async fn handshake(&self, conn: Conn, stage: &'static str) -> Result<Conn, Failure> {
        let Stream::Plain(tcp) = conn.io else { unreachable!("TLS is started once") };
        let tls = self.connector.connect(self.name.clone(), tcp).await.map_err(|e| Failure::io(stage, e))?;
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        Ok(Conn { io: Stream::Tls(Box::new(tls)), ..conn })
    }

    /// Connects and gets as far as MAIL: banner, EHLO, TLS, EHLO again, AUTH.
    async fn open(&self) -> Result<Conn, Failure> {
        let tcp = TcpStream::connect(self.addr).await.map_err(|e| Failure::io("connect", e))?;
        tcp.set_nodelay(true).map_err(|e| Failure::io("connect", e))?;
        let mut c = Conn::new(Stream::Plain(tcp));
        if self.tls == Mode::OnConnect {
            c = self.handshake(c, "TLS handshake").await?;
        }
        c.expect(220, 220, "banner").await?;
        c.cmd(&self.ehlo, 250, "EHLO").await?;
        if self.tls == Mode::StartTls {
            c.cmd(b"STARTTLS\r\n", 220, "STARTTLS").await?;
            if c.start != c.end {
                return Err(Failure { stage: "STARTTLS", detail: "plaintext after the 220 (refused)".into() });
            }
            c = self.handshake(c, "TLS handshake after STARTTLS").await?;
            c.cmd(&self.ehlo, 250, "EHLO after STARTTLS").await?;
        }
        if let Some(auth) = &self.auth {
            c.cmd(auth, 235, "AUTH PLAIN").await?;
        }
        Ok(c)
    }

    async fn message(&self, conn: &mut Option<Conn>) -> Result<(), Failure> {
        let c = match conn {
            Some(c) => c,
            None => conn.insert(self.open().await?),
        };
        c.cmd(&self.mail, 250, "MAIL").await?;
        c.send(&self.rcpt, "RCPT").await?;
        c.expect(250, 251, "RCPT").await?;
        c.cmd(b"DATA\r\n", 354, "DATA").await?;
        c.cmd(&self.body, 250, "end of data").await
    }

    async fn quit(&self, mut c: Conn) {
        let r = tokio::time::timeout(TIMEOUT, async {
            c.cmd(b"QUIT\r\n", 221, "QUIT").await?;
            if let Stream::Tls(_) = c.io {
                let _ = c.io.shutdown().await; // close_notify, as a TLS client should
            }
            Ok::<(), Failure>(())
        })
        .await;
        let r = r.unwrap_or_else(|_| Err(Failure { stage: "QUIT", detail: "no reply within 60 s".into() }));
        if let Err(f) = r {
            self.other_errors.fetch_add(1, Ordering::Relaxed);
            self.record(f);
        }
    }

    async fn session(self: Arc<Self>) {
        let mut conn = None;
        while self.take() {
            let r = tokio::time::timeout(TIMEOUT, self.message(&mut conn)).await;
            match r.unwrap_or_else(|_| Err(Failure { stage: "message", detail: "no progress within 60 s".into() })) {
                Ok(()) => self.delivered(),
                Err(f) => {
                    conn = None;
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    self.record(f);
                }
            }
            if !self.reuse
                && let Some(c) = conn.take()
            {
                self.quit(c).await;
            }
        }
        if let Some(c) = conn {
            self.quit(c).await;
        }
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

async fn run(o: Opts) -> ExitCode {
    let (addr, name) = loopback_target(&o.target);
    let auth = o.auth.as_ref().map(|a| {
        let (user, pass) = a.split_once(':').expect("checked when parsed");
        format!("AUTH PLAIN {}\r\n", base64(format!("\0{user}\0{pass}").as_bytes())).into_bytes()
    });
    let ctx = Arc::new(Ctx {
        tls: o.tls,
        count: o.count,
        reuse: o.reuse,
        messages: o.messages,
        addr,
        name,
        connector: connector(),
        ehlo: format!("EHLO {}\r\n", o.helo).into_bytes(),
        auth,
        mail: format!("MAIL FROM:<{}>\r\n", o.from).into_bytes(),
        rcpt: format!("RCPT TO:<{}>\r\n", o.to).into_bytes(),
        body: message_bytes(&o.from, &o.to, o.length),
        taken: AtomicUsize::new(0),
        delivered: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        other_errors: AtomicUsize::new(0),
        handshakes: AtomicUsize::new(0),
        errors: Mutex::new(HashMap::new()),
    });
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let t0 = Instant::now();
    let sessions: Vec<_> = (0..o.sessions).map(|_| tokio::spawn(ctx.clone().session())).collect();
    let all = async {
        for s in sessions {
            let _ = s.await;
        }
    };
    let interrupted = tokio::select! {
        _ = all => None,
        _ = term.recv() => Some("SIGTERM"),
        _ = int.recv() => Some("SIGINT"),
    };
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds();

    let delivered = ctx.delivered.load(Ordering::Relaxed);
    let handshakes = ctx.handshakes.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    let other = ctx.other_errors.load(Ordering::Relaxed);
    if o.count {
        print!("{delivered}\r\n");
    }
    if o.stats {
        let per_s = |n: usize| if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
        println!(
            "handshakes={handshakes} messages={delivered} seconds={seconds:.3} handshakes_per_s={:.1} \
             messages_per_s={:.1} client_cpu_s={cpu:.3}",
            per_s(handshakes),
            per_s(delivered)
        );
    }
    let _ = io::stdout().flush();
    if let Some(sig) = interrupted {
        eprintln!("tls-source: stopped by {sig} after {delivered} of {} messages", o.messages);
    }
    if failed > 0 || other > 0 {
        eprintln!("tls-source: {failed} of {} messages failed, {other} errors after a message", o.messages);
        let errors = ctx.errors.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = errors.iter().collect();
        list.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (what, n) in list {
            eprintln!("  {n} x {what}");
        }
    }
    if failed > 0 || other > 0 || interrupted.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn main() -> ExitCode {
    let o = parse_args(std::env::args().skip(1));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let code = rt.block_on(run(o));
    // Sessions still running after a signal are not waited for.
    rt.shutdown_background();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(base64(b"\0user\0pass"), "AHVzZXIAcGFzcw==");
    }

    #[test]
    fn message_like_tls_source_py() {
        let m = message_bytes("a@x", "b@y", 1024);
        let head = b"From: a@x\r\nTo: b@y\r\nSubject: bench\r\n\r\n";
        assert!(m.starts_with(head));
        assert_eq!(m.len(), head.len() + 12 * 80 + 3);
        assert!(m.ends_with(b"x\r\n.\r\n"));
        assert_eq!(message_bytes("a", "b", 10).len(), message_bytes("a", "b", 80).len());
    }

    #[test]
    fn flags_as_peers_py_passes_them() {
        let argv = "--starttls -s 20 -l 1024 -d -m 5000 -c -f f@x -t t@y -M h.local 127.0.0.1:2601";
        let o = parse_args(argv.split(' ').map(String::from));
        assert!(o.tls == Mode::StartTls && o.count && o.reuse);
        assert_eq!((o.sessions, o.messages, o.length), (20, 5000, 1024));
        assert_eq!((o.from.as_str(), o.to.as_str(), o.helo.as_str()), ("f@x", "t@y", "h.local"));
        assert_eq!(o.target, "127.0.0.1:2601");
        let o = parse_args("-cds20 -m5 --auth=u:p --stats [::1]:25".split(' ').map(String::from));
        assert!(o.count && o.reuse && o.stats && o.auth.as_deref() == Some("u:p"));
        assert_eq!((o.sessions, o.messages), (20, 5));
        assert_eq!(loopback_target(&o.target).0, "[::1]:25".parse().unwrap());
    }
}
