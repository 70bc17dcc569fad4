/*
 * model_file.c - models to and from bytes.
 *
 * Format version 1, every field little-endian whatever the host:
 *   "NNDMODEL"  u32 version
 *   u32 task, u32 inputs, u32 outputs, u32 init, u64 seed
 *   u32 n_layers (output layer included), then each layer, children after
 *     their residual: u32 type, i32 units, u32 act, f32 alpha, u32 init,
 *     f32 init_param, u32 bias, f32 momentum, f32 eps, f32 rate, u32 mode,
 *     u32 projection, u32 n_children
 *   u64 n_params, f32 params[n_params]
 *   u64 n_state,  f32 state[n_state]
 *   u32 has_standardize, then (if 1) f32 mean[inputs], f32 std[inputs]
 *   u32 CRC-32 of every byte before it.
 * The loader checks the magic, version and checksum first, then every count
 * against the bytes that remain before allocating anything, and rebuilds the
 * model through nn_model_create so the spec passes the same checks as a new
 * one. Any failure is NN_ECORRUPT; nothing is trusted.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MODEL_MAGIC "NNDMODEL"
#define MODEL_VERSION 1u
#define LAYER_BYTES 52

/* ---------------------------------------------------------------- writing */

typedef struct wbuf {
	unsigned char *p;
	size_t len, cap;
	int oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		unsigned char *q;
		while (cap < b->len + n)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q) {
			b->oom = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void put_u32(wbuf *b, uint32_t v)
{
	unsigned char c[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
	put(b, c, 4);
}

static void put_u64(wbuf *b, uint64_t v)
{
	put_u32(b, (uint32_t)v);
	put_u32(b, (uint32_t)(v >> 32));
}

static void put_f32(wbuf *b, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	put_u32(b, v);
}

static void put_floats(wbuf *b, const float *f, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		put_f32(b, f[i]);
}

static void put_layers(wbuf *b, const nn_layer_spec *ls, int n)
{
	for (int i = 0; i < n; i++) {
		const nn_layer_spec *l = &ls[i];
		int nc = l->type == NN_LAYER_RESIDUAL ? l->n_children : 0;
		put_u32(b, (uint32_t)l->type);
		put_u32(b, (uint32_t)l->units);
		put_u32(b, (uint32_t)l->act);
		put_f32(b, l->alpha);
		put_u32(b, (uint32_t)l->init);
		put_f32(b, l->init_param);
		put_u32(b, (uint32_t)l->bias);
		put_f32(b, l->momentum);
		put_f32(b, l->eps);
		put_f32(b, l->rate);
		put_u32(b, (uint32_t)l->mode);
		put_u32(b, (uint32_t)l->projection);
		put_u32(b, (uint32_t)nc);
		if (nc)
			put_layers(b, l->children, nc);
	}
}

nn_status nn_model_save(const nn_model *m, void **buf, size_t *len)
{
	wbuf b = { NULL, 0, 0, 0 };

	if (!buf || !len)
		return NN_EINVAL;
	*buf = NULL;
	*len = 0;
	if (!m)
		return NN_EINVAL;
	put(&b, MODEL_MAGIC, 8);
	put_u32(&b, MODEL_VERSION);
	put_u32(&b, (uint32_t)m->spec.task);
	put_u32(&b, (uint32_t)m->spec.inputs);
	put_u32(&b, (uint32_t)m->spec.outputs);
	put_u32(&b, (uint32_t)m->spec.init);
	put_u64(&b, m->spec.seed);
	put_u32(&b, (uint32_t)m->spec.n_layers);
	put_layers(&b, m->spec.layers, m->spec.n_layers);
	put_u64(&b, (uint64_t)m->n_params);
	put_floats(&b, m->params, m->n_params);
	put_u64(&b, (uint64_t)m->n_state);
	put_floats(&b, m->state, m->n_state);
	put_u32(&b, m->std_mean ? 1 : 0);
	if (m->std_mean) {
		put_floats(&b, m->std_mean, m->spec.inputs);
		put_floats(&b, m->std_std, m->spec.inputs);
	}
	if (!b.oom)
		put_u32(&b, nn_crc32(0, b.p, b.len));
	if (b.oom) {
		free(b.p);
		return NN_ENOMEM;
	}
	*buf = b.p;
	*len = b.len;
	return NN_OK;
}

/* ---------------------------------------------------------------- reading */

/* A bounded reader: once bad is set every read returns 0. */
typedef struct rbuf {
	const unsigned char *p;
	size_t len, pos;
	int bad;
} rbuf;

static size_t remaining(const rbuf *r)
{
	return r->len - r->pos;
}

static uint32_t get_u32(rbuf *r)
{
	const unsigned char *c;

	if (r->bad || remaining(r) < 4) {
		r->bad = 1;
		return 0;
	}
	c = r->p + r->pos;
	r->pos += 4;
	return (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
}

static uint64_t get_u64(rbuf *r)
{
	uint64_t lo = get_u32(r);
	return lo | (uint64_t)get_u32(r) << 32;
}

static float get_f32(rbuf *r)
{
	uint32_t v = get_u32(r);
	float f;
	memcpy(&f, &v, 4);
	return f;
}

static void get_floats(rbuf *r, float *f, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		f[i] = get_f32(r);
}

static nn_status get_layers(rbuf *r, int n, int depth, nn_layer_spec **out)
{
	nn_layer_spec *ls;

	*out = NULL;
	if (n == 0)
		return NN_OK;
	if (depth > NN_MAX_DEPTH || (size_t)n > remaining(r) / LAYER_BYTES)
		return NN_ECORRUPT;
	ls = calloc((size_t)n, sizeof(*ls));
	if (!ls)
		return NN_ENOMEM;
	for (int i = 0; i < n; i++) {
		nn_layer_spec *l = &ls[i];
		uint32_t type = get_u32(r), nc;
		l->type = (nn_layer_type)type;
		l->units = (int)get_u32(r);
		l->act = (nn_act)get_u32(r);
		l->alpha = get_f32(r);
		l->init = (nn_init)get_u32(r);
		l->init_param = get_f32(r);
		l->bias = (int)get_u32(r);
		l->momentum = get_f32(r);
		l->eps = get_f32(r);
		l->rate = get_f32(r);
		l->mode = (nn_dropout_mode)get_u32(r);
		l->projection = (int)get_u32(r);
		nc = get_u32(r);
		if (r->bad || type > NN_LAYER_RESIDUAL || (type != NN_LAYER_RESIDUAL && nc != 0) ||
		    nc > (uint32_t)remaining(r) / LAYER_BYTES) {
			nn_layers_free(ls, i);
			return NN_ECORRUPT;
		}
		if (nc) {
			nn_status st = get_layers(r, (int)nc, depth + 1, &l->children);
			if (st != NN_OK) {
				nn_layers_free(ls, i);
				return st;
			}
			l->n_children = (int)nc;
		}
	}
	*out = ls;
	return NN_OK;
}

nn_status nn_model_load(const void *buf, size_t len, nn_model **out, char *err, size_t errlen)
{
	rbuf r = { buf, 0, 0, 0 };
	nn_model_spec spec;
	nn_layer_spec *layers = NULL;
	nn_model *m = NULL;
	uint32_t n_layers, crc;
	uint64_t np, ns;
	int64_t count;
	nn_status st = NN_ECORRUPT;
	char why[256];

	if (!out)
		return NN_EINVAL;
	*out = NULL;
	if (!buf || len < 8 + 4 + 4 || memcmp(buf, MODEL_MAGIC, 8) != 0) {
		nn_errf(err, errlen, "not a model file");
		return NN_ECORRUPT;
	}
	r.len = len - 4;
	r.pos = 8;
	{
		rbuf t = { buf, len, len - 4, 0 };
		crc = get_u32(&t);
	}
	if (get_u32(&r) != MODEL_VERSION) {
		nn_errf(err, errlen, "unsupported model file version");
		return NN_ECORRUPT;
	}
	if (nn_crc32(0, buf, len - 4) != crc) {
		nn_errf(err, errlen, "model file checksum mismatch");
		return NN_ECORRUPT;
	}
	memset(&spec, 0, sizeof(spec));
	spec.task = (nn_task)get_u32(&r);
	spec.inputs = (int)get_u32(&r);
	spec.outputs = (int)get_u32(&r);
	spec.init = (nn_init)get_u32(&r);
	spec.seed = get_u64(&r);
	n_layers = get_u32(&r);
	if (r.bad || n_layers < 1 || n_layers > remaining(&r) / LAYER_BYTES) {
		nn_errf(err, errlen, "model file: bad layer count");
		return NN_ECORRUPT;
	}
	st = get_layers(&r, (int)n_layers, 0, &layers);
	if (st != NN_OK) {
		nn_errf(err, errlen, "model file: bad layers");
		return st;
	}
	/* the last layer is the implied output layer */
	{
		const nn_layer_spec *o = &layers[n_layers - 1];
		if (o->type != NN_LAYER_DENSE || o->units != spec.outputs ||
		    o->act != NN_ACT_IDENTITY || o->bias != 1) {
			nn_errf(err, errlen, "model file: bad output layer");
			st = NN_ECORRUPT;
			goto done;
		}
	}
	spec.layers = layers;
	spec.n_layers = (int)n_layers - 1;
	if (nn_spec_check(&spec, 0, &count, why, sizeof(why)) != NN_OK) {
		nn_errf(err, errlen, "model file: bad spec: %s", why);
		st = NN_ECORRUPT;
		goto done;
	}
	np = get_u64(&r);
	if (r.bad || np != (uint64_t)count || np > remaining(&r) / 4) {
		nn_errf(err, errlen, "model file: bad parameter count");
		st = NN_ECORRUPT;
		goto done;
	}
	m = nn_model_create(&spec, why, sizeof(why));
	if (!m) {
		nn_errf(err, errlen, "model file: %s", why);
		st = NN_ENOMEM;
		goto done;
	}
	get_floats(&r, m->params, m->n_params);
	ns = get_u64(&r);
	if (r.bad || ns != (uint64_t)m->n_state || ns > remaining(&r) / 4) {
		nn_errf(err, errlen, "model file: bad state count");
		st = NN_ECORRUPT;
		goto done;
	}
	get_floats(&r, m->state, m->n_state);
	{
		uint32_t has_std = get_u32(&r);
		if (r.bad || has_std > 1 ||
		    (has_std && (size_t)spec.inputs > remaining(&r) / 8)) {
			nn_errf(err, errlen, "model file: bad standardisation");
			st = NN_ECORRUPT;
			goto done;
		}
		if (has_std) {
			float *mean = malloc(sizeof(float) * (size_t)spec.inputs);
			float *sd = malloc(sizeof(float) * (size_t)spec.inputs);
			nn_status s2 = NN_ENOMEM;
			if (mean && sd) {
				get_floats(&r, mean, spec.inputs);
				get_floats(&r, sd, spec.inputs);
				s2 = nn_model_set_standardize(m, mean, sd);
			}
			free(mean);
			free(sd);
			if (s2 != NN_OK) {
				nn_errf(err, errlen, "model file: bad standardisation");
				st = s2 == NN_ENOMEM ? NN_ENOMEM : NN_ECORRUPT;
				goto done;
			}
		}
	}
	if (r.bad || remaining(&r) != 0) {
		nn_errf(err, errlen, "model file: trailing or missing bytes");
		st = NN_ECORRUPT;
		goto done;
	}
	st = NN_OK;
	*out = m;
	m = NULL;
done:
	nn_model_free(m);
	nn_layers_free(layers, (int)n_layers);
	return st;
}
