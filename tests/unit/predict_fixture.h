/*
 * predict_fixture.h - the fixture the prediction stream's unit tests share
 * (test_predict_bin.c, test_predict_helper.c): a fake backend serving one
 * small model (counting the snapshot references it hands out), requests for
 * it, rows written as JSON, and bodies fed to a stream piece by piece as the
 * daemon feeds them.
 */
#ifndef TESTS_PREDICT_FIXTURE_H
#define TESTS_PREDICT_FIXTURE_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "nn.h"
#include "predict.h"
#include "store.h"

#define ID "mdl_00000000000000aa"

static api_model_snap snap;
static int snaps_out;   /* references held: every stream must give its own back */

static inline int fake_snapshot(void *ctx, const char *id, api_model_snap **out, api_err *e)
{
	(void)ctx;
	if (strcmp(id, ID) != 0)
		return api_err_set(e, 404, "not_found", "no model %s", id);
	snaps_out++;
	*out = &snap;
	return 0;
}

static inline void fake_release(void *ctx, api_model_snap *s)
{
	(void)ctx;
	(void)s;
	snaps_out--;
}

static inline api_backend backend(void)
{
	api_backend b;
	memset(&b, 0, sizeof b);
	b.limits = api_limits_default();
	b.model_snapshot = fake_snapshot;
	b.snap_release = fake_release;
	return b;
}

/* Serves a model of `inputs` inputs: dense `units` `act`, then `outputs`
 * outputs (initialised from `seed`), as version `version`, with a random
 * serial of at least `serial_base`; no references out yet. */
static inline void serve_dense_model(nn_task task, int inputs, int outputs, int units,
                                     nn_act act, uint64_t seed, int version,
                                     uint64_t serial_base)
{
	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = units;
	l.act = act;
	nn_model_spec spec = { task, inputs, outputs, NN_INIT_AUTO, seed, &l, 1 };
	char err[128];
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	ck_assert_ptr_nonnull(m);
	memset(&snap, 0, sizeof snap);
	snap.model = m;
	snap.version = version;
	snap.serial = (uint64_t)rand() + serial_base;
	snaps_out = 0;
}

static inline void drop_model(void)
{
	ck_assert_int_eq(snaps_out, 0);
	nn_model_free((nn_model *)snap.model);
	snap.model = NULL;
}

static inline api_req request(const char *body, size_t len)
{
	api_req rq;
	memset(&rq, 0, sizeof rq);
	rq.method = "POST";
	rq.id = ID;
	rq.body = body;
	rq.body_len = len;
	return rq;
}

/* A float32 body through a binary stream in pieces of `step` bytes (0: one
 * piece), declaring `declared` bytes (-1: no length); the reply in *rp. */
static inline void stream_binary_body(const api_backend *b, const void *body, size_t len,
                                      size_t step, int64_t declared, int binary_reply,
                                      api_reply *rp)
{
	api_req rq = request(NULL, 0);
	api_err e = API_ERR_INIT;
	predict_body *ps = predict_begin(b, &rq, API_PREDICT_BINARY, declared,
	                                                binary_reply, &e);
	ck_assert_ptr_nonnull(ps);
	const char *p = body;
	for (size_t off = 0; off < len;) {
		size_t n = step && step < len - off ? step : len - off;
		predict_feed(ps, p + off, n);
		off += n;
	}
	memset(rp, 0, sizeof *rp);
	ck_assert_int_eq(predict_finish(ps, rp), 1);
	predict_free(ps);
}

/* A JSON body through a JSON stream as the daemon feeds it: the first
 * `first` bytes (0: as any other piece), then growing by `step` (0: the
 * rest at once). Returns what finish returned (1 answered, 0 stepped
 * aside). */
static inline int stream_json(const api_backend *b, const char *body, size_t first, size_t step,
                              int binary_reply, api_reply *rp)
{
	size_t len = strlen(body);
	char *buf = malloc(len + 1);
	ck_assert_ptr_nonnull(buf);
	api_req rq = request(NULL, 0);
	predict_body *ps = predict_begin(b, &rq, API_PREDICT_JSON, (int64_t)len,
	                                                binary_reply, NULL);
	ck_assert_ptr_nonnull(ps);
	for (size_t have = 0; have < len;) {
		size_t n = have == 0 && first ? first : step && step < len - have ? step : len - have;
		if (n > len - have)
			n = len - have;
		memcpy(buf + have, body + have, n);
		have += n;
		buf[have] = 0;
		predict_scan(ps, buf, have);
	}
	rq = request(buf, len);
	memset(rp, 0, sizeof *rp);
	int done = predict_finish(ps, rp);
	predict_free(ps);
	free(buf);
	return done;
}

/* The rows as {"instances": ...}, each float written exactly. */
static inline char *rows_json(const float *x, int rows, int inputs)
{
	size_t cap = (size_t)rows * (size_t)inputs * 20 + 64, n = 0;
	char *s = malloc(cap);
	ck_assert_ptr_nonnull(s);
	n += (size_t)snprintf(s + n, cap - n, "{\"instances\": [");
	for (int r = 0; r < rows; r++) {
		n += (size_t)snprintf(s + n, cap - n, "%s[", r ? ", " : "");
		for (int c = 0; c < inputs; c++)
			n += (size_t)snprintf(s + n, cap - n, "%s%.9g", c ? ", " : "",
			                      (double)x[(size_t)r * inputs + c]);
		n += (size_t)snprintf(s + n, cap - n, "]");
	}
	snprintf(s + n, cap - n, "]}");
	return s;
}

#endif
