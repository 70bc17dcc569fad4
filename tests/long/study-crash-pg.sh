#!/bin/sh
# study-crash-pg.sh - make check-long: study-crash.sh against the PostgreSQL
# store (tests/pg/run-pg.sh with itest_studies only): eight rounds of kill -9
# in the middle of a study, each compared with a study never interrupted; the
# killed daemon's trials come back when their leases end. SKIP (77) without
# PostgreSQL's binaries.
cd "$(dirname "$0")/../.." || exit 1
PG_ITESTS="${NND_BIN:-bin}/itest_studies" STUDY_CRASH_ROUNDS="${STUDY_CRASH_ROUNDS:-8}" \
	exec tests/pg/run-pg.sh
