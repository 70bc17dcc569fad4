/*
 * itest_concurrency.c - jobs and predictions at once, on --workers 2
 * --queue 2: four jobs all finish (two run, two wait), a fifth is refused
 * with 429 and Retry-After, predictions keep answering while training
 * runs, and cancel stops both a queued and a running job.
 */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const char *SPEC =
	"{\"task\":\"classification\",\"inputs\":30,\"outputs\":3,\"seed\":3,"
	"\"layers\":[{\"type\":\"dense\",\"units\":256,\"activation\":\"relu\"},"
	"{\"type\":\"dense\",\"units\":256,\"activation\":\"relu\"}]}";

static const char *state_of(nnd *d, const char *job, char *buf)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s", job);
	long st;
	cJSON *j = http_json(d, "GET", path, NULL, &st);
	snprintf(buf, 32, "%s", jstr(j, "state"));
	cJSON_Delete(j);
	return buf;
}

static void wait_running(nnd *d, const char *job)
{
	char s[32];
	for (int i = 0; i < 2000; i++) {
		if (strcmp(state_of(d, job, s), "running") == 0)
			return;
		ck_assert_str_eq(s, "queued");
		sleep_ms(5);
	}
	ck_abort_msg("job %s never started", job);
}

static long predict(nnd *d, const char *mdl)
{
	char path[128], body[512];
	size_t n = (size_t)snprintf(body, sizeof body, "{\"instances\":[[");
	for (int f = 0; f < 30; f++)
		n += (size_t)snprintf(body + n, sizeof body - n, "%s%d", f ? "," : "", f % 3);
	snprintf(body + n, sizeof body - n, "]]}");
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	http_resp r;
	long st = http_do(d, "POST", path, "application/json", body, strlen(body), &r);
	resp_free(&r);
	return st;
}

START_TEST(test_four_jobs_two_workers_full_queue_and_predictions)
{
	const char *flags[] = { "--workers", "2", "--queue", "2", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[32], m[5][32], job[5][32];
	ck_assert_int_eq(make_dataset_csv(&d, 2400, 30, 3, ds), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(create_model(&d, SPEC, m[i]), 201);
	ck_assert_int_eq(submit_job(&d, m[0], ds, 5, 32, NULL, job[0]), 202);
	ck_assert_int_eq(submit_job(&d, m[1], ds, 5, 32, NULL, job[1]), 202);
	wait_running(&d, job[0]);
	wait_running(&d, job[1]);
	ck_assert_int_eq(submit_job(&d, m[2], ds, 2, 32, NULL, job[2]), 202);
	ck_assert_int_eq(submit_job(&d, m[3], ds, 2, 32, NULL, job[3]), 202);

	/* the queue holds two: the fifth is refused */
	char body[256];
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\"}", m[4], ds);
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", "/v1/jobs", "application/json", body, strlen(body), &r),
	                 429);
	ck_assert_str_eq(r.ctype, "application/problem+json");
	ck_assert_int_gt(atoi(r.retry_after), 0);
	cJSON *j = cJSON_Parse(r.body);
	ck_assert_str_eq(jstr(j, "code"), "queue_full");
	cJSON_Delete(j);
	resp_free(&r);

	/* predictions answer while both workers train */
	int ok = 0, during = 0;
	char s[32];
	for (int i = 0; i < 100; i++) {
		ok += predict(&d, m[4]) == 200;
		during += strcmp(state_of(&d, job[0], s), "running") == 0;
	}
	ck_assert_int_eq(ok, 100);
	ck_assert_int_gt(during, 0);

	for (int i = 0; i < 4; i++) {
		cJSON *done = wait_job(&d, job[i], 120);
		ck_assert_ptr_nonnull(done);
		ck_assert_str_eq(jstr(done, "state"), "succeeded");
		ck_assert_double_eq(jnum(done, "model_version"), 1);
		cJSON_Delete(done);
	}
	/* queued jobs are listed by state */
	ck_assert_int_eq(http_do(&d, "GET", "/v1/jobs?state=succeeded", NULL, NULL, 0, &r), 200);
	j = cJSON_Parse(r.body);
	ck_assert_double_eq(jnum(j, "total"), 4);
	cJSON_Delete(j);
	resp_free(&r);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_cancel_queued_and_running)
{
	const char *flags[] = { "--workers", "1", "--queue", "4", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[32], m[2][32], job[2][32], path[128];
	ck_assert_int_eq(make_dataset_csv(&d, 2400, 30, 3, ds), 0);
	ck_assert_int_eq(create_model(&d, SPEC, m[0]), 201);
	ck_assert_int_eq(create_model(&d, SPEC, m[1]), 201);
	ck_assert_int_eq(submit_job(&d, m[0], ds, 500, 32, NULL, job[0]), 202);
	wait_running(&d, job[0]);
	ck_assert_int_eq(submit_job(&d, m[1], ds, 500, 32, NULL, job[1]), 202);

	/* the queued one: cancelled at once, never started */
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job[1]);
	long st;
	cJSON *j = http_json(&d, "POST", path, NULL, &st);
	ck_assert_int_eq(st, 202);
	ck_assert_str_eq(jstr(j, "state"), "cancelled");
	cJSON_Delete(j);
	cJSON *done = wait_job(&d, job[1], 5);
	ck_assert_ptr_nonnull(done);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(done, "started_at")));
	cJSON_Delete(done);

	/* the running one: stops at its next step */
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job[0]);
	j = http_json(&d, "POST", path, NULL, &st);
	ck_assert_int_eq(st, 202);
	cJSON_Delete(j);
	done = wait_job(&d, job[0], 30);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "cancelled");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(done, "model_version")));
	cJSON_Delete(done);
	/* the model kept its version 0 */
	snprintf(path, sizeof path, "/v1/models/%s", m[0]);
	j = http_json(&d, "GET", path, NULL, &st);
	ck_assert_double_eq(jnum(j, "version"), 0);
	cJSON_Delete(j);
	/* and the data set is free again */
	snprintf(path, sizeof path, "/v1/datasets/%s", ds);
	http_resp r;
	ck_assert_int_eq(http_do(&d, "DELETE", path, NULL, NULL, 0, &r), 204);
	resp_free(&r);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

static int count(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* A subscriber that hangs up after 300 ms. */
static void vanish(nnd *d, const char *path)
{
	CURL *c = curl_easy_init();
	char url[256];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", d->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	FILE *null = fopen("/dev/null", "w");
	curl_easy_setopt(c, CURLOPT_WRITEDATA, null);
	CURLcode rc = curl_easy_perform(c);
	/* it hangs up mid-stream, unless the job was already over */
	ck_assert(rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_OK);
	fclose(null);
	curl_easy_cleanup(c);
}

START_TEST(test_many_subscribers_get_the_same_live_events)
{
	const char *flags[] = { "--workers", "1", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[32], m[32], job[32];
	ck_assert_int_eq(make_dataset_csv(&d, 2400, 30, 3, ds), 0);
	ck_assert_int_eq(create_model(&d, SPEC, m), 201);
	ck_assert_int_eq(submit_job(&d, m, ds, 12, 32, "\"log_every_steps\":5", job), 202);
	bg_stream subs[3];
	for (int i = 0; i < 3; i++) {
		char path[128];
		snprintf(path, sizeof path, "/v1/jobs/%s/events%s", job,
		         i == 2 ? "?format=ndjson" : "");
		ck_assert_int_eq(bg_stream_start(&subs[i], &d, path), 0);
	}
	vanish(&d, subs[0].path);
	for (int i = 0; i < 3; i++)
		ck_assert_msg(bg_stream_join(&subs[i]) != NULL, "subscriber %d got no stream", i);
	int steps = count(subs[0].text, "event: step");
	ck_assert_int_ge(steps, 2);
	ck_assert_int_eq(count(subs[1].text, "event: step"), steps);
	ck_assert_int_eq(count(subs[2].text, "{\"event\":\"step\""), steps);
	ck_assert_int_eq(count(subs[0].text, "event: epoch"), 12);
	for (int i = 0; i < 3; i++) {
		ck_assert_ptr_nonnull(strstr(subs[i].text, "\"state\":\"succeeded\""));
		free(subs[i].text);
	}
	http_resp r;
	ck_assert_int_eq(http_do(&d, "GET", "/healthz", NULL, NULL, 0, &r), 200);
	resp_free(&r);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("concurrency");
	TCase *t = tcase_create("concurrency");
	tcase_set_timeout(t, 240);
	tcase_add_test(t, test_four_jobs_two_workers_full_queue_and_predictions);
	tcase_add_test(t, test_cancel_queued_and_running);
	tcase_add_test(t, test_many_subscribers_get_the_same_live_events);
	suite_add_tcase(s, t);
	return run_suite(s);
}
