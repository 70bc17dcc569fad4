#!/bin/sh
# run-load.sh - the load test in make check: bench/load for 5 s (single-row
# predictions at full speed from wrk while two training jobs run) must see
# no socket errors, only 2xx replies, and both jobs still running at the end.
set -eu
cd "$(dirname "$0")/../.."
exec bench/load --seconds 5 --check
