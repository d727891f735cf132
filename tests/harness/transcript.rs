//! The transcript corpus as the tests see it: smtpcell's parser and runner,
//! and where the files live in the source tree (for the other hosts, which
//! read them from disk).

use std::path::Path;

pub use smtpcell::transcript::*;

/// tests/transcripts in the source tree.
pub fn corpus_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/transcripts"))
}
