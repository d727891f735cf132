//! smtp-core: the SMTP server protocol as a pure, sans-IO state machine.
//!
//! Bytes go in through [`Session::feed`], [`Action`]s come out; a decision
//! that needs the world (did the message reach the disk?) comes back in as a
//! [`Verdict`] through [`Session::complete`]. No async, no clock, no files, no
//! sockets: the same code runs natively (tests, fuzzing, benchmarks) and
//! inside the WebAssembly component that the smtpcell host sandboxes.
//!
//! Modules, one concept each: `limits` (every length and count limit, with
//! the RFC clause it implements), `line` (command line framing), `command`
//! (grammar), `address` (paths), `params` (MAIL/RCPT parameters), `dot`
//! (DATA decoding), `bdat` (chunks), `ehlo` (what we advertise), `reply`
//! (every reply text), `phase` (session states), `session` (transitions),
//! `outbox` (action coalescing), `info`.
//!
//! `no_std` (with `alloc`): the component built from this crate then needs
//! nothing from WASI, so it imports nothing at all: any component host can
//! run it without providing a single interface, and instantiating it per
//! connection skips linking the WASI shims std would pull in.

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod action;
mod address;
mod bdat;
mod command;
mod config;
mod dot;
mod ehlo;
mod envelope;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod info;
mod limits;
mod line;
mod outbox;
mod params;
mod phase;
mod prelude;
mod reply;
mod session;

pub use action::{Action, Verdict};
pub use config::{Config, Extensions, PeerInfo};
pub use envelope::{BodyType, DsnReturn, Envelope, Recipient};
pub use info::{Info, info};
pub use limits::{
    LONGEST_COMMAND_LINE, MAX_PROTOCOL_ERRORS, MAX_REPLY_OCTETS_PER_CALL_FIXED, MAX_REPLY_OCTETS_PER_INPUT_OCTET,
    max_reply_octets,
};
pub use session::Session;
