//! The WebAssembly side of the host: engine, compiled components, and the
//! per-connection sandboxes they are instantiated into.

mod bindings;
mod cache;
mod component;
mod convert;
mod engine;
mod instance;
mod limiter;
mod limits;
mod registry;
mod validate;

pub use bindings::{ComponentInfo, GuestConfig, PeerInfo};
pub use cache::{CacheOutcome, CompileCache};
pub use component::{Lease, LoadedComponent};
pub use convert::guest_config;
pub use engine::Runtime;
pub use instance::{GuestFault, GuestSession};
pub use limits::SandboxLimits;
pub use registry::{Registry, VersionStatus};
pub use validate::{CONTRACT_PREFIX, Refused, Validated};
