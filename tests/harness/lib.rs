//! Test harness shared by the tests in tests/tests: the transcript corpus,
//! drivers that run it (core natively, component in wasmtime), and a live
//! server fixture.

pub mod client;
pub mod configured;
pub mod dns;
pub mod dovecot;
pub mod driver;
pub mod load;
pub mod log;
pub mod postgres;
pub mod server;
pub mod session;
pub mod stored;
pub mod tls;
pub mod transcript;

/// The v2 test build of the component: greets with `ESMTP smtpcell v2`,
/// reports version `2.0.0-testbed`, and misbehaves on trigger words (see
/// guest/component/src/testbed.rs).
pub const TESTBED_COMPONENT: &str = env!("SMTPCELL_TESTBED_COMPONENT");

/// A test build whose replies are all failures: type-checks, fails replay.
pub const WRONG_REPLIES_COMPONENT: &str = env!("SMTPCELL_WRONG_REPLIES_COMPONENT");
