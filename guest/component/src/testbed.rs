//! Test-only behaviour, compiled in only with the `testbed-v2`,
//! `fault-injection` or `wrong-replies` features. The host's tests use these
//! builds to prove the sandbox (a guest that traps, loops, allocates without
//! bound, breaks the contract, or reaches for the outside world harms only
//! its own connection) and the live upgrade (a second, visibly different
//! version; a version that must fail validation).

use alloc::vec::Vec;

use smtp_core::Action;

#[cfg(feature = "testbed-v2")]
pub const VERSION: &str = "2.0.0-testbed";

/// v2 greets differently, so a client can tell which version served it.
#[cfg(feature = "testbed-v2")]
pub fn greeting(mut actions: Vec<Action>) -> Vec<Action> {
    for action in &mut actions {
        if let Action::Send(bytes) = action
            && let Some(at) = bytes.windows(14).position(|w| w == b"ESMTP smtpcell")
        {
            bytes.splice(at..at + 14, b"ESMTP smtpcell v2".iter().copied());
        }
    }
    actions
}

/// Turns every positive reply, the greeting included, into a failure code:
/// a component that type-checks but must fail the transcript replay.
#[cfg(feature = "wrong-replies")]
pub fn replies(mut actions: Vec<Action>) -> Vec<Action> {
    for action in &mut actions {
        if let Action::Send(bytes) = action {
            let mut line_start = true;
            for b in bytes.iter_mut() {
                if line_start && *b == b'2' {
                    *b = b'5';
                }
                line_start = *b == b'\n';
            }
        }
    }
    actions
}

/// Misbehaves when the input carries a trigger word; otherwise `None` and
/// the core handles the input as usual.
#[cfg(feature = "fault-injection")]
pub fn fault(input: &[u8]) -> Option<Vec<Action>> {
    let has = |word: &[u8]| input.windows(word.len()).any(|w| w == word);
    if has(b"X-TRAP") {
        panic!("testbed: trap requested");
    }
    if has(b"X-LOOP") {
        loop {
            std::hint::black_box(());
        }
    }
    if has(b"X-ALLOC") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
    if has(b"X-DATA-WITHOUT-BEGIN") {
        return Some(vec![Action::MessageData(b"orphan".to_vec())]);
    }
    if has(b"X-END-WITHOUT-BEGIN") {
        return Some(vec![Action::Ask(smtp_core::Question::MessageEnd)]);
    }
    if has(b"X-ASK-TWICE") {
        return Some(vec![Action::Ask(smtp_core::Question::Connect), Action::Ask(smtp_core::Question::Connect)]);
    }
    if has(b"X-INJECT-HEADER") {
        return Some(vec![Action::MessageBegin(smtp_core::Envelope {
            helo: "evil".into(),
            reverse_path: "a@b\r\nX-Injected: yes".into(),
            recipients: vec![smtp_core::Recipient { address: "c@d".into(), notify: None, orcpt: None }],
            protocol: "ESMTP".into(),
            body: smtp_core::BodyType::SevenBit,
            smtputf8: false,
            declared_size: None,
            dsn_return: None,
            dsn_envid: None,
            tls: None,
            authenticated: None,
        })]);
    }
    if has(b"X-FILE") {
        return Some(report("file", std::fs::read_to_string("/etc/passwd").map(|s| s.len())));
    }
    if has(b"X-ENV") {
        let vars = std::env::vars().count();
        return Some(report("env", if vars == 0 { Err("no variables") } else { Ok(vars) }));
    }
    if has(b"X-SOCKET") {
        return Some(report("socket", std::net::TcpStream::connect("127.0.0.1:25").map(|_| 1)));
    }
    None
}

/// `250 denied <what>: <error>` when the sandbox held, `250 LEAK …` when it
/// did not; the test checks which.
#[cfg(feature = "fault-injection")]
fn report<T: std::fmt::Debug, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> Vec<Action> {
    let line = match result {
        Ok(value) => format!("250 LEAK {what}: {value:?}\r\n"),
        Err(err) => format!("250 denied {what}: {err}\r\n").replace(['\r', '\n'], " ").trim_end().to_string() + "\r\n",
    };
    vec![Action::Send(line.into_bytes())]
}
