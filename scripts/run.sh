#!/usr/bin/env bash
# Sets up and runs the main job: the README's first command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export FACEPAY_FACES_DIR="$(bash scripts/faces.sh)"
cargo build --release -p facepay
target/release/facepay models fetch
exec target/release/facepay serve "$@"
