/*
 * predict.c - inference for callers outside the trainer: per-thread scratch
 * and nn_predict, which standardises raw rows with the model's own
 * statistics, runs the plan in inference mode in chunks of the scratch's
 * max_rows, and turns logits into softmax probabilities for classification.
 * The model is only read, so threads may share it, each with its scratch.
 * Blocks of rows that are mostly zeros (image pixels) take the first layer
 * through sparse_in.h, the same path as training steps. A scratch for a
 * frozen model also uses every dense layer's weights packed for one-row
 * products (row_pack.h), once per model: a block of a single row, the usual
 * request of a service, or of a few rows (nn_tune.row_pack_max_rows) then
 * runs matrix-vector products instead of sgemm, each row of such a block
 * getting the bits it gets alone.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "row_pack.h"
#include "sparse_in.h"
#include "trainer.h"
#include "tune.h"

/* w: an inference workspace; xs: max_rows x inputs for standardised rows;
 * sp: the first layer's packed weights for sparse blocks, or NULL. */
struct nn_scratch {
	nn_ws *w;
	float *xs;
	int max_rows;
	int inputs;
	nn_sparse_in *sp;
	/* per node: packed for one row, or NULL; the model's (borrowed) */
	const nn_row_pack *const *rowp;
	const nn_model *owner; /* the frozen model sp and rowp were packed from */
};

/* The first layer's weights packed for sparse rows (sparse_in.h), when the
 * model and the CPU allow it and the layer is at most 16 Mi weights. The
 * model does not change under a scratch, so this is done once. */
static void sparse_setup(nn_scratch *s, const nn_model *m)
{
	int64_t w_off, b_off;
	int out;
	if (!nn_sparse_in_supported() || !nn_model_sparse_first(m, &w_off, &b_off, &out) ||
	    (int64_t)out * m->spec.inputs > nn_tune.sparse_predict_max_weights)
		return;
	s->sp = nn_sparse_in_create_forward(s->max_rows, m->spec.inputs, out);
	if (!s->sp)
		return;
	nn_sparse_in_weights(s->sp, m->params + w_off, b_off >= 0 ? m->params + b_off : NULL,
	                     m->std_mean, m->std_std);
	nn_ws_set_sparse_in(s->w, 0, s->sp);
	s->owner = m;
}

/* Every dense layer's weights packed for one-row products, when the model
 * has at most nn_tune.row_pack_max_weights of them. The packs are the
 * model's (nn_model_row_packs: built once, shared by all its frozen
 * scratches, so threads serving one model stream one copy of the weights
 * through the caches rather than one each). None when out of memory: the
 * sgemm path. */
static void row_setup(nn_scratch *s, const nn_model *m)
{
	int64_t w_off, b_off, total = 0;
	int in, out, n = nn_model_nodes(m);
	for (int k = 0; k < n; k++)
		if (nn_model_dense_node(m, k, &w_off, &b_off, &in, &out))
			total += (int64_t)in * out;
	if (total == 0 || total > nn_tune.row_pack_max_weights)
		return;
	const nn_row_pack *const *rp = nn_model_row_packs(m);
	if (!rp)
		return;
	for (int k = 0; k < n; k++)
		nn_ws_set_row_pack(s->w, k, rp[k]);
	s->rowp = rp;
	s->owner = m;
}

static nn_scratch *scratch_create(const nn_model *m, int max_rows, int frozen);

nn_scratch *nn_scratch_create(const nn_model *m, int max_rows)
{
	return scratch_create(m, max_rows, 0);
}

nn_scratch *nn_scratch_create_frozen(const nn_model *m, int max_rows)
{
	return scratch_create(m, max_rows, 1);
}

static nn_scratch *scratch_create(const nn_model *m, int max_rows, int frozen)
{
	nn_scratch *s;

	if (!m || max_rows <= 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->max_rows = max_rows;
	s->inputs = m->spec.inputs;
	s->w = nn_ws_create_inference(m, max_rows);
	s->xs = malloc(sizeof(float) * (size_t)max_rows * (size_t)m->spec.inputs);
	if (!s->w || !s->xs) {
		nn_scratch_free(s);
		return NULL;
	}
	if (frozen) {
		sparse_setup(s, m);
		row_setup(s, m);
	}
	return s;
}

void nn_scratch_free(nn_scratch *s)
{
	if (!s)
		return;
	nn_ws_free(s->w);
	nn_sparse_in_free(s->sp);
	free(s->xs);
	free(s);
}

/* Softmax of each of the c rows of logits y into o (classification), or a
 * copy (regression). */
static void outputs(const nn_model *m, const float *y, int c, float *o)
{
	int k = m->spec.outputs;
	if (m->spec.task != NN_TASK_CLASSIFICATION) {
		memcpy(o, y, sizeof(float) * (size_t)c * (size_t)k);
		return;
	}
	for (int i = 0; i < c; i++) {
		const float *yr = y + (int64_t)i * k;
		float *orow = o + (int64_t)i * k;
		float mx = yr[0], sum = 0;
		for (int j = 1; j < k; j++)
			mx = yr[j] > mx ? yr[j] : mx;
		for (int j = 0; j < k; j++) {
			orow[j] = expf(yr[j] - mx);
			sum += orow[j];
		}
		for (int j = 0; j < k; j++)
			orow[j] /= sum;
	}
}

/* The c rows at in (c <= the scratch's max_rows) into o. */
static nn_status predict_block(const nn_model *m, nn_scratch *s, const float *in, int c,
                               float *o)
{
	int d = m->spec.inputs;
	int sparse = 0;
	if (s->sp && m == s->owner) {
		/* rows mostly zero: the first layer from their non-zeros, the
		 * standardisation folded into its packed weights */
		nn_sparse_in_begin(s->sp);
		for (int i = 0; i < c; i++)
			nn_sparse_in_add_row_f32(s->sp, in + (int64_t)i * d);
		sparse = nn_sparse_in_density(s->sp) <= nn_tune.sparse_max_density;
		if (sparse) {
			nn_sparse_in_reuse_weights(s->sp);
			NN_TEST_COUNT(sparse_predict_blocks);
		}
	}
	nn_ws_sparse_on(s->w, sparse);
	nn_ws_row_on(s->w, s->rowp && m == s->owner);
	if (m->std_mean && !sparse) {
		for (int i = 0; i < c; i++)
			for (int j = 0; j < d; j++)
				s->xs[(int64_t)i * d + j] =
					(in[(int64_t)i * d + j] - m->std_mean[j]) / m->std_std[j];
		in = s->xs;
	}
	const float *y = nn_plan_forward(m, s->w, in, c, 0, NULL, NULL, m->impl->n_nodes);
	nn_ws_sparse_on(s->w, 0);
	if (!y)
		return NN_EINVAL;
	outputs(m, y, c, o);
	return NN_OK;
}

nn_status nn_predict(const nn_model *m, nn_scratch *s, const float *x, int n, float *out)
{
	if (!m || !s || n < 0 || (n > 0 && (!x || !out)) || s->inputs != m->spec.inputs)
		return NN_EINVAL;
	int d = m->spec.inputs, k = m->spec.outputs;
	for (int r0 = 0; r0 < n; r0 += s->max_rows) {
		int c = n - r0 < s->max_rows ? n - r0 : s->max_rows;
		nn_status st = predict_block(m, s, x + (int64_t)r0 * d, c, out + (int64_t)r0 * k);
		if (st != NN_OK)
			return st;
	}
	return NN_OK;
}
