//! The host's decisions at each step of a session: a `Policy` trait beside
//! `Spool`, as the design has it (docs/decisions.md, "The 2.0 contract"). The guest asks (wit/session.wit
//! `ask`), the connection driver calls the policy, the guest renders the
//! answer into SMTP.

mod accept_all;
pub mod address;
mod client;
mod client_network;
mod clock;
mod decide;
mod due;
pub mod greylist;
mod networks;
mod password_file;
mod rate_limits;
mod recipients;
mod rules;

pub use accept_all::AcceptAll;
pub use client::{Client, Role};
pub use client_network::{BadPrefix, Ipv4Prefix, Ipv6Prefix, NetworkPrefixes};
pub use clock::{Clock, FakeClock, SystemClock};
pub use decide::{Admission, Decision, EndOfData, EndOfDataDecision, MessageChecks, Policy, Turnaway};
pub use greylist::{Greylist, GreylistingConfig};
pub use networks::Networks;
pub use password_file::PasswordFile;
pub use rate_limits::{CellRequest, ConnectionSlot, Limited, PostgresCells, RateLimits, RateLimitsConfig, Take};
pub use recipients::{Domains, Lookup, RecipientTable};
pub use rules::{Rules, RulesConfig};
