# smtpcell tasks. `just` itself: `cargo install just` or `pip install rust-just`.

# Build the guest component and the host (release).
build:
    cargo build --release

# Serve on 127.0.0.1:2525, storing into ./mail.
run *ARGS:
    cargo run --release -- {{ARGS}}

# Every test: core unit tests, transcripts in every driver, live-server tests.
test:
    cargo test --release

# Formatting and lints, host and guest (the guest also for its real target).
lint:
    cargo fmt --all -- --check
    cargo clippy --release --all-targets -- -D warnings
    cargo clippy --release -p smtp-component --target wasm32-wasip2 -- -D warnings

fmt:
    cargo fmt --all

# Where the built component is, for embedding it in other hosts.
wasm: build
    @echo target/guest/wasm32-wasip2/guest/smtp_component.wasm

# Needs `cargo install cargo-fuzz`. Runs on stable Rust: without a sanitizer
# cargo-fuzz passes no nightly flag (smtp-core has no unsafe code, so ASan
# would add little); with `-s address` it passes -Zsanitizer, which stable
# rustc takes only with RUSTC_BOOTSTRAP=1. New inputs go to
# guest/core/fuzz/corpus (not committed), crashes to guest/core/fuzz/artifacts.
#
# Fuzz the core for SECONDS per target, one target after another on one core (`just fuzz 3600 session`).
fuzz SECONDS="60" *TARGETS="command dot bdat session":
    #!/usr/bin/env bash
    set -euo pipefail
    cd guest/core
    for target in {{TARGETS}}; do
        mkdir -p fuzz/corpus/$target
        cargo fuzz run --sanitizer none $target fuzz/corpus/$target fuzz/seeds/$target -- \
            -max_total_time={{SECONDS}} -max_len=4096 -timeout=10 -dict=fuzz/smtp.dict -print_final_stats=1
    done

# Rewrite the committed seed corpus from tests/transcripts.
fuzz-seeds:
    cd guest/core/fuzz && cargo run --example seed_corpus

# Benchmarks (see bench/README.md): criterion micro-benchmarks of the core
# natively and through the component (per command, DATA MB/s, instance start,
# memory per live session), then the end-to-end load and idle-connection runs
# against smtp-sink (bench/load.py; root, fetches Postfix's smtp-source and
# smtp-sink with `apt-get download postfix`, does not install the MTA).
# Run it on a quiet machine: figures taken under load are meaningless.
bench *LOAD_ARGS:
    cargo bench -p smtp-core --bench core
    cargo bench -p smtpcell --bench component
    cargo build --release -p smtpcell
    python3 bench/load.py {{LOAD_ARGS}}
