/*
 * schedule.c - learning-rate schedules (API.md "Schedules"): the rate as a
 * pure function of time, so a resumed run recomputes it instead of storing it.
 *
 * t is the epoch (0-based), or the global step when per_step. Choices made
 * where the contract is silent:
 *  - warmup w: for t < w, lr = lr0 (t + 1) / w, a linear ramp from lr0/w at
 *    t = 0 up to lr0 at t = w - 1; from t = w on the schedule runs on t - w
 *    (and on total - w for cosine), so it starts fresh after the ramp. For
 *    cyclical, the ramp also rises to lr0 before the triangle starts at min_lr.
 *  - cosine: min_lr + (lr0 - min_lr) (1 + cos(pi t / (T - 1))) / 2 with
 *    T = total (minus warmup), reaching min_lr at the last epoch t = T - 1;
 *    when T <= 1 it stays at lr0.
 *  - cyclical: triangular with period 2 half_cycle_epochs, starting at min_lr,
 *    rising linearly to max_lr at t = half_cycle_epochs, back to min_lr.
 *  - step with step_epochs <= 0 and cyclical with half_cycle_epochs <= 0
 *    (rejected by nn_train_config_check) give lr0 / min_lr.
 */
#include <math.h>
#include "nn.h"

float nn_schedule_lr(const nn_schedule *s, float lr0, double t, double total)
{
	double lr = lr0, w = s->warmup_epochs;

	if (t < 0)
		t = 0;
	if (w > 0) {
		if (t < w)
			return (float)((double)lr0 * (t + 1.0) / w);
		t -= w;
		total -= w;
	}
	switch (s->type) {
	case NN_SCHED_CONSTANT:
		break;
	case NN_SCHED_STEP:
		if (s->step_epochs > 0)
			lr = lr0 * pow(s->gamma, floor(t / s->step_epochs));
		break;
	case NN_SCHED_EXPONENTIAL:
		lr = lr0 * exp(-(double)s->k * t);
		break;
	case NN_SCHED_POLYNOMIAL:
		lr = lr0 / pow(1.0 + (double)s->k * t, s->power);
		break;
	case NN_SCHED_CYCLICAL: {
		double h = s->half_cycle_epochs, lo = s->min_lr, hi = s->max_lr;
		if (h <= 0)
			return s->min_lr;
		double x = fmod(t, 2.0 * h);
		double frac = x <= h ? x / h : (2.0 * h - x) / h;
		lr = lo + (hi - lo) * frac;
		break;
	}
	case NN_SCHED_COSINE: {
		double span = total - 1.0;
		if (span <= 0)
			break;
		if (t > span)
			t = span;
		lr = s->min_lr + ((double)lr0 - s->min_lr) * (1.0 + cos(M_PI * t / span)) / 2.0;
		break;
	}
	}
	return (float)lr;
}
