#!/bin/sh
# bench/pg.sh - several daemons on one PostgreSQL store (a throwaway
# cluster, tests/pg/lib.sh), measured on this machine; every row is a
# figure of this run and, where it has a peer, a ratio (never pass/fail):
#   1. tiny jobs claimed and finished per second by 1, 2 and 3 daemons
#   2. time from a job's submission on busy daemon A to its start on idle B
#   3. time for another daemon to take over a killed daemon's job, against
#      the lease (2 s and 4 s)
#   4. upload and training with the PostgreSQL store against SQLite (ratios)
# Run from the repository root after make: bench/pg.sh [--quick]
cd "$(dirname "$0")/.." || exit 1
. tests/pg/lib.sh
pg_have || { echo "SKIP: PostgreSQL 15 binaries missing"; exit 77; }
pg_start >/dev/null || exit 1
. tests/pg/nnd.sh
trap 'nnd_all_down; pg_stop; rm -rf "$T"; true' EXIT
QUICK=0; [ "${1:-}" = --quick ] && QUICK=1
NJOBS=$([ $QUICK = 1 ] && echo 30 || echo 60)
now_ms() { date +%s%3N; }

# 1. queue throughput: NJOBS tiny jobs (1 epoch of 20 rows) per daemon count
for k in 1 2 3; do
	SCHEMA=tp$k
	STORE_URL="$PG_URL&options=-csearch_path%3D$SCHEMA"
	NAMES=""
	for n in $(echo A B C | cut -d' ' -f1-$k); do nnd_up $n --workers 1 || exit 1; done
	DS=$(make_data A 20)
	M=$(make_model A 4)
	t0=$(now_ms)
	i=0
	while [ $i -lt $NJOBS ]; do submit A "$M" "$DS" 1 >/dev/null; i=$((i + 1)); done
	while [ "$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs WHERE state=2")" -lt $NJOBS ]; do
		sleep 0.05; done
	t1=$(now_ms)
	eval "JPS_$k=$(echo "$NJOBS $t0 $t1" | awk '{printf "%.1f", $1 * 1000 / ($3 - $2)}')"
	eval "echo \"1. $k daemon(s): $NJOBS tiny jobs in $((t1 - t0)) ms: \$JPS_$k jobs/s\""
	nnd_all_down
done
echo "1. jobs/s ratio 2 vs 1 daemon: $(echo "$JPS_2 $JPS_1" | awk '{printf "%.2f", $1 / $2}')," \
	"3 vs 1: $(echo "$JPS_3 $JPS_1" | awk '{printf "%.2f", $1 / $2}')"

# 2. submission on busy A -> start on idle B (created_at -> started_at, ms)
SCHEMA=wake
STORE_URL="$PG_URL&options=-csearch_path%3D$SCHEMA"
NAMES=""
nnd_up A --workers 1 || exit 1
nnd_up B --workers 1 || exit 1
DS=$(make_data A 20)
M=$(make_model A 4)
L=$(submit A "$M" "$DS" 100000)
sleep 1
LO=$(owner_of "$L")
OTHER=$([ "$LO" = A ] && echo B || echo A)
: >"$T/wake"
for i in $(seq 1 $([ $QUICK = 1 ] && echo 5 || echo 15)); do
	j=$(submit "$LO" "$M" "$DS" 1)
	wait_final "$LO" "$j" 30 >/dev/null
	pg_psql -c "SELECT started_at - created_at FROM $SCHEMA.jobs WHERE id='$j'" >>"$T/wake"
	sleep 0.3
done
echo "2. submission on busy $LO to start on idle $OTHER: median $(sort -n "$T/wake" |
	awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms, max $(sort -n "$T/wake" | tail -1) ms" \
	"over $(wc -l <"$T/wake") jobs (NOTIFY; the fallback poll is 1 s)"
nnd_all_down

# 3. takeover of a killed daemon's job, against the lease
for lease in 2 4; do
	SCHEMA=take$lease
	STORE_URL="$PG_URL&options=-csearch_path%3D$SCHEMA"
	NAMES=""
	nnd_up A --workers 1 --lease-seconds $lease || exit 1
	nnd_up B --workers 1 --lease-seconds $lease || exit 1
	DS=$(make_data A 20)
	M=$(make_model A 4)
	j=$(submit A "$M" "$DS" 100000)
	while [ -z "$(owner_of "$j")" ]; do sleep 0.02; done
	sleep 1
	o=$(owner_of "$j")
	t0=$(now_ms)
	nnd_kill9 "$o"
	while [ "$(owner_of "$j")" = "" ]; do sleep 0.02; done
	t1=$(now_ms)
	echo "3. lease ${lease} s: another daemon took the job over $((t1 - t0)) ms after kill -9" \
		"($(echo "$t0 $t1 $lease" | awk '{printf "%.2f", ($2 - $1) / ($3 * 1000)}') of the lease)"
	nnd_all_down
done

# 4. upload and training: PostgreSQL store against SQLite
/usr/bin/python3 -c '
import random
r = random.Random(1)
print(",".join("f%d" % i for i in range(50)) + ",y")
for i in range(20000):
    x = [r.uniform(-1, 1) for _ in range(50)]
    print(",".join("%.5f" % v for v in x) + "," + ("p" if sum(x[:5]) > 0 else "n"))
' >"$T/big.csv"
for kind in sqlite pg; do
	NAMES=""
	if [ $kind = pg ]; then
		SCHEMA=speed; STORE_URL="$PG_URL&options=-csearch_path%3D$SCHEMA"
		nnd_up A --workers 1 || exit 1
	else
		"$NND_BIN/nnd" --listen 127.0.0.1:0 --data-dir "$T/sq" --workers 1 2>"$T/sq.log" &
		PID_A=$!; NAMES=A
		sleep 1; PORT_A=$(head -1 "$T/sq.log" | sed 's/.*://')
	fi
	up=0; tr=0
	for r in 1 2 3; do
		t0=$(now_ms)
		DS=$(curl -sS -H 'Content-Type: text/csv' --data-binary @"$T/big.csv" \
			"http://127.0.0.1:$PORT_A/v1/datasets?name=big" | jfield id)
		t1=$(now_ms)
		M=$(api A POST /v1/models '{"task":"classification","inputs":50,"outputs":2,"seed":1,
		  "layers":[{"type":"dense","units":64,"activation":"relu"}]}' | jfield id)
		j=$(api A POST /v1/jobs '{"model":"'"$M"'","dataset":"'"$DS"'","epochs":5,"batch_size":32,
		  "log_every_steps":10}' | jfield id)
		t2=$(now_ms)
		wait_final A "$j" 300 >/dev/null
		t3=$(now_ms)
		up=$((up + t1 - t0)); tr=$((tr + t3 - t2))
	done
	eval "UP_$kind=$up; TR_$kind=$tr"
	echo "4. $kind: upload of 20000 x 50 CSV $((up / 3)) ms, 5 epochs (3125 steps) $((tr / 3)) ms (mean of 3)"
	nnd_all_down
done
echo "4. PostgreSQL / SQLite time: upload $(echo "$UP_pg $UP_sqlite" | awk '{printf "%.2f", $1 / $2}')," \
	"training $(echo "$TR_pg $TR_sqlite" | awk '{printf "%.2f", $1 / $2}')"
