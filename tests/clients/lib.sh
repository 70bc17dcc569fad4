# lib.sh - shared by tests/clients/run-*.sh (sourced): starts a daemon from
# ${NND_BIN:-bin}/nnd on an ephemeral loopback port with a temporary data
# directory, stops it on exit, and counts checks. Run from the repository root.

NND_BIN="${NND_BIN:-bin}"
case "$NND_BIN" in /*) ;; *) NND_BIN="$(pwd)/$NND_BIN" ;; esac
T_PASS=0
T_FAIL=0
T_TMP="$(mktemp -d "${TMPDIR:-/tmp}/nnd-clients.XXXXXX")"
T_PIDS=""

# start_daemon [nnd options...]: sets NND (and NND_SERVER) to the daemon's URL
# and NND_PID. Environment variables given before the call reach the daemon.
start_daemon() {
	[ -x "$NND_BIN/nnd" ] || { echo "FATAL: $NND_BIN/nnd is missing (make bin/nnd)" >&2; exit 1; }
	_d="$(mktemp -d "$T_TMP/daemon.XXXXXX")"
	"$NND_BIN/nnd" --listen 127.0.0.1:0 --data-dir "$_d/data" --workers 2 "$@" 2>"$_d/stderr" &
	NND_PID=$!
	T_PIDS="$T_PIDS $NND_PID"
	NND_LOG="$_d/stderr"
	_i=0
	while :; do
		# the file may not exist yet: not a failure (set -e)
		_line="$(head -n 1 "$_d/stderr" 2>/dev/null || :)"
		case "$_line" in "listening on "*) break ;; esac
		_i=$((_i + 1))
		if [ $_i -gt 200 ] || ! kill -0 "$NND_PID" 2>/dev/null; then
			echo "FATAL: nnd did not start:" >&2
			cat "$_d/stderr" >&2
			exit 1
		fi
		sleep 0.05
	done
	NND="http://${_line#listening on }"
	NND_SERVER="$NND"
	export NND NND_SERVER
	_i=0
	until curl -sf "$NND/readyz" >/dev/null 2>&1; do
		_i=$((_i + 1))
		[ $_i -lt 200 ] || { echo "FATAL: nnd never became ready" >&2; exit 1; }
		sleep 0.05
	done
}

# reap PID: SIGTERM, then waits for it; SIGKILL after 10 s. A signal sent
# between the fork and the daemon's handlers can be lost (the forked shell
# swallows it), and a wait without a bound then hangs the whole run.
reap() {
	kill "$1" 2>/dev/null || return 0
	(sleep 10; kill -9 "$1" 2>/dev/null) &
	_w=$!
	wait "$1" 2>/dev/null || :
	kill "$_w" 2>/dev/null || :
	wait "$_w" 2>/dev/null || :
}

stop_daemon() {
	if [ -n "${NND_PID:-}" ] && kill -0 "$NND_PID" 2>/dev/null; then
		reap "$NND_PID"
	fi
	NND_PID=""
}

t_cleanup() {
	for _p in $T_PIDS; do
		reap "$_p"
	done
	rm -rf "$T_TMP"
}
trap t_cleanup EXIT
trap 'exit 130' INT TERM

ok() { T_PASS=$((T_PASS + 1)); echo "ok   $1"; }
not_ok() { T_FAIL=$((T_FAIL + 1)); echo "FAIL $1"; [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/     /'; }

# check_eq NAME GOT WANT
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:  $2
want: $3"; fi
}

# check_match NAME TEXT PATTERN (grep -E)
check_match() {
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then ok "$1"; else not_ok "$1" "no /$3/ in:
$2"; fi
}

# jget EXPR < JSON: a value from JSON by a Python expression on j (python3 is
# a build dependency; jq may be absent).
jget() {
	python3 -c 'import json,sys; j=json.load(sys.stdin); v=eval(sys.argv[1]); print(json.dumps(v) if isinstance(v,(dict,list,bool)) or v is None else v)' "$1"
}

# The separable CSV: class pos when x0 + x1 > 0.
write_sep_csv() {
	cat >"$1" <<'CSV'
x0,x1,label
2,1.5,pos
1,2.5,pos
3,0.5,pos
1.5,1,pos
2.5,2,pos
0.5,3,pos
-2,-1.5,neg
-1,-2.5,neg
-3,-0.5,neg
-1.5,-1,neg
-2.5,-2,neg
-0.5,-3,neg
CSV
}

finish() {
	echo "$T_PASS passed, $T_FAIL failed"
	[ "$T_FAIL" = 0 ]
}
