//! The session's phases as types (rustls style): each phase owns exactly
//! the data that is meaningful in it, and a transition consumes the old
//! phase to build the new one, so a transaction cannot outlive a RSET and a
//! message cannot be read without the HELO name it will be stored under.
//!
//! ```text
//! ExpectHello --HELO/EHLO--> ExpectMail --MAIL--> ExpectRcpt --RCPT--> ExpectContent
//!      ^                         ^  ^                                  |        |
//!      |                         |  +--- final reply -- AwaitVerdict <-+- DATA/BDAT
//!  tls_started            AwaitTls <--STARTTLS (from ExpectHello/ExpectMail)
//! ```

use crate::bdat::ChunkReader;
use crate::dot::DotDecoder;
use crate::envelope::Envelope;
use crate::prelude::*;
use crate::reply::Reply;

/// What the client said in HELO or EHLO.
#[derive(Clone, Debug)]
pub(crate) struct Hello {
    pub name: String,
    /// EHLO rather than HELO (RFC 3848: ESMTP rather than SMTP).
    pub extended: bool,
}

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
    /// `MessageEnd` was emitted: input is stashed until `complete`.
    AwaitVerdict(Hello),
    /// STARTTLS accepted: nothing more is read until `tls_started`.
    AwaitTls,
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
