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
