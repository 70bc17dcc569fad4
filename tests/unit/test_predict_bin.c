/*
 * test_predict_bin.c - the prediction stream (api/predict_stream.c): float32
 * bodies in any split give the same outputs as the JSON paths, bad bodies
 * name the field, the plain JSON reader reads numbers as strtod does and
 * steps aside for anything else, and Accept picks the reply's encoding.
 *
 * A fake backend serves one small model; every body goes through the stream
 * as the daemon feeds it (piece by piece) and, where there is one, through
 * api_model_predict with the whole body, and the replies are compared.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "predict_fixture.h"

/* A model of `inputs` inputs: dense 7 tanh, then `outputs` outputs. */
static void serve_model(nn_task task, int inputs, int outputs)
{
	serve_dense_model(task, inputs, outputs, 7, NN_ACT_TANH, 5, 4, 1000);
}

/* A float32 body through a binary stream in pieces of `step` bytes (0: one
 * piece); the reply in *rp. */
static void predict_binary(const api_backend *b, const void *body, size_t len, size_t step,
                           int declare_len, int binary_reply, api_reply *rp)
{
	stream_binary_body(b, body, len, step, declare_len ? (int64_t)len : -1, binary_reply, rp);
}

/* A JSON body through a JSON stream, growing by `step` bytes as the daemon
 * buffers it. Returns what finish returned (1 answered, 0 stepped aside). */
static int predict_json_stream(const api_backend *b, const char *body, size_t step,
                               int binary_reply, api_reply *rp)
{
	return stream_json(b, body, 0, step, binary_reply, rp);
}

/* The reply of the route's handler to the whole body (the cJSON path when
 * the body is not plain). */
static char *predict_handler(const api_backend *b, const char *body, int *status)
{
	api_req rq = request(body, strlen(body));
	api_reply rp;
	memset(&rp, 0, sizeof rp);
	api_model_predict(b, &rq, &rp);
	*status = rp.status;
	return rp.body;
}

/* rows x inputs deterministic values, some negative, some fractional. */
static float *make_rows(int rows, int inputs)
{
	float *x = malloc(sizeof *x * (size_t)rows * (size_t)inputs);
	ck_assert_ptr_nonnull(x);
	for (int i = 0; i < rows * inputs; i++)
		x[i] = (float)((i * 37) % 101 - 50) / 8.0f;
	return x;
}

/* The probabilities of a JSON reply (rows x outs) read back as floats. */
static float *json_probabilities(const char *text, int rows, int outs)
{
	cJSON *j = cJSON_Parse(text);
	ck_assert_ptr_nonnull(j);
	const cJSON *preds = cJSON_GetObjectItem(j, "predictions");
	ck_assert_int_eq(cJSON_GetArraySize(preds), rows);
	float *p = malloc(sizeof *p * (size_t)rows * (size_t)outs);
	ck_assert_ptr_nonnull(p);
	for (int r = 0; r < rows; r++) {
		const cJSON *row = cJSON_GetArrayItem(preds, r);
		const cJSON *pr = cJSON_GetObjectItem(row, "probabilities");
		if (!pr)
			pr = row;   /* regression: the outputs themselves */
		ck_assert_int_eq(cJSON_GetArraySize(pr), outs);
		for (int k = 0; k < outs; k++)
			p[(size_t)r * outs + k] = (float)cJSON_GetArrayItem(pr, k)->valuedouble;
	}
	cJSON_Delete(j);
	return p;
}

START_TEST(test_float32_rows_in_any_split_match_the_json_paths)
{
	const int inputs = 5, outs = 3;
	api_backend b = backend();
	serve_model(NN_TASK_CLASSIFICATION, inputs, outs);
	/* 300 rows: a full block of 256 and a partial one */
	const int counts[] = { 1, 2, 300 };
	for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
		int rows = counts[ci];
		float *x = make_rows(rows, inputs);
		size_t len = sizeof *x * (size_t)rows * (size_t)inputs;
		char *json = rows_json(x, rows, inputs);
		int status = 0;
		char *want = predict_handler(&b, json, &status);
		ck_assert_int_eq(status, 200);
		float *want_p = json_probabilities(want, rows, outs);
		/* byte by byte, odd pieces, whole; with and without the length */
		const size_t steps[] = { 1, 7, 4 * (size_t)inputs + 3, 0 };
		for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
			for (int declare = 0; declare < 2; declare++) {
				api_reply rp;
				predict_binary(&b, x, len, steps[si], declare, 0, &rp);
				ck_assert_int_eq(rp.status, 200);
				ck_assert_str_eq(rp.ctype, "application/json");
				ck_assert_str_eq(rp.body, want);
				ck_assert_int_eq(rp.rows, rows);
				api_reply_release(&rp);
				predict_binary(&b, x, len, steps[si], declare, 1, &rp);
				ck_assert_int_eq(rp.status, 200);
				ck_assert_str_eq(rp.ctype, "application/octet-stream");
				ck_assert_str_eq(rp.model_version, "4");
				ck_assert_uint_eq(rp.body_len, sizeof(float) * (size_t)rows * outs);
				ck_assert(memcmp(rp.body, want_p, rp.body_len) == 0);
				api_reply_release(&rp);
			}
		}
		/* the JSON stream, fed as it arrives, answers the same text */
		api_reply rp;
		ck_assert_int_eq(predict_json_stream(&b, json, 13, 0, &rp), 1);
		ck_assert_str_eq(rp.body, want);
		api_reply_release(&rp);
		ck_assert_int_eq(predict_json_stream(&b, json, 0, 1, &rp), 1);
		ck_assert_uint_eq(rp.body_len, sizeof(float) * (size_t)rows * outs);
		ck_assert(memcmp(rp.body, want_p, rp.body_len) == 0);
		api_reply_release(&rp);
		/* and so does the general path asked for float32 */
		api_req rq = request(json, strlen(json));
		memset(&rp, 0, sizeof rp);
		api_model_predict_general(&b, &rq, &rp, 1);
		ck_assert_int_eq(rp.status, 200);
		ck_assert_uint_eq(rp.body_len, sizeof(float) * (size_t)rows * outs);
		ck_assert(memcmp(rp.body, want_p, rp.body_len) == 0);
		api_reply_release(&rp);
		free(want_p);
		free(want);
		free(json);
		free(x);
	}
	drop_model();
}
END_TEST

START_TEST(test_regression_outputs_as_float32)
{
	const int inputs = 4, outs = 2, rows = 3;
	api_backend b = backend();
	serve_model(NN_TASK_REGRESSION, inputs, outs);
	float *x = make_rows(rows, inputs);
	char *json = rows_json(x, rows, inputs);
	int status = 0;
	char *want = predict_handler(&b, json, &status);
	ck_assert_int_eq(status, 200);
	float *want_p = json_probabilities(want, rows, outs);
	api_reply rp;
	predict_binary(&b, x, sizeof *x * rows * inputs, 5, 1, 1, &rp);
	ck_assert_int_eq(rp.status, 200);
	ck_assert_uint_eq(rp.body_len, sizeof(float) * rows * outs);
	ck_assert(memcmp(rp.body, want_p, rp.body_len) == 0);
	api_reply_release(&rp);
	free(want_p);
	free(want);
	free(json);
	free(x);
	drop_model();
}
END_TEST

/* The problem's field path and message of a reply. */
static void expect_problem(api_reply *rp, int status, const char *code, const char *field,
                           const char *message_part)
{
	ck_assert_int_eq(rp->status, status);
	ck_assert_str_eq(rp->ctype, "application/problem+json");
	ck_assert_uint_eq(rp->body_len, 0);
	cJSON *j = cJSON_Parse(rp->body);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "code")->valuestring, code);
	const cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "errors"), 0);
	ck_assert_ptr_nonnull(e0);
	ck_assert_str_eq(cJSON_GetObjectItem(e0, "field")->valuestring, field);
	ck_assert_msg(strstr(cJSON_GetObjectItem(e0, "message")->valuestring, message_part),
	              "message: %s", cJSON_GetObjectItem(e0, "message")->valuestring);
	cJSON_Delete(j);
	api_reply_release(rp);
}

START_TEST(test_bad_float32_bodies_name_the_field)
{
	const int inputs = 3;
	api_backend b = backend();
	serve_model(NN_TASK_CLASSIFICATION, inputs, 2);
	float x[4 * 3];
	for (int i = 0; i < 12; i++)
		x[i] = (float)i;
	api_reply rp;
	/* a length not a multiple of a row: 400 naming the body */
	predict_binary(&b, x, 2 * 12 + 5, 3, 1, 0, &rp);
	expect_problem(&rp, 400, "malformed_body", "body", "is 29 bytes, not a whole number");
	predict_binary(&b, x, 3, 0, 0, 1, &rp);
	expect_problem(&rp, 400, "malformed_body", "body", "is 3 bytes");
	/* empty: 422, no rows */
	predict_binary(&b, x, 0, 0, 1, 0, &rp);
	expect_problem(&rp, 422, "validation_failed", "body", "must hold 1 to 100000 rows");
	/* NaN and infinities: 422 naming row and column, as the JSON form would */
	x[1 * 3 + 2] = NAN;
	x[3 * 3 + 0] = -INFINITY;
	predict_binary(&b, x, sizeof x, 5, 1, 0, &rp);
	ck_assert_int_eq(rp.status, 422);
	ck_assert_ptr_nonnull(strstr(rp.body, "\"instances[3][0]\""));
	expect_problem(&rp, 422, "validation_failed", "instances[1][2]", "finite");
	/* more rows than the limit: 422 naming the body */
	size_t big = (size_t)(API_PREDICT_MAX_ROWS + 1) * inputs;
	float *many = calloc(big, sizeof *many);
	ck_assert_ptr_nonnull(many);
	predict_binary(&b, many, big * sizeof *many, 65536, 1, 0, &rp);
	expect_problem(&rp, 422, "validation_failed", "body", "it holds 100001");
	free(many);
	/* an unknown model: no stream, 404 */
	api_req rq = request(NULL, 0);
	rq.id = "mdl_00000000000000ab";
	api_err e = API_ERR_INIT;
	ck_assert_ptr_null(api_predict_stream_new(&b, &rq, API_PREDICT_BINARY, 12, 0, &e));
	ck_assert_int_eq(e.status, 404);
	drop_model();
}
END_TEST

START_TEST(test_json_reader_reads_numbers_as_strtod)
{
	/* 12 inputs: integers of 1 to 8 digits and more, decimals, exponents,
	 * negative zero, white space of every kind; the float32 reply carries
	 * the outputs, and the general path (which uses cJSON's strtod) must
	 * give the same */
	const int inputs = 12;
	api_backend b = backend();
	serve_model(NN_TASK_REGRESSION, inputs, 2);
	const char *bodies[] = {
		"{\"instances\": [[0, 7, 42, 255, 1234, 99999, 1234567, 12345678, 123456789012, "
		"3, 5, 9]]}",
		"{\"instances\":[[0.5,-0.25,1e3,1E-3,-0,2.5e+2,0.1,0.2,0.3,123456.789,-7,1e-38]]}",
		" {\n\t\"instances\" :\r [ [ 1 ,2\t,\n3 ,4,5,6,7,8,9,10,11,12 ] ,"
		"[12,11,10,9,8,7,6,5,4,3,2,1] ] } \n",
		"{\"instances\": [[1.00000001, 3.4e38, -3.4e38, 1e-45, 0.000001, 9007199254740993, "
		"1.7976931348623157e-300, 4.9e-324, 100000000, 10000000, 1000000, 0.0]]}",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		/* the general path answers with float32 when asked */
		api_req rq = request(bodies[i], strlen(bodies[i]));
		api_reply want;
		memset(&want, 0, sizeof want);
		api_model_predict_general(&b, &rq, &want, 1);
		/* 3.4e38 is rejected by both paths (above 3e38) */
		api_reply got;
		int done = predict_json_stream(&b, bodies[i], 1, 1, &got);
		if (want.status != 200) {
			ck_assert_int_eq(i, 3);
			ck_assert_int_eq(done, 0);   /* the general path names it */
		} else {
			ck_assert_msg(done == 1, "body %zu not read", i);
			ck_assert_int_eq(got.status, 200);
			ck_assert_uint_eq(got.body_len, want.body_len);
			ck_assert(memcmp(got.body, want.body, want.body_len) == 0);
			api_reply_release(&got);
		}
		api_reply_release(&want);
	}
	drop_model();
}
END_TEST

/* Rows of image-like integers (mostly 0 to 255, some of 4 to 6 digits, runs
 * across the reader's 64-byte blocks), written "1,2" or "1, 2" at random:
 * the stream reads them as the general path does. */
START_TEST(test_json_reader_reads_pixel_rows_as_strtod)
{
	const int inputs = 150, rows = 40;
	api_backend b = backend();
	serve_model(NN_TASK_REGRESSION, inputs, 3);
	uint32_t st = 99;
	for (int round = 0; round < 25; round++) {
		size_t cap = (size_t)rows * inputs * 9 + 64, n = 0;
		char *json = malloc(cap);
		ck_assert_ptr_nonnull(json);
		n += (size_t)snprintf(json + n, cap - n, "{\"instances\":[");
		for (int r = 0; r < rows; r++) {
			n += (size_t)snprintf(json + n, cap - n, "%s[", r ? "," : "");
			for (int c = 0; c < inputs; c++) {
				st = st * 1664525u + 1013904223u;
				unsigned kind = (st >> 24) % 10, v = kind < 5 ? 0 : kind < 9 ? (st >> 8) % 256
				                                                     : (st >> 4) % 1000000;
				if (round < 5)
					v %= 256;   /* rows of small numbers only */
				n += (size_t)snprintf(json + n, cap - n, "%s%u",
				                      c ? ((st >> 3) & 1 ? ", " : ",") : "", v);
			}
			n += (size_t)snprintf(json + n, cap - n, "]");
		}
		snprintf(json + n, cap - n, "]}");
		api_req rq = request(json, strlen(json));
		api_reply want;
		memset(&want, 0, sizeof want);
		api_model_predict_general(&b, &rq, &want, 1);
		ck_assert_int_eq(want.status, 200);
		api_reply got;
		ck_assert_int_eq(predict_json_stream(&b, json, 4096, 1, &got), 1);
		ck_assert_uint_eq(got.body_len, want.body_len);
		ck_assert(memcmp(got.body, want.body, want.body_len) == 0);
		api_reply_release(&got);
		api_reply_release(&want);
		free(json);
	}
	drop_model();
}
END_TEST

/* Digit runs of every length up to 200 (64 digits fill a classifier block:
 * the fuzzer found a ctz of zero there), starting at several offsets into
 * the row (after 0 to 21 one-digit numbers): the streaming reader gives
 * the general path's reply or steps aside for it (200 up to 38 digits, 422
 * from 40: no finite float). */
START_TEST(test_json_reader_takes_digit_runs_of_any_length)
{
	api_backend b = backend();
	char json[512];
	for (int lead = 0; lead <= 21; lead += 7) {
		serve_model(NN_TASK_REGRESSION, lead + 2, 2);
		for (int len = 1; len <= 200; len += (len < 70 ? 1 : 13)) {
			int n = snprintf(json, sizeof json, "{\"instances\":[[");
			for (int i = 0; i < lead; i++)
				n += snprintf(json + n, sizeof json - (size_t)n, "%d,", i % 10);
			for (int i = 0; i < len; i++)
				json[n++] = (char)('1' + (i + lead) % 9);
			n += snprintf(json + n, sizeof json - (size_t)n, ",7]]}");
			api_req rq = request(json, (size_t)n);
			api_reply want;
			memset(&want, 0, sizeof want);
			api_model_predict_general(&b, &rq, &want, 1);
			if (len <= 38)
				ck_assert_int_eq(want.status, 200);
			if (len >= 40)
				ck_assert_int_eq(want.status, 422);
			/* the streaming reader answers, or steps aside for the general
			 * path (a run too long to read); up to 8 digits it answers */
			api_reply got;
			int done = predict_json_stream(&b, json, 5, 1, &got);
			ck_assert(done || len > 8);
			if (done) {
				ck_assert_int_eq(got.status, want.status);
				ck_assert_uint_eq(got.body_len, want.body_len);
				ck_assert(memcmp(got.body, want.body, want.body_len) == 0);
				api_reply_release(&got);
			}
			api_reply_release(&want);
		}
		drop_model();
	}
}
END_TEST

START_TEST(test_json_reader_steps_aside_for_other_bodies)
{
	const int inputs = 2;
	api_backend b = backend();
	serve_model(NN_TASK_CLASSIFICATION, inputs, 2);
	const char *bodies[] = {
		"{\"instances\": []}",                       /* no rows */
		"{\"instances\": [[1, 2], [3]]}",            /* ragged */
		"{\"instances\": [[1, 2, 3]]}",              /* wider than the model */
		"{\"instances\": [[01, 2]]}",                /* leading zero: not JSON */
		"{\"instances\": [[1, \"2\"]]}",             /* a string */
		"{\"instances\": [[1, 2]], \"x\": 1}",       /* another key */
		"{\"\\u0069nstances\": [[1, 2]]}",           /* an escaped key */
		"{\"instances\": [[1, 2]]} x",               /* trailing bytes */
		"{\"instances\": [[1, 2]]",                  /* cut short */
		"{\"instances\": [[1, 2],]}",                /* trailing comma */
		"{\"instances\": [[1,, 2]]}",                /* empty value */
		"{\"instances\": [[1, [2]]]}",               /* nested */
		"{\"instances\": [[1e999, 2]]}",             /* overflows */
		"[[1, 2]]",                                  /* no object */
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		api_reply rp;
		for (size_t step = 0; step < 3; step += 2) {
			int done = predict_json_stream(&b, bodies[i], step, 0, &rp);
			ck_assert_msg(done == 0, "body %zu (%s) was read", i, bodies[i]);
			api_reply_release(&rp);
		}
		/* and the handler still names the error (two aside: cJSON, the
		 * general path's reader, takes 01 as 1, and reads the escaped key) */
		int status = 0;
		char *text = predict_handler(&b, bodies[i], &status);
		if (i == 3 || i == 6)
			ck_assert_int_eq(status, 200);
		else
			ck_assert_msg(status == 400 || status == 422, "body %zu: %d", i, status);
		free(text);
	}
	drop_model();
}
END_TEST

/* The reply writer's numbers: each the shortest "%.<6..9>g" text that reads
 * back as the float (what api_float_json and cJSON print on the general
 * path), for 200,000 floats of every magnitude and tiny ones most. */
START_TEST(test_reply_numbers_are_the_shortest_that_read_back)
{
	const int rows = 1000, outs = 200;
	api_backend b = backend();
	serve_model(NN_TASK_REGRESSION, 3, outs);
	(void)b;
	uint32_t st = 20261127u;
	float *out = malloc(sizeof *out * rows * outs);
	ck_assert_ptr_nonnull(out);
	for (int i = 0; i < rows * outs; i++) {
		uint32_t bits;
		do {
			st = st * 1664525u + 1013904223u;
			bits = st;
			if (i % 2) /* exponents of 2^-126 .. 2^13: probabilities and the like */
				bits = (bits & 0x807fffffu) | ((1u + (st >> 9) % 140u) << 23);
			memcpy(&out[i], &bits, 4);
		} while (!isfinite(out[i]));
	}
	out[0] = 0.1f;
	out[1] = -0.0f;
	out[2] = 1e-45f;
	out[3] = 3.4028235e38f;
	float *copy = malloc(sizeof *copy * rows * outs);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, out, sizeof *copy * rows * outs);
	api_reply rp;
	memset(&rp, 0, sizeof rp);
	api_predict_reply(&rp, &snap, out, rows, outs, 0);
	ck_assert_int_eq(rp.status, 200);
	const char *p = strstr(rp.body, "\"predictions\":[");
	ck_assert_ptr_nonnull(p);
	p += 15;
	for (int i = 0; i < rows * outs; i++) {
		while (*p == '[' || *p == ',' || *p == ']')
			p++;
		size_t n = strcspn(p, ",]");
		char want[32];
		float v = copy[i];
		if (v == 0) {
			snprintf(want, sizeof want, "0");
		} else {
			for (int prec = 6; prec <= 9; prec++) {
				snprintf(want, sizeof want, "%.*g", prec, (double)v);
				if ((float)strtod(want, NULL) == v)
					break;
			}
		}
		ck_assert_msg(n == strlen(want) && strncmp(p, want, n) == 0, "%a: got %.*s want %s",
		              (double)v, (int)n, p, want);
		p += n;
	}
	api_reply_release(&rp);
	free(copy);
	drop_model();
}
END_TEST

START_TEST(test_accept_picks_float32_only_when_preferred)
{
	ck_assert_int_eq(api_predict_accepts_binary(NULL), 0);
	ck_assert_int_eq(api_predict_accepts_binary(""), 0);
	ck_assert_int_eq(api_predict_accepts_binary("*/*"), 0);
	ck_assert_int_eq(api_predict_accepts_binary("application/json"), 0);
	ck_assert_int_eq(api_predict_accepts_binary("application/octet-stream"), 1);
	ck_assert_int_eq(api_predict_accepts_binary("Application/Octet-Stream"), 1);
	ck_assert_int_eq(api_predict_accepts_binary("text/html, application/octet-stream;q=0.5"), 1);
	ck_assert_int_eq(api_predict_accepts_binary("application/octet-stream, application/json"),
	                 0);
	ck_assert_int_eq(api_predict_accepts_binary("application/json;q=0.4, "
	                                            "application/octet-stream;q=0.9"), 1);
	ck_assert_int_eq(api_predict_accepts_binary("application/octet-stream;q=0"), 0);
	ck_assert_int_eq(api_predict_accepts_binary("application/octet-streams"), 0);
	ck_assert_int_eq(api_predict_accepts_binary("application/octet-stream; charset=x; q=1"), 1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("predict_bin");
	TCase *tc = tcase_create("stream");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_float32_rows_in_any_split_match_the_json_paths);
	tcase_add_test(tc, test_regression_outputs_as_float32);
	tcase_add_test(tc, test_bad_float32_bodies_name_the_field);
	tcase_add_test(tc, test_json_reader_reads_numbers_as_strtod);
	tcase_add_test(tc, test_json_reader_reads_pixel_rows_as_strtod);
	tcase_add_test(tc, test_json_reader_takes_digit_runs_of_any_length);
	tcase_add_test(tc, test_json_reader_steps_aside_for_other_bodies);
	tcase_add_test(tc, test_reply_numbers_are_the_shortest_that_read_back);
	tcase_add_test(tc, test_accept_picks_float32_only_when_preferred);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(suite());
}
