/*
 * handlers_models.c - /v1/models: create, list, get, delete, the weights
 * (GET and PUT a new version) and predictions.
 *
 * Predictions read an immutable snapshot of the newest version, so they
 * never wait for training. Plain bodies go through the stream reader of
 * predict_stream.c (the daemon feeds it as the body arrives; a handler call
 * with the whole body feeds it in one piece); the cJSON path here reads any
 * other body and names every bad field. The reply writer below serves both,
 * and the stream's helper thread writes the same text block by block
 * (api_predict_text_*).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "handlers_int.h"
#include "predict_stream.h"

#define PREDICT_MAX_ROWS API_PREDICT_MAX_ROWS

int api_models_create(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	cJSON *j = api_parse_body(rq, &e);
	if (!j)
		return api_reply_error(rp, &e);
	nn_model_spec spec;
	memset(&spec, 0, sizeof spec);
	char *name = NULL;
	int rc = api_model_spec_from_json(j, &b->limits, &spec, &name, &e);
	cJSON_Delete(j);
	if (rc < 0) {
		free(name);
		return api_reply_error(rp, &e);
	}
	char err[256] = "";
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	nn_layers_free(spec.layers, spec.n_layers);
	if (!m) {
		free(name);
		api_err_set(&e, 422, "validation_failed", "%s", err[0] ? err : "invalid model");
		return api_reply_error(rp, &e);
	}
	api_model_info info;
	memset(&info, 0, sizeof info);
	rc = b->model_create(b->ctx, name, m, &info, &e);
	free(name);
	nn_model_free(m);
	if (rc < 0)
		return api_reply_error(rp, &e);
	snprintf(rp->location, sizeof rp->location, "/v1/models/%s", info.id);
	cJSON *doc = info.doc;
	info.doc = NULL;
	return api_reply_json(rp, 201, doc);
}

int api_models_list(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int64_t limit, offset, total = 0;
	if (api_paging(rq, &limit, &offset, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *items = cJSON_CreateArray();
	if (b->model_list(b->ctx, limit, offset, items, &total, &e) < 0) {
		cJSON_Delete(items);
		return api_reply_error(rp, &e);
	}
	return api_reply_list(rp, "models", items, total, limit, offset);
}

int api_model_get(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	api_model_info info;
	memset(&info, 0, sizeof info);
	if (b->model_get(b->ctx, rq->id, &info, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *doc = info.doc;
	info.doc = NULL;
	return api_reply_json(rp, 200, doc);
}

int api_model_delete(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	if (b->model_delete(b->ctx, rq->id, &e) < 0)
		return api_reply_error(rp, &e);
	rp->status = 204;
	rp->ctype = NULL;
	return 0;
}

int api_model_weights_get(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	api_model_snap *s = NULL;
	if (b->model_snapshot(b->ctx, rq->id, &s, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *w = api_weights_to_json(s->model);
	if (w)
		cJSON_AddNumberToObject(w, "version", s->version);
	b->snap_release(b->ctx, s);
	if (!w) {
		api_err_set(&e, 500, "out_of_memory", "could not render the weights");
		return api_reply_error(rp, &e);
	}
	return api_reply_json(rp, 200, w);
}

int api_model_weights_put(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	cJSON *j = api_parse_body(rq, &e);
	if (!j)
		return api_reply_error(rp, &e);
	api_model_snap *s = NULL;
	if (b->model_snapshot(b->ctx, rq->id, &s, &e) < 0) {
		cJSON_Delete(j);
		return api_reply_error(rp, &e);
	}
	nn_model *m = nn_model_clone(s->model);
	b->snap_release(b->ctx, s);
	if (!m) {
		cJSON_Delete(j);
		api_err_set(&e, 500, "out_of_memory", "out of memory");
		return api_reply_error(rp, &e);
	}
	/* "version" is what GET returns beside the layers; accept it back */
	cJSON_DeleteItemFromObjectCaseSensitive(j, "version");
	int rc = api_weights_from_json(j, m, &e);
	cJSON_Delete(j);
	if (rc < 0) {
		nn_model_free(m);
		return api_reply_error(rp, &e);
	}
	int version = 0;
	if (b->model_publish(b->ctx, rq->id, m, &version, &e) < 0)
		return api_reply_error(rp, &e);
	api_model_info info;
	memset(&info, 0, sizeof info);
	if (b->model_get(b->ctx, rq->id, &info, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *doc = info.doc;
	info.doc = NULL;
	return api_reply_json(rp, 200, doc);
}

/* instances -> a rows x inputs matrix; every bad value named by its path. */
static float *read_instances(const cJSON *inst, int inputs, int *rows, api_err *e)
{
	if (!cJSON_IsArray(inst)) {
		api_err_field(e, "instances", "must be an array of rows");
		return NULL;
	}
	int n = cJSON_GetArraySize(inst);
	if (n < 1 || n > PREDICT_MAX_ROWS) {
		api_err_field(e, "instances", "must hold 1 to %d rows", PREDICT_MAX_ROWS);
		return NULL;
	}
	float *x = malloc((size_t)n * (size_t)inputs * sizeof *x);
	if (!x) {
		api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	int r = 0;
	const cJSON *row;
	cJSON_ArrayForEach(row, inst) {
		char path[64];
		snprintf(path, sizeof path, "instances[%d]", r);
		if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != inputs) {
			api_err_field(e, path, "must be an array of %d numbers", inputs);
		} else {
			int c = 0;
			const cJSON *v;
			cJSON_ArrayForEach(v, row) {
				if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
				    fabs(v->valuedouble) > 3.0e38) {
					snprintf(path, sizeof path, "instances[%d][%d]", r, c);
					api_err_field(e, path, "must be a finite number");
				} else {
					x[(size_t)r * inputs + c] = (float)v->valuedouble;
				}
				c++;
			}
		}
		if (e->n_fields >= API_MAX_FIELD_ERRORS)
			break;
		r++;
	}
	if (e->n_fields) {
		free(x);
		return NULL;
	}
	*rows = n;
	return x;
}

static cJSON *num(float v)
{
	return isfinite(v) ? cJSON_CreateNumber(api_float_json(v)) : cJSON_CreateNull();
}

/* ---- the reply of a prediction, written directly into one buffer: the
 * same document the general path builds with cJSON (test_predict_fast
 * holds them byte for byte equal), or float32 rows. */

static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* A growing reply text; on allocation failure ok drops to 0. */
typedef struct obuf {
	char *b;
	size_t len, cap;
	int ok;
} obuf;

static char *ob_room(obuf *o, size_t n)
{
	if (!o->ok)
		return NULL;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (o->len + n + 1 > cap)
			cap *= 2;
		char *nb = realloc(o->b, cap);
		if (!nb) {
			o->ok = 0;
			return NULL;
		}
		o->b = nb;
		o->cap = cap;
	}
	return o->b + o->len;
}

static void ob_put(obuf *o, const char *s, size_t n)
{
	char *d = ob_room(o, n);
	if (d) {
		memcpy(d, s, n);
		o->len += n;
	}
}

#define OB_LIT(o, s) ob_put((o), (s), sizeof(s) - 1)

/* Whether dig x 10^-n (n in 23..44) reads back as the float v: 1 yes, 0
 * no, -1 too close to tell. The product in double is within 2^-52 of the
 * decimal (10^-n correctly rounded, dig exact); v's rounding interval ends
 * halfway to its neighbours, exact in double. */
static int tiny_reads_back(uint64_t dig, int n, float v)
{
	static const double neg_pow10[45] = {
		1e-0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12,
		1e-13, 1e-14, 1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22, 1e-23,
		1e-24, 1e-25, 1e-26, 1e-27, 1e-28, 1e-29, 1e-30, 1e-31, 1e-32, 1e-33, 1e-34,
		1e-35, 1e-36, 1e-37, 1e-38, 1e-39, 1e-40, 1e-41, 1e-42, 1e-43, 1e-44
	};
	if (n < 0 || n > 44)
		return -1;
	double x = (double)dig * neg_pow10[n];
	float a = fabsf(v);
	double lo = ((double)a + (double)nextafterf(a, 0.0f)) / 2;
	double hi = ((double)a + (double)nextafterf(a, INFINITY)) / 2;
	double margin = x * 0x1p-48;
	if (x > lo + margin && x < hi - margin)
		return 1;
	if (x < lo - margin || x > hi + margin)
		return 0;
	return -1;
}

/* v (finite, not 0) as printf's "%.<prec>g" would print it, when that
 * text reads back (strtod, then float) as v; e10 = floor(log10(|v|)): its
 * length, else 0 (the text
 * does not read back, or the shortcut cannot tell: the caller then uses
 * snprintf). Digits come from one double product, exact for the powers of
 * ten up to 1e22, and the read-back is the same product the other way. */
static int fmt_float_g(char *d, float v, int prec, int e10)
{
	static const uint64_t p10[] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
	                                100000000, 1000000000, 10000000000ULL };
	double a = fabs((double)v);
	int e = e10;
	uint64_t dig = 0;
	for (int tries = 0; tries < 3; tries++) {
		int n = prec - 1 - e;
		if (n > 22 && n <= 44) {
			/* small values (tiny probabilities): |v| = m 2^q exactly, so
			 * |v| 10^n = m 5^n 2^(n+q), an integer product below 2^127
			 * shifted right with round-half-even, as printf rounds */
			int ex;
			float f = frexpf(fabsf(v), &ex);
			/* 5^n by squaring (the last square may wrap; it is not used) */
			unsigned __int128 p5 = 1, b5 = 5;
			for (int k5 = n; k5; k5 >>= 1) {
				if (k5 & 1)
					p5 *= b5;
				b5 *= b5;
			}
			unsigned __int128 x = (unsigned __int128)(uint32_t)ldexpf(f, 24) * p5;
			int k = -(n + ex - 24);
			if (k <= 0 || k >= 127)
				return 0;
			unsigned __int128 q = x >> k, rem = x - (q << k), half = (unsigned __int128)1 << (k - 1);
			if (rem > half || (rem == half && (q & 1)))
				q++;
			if (q >= p10[prec]) {
				e++;
				continue;
			}
			if (q < p10[prec - 1]) {
				e--;
				continue;
			}
			dig = (uint64_t)q;
			break;
		}
		if (n < -22 || n > 22)
			return 0;
		double sc = n >= 0 ? a * pow10_exact[n] : a / pow10_exact[-n];
		double r = nearbyint(sc);
		if (r >= (double)p10[prec]) {
			e++;
			continue;
		}
		if (r < (double)p10[prec - 1]) {
			e--;
			continue;
		}
		dig = (uint64_t)r;
		/* reads back? (the same exact-power product strtod would do) */
		double back = n >= 0 ? (double)dig / pow10_exact[n] : (double)dig * pow10_exact[-n];
		if ((float)(v < 0 ? -back : back) != v)
			return -1;
		break;
	}
	if (!dig)
		return 0;
	char ds[16];
	int nd = prec;
	uint64_t digits = dig;
	for (int i = prec - 1; i >= 0; i--, dig /= 10)
		ds[i] = (char)('0' + dig % 10);
	while (nd > 1 && ds[nd - 1] == '0')
		nd--;
	char *q = d;
	if (v < 0)
		*q++ = '-';
	if (e >= -4 && e < prec) {
		if (e >= 0) {
			for (int i = 0; i <= e; i++)
				*q++ = i < nd ? ds[i] : '0';
			if (nd > e + 1) {
				*q++ = '.';
				for (int i = e + 1; i < nd; i++)
					*q++ = ds[i];
			}
		} else {
			*q++ = '0';
			*q++ = '.';
			for (int i = 0; i < -e - 1; i++)
				*q++ = '0';
			for (int i = 0; i < nd; i++)
				*q++ = ds[i];
		}
	} else {
		*q++ = ds[0];
		if (nd > 1) {
			*q++ = '.';
			for (int i = 1; i < nd; i++)
				*q++ = ds[i];
		}
		*q++ = 'e';
		*q++ = e < 0 ? '-' : '+';
		int ae = e < 0 ? -e : e;
		if (ae >= 100)
			*q++ = (char)('0' + ae / 100);
		*q++ = (char)('0' + ae / 10 % 10);
		*q++ = (char)('0' + ae % 10);
	}
	if (prec - 1 - e > 22) {
		/* exact digits; whether they read back: the double product says so
		 * unless it falls near a rounding boundary, then strtod does */
		int back = tiny_reads_back(digits, prec - 1 - e, v);
		if (back < 0) {
			*q = 0;
			back = (float)strtod(d, NULL) == v;
		}
		if (!back)
			return -1;
	}
	return (int)(q - d);
}

/* A float as its shortest decimal that reads back to it (as
 * api_float_json), or null. */
static void ob_float(obuf *o, float v)
{
	char *d = ob_room(o, 32);
	if (!d)
		return;
	if (!isfinite(v)) {
		memcpy(d, "null", 4);
		o->len += 4;
		return;
	}
	if (v == 0) {
		*d = '0';
		o->len += 1;
		return;
	}
	int n = 0;
	int e10 = (int)floor(log10(fabs((double)v)));   /* once for every precision */
	for (int prec = 6; prec <= 9; prec++) {
		n = fmt_float_g(d, v, prec, e10);
		if (n > 0)
			break;
		if (n < 0 && prec < 9)
			continue;
		n = snprintf(d, 32, "%.*g", prec, (double)v);
		if ((float)strtod(d, NULL) == v)
			break;
	}
	o->len += (size_t)n;
}

static void ob_int(obuf *o, long long v)
{
	char tmp[24], *d = ob_room(o, 24);
	if (!d)
		return;
	/* the digits backwards from the end of tmp, then the sign */
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	int n = 0;
	do {
		tmp[sizeof tmp - 1 - n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		tmp[sizeof tmp - 1 - n++] = '-';
	memcpy(d, tmp + sizeof tmp - n, (size_t)n);
	o->len += (size_t)n;
}

/* A JSON string (UTF-8 passes through; quote, backslash and control
 * characters are escaped). */
static void ob_str(obuf *o, const char *s)
{
	OB_LIT(o, "\"");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			char esc[2] = { '\\', (char)ch };
			ob_put(o, esc, 2);
		} else if (ch < 0x20) {
			char esc[8];
			snprintf(esc, sizeof esc, "\\u%04x", ch);
			ob_put(o, esc, 6);
		} else {
			ob_put(o, s, 1);
		}
	}
	OB_LIT(o, "\"");
}

/* The rows [first, first + rows) of a reply's "predictions" array (out
 * holds those rows only), each after a comma but the very first. */
static void predict_rows(obuf *o, const api_model_snap *s, const float *out, int64_t first,
                         int rows, int outs, int classification)
{
	for (int r = 0; r < rows && o->ok; r++) {
		const float *p = out + (size_t)r * outs;
		if (first + r)
			OB_LIT(o, ",");
		if (classification) {
			int best = 0;
			for (int k = 1; k < outs; k++)
				if (p[k] > p[best])
					best = k;
			OB_LIT(o, "{\"class\":");
			ob_int(o, best);
			OB_LIT(o, ",\"label\":");
			if (s->classes && best < s->n_classes && s->classes[best]) {
				ob_str(o, s->classes[best]);
			} else {
				OB_LIT(o, "\"");
				ob_int(o, best);
				OB_LIT(o, "\"");
			}
			OB_LIT(o, ",\"probabilities\":[");
		} else {
			OB_LIT(o, "[");
		}
		for (int k = 0; k < outs; k++) {
			if (k)
				OB_LIT(o, ",");
			ob_float(o, p[k]);
		}
		if (classification)
			OB_LIT(o, "]}");
		else
			OB_LIT(o, "]");
	}
}

/* The reply of a prediction, written directly: the same document the
 * general path builds with cJSON. NULL when out of memory. */
static char *predict_text(const api_model_snap *s, const float *out, int rows, int outs,
                          int classification)
{
	obuf o = { NULL, 0, 0, 1 };
	ob_room(&o, (size_t)rows * (size_t)outs * 14 + 64);
	OB_LIT(&o, "{\"model_version\":");
	ob_int(&o, s->version);
	OB_LIT(&o, ",\"predictions\":[");
	predict_rows(&o, s, out, 0, rows, outs, classification);
	OB_LIT(&o, "]}");
	if (!o.ok) {
		free(o.b);
		return NULL;
	}
	o.b[o.len] = 0;
	return o.b;
}

/* ---- the same text piece by piece (predict_stream.h) */

struct api_predict_text {
	obuf o;
	int classification;
};

api_predict_text *api_predict_text_new(const api_model_snap *s, size_t hint)
{
	api_predict_text *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->o.ok = 1;
	t->classification = nn_model_spec_of(s->model)->task == NN_TASK_CLASSIFICATION;
	ob_room(&t->o, hint + 64);
	OB_LIT(&t->o, "{\"model_version\":");
	ob_int(&t->o, s->version);
	OB_LIT(&t->o, ",\"predictions\":[");
	return t;
}

void api_predict_text_rows(api_predict_text *t, const api_model_snap *s, const float *out,
                           int64_t first, int rows, int outs)
{
	if (t)
		predict_rows(&t->o, s, out, first, rows, outs, t->classification);
}

void api_predict_text_free(api_predict_text *t)
{
	if (t) {
		free(t->o.b);
		free(t);
	}
}

/* Puts a rendered prediction into rp (status 200, `rows` rows, JSON), or,
 * when body is NULL (out of memory), the 500 problem. 1 when the body went
 * in, 0 when the problem did. */
static int put_body(api_reply *rp, char *body, int64_t rows)
{
	if (!body) {
		api_err *e = calloc(1, sizeof *e);
		if (e)
			api_err_set(e, 500, "out_of_memory", "could not render the prediction");
		api_reply_error(rp, e);
		free(e);
		return 0;
	}
	free(rp->body);
	rp->body = body;
	rp->status = 200;
	rp->rows = rows;
	rp->ctype = "application/json";
	return 1;
}

int api_predict_reply_text(api_reply *rp, api_predict_text *t, int64_t rows)
{
	char *body = NULL;
	if (t) {
		OB_LIT(&t->o, "]}");
		if (t->o.ok) {
			t->o.b[t->o.len] = 0;
			body = t->o.b;
			t->o.b = NULL;
		}
		api_predict_text_free(t);
	}
	put_body(rp, body, rows);
	return 0;
}

int api_predict_reply(api_reply *rp, const api_model_snap *s, float *out, int64_t rows,
                      int outs, int binary)
{
	const nn_model_spec *spec = nn_model_spec_of(s->model);
	char *body = NULL;
	size_t len = 0;
	if (binary && out && rows > 0 && outs > 0) {
		/* the outputs are the body (body_len > 0 marks it binary) */
		body = (char *)out;
		len = (size_t)rows * (size_t)outs * sizeof *out;
		out = NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		uint32_t *w = (uint32_t *)body;
		for (size_t i = 0; i < len / 4; i++)
			w[i] = __builtin_bswap32(w[i]);
#endif
	} else if (!binary && out) {
		body = predict_text(s, out, (int)rows, outs, spec->task == NN_TASK_CLASSIFICATION);
	}
	free(out);
	if (put_body(rp, body, rows) && binary) {
		rp->ctype = "application/octet-stream";
		rp->body_len = len;
		snprintf(rp->model_version, sizeof rp->model_version, "%d", s->version);
	}
	return 0;
}

int api_model_predict(const api_backend *b, const api_req *rq, api_reply *rp)
{
	/* the plain body through the stream reader, in one piece */
	api_predict_stream *ps = NULL;
	if (rq->body)
		ps = api_predict_stream_new(b, rq, API_PREDICT_JSON, (int64_t)rq->body_len, 0, NULL);
	if (ps) {
		api_predict_stream_scan(ps, rq->body, rq->body_len);
		int done = api_predict_stream_finish(ps, rq, rp);
		api_predict_stream_free(ps);
		if (done)
			return 0;
	}
	return api_model_predict_general(b, rq, rp, 0);
}

int api_model_predict_general(const api_backend *b, const api_req *rq, api_reply *rp,
                              int binary_reply)
{

	api_err e = API_ERR_INIT;
	cJSON *j = api_parse_body(rq, &e);
	if (!j)
		return api_reply_error(rp, &e);
	const cJSON *it;
	cJSON_ArrayForEach(it, j) {
		if (strcmp(it->string, "instances") != 0) {
			char path[160];
			snprintf(path, sizeof path, "%.150s", it->string);
			api_err_field(&e, path, "unknown field");
		}
	}
	if (e.n_fields) {
		cJSON_Delete(j);
		return api_reply_error(rp, &e);
	}
	api_model_snap *s = NULL;
	if (b->model_snapshot(b->ctx, rq->id, &s, &e) < 0) {
		cJSON_Delete(j);
		return api_reply_error(rp, &e);
	}
	const nn_model_spec *spec = nn_model_spec_of(s->model);
	int rows = 0;
	/* a model trained on typed columns takes raw records */
	cJSON *warnings = s->enc ? cJSON_CreateArray() : NULL;
	const cJSON *inst = cJSON_GetObjectItemCaseSensitive(j, "instances");
	float *x = s->enc ? api_tab_read_instances(s->enc, inst, PREDICT_MAX_ROWS, &rows, warnings, &e)
	                  : read_instances(inst, spec->inputs, &rows, &e);
	cJSON_Delete(j);
	if (!x) {
		cJSON_Delete(warnings);
		b->snap_release(b->ctx, s);
		return api_reply_error(rp, &e);
	}
	int outs = spec->outputs;
	float *out = malloc((size_t)rows * (size_t)outs * sizeof *out);
	nn_scratch *sc = api_predict_scratch(s);
	nn_status st = out && sc ? nn_predict(s->model, sc, x, rows, out) : NN_ENOMEM;
	free(x);
	if (st != NN_OK) {
		free(out);
		cJSON_Delete(warnings);
		b->snap_release(b->ctx, s);
		api_err_set(&e, 500, "predict_failed", "prediction failed: %s", nn_status_name(st));
		return api_reply_error(rp, &e);
	}
	if (binary_reply) {
		cJSON_Delete(warnings);
		api_predict_reply(rp, s, out, rows, outs, 1);
		b->snap_release(b->ctx, s);
		return 0;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "model_version", s->version);
	cJSON *preds = cJSON_AddArrayToObject(o, "predictions");
	for (int r = 0; r < rows; r++) {
		const float *p = out + (size_t)r * outs;
		if (spec->task == NN_TASK_CLASSIFICATION) {
			int best = 0;
			for (int k = 1; k < outs; k++)
				if (p[k] > p[best])
					best = k;
			cJSON *pr = cJSON_CreateObject();
			cJSON_AddNumberToObject(pr, "class", best);
			char lab[32];
			const char *label = lab;
			if (s->classes && best < s->n_classes && s->classes[best])
				label = s->classes[best];
			else
				snprintf(lab, sizeof lab, "%d", best);
			cJSON_AddStringToObject(pr, "label", label);
			cJSON *pa = cJSON_AddArrayToObject(pr, "probabilities");
			for (int k = 0; k < outs; k++)
				cJSON_AddItemToArray(pa, num(p[k]));
			cJSON_AddItemToArray(preds, pr);
		} else {
			cJSON *pa = cJSON_CreateArray();
			for (int k = 0; k < outs; k++)
				cJSON_AddItemToArray(pa, num(p[k]));
			cJSON_AddItemToArray(preds, pa);
		}
	}
	if (cJSON_GetArraySize(warnings) > 0)
		cJSON_AddItemToObject(o, "warnings", warnings);
	else
		cJSON_Delete(warnings);
	free(out);
	b->snap_release(b->ctx, s);
	rp->rows = rows;
	return api_reply_json(rp, 200, o);
}
