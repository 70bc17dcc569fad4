/*
 * test_train.c - the training loop's behaviours with asserted values:
 * early stopping on a constructed validation curve, polyak and EMA averages
 * against the iterates, population vs running batch-norm statistics,
 * sparsity, divergence, determinism, checkpoint/resume bit for bit (at an
 * epoch end and mid-epoch), corrupted checkpoints, gradient clipping,
 * reported gradient norms, cancellation, config checks, and the byte copy
 * of image data (the same bits as the float path).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "trainer.h"

/* ---------------------------------------------------------------- helpers */

/* A linear model 1 -> 1 (no hidden layers) with w and b set. */
static nn_model *linear(float w, float b)
{
	nn_model_spec s = { NN_TASK_REGRESSION, 1, 1, NN_INIT_AUTO, 1, NULL, 0 };
	char err[128];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	int64_t np;
	float *p = nn_model_params(m, &np);
	ck_assert_int_eq(np, 2);
	p[0] = w;
	p[1] = b;
	return m;
}

static nn_train_config plain(int epochs, float lr)
{
	nn_train_config c = nn_train_config_default();
	c.epochs = epochs;
	c.batch_size = 1000;
	c.shuffle = 0;
	c.standardize = 0;
	c.opt.lr = lr;
	c.log_every_steps = 1;
	c.checkpoint_every_epochs = 0;
	return c;
}

/* A small classification problem: rows x features, 3 classes. */
typedef struct problem {
	float *x;
	int32_t *y;
	nn_data d;
} problem;

static problem make_problem(int rows, int features, uint64_t seed)
{
	problem p;
	nn_rng r;
	nn_rng_seed(&r, seed);
	p.x = malloc(sizeof(float) * (size_t)rows * features);
	p.y = malloc(sizeof(int32_t) * (size_t)rows);
	for (int i = 0; i < rows; i++) {
		float s = 0;
		for (int j = 0; j < features; j++) {
			p.x[i * features + j] = 3.0f * nn_rng_normal(&r) + (float)j;
			s += p.x[i * features + j] * (j % 2 ? 1.0f : -0.5f);
		}
		p.y[i] = s > 1.0f ? 2 : (s > -1.0f ? 1 : 0);
	}
	nn_data d = { rows, features, 3, p.x, p.y, NULL, 0, 0, 0, NULL };
	p.d = d;
	return p;
}

static void free_problem(problem *p)
{
	free(p->x);
	free(p->y);
}

/* features -> 8 relu -> batch_norm -> dropout -> 6 tanh -> 3 */
static nn_model *mlp(int features, int with_bn, int with_dropout)
{
	nn_layer_spec l[5];
	int n = 0;
	l[n] = nn_layer_default(NN_LAYER_DENSE);
	l[n].units = 8;
	l[n++].act = NN_ACT_RELU;
	if (with_bn)
		l[n++] = nn_layer_default(NN_LAYER_BATCH_NORM);
	if (with_dropout) {
		l[n] = nn_layer_default(NN_LAYER_DROPOUT);
		l[n++].rate = 0.3f;
	}
	l[n] = nn_layer_default(NN_LAYER_DENSE);
	l[n].units = 6;
	l[n++].act = NN_ACT_TANH;
	nn_model_spec s = { NN_TASK_CLASSIFICATION, features, 3, NN_INIT_AUTO, 11, l, n };
	char err[128];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	return m;
}

static int same_weights(nn_model *a, nn_model *b)
{
	int64_t na, nb, sa, sb;
	float *pa = nn_model_params(a, &na), *pb = nn_model_params(b, &nb);
	float *ta = nn_model_state(a, &sa), *tb = nn_model_state(b, &sb);
	if (na != nb || sa != sb || memcmp(pa, pb, sizeof(float) * (size_t)na))
		return 0;
	if (sa && memcmp(ta, tb, sizeof(float) * (size_t)sa))
		return 0;
	const float *ma = nn_model_std_mean(a), *mb = nn_model_std_mean(b);
	if (!ma != !mb)
		return 0;
	return !ma || memcmp(ma, mb, sizeof(float) * (size_t)nn_model_spec_of(a)->inputs) == 0;
}

/* ---------------------------------------------------------------- early stopping */

/*
 * Training on x = 1, y = 1 from w = b = 0 with SGD lr 0.05 moves s = w + b
 * as 1 - s' = 0.8 (1 - s): after epoch e, s = 1 - 0.8^(e+1) (0.2, 0.36,
 * 0.488, 0.5904, 0.672, ...), with w = b = s / 2. Validating on y = 0.5, the
 * loss (s - 0.5)^2 is lowest at epoch 2, then rises.
 */
START_TEST(test_early_stopping_stops_after_patience_and_restores_the_best_epoch)
{
	float x[1] = { 1 }, y[1] = { 1 }, vy[1] = { 0.5f };
	nn_data tr = { 1, 1, 1, x, NULL, y, 0, 0, 0, NULL };
	nn_data va = { 1, 1, 1, x, NULL, vy, 0, 0, 0, NULL };
	for (int restore = 0; restore <= 1; restore++) {
		nn_model *m = linear(0, 0);
		nn_train_config c = plain(50, 0.05f);
		c.early.enabled = 1;
		c.early.patience = 2;
		c.early.restore_best = restore;
		nn_train_result res;
		char err[128];
		ck_assert_int_eq(nn_train(m, &tr, &va, &c, NULL, NULL, 0, &res, err, sizeof err),
		                 NN_OK);
		ck_assert_int_eq(res.stopped_early, 1);
		ck_assert_int_eq(res.best_epoch, 2);
		ck_assert_int_eq(res.epochs_run, 5); /* epochs 3 and 4 did not improve */
		ck_assert_float_eq_tol(res.best_val_loss, (0.488 - 0.5) * (0.488 - 0.5), 1e-6);
		int64_t np;
		float *p = nn_model_params(m, &np);
		double s = restore ? 0.488 : 1 - pow(0.8, 5);
		ck_assert_float_eq_tol(p[0], s / 2, 1e-5);
		ck_assert_float_eq_tol(p[1], s / 2, 1e-5);
		nn_model_free(m);
	}
}
END_TEST

START_TEST(test_min_delta_counts_small_improvements_as_none)
{
	float x[1] = { 1 }, y[1] = { 1 }, vy[1] = { 0.5f };
	nn_data tr = { 1, 1, 1, x, NULL, y, 0, 0, 0, NULL };
	nn_data va = { 1, 1, 1, x, NULL, vy, 0, 0, 0, NULL };
	nn_model *m = linear(0, 0);
	nn_train_config c = plain(50, 0.05f);
	c.early.enabled = 1;
	c.early.patience = 1;
	/* val losses .09, .0196, .000144: the third gains .019 < 0.05 */
	c.early.min_delta = 0.05f;
	nn_train_result res;
	char err[128];
	ck_assert_int_eq(nn_train(m, &tr, &va, &c, NULL, NULL, 0, &res, err, sizeof err), NN_OK);
	ck_assert_int_eq(res.best_epoch, 1);
	ck_assert_int_eq(res.epochs_run, 3);
	nn_model_free(m);
}
END_TEST

START_TEST(test_early_stopping_without_validation_is_rejected)
{
	float x[1] = { 1 }, y[1] = { 1 };
	nn_data tr = { 1, 1, 1, x, NULL, y, 0, 0, 0, NULL };
	nn_model *m = linear(0, 0);
	nn_train_config c = plain(5, 0.05f);
	c.early.enabled = 1;
	char err[128] = "";
	ck_assert_int_eq(nn_train(m, &tr, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
	                 NN_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "early_stopping"));
	nn_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- averaging */

typedef struct iterates {
	nn_model *m;
	int start_epoch;
	double sum[256];
	double ema[256];
	float decay;
	int n;
	int64_t np;
} iterates;

static void record_iterate(void *ctx, const nn_step_record *r)
{
	iterates *it = ctx;
	if (r->epoch < it->start_epoch)
		return;
	int64_t np;
	float *p = nn_model_params(it->m, &np);
	ck_assert_int_le(np, 256);
	it->np = np;
	for (int64_t i = 0; i < np; i++) {
		it->sum[i] += p[i];
		it->ema[i] = it->n == 0 ? p[i] : it->decay * it->ema[i] + (1.0 - it->decay) * p[i];
	}
	it->n++;
}

START_TEST(test_polyak_average_is_the_mean_of_the_iterates_from_start_epoch)
{
	problem pr = make_problem(40, 4, 1);
	for (int type = NN_AVG_POLYAK; type <= NN_AVG_EMA; type++) {
		nn_model *m = mlp(4, 0, 0);
		nn_train_config c = plain(5, 0.05f);
		c.batch_size = 8;
		c.shuffle = 1;
		c.avg.type = (nn_avg_type)type;
		c.avg.start_epoch = 2;
		c.avg.decay = 0.9f;
		static iterates it;
		memset(&it, 0, sizeof it);
		it.m = m;
		it.start_epoch = 2;
		it.decay = 0.9f;
		nn_callbacks cb = { .ctx = &it, .on_step = record_iterate };
		char err[128];
		ck_assert_int_eq(nn_train(m, &pr.d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err),
		                 NN_OK);
		ck_assert_int_eq(it.n, 3 * 5); /* epochs 2..4, 5 steps each */
		int64_t np;
		float *p = nn_model_params(m, &np);
		for (int64_t i = 0; i < np; i++) {
			double want = type == NN_AVG_POLYAK ? it.sum[i] / it.n : it.ema[i];
			ck_assert_msg(fabs(p[i] - want) <= 1e-6 * (1 + fabs(want)),
			              "%s param %d: %.9g, want %.9g", type == NN_AVG_POLYAK ? "polyak" : "ema",
			              (int)i, p[i], want);
		}
		nn_model_free(m);
	}
	free_problem(&pr);
}
END_TEST

/* ---------------------------------------------------------------- batch norm */

/* batch_norm first, on raw inputs: its population statistics are the
 * column means and unbiased variances of x. */
static nn_model *bn_first(void)
{
	nn_layer_spec l[2];
	l[0] = nn_layer_default(NN_LAYER_BATCH_NORM);
	l[1] = nn_layer_default(NN_LAYER_DENSE);
	l[1].units = 5;
	l[1].act = NN_ACT_RELU;
	nn_model_spec s = { NN_TASK_CLASSIFICATION, 4, 3, NN_INIT_AUTO, 2, l, 2 };
	char err[128];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	return m;
}

START_TEST(test_population_and_running_batch_norm_statistics)
{
	problem pr = make_problem(30, 4, 2);
	double mean[4] = { 0 }, var[4] = { 0 };
	for (int j = 0; j < 4; j++) {
		for (int i = 0; i < 30; i++)
			mean[j] += pr.x[i * 4 + j];
		mean[j] /= 30;
		for (int i = 0; i < 30; i++)
			var[j] += (pr.x[i * 4 + j] - mean[j]) * (pr.x[i * 4 + j] - mean[j]);
		var[j] /= 29;
	}
	for (int pop = 0; pop <= 1; pop++) {
		nn_model *m = bn_first();
		nn_train_config c = plain(3, 0.05f);
		c.bn_stats = pop ? NN_BN_POPULATION : NN_BN_RUNNING;
		char err[128];
		ck_assert_int_eq(nn_train(m, &pr.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
		                 NN_OK);
		nn_tensor rm = nn_model_tensor(m, 2), rv = nn_model_tensor(m, 3);
		ck_assert_int_eq(rm.kind, NN_T_RUNNING_MEAN);
		ck_assert_int_eq(rv.kind, NN_T_RUNNING_VAR);
		/* running: three full-batch steps with momentum 0.1 from 0 and 1 */
		double k = pop ? 1.0 : 1.0 - pow(0.9, 3);
		for (int j = 0; j < 4; j++) {
			ck_assert_float_eq_tol(rm.data[j], k * mean[j], 1e-4 * (1 + fabs(mean[j])));
			ck_assert_float_eq_tol(rv.data[j], (1 - k) + k * var[j], 1e-4 * (1 + var[j]));
		}
		nn_model_free(m);
	}
	free_problem(&pr);
}
END_TEST

/* ---------------------------------------------------------------- sparsity */

START_TEST(test_sparsity_keeps_at_most_max_nonzero_weights_within_bound)
{
	problem pr = make_problem(50, 4, 3);
	nn_model *m = mlp(4, 0, 0);
	nn_train_config c = plain(4, 0.1f);
	c.batch_size = 10;
	c.sparsity.enabled = 1;
	c.sparsity.max_nonzero = 12;
	c.sparsity.start_epoch = 1;
	c.sparsity.bound = 0.3f;
	char err[128];
	ck_assert_int_eq(nn_train(m, &pr.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err), NN_OK);
	int nonzero = 0;
	for (int i = 0; i < nn_model_tensor_count(m); i++) {
		nn_tensor t = nn_model_tensor(m, i);
		for (int k = 0; k < t.rows * t.cols; k++) {
			if (t.kind == NN_T_WEIGHT)
				nonzero += t.data[k] != 0.0f;
			if (t.trainable)
				ck_assert_float_le(fabsf(t.data[k]), 0.3f);
		}
	}
	ck_assert_int_le(nonzero, 12);
	ck_assert_int_ge(nonzero, 6); /* the survivors are not all zeroed */
	nn_model_free(m);
	free_problem(&pr);
}
END_TEST

/* ---------------------------------------------------------------- divergence */

START_TEST(test_divergence_returns_ediverged)
{
	/* x = 1, y = 1, lr 1e6: s' - 1 = (1 - 4e6)(s - 1) overflows within steps */
	float x[1] = { 1 }, y[1] = { 1 };
	nn_data d = { 1, 1, 1, x, NULL, y, 0, 0, 0, NULL };
	nn_model *m = linear(0, 0);
	nn_train_config c = plain(50, 1e6f);
	char err[128] = "";
	nn_train_result res;
	ck_assert_int_eq(nn_train(m, &d, NULL, &c, NULL, NULL, 0, &res, err, sizeof err),
	                 NN_EDIVERGED);
	ck_assert_ptr_nonnull(strstr(err, "diverged"));
	ck_assert_int_lt(res.epochs_run, 50);
	ck_assert_int_gt(res.steps, 1);
	nn_model_free(m);

	/* also through a hidden layer on a classification problem */
	problem pr = make_problem(20, 4, 4);
	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = 5;
	l.act = NN_ACT_ELU;
	nn_model_spec s = { NN_TASK_REGRESSION, 4, 1, NN_INIT_AUTO, 1, &l, 1 };
	m = nn_model_create(&s, err, sizeof err);
	ck_assert_ptr_nonnull(m);
	float t[20];
	for (int i = 0; i < 20; i++)
		t[i] = 1000.0f * (float)pr.y[i];
	nn_data dr = { 20, 4, 1, pr.x, NULL, t, 0, 0, 0, NULL };
	ck_assert_int_eq(nn_train(m, &dr, NULL, &c, NULL, NULL, 0, &res, err, sizeof err),
	                 NN_EDIVERGED);
	nn_model_free(m);
	free_problem(&pr);
}
END_TEST

/* ---------------------------------------------------------------- determinism */

static nn_train_config busy(void)
{
	nn_train_config c = nn_train_config_default();
	c.epochs = 4;
	c.batch_size = 7;
	c.shuffle = 1;
	c.seed = 99;
	c.standardize = 1;
	c.val_fraction = 0.2f;
	c.opt = nn_optimizer_default(NN_OPT_ADAM);
	c.opt.lr = 0.01f;
	c.sched.type = NN_SCHED_COSINE;
	c.sched.min_lr = 0.001f;
	c.l2 = 0.001f;
	c.bn_stats = NN_BN_POPULATION;
	c.early.enabled = 1;
	c.early.patience = 10;
	c.early.restore_best = 0;
	c.avg.type = NN_AVG_POLYAK;
	c.avg.start_epoch = 1;
	c.aug.noise_std = 0.05f;
	c.clip_grad_norm = 5;
	c.log_every_steps = 1;
	c.checkpoint_every_epochs = 1;
	return c;
}

START_TEST(test_same_seed_gives_the_same_bytes)
{
	problem pr = make_problem(60, 4, 5);
	nn_train_config c = busy();
	nn_model *a = mlp(4, 1, 1), *b = mlp(4, 1, 1);
	char err[128];
	ck_assert_int_eq(nn_train(a, &pr.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err), NN_OK);
	ck_assert_int_eq(nn_train(b, &pr.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err), NN_OK);
	ck_assert(same_weights(a, b));
	/* and a different seed gives different weights */
	nn_model *d = mlp(4, 1, 1);
	c.seed = 100;
	ck_assert_int_eq(nn_train(d, &pr.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err), NN_OK);
	ck_assert(!same_weights(a, d));
	nn_model_free(a);
	nn_model_free(b);
	nn_model_free(d);
	free_problem(&pr);
}
END_TEST

/* ---------------------------------------------------------------- byte copy */

START_TEST(test_to_bytes_accepts_integers_0_to_255_only)
{
	float ok[20];
	uint8_t b[20];
	for (int i = 0; i < 20; i++)
		ok[i] = (float)(i * 13 % 256);
	ok[19] = 255.0f;
	ck_assert_int_eq(nn_to_bytes(b, ok, 20), 1);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(b[i], (int)ok[i]);
	/* each bad value, in the vector part (index 3) and in the tail (18) */
	const float bad[] = { 256.0f, -1.0f, 0.5f, 254.999f, NAN, INFINITY, -INFINITY, 1e9f };
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		for (int at = 3; at <= 18; at += 15) {
			float x[20];
			memcpy(x, ok, sizeof x);
			x[at] = bad[k];
			ck_assert_msg(nn_to_bytes(b, x, 20) == 0, "value %g at %d accepted", bad[k], at);
		}
	}
}
END_TEST

/* Byte-valued data (an image data set) trained through the byte copy and
 * through the floats: the same weights to the bit, standardisation and
 * noise included. */
START_TEST(test_byte_copy_trains_to_the_same_bits_as_the_floats)
{
	const int rows = 400, f = 24;
	problem pr = make_problem(rows, f, 11);
	for (int64_t i = 0; i < (int64_t)rows * f; i++)
		pr.x[i] = (float)((int)(fabsf(pr.x[i]) * 60.0f) % 256);
	nn_train_config c = busy();
	c.clip_grad_norm = 0;
	int64_t saved = nn_tune.byte_copy_min, made = nn_counts.byte_copies_made;
	char err[128];

	nn_model *viafloat = mlp(f, 1, 1), *viabytes = mlp(f, 1, 1);
	nn_tune.byte_copy_min = INT64_MAX;
	ck_assert_int_eq(nn_train(viafloat, &pr.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
	                 NN_OK);
	ck_assert_int_eq(nn_counts.byte_copies_made, made);
	nn_tune.byte_copy_min = 0;
	ck_assert_int_eq(nn_train(viabytes, &pr.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
	                 NN_OK);
	ck_assert_int_eq(nn_counts.byte_copies_made, made + 1);
	ck_assert(same_weights(viafloat, viabytes));

	/* one fractional value anywhere keeps the float path */
	pr.x[(int64_t)rows * f - 1] = 0.5f;
	nn_model *frac = mlp(f, 1, 1);
	ck_assert_int_eq(nn_train(frac, &pr.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
	                 NN_OK);
	ck_assert_int_eq(nn_counts.byte_copies_made, made + 1);
	nn_tune.byte_copy_min = saved;
	nn_model_free(viafloat);
	nn_model_free(viabytes);
	nn_model_free(frac);
	free_problem(&pr);
}
END_TEST

/* Data given only as bytes (nn_data.x8, x NULL; how the daemon stores image
 * data) trains, validates, augments and evaluates to the same bits as the
 * same values given as floats. */
START_TEST(test_bytes_only_data_trains_like_the_floats)
{
	const int rows = 300, f = 24; /* 4 x 6 images */
	problem pr = make_problem(rows, f, 13);
	uint8_t *x8 = malloc((size_t)rows * f);
	for (int64_t i = 0; i < (int64_t)rows * f; i++) {
		x8[i] = (uint8_t)((int)(fabsf(pr.x[i]) * 40.0f) % 256);
		pr.x[i] = x8[i];
	}
	pr.d.width = 6;
	pr.d.height = 4;
	pr.d.channels = 1;
	nn_data bytes = pr.d, both = pr.d;
	bytes.x = NULL;
	bytes.x8 = x8;
	both.x8 = x8;
	int64_t saved = nn_tune.byte_copy_min;
	nn_tune.byte_copy_min = 0; /* the float run makes its own byte copy */
	char err[128];

	for (int aug = 0; aug < 2; aug++) {
		nn_train_config c = busy();
		c.clip_grad_norm = 0;
		if (aug) {
			c.aug.flip_horizontal = 1;
			c.aug.translate_pixels = 1;
		}
		nn_model *a = mlp(f, 1, 1), *b = mlp(f, 1, 1), *ab = mlp(f, 1, 1);
		ck_assert_int_eq(nn_train(a, &pr.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
		                 NN_OK);
		ck_assert_int_eq(nn_train(b, &bytes, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
		                 NN_OK);
		ck_assert_int_eq(nn_train(ab, &both, &bytes, &c, NULL, NULL, 0, NULL, err, sizeof err),
		                 NN_OK);
		ck_assert_msg(same_weights(a, b), "aug %d: bytes only differ from floats", aug);
		float la, aa, lb, ab_acc;
		ck_assert_int_eq(nn_evaluate(a, &pr.d, &la, &aa), NN_OK);
		ck_assert_int_eq(nn_evaluate(a, &bytes, &lb, &ab_acc), NN_OK);
		ck_assert_float_eq(la, lb);
		ck_assert_float_eq(aa, ab_acc);
		ck_assert(isfinite(la));
		nn_model_free(a);
		nn_model_free(b);
		nn_model_free(ab);
	}
	/* neither x nor x8: refused */
	nn_data none = pr.d;
	none.x = NULL;
	nn_model *m = mlp(f, 1, 1);
	nn_train_config c = busy();
	ck_assert_int_eq(nn_train(m, &none, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
	                 NN_EINVAL);
	ck_assert_msg(strstr(err, "no rows") != NULL, "%s", err);
	nn_model_free(m);
	nn_tune.byte_copy_min = saved;
	free(x8);
	free_problem(&pr);
}
END_TEST

/* ---------------------------------------------------------------- checkpoints */

typedef struct saver {
	int want_epoch;        /* keep the checkpoint of this epoch end (-1: none) */
	int stop_at_call;      /* should_stop answers `answer` at this call (0: never) */
	int answer;
	int calls;
	void *buf;
	size_t len;
	int epoch;
	int64_t step;
} saver;

static int save(void *ctx, const void *buf, size_t len, int epoch, int64_t step)
{
	saver *s = ctx;
	if (s->buf || (s->want_epoch >= 0 && epoch != s->want_epoch))
		return 0;
	s->buf = malloc(len);
	memcpy(s->buf, buf, len);
	s->len = len;
	s->epoch = epoch;
	s->step = step;
	return 0;
}

static int stop(void *ctx)
{
	saver *s = ctx;
	s->calls++;
	if (s->want_epoch >= 0 && s->buf)
		return NN_STOP_CANCEL; /* got the epoch checkpoint: "crash" */
	return s->stop_at_call && s->calls == s->stop_at_call ? s->answer : NN_GO_ON;
}

START_TEST(test_resume_from_an_epoch_checkpoint_is_bit_identical)
{
	problem pr = make_problem(60, 4, 6);
	nn_train_config c = busy();
	char err[128];
	nn_model *straight = mlp(4, 1, 1);
	nn_train_result r1, r2;
	ck_assert_int_eq(nn_train(straight, &pr.d, NULL, &c, NULL, NULL, 0, &r1, err, sizeof err),
	                 NN_OK);

	/* 2 epochs, checkpoint, stop */
	nn_model *m = mlp(4, 1, 1);
	saver s = { .want_epoch = 2 };
	nn_callbacks cb = { .ctx = &s, .should_stop = stop, .on_checkpoint = save };
	ck_assert_int_eq(nn_train(m, &pr.d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err),
	                 NN_ESTOPPED);
	ck_assert_ptr_nonnull(s.buf);
	ck_assert_int_eq(s.epoch, 2);
	nn_model_free(m);

	/* a fresh model (other initial weights), restored, 2 more epochs */
	nn_model *resumed = mlp(4, 1, 1);
	nn_model_init(resumed, 12345);
	ck_assert_int_eq(nn_train(resumed, &pr.d, NULL, &c, NULL, s.buf, s.len, &r2, err,
	                          sizeof err), NN_OK);
	ck_assert(same_weights(straight, resumed));
	ck_assert_int_eq(r1.steps, r2.steps);
	ck_assert_int_eq(r1.epochs_run, r2.epochs_run);
	ck_assert_int_eq(r1.best_epoch, r2.best_epoch);
	ck_assert_float_eq(r1.last.train_loss, r2.last.train_loss);
	free(s.buf);
	nn_model_free(straight);
	nn_model_free(resumed);
	free_problem(&pr);
}
END_TEST

START_TEST(test_resume_from_a_mid_epoch_checkpoint_is_bit_identical)
{
	problem pr = make_problem(60, 4, 7);
	nn_train_config c = busy();
	c.checkpoint_every_epochs = 0;
	char err[128];
	nn_model *straight = mlp(4, 1, 1);
	ck_assert_int_eq(nn_train(straight, &pr.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
	                 NN_OK);

	/* 48 training rows, batch 7: 7 steps an epoch; stop before step 10 */
	nn_model *m = mlp(4, 1, 1);
	saver s = { .want_epoch = -1, .stop_at_call = 10, .answer = NN_STOP_CHECKPOINT };
	nn_callbacks cb = { .ctx = &s, .should_stop = stop, .on_checkpoint = save };
	nn_train_result r;
	ck_assert_int_eq(nn_train(m, &pr.d, NULL, &c, &cb, NULL, 0, &r, err, sizeof err),
	                 NN_ESTOPPED);
	ck_assert_ptr_nonnull(s.buf);
	ck_assert_int_eq(s.epoch, 1);
	ck_assert_int_eq(s.step, 9);
	ck_assert_int_eq(r.steps, 9);
	nn_model_free(m);

	nn_model *resumed = mlp(4, 1, 1);
	ck_assert_int_eq(nn_train(resumed, &pr.d, NULL, &c, NULL, s.buf, s.len, NULL, err,
	                          sizeof err), NN_OK);
	ck_assert(same_weights(straight, resumed));

	/* a corrupted and a truncated checkpoint are refused */
	unsigned char *bad = malloc(s.len);
	memcpy(bad, s.buf, s.len);
	bad[s.len / 2] ^= 0x40;
	nn_model *x = mlp(4, 1, 1);
	ck_assert_int_eq(nn_train(x, &pr.d, NULL, &c, NULL, bad, s.len, NULL, err, sizeof err),
	                 NN_ECORRUPT);
	ck_assert_int_eq(nn_train(x, &pr.d, NULL, &c, NULL, s.buf, s.len - 9, NULL, err,
	                          sizeof err), NN_ECORRUPT);
	ck_assert_int_eq(nn_train(x, &pr.d, NULL, &c, NULL, s.buf, 5, NULL, err, sizeof err),
	                 NN_ECORRUPT);
	/* and one of another config does not fit */
	c.batch_size = 8;
	ck_assert_int_eq(nn_train(x, &pr.d, NULL, &c, NULL, s.buf, s.len, NULL, err, sizeof err),
	                 NN_EINVAL);
	free(bad);
	free(s.buf);
	nn_model_free(x);
	nn_model_free(straight);
	nn_model_free(resumed);
	free_problem(&pr);
}
END_TEST

typedef struct counter {
	int calls, epochs[8];
	int fail;
} counter;

static int count_ckpt(void *ctx, const void *buf, size_t len, int epoch, int64_t step)
{
	counter *c = ctx;
	(void)step;
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_gt((int)len, 16);
	ck_assert(memcmp(buf, "NNDCKPT", 8) == 0);
	if (c->calls < 8)
		c->epochs[c->calls] = epoch;
	c->calls++;
	return c->fail;
}

START_TEST(test_checkpoints_come_every_n_epochs_and_a_failed_store_fails_training)
{
	problem pr = make_problem(20, 4, 10);
	nn_model *m = mlp(4, 0, 0);
	nn_train_config c = plain(5, 0.01f);
	c.checkpoint_every_epochs = 2;
	counter k = { 0 };
	nn_callbacks cb = { .ctx = &k, .on_checkpoint = count_ckpt };
	char err[128] = "";
	ck_assert_int_eq(nn_train(m, &pr.d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err), NN_OK);
	ck_assert_int_eq(k.calls, 2);
	ck_assert_int_eq(k.epochs[0], 2); /* epochs done when saved */
	ck_assert_int_eq(k.epochs[1], 4);

	k.calls = 0;
	k.fail = 1;
	ck_assert_int_eq(nn_train(m, &pr.d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err),
	                 NN_EINVAL);
	ck_assert_int_eq(k.calls, 1);
	ck_assert_ptr_nonnull(strstr(err, "checkpoint"));
	nn_model_free(m);
	free_problem(&pr);
}
END_TEST

/* ---------------------------------------------------------------- clipping, norms */

typedef struct epochs {
	int n;
	int n_norms;
	char name[32];
	float norm;
	float loss;
} epochs;

static void on_epoch(void *ctx, const nn_epoch_record *r)
{
	epochs *e = ctx;
	if (e->n++ == 0) {
		e->n_norms = r->n_grad_norms;
		if (r->n_grad_norms > 0) {
			strncpy(e->name, r->grad_norm_names[0], sizeof e->name - 1);
			e->norm = r->grad_norms[0];
		}
		e->loss = r->train_loss;
	}
}

/* x = 1, y = 10, w = b = 0: the MSE gradient is (-20, -20), norm 20 sqrt 2. */
START_TEST(test_clip_grad_norm_scales_the_gradient_to_the_clip)
{
	float x[1] = { 1 }, y[1] = { 10 };
	nn_data d = { 1, 1, 1, x, NULL, y, 0, 0, 0, NULL };
	nn_model *m = linear(0, 0);
	nn_train_config c = plain(1, 0.1f);
	c.clip_grad_norm = 1;
	epochs e = { 0 };
	nn_callbacks cb = { .ctx = &e, .on_epoch = on_epoch };
	char err[128];
	ck_assert_int_eq(nn_train(m, &d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err), NN_OK);
	int64_t np;
	float *p = nn_model_params(m, &np);
	double norm = 20 * sqrt(2.0), g = 20 / (norm + 1e-6);
	ck_assert_float_eq_tol(p[0], 0.1 * g, 1e-6);
	ck_assert_float_eq_tol(p[1], 0.1 * g, 1e-6);
	/* the reported norm is the one before clipping */
	ck_assert_int_eq(e.n_norms, 1);
	ck_assert_str_eq(e.name, "layers[0]");
	ck_assert_float_eq_tol(e.norm, norm, 1e-4);
	ck_assert_float_eq_tol(e.loss, 100, 1e-4);
	nn_model_free(m);

	/* below the clip nothing changes */
	m = linear(0, 0);
	c.clip_grad_norm = 100;
	ck_assert_int_eq(nn_train(m, &d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err), NN_OK);
	p = nn_model_params(m, &np);
	ck_assert_float_eq_tol(p[0], 2.0, 1e-6);
	nn_model_free(m);
}
END_TEST

START_TEST(test_grad_norms_are_reported_per_layer_with_parameters)
{
	problem pr = make_problem(20, 4, 8);
	nn_model *m = mlp(4, 1, 1); /* dense, bn, dropout, dense, output */
	nn_train_config c = plain(1, 0.01f);
	epochs e = { 0 };
	nn_callbacks cb = { .ctx = &e, .on_epoch = on_epoch };
	char err[128];
	ck_assert_int_eq(nn_train(m, &pr.d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err), NN_OK);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.n_norms, 4); /* layers[0], [1] (bn), [3], [4] (output) */
	ck_assert_str_eq(e.name, "layers[0]");
	ck_assert_float_gt(e.norm, 0);
	nn_model_free(m);
	free_problem(&pr);
}
END_TEST

/* ---------------------------------------------------------------- cancel */

START_TEST(test_cancel_stops_before_the_next_step)
{
	problem pr = make_problem(40, 4, 9);
	nn_model *m = mlp(4, 0, 0);
	nn_train_config c = plain(10, 0.01f);
	c.batch_size = 4;
	saver s = { .want_epoch = -1, .stop_at_call = 5, .answer = NN_STOP_CANCEL };
	nn_callbacks cb = { .ctx = &s, .should_stop = stop, .on_checkpoint = save };
	nn_train_result r;
	char err[128];
	ck_assert_int_eq(nn_train(m, &pr.d, NULL, &c, &cb, NULL, 0, &r, err, sizeof err),
	                 NN_ESTOPPED);
	ck_assert_int_eq(r.steps, 4);
	ck_assert_ptr_null(s.buf); /* cancel saves no checkpoint */
	nn_model_free(m);
	free_problem(&pr);
}
END_TEST

/* ---------------------------------------------------------------- standardisation */

START_TEST(test_standardize_stores_the_training_mean_and_population_std)
{
	/* column 0: 1, 2, 3, 4 (mean 2.5, population std sqrt(1.25));
	 * column 1: constant 7 (std 0 -> stored as 1) */
	float x[8] = { 1, 7, 2, 7, 3, 7, 4, 7 }, y[4] = { 0, 1, 0, 1 };
	nn_model_spec s = { NN_TASK_REGRESSION, 2, 1, NN_INIT_AUTO, 1, NULL, 0 };
	char err[128];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_ptr_nonnull(m);
	nn_data d = { 4, 2, 1, x, NULL, y, 0, 0, 0, NULL };
	nn_train_config c = plain(1, 0.01f);
	c.standardize = 1;
	ck_assert_int_eq(nn_train(m, &d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err), NN_OK);
	const float *mean = nn_model_std_mean(m), *sd = nn_model_std_std(m);
	ck_assert_ptr_nonnull(mean);
	ck_assert_ptr_nonnull(sd);
	ck_assert_float_eq_tol(mean[0], 2.5f, 1e-6);
	ck_assert_float_eq_tol(sd[0], sqrtf(1.25f), 1e-6);
	ck_assert_float_eq_tol(mean[1], 7.0f, 1e-6);
	ck_assert_float_eq(sd[1], 1.0f);
	nn_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- config, evaluate */

START_TEST(test_config_check_names_the_bad_field)
{
	char err[128];
	nn_train_config c = nn_train_config_default();
	ck_assert_int_eq(nn_train_config_check(&c, err, sizeof err), NN_OK);
	c.opt.lr = -1;
	ck_assert_int_eq(nn_train_config_check(&c, err, sizeof err), NN_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "optimizer.lr"));
	c = nn_train_config_default();
	c.sched.type = NN_SCHED_CYCLICAL;
	c.sched.min_lr = 0.1f;
	c.sched.max_lr = 0.01f;
	ck_assert_int_eq(nn_train_config_check(&c, err, sizeof err), NN_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "schedule.max_lr"));
	c = nn_train_config_default();
	c.avg.type = NN_AVG_EMA;
	c.avg.decay = 1;
	ck_assert_int_eq(nn_train_config_check(&c, err, sizeof err), NN_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "averaging.decay"));
	c = nn_train_config_default();
	c.batch_size = 0;
	ck_assert_int_eq(nn_train_config_check(&c, err, sizeof err), NN_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "batch_size"));
}
END_TEST

START_TEST(test_evaluate_reports_loss_and_accuracy)
{
	/* two classes by the sign of x: a model with w = (10, -10) per class is
	 * right on every row */
	float x[4] = { -2, -1, 1, 2 };
	int32_t y[4] = { 1, 1, 0, 0 };
	nn_model_spec s = { NN_TASK_CLASSIFICATION, 1, 2, NN_INIT_AUTO, 1, NULL, 0 };
	char err[128];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_ptr_nonnull(m);
	int64_t np;
	float *p = nn_model_params(m, &np);
	ck_assert_int_eq(np, 4);
	p[0] = 10; p[1] = -10; p[2] = 0; p[3] = 0;
	nn_data d = { 4, 1, 2, x, y, NULL, 0, 0, 0, NULL };
	float loss, acc;
	ck_assert_int_eq(nn_evaluate(m, &d, &loss, &acc), NN_OK);
	ck_assert_float_eq(acc, 1.0f);
	/* rows at |x| = 1: log(1 + e^-20); at 2: log(1 + e^-40) */
	ck_assert_float_eq_tol(loss, (2 * log1p(exp(-20.0)) + 2 * log1p(exp(-40.0))) / 4, 1e-6);
	y[0] = 0;
	ck_assert_int_eq(nn_evaluate(m, &d, &loss, &acc), NN_OK);
	ck_assert_float_eq(acc, 0.75f);
	/* the wrong row costs log(1 + e^40) ~ 40 */
	ck_assert_float_eq_tol(loss, 40.0 / 4, 1e-4);
	nn_model_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("train");
	TCase *tc = tcase_create("train");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_early_stopping_stops_after_patience_and_restores_the_best_epoch);
	tcase_add_test(tc, test_min_delta_counts_small_improvements_as_none);
	tcase_add_test(tc, test_early_stopping_without_validation_is_rejected);
	tcase_add_test(tc, test_polyak_average_is_the_mean_of_the_iterates_from_start_epoch);
	tcase_add_test(tc, test_population_and_running_batch_norm_statistics);
	tcase_add_test(tc, test_sparsity_keeps_at_most_max_nonzero_weights_within_bound);
	tcase_add_test(tc, test_divergence_returns_ediverged);
	tcase_add_test(tc, test_same_seed_gives_the_same_bytes);
	tcase_add_test(tc, test_to_bytes_accepts_integers_0_to_255_only);
	tcase_add_test(tc, test_byte_copy_trains_to_the_same_bits_as_the_floats);
	tcase_add_test(tc, test_bytes_only_data_trains_like_the_floats);
	tcase_add_test(tc, test_resume_from_an_epoch_checkpoint_is_bit_identical);
	tcase_add_test(tc, test_resume_from_a_mid_epoch_checkpoint_is_bit_identical);
	tcase_add_test(tc, test_checkpoints_come_every_n_epochs_and_a_failed_store_fails_training);
	tcase_add_test(tc, test_clip_grad_norm_scales_the_gradient_to_the_clip);
	tcase_add_test(tc, test_grad_norms_are_reported_per_layer_with_parameters);
	tcase_add_test(tc, test_cancel_stops_before_the_next_step);
	tcase_add_test(tc, test_standardize_stores_the_training_mean_and_population_std);
	tcase_add_test(tc, test_config_check_names_the_bad_field);
	tcase_add_test(tc, test_evaluate_reports_loss_and_accuracy);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
