//! TLS for SMTP (RFC 3207 STARTTLS, RFC 8314 implicit TLS), terminated by
//! the host with rustls: the guest never sees a key, only the negotiated
//! version and cipher suite (wit/session.wit `tls-info`).
//!
//! - [`Certificates`]: the certificate chain and key in use, replaced by a
//!   reload without touching connections already running.
//! - [`tls_info`]: what a finished handshake tells the session and the
//!   Received header.

mod certificates;
mod info;

pub use certificates::{Certificates, TlsFiles};
pub use info::tls_info;
