/*
 * test_jobs_shared.c - jobs on an image data set train from the store's
 * shared byte copy (store_dataset_bytes) and their results do not change:
 *  - a job alone, and two jobs at once on one copy, publish the weights
 *    the engine reaches alone on the data set's floats (making its own
 *    byte copy, as every job did before the store shared one), bit for
 *    bit, with standardisation, a validation split and shuffling on;
 *  - with the sparse kernels off, those are the weights of the float
 *    path (the byte path off), bit for bit;
 *  - the engine makes no copy of its own for them (nn_counts.byte_copies_made),
 *    and jobs running while a copy exists make no new one
 *    (store_bytes_built);
 *  - a job stopped mid-run (graceful stop: checkpoint, stays queued) and
 *    resumed by the next start (on the copy the idle data set kept)
 *    reaches the same weights.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "jobs.h"
#include "spec_json.h"
#include "store_data.h"
#include "trainer.h"
#include "util.h"

static char dir[64];
static store *st;
static char ds_id[API_ID_LEN];

/* 1100 rows x 1000 pixels: 1.1M values, above STORE_BYTES_MIN */
#define ROWS 1100
#define FEATS 1000

static void setup(void)
{
	temp_dir_make(dir, sizeof dir, "/tmp/nnd-jobs-shared-XXXXXX");
	char err[256];
	ck_assert_int_eq(store_open(dir, &st, err, sizeof err), 0);

	float *x = malloc(sizeof(float) * ROWS * FEATS);
	int32_t *y = malloc(sizeof(int32_t) * ROWS);
	char **names = feature_names_new(FEATS);
	ck_assert(x && y);
	/* mostly zeros like image pixels (the sparse kernels take them), the
	 * class readable from the first pixels */
	nn_rng r;
	nn_rng_seed(&r, 3);
	for (int i = 0; i < ROWS; i++) {
		y[i] = (int32_t)(nn_rng_next(&r) % 2);
		for (int j = 0; j < FEATS; j++) {
			float v = nn_rng_uniform(&r) < 0.6f ? 0.0f : (float)(nn_rng_next(&r) % 256);
			if (j < 20)
				v = y[i] ? 200.0f + (float)(j % 50) : (float)j;
			x[(size_t)i * FEATS + j] = v;
		}
	}
	create_class_dataset(st, "pixels", x, y, ROWS, FEATS, names, ds_id);
	feature_names_free(names, FEATS);
	free(x);
	free(y);
}

static void teardown(void)
{
	store_close(st);
	temp_dir_remove(dir);
}

static nn_model *new_model(void)
{
	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = 16;
	l.act = NN_ACT_RELU;
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, FEATS, 2, NN_INIT_AUTO, 11, &l, 1 };
	char err[256];
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	ck_assert_ptr_nonnull(m);
	return m;
}

/* A stored model with new_model's weights; its id into id. */
static void store_model(char *id)
{
	nn_model *m = new_model();
	api_model_info mi;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_model_create(st, "m", m, &mi, &e), 0);
	strcpy(id, mi.id);
	api_model_info_release(&mi);
	nn_model_free(m);
}

static int sparse_kernels = 1;

static nn_train_config config(int epochs)
{
	nn_train_config cfg = nn_train_config_default();
	cfg.epochs = epochs;
	cfg.batch_size = 64;
	cfg.seed = 5;
	cfg.opt = nn_optimizer_default(NN_OPT_ADAM);
	cfg.opt.lr = 1e-3f;
	cfg.standardize = 1;
	cfg.val_fraction = 0.1f;
	cfg.checkpoint_every_epochs = 1;
	cfg.sparse_kernels = sparse_kernels;
	return cfg;
}

/*
 * The engine alone on the data set's floats: the weights every job must
 * publish. With the sparse kernels on (their sums differ from sgemm's in
 * rounding) it makes its own byte copy, as it did for every job before
 * the store shared one; with them off, floats only, the byte path off.
 */
static nn_model *reference(int epochs)
{
	const api_dataset *d = NULL;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_dataset_acquire(st, ds_id, &d, &e), 0);
	nn_data v = api_dataset_view(d);
	ck_assert_ptr_null(v.x8);
	nn_train_config cfg = config(epochs);
	nn_model *m = new_model();
	int64_t saved = nn_tune.byte_copy_min, made = nn_counts.byte_copies_made;
	if (!sparse_kernels)
		nn_tune.byte_copy_min = INT64_MAX;
	char err[256];
	ck_assert_int_eq(nn_train(m, &v, NULL, &cfg, NULL, NULL, 0, NULL, err, sizeof err), NN_OK);
	nn_tune.byte_copy_min = saved;
	ck_assert_int_eq(nn_counts.byte_copies_made, made + sparse_kernels);
	store_dataset_release(st, d);
	return m;
}

static void submit(jobs *q, char *model, int epochs, char *id)
{
	nn_train_config cfg = config(epochs);
	api_job_refs refs = { .model = model, .dataset = ds_id };
	cJSON *c = api_train_config_to_json(&cfg, &refs);
	char *text = cJSON_PrintUnformatted(c);
	cJSON_Delete(c);
	api_job j;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(jobs_submit(q, &refs, text, &j, &e), 0);
	free(text);
	strcpy(id, j.id);
	api_job_release(&j);
}

static api_job get_job(jobs *q, const char *id)
{
	api_job j;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(jobs_get(q, id, &j, &e), 0);
	return j;
}

/* Waits until job id is past `step` (or final); its state then. */
static int wait_past(jobs *q, const char *id, int64_t step)
{
	for (int i = 0; i < 30000; i++) {
		api_job j = get_job(q, id);
		int s = j.state;
		int64_t at = j.step;
		api_job_release(&j);
		if (api_job_state_final(s) || (step >= 0 && s == API_JOB_RUNNING && at > step))
			return s;
		usleep(2000);
	}
	ck_abort_msg("job %s did not get there", id);
	return -1;
}

/* The model's published weights equal want's, bit for bit. */
static void assert_published(const char *model, const nn_model *want)
{
	api_model_snap *s = NULL;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_model_snapshot(st, model, &s, &e), 0);
	ck_assert_int_eq(s->version, 1);
	int64_t n = 0, n2 = 0;
	const float *p = nn_model_params((nn_model *)s->model, &n);
	const float *w = nn_model_params((nn_model *)want, &n2);
	ck_assert_int_eq(n, n2);
	ck_assert_int_eq(memcmp(p, w, sizeof(float) * (size_t)n), 0);
	const float *mp = nn_model_std_mean(s->model), *mw = nn_model_std_mean(want);
	ck_assert(mp && mw);
	ck_assert_int_eq(memcmp(mp, mw, sizeof(float) * FEATS), 0);
	store_snap_release(st, s);
}

/* Two jobs of 2 epochs on two new models, submitted together: both
 * succeed and publish want's weights. */
static void two_jobs_publish(jobs *q, const nn_model *want)
{
	char m1[API_ID_LEN], m2[API_ID_LEN], j1[API_ID_LEN], j2[API_ID_LEN];
	store_model(m1);
	store_model(m2);
	submit(q, m1, 2, j1);
	submit(q, m2, 2, j2);
	ck_assert_int_eq(wait_past(q, j1, -1), API_JOB_SUCCEEDED);
	ck_assert_int_eq(wait_past(q, j2, -1), API_JOB_SUCCEEDED);
	assert_published(m1, want);
	assert_published(m2, want);
}

START_TEST(test_jobs_alone_and_two_at_once_on_one_copy_publish_the_float_paths_weights)
{
	nn_model *want = reference(2);
	api_limits lim = api_limits_default();
	jobs *q = NULL;
	ck_assert_int_eq(jobs_start(st, 2, 8, &lim, &q), 0);
	int64_t made = nn_counts.byte_copies_made, built = store_bytes_built;

	/* alone: it makes the copy (and the idle data set keeps it) */
	char m0[API_ID_LEN], j0[API_ID_LEN];
	store_model(m0);
	submit(q, m0, 2, j0);
	ck_assert_int_eq(wait_past(q, j0, -1), API_JOB_SUCCEEDED);
	assert_published(m0, want);
	ck_assert_int_eq(store_bytes_built, built + 1);

	/* two at once, while this test holds a copy: both train from it (the
	 * first job's, when its worker has not released the data set yet) */
	const api_dataset *held = NULL;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_dataset_acquire(st, ds_id, &held, &e), 0);
	ck_assert_ptr_nonnull(store_dataset_bytes(st, held));
	ck_assert_int_eq(store_bytes_built, built + 1);
	two_jobs_publish(q, want);
	ck_assert_int_eq(store_bytes_built, built + 1);
	store_dataset_release(st, held);
	/* the engine never copied: every job was given the bytes */
	ck_assert_int_eq(nn_counts.byte_copies_made, made);
	jobs_stop(q);
	jobs_free(q);
	nn_model_free(want);
}
END_TEST

START_TEST(test_a_job_stopped_and_resumed_on_the_kept_copy_reaches_the_same_weights)
{
	const int epochs = 30;
	nn_model *want = reference(epochs);
	api_limits lim = api_limits_default();
	jobs *q = NULL;
	ck_assert_int_eq(jobs_start(st, 2, 8, &lim, &q), 0);
	int64_t built = store_bytes_built;
	char m[API_ID_LEN], j[API_ID_LEN];
	store_model(m);
	submit(q, m, epochs, j);
	/* 990 training rows: 16 steps an epoch; stop past the second epoch */
	int s = wait_past(q, j, 40);
	ck_assert_int_eq(s, API_JOB_RUNNING);
	jobs_stop(q);
	jobs_free(q);
	api_job back;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_job_get(st, j, &back, &e), 0);
	ck_assert_int_eq(back.state, API_JOB_QUEUED);
	ck_assert_int_gt(back.step, 40);
	ck_assert_int_lt(back.step, 16 * epochs);
	api_job_release(&back);
	/* made once so far; the resumed job trains from the same copy (the
	 * stopped job released the data set, which kept it while idle) */
	ck_assert_int_eq(store_bytes_built, built + 1);

	ck_assert_int_eq(jobs_start(st, 2, 8, &lim, &q), 0);
	ck_assert_int_eq(wait_past(q, j, -1), API_JOB_SUCCEEDED);
	ck_assert_int_eq(store_bytes_built, built + 1);
	assert_published(m, want);
	jobs_stop(q);
	jobs_free(q);
	nn_model_free(want);
}
END_TEST

START_TEST(test_with_sparse_kernels_off_jobs_on_the_copy_publish_the_floats_weights)
{
	sparse_kernels = 0;
	nn_model *want = reference(2);
	api_limits lim = api_limits_default();
	jobs *q = NULL;
	ck_assert_int_eq(jobs_start(st, 2, 8, &lim, &q), 0);
	int64_t built = store_bytes_built;
	two_jobs_publish(q, want);
	/* one copy, also when the jobs did not overlap */
	ck_assert_int_eq(store_bytes_built, built + 1);
	jobs_stop(q);
	jobs_free(q);
	nn_model_free(want);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jobs_shared");
	TCase *t = tcase_create("core");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_jobs_alone_and_two_at_once_on_one_copy_publish_the_float_paths_weights);
	tcase_add_test(t, test_a_job_stopped_and_resumed_on_the_kept_copy_reaches_the_same_weights);
	tcase_add_test(t, test_with_sparse_kernels_off_jobs_on_the_copy_publish_the_floats_weights);
	suite_add_tcase(s, t);
	return check_run(s);
}
