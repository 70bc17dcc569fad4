#!/bin/sh
# follow.sh - prints a training job's live events (its Server-Sent Events
# stream) as lines until the job ends; exits 0 when it succeeded, 1 when it
# failed or was cancelled.
#
#   follow.sh JOB_ID
#
# Lines: "step N  epoch E  loss L  lr X", "epoch E  train_loss ...  val_loss ...
# val_accuracy ...", "state S". Needs only curl and awk.
# Environment: NND, NND_API_KEY (see common.sh).
set -eu
. "$(dirname "$0")/common.sh"

case "${1:-}" in
""|-h|--help)
	sed -n '2,11s/^# \{0,1\}//p' "$0"
	[ -n "${1:-}" ]; exit
	;;
esac
job="$1"
# The job must exist: this turns a bad id into the server's message.
nnd_curl GET "/v1/jobs/$job" >/dev/null

# mawk reads pipes in blocks unless told to be interactive.
awk_cmd="awk"
if awk -W version 2>&1 | grep -q mawk; then
	awk_cmd="awk -W interactive"
fi
set -- -sS -N -H 'Accept: text/event-stream'
[ -z "${NND_API_KEY:-}" ] || set -- "$@" -H "Authorization: Bearer $NND_API_KEY"
curl "$@" "$NND/v1/jobs/$job/events" | $awk_cmd '
function val(k,    m) {
	if (!match(data, "\"" k "\"[ ]*:[ ]*(\"[^\"]*\"|[^,}]*)"))
		return "-"
	m = substr(data, RSTART, RLENGTH)
	sub(/^"[^"]*"[ ]*:[ ]*/, "", m)
	gsub(/"/, "", m)
	return m
}
function dispatch() {
	if (ev == "step")
		printf "step %s  epoch %s  loss %s  lr %s\n", val("step"), val("epoch"), val("loss"), val("lr")
	else if (ev == "epoch")
		printf "epoch %s  train_loss %s  val_loss %s  val_accuracy %s  seconds %s\n", val("epoch"),
		       val("train_loss"), val("val_loss"), val("val_accuracy"), val("seconds")
	else if (ev == "state") {
		state = val("state")
		printf "state %s\n", state
		if (state == "failed")
			printf "error %s\n", val("detail")
	}
	fflush()
}
{ sub(/\r$/, "") }
/^event:/ { ev = substr($0, 7); sub(/^ /, "", ev); next }
/^data:/ { d = substr($0, 6); sub(/^ /, "", d); data = data == "" ? d : data "\n" d; next }
/^$/ { if (data != "") dispatch(); ev = ""; data = ""; next }
END {
	if (data != "") dispatch()
	exit state == "succeeded" ? 0 : 1
}'
