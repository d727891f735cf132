//! What a session asks of its host (wit/session.wit, `action`).

use crate::envelope::Envelope;
use crate::prelude::*;
use crate::question::Question;

/// One step for the host to execute, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes (one or more whole replies) to the client.
    Send(Vec<u8>),
    /// Decide this and call `Session::answer`; always the last action of a
    /// call, and the host feeds nothing until it has answered.
    Ask(Question),
    /// A transaction starts producing content: open storage for it.
    MessageBegin(Envelope),
    /// Message content, already dot-unstuffed (DATA) or literal (BDAT).
    MessageData(Vec<u8>),
    /// The message failed: discard everything written for it.
    MessageAbort,
    /// Upgrade the stream to TLS, then call `Session::tls_started`.
    StartTls,
    /// Close the connection after writing what was sent.
    Close,
}
