//! A reference DATA decoder, written to be obviously right rather than
//! fast: cut the content into lines at CR LF; a line that is a lone dot
//! ends the message; any other line loses one leading dot; then look at the
//! bytes one at a time and stop copying at the first that breaks a rule.
//! The fuzz targets hold the streaming `DotDecoder` to its answers.

use smtp_core::fuzzing::Fault;

/// What the content in front of the decoder amounts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes up to and including the terminating `.` CR LF, if it came.
    pub end: Option<usize>,
    /// The un-stuffed content so far; meaningful only without a fault.
    /// Without an end, a trailing CR is left out (it may begin a CR LF).
    pub content: Vec<u8>,
    /// The first rule broken, in stream order.
    pub fault: Option<Fault>,
}

/// Decodes `input` (what follows the DATA command line) with the limits of
/// `DotDecoder::new`: `max_line_length` counts CR LF, `max_size` counts
/// content after un-stuffing.
pub fn decode(input: &[u8], max_line_length: u32, max_size: u64) -> Decoded {
    let mut reader = Reader {
        max_line: u64::from(max_line_length).saturating_sub(2),
        max_size,
        size: 0,
        decoded: Decoded { end: None, content: Vec::new(), fault: None },
    };
    let mut at = 0;
    loop {
        let rest = &input[at..];
        let Some(len) = rest.windows(2).position(|pair| pair == b"\r\n") else {
            reader.line(rest.strip_suffix(b"\r").unwrap_or(rest));
            return reader.decoded;
        };
        let line = &rest[..len];
        at += len + 2;
        if line == b"." {
            reader.decoded.end = Some(at);
            return reader.decoded;
        }
        reader.line(line);
        reader.content(b"\r\n");
    }
}

struct Reader {
    max_line: u64,
    max_size: u64,
    size: u64,
    decoded: Decoded,
}

impl Reader {
    /// One line without its CR LF, so every CR or LF in it is bare. The
    /// stuffing dot is neither content nor part of the line (RFC 5321
    /// section 4.5.3.1.6: "not counting the leading dot duplicated for
    /// transparency").
    fn line(&mut self, line: &[u8]) {
        let text = line.strip_prefix(b".").unwrap_or(line);
        let mut line_len = 0;
        for &byte in text {
            match byte {
                b'\r' | b'\n' => self.fail(Fault::BareLineEnding),
                0 => self.fail(Fault::Nul),
                _ => {
                    line_len += 1;
                    if line_len > self.max_line {
                        self.fail(Fault::LineTooLong);
                    }
                    self.content(&[byte]);
                }
            }
        }
    }

    fn content(&mut self, bytes: &[u8]) {
        if self.decoded.fault.is_some() {
            return;
        }
        self.size += bytes.len() as u64;
        if self.size > self.max_size {
            self.fail(Fault::TooBig);
            return;
        }
        self.decoded.content.extend_from_slice(bytes);
    }

    fn fail(&mut self, fault: Fault) {
        self.decoded.fault.get_or_insert(fault);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        let d = decode(b"..a\r\nb\r\n.\r\nMAIL", 1000, 100);
        assert_eq!((d.end, d.content.as_slice(), d.fault), (Some(11), &b".a\r\nb\r\n"[..], None));
        assert_eq!(decode(b"a\n.\r\n", 1000, 100).fault, Some(Fault::BareLineEnding));
        assert_eq!(decode(b"abc\r\n.\r\n", 1000, 4).fault, Some(Fault::TooBig));
        assert_eq!(decode(b"abc\r\n.\r\n", 4, 100).fault, Some(Fault::LineTooLong));
        assert_eq!(decode(b"..bc\r\n.\r\n", 5, 100).fault, None);
        assert_eq!(decode(b"..bcd\r\n.\r\n", 5, 100).fault, Some(Fault::LineTooLong));
        assert_eq!(decode(b"ab\r", 1000, 100).content, b"ab");
    }
}
