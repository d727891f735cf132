//! The host's decisions at each step of a session: a `Policy` trait beside
//! `Spool`, as the design has it (docs/decisions.md, "The 2.0 contract"). The guest asks (wit/session.wit
//! `ask`), the connection driver calls the policy, the guest renders the
//! answer into SMTP.

mod accept_all;
pub mod address;
mod client;
mod decide;
mod networks;
mod password_file;
mod recipients;

pub use accept_all::AcceptAll;
pub use client::{Client, Role};
pub use decide::{Decision, EndOfData, EndOfDataDecision, Policy};
pub use networks::Networks;
pub use password_file::PasswordFile;
pub use recipients::{Domains, Lookup, RecipientTable};
