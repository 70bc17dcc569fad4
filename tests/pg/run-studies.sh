#!/bin/sh
# run-studies.sh - a study shared by three daemons on one PostgreSQL store (a
# throwaway cluster, tests/pg/lib.sh). A successive-halving study posted to
# A: its trials run on more than one daemon, each trial has one job, each
# succeeded trial's job published one version, another daemon streams the
# study's events live to the final state, and the leaderboard (states,
# values, epochs by trial) equals a study run uninterrupted. Then the same
# study again, and a daemon killed with kill -9 while it trains a trial and
# left down: the other two finish it with the same leaderboard, nothing lost
# or run twice.
# Last, a study posted to B is cancelled through C: every trial job ends
# cancelled, a second cancel is a 409, and C deletes it with its jobs.
# SKIP (77) without PostgreSQL's binaries.
cd "$(dirname "$0")/../.." || exit 1
PG_NOSYNC=${PG_NOSYNC:-1}   # a throwaway cluster: no fsyncs (tests/pg/lib.sh)
. tests/pg/lib.sh
pg_have || { echo "SKIP: PostgreSQL 15 binaries ($PG_BIN) or the postgres user missing"; exit 77; }
pg_start || { echo "FAIL: cannot start PostgreSQL"; exit 1; }
. tests/pg/nnd.sh
SCHEMA=studies
STORE_URL="$PG_URL&options=-csearch_path%3D$SCHEMA"
trap 'nnd_all_down; pg_stop; [ -z "${NND_KEEP_TMP:-}" ] && rm -rf "$T"; true' EXIT

# every epoch's checkpoint goes to the store as it comes (--checkpoint-gap-ms
# 0): a trial taken over resumes from one, and the trials, a few tens of
# milliseconds each, write long enough for freeze below to catch one running
for n in A B C; do
	nnd_up $n --workers 1 --lease-seconds 2 --checkpoint-gap-ms 0 || exit 1
done
DS=$(make_data A 2000)
[ -n "$DS" ] || { echo "FAIL: no data set"; exit 1; }

# 6 trials of 12 epochs (160 steps each), halving at 2, 4 and 8 epochs
STUDY='{"name":"shared","dataset":"'$DS'","validation":{"fraction":0.2},
 "objective":{"metric":"val_loss","goal":"minimize"},
 "model":{"task":"classification","seed":3,"layers":[{"type":"dense","units":8,"activation":"tanh"}]},
 "job":{"epochs":12,"batch_size":10,"seed":5,"optimizer":{"type":"adam","lr":0.01},
        "checkpoint_every_epochs":1,"log_every_steps":20},
 "space":{"model.layers[0].units":[8,16,32],"job.optimizer.lr":[0.003,0.01,0.03]},
 "strategy":{"type":"halving","trials":6,"min_epochs":2,"reduction_factor":2},
 "seed":1,"parallelism":3}'

study_state() { api "$1" GET "/v1/studies/$2" | jfield state; }
# wait_study DAEMON ID SECONDS: the final state (or "timeout")
wait_study() {
	i=0
	while [ $i -lt $(($3 * 10)) ]; do
		s=$(study_state "$1" "$2" 2>/dev/null)
		case "$s" in succeeded|failed|cancelled) echo "$s"; return 0 ;; esac
		sleep 0.1; i=$((i + 1))
	done
	echo timeout
}
# the leaderboard by trial: number, state, value, epochs
board() {
	api "$1" GET "/v1/studies/$2/trials?sort=number" | /usr/bin/python3 -c '
import json, sys
for t in json.load(sys.stdin)["trials"]:
    print(t["number"], t["state"], repr(t["value"]), t["epochs"])'
}
# checks of study $2 read through daemon $1: one job per trial, one published
# version per succeeded trial; prints the daemons that started its jobs
one_each() {
	jobs=$(api "$1" GET "/v1/jobs?study=$2&limit=1000")
	total=$(echo "$jobs" | jfield total)
	[ "$total" = 6 ] || fail "study $2 has $total jobs, not 6"
	dup=$(pg_psql -c "SELECT count(*) FROM (SELECT trial FROM $SCHEMA.jobs WHERE study='$2'
	  GROUP BY trial HAVING count(*) > 1) d")
	[ "$dup" = 0 ] || fail "study $2: $dup trials have more than one job"
	bad=$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs j WHERE study='$2' AND state=2 AND
	  (SELECT count(*) FROM $SCHEMA.model_versions v WHERE v.model=j.model AND v.version>0)<>1")
	[ "$bad" = 0 ] || fail "study $2: $bad succeeded trials did not publish exactly one version"
	pruned=$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs j WHERE study='$2' AND state=4 AND
	  error LIKE '%pruned%' AND NOT EXISTS (SELECT 1 FROM $SCHEMA.model_versions v
	  WHERE v.model=j.model AND v.version>0)")
	ended=$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs WHERE study='$2' AND state IN (2,4)")
	[ "$ended" = 6 ] || fail "study $2: $ended of 6 trial jobs ended (succeeded or pruned)"
	ids=$(pg_psql -c "SELECT id FROM $SCHEMA.jobs WHERE study='$2'")
	for n in A B C; do
		for j in $ids; do grep -q "$j: starting" "$T/$n.log" && { echo $n; break; }; done
	done | sort -u | tr '\n' ' '
	echo "($pruned pruned)"
}

# --- the reference: the study on three daemons, its events streamed from C
REF=$(api A POST /v1/studies "$STUDY" | jfield id)
[ -n "$REF" ] || { echo "FAIL: study refused"; exit 1; }
api C GET "/v1/studies/$REF/events?format=ndjson" >"$T/ref.ndjson" &
STREAM=$!
[ "$(wait_study B "$REF" 180)" = succeeded ] || fail "study $REF did not succeed"
i=0; while kill -0 $STREAM 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill $STREAM 2>/dev/null
tail -1 "$T/ref.ndjson" | grep -q '"event":"state".*"state":"succeeded"' &&
	[ "$(grep -c '"event":"trial"' "$T/ref.ndjson")" -ge 6 ] &&
	ok "C streamed study $REF live to its end ($(wc -l <"$T/ref.ndjson") events)" ||
	fail "the stream of $REF from C: $(tail -c 300 "$T/ref.ndjson")"
seqs=$(grep -c . "$T/ref.ndjson")
nev=$(pg_psql -c "SELECT count(*) FROM $SCHEMA.study_events WHERE study='$REF'")
[ "$seqs" = "$nev" ] || fail "C streamed $seqs events of the $nev recorded"
WANT=$(board A "$REF")
ran=$(one_each B "$REF")
case "$ran" in
*" "?" "*) ok "study $REF: trials ran on $ran" ;;
*) fail "study $REF: trials ran on $ran only" ;;
esac

# the trials of study $1 that daemon $2 runs
running_on() {
	pg_psql -c "SELECT id FROM $SCHEMA.jobs WHERE study='$1' AND state=1 AND
	  owner LIKE '%/$(nnd_pid $2)'"
}
# freeze STUDY DAEMON...: SIGSTOP one of the daemons while the store says it
# runs a trial of the study (so it cannot pause or end it meanwhile: trials
# are short); sets FZ to that daemon and KJ to those trials' jobs
freeze() {
	st=$1; shift
	KJ=
	i=0
	while [ $i -lt 2000 ] && [ -z "$KJ" ]; do
		# the pids holding its running trials (one query for all daemons)
		held=" $(pg_psql -c "SELECT owner FROM $SCHEMA.jobs WHERE study='$st' AND state=1" |
			sed 's|.*/||' | tr '\n' ' ') "
		for FZ in "$@"; do
			case "$held" in *" $(nnd_pid "$FZ") "*) ;; *) continue ;; esac
			kill -STOP "$(nnd_pid "$FZ")"
			KJ=$(running_on "$st" "$FZ")
			[ -n "$KJ" ] && break
			kill -CONT "$(nnd_pid "$FZ")"
		done
		[ -n "$KJ" ] && break
		# a study that ended unseen: no trial is left to catch
		case "$held" in "  ") case "$(study_state "$1" "$st")" in
			succeeded|failed|cancelled) break ;; esac ;; esac
		sleep 0.01
		i=$((i + 1))
	done
}

# post_freeze POSTED_TO DAEMON...: posts the study and freezes a daemon while
# it trains a trial of it; a study whose trials all went by unseen (a loaded
# machine) is left to end and posted again, up to sixteen times (a miss costs
# the few seconds the study runs). Sets SID.
# The study posted is the reference's with a step record a step: the same
# trials, values and decisions (the leaderboard compared is WANT), but each
# step is a history write to the store, so a trial trains long enough to be
# caught (at 20 steps a record a trial took some tens of milliseconds).
FREEZE_STUDY=$(echo "$STUDY" | sed 's/"log_every_steps":20/"log_every_steps":1/')
post_freeze() {
	to=$1; shift
	for attempt in $(seq 16); do
		SID=$(api $to POST /v1/studies "$FREEZE_STUDY" | jfield id)
		freeze "$SID" "$@"
		if [ -n "$KJ" ]; then
			[ $attempt = 1 ] || echo "study $SID: a running trial caught at attempt $attempt"
			return 0
		fi
		wait_study $to "$SID" 180 >/dev/null
	done
}

# --- the same study posted to B; B or C frozen past its lease while it
# trains a trial: the others take the trial over, its late writes are refused
post_freeze B B C
F=$SID
FJ=$KJ
# frozen past its lease (2 s), and until the store shows its trials' jobs
# taken from it (the others' lease checks come every so often: a fixed
# pause missed them under the sanitizers), 20 s at most
sleep 2.5
frozen=2.5
if [ -n "$FJ" ]; then
	ids=$(for j in $FJ; do printf "'%s'," "$j"; done)
	i=0
	while [ $i -lt 175 ] && [ "$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs WHERE
	  id IN (${ids%,}) AND state=1 AND owner LIKE '%/$(nnd_pid $FZ)'")" != 0 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	frozen=$(echo "$i" | awk '{printf "%.1f", 2.5 + $1 / 10}')
fi
[ -n "$FJ" ] && kill -CONT "$(nnd_pid $FZ)" || fail "neither B nor C ran a trial of $F to freeze"
[ "$(wait_study A "$F" 180)" = succeeded ] || fail "study $F did not succeed after $FZ froze"
GOT=$(board A "$F")
[ "$GOT" = "$WANT" ] && ok "study $F, $FZ frozen $frozen s running $FJ: the uninterrupted leaderboard" ||
	fail "study $F after $FZ froze: leaderboard
$GOT
want:
$WANT"
ran=$(one_each A "$F")
for j in $FJ; do
	grep -q "$j: lease lost\|$j: the lease was lost" "$T/$FZ.log" &&
		cat "$T"/*.log | grep -q "$j: its lease ended; queued again" &&
		ok "trial job $j: taken over from frozen $FZ, which found its lease lost" ||
		fail "trial job $j of frozen $FZ: no takeover or $FZ did not find its lease lost"
done

# --- the same study, posted to A; a daemon killed while it trains a trial
# and left down until the others have finished the study
post_freeze A A B C
S=$SID
K=$FZ
held=$(echo $KJ | wc -w)
[ "$held" -ge 1 ] || { K=A; fail "no daemon ran a trial of $S to kill"; }
nnd_kill9 $K
ALIVE=$(echo A B C | tr ' ' '\n' | grep -v "^$K\$" | tr '\n' ' ')
D1=${ALIVE%% *}
[ "$(wait_study $D1 "$S" 180)" = succeeded ] || fail "study $S did not succeed after kill -9 of $K"
GOT=$(board $D1 "$S")
[ "$GOT" = "$WANT" ] && ok "study $S, $K killed holding $held running trials: the uninterrupted leaderboard" ||
	fail "study $S after kill -9 of $K: leaderboard
$GOT
want:
$WANT"
ran=$(one_each $D1 "$S")
ok "study $S: trials ran on $ran"
took=0
for j in $KJ; do
	for n in $ALIVE; do cat "$T/$n.log"; done | grep -q "$j: its lease ended; queued again" &&
		took=$((took + 1))
done
echo "study $S: $took of the $held trials running on $K taken over by ${ALIVE% } after their lease"
[ "$took" -ge "$held" ] || fail "$K held $held trials, $took were taken over"
eval "nnd_up $K \$ARGS_$K" || exit 1

# --- cancelled and deleted through another daemon than the one it was posted to
# (trials of 5000 epochs: the study is still running when the cancel comes,
# however fast the trials of the study above ran)
LONG_STUDY=$(echo "$STUDY" | sed 's/"epochs":12,/"epochs":5000,/')
X=$(api B POST /v1/studies "$LONG_STUDY" | jfield id)
i=0; while [ $i -lt 200 ] && [ "$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs WHERE
  study='$X' AND state=1")" = 0 ]; do sleep 0.02; i=$((i + 1)); done
[ "$(api C POST "/v1/studies/$X/cancel" | jfield state)" = cancelled ] ||
	fail "C did not cancel study $X"
i=0; while [ $i -lt 100 ] && [ "$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs WHERE
  study='$X' AND state<>4")" != 0 ]; do sleep 0.1; i=$((i + 1)); done
live=$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs WHERE study='$X' AND state<>4")
made=$(pg_psql -c "SELECT count(*) FROM $SCHEMA.jobs WHERE study='$X'")
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$(nnd_port B)/v1/studies/$X/cancel")
[ "$live" = 0 ] && [ "$made" -ge 1 ] && [ "$code" = 409 ] &&
	ok "C cancelled study $X posted to B: its $made trial jobs cancelled, a second cancel 409" ||
	fail "cancel of $X through C: $live of $made jobs not cancelled, second cancel $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:$(nnd_port C)/v1/studies/$X")
left=$(pg_psql -c "SELECT (SELECT count(*) FROM $SCHEMA.jobs WHERE study='$X') +
  (SELECT count(*) FROM $SCHEMA.trials WHERE study='$X') +
  (SELECT count(*) FROM $SCHEMA.studies WHERE id='$X')")
[ "$code" = 204 ] && [ "$left" = 0 ] &&
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(nnd_port B)/v1/studies/$X")" = 404 ] &&
	ok "C deleted study $X with its jobs and trials; B answers 404" ||
	fail "delete of $X through C: $code, $left rows left"

echo "run-studies: $FAILS failed"
[ "$FAILS" = 0 ]
