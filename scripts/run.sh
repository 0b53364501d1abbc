#!/usr/bin/env bash
# Sets up and runs the main job: the README's first command. Builds, fetches
# the models, creates the demo merchant, terminal and users on the embedded
# SQLite store (first run only), and serves http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export FACEPAY_FACES_DIR="$(bash scripts/faces.sh)"
cargo build --release -p facepay -p facepay-lab
target/release/facepay models fetch
# The demo's configuration names its simulators (the card issuer, the hub's
# foreign networks and FX rates) and lenient liveness: the sample faces are
# still photos, which carry no evidence of liveness either way.
if [[ ! -f .facepay/data/demo-terminal.json ]]; then
    target/release/facepay demo
fi
cat >&2 <<'HINT'

Open the pages the server prints below in a browser with a camera. The
terminal page pairs once with a terminal id and a one-time code, which an
operator makes on the operator console (/operator) with the operator_key in
.facepay/data/demo-operator.json (see docs/onboarding.md); the dashboard
asks for the api_key in .facepay/data/demo-merchant.json.

Or pay by face from another shell, as the demo terminal:
  target/release/facepay terminal pay --image .facepay/verify/Barack_Obama/obama2.jpg --amount 4500 --currency KRW
Check the books:
  target/release/facepay ledger verify

HINT
exec target/release/facepay serve --demo "$@"
