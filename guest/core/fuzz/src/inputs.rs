//! The byte layouts of the targets' inputs. Each starts with a small
//! header that picks limits and options, so that libFuzzer's mutations
//! reach every configuration; the seed corpus generator encodes the
//! transcripts the same way.

use smtp_core::{Config, Extensions, Verdict};

use crate::host::{End, HOSTNAME, Setup};

/// Bytes in front of a `session` input's client stream:
/// 0. limits: bits 0-1 size (default, 5, 20, 1000); bits 2-3 recipients
///    (100, 2, 0, 1); bits 4-5 line length (1000, 0 to test the floor,
///    2000, 1001); bit 6 STARTTLS offered; bit 7 spurious host calls.
/// 1. extensions switched off, one bit each: PIPELINING, SIZE, 8BITMIME,
///    ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, BINARYMIME, DSN.
/// 2. bit 0 HELP off; bits 1-2 end (silence, timeout, shutdown, silence);
///    bit 3 queue ids a faulty host might send (CR LF, junk, too long).
/// 3. the first four verdicts, two bits each (accepted, 452, 451, 554).
pub const SESSION_HEADER: usize = 4;

pub const SIZES: [u64; 4] = [Config::DEFAULT_MAX_MESSAGE_SIZE, 5, 20, 1000];
pub const RECIPIENTS: [u32; 4] = [100, 2, 0, 1];
pub const LINE_LENGTHS: [u32; 4] = [1000, 0, 2000, 1001];
/// Extension names in the order of header byte 1, then HELP.
pub const EXTENSIONS: [&str; 9] =
    ["pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8", "chunking", "binarymime", "dsn", "help"];

/// Splits a `session` input into its setup and the client's bytes.
pub fn session(data: &[u8]) -> Option<(Setup, &[u8])> {
    let (header, stream) = data.split_first_chunk::<SESSION_HEADER>()?;
    let [limits, off, options, verdicts] = *header;
    let bit = |byte: u8, n: u32| byte & (1 << n) != 0;
    let extensions = Extensions {
        pipelining: !bit(off, 0),
        size: !bit(off, 1),
        eightbitmime: !bit(off, 2),
        enhancedstatuscodes: !bit(off, 3),
        smtputf8: !bit(off, 4),
        chunking: !bit(off, 5),
        binarymime: !bit(off, 6),
        dsn: !bit(off, 7),
        help: !bit(options, 0),
        starttls: bit(limits, 6),
    };
    let config = Config {
        hostname: HOSTNAME.to_string(),
        max_message_size: SIZES[usize::from(limits & 3)],
        max_recipients: RECIPIENTS[usize::from((limits >> 2) & 3)],
        max_line_length: LINE_LENGTHS[usize::from((limits >> 4) & 3)],
        extensions,
    };
    let hostile_ids = bit(options, 3);
    let verdicts = (0..4)
        .map(|n| match (verdicts >> (2 * n)) & 3 {
            0 if hostile_ids => {
                Verdict::Accepted(["Q\r\n250 x", "", "\0\u{e9}", "L".repeat(200).as_str()][n].to_string())
            }
            0 => Verdict::Accepted(format!("Q{}", n + 1)),
            1 => Verdict::InsufficientStorage,
            2 => Verdict::TemporaryFailure,
            _ => Verdict::PermanentFailure,
        })
        .collect();
    let end = [End::Silence, End::Timeout, End::Shutdown, End::Silence][usize::from((options >> 1) & 3)];
    Some((Setup { config, verdicts, spurious_calls: bit(limits, 7), end }, stream))
}

/// Bytes in front of a `dot` input's content:
/// 0. line length: below 128, 3 plus this (3 is the least at which a
///    stuffing dot alone fits; the session never goes below 1000);
///    otherwise 1000.
/// 1-2. size limit, big-endian; 0xFFFF means no limit.
pub const DOT_HEADER: usize = 3;

/// Splits a `dot` input into line length, size limit and content.
pub fn dot(data: &[u8]) -> Option<(u32, u64, &[u8])> {
    let (&[line, high, low], content) = data.split_first_chunk::<DOT_HEADER>()?;
    let max_line_length = if line < 128 { 3 + u32::from(line) } else { 1000 };
    let max_size = match u16::from_be_bytes([high, low]) {
        u16::MAX => u64::MAX,
        size => u64::from(size),
    };
    Some((max_line_length, max_size, content))
}

/// One chunk of a `bdat` input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub bytes: &'a [u8],
    pub last: bool,
}

/// A `bdat` input: byte 0 picks the size limit (default, 0, 16, 100);
/// byte 1 has bit 0 for `BODY=BINARYMIME` on MAIL and bit 1 for a NOOP
/// before every chunk; then chunks, each a length byte, a flags byte
/// (bit 0 LAST) and that many bytes (fewer if the input ends first).
#[derive(Clone, Debug)]
pub struct Bdat<'a> {
    pub max_size: u64,
    pub binarymime: bool,
    pub noop_between: bool,
    pub chunks: Vec<Chunk<'a>>,
}

pub const BDAT_SIZES: [u64; 4] = [Config::DEFAULT_MAX_MESSAGE_SIZE, 0, 16, 100];

pub fn bdat(data: &[u8]) -> Option<Bdat<'_>> {
    let (&[size, options], mut rest) = data.split_first_chunk::<2>()?;
    let mut chunks = Vec::new();
    while let Some((&[len, flags], tail)) = rest.split_first_chunk::<2>() {
        let (bytes, tail) = tail.split_at(usize::from(len).min(tail.len()));
        chunks.push(Chunk { bytes, last: flags & 1 != 0 });
        rest = tail;
    }
    Some(Bdat {
        max_size: BDAT_SIZES[usize::from(size & 3)],
        binarymime: options & 1 != 0,
        noop_between: options & 2 != 0,
        chunks,
    })
}

/// Encodes chunks the way [`bdat`] reads them (for the seed corpus).
pub fn encode_bdat(size: u8, options: u8, chunks: &[Chunk<'_>]) -> Vec<u8> {
    let mut out = vec![size, options];
    for chunk in chunks {
        // Longer chunks become several: the length is one byte.
        let pieces: Vec<&[u8]> = if chunk.bytes.is_empty() { vec![&[]] } else { chunk.bytes.chunks(255).collect() };
        for (i, piece) in pieces.iter().enumerate() {
            let last = chunk.last && i + 1 == pieces.len();
            out.extend_from_slice(&[piece.len() as u8, u8::from(last)]);
            out.extend_from_slice(piece);
        }
    }
    out
}
