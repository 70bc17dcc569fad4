#!/bin/sh
# study-crash.sh - make check-long: the studies' integration tests with eight
# rounds of kill -9 in the middle of a study (1 to 3 kills each, at random
# steps; the seed is printed: STUDY_CRASH_SEED=N replays it), each compared
# with a study never interrupted.
cd "$(dirname "$0")/../.." || exit 1
STUDY_CRASH_ROUNDS="${STUDY_CRASH_ROUNDS:-8}" exec "${NND_BIN:-bin}/itest_studies"
