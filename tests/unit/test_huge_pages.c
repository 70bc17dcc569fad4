/*
 * test_huge_pages.c - the huge-page hint (engine/util.c, nn_huge_pages)
 * marks the whole mapping of a large block (VmFlags "hg" in
 * /proc/self/smaps) and leaves it one mapping, so that realloc can still
 * move it with mremap; a realloc after it keeps the contents. Skipped where
 * glibc's allocator is not the one in use (ASan) or the kernel has no
 * transparent huge pages.
 */
#include <check.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check_main.h"
#include "nn.h"

#define BLOCK ((size_t)6 << 20)   /* above glibc's mmap threshold */

/* The mapping of /proc/self/smaps that holds address a: its bounds and
 * whether its VmFlags include "hg". 0, or -1 when none holds it. */
static int mapping_of(uintptr_t a, uintptr_t *lo, uintptr_t *hi, int *hg)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int found = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			if (found)
				break;      /* the next mapping: ours had no VmFlags */
			if (a >= s && a < e) {
				*lo = s;
				*hi = e;
				*hg = 0;
				found = 1;
			}
		} else if (found && strncmp(line, "VmFlags:", 8) == 0) {
			*hg = strstr(line, " hg") != NULL;
			break;
		}
	}
	if (f)
		fclose(f);
	return found ? 0 : -1;
}

static void fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 4096)
		p[i] = (unsigned char)(i >> 12);
}

static int filled(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 4096)
		if (p[i] != (unsigned char)(i >> 12))
			return 0;
	return 1;
}

START_TEST(test_hint_marks_one_whole_mapping)
{
	unsigned char *p = malloc(BLOCK);
	ck_assert_ptr_nonnull(p);
	nn_huge_pages(p, BLOCK);
	uintptr_t lo, hi;
	int hg;
	ck_assert_int_eq(mapping_of((uintptr_t)p, &lo, &hi, &hg), 0);
	ck_assert_msg(hi >= (uintptr_t)p + BLOCK, "the block spans more than one mapping");
	ck_assert_int_eq(hg, 1);
	fill(p, BLOCK);
	unsigned char *q = realloc(p, 2 * BLOCK);
	ck_assert_ptr_nonnull(q);
	ck_assert(filled(q, BLOCK));
	free(q);

	/* below 2 MiB it does nothing: a mapping of its own stays unmarked */
	const size_t small = (size_t)1 << 20;
	unsigned char *m = mmap(NULL, small, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	                        -1, 0);
	ck_assert(m != MAP_FAILED);
	nn_huge_pages(m, small);
	ck_assert_int_eq(mapping_of((uintptr_t)m, &lo, &hi, &hg), 0);
	ck_assert_int_eq(hg, 0);
	ck_assert_int_eq(munmap(m, small), 0);
	nn_huge_pages(NULL, BLOCK);   /* nothing to mark: no call, no crash */
}
END_TEST

static int thp_available(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char line[128] = "";
	if (!f)
		return 0;
	if (!fgets(line, sizeof line, f))
		line[0] = '\0';
	fclose(f);
	return strstr(line, "[never]") == NULL && line[0] != '\0';
}

int main(void)
{
#if defined(__SANITIZE_ADDRESS__)
	printf("SKIP: test_huge_pages: ASan's allocator, not glibc's, places the blocks\n");
	(void)thp_available;   /* unused here: -Werror would stop make sanitize */
	(void)test_hint_marks_one_whole_mapping;
	return 77;
#else
	if (!thp_available()) {
		printf("SKIP: test_huge_pages: this kernel has no transparent huge pages\n");
		return 77;
	}
	/* every block of BLOCK its own mapping, whatever was freed before */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	Suite *s = suite_create("huge_pages");
	TCase *tc = tcase_create("huge_pages");
	tcase_add_test(tc, test_hint_marks_one_whole_mapping);
	suite_add_tcase(s, tc);
	return check_run(s);
#endif
}
