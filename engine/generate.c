/*
 * generate.c - data sets drawn from the seed's function classes (nn.h,
 * "generated data"): Y = f*(X) + noise, X uniform on [0,1]^p.
 *
 * Every random draw of f* comes from one generator seeded with
 * function_seed, in a fixed order, so the same seed gives the same f*.
 * X comes from a generator seeded with sample_seed (rows x inputs uniforms,
 * row-major), the noise from a second one seeded with sample_seed mixed
 * with a constant: X depends only on sample_seed, inputs and rows, and
 * noise_std only scales the noise. f* is evaluated in double precision.
 *
 * The smooth component of smoothness alpha, on [0,1]:
 *   g(t) = sqrt(2 / S) * sum_{k=1..K} z_k k^-(alpha + 1/2) cos(pi k t),
 *   S = sum_{k=1..K} k^-(2 alpha + 1), z_k ~ N(0,1), K = 64,
 * so its cosine coefficients decay like k^-(alpha+1/2) and, for t uniform,
 * E g(t)^2 = 1 on average over the z_k. The classes (README states them):
 *   linear:          f(x) = sum_j w_j x_j + b,  w_j, b ~ N(0,1)
 *   additive:        f(x) = p^-1/2 sum_j g_j(x_j)
 *   tensor_product:  f(x) = terms^-1/2 sum_m prod_j g_mj(x_j)
 *   composition:     q+1 levels; levels 0..q-1 have p outputs, level q one;
 *                    output i of a level reads `arity` distinct outputs
 *                    u_1..u_t of the level before (the inputs for level 0)
 *                    and is h(u) = (t^-1/2 sum_m g_m(u_m) + prod_m g'_m(u_m))
 *                    / sqrt 2, squashed by the logistic function into (0,1)
 *                    on every level but the last.
 *   teacher:         a ReLU network p -> width (x depth) -> 1 whose `nonzero`
 *                    dense weights (positions uniform over all of them) are
 *                    N(0, 2 / n_row) with n_row the nonzeros of their row,
 *                    biases U(-0.1, 0.1).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define GEN_K 64
#define NOISE_MIX 0xD1B54A32D192ED03ull

typedef struct comp {
	double c[GEN_K];        /* sqrt(2/S) z_k k^-(alpha+1/2) */
} comp;

/* One output of a composition level: arity inputs, two component sets. */
typedef struct node {
	int *in;
	comp *g, *h;
} node;

struct nn_gen_fn {
	nn_gen_spec s;
	double *w;              /* linear: p weights then the bias */
	comp *g;                /* additive: p; tensor: terms x p */
	node *nodes;            /* composition: level-major, (q) x p + 1 */
	int n_nodes;
	/* teacher: layer l maps dims[l] -> dims[l+1], weights [out][in] */
	double **tw, **tb;
	int *dims;
	int n_layers;
	double *buf_a, *buf_b;  /* widest layer, for evaluation */
};

static double gauss(nn_rng *r)
{
	return (double)nn_rng_normal(r);
}

static void comp_draw(comp *c, double alpha, nn_rng *r)
{
	double s = 0;
	for (int k = 1; k <= GEN_K; k++)
		s += pow(k, -(2 * alpha + 1));
	double scale = sqrt(2.0 / s);
	for (int k = 1; k <= GEN_K; k++)
		c->c[k - 1] = scale * gauss(r) * pow(k, -(alpha + 0.5));
}

static double comp_eval(const comp *c, double t)
{
	/* cos(pi k t) by the recurrence cos((k+1)a) = 2 cos a cos(ka) - cos((k-1)a) */
	double a = cos(M_PI * t), prev = 1, cur = a, sum = 0;
	for (int k = 1; k <= GEN_K; k++) {
		sum += c->c[k - 1] * cur;
		double next = 2 * a * cur - prev;
		prev = cur;
		cur = next;
	}
	return sum;
}

nn_gen_spec nn_gen_default(nn_gen_function f)
{
	nn_gen_spec s;
	memset(&s, 0, sizeof s);
	s.function = f;
	s.inputs = 10;
	s.rows = 1000;
	s.smoothness = 2.0;
	s.noise_std = 0.1;
	s.function_seed = 1;
	s.sample_seed = 2;
	s.terms = 3;
	s.depth = f == NN_GEN_TEACHER ? 3 : 2;
	s.arity = 2;
	s.width = 32;
	s.nonzero = 200;
	return s;
}

static int64_t teacher_weights(const nn_gen_spec *s)
{
	int64_t n = (int64_t)s->inputs * s->width;
	n += (int64_t)(s->depth - 1) * s->width * s->width;
	return n + s->width;
}

nn_status nn_gen_check(const nn_gen_spec *s, char *err, size_t errlen)
{
	if (s->inputs < 1 || s->inputs > 10000)
		return nn_errf(err, errlen, "generator.inputs: must be in [1, 10000]"), NN_EINVAL;
	if (s->rows < 1 || s->rows > 10000000)
		return nn_errf(err, errlen, "generator.rows: must be in [1, 10000000]"), NN_EINVAL;
	if (!(s->noise_std >= 0) || !isfinite(s->noise_std))
		return nn_errf(err, errlen, "generator.noise_std: must be a finite number >= 0"),
		       NN_EINVAL;
	if (!(s->smoothness > 0 && s->smoothness <= 20))
		return nn_errf(err, errlen, "generator.smoothness: must be in (0, 20]"), NN_EINVAL;
	switch (s->function) {
	case NN_GEN_TENSOR:
		if (s->terms < 1 || s->terms > 100)
			return nn_errf(err, errlen, "generator.terms: must be in [1, 100]"), NN_EINVAL;
		break;
	case NN_GEN_COMPOSITION:
		if (s->depth < 1 || s->depth > 10)
			return nn_errf(err, errlen, "generator.depth: must be in [1, 10]"), NN_EINVAL;
		if (s->arity < 1 || s->arity > s->inputs)
			return nn_errf(err, errlen, "generator.arity: must be in [1, inputs]"), NN_EINVAL;
		break;
	case NN_GEN_TEACHER:
		if (s->depth < 1 || s->depth > 10)
			return nn_errf(err, errlen, "generator.depth: must be in [1, 10]"), NN_EINVAL;
		if (s->width < 1 || s->width > 4096)
			return nn_errf(err, errlen, "generator.width: must be in [1, 4096]"), NN_EINVAL;
		if (s->nonzero < 1 || s->nonzero > teacher_weights(s))
			return nn_errf(err, errlen, "generator.nonzero: must be in [1, %lld] (the "
			               "network's weights)", (long long)teacher_weights(s)), NN_EINVAL;
		break;
	default:
		break;
	}
	return NN_OK;
}

double nn_gen_rate_exponent(const nn_gen_spec *s, int *known)
{
	double a = s->smoothness;
	*known = 1;
	switch (s->function) {
	case NN_GEN_LINEAR:
		return -1;
	case NN_GEN_ADDITIVE:
	case NN_GEN_TENSOR:
		return -2 * a / (2 * a + 1);
	case NN_GEN_COMPOSITION: {
		double best = -INFINITY;
		for (int i = 0; i <= s->depth; i++) {
			double b = a * pow(a < 1 ? a : 1, s->depth - i);
			double r = -2 * b / (2 * b + s->arity);
			if (r > best)
				best = r;
		}
		return best;
	}
	default:
		*known = 0;
		return 0;
	}
}

void nn_gen_fn_free(nn_gen_fn *f)
{
	if (!f)
		return;
	free(f->w);
	free(f->g);
	for (int i = 0; f->nodes && i < f->n_nodes; i++) {
		free(f->nodes[i].in);
		free(f->nodes[i].g);
		free(f->nodes[i].h);
	}
	free(f->nodes);
	for (int l = 0; l < f->n_layers; l++) {
		free(f->tw ? f->tw[l] : NULL);
		free(f->tb ? f->tb[l] : NULL);
	}
	free(f->tw);
	free(f->tb);
	free(f->dims);
	free(f->buf_a);
	free(f->buf_b);
	free(f);
}

static int draw_composition(nn_gen_fn *f, nn_rng *r)
{
	const nn_gen_spec *s = &f->s;
	int p = s->inputs, t = s->arity;
	f->n_nodes = s->depth * p + 1;
	f->nodes = calloc((size_t)f->n_nodes, sizeof *f->nodes);
	int *pool = malloc(sizeof(int) * (size_t)p);
	if (!f->nodes || !pool) {
		free(pool);
		return -1;
	}
	for (int i = 0; i < f->n_nodes; i++) {
		node *nd = &f->nodes[i];
		nd->in = malloc(sizeof(int) * (size_t)t);
		nd->g = malloc(sizeof(comp) * (size_t)t);
		nd->h = malloc(sizeof(comp) * (size_t)t);
		if (!nd->in || !nd->g || !nd->h) {
			free(pool);
			return -1;
		}
		/* arity distinct inputs: a partial Fisher-Yates shuffle */
		for (int j = 0; j < p; j++)
			pool[j] = j;
		for (int m = 0; m < t; m++) {
			int k = m + (int)nn_rng_below(r, (uint64_t)(p - m));
			int tmp = pool[m];
			pool[m] = pool[k];
			pool[k] = tmp;
			nd->in[m] = pool[m];
		}
		for (int m = 0; m < t; m++) {
			comp_draw(&nd->g[m], s->smoothness, r);
			comp_draw(&nd->h[m], s->smoothness, r);
		}
	}
	free(pool);
	f->buf_a = malloc(sizeof(double) * (size_t)p);
	f->buf_b = malloc(sizeof(double) * (size_t)p);
	return f->buf_a && f->buf_b ? 0 : -1;
}

static int draw_teacher(nn_gen_fn *f, nn_rng *r)
{
	const nn_gen_spec *s = &f->s;
	f->n_layers = s->depth + 1;
	f->dims = malloc(sizeof(int) * (size_t)(f->n_layers + 1));
	f->tw = calloc((size_t)f->n_layers, sizeof(double *));
	f->tb = calloc((size_t)f->n_layers, sizeof(double *));
	int64_t total = teacher_weights(s);
	int64_t *pos = malloc(sizeof(int64_t) * (size_t)total);
	if (!f->dims || !f->tw || !f->tb || !pos) {
		free(pos);
		return -1;
	}
	f->dims[0] = s->inputs;
	for (int l = 1; l < f->n_layers; l++)
		f->dims[l] = s->width;
	f->dims[f->n_layers] = 1;
	int widest = s->inputs > s->width ? s->inputs : s->width;
	for (int l = 0; l < f->n_layers; l++) {
		f->tw[l] = calloc((size_t)f->dims[l] * (size_t)f->dims[l + 1], sizeof(double));
		f->tb[l] = calloc((size_t)f->dims[l + 1], sizeof(double));
		if (!f->tw[l] || !f->tb[l]) {
			free(pos);
			return -1;
		}
	}
	/* which weights are nonzero: the first `nonzero` of a partial shuffle
	 * of all positions (layer after layer, row-major) */
	for (int64_t i = 0; i < total; i++)
		pos[i] = i;
	for (int64_t i = 0; i < s->nonzero; i++) {
		int64_t k = i + (int64_t)nn_rng_below(r, (uint64_t)(total - i));
		int64_t tmp = pos[i];
		pos[i] = pos[k];
		pos[k] = tmp;
	}
	/* mark them with 1, count per row, then draw values in position order */
	for (int64_t i = 0; i < s->nonzero; i++) {
		int64_t q = pos[i];
		int l = 0;
		while (q >= (int64_t)f->dims[l] * f->dims[l + 1]) {
			q -= (int64_t)f->dims[l] * f->dims[l + 1];
			l++;
		}
		f->tw[l][q] = 1;
	}
	free(pos);
	for (int l = 0; l < f->n_layers; l++) {
		int in = f->dims[l], out = f->dims[l + 1];
		for (int o = 0; o < out; o++) {
			int nz = 0;
			for (int i = 0; i < in; i++)
				nz += f->tw[l][(size_t)o * in + i] != 0;
			double sd = sqrt(2.0 / (nz > 0 ? nz : 1));
			for (int i = 0; i < in; i++)
				if (f->tw[l][(size_t)o * in + i] != 0)
					f->tw[l][(size_t)o * in + i] = sd * gauss(r);
			f->tb[l][o] = 0.2 * ((double)nn_rng_uniform(r) - 0.5);
		}
	}
	f->buf_a = malloc(sizeof(double) * (size_t)widest);
	f->buf_b = malloc(sizeof(double) * (size_t)widest);
	return f->buf_a && f->buf_b ? 0 : -1;
}

nn_gen_fn *nn_gen_fn_create(const nn_gen_spec *s, char *err, size_t errlen)
{
	if (nn_gen_check(s, err, errlen) != NN_OK)
		return NULL;
	nn_gen_fn *f = calloc(1, sizeof *f);
	if (!f) {
		nn_errf(err, errlen, "out of memory");
		return NULL;
	}
	f->s = *s;
	nn_rng r;
	nn_rng_seed(&r, s->function_seed);
	int p = s->inputs, rc = 0;
	switch (s->function) {
	case NN_GEN_LINEAR:
		f->w = malloc(sizeof(double) * (size_t)(p + 1));
		if (!f->w)
			rc = -1;
		for (int j = 0; !rc && j <= p; j++)
			f->w[j] = gauss(&r);
		break;
	case NN_GEN_ADDITIVE:
	case NN_GEN_TENSOR: {
		int n = (s->function == NN_GEN_TENSOR ? s->terms : 1) * p;
		f->g = malloc(sizeof(comp) * (size_t)n);
		if (!f->g)
			rc = -1;
		for (int i = 0; !rc && i < n; i++)
			comp_draw(&f->g[i], s->smoothness, &r);
		break;
	}
	case NN_GEN_COMPOSITION:
		rc = draw_composition(f, &r);
		break;
	case NN_GEN_TEACHER:
		rc = draw_teacher(f, &r);
		break;
	}
	if (rc) {
		nn_gen_fn_free(f);
		nn_errf(err, errlen, "out of memory");
		return NULL;
	}
	return f;
}

static double node_eval(const node *nd, int t, const double *u)
{
	double sum = 0, prod = 1;
	for (int m = 0; m < t; m++) {
		sum += comp_eval(&nd->g[m], u[nd->in[m]]);
		prod *= comp_eval(&nd->h[m], u[nd->in[m]]);
	}
	return (sum / sqrt((double)t) + prod) / M_SQRT2;
}

double nn_gen_fn_eval(nn_gen_fn *f, const float *x)
{
	const nn_gen_spec *s = &f->s;
	int p = s->inputs;
	double v = 0;
	switch (s->function) {
	case NN_GEN_LINEAR:
		v = f->w[p];
		for (int j = 0; j < p; j++)
			v += f->w[j] * x[j];
		return v;
	case NN_GEN_ADDITIVE:
		for (int j = 0; j < p; j++)
			v += comp_eval(&f->g[j], x[j]);
		return v / sqrt((double)p);
	case NN_GEN_TENSOR:
		for (int m = 0; m < s->terms; m++) {
			double pr = 1;
			for (int j = 0; j < p; j++)
				pr *= comp_eval(&f->g[(size_t)m * p + j], x[j]);
			v += pr;
		}
		return v / sqrt((double)s->terms);
	case NN_GEN_COMPOSITION: {
		double *u = f->buf_a, *nu = f->buf_b;
		for (int j = 0; j < p; j++)
			u[j] = x[j];
		for (int l = 0; l < s->depth; l++) {
			for (int i = 0; i < p; i++)
				nu[i] = 1 / (1 + exp(-node_eval(&f->nodes[l * p + i], s->arity, u)));
			double *tmp = u;
			u = nu;
			nu = tmp;
		}
		return node_eval(&f->nodes[s->depth * p], s->arity, u);
	}
	case NN_GEN_TEACHER: {
		double *a = f->buf_a, *b = f->buf_b;
		for (int j = 0; j < p; j++)
			a[j] = x[j];
		for (int l = 0; l < f->n_layers; l++) {
			int in = f->dims[l], out = f->dims[l + 1];
			for (int o = 0; o < out; o++) {
				double z = f->tb[l][o];
				const double *w = f->tw[l] + (size_t)o * in;
				for (int i = 0; i < in; i++)
					z += w[i] * a[i];
				b[o] = l + 1 < f->n_layers && z < 0 ? 0 : z;
			}
			double *tmp = a;
			a = b;
			b = tmp;
		}
		return a[0];
	}
	}
	return 0;
}

nn_status nn_generate(const nn_gen_spec *s, float *x, float *y, float *fstar, char *err,
                      size_t errlen)
{
	nn_gen_fn *f = nn_gen_fn_create(s, err, errlen);
	if (!f)
		return nn_gen_check(s, NULL, 0) != NN_OK ? NN_EINVAL : NN_ENOMEM;
	nn_rng rx, rn;
	nn_rng_seed(&rx, s->sample_seed);
	nn_rng_seed(&rn, s->sample_seed ^ NOISE_MIX);
	size_t n = (size_t)s->rows * (size_t)s->inputs;
	for (size_t i = 0; i < n; i++)
		x[i] = nn_rng_uniform(&rx);
	for (int64_t r = 0; r < s->rows; r++) {
		double v = nn_gen_fn_eval(f, x + (size_t)r * (size_t)s->inputs);
		double z = gauss(&rn);
		if (fstar)
			fstar[r] = (float)v;
		y[r] = (float)(v + s->noise_std * z);
	}
	nn_gen_fn_free(f);
	return NN_OK;
}
