/*
 * test_util_malloc.c - the daemon's malloc policy (server/util.c,
 * util_malloc_policy): memory an upload's reader freed goes back to the
 * system instead of staying in the connection thread's arena.
 *
 * The case mirrors an upload on a connection thread: a big block (an IDX
 * matrix, a CSV file's columns) is freed, which by glibc's default raises
 * the thread's mmap and trim thresholds, and a later block below the raised
 * threshold is freed too. With the policy both leave the resident set.
 */
#include <check.h>
#include <pthread.h>
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

#define MB ((size_t)1 << 20)

/* Writes a byte on every page of p[0..n): through a volatile pointer, so the
 * compiler cannot drop stores to memory freed right after. */
static void touch(char *p, size_t n)
{
	for (volatile char *q = p; q < p + n; q += 4096)
		*q = 1;
}

/* On its own thread (its own arena, as a connection thread): a 24 MiB block
 * then a 16 MiB one, each written whole and freed, while a small block
 * stays live below them (as the connection's state does); the growth of
 * the resident set after both frees, in KiB. */
static void *upload_like(void *arg)
{
	long *grown = arg, before = rss_kb();
	char *live = malloc(256);   /* the arena's first block, held throughout */
	ck_assert_ptr_nonnull(live);
	char *big = malloc(24 * MB);
	ck_assert_ptr_nonnull(big);
	touch(big, 24 * MB);
	free(big);
	char *next = malloc(16 * MB);
	ck_assert_ptr_nonnull(next);
	touch(next, 16 * MB);
	free(next);
	*grown = rss_kb() - before;
	free(live);
	return NULL;
}

START_TEST(test_freed_upload_buffers_leave_the_resident_set)
{
	util_malloc_policy();
	long grown = 0;
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, upload_like, &grown), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	/* the 16 MiB block stayed in the arena without the policy (glibc's
	 * threshold had risen to 24 MiB): at most a page table's worth now */
	ck_assert_msg(grown < 2 * 1024, "resident set grew by %ld KiB", grown);
}
END_TEST

START_TEST(test_release_returns_freed_small_blocks)
{
	util_malloc_policy();
	long before = rss_kb();
	/* 256 blocks of 64 KiB (below UTIL_MALLOC_BIG: from the arena), every
	 * other one kept, so the freed ones cannot merge into the arena's top */
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
	tcase_add_test(tc, test_freed_upload_buffers_leave_the_resident_set);
	tcase_add_test(tc, test_release_returns_freed_small_blocks);
	suite_add_tcase(s, tc);
	return check_run(s);
}
