//! The network side: accept loop, per-connection driver, action checks,
//! connection limits, the PROXY protocol, live reload and its control
//! socket.

mod backoff;
pub mod budget;
mod config;
mod connection;
pub mod control;
mod delivery;
mod guard;
mod listener;
mod per_ip;
mod policy_slot;
mod proxy;
mod reload;
mod spare;
mod stream;

pub use config::ServerConfig;
pub use listener::{Server, ServerContext};
pub use policy_slot::{InForce, PolicySlot};
pub use reload::{FileStamp, PolicyBuilder, ReloadReport, ReloadableFiles, Reloader, Swapped};
