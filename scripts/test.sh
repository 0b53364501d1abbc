#!/usr/bin/env bash
# Sets up and runs every test: the README's second command, and what CI runs.
#
# Fetches the models and face photos with the project's own steps (a second
# run finds them cached), starts a PostgreSQL server for the tests
# (scripts/postgres.sh), then checks formatting, lints, and runs the tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi

export FACEPAY_FACES_DIR="$(bash scripts/faces.sh)"
# A failing test's message, not pages of async frames, ends its output.
export RUST_BACKTRACE=0
cargo fmt --all -- --check
# Build the tests first: they build the facepay binary with the features the
# whole workspace unifies to, so fetching the models with it costs no second
# build of the heavy dependencies.
cargo nextest run --workspace --no-run
# `facepay demo` and the other lab commands run facepay-lab from beside the
# facepay binary; the process tests need it built too. With `--tests` the
# binaries get the features the tests unify to (tokio's test-util, say),
# so they reuse the dependencies just built instead of building a second
# copy, which would take minutes and gigabytes of disk.
cargo build --workspace --bins --tests
target/debug/facepay models fetch

# A real PostgreSQL server on loopback for the whole suite (stopped on exit);
# FACEPAY_TEST_POSTGRES=0 leaves it out, and the Postgres tests then skip.
unset FACEPAY_TEST_POSTGRES_URL
if [[ "${FACEPAY_TEST_POSTGRES:-1}" != 0 ]]; then
    trap 'bash scripts/postgres.sh stop || true' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    FACEPAY_TEST_POSTGRES_URL="$(bash scripts/postgres.sh start)"
    export FACEPAY_TEST_POSTGRES_URL
fi

cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo nextest run --workspace --no-fail-fast
# The web pages in Debian's Chromium, with a fake camera (scripts/web-test.sh).
bash scripts/web-test.sh
bash scripts/api-check.sh  # the served API against its own description
