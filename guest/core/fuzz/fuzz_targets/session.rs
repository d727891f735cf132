//! A whole session: a header picks limits, extensions, the questions
//! asked, AUTH, the host's answers and how the input ends
//! (`inputs::session`); the rest is the client's bytes, fed whole, one
//! byte per call and in random pieces of two sizes. The checking host
//! (`src/host.rs`) answers every question at once and panics on any
//! broken contract rule on the way. Then:
//! - every way of feeding gives the same replies, questions, messages and
//!   close (reads cut after STARTTLS, see below): input that arrives
//!   behind a question waits for its answer, so a pipelining client's
//!   one big write and a client that waits for each reply must look alike;
//! - from the one-byte run, where every action's input position is exact:
//!   each message began right after a DATA line (with a 354) or a BDAT
//!   line, and each DATA message ended where, and with the content that,
//!   the reference decoder finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_core_fuzz::{cuts, host, inputs};

fuzz_target!(|data: &[u8]| {
    let Some((setup, input)) = inputs::session(data) else {
        return;
    };
    let (expected, timeline) = host::run(&setup, &cuts::bytes(input));
    host::check_positions(&setup, input, &expected, &timeline);
    let seed = cuts::seed_of(data);
    for pieces in [vec![input], cuts::pieces(input, seed, 7), cuts::pieces(input, seed, 600)] {
        // Plaintext pipelined behind STARTTLS in the same read is dropped
        // (CVE-2011-0411), so how much is dropped depends on the split: cut
        // where a client that waits for the 220 stops, as the one-byte run
        // does. The core's own tests cover the dropping.
        let pieces = cuts::cut_at(pieces, &timeline.tls);
        let (observed, _) = host::run(&setup, &pieces);
        assert_eq!(observed, expected, "a different split gave a different session");
    }
});
