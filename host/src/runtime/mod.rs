//! The WebAssembly side of the host: engine, compiled components, and the
//! per-connection sandboxes they are instantiated into.

mod bindings;
mod component;
mod engine;
mod instance;
mod limits;
mod registry;

pub use bindings::{
    Action, BodyType, ComponentInfo, DsnReturn, Envelope, Extensions, GuestConfig, PeerInfo, Recipient, Verdict,
};
pub use component::LoadedComponent;
pub use engine::Runtime;
pub use instance::{GuestFault, GuestSession};
pub use limits::SandboxLimits;
pub use registry::Registry;
