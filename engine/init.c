/*
 * init.c - weight initialisation. Every scheme draws from one nn_rng seeded
 * with the model's seed, tensor by tensor in the tensor table's order, so the
 * same seed gives the same weights bit for bit. Biases and beta start at 0,
 * gamma at 1, running means at 0 and running variances at 1.
 */
#include <math.h>
#include <string.h>

#include "plan.h"

static void fill_normal(float *w, int64_t n, double std, nn_rng *rng)
{
	for (int64_t i = 0; i < n; i++)
		w[i] = (float)(std * nn_rng_normal(rng));
}

static void fill_uniform(float *w, int64_t n, double limit, nn_rng *rng)
{
	for (int64_t i = 0; i < n; i++)
		w[i] = (float)(limit * (2.0 * nn_rng_uniform(rng) - 1.0));
}

void nn_init_fill(float *w, int64_t n, nn_init init, float param, int fan_in, int fan_out,
                  nn_rng *rng)
{
	double fi = fan_in > 0 ? fan_in : 1, fo = fan_out > 0 ? fan_out : 1;

	switch (init) {
	case NN_INIT_ZEROS:
		memset(w, 0, sizeof(float) * (size_t)n);
		break;
	case NN_INIT_NORMAL:
		fill_normal(w, n, param > 0 ? param : 0.01, rng);
		break;
	case NN_INIT_UNIFORM:
		fill_uniform(w, n, param > 0 ? param : 0.05, rng);
		break;
	case NN_INIT_AUTO: /* callers resolve auto; LeCun is the neutral choice */
	case NN_INIT_LECUN_NORMAL:
		fill_normal(w, n, sqrt(1.0 / fi), rng);
		break;
	case NN_INIT_LECUN_UNIFORM:
		fill_uniform(w, n, sqrt(3.0 / fi), rng);
		break;
	case NN_INIT_HE_NORMAL:
		fill_normal(w, n, sqrt(2.0 / fi), rng);
		break;
	case NN_INIT_HE_UNIFORM:
		fill_uniform(w, n, sqrt(6.0 / fi), rng);
		break;
	case NN_INIT_XAVIER_NORMAL:
		fill_normal(w, n, sqrt(2.0 / (fi + fo)), rng);
		break;
	case NN_INIT_XAVIER_UNIFORM:
		fill_uniform(w, n, sqrt(6.0 / (fi + fo)), rng);
		break;
	}
}

void nn_model_init(nn_model *m, uint64_t seed)
{
	const struct nn_impl *p;
	nn_rng rng;

	if (!m)
		return;
	p = m->impl;
	nn_rng_seed(&rng, seed);
	memset(m->params, 0, sizeof(float) * (size_t)m->n_params);
	for (int k = 0; k < p->n_nodes; k++) {
		const nn_node *nd = &p->nodes[k];
		int w = nd->out_w;
		switch (nd->kind) {
		case NN_NODE_DENSE:
			nn_init_fill(m->params + nd->w_off, (int64_t)nd->out_w * nd->in_w, nd->init,
			             nd->init_param, nd->in_w, nd->out_w, &rng);
			break;
		case NN_NODE_RES_END:
			if (nd->projection)
				nn_init_fill(m->params + nd->w_off, (int64_t)nd->out_w * nd->in_w, nd->init,
				             nd->init_param, nd->in_w, nd->out_w, &rng);
			break;
		case NN_NODE_BN:
			for (int j = 0; j < w; j++) {
				m->params[nd->w_off + j] = 1.0f;
				m->state[nd->rm_off + j] = 0.0f;
				m->state[nd->rv_off + j] = 1.0f;
			}
			break;
		default:
			break;
		}
	}
}
