#!/bin/sh
# check.sh - the daemon under valgrind --leak-check=full while integration
# tests drive it (the harness puts $NND_WRAP before the daemon's command);
# fails when any daemon run that exits reports a definite leak or a memory
# error (runs a test kills with SIGKILL leave no summary and are only
# counted). Not part of make check; .ci runs it (about 30 s). Usage:
# tests/valgrind/check.sh [itest ...] (default: the flow, errors, TLS and
# faults suites). Run from anywhere after `make`.
#
# valgrind runs one thread at a time; --fair-sched=yes hands the turn round
# in order, else a training thread busy for minutes can keep it and starve
# the connection threads (a poll of the job then waits for ever).
#
# OPENBLAS_CORETYPE is fixed to Haswell here: valgrind cannot run AVX-512
# code, and a fixed core keeps nnd from re-executing itself to pick one.
set -eu
cd "$(dirname "$0")/../.."
scripts/install-deps --valgrind
# the longest (faults) first: the others run beside it
[ $# -gt 0 ] || set -- bin/itest_faults bin/itest_flow bin/itest_errors bin/itest_tls
logs=$(mktemp -d /tmp/nnd-valgrind-XXXXXX)
chmod 1777 "$logs"   # the daemon may run as nobody (itest_faults)
export NND_WRAP="valgrind --fair-sched=yes --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=30 --log-file=$logs/vg.%p.log"
export OPENBLAS_CORETYPE=Haswell
export CK_TIMEOUT_MULTIPLIER=20
t0=$(date +%s)
fail=0
# the suites RUN_TESTS_JOBS at a time (scripts/run-tests; valgrind runs a
# daemon on one core)
echo "== valgrind: $*"
NND_SUITES=none scripts/run-tests "$@" || fail=1
runs=0 killed=0
for f in "$logs"/vg.*.log; do
	[ -e "$f" ] || continue
	if ! grep -q "ERROR SUMMARY" "$f"; then
		killed=$((killed + 1))   # a kill -9 the test meant: no summary to read
		continue
	fi
	runs=$((runs + 1))
	if grep -q "definitely lost: [1-9]" "$f" || ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
		echo "valgrind: problems in $f:"; sed -n '/HEAP SUMMARY/,$p;/Invalid\|uninitialised\|definitely lost in/,+25p' "$f" | head -120
		fail=1
	fi
done
echo "valgrind: $runs daemon runs checked ($killed killed on purpose, unchecked) in $(( $(date +%s) - t0 )) s, $([ $fail = 0 ] && echo 'no definite leaks, no errors' || echo FAILED)"
[ "$runs" -gt 0 ] || fail=1
[ $fail = 0 ] && rm -rf "$logs" || echo "valgrind: logs kept in $logs"
exit $fail
