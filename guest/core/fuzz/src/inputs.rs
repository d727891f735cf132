//! The byte layouts of the targets' inputs. Each starts with a small
//! header that picks limits and options, so that libFuzzer's mutations
//! reach every configuration; the seed corpus generator encodes the
//! transcripts the same way.

use smtp_core::{Answer, AuthMechanisms, Config, Extensions, Questions, Reason, Refusal};

use crate::host::{End, HOSTNAME, Setup};

/// Bytes in front of a `session` input's client stream, then the answers:
/// 0. limits: bits 0-1 size (default, 5, 20, 1000); bits 2-3 recipients
///    (100, 2, 0, 1); bits 4-5 line length (1000, 0 to test the floor,
///    2000, 1001); bit 6 STARTTLS offered; bit 7 spurious host calls.
/// 1. extensions switched off, one bit each: PIPELINING, SIZE, 8BITMIME,
///    ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, BINARYMIME, DSN.
/// 2. bit 0 HELP off; bits 1-2 end (silence, timeout, shutdown, silence);
///    bit 3 implicit TLS (`tls_started` before `greeting`, RFC 8314);
///    bits 4-7 the questions asked: connect, HELO, MAIL, RCPT.
/// 3. bit 0 AUTH PLAIN offered, bit 1 AUTH LOGIN, bit 2 AUTH without TLS;
///    bits 3-6 how many answer bytes follow the header (see [`answer`]);
///    bit 7 TLS required (RFC 3207 section 4).
/// 4. bits 0-1 failed AUTH commands before the session ends (3, the
///    default; 0, no limit; 1; 2); the other bits are ignored.
pub const SESSION_HEADER: usize = 5;

pub const SIZES: [u64; 4] = [Config::DEFAULT_MAX_MESSAGE_SIZE, 5, 20, 1000];
pub const RECIPIENTS: [u32; 4] = [100, 2, 0, 1];
pub const LINE_LENGTHS: [u32; 4] = [1000, 0, 2000, 1001];
pub const AUTH_FAILURES: [u32; 4] = [Config::DEFAULT_MAX_AUTH_FAILURES, 0, 1, 2];
/// Extension names in the order of header byte 1, then HELP: smtp-core's
/// own list without STARTTLS (which bit 6 of byte 0 switches).
pub const EXTENSIONS: &[&str] = Extensions::NAMES.split_last().expect("a list of names").1;
/// Most answer bytes a header can announce (four bits).
pub const MAX_ANSWERS: usize = 15;

/// Texts a careless or hostile host might put in an answer, which the
/// session must never pass on as they are: none (0), a CR LF that would
/// inject a reply (1), nothing printable at all: NUL, non-ASCII, spaces to
/// trim (2), and more than a queue id, an identity or a refusal text may
/// be (3). Only the low two bits of `n` count.
pub fn text(n: u8) -> Option<String> {
    match n & 3 {
        0 => None,
        1 => Some("Q\r\n250 x".to_string()),
        2 => Some(" \0\u{e9}\u{2603} ".to_string()),
        _ => Some("L".repeat(300)),
    }
}

/// Splits a `session` input into its setup and the client's bytes.
pub fn session(data: &[u8]) -> Option<(Setup, &[u8])> {
    let (header, rest) = data.split_first_chunk::<SESSION_HEADER>()?;
    let [limits, off, options, auth, failures] = *header;
    let (answers, stream) = rest.split_at(usize::from((auth >> 3) & 15).min(rest.len()));
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
        questions: Questions {
            connect: bit(options, 4),
            helo: bit(options, 5),
            mail: bit(options, 6),
            rcpt: bit(options, 7),
        },
        auth_mechanisms: AuthMechanisms { plain: bit(auth, 0), login: bit(auth, 1) },
        auth_without_tls: bit(auth, 2),
        require_tls: bit(auth, 7),
        max_auth_failures: AUTH_FAILURES[usize::from(failures & 3)],
    };
    let setup = Setup {
        config,
        answers: answers.iter().map(|&byte| answer(byte)).collect(),
        implicit_tls: bit(options, 3),
        spurious_calls: bit(limits, 7),
        end: [End::Silence, End::Timeout, End::Shutdown, End::Silence][usize::from((options >> 1) & 3)],
    };
    Some((setup, stream))
}

/// One answer byte: bit 0 refuse. Accept: bits 1-2 the text ([`text`]).
/// Refuse: bits 1-4 the reason (`Reason::ALL`, modulo 12; 12 to 15 also
/// disconnect), bit 5 permanent, bits 6-7 the host's text ([`text`]).
pub fn answer(byte: u8) -> Answer {
    if byte & 1 == 0 {
        return Answer::Accept(text(byte >> 1));
    }
    let reason = usize::from((byte >> 1) & 15);
    Answer::Refuse(Refusal {
        reason: Reason::ALL[reason % Reason::ALL.len()],
        permanent: byte & (1 << 5) != 0,
        text: text(byte >> 6),
        disconnect: reason >= Reason::ALL.len(),
    })
}

/// The byte [`answer`] reads as `answer` (for the seed corpus), with the
/// nearest text it can express.
pub fn encode_answer(answer: &Answer) -> u8 {
    let text = |text: &Option<String>| match text.as_deref() {
        None => 0,
        Some(text) if text.len() > 200 => 3,
        Some(text) if text.bytes().any(|b| (b' '..=b'~').contains(&b)) => 1,
        Some(_) => 2,
    };
    match answer {
        Answer::Accept(given) => text(given) << 1,
        Answer::Refuse(refusal) => {
            let mut reason = Reason::ALL.iter().position(|&r| r == refusal.reason).expect("a reason") as u8;
            if refusal.disconnect {
                // Only the first four reasons can disconnect in this layout.
                reason = Reason::ALL.len() as u8 + reason % 4;
            }
            1 | reason << 1 | u8::from(refusal.permanent) << 5 | text(&refusal.text) << 6
        }
    }
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
