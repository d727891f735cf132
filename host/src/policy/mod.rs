//! The host's decisions at each step of a session (DESIGN.md: "decisions
//! ... a `Policy` trait beside `Spool`"). The guest asks (wit/session.wit
//! `ask`), the connection driver calls the policy, the guest renders the
//! answer into SMTP.

mod accept_all;
mod client;
mod decide;

pub use accept_all::AcceptAll;
pub use client::Client;
pub use decide::{Decision, EndOfData, EndOfDataDecision, Policy};
