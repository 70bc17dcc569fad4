/*
 * itest_predict_bin.c - float32 predictions against a real daemon: a body of
 * application/octet-stream rows gives the same outputs as the JSON body of
 * the same rows (as JSON, and as float32 rows with Accept:
 * application/octet-stream and X-Model-Version), also when the body is
 * sent in chunks of unknown length (long bodies of known length are shared
 * with a helper thread; chunked ones are not: the same bytes either way); bad bodies get problem+json naming the
 * body (400 wrong length, 422 empty or not finite, 415 wrong type, 413 over
 * --max-body, 404 unknown model), and the connection keeps serving.
 */
#include <check.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"

#define INPUTS 6
#define OUTPUTS 3

typedef struct reply {
	long status;
	char *body;
	size_t len;
	char ctype[128];
	char version[32];
} reply;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	reply *r = arg;
	char *b = realloc(r->body, r->len + size * n + 1);
	if (!b)
		return 0;
	memcpy(b + r->len, p, size * n);
	r->body = b;
	r->len += size * n;
	r->body[r->len] = 0;
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	reply *r = arg;
	size_t len = size * n;
	char line[256];
	snprintf(line, sizeof line, "%.*s", (int)(len < 255 ? len : 255), p);
	line[strcspn(line, "\r\n")] = 0;
	if (strncasecmp(line, "Content-Type: ", 14) == 0)
		snprintf(r->ctype, sizeof r->ctype, "%.100s", line + 14);
	else if (strncasecmp(line, "X-Model-Version: ", 17) == 0)
		snprintf(r->version, sizeof r->version, "%.20s", line + 17);
	return len;
}

typedef struct upload {
	const char *p;
	size_t left, chunk;
} upload;

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
	upload *u = arg;
	size_t take = size * n;
	if (take > u->chunk)
		take = u->chunk;
	if (take > u->left)
		take = u->left;
	memcpy(buf, u->p, take);
	u->p += take;
	u->left -= take;
	return take;
}

/* POST body to the model's predict with these types (accept may be NULL);
 * chunked: send it with Transfer-Encoding: chunked, 1000 bytes at a time. */
static long post(nnd *d, CURL *c, const char *mdl, const char *ctype, const char *accept,
                 const void *body, size_t len, int chunked, reply *r)
{
	memset(r, 0, sizeof *r);
	char url[256], line[256];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/models/%s/predict", d->port, mdl);
	struct curl_slist *h = NULL;
	snprintf(line, sizeof line, "Content-Type: %s", ctype);
	h = curl_slist_append(h, line);
	if (accept) {
		snprintf(line, sizeof line, "Accept: %s", accept);
		h = curl_slist_append(h, line);
	}
	h = curl_slist_append(h, "Expect:");
	upload u = { body, len, 1000 };
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	if (chunked) {
		h = curl_slist_append(h, "Transfer-Encoding: chunked");
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &u);
	} else {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	CURLcode rc = curl_easy_perform(c);
	curl_slist_free_all(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	return r->status;
}

static void reply_free(reply *r)
{
	free(r->body);
	r->body = NULL;
}

/* A problem reply with this status and code whose first field is field. */
static void expect_problem(reply *r, long status, const char *code, const char *field)
{
	ck_assert_msg(r->status == status, "want %ld got %ld: %s", status, r->status,
	              r->body ? r->body : "");
	ck_assert_str_eq(r->ctype, "application/problem+json");
	cJSON *j = cJSON_Parse(r->body);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(jstr(j, "code"), code);
	ck_assert_double_eq(jnum(j, "status"), (double)status);
	if (field) {
		const cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "errors"), 0);
		ck_assert_ptr_nonnull(e0);
		ck_assert_str_eq(jstr(e0, "field"), field);
	}
	cJSON_Delete(j);
	reply_free(r);
}

/* rows x INPUTS deterministic float32 values and the same as JSON text
 * (every value written so that it reads back exactly). */
static float *make_rows(int rows, char **json)
{
	float *x = malloc(sizeof *x * (size_t)rows * INPUTS);
	size_t cap = (size_t)rows * INPUTS * 20 + 64, n = 0;
	char *s = malloc(cap);
	ck_assert(x && s);
	n += (size_t)snprintf(s + n, cap - n, "{\"instances\":[");
	for (int r = 0; r < rows; r++) {
		n += (size_t)snprintf(s + n, cap - n, "%s[", r ? "," : "");
		for (int c = 0; c < INPUTS; c++) {
			float v = (float)((r * 31 + c * 7) % 53 - 26) / 4.0f;
			x[r * INPUTS + c] = v;
			n += (size_t)snprintf(s + n, cap - n, "%s%.9g", c ? "," : "", (double)v);
		}
		n += (size_t)snprintf(s + n, cap - n, "]");
	}
	snprintf(s + n, cap - n, "]}");
	*json = s;
	return x;
}

START_TEST(test_float32_rows_predict_as_the_json_rows)
{
	const char *flags[] = { "--max-body", "2000000", "--workers", "1", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char mdl[32];
	ck_assert_int_eq(make_model(&d, INPUTS, OUTPUTS, 8, 3, mdl), 0);
	CURL *c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	/* 700: blocks of 256 and a rest; 12000: bodies of 256 KiB and more,
	 * shared with a helper thread, many more blocks than its ring */
	const int counts[] = { 1, 5, 700, 12000 };
	for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
		int rows = counts[ci];
		char *json;
		float *x = make_rows(rows, &json);
		size_t blen = sizeof *x * (size_t)rows * INPUTS;
		reply rj, rb, rbb, rc;
		ck_assert_int_eq(post(&d, c, mdl, "application/json", NULL, json, strlen(json), 0,
		                      &rj), 200);
		ck_assert_str_eq(rj.ctype, "application/json");
		/* float32 in, JSON out: the same document */
		ck_assert_int_eq(post(&d, c, mdl, "application/octet-stream", NULL, x, blen, 0, &rb),
		                 200);
		ck_assert_str_eq(rb.ctype, "application/json");
		ck_assert_str_eq(rb.body, rj.body);
		/* float32 in and out: the JSON probabilities, bit for bit */
		ck_assert_int_eq(post(&d, c, mdl, "application/octet-stream",
		                      "application/octet-stream", x, blen, 0, &rbb), 200);
		ck_assert_str_eq(rbb.ctype, "application/octet-stream");
		ck_assert_str_eq(rbb.version, "0");
		ck_assert_uint_eq(rbb.len, sizeof(float) * (size_t)rows * OUTPUTS);
		cJSON *j = cJSON_Parse(rj.body);
		ck_assert_ptr_nonnull(j);
		ck_assert_double_eq(jnum(j, "model_version"), 0);
		const cJSON *preds = cJSON_GetObjectItem(j, "predictions");
		ck_assert_int_eq(cJSON_GetArraySize(preds), rows);
		const float *got = (const float *)rbb.body;
		for (int r = 0; r < rows; r++) {
			const cJSON *pr = cJSON_GetObjectItem(cJSON_GetArrayItem(preds, r),
			                                      "probabilities");
			float sum = 0;
			for (int k = 0; k < OUTPUTS; k++) {
				float want = (float)cJSON_GetArrayItem(pr, k)->valuedouble;
				ck_assert_msg(got[r * OUTPUTS + k] == want, "row %d output %d: %g vs %g", r,
				              k, (double)got[r * OUTPUTS + k], (double)want);
				sum += got[r * OUTPUTS + k];
			}
			ck_assert_float_eq_tol(sum, 1.0f, 1e-5f);
		}
		cJSON_Delete(j);
		/* JSON in, float32 out; and a chunked float32 body (no length) */
		ck_assert_int_eq(post(&d, c, mdl, "application/json", "application/octet-stream",
		                      json, strlen(json), 0, &rc), 200);
		ck_assert_uint_eq(rc.len, rbb.len);
		ck_assert(memcmp(rc.body, rbb.body, rbb.len) == 0);
		reply_free(&rc);
		ck_assert_int_eq(post(&d, c, mdl, "application/octet-stream",
		                      "application/octet-stream", x, blen, 1, &rc), 200);
		ck_assert_uint_eq(rc.len, rbb.len);
		ck_assert(memcmp(rc.body, rbb.body, rbb.len) == 0);
		reply_free(&rc);
		/* a chunked JSON body (no length, so no helper): the same text */
		ck_assert_int_eq(post(&d, c, mdl, "application/json", NULL, json, strlen(json), 1,
		                      &rc), 200);
		ck_assert_str_eq(rc.body, rj.body);
		reply_free(&rc);
		reply_free(&rj);
		reply_free(&rb);
		reply_free(&rbb);
		free(json);
		free(x);
	}
	curl_easy_cleanup(c);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_bad_float32_bodies_are_problems)
{
	const char *flags[] = { "--max-body", "200000", "--workers", "1", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char mdl[32];
	ck_assert_int_eq(make_model(&d, INPUTS, OUTPUTS, 8, 3, mdl), 0);
	CURL *c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	float x[3 * INPUTS];
	for (int i = 0; i < 3 * INPUTS; i++)
		x[i] = (float)i / 3.0f;
	reply r;
	/* a length that is not whole rows: 400 naming the body */
	post(&d, c, mdl, "application/octet-stream", NULL, x, sizeof x - 2, 0, &r);
	expect_problem(&r, 400, "malformed_body", "body");
	post(&d, c, mdl, "application/octet-stream", "application/octet-stream", x, 5, 1, &r);
	expect_problem(&r, 400, "malformed_body", "body");
	/* empty: 422 naming the body */
	post(&d, c, mdl, "application/octet-stream", NULL, "", 0, 0, &r);
	expect_problem(&r, 422, "validation_failed", "body");
	/* a NaN: 422 naming its row and column */
	x[2 * INPUTS + 4] = NAN;
	post(&d, c, mdl, "application/octet-stream", NULL, x, sizeof x, 0, &r);
	expect_problem(&r, 422, "validation_failed", "instances[2][4]");
	x[2 * INPUTS + 4] = 1;
	/* another type: 415 */
	post(&d, c, mdl, "text/plain", NULL, x, sizeof x, 0, &r);
	expect_problem(&r, 415, "unsupported_media_type", NULL);
	post(&d, c, mdl, "application/x-www-form-urlencoded", NULL, "a=1", 3, 0, &r);
	expect_problem(&r, 415, "unsupported_media_type", NULL);
	/* over --max-body: 413, by the declared length and by the bytes sent */
	size_t big = 250000;
	char *huge = calloc(1, big);
	ck_assert_ptr_nonnull(huge);
	post(&d, c, mdl, "application/octet-stream", NULL, huge, big, 0, &r);
	expect_problem(&r, 413, "body_too_large", NULL);
	post(&d, c, mdl, "application/octet-stream", NULL, huge, big, 1, &r);
	expect_problem(&r, 413, "body_too_large", NULL);
	free(huge);
	/* an unknown model: 404 */
	post(&d, c, "mdl_0000000000000001", "application/octet-stream", NULL, x, sizeof x, 0, &r);
	expect_problem(&r, 404, "not_found", NULL);
	/* and the daemon still answers, with the right numbers */
	ck_assert_int_eq(post(&d, c, mdl, "application/octet-stream", "application/octet-stream",
	                      x, sizeof x, 0, &r), 200);
	ck_assert_uint_eq(r.len, sizeof(float) * 3 * OUTPUTS);
	for (int k = 0; k < 3 * OUTPUTS; k++)
		ck_assert(isfinite(((const float *)r.body)[k]));
	reply_free(&r);
	curl_easy_cleanup(c);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("predict_bin");
	TCase *tc = tcase_create("daemon");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_float32_rows_predict_as_the_json_rows);
	tcase_add_test(tc, test_bad_float32_bodies_are_problems);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
