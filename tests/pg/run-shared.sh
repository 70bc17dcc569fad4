#!/bin/sh
# run-shared.sh - two and three daemons sharing one PostgreSQL store (a
# throwaway cluster, tests/pg/lib.sh): a job submitted to a busy daemon
# starts on the idle one; any daemon streams (Last-Event-ID too), cancels
# and predicts any job; a killed daemon's job is taken over from its last
# checkpoint and ends with the weights of an uninterrupted run; a daemon
# paused past its lease is fenced (its writes refused, the job published
# once); a job whose daemons keep dying fails with too_many_attempts; the
# database restarted under load: /readyz 503 meanwhile, then every job ends.
# SKIP (77) without PostgreSQL's binaries.
cd "$(dirname "$0")/../.." || exit 1
PG_NOSYNC=${PG_NOSYNC:-1}   # a throwaway cluster: no fsyncs (tests/pg/lib.sh)
. tests/pg/lib.sh
pg_have || { echo "SKIP: PostgreSQL 15 binaries ($PG_BIN) or the postgres user missing"; exit 77; }
pg_start || { echo "FAIL: cannot start PostgreSQL"; exit 1; }
. tests/pg/nnd.sh
SCHEMA=shared
STORE_URL="$PG_URL&options=-csearch_path%3D$SCHEMA"
trap 'nnd_all_down; pg_stop; [ -z "${NND_KEEP_TMP:-}" ] && rm -rf "$T"; true' EXIT
E=1500        # epochs of every job (20 steps each): the same weights for all

nnd_up A --workers 1 --lease-seconds 2 || exit 1
nnd_up B --workers 1 --lease-seconds 2 || exit 1
DS=$(make_data A)
[ -n "$DS" ] || { echo "FAIL: no data set"; exit 1; }

# the reference: one uninterrupted run
MR=$(make_model A)
R=$(submit A "$MR" "$DS" $E)
[ "$(wait_final A "$R" 120)" = succeeded ] || fail "the reference job did not succeed"
WREF=$(weights A "$MR")

# --- a job submitted to busy A starts on idle B; B cancels A's job
ML=$(make_model A)
L=$(submit A "$ML" "$DS" 100000)
i=0; while [ "$(owner_of "$L")" = "" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
LO=$(owner_of "$L")
OTHER=$([ "$LO" = A ] && echo B || echo A)
MJ=$(make_model A)
J=$(submit "$LO" "$MJ" "$DS" $E)
i=0; while [ "$(owner_of "$J")" = "" ] && [ "$(job_state A "$J")" != succeeded ] && [ $i -lt 100 ]; do
	sleep 0.05; i=$((i + 1)); done
JO=$(owner_of "$J")
if [ "$JO" = "$OTHER" ] || grep -q "$J: starting" "$T/$OTHER.log"; then
	ok "a job submitted to busy $LO ran on idle $OTHER"
else
	fail "job $J submitted to busy $LO did not run on $OTHER (owner '$JO')"
fi
# the stream from the daemon that does not run it, live to its end
api "$LO" GET "/v1/jobs/$J/events?format=ndjson" >"$T/j.ndjson"
tail -1 "$T/j.ndjson" | grep -q '"event":"state".*"state":"succeeded"' &&
	[ "$(grep -c '"event":"step"' "$T/j.ndjson")" -ge $((E * 20 / 5)) ] &&
	ok "$LO streamed job $J run on $OTHER to its end ($(wc -l <"$T/j.ndjson") events)" ||
	fail "the stream of $J from $LO: $(tail -c 300 "$T/j.ndjson")"
curl -sS -N -H 'Last-Event-ID: 600' "http://127.0.0.1:$(nnd_port "$LO")/v1/jobs/$J/events" \
	>"$T/j.sse"
first=$(grep -m1 '^id:' "$T/j.sse" | sed 's/id: *//')
[ "${first:-0}" -gt 600 ] && grep -q '"state":"succeeded"' "$T/j.sse" &&
	ok "Last-Event-ID 600 resumed at id $first" || fail "Last-Event-ID: first id '$first'"
[ "$(weights "$OTHER" "$MJ")" = "$WREF" ] && ok "job $J reached the reference weights" ||
	fail "job $J: weights differ from the reference run"
for n in A B; do
	v=$(api $n POST "/v1/models/$MJ/predict" '{"instances":[[0.1,0.2,0.3,0.4]]}' | jfield model_version)
	[ "$v" = 1 ] || fail "daemon $n predicts with version '$v' of $MJ, not 1"
done
api "$OTHER" POST "/v1/jobs/$L/cancel" >/dev/null
[ "$(wait_final "$LO" "$L" 30)" = cancelled ] && ok "$OTHER cancelled job $L running on $LO" ||
	fail "cancel of $L from $OTHER: $(job_state A "$L")"

# --- kill -9 of the daemon running a job: the other takes it over
MK=$(make_model A)
K=$(submit A "$MK" "$DS" $E)
i=0; while [ $i -lt 200 ]; do
	p=$(api A GET "/v1/jobs/$K" | jfield progress)
	case "$p" in 0.[2-9]*) break ;; esac
	sleep 0.02; i=$((i + 1))
done
KO=$(owner_of "$K")
if [ -z "$KO" ]; then
	fail "job $K was not running (progress $p)"
else
	SURV=$([ "$KO" = A ] && echo B || echo A)
	nnd_kill9 "$KO"
	[ "$(wait_final "$SURV" "$K" 60)" = succeeded ] || fail "job $K did not succeed after kill -9 of $KO"
	grep -q "$K: resuming from its checkpoint" "$T/$SURV.log" &&
		ok "$SURV resumed job $K from its checkpoint after kill -9 of $KO" ||
		fail "$SURV did not resume $K from a checkpoint"
	[ "$(weights "$SURV" "$MK")" = "$WREF" ] && ok "the resumed job reached the reference weights" ||
		fail "job $K resumed: weights differ from the uninterrupted run"
	eval "nnd_up $KO \$ARGS_$KO" || exit 1
fi

# --- a daemon paused past its lease is fenced
MF=$(make_model A)
F=$(submit A "$MF" "$DS" $E)
i=0; while [ $i -lt 200 ]; do
	p=$(api A GET "/v1/jobs/$F" | jfield progress)
	case "$p" in 0.[2-9]*) break ;; esac
	sleep 0.02; i=$((i + 1))
done
FO=$(owner_of "$F")
if [ -z "$FO" ]; then
	fail "job $F was not running (progress $p)"
else
	SURV=$([ "$FO" = A ] && echo B || echo A)
	kill -STOP "$(nnd_pid "$FO")"
	i=0; while [ "$(owner_of "$F")" != "$SURV" ] && [ "$(job_state "$SURV" "$F")" != succeeded ] &&
		[ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	kill -CONT "$(nnd_pid "$FO")"
	[ "$(wait_final "$SURV" "$F" 60)" = succeeded ] || fail "job $F did not succeed"
	# until the thawed daemon is done with the job (stopped, or, were it
	# not fenced, its own end and publish)
	i=0; while [ $i -lt 150 ] && ! grep -q "$F: lease lost\|$F: the lease was lost\|jobs: $F: succeeded\|jobs: $F: failed" "$T/$FO.log"; do
		sleep 0.1; i=$((i + 1)); done
	sleep 1
	grep -q "$F: lease lost\|$F: the lease was lost" "$T/$FO.log" && ok "$FO, paused past its lease, found its lease lost" ||
		fail "$FO did not notice the lost lease of $F"
	nv=$(pg_psql -c "SELECT count(*) FROM $SCHEMA.model_versions WHERE model='$MF' AND version>0")
	[ "$nv" = 1 ] && ok "job $F published once" || fail "job $F published $nv versions"
	[ "$(weights "$SURV" "$MF")" = "$WREF" ] && ok "the fenced job reached the reference weights" ||
		fail "job $F after fencing: weights differ"
	[ "$(job_state "$FO" "$F")" = succeeded ] || fail "$FO sees $F as $(job_state "$FO" "$F")"
fi

# --- three daemons: every job ends once, shared out
nnd_up C --workers 1 --lease-seconds 2 || exit 1
JOBS=""
for i in 1 2 3 4 5 6; do
	m=$(make_model C)
	JOBS="$JOBS $m:$(submit C "$m" "$DS" 10)"
done
ran=""
for mj in $JOBS; do
	j=${mj#*:}
	[ "$(wait_final C "$j" 120)" = succeeded ] || fail "job $j of three daemons did not succeed"
	for n in A B C; do grep -q "$j: starting" "$T/$n.log" && ran="$ran $n"; done
done
nran=$(echo $ran | tr ' ' '\n' | sort -u | wc -l)
nstart=$(echo $ran | wc -w)
[ "$nstart" = 6 ] && [ "$nran" -ge 2 ] && ok "6 jobs on three daemons: each started once, on $nran daemons" ||
	fail "6 jobs on three daemons: $nstart starts, on $nran daemons"

# --- a job that keeps killing its daemons fails after 5 claims
MX=$(make_model C 64)
X=$(api C POST /v1/jobs '{"model":"'"$MX"'","dataset":"'"$DS"'","epochs":100000,"batch_size":10}' | jfield id)
kills=0
while [ $kills -lt 8 ]; do
	st=$(job_state C "$X" 2>/dev/null)
	[ "$st" = failed ] && break
	o=$(owner_of "$X")
	if [ -n "$o" ]; then
		nnd_kill9 "$o"; kills=$((kills + 1))
		eval "nnd_up $o \$ARGS_$o" || exit 1
	fi
	sleep 0.2
done
[ "$(wait_final C "$X" 30)" = failed ] && api C GET "/v1/jobs/$X" | grep -q '"code":"too_many_attempts"' &&
	ok "the job that killed $kills daemons failed with too_many_attempts" ||
	fail "job $X after $kills kills: $(api C GET "/v1/jobs/$X" | jfield state)"

# --- the database restarted under load
JOBS=""
for i in 1 2 3 4; do
	m=$(make_model A)
	JOBS="$JOBS $m:$(submit A "$m" "$DS" $E)"
done
sleep 0.5
pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_A/readyz")
[ "$code" = 503 ] && ok "/readyz answers 503 while the database is down" ||
	fail "/readyz answered $code while the database was down"
sleep 2
pg_ctl_start || exit 1
good=0
for mj in $JOBS; do
	m=${mj%%:*}; j=${mj#*:}
	s=$(wait_final B "$j" 120)
	[ "$s" = succeeded ] || fail "job $j did not survive the database restart: $s"
	[ "$(weights B "$m")" = "$WREF" ] && good=$((good + 1)) ||
		fail "job $j after the database restart: weights differ"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_A/readyz")
[ "$code" = 200 ] && [ $good = 4 ] &&
	ok "after the restart: 4 jobs succeeded with the reference weights, /readyz 200" ||
	fail "/readyz answered $code after the database came back ($good jobs right)"

echo "run-shared: $FAILS failed"
[ "$FAILS" = 0 ]
