#!/bin/sh
# run-web.sh - the dashboard in a real browser: headless Chromium (Debian's
# chromium-headless-shell) driven over its DevTools protocol by
# tests/web/browser_test.py, against two real daemons (one open, one with an
# API key). Screenshots of each page go to build/web-shots/. Skipped (77)
# when Chromium or python3-websocket is missing.
set -u
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import websocket' 2>/dev/null; then
	echo "SKIP: python3-websocket is missing (scripts/install-deps installs it)"
	exit 77
fi
if [ -z "$("$PY" -c 'import sys; sys.path.insert(0, "tests/web"); import cdp; print(cdp.find_chromium() or "")')" ]; then
	echo "SKIP: no headless Chromium (chromium-headless-shell; scripts/install-deps installs it)"
	exit 77
fi
. tests/clients/lib.sh
unset NND_API_KEY
start_daemon
NND_OPEN="$NND"
KEY="web-test-key-$$-x9"
printf '%s\n' "$KEY" >"$T_TMP/key"
start_daemon --api-key-file "$T_TMP/key"
NND_KEYED="$NND"
mkdir -p build/web-shots
NND_OPEN="$NND_OPEN" NND_KEYED="$NND_KEYED" NND_KEY="$KEY" SHOTS=build/web-shots \
	"$PY" tests/web/browser_test.py
