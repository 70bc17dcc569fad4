/*
 * loss.c - the two data losses, means over the batch like PyTorch's:
 * classification = softmax + cross-entropy (log-sum-exp shifted by the row
 * maximum), gradient (softmax - onehot) / n; regression = mean squared error
 * over rows and outputs, gradient 2 (y - t) / (n outputs).
 */
#include <math.h>

#include "plan.h"

double nn_loss_sum(const nn_model *m, nn_ws *w, const int32_t *labels, const float *targets,
                   int n, int total_n, int want_grad)
{
	const float *y;
	float *g;
	int k;
	double total = 0;

	if (!m || !w || n <= 0 || total_n < n || n != nn_ws_last_n(w) || !nn_ws_fits(w, m))
		return NAN;
	if (want_grad && !nn_ws_out_grad(w))
		return NAN; /* an inference-only workspace */
	y = nn_ws_out(w);
	g = want_grad ? nn_ws_out_grad(w) : NULL;
	k = m->spec.outputs;
	if (m->spec.task == NN_TASK_CLASSIFICATION) {
		float inv_n = 1.0f / (float)total_n;
		if (!labels)
			return NAN;
		for (int i = 0; i < n; i++) {
			const float *yr = y + (int64_t)i * k;
			float mx = yr[0], s = 0;
			int32_t c = labels[i];
			if (c < 0 || c >= k)
				return NAN;
			for (int j = 1; j < k; j++)
				mx = yr[j] > mx ? yr[j] : mx;
			if (g) {
				float *gr = g + (int64_t)i * k;
				for (int j = 0; j < k; j++) {
					gr[j] = expf(yr[j] - mx);
					s += gr[j];
				}
				float is = inv_n / s;
				for (int j = 0; j < k; j++)
					gr[j] *= is;
				gr[c] -= inv_n;
			} else {
				for (int j = 0; j < k; j++)
					s += expf(yr[j] - mx);
			}
			total += (double)logf(s) + (double)mx - (double)yr[c];
		}
		return total;
	}
	if (!targets)
		return NAN;
	{
		int64_t len = (int64_t)n * k;
		float scale = 2.0f / (float)((int64_t)total_n * k);
		for (int64_t i = 0; i < len; i++) {
			float d = y[i] - targets[i];
			total += (double)d * d;
			if (g)
				g[i] = scale * d;
		}
		return total;
	}
}

float nn_loss(const nn_model *m, nn_ws *w, const int32_t *labels, const float *targets, int n,
              int want_grad)
{
	double total = nn_loss_sum(m, w, labels, targets, n, n, want_grad);
	if (!m || n <= 0)
		return NAN;
	if (m->spec.task == NN_TASK_CLASSIFICATION)
		return (float)(total / n);
	return (float)(total / (double)((int64_t)n * m->spec.outputs));
}
