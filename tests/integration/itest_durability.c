/*
 * itest_durability.c - crashes and shutdowns lose nothing:
 *  - kill -9 during a training job; after a restart the job resumes from
 *    its last checkpoint and ends with exactly the weights of a run that
 *    was never interrupted (same seed); every data set, model and model
 *    version acknowledged before the kill is intact;
 *  - SIGTERM during a job exits 0 within 10 s, the job checkpoints and
 *    stays queued, and finishes after the next start.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static const char *SPEC =
	"{\"name\":\"durable\",\"task\":\"classification\",\"inputs\":30,\"outputs\":3,\"seed\":11,"
	"\"layers\":[{\"type\":\"dense\",\"units\":384,\"activation\":\"relu\"},"
	"{\"type\":\"dense\",\"units\":384,\"activation\":\"tanh\"}]}";

static long start_job(nnd *d, const char *mdl, const char *ds, int epochs, char *id)
{
	char extra[160];
	snprintf(extra, sizeof extra, "\"checkpoint_every_epochs\":1,\"log_every_steps\":5,"
	                              "\"validation\":{\"fraction\":0.1}");
	return submit_job(d, mdl, ds, epochs, 32, extra, id);
}

/* Waits until the running job has reached epoch `epoch` (0-based index of
 * the epoch in progress). */
static void wait_epoch(nnd *d, const char *job, int epoch)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s", job);
	for (int i = 0; i < 3000; i++) {
		long st;
		cJSON *j = http_json(d, "GET", path, NULL, &st);
		int e = (int)jnum(j, "epoch");
		const char *s = jstr(j, "state");
		int done = strcmp(s, "queued") != 0 && strcmp(s, "running") != 0;
		cJSON_Delete(j);
		ck_assert_msg(!done, "the job finished before it could be interrupted");
		if (e >= epoch)
			return;
		sleep_ms(10);
	}
	ck_abort_msg("the job never reached epoch %d", epoch);
}

/* The weights of a model as JSON text (exact floats). */
static char *weights_of(nnd *d, const char *mdl)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/models/%s/weights", mdl);
	long st;
	cJSON *j = http_json(d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	cJSON_DeleteItemFromObject(j, "version");
	char *t = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return t;
}

/* Every epoch 0..n-1 appears exactly once in the job's history. */
static void check_history(nnd *d, const char *job, int epochs)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s/metrics", job);
	long st;
	cJSON *m = http_json(d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	cJSON *eps = cJSON_GetObjectItem(m, "epochs");
	ck_assert_int_eq(cJSON_GetArraySize(eps), epochs);
	for (int i = 0; i < epochs; i++)
		ck_assert_double_eq(jnum(cJSON_GetArrayItem(eps, i), "epoch"), i);
	cJSON *steps = cJSON_GetObjectItem(m, "steps");
	double prev = 0;
	cJSON *s;
	cJSON_ArrayForEach(s, steps) {
		ck_assert_double_gt(jnum(s, "step"), prev);
		prev = jnum(s, "step");
	}
	cJSON_Delete(m);
}

START_TEST(test_kill9_resumes_to_the_same_weights)
{
	/* checkpoints as they come: the kill at the third of ten short epochs
	 * must find one written (the default gap of 100 ms may not have) */
	const char *flags[] = { "--workers", "1", "--checkpoint-gap-ms", "0", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[32], mdl[32], kept[32], job[32];
	ck_assert_int_eq(make_dataset_csv(&d, 2400, 30, 3, ds), 0);

	/* a model with a PUT version, acknowledged before the crash */
	ck_assert_int_eq(make_model(&d, 4, 2, 3, 5, kept), 0);
	const char *w = "{\"layers\":[{\"type\":\"dense\",\"weight\":[[1,2,3,4],[5,6,7,8],[9,10,11,12]],"
	                "\"bias\":[0.5,0.25,0.125]},{\"type\":\"dense\",\"weight\":[[1,0,1],[0,1,0]],"
	                "\"bias\":[-1,1]}]}";
	char path[128];
	snprintf(path, sizeof path, "/v1/models/%s/weights", kept);
	http_resp r;
	ck_assert_int_eq(http_do(&d, "PUT", path, "application/json", w, strlen(w), &r), 200);
	resp_free(&r);
	char *kept_w = weights_of(&d, kept);

	ck_assert_int_eq(create_model(&d, SPEC, mdl), 201);
	ck_assert_int_eq(start_job(&d, mdl, ds, 10, job), 202);
	wait_epoch(&d, job, 3);
	nnd_kill9(&d);

	ck_assert_int_eq(nnd_restart(&d), 0);
	/* everything acknowledged is there */
	snprintf(path, sizeof path, "/v1/datasets/%s", ds);
	long st;
	cJSON *j = http_json(&d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_double_eq(jnum(j, "rows"), 2400);
	cJSON_Delete(j);
	snprintf(path, sizeof path, "/v1/models/%s", kept);
	j = http_json(&d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_double_eq(jnum(j, "version"), 1);
	cJSON_Delete(j);
	char *kept_w2 = weights_of(&d, kept);
	ck_assert_str_eq(kept_w, kept_w2);
	free(kept_w);
	free(kept_w2);

	/* the interrupted job resumes and finishes */
	cJSON *done = wait_job(&d, job, 90);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	cJSON_Delete(done);
	ck_assert(log_has(&d, "resuming from its checkpoint"));
	check_history(&d, job, 10);
	char *resumed = weights_of(&d, mdl);

	/* the same job never interrupted */
	char mdl2[32], job2[32];
	ck_assert_int_eq(create_model(&d, SPEC, mdl2), 201);
	ck_assert_int_eq(start_job(&d, mdl2, ds, 10, job2), 202);
	done = wait_job(&d, job2, 90);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	cJSON_Delete(done);
	char *straight = weights_of(&d, mdl2);
	ck_assert_msg(strcmp(resumed, straight) == 0, "resumed and uninterrupted weights differ");
	free(resumed);
	free(straight);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_sigterm_checkpoints_and_resumes)
{
	const char *flags[] = { "--workers", "1", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[32], mdl[32], job[32];
	ck_assert_int_eq(make_dataset_csv(&d, 2400, 30, 3, ds), 0);
	ck_assert_int_eq(create_model(&d, SPEC, mdl), 201);
	ck_assert_int_eq(start_job(&d, mdl, ds, 8, job), 202);
	wait_epoch(&d, job, 1);
	/* a subscriber still following when the signal comes */
	bg_stream f;
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s/events", job);
	ck_assert_int_eq(bg_stream_start(&f, &d, path), 0);
	sleep_ms(100);
	time_t t0 = time(NULL);
	ck_assert_int_eq(nnd_stop(&d, 10), 0);
	ck_assert_int_le(time(NULL) - t0, 10);
	ck_assert(log_has(&d, "stays queued"));
	ck_assert_ptr_nonnull(bg_stream_join(&f));
	ck_assert_ptr_nonnull(strstr(f.text, "event: step"));
	ck_assert_ptr_null(strstr(f.text, "\"state\":\"succeeded\""));
	free(f.text);

	ck_assert_int_eq(nnd_restart(&d), 0);
	cJSON *done = wait_job(&d, job, 90);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	ck_assert_double_eq(jnum(done, "model_version"), 1);
	cJSON_Delete(done);
	ck_assert(log_has(&d, "resuming from its checkpoint"));
	check_history(&d, job, 8);
	ck_assert_int_eq(nnd_stop(&d, 10), 0);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_acknowledged_cancel_survives_kill9)
{
	const char *flags[] = { "--workers", "1", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[32], mdl[32], job[32], path[128];
	ck_assert_int_eq(make_dataset_csv(&d, 2400, 30, 3, ds), 0);
	ck_assert_int_eq(create_model(&d, SPEC, mdl), 201);
	ck_assert_int_eq(start_job(&d, mdl, ds, 200, job), 202);
	wait_epoch(&d, job, 1);
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job);
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", path, NULL, NULL, 0, &r), 202);
	resp_free(&r);
	nnd_kill9(&d);
	ck_assert_int_eq(nnd_restart(&d), 0);
	cJSON *done = wait_job(&d, job, 30);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "cancelled");
	cJSON_Delete(done);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_readyz_is_503_while_draining)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	http_resp r;
	/* a kept-alive connection still gets answers between the signal
	 * and the stop; readiness must be off by then */
	ck_assert_int_eq(http_do(&d, "GET", "/readyz", NULL, NULL, 0, &r), 200);
	resp_free(&r);
	kill(d.pid, SIGTERM);
	int seen503 = 0, ready_after = 0;
	for (int i = 0; i < 20000; i++) {
		long st = http_do(&d, "GET", "/readyz", NULL, NULL, 0, &r);
		if (st == 503) {
			cJSON *j = cJSON_Parse(r.body);
			ck_assert_str_eq(jstr(j, "code"), "not_ready");
			cJSON_Delete(j);
			seen503++;
		}
		ready_after += seen503 && st == 200;
		resp_free(&r);
		if (st == 0)
			break;
	}
	ck_assert_int_gt(seen503, 0);
	ck_assert_int_eq(ready_after, 0);
	/* a second SIGTERM during the drain changes nothing: still exit 0 */
	ck_assert_int_eq(nnd_stop(&d, 10), 0);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("durability");
	TCase *t = tcase_create("durability");
	tcase_set_timeout(t, 240);
	tcase_add_test(t, test_kill9_resumes_to_the_same_weights);
	tcase_add_test(t, test_sigterm_checkpoints_and_resumes);
	tcase_add_test(t, test_readyz_is_503_while_draining);
	tcase_add_test(t, test_acknowledged_cancel_survives_kill9);
	suite_add_tcase(s, t);
	return run_suite(s);
}
