#!/bin/sh
# predict.sh - asks nnd for predictions and prints one line per row: the label
# (classification) or the outputs (regression); the raw JSON reply when jq is
# not installed.
#
#   predict.sh MODEL_ID ROWS
#
# ROWS: a JSON file ([[...], ...] or {"instances": ...}), a CSV file of numbers
# (a header line is skipped), inline JSON ('[[1, 2], [3, 4]]'), or - for stdin.
# Environment: NND, NND_API_KEY (see common.sh).
set -eu
. "$(dirname "$0")/common.sh"

[ $# -eq 2 ] || {
	sed -n '2,11s/^# \{0,1\}//p' "$0"
	case "${1:-}" in -h|--help) exit 0 ;; esac
	exit 2
}
model="$1"; rows="$2"
case "$rows" in
\[*|\{*) text="$rows" ;;
-) text="$(cat)" ;;
*) [ -r "$rows" ] || nnd_die "cannot read $rows"; text="$(cat "$rows")" ;;
esac
case "$(printf '%s' "$text" | tr -d ' \t\r\n' | cut -c1)" in
\{) body="$text" ;;
\[) body="{\"instances\": $text}" ;;
*)  # CSV: numbers only; a first line holding anything else is a header
	body="{\"instances\": [$(printf '%s\n' "$text" | tr -d '\r' | awk '
		NR == 1 && $0 ~ /[^-+0-9.eE, \t]/ { next }
		/^[ \t]*$/ { next }
		{ printf "%s[%s]", (n++ ? "," : ""), $0 }')]}"
	;;
esac
reply="$(nnd_curl POST "/v1/models/$model/predict" -H 'Content-Type: application/json' --data-binary "$body")"
if [ -n "$NND_JQ" ]; then
	printf '%s' "$reply" | jq -r '.predictions[] | if type == "object" then .label else map(tostring) | join(" ") end'
else
	printf '%s\n' "$reply"
fi
