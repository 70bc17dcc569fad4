/*
 * test_store.c - the SQLite store and its files (server/storage.c): rows
 * and files round-trip, versions count up and snapshots follow them, a
 * data set in use cannot be deleted, metric history keeps order and
 * replaces replays, and a reopen removes temporary and orphan files while
 * keeping everything committed; a trial's row and event commit together,
 * and kept statements serve call after call. Publishers of one model take
 * turns, each version once; a publish writes its file without the store's
 * lock, and one whose model was deleted meanwhile leaves nothing behind.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "storage.h"
#include "store_fixture.h"
#include "store_trials_check.h"
#include "util.h"


/* 3 rows x 2 features, classes "a" and "b". */
static void small_dataset(api_dataset *d, float *x, int32_t *y, char **classes, char **names)
{
	memset(d, 0, sizeof *d);
	for (int i = 0; i < 6; i++)
		x[i] = (float)i * 0.5f;
	y[0] = 0;
	y[1] = 1;
	y[2] = 0;
	classes[0] = "a";
	classes[1] = "b";
	names[0] = "f0";
	names[1] = "f1";
	d->task = NN_TASK_CLASSIFICATION;
	d->rows = 3;
	d->features = 2;
	d->outputs = 2;
	d->x = x;
	d->labels = y;
	d->classes = classes;
	d->n_classes = 2;
	d->feature_names = names;
}

static nn_model *small_model(void)
{
	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = 3;
	l.act = NN_ACT_RELU;
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, 2, 2, NN_INIT_AUTO, 7, &l, 1 };
	char err[128];
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	return m;
}

static int count_files(const char *sub, const char *prefix)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, sub);
	DIR *d = opendir(p);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL)
		n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return n;
}

START_TEST(test_dataset_round_trip_and_delete)
{
	store *s = open_store();
	api_dataset d, back;
	float x[6];
	int32_t y[3];
	char *classes[2], *names[2];
	small_dataset(&d, x, y, classes, names);
	api_dataset_info info;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_dataset_create(s, &d, "tiny", &info, &e), 0);
	ck_assert(api_id_valid(info.id, "ds"));
	ck_assert_int_eq(info.features, 2);
	ck_assert_str_eq(cJSON_GetObjectItem(info.doc, "name")->valuestring, "tiny");
	ck_assert(cJSON_GetObjectItem(info.doc, "bytes")->valuedouble > 0);
	char id[API_ID_LEN];
	strcpy(id, info.id);
	api_dataset_info_release(&info);

	ck_assert_int_eq(store_dataset_load(s, id, &back, &e), 0);
	ck_assert_int_eq(back.rows, 3);
	ck_assert_float_eq(back.x[5], 2.5f);
	ck_assert_int_eq(back.labels[1], 1);
	api_dataset_free(&back);

	cJSON *items = cJSON_CreateArray();
	int64_t total = 0;
	ck_assert_int_eq(store_dataset_list(s, 10, 0, items, &total, &e), 0);
	ck_assert_int_eq(total, 1);
	ck_assert_int_eq(cJSON_GetArraySize(items), 1);
	cJSON_Delete(items);

	ck_assert_int_eq(store_dataset_delete(s, id, &e), 0);
	ck_assert_int_eq(store_dataset_get(s, id, &info, &e), -1);
	ck_assert_int_eq(e.status, 404);
	ck_assert_int_eq(count_files("datasets", "ds_"), 0);
	store_close(s);
}
END_TEST

START_TEST(test_versions_and_snapshots)
{
	store *s = open_store();
	nn_model *m = small_model();
	api_model_info info;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_model_create(s, "m", m, &info, &e), 0);
	ck_assert_int_eq(info.version, 0);
	ck_assert_int_eq(info.inputs, 2);
	char id[API_ID_LEN];
	strcpy(id, info.id);
	api_model_info_release(&info);

	api_model_snap *v0 = NULL;
	ck_assert_int_eq(store_model_snapshot(s, id, &v0, &e), 0);
	ck_assert_int_eq(v0->version, 0);

	/* a new version: the old snapshot stays valid for its holder */
	nn_model *m1 = nn_model_clone(m);
	int64_t n;
	float *p = nn_model_params(m1, &n);
	p[0] = 42.0f;
	int version = -1;
	ck_assert_int_eq(store_model_publish(s, id, m1, &version, &e), 0);
	ck_assert_int_eq(version, 1);
	api_model_snap *v1 = NULL;
	ck_assert_int_eq(store_model_snapshot(s, id, &v1, &e), 0);
	ck_assert_int_eq(v1->version, 1);
	ck_assert(v1->serial != v0->serial);
	ck_assert_float_eq(nn_model_params((nn_model *)v1->model, &n)[0], 42.0f);
	ck_assert(nn_model_params((nn_model *)v0->model, &n)[0] != 42.0f);
	store_snap_release(s, v0);
	store_snap_release(s, v1);

	/* versions are files; a reopened store reads the newest */
	store_close(s);
	s = open_store();
	ck_assert_int_eq(store_model_snapshot(s, id, &v1, &e), 0);
	ck_assert_int_eq(v1->version, 1);
	ck_assert_float_eq(nn_model_params((nn_model *)v1->model, &n)[0], 42.0f);
	store_snap_release(s, v1);
	nn_model *old = NULL;
	ck_assert_int_eq(store_model_load(s, id, 0, &old, &e), 0);
	ck_assert(nn_model_params(old, &n)[0] != 42.0f);
	nn_model_free(old);

	ck_assert_int_eq(store_model_delete(s, id, &e), 0);
	ck_assert_int_eq(count_files("models", "mdl_"), 0);
	ck_assert_int_eq(store_model_snapshot(s, id, &v1, &e), -1);
	ck_assert_int_eq(e.status, 404);
	nn_model_free(m);
	store_close(s);
}
END_TEST

START_TEST(test_jobs_history_and_conflicts)
{
	store *s = open_store();
	api_err e = API_ERR_INIT;
	api_dataset d;
	float x[6];
	int32_t y[3];
	char *classes[2], *names[2];
	small_dataset(&d, x, y, classes, names);
	api_dataset_info di;
	ck_assert_int_eq(store_dataset_create(s, &d, NULL, &di, &e), 0);
	nn_model *m = small_model();
	api_model_info mi;
	ck_assert_int_eq(store_model_create(s, NULL, m, &mi, &e), 0);

	api_job j;
	memset(&j, 0, sizeof j);
	strcpy(j.model, mi.id);
	strcpy(j.dataset, di.id);
	j.config = strdup("{\"epochs\":1}");
	j.model_version = -1;
	ck_assert_int_eq(store_job_insert(s, &j, &e), 0);
	ck_assert(api_id_valid(j.id, "job"));

	/* a queued job holds its data set and model */
	ck_assert_int_eq(store_dataset_delete(s, di.id, &e), -1);
	ck_assert_int_eq(e.status, 409);
	ck_assert_int_eq(store_model_delete(s, mi.id, &e), -1);
	ck_assert_int_eq(e.status, 409);

	/* history: steps replayed after a resume replace, not duplicate */
	store_step steps[3] = { { 1, 0, 1.5f, 0.1f }, { 2, 0, NAN, 0.1f }, { 3, 1, 0.5f, 0.1f } };
	j.state = API_JOB_RUNNING;
	ck_assert_int_eq(store_metrics_write(s, j.id, steps, 3, 0, 2, "{\"epoch\":0}", &j, &e), 0);
	ck_assert_int_eq(store_metrics_write(s, j.id, steps + 2, 1, 0, 0, NULL, NULL, &e), 0);
	cJSON *h = NULL;
	ck_assert_int_eq(store_metrics_get(s, j.id, 0, &h, &e), 0);
	cJSON *st = cJSON_GetObjectItem(h, "steps");
	ck_assert_int_eq(cJSON_GetArraySize(st), 3);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(st, 1), "loss")));
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(h, "epochs")), 1);
	cJSON_Delete(h);
	ck_assert_int_eq(store_metrics_get(s, j.id, 2, &h, &e), 0);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(h, "steps")), 1);
	cJSON_Delete(h);
	store_event *ev = NULL;
	int nev = 0;
	ck_assert_int_eq(store_history(s, j.id, &ev, &nev), 0);
	ck_assert_int_eq(nev, 4);     /* step 1, step 2, epoch 0 (after step 2), step 3 */
	ck_assert_int_eq(ev[2].kind, 1);
	ck_assert_int_eq(ev[3].kind, 0);
	store_history_free(ev, nev);

	/* checkpoints round-trip and go away */
	void *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(store_checkpoint_put(s, j.id, "state", 5), 0);
	ck_assert_int_eq(store_checkpoint_get(s, j.id, &buf, &len), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(buf, "state", 5);
	free(buf);

	/* unfinished jobs are found at start; a finished job frees its inputs */
	char (*ids)[API_ID_LEN] = NULL;
	int n = 0;
	ck_assert_int_eq(store_jobs_unfinished(s, &ids, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(ids[0], j.id);
	free(ids);
	j.state = API_JOB_SUCCEEDED;
	ck_assert_int_eq(store_job_publish(s, &j, nn_model_clone(m), "[\"a\",\"b\"]", &e), 0);
	ck_assert_int_eq(j.model_version, 1);
	api_job back;
	ck_assert_int_eq(store_job_get(s, j.id, &back, &e), 0);
	ck_assert_int_eq(back.state, API_JOB_SUCCEEDED);
	ck_assert_int_eq(back.model_version, 1);
	api_job_release(&back);
	api_model_info mi2;
	ck_assert_int_eq(store_model_get(s, mi.id, &mi2, &e), 0);
	ck_assert_int_eq(mi2.version, 1);
	ck_assert_str_eq(cJSON_GetObjectItem(mi2.doc, "trained_by")->valuestring, j.id);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(mi2.doc, "classes")), 2);
	api_model_info_release(&mi2);
	int64_t counts[API_JOB_NSTATES];
	ck_assert_int_eq(store_job_counts(s, counts), 0);
	ck_assert_int_eq(counts[API_JOB_SUCCEEDED], 1);

	/* a reopen removes temporary files and checkpoints of finished jobs */
	char tmp[256];
	snprintf(tmp, sizeof tmp, "%s/models/.tmp-1234-x.model", dir);
	FILE *f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	store_close(s);
	s = open_store();
	ck_assert_int_eq(count_files("models", ".tmp-"), 0);
	ck_assert_int_eq(count_files("checkpoints", "job_"), 0);
	ck_assert_int_eq(store_dataset_delete(s, di.id, &e), 0);

	api_job_release(&j);
	api_dataset_info_release(&di);
	api_model_info_release(&mi);
	nn_model_free(m);
	store_close(s);
}
END_TEST

START_TEST(test_snapshot_cache_evicts_but_holders_keep_theirs)
{
	store *s = open_store();
	api_err e = API_ERR_INIT;
	nn_model *m = small_model();
	char ids[80][API_ID_LEN];
	api_model_snap *held = NULL;
	for (int i = 0; i < 80; i++) {
		api_model_info info;
		ck_assert_int_eq(store_model_create(s, NULL, m, &info, &e), 0);
		strcpy(ids[i], info.id);
		api_model_info_release(&info);
		api_model_snap *sn = NULL;
		ck_assert_int_eq(store_model_snapshot(s, ids[i], &sn, &e), 0);
		if (i == 0)
			held = sn;      /* kept across the evictions */
		else
			store_snap_release(s, sn);
	}
	int64_t n;
	ck_assert_int_eq(held->version, 0);
	ck_assert_int_eq(nn_model_params((nn_model *)held->model, &n)[0],
	                 nn_model_params(m, &n)[0]);
	/* evicted models load again */
	api_model_snap *again = NULL;
	ck_assert_int_eq(store_model_snapshot(s, ids[1], &again, &e), 0);
	ck_assert_int_eq(again->version, 0);
	store_snap_release(s, again);
	store_snap_release(s, held);
	nn_model_free(m);
	store_close(s);
}
END_TEST

static store *reopen(store *s)
{
	store_close(s);
	return open_store();
}

START_TEST(test_a_trial_row_and_its_event_commit_together)
{
	check_trial_record(open_store(), reopen);
}
END_TEST

/* Kept statements (prep/unprep): the same ones hundreds of times, each
 * call with its own values and rows (a statement left unreset would give
 * the last call's). */
START_TEST(test_kept_statements_serve_repeated_calls)
{
	store *s = open_store();
	store_study st;
	for (int i = 0; i < 300; i++) {
		trials_check_study(s, &st);
		store_study got;
		api_err e = API_ERR_INIT;
		ck_assert_int_eq(store_study_get(s, st.id, &got, &e), 0);
		ck_assert_str_eq(got.id, st.id);
		store_study_release(&got);
		store_study_release(&st);
	}
	int64_t total = 0;
	char (*ids)[API_ID_LEN] = NULL;
	int n = 0;
	ck_assert_int_eq(store_study_ids(s, 0, 1000, 0, &ids, &n, &total), 0);
	ck_assert_int_eq(n, 300);
	ck_assert_int_eq(total, 300);
	free(ids);
	store_close(s);
}
END_TEST

/* ---- publishing: the file outside the store's lock */

static store *hook_store;
static char hook_other[API_ID_LEN];   /* a model the hook reads meanwhile */
static int hook_calls, hook_read_ok, hook_delete_rc;
static int hook_delete;               /* 1: the hook deletes the model it publishes */
static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hook_cv = PTHREAD_COND_INITIALIZER;
static int reader_done;

static void *read_other(void *arg)
{
	(void)arg;
	api_model_info info;
	api_err e = API_ERR_INIT;
	int rc = store_model_get(hook_store, hook_other, &info, &e);
	if (rc == 0)
		api_model_info_release(&info);
	pthread_mutex_lock(&hook_mu);
	reader_done = 1;
	hook_read_ok = rc == 0;
	pthread_cond_signal(&hook_cv);
	pthread_mutex_unlock(&hook_mu);
	return NULL;
}

/* With the version's file durable and its rows not yet committed: another
 * thread's store call completes (within 10 s; it would wait for ever if
 * the publisher held the store's lock), or the model is deleted. */
static void on_publish(store *s, const char *id, int version)
{
	(void)version;
	hook_calls++;
	if (hook_delete) {
		api_err e = API_ERR_INIT;
		hook_delete_rc = store_model_delete(s, id, &e);
		return;
	}
	pthread_t th;
	reader_done = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, read_other, NULL), 0);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&hook_mu);
	while (!reader_done && pthread_cond_timedwait(&hook_cv, &hook_mu, &until) == 0)
		;
	int done = reader_done;
	pthread_mutex_unlock(&hook_mu);
	ck_assert_msg(done, "a store call waited for a publish's file");
	pthread_join(th, NULL);
}

static void new_model_id(store *s, char *id)
{
	nn_model *m = small_model();
	api_model_info info;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_model_create(s, "m", m, &info, &e), 0);
	strcpy(id, info.id);
	api_model_info_release(&info);
	nn_model_free(m);
}

START_TEST(test_publish_writes_its_file_outside_the_store_lock)
{
	store *s = open_store();
	char id[API_ID_LEN];
	new_model_id(s, id);
	new_model_id(s, hook_other);
	hook_store = s;
	hook_calls = 0;
	hook_delete = 0;
	store_publish_hook = on_publish;
	nn_model *m = small_model();
	int version = -1;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_model_publish(s, id, m, &version, &e), 0);
	store_publish_hook = NULL;
	ck_assert_int_eq(hook_calls, 1);
	ck_assert_int_eq(hook_read_ok, 1);
	ck_assert_int_eq(version, 1);
	store_close(s);
}
END_TEST

START_TEST(test_publish_to_a_model_deleted_meanwhile_leaves_nothing)
{
	store *s = open_store();
	char id[API_ID_LEN];
	new_model_id(s, id);
	hook_calls = 0;
	hook_delete = 1;
	hook_delete_rc = -1;
	store_publish_hook = on_publish;
	nn_model *m = small_model();
	int version = -1;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_model_publish(s, id, m, &version, &e), -1);
	store_publish_hook = NULL;
	hook_delete = 0;
	ck_assert_int_eq(hook_calls, 1);
	ck_assert_int_eq(hook_delete_rc, 0);
	ck_assert_int_eq(e.status, 404);
	ck_assert_int_eq(version, -1);
	ck_assert_int_eq(count_files("models", id), 0);   /* neither v0 nor v1 */
	api_model_info info;
	api_err e2 = API_ERR_INIT;
	ck_assert_int_eq(store_model_get(s, id, &info, &e2), -1);
	ck_assert_int_eq(e2.status, 404);
	store_close(s);
}
END_TEST

#define PUBLISHERS 4
#define PUBLISHES 8

typedef struct pub_arg {
	store *s;
	const char *id;
	int versions[PUBLISHES];
	int failed;
} pub_arg;

static void *publisher(void *arg)
{
	pub_arg *a = arg;
	for (int i = 0; i < PUBLISHES; i++) {
		nn_model *m = small_model();
		int64_t n;
		nn_model_params(m, &n)[0] = 1000.0f;   /* marks weights published here */
		api_err e = API_ERR_INIT;
		a->failed += store_model_publish(a->s, a->id, m, &a->versions[i], &e) != 0;
	}
	return NULL;
}

START_TEST(test_publishers_of_one_model_take_turns)
{
	store *s = open_store();
	char id[API_ID_LEN];
	new_model_id(s, id);
	pub_arg args[PUBLISHERS];
	pthread_t th[PUBLISHERS];
	for (int t = 0; t < PUBLISHERS; t++) {
		memset(&args[t], 0, sizeof args[t]);
		args[t].s = s;
		args[t].id = id;
		ck_assert_int_eq(pthread_create(&th[t], NULL, publisher, &args[t]), 0);
	}
	int seen[PUBLISHERS * PUBLISHES + 1] = { 0 };
	for (int t = 0; t < PUBLISHERS; t++) {
		pthread_join(th[t], NULL);
		ck_assert_int_eq(args[t].failed, 0);
		for (int i = 0; i < PUBLISHES; i++) {
			int v = args[t].versions[i];
			ck_assert(v >= 1 && v <= PUBLISHERS * PUBLISHES);
			ck_assert_int_eq(seen[v], 0);   /* each version once */
			seen[v] = 1;
			/* one publisher's versions count up */
			if (i > 0)
				ck_assert_int_gt(v, args[t].versions[i - 1]);
		}
	}
	api_model_snap *snap = NULL;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_model_snapshot(s, id, &snap, &e), 0);
	ck_assert_int_eq(snap->version, PUBLISHERS * PUBLISHES);
	store_snap_release(s, snap);
	ck_assert_int_eq(count_files("models", id), PUBLISHERS * PUBLISHES + 1);
	/* every version reads back after a reopen */
	store_close(s);
	s = open_store();
	for (int v = 0; v <= PUBLISHERS * PUBLISHES; v++) {
		nn_model *m = NULL;
		ck_assert_int_eq(store_model_load(s, id, v, &m, &e), 0);
		int64_t n;
		ck_assert(v == 0 ? nn_model_params(m, &n)[0] != 1000.0f
		                 : nn_model_params(m, &n)[0] == 1000.0f);
		nn_model_free(m);
	}
	store_close(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *t = tcase_create("core");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 30);
	tcase_add_test(t, test_dataset_round_trip_and_delete);
	tcase_add_test(t, test_versions_and_snapshots);
	tcase_add_test(t, test_jobs_history_and_conflicts);
	tcase_add_test(t, test_snapshot_cache_evicts_but_holders_keep_theirs);
	tcase_add_test(t, test_a_trial_row_and_its_event_commit_together);
	tcase_add_test(t, test_kept_statements_serve_repeated_calls);
	tcase_add_test(t, test_publish_writes_its_file_outside_the_store_lock);
	tcase_add_test(t, test_publish_to_a_model_deleted_meanwhile_leaves_nothing);
	tcase_add_test(t, test_publishers_of_one_model_take_turns);
	suite_add_tcase(s, t);
	return check_run(s);
}
