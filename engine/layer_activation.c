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

/*
 * Forward kernels. F(v) is the function at v. For each activation:
 *  act_<name>: y = f(z), z read only (the activation layer; y != z);
 *  bias_<name>: per row, t = z + b (b may be NULL), then either y = f(t) in
 *  place (z == y) or z = t and y = f(t) (a dense layer that keeps z).
 * The in-place loop goes through one pointer and the other through restrict
 * pointers, so neither needs a run-time alias check to vectorise.
 */
#define FWD_KERNELS(NAME, F) \
	static void act_##NAME(const float *restrict z, float *restrict y, int64_t len, \
	                       float alpha) \
	{ \
		(void)alpha; \
		for (int64_t i = 0; i < len; i++) { \
			float v = z[i]; \
			y[i] = F(v); \
		} \
	} \
	static void bias_##NAME(float *z, const float *b, float *y, int n, int w, float alpha) \
	{ \
		(void)alpha; \
		for (int r = 0; r < n; r++) { \
			float *zr = z + (int64_t)r * w, *yr = y + (int64_t)r * w; \
			if (zr == yr) { \
				if (b) \
					for (int j = 0; j < w; j++) { \
						float v = zr[j] + b[j]; \
						zr[j] = F(v); \
					} \
				else \
					for (int j = 0; j < w; j++) { \
						float v = zr[j]; \
						zr[j] = F(v); \
					} \
			} else { \
				float *restrict zz = zr, *restrict yy = yr; \
				if (b) \
					for (int j = 0; j < w; j++) { \
						float v = zz[j] + b[j]; \
						zz[j] = v; \
						yy[j] = F(v); \
					} \
				else \
					for (int j = 0; j < w; j++) { \
						float v = zz[j]; \
						yy[j] = F(v); \
					} \
			} \
		} \
	}

#define F_IDENTITY(v) (v)
#define F_RELU(v) ((v) > 0.0f ? (v) : 0.0f)
#define F_LEAKY(v) ((v) > 0.0f ? (v) : alpha * (v))
#define F_ELU(v) ((v) > 0.0f ? (v) : alpha * expm1f(v))
#define F_SIGMOID(v) (1.0f / (1.0f + expf(-(v))))
#define F_TANH(v) tanhf(v)
#define F_SOFTPLUS(v) ((v) > 20.0f ? (v) : log1pf(expf(v))) /* beta 1, threshold 20 */
#define F_GELU(v) (0.5f * (v) * (1.0f + erff((v) * (float)M_SQRT1_2)))

FWD_KERNELS(identity, F_IDENTITY)
FWD_KERNELS(relu, F_RELU)
FWD_KERNELS(leaky, F_LEAKY)
FWD_KERNELS(elu, F_ELU)
FWD_KERNELS(sigmoid, F_SIGMOID)
FWD_KERNELS(tanh, F_TANH)
FWD_KERNELS(softplus, F_SOFTPLUS)
FWD_KERNELS(gelu, F_GELU)

typedef struct fwd_pair {
	void (*act)(const float *restrict z, float *restrict y, int64_t len, float alpha);
	void (*bias)(float *z, const float *b, float *y, int n, int w, float alpha);
} fwd_pair;

static const fwd_pair fwd[] = {
	[NN_ACT_IDENTITY] = { act_identity, bias_identity },
	[NN_ACT_RELU] = { act_relu, bias_relu },
	[NN_ACT_LEAKY_RELU] = { act_leaky, bias_leaky },
	[NN_ACT_ELU] = { act_elu, bias_elu },
	[NN_ACT_SIGMOID] = { act_sigmoid, bias_sigmoid },
	[NN_ACT_TANH] = { act_tanh, bias_tanh },
	[NN_ACT_SOFTPLUS] = { act_softplus, bias_softplus },
	[NN_ACT_GELU] = { act_gelu, bias_gelu },
};

void nn_act_rows(nn_act a, float alpha, const float *z, float *y, int n, int w)
{
	if (z == y)
		fwd[a].bias(y, NULL, y, n, w, alpha); /* in place */
	else
		fwd[a].act(z, y, (int64_t)n * w, alpha);
}

void nn_act_bias_rows(nn_act a, float alpha, float *z, const float *b, float *y, int n, int w)
{
	if (a == NN_ACT_IDENTITY && !b && z == y)
		return;
	fwd[a].bias(z, b, y, n, w, alpha);
}

/*
 * Gradient kernels: out = g * f'(z) (or out += when add). One function per
 * derivative form, written so the loops vectorise: z and y are restrict
 * (never written here), and the in-place case (out == g, the dense layer's)
 * gets its own loop. Selections (relu family) use a select rather than a
 * multiply by 0/1, like PyTorch, so an infinite gradient is not turned into
 * NaN where the unit is off. D(G) is the result for incoming gradient G.
 */
#define GRAD_KERNEL(NAME, D) \
	static void NAME(const float *restrict z, const float *restrict y, const float *g, \
	                 float *out, int64_t len, float alpha, int add) \
	{ \
		(void)z; (void)y; (void)alpha; \
		if (out == g) { \
			for (int64_t i = 0; i < len; i++) { \
				float gv = out[i]; \
				out[i] = D(gv); \
			} \
		} else { \
			const float *restrict gr = g; \
			float *restrict o = out; \
			if (add) \
				for (int64_t i = 0; i < len; i++) { \
					float gv = gr[i]; \
					o[i] += D(gv); \
				} \
			else \
				for (int64_t i = 0; i < len; i++) { \
					float gv = gr[i]; \
					o[i] = D(gv); \
				} \
		} \
	}

#define D_IDENTITY(G) (G)
#define D_RELU_Z(G) (z[i] > 0.0f ? (G) : 0.0f)
#define D_RELU_Y(G) (y[i] > 0.0f ? (G) : 0.0f)
#define D_LEAKY_Z(G) (z[i] > 0.0f ? (G) : (G) * alpha)
#define D_LEAKY_Y(G) (y[i] > 0.0f ? (G) : (G) * alpha)
#define D_ELU_Z(G) (z[i] > 0.0f ? (G) : (G) * (alpha * expf(z[i])))
#define D_ELU_Y(G) (y[i] > 0.0f ? (G) : (G) * (y[i] + alpha))
#define D_SIGMOID(G) ((G) * (y[i] * (1.0f - y[i])))
#define D_TANH(G) ((G) * (1.0f - y[i] * y[i]))
#define D_SOFTPLUS(G) (z[i] > 20.0f ? (G) : (G) * (1.0f / (1.0f + expf(-z[i]))))
#define D_GELU(G) ((G) * (0.5f * (1.0f + erff(z[i] * (float)M_SQRT1_2)) + \
                          z[i] * 0.3989422804014327f * expf(-0.5f * z[i] * z[i])))

GRAD_KERNEL(grad_identity, D_IDENTITY)
GRAD_KERNEL(grad_relu_z, D_RELU_Z)
GRAD_KERNEL(grad_relu_y, D_RELU_Y)
GRAD_KERNEL(grad_leaky_z, D_LEAKY_Z)
GRAD_KERNEL(grad_leaky_y, D_LEAKY_Y)
GRAD_KERNEL(grad_elu_z, D_ELU_Z)
GRAD_KERNEL(grad_elu_y, D_ELU_Y)
GRAD_KERNEL(grad_sigmoid, D_SIGMOID)
GRAD_KERNEL(grad_tanh, D_TANH)
GRAD_KERNEL(grad_softplus, D_SOFTPLUS)
GRAD_KERNEL(grad_gelu, D_GELU)

void nn_act_grad_rows(nn_act a, float alpha, const float *z, const float *y, const float *g,
                      float *out, int n, int w, int add)
{
	int64_t len = (int64_t)n * w;

	switch (a) {
	case NN_ACT_IDENTITY:
		grad_identity(z, y, g, out, len, alpha, add);
		break;
	case NN_ACT_RELU:
		(z ? grad_relu_z : grad_relu_y)(z, y, g, out, len, alpha, add);
		break;
	case NN_ACT_LEAKY_RELU:
		(z ? grad_leaky_z : grad_leaky_y)(z, y, g, out, len, alpha, add);
		break;
	case NN_ACT_ELU:
		(z ? grad_elu_z : grad_elu_y)(z, y, g, out, len, alpha, add);
		break;
	case NN_ACT_SIGMOID:
		grad_sigmoid(z, y, g, out, len, alpha, add);
		break;
	case NN_ACT_TANH:
		grad_tanh(z, y, g, out, len, alpha, add);
		break;
	case NN_ACT_SOFTPLUS:
		grad_softplus(z, y, g, out, len, alpha, add);
		break;
	case NN_ACT_GELU:
		grad_gelu(z, y, g, out, len, alpha, add);
		break;
	}
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
