/*
 * model.c - models and their compiled plans, training workspaces, and the
 * forward and backward passes over a plan.
 *
 * nn_model_create deep-copies the spec, appends the output layer, checks it,
 * and flattens the tree into nodes (plan.h) while laying out the parameters
 * (one flat block, tensor-table order) and the running statistics (another).
 * A workspace holds every activation, cache and gradient for batches of up
 * to max_batch rows in one allocation; forward and backward allocate nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "row_pack.h"
#include "tune.h"

static const nn_layer_ops *const layer_ops[NN_NODE_KINDS] = {
	[NN_NODE_DENSE] = &nn_dense_ops,
	[NN_NODE_ACT] = &nn_act_ops,
	[NN_NODE_BN] = &nn_bn_ops,
	[NN_NODE_DROPOUT] = &nn_dropout_ops,
	[NN_NODE_RES_END] = &nn_res_ops,
};

/* ---------------------------------------------------------------- building */

typedef struct build {
	nn_node *nodes;
	int n_nodes, cap_nodes;
	nn_tensor *tensors;
	int64_t *t_off;       /* offset of each tensor in params or state */
	int n_t, cap_t;
	int64_t np, ns;
	nn_init model_init;
	int max_w;
} build;

static int push_node(build *b, const nn_node *nd)
{
	if (b->n_nodes == b->cap_nodes) {
		int cap = b->cap_nodes ? 2 * b->cap_nodes : 16;
		nn_node *p = realloc(b->nodes, sizeof(*p) * (size_t)cap);
		if (!p)
			return -1;
		b->nodes = p;
		b->cap_nodes = cap;
	}
	b->nodes[b->n_nodes++] = *nd;
	if (nd->out_w > b->max_w)
		b->max_w = nd->out_w;
	return 0;
}

/* Adds a tensor of rows x cols at the next offset of params (or state). */
static int push_tensor(build *b, const char *path, nn_tensor_kind kind, int rows, int cols,
                       int64_t *off)
{
	int trainable = kind != NN_T_RUNNING_MEAN && kind != NN_T_RUNNING_VAR;
	char *p;

	if (b->n_t == b->cap_t) {
		int cap = b->cap_t ? 2 * b->cap_t : 16;
		nn_tensor *t = realloc(b->tensors, sizeof(*t) * (size_t)cap);
		int64_t *o;
		if (!t)
			return -1;
		b->tensors = t;
		o = realloc(b->t_off, sizeof(*o) * (size_t)cap);
		if (!o)
			return -1;
		b->t_off = o;
		b->cap_t = cap;
	}
	p = strdup(path);
	if (!p)
		return -1;
	b->tensors[b->n_t] = (nn_tensor){ p, kind, rows, cols, trainable, NULL };
	if (trainable) {
		*off = b->np;
		b->np += (int64_t)rows * cols;
	} else {
		*off = b->ns;
		b->ns += (int64_t)rows * cols;
	}
	b->t_off[b->n_t++] = *off;
	return 0;
}

static int relu_family(nn_act a)
{
	return a == NN_ACT_RELU || a == NN_ACT_LEAKY_RELU || a == NN_ACT_ELU || a == NN_ACT_GELU;
}

/* The init rule of dense layer ls[i]: its own, else the model's, else by
 * activation (its own, or an activation layer right after it). */
static void resolve_init(const build *b, const nn_layer_spec *ls, int i, int n, nn_init *init,
                         float *param)
{
	const nn_layer_spec *l = &ls[i];
	nn_act a = l->act;

	*param = l->init_param;
	*init = l->init != NN_INIT_AUTO ? l->init : b->model_init;
	if (*init != NN_INIT_AUTO)
		return;
	if (a == NN_ACT_IDENTITY && i + 1 < n && ls[i + 1].type == NN_LAYER_ACTIVATION)
		a = ls[i + 1].act;
	if (relu_family(a))
		*init = NN_INIT_HE_NORMAL;
	else if (a == NN_ACT_TANH || a == NN_ACT_SIGMOID)
		*init = NN_INIT_XAVIER_UNIFORM;
	else
		*init = NN_INIT_LECUN_NORMAL;
}

static int build_layers(build *b, const nn_layer_spec *ls, int n, const char *prefix, int width,
                        int *out_width)
{
	char path[1024];

	for (int i = 0; i < n; i++) {
		const nn_layer_spec *l = &ls[i];
		nn_node nd;
		memset(&nd, 0, sizeof(nd));
		nd.in_w = width;
		nd.out_w = width;
		nd.in_v = b->n_nodes;
		snprintf(path, sizeof(path), "%slayers[%d]", prefix, i);
		switch (l->type) {
		case NN_LAYER_DENSE:
			nd.kind = NN_NODE_DENSE;
			nd.out_w = l->units;
			nd.act = l->act;
			nd.alpha = nn_act_default_alpha(l->act, l->alpha);
			nd.store_z = !nn_act_grad_from_output(nd.act, nd.alpha);
			nd.has_bias = l->bias;
			resolve_init(b, ls, i, n, &nd.init, &nd.init_param);
			if (push_tensor(b, path, NN_T_WEIGHT, l->units, width, &nd.w_off))
				return -1;
			if (l->bias && push_tensor(b, path, NN_T_BIAS, 1, l->units, &nd.b_off))
				return -1;
			break;
		case NN_LAYER_ACTIVATION:
			nd.kind = NN_NODE_ACT;
			nd.act = l->act;
			nd.alpha = nn_act_default_alpha(l->act, l->alpha);
			break;
		case NN_LAYER_BATCH_NORM:
			nd.kind = NN_NODE_BN;
			nd.momentum = l->momentum;
			nd.eps = l->eps;
			if (push_tensor(b, path, NN_T_GAMMA, 1, width, &nd.w_off) ||
			    push_tensor(b, path, NN_T_BETA, 1, width, &nd.b_off) ||
			    push_tensor(b, path, NN_T_RUNNING_MEAN, 1, width, &nd.rm_off) ||
			    push_tensor(b, path, NN_T_RUNNING_VAR, 1, width, &nd.rv_off))
				return -1;
			break;
		case NN_LAYER_DROPOUT:
			nd.kind = NN_NODE_DROPOUT;
			nd.rate = l->rate;
			nd.mode = l->mode;
			break;
		case NN_LAYER_RESIDUAL: {
			char sub[1040];
			int start = b->n_nodes, w;
			snprintf(sub, sizeof(sub), "%s.", path);
			if (build_layers(b, l->children, l->n_children, sub, width, &w))
				return -1;
			nd.kind = NN_NODE_RES_END;
			nd.in_v = b->n_nodes;
			nd.skip_v = start;
			nd.out_w = w;
			nd.projection = l->projection;
			if (l->projection) {
				/* init like the block's first dense layer */
				nd.init = b->model_init != NN_INIT_AUTO ? b->model_init
				                                        : NN_INIT_LECUN_NORMAL;
				for (int k = start; k < b->n_nodes; k++)
					if (b->nodes[k].kind == NN_NODE_DENSE) {
						nd.init = b->nodes[k].init;
						nd.init_param = b->nodes[k].init_param;
						break;
					}
				snprintf(sub, sizeof(sub), "%s.projection", path);
				if (push_tensor(b, sub, NN_T_WEIGHT, w, width, &nd.w_off))
					return -1;
			}
			break;
		}
		}
		if (push_node(b, &nd))
			return -1;
		width = nd.out_w;
	}
	*out_width = width;
	return 0;
}

/* Marks which backward writes accumulate: walking the nodes in reverse, the
 * first writer of a value's gradient stores, the later ones add. A RES_END's
 * block input is aliased, not written. */
static int mark_accum(struct nn_impl *p)
{
	char *written = calloc((size_t)p->n_nodes + 1, 1);

	if (!written)
		return -1;
	for (int k = p->n_nodes - 1; k >= 0; k--) {
		nn_node *nd = &p->nodes[k];
		if (nd->kind == NN_NODE_RES_END) {
			nd->accum_skip = written[nd->skip_v];
			written[nd->skip_v] = 1;
		} else {
			nd->accum_in = written[nd->in_v];
			written[nd->in_v] = 1;
		}
	}
	free(written);
	return 0;
}

static void row_packs_free(struct nn_row_pack **rp, int n)
{
	for (int k = 0; rp && k < n; k++)
		nn_row_pack_free(rp[k]);
	free(rp);
}

static void impl_free(struct nn_impl *p)
{
	if (!p)
		return;
	row_packs_free(p->rowp, p->n_nodes);
	free(p->nodes);
	free(p);
}

void nn_model_free(nn_model *m)
{
	if (!m)
		return;
	nn_layers_free(m->spec.layers, m->spec.n_layers);
	free(m->params);
	free(m->state);
	free(m->std_mean);
	free(m->std_std);
	if (m->tensors)
		for (int i = 0; i < m->n_tensors; i++)
			free((char *)m->tensors[i].path);
	free(m->tensors);
	impl_free(m->impl);
	free(m);
}

/* Builds the plan, tensor table and blocks of a model whose spec (output
 * layer included) is already in m->spec. Parameters are left at zero. */
static nn_status model_compile(nn_model *m)
{
	build b;
	int w;
	nn_status st = NN_ENOMEM;

	memset(&b, 0, sizeof(b));
	b.model_init = m->spec.init;
	b.max_w = m->spec.inputs;
	if (build_layers(&b, m->spec.layers, m->spec.n_layers, "", m->spec.inputs, &w))
		goto fail;
	m->impl = calloc(1, sizeof(*m->impl));
	if (!m->impl)
		goto fail;
	m->impl->nodes = b.nodes;
	m->impl->n_nodes = b.n_nodes;
	m->impl->max_w = b.max_w;
	b.nodes = NULL;
	for (int k = 0; k < m->impl->n_nodes; k++) {
		if (m->impl->nodes[k].kind == NN_NODE_BN)
			m->impl->has_bn = 1;
		if (m->impl->nodes[k].kind == NN_NODE_DROPOUT)
			m->impl->has_dropout = 1;
	}
	if (mark_accum(m->impl))
		goto fail;
	m->n_tensors = b.n_t;
	m->tensors = b.tensors;
	b.tensors = NULL;
	m->n_params = b.np;
	m->n_state = b.ns;
	m->params = calloc((size_t)(b.np > 0 ? b.np : 1), sizeof(float));
	m->state = calloc((size_t)(b.ns > 0 ? b.ns : 1), sizeof(float));
	if (!m->params || !m->state)
		goto fail;
	for (int i = 0; i < m->n_tensors; i++)
		m->tensors[i].data = (m->tensors[i].trainable ? m->params : m->state) + b.t_off[i];
	st = NN_OK;
fail:
	if (st != NN_OK && b.tensors) {
		for (int i = 0; i < b.n_t; i++)
			free((char *)b.tensors[i].path);
		free(b.tensors);
	}
	free(b.nodes);
	free(b.t_off);
	return st;
}

/* A model from a full spec (output layer included); takes ownership of
 * layers on success and on failure. */
static nn_model *model_from_full(const nn_model_spec *spec, nn_layer_spec *layers, int n_layers)
{
	nn_model *m = calloc(1, sizeof(*m));

	if (!m) {
		nn_layers_free(layers, n_layers);
		return NULL;
	}
	m->spec = *spec;
	m->spec.layers = layers;
	m->spec.n_layers = n_layers;
	if (model_compile(m) != NN_OK) {
		nn_model_free(m);
		return NULL;
	}
	return m;
}

nn_model *nn_model_create(const nn_model_spec *spec, char *err, size_t errlen)
{
	nn_layer_spec *layers;
	nn_model *m;

	if (nn_spec_check(spec, 0, NULL, err, errlen) != NN_OK)
		return NULL;
	layers = calloc((size_t)spec->n_layers + 1, sizeof(*layers));
	if (!layers) {
		nn_errf(err, errlen, "out of memory");
		return NULL;
	}
	for (int i = 0; i < spec->n_layers; i++) {
		layers[i] = spec->layers[i];
		layers[i].children = NULL;
		layers[i].n_children = 0;
		if (spec->layers[i].type == NN_LAYER_RESIDUAL &&
		    nn_layers_copy(spec->layers[i].children, spec->layers[i].n_children,
		                   &layers[i].children) != NN_OK) {
			nn_layers_free(layers, i);
			nn_errf(err, errlen, "out of memory");
			return NULL;
		}
		if (spec->layers[i].type == NN_LAYER_RESIDUAL)
			layers[i].n_children = spec->layers[i].n_children;
	}
	layers[spec->n_layers] = nn_layer_default(NN_LAYER_DENSE);
	layers[spec->n_layers].units = spec->outputs;
	m = model_from_full(spec, layers, spec->n_layers + 1);
	if (!m) {
		nn_errf(err, errlen, "out of memory");
		return NULL;
	}
	nn_model_init(m, spec->seed);
	return m;
}

nn_model *nn_model_clone(const nn_model *m)
{
	nn_layer_spec *layers;
	nn_model *c;

	if (!m)
		return NULL;
	if (nn_layers_copy(m->spec.layers, m->spec.n_layers, &layers) != NN_OK)
		return NULL;
	c = model_from_full(&m->spec, layers, m->spec.n_layers);
	if (!c)
		return NULL;
	memcpy(c->params, m->params, sizeof(float) * (size_t)m->n_params);
	memcpy(c->state, m->state, sizeof(float) * (size_t)m->n_state);
	if (m->std_mean && nn_model_set_standardize(c, m->std_mean, m->std_std) != NN_OK) {
		nn_model_free(c);
		return NULL;
	}
	return c;
}

const nn_model_spec *nn_model_spec_of(const nn_model *m)
{
	return m ? &m->spec : NULL;
}

int64_t nn_model_param_count(const nn_model *m)
{
	return m ? m->n_params : 0;
}

int nn_model_tensor_count(const nn_model *m)
{
	return m ? m->n_tensors : 0;
}

nn_tensor nn_model_tensor(const nn_model *m, int i)
{
	nn_tensor t;

	if (!m || i < 0 || i >= m->n_tensors) {
		memset(&t, 0, sizeof(t));
		return t;
	}
	return m->tensors[i];
}

float *nn_model_params(nn_model *m, int64_t *n)
{
	if (n)
		*n = m ? m->n_params : 0;
	return m ? m->params : NULL;
}

float *nn_model_state(nn_model *m, int64_t *n)
{
	if (n)
		*n = m ? m->n_state : 0;
	return m ? m->state : NULL;
}

nn_status nn_model_set_standardize(nn_model *m, const float *mean, const float *std)
{
	int n;
	float *a, *b;

	if (!m)
		return NN_EINVAL;
	if (!mean || !std) {
		free(m->std_mean);
		free(m->std_std);
		m->std_mean = m->std_std = NULL;
		return NN_OK;
	}
	n = m->spec.inputs;
	for (int i = 0; i < n; i++)
		if (!isfinite(mean[i]) || !isfinite(std[i]) || std[i] < 0)
			return NN_EINVAL;
	a = malloc(sizeof(float) * (size_t)n);
	b = malloc(sizeof(float) * (size_t)n);
	if (!a || !b) {
		free(a);
		free(b);
		return NN_ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		a[i] = mean[i];
		b[i] = std[i] > 0 ? std[i] : 1.0f; /* a constant feature is only centred */
	}
	free(m->std_mean);
	free(m->std_std);
	m->std_mean = a;
	m->std_std = b;
	return NN_OK;
}

const float *nn_model_std_mean(const nn_model *m)
{
	return m ? m->std_mean : NULL;
}

const float *nn_model_std_std(const nn_model *m)
{
	return m ? m->std_std : NULL;
}

int nn_model_has_bn(const nn_model *m)
{
	return m && m->impl->has_bn;
}

/* ---------------------------------------------------------------- workspace */

/*
 * One block holds everything, each buffer starting on a 64-byte boundary.
 * v[0] is the caller's input (set per forward); v[k + 1] and g[k + 1] belong
 * to node k, except that g of a RES_END's block output aliases g of its
 * output. c0/c1 are the per-node caches. grads is NULL for inference-only
 * workspaces. shape records what the buffers were sized for (kind, widths,
 * shortcut source and z cache of each node), so a workspace or scratch made
 * for one model is refused by a model of another shape instead of
 * overflowing its buffers.
 */
struct nn_ws {
	int max_batch;
	int n_nodes;
	int64_t n_params;
	int *shape;           /* SHAPE_INTS per node */
	float **v, **g, **c0, **c1;
	float *grads;
	float *block;
	int last_n, last_training;
	struct nn_sparse_in **sp; /* per node, or NULL (see sparse_in.h) */
	int sp_on;                /* training passes use sp */
	const struct nn_row_pack **rowp; /* per node, or NULL (see row_pack.h) */
	int row_on;                      /* one-row inference passes use rowp */
};

void nn_ws_row_on(nn_ws *w, int on)
{
	if (w)
		w->row_on = on;
}

void nn_ws_set_row_pack(nn_ws *w, int k, const struct nn_row_pack *p)
{
	if (w && k >= 0 && k < w->n_nodes)
		w->rowp[k] = p;
}

void nn_ws_set_sparse_in(nn_ws *w, int k, struct nn_sparse_in *sp)
{
	if (w && k >= 0 && k < w->n_nodes)
		w->sp[k] = sp;
}

void nn_ws_sparse_on(nn_ws *w, int on)
{
	if (w)
		w->sp_on = on;
}

#define SHAPE_INTS 5

static void shape_of(const nn_node *nd, int *s)
{
	s[0] = (int)nd->kind;
	s[1] = nd->in_w;
	s[2] = nd->out_w;
	s[3] = nd->skip_v;
	s[4] = nd->store_z;
}

/* 1 when w was sized for a model shaped like m. */
static int ws_fits(const nn_ws *w, const nn_model *m)
{
	const struct nn_impl *p = m->impl;
	int s[SHAPE_INTS];

	if (w->n_nodes != p->n_nodes || w->n_params != m->n_params)
		return 0;
	for (int k = 0; k < p->n_nodes; k++) {
		shape_of(&p->nodes[k], s);
		if (memcmp(s, w->shape + (int64_t)k * SHAPE_INTS, sizeof(s)) != 0)
			return 0;
	}
	return 1;
}

static int64_t round16(int64_t n)
{
	return (n + 15) & ~(int64_t)15;
}

static nn_ws *ws_create(const nn_model *m, int max_batch, int with_grads)
{
	const struct nn_impl *p;
	nn_ws *w;
	int nv;
	int64_t total = 0, off = 0;

	if (!m || max_batch <= 0)
		return NULL;
	p = m->impl;
	nv = p->n_nodes + 1;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->max_batch = max_batch;
	w->n_nodes = p->n_nodes;
	w->n_params = m->n_params;
	w->v = calloc((size_t)nv, sizeof(float *));
	w->g = calloc((size_t)nv, sizeof(float *));
	w->c0 = calloc((size_t)p->n_nodes + 1, sizeof(float *));
	w->c1 = calloc((size_t)p->n_nodes + 1, sizeof(float *));
	w->shape = calloc((size_t)p->n_nodes + 1, sizeof(int) * SHAPE_INTS);
	w->sp = calloc((size_t)p->n_nodes + 1, sizeof(*w->sp));
	w->rowp = calloc((size_t)p->n_nodes + 1, sizeof(*w->rowp));
	if (!w->v || !w->g || !w->c0 || !w->c1 || !w->shape || !w->sp || !w->rowp)
		goto fail;
	for (int k = 0; k < p->n_nodes; k++)
		shape_of(&p->nodes[k], w->shape + (int64_t)k * SHAPE_INTS);
	/* two passes: size, then carve */
	for (int pass = 0; pass < 2; pass++) {
		off = 0;
		for (int k = 0; k < p->n_nodes; k++) {
			const nn_node *nd = &p->nodes[k];
			const nn_layer_ops *ops = layer_ops[nd->kind];
			int64_t vs = round16((int64_t)max_batch * nd->out_w);
			int64_t s0 = round16(ops->cache0(nd, max_batch)), s1 = round16(ops->cache1(nd));
			if (pass) {
				w->v[k + 1] = w->block + off;
				w->c0[k] = s0 ? w->block + off + vs : NULL;
				w->c1[k] = s1 ? w->block + off + vs + s0 : NULL;
			}
			off += vs + s0 + s1;
			if (with_grads && !(k + 1 < p->n_nodes && p->nodes[k + 1].kind == NN_NODE_RES_END)) {
				if (pass)
					w->g[k + 1] = w->block + off;
				off += vs;
			}
		}
		if (with_grads) {
			if (pass)
				w->grads = w->block + off;
			off += round16(m->n_params);
		}
		if (!pass) {
			total = off > 0 ? off : 16;
			if (posix_memalign((void **)&w->block, 64, sizeof(float) * (size_t)total))
				goto fail;
			memset(w->block, 0, sizeof(float) * (size_t)total);
		}
	}
	/* the block output of a RES_END shares the gradient of its output */
	if (with_grads)
		for (int k = p->n_nodes - 1; k >= 0; k--)
			if (p->nodes[k].kind == NN_NODE_RES_END)
				w->g[k] = w->g[k + 1];
	return w;
fail:
	nn_ws_free(w);
	return NULL;
}

nn_ws *nn_ws_create(const nn_model *m, int max_batch)
{
	return ws_create(m, max_batch, 1);
}

nn_ws *nn_ws_create_inference(const nn_model *m, int max_batch)
{
	return ws_create(m, max_batch, 0);
}

void nn_ws_free(nn_ws *w)
{
	if (!w)
		return;
	free(w->v);
	free(w->g);
	free(w->c0);
	free(w->c1);
	free(w->shape);
	free(w->sp);
	free(w->rowp);
	free(w->block);
	free(w);
}

float *nn_ws_grads(nn_ws *w)
{
	return w ? w->grads : NULL;
}

int nn_ws_max_batch(const nn_ws *w)
{
	return w ? w->max_batch : 0;
}

int nn_ws_fits(const nn_ws *w, const nn_model *m)
{
	return w && m && ws_fits(w, m);
}

int nn_ws_last_n(const nn_ws *w)
{
	return w->last_n;
}

float *nn_ws_out(nn_ws *w)
{
	return w->v[w->n_nodes];
}

float *nn_ws_out_grad(nn_ws *w)
{
	return w->g[w->n_nodes];
}

float *nn_ws_value(nn_ws *w, int k)
{
	return w->v[k];
}

/* ---------------------------------------------------------------- passes */

const float *nn_plan_forward(const nn_model *m, nn_ws *w, const float *x, int n, int training,
                             nn_rng *rng, float *state_update, int stop)
{
	const struct nn_impl *p;
	nn_run r;

	if (!m || !w || !x || n <= 0 || n > w->max_batch)
		return NULL;
	p = m->impl;
	if (stop < 0 || stop > p->n_nodes || !ws_fits(w, m))
		return NULL;
	if (training && p->has_dropout && !rng)
		return NULL;
	r = (nn_run){ m->params, state_update, m->state, w->grads, w->v, w->g, w->c0, w->c1, n,
	              training, rng, NULL, NULL };
	r.sp = stop == p->n_nodes && w->sp_on ? w->sp : NULL;
	r.rowp = n <= nn_tune.row_pack_max_rows && !training && w->row_on ? w->rowp : NULL;
	w->v[0] = (float *)x; /* read only */
	for (int k = 0; k < stop; k++)
		layer_ops[p->nodes[k].kind]->forward(&p->nodes[k], k, &r);
	w->last_n = stop == p->n_nodes ? n : 0; /* loss and backward need a full pass */
	w->last_training = training;
	return w->v[stop];
}

const float *nn_forward(nn_model *m, nn_ws *w, const float *x, int n, int training,
                        nn_rng *rng)
{
	if (!m)
		return NULL;
	return nn_plan_forward(m, w, x, n, training, rng, training ? m->state : NULL,
	                       m->impl->n_nodes);
}

const nn_node *nn_model_node(const nn_model *m, int k)
{
	return &m->impl->nodes[k];
}

const nn_layer_ops *nn_node_ops(const nn_node *nd)
{
	return layer_ops[nd->kind];
}

nn_run nn_ws_train_run(const nn_model *m, nn_ws *w, const float *x, int n, nn_rng *rng)
{
	nn_run r = { m->params, NULL, m->state, w->grads, w->v, w->g, w->c0, w->c1, n, 1, rng,
	             w->sp_on ? w->sp : NULL, NULL };
	w->v[0] = (float *)x;
	w->last_n = n;
	w->last_training = 1;
	return r;
}

int nn_model_sparse_first(const nn_model *m, int64_t *w_off, int64_t *b_off, int *out)
{
	if (!m || m->impl->n_nodes < 1)
		return 0;
	const struct nn_impl *p = m->impl;
	const nn_node *nd = &p->nodes[0];
	if (nd->kind != NN_NODE_DENSE || nd->in_v != 0 || nd->out_w % 16)
		return 0;
	for (int k = 1; k < p->n_nodes; k++)
		if (p->nodes[k].in_v == 0 || (p->nodes[k].kind == NN_NODE_RES_END &&
		                              p->nodes[k].skip_v == 0))
			return 0;
	*w_off = nd->w_off;
	*b_off = nd->has_bias ? nd->b_off : -1;
	*out = nd->out_w;
	return 1;
}

int nn_model_dense_node(const nn_model *m, int k, int64_t *w_off, int64_t *b_off, int *in,
                        int *out)
{
	if (!m || k < 0 || k >= m->impl->n_nodes || m->impl->nodes[k].kind != NN_NODE_DENSE)
		return 0;
	const nn_node *nd = &m->impl->nodes[k];
	*w_off = nd->w_off;
	*b_off = nd->has_bias ? nd->b_off : -1;
	*in = nd->in_w;
	*out = nd->out_w;
	return 1;
}

/* Every dense node of m packed (all or none). */
static struct nn_row_pack **row_packs_build(const nn_model *m)
{
	int n = m->impl->n_nodes;
	struct nn_row_pack **rp = calloc((size_t)n, sizeof(*rp));
	if (!rp)
		return NULL;
	for (int k = 0; k < n; k++) {
		int64_t w_off, b_off;
		int in, out;
		if (!nn_model_dense_node(m, k, &w_off, &b_off, &in, &out))
			continue;
		rp[k] = nn_row_pack_create(m->params + w_off, b_off >= 0 ? m->params + b_off : NULL,
		                           in, out);
		if (!rp[k]) {
			row_packs_free(rp, n);
			return NULL;
		}
	}
	return rp;
}

const struct nn_row_pack *const *nn_model_row_packs(const nn_model *m)
{
	if (!m)
		return NULL;
	struct nn_impl *p = m->impl;
	struct nn_row_pack **have = __atomic_load_n(&p->rowp, __ATOMIC_ACQUIRE);
	if (!have) {
		struct nn_row_pack **mine = row_packs_build(m);
		if (!mine)
			return NULL;
		if (__atomic_compare_exchange_n(&p->rowp, &have, mine, 0, __ATOMIC_ACQ_REL,
		                                __ATOMIC_ACQUIRE))
			have = mine;
		else
			row_packs_free(mine, p->n_nodes);  /* another caller's came first */
	}
	return (const struct nn_row_pack *const *)have;
}

int nn_model_nodes(const nn_model *m)
{
	return m ? m->impl->n_nodes : 0;
}

int nn_model_sparse_hidden(const nn_model *m, int k, int *in, int *out)
{
	if (!m || k < 1 || k >= m->impl->n_nodes)
		return 0;
	const struct nn_impl *p = m->impl;
	const nn_node *nd = &p->nodes[k], *prev = &p->nodes[k - 1];
	if (nd->kind != NN_NODE_DENSE || nd->in_v != k || nd->out_w % 16)
		return 0;
	if (!((prev->kind == NN_NODE_DENSE || prev->kind == NN_NODE_ACT) &&
	      prev->act == NN_ACT_RELU))
		return 0;
	for (int j = 0; j < p->n_nodes; j++)
		if (j != k && (p->nodes[j].in_v == k ||
		               (p->nodes[j].kind == NN_NODE_RES_END && p->nodes[j].skip_v == k)))
			return 0;
	*in = nd->in_w;
	*out = nd->out_w;
	return 1;
}

void nn_backward(nn_model *m, nn_ws *w, int n)
{
	const struct nn_impl *p;
	nn_run r;

	if (!m || !w || !w->grads || n != w->last_n || n <= 0 || !ws_fits(w, m))
		return;
	p = m->impl;
	r = (nn_run){ m->params, NULL, m->state, w->grads, w->v, w->g, w->c0, w->c1, n,
	              w->last_training, NULL, w->last_training && w->sp_on ? w->sp : NULL, NULL };
	for (int k = p->n_nodes - 1; k >= 0; k--)
		layer_ops[p->nodes[k].kind]->backward(&p->nodes[k], k, &r);
}

nn_status nn_bn_population(nn_model *m, nn_ws *w, const float *x, int64_t rows)
{
	const struct nn_impl *p;
	double *acc;
	int max_w;

	if (!m || !w || (!x && rows > 0) || rows < 0)
		return NN_EINVAL;
	p = m->impl;
	if (!p->has_bn)
		return NN_OK;
	if (rows < 2)
		return NN_EINVAL;
	max_w = p->max_w;
	acc = malloc(sizeof(double) * 3 * (size_t)max_w);
	if (!acc)
		return NN_ENOMEM;
	for (int b = 0; b < p->n_nodes; b++) {
		const nn_node *nd = &p->nodes[b];
		int wd = nd->out_w;
		double *shift = acc, *s1 = acc + max_w, *s2 = acc + 2 * max_w;
		if (nd->kind != NN_NODE_BN)
			continue;
		memset(acc, 0, sizeof(double) * 3 * (size_t)max_w);
		for (int64_t r0 = 0; r0 < rows; r0 += w->max_batch) {
			int n = (int)(rows - r0 < w->max_batch ? rows - r0 : w->max_batch);
			const float *in = nn_plan_forward(m, w, x + r0 * m->spec.inputs, n, 0, NULL,
			                                  NULL, b);
			if (!in) {
				free(acc);
				return NN_EINVAL;
			}
			if (r0 == 0)
				for (int j = 0; j < wd; j++)
					shift[j] = in[j];
			for (int i = 0; i < n; i++) {
				const float *xr = in + (int64_t)i * wd;
				for (int j = 0; j < wd; j++) {
					double d = xr[j] - shift[j];
					s1[j] += d;
					s2[j] += d * d;
				}
			}
		}
		for (int j = 0; j < wd; j++) {
			double mean = s1[j] / (double)rows;
			double var = (s2[j] - s1[j] * mean) / (double)(rows - 1);
			m->state[nd->rm_off + j] = (float)(shift[j] + mean);
			m->state[nd->rv_off + j] = (float)(var > 0 ? var : 0);
		}
	}
	free(acc);
	return NN_OK;
}
