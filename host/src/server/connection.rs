//! Drives one client connection: bytes from the socket go into the guest in
//! one call per read, and the guest's actions are executed in order.
//!
//! Every wait on the client is bounded: reads by the timeout of the SMTP
//! phase ([`read_timeout`]), writes by [`ServerConfig::write_timeout`]. The
//! replies waiting for a client are bounded too: each call's output is
//! written before the next call, the next read or the storage commit (RFC
//! 2920 section 3.1 lets a server stop reading from a client that does not
//! read its replies), so what is held is one call's output, which the guard
//! caps at 64 × 64 KiB + 4 KiB.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{Instrument, debug, info, info_span, warn};

use super::config::ServerConfig;
use super::guard::{ActionGuard, Call};
use super::listener::ServerContext;
use crate::runtime::{
    Action, BodyType, DsnReturn, Envelope, GuestFault, GuestSession, LoadedComponent, PeerInfo, Verdict,
};
use crate::spool::{MessageMeta, StoredRecipient, Transaction, is_storage_full};

/// One read of client input. The whole read goes to the guest in one call:
/// crossing the sandbox boundary per line or per byte would cost more than
/// the protocol work itself.
const READ_SIZE: usize = 64 << 10;

enum ConnError {
    Guest(GuestFault),
    Client(io::Error),
    /// A write did not finish within the write timeout.
    Stalled,
}

impl From<GuestFault> for ConnError {
    fn from(fault: GuestFault) -> Self {
        ConnError::Guest(fault)
    }
}

impl From<io::Error> for ConnError {
    fn from(err: io::Error) -> Self {
        ConnError::Client(err)
    }
}

/// A message being received: storage open, or failed (the client still
/// sends the rest, and hears 451/452 at the end).
enum Pending {
    Open(Box<dyn Transaction>),
    Failed(io::Error),
}

/// What to do once a call's actions have been executed.
enum Step {
    Read,
    Commit,
    Close,
}

pub async fn serve_connection(ctx: Arc<ServerContext>, mut stream: TcpStream, peer: SocketAddr) {
    // The version this connection starts with serves it to the end, whatever
    // reloads happen meanwhile.
    let lease = ctx.registry.current().lease();
    let component = lease.component();
    let span = info_span!("conn", %peer, component = %component.label());
    async move {
        debug!("accepted");
        match drive(&ctx, component, &mut stream, peer).await {
            Ok(()) => debug!("closed"),
            Err(ConnError::Guest(fault)) => {
                warn!(%fault, "guest fault: ending this connection");
                // The one reply the host writes itself: the guest that would
                // have written it is gone.
                let reply = format!("421 4.3.0 {} Service unavailable, closing connection\r\n", ctx.config.hostname);
                if let Err(ConnError::Stalled) = send(&mut stream, reply.as_bytes(), &ctx.config).await {
                    info!("client did not read its replies");
                }
            }
            Err(ConnError::Client(err)) => debug!(%err, "client connection ended"),
            Err(ConnError::Stalled) => info!("client did not read its replies"),
        }
        // Dropping the stream closes it, which sends the FIN; a separate
        // shutdown(2) first would add a system call per connection.
    }
    .instrument(span)
    .await
}

async fn drive(
    ctx: &ServerContext,
    component: &Arc<LoadedComponent>,
    stream: &mut TcpStream,
    peer: SocketAddr,
) -> Result<(), ConnError> {
    let peer_info = PeerInfo { ip: peer.ip().to_canonical().to_string(), port: peer.port() };
    let mut guest = GuestSession::start(component, &ctx.guest_config, &peer_info).await?;
    let mut guard = ActionGuard::new(ctx.config.max_message_size, ctx.config.max_recipients);
    let mut shutdown = ctx.shutdown.clone();
    let mut pending: Option<Pending> = None;
    let mut out = Vec::with_capacity(1024);
    // Capacity only, filled by `read_buf`: `vec![0; READ_SIZE]` zeroed 64 KiB
    // per connection (a memset that showed in profiles of one-message
    // connections, and pages touched that an idle connection never needs).
    let mut buf = Vec::with_capacity(READ_SIZE);
    let mut actions = guest.greeting().await?;
    let mut call = Call::NoInput;
    loop {
        guard.check(call, &actions)?;
        let mut step = Step::Read;
        for action in actions {
            match action {
                Action::Send(bytes) => out.extend_from_slice(&bytes),
                Action::MessageBegin(envelope) => pending = Some(open(ctx, component, &envelope, peer)),
                Action::MessageData(bytes) => write(&mut pending, &bytes),
                Action::MessageEnd => step = Step::Commit,
                Action::MessageAbort => pending = None,
                Action::Close => step = Step::Close,
                Action::StartTls => unreachable!("the guard refuses start-tls"),
            }
        }
        // Written before anything waits (storage, the client): the replies
        // held for a client are never more than one call's output.
        if !out.is_empty() {
            send(stream, &out, &ctx.config).await?;
            out.clear();
        }
        actions = match step {
            Step::Commit => {
                let verdict = commit(pending.take(), ctx.config.data_end_timeout).await;
                call = Call::Complete;
                guest.complete(&verdict).await?
            }
            Step::Close => return Ok(()),
            Step::Read => {
                call = Call::NoInput;
                if *shutdown.borrow() && !guard.in_message() {
                    guest.shutdown().await?
                } else {
                    buf.clear();
                    tokio::select! {
                        read = tokio::time::timeout(read_timeout(&ctx.config, &guard), stream.read_buf(&mut buf)) => match read {
                            Err(_elapsed) => {
                                info!("client timed out");
                                guest.timeout().await?
                            }
                            Ok(Ok(0)) => {
                                if guard.in_message() {
                                    info!("client disconnected in the middle of a message; nothing stored");
                                }
                                return Ok(());
                            }
                            Ok(Ok(n)) => {
                                call = Call::Feed(n);
                                guest.feed(&buf[..n]).await?
                            }
                            Ok(Err(err)) => return Err(err.into()),
                        },
                        _ = shutdown.changed(), if !guard.in_message() => guest.shutdown().await?,
                    }
                }
            }
        };
    }
}

/// How long the host waits for the client's next input, by SMTP phase (RFC
/// 5321 section 4.5.3.2): the data timeout while the client is sending
/// message content, the command timeout otherwise. The phase is the guard's
/// `in_message`: wit/session.wit has the client sending content from
/// `message-begin` until `message-end` or `message-abort`, and emits
/// `message-abort` only once that content is over. This is the one place
/// the host decides it.
fn read_timeout(config: &ServerConfig, guard: &ActionGuard) -> Duration {
    if guard.in_message() { config.data_timeout } else { config.command_timeout }
}

/// Writes replies to the client within [`ServerConfig::write_timeout`]; a
/// client that does not take them by then is [`ConnError::Stalled`].
async fn send(stream: &mut TcpStream, bytes: &[u8], config: &ServerConfig) -> Result<(), ConnError> {
    match tokio::time::timeout(config.write_timeout(), stream.write_all(bytes)).await {
        Ok(written) => Ok(written?),
        Err(_elapsed) => Err(ConnError::Stalled),
    }
}

fn open(ctx: &ServerContext, component: &LoadedComponent, envelope: &Envelope, peer: SocketAddr) -> Pending {
    let meta = MessageMeta {
        server_hostname: ctx.config.hostname.clone(),
        client_ip: peer.ip().to_canonical(),
        helo: envelope.helo.clone(),
        reverse_path: envelope.reverse_path.clone(),
        recipients: envelope
            .recipients
            .iter()
            .map(|r| StoredRecipient { address: r.address.clone(), notify: r.notify.clone(), orcpt: r.orcpt.clone() })
            .collect(),
        protocol: envelope.protocol.clone(),
        body: match envelope.body {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            BodyType::BinaryMime => "BINARYMIME",
        },
        smtputf8: envelope.smtputf8,
        dsn_return: envelope.dsn_return.map(|r| match r {
            DsnReturn::Full => "FULL",
            DsnReturn::Headers => "HDRS",
        }),
        dsn_envid: envelope.dsn_envid.clone(),
        received_at: SystemTime::now(),
        handled_by: component.label(),
    };
    match ctx.spool.begin(&meta) {
        Ok(txn) => Pending::Open(txn),
        Err(err) => {
            warn!(%err, "cannot open storage for a message");
            Pending::Failed(err)
        }
    }
}

fn write(pending: &mut Option<Pending>, bytes: &[u8]) {
    if let Some(Pending::Open(txn)) = pending
        && let Err(err) = txn.write(bytes)
    {
        warn!(%err, "cannot write message content");
        // Dropping the transaction removes what was written so far.
        *pending = Some(Pending::Failed(err));
    }
}

/// Makes the message durable and turns the outcome into the verdict the
/// guest will report. Storage that takes longer than `bound` is abandoned:
/// the client hears 451 and the transaction is cancelled before it becomes
/// visible.
async fn commit(pending: Option<Pending>, bound: Duration) -> Verdict {
    let failure = |err: &io::Error| {
        if is_storage_full(err) { Verdict::InsufficientStorage } else { Verdict::TemporaryFailure }
    };
    match pending {
        Some(Pending::Open(txn)) => {
            let id = txn.queue_id().to_string();
            let cancelled = Arc::new(AtomicBool::new(false));
            let committing = txn.commit(Vec::new(), cancelled.clone());
            let Ok(outcome) = tokio::time::timeout(bound, committing).await else {
                cancelled.store(true, Ordering::SeqCst);
                warn!(queue_id = %id, "storage did not finish in time; message abandoned");
                return Verdict::TemporaryFailure;
            };
            match outcome {
                Ok(()) => {
                    info!(queue_id = %id, "message stored");
                    Verdict::Accepted(id)
                }
                Err(err) => {
                    warn!(%err, "cannot make the message durable");
                    failure(&err)
                }
            }
        }
        Some(Pending::Failed(err)) => failure(&err),
        // The guard guarantees a begin before every end.
        None => Verdict::TemporaryFailure,
    }
}
