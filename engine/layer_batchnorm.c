/*
 * layer_batchnorm.c - batch normalisation over features (PyTorch's
 * BatchNorm1d): y = gamma (x - mean) / sqrt(var + eps) + beta.
 *
 * Training: the batch mean and biased variance normalise; the running
 * statistics move by `momentum` towards the batch mean and the *unbiased*
 * batch variance (skipped for a single row, where it is undefined).
 * Inference: the running statistics normalise.
 *
 * Cache c0: xhat, n x w. Cache c1: inv_std[w], mean[w], var[w].
 */
#include <math.h>
#include <string.h>

#include "plan.h"

void nn_bn_sum(const nn_node *nd, const float *x, int n, float *sum)
{
	int w = nd->out_w;
	memset(sum, 0, sizeof(float) * (size_t)w);
	for (int i = 0; i < n; i++) {
		const float *xr = x + (int64_t)i * w;
		for (int j = 0; j < w; j++)
			sum[j] += xr[j];
	}
}

void nn_bn_sqdev(const nn_node *nd, const float *x, int n, const float *mean, float *sq)
{
	int w = nd->out_w;
	memset(sq, 0, sizeof(float) * (size_t)w);
	for (int i = 0; i < n; i++) {
		const float *xr = x + (int64_t)i * w;
		for (int j = 0; j < w; j++) {
			float d = xr[j] - mean[j];
			sq[j] += d * d;
		}
	}
}

/* y = gamma xhat + beta with xhat = (x - mean) inv, kept in c0. */
static void bn_normalize(const nn_node *nd, int k, nn_run *r, const float *mean,
                         const float *inv)
{
	const float *x = r->v[nd->in_v];
	float *y = r->v[k + 1];
	float *xhat = r->c0[k];
	const float *gamma = r->params + nd->w_off, *beta = r->params + nd->b_off;
	int n = r->n, w = nd->out_w;

	for (int i = 0; i < n; i++) {
		const float *xr = x + (int64_t)i * w;
		float *hr = xhat + (int64_t)i * w, *yr = y + (int64_t)i * w;
		for (int j = 0; j < w; j++) {
			hr[j] = (xr[j] - mean[j]) * inv[j];
			yr[j] = gamma[j] * hr[j] + beta[j];
		}
	}
}

void nn_bn_apply(const nn_node *nd, int k, nn_run *r, const float *mean, const float *var)
{
	float *inv = r->c1[k], *m = inv + nd->out_w, *v = m + nd->out_w;
	for (int j = 0; j < nd->out_w; j++) {
		m[j] = mean[j];
		v[j] = var[j];
		inv[j] = 1.0f / sqrtf(var[j] + nd->eps);
	}
	bn_normalize(nd, k, r, m, inv);
}

static void bn_forward(const nn_node *nd, int k, nn_run *r)
{
	const float *x = r->v[nd->in_v];
	float *inv = r->c1[k], *mean = inv + nd->out_w, *var = mean + nd->out_w;
	int n = r->n, w = nd->out_w;

	if (r->training) {
		nn_bn_sum(nd, x, n, mean);
		for (int j = 0; j < w; j++)
			mean[j] /= (float)n;
		nn_bn_sqdev(nd, x, n, mean, var);
		for (int j = 0; j < w; j++) {
			var[j] /= (float)n;
			inv[j] = 1.0f / sqrtf(var[j] + nd->eps);
		}
		if (r->state && n > 1) {
			float *rm = r->state + nd->rm_off, *rv = r->state + nd->rv_off;
			float m = nd->momentum, unb = (float)n / (float)(n - 1);
			for (int j = 0; j < w; j++) {
				rm[j] = (1.0f - m) * rm[j] + m * mean[j];
				rv[j] = (1.0f - m) * rv[j] + m * var[j] * unb;
			}
		}
	} else {
		const float *rm = r->state_ro + nd->rm_off, *rv = r->state_ro + nd->rv_off;
		for (int j = 0; j < w; j++) {
			mean[j] = rm[j];
			var[j] = rv[j];
			inv[j] = 1.0f / sqrtf(rv[j] + nd->eps);
		}
	}
	bn_normalize(nd, k, r, mean, inv);
}

void nn_bn_grad_sums(const nn_node *nd, int k, nn_run *r)
{
	const float *g = r->g[k + 1];
	const float *xhat = r->c0[k];
	float *dgamma = r->grads + nd->w_off, *dbeta = r->grads + nd->b_off;
	int n = r->n, w = nd->out_w;

	memset(dgamma, 0, sizeof(float) * (size_t)w);
	memset(dbeta, 0, sizeof(float) * (size_t)w);
	for (int i = 0; i < n; i++) {
		const float *gr = g + (int64_t)i * w, *hr = xhat + (int64_t)i * w;
		for (int j = 0; j < w; j++) {
			dbeta[j] += gr[j];
			dgamma[j] += gr[j] * hr[j];
		}
	}
}

void nn_bn_dx(const nn_node *nd, int k, nn_run *r, const float *dgamma, const float *dbeta,
              int total_n)
{
	const float *g = r->g[k + 1];
	const float *xhat = r->c0[k];
	const float *inv = r->c1[k];
	const float *gamma = r->params + nd->w_off;
	float *dx = r->g[nd->in_v];
	int n = r->n, w = nd->out_w;
	/* dx = gamma inv / N (N g - sum g - xhat sum(g xhat)), sums over the batch */
	float fn = (float)total_n;

	if (!dx)
		return;
	for (int i = 0; i < n; i++) {
		const float *gr = g + (int64_t)i * w, *hr = xhat + (int64_t)i * w;
		float *dr = dx + (int64_t)i * w;
		for (int j = 0; j < w; j++) {
			float d = gamma[j] * inv[j] / fn * (fn * gr[j] - dbeta[j] - hr[j] * dgamma[j]);
			dr[j] = nd->accum_in ? dr[j] + d : d;
		}
	}
}

static void bn_backward(const nn_node *nd, int k, nn_run *r)
{
	const float *g = r->g[k + 1];
	const float *inv = r->c1[k];
	const float *gamma = r->params + nd->w_off;
	float *dx = r->g[nd->in_v];
	int n = r->n, w = nd->out_w;

	nn_bn_grad_sums(nd, k, r);
	if (!dx)
		return;
	if (r->training) {
		nn_bn_dx(nd, k, r, r->grads + nd->w_off, r->grads + nd->b_off, n);
		return;
	}
	for (int i = 0; i < n; i++) {
		const float *gr = g + (int64_t)i * w;
		float *dr = dx + (int64_t)i * w;
		for (int j = 0; j < w; j++) {
			float d = gr[j] * gamma[j] * inv[j];
			dr[j] = nd->accum_in ? dr[j] + d : d;
		}
	}
}

static int64_t bn_cache0(const nn_node *nd, int max_batch)
{
	return (int64_t)max_batch * nd->out_w;
}

static int64_t bn_cache1(const nn_node *nd)
{
	return 3 * (int64_t)nd->out_w;
}

const nn_layer_ops nn_bn_ops = { bn_forward, bn_backward, bn_cache0, bn_cache1 };
