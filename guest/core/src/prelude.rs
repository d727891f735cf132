//! What std's prelude would give every module, taken from `alloc` (the
//! crate is `no_std`, see lib.rs).

pub(crate) use alloc::boxed::Box;
pub(crate) use alloc::string::{String, ToString};
pub(crate) use alloc::vec::Vec;
pub(crate) use alloc::{format, vec};
