//! The accept loop: one task per connection, a cap on concurrent
//! connections, and a graceful shutdown.

use std::future::{Future, poll_fn};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::backoff::{Backoff, Throttle};
use super::config::ServerConfig;
use super::connection::serve_connection;
use super::per_ip::PerIpLimit;
use super::policy_slot::PolicySlot;
use super::spare::{Spare, out_of_descriptors};
use crate::events::{self, Event};
use crate::policy::{Policy, Role};
use crate::runtime::Registry;
use crate::spool::Spool;
use crate::tls::Certificates;

/// What every connection task shares.
pub struct ServerContext {
    pub config: ServerConfig,
    /// The certificate, when TLS is configured.
    pub certificates: Option<Arc<Certificates>>,
    pub registry: Arc<Registry>,
    pub spool: Arc<dyn Spool>,
    /// Decides every question the guests ask; replaced at a reload.
    pub policies: Arc<PolicySlot>,
    /// Becomes `true` when the server starts draining.
    pub shutdown: watch::Receiver<bool>,
}

/// One listening socket and the service it provides.
struct Listener {
    socket: TcpListener,
    role: Role,
}

/// A bound, not yet serving, SMTP server.
pub struct Server {
    listeners: Vec<Listener>,
    spare: Spare,
    context: Arc<ServerContext>,
    shutdown_tx: watch::Sender<bool>,
}

impl Server {
    /// Loads the certificate (if configured) and binds every configured
    /// listener. Errors: a listener that cannot be bound, a certificate or
    /// key that does not load, TLS listeners or `require_tls` without a
    /// certificate, submission listeners with a policy that offers no AUTH.
    pub async fn bind(
        config: ServerConfig,
        registry: Arc<Registry>,
        spool: Arc<dyn Spool>,
        policy: Arc<dyn Policy>,
    ) -> Result<Server> {
        let certificates = match &config.tls {
            Some(files) => {
                let certificates = Certificates::load(files.clone()).context("loading the TLS certificate")?;
                info!(cert = %files.cert.display(), "TLS certificate loaded");
                Some(Arc::new(certificates))
            }
            None => None,
        };
        let policies = Arc::new(PolicySlot::new(&config, policy)?);
        let mut listeners = Vec::new();
        for (role, addr) in [
            (Role::Mx, Some(config.listen)),
            (Role::Submission, config.listen_submission),
            (Role::Submissions, config.listen_tls),
        ] {
            let Some(addr) = addr else { continue };
            if role != Role::Mx && certificates.is_none() {
                bail!("the {} listener needs a certificate (--tls-cert and --tls-key)", role.name());
            }
            let socket = listen(addr, config.max_connections).with_context(|| format!("listening on {addr}"))?;
            listeners.push(Listener { socket, role });
        }
        if config.require_tls && certificates.is_none() {
            bail!("--require-tls needs a certificate (--tls-cert and --tls-key)");
        }
        let spare = Spare::open().context("opening /dev/null as the spare file descriptor")?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let context = Arc::new(ServerContext { config, certificates, registry, spool, policies, shutdown });
        Ok(Server { listeners, spare, context, shutdown_tx })
    }

    /// The MX listener's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].socket.local_addr()
    }

    /// The address of the listener of `role`, if there is one.
    pub fn addr(&self, role: Role) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.role == role).and_then(|l| l.socket.local_addr().ok())
    }

    /// The policy in force, for reloads.
    pub fn policies(&self) -> Arc<PolicySlot> {
        self.context.policies.clone()
    }

    /// The certificate in use, for reloads.
    pub fn certificates(&self) -> Option<Arc<Certificates>> {
        self.context.certificates.clone()
    }

    /// Serves until `stop` resolves, then drains: no new connections;
    /// sessions between commands get 421 from their guest; sessions in the
    /// middle of a message may finish it within `shutdown_grace`, after which
    /// they are cut off (their unfinished messages are discarded, never
    /// half-stored). The grace period bounds every session, including one
    /// stuck writing to a client that does not read.
    pub async fn serve(self, stop: impl Future<Output = ()>) -> Result<()> {
        let Server { listeners, mut spare, context, shutdown_tx } = self;
        let mut backoff = Backoff::default();
        // One warning per interval for clients refused at the connection
        // limit (the per-IP limit has its own).
        let mut refusals = Throttle::default();
        let slots = Arc::new(Semaphore::new(context.config.max_connections));
        let per_ip = PerIpLimit::new(context.config.max_connections_per_ip);
        let mut tasks = JoinSet::new();
        let mut turn = 0;
        tokio::pin!(stop);
        for listener in &listeners {
            let role = listener.role.name();
            info!(listen = %listener.socket.local_addr()?, role = %role, component = %context.registry.current().label(), "serving SMTP");
        }
        loop {
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                (accepted, listener) = accept_any(&listeners, &mut turn) => {
                    let (stream, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(err) => {
                            // Out of file descriptors and the like: the
                            // waiting clients hear 421, and the loop backs off
                            // instead of spinning, serving the others.
                            let turned_away = if out_of_descriptors(&err) {
                                turn_away(listener, &mut spare, &context.config.hostname).await
                            } else {
                                0
                            };
                            let failed = backoff.failed(Instant::now());
                            if let Some(failures) = failed.warn {
                                let delay_ms = failed.delay.as_millis() as u64;
                                warn!(%err, failures, turned_away, delay_ms, "accept failed: backing off");
                            }
                            tokio::time::sleep(failed.delay).await;
                            continue;
                        }
                    };
                    backoff.succeeded();
                    let _ = stream.set_nodelay(true);
                    // A proxy's clients are limited one by one once its
                    // PROXY header has named them (serve_connection).
                    let slot = if context.config.proxy_networks.contains(peer.ip()) {
                        Some(None)
                    } else {
                        per_ip.try_acquire(peer.ip().to_canonical()).map(Some)
                    };
                    let hostname = &context.config.hostname;
                    match (slots.clone().try_acquire_owned(), slot) {
                        (Ok(permit), Some(slot)) => {
                            let ctx = context.clone();
                            let role = listener.role;
                            let per_ip = per_ip.clone();
                            tasks.spawn(async move {
                                serve_connection(ctx, stream, peer, role, per_ip).await;
                                drop((permit, slot));
                            });
                        }
                        (Err(_), _) => {
                            events::emit(Event::Turnaway { listener: listener.role, reason: "too-many-connections" });
                            refuse(stream, hostname, "Too many connections", refusals.hit(Instant::now()));
                        }
                        (_, None) => {
                            events::emit(Event::Turnaway { listener: listener.role, reason: "too-many-from-address" });
                            refuse(stream, hostname, TOO_MANY_FROM_ADDRESS, per_ip.refused(Instant::now()));
                        }
                    }
                }
                () = &mut stop => break,
            }
        }
        drop(listeners);
        // Finished sessions are otherwise only reaped at the next accept.
        while tasks.try_join_next().is_some() {}
        info!(sessions = tasks.len(), "shutting down: draining sessions");
        let _ = shutdown_tx.send(true);
        let grace = context.config.shutdown_grace;
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
            warn!(sessions = tasks.len(), "shutdown grace period over: cutting off the remaining sessions");
            tasks.shutdown().await;
        }
        info!("stopped");
        Ok(())
    }
}

/// Binds the listening socket with a listen queue as long as the connection
/// limit, and at least 1,024 (clients past the limit also queue, to be told
/// 421). The default (128, from std and mio) overflows when a burst of
/// clients arrives faster than the accept loop takes them, and with SYN
/// cookies an overflowing client believes it is connected and waits for a
/// greeting that never comes. The kernel caps the length at
/// net.core.somaxconn.
fn listen(addr: SocketAddr, max_connections: usize) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(u32::try_from(max_connections).unwrap_or(u32::MAX).max(1024))
}

/// The next connection on any listener, with the listener it came to.
/// Polling starts one listener further on each time, so that a flood on one
/// listener cannot keep the others' clients waiting.
async fn accept_any<'l>(
    listeners: &'l [Listener],
    turn: &mut usize,
) -> (io::Result<(TcpStream, SocketAddr)>, &'l Listener) {
    *turn = turn.wrapping_add(1);
    let start = *turn;
    poll_fn(|cx| {
        for i in 0..listeners.len() {
            let listener = &listeners[(start + i) % listeners.len()];
            if let Poll::Ready(accepted) = listener.socket.poll_accept(cx) {
                return Poll::Ready((accepted, listener));
            }
        }
        Poll::Pending
    })
    .await
}

/// Why a client past the per-IP limit is refused, in its 421.
pub(super) const TOO_MANY_FROM_ADDRESS: &str = "Too many connections from your address";

/// Past the connection limit no guest instance is created, so the host
/// answers itself: one of its three pieces of protocol text, with the 421
/// 4.3.0 after a guest fault and the 421 4.3.2 of [`turn_away`] (RFC 5321
/// section 3.8 lets a server answer 421 instead of the greeting).
/// `warning`: the refusals since the last warning, when one is due (a
/// [`Throttle`]'s).
pub(super) fn refuse(stream: TcpStream, hostname: &str, why: &'static str, warning: Option<u64>) {
    if let Some(refused) = warning {
        warn!(why, refused, "connection limit reached: refusing clients");
    }
    say_and_close(stream, &format!("421 4.7.0 {hostname} {why}, try again later\r\n"));
}

/// Most clients turned away in one round, so that a flood cannot keep the
/// accept loop from its back-off.
const TURN_AWAY_PER_ROUND: usize = 256;

/// Out of file descriptors: frees the spare and uses it to accept each
/// client already waiting, tell it 421 4.3.2 (RFC 3463: system not accepting
/// network messages) and close it, one at a time; returns how many. Host
/// text, like [`refuse`]: no guest instance exists for these clients.
async fn turn_away(listener: &Listener, spare: &mut Spare, hostname: &str) -> usize {
    let reply = format!("421 4.3.2 {hostname} Service temporarily unavailable, try again later\r\n");
    let mut turned_away = 0;
    spare.release();
    while turned_away < TURN_AWAY_PER_ROUND {
        // Only clients already in the listen queue: no waiting here.
        let Ok(Ok((stream, _))) = tokio::time::timeout(Duration::ZERO, listener.socket.accept()).await else { break };
        events::emit(Event::Turnaway { listener: listener.role, reason: "out-of-descriptors" });
        say_and_close(stream, &reply);
        turned_away += 1;
    }
    spare.restore();
    turned_away
}

/// Writes a one-line reply to a freshly accepted client and closes it,
/// without waiting: a fresh socket's send buffer always has room for one
/// line, so a client that does not read cannot hold the accept loop, a
/// task or a descriptor (an unread reply is simply lost with the socket).
fn say_and_close(stream: TcpStream, reply: &str) {
    if let Ok(stream) = stream.into_std() {
        let _ = (&stream).write(reply.as_bytes());
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
}
