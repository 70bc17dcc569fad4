/*
 * optim.c - every optimizer in one function, nn_optim_step, with PyTorch
 * 1.13's update rules, defaults and order of float operations (so float32
 * runs track torch.optim step for step), and nn_optimizer_default.
 *
 * The caller passes gradients that already hold the l2 term and clipping;
 * all parameters live in one flat block, so a step is one loop per rule.
 */
#include <math.h>
#include "trainer.h"
#include "sparse_in.h"

nn_optimizer nn_optimizer_default(nn_opt_type t)
{
	nn_optimizer o = {0};
	o.type = t;
	o.lr = 0.01f;
	o.momentum = 0.9f;
	o.beta1 = 0.9f;
	o.beta2 = 0.999f;
	o.rho = 0.99f;
	o.weight_decay = 0.01f;
	o.eps = t == NN_OPT_ADAGRAD ? 1e-10f : 1e-8f;
	if (t == NN_OPT_ADAM || t == NN_OPT_ADAMW)
		o.lr = 0.001f;
	return o;
}

int nn_optim_buffers(nn_opt_type t)
{
	switch (t) {
	case NN_OPT_SGD:
		return 0;
	case NN_OPT_MOMENTUM:
	case NN_OPT_NESTEROV:
	case NN_OPT_ADAGRAD:
	case NN_OPT_RMSPROP:
		return 1;
	case NN_OPT_ADAM:
	case NN_OPT_ADAMW:
		return 2;
	}
	return 0;
}

/* Bias corrections in double as Python computes them, then used as float
 * scalars: denom = sqrt(v) / sqrt(bc2) + eps; p -= (lr / bc1) m / denom.
 * One division per element instead of two: sqrt(v) / bc2s becomes a
 * multiply by the reciprocal (at most one ulp away from torch's quotient,
 * within the reference tolerance). AdamW first decays the dense weights
 * (only those, like l2; the reference cases do the same) by 1 - lr wd.
 * The loop below and the fused first-layer step (sparse_in.c) both take
 * their scalars from here, so they compute the same numbers. */
void nn_optim_adam_scalars(const nn_optimizer *o, float lr, int64_t t, nn_adam_scalars *a)
{
	double b1 = o->beta1, b2 = o->beta2;
	double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
	a->step = (float)((double)lr / bc1);
	a->inv_bc2s = 1.0f / (float)sqrt(bc2);
	a->b1 = o->beta1;
	a->b2 = o->beta2;
	a->a1 = (float)(1.0 - b1);
	a->a2 = (float)(1.0 - b2);
	a->eps = o->eps;
	a->decay = o->type == NN_OPT_ADAMW ? (float)(1.0 - (double)lr * (double)o->weight_decay)
	                                   : 1.0f;
	a->l2 = 0.0f;
}

NN_HOT
void nn_optim_step(const nn_optimizer *o, float lr, int64_t t, float *restrict p,
                   const float *restrict g, float *restrict s1, float *restrict s2, int64_t n,
                   int n_wr, const int64_t *wr_off, const int64_t *wr_len)
{
	int64_t i;

	switch (o->type) {
	case NN_OPT_SGD:
		for (i = 0; i < n; i++)
			p[i] -= lr * g[i];
		break;
	case NN_OPT_MOMENTUM:
	case NN_OPT_NESTEROV: {
		/* torch.optim.SGD, dampening 0: buf = g on the first step, then
		 * buf = mu buf + g. With buf starting at zero, mu*0 + g == g
		 * exactly, so one loop covers both. */
		float mu = o->momentum;
		if (o->type == NN_OPT_MOMENTUM) {
			for (i = 0; i < n; i++) {
				s1[i] = s1[i] * mu + g[i];
				p[i] -= lr * s1[i];
			}
		} else {
			for (i = 0; i < n; i++) {
				s1[i] = s1[i] * mu + g[i];
				p[i] -= lr * (g[i] + mu * s1[i]);
			}
		}
		break;
	}
	case NN_OPT_ADAGRAD: {
		/* lr_decay 0, initial accumulator 0: sum += g^2; p -= lr g / (sqrt(sum) + eps) */
		float eps = o->eps;
		for (i = 0; i < n; i++) {
			s1[i] += g[i] * g[i];
			p[i] -= lr * (g[i] / (sqrtf(s1[i]) + eps));
		}
		break;
	}
	case NN_OPT_RMSPROP: {
		/* sq = rho sq + (1 - rho) g^2; p -= lr g / (sqrt(sq) + eps), eps outside */
		float rho = o->rho, one_rho = (float)(1.0 - (double)o->rho), eps = o->eps;
		for (i = 0; i < n; i++) {
			s1[i] = s1[i] * rho + one_rho * (g[i] * g[i]);
			p[i] -= lr * (g[i] / (sqrtf(s1[i]) + eps));
		}
		break;
	}
	case NN_OPT_ADAM:
	case NN_OPT_ADAMW: {
		/* Bias corrections in double as Python computes them, then used as
		 * float scalars: denom = sqrt(v) / sqrt(bc2) + eps;
		 * p -= (lr / bc1) m / denom. AdamW first decays the dense weights
		 * (only those, like l2; the reference cases do the same) by
		 * 1 - lr wd. */
		nn_adam_scalars sc;
		nn_optim_adam_scalars(o, lr, t, &sc);
		if (o->type == NN_OPT_ADAMW) {
			const float decay = sc.decay;
			for (int r = 0; r < n_wr; r++) {
				float *w = p + wr_off[r];
				for (i = 0; i < wr_len[r]; i++)
					w[i] *= decay;
			}
		}
		for (i = 0; i < n; i++)
			p[i] = nn_adam_one(&sc, p[i], g[i], &s1[i], &s2[i]);
		break;
	}
	}
}
