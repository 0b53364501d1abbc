#!/usr/bin/env bash
# Checks the served API against its own description: starts a fresh demo
# on loopback, validates /openapi.json with openapi-spec-validator, then
# runs a bounded Schemathesis pass over every operation with the demo's
# keys (scripts/api-check/: the config, the hooks that sign terminal
# requests, and the pinned tools). Both must pass. Stops the server on exit.
#
# Needs target/debug/facepay and facepay-lab built, the models fetched and
# the face photos laid out (scripts/test.sh does all three first).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"

readonly CHECKS="$root/scripts/api-check"
readonly VENV="${FACEPAY_HOME:-.facepay}/venv-api"
readonly MARKER="$VENV/.facepay-api-requirements"
# The demo makes the merchant, its terminal and keys, and enrols and pays
# with nobody: its payments would be unknown to the server's own simulated
# issuer, which starts empty in another process. Two people of
# .facepay/verify are enrolled through the API instead and own the user
# tokens: one for every user endpoint, one for the account deletion alone
# (which ends its token); the first pays once at the terminal, so that the
# merchant endpoints meet a payment this server made.
readonly DEMO_PEOPLE=0
readonly USER_PERSON="John_Simm"
readonly USER_PHONE="+821055512345"
readonly SPARE_PERSON="John_Shimkus"
readonly SPARE_PHONE="+821055598765"
readonly SERVER_START_TRIES=300

# The tools, pinned wheel by wheel; a second run finds them in place.
if [[ ! -x "$VENV/bin/python" || ! -f "$MARKER" ]] || ! cmp -s "$MARKER" "$CHECKS/requirements.txt"; then
    echo "installing the API check tools into $VENV" >&2
    [[ -x "$VENV/bin/python" ]] || "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --only-binary=:all: --no-deps -r "$CHECKS/requirements.txt"
    cp "$CHECKS/requirements.txt" "$MARKER"
fi
venv="$(cd "$VENV" && pwd)"
py="$venv/bin/python"

bash scripts/faces.sh >/dev/null
work="$(mktemp -d)"
server=""
stop() {
    if [[ -n "$server" ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The demo's configuration (simulated issuer and hub networks, lenient
# liveness for still photos) over a data directory of this run's own.
data="$work/data"
export FACEPAY_STORE__DATA_DIR="$data"
target/debug/facepay demo --photos .facepay/verify --people "$DEMO_PEOPLE" >"$work/demo.log" 2>&1 || {
    cat "$work/demo.log" >&2
    exit 1
}
port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
# Schemathesis sends hundreds of enrolments and photo analyses, all from
# loopback: the per-address rate is raised so that they reach what they
# check (the rate limit itself has its tests in the server's edge_tests).
export FACEPAY_LIMITS__ENROLMENTS_PER_ADDRESS_PER_MINUTE=60000 FACEPAY_LIMITS__ENROLMENT_BURST_PER_ADDRESS=10000
export FACEPAY_LIMITS__PHOTO_ANALYSES_PER_ADDRESS_PER_MINUTE=60000 FACEPAY_LIMITS__PHOTO_ANALYSIS_BURST_PER_ADDRESS=10000
FACEPAY_SERVER__ADDRESS="127.0.0.1:$port" target/debug/facepay serve --demo >"$work/serve.log" 2>&1 &
server=$!
for ((try = 1; ; try++)); do
    if curl -fsS "$base/healthz" >/dev/null 2>&1; then
        break
    fi
    if ((try >= SERVER_START_TRIES)) || ! kill -0 "$server" 2>/dev/null; then
        echo "the server did not start:" >&2
        cat "$work/serve.log" >&2
        exit 1
    fi
    sleep 0.2
done

# Users of our own, enrolled through the API: enrol PERSON PHONE prints the
# token.
enrol() {
    "$py" - .facepay/verify/"$1" "$2" >"$work/enrol-$1.json" <<'PY'
import base64, json, pathlib, sys
first = sorted(pathlib.Path(sys.argv[1]).glob("*.jpg"))[0]
frame = base64.b64encode(first.read_bytes()).decode()
card = {"number": "5555555555554444", "expiry_month": 12, "expiry_year": 2031, "security_code": "737"}
print(json.dumps({"phone": sys.argv[2], "pin": "246810", "frames": [frame], "card": card}))
PY
    curl -fsS -X POST "$base/v1/users" -H "content-type: application/json" \
        -H "idempotency-key: api-check-$1" --data-binary "@$work/enrol-$1.json" >"$work/enrolled-$1.json"
    read_json "$work/enrolled-$1.json" token
}

# One field of a JSON file: read_json FILE KEY...
read_json() {
    "$py" -c 'import functools, json, sys; print(functools.reduce(lambda v, k: v[k], sys.argv[2:], json.load(open(sys.argv[1]))))' "$@"
}
# Assigned apart from `export`, so that a failing step stops the script.
FACEPAY_USER_TOKEN="$(enrol "$USER_PERSON" "$USER_PHONE")"
FACEPAY_SPARE_USER_TOKEN="$(enrol "$SPARE_PERSON" "$SPARE_PHONE")"
FACEPAY_MERCHANT_KEY="$(read_json "$data/demo-merchant.json" api_key)"
FACEPAY_OPERATOR_KEY="$(read_json "$data/demo-operator.json" operator_key)"
# The first member network's key, by name.
FACEPAY_MEMBER_KEY="$("$py" -c 'import json, sys; keys = json.load(open(sys.argv[1]))["member_keys"]; print(keys[min(keys)])' "$data/demo-hub.json")"
FACEPAY_TERMINAL_FILE="$data/demo-terminal.json"
# The demo's own parties, which the checks call with: hooks.py keeps the
# writes that would close, re-pair or revoke one away from them.
FACEPAY_PROTECTED_IDS="$("$py" - "$base" "$FACEPAY_MERCHANT_KEY" "$FACEPAY_OPERATOR_KEY" <<'PY'
import json, sys, urllib.request
base, merchant_key, operator_key = sys.argv[1:]
def keys(path, secret):
    request = urllib.request.Request(base + path, headers={"authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request) as answer:
        return {k["id"] for k in json.load(answer)["keys"]}
ids = {"mer_demo_cafe", "sto_demo_gangnam", "trm_demo_till1"}
ids |= keys("/v1/merchant/keys", merchant_key) | keys("/v1/operator/keys", operator_key)
print(",".join(sorted(ids)))
PY
)"
export FACEPAY_USER_TOKEN FACEPAY_SPARE_USER_TOKEN FACEPAY_MERCHANT_KEY FACEPAY_OPERATOR_KEY \
    FACEPAY_MEMBER_KEY FACEPAY_TERMINAL_FILE FACEPAY_PROTECTED_IDS

# The payment, with another photo of the user (and the phone's last digits
# if the fraud checks ask for them).
second_photo="$(find .facepay/verify/"$USER_PERSON"/ -name '*.jpg' | sort | sed -n 2p)"
target/debug/facepay terminal pay --server "$base" --terminal "$FACEPAY_TERMINAL_FILE" \
    --image "$second_photo" --amount 4500 --phone-last4 "${USER_PHONE: -4}" >"$work/pay.log" 2>&1 || {
    cat "$work/pay.log" >&2
    exit 1
}

curl -fsS "$base/openapi.json" >"$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

cd "$CHECKS"
"$venv/bin/st" --config-file schemathesis.toml run "$base/openapi.json" --checks all
