//! The DATA decoder (`dot.rs`) on arbitrary content and limits, fed whole,
//! one byte per call and in random pieces. Each way must agree with the
//! reference decoder (`src/reference.rs`) on where the message ends, on
//! its un-stuffed content and on the first fault; no call may write more
//! content than it was given, plus one held-back CR.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_core::fuzzing::{Decoded, DotDecoder, Fault};
use smtp_core_fuzz::{cuts, inputs, reference};

fuzz_target!(|data: &[u8]| {
    let Some((max_line_length, max_size, content)) = inputs::dot(data) else {
        return;
    };
    let expected = reference::decode(content, max_line_length, max_size);
    let seed = cuts::seed_of(data);
    for pieces in [vec![content], cuts::bytes(content), cuts::pieces(content, seed, 17)] {
        let (end, out, fault) = decode(&pieces, max_line_length, max_size);
        assert_eq!(end, expected.end, "end of data");
        assert_eq!(fault, expected.fault, "first fault");
        if fault.is_none() {
            assert_eq!(out, expected.content, "content");
        }
    }
});

/// Feeds `pieces` until the end of data; returns where it ended (total
/// bytes consumed), the content and the fault.
fn decode(pieces: &[&[u8]], max_line_length: u32, max_size: u64) -> (Option<usize>, Vec<u8>, Option<Fault>) {
    let mut decoder = DotDecoder::new(max_line_length, max_size);
    let mut out = Vec::new();
    let mut fed = 0;
    for piece in pieces {
        let before = out.len();
        let decoded = decoder.decode(piece, &mut out);
        // A CR held back from the previous call comes out with its LF.
        assert!(out.len() - before <= piece.len() + 1, "more content than input");
        match decoded {
            Decoded::Partial => fed += piece.len(),
            Decoded::End(consumed) => {
                assert!((1..=piece.len()).contains(&consumed), "End({consumed}) of a {}-byte piece", piece.len());
                return (Some(fed + consumed), out, decoder.fault());
            }
        }
    }
    (None, out, decoder.fault())
}
