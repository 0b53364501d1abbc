#!/usr/bin/env bash
# Times a server's start: `facepay serve` from its launch to its
# "facepay listening" line, N times (default 3). Each start is stopped with
# SIGTERM once its snapshot is settled at start (written, or found up to
# date; at once when it keeps none), so the next one reads that snapshot.
#
# The store and the gallery come from the environment, as for any
# `facepay serve` (FACEPAY_STORE__URL, FACEPAY_STORE__DATA_DIR,
# FACEPAY_GALLERY__KIND, FACEPAY_GALLERY__SNAPSHOT_FILE, ...). With no
# snapshot file yet, the first start reads the store and writes it.
#
#   scripts/time-start.sh [N] [serve arguments, e.g. --demo]
#
# FACEPAY_BIN names the binary (default: the release build). Each start's
# log is kept in a temporary directory, printed at the end.
set -euo pipefail
N=${1:-3}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N] [serve arguments]" >&2; exit 2; }
shift || true
BIN=${FACEPAY_BIN:-target/release/facepay}
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release --bin facepay" >&2; exit 1; }
# A start from the store at ten million took 11 minutes on two cores.
START_S_MAX=3600
LOGS=$(mktemp -d)
pid=
trap '[[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null' EXIT

wait_for() { # pattern, log, pid
  local deadline=$((SECONDS + START_S_MAX))
  until grep -Eq "$1" "$2"; do
    kill -0 "$3" 2>/dev/null || { echo "facepay serve ended:" >&2; tail -20 "$2" >&2; exit 1; }
    ((SECONDS < deadline)) || { kill -TERM "$3"; echo "no \"$1\" within ${START_S_MAX} s" >&2; exit 1; }
    sleep 0.05
  done
}

for run in $(seq 1 "$N"); do
  log=$LOGS/start-$run.log
  started=$(date +%s%6N)
  # Info, whatever the caller's RUST_LOG: the lines waited for are info.
  NO_COLOR=1 RUST_LOG=info "$BIN" serve "$@" >"$log" 2>&1 &
  pid=$!
  wait_for "facepay listening" "$log" "$pid"
  listening=$(date +%s%6N)
  from=$(grep -q "restored=true" "$log" && echo snapshot || echo store)
  awk -v run="$run" -v from="$from" -v s="$((listening - started))" \
    'BEGIN { printf "start %s, from the %s: listening after %.1f s\n", run, from, s / 1e6 }'
  { grep -E "face models loaded|gallery (loaded|restored)" "$log" || true; } | sed 's/^[^ ]* *//' | cut -c1-160
  if [[ -n ${FACEPAY_GALLERY__SNAPSHOT_FILE:-} ]]; then
    wait_for "gallery snapshot ((not )?written|up to date)" "$log" "$pid"
  fi
  kill -TERM "$pid"
  wait "$pid"
  pid=
done
echo "logs: $LOGS"
