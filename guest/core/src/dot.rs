//! The DATA content decoder: finds the end of the message and undoes
//! dot-stuffing (RFC 5321 section 4.5.2), streaming, for any split of the
//! input across calls.
//!
//! # End of data and SMTP smuggling
//!
//! Only `<CRLF>.<CRLF>` ends DATA. The CRLF that ended the `DATA` command line
//! counts as the first CRLF, so content that starts with `.<CRLF>` is empty.
//! A line ends only at CR LF: a bare LF or a bare CR never starts a new line,
//! so `\n.\n`, `\n.\r\n`, `\r.\r\n`, `\r\n.\n`, `\r\n.\r\r\n`, `\r\n.\r` and a
//! NUL next to the dot can never end the message, whatever follows them.
//!
//! We **reject** rather than keep such input: a bare CR, a bare LF or a NUL
//! anywhere in the content makes the message fail. The decoder keeps reading
//! (and discarding) until the real `<CRLF>.<CRLF>`, then the session answers
//! `554 5.6.0` and stores nothing. Keeping the bytes as data would be safe
//! for us, but a message holding `\n.\n` or `\0.` would carry the smuggling
//! payload to the next, possibly more lenient, hop (published attacks rely on
//! relays that normalise bare LF or strip NUL). RFC 5321 section 2.3.8 says
//! these bytes must not be sent, and RFC 6152 forbids NUL in 8BITMIME too, so
//! no conforming client is affected. Binary content belongs in BDAT.
//!
//! # Other failures
//!
//! A text line longer than the configured limit (octets including CRLF, not
//! counting a dot duplicated for transparency: RFC 5321 section 4.5.3.1.6) and
//! content larger than the size limit fail the message the same way (552
//! after its end). The first failure in stream order wins; after it the
//! decoder only looks for the end, so a failed message costs no memory.
//!
//! # Speed and memory
//!
//! CR, LF and NUL are found with `memchr3` (SIMD: SSE2/AVX2 natively, simd128 in
//! the component); only they and a dot at the start of a line are looked at
//! one by one. Content is copied in runs that break only at stuffing dots.
//! The decoder holds a few integers of state, never content: output goes to
//! the caller's buffer, which receives at most the input's length plus one
//! byte (a CR that ended the previous call is written when the LF that
//! starts this one arrives).

use crate::prelude::*;
use crate::reply::Reply;

/// Why a message failed while its content was being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A CR not followed by LF, or an LF not preceded by CR.
    BareLineEnding,
    Nul,
    LineTooLong,
    TooBig,
}

impl Fault {
    pub(crate) fn reply(self) -> Reply {
        match self {
            Fault::BareLineEnding => Reply::BARE_LINE_ENDING,
            Fault::Nul => Reply::NUL_IN_MESSAGE,
            Fault::LineTooLong => Reply::MESSAGE_LINE_TOO_LONG,
            Fault::TooBig => Reply::SIZE_EXCEEDED,
        }
    }
}

/// What a call to [`DotDecoder::decode`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// All input consumed, the end is still to come.
    Partial,
    /// The end of data was found; this many input bytes were consumed,
    /// terminator included. The rest belongs to the next command.
    End(usize),
}

/// Where the decoder is within the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// After CR LF: a dot here is special.
    LineStart,
    /// A dot at the start of a line.
    Dot,
    /// `.` CR at the start of a line: LF ends the message.
    DotCr,
    /// Inside a line.
    Text,
    /// A CR inside a line: LF ends the line.
    Cr,
}

/// Streaming decoder of one message's DATA content.
#[derive(Clone, Debug)]
pub struct DotDecoder {
    state: State,
    /// Octets of the current line so far, excluding its CR LF.
    line_len: u64,
    /// Longest line content allowed (the configured limit minus CR LF).
    max_line_len: u64,
    size: u64,
    max_size: u64,
    fault: Option<Fault>,
}

impl DotDecoder {
    /// `max_line_length` counts CR LF but not a stuffing dot (RFC 5321
    /// section 4.5.3.1.6);
    /// `max_size` counts content after dot-unstuffing.
    pub fn new(max_line_length: u32, max_size: u64) -> DotDecoder {
        DotDecoder {
            state: State::LineStart,
            line_len: 0,
            max_line_len: u64::from(max_line_length).saturating_sub(2),
            size: 0,
            max_size,
            fault: None,
        }
    }

    /// The first failure seen, if any. Once set, no more content is written.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Decodes as much of `input` as belongs to the message, appending
    /// content to `out` (nothing once a fault was seen).
    ///
    /// Content is copied in runs: `input[run..i]` is content not yet written.
    /// A run is cut only where a byte must be dropped (a stuffing dot, the
    /// terminator) and at the end of the call, so a body is copied in a few
    /// large pieces rather than line by line. Limits are counted as bytes are
    /// looked at, before they are written: nothing over a limit is written.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Decoded {
        let mut run = 0;
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::LineStart => {
                    if input[i] == b'.' {
                        // Dropped: a stuffing dot, or the terminator's.
                        self.flush(&input[run..i], out);
                        run = i + 1;
                        // RFC 5321 section 4.5.3.1.6 counts a text line "not
                        // counting the leading dot duplicated for
                        // transparency": the dropped dot is not an octet of
                        // the line.
                        self.line_len = 0;
                        self.state = State::Dot;
                        i += 1;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Dot => {
                    if input[i] == b'\r' {
                        // Kept out of the run: with an LF it ends the message,
                        // without one the message fails.
                        run = i + 1;
                        self.state = State::DotCr;
                        i += 1;
                    } else {
                        // Dot-stuffed line: the dot is dropped, the rest is text.
                        self.state = State::Text;
                    }
                }
                State::DotCr => {
                    if input[i] == b'\n' {
                        self.flush(&input[run..i], out);
                        self.state = State::LineStart;
                        return Decoded::End(i + 1);
                    }
                    // `.` CR x: the CR was bare; x is looked at as text.
                    // (`run` is past the CR: nothing of this line is content.)
                    self.fail(Fault::BareLineEnding, &input[run..i], out);
                    self.state = State::Text;
                }
                State::Text => loop {
                    let rest = &input[i..];
                    let span = memchr::memchr3(b'\r', b'\n', 0, rest).unwrap_or(rest.len());
                    if let Some((fault, fits)) = self.count_text(span as u64) {
                        self.fail(fault, &input[run..i + fits], out);
                    }
                    i += span;
                    let Some(&special) = input.get(i) else { break };
                    // The common case, a CR LF followed by a line that does
                    // not start with a dot, stays in this loop: the same steps
                    // as going through Cr and LineStart, one state change less
                    // per line.
                    if special == b'\r'
                        && input.get(i + 1) == Some(&b'\n')
                        && input.get(i + 2).is_some_and(|&b| b != b'.')
                    {
                        if let Some(fault) = self.count_line_end() {
                            self.fail(fault, &input[run..i], out);
                        }
                        self.line_len = 0;
                        i += 2;
                        continue;
                    }
                    match special {
                        b'\r' => self.state = State::Cr,
                        b'\n' => self.fail(Fault::BareLineEnding, &input[run..i], out),
                        _ => self.fail(Fault::Nul, &input[run..i], out),
                    }
                    i += 1;
                    break;
                },
                State::Cr => {
                    // Content before the CR: the CR is the last byte of the
                    // run, or ended the previous call and was held back.
                    let before_cr = &input[run..i.saturating_sub(1).max(run)];
                    if input[i] == b'\n' {
                        if let Some(fault) = self.count_line_end() {
                            self.fail(fault, before_cr, out);
                        }
                        if i == 0 {
                            // The CR ended the previous call and was held back.
                            self.flush(b"\r", out);
                        }
                        self.line_len = 0;
                        self.state = State::LineStart;
                        i += 1;
                    } else {
                        self.fail(Fault::BareLineEnding, before_cr, out);
                        self.state = State::Text;
                    }
                }
            }
        }
        // A CR that ends the call is held back until its LF arrives: until
        // then it is not counted, so it must not be written either.
        let end = if self.state == State::Cr && !input.is_empty() { input.len() - 1 } else { input.len() };
        self.flush(&input[run..end], out);
        Decoded::Partial
    }

    /// Ordinary line content: counts `len` octets against the line and size
    /// limits, in the order a byte-at-a-time reader would hit them. When
    /// they do not all fit, returns the fault and how many of them do (the
    /// caller then fails the message after those).
    fn count_text(&mut self, len: u64) -> Option<(Fault, usize)> {
        if self.fault.is_some() || len == 0 {
            return None;
        }
        let line_room = self.max_line_len.saturating_sub(self.line_len);
        let size_room = self.max_size.saturating_sub(self.size);
        self.line_len += len;
        if len > line_room || len > size_room {
            let fault = if line_room <= size_room { Fault::LineTooLong } else { Fault::TooBig };
            // Less than `len`, which is at most an input's length.
            return Some((fault, line_room.min(size_room) as usize));
        }
        self.size += len;
        None
    }

    /// A CR LF: two octets of content. `Some(TooBig)` when they do not fit.
    fn count_line_end(&mut self) -> Option<Fault> {
        if self.fault.is_some() {
            return None;
        }
        if 2 > self.max_size.saturating_sub(self.size) {
            return Some(Fault::TooBig);
        }
        self.size += 2;
        None
    }

    /// Writes counted content, unless the message has already failed (its
    /// content is then discarded, so it is not worth copying).
    fn flush(&self, content: &[u8], out: &mut Vec<u8>) {
        if self.fault.is_none() {
            out.extend_from_slice(content);
        }
    }

    /// Fails the message at the first fault. `before` is the content up to
    /// the fault that is not written yet: it is written first, so that what
    /// reaches the host is everything before the fault however the input
    /// was split (the session discards it, but the actions stay the same
    /// for every split, as the contract promises).
    fn fail(&mut self, fault: Fault, before: &[u8], out: &mut Vec<u8>) {
        if self.fault.is_none() {
            out.extend_from_slice(before);
            self.fault = Some(fault);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` split into the given pieces; returns the content
    /// written (for a failed message, everything before the fault, the same
    /// for every split), the total consumed when the end was found, and the
    /// fault.
    fn run(pieces: &[&[u8]], max_line: u32, max_size: u64) -> (Vec<u8>, Option<usize>, Option<Fault>) {
        let mut decoder = DotDecoder::new(max_line, max_size);
        let mut out = Vec::new();
        let mut offset = 0;
        for piece in pieces {
            match decoder.decode(piece, &mut out) {
                Decoded::Partial => offset += piece.len(),
                Decoded::End(n) => {
                    return (out, Some(offset + n), decoder.fault());
                }
            }
        }
        (out, None, decoder.fault())
    }

    fn whole(input: &[u8]) -> (Vec<u8>, Option<usize>, Option<Fault>) {
        run(&[input], 1000, 1 << 20)
    }

    /// Every 2-way split, every 3-way split for short inputs, and one byte
    /// per call must all agree with the single call.
    fn assert_split_invariant(input: &[u8], max_line: u32, max_size: u64) {
        let expected = run(&[input], max_line, max_size);
        for a in 0..=input.len() {
            assert_eq!(run(&[&input[..a], &input[a..]], max_line, max_size), expected, "split at {a} of {input:?}");
            if input.len() <= 40 {
                for b in a..=input.len() {
                    let pieces = [&input[..a], &input[a..b], &input[b..]];
                    assert_eq!(run(&pieces, max_line, max_size), expected);
                }
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes, max_line, max_size), expected);
    }

    #[test]
    fn plain_message() {
        let (out, end, fault) = whole(b"Subject: x\r\n\r\nHello\r\n.\r\nQUIT\r\n");
        assert_eq!(out, b"Subject: x\r\n\r\nHello\r\n");
        assert_eq!(end, Some(24));
        assert_eq!(fault, None);
    }

    #[test]
    fn empty_message_ends_at_first_line() {
        assert_eq!(whole(b".\r\n"), (Vec::new(), Some(3), None));
    }

    #[test]
    fn dot_unstuffing() {
        let (out, end, _) = whole(b"..x\r\n..\r\n.\r\n");
        assert_eq!(out, b".x\r\n.\r\n");
        assert_eq!(end, Some(12));
        let (out, _, _) = whole(b"a.b\r\n...\r\n.\r\n");
        assert_eq!(out, b"a.b\r\n..\r\n");
    }

    #[test]
    fn smuggling_sequences_never_end_data_and_fail_the_message() {
        for seq in [
            &b"\n.\n"[..],
            b"\r\n.\n",
            b"\n.\r\n",
            b"\r.\r\n",
            b"\r\n.\r\r\n",
            b"\r\n.\r",
            b"\r\n.\0\r\n",
            b"\r\n\0.\r\n",
            b"\r\n.\r\0\n",
        ] {
            let mut input = b"x".to_vec();
            input.extend_from_slice(seq);
            input.extend_from_slice(b"MAIL FROM:<x@y>\r\n");
            let (_, end, fault) = whole(&input);
            assert_eq!(end, None, "{seq:?} ended DATA");
            assert!(fault.is_some(), "{seq:?} was accepted");
            input.extend_from_slice(b"\r\n.\r\n");
            let (_, end, _) = whole(&input);
            assert_eq!(end, Some(input.len()), "{seq:?}");
        }
    }

    /// Found by the `dot` fuzz target: the session sized its per-call
    /// buffer to the input, one byte short when a CR LF is split.
    #[test]
    fn one_call_writes_at_most_its_input_plus_a_held_back_cr() {
        let mut decoder = DotDecoder::new(1000, 1 << 20);
        let mut out = Vec::new();
        assert_eq!(decoder.decode(b"ab\r", &mut out), Decoded::Partial);
        assert_eq!(out, b"ab");
        out.clear();
        assert_eq!(decoder.decode(b"\n", &mut out), Decoded::Partial);
        assert_eq!(out, b"\r\n");
    }

    #[test]
    fn first_fault_wins() {
        let (_, _, fault) = whole(b"a\nb\0c\r\n.\r\n");
        assert_eq!(fault, Some(Fault::BareLineEnding));
        let (_, _, fault) = whole(b"a\0b\nc\r\n.\r\n");
        assert_eq!(fault, Some(Fault::Nul));
    }

    #[test]
    fn line_limit_counts_crlf() {
        // 1000 octets including CRLF is fine, 1001 is not.
        let mut ok = vec![b'a'; 998];
        ok.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(whole(&ok).2, None);
        let mut long = vec![b'a'; 999];
        long.extend_from_slice(b"\r\n.\r\n");
        let (out, end, fault) = whole(&long);
        // Written: the content up to the limit, the same for every split.
        assert_eq!((out.len(), end, fault), (998, Some(1004), Some(Fault::LineTooLong)));
        // The dot duplicated for transparency does not count (RFC 5321
        // section 4.5.3.1.6): 1001 octets on the wire are a 1000-octet line.
        let mut dotted = vec![b'.'; 999];
        dotted.extend_from_slice(b"\r\n.\r\n");
        let (out, _, fault) = whole(&dotted);
        assert_eq!((out.len(), fault), (1000, None));
        let mut dotted = vec![b'.'; 1000];
        dotted.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(whole(&dotted).2, Some(Fault::LineTooLong));
    }

    #[test]
    fn size_limit_counts_unstuffed_content() {
        assert_eq!(run(&[b"abc\r\n.\r\n"], 1000, 5).2, None);
        assert_eq!(run(&[b"abcd\r\n.\r\n"], 1000, 5).2, Some(Fault::TooBig));
        assert_eq!(run(&[b"..bc\r\n.\r\n"], 1000, 5).2, None);
        let (out, end, fault) = run(&[b"abcdefgh\r\n.\r\nX"], 1000, 3);
        assert_eq!((out, end, fault), (b"abc".to_vec(), Some(13), Some(Fault::TooBig)));
    }

    #[test]
    fn every_split_gives_the_same_result() {
        let bodies: [&[u8]; 8] = [
            b"Subject: hi\r\n\r\n..x\r\n..\r\n.y\r\nlast\r\n.\r\nMAIL FROM:<a@b>\r\n",
            b".\r\n",
            b"\r\n.\r\r\n.\r\n",
            b"a\n.\nb\r\n.\r\n",
            b"\r.\r\n\r\n.\r\n",
            b"line\r\n.\0\r\n.\r\nrest",
            b"..\r\n...\r\n....\r\n.\r\n",
            b"abcdefghij\r\nklmnopqrstuvwxyz\r\n.\r\n",
        ];
        for body in bodies {
            assert_split_invariant(body, 1000, 1 << 20);
            assert_split_invariant(body, 8, 1 << 20);
            for max_size in 0..12 {
                assert_split_invariant(body, 1000, max_size);
                assert_split_invariant(body, 6, max_size);
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Lines without CR, LF or NUL, so the only specials are dots.
        fn body_lines() -> impl Strategy<Value = Vec<Vec<u8>>> {
            let byte = prop_oneof![Just(b'.'), Just(b'a'), Just(b' '), 1u8..=255u8]
                .prop_filter("no line breaks or NUL", |b| !matches!(b, b'\r' | b'\n'));
            proptest::collection::vec(proptest::collection::vec(byte, 0..20), 0..12)
        }

        fn stuff(lines: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
            let mut wire = Vec::new();
            let mut content = Vec::new();
            for line in lines {
                if line.first() == Some(&b'.') {
                    wire.push(b'.');
                }
                wire.extend_from_slice(line);
                wire.extend_from_slice(b"\r\n");
                content.extend_from_slice(line);
                content.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b".\r\n");
            (wire, content)
        }

        proptest! {
            #[test]
            fn stuffing_round_trips(lines in body_lines(), splits in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4)) {
                let (wire, content) = stuff(&lines);
                let mut cuts: Vec<usize> = splits.iter().map(|s| s.index(wire.len() + 1)).collect();
                cuts.sort_unstable();
                let mut pieces = Vec::new();
                let mut start = 0;
                for cut in cuts {
                    pieces.push(&wire[start..cut]);
                    start = cut;
                }
                pieces.push(&wire[start..]);
                let expected_fault = lines.iter().any(|l| l.contains(&0)).then_some(Fault::Nul);
                let (out, end, fault) = run(&pieces, 1000, 1 << 20);
                prop_assert_eq!(end, Some(wire.len()));
                prop_assert_eq!(fault, expected_fault);
                if fault.is_none() {
                    prop_assert_eq!(out, content);
                }
            }

            #[test]
            fn arbitrary_bytes_are_split_invariant(
                input in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(0u8), Just(b'x')], 0..40),
                cut in any::<proptest::sample::Index>(),
                max_line in 2u32..8,
                max_size in 0u64..16,
            ) {
                let cut = cut.index(input.len() + 1);
                prop_assert_eq!(
                    run(&[&input[..cut], &input[cut..]], max_line, max_size),
                    run(&[&input], max_line, max_size)
                );
            }
        }
    }
}
