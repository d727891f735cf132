//! Host-side bindings for the `smtp:session` contract, generated from wit/.
//! Guest calls are async so that the epoch ticker can make a long-running
//! call yield to other connections before its CPU budget ends it.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "smtp-receiver",
    exports: { default: async },
});

pub use exports::smtp::session::receiver::{
    Action, BodyType, ComponentInfo, Config as GuestConfig, DsnReturn, Envelope, Extensions, PeerInfo, Recipient,
    Verdict,
};
