//! Command line framing with a hard memory bound.
//!
//! RFC 5321 section 4.5.3.1.4 caps a command line at 512 octets including
//! CR LF, raised for MAIL and RCPT by the enabled extensions (see
//! `limits.rs`). The reader is built with the longest line any verb may
//! have in the session's configuration and never holds more than that
//! minus one octet: without AUTH 1047 bytes (RCPT with DSN), with AUTH
//! offered 12,287 (a SASL response line, RFC 4954 section 4, which also
//! covers MAIL's [`LONGEST_COMMAND_LINE`] of 1180). As soon as a line is
//! known to be longer it reports [`LineEvent::TooLong`] (answered at once
//! with 500 5.5.6) and then discards everything up to the next LF, so a
//! client that never sends a line break costs nothing more. The session
//! checks a whole line against its own verb's limit.
//!
//! A line ends at LF. CR LF is the only correct ending; a line ending in a
//! bare LF is reported as [`LineEvent::BareLf`] and refused without being
//! executed, so a bare-LF client gets an immediate, clear error instead of
//! a silent wait. A stray CR inside a line is left for the command parser,
//! which refuses it as an invalid character.

use crate::prelude::*;

#[cfg(doc)]
use crate::limits::LONGEST_COMMAND_LINE;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineEvent {
    /// A whole line, without its CR LF.
    Line(Vec<u8>),
    /// A line ended by LF alone.
    BareLf,
    /// The current line is longer than the reader's limit.
    TooLong,
}

#[derive(Debug)]
pub(crate) struct LineReader {
    /// The start of an unfinished line (at most `max - 1` bytes).
    partial: Vec<u8>,
    /// Skipping the rest of a line already reported as too long.
    discarding: bool,
    /// The longest line, CR LF included.
    max: usize,
}

impl LineReader {
    /// A reader of lines of at most `max` octets, CR LF included.
    pub fn new(max: usize) -> LineReader {
        LineReader { partial: Vec::new(), discarding: false, max }
    }

    /// Consumes input up to and including the first LF, or all of it.
    /// Returns the number of bytes consumed and the event, if one happened.
    pub fn read(&mut self, input: &[u8]) -> (usize, Option<LineEvent>) {
        match input.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                let consumed = lf + 1;
                if core::mem::take(&mut self.discarding) {
                    return (consumed, None);
                }
                if self.partial.len() + consumed > self.max {
                    self.partial.clear();
                    return (consumed, Some(LineEvent::TooLong));
                }
                let mut line = core::mem::take(&mut self.partial);
                line.extend_from_slice(&input[..lf]);
                if line.pop_if(|b| *b == b'\r').is_some() {
                    (consumed, Some(LineEvent::Line(line)))
                } else {
                    (consumed, Some(LineEvent::BareLf))
                }
            }
            None if self.discarding => (input.len(), None),
            None if self.partial.len() + input.len() >= self.max => {
                self.partial.clear();
                self.discarding = true;
                (input.len(), Some(LineEvent::TooLong))
            }
            None => {
                self.partial.extend_from_slice(input);
                (input.len(), None)
            }
        }
    }

    /// Forgets any unfinished line (after STARTTLS, RFC 3207 section 4.2).
    pub fn clear(&mut self) {
        self.partial.clear();
        self.discarding = false;
    }

    /// Heap bytes held between calls, for the session's memory-bound tests.
    #[cfg(test)]
    pub fn retained(&self) -> usize {
        self.partial.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_COMMAND_LINE: usize = crate::limits::COMMAND_LINE;

    fn events(pieces: &[&[u8]]) -> Vec<LineEvent> {
        let mut reader = LineReader::new(MAX_COMMAND_LINE);
        let mut out = Vec::new();
        for piece in pieces {
            let mut rest = *piece;
            while !rest.is_empty() {
                let (n, event) = reader.read(rest);
                rest = &rest[n..];
                out.extend(event);
            }
        }
        out
    }

    fn all_splits_agree(input: &[u8]) -> Vec<LineEvent> {
        let expected = events(&[input]);
        for cut in 0..=input.len() {
            assert_eq!(events(&[&input[..cut], &input[cut..]]), expected, "cut {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(events(&bytes), expected);
        expected
    }

    #[test]
    fn lines_and_bare_lf() {
        assert_eq!(
            all_splits_agree(b"NOOP\r\nRSET\nQUIT\r\n"),
            vec![LineEvent::Line(b"NOOP".to_vec()), LineEvent::BareLf, LineEvent::Line(b"QUIT".to_vec())]
        );
    }

    #[test]
    fn limit_is_512_octets_with_crlf() {
        let mut ok = vec![b'x'; 510];
        ok.extend_from_slice(b"\r\n");
        assert_eq!(all_splits_agree(&ok), vec![LineEvent::Line(vec![b'x'; 510])]);
        let mut long = vec![b'x'; 511];
        long.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(all_splits_agree(&long), vec![LineEvent::TooLong, LineEvent::Line(b"NOOP".to_vec())]);
    }

    #[test]
    fn endless_line_is_reported_once_and_not_kept() {
        let mut reader = LineReader::new(MAX_COMMAND_LINE);
        assert_eq!(reader.read(&[b'a'; 600]), (600, Some(LineEvent::TooLong)));
        for _ in 0..100 {
            assert_eq!(reader.read(&[b'a'; 1000]), (1000, None));
        }
        assert!(reader.partial.capacity() < MAX_COMMAND_LINE);
        assert_eq!(reader.read(b"a\r\nQUIT\r\n"), (3, None));
    }
}
