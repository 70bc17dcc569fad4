/*
 * spec.c - layer specs as plain data: defaults, deep copy and free, and the
 * checks a spec must pass before a model is built from it (widths, residual
 * shapes, ranges, nesting depth, parameter count). Messages name the
 * offending layer or field by its JSON path.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Widths beyond this are refused whatever the parameter limit. */
#define NN_MAX_UNITS (1 << 24)
/* Layers in one array. */
#define NN_MAX_LAYERS 65536

nn_layer_spec nn_layer_default(nn_layer_type type)
{
	nn_layer_spec s;

	memset(&s, 0, sizeof(s));
	s.type = type;
	s.act = NN_ACT_IDENTITY;
	s.init = NN_INIT_AUTO;
	s.bias = 1;
	s.momentum = 0.1f;
	s.eps = 1e-5f;
	s.mode = NN_DROPOUT_INVERTED;
	return s;
}

void nn_layers_free(nn_layer_spec *layers, int n)
{
	if (!layers)
		return;
	for (int i = 0; i < n; i++)
		nn_layers_free(layers[i].children, layers[i].n_children);
	free(layers);
}

nn_status nn_layers_copy(const nn_layer_spec *src, int n, nn_layer_spec **out)
{
	nn_layer_spec *dst;

	*out = NULL;
	if (n <= 0 || !src)
		return n < 0 ? NN_EINVAL : NN_OK;
	dst = calloc((size_t)n, sizeof(*dst));
	if (!dst)
		return NN_ENOMEM;
	for (int i = 0; i < n; i++) {
		dst[i] = src[i];
		dst[i].children = NULL;
		/* only a residual owns children; other types' fields are not read */
		if (src[i].type == NN_LAYER_RESIDUAL && src[i].n_children > 0 && src[i].children) {
			nn_status st = nn_layers_copy(src[i].children, src[i].n_children,
			                              &dst[i].children);
			if (st != NN_OK) {
				dst[i].n_children = 0;
				nn_layers_free(dst, i + 1);
				return st;
			}
		} else {
			dst[i].n_children = 0;
		}
	}
	*out = dst;
	return NN_OK;
}

typedef struct check_ctx {
	int64_t params;
	int64_t max_params;
	char *err;
	size_t errlen;
} check_ctx;

static int is_finite(float x)
{
	return isfinite(x);
}

static nn_status add_params(check_ctx *c, int64_t k, const char *path)
{
	c->params += k;
	if (c->max_params > 0 && c->params > c->max_params) {
		nn_errf(c->err, c->errlen, "%s: the model would have more than %lld parameters",
		        path, (long long)c->max_params);
		return NN_ELIMIT;
	}
	if (c->params > ((int64_t)1 << 40)) {
		nn_errf(c->err, c->errlen, "%s: too many parameters", path);
		return NN_ELIMIT;
	}
	return NN_OK;
}

static nn_status check_layers(check_ctx *c, const nn_layer_spec *ls, int n, const char *prefix,
                              int width, int depth, int *out_width);

/* A dense layer's fields; its output width is its units. */
static nn_status check_dense(check_ctx *c, const nn_layer_spec *l, const char *path, int width,
                             int *out_width)
{
	nn_status st;

	if (l->units <= 0 || l->units > NN_MAX_UNITS) {
		nn_errf(c->err, c->errlen, "%s.units: must be a positive integer (at most %d)",
		        path, NN_MAX_UNITS);
		return l->units > 0 ? NN_ELIMIT : NN_EINVAL;
	}
	if ((unsigned)l->act > NN_ACT_GELU) {
		nn_errf(c->err, c->errlen, "%s.activation: unknown activation", path);
		return NN_EINVAL;
	}
	if ((unsigned)l->init > NN_INIT_XAVIER_UNIFORM) {
		nn_errf(c->err, c->errlen, "%s.init: unknown init", path);
		return NN_EINVAL;
	}
	if (!is_finite(l->init_param) || l->init_param < 0) {
		nn_errf(c->err, c->errlen, "%s.init: the std / limit must be >= 0", path);
		return NN_EINVAL;
	}
	if (l->bias != 0 && l->bias != 1) {
		nn_errf(c->err, c->errlen, "%s.bias: must be true or false", path);
		return NN_EINVAL;
	}
	if (!is_finite(l->alpha)) {
		nn_errf(c->err, c->errlen, "%s.alpha: must be finite", path);
		return NN_EINVAL;
	}
	st = add_params(c, (int64_t)l->units * width + (l->bias ? l->units : 0), path);
	if (st != NN_OK)
		return st;
	*out_width = l->units;
	return NN_OK;
}

/* A residual block: its depth, its children, and a width it keeps or
 * projects. */
static nn_status check_residual(check_ctx *c, const nn_layer_spec *l, const char *path,
                                int width, int depth, int *out_width)
{
	nn_status st;
	char prefix[1040];
	int w;
	if (depth >= NN_MAX_DEPTH) {
		nn_errf(c->err, c->errlen, "%s: residual blocks nested deeper than %d", path,
		        NN_MAX_DEPTH);
		return NN_ELIMIT;
	}
	if (l->n_children <= 0 || !l->children) {
		nn_errf(c->err, c->errlen, "%s.layers: a residual block needs at least one layer",
		        path);
		return NN_EINVAL;
	}
	if (l->projection != 0 && l->projection != 1) {
		nn_errf(c->err, c->errlen, "%s.projection: must be true or false", path);
		return NN_EINVAL;
	}
	snprintf(prefix, sizeof(prefix), "%s.", path);
	st = check_layers(c, l->children, l->n_children, prefix, width, depth + 1, &w);
	if (st != NN_OK)
		return st;
	if (l->projection) {
		st = add_params(c, (int64_t)w * width, path);
		if (st != NN_OK)
			return st;
	} else if (w != width) {
		nn_errf(c->err, c->errlen,
		        "%s: the block's output width %d differs from its input width %d "
		        "(set \"projection\": true for a learned shortcut)", path, w, width);
		return NN_EINVAL;
	}
	*out_width = w;
	return NN_OK;
}

static nn_status check_layer(check_ctx *c, const nn_layer_spec *l, const char *path, int width,
                             int depth, int *out_width)
{
	*out_width = width;
	switch (l->type) {
	case NN_LAYER_DENSE:
		return check_dense(c, l, path, width, out_width);
	case NN_LAYER_ACTIVATION:
		if ((unsigned)l->act > NN_ACT_GELU) {
			nn_errf(c->err, c->errlen, "%s.function: unknown activation", path);
			return NN_EINVAL;
		}
		if (!is_finite(l->alpha)) {
			nn_errf(c->err, c->errlen, "%s.alpha: must be finite", path);
			return NN_EINVAL;
		}
		return NN_OK;
	case NN_LAYER_BATCH_NORM:
		if (!is_finite(l->momentum) || l->momentum < 0 || l->momentum > 1) {
			nn_errf(c->err, c->errlen, "%s.momentum: must be in [0, 1]", path);
			return NN_EINVAL;
		}
		if (!is_finite(l->eps) || l->eps <= 0) {
			nn_errf(c->err, c->errlen, "%s.eps: must be positive", path);
			return NN_EINVAL;
		}
		return add_params(c, 2 * (int64_t)width, path);
	case NN_LAYER_DROPOUT:
		if (!is_finite(l->rate) || l->rate < 0 || l->rate >= 1) {
			nn_errf(c->err, c->errlen, "%s.rate: must be in [0, 1)", path);
			return NN_EINVAL;
		}
		if (l->mode != NN_DROPOUT_INVERTED && l->mode != NN_DROPOUT_SCALE_AT_TEST) {
			nn_errf(c->err, c->errlen, "%s.mode: unknown dropout mode", path);
			return NN_EINVAL;
		}
		return NN_OK;
	case NN_LAYER_RESIDUAL:
		return check_residual(c, l, path, width, depth, out_width);
	}
	nn_errf(c->err, c->errlen, "%s.type: unknown layer type", path);
	return NN_EINVAL;
}

static nn_status check_layers(check_ctx *c, const nn_layer_spec *ls, int n, const char *prefix,
                              int width, int depth, int *out_width)
{
	char path[1024];

	if (n > NN_MAX_LAYERS) {
		nn_errf(c->err, c->errlen, "%slayers: more than %d layers", prefix, NN_MAX_LAYERS);
		return NN_ELIMIT;
	}
	for (int i = 0; i < n; i++) {
		nn_status st;
		snprintf(path, sizeof(path), "%slayers[%d]", prefix, i);
		st = check_layer(c, &ls[i], path, width, depth, &width);
		if (st != NN_OK)
			return st;
	}
	*out_width = width;
	return NN_OK;
}

nn_status nn_spec_check(const nn_model_spec *spec, int64_t max_params, int64_t *params,
                        char *err, size_t errlen)
{
	check_ctx c = { 0, max_params, err, errlen };
	nn_status st;
	int w;

	if (!spec) {
		nn_errf(err, errlen, "no spec");
		return NN_EINVAL;
	}
	if (spec->task != NN_TASK_CLASSIFICATION && spec->task != NN_TASK_REGRESSION) {
		nn_errf(err, errlen, "task: must be classification or regression");
		return NN_EINVAL;
	}
	if (spec->inputs <= 0 || spec->inputs > NN_MAX_UNITS) {
		nn_errf(err, errlen, "inputs: must be a positive integer (at most %d)", NN_MAX_UNITS);
		return spec->inputs > 0 ? NN_ELIMIT : NN_EINVAL;
	}
	if (spec->outputs <= 0 || spec->outputs > NN_MAX_UNITS) {
		nn_errf(err, errlen, "outputs: must be a positive integer (at most %d)", NN_MAX_UNITS);
		return spec->outputs > 0 ? NN_ELIMIT : NN_EINVAL;
	}
	if ((unsigned)spec->init > NN_INIT_XAVIER_UNIFORM) {
		nn_errf(err, errlen, "init: unknown init");
		return NN_EINVAL;
	}
	if (spec->n_layers < 0 || (spec->n_layers > 0 && !spec->layers)) {
		nn_errf(err, errlen, "layers: must be a list");
		return NN_EINVAL;
	}
	st = check_layers(&c, spec->layers, spec->n_layers, "", spec->inputs, 0, &w);
	if (st != NN_OK)
		return st;
	{
		char path[64];
		snprintf(path, sizeof(path), "layers[%d]", spec->n_layers);
		st = add_params(&c, (int64_t)spec->outputs * w + spec->outputs, path);
		if (st != NN_OK)
			return st;
	}
	if (params)
		*params = c.params;
	return NN_OK;
}
