//! Concurrent SMTP senders for the PostgreSQL scale-out and failover
//! tests: client threads spread over several smtpcell hosts, each sending
//! one message after another on its connection, recording what every
//! message got and when (on one logical clock shared by all clients), and
//! the spool rows the cluster holds afterwards.
//!
//! A message whose final reply was not `250`, or whose connection broke
//! after its content began, is *in doubt*: the clients never retry it (a
//! real client would, and would risk a duplicate), so a test can say
//! exactly which messages must be stored (the accepted ones) and which may
//! be (the in-doubt ones, at most once).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::client::RawClient;
use crate::configured::ConfiguredServer;
use crate::postgres::Postgres;

/// The forward-path of every message.
pub const RECIPIENT: &str = "inbox@example.org";

/// An smtpcell host named `hostname` (its Received fields and the rows'
/// `receiving_host`) on 127.0.0.1, storing into the cluster at `url`
/// (`store = URL`, as `smtpcell serve --store URL`), receiving mail for
/// [`RECIPIENT`]'s domain.
pub fn host(url: &str, hostname: &str) -> ConfiguredServer {
    let config = format!(
        "listen = \"127.0.0.1:0\"\nhostname = \"{hostname}\"\nstore = \"{url}\"\ndomains = [\"{}\"]\n",
        RECIPIENT.split('@').nth(1).expect("a domain")
    );
    ConfiguredServer::start(&config, &[]).expect("an smtpcell host on PostgreSQL starts")
}

/// What the server answered to a message's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `250`: the queue id the reply named (`250 2.0.0 Ok: queued as ID`).
    Accepted(String),
    /// Any other final reply, or a connection that broke after the content
    /// began: the message may or may not be stored.
    InDoubt(String),
    /// MAIL, RCPT or DATA was refused, or the connection broke before the
    /// content began: the server never had the message.
    NotSent(String),
}

/// One message a client sent, and what became of it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The Message-ID field's value, with its angle brackets; unique.
    pub message_id: String,
    /// Index of the host (in the list given to [`Load::spawn`]) it went to.
    pub host: usize,
    /// The content as sent, before dot-stuffing.
    pub content: Vec<u8>,
    pub outcome: Outcome,
    /// The logical time just before the content's last line (`.`) was
    /// written.
    pub ended: u64,
    /// The logical time just after its final reply was read.
    pub answered: u64,
}

impl Sent {
    /// The queue id, when the message was accepted.
    pub fn queue_id(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Accepted(id) => Some(id),
            _ => None,
        }
    }
}

/// Client threads sending until each has sent its quota, or until
/// [`Load::stop`].
pub struct Load {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Vec<Sent>>>,
}

struct Shared {
    stop: AtomicBool,
    accepted: AtomicUsize,
    clock: AtomicU64,
}

impl Shared {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }
}

impl Load {
    /// Starts `clients` client threads, client `c` sending to
    /// `hosts[c % hosts.len()]`: `quota` messages each, or until stopped
    /// when `quota` is `None`. A client whose connection breaks connects
    /// again (while the load runs).
    pub fn spawn(hosts: &[SocketAddr], clients: usize, quota: Option<usize>) -> Load {
        let shared =
            Arc::new(Shared { stop: AtomicBool::new(false), accepted: AtomicUsize::new(0), clock: AtomicU64::new(0) });
        let threads = (0..clients)
            .map(|client| {
                let shared = shared.clone();
                let host = client % hosts.len();
                let addr = hosts[host];
                std::thread::spawn(move || run_client(&shared, client, host, addr, quota))
            })
            .collect();
        Load { shared, threads }
    }

    /// The logical time now: a message with `ended` after it had not
    /// ended before this call, one with `answered` before it had its reply.
    pub fn now(&self) -> u64 {
        self.shared.tick()
    }

    /// How many messages got `250` so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Waits until `count` messages got `250` in all (bounded: panics
    /// after `patience`).
    pub fn wait_accepted(&self, count: usize, patience: Duration) {
        let start = std::time::Instant::now();
        while self.accepted() < count {
            assert!(
                start.elapsed() < patience,
                "only {} of {count} messages accepted after {patience:?}",
                self.accepted()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asks every client to stop after its current message.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the clients; every message they sent.
    pub fn join(self) -> Vec<Sent> {
        self.threads.into_iter().flat_map(|thread| thread.join().expect("a client thread does not panic")).collect()
    }
}

fn run_client(shared: &Shared, client: usize, host: usize, addr: SocketAddr, quota: Option<usize>) -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut connection: Option<RawClient> = None;
    for n in 0.. {
        if quota.is_some_and(|quota| n >= quota) || (quota.is_none() && shared.stop.load(Ordering::SeqCst)) {
            break;
        }
        if connection.is_none() {
            match greeted(addr) {
                Ok(c) => connection = Some(c),
                Err(_) => {
                    // The server is there (the test started it); a refused
                    // or reset connection is worth another try.
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let c = connection.as_mut().expect("connected above");
        let message_id = format!("<c{client}.m{n}@load.test>");
        let content = message(&message_id, client, n);
        let mut record =
            Sent { message_id, host, content, outcome: Outcome::NotSent(String::new()), ended: 0, answered: 0 };
        match transaction(shared, c, &mut record) {
            Ok(()) => {}
            Err(err) => {
                if !matches!(record.outcome, Outcome::InDoubt(_)) {
                    record.outcome = Outcome::NotSent(format!("{err:#}"));
                }
                connection = None;
            }
        }
        if let Outcome::NotSent(_) = record.outcome {
            // Nothing to record about a message the server never had,
            // but do not spin while a host refuses at MAIL.
            std::thread::sleep(Duration::from_millis(5));
        }
        sent.push(record);
    }
    sent
}

fn greeted(addr: SocketAddr) -> Result<RawClient> {
    let mut c = RawClient::connect(addr)?;
    let greeting = c.reply()?;
    ensure!(greeting.starts_with("220 "), "greeting {greeting:?}");
    let ehlo = c.command("EHLO load.test")?;
    ensure!(ehlo.starts_with("250"), "EHLO {ehlo:?}");
    Ok(c)
}

/// One transaction; sets `record.outcome` (and the times) as it goes.
/// Errors when the connection is unusable afterwards.
fn transaction(shared: &Shared, c: &mut RawClient, record: &mut Sent) -> Result<()> {
    for command in [format!("MAIL FROM:<{}>", sender(record)), format!("RCPT TO:<{RECIPIENT}>")] {
        let reply = c.command(&command)?;
        if !reply.starts_with("250") {
            record.outcome = Outcome::NotSent(reply);
            c.command("RSET")?;
            return Ok(());
        }
    }
    let reply = c.command("DATA")?;
    if !reply.starts_with("354") {
        record.outcome = Outcome::NotSent(reply);
        return Ok(());
    }
    record.outcome = Outcome::InDoubt("connection broke during the content".into());
    c.send(&stuffed(&record.content))?;
    record.ended = shared.tick();
    c.send(b".\r\n")?;
    let reply = c.reply()?;
    record.answered = shared.tick();
    record.outcome = match reply.strip_prefix("250 2.0.0 Ok: queued as ") {
        Some(id) => {
            shared.accepted.fetch_add(1, Ordering::SeqCst);
            Outcome::Accepted(id.trim_end().to_string())
        }
        None => Outcome::InDoubt(reply),
    };
    Ok(())
}

fn sender(record: &Sent) -> String {
    format!("sender{}@load.test", record.host)
}

/// A message of the load: a Message-ID, lines that begin with a dot (so
/// that stuffing is exercised), and every 40th message past 64 KiB (where
/// the server stops holding content in memory).
pub fn message(message_id: &str, client: usize, n: usize) -> Vec<u8> {
    let mut text = format!(
        "From: <client{client}@load.test>\r\nTo: <{RECIPIENT}>\r\nMessage-ID: {message_id}\r\n\
         Subject: load {client} {n}\r\n\r\nmessage {n} of client {client}\r\n.leading dot\r\n..two dots\r\n"
    );
    let lines = if (client * 7 + n).is_multiple_of(40) { 1200 } else { (client + n) % 20 };
    for line in 0..lines {
        text.push_str(&format!("{line:05} the quick brown fox jumps over the lazy dog {message_id}\r\n"));
    }
    text.into_bytes()
}

/// RFC 5321 section 4.5.2: a line that begins with a dot gets another.
fn stuffed(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 16);
    for line in content.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}

/// A spool row: a stored message as the cluster holds it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub queue_id: String,
    pub receiving_host: String,
    /// The Message-ID field found in the content ('' when none).
    pub message_id: String,
    pub content: Vec<u8>,
}

/// Every row of `smtpcell_message` (README, "PostgreSQL"), by id.
pub fn stored(pg: &Postgres) -> Result<Vec<Row>> {
    let text = pg.psql(
        "SELECT id, queue_id, receiving_host, \
                coalesce(substring(encode(content, 'escape') from 'Message-ID: (<[^>]*>)'), ''), \
                encode(content, 'hex') \
         FROM smtpcell_message ORDER BY id",
    );
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.splitn(5, '|').collect();
            ensure!(fields.len() == 5, "a row of five columns: {line:?}");
            Ok(Row {
                id: fields[0].parse().context("the id")?,
                queue_id: fields[1].to_string(),
                receiving_host: fields[2].to_string(),
                message_id: fields[3].to_string(),
                content: unhex(fields[4]).context("the content")?,
            })
        })
        .collect()
}

fn unhex(hex: &str) -> Result<Vec<u8>> {
    ensure!(hex.len().is_multiple_of(2), "odd hex length");
    (0..hex.len()).step_by(2).map(|i| Ok(u8::from_str_radix(&hex[i..i + 2], 16)?)).collect()
}

/// The rows by Message-ID; several rows under one key are duplicates.
pub fn by_message_id(rows: &[Row]) -> HashMap<&str, Vec<&Row>> {
    let mut map: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in rows {
        map.entry(row.message_id.as_str()).or_default().push(row);
    }
    map
}

/// Checks that ids grow with acknowledgement: whenever message `a` got its
/// `250` before message `b`'s content ended (on any host, any client), `a`
/// was committed before `b`'s row was inserted, so `id(a) < id(b)` (one
/// cluster-wide identity sequence). Messages whose processing overlaps
/// are not ordered by this, as no client could tell their order either.
///
/// Errors name the first pair out of order.
pub fn ids_follow_acknowledgements(sent: &[Sent], rows: &HashMap<&str, Vec<&Row>>) -> Result<()> {
    let mut accepted: Vec<(&Sent, i64)> = sent
        .iter()
        .filter(|s| s.queue_id().is_some())
        .map(|s| {
            Ok((
                s,
                rows.get(s.message_id.as_str()).and_then(|r| r.first()).context("an accepted message is stored")?.id,
            ))
        })
        .collect::<Result<_>>()?;
    let mut by_answer = accepted.clone();
    by_answer.sort_by_key(|(s, _)| s.answered);
    accepted.sort_by_key(|(s, _)| s.ended);
    // Walking the messages by the end of their content, `before` is the
    // message with the largest id among those answered before that end.
    let mut answered = by_answer.iter().peekable();
    let mut before: Option<&(&Sent, i64)> = None;
    for later in &accepted {
        while let Some(earlier) = answered.next_if(|(s, _)| s.answered < later.0.ended) {
            if before.is_none_or(|b| earlier.1 > b.1) {
                before = Some(earlier);
            }
        }
        if let Some((earlier, id)) = before {
            ensure!(
                *id < later.1,
                "{} (id {id}) was acknowledged before {} (id {}) ended, yet has the larger id",
                earlier.message_id,
                later.0.message_id,
                later.1
            );
        }
    }
    Ok(())
}
