//! BDAT chunk reading (RFC 3030).
//!
//! A chunk is exactly `size` octets following the BDAT command line, taken
//! literally: no dot-stuffing, no line structure, any byte allowed. The
//! reader only counts; the session decides where the bytes go.
//!
//! # Failure semantics
//!
//! - Whenever a BDAT command line parses (it has a valid size), its chunk is
//!   read, even when the command is refused (no MAIL, no RCPT, over the
//!   size limit), so the command stream stays in step with a pipelining
//!   client; the reply comes after the chunk.
//! - A chunk that would take the message past the size limit fails the
//!   whole transaction: the chunk is discarded, the message is aborted
//!   (`MessageAbort`, nothing stored), the reply is 552 5.3.4 and the session
//!   is back to "greeted": the client must start again with MAIL. Chunks it
//!   pipelined after the failed one get 503 (need MAIL) and are discarded.
//! - A size is any string of digits: one too large for a `u64` saturates
//!   at `u64::MAX`, is refused as too large (552 5.3.4, like any chunk over
//!   the limit) and its chunk is skipped, which in practice lasts until the
//!   client gives up or times out. That is the price of the rule above: the
//!   chunk's bytes are never read as commands.
//! - A chunk that fails a message already begun aborts it when the chunk is
//!   over (the client is sending content until then), just before the 552.
//! - A BDAT whose size is not digits gets 501 and is treated as a command
//!   line only: its length is unknown, so nothing can be skipped. The same
//!   holds for BDAT while CHUNKING is disabled (502): a client that uses an
//!   extension that was not advertised gets the command reading it asked for.
//!
//! Memory: a chunk is never buffered; its bytes leave as message data in
//! the same call that delivered them.

/// Counts down the octets of one chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkReader {
    remaining: u64,
}

impl ChunkReader {
    pub fn new(size: u64) -> ChunkReader {
        ChunkReader { remaining: size }
    }

    /// Takes the part of `input` that belongs to the chunk.
    pub fn take<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        let n = usize::try_from(self.remaining).map_or(input.len(), |r| r.min(input.len()));
        self.remaining -= n as u64;
        &input[..n]
    }

    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_exactly_the_chunk() {
        let mut reader = ChunkReader::new(5);
        assert_eq!(reader.take(b"ab"), b"ab");
        assert!(!reader.is_done());
        assert_eq!(reader.take(b"c\r\n.\r\nBDAT"), b"c\r\n");
        assert!(reader.is_done());
        assert_eq!(reader.take(b"more"), b"");
    }

    #[test]
    fn empty_chunk_is_done_at_once() {
        assert!(ChunkReader::new(0).is_done());
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let mut reader = ChunkReader::new(u64::MAX);
        assert_eq!(reader.take(b"abc"), b"abc");
        assert!(!reader.is_done());
    }
}
