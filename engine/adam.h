/*
 * adam.h - Adam's update of one weight, written once (private to the
 * engine). nn_optim_step's loop (optim.c), the fused first-layer step's
 * AVX-512 kernel (sparse_in.c, sixteen lanes at a time) and its plain twin
 * (sparse_in_plain.c) all call nn_adam_one, so the three compute the same
 * float operations in the same order.
 */
#ifndef NN_ADAM_H
#define NN_ADAM_H

#include <math.h>

/* One step's scalars, from nn_optim_adam_scalars (bias corrections in
 * double as Python computes them, used as floats). */
typedef struct nn_adam_scalars {
	float step, inv_bc2s, b1, b2, a1, a2, eps;
	float decay; /* AdamW's 1 - lr wd on W first, else 1 */
	float l2;    /* the l2 term added to W's gradient, or 0 */
} nn_adam_scalars;

/* m = m b1 + a1 g; v = v b2 + a2 g^2; returns
 * w - step m / (sqrt(v) / sqrt(bc2) + eps) (w already decayed for AdamW). */
static inline float nn_adam_one(const nn_adam_scalars *a, float w, float g, float *m, float *v)
{
	*m = *m * a->b1 + a->a1 * g;
	*v = *v * a->b2 + a->a2 * (g * g);
	float den = sqrtf(*v) * a->inv_bc2s + a->eps;
	return w - a->step * (*m / den);
}

#endif
