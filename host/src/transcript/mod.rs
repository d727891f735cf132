//! The transcript corpus (tests/transcripts): the protocol's source of
//! truth. The tests replay it byte for byte in every driver; the host
//! replays it to validate a component before serving with it.

mod parse;
mod replay;
mod run;

pub use parse::{Handshake, Transcript, TranscriptAnswer, TranscriptConfig, unescape};
pub use replay::{replay_corpus, reply_codes};
pub use run::{ComponentDriver, Driver, FeedPlan, Outcome, check, feed_plans, run};
