//! smtp-core: the SMTP server protocol as a pure, sans-IO state machine.
//!
//! Bytes go in through [`Session::feed`], [`Action`]s come out; a decision
//! that needs the world (did the message reach the disk?) comes back in as a
//! [`Verdict`] through [`Session::complete`]. No async, no clock, no files, no
//! sockets: the same code runs natively (tests, fuzzing, benchmarks) and
//! inside the WebAssembly component that the smtpcell host sandboxes.

mod action;
mod config;
mod envelope;

pub use action::{Action, Verdict};
pub use config::{Config, Extensions, PeerInfo};
pub use envelope::{BodyType, DsnReturn, Envelope, Recipient};
