/*
 * test_jobs.c - the job queue and its event feeds (server/jobs.c) on a real
 * store: a reader ahead of the feed is suspended and woken exactly once by
 * the next event, a queued job cancelled never runs, the queue bound gives
 * 429, a late reader of a finished job gets the stored history and the
 * final state, and a stop requeues the running job.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "jobs.h"
#include "store_data.h"
#include "util.h"

static char dir[64];
static store *st;
static char ds_id[API_ID_LEN], mdl_id[API_ID_LEN];

static void setup(void)
{
	temp_dir_make(dir, sizeof dir, "/tmp/nnd-jobs-XXXXXX");
	char err[256];
	ck_assert_int_eq(store_open(dir, &st, err, sizeof err), 0);

	/* 64 rows x 2 features, two classes */
	static float x[128];
	static int32_t y[64];
	for (int i = 0; i < 64; i++) {
		y[i] = i % 2;
		x[2 * i] = (float)(i % 2) + 0.01f * (float)i;
		x[2 * i + 1] = (float)(1 - i % 2);
	}
	char *names[2] = { "f0", "f1" };
	create_class_dataset(st, "d", x, y, 64, 2, names, ds_id);
	api_err e = API_ERR_INIT;

	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = 4;
	l.act = NN_ACT_RELU;
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, 2, 2, NN_INIT_AUTO, 1, &l, 1 };
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	ck_assert_ptr_nonnull(m);
	api_model_info mi;
	ck_assert_int_eq(store_model_create(st, "m", m, &mi, &e), 0);
	strcpy(mdl_id, mi.id);
	api_model_info_release(&mi);
	nn_model_free(m);
}

static void teardown(void)
{
	store_close(st);
	temp_dir_remove(dir);
}

/* Submits a job of `epochs` epochs; returns the HTTP-like status. */
static int submit(jobs *q, int epochs, char *id)
{
	nn_train_config cfg = nn_train_config_default();
	cfg.epochs = epochs;
	cfg.batch_size = 4;
	cfg.log_every_steps = 1;
	api_job_refs refs = { .model = mdl_id, .dataset = ds_id };
	cJSON *c = api_train_config_to_json(&cfg, &refs);
	char *text = cJSON_PrintUnformatted(c);
	cJSON_Delete(c);
	api_job j;
	api_err e = API_ERR_INIT;
	int rc = jobs_submit(q, &refs, text, &j, &e);
	free(text);
	if (rc < 0)
		return e.status;
	strcpy(id, j.id);
	api_job_release(&j);
	return 202;
}

typedef struct probe {
	int suspended, woken;
} probe;

static void on_suspend(void *arg) { ((probe *)arg)->suspended++; }
static void on_wake(void *arg) { ((probe *)arg)->woken++; }

static int state_of(jobs *q, const char *id)
{
	api_job j;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(jobs_get(q, id, &j, &e), 0);
	int s = j.state;
	api_job_release(&j);
	return s;
}

static void wait_state(jobs *q, const char *id, int want)
{
	for (int i = 0; i < 3000 && state_of(q, id) != want; i++)
		usleep(2000);
	ck_assert_int_eq(state_of(q, id), want);
}

/* Waits until job id has trained past its first step. */
static void wait_step(jobs *q, const char *id)
{
	int64_t step = 0;
	for (int i = 0; i < 15000 && step <= 0; i++) {
		api_job j;
		api_err e = API_ERR_INIT;
		ck_assert_int_eq(jobs_get(q, id, &j, &e), 0);
		step = j.step;
		api_job_release(&j);
		if (step <= 0)
			usleep(2000);
	}
	ck_assert_int_gt(step, 0);
}

START_TEST(test_reader_suspends_and_wakes_once_and_cancel_ends_the_stream)
{
	api_limits lim = api_limits_default();
	jobs *q = NULL;
	ck_assert_int_eq(jobs_start(st, 1, 1, &lim, &q), 0);
	char busy[API_ID_LEN], queued[API_ID_LEN], extra[API_ID_LEN];
	ck_assert_int_eq(submit(q, 100000, busy), 202);
	wait_state(q, busy, API_JOB_RUNNING);
	ck_assert_int_eq(submit(q, 1, queued), 202);
	/* capacity 1: the second queued job is refused */
	ck_assert_int_eq(submit(q, 1, extra), 429);
	ck_assert_int_eq(jobs_queue_depth(q), 1);

	api_err e = API_ERR_INIT;
	feed *f = jobs_feed_open(q, queued, &e);
	ck_assert_ptr_nonnull(f);
	probe p = { 0, 0 };
	feed_waiter w = { on_suspend, on_wake, &p, NULL, 0 };
	size_t cur = 0;
	int kind;
	int64_t id;
	char *data = NULL;
	ck_assert_int_eq(jobs_feed_next(q, f, &cur, &kind, &id, &data, &w), 1);
	ck_assert_int_eq(kind, FEED_STATE);
	ck_assert_ptr_nonnull(strstr(data, "\"queued\""));
	free(data);
	/* nothing more yet: suspended, not woken */
	ck_assert_int_eq(jobs_feed_next(q, f, &cur, &kind, &id, &data, &w), 0);
	ck_assert_int_eq(p.suspended, 1);
	ck_assert_int_eq(p.woken, 0);

	api_job j;
	ck_assert_int_eq(jobs_cancel(q, queued, &j, &e), 0);
	ck_assert_int_eq(j.state, API_JOB_CANCELLED);
	ck_assert_int_eq(j.started_at, 0);
	api_job_release(&j);
	ck_assert_int_eq(p.woken, 1);
	ck_assert_int_eq(jobs_feed_next(q, f, &cur, &kind, &id, &data, &w), 1);
	ck_assert_ptr_nonnull(strstr(data, "\"cancelled\""));
	free(data);
	ck_assert_int_eq(jobs_feed_next(q, f, &cur, &kind, &id, &data, &w), -1);
	ck_assert_int_eq(p.woken, 1);
	jobs_feed_close(q, f, &w);
	/* a finished job cannot be cancelled again */
	ck_assert_int_eq(jobs_cancel(q, queued, &j, &e), -1);
	ck_assert_int_eq(e.status, 409);

	/* stop: the running job checkpoints and stays queued in the store (once
	 * it has trained a step: a loaded machine, ASan, may not be there yet) */
	wait_step(q, busy);
	jobs_stop(q);
	jobs_free(q);
	api_job back;
	ck_assert_int_eq(store_job_get(st, busy, &back, &e), 0);
	ck_assert_int_eq(back.state, API_JOB_QUEUED);
	ck_assert_int_gt(back.step, 0);
	api_job_release(&back);
	void *ck = NULL;
	size_t len = 0;
	ck_assert_int_eq(store_checkpoint_get(st, busy, &ck, &len), 0);
	ck_assert_ptr_nonnull(ck);
	free(ck);
}
END_TEST

START_TEST(test_late_reader_gets_history_then_the_final_state)
{
	api_limits lim = api_limits_default();
	jobs *q = NULL;
	ck_assert_int_eq(jobs_start(st, 1, 4, &lim, &q), 0);
	char id[API_ID_LEN];
	ck_assert_int_eq(submit(q, 2, id), 202);
	wait_state(q, id, API_JOB_SUCCEEDED);
	for (int i = 0; i < 100 && jobs_queue_depth(q); i++)
		usleep(1000);
	api_err e = API_ERR_INIT;
	feed *f = jobs_feed_open(q, id, &e);
	ck_assert_ptr_nonnull(f);
	probe p = { 0, 0 };
	feed_waiter w = { on_suspend, on_wake, &p, NULL, 0 };
	size_t cur = 0;
	int kind, steps = 0, epochs = 0, states = 0, last_succeeded = 0;
	int64_t evid, last = 0;
	char *data;
	int rc;
	for (;;) {
		rc = jobs_feed_next(q, f, &cur, &kind, &evid, &data, &w);
		if (rc == -1)
			break;
		if (rc == 0) {
			/* the feed was still live: wait for the wake, then go on */
			for (int i = 0; i < 5000 && !__atomic_load_n(&p.woken, __ATOMIC_SEQ_CST); i++)
				usleep(1000);
			ck_assert_int_eq(__atomic_load_n(&p.woken, __ATOMIC_SEQ_CST), 1);
			p.woken = 0;
			continue;
		}
		steps += kind == FEED_STEP;
		epochs += kind == FEED_EPOCH;
		if (kind == FEED_STATE) {
			states++;
			last_succeeded = strstr(data, "\"succeeded\"") != NULL;
		}
		ck_assert_int_ge(evid, last);   /* ids never go back */
		last = evid;
		free(data);
	}
	ck_assert_int_eq(rc, -1);
	ck_assert_int_le(p.suspended, 1);
	ck_assert_int_eq(steps, 32);        /* 2 epochs x 16 batches, every step */
	ck_assert_int_eq(epochs, 2);
	/* the stored history has one state event (the final one); a feed
	 * still live at open has each change (queued, running, succeeded) */
	ck_assert(states == 1 || states == 3);
	ck_assert_int_eq(last_succeeded, 1);
	jobs_feed_close(q, f, &w);
	jobs_stop(q);
	jobs_free(q);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jobs");
	TCase *t = tcase_create("core");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_reader_suspends_and_wakes_once_and_cancel_ends_the_stream);
	tcase_add_test(t, test_late_reader_gets_history_then_the_final_state);
	suite_add_tcase(s, t);
	return check_run(s);
}
