//! Builds the protocol component (guest/component) for wasm32-wasip2 and
//! hands its path to the host crate, which embeds it as the default
//! component (`smtpcell::EMBEDDED_COMPONENT`).

use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().expect("host/ lives in the workspace root");
    guest_build::rerun_if_changed(
        root,
        &["guest/core/src", "guest/core/Cargo.toml", "guest/component", "wit", "Cargo.lock", ".cargo/config.toml"],
    );
    let wasm = guest_build::Guest { package: "smtp-component", features: &[], target_subdir: "guest" }.build(root);
    println!("cargo:rustc-env=SMTPCELL_EMBEDDED_COMPONENT={}", wasm.display());
    embed_corpus(root);
    // refinery embeds every file of host/migrations/: a file added there
    // must rebuild the host.
    println!("cargo:rerun-if-changed={}", manifest_dir.join("migrations").display());
}

/// Writes `corpus.rs`: every tests/transcripts/*.txt as (name, contents), so
/// the binary can replay the corpus when it validates a component.
fn embed_corpus(root: &Path) {
    let dir = root.join("tests").join("transcripts");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("reading tests/transcripts")
        .map(|e| e.expect("reading tests/transcripts").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut code = String::from("const CORPUS: &[(&str, &str)] = &[\n");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        code.push_str(&format!("    ({name:?}, include_str!({:?})),\n", file.display().to_string()));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("corpus.rs");
    std::fs::write(out, code).expect("writing corpus.rs");
}
