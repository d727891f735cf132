//! The embedded default policy: what smtpcell 1.0 did.

use super::decide::Policy;

/// Asks nothing and accepts every message (AUTH is not offered, so it is
/// never asked). `cargo run --release` serves with it: a local sink for
/// whatever reaches 127.0.0.1:2525, as before the contract had questions.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Policy for AcceptAll {}
