//! smtpcell: an SMTP server whose protocol handling runs in a sandboxed
//! WebAssembly component, one instance per connection.
//!
//! - [`config`]: the flags and the configuration file, merged into the settings.
//! - [`events`]: what happened, typed; the logs and the metrics are fed from it.
//! - [`runtime`]: wasmtime engine, compiled component versions, sandboxes.
//! - [`server`]: sockets, timeouts, limits, graceful shutdown.
//! - [`spool`]: durable storage of accepted mail (Maildir by default).
//! - [`policy`]: the host's decisions at each step the guest asks about.
//! - [`postgres`]: the PostgreSQL database hosts share (spool, policy state).
//! - [`mail_auth`]: SPF, DKIM, DMARC and ARC, and Authentication-Results.
//! - [`tls`]: the certificate in use and what a handshake negotiated.
//! - [`transcript`]: the shared transcript corpus and its runner.
//! - [`users`]: the users file for SMTP AUTH (Dovecot passwd-file) and `smtpcell passwd`.

pub mod config;
pub mod events;
pub mod mail_auth;
pub mod policy;
pub mod postgres;
pub mod runtime;
pub mod server;
pub mod spool;
pub mod tls;
pub mod transcript;
pub mod users;

/// The protocol component built from guest/ with this binary, used unless
/// `--component` names another.
pub const EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("SMTPCELL_EMBEDDED_COMPONENT"));

/// Where the build left that component (for tests and other hosts).
pub const EMBEDDED_COMPONENT_PATH: &str = env!("SMTPCELL_EMBEDDED_COMPONENT");
