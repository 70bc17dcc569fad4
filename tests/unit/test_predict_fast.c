/*
 * test_predict_fast.c - the fast path of POST /v1/models/{id}/predict
 * (api/handlers_models.c) answers exactly as the general cJSON path does.
 *
 * Each body is sent twice through api_model_predict on a fake backend that
 * serves one small model: once as written (the fast path reads plain
 * {"instances": [[...]]} bodies) and once with the key spelled
 * "\u0069nstances", which only the general path reads. The two replies must
 * be byte for byte the same, for integers, decimals of every magnitude,
 * negative zero, class labels that need escaping, and regression; bodies the
 * fast path does not take must still get the general path's errors.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "nn.h"
#include "spec_json.h"
#include "store.h"

typedef struct fake {
	api_model_snap snap;
} fake;

static int fake_snapshot(void *ctx, const char *id, api_model_snap **out, api_err *e)
{
	fake *f = ctx;
	if (strcmp(id, "mdl_00000000000000aa") != 0)
		return api_err_set(e, 404, "not_found", "no model %s", id);
	*out = &f->snap;
	return 0;
}

static void fake_release(void *ctx, api_model_snap *s)
{
	(void)ctx;
	(void)s;
}

static nn_model *small_model(nn_task task, int inputs, int outputs)
{
	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = 5;
	l.act = NN_ACT_TANH;
	nn_model_spec spec = { task, inputs, outputs, NN_INIT_AUTO, 3, &l, 1 };
	char err[128];
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	ck_assert_ptr_nonnull(m);
	return m;
}

static api_backend backend(fake *f)
{
	api_backend b;
	memset(&b, 0, sizeof b);
	b.ctx = f;
	b.limits = api_limits_default();
	b.model_snapshot = fake_snapshot;
	b.snap_release = fake_release;
	return b;
}

/* The reply to body (status into *status); the caller frees it. */
static char *predict(const api_backend *b, const char *body, int *status)
{
	api_req rq;
	memset(&rq, 0, sizeof rq);
	rq.method = "POST";
	rq.id = "mdl_00000000000000aa";
	rq.body = body;
	rq.body_len = strlen(body);
	api_reply rp;
	memset(&rp, 0, sizeof rp);
	api_model_predict(b, &rq, &rp);
	*status = rp.status;
	char *text = rp.body;
	rp.body = NULL;
	api_reply_release(&rp);
	return text;
}

/* The same instances through both paths: equal replies, status 200. */
static void assert_same(const api_backend *b, const char *instances)
{
	size_t n = strlen(instances) + 64;
	char *fast = malloc(n), *slow = malloc(n);
	snprintf(fast, n, "{\"instances\": %s}", instances);
	snprintf(slow, n, "{\"\\u0069nstances\": %s}", instances);
	int s1, s2;
	char *a = predict(b, fast, &s1), *c = predict(b, slow, &s2);
	ck_assert_int_eq(s1, 200);
	ck_assert_int_eq(s2, 200);
	ck_assert_str_eq(a, c);
	free(a);
	free(c);
	free(fast);
	free(slow);
}

START_TEST(test_integer_rows_match_the_general_path)
{
	fake f = { { small_model(NN_TASK_CLASSIFICATION, 4, 3), 7, NULL, 0, 1, NULL } };
	api_backend b = backend(&f);
	assert_same(&b, "[[0, 1, 2, 255], [12, 0, 99, 7]]");
	assert_same(&b, "[[-3,4,-5,6]]");
	assert_same(&b, "[ [ 1 , 2 , 3 , 4 ] ,\n\t[5,6,7,8] ]");
	int st;
	char *r = predict(&b, "{\"instances\": [[0, 1, 2, 3]]}", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_ptr_nonnull(strstr(r, "\"model_version\":7"));
	ck_assert_ptr_nonnull(strstr(r, "\"label\":\""));
	free(r);
	nn_model_free((nn_model *)f.snap.model);
}
END_TEST

START_TEST(test_decimals_of_every_magnitude_match)
{
	fake f = { { small_model(NN_TASK_CLASSIFICATION, 4, 3), 1, NULL, 0, 1, NULL } };
	api_backend b = backend(&f);
	assert_same(&b, "[[0.5, -0.25, 1e-3, 2.5E2], [-0, 0.0, 1e0, -1.5e-7]]");
	assert_same(&b, "[[123456789012345678901234, 1e-300, 2.9e38, 0.1]]");
	assert_same(&b, "[[1.00000005, 0.30000000000000004, 16777217, -2e-45]]");
	/* random rows: decimals written with 3 to 17 digits, and integers */
	unsigned s = 12345;
	char *buf = malloc(1 << 16);
	size_t n = 0;
	n += (size_t)sprintf(buf + n, "[");
	for (int r = 0; r < 200; r++) {
		n += (size_t)sprintf(buf + n, "%s[", r ? "," : "");
		for (int c = 0; c < 4; c++) {
			s = s * 1103515245u + 12345u;
			double v = ((double)(s >> 8) / (1 << 24) - 0.5) * pow(10.0, (int)(s % 13) - 6);
			if (c == 3)
				n += (size_t)sprintf(buf + n, "%s%d", c ? "," : "", (int)(s % 256));
			else
				n += (size_t)sprintf(buf + n, "%s%.*g", c ? "," : "", 3 + (int)(s % 15), v);
		}
		n += (size_t)sprintf(buf + n, "]");
	}
	sprintf(buf + n, "]");
	assert_same(&b, buf);
	free(buf);
	nn_model_free((nn_model *)f.snap.model);
}
END_TEST

START_TEST(test_labels_that_need_escaping_match)
{
	char *classes[] = { "a\"b", "c\\d", "\xc3\xa9t\xc3\xa9", NULL };
	fake f = { { small_model(NN_TASK_CLASSIFICATION, 2, 3), 2, classes, 3, 1, NULL } };
	api_backend b = backend(&f);
	for (int i = -3; i <= 3; i++) {
		char rows[96];
		snprintf(rows, sizeof rows, "[[%d, %d], [%d.5, %d], [0, %d]]", i, -i, i, -i, 2 * i);
		assert_same(&b, rows);
	}
	nn_model_free((nn_model *)f.snap.model);
}
END_TEST

START_TEST(test_regression_matches)
{
	fake f = { { small_model(NN_TASK_REGRESSION, 3, 2), 4, NULL, 0, 1, NULL } };
	api_backend b = backend(&f);
	assert_same(&b, "[[1, 2, 3], [0.001, -7.5, 1e5], [0, 0, 0]]");
	nn_model_free((nn_model *)f.snap.model);
}
END_TEST

START_TEST(test_bodies_it_does_not_take_get_the_general_errors)
{
	fake f = { { small_model(NN_TASK_CLASSIFICATION, 3, 2), 1, NULL, 0, 1, NULL } };
	api_backend b = backend(&f);
	int st;
	char *r = predict(&b, "{\"instances\": [[1, 2]]}", &st);
	ck_assert_int_eq(st, 422);
	ck_assert_ptr_nonnull(strstr(r, "\"field\":\"instances[0]\""));
	free(r);
	r = predict(&b, "{\"instances\": [[1, 2, 3], [1, 2]]}", &st);
	ck_assert_int_eq(st, 422);
	ck_assert_ptr_nonnull(strstr(r, "\"field\":\"instances[1]\""));
	free(r);
	r = predict(&b, "{\"instances\": []}", &st);
	ck_assert_int_eq(st, 422);
	free(r);
	r = predict(&b, "{\"instances\": [[1, 1e39, 3]]}", &st);
	ck_assert_int_eq(st, 422);
	ck_assert_ptr_nonnull(strstr(r, "\"field\":\"instances[0][1]\""));
	free(r);
	r = predict(&b, "{\"instances\": [[1, 2, 3]]} x", &st);
	ck_assert_int_eq(st, 400);
	free(r);
	r = predict(&b, "{\"instances\": [[1, 2, 3]], \"extra\": 1}", &st);
	ck_assert_int_eq(st, 422);
	ck_assert_ptr_nonnull(strstr(r, "\"field\":\"extra\""));
	free(r);
	r = predict(&b, "{\"instances\": [[1, \"2\", 3]]}", &st);
	ck_assert_int_eq(st, 422);
	ck_assert_ptr_nonnull(strstr(r, "\"field\":\"instances[0][1]\""));
	free(r);
	/* an unknown model is a 404 on both paths */
	api_req rq;
	memset(&rq, 0, sizeof rq);
	rq.id = "mdl_00000000000000bb";
	rq.body = "{\"instances\": [[1, 2, 3]]}";
	rq.body_len = strlen(rq.body);
	api_reply rp;
	memset(&rp, 0, sizeof rp);
	api_model_predict(&b, &rq, &rp);
	ck_assert_int_eq(rp.status, 404);
	api_reply_release(&rp);
	nn_model_free((nn_model *)f.snap.model);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("predict_fast");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_integer_rows_match_the_general_path);
	tcase_add_test(tc, test_decimals_of_every_magnitude_match);
	tcase_add_test(tc, test_labels_that_need_escaping_match);
	tcase_add_test(tc, test_regression_matches);
	tcase_add_test(tc, test_bodies_it_does_not_take_get_the_general_errors);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
