#!/bin/sh
# run-early-reply.sh - replies decided from the headers reach a client that
# writes its whole body before reading, Python's http.client (issue 11):
# with --max-body 1000000, ten 2 MB POSTs each read the 413 body_too_large,
# and ten to an unknown path read the 404, never a broken pipe or a reset.
# Exits non-zero when any check fails.
set -eu
cd "$(dirname "$0")/../.."
. tests/clients/lib.sh

start_daemon --max-body 1000000
out="$(/usr/bin/python3 - "$NND" <<'PY'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
body = b" " * (2 * 1000 * 1000)
for path, want, code in (("/v1/models", 413, "body_too_large"), ("/v1/nothing", 404, "not_found")):
    for i in range(10):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        try:
            # headers and the whole body first, then the reply, as
            # http.client always does
            c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            got = (r.status, json.loads(r.read()).get("code"))
        except OSError as e:
            got = (0, type(e).__name__)
        finally:
            c.close()
        print(path, *got)
PY
)"
check_eq "ten 2 MB bodies over --max-body each read the 413" \
	"$(printf '%s\n' "$out" | grep -c '^/v1/models 413 body_too_large$')" 10
check_eq "ten 2 MB bodies to an unknown path each read the 404" \
	"$(printf '%s\n' "$out" | grep -c '^/v1/nothing 404 not_found$')" 10
[ "$T_FAIL" = 0 ] || printf '%s\n' "$out" | sort | uniq -c
stop_daemon
finish
