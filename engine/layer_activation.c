/*
 * layer_activation.c - the element-wise activation functions (PyTorch 1.13
 * semantics) and the standalone `activation` layer. Dense layers call the same
 * row kernels for their fused activation, so each function is written once.
 *
 * Each kernel switches on the function outside its loops so that the inner
 * loop over a row is branch-free and vectorisable.
 */
#include <math.h>

#include "plan.h"

float nn_act_default_alpha(nn_act a, float alpha)
{
	if (alpha != 0.0f)
		return alpha;
	if (a == NN_ACT_LEAKY_RELU)
		return 0.01f;
	if (a == NN_ACT_ELU)
		return 1.0f;
	return 0.0f;
}

int nn_act_grad_from_output(nn_act a, float alpha)
{
	switch (a) {
	case NN_ACT_IDENTITY:
	case NN_ACT_RELU:
	case NN_ACT_SIGMOID:
	case NN_ACT_TANH:
		return 1;
	case NN_ACT_LEAKY_RELU:
	case NN_ACT_ELU:
		return alpha > 0.0f; /* then y > 0 exactly when z > 0 */
	case NN_ACT_SOFTPLUS:
	case NN_ACT_GELU:
		return 0;
	}
	return 0;
}

void nn_act_rows(nn_act a, float alpha, const float *z, float *y, int n, int w)
{
	int64_t len = (int64_t)n * w;

	switch (a) {
	case NN_ACT_IDENTITY:
		if (y != z)
			for (int64_t i = 0; i < len; i++)
				y[i] = z[i];
		break;
	case NN_ACT_RELU:
		for (int64_t i = 0; i < len; i++)
			y[i] = z[i] > 0.0f ? z[i] : 0.0f;
		break;
	case NN_ACT_LEAKY_RELU:
		for (int64_t i = 0; i < len; i++)
			y[i] = z[i] > 0.0f ? z[i] : alpha * z[i];
		break;
	case NN_ACT_ELU:
		for (int64_t i = 0; i < len; i++)
			y[i] = z[i] > 0.0f ? z[i] : alpha * expm1f(z[i]);
		break;
	case NN_ACT_SIGMOID:
		for (int64_t i = 0; i < len; i++)
			y[i] = 1.0f / (1.0f + expf(-z[i]));
		break;
	case NN_ACT_TANH:
		for (int64_t i = 0; i < len; i++)
			y[i] = tanhf(z[i]);
		break;
	case NN_ACT_SOFTPLUS: /* beta 1, threshold 20 */
		for (int64_t i = 0; i < len; i++)
			y[i] = z[i] > 20.0f ? z[i] : log1pf(expf(z[i]));
		break;
	case NN_ACT_GELU:
		for (int64_t i = 0; i < len; i++)
			y[i] = 0.5f * z[i] * (1.0f + erff(z[i] * (float)M_SQRT1_2));
		break;
	}
}

void nn_act_grad_rows(nn_act a, float alpha, const float *z, const float *y, const float *g,
                      float *out, int n, int w, int add)
{
	int64_t len = (int64_t)n * w;
	/* f'(z) as a function of the index, then out = g f' (or out += g f'). */
#define ACT_LOOP(DERIV) \
	do { \
		if (add) \
			for (int64_t i = 0; i < len; i++) \
				out[i] += g[i] * (DERIV); \
		else \
			for (int64_t i = 0; i < len; i++) \
				out[i] = g[i] * (DERIV); \
	} while (0)

	switch (a) {
	case NN_ACT_IDENTITY:
		ACT_LOOP(1.0f);
		break;
	case NN_ACT_RELU:
		if (z)
			ACT_LOOP(z[i] > 0.0f ? 1.0f : 0.0f);
		else
			ACT_LOOP(y[i] > 0.0f ? 1.0f : 0.0f);
		break;
	case NN_ACT_LEAKY_RELU:
		if (z)
			ACT_LOOP(z[i] > 0.0f ? 1.0f : alpha);
		else
			ACT_LOOP(y[i] > 0.0f ? 1.0f : alpha);
		break;
	case NN_ACT_ELU:
		if (z)
			ACT_LOOP(z[i] > 0.0f ? 1.0f : alpha * expf(z[i]));
		else
			ACT_LOOP(y[i] > 0.0f ? 1.0f : y[i] + alpha);
		break;
	case NN_ACT_SIGMOID:
		ACT_LOOP(y[i] * (1.0f - y[i]));
		break;
	case NN_ACT_TANH:
		ACT_LOOP(1.0f - y[i] * y[i]);
		break;
	case NN_ACT_SOFTPLUS:
		ACT_LOOP(z[i] > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-z[i])));
		break;
	case NN_ACT_GELU:
		ACT_LOOP(0.5f * (1.0f + erff(z[i] * (float)M_SQRT1_2)) +
		         z[i] * 0.3989422804014327f * expf(-0.5f * z[i] * z[i]));
		break;
	}
#undef ACT_LOOP
}

/* The standalone layer: v[k+1] = f(v[k]); the input is kept, so backward
 * always has the pre-activation. No caches. */
static void act_forward(const nn_node *nd, int k, nn_run *r)
{
	nn_act_rows(nd->act, nd->alpha, r->v[nd->in_v], r->v[k + 1], r->n, nd->out_w);
}

static void act_backward(const nn_node *nd, int k, nn_run *r)
{
	if (!r->g[nd->in_v])
		return;
	nn_act_grad_rows(nd->act, nd->alpha, r->v[nd->in_v], r->v[k + 1], r->g[k + 1],
	                 r->g[nd->in_v], r->n, nd->out_w, nd->accum_in);
}

static int64_t no_cache0(const nn_node *nd, int max_batch)
{
	(void)nd; (void)max_batch;
	return 0;
}

static int64_t no_cache1(const nn_node *nd)
{
	(void)nd;
	return 0;
}

const nn_layer_ops nn_act_ops = { act_forward, act_backward, no_cache0, no_cache1 };
