/*
 * test_util_malloc.c - util_malloc_release (server/util.c), which the
 * daemon calls when an upload ends and when a worker goes idle: freed
 * blocks in the middle of the heap go back to the system.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "util.h"

/* The resident set of this process in KiB, from the page tables
 * (/proc/self/smaps_rollup: VmRSS lags, its counters are per thread and
 * synchronised now and then); -1 when unknown. */
static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "Rss:", 4) == 0)
			kb = strtol(line + 4, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

/* Writes a byte on every page of p[0..n): through a volatile pointer, so the
 * compiler cannot drop stores to memory freed right after. */
static void touch(char *p, size_t n)
{
	for (volatile char *q = p; q < p + n; q += 4096)
		*q = 1;
}

START_TEST(test_release_returns_freed_small_blocks)
{
	long before = rss_kb();
	/* 256 blocks of 64 KiB (from the arena), every other one kept, so the
	 * freed ones cannot merge into the arena's top */
	enum { N = 256 };
	char *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = malloc(64 << 10);
		ck_assert_ptr_nonnull(p[i]);
		touch(p[i], 64 << 10);
	}
	for (int i = 0; i < N; i += 2)
		free(p[i]);
	long held = rss_kb() - before;
	util_malloc_release();
	long after = rss_kb() - before;
	for (int i = 1; i < N; i += 2)
		free(p[i]);
	/* 8 MiB freed in the middle of the heap: most of it handed back */
	ck_assert_msg(held > 12 * 1024, "the blocks took %ld KiB", held);
	ck_assert_msg(after < held - 6 * 1024, "held %ld KiB, %ld after the release", held, after);
}
END_TEST

int main(void)
{
#if defined(__SANITIZE_ADDRESS__) || !defined(__GLIBC__)
	/* AddressSanitizer's allocator (make sanitize) takes no glibc limits */
	printf("SKIP: util_malloc: glibc's allocator is not the one in use\n");
	return 77;
#endif
	Suite *s = suite_create("util_malloc");
	TCase *tc = tcase_create("util_malloc");
	tcase_add_test(tc, test_release_returns_freed_small_blocks);
	suite_add_tcase(s, tc);
	return check_run(s);
}
