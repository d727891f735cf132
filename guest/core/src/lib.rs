//! smtp-core: the SMTP server protocol as a pure, sans-IO state machine.
//!
//! Bytes go in through [`Session::feed`], [`Action`]s come out; a decision
//! that needs the world (may this recipient receive mail here? did the
//! message reach the disk?) is asked with [`Action::Ask`] and comes back in
//! as an [`Answer`] through [`Session::answer`]. No async, no clock, no files, no
//! sockets: the same code runs natively (tests, fuzzing, benchmarks) and
//! inside the WebAssembly component that the smtpcell host sandboxes.
//!
//! Modules, one concept each: `limits` (every length and count limit, with
//! the RFC clause it implements), `line` (command line framing), `command`
//! (grammar), `address` (paths), `params` (MAIL/RCPT parameters), `dot`
//! (DATA decoding), `bdat` (chunks), `auth` (SASL framing), `ehlo` (what
//! we advertise), `reply` (every reply text), `question` (what the host is
//! asked and answers), `refusal` (the reply for each refusal reason),
//! `phase` (session states), `session` (transitions), `outbox` (action
//! coalescing), `info`.
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
mod auth;
mod bdat;
mod command;
mod config;
pub mod contract;
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
mod question;
mod refusal;
mod reply;
mod session;

pub use action::Action;
pub use config::{AuthMechanisms, Config, Extensions, PeerInfo, Questions};
pub use envelope::{BodyType, DsnReturn, Envelope, Recipient, TlsInfo};
pub use info::{CONTRACT, Info, info};
pub use limits::{
    LONGEST_COMMAND_LINE, MAX_PROTOCOL_ERRORS, MAX_REPLY_OCTETS_PER_CALL_FIXED, MAX_REPLY_OCTETS_PER_INPUT_OCTET,
    SASL_RESPONSE_LINE, max_reply_octets,
};
pub use question::{Answer, Credentials, Hello, MailRequest, Question, RcptRequest, Reason, Refusal};
pub use session::Session;
