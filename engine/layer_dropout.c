/*
 * layer_dropout.c - dropout with rate p in two modes.
 *
 * inverted: training keeps each unit with probability 1 - p and scales the
 * kept ones by 1 / (1 - p); inference is the identity.
 * scale_at_test: training keeps with probability 1 - p, unscaled; inference
 * multiplies by 1 - p.
 * The mask is drawn from the run's generator in row-major order, one
 * nn_rng_uniform per unit, a unit being dropped when the draw is < p. With
 * p = 0 nothing is drawn.
 *
 * Cache c0: the mask as factors (0 or the keep scale), n x w.
 */
#include "plan.h"

static void dropout_forward(const nn_node *nd, int k, nn_run *r)
{
	const float *x = r->v[nd->in_v];
	float *y = r->v[k + 1];
	int64_t len = (int64_t)r->n * nd->out_w;
	float p = nd->rate;

	if (r->training && p > 0.0f) {
		float *mask = r->c0[k];
		float keep = nd->mode == NN_DROPOUT_INVERTED ? 1.0f / (1.0f - p) : 1.0f;
		for (int64_t i = 0; i < len; i++)
			mask[i] = nn_rng_uniform(r->rng) < p ? 0.0f : keep;
		for (int64_t i = 0; i < len; i++)
			y[i] = x[i] * mask[i];
	} else {
		float s = (!r->training && nd->mode == NN_DROPOUT_SCALE_AT_TEST) ? 1.0f - p : 1.0f;
		for (int64_t i = 0; i < len; i++)
			y[i] = x[i] * s;
	}
}

static void dropout_backward(const nn_node *nd, int k, nn_run *r)
{
	const float *g = r->g[k + 1];
	float *dx = r->g[nd->in_v];
	int64_t len = (int64_t)r->n * nd->out_w;
	float p = nd->rate;

	if (!dx)
		return;
	if (r->training && p > 0.0f) {
		const float *mask = r->c0[k];
		for (int64_t i = 0; i < len; i++)
			dx[i] = (nd->accum_in ? dx[i] : 0.0f) + g[i] * mask[i];
	} else {
		float s = (!r->training && nd->mode == NN_DROPOUT_SCALE_AT_TEST) ? 1.0f - p : 1.0f;
		for (int64_t i = 0; i < len; i++)
			dx[i] = (nd->accum_in ? dx[i] : 0.0f) + g[i] * s;
	}
}

static int64_t dropout_cache0(const nn_node *nd, int max_batch)
{
	return (int64_t)max_batch * nd->out_w;
}

static int64_t dropout_cache1(const nn_node *nd)
{
	(void)nd;
	return 0;
}

const nn_layer_ops nn_dropout_ops = { dropout_forward, dropout_backward, dropout_cache0,
                                      dropout_cache1 };
