/*
 * test_store_cache.c - what the store keeps in memory so a job starts
 * without reading back what it just wrote (server/storage.c):
 *  - data sets are mapped once and shared: acquires of one data set get
 *    the same mapping, a released one stays mapped for the next job, only
 *    DS_CACHE_IDLE_MAX (4) idle ones stay mapped, a deleted one goes (its
 *    holders keep theirs), and a closed store maps none;
 *  - a new model is cached as version 0: its snapshot needs no file;
 *  - store_job_start records the state and the base version in one go.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "storage.h"
#include "store_fixture.h"
#include "util.h"


/* A 3 x 2 data set whose values start at `base`; its id into id. */
static void create_dataset(store *s, float base, char *id)
{
	float x[6];
	int32_t y[3] = { 0, 1, 0 };
	char *names[2] = { "f0", "f1" };
	for (int i = 0; i < 6; i++)
		x[i] = base + (float)i * 0.5f;
	create_class_dataset(s, "c", x, y, 3, 2, names, id);
}

/* How many mappings of data set files this process holds. */
static int mapped_datasets(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, dir) != NULL && strstr(line, "/datasets/ds_") != NULL;
	fclose(f);
	return n;
}

START_TEST(test_one_mapping_per_data_set_shared_and_kept_for_the_next_job)
{
	store *s = open_store();
	char id[API_ID_LEN];
	create_dataset(s, 1.0f, id);
	api_err e = API_ERR_INIT;
	const api_dataset *a = NULL, *b = NULL;
	ck_assert_int_eq(store_dataset_acquire(s, id, &a, &e), 0);
	ck_assert_int_eq(store_dataset_acquire(s, id, &b, &e), 0);
	ck_assert_ptr_eq(a, b);
	ck_assert_ptr_nonnull(a->map);
	ck_assert_int_eq(a->rows, 3);
	ck_assert_float_eq(a->x[5], 3.5f);
	ck_assert_int_eq(a->labels[1], 1);
	ck_assert_int_eq(mapped_datasets(), 1);
	store_dataset_release(s, a);
	store_dataset_release(s, b);
	/* idle, still mapped: the next acquire gets it back */
	ck_assert_int_eq(mapped_datasets(), 1);
	const api_dataset *c = NULL;
	ck_assert_int_eq(store_dataset_acquire(s, id, &c, &e), 0);
	ck_assert_ptr_eq(c, a);
	ck_assert_float_eq(c->x[0], 1.0f);

	/* deleted while held: the holder keeps reading it, then it goes */
	ck_assert_int_eq(store_dataset_delete(s, id, &e), 0);
	ck_assert_float_eq(c->x[4], 3.0f);
	ck_assert_int_eq(mapped_datasets(), 1);
	store_dataset_release(s, c);
	ck_assert_int_eq(mapped_datasets(), 0);
	const api_dataset *gone = NULL;
	ck_assert_int_eq(store_dataset_acquire(s, id, &gone, &e), -1);
	ck_assert_int_eq(e.status, 404);
	ck_assert_ptr_null(gone);
	store_dataset_release(s, NULL);
	store_close(s);
}
END_TEST

START_TEST(test_idle_mappings_past_the_budget_are_dropped_held_ones_never)
{
	store *s = open_store();
	char ids[7][API_ID_LEN];
	api_err e = API_ERR_INIT;
	const api_dataset *held = NULL;
	for (int i = 0; i < 7; i++) {
		create_dataset(s, (float)i, ids[i]);
		const api_dataset *d = NULL;
		ck_assert_int_eq(store_dataset_acquire(s, ids[i], &d, &e), 0);
		ck_assert_float_eq(d->x[0], (float)i);
		if (i == 0)
			held = d;      /* held across the evictions */
		else
			store_dataset_release(s, d);
	}
	/* 6 idle ones, 4 kept, and the held one */
	ck_assert_int_eq(mapped_datasets(), 5);
	ck_assert_float_eq(held->x[1], 0.5f);
	store_dataset_release(s, held);
	ck_assert_int_eq(mapped_datasets(), 4);
	/* the oldest idle one maps again, with the right values */
	const api_dataset *d = NULL;
	ck_assert_int_eq(store_dataset_acquire(s, ids[1], &d, &e), 0);
	ck_assert_float_eq(d->x[2], 2.0f);
	store_dataset_release(s, d);
	ck_assert_int_eq(mapped_datasets(), 4);
	store_close(s);
	ck_assert_int_eq(mapped_datasets(), 0);
}
END_TEST

START_TEST(test_a_new_model_is_cached_as_version_0)
{
	store *s = open_store();
	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = 3;
	l.act = NN_ACT_RELU;
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, 2, 2, NN_INIT_AUTO, 7, &l, 1 };
	char err[128];
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	ck_assert_ptr_nonnull(m);
	api_model_info info;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_model_create(s, "m", m, &info, &e), 0);
	char id[API_ID_LEN], path[256];
	strcpy(id, info.id);
	api_model_info_release(&info);
	/* the file is not read: the snapshot comes from the cache */
	snprintf(path, sizeof path, "%s/models/%s-v0.model", dir, id);
	ck_assert_int_eq(unlink(path), 0);
	api_model_snap *snap = NULL;
	ck_assert_int_eq(store_model_snapshot(s, id, &snap, &e), 0);
	ck_assert_int_eq(snap->version, 0);
	ck_assert_int_eq(snap->n_classes, 0);
	int64_t n = 0, n2 = 0;
	const float *p = nn_model_params((nn_model *)snap->model, &n);
	const float *q = nn_model_params(m, &n2);
	ck_assert_int_eq(n, n2);
	ck_assert_int_eq(memcmp(p, q, sizeof(float) * (size_t)n), 0);
	ck_assert_ptr_ne(snap->model, m);   /* a copy: the caller keeps m */
	store_snap_release(s, snap);
	nn_model_free(m);
	store_close(s);
}
END_TEST

START_TEST(test_job_start_records_state_and_base_version_together)
{
	store *s = open_store();
	char ds[API_ID_LEN];
	create_dataset(s, 0.0f, ds);
	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = 3;
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, 2, 2, NN_INIT_AUTO, 7, &l, 1 };
	char err[128];
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	api_model_info info;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_model_create(s, "m", m, &info, &e), 0);
	api_job j;
	memset(&j, 0, sizeof j);
	snprintf(j.model, sizeof j.model, "%s", info.id);
	snprintf(j.dataset, sizeof j.dataset, "%s", ds);
	j.model_version = -1;
	j.config = strdup("{}");
	ck_assert_int_eq(store_job_insert(s, &j, &e), 0);
	int base = 7;
	ck_assert_int_eq(store_job_base_version(s, j.id, &base), 0);
	ck_assert_int_eq(base, -1);
	j.state = API_JOB_RUNNING;
	j.started_at = 1234;
	ck_assert_int_eq(store_job_start(s, &j, 0, &e), 0);
	ck_assert_int_eq(store_job_base_version(s, j.id, &base), 0);
	ck_assert_int_eq(base, 0);
	api_job back;
	ck_assert_int_eq(store_job_get(s, j.id, &back, &e), 0);
	ck_assert_int_eq(back.state, API_JOB_RUNNING);
	ck_assert_int_eq(back.started_at, 1234);
	api_job_release(&back);
	/* a resumed start (-1) keeps the base it had */
	ck_assert_int_eq(store_job_start(s, &j, -1, &e), 0);
	ck_assert_int_eq(store_job_base_version(s, j.id, &base), 0);
	ck_assert_int_eq(base, 0);
	api_job_release(&j);
	api_model_info_release(&info);
	nn_model_free(m);
	store_close(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_cache");
	TCase *t = tcase_create("core");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 30);
	tcase_add_test(t, test_one_mapping_per_data_set_shared_and_kept_for_the_next_job);
	tcase_add_test(t, test_idle_mappings_past_the_budget_are_dropped_held_ones_never);
	tcase_add_test(t, test_a_new_model_is_cached_as_version_0);
	tcase_add_test(t, test_job_start_records_state_and_base_version_together);
	suite_add_tcase(s, t);
	return check_run(s);
}
