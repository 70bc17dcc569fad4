#!/bin/sh
# run-api.sh - the daemon's side of the dashboard, with curl against a real
# daemon: GET / redirects to /ui/; the pages, script and style come from the
# binary, gzip-compressed when accepted and plain otherwise, with a
# Content-Security-Policy allowing no other origin; GET /v1/events streams
# every job's state events (epochs too with ?all=true) from the moment of
# connecting; ?max_points= thins the metric history; plot.svg draws it; with
# an API key the pages stay open and the API does not.
set -u
cd "$(dirname "$0")/../.."
. tests/clients/lib.sh
unset NND_API_KEY
start_daemon
W="$T_TMP"

# -- the pages
hdr="$(curl -sS -o /dev/null -D - "$NND/")"
check_match "GET / is a 302" "$hdr" '^HTTP/1.1 302'
check_match "GET / points to /ui/" "$hdr" '^Location: /ui/'
curl -sS -D "$W/h1" -H 'Accept-Encoding: gzip' -o "$W/index.gz" "$NND/ui/"
check_match "the page is gzip-compressed when accepted" "$(cat "$W/h1")" '^Content-Encoding: gzip'
check_eq "the compressed page inflates to clients/web/index.html" "$(gzip -dc "$W/index.gz" | cmp - clients/web/index.html && echo same)" same
curl -sS -D "$W/h2" -o "$W/index.txt" "$NND/ui/jobs/job_0123456789abcdef"
check_eq "a page path without Accept-Encoding gets the plain page" "$(cmp "$W/index.txt" clients/web/index.html && echo same)" same
check_eq "no Content-Encoding on the plain page" "$(grep -ci '^Content-Encoding' "$W/h2")" 0
check_match "the page's CSP allows no other origin" "$(cat "$W/h2")" "^Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'"
check_match "the script is JavaScript" "$(curl -sS -D - -o "$W/app.js" "$NND/ui/app.js")" '^Content-Type: text/javascript'
check_match "the script carries uPlot" "$(head -c 2000 "$W/app.js")" 'uPlot'
check_eq "the script ends with clients/web/app.js" "$(tail -c "$(wc -c <clients/web/app.js)" "$W/app.js" | cmp - clients/web/app.js && echo same)" same
check_match "the style sheet is CSS" "$(curl -sS -D - -o /dev/null "$NND/ui/app.css")" '^Content-Type: text/css'
check_eq "an unknown page is a 404" "$(curl -sS -o /dev/null -w '%{http_code}' "$NND/ui/nothing")" 404
check_eq "a page with a malformed id is a 404" "$(curl -sS -o /dev/null -w '%{http_code}' "$NND/ui/jobs/job_12")" 404
total=$(( $(curl -sS -H 'Accept-Encoding: gzip' "$NND/ui/" | wc -c) + $(curl -sS -H 'Accept-Encoding: gzip' "$NND/ui/app.js" | wc -c) + $(curl -sS -H 'Accept-Encoding: gzip' "$NND/ui/app.css" | wc -c) ))
check_eq "the page and its code are at most 150 KB compressed ($total bytes)" "$([ "$total" -le 153600 ] && echo yes)" yes
check_eq "no reference to another origin in the page or its code" \
	"$(cat clients/web/index.html clients/web/app.js clients/web/app.css | grep -Eo '(src|href)="https?://[^"]*"|url\((https?:)?//|@import' | head -n 3)" ""

# -- the all-jobs stream
write_sep_csv "$W/sep.csv"
DS=$(curl -sS -H 'Content-Type: text/csv' --data-binary @"$W/sep.csv" "$NND/v1/datasets?name=sep" | jget 'j["id"]')
M=$(curl -sS -H 'Content-Type: application/json' "$NND/v1/models" -d '{"task":"classification","inputs":2,"outputs":2,"seed":1,"layers":[{"type":"dense","units":8,"activation":"tanh"}]}' | jget 'j["id"]')
curl -sSN "$NND/v1/events?all=true" >"$W/all.sse" 2>/dev/null &
P1=$!
curl -sSN "$NND/v1/events?format=ndjson" >"$W/states.ndjson" 2>/dev/null &
P2=$!
T_PIDS="$T_PIDS $P1 $P2"
sleep 0.5
J=$(curl -sS -H 'Content-Type: application/json' "$NND/v1/jobs" -d "{\"model\":\"$M\",\"dataset\":\"$DS\",\"epochs\":40,\"batch_size\":4,\"seed\":1,\"log_every_steps\":1,\"optimizer\":{\"type\":\"adam\",\"lr\":0.05}}" | jget 'j["id"]')
i=0
until [ "$(curl -sS "$NND/v1/jobs/$J" | jget 'j["state"]')" = succeeded ] || [ $i -gt 200 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.3
kill $P1 $P2 2>/dev/null
check_eq "the all-jobs stream has the job's states in order" \
	"$(python3 -c '
import json,sys
ev=[json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("data: ")]
print(" ".join(e["state"] for e in ev if "state" in e and e.get("id")==sys.argv[2]))' "$W/all.sse" "$J")" "queued running succeeded"
check_eq "with all=true it has the 40 epochs, each naming the job" \
	"$(python3 -c '
import sys
blocks=open(sys.argv[1]).read().split("\n\n")
import json
ep=[json.loads(b.split("data: ",1)[1]) for b in blocks if b.startswith("event: epoch")]
print(len(ep), all(e["job"]==sys.argv[2] for e in ep), [e["epoch"] for e in ep]==list(range(40)))' "$W/all.sse" "$J")" "40 True True"
check_eq "the all-jobs stream has no step events" "$(grep -c '^event: step' "$W/all.sse")" 0
check_eq "ids are the events' sequence numbers" \
	"$(grep '^id: ' "$W/all.sse" | sed 's/id: //' | python3 -c 'import sys; v=[int(l) for l in sys.stdin]; print(v==list(range(v[0],v[0]+len(v))))')" True
check_eq "without all=true: state events only (ndjson)" \
	"$(python3 -c '
import json,sys
ev=[json.loads(l) for l in open(sys.argv[1])]
print(sorted(set(e["event"] for e in ev)), len(ev))' "$W/states.ndjson")" "['state'] 3"
last=$(grep '^id: ' "$W/all.sse" | sed -n 2p | sed 's/id: //')
curl -sSN --max-time 1 -H "Last-Event-ID: $last" "$NND/v1/events?all=true" >"$W/resume.sse" 2>/dev/null
check_eq "Last-Event-ID resumes after that event" \
	"$(grep -c '^event: ' "$W/resume.sse") $(grep '^id: ' "$W/resume.sse" | head -n 1 | sed 's/id: //')" \
	"$(( $(grep -c '^event: ' "$W/all.sse") - 2 )) $((last + 1))"
check_eq "a bad all= is a 422 naming it" "$(curl -sS "$NND/v1/events?all=yes" | jget 'j["errors"][0]["field"]')" all

# -- thinned history and the server's plot
check_eq "max_points=10 keeps at most 10 points per curve, marked" \
	"$(curl -sS "$NND/v1/jobs/$J/metrics?max_points=10" | jget '[j["downsampled"], max(sum(1 for r in j["epochs"] if "val_loss" in r or "train_loss" in r) for _ in [0]) <= 20, sum(1 for r in j["epochs"] if "train_loss" in r) <= 10, sum(1 for r in j["steps"] if "loss" in r) <= 10]')" \
	"[true, true, true, true]"
check_eq "the thinned history keeps the lowest train loss" \
	"$(curl -sS "$NND/v1/jobs/$J/metrics" | jget 'min(r["train_loss"] for r in j["epochs"])')" \
	"$(curl -sS "$NND/v1/jobs/$J/metrics?max_points=4" | jget 'min(r["train_loss"] for r in j["epochs"] if "train_loss" in r)')"
check_eq "max_points=1000 leaves 40 epochs alone" "$(curl -sS "$NND/v1/jobs/$J/metrics?max_points=1000" | jget '[j["downsampled"], len(j["epochs"])]')" "[false, 40]"
check_eq "max_points=1 is a 422 naming it" "$(curl -sS "$NND/v1/jobs/$J/metrics?max_points=1" | jget 'j["errors"][0]["field"]')" max_points
curl -sS -D "$W/h3" -o "$W/plot.svg" "$NND/v1/jobs/$J/plot.svg?metrics=train_loss,val_accuracy&log_y=true"
check_match "plot.svg is image/svg+xml" "$(cat "$W/h3")" '^Content-Type: image/svg\+xml'
check_match "plot.svg is an SVG document with the job in its title" "$(head -c 200 "$W/plot.svg")" '^<svg xmlns="http://www.w3.org/2000/svg"'
check_eq "plot.svg draws the two asked curves, titled" "$(grep -c '<path ' "$W/plot.svg") $(grep -c ">$J (model $M, succeeded)</text>" "$W/plot.svg")" "2 1"
check_eq "an unknown metric is a 422 naming metrics" "$(curl -sS "$NND/v1/jobs/$J/plot.svg?metrics=nope" | jget 'j["errors"][0]["field"]')" metrics
check_eq "plot.svg of an unknown job is a 404" "$(curl -sS -o /dev/null -w '%{http_code}' "$NND/v1/jobs/job_0000000000000000/plot.svg")" 404
stop_daemon

# -- with an API key: pages open, API closed
printf 'sekrit-key-123\n' >"$W/key"
start_daemon --api-key-file "$W/key"
check_eq "with a key the page is still served" "$(curl -sS -o /dev/null -w '%{http_code}' "$NND/ui/")" 200
check_eq "with a key /v1/events needs it" "$(curl -sS -o /dev/null -w '%{http_code}' "$NND/v1/events")" 401
check_eq "with a key plot.svg needs it" "$(curl -sS -o /dev/null -w '%{http_code}' "$NND/v1/jobs/job_0000000000000000/plot.svg")" 401
check_eq "with the key /v1/events answers" \
	"$(curl -sS -o /dev/null --max-time 1 -w '%{http_code}' -H 'Authorization: Bearer sekrit-key-123' "$NND/v1/events" 2>/dev/null)" 200
finish
