#!/usr/bin/env bash
# Sets up and runs every test: the README's second command, and what CI runs.
#
# Fetches the models and face photos with the project's own steps (a second
# run finds them cached), then checks formatting, lints, and runs the tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi

export FACEPAY_FACES_DIR="$(bash scripts/faces.sh)"
cargo run --quiet -p facepay -- models fetch

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo nextest run --workspace --no-fail-fast
