//! The WebAssembly side of the host: engine, compiled components, and the
//! per-connection sandboxes they are instantiated into.

mod bindings;
mod cache;
mod component;
mod engine;
mod instance;
mod limiter;
mod limits;
mod registry;
mod validate;

pub use bindings::{
    Action, BodyType, ComponentInfo, DsnReturn, Envelope, Extensions, GuestConfig, PeerInfo, Recipient, Verdict,
};
pub use cache::{CacheOutcome, CompileCache};
pub use component::{Lease, LoadedComponent};
pub use engine::Runtime;
pub use instance::{GuestFault, GuestSession};
pub use limits::SandboxLimits;
pub use registry::{Registry, VersionStatus};
pub use validate::{CONTRACT_PREFIX, Refused, Validated};
