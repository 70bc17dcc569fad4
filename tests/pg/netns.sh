#!/bin/sh
# netns.sh - daemons "on different hosts": three network namespaces this
# script makes (nnd-db, nnd-h1, nnd-h2), joined by veth pairs with
# addresses inside them only (10.77.1.0/24 and 10.77.2.0/24). PostgreSQL
# runs in nnd-db, listening on TCP there; one daemon in each of nnd-h1 and
# nnd-h2 reaches it over TCP. A job submitted to busy h1 runs on h2, h1
# streams it to its end, and both predict with its version. Everything is
# removed at the end. SKIP (77) without PostgreSQL or without the right to
# make namespaces.
cd "$(dirname "$0")/../.." || exit 1
PG_NOSYNC=${PG_NOSYNC:-1}   # a throwaway cluster: no fsyncs (tests/pg/lib.sh)
. tests/pg/lib.sh
pg_have || { echo "SKIP: PostgreSQL 15 binaries missing"; exit 77; }
ip netns add nnd-db 2>/dev/null || { echo "SKIP: cannot make network namespaces"; exit 77; }
ip netns add nnd-h1 && ip netns add nnd-h2 || exit 1
# the processes inside the namespaces made here are this script's daemons
ns_kill() {
	for p in $(ip netns pids "$2" 2>/dev/null); do kill "-$1" "$p" 2>/dev/null; done
}
cleanup() {
	ns_kill TERM nnd-h1; ns_kill TERM nnd-h2
	# up to 2 s for them to exit, then SIGKILL what is left
	i=0
	while [ $i -lt 40 ] && [ -n "$(ip netns pids nnd-h1 2>/dev/null; ip netns pids nnd-h2 2>/dev/null)" ]; do
		sleep 0.05; i=$((i + 1))
	done
	ns_kill KILL nnd-h1; ns_kill KILL nnd-h2
	pg_stop
	ip netns del nnd-h1 2>/dev/null; ip netns del nnd-h2 2>/dev/null; ip netns del nnd-db 2>/dev/null
	rm -rf "$T"
}
T=$(mktemp -d /tmp/nnd-netns.XXXXXX)
trap cleanup EXIT   # set again after pg_start, which sets its own
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
for h in 1 2; do
	ip link add nnd-v$h-db type veth peer name nnd-v$h-h || exit 1
	ip link set nnd-v$h-db netns nnd-db
	ip link set nnd-v$h-h netns nnd-h$h
	ip -n nnd-db addr add 10.77.$h.1/24 dev nnd-v$h-db
	ip -n nnd-h$h addr add 10.77.$h.2/24 dev nnd-v$h-h
	ip -n nnd-db link set nnd-v$h-db up
	ip -n nnd-h$h link set nnd-v$h-h up
	ip -n nnd-h$h link set lo up
done
ip -n nnd-db link set lo up
PG_EXEC="ip netns exec nnd-db"; PG_LISTEN="10.77.1.1,10.77.2.1"; PG_PORT=5432
pg_start >/dev/null ||
	{ echo "FAIL: PostgreSQL in nnd-db"; exit 1; }
trap cleanup EXIT
NND_BIN=${NND_BIN:-bin}
start() {   # start HOST: the daemon in nnd-hHOST over TCP to 10.77.HOST.1
	ip netns exec nnd-h$1 "$NND_BIN/nnd" --listen 127.0.0.1:0 --workers 1 --data-dir "$T/d$1" \
		--store "postgresql://nnd@10.77.$1.1:5432/nnd?options=-csearch_path%3Dhosts" \
		2>"$T/h$1.log" >/dev/null &
	eval "P$1=$!"
	for i in $(seq 1 100); do
		port=$(head -1 "$T/h$1.log" | sed -n 's/^listening on .*://p')
		[ -n "$port" ] && ip netns exec nnd-h$1 curl -sf "http://127.0.0.1:$port/readyz" >/dev/null &&
			{ eval "PORT$1=$port"; return 0; }
		sleep 0.1
	done
	echo "FAIL: daemon on h$1"; cat "$T/h$1.log"; exit 1
}
url() { eval "echo http://127.0.0.1:\$PORT$1$2"; }
start 1
start 2
printf 'x,y,c\n1,2,a\n2,1,b\n3,4,a\n4,3,b\n' >"$T/d.csv"
DS=$(ip netns exec nnd-h1 curl -sS -H 'Content-Type: text/csv' --data-binary @"$T/d.csv" \
	"$(url 1 /v1/datasets)" | grep -o 'ds_[0-9a-f]\{16\}' | head -1)
model() {
	ip netns exec nnd-h1 curl -sS -H 'Content-Type: application/json' "$(url 1 /v1/models)" -d \
		'{"task":"classification","inputs":2,"outputs":2,"seed":1,"layers":[{"type":"dense","units":8,"activation":"tanh"}]}' |
		grep -o 'mdl_[0-9a-f]\{16\}' | head -1
}
job() {
	ip netns exec nnd-h1 curl -sS -H 'Content-Type: application/json' "$(url 1 /v1/jobs)" -d \
		'{"model":"'"$1"'","dataset":"'"$DS"'","epochs":'"$2"',"batch_size":2,"seed":1}' |
		grep -o 'job_[0-9a-f]\{16\}' | head -1
}
# h1's one worker busy with a long job (unless h2 took it: then h2 is busy)
M1=$(model); L=$(job "$M1" 100000000)
sleep 1
M2=$(model); J=$(job "$M2" 200)
ip netns exec nnd-h1 curl -sS -N "$(url 1 "/v1/jobs/$J/events?format=ndjson")" >"$T/stream"
tail -1 "$T/stream" | grep -q '"state":"succeeded"' || fail "h1's stream of $J: $(tail -c 200 "$T/stream")"
ran1=$(grep -c "$J: starting" "$T/h1.log"); ran2=$(grep -c "$J: starting" "$T/h2.log")
[ $((ran1 + ran2)) = 1 ] && [ "$(grep -c "$L: starting" "$T/h$((ran1 + 1)).log")" = 0 ] ||
	fail "job $J started $ran1 times on h1, $ran2 on h2 (the long job on the other)"
for h in 1 2; do
	v=$(ip netns exec nnd-h$h curl -sS -H 'Content-Type: application/json' \
		"$(url $h "/v1/models/$M2/predict")" -d '{"instances":[[1,2]]}' | grep -o '"model_version":[0-9]*')
	[ "$v" = '"model_version":1' ] || fail "h$h predicts with $v"
done
ip netns exec nnd-h2 curl -sS -X POST "$(url 2 "/v1/jobs/$L/cancel")" >/dev/null
echo "netns: job $J ran on h$([ $ran2 = 1 ] && echo 2 || echo 1) over TCP, streamed by h1; $FAILS failed"
[ $FAILS = 0 ]
