/*
 * layer_dense.c - the fully connected layer y = f(x W^T + b), W [out][in] as
 * PyTorch's nn.Linear.weight, and its backward pass.
 *
 * Forward: the bias rows copied into the output (or into the pre-activation
 * cache when the activation's derivative needs z), one sgemm accumulating
 * onto them, then the activation in one pass (none for identity in place). Backward: the activation derivative is applied to the incoming
 * gradient in place, the bias gradient summed in the same sweep, then two
 * sgemms with transposes (no copies): dW = dZ^T X and dX = dZ W. The first
 * layer skips dX (nobody needs the gradient of the input).
 *
 * In training steps the trainer may hand a dense node sparse-input buffers
 * (sparse_in.h): node 0 gets the batch's non-zero bytes of image data; a
 * hidden layer fed by a ReLU compresses its input itself and, when at most
 * nn_tune.sparse_max_density of it is non-zero, its forward product and weight
 * gradient skip the zeros. The input gradient stays one sgemm.
 *
 * Cache c0: z, n x out floats, only when store_z.
 */
#include <string.h>

#include "gemm.h"
#include "plan.h"
#include "row_pack.h"
#include "sparse_in.h"
#include "trainer.h"
#include "tune.h"

static void dense_forward(const nn_node *nd, int k, nn_run *r)
{
	const float *x = r->v[nd->in_v];
	const float *W = r->params + nd->w_off;
	float *y = r->v[k + 1];
	float *z = nd->store_z ? r->c0[k] : y;
	int n = r->n, in = nd->in_w, out = nd->out_w;

	int beta = 0;

	nn_sparse_in *sp = r->sp ? r->sp[k] : NULL;
	if (sp && k > 0) {
		/* a hidden layer after a ReLU: its input's non-zeros, this step */
		nn_sparse_in_begin(sp);
		for (int i = 0; i < n; i++)
			nn_sparse_in_add_row_f32(sp, x + (int64_t)i * in);
		if (nn_sparse_in_density(sp) <= nn_tune.sparse_max_density) {
			nn_sparse_in_weights(sp, W, nd->has_bias ? r->params + nd->b_off : NULL, NULL,
			                     NULL);
			NN_TEST_COUNT(sparse_hidden_steps);
		}
	}
	if (sp && nn_sparse_in_active(sp)) {
		/* node 0: the trainer's batch, standardisation folded in */
		nn_sparse_in_forward(sp, z);
		nn_act_bias_rows(nd->act, nd->alpha, z, NULL, y, n, out);
		return;
	}
	const nn_row_pack *rp = r->rowp ? r->rowp[k] : NULL;
	if (rp) {
		/* one prediction row, or a few (plan.h): weights packed once, no
		 * sgemm packing, each row the bits it gets alone */
		nn_row_product_rows(rp, x, in, n, z, out);
		NN_TEST_COUNT(row_predictions);
		nn_act_bias_rows(nd->act, nd->alpha, z, NULL, y, n, out);
		return;
	}
	/* With a bias, z starts as the bias rows and the sgemm accumulates into
	 * them (beta 1), like torch's addmm: no zeroing pass, no bias pass. */
	if (nd->has_bias) {
		const float *b = r->params + nd->b_off;
		for (int i = 0; i < n; i++)
			memcpy(z + (int64_t)i * out, b, sizeof(float) * (size_t)out);
		beta = 1;
	}
	nn_gemm(0, 1, n, out, in, x, in, W, in, beta, z, out);
	nn_act_bias_rows(nd->act, nd->alpha, z, NULL, y, n, out);
}

static void dense_backward(const nn_node *nd, int k, nn_run *r)
{
	const float *x = r->v[nd->in_v];
	const float *W = r->params + nd->w_off;
	const float *y = r->v[k + 1];
	const float *z = nd->store_z ? r->c0[k] : NULL;
	float *g = r->g[k + 1];
	float *dx = r->g[nd->in_v];
	int n = r->n, in = nd->in_w, out = nd->out_w;

	/* dZ = dY * f'(z), in place, row by row with the bias sum. */
	if (nd->has_bias) {
		float *db = r->grads + nd->b_off;
		memset(db, 0, sizeof(float) * (size_t)out);
		for (int i = 0; i < n; i++) {
			int64_t o = (int64_t)i * out;
			float *gr = g + o;
			if (nd->act != NN_ACT_IDENTITY)
				nn_act_grad_rows(nd->act, nd->alpha, z ? z + o : NULL, y + o, gr, gr, 1,
				                 out, 0);
			for (int j = 0; j < out; j++)
				db[j] += gr[j];
		}
	} else if (nd->act != NN_ACT_IDENTITY) {
		nn_act_grad_rows(nd->act, nd->alpha, z, y, g, g, n, out, 0);
	}
	nn_sparse_in *sp = r->sp ? r->sp[k] : NULL;
	if (sp && nn_sparse_in_active(sp))
		nn_sparse_in_grad(sp, g, nd->has_bias ? r->grads + nd->b_off : NULL,
		                  r->grads + nd->w_off);
	else
		nn_gemm(1, 0, out, in, n, g, out, x, in, 0, r->grads + nd->w_off, in);
	if (dx)
		nn_gemm(0, 0, n, in, out, g, out, W, in, nd->accum_in, dx, in);
}

static int64_t dense_cache0(const nn_node *nd, int max_batch)
{
	return nd->store_z ? (int64_t)max_batch * nd->out_w : 0;
}

static int64_t dense_cache1(const nn_node *nd)
{
	(void)nd;
	return 0;
}

const nn_layer_ops nn_dense_ops = { dense_forward, dense_backward, dense_cache0, dense_cache1 };
