/*
 * test_predict_helper.c - long prediction bodies, whose blocks of rows the
 * stream shares with a helper thread (api/predict_stream.c): the replies
 * are byte for byte those of the general cJSON path, for any number of
 * rows around the block and ring boundaries, in any split of the body
 * (every byte for one body), as float32 bodies and replies, and bad rows
 * late in a long body still get the general path's problem. The SIMD
 * reader of pixel rows and the SSE2 one read the same random rows as
 * strtod does.
 *
 * Each test checks that the helper was really used
 * (predict_helper_streams) where the body is long enough, and not
 * for short ones. The tests lower the helper's minimum body length
 * (256 KiB) to 0 so that short bodies get one; one checks the default.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "predict_fixture.h"

static char *label_store[3];

/* A model of `inputs` inputs: dense 6 relu, then `outputs` outputs; for
 * classification with labels, one that needs escaping. */
static void serve_model(nn_task task, int inputs, int outputs, int labels)
{
	serve_dense_model(task, inputs, outputs, 6, NN_ACT_RELU, 11, 9, 5000);
	if (labels && outputs == 3) {
		label_store[0] = "t-shirt";
		label_store[1] = "say \"hi\"\\";
		label_store[2] = "\xc3\xa9t\xc3\xa9";
		snap.classes = label_store;
		snap.n_classes = 3;
	}
}

/* The general (cJSON) path's reply: JSON, or float32 when binary. */
static api_reply general(const api_backend *b, const char *body, int binary)
{
	api_req rq = request(body, strlen(body));
	api_reply rp;
	memset(&rp, 0, sizeof rp);
	api_model_predict_general(b, &rq, &rp, binary);
	return rp;
}

/* rows x inputs values: integers, decimals, negatives, some zeros. */
static float *make_rows(int rows, int inputs, unsigned seed)
{
	float *x = malloc(sizeof *x * (size_t)rows * (size_t)inputs);
	ck_assert_ptr_nonnull(x);
	for (int i = 0; i < rows * inputs; i++) {
		seed = seed * 1664525u + 1013904223u;
		unsigned k = seed >> 28;
		x[i] = k < 4 ? 0.0f : k < 10 ? (float)((seed >> 8) % 256)
		                             : (float)((int)((seed >> 4) % 2001) - 1000) / 64.0f;
	}
	return x;
}

/* The rows' float32 body through a binary stream in pieces of step bytes. */
static void stream_binary(const api_backend *b, const float *x, size_t len, size_t step,
                          int binary_reply, api_reply *rp)
{
	stream_binary_body(b, x, len, step, (int64_t)len, binary_reply, rp);
}

/* Row counts around a block (256 rows) and around the ring of four blocks,
 * for the JSON reply of a classifier with labels, a classifier without and
 * a regression: the helper's reply is the general path's, byte for byte,
 * whole or in pieces, and so are the float32 outputs. */
START_TEST(test_rows_around_block_boundaries_match_the_general_path)
{
	const int counts[] = { 255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 1280, 1281, 3001 };
	const struct { nn_task task; int outputs, labels; } models[] = {
		{ NN_TASK_CLASSIFICATION, 3, 1 }, { NN_TASK_CLASSIFICATION, 4, 0 },
		{ NN_TASK_REGRESSION, 2, 0 },
	};
	const int inputs = 5;
	api_backend b = backend();
	for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
		serve_model(models[mi].task, inputs, models[mi].outputs, models[mi].labels);
		int outs = models[mi].outputs;
		for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
			int rows = counts[ci];
			float *x = make_rows(rows, inputs, (unsigned)(rows + 7 * (int)mi));
			char *json = rows_json(x, rows, inputs);
			api_reply want = general(&b, json, 0), want_bin = general(&b, json, 1);
			ck_assert_int_eq(want.status, 200);
			ck_assert_int_eq(want_bin.status, 200);
			/* whole, in odd pieces, and in pieces the size of a row or so */
			const size_t steps[] = { 0, 997, 31 };
			for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
				int64_t before = predict_helper_streams();
				api_reply rp;
				ck_assert_int_eq(stream_json(&b, json, 0, steps[si], 0, &rp), 1);
				/* every body here may hold 512 rows by its length */
				ck_assert_int_eq(predict_helper_streams(), before + 1);
				ck_assert_int_eq(rp.status, 200);
				ck_assert_str_eq(rp.ctype, "application/json");
				ck_assert_int_eq(rp.rows, rows);
				ck_assert_str_eq(rp.body, want.body);
				api_reply_release(&rp);
				ck_assert_int_eq(stream_json(&b, json, 0, steps[si], 1, &rp), 1);
				ck_assert_uint_eq(rp.body_len, want_bin.body_len);
				ck_assert(memcmp(rp.body, want_bin.body, rp.body_len) == 0);
				api_reply_release(&rp);
			}
			/* the route's handler (the whole body at once) answers the same */
			api_req rq = request(json, strlen(json));
			api_reply rp;
			memset(&rp, 0, sizeof rp);
			api_model_predict(&b, &rq, &rp);
			ck_assert_str_eq(rp.body, want.body);
			api_reply_release(&rp);
			/* float32 rows in, JSON and float32 out */
			size_t len = sizeof *x * (size_t)rows * (size_t)inputs;
			const size_t bsteps[] = { 0, 4093, 4 * (size_t)inputs * 256 };
			for (size_t si = 0; si < sizeof bsteps / sizeof bsteps[0]; si++) {
				int64_t before = predict_helper_streams();
				stream_binary(&b, x, len, bsteps[si], 0, &rp);
				ck_assert_int_eq(predict_helper_streams(), before + (rows >= 512));
				ck_assert_int_eq(rp.status, 200);
				ck_assert_str_eq(rp.body, want.body);
				api_reply_release(&rp);
				stream_binary(&b, x, len, bsteps[si], 1, &rp);
				ck_assert_int_eq(rp.status, 200);
				ck_assert_uint_eq(rp.body_len, want_bin.body_len);
				ck_assert_uint_eq(rp.body_len, sizeof(float) * (size_t)rows * (size_t)outs);
				ck_assert(memcmp(rp.body, want_bin.body, rp.body_len) == 0);
				api_reply_release(&rp);
			}
			api_reply_release(&want);
			api_reply_release(&want_bin);
			free(json);
			free(x);
		}
		drop_model();
	}
}
END_TEST

/* One body long enough for the helper (600 one-number rows), split in two
 * at every byte, and fed a byte at a time: always the general path's reply. */
START_TEST(test_a_body_split_at_every_byte)
{
	api_backend b = backend();
	serve_model(NN_TASK_CLASSIFICATION, 1, 3, 1);
	const int rows = 600;
	size_t cap = (size_t)rows * 16 + 64, n = 0;
	char *json = malloc(cap);
	ck_assert_ptr_nonnull(json);
	n += (size_t)snprintf(json + n, cap - n, "{\"instances\":[");
	for (int r = 0; r < rows; r++)
		n += (size_t)snprintf(json + n, cap - n, "%s[%d]", r ? (r % 3 ? "," : ", ") : "",
		                      r % 7 == 0 ? -r : r % 5 == 0 ? r * 1000 : r % 256);
	snprintf(json + n, cap - n, "]}");
	size_t len = strlen(json);
	api_reply want = general(&b, json, 0);
	ck_assert_int_eq(want.status, 200);
	int64_t before = predict_helper_streams();
	for (size_t cut = 1; cut < len; cut++) {
		api_reply rp;
		ck_assert_int_eq(stream_json(&b, json, cut, 0, 0, &rp), 1);
		ck_assert_int_eq(rp.status, 200);
		ck_assert_msg(strcmp(rp.body, want.body) == 0, "split at %zu", cut);
		api_reply_release(&rp);
	}
	api_reply rp;
	ck_assert_int_eq(stream_json(&b, json, 0, 1, 0, &rp), 1);
	ck_assert_str_eq(rp.body, want.body);
	api_reply_release(&rp);
	ck_assert_int_eq(predict_helper_streams(), before + (int64_t)len);
	api_reply_release(&want);
	free(json);
	drop_model();
}
END_TEST

/* The handler's status and body for a body (the stream first, then the
 * general path when it steps aside). */
static api_reply handler(const api_backend *b, const char *body)
{
	api_req rq = request(body, strlen(body));
	api_reply rp;
	memset(&rp, 0, sizeof rp);
	api_model_predict(b, &rq, &rp);
	return rp;
}

/* A long body made bad at row 2000 (of 3000) in several ways: the stream
 * steps aside after the helper has predicted many blocks, and the answer
 * is the general path's problem, naming the same field. */
START_TEST(test_bad_rows_late_in_a_long_body_get_the_general_problem)
{
	const int inputs = 4, rows = 3000;
	api_backend b = backend();
	serve_model(NN_TASK_CLASSIFICATION, inputs, 2, 0);
	float *x = make_rows(rows, inputs, 5);
	char *good = rows_json(x, rows, inputs);
	/* row 2000 starts after the 2000th "], [" and ends at the next "]" */
	const char *row = good;
	for (int r = 0; r < 2000; r++)
		row = strstr(row + 1, "], [");
	ck_assert_ptr_nonnull(row);
	size_t from = (size_t)(row - good) + 3, to = (size_t)(strchr(row + 3, ']') - good) + 1;
	const struct { const char *row; int status; const char *field; } bad[] = {
		{ "[\"7\", 1, 2, 3]", 422, "instances[2000][0]" },  /* a string */
		{ "[1, 2, 1e999, 3]", 422, "instances[2000][2]" },   /* no finite float */
		{ "[1, 2, 3, 4, 5]", 422, "instances[2000]" },       /* a number too many */
		{ "[1, [2], 3, 4]", 422, "instances[2000][1]" },     /* nested */
		{ "[1, 2, @, 4]", 400, NULL },                       /* not JSON */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t glen = strlen(good), rlen = strlen(bad[i].row);
		char *body = malloc(glen + rlen + 1);
		ck_assert_ptr_nonnull(body);
		memcpy(body, good, from);
		memcpy(body + from, bad[i].row, rlen);
		memcpy(body + from + rlen, good + to, glen - to + 1);
		api_reply want = general(&b, body, 0);
		ck_assert_int_eq(want.status, bad[i].status);
		if (bad[i].field) {
			char quoted[64];
			snprintf(quoted, sizeof quoted, "\"field\":\"%s\"", bad[i].field);
			ck_assert_msg(strstr(want.body, quoted), "%s", want.body);
		}
		int64_t before = predict_helper_streams();
		api_reply rp;
		ck_assert_int_eq(stream_json(&b, body, 0, 4096, 0, &rp), 0);
		api_reply_release(&rp);
		ck_assert_int_eq(predict_helper_streams(), before + 1);
		rp = handler(&b, body);
		ck_assert_int_eq(rp.status, want.status);
		ck_assert_str_eq(rp.ctype, "application/problem+json");
		ck_assert_str_eq(rp.body, want.body);
		api_reply_release(&rp);
		api_reply_release(&want);
		free(body);
	}
	/* cut short after the helper started: the general path's 400 */
	char *cut = strdup(good);
	ck_assert_ptr_nonnull(cut);
	cut[strlen(cut) - 1] = 0;
	api_reply want = general(&b, cut, 0), rp = handler(&b, cut);
	ck_assert_int_eq(want.status, 400);
	ck_assert_int_eq(rp.status, 400);
	ck_assert_str_eq(rp.body, want.body);
	api_reply_release(&rp);
	api_reply_release(&want);
	free(cut);
	/* a float32 body with a NaN in row 2000: 422 naming it, as before */
	x[2000 * inputs + 1] = NAN;
	stream_binary(&b, x, sizeof *x * (size_t)rows * inputs, 8192, 0, &rp);
	ck_assert_int_eq(rp.status, 422);
	ck_assert_ptr_nonnull(strstr(rp.body, "\"field\":\"instances[2000][1]\""));
	api_reply_release(&rp);
	free(good);
	free(x);
	drop_model();
}
END_TEST

/* A stream freed half way (the client went away): the helper stops, the
 * snapshot is given back, nothing leaks (ASan). And short bodies get no
 * helper. */
START_TEST(test_a_stream_freed_half_way_and_short_bodies)
{
	const int inputs = 3, rows = 4000;
	api_backend b = backend();
	serve_model(NN_TASK_CLASSIFICATION, inputs, 2, 0);
	float *x = make_rows(rows, inputs, 9);
	char *json = rows_json(x, rows, inputs);
	size_t len = strlen(json);
	for (size_t upto = 10; upto < len; upto += len / 7) {
		api_req rq = request(NULL, 0);
		int64_t before = predict_helper_streams();
		predict_body *ps = predict_begin(&b, &rq, API_PREDICT_JSON,
		                                                (int64_t)len, 0, NULL);
		ck_assert_ptr_nonnull(ps);
		ck_assert_int_eq(predict_helper_streams(), before + 1);
		char *buf = malloc(upto + 1);
		ck_assert_ptr_nonnull(buf);
		memcpy(buf, json, upto);
		buf[upto] = 0;
		predict_scan(ps, buf, upto);
		predict_free(ps);
		free(buf);
		ck_assert_int_eq(snaps_out, 0);
	}
	/* 50 rows of 3: too short to hold 512 rows, no helper, same answer */
	char *small = rows_json(x, 50, inputs);
	api_reply want = general(&b, small, 0), rp;
	int64_t before = predict_helper_streams();
	ck_assert_int_eq(stream_json(&b, small, 0, 100, 0, &rp), 1);
	ck_assert_int_eq(predict_helper_streams(), before);
	ck_assert_str_eq(rp.body, want.body);
	api_reply_release(&rp);
	api_reply_release(&want);
	free(small);
	free(json);
	free(x);
	drop_model();
}
END_TEST

/* At most four helpers at once: a fifth long stream predicts on its own
 * thread, with the same reply; once one ends, the next gets a helper. */
START_TEST(test_at_most_four_helpers_at_once)
{
	const int inputs = 3, rows = 2000;
	api_backend b = backend();
	serve_model(NN_TASK_CLASSIFICATION, inputs, 2, 0);
	float *x = make_rows(rows, inputs, 21);
	char *json = rows_json(x, rows, inputs);
	size_t len = strlen(json);
	api_reply want = general(&b, json, 0);
	api_req rq = request(NULL, 0);
	predict_body *open[4];
	int64_t before = predict_helper_streams();
	for (int i = 0; i < 4; i++) {
		open[i] = predict_begin(&b, &rq, API_PREDICT_JSON, (int64_t)len, 0, NULL);
		ck_assert_ptr_nonnull(open[i]);
		predict_scan(open[i], json, len / 2);
	}
	ck_assert_int_eq(predict_helper_streams(), before + 4);
	api_reply rp;
	ck_assert_int_eq(stream_json(&b, json, 0, 1000, 0, &rp), 1);
	ck_assert_int_eq(predict_helper_streams(), before + 4);   /* none for the fifth */
	ck_assert_str_eq(rp.body, want.body);
	api_reply_release(&rp);
	predict_free(open[0]);
	ck_assert_int_eq(stream_json(&b, json, 0, 1000, 0, &rp), 1);
	ck_assert_int_eq(predict_helper_streams(), before + 5);
	ck_assert_str_eq(rp.body, want.body);
	api_reply_release(&rp);
	for (int i = 1; i < 4; i++)
		predict_free(open[i]);
	api_reply_release(&want);
	free(json);
	free(x);
	drop_model();
}
END_TEST

/* Random rows of small integers with every separator the readers take
 * ("1,2", "1, 2", "1,\n2", "1,\t2") and some they do not ("1 ,2", "1,  2",
 * leading zeros, runs of 4 to 6 digits), of widths 1 to 90 so rows end
 * anywhere in a 64-byte block: with the AVX-512 reader and with the SSE2
 * one, the stream answers exactly as the general path (strtod), or steps
 * aside for it; and it always answers plain pixel rows. */
START_TEST(test_both_pixel_readers_read_as_strtod)
{
	api_backend b = backend();
	uint32_t st = 4242;
	int was = api_predict_avx512_rows(-1);
	for (int width = 1; width <= 90; width += (width < 20 ? 1 : 7)) {
		serve_model(NN_TASK_REGRESSION, width, 2, 0);
		for (int round = 0; round < 6; round++) {
			int plain = round < 3;
			const int rows = 30;
			size_t cap = (size_t)rows * width * 12 + 64, n = 0;
			char *json = malloc(cap);
			ck_assert_ptr_nonnull(json);
			n += (size_t)snprintf(json + n, cap - n, "{\"instances\":[");
			for (int r = 0; r < rows; r++) {
				n += (size_t)snprintf(json + n, cap - n, "%s[", r ? "," : "");
				for (int c = 0; c < width; c++) {
					st = st * 1664525u + 1013904223u;
					static const char *const seps[] = { ",", ", ", ",\n", ",\t", " ,", ",  " };
					const char *sep = seps[(st >> 5) % (plain ? 4 : 6)];
					unsigned v = (st >> 12) % 256;
					const char *fmt = "%s%u";
					if (!plain && (st >> 20) % 13 == 0)
						v = (st >> 8) % 1000000;        /* 4 to 6 digits */
					if (!plain && (st >> 21) % 17 == 0)
						fmt = "%s0%u";                  /* a leading zero */
					n += (size_t)snprintf(json + n, cap - n, fmt, c ? sep : "", v);
				}
				n += (size_t)snprintf(json + n, cap - n, "]");
			}
			snprintf(json + n, cap - n, "]}");
			api_reply want = general(&b, json, 1);
			for (int simd = 0; simd < 2; simd++) {
				api_predict_avx512_rows(simd);
				api_reply got;
				int done = stream_json(&b, json, 0, 4096, 1, &got);
				if (plain)
					ck_assert_msg(done == 1, "plain rows of %d not read (simd %d)", width,
					              simd);
				if (done) {
					ck_assert_int_eq(got.status, want.status);
					ck_assert_uint_eq(got.body_len, want.body_len);
					ck_assert(memcmp(got.body, want.body, want.body_len) == 0);
				}
				api_reply_release(&got);
			}
			api_predict_avx512_rows(was);
			api_reply_release(&want);
			free(json);
		}
		drop_model();
	}
}
END_TEST

/* The default: bodies under 256 KiB get no helper, longer ones do, with
 * the same replies. */
START_TEST(test_only_long_bodies_get_a_helper_by_default)
{
	ck_assert_int_eq(predict_helper_min_bytes(-1), 0);   /* the fixture's */
	predict_helper_min_bytes(256 << 10);
	const int inputs = 20;
	api_backend b = backend();
	serve_model(NN_TASK_CLASSIFICATION, inputs, 3, 1);
	const int counts[] = { 600, 4000 };   /* some 60 KB and 400 KB of JSON */
	for (size_t ci = 0; ci < 2; ci++) {
		float *x = make_rows(counts[ci], inputs, 77);
		char *json = rows_json(x, counts[ci], inputs);
		size_t len = strlen(json);
		ck_assert(ci == 0 ? len < (256 << 10) : len >= (256 << 10));
		api_reply want = general(&b, json, 0), rp;
		int64_t before = predict_helper_streams();
		ck_assert_int_eq(stream_json(&b, json, 0, 16384, 0, &rp), 1);
		ck_assert_int_eq(predict_helper_streams(), before + (int64_t)ci);
		ck_assert_str_eq(rp.body, want.body);
		api_reply_release(&rp);
		api_reply_release(&want);
		free(json);
		free(x);
	}
	drop_model();
}
END_TEST

/* Every other test: any body that may hold 512 rows gets a helper. */
static void helper_for_short_bodies(void)
{
	predict_helper_min_bytes(0);
}

static Suite *suite(void)
{
	Suite *s = suite_create("predict_helper");
	TCase *tc = tcase_create("helper");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, helper_for_short_bodies, NULL);
	tcase_add_test(tc, test_only_long_bodies_get_a_helper_by_default);
	tcase_add_test(tc, test_rows_around_block_boundaries_match_the_general_path);
	tcase_add_test(tc, test_a_body_split_at_every_byte);
	tcase_add_test(tc, test_bad_rows_late_in_a_long_body_get_the_general_problem);
	tcase_add_test(tc, test_a_stream_freed_half_way_and_short_bodies);
	tcase_add_test(tc, test_at_most_four_helpers_at_once);
	tcase_add_test(tc, test_both_pixel_readers_read_as_strtod);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(suite());
}
