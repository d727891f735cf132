//! The corpus in tests/transcripts, run through the core natively and
//! through the built component in the host's runtime, fed in several ways:
//! both must produce exactly the expected bytes, the same envelopes and
//! messages, and every call must keep the contract's rules, the reply
//! bound included (the runner checks each call with smtp-core's
//! `contract::Checker`). Transcripts with `T:` lines are fed segment by
//! segment, the handshake (`tls-started`) between them.

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
        for plan in feed_plans(t, t.input().len() < EVERY_SPLIT_BELOW) {
            runs += 1;
            let segments = &plan.segments;
            let core = rt.block_on(async { run(&mut CoreDriver::new(&t.config)?, t, segments).await });
            let wasm =
                rt.block_on(async { run(&mut ComponentDriver::new(&component, &t.config).await?, t, segments).await });
            let failure = match (core, wasm) {
                (Ok(core), Ok(wasm)) if core != wasm => Some(format!("core and component differ:\n{core:?}\n{wasm:?}")),
                (Ok(core), Ok(_)) => check(t, &core).err().map(|e| format!("{e:#}")),
                (Err(e), _) => Some(format!("core driver: {e:#}")),
                (_, Err(e)) => Some(format!("component driver: {e:#}")),
            };
            if let Some(failure) = failure {
                failures.push(format!("{} [{}]: {failure}", t.name, plan.name));
                break; // one plan's failure per transcript is enough to read
            }
        }
    }
    println!("{} transcripts, {runs} runs through both drivers", transcripts.len());
    assert!(failures.is_empty(), "{} failing transcripts:\n\n{}", failures.len(), failures.join("\n\n"));
}

/// The runner holds a transcript to its `T:` lines: a `start-tls` with no
/// `T:` line following, a `T:` line the session did not ask for, and one
/// the session closed before each fail the run, in every plan.
#[test]
fn tls_lines_must_match_what_the_session_does() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let fails = |text: &str, why: &str| {
        let t = Transcript::parse("x", text).expect("parses");
        for plan in feed_plans(&t, true) {
            let result = rt.block_on(async { run(&mut CoreDriver::new(&t.config)?, &t, &plan.segments).await });
            let error = format!("{:#}", result.expect_err(&plan.name));
            assert!(error.contains(why), "{}: {error}", plan.name);
        }
    };
    let on = "! starttls = yes\n";
    fails(&format!("{on}C: STARTTLS\nC: EHLO a\n"), "the session emitted start-tls, but no T: line follows");
    fails(&format!("{on}C: NOOP\nT: TLSv1.3 C\nC: EHLO a\n"), "line 3: a TLS handshake, but the session did not");
    fails("C: STARTTLS\nT: TLSv1.3 C\n", "line 2: a TLS handshake, but the session did not");
    fails(&format!("{on}C: QUIT\nT: TLSv1.3 C\nC: EHLO a\n"), "line 3: a TLS handshake the session closed before");
    // Implicit TLS needs no STARTTLS, and what the client pipelined behind
    // STARTTLS never reaches the session, however the segment is split.
    let t = Transcript::parse("x", &format!("{on}T: TLSv1.3 C\nC= STARTTLS\\r\\nHELO a\\r\\n\nC: NOOP\n")).unwrap();
    let implicit = rt.block_on(async { run(&mut CoreDriver::new(&t.config)?, &t, &t.segments()).await }).unwrap();
    assert!(implicit.output.ends_with(b"503 5.5.1 Error: TLS already active\r\n250 smtpcell.test\r\n250 2.0.0 Ok\r\n"));
    let t = Transcript::parse("x", &format!("{on}C= STARTTLS\\r\\nHELO a\\r\\n\nT: TLSv1.3 C\nC: NOOP\n")).unwrap();
    for plan in feed_plans(&t, true) {
        let outcome = rt.block_on(async { run(&mut CoreDriver::new(&t.config)?, &t, &plan.segments).await }).unwrap();
        assert_eq!(
            outcome.output, b"220 smtpcell.test ESMTP smtpcell\r\n220 2.0.0 Ready to start TLS\r\n250 2.0.0 Ok\r\n",
            "{}",
            plan.name
        );
    }
}
