/*
 * check_main.h - the main() every unit test ends with: run the suite, say
 * how it went (check's normal output) and turn it into the exit status.
 */
#ifndef TESTS_CHECK_MAIN_H
#define TESTS_CHECK_MAIN_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs every test of s (and frees it); EXIT_SUCCESS when none failed. */
static inline int check_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* The same for a suite of which `skipped` tests could not run on this
 * machine (each said "SKIP: why" and was left out of s): 77 when nothing
 * failed but something was skipped, so scripts/run-tests counts the binary
 * as skipped, never as passed. */
static inline int check_run_skipping(Suite *s, int skipped)
{
	int rc = check_run(s);
	return rc == EXIT_SUCCESS && skipped > 0 ? 77 : rc;
}

/* Adds test t to tc when `can` (this machine can run it), else prints
 * "SKIP: name: why" and counts it in *skipped. */
#define tcase_add_test_if(tc, t, can, why, skipped)                                        \
	do {                                                                               \
		if (can)                                                                   \
			tcase_add_test(tc, t);                                             \
		else {                                                                     \
			printf("SKIP: %s: %s\n", #t, why);                                \
			(*(skipped))++;                                                    \
		}                                                                          \
	} while (0)

#endif
