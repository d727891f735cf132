//! SMTP sessions for policy tests: a client greeted from a chosen loopback
//! address, AUTH PLAIN, one whole transaction, and the users file a
//! configuration names.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, Result, ensure};

use crate::client::RawClient;

/// The HELO domain every session here gives: it names no recipient, so a
/// copy's header block can be searched for recipients' names.
pub const HELO: &str = "client.test";

/// `127.0.0.N`: a loopback client address (Linux routes all of 127/8 to
/// the loopback interface).
pub const fn loopback(n: u8) -> IpAddr {
    loopback_at(0, n)
}

/// `127.0.NETWORK.HOST`: a loopback client address in the /24 `NETWORK`
/// (rate limits and greylisting key IPv4 clients by their /24 by default).
pub const fn loopback_at(network: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, network, host))
}

/// A client connected from `source`, greeted with 220 and through EHLO.
///
/// # Errors
/// The connection, or a greeting or EHLO reply other than 220/250 (the
/// error holds the reply).
pub fn greeted(addr: SocketAddr, source: IpAddr) -> Result<RawClient> {
    let mut c = RawClient::connect_from(source, addr)?;
    let greeting = c.reply()?;
    ensure!(greeting.starts_with("220 "), "greeting {greeting:?}");
    let ehlo = c.command(&format!("EHLO {HELO}"))?;
    ensure!(ehlo.starts_with("250"), "EHLO answered {ehlo:?}");
    Ok(c)
}

/// `\0user\0password` in base64: AUTH PLAIN's initial response (RFC 4616).
pub fn plain(user: &str, password: &str) -> String {
    // A tiny encoder keeps the harness free of another base64 dependency.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("\0{user}\0{password}");
    let mut out = String::new();
    for chunk in raw.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// A client greeted from `source` and authenticated as `user` (AUTH PLAIN
/// over plaintext: the configuration must allow it).
pub fn authenticated(addr: SocketAddr, source: IpAddr, user: &str, password: &str) -> Result<RawClient> {
    let mut c = greeted(addr, source)?;
    let reply = c.command(&format!("AUTH PLAIN {}", plain(user, password)))?;
    ensure!(reply.starts_with("235 "), "AUTH answered {reply:?}");
    Ok(c)
}

/// What one transaction got.
#[derive(Debug)]
pub struct Transaction {
    /// The reply to MAIL.
    pub mail: String,
    /// The reply to each RCPT, in order.
    pub rcpt: Vec<String>,
    /// The reply to the content (`250 2.0.0 ...`); `None` when MAIL or
    /// every RCPT was refused, and the transaction was reset instead.
    pub data: Option<String>,
}

impl Transaction {
    /// Whether the message was queued.
    pub fn queued(&self) -> bool {
        self.data.as_deref().is_some_and(|reply| reply.starts_with("250 "))
    }
}

/// One transaction: MAIL FROM:<reverse_path>, RCPT TO:<each forward-path>,
/// then DATA with `content` (lines joined by CRLF, the final `.` added)
/// if any recipient was accepted, RSET otherwise. A forward-path is sent
/// between angle brackets as given (it may hold a source route).
///
/// # Errors
/// The connection closes or a reply is malformed; refusals are returned.
pub fn transaction(
    c: &mut RawClient,
    reverse_path: &str,
    forward_paths: &[&str],
    content: &str,
) -> Result<Transaction> {
    let mail = c.command(&format!("MAIL FROM:<{reverse_path}>"))?;
    if !mail.starts_with("250 ") {
        c.command("RSET")?;
        return Ok(Transaction { mail, rcpt: Vec::new(), data: None });
    }
    let mut rcpt = Vec::with_capacity(forward_paths.len());
    for forward_path in forward_paths {
        rcpt.push(c.command(&format!("RCPT TO:<{forward_path}>"))?);
    }
    let data = if rcpt.iter().any(|reply| reply.starts_with("250 ")) {
        let go_ahead = c.command("DATA")?;
        ensure!(go_ahead.starts_with("354 "), "DATA answered {go_ahead:?}");
        Some(c.command(&format!("{content}\r\n."))?)
    } else {
        let reset = c.command("RSET")?;
        ensure!(reset.starts_with("250 "), "RSET answered {reset:?}");
        None
    };
    Ok(Transaction { mail, rcpt, data })
}

/// The reply code and enhanced status code of `reply` (`"550 5.7.1"`), to
/// compare exactly; the whole reply when it has no enhanced code.
pub fn status(reply: &str) -> &str {
    let first = reply.lines().next().unwrap_or(reply);
    let mut words = first.splitn(3, ' ');
    match (words.next(), words.next()) {
        (Some(code), Some(enhanced)) if enhanced.split('.').count() == 3 => &first[..code.len() + 1 + enhanced.len()],
        _ => first,
    }
}

/// The contents of a users file holding `users` (name, password), hashed
/// as `smtpcell passwd` hashes them (argon2id): for a configuration's `users` key,
/// written through [`ConfiguredServer::start`]'s files.
///
/// [`ConfiguredServer::start`]: crate::configured::ConfiguredServer::start
pub fn users_file(users: &[(&str, &str)]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("users");
    for (user, password) in users {
        smtpcell::users::set_password(&path, user, password.as_bytes()).with_context(|| format!("adding {user}"))?;
    }
    Ok(std::fs::read_to_string(&path)?)
}
