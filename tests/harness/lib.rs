//! Test harness shared by the tests in tests/tests: the transcript corpus,
//! drivers that run it (core natively, component in wasmtime), and a live
//! server fixture.

pub mod client;
pub mod driver;
pub mod server;
pub mod transcript;
