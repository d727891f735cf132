//! Compiles a workspace crate into a WebAssembly component from a build
//! script. Used by the host (for the component it embeds) and by the tests
//! (for the fault-injection and second-version components).
//!
//! A nested cargo is the only way to build one workspace crate for another
//! target from a build script; it gets its own target directory (the outer
//! build holds the lock on ours) and a scrubbed environment (the outer
//! build's flags and cfgs are for the host target, not for wasm).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";
/// The workspace profile for guests (see the root Cargo.toml).
pub const PROFILE: &str = "guest";

/// One component to build.
pub struct Guest<'a> {
    /// The cargo package name.
    pub package: &'a str,
    /// Cargo features to enable.
    pub features: &'a [&'a str],
    /// Its own target directory under `target/`: variants built with other
    /// features must not overwrite each other's output.
    pub target_subdir: &'a str,
}

impl Guest<'_> {
    /// Builds the component and returns the path of the `.wasm`. Panics with
    /// a message that says what to do when it cannot (build scripts report
    /// failure by panicking).
    pub fn build(&self, workspace_root: &Path) -> PathBuf {
        ensure_target();
        let target_dir = workspace_root.join("target").join(self.target_subdir);
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root)
            .args(["build", "--package", self.package, "--target", TARGET, "--profile", PROFILE])
            .arg("--target-dir")
            .arg(&target_dir);
        if !self.features.is_empty() {
            cmd.arg("--features").arg(self.features.join(","));
        }
        if env::var_os("SMTPCELL_GUEST_VERBOSE").is_none() {
            cmd.arg("--quiet");
        }
        scrub_environment(&mut cmd);
        let status = cmd.status().expect("could not run cargo to build a guest component");
        assert!(
            status.success(),
            "building the guest component {} for {TARGET} failed; see the errors above",
            self.package
        );
        let wasm = target_dir.join(TARGET).join(PROFILE).join(format!("{}.wasm", self.package.replace('-', "_")));
        assert!(wasm.is_file(), "the guest build did not produce {}", wasm.display());
        wasm
    }
}

/// Tells cargo to rebuild when any of these workspace paths change.
pub fn rerun_if_changed(workspace_root: &Path, paths: &[&str]) {
    for path in paths {
        println!("cargo:rerun-if-changed={}", workspace_root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=SMTPCELL_GUEST_VERBOSE");
}

fn scrub_environment(cmd: &mut Command) {
    const EXACT: [&str; 5] =
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER", "RUSTC_WRAPPER"];
    const PREFIXES: [&str; 4] = ["CARGO_BUILD_", "CARGO_PROFILE_", "CARGO_FEATURE_", "CARGO_CFG_"];
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if EXACT.contains(&key.as_ref()) || PREFIXES.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(key.as_ref());
        }
    }
}

/// Adds the wasm32-wasip2 standard library when it is missing, so the
/// README's single command works on a machine with a bare rustup toolchain.
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
