/*
 * test_store_bytes.c - the byte copy of a data set that the store shares
 * between the jobs training on it (store_dataset_bytes, server/storage.c):
 *  - image data (integers 0..255) get one copy holding the same values,
 *    the same pointer for every holder, made once however many ask at
 *    the same time (they convert it together);
 *  - a value that is not a byte anywhere (fraction, negative, > 255, NaN,
 *    in the first chunk, the last, or at a chunk's edge) gives NULL, as
 *    does a data set too small to pay; -0 counts as 0, like the engine;
 *  - lifetime: the copy lives while any holder does: a data set deleted
 *    while held keeps it until the last release; a data set left idle in
 *    the cache keeps it for the next holder while it is one of the two
 *    most recently used idle ones, and a deleted, evicted or closed one
 *    drops it.
 * "Dropped" is checked with mincore(2), which fails with ENOMEM on pages
 * that are no longer mapped.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check_main.h"
#include "storage.h"
#include "store_fixture.h"
#include "util.h"

/* 1100 rows x 1000 features: 1,100,000 values, above STORE_BYTES_MIN, in
 * two chunks of the copy (2^20 values and 51,424), the last 32 values
 * past the vector loop's rounds of 64 */
#define ROWS 1100
#define FEATS 1000
#define N ((int64_t)ROWS * FEATS)

static float value_at(int64_t i)
{
	return (float)((i * 37 + i / 1000) % 256);
}

/* A data set of `rows` x FEATS values value_at(i); when bad_at >= 0 the
 * value there is bad_value instead. Its id into id. */
static void create_data(store *s, int64_t rows, int64_t bad_at, float bad_value, char *id)
{
	int64_t n = rows * FEATS;
	float *x = malloc(sizeof(float) * (size_t)n);
	int32_t *y = malloc(sizeof(int32_t) * (size_t)rows);
	char **names = feature_names_new(FEATS);
	ck_assert(x && y);
	for (int64_t i = 0; i < n; i++)
		x[i] = value_at(i);
	if (bad_at >= 0)
		x[bad_at] = bad_value;
	for (int64_t r = 0; r < rows; r++)
		y[r] = (int32_t)(r % 2);
	create_class_dataset(s, "b", x, y, rows, FEATS, names, id);
	feature_names_free(names, FEATS);
	free(x);
	free(y);
}

static const api_dataset *acquire(store *s, const char *id)
{
	const api_dataset *d = NULL;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_dataset_acquire(s, id, &d, &e), 0);
	return d;
}

/* 1 while the first page of p is mapped. */
static int mapped(const void *p)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char v;
	void *base = (void *)((uintptr_t)p & ~(uintptr_t)(page - 1));
	if (mincore(base, (size_t)page, &v) == 0)
		return 1;
	ck_assert_int_eq(errno, ENOMEM);
	return 0;
}

static void assert_same_values(const api_dataset *d, const uint8_t *x8)
{
	ck_assert_ptr_nonnull(x8);
	int64_t wrong = 0;
	for (int64_t i = 0; i < d->rows * d->features; i++)
		wrong += (float)x8[i] != d->x[i];
	ck_assert_int_eq(wrong, 0);
}

START_TEST(test_image_data_get_one_copy_with_the_same_values_shared_by_holders)
{
	store *s = open_store();
	char id[API_ID_LEN];
	create_data(s, ROWS, -1, 0, id);
	int64_t built = store_bytes_built;
	const api_dataset *a = acquire(s, id), *b = acquire(s, id);
	const uint8_t *xa = store_dataset_bytes(s, a);
	assert_same_values(a, xa);
	ck_assert_int_eq(xa[FEATS + 5], (uint8_t)value_at(FEATS + 5));
	ck_assert_int_eq(store_bytes_built, built + 1);
	/* the second holder and a second ask get the same copy, not a new one */
	ck_assert_ptr_eq(store_dataset_bytes(s, b), xa);
	ck_assert_ptr_eq(store_dataset_bytes(s, a), xa);
	ck_assert_int_eq(store_bytes_built, built + 1);
	store_dataset_release(s, a);
	/* b still holds it */
	ck_assert(mapped(xa));
	ck_assert_int_eq(xa[N - 1], (uint8_t)value_at(N - 1));
	store_dataset_release(s, b);
	ck_assert_ptr_null(store_dataset_bytes(s, NULL));
	store_close(s);
}
END_TEST

/* This process's resident file-backed memory, in kB (RssFile). */
static long rss_file_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "RssFile:", 8) == 0)
			kb = atol(line + 8);
	if (f)
		fclose(f);
	return kb;
}

START_TEST(test_making_the_copy_lets_the_floats_leave_the_resident_set)
{
	store *s = open_store();
	char id[API_ID_LEN];
	create_data(s, ROWS, -1, 0, id);
	const api_dataset *a = acquire(s, id);
	ck_assert_int_eq(a->map_file, 1);
	volatile float sum = 0;
	for (int64_t i = 0; i < N; i++)
		sum += a->x[i];             /* every page of the floats resident */
	long before = rss_file_kb();
	const uint8_t *x8 = store_dataset_bytes(s, a);
	long after = rss_file_kb();
	/* 4.4 MB of floats: all but the partial pages at chunk edges leave */
	ck_assert_msg(before - after >= (long)(N * 4 / 1024) * 9 / 10, "RssFile %ld kB -> %ld kB", before, after);
	/* and read back the same from the page cache */
	assert_same_values(a, x8);
	store_dataset_release(s, a);
	store_close(s);
}
END_TEST

START_TEST(test_a_value_that_is_not_a_byte_anywhere_gives_null)
{
	/* where: the first value, inside the first chunk, the last value of
	 * the first chunk, the first of the second, the very last */
	const int64_t at[] = { 0, 4097, ((int64_t)1 << 20) - 1, (int64_t)1 << 20, N - 1 };
	const float bad[] = { 0.5f, -1.0f, 256.0f, NAN, 254.75f };
	store *s = open_store();
	for (int k = 0; k < 5; k++) {
		char id[API_ID_LEN];
		create_data(s, ROWS, at[k], bad[k], id);
		int64_t built = store_bytes_built;
		const api_dataset *d = acquire(s, id);
		ck_assert_msg(store_dataset_bytes(s, d) == NULL, "value %g at %lld", (double)bad[k],
		              (long long)at[k]);
		/* known now: asking again converts nothing and still gives NULL */
		ck_assert_ptr_null(store_dataset_bytes(s, d));
		ck_assert_int_eq(store_bytes_built, built);
		store_dataset_release(s, d);
	}
	store_close(s);
}
END_TEST

START_TEST(test_minus_zero_is_a_byte_and_a_small_data_set_gets_no_copy)
{
	store *s = open_store();
	char id[API_ID_LEN], small[API_ID_LEN];
	create_data(s, ROWS, 12345, -0.0f, id);
	const api_dataset *d = acquire(s, id);
	const uint8_t *x8 = store_dataset_bytes(s, d);
	ck_assert_ptr_nonnull(x8);
	ck_assert_int_eq(x8[12345], 0);
	ck_assert_int_eq(x8[12346], (uint8_t)value_at(12346));
	store_dataset_release(s, d);

	/* 1023 rows: 1,023,000 values, below STORE_BYTES_MIN (2^20) */
	create_data(s, 1023, -1, 0, small);
	ck_assert_int_lt(1023 * FEATS, STORE_BYTES_MIN);
	d = acquire(s, small);
	ck_assert_ptr_null(store_dataset_bytes(s, d));
	store_dataset_release(s, d);
	store_close(s);
}
END_TEST

START_TEST(test_deleted_while_held_the_copy_lives_until_the_last_release)
{
	store *s = open_store();
	char id[API_ID_LEN];
	create_data(s, ROWS, -1, 0, id);
	const api_dataset *a = acquire(s, id), *b = acquire(s, id);
	const uint8_t *x8 = store_dataset_bytes(s, a);
	ck_assert_ptr_nonnull(x8);
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_dataset_delete(s, id, &e), 0);
	/* both holders go on reading the copy (and the floats) */
	assert_same_values(a, x8);
	ck_assert_ptr_eq(store_dataset_bytes(s, b), x8);
	store_dataset_release(s, a);
	ck_assert(mapped(x8));
	ck_assert_int_eq(x8[N / 2], (uint8_t)value_at(N / 2));
	store_dataset_release(s, b);
	ck_assert(!mapped(x8));
	store_close(s);
}
END_TEST

START_TEST(test_an_idle_data_set_keeps_its_copy_for_the_next_holder_until_deleted)
{
	store *s = open_store();
	char id[API_ID_LEN];
	create_data(s, ROWS, -1, 0, id);
	int64_t built = store_bytes_built;
	const api_dataset *d = acquire(s, id);
	const uint8_t *x8 = store_dataset_bytes(s, d);
	ck_assert_ptr_nonnull(x8);
	store_dataset_release(s, d);
	/* idle: the mapping and the copy stay cached */
	ck_assert(mapped(x8));
	const api_dataset *again = acquire(s, id);
	ck_assert_ptr_eq(again, d);
	ck_assert_ptr_eq(store_dataset_bytes(s, again), x8);
	assert_same_values(again, x8);
	ck_assert_int_eq(store_bytes_built, built + 1);
	store_dataset_release(s, again);
	/* deleted while idle: the copy goes with it */
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_dataset_delete(s, id, &e), 0);
	ck_assert(!mapped(x8));
	store_close(s);
}
END_TEST

START_TEST(test_only_the_two_most_recently_used_idle_data_sets_keep_their_copies)
{
	store *s = open_store();
	char id[3][API_ID_LEN];
	const uint8_t *x8[3];
	int64_t built = store_bytes_built;
	for (int i = 0; i < 3; i++) {
		create_data(s, ROWS, -1, 0, id[i]);
		const api_dataset *d = acquire(s, id[i]);
		x8[i] = store_dataset_bytes(s, d);
		ck_assert_ptr_nonnull(x8[i]);
		store_dataset_release(s, d);
	}
	/* the first one released is the least recently used: its copy went */
	ck_assert(!mapped(x8[0]));
	ck_assert(mapped(x8[1]));
	ck_assert(mapped(x8[2]));
	/* used again, it makes a new copy, and the second one's goes */
	const api_dataset *d = acquire(s, id[0]);
	const uint8_t *x8a = store_dataset_bytes(s, d);
	assert_same_values(d, x8a);
	ck_assert_int_eq(store_bytes_built, built + 4);
	/* held copies do not count: all three stay while the first is held */
	ck_assert(mapped(x8[1]));
	ck_assert(mapped(x8[2]));
	store_dataset_release(s, d);
	ck_assert(mapped(x8a));
	ck_assert(!mapped(x8[1]));
	ck_assert(mapped(x8[2]));
	/* a data set pushed out of the cache takes its copy along: the
	 * DS_CACHE_IDLE_MAX (4) idle mappings, with five more data sets */
	for (int i = 0; i < 5; i++) {
		char more[API_ID_LEN];
		create_data(s, 2, -1, 0, more);
		store_dataset_release(s, acquire(s, more));
	}
	ck_assert(!mapped(x8a));
	ck_assert(!mapped(x8[2]));
	store_close(s);
}
END_TEST

typedef struct asker {
	store *s;
	const api_dataset *d;
	pthread_barrier_t *go;
	const uint8_t *x8;
	int64_t wrong;     /* values differing from the floats at return */
} asker;

static void *ask_bytes(void *arg)
{
	asker *a = arg;
	pthread_barrier_wait(a->go);
	a->x8 = store_dataset_bytes(a->s, a->d);
	/* checked at once: a copy handed out must be complete, even while
	 * the other askers are still returning */
	a->wrong = -1;
	if (a->x8) {
		a->wrong = 0;
		for (int64_t i = 0; i < a->d->rows * a->d->features; i++)
			a->wrong += (float)a->x8[i] != a->d->x[i];
	}
	return NULL;
}

START_TEST(test_holders_asking_at_once_get_one_copy_made_once)
{
	store *s = open_store();
	char id[API_ID_LEN];
	create_data(s, ROWS, -1, 0, id);
	int64_t built = store_bytes_built;
	enum { K = 4 };
	pthread_t t[K];
	asker a[K];
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, K);
	for (int i = 0; i < K; i++) {
		a[i] = (asker){ s, acquire(s, id), &go, NULL, 0 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, ask_bytes, &a[i]), 0);
	}
	for (int i = 0; i < K; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
	assert_same_values(a[0].d, a[0].x8);
	for (int i = 0; i < K; i++) {
		ck_assert_ptr_eq(a[i].x8, a[0].x8);
		ck_assert_int_eq(a[i].wrong, 0);
	}
	ck_assert_int_eq(store_bytes_built, built + 1);
	for (int i = 0; i < K; i++)
		store_dataset_release(s, a[i].d);
	/* idle now, it keeps the copy; closing the store drops it */
	ck_assert(mapped(a[0].x8));
	store_close(s);
	ck_assert(!mapped(a[0].x8));
}
END_TEST

int main(void)
{
	Suite *su = suite_create("store_bytes");
	TCase *t = tcase_create("core");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_image_data_get_one_copy_with_the_same_values_shared_by_holders);
	tcase_add_test(t, test_making_the_copy_lets_the_floats_leave_the_resident_set);
	tcase_add_test(t, test_a_value_that_is_not_a_byte_anywhere_gives_null);
	tcase_add_test(t, test_minus_zero_is_a_byte_and_a_small_data_set_gets_no_copy);
	tcase_add_test(t, test_deleted_while_held_the_copy_lives_until_the_last_release);
	tcase_add_test(t, test_an_idle_data_set_keeps_its_copy_for_the_next_holder_until_deleted);
	tcase_add_test(t, test_only_the_two_most_recently_used_idle_data_sets_keep_their_copies);
	tcase_add_test(t, test_holders_asking_at_once_get_one_copy_made_once);
	suite_add_tcase(su, t);
	return check_run(su);
}
