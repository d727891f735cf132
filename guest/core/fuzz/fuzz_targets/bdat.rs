//! BDAT (RFC 3030): a transaction of chunks with arbitrary content and
//! sizes under a size limit (`inputs::bdat`), pipelined in one stream after
//! EHLO, MAIL and RCPT, fed whole, one byte per call and in random pieces,
//! through the checking host (`src/host.rs`). Against a model:
//! - each chunk gets exactly the predicted reply (250 per chunk, the
//!   LAST one's once the host accepts the message, 552 once the limit is
//!   passed, 503 after the transaction is over, and 421 after the
//!   session's 20th error), so chunk bytes are never read as commands;
//! - the stored message is the chunks' bytes concatenated, taken
//!   literally; a transaction over the limit stores nothing.
//!
//! The chunk reader itself must take exactly a chunk's bytes from any
//! split of what follows the BDAT line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_core::fuzzing::ChunkReader;
use smtp_core::{Config, MAX_PROTOCOL_ERRORS};
use smtp_core_fuzz::host::{self, End, Fate, HOSTNAME, Setup};
use smtp_core_fuzz::inputs::{self, Bdat};
use smtp_core_fuzz::{cuts, replies};

fuzz_target!(|data: &[u8]| {
    let Some(bdat) = inputs::bdat(data) else {
        return;
    };
    let model = Model::of(&bdat);
    let input = &model.wire[..];
    let setup = Setup {
        config: Config { hostname: HOSTNAME.to_string(), max_message_size: bdat.max_size, ..Config::default() },
        // Every question (only message-end here) accepted.
        answers: Vec::new(),
        implicit_tls: false,
        spurious_calls: false,
        end: End::Silence,
    };
    let seed = cuts::seed_of(data);
    check_chunk_reader(&bdat, &model, seed);
    for pieces in [vec![input], cuts::bytes(input), cuts::pieces(input, seed, 23)] {
        let (observed, timeline) = host::run(&setup, &pieces);
        let rules = replies::Rules { enhanced_codes: true, hostname: HOSTNAME };
        let statuses: Vec<String> = timeline
            .sends
            .iter()
            .flat_map(|(_, bytes)| replies::check(bytes, rules))
            .skip(PRELUDE_REPLIES)
            .map(|reply| reply.status())
            .collect();
        assert_eq!(statuses, model.replies, "replies to the chunks");
        let stored: Vec<&[u8]> =
            observed.messages.iter().filter(|m| m.fate == Fate::Stored).map(|m| m.content.as_slice()).collect();
        assert_eq!(stored, model.stored.iter().map(Vec::as_slice).collect::<Vec<_>>(), "stored messages");
    }
});

/// Greeting, EHLO, MAIL and RCPT.
const PRELUDE_REPLIES: usize = 4;

/// The client's side and what a correct server makes of it.
struct Model {
    wire: Vec<u8>,
    /// Where each chunk's bytes start in `wire`.
    chunk_starts: Vec<usize>,
    /// The status of each reply after the prelude's.
    replies: Vec<String>,
    /// The content of the messages that should be stored.
    stored: Vec<Vec<u8>>,
}

impl Model {
    fn of(bdat: &Bdat<'_>) -> Model {
        let body = if bdat.binarymime { " BODY=BINARYMIME" } else { "" };
        let wire = format!("EHLO c\r\nMAIL FROM:<a@b>{body}\r\nRCPT TO:<c@d>\r\n").into_bytes();
        let mut model = Model { wire, chunk_starts: Vec::new(), replies: Vec::new(), stored: Vec::new() };
        let mut received: Vec<u8> = Vec::new();
        let mut over = false;
        let mut errors = 0;
        for chunk in &bdat.chunks {
            if bdat.noop_between {
                model.wire.extend_from_slice(b"NOOP\r\n");
                model.replies.push("250 2.0.0".to_string());
            }
            let last = if chunk.last { " LAST" } else { "" };
            model.wire.extend_from_slice(format!("BDAT {}{last}\r\n", chunk.bytes.len()).as_bytes());
            model.chunk_starts.push(model.wire.len());
            model.wire.extend_from_slice(chunk.bytes);
            let reply = if over {
                // The transaction failed or ended: a BDAT now needs MAIL first.
                "503 5.5.1"
            } else if (received.len() + chunk.bytes.len()) as u64 > bdat.max_size {
                over = true;
                "552 5.3.4"
            } else {
                received.extend_from_slice(chunk.bytes);
                if chunk.last {
                    over = true;
                    model.stored.push(std::mem::take(&mut received));
                }
                "250 2.0.0"
            };
            model.replies.push(reply.to_string());
            if reply.starts_with("503") {
                errors += 1;
                if errors == MAX_PROTOCOL_ERRORS {
                    // Too many errors: the session says so and closes.
                    model.replies.push("421 4.7.0".to_string());
                    break;
                }
            }
        }
        model
    }
}

/// Each chunk's bytes are exactly the `size` octets after its BDAT line,
/// whatever the split of the stream from there. (The stream is looked at a
/// little past the chunk only: all of it would make this quadratic.)
fn check_chunk_reader(bdat: &Bdat<'_>, model: &Model, seed: u64) {
    for (chunk, &start) in bdat.chunks.iter().zip(&model.chunk_starts) {
        let mut reader = ChunkReader::new(chunk.bytes.len() as u64);
        let mut taken = Vec::new();
        let stream = &model.wire[start..(start + chunk.bytes.len() + 32).min(model.wire.len())];
        for piece in cuts::pieces(stream, seed ^ start as u64, 11) {
            let bytes = reader.take(piece);
            assert!(bytes.len() == piece.len() || reader.is_done(), "stopped short of a piece");
            taken.extend_from_slice(bytes);
        }
        assert!(reader.is_done(), "chunk not complete");
        assert_eq!(taken, chunk.bytes, "chunk bytes");
    }
}
