/*
 * itest_errors.c - every status code of API.md triggered against a real
 * daemon and checked: the status, an application/problem+json body with
 * the matching "status" and "code", the field path of 422s, Allow on 405,
 * Retry-After on 429, WWW-Authenticate on 401; and the API key on and off.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* Checks a problem reply; returns its parsed body (caller deletes). */
static cJSON *expect_problem(http_resp *r, long status, const char *code)
{
	ck_assert_msg(r->status == status, "want %ld got %ld: %s", status, r->status, r->body);
	ck_assert_str_eq(r->ctype, "application/problem+json");
	cJSON *j = cJSON_Parse(r->body);
	ck_assert_ptr_nonnull(j);
	ck_assert_double_eq(jnum(j, "status"), (double)status);
	ck_assert_str_eq(jstr(j, "code"), code);
	ck_assert(strncmp(jstr(j, "type"), "/errors/", 8) == 0);
	ck_assert(strlen(jstr(j, "title")) > 0);
	return j;
}

static void check(nnd *d, const char *method, const char *path, const char *ctype,
                  const char *body, long status, const char *code)
{
	http_resp r;
	http_do(d, method, path, ctype, body, body ? strlen(body) : 0, &r);
	cJSON_Delete(expect_problem(&r, status, code));
	resp_free(&r);
}

/* The field paths of a 422 reply include `field`. */
static int has_field(const cJSON *j, const char *field)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "errors"))
		if (strcmp(jstr(e, "field"), field) == 0)
			return 1;
	return 0;
}

START_TEST(test_each_status_code)
{
	const char *flags[] = { "--max-body", "65536", "--workers", "1", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	http_resp r;

	/* 400: malformed JSON, malformed CSV naming line and column */
	check(&d, "POST", "/v1/models", "application/json", "{\"inputs\": 3,", 400, "malformed_json");
	check(&d, "POST", "/v1/models", "application/json", "{\"name\": \"\xff\xfe\"}", 400,
	      "malformed_json");
	check(&d, "POST", "/v1/models", "application/json", "[1, 2] trailing", 400, "malformed_json");
	http_do(&d, "POST", "/v1/datasets", "text/csv", "a,b\n1,2\n3\n", 10, &r);
	cJSON *j = expect_problem(&r, 400, "malformed_csv");
	ck_assert_ptr_nonnull(strstr(jstr(j, "detail"), "line 3"));
	cJSON_Delete(j);
	resp_free(&r);

	/* 404: unknown route, malformed id, unknown id */
	check(&d, "GET", "/v2/nothing", NULL, NULL, 404, "not_found");
	check(&d, "GET", "/v1/models/mdl_XYZ", NULL, NULL, 404, "not_found");
	check(&d, "GET", "/v1/datasets/..%2F..%2Fetc%2Fpasswd", NULL, NULL, 404, "not_found");
	check(&d, "GET", "/v1/models/mdl_0123456789abcdef", NULL, NULL, 404, "not_found");
	check(&d, "GET", "/v1/jobs/job_0123456789abcdef/events", NULL, NULL, 404, "not_found");

	/* 405 with Allow */
	http_do(&d, "DELETE", "/v1/jobs", NULL, NULL, 0, &r);
	cJSON_Delete(expect_problem(&r, 405, "method_not_allowed"));
	ck_assert_str_eq(r.allow, "POST, GET");
	resp_free(&r);

	/* 413: a body over --max-body */
	size_t big = 70000;
	char *body = malloc(big + 1);
	memset(body, ' ', big);
	body[0] = '{';
	body[big - 1] = '}';
	body[big] = '\0';
	check(&d, "POST", "/v1/models", "application/json", body, 413, "body_too_large");
	check(&d, "POST", "/v1/datasets", "text/csv", body, 413, "body_too_large");
	free(body);

	/* 415: unsupported content types */
	check(&d, "POST", "/v1/datasets", "text/plain", "x", 415, "unsupported_media_type");
	check(&d, "POST", "/v1/models", "text/csv", "a,b\n", 415, "unsupported_media_type");

	/* 422 with the offending field path */
	const char *bad = "{\"task\":\"classification\",\"inputs\":3,\"outputs\":2,"
	                  "\"layers\":[{\"type\":\"dense\",\"units\":4},{\"type\":\"dense\",\"units\":-1}]}";
	http_do(&d, "POST", "/v1/models", "application/json", bad, strlen(bad), &r);
	j = expect_problem(&r, 422, "validation_failed");
	ck_assert_msg(has_field(j, "layers[1].units"), "%s", r.body);
	cJSON_Delete(j);
	resp_free(&r);

	/* 422: a job whose data set does not fit the model, and bad instances */
	char ds[32], mdl[32], other[32], job[32];
	ck_assert_int_eq(make_dataset_csv(&d, 60, 4, 3, ds), 0);
	ck_assert_int_eq(make_model(&d, 5, 3, 8, 1, mdl), 0);
	char jb[256];
	snprintf(jb, sizeof jb, "{\"model\":\"%s\",\"dataset\":\"%s\"}", mdl, ds);
	http_do(&d, "POST", "/v1/jobs", "application/json", jb, strlen(jb), &r);
	j = expect_problem(&r, 422, "validation_failed");
	ck_assert_msg(has_field(j, "dataset"), "%s", r.body);
	cJSON_Delete(j);
	resp_free(&r);
	char pp[128];
	snprintf(pp, sizeof pp, "/v1/models/%s/predict", mdl);
	http_do(&d, "POST", pp, "application/json", "{\"instances\":[[1,2,3,4,5],[1,2,\"x\",4,5]]}",
	        41, &r);
	j = expect_problem(&r, 422, "validation_failed");
	ck_assert_msg(has_field(j, "instances[1][2]"), "%s", r.body);
	cJSON_Delete(j);
	resp_free(&r);

	/* 409: deleting a data set a queued or running job uses; cancelling a
	 * finished job */
	ck_assert_int_eq(make_model(&d, 4, 3, 8, 1, other), 0);
	ck_assert_int_eq(submit_job(&d, other, ds, 100000, 4, NULL, job), 202);   /* still running at the cancel, however fast */
	char dp[128];
	snprintf(dp, sizeof dp, "/v1/datasets/%s", ds);
	check(&d, "DELETE", dp, NULL, NULL, 409, "in_use");
	char cp[128];
	snprintf(cp, sizeof cp, "/v1/jobs/%s/cancel", job);
	http_do(&d, "POST", cp, NULL, NULL, 0, &r);
	ck_assert_int_eq(r.status, 202);
	resp_free(&r);
	cJSON *done = wait_job(&d, job, 30);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "cancelled");
	cJSON_Delete(done);
	check(&d, "POST", cp, NULL, NULL, 409, "job_finished");

	/* 200s of the service endpoints */
	ck_assert_int_eq(http_do(&d, "GET", "/healthz", NULL, NULL, 0, &r), 200);
	resp_free(&r);
	ck_assert_int_eq(http_do(&d, "GET", "/openapi.json", NULL, NULL, 0, &r), 200);
	j = cJSON_Parse(r.body);
	ck_assert_ptr_nonnull(j);
	ck_assert(strncmp(jstr(j, "openapi"), "3.", 2) == 0);
	cJSON_Delete(j);
	resp_free(&r);
	ck_assert_int_eq(http_do(&d, "GET", "/metrics", NULL, NULL, 0, &r), 200);
	ck_assert_ptr_nonnull(strstr(r.body, "nnd_http_requests_total{route=\"models\""));
	ck_assert_ptr_nonnull(strstr(r.body, "nnd_jobs{state=\"cancelled\"} 1"));
	ck_assert_ptr_nonnull(strstr(r.body, "nnd_job_queue_depth"));
	resp_free(&r);
	ck_assert_int_eq(http_do(&d, "GET", "/v1/info", NULL, NULL, 0, &r), 200);
	j = cJSON_Parse(r.body);
	ck_assert_double_eq(jnum(j, "workers"), 1);
	ck_assert(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "blas"), "core")));
	cJSON_Delete(j);
	resp_free(&r);

	/* lists page with limit/offset and report the total */
	ck_assert_int_eq(http_do(&d, "GET", "/v1/models?limit=1&offset=1", NULL, NULL, 0, &r), 200);
	j = cJSON_Parse(r.body);
	ck_assert_double_eq(jnum(j, "total"), 2);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "models")), 1);
	cJSON_Delete(j);
	resp_free(&r);
	check(&d, "GET", "/v1/models?limit=5000", NULL, NULL, 422, "validation_failed");
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_api_key_on_and_off)
{
	/* off: no key needed */
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	http_resp r;
	ck_assert_int_eq(http_do(&d, "GET", "/v1/models", NULL, NULL, 0, &r), 200);
	resp_free(&r);
	ck_assert_int_eq(nnd_cleanup(&d), 0);

	/* on, from a key file */
	char keyfile[] = "/tmp/nnd-key-XXXXXX";
	int fd = mkstemp(keyfile);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "s3cret-key\n", 11), 11);
	close(fd);
	const char *flags[] = { "--api-key-file", keyfile, NULL };
	nnd k = { 0 };
	snprintf(k.key, sizeof k.key, "s3cret-key");
	ck_assert_int_eq(nnd_start(&k, flags), 0);
	unlink(keyfile);
	ck_assert_int_eq(http_do(&k, "GET", "/v1/models", NULL, NULL, 0, &r), 200);
	resp_free(&r);
	const char *paths[] = { "/v1/models", "/v1/datasets", "/v1/jobs", "/v1/info", "/metrics" };
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		http_do_auth(&k, "GET", paths[i], NULL, NULL, 0, "", &r);
		cJSON_Delete(expect_problem(&r, 401, "unauthorized"));
		ck_assert_str_eq(r.www_auth, "Bearer");
		resp_free(&r);
		http_do_auth(&k, "GET", paths[i], NULL, NULL, 0, "s3cret-kez", &r);
		cJSON_Delete(expect_problem(&r, 401, "unauthorized"));
		resp_free(&r);
		http_do_auth(&k, "GET", paths[i], NULL, NULL, 0, "s3cret-key-longer", &r);
		cJSON_Delete(expect_problem(&r, 401, "unauthorized"));
		resp_free(&r);
	}
	/* health stays open */
	ck_assert_int_eq(http_do_auth(&k, "GET", "/healthz", NULL, NULL, 0, "", &r), 200);
	resp_free(&r);
	ck_assert_int_eq(http_do_auth(&k, "GET", "/readyz", NULL, NULL, 0, "", &r), 200);
	resp_free(&r);
	/* the key is never logged */
	FILE *f = fopen(k.log, "r");
	char line[1024];
	int leaked = 0;
	while (f && fgets(line, sizeof line, f))
		leaked |= strstr(line, "s3cret") != NULL;
	if (f)
		fclose(f);
	ck_assert_int_eq(leaked, 0);
	ck_assert_int_eq(nnd_cleanup(&k), 0);

	/* on, from NND_API_KEY */
	setenv("NND_API_KEY", "env-key", 1);
	nnd e = { 0 };
	snprintf(e.key, sizeof e.key, "env-key");
	ck_assert_int_eq(nnd_start(&e, NULL), 0);
	unsetenv("NND_API_KEY");
	ck_assert_int_eq(http_do(&e, "GET", "/v1/jobs", NULL, NULL, 0, &r), 200);
	resp_free(&r);
	ck_assert_int_eq(http_do_auth(&e, "GET", "/v1/jobs", NULL, NULL, 0, "", &r), 401);
	resp_free(&r);
	ck_assert_int_eq(nnd_cleanup(&e), 0);
}
END_TEST

START_TEST(test_diverging_job_fails_with_code_diverged)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	long st;
	cJSON *ds = cJSON_Parse("{\"task\":\"regression\",\"x\":[[1,2],[3,4],[5,6],[7,1]],"
	                        "\"y\":[1,2,3,4]}");
	cJSON *j = http_json(&d, "POST", "/v1/datasets", ds, &st);
	ck_assert_int_eq(st, 201);
	char dsid[32], mdl[32], job[32], path[128];
	snprintf(dsid, sizeof dsid, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	cJSON_Delete(ds);
	const char *spec = "{\"task\":\"regression\",\"inputs\":2,\"outputs\":1,"
	                   "\"layers\":[{\"type\":\"dense\",\"units\":8,\"activation\":\"tanh\"}]}";
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", "/v1/models", "application/json", spec, strlen(spec), &r),
	                 201);
	j = cJSON_Parse(r.body);
	snprintf(mdl, sizeof mdl, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	resp_free(&r);
	char body[256];
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":50,"
	         "\"batch_size\":4,\"optimizer\":{\"type\":\"sgd\",\"lr\":1e6},"
	         "\"log_every_steps\":1}", mdl, dsid);
	ck_assert_int_eq(http_do(&d, "POST", "/v1/jobs", "application/json", body, strlen(body), &r),
	                 202);
	j = cJSON_Parse(r.body);
	snprintf(job, sizeof job, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	resp_free(&r);
	cJSON *done = wait_job(&d, job, 30);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "failed");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(done, "error"), "code"), "diverged");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(done, "model_version")));
	cJSON_Delete(done);
	/* nothing non-finite comes out, and the model still predicts */
	snprintf(path, sizeof path, "/v1/jobs/%s/events", job);
	char *ev = read_stream(&d, path, NULL);
	ck_assert_ptr_nonnull(ev);
	const char *bad[] = { ":nan", ":-nan", ":inf", ":-inf", "NaN", "Infinity" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(strstr(ev, bad[i]) == NULL, "%s in the stream", bad[i]);
	ck_assert_ptr_nonnull(strstr(ev, "\"code\":\"diverged\""));
	free(ev);
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	ck_assert_int_eq(http_do(&d, "POST", path, "application/json", "{\"instances\":[[1,2]]}", 21,
	                         &r), 200);
	j = cJSON_Parse(r.body);
	ck_assert_double_eq(jnum(j, "model_version"), 0);
	cJSON_Delete(j);
	resp_free(&r);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("errors");
	TCase *t = tcase_create("errors");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_each_status_code);
	tcase_add_test(t, test_api_key_on_and_off);
	tcase_add_test(t, test_diverging_job_fails_with_code_diverged);
	suite_add_tcase(s, t);
	return run_suite(s);
}
