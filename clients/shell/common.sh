# common.sh - shared by the nnd shell scripts (sourced, not run): the server
# address, the API key header, a curl wrapper that turns problem+json replies
# into a message on stderr and a non-zero status, and JSON field extraction
# with jq when it is installed, or sed when it is not (NND_NO_JQ=1 forces sed).
#
# Environment: NND (or NND_SERVER) the daemon's URL, default http://127.0.0.1:8080;
# NND_API_KEY the bearer key, when the daemon has one.

NND="${NND:-${NND_SERVER:-http://127.0.0.1:8080}}"
NND="${NND%/}"

if [ -z "${NND_NO_JQ:-}" ] && command -v jq >/dev/null 2>&1; then
	NND_JQ=1
else
	NND_JQ=
fi

nnd_die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# nnd_field NAME: the first value of the JSON field NAME on stdin (a string
# unquoted, a number, true/false/null). With jq the field is the top-level one.
nnd_field() {
	if [ -n "$NND_JQ" ]; then
		jq -r --arg k "$1" '.[$k] // empty | if type == "object" or type == "array" then tojson else . end'
	else
		tr -d '\n' | sed -n "s/^[^\"]*\(\"[^\"]*\"[^\"]*\)*\"$1\"[[:space:]]*:[[:space:]]*//p" |
			sed -n 's/^"\([^"]*\)".*/\1/p; t; s/^\([-+.eE0-9a-z]*\).*/\1/p'
	fi
}

# nnd_curl METHOD PATH [curl options...]: sends the request, prints the reply
# body on stdout when the status is 2xx; otherwise prints the problem's detail
# (and any field errors) on stderr and returns 1.
nnd_curl() {
	_m="$1"; _p="$2"; shift 2
	_out="$(mktemp)" || return 1
	if [ -n "${NND_API_KEY:-}" ]; then
		set -- -H "Authorization: Bearer $NND_API_KEY" "$@"
	fi
	_code="$(curl -sS -X "$_m" -o "$_out" -w '%{http_code}' "$@" "$NND$_p")" || {
		rm -f "$_out"
		echo "${0##*/}: cannot reach $NND" >&2
		return 1
	}
	case "$_code" in
	2??)
		cat "$_out"
		rm -f "$_out"
		return 0
		;;
	esac
	_detail="$(nnd_field detail <"$_out")"
	[ -n "$_detail" ] || _detail="$(nnd_field title <"$_out")"
	[ -n "$_detail" ] || _detail="HTTP $_code"
	echo "${0##*/}: $_detail" >&2
	if [ -n "$NND_JQ" ]; then
		jq -r '.errors[]? | "  \(.field): \(.message)"' <"$_out" >&2 2>/dev/null || :
	fi
	rm -f "$_out"
	return 1
}
