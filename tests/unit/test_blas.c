/*
 * test_blas.c - the BLAS reporting and kernel self-test: the core is named,
 * the thread count is settable, the self-test's sgemm check passes on the
 * kernel in use, and autoselect leaves a process alone when the user has set
 * OPENBLAS_CORETYPE (it must return, not re-execute).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

START_TEST(test_core_is_named_and_threads_are_settable)
{
	const char *core = nn_blas_core();
	ck_assert_ptr_nonnull(core);
	ck_assert_int_gt((int)strlen(core), 0);
	nn_blas_set_threads(1);
	ck_assert_int_eq(nn_blas_threads(), 1);
	nn_blas_set_threads(0); /* clamped to 1 */
	ck_assert_int_eq(nn_blas_threads(), 1);
}
END_TEST

START_TEST(test_selftest_passes_on_the_kernel_in_use)
{
	ck_assert_int_eq(nn_blas_selftest_main(), 0);
}
END_TEST

START_TEST(test_autoselect_respects_a_user_coretype)
{
	/* With OPENBLAS_CORETYPE set, nothing happens and the call returns. */
	const char *was = getenv("OPENBLAS_CORETYPE");
	setenv("OPENBLAS_CORETYPE", was ? was : nn_blas_core(), 1);
	char *argv[] = { (char *)"test_blas", NULL };
	nn_blas_autoselect(1, argv);
	ck_assert_str_eq(getenv("OPENBLAS_CORETYPE"), was ? was : nn_blas_core());
	if (!was)
		unsetenv("OPENBLAS_CORETYPE");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("blas");
	TCase *tc = tcase_create("blas");
	tcase_add_test(tc, test_core_is_named_and_threads_are_settable);
	tcase_add_test(tc, test_selftest_passes_on_the_kernel_in_use);
	tcase_add_test(tc, test_autoselect_respects_a_user_coretype);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
