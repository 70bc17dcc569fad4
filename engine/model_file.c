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

#include "bytes.h"
#include "internal.h"

#define MODEL_MAGIC "NNDMODEL"
#define MODEL_VERSION 1u
#define LAYER_BYTES 52

/* ---------------------------------------------------------------- writing */

static void put_layers(nn_wbuf *b, const nn_layer_spec *ls, int n)
{
	for (int i = 0; i < n; i++) {
		const nn_layer_spec *l = &ls[i];
		int nc = l->type == NN_LAYER_RESIDUAL ? l->n_children : 0;
		nn_wb_u32(b, (uint32_t)l->type);
		nn_wb_u32(b, (uint32_t)l->units);
		nn_wb_u32(b, (uint32_t)l->act);
		nn_wb_f32(b, l->alpha);
		nn_wb_u32(b, (uint32_t)l->init);
		nn_wb_f32(b, l->init_param);
		nn_wb_u32(b, (uint32_t)l->bias);
		nn_wb_f32(b, l->momentum);
		nn_wb_f32(b, l->eps);
		nn_wb_f32(b, l->rate);
		nn_wb_u32(b, (uint32_t)l->mode);
		nn_wb_u32(b, (uint32_t)l->projection);
		nn_wb_u32(b, (uint32_t)nc);
		if (nc)
			put_layers(b, l->children, nc);
	}
}

nn_status nn_model_save(const nn_model *m, void **buf, size_t *len)
{
	nn_wbuf b = NN_WBUF_INIT;

	if (!buf || !len)
		return NN_EINVAL;
	*buf = NULL;
	*len = 0;
	if (!m)
		return NN_EINVAL;
	nn_wb_bytes(&b, MODEL_MAGIC, 8);
	nn_wb_u32(&b, MODEL_VERSION);
	nn_wb_u32(&b, (uint32_t)m->spec.task);
	nn_wb_u32(&b, (uint32_t)m->spec.inputs);
	nn_wb_u32(&b, (uint32_t)m->spec.outputs);
	nn_wb_u32(&b, (uint32_t)m->spec.init);
	nn_wb_u64(&b, m->spec.seed);
	nn_wb_u32(&b, (uint32_t)m->spec.n_layers);
	put_layers(&b, m->spec.layers, m->spec.n_layers);
	nn_wb_u64(&b, (uint64_t)m->n_params);
	nn_wb_f32s(&b, m->params, m->n_params);
	nn_wb_u64(&b, (uint64_t)m->n_state);
	nn_wb_f32s(&b, m->state, m->n_state);
	nn_wb_u32(&b, m->std_mean ? 1 : 0);
	if (m->std_mean) {
		nn_wb_f32s(&b, m->std_mean, m->spec.inputs);
		nn_wb_f32s(&b, m->std_std, m->spec.inputs);
	}
	return nn_wb_seal(&b, buf, len);
}

/* ---------------------------------------------------------------- reading */

static nn_status get_layers(nn_rbuf *r, int n, int depth, nn_layer_spec **out)
{
	nn_layer_spec *ls;

	*out = NULL;
	if (n == 0)
		return NN_OK;
	if (depth > NN_MAX_DEPTH || (size_t)n > nn_rb_left(r) / LAYER_BYTES)
		return NN_ECORRUPT;
	ls = calloc((size_t)n, sizeof(*ls));
	if (!ls)
		return NN_ENOMEM;
	for (int i = 0; i < n; i++) {
		nn_layer_spec *l = &ls[i];
		uint32_t type = nn_rb_u32(r), nc;
		l->type = (nn_layer_type)type;
		l->units = (int)nn_rb_u32(r);
		l->act = (nn_act)nn_rb_u32(r);
		l->alpha = nn_rb_f32(r);
		l->init = (nn_init)nn_rb_u32(r);
		l->init_param = nn_rb_f32(r);
		l->bias = (int)nn_rb_u32(r);
		l->momentum = nn_rb_f32(r);
		l->eps = nn_rb_f32(r);
		l->rate = nn_rb_f32(r);
		l->mode = (nn_dropout_mode)nn_rb_u32(r);
		l->projection = (int)nn_rb_u32(r);
		nc = nn_rb_u32(r);
		if (r->failed || type > NN_LAYER_RESIDUAL || (type != NN_LAYER_RESIDUAL && nc != 0) ||
		    nc > (uint32_t)nn_rb_left(r) / LAYER_BYTES) {
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

/* The file's magic, version and checksum. */
static nn_status load_header(nn_rbuf *r, const void *buf, size_t len, char *err, size_t errlen)
{
	if (!nn_rb_open(r, buf, len, MODEL_MAGIC)) {
		nn_errf(err, errlen, "not a model file");
		return NN_ECORRUPT;
	}
	if (nn_rb_u32(r) != MODEL_VERSION) {
		nn_errf(err, errlen, "unsupported model file version");
		return NN_ECORRUPT;
	}
	if (!nn_rb_crc_ok(buf, len)) {
		nn_errf(err, errlen, "model file checksum mismatch");
		return NN_ECORRUPT;
	}
	return NN_OK;
}

/* The spec: its fields, its layers (*layers, n_layers of them, the caller's
 * to free even on failure), the implied output layer last; checked, with
 * its parameter count in *count. */
static nn_status load_spec(nn_rbuf *r, nn_model_spec *spec, nn_layer_spec **layers,
                           uint32_t *n_layers, int64_t *count, char *err, size_t errlen)
{
	char why[256];
	memset(spec, 0, sizeof(*spec));
	spec->task = (nn_task)nn_rb_u32(r);
	spec->inputs = (int)nn_rb_u32(r);
	spec->outputs = (int)nn_rb_u32(r);
	spec->init = (nn_init)nn_rb_u32(r);
	spec->seed = nn_rb_u64(r);
	*n_layers = nn_rb_u32(r);
	if (r->failed || *n_layers < 1 || *n_layers > nn_rb_left(r) / LAYER_BYTES) {
		*n_layers = 0;
		nn_errf(err, errlen, "model file: bad layer count");
		return NN_ECORRUPT;
	}
	nn_status st = get_layers(r, (int)*n_layers, 0, layers);
	if (st != NN_OK) {
		nn_errf(err, errlen, "model file: bad layers");
		return st;
	}
	const nn_layer_spec *o = &(*layers)[*n_layers - 1];
	if (o->type != NN_LAYER_DENSE || o->units != spec->outputs || o->act != NN_ACT_IDENTITY ||
	    o->bias != 1) {
		nn_errf(err, errlen, "model file: bad output layer");
		return NN_ECORRUPT;
	}
	spec->layers = *layers;
	spec->n_layers = (int)*n_layers - 1;
	if (nn_spec_check(spec, 0, count, why, sizeof(why)) != NN_OK) {
		nn_errf(err, errlen, "model file: bad spec: %s", why);
		return NN_ECORRUPT;
	}
	return NN_OK;
}

/* The running statistics and the standardisation, into m (its
 * parameters are read already). */
static nn_status load_state(nn_rbuf *r, nn_model *m, char *err, size_t errlen)
{
	uint64_t ns = nn_rb_u64(r);
	int inputs = m->spec.inputs;
	if (r->failed || ns != (uint64_t)m->n_state || ns > nn_rb_left(r) / 4) {
		nn_errf(err, errlen, "model file: bad state count");
		return NN_ECORRUPT;
	}
	nn_rb_f32s(r, m->state, m->n_state);
	uint32_t has_std = nn_rb_u32(r);
	if (r->failed || has_std > 1 || (has_std && (size_t)inputs > nn_rb_left(r) / 8)) {
		nn_errf(err, errlen, "model file: bad standardisation");
		return NN_ECORRUPT;
	}
	if (!has_std)
		return NN_OK;
	float *mean = malloc(sizeof(float) * (size_t)inputs);
	float *sd = malloc(sizeof(float) * (size_t)inputs);
	nn_status st = NN_ENOMEM;
	if (mean && sd) {
		nn_rb_f32s(r, mean, inputs);
		nn_rb_f32s(r, sd, inputs);
		st = nn_model_set_standardize(m, mean, sd);
	}
	free(mean);
	free(sd);
	if (st != NN_OK) {
		nn_errf(err, errlen, "model file: bad standardisation");
		return st == NN_ENOMEM ? NN_ENOMEM : NN_ECORRUPT;
	}
	return NN_OK;
}

nn_status nn_model_load(const void *buf, size_t len, nn_model **out, char *err, size_t errlen)
{
	nn_rbuf r;
	nn_model_spec spec;
	nn_layer_spec *layers = NULL;
	nn_model *m = NULL;
	uint32_t n_layers = 0;
	int64_t count = 0;
	char why[256];

	if (!out)
		return NN_EINVAL;
	*out = NULL;
	nn_status st = load_header(&r, buf, len, err, errlen);
	if (st == NN_OK)
		st = load_spec(&r, &spec, &layers, &n_layers, &count, err, errlen);
	if (st != NN_OK)
		goto done;
	uint64_t np = nn_rb_u64(&r);
	if (r.failed || np != (uint64_t)count || np > nn_rb_left(&r) / 4) {
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
	nn_rb_f32s(&r, m->params, m->n_params);
	if ((st = load_state(&r, m, err, errlen)) != NN_OK)
		goto done;
	if (r.failed || nn_rb_left(&r) != 0) {
		nn_errf(err, errlen, "model file: trailing or missing bytes");
		st = NN_ECORRUPT;
		goto done;
	}
	*out = m;
	m = NULL;
done:
	nn_model_free(m);
	nn_layers_free(layers, (int)n_layers);
	return st;
}
