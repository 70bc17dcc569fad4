#!/bin/sh
# chaos.sh - three daemons share one PostgreSQL store and 100 jobs while a
# random daemon is killed with kill -9 every 2-4 seconds and started again
# (bounded: at most CHAOS_SECONDS, default 300). The jobs are scaled to the
# machine: a calibration job measures the training speed here, and every
# job gets the epochs that take about CHAOS_JOB_MS (default 1500 ms), so
# the kills land while jobs train. Then: every job ended, and exactly once
# (one published version each, by that job), none is lost, every one
# (resumed or not) has the weights of an uninterrupted run, some jobs were
# claimed again after a kill and resumed from a checkpoint, and writes
# from fenced daemons never landed (each model has exactly its version 0
# and the job's version 1). Prints the counts. SKIP (77) without
# PostgreSQL's binaries. CHAOS_JOBS and CHAOS_SEED change the run.
cd "$(dirname "$0")/../.." || exit 1
PG_NOSYNC=${PG_NOSYNC:-1}   # a throwaway cluster: no fsyncs (tests/pg/lib.sh)
. tests/pg/lib.sh
pg_have || { echo "SKIP: PostgreSQL 15 binaries ($PG_BIN) or the postgres user missing"; exit 77; }
pg_start || { echo "FAIL: cannot start PostgreSQL"; exit 1; }
. tests/pg/nnd.sh
SCHEMA=chaos
STORE_URL="$PG_URL&options=-csearch_path%3D$SCHEMA"
trap 'nnd_all_down; pg_stop; [ -z "${NND_KEEP_TMP:-}" ] && rm -rf "$T"; true' EXIT
N=${CHAOS_JOBS:-100}
JOB_MS=${CHAOS_JOB_MS:-1500}
LIMIT=${CHAOS_SECONDS:-300}
SEED=${CHAOS_SEED:-$$}
echo "chaos: $N jobs, seed $SEED"

: >"$T/jobs"
# the shared queue holds every job: submissions outrun three workers, and
# a 429 queue_full is not what this test is about
for n in A B C; do
	nnd_up $n --workers 1 --lease-seconds 2 --queue $((N + 8)) || exit 1
	echo "$n $(nnd_port $n)" >>"$T/ports"
done
DS=$(make_data A 1000)
# calibration: 20 epochs (100 steps each) on a model of its own
MC=$(make_model A)
C=$(submit A "$MC" "$DS" 20)
[ "$(wait_final A "$C" 120)" = succeeded ] || { echo "FAIL: the calibration job"; exit 1; }
cms=$(pg_psql -c "SELECT greatest(finished_at - started_at, 1) FROM $SCHEMA.jobs WHERE id='$C'")
E=$((20 * JOB_MS / cms))
[ $E -lt 10 ] && E=10
[ $E -gt 5000 ] && E=5000
echo "chaos: 20 epochs took ${cms} ms here: $E epochs a job (about ${JOB_MS} ms)"
MR=$(make_model A)
R=$(submit A "$MR" "$DS" $E)
[ "$(wait_final A "$R" 120)" = succeeded ] || { echo "FAIL: the reference job"; exit 1; }
WREF=$(weights A "$MR")

# the submissions go on in the background, to whichever daemon is up,
# while the killing starts
(
	i=0
	while [ $i -lt "$N" ]; do
		# up to 30 tries (10 a daemon, 9 s of sleeps): a daemon being
		# restarted refuses connections for a while
		for try in $(seq 30); do
			d=$(echo A B C | cut -d' ' -f$(((i + try) % 3 + 1)))
			port=$(sed -n "s/^$d //p" "$T/ports" | tail -1)
			PORT_X=$port
			m=$(make_model X 2>/dev/null)
			j=$([ -n "$m" ] && submit X "$m" "$DS" $E 2>/dev/null)
			[ -n "$j" ] && break
			sleep 0.3
		done
		[ -n "$j" ] || {
			echo "FAIL: submission $i was refused by every daemon; the last reply:"
			api X POST /v1/jobs '{"model":"'"$m"'","dataset":"'"$DS"'","epochs":1}' 2>&1 |
				head -c 400; echo
			break
		}
		echo "$m $j" >>"$T/jobs"
		i=$((i + 1))
	done
	touch "$T/submitted"
) &
SUB=$!

# kill -9 a random daemon every 2-4 s until every job is submitted and final
t0=$(date +%s)
kills=0
busy=0        # kills of a daemon that held a running job
rnd=$SEED
while :; do
	left=$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs WHERE state IN (0,1)")
	[ -f "$T/submitted" ] && [ "$left" = 0 ] && break
	[ $(($(date +%s) - t0)) -gt "$LIMIT" ] && { fail "$left jobs unfinished after ${LIMIT}s"; break; }
	rnd=$(((rnd * 1103515245 + 12345) % 2147483648))
	sleep $((2 + rnd % 3))
	v=$(echo A B C | cut -d' ' -f$((rnd / 7 % 3 + 1)))
	h=$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs WHERE state=1 AND
	  owner LIKE '%/$(nnd_pid $v)'")
	nnd_kill9 $v
	[ "${h:-0}" -gt 0 ] && busy=$((busy + 1))
	kills=$((kills + 1))
	eval "nnd_up $v \$ARGS_$v" || exit 1
	echo "$v $(nnd_port $v)" >>"$T/ports"
done
wait $SUB
secs=$(($(date +%s) - t0))
[ "$(wc -l <"$T/jobs")" = "$N" ] || fail "$(wc -l <"$T/jobs") of $N jobs submitted"

# every job in the store (a submission whose reply a kill cut off was sent
# again: its first copy is in the store too, and must end right as well)
q="SELECT count(*) FROM $SCHEMA.jobs WHERE id NOT IN ('$R', '$C')"
ND=$(pg_psql -c "$q")
succeeded=$(pg_psql -c "$q AND state=2")
other=$(pg_psql -c "$q AND state<>2")
resumed=$(pg_psql -c "$q AND attempts>1")
once=$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs j WHERE id NOT IN ('$R', '$C') AND
  (SELECT count(*) FROM $SCHEMA.model_versions v WHERE v.model=j.model AND v.version>0)=1 AND
  (SELECT job FROM $SCHEMA.model_versions v WHERE v.model=j.model AND v.version=1)=j.id AND
  j.model_version=1")
same=0
pg_psql -c "SELECT model FROM $SCHEMA.jobs WHERE id NOT IN ('$R', '$C')" >"$T/models"
while read -r m; do
	[ "$(weights A "$m")" = "$WREF" ] && same=$((same + 1))
done <"$T/models"
# every acknowledged job is there and succeeded: none lost
acked=0
while read -r m j; do
	[ "$(pg_psql -c "SELECT state FROM $SCHEMA.jobs WHERE id='$j' AND model='$m'")" = 2 ] &&
		acked=$((acked + 1))
done <"$T/jobs"
refused=$(cat "$T"/*.log | grep -c "write refused")
takeovers=$(cat "$T"/*.log | grep -c "resuming from its checkpoint")
lost=$(cat "$T"/*.log | grep -c "lease lost at step\|the lease was lost")
echo "chaos: $N jobs of $E epochs ($ND in the store: $((ND - N)) sent again after a cut-off" \
	"reply), $kills kills ($busy of a daemon running a job) in ${secs}s: $acked acknowledged" \
	"jobs succeeded, $succeeded of $ND succeeded, $other not, $once published exactly once," \
	"$resumed claimed more than once, $same with the uninterrupted weights; $lost leases lost," \
	"$refused writes refused, $takeovers resumed from a checkpoint"
[ "$acked" = "$N" ] || fail "$acked of the $N acknowledged jobs succeeded"
[ "$succeeded" = "$ND" ] || fail "$succeeded of $ND jobs succeeded"
[ "$once" = "$ND" ] || fail "$once of $ND jobs published exactly one version"
[ "$same" = "$ND" ] || fail "$same of $ND jobs reached the uninterrupted weights"
[ "$kills" -gt 0 ] || fail "no daemon was killed"
[ "$resumed" -gt 0 ] || fail "no job was claimed again after a kill"
[ "$takeovers" -gt 0 ] || fail "no job resumed from a checkpoint after a kill"
echo "chaos: $FAILS failed"
[ "$FAILS" = 0 ]
