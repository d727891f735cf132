//! Mail authentication (issue 15): SPF at MAIL, DKIM, ARC and DMARC at
//! the end of data, the verdict written into Authentication-Results and
//! Received-SPF, and refusals where the configuration says so. All of it
//! through mail-auth (Stalwart's SPF/DKIM/DMARC/ARC library) and its
//! hickory resolver, except the body hashes, computed as the content
//! streams in (`body_hash`), and SPF's void-lookup limit, counted around
//! mail-auth's evaluation (`void_lookups`).

mod authenticating;
mod body_hash;
mod checks;
mod config;
mod content;
mod forged;
mod resolver;
mod void_lookups;

pub use authenticating::Authenticating;
pub use checks::{MailAuth, SpfVerdict};
pub use config::{Action, MailAuthConfig, MailAuthKeys};
pub use content::{HEADER_SECTION_MAX, MessageContent};
