//! The internals that the fuzz targets in `fuzz/` drive directly: the
//! command parser, the DATA decoder and the BDAT chunk reader. Everything
//! else is fuzzed through the public [`Session`](crate::Session).
//!
//! Compiled only with the `fuzzing` feature (off by default) and hidden
//! from the docs: this is not API, and it may change with any release.

use crate::prelude::*;

pub use crate::address::{ForwardPath, Mailbox, ReversePath};
pub use crate::bdat::ChunkReader;
pub use crate::command::Command;
pub use crate::dot::{Decoded, DotDecoder, Fault};

/// Parses one command line (without its CR LF). A refusal comes back as
/// the reply in wire form, enhanced code included, so that the reply type
/// can stay private.
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, Vec<u8>> {
    crate::command::parse(line).map_err(|reply| {
        let mut wire = Vec::new();
        reply.write_to(&mut wire, true);
        wire
    })
}

/// The reply the session sends for a message that failed with `fault`, in
/// wire form with enhanced code.
pub fn fault_reply(fault: Fault) -> Vec<u8> {
    let mut wire = Vec::new();
    fault.reply().write_to(&mut wire, true);
    wire
}
