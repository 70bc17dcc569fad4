#!/bin/sh
# run-pg.sh - the integration suite once against the PostgreSQL store: a
# throwaway cluster (tests/pg/lib.sh), then bin/test_store_pg (the store's
# unit checks, NND_TEST_PG_URL set) and every bin/itest_* with
# NND_TEST_STORE set, so each daemon the harness starts keeps its store in a
# schema of its own there. Then the suites of several daemons sharing one
# store (tests/pg/itest-*.sh). SKIP (77) without PostgreSQL's binaries.
#
# Left out, with why: itest_faults (a full disk under --data-dir: the
# PostgreSQL server's disk is not the daemon's to fill), itest_durability,
# itest_checkpoints and itest_crash (they inspect the files and the SQLite
# database under --data-dir; kill -9 against PostgreSQL is tests/pg's chaos
# suite); of itest_replicas, its "queue" case (one daemon holds small jobs
# back for a big one; the shared queue claims the oldest job that fits the
# free workers).
cd "$(dirname "$0")/../.." || exit 1
PG_NOSYNC=${PG_NOSYNC:-1}   # a throwaway cluster: no fsyncs (tests/pg/lib.sh)
. tests/pg/lib.sh
if ! pg_have; then
	echo "SKIP: PostgreSQL 15 binaries ($PG_BIN) or the postgres user missing"
	exit 77
fi
pg_start || { echo "FAIL: cannot start a PostgreSQL cluster"; exit 1; }
# --lease-seconds: a test that kills a daemon with -9 and restarts it waits
# for the dead one's lease to end before its jobs go on (the default lease,
# 10 s, made most of this suite's time); 3 s, as tests/pg's other suites
# (2 s), still leaves the living daemon two renewals (one a second) of margin
export NND_TEST_STORE="--store $PG_URL&options=-csearch_path%3D@ID@ --lease-seconds ${PG_LEASE_SECONDS:-3}"
BIN=${NND_BIN:-bin}
fail=0
n=0
# the store's own unit checks against this server first (test_store_pg.c)
if [ -x "$BIN"/test_store_pg ]; then
	n=$((n + 1))
	echo "== $BIN/test_store_pg (PostgreSQL store)"
	NND_TEST_PG_URL="$PG_URL" "$BIN"/test_store_pg || {
		echo "FAIL: $BIN/test_store_pg against PostgreSQL"
		fail=$((fail + 1))
	}
fi
for t in ${PG_ITESTS:-"$BIN"/itest_*}; do
	case "$t" in
	*/itest_faults|*/itest_durability|*/itest_checkpoints|*/itest_crash) continue ;;
	esac
	[ -x "$t" ] || continue
	n=$((n + 1))
	echo "== $t (PostgreSQL store)"
	case "$t" in
	*/itest_replicas) CK_EXCLUDE_TAGS=queue "$t" ;;
	*) "$t" ;;
	esac
	rc=$?
	if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
		echo "FAIL: $t against PostgreSQL (exit $rc)"
		fail=$((fail + 1))
	fi
done
echo "run-pg: $n integration suites against PostgreSQL, $fail failed"
[ "$fail" = 0 ]
