/*
 * predict.c - inference for callers outside the trainer: per-thread scratch
 * and nn_predict, which standardises raw rows with the model's own
 * statistics, runs the plan in inference mode in chunks of the scratch's
 * max_rows, and turns logits into softmax probabilities for classification.
 * The model is only read, so threads may share it, each with its scratch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

/* w: an inference workspace; xs: max_rows x inputs for standardised rows. */
struct nn_scratch {
	nn_ws *w;
	float *xs;
	int max_rows;
	int inputs;
};

nn_scratch *nn_scratch_create(const nn_model *m, int max_rows)
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
	return s;
}

void nn_scratch_free(nn_scratch *s)
{
	if (!s)
		return;
	nn_ws_free(s->w);
	free(s->xs);
	free(s);
}

nn_status nn_predict(const nn_model *m, nn_scratch *s, const float *x, int n, float *out)
{
	int d, k;

	if (!m || !s || n < 0 || (n > 0 && (!x || !out)) || s->inputs != m->spec.inputs)
		return NN_EINVAL;
	d = m->spec.inputs;
	k = m->spec.outputs;
	for (int r0 = 0; r0 < n; r0 += s->max_rows) {
		int c = n - r0 < s->max_rows ? n - r0 : s->max_rows;
		const float *in = x + (int64_t)r0 * d;
		const float *y;
		float *o = out + (int64_t)r0 * k;
		if (m->std_mean) {
			for (int i = 0; i < c; i++)
				for (int j = 0; j < d; j++)
					s->xs[(int64_t)i * d + j] =
						(in[(int64_t)i * d + j] - m->std_mean[j]) / m->std_std[j];
			in = s->xs;
		}
		y = nn_plan_forward(m, s->w, in, c, 0, NULL, NULL, m->impl->n_nodes);
		if (!y)
			return NN_EINVAL;
		if (m->spec.task == NN_TASK_CLASSIFICATION) {
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
		} else {
			memcpy(o, y, sizeof(float) * (size_t)c * (size_t)k);
		}
	}
	return NN_OK;
}
