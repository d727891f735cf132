//! The corpus in tests/transcripts, run through the core natively and
//! through the built component in the host's runtime, fed in several ways:
//! both must produce exactly the expected bytes, the same envelopes and
//! messages, and every call must keep the contract's rules, the reply
//! bound included (the runner checks each call with smtp-core's
//! `contract::Checker`).

use smtpcell_tests::driver::{CoreDriver, embedded_component};
use smtpcell_tests::transcript::Transcript;
use smtpcell_tests::transcript::{ComponentDriver, check, feed_plans, run};

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
            let core = rt.block_on(async { run(&mut CoreDriver::new(&t.config)?, t, &chunks).await });
            let wasm =
                rt.block_on(async { run(&mut ComponentDriver::new(&component, &t.config).await?, t, &chunks).await });
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
