//! Host-side bindings for the `smtp:session` contract, generated from wit/.
//! Guest calls are async so that the epoch ticker can make a long-running
//! call yield to other connections before its CPU budget ends it. The rest
//! of the host never sees these types: `convert.rs` turns them into
//! smtp-core's, once, at the boundary.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "smtp-receiver",
    exports: { default: async },
});

pub use exports::smtp::session::receiver::{
    Action, Answer, AuthMechanisms, BodyType, ComponentInfo, Config as GuestConfig, DsnReturn, Envelope, Extensions,
    PeerInfo, Question, Questions, Reason, Recipient, Refusal, TlsInfo,
};
