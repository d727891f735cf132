//! What a session asks of its host, and what the host answers.

use crate::envelope::Envelope;
use crate::prelude::*;

/// One step for the host to execute, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes (one or more whole replies) to the client.
    Send(Vec<u8>),
    /// A transaction starts producing content: open storage for it.
    MessageBegin(Envelope),
    /// Message content, already dot-unstuffed (DATA) or literal (BDAT).
    MessageData(Vec<u8>),
    /// Content complete: make it durable, then call `Session::complete`.
    MessageEnd,
    /// The message failed: discard everything written for it.
    MessageAbort,
    /// Upgrade the stream to TLS, then call `Session::tls_started`.
    StartTls,
    /// Close the connection after writing what was sent.
    Close,
}

/// The host's answer to `Action::MessageEnd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Durable; the queue id to report ([A-Za-z0-9._-], 1 to 64 chars).
    Accepted(String),
    /// Out of space: 452.
    InsufficientStorage,
    /// Any other transient failure: 451.
    TemporaryFailure,
    /// Refused for good: 554.
    PermanentFailure,
}
