/*
 * itest_replicas.c - data-parallel jobs in the daemon (API.md `replicas`,
 * `shards`; server/replicas.c, the scheduling in server/jobs.c):
 *  - a model with batch norm, dropout and a residual block trained with
 *    shards 4 publishes the same weights, to the byte, with replicas 1, 2
 *    and 4 (4 on a daemon of 4 workers), and the job shows its placement;
 *  - replicas above the workers, replicas not dividing shards, shards out
 *    of range are 422s naming the field;
 *  - a data-parallel job killed (-9) mid-run resumes from its checkpoint
 *    at the next start and publishes the weights of an uninterrupted run;
 *  - a job waiting for two workers lets a smaller one start beside the
 *    running job, but is not starved: once it has waited HOLD_US (2 s), a
 *    worker that frees up goes to nobody but it (a job queued after it
 *    stays queued until it has run).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "harness.h"

static const char *SPEC =
	"{\"name\":\"dp\",\"task\":\"classification\",\"inputs\":8,\"outputs\":3,"
	"\"layers\":[{\"type\":\"dense\",\"units\":32,\"activation\":\"relu\"},"
	"{\"type\":\"batch_norm\"},{\"type\":\"dropout\",\"rate\":0.2},"
	"{\"type\":\"residual\",\"layers\":[{\"type\":\"dense\",\"units\":32,\"activation\":\"tanh\"},"
	"{\"type\":\"batch_norm\"}]},{\"type\":\"dense\",\"units\":16,\"activation\":\"relu\"}]}";

/* A plain MLP for the scheduling test. */
static const char *PLAIN =
	"{\"name\":\"mlp\",\"task\":\"classification\",\"inputs\":8,\"outputs\":3,\"seed\":5,"
	"\"layers\":[{\"type\":\"dense\",\"units\":32,\"activation\":\"relu\"}]}";

/* A fresh model of spec, a job of it on ds with `extra` config; returns the
 * job id in job and the model id in mdl. */
static void start_spec(nnd *d, const char *spec, const char *ds, int epochs, const char *extra,
                       char *mdl, char *job)
{
	ck_assert_int_eq(create_model(d, spec, mdl), 201);
	ck_assert_int_eq(submit_job(d, mdl, ds, epochs, 16, extra, job), 202);
}

/* The same with SPEC. */
static void start(nnd *d, const char *ds, int epochs, const char *extra, char *mdl, char *job)
{
	start_spec(d, SPEC, ds, epochs, extra, mdl, job);
}

static cJSON *finish(nnd *d, const char *job)
{
	cJSON *j = wait_job(d, job, 240);
	ck_assert_ptr_nonnull(j);
	char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "error"));
	ck_assert_msg(strcmp(jstr(j, "state"), "succeeded") == 0, "%s: %s", jstr(j, "state"), text);
	free(text);
	return j;
}

static void assert_placement(const cJSON *job, int n)
{
	const cJSON *p = cJSON_GetObjectItem(job, "placement");
	ck_assert_int_eq(cJSON_GetArraySize(p), n);
	for (int i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof want, "thread %d", i);
		ck_assert_str_eq(cJSON_GetArrayItem(p, i)->valuestring, want);
	}
}

START_TEST(test_weights_same_bytes_for_replicas_1_2_4)
{
	nnd d = { 0 };
	const char *flags[] = { "--workers", "4", NULL };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[64], m[3][64], j[3][64];
	ck_assert_int_eq(make_dataset_csv(&d, 300, 8, 3, ds), 0);
	const char *extra[3] = { "\"replicas\":1,\"shards\":4",
		                 "\"replicas\":2,\"shards\":4",
		                 "\"replicas\":4" };
	for (int i = 0; i < 3; i++)
		start(&d, ds, 3, extra[i], m[i], j[i]);
	char *w[3];
	for (int i = 0; i < 3; i++) {
		cJSON *job = finish(&d, j[i]);
		assert_placement(job, 1 << i);
		const cJSON *cfg = cJSON_GetObjectItem(job, "config");
		ck_assert_int_eq((int)jnum(cfg, "shards"), 4);
		ck_assert_int_eq((int)jnum(cfg, "replicas"), 1 << i);
		cJSON_Delete(job);
		w[i] = weights_text(&d, m[i]);
	}
	ck_assert_str_eq(w[0], w[1]);
	ck_assert_str_eq(w[0], w[2]);

	/* shards 1 is another computation (other dropout streams, other sums) */
	char m1[64], j1[64];
	start(&d, ds, 3, NULL, m1, j1);
	cJSON_Delete(finish(&d, j1));
	char *w1 = weights_text(&d, m1);
	ck_assert_str_ne(w1, w[0]);
	free(w1);
	for (int i = 0; i < 3; i++)
		free(w[i]);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

/* POST /v1/jobs with extra; asserts a 422 naming field. */
static void refused(nnd *d, const char *mdl, const char *ds, const char *extra, const char *field)
{
	char body[512];
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",%s}", mdl, ds, extra);
	http_resp r;
	ck_assert_int_eq(http_do(d, "POST", "/v1/jobs", "application/json", body, strlen(body), &r),
	                 422);
	char want[64];
	snprintf(want, sizeof want, "\"field\":\"%s\"", field);
	ck_assert_msg(strstr(r.body, want) != NULL, "%s: %s", extra, r.body);
	resp_free(&r);
}

START_TEST(test_bad_replicas_and_shards_are_422s)
{
	nnd d = { 0 };
	const char *flags[] = { "--workers", "2", NULL };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[64], mdl[64];
	ck_assert_int_eq(make_dataset_csv(&d, 40, 8, 3, ds), 0);
	ck_assert_int_eq(create_model(&d, SPEC, mdl), 201);
	refused(&d, mdl, ds, "\"replicas\":3,\"shards\":3", "replicas");
	refused(&d, mdl, ds, "\"replicas\":2,\"shards\":3", "replicas");
	refused(&d, mdl, ds, "\"shards\":0", "shards");
	refused(&d, mdl, ds, "\"shards\":65", "shards");
	refused(&d, mdl, ds, "\"replicas\":0", "replicas");
	refused(&d, mdl, ds, "\"replicas\":\"two\"", "replicas");
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_killed_data_parallel_job_resumes_to_the_same_weights)
{
	nnd d = { 0 };
	/* checkpoints as they come: the job is short, and the kill must find
	 * one written */
	const char *flags[] = { "--workers", "2", "--checkpoint-gap-ms", "0", NULL };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[64], m0[64], j0[64], m1[64], j1[64];
	ck_assert_int_eq(make_dataset_csv(&d, 2000, 8, 3, ds), 0);
	const char *extra = "\"replicas\":2,\"shards\":2";
	start(&d, ds, 12, extra, m0, j0);
	cJSON_Delete(finish(&d, j0));
	char *straight = weights_text(&d, m0);

	start(&d, ds, 12, extra, m1, j1);
	/* past the first epoch's checkpoint, then kill -9: the job's writer
	 * thread writes it while training goes on, so wait for the file (a
	 * shared store keeps it in its database: an epoch later instead) */
	char ck[700];
	snprintf(ck, sizeof ck, "%s/checkpoints/%s.ckpt", d.data, j1);
	int shared = getenv("NND_TEST_STORE") != NULL;
	for (int i = 0; i < 3000; i++) {
		struct stat st;
		int e = get_int(&d, "/v1/jobs/%s", j1, "epoch");
		if (e >= 2 && (shared ? e >= 3 : stat(ck, &st) == 0))
			break;
		sleep_ms(5);
	}
	nnd_kill9(&d);
	ck_assert_int_eq(nnd_restart(&d), 0);
	cJSON *job = finish(&d, j1);
	assert_placement(job, 2);
	cJSON_Delete(job);
	ck_assert_msg(log_has(&d, "resuming from its checkpoint"), "the job did not resume");
	char *resumed = weights_text(&d, m1);
	ck_assert_str_eq(straight, resumed);
	free(straight);
	free(resumed);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

static const char *state_of(nnd *d, const char *job, char *buf)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s", job);
	cJSON *j = http_json(d, "GET", path, NULL, NULL);
	ck_assert_ptr_nonnull(j);
	snprintf(buf, 32, "%s", jstr(j, "state"));
	cJSON_Delete(j);
	return buf;
}

static void wait_state(nnd *d, const char *job, const char *want)
{
	char b[32];
	for (int i = 0; i < 6000 && strcmp(state_of(d, job, b), want); i++)
		sleep_ms(10);
	ck_assert_str_eq(state_of(d, job, b), want);
}

static void cancel(nnd *d, const char *job)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job);
	http_resp r;
	ck_assert_int_eq(http_do(d, "POST", path, NULL, NULL, 0, &r), 202);
	resp_free(&r);
	wait_state(d, job, "cancelled");
}

/* Jobs x, z0, z1 never end by themselves (the test cancels them); y needs
 * both workers. */
START_TEST(test_waiting_job_lets_smaller_ones_by_then_goes_first)
{
	nnd d = { 0 };
	const char *flags[] = { "--workers", "2", NULL };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[64], mx[64], jx[64], my[64], jy[64], mz[2][64], jz[2][64], b[32];
	ck_assert_int_eq(make_dataset_csv(&d, 300, 8, 3, ds), 0);
	start_spec(&d, PLAIN, ds, 100000, NULL, mx, jx);
	wait_state(&d, jx, "running");
	start_spec(&d, PLAIN, ds, 2, "\"replicas\":2", my, jy);
	for (int i = 0; i < 2; i++)
		start_spec(&d, PLAIN, ds, 100000, NULL, mz[i], jz[i]);
	/* z0 starts beside x while y waits for two workers */
	wait_state(&d, jz[0], "running");
	ck_assert_str_eq(state_of(&d, jy, b), "queued");
	/* past the hold: the worker x frees goes to nobody but y */
	sleep_ms(2500);
	cancel(&d, jx);
	sleep_ms(300);
	ck_assert_str_eq(state_of(&d, jz[1], b), "queued");
	ck_assert_str_eq(state_of(&d, jy, b), "queued");
	cancel(&d, jz[0]);
	cJSON *y = finish(&d, jy);
	assert_placement(y, 2);
	cJSON_Delete(y);
	wait_state(&d, jz[1], "running");
	cancel(&d, jz[1]);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("replicas");
	TCase *t = tcase_create("replicas");
	tcase_set_timeout(t, 600);
	tcase_add_test(t, test_weights_same_bytes_for_replicas_1_2_4);
	tcase_add_test(t, test_bad_replicas_and_shards_are_422s);
	tcase_add_test(t, test_killed_data_parallel_job_resumes_to_the_same_weights);
	suite_add_tcase(s, t);
	/* one daemon's queue holding small jobs back for a big one (a shared
	 * store's queue claims the oldest job that fits: tests/pg/run-pg.sh
	 * leaves this case out with CK_EXCLUDE_TAGS=queue) */
	TCase *q = tcase_create("queue");
	tcase_set_tags(q, "queue");
	tcase_set_timeout(q, 600);
	tcase_add_test(q, test_waiting_job_lets_smaller_ones_by_then_goes_first);
	suite_add_tcase(s, q);
	return run_suite(s);
}
