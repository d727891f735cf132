//! The session's phases as types (rustls style): each phase owns exactly
//! the data that is meaningful in it, and a transition consumes the old
//! phase to build the new one, so a transaction cannot outlive a RSET and a
//! message cannot be read without the HELO name it will be stored under.
//!
//! ```text
//! ExpectHello --HELO/EHLO--> ExpectMail --MAIL--> ExpectRcpt --RCPT--> ExpectContent
//!      ^                       ^  ^  |                                    |        |
//!      |                       |  |  +--AUTH--> AuthResponse              |   DATA/BDAT
//!  tls_started         AwaitTls   +--- final reply ---- Asking(MessageEnd) <--+
//! ```
//!
//! Every step the host decides goes through `Asking(Pending)`: the pending
//! step keeps what the session needs to go on once the host answers.

use crate::auth::Exchange;
use crate::bdat::ChunkReader;
use crate::dot::DotDecoder;
use crate::envelope::{Envelope, Recipient};
use crate::prelude::*;
use crate::question::Hello;
use crate::refusal::Step;
use crate::reply::Reply;

/// A mail transaction being built (RFC 5321 section 3.3).
#[derive(Clone, Debug)]
pub(crate) struct Transaction {
    pub hello: Hello,
    pub envelope: Envelope,
}

/// A BDAT transaction whose content has begun (RFC 3030).
#[derive(Clone, Debug)]
pub(crate) struct Chunking {
    pub hello: Hello,
    /// Octets received in earlier chunks, for the size limit.
    pub received: u64,
}

/// A step waiting for the host's answer, with what the session resumes
/// from: accepted, the step completes; refused, the session goes back to
/// where it was before the command.
#[derive(Debug)]
pub(crate) enum Pending {
    /// Before the greeting.
    Connect,
    /// HELO/EHLO: refused, the session has no greeting, even if it had one.
    Hello(Hello),
    /// MAIL: the transaction it would start.
    Mail(Transaction),
    /// RCPT: the transaction and the recipient it would gain.
    Rcpt(Transaction, Recipient),
    /// AUTH: the greeting to return to, and the identity the client asked
    /// to act as.
    Auth(Hello, String),
    /// The message is complete: the greeting to return to.
    MessageEnd(Hello),
}

impl Pending {
    pub fn step(&self) -> Step {
        match self {
            Pending::Connect => Step::Connect,
            Pending::Hello(_) => Step::Helo,
            Pending::Mail(_) => Step::Mail,
            Pending::Rcpt(..) => Step::Rcpt,
            Pending::Auth(..) => Step::Auth,
            Pending::MessageEnd(_) => Step::MessageEnd,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Phase {
    /// Connected, or TLS just started: HELO/EHLO first.
    ExpectHello,
    /// Greeted, no transaction.
    ExpectMail(Hello),
    /// MAIL accepted, no recipient yet.
    ExpectRcpt(Transaction),
    /// At least one recipient: more RCPT, DATA or BDAT.
    ExpectContent(Transaction),
    /// After DATA's 354: content up to `<CRLF>.<CRLF>`.
    ReadingData { hello: Hello, decoder: DotDecoder },
    /// Between BDAT chunks of a message already begun.
    ExpectChunk(Chunking),
    /// Inside a BDAT chunk.
    ReadingChunk { chunking: Chunking, reader: ChunkReader, size: u64, last: bool },
    /// Discarding the chunk of a refused BDAT; then `reply`, then `then`.
    /// `abort`: the chunk failed a message already begun, which is aborted
    /// once the chunk is over (the client is still sending its content).
    SkippingChunk { reader: ChunkReader, reply: Reply, then: Box<Phase>, abort: bool },
    /// AUTH sent a 334: the next line is a SASL response, not a command.
    AuthResponse { hello: Hello, exchange: Exchange },
    /// A question is out: input is stashed until `answer`.
    Asking(Pending),
    /// STARTTLS accepted: nothing more is read until `tls_started`.
    AwaitTls,
    /// The host refused the connection for good (554 greeting): only QUIT
    /// is served (RFC 5321 section 3.1).
    Refused,
    /// QUIT, timeout or shutdown: nothing more happens.
    Closed,
}

impl Phase {
    /// A message has begun (`MessageBegin` sent) and was neither ended nor
    /// aborted: leaving the phase needs a `MessageAbort`. A message that
    /// failed stays open until the client's content is over (the end of
    /// DATA, the end of the failed chunk), so that the host's view of
    /// "the client is sending content" matches the client's.
    pub fn message_open(&self) -> bool {
        match self {
            Phase::ReadingData { .. } | Phase::ExpectChunk(_) | Phase::ReadingChunk { .. } => true,
            Phase::SkippingChunk { abort, .. } => *abort,
            _ => false,
        }
    }
}
