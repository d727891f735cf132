//! Drives one client connection: bytes from the stream go into the guest
//! in one call per read, the guest's actions are executed in order, and
//! its questions are decided by the policy and answered.
//!
//! [`Connection`] is the one place that state lives (the design's "one
//! connection: read, feed, execute actions, ask/answer"): the guest
//! session, the guard's view of the contract, the policy's view of the
//! client, the message in progress and the replies not yet written. Its
//! stream becomes a TLS stream at STARTTLS (RFC 3207), or is one from the
//! first byte on the implicit-TLS listener (RFC 8314).
//!
//! Every wait on the client is bounded: reads by the timeout of the SMTP
//! phase ([`Connection::read_timeout`]), writes by
//! [`ServerConfig::write_timeout`], TLS handshakes by
//! [`ServerConfig::tls_handshake_timeout`]; policy decisions by the command
//! timeout, the end-of-data decision and storage together by the data-end
//! timeout. The replies waiting for a
//! client are bounded too: each call's output is written before the next
//! call, the next read, a decision or the storage commit (RFC 2920 section
//! 3.1 lets a server stop reading from a client that does not read its
//! replies), so what is held is one call's output, which the guard caps at
//! 64 × 64 KiB + 4 KiB.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smtp_core::contract::Call;
use smtp_core::{Action, Answer, Question, Reason, TlsInfo};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tracing::{Instrument, debug, field, info, info_span, warn};

use crate::events::{self, ConnectionEvents, Event};

use super::config::ServerConfig;
use super::delivery::Delivery;
use super::guard::ActionGuard;
use super::listener::ServerContext;
use super::per_ip::PerIpLimit;
use super::policy_slot::InForce;
use super::proxy;
use super::stream::ClientStream;
use crate::policy::{Client, Role};
use crate::runtime::{GuestFault, GuestSession, LoadedComponent, PeerInfo};
use crate::tls::tls_info;

/// One read of client input. The whole read goes to the guest in one call:
/// crossing the sandbox boundary per line or per byte would cost more than
/// the protocol work itself.
const READ_SIZE: usize = 64 << 10;

enum ConnError {
    Guest(GuestFault),
    Client(io::Error),
    /// A write did not finish within the write timeout.
    Stalled,
    /// The TLS handshake failed or timed out.
    Handshake(io::Error),
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

/// What a call's actions leave the connection to do.
enum Next {
    /// Read the client's next input.
    Read,
    /// Decide and answer this question.
    Ask(Question),
    /// Negotiate TLS, then tell the session.
    StartTls,
    /// Close the connection.
    Close,
}

/// Serves one connection accepted on a listener of `role` to its end, on
/// the component version current when it was accepted. A connection from
/// a proxy ([`ServerConfig::proxy_networks`]) starts with its PROXY
/// header, before any TLS; the client it names is the connection's client,
/// admitted here under `per_ip` (the accept loop admitted every other
/// client).
pub async fn serve_connection(
    ctx: Arc<ServerContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    role: Role,
    per_ip: Arc<PerIpLimit>,
) {
    // The version this connection starts with serves it to the end, whatever
    // reloads happen meanwhile.
    let lease = ctx.registry.current().lease();
    let component = lease.component();
    // So is the policy.
    let in_force = ctx.policies.current();
    let proxied = ctx.config.proxy_networks.contains(peer.ip());
    let id = next_connection_id();
    let span = if proxied {
        // `peer` is the client the header names, recorded once read.
        info_span!("conn", id, via = %peer, peer = field::Empty, role = %role.name(), component = %component.label())
    } else {
        info_span!("conn", id, %peer, role = %role.name(), component = %component.label())
    };
    async move {
        let (tcp, peer, _ip_slot) = if proxied {
            let config = &ctx.config;
            match proxy::admit(tcp, peer, config.proxy_header_timeout, &per_ip, &config.hostname, role).await {
                Some(admitted) => (admitted.tcp, admitted.client, Some(admitted.slot)),
                None => return,
            }
        } else {
            (tcp, peer, None)
        };
        let mut client = Client::connected(role, peer.ip(), peer.port());
        let _admission = match in_force.policy.admit(&client) {
            Ok(admission) => admission,
            Err(turnaway) => {
                events::emit(Event::Turnaway { listener: role, reason: "rate-limited" });
                info!(why = turnaway.why, "connection refused by the rate limits");
                let reply = format!("421 4.7.0 {} {}, try again later\r\n", ctx.config.hostname, turnaway.why);
                // An implicit-TLS client could not read plaintext: it is closed.
                if role != Role::Submissions {
                    let mut tcp = tcp;
                    let _ = send(&mut tcp, reply.as_bytes(), &ctx.config).await;
                }
                return;
            }
        };
        let mut events = ConnectionEvents::open(role, &component.label());
        // Implicit TLS: the handshake comes before anything else, the
        // greeting included (RFC 8314 section 3.3).
        let stream = if role == Role::Submissions {
            match handshake(&ctx, tcp).await {
                Ok((tls, info)) => {
                    events.emit(Event::TlsStarted(&info));
                    client.tls = Some(info);
                    ClientStream::Tls(Box::new(tls))
                }
                Err(err) => return events.emit(Event::TlsFailed(&err)),
            }
        } else {
            ClientStream::Plain(tcp)
        };
        let started = Connection::start(&ctx, component, &in_force, stream, client, &mut events).await;
        let (ended, mut stream) = match started {
            Ok(mut connection) => {
                let ended = connection.run().await;
                // Whatever ended the session, a message not answered is
                // discarded now, before the client hears anything more
                // (invariant 2).
                (ended, connection.stream)
            }
            Err((fault, stream)) => (Err(ConnError::Guest(fault)), stream),
        };
        match ended {
            Ok(()) => debug!("closed"),
            Err(ConnError::Guest(fault)) => {
                events.emit(Event::GuestFault(&fault));
                // The one reply the host writes itself: the guest that would
                // have written it is gone.
                let reply = format!("421 4.3.0 {} Service unavailable, closing connection\r\n", ctx.config.hostname);
                if let Err(ConnError::Stalled) = send(&mut stream, reply.as_bytes(), &ctx.config).await {
                    info!("client did not read its replies");
                }
            }
            Err(ConnError::Client(err)) => debug!(%err, "client connection ended"),
            Err(ConnError::Stalled) => info!("client did not read its replies"),
            Err(ConnError::Handshake(err)) => events.emit(Event::TlsFailed(&err)),
        }
        // Over TLS the session ends with close_notify (RFC 8446 section
        // 6.1), so that the client can tell the end from a truncation.
        // Over plaintext, dropping the stream closes it, which sends the
        // FIN; a separate shutdown(2) first would add a system call per
        // connection.
        if let ClientStream::Tls(_) = stream {
            let _ = tokio::time::timeout(ctx.config.write_timeout(), stream.shutdown()).await;
        }
    }
    .instrument(span)
    .await
}

/// The TLS handshake on `tcp`, bounded by the handshake timeout, and what
/// it negotiated.
async fn handshake(ctx: &ServerContext, tcp: TcpStream) -> io::Result<(TlsStream<TcpStream>, TlsInfo)> {
    let Some(certificates) = &ctx.certificates else {
        return Err(io::Error::other("no certificate is configured"));
    };
    let accept = certificates.acceptor().accept(tcp);
    let tls = match tokio::time::timeout(ctx.config.tls_handshake_timeout, accept).await {
        Ok(tls) => tls?,
        Err(_elapsed) => return Err(io::Error::new(io::ErrorKind::TimedOut, "the client stalled in the handshake")),
    };
    let info = tls_info(tls.get_ref().1);
    Ok((tls, info))
}

/// One connection's whole state.
struct Connection<'c> {
    ctx: &'c ServerContext,
    component: &'c Arc<LoadedComponent>,
    /// The policy this connection started under.
    in_force: &'c InForce,
    stream: ClientStream,
    guest: GuestSession,
    guard: ActionGuard,
    client: Client,
    /// The message being received, from `message-begin` to its answer.
    delivery: Option<Delivery>,
    /// Replies of the current call, written before anything waits.
    out: Vec<u8>,
    /// What the connection reports (logs, metrics, its summary).
    events: &'c mut ConnectionEvents,
    /// Capacity only, filled by `read_buf`: `vec![0; READ_SIZE]` zeroed 64
    /// KiB per connection (a memset that showed in profiles of one-message
    /// connections, and pages touched that an idle connection never needs).
    buf: Vec<u8>,
}

impl<'c> Connection<'c> {
    /// A connection with a fresh guest session; the stream back if the
    /// guest could not start (the pool is full, the instance trapped).
    async fn start(
        ctx: &'c ServerContext,
        component: &'c Arc<LoadedComponent>,
        in_force: &'c InForce,
        stream: ClientStream,
        client: Client,
        events: &'c mut ConnectionEvents,
    ) -> Result<Self, (GuestFault, ClientStream)> {
        let peer_info = PeerInfo { ip: client.ip.to_string(), port: client.port };
        let guest = match GuestSession::start(component, in_force.guest_config(client.role), &peer_info).await {
            Ok(guest) => guest,
            Err(fault) => return Err((fault, stream)),
        };
        events.emit(Event::GuestStarted);
        let tls_offered = ctx.certificates.is_some() && client.tls.is_none();
        Ok(Connection {
            ctx,
            component,
            in_force,
            stream,
            guest,
            guard: ActionGuard::new(ctx.config.max_message_size, ctx.config.max_recipients, tls_offered),
            client,
            delivery: None,
            events,
            out: Vec::with_capacity(1024),
            buf: Vec::with_capacity(READ_SIZE),
        })
    }

    /// The loop: check a call's actions, execute them, write the replies,
    /// then make the next call: an answer, a feed, a timeout or shutdown.
    async fn run(&mut self) -> Result<(), ConnError> {
        if let Some(tls) = self.client.tls.clone() {
            // Implicit TLS: the session hears of it before its greeting.
            let actions = self.guest.tls_started(&tls).await?;
            self.guard.check(Call::TlsStarted, &actions)?;
            if let Next::Close = self.execute(actions) {
                return Ok(());
            }
        }
        let mut call = Call::Greeting;
        let mut actions = self.guest.greeting().await?;
        loop {
            self.guard.check(call, &actions)?;
            let next = self.execute(actions);
            // Written before anything waits (a decision, storage, the
            // client): the replies held are never more than one call's.
            if !self.out.is_empty() {
                self.events.output(&self.out);
                send(&mut self.stream, &self.out, &self.ctx.config).await?;
                self.out.clear();
            }
            (call, actions) = match next {
                Next::Close => return Ok(()),
                Next::Ask(question) => {
                    let answer = self.decide(question).await;
                    (Call::Answer, self.guest.answer(&answer).await?)
                }
                Next::StartTls => {
                    let tls = self.start_tls().await?;
                    (Call::TlsStarted, self.guest.tls_started(&tls).await?)
                }
                Next::Read => match self.read().await? {
                    Some(next) => next,
                    None => return Ok(()),
                },
            };
        }
    }

    /// Executes one checked call's actions, in order.
    fn execute(&mut self, actions: Vec<Action>) -> Next {
        let mut next = Next::Read;
        for action in actions {
            match action {
                Action::Send(bytes) => self.out.extend_from_slice(&bytes),
                Action::MessageBegin(envelope) => {
                    let policy = &*self.in_force.policy;
                    self.delivery = Some(Delivery::begin(self.ctx, self.component, policy, &self.client, envelope));
                }
                Action::MessageData(bytes) => {
                    if let Some(delivery) = &mut self.delivery {
                        delivery.write(&bytes);
                    }
                }
                // Dropping the delivery discards what was written.
                Action::MessageAbort => self.delivery = None,
                Action::Ask(question) => next = Next::Ask(question),
                Action::Close => next = Next::Close,
                // The guard lets it through only when offered; it is the
                // call's last action but for `close`.
                Action::StartTls => next = Next::StartTls,
            }
        }
        next
    }

    /// The policy's answer to `question`. Decisions other than the end of
    /// a message are bounded by the command timeout (the client waits for
    /// the reply as it would for a command's); past it the client hears a
    /// temporary local error (451 4.3.0; at connect 421 4.3.0 and close).
    /// The end of a message is bounded with its storage (`Delivery::finish`).
    async fn decide(&mut self, question: Question) -> Answer {
        let policy = &*self.in_force.policy;
        let client = &self.client;
        let decision = match &question {
            Question::MessageEnd => {
                let Some(delivery) = self.delivery.take() else {
                    return Answer::refuse(Reason::LocalError, false);
                };
                let size = delivery.size();
                let (answer, commit) = delivery.finish(policy, client, self.ctx.config.data_end_timeout).await;
                match (&answer, commit) {
                    (Answer::Accept(queue_id), Some(commit)) => {
                        let queue_id = queue_id.as_deref().unwrap_or_default();
                        self.events.emit(Event::MessageStored { queue_id, size, commit });
                    }
                    (Answer::Refuse(refusal), _) => self.refused(&question, refusal.reason),
                    _ => {}
                }
                return answer;
            }
            Question::Connect => policy.connect(client),
            Question::Helo(hello) => policy.helo(client, hello),
            // A submission listener serves authenticated clients only (RFC
            // 6409 section 4.3; RFC 4954 section 6 gives the reply).
            Question::Mail(_) if client.role.requires_auth() && client.authenticated.is_none() => {
                self.refused(&question, Reason::AuthRequired);
                return Answer::refuse(Reason::AuthRequired, true);
            }
            // An acceptance decided in memory needs no future nor timer,
            // and no bookkeeping; anything else is decided below.
            Question::Mail(_) | Question::Rcpt(_)
                if let Some(answer @ Answer::Accept(_)) = policy.decide_now(client, &question) =>
            {
                return answer;
            }
            Question::Mail(mail) => policy.mail(client, mail),
            Question::Rcpt(rcpt) => policy.rcpt(client, rcpt),
            Question::Auth(credentials) => policy.auth(client, credentials),
        };
        let answer = match tokio::time::timeout(self.ctx.config.command_timeout, decision).await {
            Ok(answer) => answer,
            Err(_elapsed) => {
                warn!(question = question.name(), "the policy did not decide in time");
                Answer::refuse(Reason::LocalError, false)
            }
        };
        if let (Question::Rcpt(_), Answer::Refuse(refusal)) = (&question, &answer)
            && matches!(refusal.reason, Reason::NoSuchUser | Reason::RelayDenied)
        {
            self.client.refused_recipients += 1;
        }
        if let Question::Auth(credentials) = &question {
            match &answer {
                Answer::Accept(text) => {
                    let identity = credentials.authenticated_as(text.as_deref());
                    let mechanism = credentials.mechanism.to_string();
                    self.events.emit(Event::Authenticated { identity: &identity, mechanism: &mechanism });
                    self.client.authenticated = Some(identity);
                }
                Answer::Refuse(_) => self.auth_refused(&credentials.authentication_id).await,
            }
        } else if let Answer::Refuse(refusal) = &answer {
            self.refused(&question, refusal.reason);
        }
        answer
    }

    fn refused(&mut self, question: &Question, reason: Reason) {
        self.events.emit(Event::Refused { stage: question.name(), reason: reason.name() });
    }

    /// A refused AUTH: the reply waits out the failure delay. The session
    /// counts failed AUTH commands itself (cancelled and malformed ones
    /// never reach the host) and ends the connection with 421 4.7.0 at
    /// [`ServerConfig::max_auth_failures`], which it was configured with.
    /// The authentication id is logged (escaped: it is the client's text);
    /// the secret never.
    async fn auth_refused(&mut self, authentication_id: &str) {
        self.events.emit(Event::AuthRefused { user: authentication_id });
        tokio::time::sleep(self.ctx.config.auth_failure_delay).await;
    }

    /// STARTTLS: the handshake on the plaintext stream. Nothing the client
    /// sent before it reaches the session afterwards: every octet read so
    /// far was fed to the guest, which drops what followed STARTTLS (RFC
    /// 3207 section 6), and rustls reads the rest as TLS records, so
    /// plaintext pipelined behind STARTTLS fails the handshake instead of
    /// being executed (CVE-2011-0411). The session starts over: the
    /// client is no longer authenticated (RFC 3207 section 4.2).
    async fn start_tls(&mut self) -> Result<TlsInfo, ConnError> {
        let Some(tcp) = self.stream.take_plain() else {
            return Err(ConnError::Handshake(io::Error::other("TLS is already active")));
        };
        let (tls, info) = handshake(self.ctx, tcp).await.map_err(ConnError::Handshake)?;
        self.events.emit(Event::TlsStarted(&info));
        self.stream = ClientStream::Tls(Box::new(tls));
        self.client.tls = Some(info.clone());
        self.client.authenticated = None;
        Ok(info)
    }

    /// Waits for the client's next input and makes the call it leads to;
    /// `None` when the client has gone.
    async fn read(&mut self) -> Result<Option<(Call, Vec<Action>)>, ConnError> {
        let mut shutdown = self.ctx.shutdown.clone();
        if *shutdown.borrow() && !self.guard.in_message() {
            return Ok(Some((Call::NoInput, self.guest.shutdown().await?)));
        }
        self.buf.clear();
        let timeout = self.read_timeout();
        let in_message = self.guard.in_message();
        tokio::select! {
            read = tokio::time::timeout(timeout, self.stream.read_buf(&mut self.buf)) => match read {
                Err(_elapsed) => {
                    info!("client timed out");
                    Ok(Some((Call::NoInput, self.guest.timeout().await?)))
                }
                Ok(Ok(0)) => {
                    if in_message {
                        info!("client disconnected in the middle of a message; nothing stored");
                    }
                    Ok(None)
                }
                Ok(Ok(n)) => {
                    self.events.input(&self.buf[..n]);
                    Ok(Some((Call::Feed(n), self.guest.feed(&self.buf[..n]).await?)))
                }
                Ok(Err(err)) => Err(err.into()),
            },
            _ = shutdown.changed(), if !in_message => Ok(Some((Call::NoInput, self.guest.shutdown().await?))),
        }
    }

    /// How long the host waits for the client's next input, by SMTP phase
    /// (RFC 5321 section 4.5.3.2): the data timeout while the client is
    /// sending message content, the command timeout otherwise. The phase
    /// is the guard's `in_message`: wit/session.wit has the client sending
    /// content from `message-begin` until `ask(message-end)` or
    /// `message-abort`, and emits `message-abort` only once that content is
    /// over. This is the one place the host decides it.
    fn read_timeout(&self) -> Duration {
        let config: &ServerConfig = &self.ctx.config;
        if self.guard.in_message() { config.data_timeout } else { config.command_timeout }
    }
}

/// Writes replies to the client within [`ServerConfig::write_timeout`]; a
/// client that does not take them by then is [`ConnError::Stalled`]. The
/// flush matters over TLS only: rustls may hold a record until flushed.
async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8], config: &ServerConfig) -> Result<(), ConnError> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(config.write_timeout(), write).await {
        Ok(written) => Ok(written?),
        Err(_elapsed) => Err(ConnError::Stalled),
    }
}

/// A number for each connection, unique in this process, for its log lines.
fn next_connection_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
