#!/usr/bin/env bash
# Create the Python venv that runs the peer benchmarks: OpenCV (scripts/bench_peer.py)
# and FAISS (scripts/bench_gallery_peer.py).
#
# The venv lives at ${FACEPAY_HOME:-.facepay}/venv-peer, relative to the repo root
# unless FACEPAY_HOME is absolute. It holds pinned OpenCV, FAISS (faiss-cpu) and numpy
# wheels from PyPI, installed with the venv's own pip. A second run finds them in place
# and does nothing; when PINS change, the next run installs the new set into the
# existing venv. The last line printed is the venv's python (absolute path), so
# callers can do
#   PY=$(scripts/peer-venv.sh | tail -n 1)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# numpy 2.4.6 is what pip resolves for opencv-python-headless 5.0.0.93 (numpy>=2) on CPython 3.11.
# faiss-cpu 1.15.1 (abi3 wheel, CPython >= 3.10) needs numpy>=1.25, met by that pin, and
# packaging, pinned here at the version pip resolves so that every wheel is pinned.
readonly PINS=(opencv-python-headless==5.0.0.93 numpy==2.4.6 faiss-cpu==1.15.1 packaging==26.3)
readonly VENV="${FACEPAY_HOME:-.facepay}/venv-peer"
readonly MARKER="$VENV/.facepay-peer-pins"
readonly PY="$VENV/bin/python"

if [[ -x "$PY" && -f "$MARKER" && "$(cat "$MARKER")" == "${PINS[*]}" ]]; then
    echo "peer venv up to date: ${PINS[*]}" >&2
else
    if [[ ! -x "$PY" ]]; then
        echo "creating venv $VENV" >&2
        "${PYTHON:-python3}" -m venv "$VENV"
    fi
    echo "installing ${PINS[*]}" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
    "$PY" -c 'import cv2, faiss, numpy; print("cv2", cv2.__version__, "faiss", faiss.__version__, "numpy", numpy.__version__)' >&2
    echo "${PINS[*]}" > "$MARKER"
fi

echo "$(cd "$VENV/bin" && pwd)/python"
