#!/bin/sh
# run-readme.sh - runs README.md's curl walk-through (the sh block between
# <!-- walkthrough:begin --> and <!-- walkthrough:end -->) verbatim with
# `sh -eu` against a daemon, and checks what it printed: the ids, the event
# stream ending with a succeeded state, and the predicted labels.
# The daemon is ${NND_BIN:-bin}/nnd on an ephemeral port, or the one at
# $NND_README_SERVER when that is set (scripts/container-test uses this).
set -u
cd "$(dirname "$0")/../.."
. tests/clients/lib.sh
W="$T_TMP"

sed -n '/<!-- walkthrough:begin -->/,/<!-- walkthrough:end -->/p' README.md |
	sed '1d;$d' | sed '/^```/d' >"$W/walkthrough.sh"
check_match "README has a walk-through block" "$(wc -l <"$W/walkthrough.sh")" '^ *[1-9][0-9]+$'
check_match "README keeps its two commands" "$(cat README.md)" '^make run  '
check_match "README keeps make check" "$(cat README.md)" '^make check  '

if [ -n "${NND_README_SERVER:-}" ]; then
	NND="$NND_README_SERVER"
	export NND
else
	unset NND_API_KEY
	start_daemon
fi
mkdir -p "$W/run"
(cd "$W/run" && sh -eu "$W/walkthrough.sh") >"$W/out" 2>"$W/err"
rc=$?
check_eq "the walk-through runs to its end (sh -eu)" "$rc" 0
[ "$rc" = 0 ] || { echo "--- stdout"; tail -n 20 "$W/out"; echo "--- stderr"; cat "$W/err"; }
out="$(cat "$W/out")"
check_match "it prints the data set id" "$out" '^data set: ds_[0-9a-f]{16}$'
check_match "it prints the model id" "$out" '^model: mdl_[0-9a-f]{16}$'
check_match "it prints the job id" "$out" '^job: job_[0-9a-f]{16}$'
check_match "the stream carries step events" "$out" '^event: ?step$'
check_match "the stream carries epoch events" "$out" '^event: ?epoch$'
check_match "the stream ends with the succeeded state" \
	"$(grep '^data:' "$W/out" | tail -n 1)" '"state": ?"succeeded"'
last="$(tail -n 1 "$W/out")"
check_eq "the predictions: above, then below" \
	"$(printf '%s' "$last" | jget '[p["label"] for p in j["predictions"]]')" '["above", "below"]'
check_eq "the prediction uses version 1" "$(printf '%s' "$last" | jget 'j["model_version"]')" 1
finish
