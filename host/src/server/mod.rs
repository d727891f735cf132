//! The network side: accept loop, per-connection driver, action checks.

mod config;
mod connection;
mod guard;
mod listener;

pub use config::ServerConfig;
pub use listener::{Server, ServerContext};
