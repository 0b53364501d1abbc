#!/usr/bin/env bash
# The web pages in a real browser: installs Debian's Chromium and the
# pinned playwright-core if missing, renders fake-camera videos from sample
# photos, serves a fresh demo on loopback, and runs web-tests/. Screenshots
# land in target/web-artefacts. Called by scripts/test.sh after the Rust
# tests (the facepay binary is built by then).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x /usr/bin/chromium ]]; then
    sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
(cd web-tests && npm ci --no-audit --no-fund --silent)

faces="${FACEPAY_FACES_DIR:-$(bash scripts/faces.sh)}"
facepay=target/debug/facepay
work="$(mktemp -d)"
server=""
cleanup() {
    if [[ -n "$server" ]]; then
        kill "$server" 2>/dev/null || true
        # A server stopped by a signal exits non-zero; that is the plan.
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

artefacts=target/web-artefacts
rm -rf "$artefacts"
mkdir -p "$artefacts" "$work/videos"
# The videos are rendered from sample photos (no person's data), next to
# the test's own files, and removed with them.
"$facepay" eval video "$work/videos/obama.y4m" "$faces/face_recognition/obama2.jpg" >/dev/null
"$facepay" eval video "$work/videos/salley.y4m" "$faces/johns/John_Salley/000200_02159354.jpg" >/dev/null
"$facepay" eval video "$work/videos/hanks.y4m" "$faces/insightface/Tom_Hanks_54745.png" >/dev/null

# A payer's fourth payment within the hour is confirmed with phone digits:
# the step-up the tests show, on a rule that cannot depend on the hour. The
# demo's first payer (Obama, the fake camera's face) paid twice already, so
# the tests' first payment is approved and their second is stepped up.
cat >"$work/rules.toml" <<'RULES'
[decision]
step_up_from = 30
review_from = 80
decline_from = 100
factors = [{ from = 30, factor = "phone_last4" }]

[[rule]]
name = "fourth_in_an_hour"
signal = "user_payments_1h"
above = 2.5
weight = 30
RULES

export FACEPAY_STORE__DATA_DIR="$work/data"
"$facepay" demo >"$artefacts/demo.log" 2>&1
port=$((20000 + RANDOM % 20000))
FACEPAY_SERVER__ADDRESS="127.0.0.1:$port" FACEPAY_RISK__PRESET=default \
    FACEPAY_RISK__RULES_FILE="$work/rules.toml" \
    "$facepay" serve --demo >"$artefacts/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
done

FACEPAY_WEB_URL="http://127.0.0.1:$port" \
FACEPAY_DEMO_DIR="$work/data" \
FACEPAY_WEB_VIDEOS="$work/videos" \
FACEPAY_WEB_ARTEFACTS="$(pwd)/$artefacts" \
    npm --prefix web-tests test
