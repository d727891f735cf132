//! Builds the protocol component (guest/component) for wasm32-wasip2 and
//! hands its path to the host crate, which embeds it as the default
//! component. A nested cargo is the only way to build one workspace crate for
//! another target from a build script; it gets its own target directory (the
//! outer build holds the lock on ours) and a scrubbed environment (the outer
//! build's flags and cfgs are for the host target, not for wasm).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().expect("host/ lives in the workspace root").to_path_buf();
    for watched in ["guest/core/src", "guest/core/Cargo.toml", "guest/component", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=SMTPCELL_GUEST_VERBOSE");

    ensure_target();
    let wasm = build_guest(&root);
    println!("cargo:rustc-env=SMTPCELL_EMBEDDED_COMPONENT={}", wasm.display());
}

/// Adds the wasm32-wasip2 standard library when it is missing, so the README's
/// single command works on a machine with a bare rustup toolchain.
fn ensure_target() {
    if target_installed() {
        return;
    }
    println!("cargo:warning=adding the {TARGET} target with rustup (one-time)");
    let added = Command::new("rustup").args(["target", "add", TARGET]).status();
    if !matches!(added, Ok(s) if s.success()) || !target_installed() {
        panic!(
            "the Rust target {TARGET} is missing and could not be added automatically; \
             run `rustup target add {TARGET}` and build again"
        );
    }
}

fn target_installed() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "target-libdir", "--target", TARGET]).output() else {
        return false;
    };
    out.status.success() && Path::new(String::from_utf8_lossy(&out.stdout).trim()).is_dir()
}

fn build_guest(root: &Path) -> PathBuf {
    let target_dir = root.join("target").join("guest");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--package", "smtp-component", "--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    if env::var_os("SMTPCELL_GUEST_VERBOSE").is_none() {
        cmd.arg("--quiet");
    }
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let scrub =
            ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER", "RUSTC_WRAPPER"]
                .contains(&key.as_ref())
                || ["CARGO_BUILD_", "CARGO_PROFILE_", "CARGO_FEATURE_", "CARGO_CFG_"]
                    .iter()
                    .any(|p| key.starts_with(p));
        if scrub {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd.status().expect("could not run cargo to build the guest component");
    assert!(
        status.success(),
        "building the guest component (guest/component for {TARGET}) failed; see the errors above"
    );
    let wasm = target_dir.join(TARGET).join(PROFILE).join("smtp_component.wasm");
    assert!(wasm.is_file(), "the guest build did not produce {}", wasm.display());
    wasm
}
