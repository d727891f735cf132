//! Replaying the corpus against a candidate component before it serves.
//!
//! A new version may reword reply texts (v2 may greet differently), so the
//! replay compares what a client and the mailbox depend on: the sequence of
//! reply codes, and every stored message's bytes. The tests hold the built-in
//! component to the exact bytes.

use std::sync::Arc;

use anyhow::{Result, bail};

use super::parse::Transcript;
use super::run::{ComponentDriver, run};
use crate::runtime::LoadedComponent;

/// The three-digit code of every reply line in `output`.
pub fn reply_codes(output: &[u8]) -> Vec<u16> {
    output
        .split(|&b| b == b'\n')
        .filter(|line| line.len() >= 3)
        .map(|line| line[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d.wrapping_sub(b'0')).min(9)))
        .collect()
}

/// Runs every transcript once (input fed line by line) on fresh instances of
/// `component`; fails on the first transcript whose reply codes or stored
/// messages differ from the corpus.
pub async fn replay_corpus(component: &Arc<LoadedComponent>) -> Result<usize> {
    let corpus = Transcript::corpus()?;
    for t in &corpus {
        let mut driver = ComponentDriver::new(component, &t.config).await?;
        let outcome =
            run(&mut driver, t, &t.segments()).await.map_err(|e| e.context(format!("transcript {}", t.name)))?;
        let (want, got) = (reply_codes(&t.expected), reply_codes(&outcome.output));
        if want != got {
            bail!("transcript {}: reply codes {got:?}, expected {want:?}", t.name);
        }
        if outcome.messages != t.messages {
            bail!("transcript {}: stored messages differ from the corpus", t.name);
        }
    }
    Ok(corpus.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_single_and_multi_line_replies() {
        assert_eq!(reply_codes(b"220 hi\r\n250-a\r\n250 b\r\n354 go\r\n"), [220, 250, 250, 354]);
        assert_eq!(reply_codes(b""), Vec::<u16>::new());
    }
}
