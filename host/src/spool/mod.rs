//! Where accepted mail goes. The connection driver only sees [`Spool`] and
//! [`Transaction`]; [`Maildir`] (one Maildir) is the embedded default, and
//! [`Router`] stores each recipient's copy in the inbox Maildir, a local
//! user's own Maildir or the outgoing Maildir, as its [`Destination`]s say;
//! [`PostgresSpool`] stores into a PostgreSQL database several hosts share.

mod commit;
mod content;
mod destination;
mod dirs;
mod mailboxes;
mod maildir;
mod names;
mod postgres;
mod recovery;
mod router;
mod trace;
mod transaction;

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

pub use content::HELD_CONTENT_MAX;
pub use destination::{BadMailbox, Destination, Mailbox};
pub use maildir::Maildir;
pub use postgres::{Exported, PostgresSpool, export_to_maildir};
pub use router::{Router, Routes};
pub use trace::{rfc5322_date, trace_headers};

/// One accepted recipient with its RFC 3461 parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecipient {
    pub address: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
    /// Where its copies go (one for a mailbox, several for an alias);
    /// `[Inbox]` on a server without a recipients table.
    pub destinations: Vec<Destination>,
}

/// What the spool records about a message besides its content. Every string
/// has been checked by the host to be free of CR, LF and NUL, so it can be
/// written into a header without injecting one.
#[derive(Clone, Debug)]
pub struct MessageMeta {
    pub server_hostname: String,
    pub client_ip: IpAddr,
    pub helo: String,
    /// Without angle brackets; empty for `<>`.
    pub reverse_path: String,
    pub recipients: Vec<StoredRecipient>,
    /// RFC 3848 protocol name.
    pub protocol: String,
    /// `7BIT`, `8BITMIME` or `BINARYMIME`.
    pub body: &'static str,
    pub smtputf8: bool,
    pub dsn_return: Option<&'static str>,
    pub dsn_envid: Option<String>,
    pub received_at: SystemTime,
    /// The component version that handled the session (`name@version`).
    pub handled_by: String,
    /// The TLS session the message came over: version and IANA cipher
    /// suite name.
    pub tls: Option<smtp_core::TlsInfo>,
    /// The identity the client authenticated as, when the operator has it
    /// written into the trace (`--received-auth`).
    pub authenticated: Option<String>,
}

/// The outcome of [`Transaction::commit`]: `Ok` once the message is durable.
pub type CommitFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A storage backend.
pub trait Spool: Send + Sync + 'static {
    /// Opens storage for one message. The header block ([`trace_headers`])
    /// is written at [`Transaction::commit`], when all of it is known.
    fn begin(&self, meta: &MessageMeta) -> io::Result<Box<dyn Transaction>>;
}

/// One message being written. Dropping it without [`Transaction::commit`]
/// discards everything written (invariant 2: nothing unacknowledged is ever
/// visible).
pub trait Transaction: Send {
    /// The id reported to the client when the message is accepted.
    fn queue_id(&self) -> &str;
    /// Appends message content.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Writes the header block and makes the message durable and visible.
    /// The future resolves only once the message survives a crash (it never
    /// blocks the executor). When `cancelled` is set before the message
    /// becomes visible (the host gave up waiting and told the client 451),
    /// nothing is stored.
    ///
    /// `end_headers`: header fields decided once the content is complete
    /// (Authentication-Results, Received-SPF), each ending in CRLF, already
    /// checked by the caller; written above our Received field (see
    /// [`trace_headers`]). Empty for none.
    ///
    /// Errors keep their kind: a full disk is [`io::ErrorKind::StorageFull`]
    /// (see [`is_storage_full`]).
    fn commit(self: Box<Self>, end_headers: Vec<u8>, cancelled: Arc<AtomicBool>) -> CommitFuture;
}

/// Whether an I/O error means "out of space" (reported as 452) rather than a
/// generic temporary failure (451).
pub fn is_storage_full(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}
