//! Builds the test-only variants of the component (see
//! guest/component/src/testbed.rs) into their own target directory, so they
//! can never be confused with the component the host embeds.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().expect("tests/ lives in the workspace root");
    guest_build::rerun_if_changed(
        root,
        &["guest/core/src", "guest/core/Cargo.toml", "guest/component", "wit", "Cargo.lock", ".cargo/config.toml"],
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let variants = [
        ("SMTPCELL_TESTBED_COMPONENT", "testbed.wasm", &["testbed-v2", "fault-injection"][..]),
        ("SMTPCELL_WRONG_REPLIES_COMPONENT", "wrong-replies.wasm", &["wrong-replies"][..]),
    ];
    // Built one after the other into one target directory: cargo would
    // overwrite the uplifted .wasm of one variant with the next, so each is
    // copied out before the next build starts.
    for (var, name, features) in variants {
        let wasm =
            guest_build::Guest { package: "smtp-component", features, target_subdir: "guest-testbed" }.build(root);
        let copy = out.join(name);
        std::fs::copy(&wasm, &copy).expect("copying a test component");
        println!("cargo:rustc-env={var}={}", copy.display());
    }
}
