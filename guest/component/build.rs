//! Link settings of the component's core module.
//!
//! Linear memory starts at 1280 KiB (20 pages) instead of wasm-ld's default
//! (the 1 MiB stack plus the data, 17 pages), so that a session never has to
//! grow it: a DATA transaction holds a 64 KiB input buffer and a 64 KiB
//! output buffer, which a 17-page memory has no room for, and the worst
//! inputs in tests/tests/memory_bounds.rs peaked at 19 pages. Growing costs the
//! native host an `mprotect` when the memory grows and another when the
//! pooled slot is reset for the next connection, each a TLB shootdown on
//! every core running the server. Pages that are never touched cost nothing:
//! they are reserved address space, not resident memory.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory={}", 20 << 16);
    }
}
