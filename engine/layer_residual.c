/*
 * layer_residual.c - the end of a residual block: out = block(x) + s(x),
 * where s is the identity or a learned projection x Wp^T (Wp [out][in], no
 * bias). The block's own layers are ordinary nodes before this one (see
 * plan.h); this node only adds the shortcut.
 *
 * Backward: the block output's gradient aliases this node's output gradient,
 * so only the shortcut is computed: g[skip] (+)= dOut (identity) or dOut Wp
 * (projection), and dWp = dOut^T x. No caches.
 */

#include "gemm.h"
#include "plan.h"

static void res_forward(const nn_node *nd, int k, nn_run *r)
{
	const float *b = r->v[nd->in_v];
	const float *x = r->v[nd->skip_v];
	float *y = r->v[k + 1];
	int64_t len = (int64_t)r->n * nd->out_w;

	if (nd->projection) {
		for (int64_t i = 0; i < len; i++)
			y[i] = b[i];
		nn_gemm(0, 1, r->n, nd->out_w, nd->in_w, x, nd->in_w, r->params + nd->w_off, nd->in_w,
		        1, y, nd->out_w);
	} else {
		for (int64_t i = 0; i < len; i++)
			y[i] = b[i] + x[i];
	}
}

static void res_backward(const nn_node *nd, int k, nn_run *r)
{
	const float *g = r->g[k + 1];
	float *dx = r->g[nd->skip_v];
	int64_t len = (int64_t)r->n * nd->out_w;

	if (nd->projection) {
		const float *x = r->v[nd->skip_v];
		nn_gemm(1, 0, nd->out_w, nd->in_w, r->n, g, nd->out_w, x, nd->in_w, 0,
		        r->grads + nd->w_off, nd->in_w);
		if (dx)
			nn_gemm(0, 0, r->n, nd->in_w, nd->out_w, g, nd->out_w, r->params + nd->w_off,
			        nd->in_w, nd->accum_skip, dx, nd->in_w);
	} else if (dx) {
		if (nd->accum_skip)
			for (int64_t i = 0; i < len; i++)
				dx[i] += g[i];
		else
			for (int64_t i = 0; i < len; i++)
				dx[i] = g[i];
	}
}

static int64_t res_cache0(const nn_node *nd, int max_batch)
{
	(void)nd; (void)max_batch;
	return 0;
}

static int64_t res_cache1(const nn_node *nd)
{
	(void)nd;
	return 0;
}

const nn_layer_ops nn_res_ops = { res_forward, res_backward, res_cache0, res_cache1 };
