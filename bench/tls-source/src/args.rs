//! The command line: smtp-source's flags (as peers.py and tls_source.py pass them) and the
//! loopback-only target.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rustls::pki_types::ServerName;

const USAGE: &str = "usage: tls-source [--starttls | --tls-on-connect] [--auth USER:PASS] [--stats] \
[-c] [-s SESSIONS] [-m MESSAGES] [-l BYTES] [-d] [-f FROM] [-t TO] [-M HELO] HOST:PORT";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Plain,
    StartTls,
    OnConnect,
}

pub(crate) struct Opts {
    pub(crate) tls: Mode,
    pub(crate) auth: Option<String>,
    pub(crate) stats: bool,
    pub(crate) count: bool,
    pub(crate) sessions: usize,
    pub(crate) messages: usize,
    pub(crate) length: usize,
    pub(crate) reuse: bool,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) helo: String,
    pub(crate) target: String,
}

fn usage(why: &str) -> ! {
    eprintln!("tls-source: {why}\n{USAGE}");
    std::process::exit(2)
}

fn number(flag: char, v: &str) -> usize {
    v.parse().unwrap_or_else(|_| usage(&format!("-{flag} wants a number, got {v:?}")))
}

pub(crate) fn parse_args(args: impl Iterator<Item = String>) -> Opts {
    let mut o = Opts {
        tls: Mode::Plain,
        auth: None,
        stats: false,
        count: false,
        sessions: 1,
        messages: 1,
        length: 1024,
        reuse: false,
        from: "bench@peers.example".into(),
        to: "rcpt@peers.example".into(),
        helo: "peers.localhost".into(),
        target: String::new(),
    };
    let mut args = args.peekable();
    let mut target = None;
    while let Some(arg) = args.next() {
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            match name {
                "starttls" | "tls-on-connect" if o.tls != Mode::Plain => {
                    usage("--starttls and --tls-on-connect exclude each other")
                }
                "starttls" => o.tls = Mode::StartTls,
                "tls-on-connect" => o.tls = Mode::OnConnect,
                "stats" => o.stats = true,
                "auth" => {
                    let v = inline.or_else(|| args.next()).unwrap_or_else(|| usage("--auth wants USER:PASS"));
                    if !v.contains(':') {
                        usage("--auth wants USER:PASS");
                    }
                    o.auth = Some(v);
                }
                "help" => {
                    println!("{USAGE}");
                    std::process::exit(0)
                }
                _ => usage(&format!("unknown option {arg}")),
            }
        } else if arg.len() > 1 && arg.starts_with('-') {
            // getopt style: flags may be grouped (-cd), a value may follow its letter (-s20) or be
            // the next argument (-s 20).
            for (i, c) in arg[1..].char_indices() {
                match c {
                    'c' => o.count = true,
                    'd' => o.reuse = true,
                    's' | 'm' | 'l' | 'f' | 't' | 'M' => {
                        let rest = &arg[1 + i + 1..];
                        let v = if rest.is_empty() {
                            args.next().unwrap_or_else(|| usage(&format!("-{c} wants a value")))
                        } else {
                            rest.to_string()
                        };
                        match c {
                            's' => o.sessions = number(c, &v),
                            'm' => o.messages = number(c, &v),
                            'l' => o.length = number(c, &v),
                            'f' => o.from = v,
                            't' => o.to = v,
                            _ => o.helo = v,
                        }
                        break;
                    }
                    _ => usage(&format!("unknown flag -{c} in {arg}")),
                }
            }
        } else if target.replace(arg).is_some() {
            usage("one target only");
        }
    }
    o.target = target.unwrap_or_else(|| usage("no target HOST:PORT"));
    if o.sessions == 0 {
        usage("-s must be at least 1");
    }
    o
}

/// HOST:PORT or [V6]:PORT, loopback only (like tls_source.py: these runs skip verification).
pub(crate) fn loopback_target(t: &str) -> (SocketAddr, ServerName<'static>) {
    let (host, port) = t.rsplit_once(':').unwrap_or_else(|| usage("target must be HOST:PORT"));
    let port: u16 = port.parse().unwrap_or_else(|_| usage(&format!("bad port in {t}")));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        let name = ServerName::try_from("localhost").expect("a valid name").to_owned();
        return (SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port), name);
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => (SocketAddr::new(ip, port), ServerName::IpAddress(ip.into())),
        _ => {
            eprintln!("tls-source: loopback targets only (127.0.0.0/8, ::1, localhost), not {host}");
            std::process::exit(2)
        }
    }
}
