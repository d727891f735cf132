//! What happened, typed: one vocabulary of [`Event`]s that the connection
//! driver, the accept loop, the commit thread, reloads and the policy emit,
//! and that both the log and the metrics are fed from, so that the two
//! always agree.
//!
//! - [`emit`]: a server event (a reload, a commit batch, a rate limit...).
//! - [`ConnectionEvents`]: one connection's events, labelled with its
//!   listener and component version and summed into the one-line summary
//!   logged when it closes.
//! - [`Metrics`]: the Prometheus series, collected only when
//!   [`install_metrics`] was called (`--metrics ADDR`): without it an event
//!   costs its log line and nothing more.
//! - [`serve_metrics`]: the `/metrics` listener; [`snapshot`]: the same
//!   figures as JSON for `smtpcell status --json`.
//! - [`init_logging`]: the log's format, text or JSON lines.
//!
//! Like `tracing`'s dispatcher, the metrics are process-wide: one server per
//! process, installed once at start-up.

mod commands;
mod connection;
mod http;
mod log;
mod metrics;
mod snapshot;

use std::io;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use smtp_core::TlsInfo;

pub use commands::{CommandCounter, CommandCounts};
pub use connection::{ConnectionEvents, Summary};
pub use http::serve_metrics;
pub use log::{LogFormat, init_logging};
pub use metrics::{ConnectionLabels, ConnectionMetrics, Metrics};
pub use snapshot::snapshot;

use crate::policy::Role;
use crate::runtime::GuestFault;
use crate::server::Swapped;

/// Everything the server reports. Connection events (the first group) are
/// emitted through a [`ConnectionEvents`], which knows their listener and
/// component; the others through [`emit`]. No event carries a secret or
/// message content: AUTH is reported by its identity, a message by its
/// queue id and size.
#[derive(Debug)]
pub enum Event<'a> {
    /// A client was admitted (past the connection limits and the rate
    /// limits on connections).
    ConnectionOpened,
    /// The connection is over; what it did.
    ConnectionClosed(&'a Summary),
    /// A guest instance was created for the connection.
    GuestStarted,
    /// That instance was released.
    GuestEnded,
    /// A TLS handshake (STARTTLS, RFC 3207, or implicit TLS, RFC 8314)
    /// completed.
    TlsStarted(&'a TlsInfo),
    /// A TLS handshake failed or timed out.
    TlsFailed(&'a io::Error),
    /// AUTH succeeded (RFC 4954): the authorization identity and mechanism.
    Authenticated { identity: &'a str, mechanism: &'a str },
    /// AUTH was refused; `user` is the authentication id as the client gave
    /// it (its text, never its secret).
    AuthRefused { user: &'a str },
    /// The policy (or the host) refused a step: `stage` is the question
    /// (`connect`, `helo`, `mail`, `rcpt`, `auth`, `message-end`), `reason`
    /// the contract's reason name (`no-such-user`, `rate-limited`...).
    Refused { stage: &'static str, reason: &'static str },
    /// A message was made durable and acknowledged: its content size in
    /// octets and the time from the end of its data to durable.
    MessageStored { queue_id: &'a str, size: u64, commit: Duration },
    /// The guest faulted and the connection is being ended with 421.
    GuestFault(&'a GuestFault),

    /// A client was refused before any session, on `listener`: `reason` is
    /// `too-many-connections`, `too-many-from-address`, `rate-limited` or
    /// `out-of-descriptors`.
    Turnaway { listener: Role, reason: &'static str },
    /// A rate limit was reached at `stage` (`connect`, `mail`, `rcpt`,
    /// `auth`); `limit` is its `[rate_limits]` key.
    RateLimited { listener: Role, client: IpAddr, stage: &'static str, limit: &'static str },
    /// A greylisting verdict on one recipient: `pass` or `defer`.
    Greylisting { listener: Role, client: IpAddr, verdict: &'static str },
    /// A new component version serves new connections from now on.
    ComponentSwapped { trigger: &'a str, swapped: &'a Swapped },
    /// A reload was applied; `parts` says what was reloaded besides the
    /// component (certificate, policy).
    Reloaded { trigger: &'a str, parts: &'a [String] },
    /// A reload was refused, every part of it: what serves is unchanged.
    ReloadRefused { trigger: &'a str, reasons: &'a [String] },
    /// The commit thread made `messages` messages durable together.
    CommitBatch { messages: usize, duration: Duration },
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Starts collecting metrics (`--metrics`); the first call wins. Returns
/// the registry, for [`serve_metrics`].
pub fn install_metrics() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// The metrics, when collected.
pub fn metrics() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Reports a server event: its log line, and its series when metrics are
/// collected.
pub fn emit(event: Event) {
    // Counted before logged: whoever reads the line sees the count.
    if let Some(metrics) = metrics() {
        metrics.observe(&event);
    }
    log::log(&event);
}
