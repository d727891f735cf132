//! The corpus in tests/transcripts, run through the core natively and
//! through the built component in the host's runtime, fed in several ways:
//! both must produce exactly the expected bytes and the same events, and
//! every call must keep the contract's reply bound.

use anyhow::{Result, ensure};
use smtpcell_tests::driver::{CoreDriver, embedded_component};
use smtpcell_tests::transcript::Transcript;
use smtpcell_tests::transcript::{ComponentDriver, Driver, Event, TranscriptVerdict, check, feed_plans, run};

/// A driver that checks the reply bound of `wit/session.wit` on each call:
/// `send` octets at most `smtp_core::max_reply_octets(input)`, where a
/// `complete` is charged with the input of the `feed` that ended the
/// message (the input kept behind it is never more).
struct Bounded<D> {
    inner: D,
    last_feed: usize,
}

impl<D> Bounded<D> {
    fn new(inner: D) -> Self {
        Bounded { inner, last_feed: 0 }
    }
}

fn within_bound(call: &str, input: usize, events: Vec<Event>) -> Result<Vec<Event>> {
    let sent: usize = events.iter().map(|e| if let Event::Send(bytes) = e { bytes.len() } else { 0 }).sum();
    let bound = smtp_core::max_reply_octets(input);
    ensure!(sent <= bound, "{call} sent {sent} octets for {input} of input (bound {bound})");
    Ok(events)
}

impl<D: Driver> Driver for Bounded<D> {
    async fn greeting(&mut self) -> Result<Vec<Event>> {
        within_bound("greeting", 0, self.inner.greeting().await?)
    }

    async fn feed(&mut self, input: &[u8]) -> Result<Vec<Event>> {
        self.last_feed = input.len();
        within_bound("feed", input.len(), self.inner.feed(input).await?)
    }

    async fn complete(&mut self, verdict: &TranscriptVerdict) -> Result<Vec<Event>> {
        within_bound("complete", self.last_feed, self.inner.complete(verdict).await?)
    }
}

/// Inputs below this size are also fed at every two-way split point.
const EVERY_SPLIT_BELOW: usize = 2048;

#[test]
fn every_transcript_gives_the_same_bytes_natively_and_in_the_component() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let component = embedded_component();
    let transcripts = Transcript::corpus().expect("the corpus parses");
    assert!(transcripts.len() >= 30, "the corpus has only {} transcripts", transcripts.len());
    let mut failures = Vec::new();
    let mut runs = 0;
    for t in &transcripts {
        for (plan, chunks) in feed_plans(t, t.input().len() < EVERY_SPLIT_BELOW) {
            runs += 1;
            let core = rt.block_on(async { run(&mut Bounded::new(CoreDriver::new(&t.config)?), t, &chunks).await });
            let wasm = rt.block_on(async {
                run(&mut Bounded::new(ComponentDriver::new(&component, &t.config).await?), t, &chunks).await
            });
            let failure = match (core, wasm) {
                (Ok(core), Ok(wasm)) if core != wasm => Some(format!("core and component differ:\n{core:?}\n{wasm:?}")),
                (Ok(core), Ok(_)) => check(t, &core).err().map(|e| format!("{e:#}")),
                (Err(e), _) => Some(format!("core driver: {e:#}")),
                (_, Err(e)) => Some(format!("component driver: {e:#}")),
            };
            if let Some(failure) = failure {
                failures.push(format!("{} [{plan}]: {failure}", t.name));
                break; // one plan's failure per transcript is enough to read
            }
        }
    }
    println!("{} transcripts, {runs} runs through both drivers", transcripts.len());
    assert!(failures.is_empty(), "{} failing transcripts:\n\n{}", failures.len(), failures.join("\n\n"));
}
