#!/bin/sh
# run-python.sh - runs the Python client's unit tests (clients/python), which
# start their own daemons from ${NND_BIN:-bin}/nnd on ephemeral ports with
# temporary data directories. Exits non-zero when any test fails.
set -eu
cd "$(dirname "$0")/../.."
NND_BIN="${NND_BIN:-bin}"
case "$NND_BIN" in /*) ;; *) NND_BIN="$(pwd)/$NND_BIN" ;; esac
export NND_BIN
[ -x "$NND_BIN/nnd" ] || { echo "run-python: $NND_BIN/nnd is missing (make bin/nnd)" >&2; exit 1; }
cd clients/python
exec python3 -m unittest -v test_nnd_client
