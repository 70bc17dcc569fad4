/*
 * tune.c - the one definition of the engine's tuning constants (tune.h):
 * const in production, writable in test builds, with the test counters.
 */
#include "tune.h"

#ifdef NND_TEST
nn_tuning nn_tune = NN_TUNING_DEFAULT;
nn_test_counts nn_counts;
#else
const nn_tuning nn_tune = NN_TUNING_DEFAULT;
#endif
