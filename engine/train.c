/*
 * train.c - the training loop (nn_train), evaluation (nn_evaluate) and the
 * job config's defaults and checks.
 *
 * One run is an nn_trainer (trainer.h): every buffer is sized once before the
 * first step and a step allocates nothing. A step: ask should_stop; gather
 * the batch rows into one buffer (augmenting raw images, standardising,
 * adding noise); forward, loss, backward; add the l2 term to dense weights'
 * gradients; measure per-layer gradient norms; clip to the global norm; the
 * optimizer; sparsity; averaging. Randomness (the split, each epoch's
 * shuffle, dropout, augmentation, noise) comes from the one generator
 * seeded with cfg->seed, in that order, so a run is a pure function of its
 * inputs and a checkpoint of the trainer continues it bit for bit.
 *
 * Choices where the contract is silent:
 *  - Standardisation: mean and population std of the training split; a std
 *    below 1e-7 (a constant feature) is stored as 1. With standardize off,
 *    the model's existing standardisation (if any) is kept and applied.
 *  - The validation split (val_fraction): a seeded shuffle of all rows; the
 *    last round(rows * fraction) rows (at least one) validate, the rest
 *    train. Both keep ascending row order, so shuffle = false trains in
 *    data order.
 *  - Validation runs in inference mode on the current weights (not the
 *    average) with the running batch-norm statistics, also when the job
 *    publishes population statistics (those are computed once, after
 *    training).
 *  - Gradient norms are of the data-loss gradient plus the l2 term, before
 *    clipping. The l2 term is added before clipping (it is part of the loss).
 *  - What is published: with early stopping's restore_best, the weights and
 *    running statistics of the best validated epoch; otherwise, with
 *    averaging started, the averaged weights, whose batch-norm statistics are
 *    recomputed over the training split; otherwise the last weights. With
 *    batch_norm_stats = population the statistics are recomputed at the end
 *    in every case.
 *  - Sparsity's bound <= 0 means no clamping.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "trainer.h"
#include "tune.h"
#include "sparse_in.h"

/* ---------------------------------------------------------------- config */

nn_train_config nn_train_config_default(void)
{
	nn_train_config c;
	memset(&c, 0, sizeof c);
	c.epochs = 10;
	c.batch_size = 32;
	c.shuffle = 1;
	c.seed = 0;
	c.val_fraction = 0;
	c.opt = nn_optimizer_default(NN_OPT_SGD);
	c.sched.type = NN_SCHED_CONSTANT;
	c.sched.step_epochs = 10;
	c.sched.gamma = 0.1f;
	c.sched.k = 0.1f;
	c.sched.power = 1;
	c.sched.min_lr = 0;
	c.sched.max_lr = 0;
	c.sched.half_cycle_epochs = 2;
	c.l2 = 0;
	c.standardize = 1;
	c.bn_stats = NN_BN_POPULATION;
	c.early.enabled = 0;
	c.early.patience = 5;
	c.early.min_delta = 0;
	c.early.restore_best = 1;
	c.avg.type = NN_AVG_NONE;
	c.avg.start_epoch = 0;
	c.avg.decay = 0.999f;
	c.sparsity.enabled = 0;
	c.sparsity.bound = 0;
	c.clip_grad_norm = 0;
	c.log_every_steps = 10;
	c.checkpoint_every_epochs = 1;
	c.sparse_kernels = 1;
	c.shards = 1;
	c.replicas = 1;
	return c;
}

#define CHECK(cond, ...)                                          \
	do {                                                      \
		if (!(cond)) {                                    \
			nn_errf(err, errlen, __VA_ARGS__);        \
			return NN_EINVAL;                         \
		}                                                 \
	} while (0)

/* finite and >= 0 */
static int nonneg(float v) { return isfinite(v) && v >= 0; }
/* in [0, 1) */
static int unit(float v) { return isfinite(v) && v >= 0 && v < 1; }

nn_status nn_train_config_check(const nn_train_config *c, char *err, size_t errlen)
{
	const nn_optimizer *o = &c->opt;
	const nn_schedule *s = &c->sched;
	const nn_augment *a = &c->aug;

	CHECK(c, "config: missing");
	CHECK(c->epochs >= 1, "epochs: must be a positive integer");
	CHECK(c->batch_size >= 1, "batch_size: must be a positive integer");
	CHECK(unit(c->val_fraction), "validation.fraction: must be in [0, 1)");
	CHECK(c->rows >= 0, "rows: must be a positive integer");
	CHECK(c->stop_at_epoch >= 0, "stop_at_epoch: must not be negative");
	CHECK((unsigned)o->type <= NN_OPT_ADAMW, "optimizer.type: unknown optimizer");
	CHECK(isfinite(o->lr) && o->lr > 0, "optimizer.lr: must be a positive number");
	CHECK(unit(o->momentum), "optimizer.momentum: must be in [0, 1)");
	CHECK(unit(o->beta1), "optimizer.beta1: must be in [0, 1)");
	CHECK(unit(o->beta2), "optimizer.beta2: must be in [0, 1)");
	CHECK(nonneg(o->eps), "optimizer.eps: must be a number >= 0");
	CHECK(unit(o->rho), "optimizer.rho: must be in [0, 1)");
	CHECK(nonneg(o->weight_decay), "optimizer.weight_decay: must be a number >= 0");

	CHECK((unsigned)s->type <= NN_SCHED_COSINE, "schedule.type: unknown schedule");
	CHECK(s->type != NN_SCHED_STEP || (isfinite(s->step_epochs) && s->step_epochs > 0),
	      "schedule.step_epochs: must be a positive number");
	CHECK(s->type != NN_SCHED_STEP || (isfinite(s->gamma) && s->gamma > 0),
	      "schedule.gamma: must be a positive number");
	CHECK(nonneg(s->k), "schedule.k: must be a number >= 0");
	CHECK(nonneg(s->power), "schedule.power: must be a number >= 0");
	CHECK(nonneg(s->min_lr), "schedule.min_lr: must be a number >= 0");
	CHECK(nonneg(s->max_lr), "schedule.max_lr: must be a number >= 0");
	CHECK(s->type != NN_SCHED_CYCLICAL || (s->max_lr > s->min_lr),
	      "schedule.max_lr: must be greater than min_lr");
	CHECK(s->type != NN_SCHED_CYCLICAL ||
	      (isfinite(s->half_cycle_epochs) && s->half_cycle_epochs > 0),
	      "schedule.half_cycle_epochs: must be a positive number");
	CHECK(nonneg(s->warmup_epochs), "schedule.warmup_epochs: must be a number >= 0");

	CHECK(nonneg(c->l2), "l2: must be a number >= 0");
	CHECK(c->bn_stats == NN_BN_POPULATION || c->bn_stats == NN_BN_RUNNING,
	      "batch_norm_stats: must be population or running");
	if (c->early.enabled) {
		CHECK(c->early.patience >= 0, "early_stopping.patience: must be an integer >= 0");
		CHECK(nonneg(c->early.min_delta), "early_stopping.min_delta: must be a number >= 0");
	}
	CHECK((unsigned)c->avg.type <= NN_AVG_EMA, "averaging.type: unknown averaging");
	if (c->avg.type != NN_AVG_NONE)
		CHECK(c->avg.start_epoch >= 0, "averaging.start_epoch: must be an integer >= 0");
	if (c->avg.type == NN_AVG_EMA)
		CHECK(isfinite(c->avg.decay) && c->avg.decay > 0 && c->avg.decay < 1,
		      "averaging.decay: must be in (0, 1)");

	CHECK(isfinite(a->rotate_degrees) && a->rotate_degrees >= 0 && a->rotate_degrees <= 180,
	      "augment.rotate_degrees: must be in [0, 180]");
	CHECK(nonneg(a->translate_pixels), "augment.translate_pixels: must be a number >= 0");
	CHECK(nonneg(a->scale_min) && nonneg(a->scale_max) && a->scale_min <= a->scale_max &&
	      ((a->scale_min == 0 && a->scale_max == 0) || a->scale_min > 0),
	      "augment.scale: must be [min, max] with 0 < min <= max");
	CHECK(a->crop_padding >= 0, "augment.crop_padding: must be an integer >= 0");
	CHECK(nonneg(a->brightness), "augment.brightness: must be a number >= 0");
	CHECK(isfinite(a->contrast) && a->contrast >= 0 && a->contrast <= 1,
	      "augment.contrast: must be in [0, 1]");
	CHECK(nonneg(a->noise_std), "augment.noise_std: must be a number >= 0");

	if (c->sparsity.enabled) {
		CHECK(c->sparsity.max_nonzero >= 0, "sparsity.max_nonzero: must be an integer >= 0");
		CHECK(c->sparsity.start_epoch >= 0, "sparsity.start_epoch: must be an integer >= 0");
		CHECK(nonneg(c->sparsity.bound), "sparsity.bound: must be a number >= 0");
	}
	CHECK(nonneg(c->clip_grad_norm), "clip_grad_norm: must be a number >= 0");
	CHECK(c->log_every_steps >= 1, "log_every_steps: must be a positive integer");
	CHECK(c->checkpoint_every_epochs >= 0,
	      "checkpoint_every_epochs: must be an integer >= 0");
	CHECK(c->shards >= 1 && c->shards <= NN_MAX_SHARDS, "shards: must be an integer in [1, %d]",
	      NN_MAX_SHARDS);
	CHECK(c->replicas >= 1 && c->replicas <= c->shards && c->shards % c->replicas == 0,
	      "replicas: must be a positive integer that divides shards");
	return NN_OK;
}

/* ---------------------------------------------------------------- helpers */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void shuffle(int64_t *v, int64_t n, nn_rng *rng)
{
	for (int64_t i = n - 1; i > 0; i--) {
		int64_t j = (int64_t)nn_rng_below(rng, (uint64_t)i + 1);
		int64_t x = v[i];
		v[i] = v[j];
		v[j] = x;
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Rows that validate out of rows (0 with a validation set). */
static int64_t split_size(int64_t rows, int has_val, const nn_train_config *cfg)
{
	int64_t n_va = 0;
	if (!has_val && cfg->val_fraction > 0) {
		n_va = (int64_t)llround((double)rows * cfg->val_fraction);
		if (n_va < 1)
			n_va = 1;
	}
	return n_va;
}

/* v[0..k), distinct values below n, in ascending order and v[k..n) the
 * other values below n, ascending: one mark per value and a pass over
 * them, instead of sorting (a study's small trials split their data each
 * time). Sorts the two parts when the marks cannot be had. */
static void sort_parts(int64_t *v, int64_t k, int64_t n)
{
	uint8_t *mark = calloc((size_t)n, 1);
	if (!mark) {
		qsort(v, (size_t)k, sizeof(int64_t), cmp_i64);
		qsort(v + k, (size_t)(n - k), sizeof(int64_t), cmp_i64);
		return;
	}
	for (int64_t i = 0; i < k; i++)
		mark[v[i]] = 1;
	int64_t a = 0, b = k;
	for (int64_t x = 0; x < n; x++) {
		if (mark[x])
			v[a++] = x;
		else
			v[b++] = x;
	}
	free(mark);
}

/* idx[0..rows) = the training rows then the n_va validating ones, each
 * part ascending (the split is the first draw of rng). */
static void split_rows(int64_t *idx, int64_t rows, int64_t n_va, nn_rng *rng)
{
	for (int64_t i = 0; i < rows; i++)
		idx[i] = i;
	if (!n_va)
		return;
	shuffle(idx, rows, rng);
	sort_parts(idx, rows - n_va, rows);
}

nn_status nn_train_split(int64_t rows, int has_val, const nn_train_config *cfg, int64_t *idx,
                         int64_t *n_train)
{
	*n_train = 0;
	if (rows < 1)
		return NN_EINVAL;
	int64_t n_va = split_size(rows, has_val, cfg);
	if (rows - n_va < 1)
		return NN_EINVAL;
	nn_rng rng;
	nn_rng_seed(&rng, cfg->seed);
	split_rows(idx, rows, n_va, &rng);
	*n_train = rows - n_va;
	return NN_OK;
}

/* Checks that d fits the model: widths, labels or targets, image shape. */
static nn_status check_data(const nn_model *m, const nn_data *d, const char *what, char *err,
                            size_t errlen)
{
	const nn_model_spec *s = nn_model_spec_of(m);
	CHECK(d->rows >= 1 && (d->x || d->x8), "%s: no rows", what);
	CHECK(d->features == s->inputs, "%s: %d features, the model takes %d", what, d->features,
	      s->inputs);
	CHECK(d->outputs == s->outputs, "%s: %d outputs, the model has %d", what, d->outputs,
	      s->outputs);
	if (s->task == NN_TASK_CLASSIFICATION) {
		CHECK(d->labels, "%s: classification needs labels", what);
		for (int64_t i = 0; i < d->rows; i++)
			CHECK(d->labels[i] >= 0 && d->labels[i] < s->outputs,
			      "%s: label %d of row %lld is out of range", what, (int)d->labels[i],
			      (long long)i);
	} else {
		CHECK(d->targets, "%s: regression needs targets", what);
	}
	return NN_OK;
}

NN_HOT static void standardize_row(float *restrict dst, const float *restrict src,
                            const float *restrict mean, const float *restrict sd, int f)
{
	for (int j = 0; j < f; j++)
		dst[j] = (src[j] - mean[j]) / sd[j];
}

/* The same from a row of bytes: (float)b is exact, so the result is the
 * float path's to the bit. */
NN_HOT static void standardize_row8(float *restrict dst, const uint8_t *restrict src,
                             const float *restrict mean, const float *restrict sd, int f)
{
	for (int j = 0; j < f; j++)
		dst[j] = ((float)src[j] - mean[j]) / sd[j];
}

NN_HOT static void widen_row8(float *restrict dst, const uint8_t *restrict src, int f)
{
	for (int j = 0; j < f; j++)
		dst[j] = (float)src[j];
}

static int to_bytes_scalar(uint8_t *restrict dst, const float *restrict src, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		float v = src[i];
		if (!(v >= 0.0f && v <= 255.0f) || (float)(int)v != v)
			return 0;
		dst[i] = (uint8_t)(int)v;
	}
	return 1;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The same, 16 at a time: gcc does not vectorise the checked conversion. */
__attribute__((target("avx512f"))) static int to_bytes_avx512(uint8_t *restrict dst,
                                                              const float *restrict src,
                                                              int64_t n)
{
	const __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.0f);
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512 v = _mm512_loadu_ps(src + i);
		/* in range (false for NaN) and equal to its truncation */
		__mmask16 ok = _mm512_cmp_ps_mask(v, lo, _CMP_GE_OQ) &
		               _mm512_cmp_ps_mask(v, hi, _CMP_LE_OQ);
		__m512i k = _mm512_cvttps_epi32(v);
		ok &= _mm512_cmp_ps_mask(_mm512_cvtepi32_ps(k), v, _CMP_EQ_OQ);
		if (ok != 0xffff)
			return 0;
		_mm_storeu_si128((__m128i *)(dst + i), _mm512_cvtepi32_epi8(k));
	}
	return to_bytes_scalar(dst + i, src + i, n - i);
}
#endif

int nn_to_bytes(uint8_t *restrict dst, const float *restrict src, int64_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (__builtin_cpu_supports("avx512f"))
		return to_bytes_avx512(dst, src, n);
#endif
	return to_bytes_scalar(dst, src, n);
}

/*
 * Image data (IDX uploads, pixel CSVs) hold integers 0..255 in floats. The
 * random rows a step gathers come from all over a data set far larger than
 * the caches, so the gather waits on memory; reading them from a byte copy
 * moves a quarter of the bytes. The copy costs one pass at the start and a
 * quarter of the data set's memory, so it is made only for data sets of at
 * least 4 MiB of floats and without image augmentation (which works on the
 * float image). Any other value anywhere keeps the float path. The steps'
 * numbers are the same to the bit either way.
 */

static nn_status byte_copy(nn_trainer *t)
{
	const nn_data *d = t->train;
	int64_t n = d->rows * (int64_t)d->features;
	if (d->x8) {
		/* the caller's bytes: nothing to copy */
		t->x8 = (uint8_t *)d->x8;
		t->x8_owned = 0;
		return NN_OK;
	}
	if (n < nn_tune.byte_copy_min || n <= 0 || nn_augment_has_image(&t->cfg.aug))
		return NN_OK;
	/* 2 MiB aligned and marked for huge pages: the gather reads rows at
	 * random, and with 4 KiB pages nearly every row also costs a page walk */
	const size_t huge = (size_t)2 << 20;
	size_t len = ((size_t)n + huge - 1) / huge * huge;
	t->x8 = aligned_alloc(huge, len);
	if (!t->x8)
		return NN_OK; /* an optimisation only: go on without it */
	nn_huge_pages(t->x8, len);
	t->x8_owned = 1;
	const int64_t chunk = (int64_t)1 << 16;
	for (int64_t i = 0; i < n; i += chunk) {
		if (!nn_to_bytes(t->x8 + i, d->x + i, n - i < chunk ? n - i : chunk)) {
			free(t->x8);
			t->x8 = NULL;
			return NN_OK;
		}
	}
	NN_TEST_COUNT(byte_copies_made);
	return NN_OK;
}

/*
 * With a byte copy, decides whether node 0's forward product runs from the
 * non-zero bytes (sparse_in.h): the model must allow it, the CPU must run
 * the kernels, no input noise may fill the zeros, and the data must be
 * sparse enough to pay (measured on every 16th row).
 */
static nn_status sparse_setup(nn_trainer *t)
{
	int out = 0;
	if (!t->cfg.sparse_kernels || !nn_sparse_in_supported())
		return NN_OK;
	/* hidden dense layers fed by a ReLU, large enough to pay; each step
	 * decides from its own batch's density (layer_dense.c) */
	t->n_nodes = nn_model_nodes(t->m);
	t->sph = calloc((size_t)t->n_nodes + 1, sizeof(*t->sph));
	if (!t->sph)
		return NN_OK;
	for (int k = 1; k < t->n_nodes; k++) {
		int in = 0, o = 0;
		if (nn_model_sparse_hidden(t->m, k, &in, &o) && (int64_t)in * o >= nn_tune.sparse_hidden_min) {
			t->sph[k] = nn_sparse_in_create(t->max_batch, in, o);
			nn_ws_set_sparse_in(t->ws, k, t->sph[k]);
		}
	}
	if (!t->x8 || t->cfg.aug.noise_std > 0 || nn_augment_has_image(&t->cfg.aug) ||
	    !nn_model_sparse_first(t->m, &t->sp_w_off, &t->sp_b_off, &out))
		return NN_OK;
	const int f = t->features;
	int64_t nz = 0, seen = 0;
	for (int64_t r = 0; r < t->train->rows; r += 16) {
		const uint8_t *row = t->x8 + r * f;
		for (int j = 0; j < f; j++)
			nz += row[j] != 0;
		seen += f;
	}
	if (seen == 0 || (double)nz > (double)nn_tune.sparse_max_density * (double)seen)
		return NN_OK;
	t->sp_w_len = (int64_t)out * f;
	t->sp = nn_sparse_in_create(t->max_batch, f, out);
	if (t->sp) {
		nn_ws_set_sparse_in(t->ws, 0, t->sp);
		NN_TEST_COUNT(sparse_runs);
	}
	return NN_OK; /* without memory for it, the dense path */
}

void nn_trainer_gather(nn_trainer *t, const nn_batch *b, const nn_data *d, const int64_t *idx,
                       int64_t start, int n, int train)
{
	const int f = t->features, o = t->outputs;
	const float *mean = nn_model_std_mean(t->m), *sd = nn_model_std_std(t->m);
	const nn_augment *a = &t->cfg.aug;
	int aug = train && nn_augment_has_image(a);
	float noise = train ? a->noise_std : 0.0f;

	const uint8_t *x8 = d == t->train ? t->x8 : d->x8;
	nn_sparse_in *sp = train && x8 && d == t->train ? b->sp : NULL;
	if (sp)
		nn_sparse_in_begin(sp);

	for (int i = 0; i < n; i++) {
		int64_t r = idx ? idx[start + i] : start + i;
		const float *src = d->x + r * f;
		float *dst = b->bx + (int64_t)i * f;
		if (x8) {
			const uint8_t *s8 = x8 + r * f;
			if (i + 8 < n) {
				/* the row (and its label) eight ahead */
				int64_t r8 = idx ? idx[start + i + 8] : start + i + 8;
				const char *nx = (const char *)(x8 + r8 * f);
				for (int o8 = 0; o8 < f; o8 += 64)
					__builtin_prefetch(nx + o8);
				if (b->by)
					__builtin_prefetch(d->labels + r8);
			}
			/* the sparse path reads the bytes only: no dense row */
			if (sp) {
				nn_sparse_in_add_row(sp, s8);
			} else if (aug) {
				/* the augmentation works on a float image */
				widen_row8(dst, s8, f);
				nn_augment_image(a, dst, b->img, d->width, d->height, d->channels,
				                 b->rng);
				if (mean && sd)
					standardize_row(dst, b->img, mean, sd, f);
				else
					memcpy(dst, b->img, sizeof(float) * (size_t)f);
			} else if (mean && sd) {
				standardize_row8(dst, s8, mean, sd, f);
			} else {
				widen_row8(dst, s8, f);
			}
		} else if (i + 4 < n) {
			/* rows are scattered over the data set: ask for the one four
			 * ahead now, so it is in cache when its turn comes */
			int64_t r4 = idx ? idx[start + i + 4] : start + i + 4;
			const char *nx = (const char *)(d->x + r4 * f);
			for (size_t o8 = 0; o8 < sizeof(float) * (size_t)f; o8 += 64)
				__builtin_prefetch(nx + o8);
		}
		if (!x8) {
			if (aug) {
				nn_augment_image(a, src, b->img, d->width, d->height, d->channels,
				                 b->rng);
				src = b->img;
			}
			if (mean && sd)
				standardize_row(dst, src, mean, sd, f);
			else
				memcpy(dst, src, sizeof(float) * (size_t)f);
		}
		if (noise > 0)
			for (int j = 0; j < f; j++)
				dst[j] += noise * nn_rng_normal(b->rng);
		if (b->by)
			b->by[i] = d->labels[r];
		else
			memcpy(b->bt + (int64_t)i * o, d->targets + r * o, sizeof(float) * (size_t)o);
	}
}

/* Inference-mode mean loss and accuracy of the model on rows of d. */
static void evaluate_rows(nn_trainer *t, const nn_data *d, const int64_t *idx, int64_t rows,
                          float *loss, float *acc)
{
	double lsum = 0;
	int64_t correct = 0;
	const int o = t->outputs;

	for (int64_t start = 0; start < rows; start += t->max_batch) {
		int n = (int)(rows - start < t->max_batch ? rows - start : t->max_batch);
		nn_trainer_gather(t, &t->batch, d, idx, start, n, 0);
		const float *out = nn_forward(t->m, t->ws, t->bx, n, 0, NULL);
		if (!out) {
			*loss = *acc = NAN;
			return;
		}
		lsum += (double)nn_loss(t->m, t->ws, t->by, t->bt, n, 0) * n;
		if (t->by) {
			for (int i = 0; i < n; i++) {
				const float *z = out + (int64_t)i * o;
				int best = 0;
				for (int k = 1; k < o; k++)
					if (z[k] > z[best])
						best = k;
				correct += best == t->by[i];
			}
		}
	}
	*loss = (float)(lsum / (double)rows);
	*acc = t->by ? (float)((double)correct / (double)rows) : NAN;
}

/* Sum of squares in 16 independent float lanes (vectorisable, and in a
 * fixed order, so the result does not depend on the BLAS or threads). */
NN_HOT double nn_sumsq(const float *restrict v, int64_t n)
{
	float acc[16] = { 0 };
	int64_t i = 0;
	double s = 0;
	for (; i + 16 <= n; i += 16)
		for (int k = 0; k < 16; k++)
			acc[k] += v[i + k] * v[i + k];
	for (int k = 0; k < 16; k++)
		s += acc[k];
	for (; i < n; i++)
		s += (double)v[i] * v[i];
	return s;
}

/* Value at index k of v[0..n) if sorted ascending (v is reordered). */
static float select_kth(float *v, int64_t n, int64_t k)
{
	int64_t lo = 0, hi = n - 1;
	while (lo < hi) {
		float a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
		float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
		int64_t i = lo, j = hi;
		while (i <= j) {
			while (v[i] < pivot)
				i++;
			while (v[j] > pivot)
				j--;
			if (i <= j) {
				float x = v[i];
				v[i] = v[j];
				v[j] = x;
				i++;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return v[k];
	}
	return v[k];
}

/* Keeps the max_nonzero largest-magnitude dense weights (ties broken by
 * position), zeroes the rest, and clamps every parameter to the bound. */
static void sparsify(nn_trainer *t, float *p, int64_t np)
{
	int64_t k = t->cfg.sparsity.max_nonzero;
	float bound = t->cfg.sparsity.bound;

	if (k < t->n_weights) {
		int64_t j = 0;
		for (int r = 0; r < t->n_wr; r++)
			for (int64_t i = 0; i < t->wr_len[r]; i++)
				t->mag[j++] = fabsf(p[t->wr_off[r] + i]);
		float thr = k > 0 ? select_kth(t->mag, t->n_weights, t->n_weights - k) : INFINITY;
		int64_t above = 0;
		for (int r = 0; r < t->n_wr; r++)
			for (int64_t i = 0; i < t->wr_len[r]; i++)
				above += fabsf(p[t->wr_off[r] + i]) > thr;
		int64_t ties = k - above;
		for (int r = 0; r < t->n_wr; r++) {
			float *w = p + t->wr_off[r];
			for (int64_t i = 0; i < t->wr_len[r]; i++) {
				float m = fabsf(w[i]);
				if (m > thr)
					continue;
				if (m == thr && ties > 0) {
					ties--;
					continue;
				}
				w[i] = 0.0f;
			}
		}
	}
	if (bound > 0) {
		for (int64_t i = 0; i < np; i++) {
			if (p[i] > bound)
				p[i] = bound;
			else if (p[i] < -bound)
				p[i] = -bound;
		}
	}
}

/* ---------------------------------------------------------------- setup */

static void trainer_release(nn_trainer *t)
{
	nn_shard_release(t);
	nn_ws_free(t->ws);
	free(t->tr_idx);
	free(t->va_idx);
	free(t->perm);
	free(t->group_off);
	free(t->group_len);
	free(t->group_names);
	free(t->gn_sum);
	free(t->gn_mean);
	free(t->wr_off);
	free(t->wr_len);
	free(t->part_off);
	free(t->part_len);
	free(t->mag);
	free(t->bx);
	free(t->by);
	free(t->bt);
	free(t->img);
	if (t->x8_owned)
		free(t->x8);
	nn_sparse_in_free(t->sp);
	for (int k = 0; t->sph && k < t->n_nodes; k++)
		nn_sparse_in_free(t->sph[k]);
	free(t->sph);
	free(t->s1);
	free(t->s2);
	free(t->avg);
	free(t->best_params);
	free(t->best_state);
	memset(t, 0, sizeof *t);
}

/* sum[j] += x[j] and sq[j] += (x[j] - mean[j])^2, per feature (vectorised
 * across features; each feature's sum keeps its row order). */
NN_HOT static void add_row(double *restrict sum, const float *restrict x, int f)
{
	for (int j = 0; j < f; j++)
		sum[j] += x[j];
}

NN_HOT static void add_sq_dev(double *restrict sq, const double *restrict mean,
                              const float *restrict x, int f)
{
	for (int j = 0; j < f; j++) {
		double dlt = x[j] - mean[j];
		sq[j] += dlt * dlt;
	}
}

NN_HOT static void add_row8(double *restrict sum, const uint8_t *restrict x, int f)
{
	for (int j = 0; j < f; j++)
		sum[j] += x[j];
}

NN_HOT static void add_sq_dev8(double *restrict sq, const double *restrict mean,
                               const uint8_t *restrict x, int f)
{
	for (int j = 0; j < f; j++) {
		double dlt = x[j] - mean[j];
		sq[j] += dlt * dlt;
	}
}

/* Mean and population std of the training split, into the model. */
static nn_status set_standardize(nn_trainer *t)
{
	const int f = t->features;
	double *sum = calloc((size_t)f * 2, sizeof(double));
	float *mean = malloc(sizeof(float) * (size_t)f * 2);
	if (!sum || !mean) {
		free(sum);
		free(mean);
		return NN_ENOMEM;
	}
	double *sq = sum + f;
	float *sd = mean + f;
	/* from the byte copy when there is one: the same values, a quarter of
	 * the memory to read */
	const uint8_t *x8 = t->x8;
	for (int64_t i = 0; i < t->n_tr; i++) {
		if (x8)
			add_row8(sum, x8 + t->tr_idx[i] * f, f);
		else
			add_row(sum, t->train->x + t->tr_idx[i] * f, f);
	}
	for (int j = 0; j < f; j++)
		sum[j] /= (double)t->n_tr;
	/* two passes: the variance about the mean, without cancellation */
	for (int64_t i = 0; i < t->n_tr; i++) {
		if (x8)
			add_sq_dev8(sq, sum, x8 + t->tr_idx[i] * f, f);
		else
			add_sq_dev(sq, sum, t->train->x + t->tr_idx[i] * f, f);
	}
	const uint8_t *skip = t->cfg.std_skip;
	for (int j = 0; j < f; j++) {
		double s = sqrt(sq[j] / (double)t->n_tr);
		mean[j] = (float)sum[j];
		sd[j] = s < 1e-7 ? 1.0f : (float)s;
		if (skip && skip[j]) {
			mean[j] = 0.0f;  /* one-hot and indicator inputs stay as they are */
			sd[j] = 1.0f;
		}
	}
	nn_status st = nn_model_set_standardize(t->m, mean, sd);
	free(sum);
	free(mean);
	return st;
}

/* cfg->rows of the training split: the first rows of a shuffle of the
 * split by a generator of its own (so the run's own stream is untouched)
 * seeded from the job's seed, in ascending order. The same seed and split
 * shuffle the same way, so a smaller count's rows are a prefix of a
 * larger one's: learning curves train on nested samples. */
#define ROWS_SEED_MIX 0x6A09E667F3BCC909ull
void nn_rows_subset(int64_t *idx, int64_t n, int64_t k, uint64_t seed)
{
	nn_rng r;
	nn_rng_seed(&r, seed ^ ROWS_SEED_MIX);
	shuffle(idx, n, &r);
	qsort(idx, (size_t)k, sizeof(int64_t), cmp_i64);
}

static nn_status subset_rows(nn_trainer *t, const nn_train_config *cfg, char *err,
                             size_t errlen)
{
	CHECK(cfg->rows <= t->n_tr, "rows: %lld is more than the training split holds (%lld)",
	      (long long)cfg->rows, (long long)t->n_tr);
	if (cfg->rows == t->n_tr)
		return NN_OK;
	nn_rows_subset(t->tr_idx, t->n_tr, cfg->rows, cfg->seed);
	t->n_tr = cfg->rows;
	return NN_OK;
}

/* The trainable tensors grouped by layer (for gradient norms) and the
 * dense weights' ranges (for sparsity and L2), as offsets into params. */
static nn_status group_params(nn_trainer *t, nn_model *m, const float *params)
{
	int nt = nn_model_tensor_count(m);
	t->group_off = calloc((size_t)nt + 1, sizeof(int64_t));
	t->group_len = calloc((size_t)nt + 1, sizeof(int64_t));
	t->group_names = calloc((size_t)nt + 1, sizeof(char *));
	t->gn_sum = calloc((size_t)nt + 1, sizeof(double));
	t->gn_mean = calloc((size_t)nt + 1, sizeof(float));
	t->wr_off = calloc((size_t)nt + 1, sizeof(int64_t));
	t->wr_len = calloc((size_t)nt + 1, sizeof(int64_t));
	t->part_off = calloc((size_t)nt + 1, sizeof(int64_t));
	t->part_len = calloc((size_t)nt + 1, sizeof(int64_t));
	if (!t->group_off || !t->group_len || !t->group_names || !t->gn_sum || !t->gn_mean ||
	    !t->wr_off || !t->wr_len || !t->part_off || !t->part_len)
		return NN_ENOMEM;
	for (int i = 0; i < nt; i++) {
		nn_tensor ts = nn_model_tensor(m, i);
		if (!ts.trainable)
			continue;
		int64_t off = ts.data - params, len = (int64_t)ts.rows * ts.cols;
		int g = t->n_groups - 1;
		if (g >= 0 && strcmp(t->group_names[g], ts.path) == 0 &&
		    t->group_off[g] + t->group_len[g] == off) {
			t->group_len[g] += len;
		} else {
			g = t->n_groups++;
			t->group_names[g] = ts.path;
			t->group_off[g] = off;
			t->group_len[g] = len;
		}
		if (ts.kind == NN_T_WEIGHT) {
			t->wr_off[t->n_wr] = off;
			t->wr_len[t->n_wr++] = len;
			t->n_weights += len;
		}
	}
	return NN_OK;
}

static nn_status trainer_init(nn_trainer *t, nn_model *m, const nn_data *train,
                              const nn_data *val, const nn_train_config *cfg, char *err,
                              size_t errlen)
{
	int64_t np = 0, ns = 0;
	nn_status st;
	float *params = nn_model_params(m, &np);
	const nn_model_spec *spec = nn_model_spec_of(m);
	(void)nn_model_state(m, &ns);  /* sizes the best-epoch copy of the state */

	memset(t, 0, sizeof *t);
	t->m = m;
	t->cfg = *cfg;
	t->train = train;
	t->val = val;
	t->features = train->features;
	t->outputs = train->outputs;
	t->best_loss = INFINITY;
	t->best_epoch = -1;
	t->last.epoch = -1;
	t->last.train_loss = t->last.val_loss = t->last.val_accuracy = NAN;
	nn_rng_seed(&t->rng, cfg->seed);

	/* the split */
	int64_t rows = train->rows;
	t->n_va = split_size(rows, val != NULL, cfg);
	t->n_tr = rows - t->n_va;
	CHECK(t->n_tr >= 1, "validation.fraction: leaves no training rows");
	t->tr_idx = malloc(sizeof(int64_t) * (size_t)rows);
	t->va_idx = malloc(sizeof(int64_t) * (size_t)(t->n_va ? t->n_va : 1));
	t->perm = malloc(sizeof(int64_t) * (size_t)t->n_tr);
	if (!t->tr_idx || !t->va_idx || !t->perm)
		return NN_ENOMEM;
	split_rows(t->tr_idx, rows, t->n_va, &t->rng);
	memcpy(t->va_idx, t->tr_idx + t->n_tr, sizeof(int64_t) * (size_t)t->n_va);

	if (cfg->rows > 0 && (st = subset_rows(t, cfg, err, errlen)) != NN_OK)
		return st;

	t->max_batch = cfg->batch_size < t->n_tr ? cfg->batch_size : (int)t->n_tr;
	t->steps_per_epoch = (t->n_tr + cfg->batch_size - 1) / cfg->batch_size;
	t->ws = nn_ws_create(m, t->max_batch);
	if (!t->ws)
		return NN_ENOMEM;

	/* layers with parameters, and the dense weights */
	if (group_params(t, m, params) != NN_OK)
		return NN_ENOMEM;
	if (cfg->sparsity.enabled) {
		t->mag = malloc(sizeof(float) * (size_t)(t->n_weights ? t->n_weights : 1));
		if (!t->mag)
			return NN_ENOMEM;
	}

	/* the batch */
	t->bx = malloc(sizeof(float) * (size_t)t->max_batch * (size_t)t->features);
	if (spec->task == NN_TASK_CLASSIFICATION)
		t->by = malloc(sizeof(int32_t) * (size_t)t->max_batch);
	else
		t->bt = malloc(sizeof(float) * (size_t)t->max_batch * (size_t)t->outputs);
	if (!t->bx || (!t->by && !t->bt))
		return NN_ENOMEM;
	if (nn_augment_has_image(&cfg->aug)) {
		t->img = malloc(sizeof(float) * (size_t)t->features);
		if (!t->img)
			return NN_ENOMEM;
	}

	/* optimizer, averaging, early stopping */
	int nb = nn_optim_buffers(cfg->opt.type);
	if (nb >= 1 && !(t->s1 = calloc((size_t)np ? (size_t)np : 1, sizeof(float))))
		return NN_ENOMEM;
	if (nb >= 2 && !(t->s2 = calloc((size_t)np ? (size_t)np : 1, sizeof(float))))
		return NN_ENOMEM;
	if (cfg->avg.type != NN_AVG_NONE &&
	    !(t->avg = calloc((size_t)np ? (size_t)np : 1, sizeof(double))))
		return NN_ENOMEM;
	if (cfg->early.enabled && cfg->early.restore_best) {
		t->best_params = calloc((size_t)(np ? np : 1), sizeof(float));
		t->best_state = calloc((size_t)(ns ? ns : 1), sizeof(float));
		if (!t->best_params || !t->best_state)
			return NN_ENOMEM;
	}
	return NN_OK;
}

/* Hands the current state to on_checkpoint, when there is one. */
static nn_status checkpoint(nn_trainer *t, const nn_callbacks *cb, char *err, size_t errlen)
{
	void *buf = NULL;
	size_t len = 0;
	if (!cb || !cb->on_checkpoint)
		return NN_OK;
	nn_status st = nn_ckpt_save(t, &buf, &len);
	if (st != NN_OK) {
		nn_errf(err, errlen, "checkpoint: out of memory");
		return st;
	}
	int rc = cb->on_checkpoint(cb->ctx, buf, len, t->epoch, t->step);
	free(buf);
	CHECK(rc == 0, "checkpoint: the callback failed to store it");
	return NN_OK;
}

/* The training split, standardised, for batch-norm population statistics:
 * the data itself when it needs no change, else a copy in *owned. */
static const float *standardized_split(nn_trainer *t, float **owned)
{
	const float *mean = nn_model_std_mean(t->m), *sd = nn_model_std_std(t->m);
	const int f = t->features;
	*owned = NULL;
	if (!(mean && sd) && t->n_va == 0 && t->train->x)
		return t->train->x;
	float *x = malloc(sizeof(float) * (size_t)t->n_tr * (size_t)f);
	if (!x)
		return NULL;
	for (int64_t i = 0; i < t->n_tr; i++) {
		float *dst = x + i * f;
		if (!t->train->x) {
			/* bytes only (the caller's): the same values */
			const uint8_t *s8 = t->x8 + t->tr_idx[i] * f;
			if (mean && sd)
				standardize_row8(dst, s8, mean, sd, f);
			else
				widen_row8(dst, s8, f);
			continue;
		}
		const float *src = t->train->x + t->tr_idx[i] * f;
		if (mean && sd)
			standardize_row(dst, src, mean, sd, f);
		else
			memcpy(dst, src, sizeof(float) * (size_t)f);
	}
	*owned = x;
	return x;
}

static nn_status bn_population(nn_trainer *t)
{
	float *owned;
	const float *x = standardized_split(t, &owned);
	if (!x)
		return NN_ENOMEM;
	nn_status st = nn_bn_population(t->m, t->ws, x, t->n_tr);
	free(owned);
	return st;
}

/* ---------------------------------------------------------------- a step */

/*
 * A step in phases: gather the batch; the pass (forward, loss, backward);
 * the l2 term; the per-layer norms and clipping; the update; sparsity and
 * averaging; the bookkeeping. With `shards` > 1 the gather and the pass run
 * per shard and the rest per parameter unit (shard.c), from the same
 * phase functions.
 *
 * The first layer's Adam update may run fused with the end of its gradient
 * (fused_update, sparse_in.h): only with one shard, elementwise rules only
 * (no clipping by the global norm first, no pruning after).
 */

void nn_trainer_optim_range(const nn_trainer *t, float lr, float *p, const float *g,
                            int64_t from, int64_t to, int64_t *part_off, int64_t *part_len)
{
	int n = 0;
	if (to <= from)
		return;
	for (int r = 0; r < t->n_wr; r++) {
		int64_t a = t->wr_off[r] > from ? t->wr_off[r] : from;
		int64_t b = t->wr_off[r] + t->wr_len[r] < to ? t->wr_off[r] + t->wr_len[r] : to;
		if (b > a) {
			part_off[n] = a - from;
			part_len[n++] = b - a;
		}
	}
	nn_optim_step(&t->cfg.opt, lr, t->opt_t, p + from, g + from, t->s1 + from, t->s2 + from,
	              to - from, n, part_off, part_len);
}

void nn_trainer_l2(const nn_trainer *t, float *g, const float *p, int64_t from, int64_t to,
                   int64_t skip)
{
	const float l2 = t->cfg.l2;
	if (!(l2 > 0))
		return;
	for (int r = 0; r < t->n_wr; r++) {
		if (t->wr_off[r] == skip)
			continue;
		int64_t a = t->wr_off[r] > from ? t->wr_off[r] : from;
		int64_t b = t->wr_off[r] + t->wr_len[r] < to ? t->wr_off[r] + t->wr_len[r] : to;
		for (int64_t i = a; i < b; i++)
			g[i] += l2 * p[i];
	}
}

float nn_trainer_clip_coef(const nn_trainer *t, double total)
{
	/* torch.nn.utils.clip_grad_norm_: scale by clip / (norm + 1e-6) when < 1 */
	if (!(t->cfg.clip_grad_norm > 0))
		return 1.0f;
	float norm = (float)sqrt(total);
	float coef = t->cfg.clip_grad_norm / (norm + 1e-6f);
	return coef < 1.0f ? coef : 1.0f;
}

void nn_trainer_average(nn_trainer *t, const float *p, int64_t from, int64_t to)
{
	const nn_train_config *c = &t->cfg;
	if (c->avg.type == NN_AVG_POLYAK) {
		for (int64_t i = from; i < to; i++)
			t->avg[i] += p[i];
	} else if (t->avg_n == 0) {
		for (int64_t i = from; i < to; i++)
			t->avg[i] = p[i];
	} else {
		const double dcy = c->avg.decay;
		for (int64_t i = from; i < to; i++)
			t->avg[i] = dcy * t->avg[i] + (1.0 - dcy) * p[i];
	}
}

int nn_trainer_averaging(const nn_trainer *t)
{
	return t->avg && t->epoch >= t->cfg.avg.start_epoch;
}

int nn_trainer_sparse_fusable(const nn_trainer *t)
{
	const nn_train_config *c = &t->cfg;
	return nn_tune.sparse_fuse && (c->opt.type == NN_OPT_ADAM || c->opt.type == NN_OPT_ADAMW) &&
	       !(c->clip_grad_norm > 0) && !c->sparsity.enabled;
}

void nn_trainer_after_update(nn_trainer *t, float *p, int64_t np)
{
	const nn_train_config *c = &t->cfg;
	if (c->sparsity.enabled && t->epoch >= c->sparsity.start_epoch)
		sparsify(t, p, np);
	if (nn_trainer_averaging(t)) {
		nn_trainer_average(t, p, 0, np);
		t->avg_n++;
	}
}

void nn_trainer_end_step(nn_trainer *t, int n, float loss, float lr, const nn_callbacks *cb)
{
	t->pos += n;
	t->step++;
	t->loss_sum += loss;
	t->loss_n++;
	if (cb && cb->on_step && t->step % t->cfg.log_every_steps == 0) {
		nn_step_record r = { t->step, t->epoch, loss, lr };
		cb->on_step(cb->ctx, &r);
	}
}

nn_status nn_trainer_diverged(const nn_trainer *t, float loss, char *err, size_t errlen)
{
	nn_errf(err, errlen, "diverged: the loss became %s at epoch %d, step %lld",
	        isnan(loss) ? "NaN" : "infinite", t->epoch, (long long)t->step + 1);
	return NN_EDIVERGED;
}

/* Packs the first layer's weights for the sparse pass; 1 when its Adam
 * update can run fused with the end of its gradient. */
static int fuse_begin(nn_trainer *t, int n, const float *p)
{
	int fuse = 0;
	if (t->sp && nn_sparse_in_rows(t->sp) == n) {
		nn_sparse_in_weights(t->sp, p + t->sp_w_off, t->sp_b_off >= 0 ? p + t->sp_b_off : NULL,
		                     nn_model_std_mean(t->m), nn_model_std_std(t->m));
		fuse = nn_trainer_sparse_fusable(t);
	}
	if (t->sp)
		nn_sparse_in_defer(t->sp, fuse);
	return fuse;
}

/* Forward, loss and backward of the n gathered rows; the loss in *loss. */
static nn_status pass(nn_trainer *t, int n, float *loss, char *err, size_t errlen)
{
	nn_ws_sparse_on(t->ws, 1);
	const float *fw = nn_forward(t->m, t->ws, t->bx, n, 1, &t->rng);
	if (!fw) {
		nn_ws_sparse_on(t->ws, 0);
		nn_errf(err, errlen, "internal: the forward pass refused a batch of %d rows", n);
		return NN_EINVAL;
	}
	*loss = nn_loss(t->m, t->ws, t->by, t->bt, n, 1);
	if (!isfinite(*loss)) {
		nn_ws_sparse_on(t->ws, 0);
		return nn_trainer_diverged(t, *loss, err, errlen);
	}
	nn_backward(t->m, t->ws, n);
	nn_ws_sparse_on(t->ws, 0);
	return NN_OK;
}

/* Adds each layer's gradient norm to gn_sum; returns the squared global
 * norm. With fuse, W1 = g[f0, f1) is left out: its layer's norm is
 * completed by fused_update from *fgroup and the rest's squares *frest. */
static double norms(nn_trainer *t, const float *g, int fuse, int64_t f0, int64_t f1,
                    int *fgroup, double *frest)
{
	double total = 0;
	for (int k = 0; k < t->n_groups; k++) {
		int64_t a = t->group_off[k], b = a + t->group_len[k];
		if (fuse && f0 >= a && f1 <= b) {
			*fgroup = k;
			*frest = nn_sumsq(g + a, f0 - a) + nn_sumsq(g + f1, b - f1);
			continue;
		}
		double s = nn_sumsq(g + a, b - a);
		t->gn_sum[k] += sqrt(s);
		total += s;
	}
	return total;
}

/* The first layer's Adam step fused with the end of its gradient (W1 =
 * p[f0, f1)), after the optimizer on the rest of p. */
static void fused_update(nn_trainer *t, float lr, float *p, const float *g, int64_t np,
                         int64_t f0, int64_t f1, int fgroup, double frest)
{
	const nn_train_config *c = &t->cfg;
	nn_trainer_optim_range(t, lr, p, g, 0, f0, t->part_off, t->part_len);
	nn_trainer_optim_range(t, lr, p, g, f1, np, t->part_off, t->part_len);
	nn_adam_scalars sc;
	nn_optim_adam_scalars(&c->opt, lr, t->opt_t, &sc);
	sc.l2 = c->l2 > 0 ? c->l2 : 0.0f;
	double s = nn_sparse_in_adam(t->sp, &sc, p + f0, t->s1 + f0, t->s2 + f0);
	if (fgroup >= 0)
		t->gn_sum[fgroup] += sqrt(s + frest);
	NN_TEST_COUNT(sparse_fused_steps);
}

/* One step on the rows perm[pos .. pos + n) (perm holds row indices). */
static nn_status step(nn_trainer *t, int n, float lr, const nn_callbacks *cb, char *err,
                      size_t errlen)
{
	int64_t np = 0;
	float *p = nn_model_params(t->m, &np);
	float *g = nn_ws_grads(t->ws);
	float loss = 0;

	if (t->dp)
		return nn_shard_step(t, n, lr, cb, err, errlen);
	nn_trainer_gather(t, &t->batch, t->train, t->perm, t->pos, n, 1);
	int fuse = fuse_begin(t, n, p);
	nn_status st = pass(t, n, &loss, err, errlen);
	if (st != NN_OK)
		return st;
	/* fused: W1's gradient was never written; nn_sparse_in_adam has it */
	fuse = fuse && nn_sparse_in_pending(t->sp);
	const int64_t f0 = fuse ? t->sp_w_off : np, f1 = fuse ? t->sp_w_off + t->sp_w_len : np;

	nn_trainer_l2(t, g, p, 0, np, f0);
	int fgroup = -1;
	double frest = 0;
	float coef = nn_trainer_clip_coef(t, norms(t, g, fuse, f0, f1, &fgroup, &frest));
	if (coef < 1.0f)
		for (int64_t i = 0; i < np; i++)
			g[i] *= coef;

	t->opt_t++;
	if (fuse) {
		fused_update(t, lr, p, g, np, f0, f1, fgroup, frest);
	} else {
		nn_optim_step(&t->cfg.opt, lr, t->opt_t, p, g, t->s1, t->s2, np, t->n_wr, t->wr_off,
		              t->wr_len);
		nn_sparse_in_forget(t->sp);
	}
	nn_trainer_after_update(t, p, np);
	nn_trainer_end_step(t, n, loss, lr, cb);
	return NN_OK;
}

/* ---------------------------------------------------------------- the loop */

/* Validation, early stopping, the epoch record and the epoch checkpoint. */
static nn_status end_epoch(nn_trainer *t, const nn_callbacks *cb, float lr, double t0,
                           double train_secs, int64_t samples, char *err, size_t errlen)
{
	const nn_train_config *c = &t->cfg;
	nn_epoch_record r;
	memset(&r, 0, sizeof r);
	r.epoch = t->epoch;
	r.step = t->step;
	r.train_loss = t->loss_n ? (float)(t->loss_sum / (double)t->loss_n) : NAN;
	r.val_loss = NAN;
	r.val_accuracy = NAN;
	r.lr = lr;

	if (t->val || t->n_va) {
		if (t->val)
			evaluate_rows(t, t->val, NULL, t->val->rows, &r.val_loss, &r.val_accuracy);
		else
			evaluate_rows(t, t->train, t->va_idx, t->n_va, &r.val_loss, &r.val_accuracy);
		if (r.val_loss < t->best_loss - c->early.min_delta) {
			t->best_loss = r.val_loss;
			t->best_epoch = t->epoch;
			t->bad_epochs = 0;
			if (t->best_params) {
				int64_t np = 0, ns = 0;
				float *p = nn_model_params(t->m, &np), *s = nn_model_state(t->m, &ns);
				memcpy(t->best_params, p, sizeof(float) * (size_t)np);
				if (ns)
					memcpy(t->best_state, s, sizeof(float) * (size_t)ns);
			}
		} else {
			t->bad_epochs++;
			if (c->early.enabled && t->bad_epochs >= c->early.patience)
				t->stopped_early = 1;
		}
	}

	for (int k = 0; k < t->n_groups; k++)
		t->gn_mean[k] = t->loss_n ? (float)(t->gn_sum[k] / (double)t->loss_n) : 0.0f;
	r.n_grad_norms = t->n_groups;
	r.grad_norm_names = t->group_names;
	r.grad_norms = t->gn_mean;
	r.seconds = now() - t0;
	r.samples_per_second = train_secs > 0 ? (double)samples / train_secs : 0;
	t->last = r;
	if (cb && cb->on_epoch)
		cb->on_epoch(cb->ctx, &r);

	/* the next epoch starts from here */
	t->epoch++;
	t->pos = 0;
	t->perm_valid = 0;
	t->loss_sum = 0;
	t->loss_n = 0;
	memset(t->gn_sum, 0, sizeof(double) * (size_t)t->n_groups);
	if (c->checkpoint_every_epochs > 0 && t->epoch % c->checkpoint_every_epochs == 0)
		return checkpoint(t, cb, err, errlen);
	return NN_OK;
}

/* Puts the weights to publish into the model (see the top of the file). */
static nn_status finish(nn_trainer *t)
{
	const nn_train_config *c = &t->cfg;
	int64_t np = 0, ns = 0;
	float *p = nn_model_params(t->m, &np), *s = nn_model_state(t->m, &ns);
	int recompute = c->bn_stats == NN_BN_POPULATION;

	if (t->best_params && t->best_epoch >= 0) {
		memcpy(p, t->best_params, sizeof(float) * (size_t)np);
		if (ns)
			memcpy(s, t->best_state, sizeof(float) * (size_t)ns);
	} else if (t->avg && t->avg_n > 0) {
		double scale = c->avg.type == NN_AVG_POLYAK ? 1.0 / (double)t->avg_n : 1.0;
		for (int64_t i = 0; i < np; i++)
			p[i] = (float)(t->avg[i] * scale);
		recompute = 1;
	}
	if (recompute && nn_model_has_bn(t->m))
		return bn_population(t);
	return NN_OK;
}

nn_status nn_train(nn_model *m, const nn_data *train, const nn_data *val,
                   const nn_train_config *cfg, const nn_callbacks *cb,
                   const void *resume, size_t resume_len,
                   nn_train_result *res, char *err, size_t errlen)
{
	nn_trainer t;
	nn_status st;

	if (res) {
		memset(res, 0, sizeof *res);
		res->best_epoch = -1;
		res->best_val_loss = NAN;
	}
	CHECK(m && train && cfg, "nn_train: missing model, data or config");
	if ((st = nn_train_config_check(cfg, err, errlen)) != NN_OK)
		return st;
	if ((st = check_data(m, train, "data", err, errlen)) != NN_OK)
		return st;
	if (val && (st = check_data(m, val, "validation", err, errlen)) != NN_OK)
		return st;
	CHECK(!cfg->early.enabled || val || cfg->val_fraction > 0,
	      "early_stopping: needs validation");
	if (nn_augment_has_image(&cfg->aug))
		CHECK(train->width > 0 && train->height > 0 && train->channels > 0 &&
		      (int64_t)train->width * train->height * train->channels == train->features,
		      "augment: image augmentation needs an image data set");

	st = trainer_init(&t, m, train, val, cfg, err, errlen);
	if (st == NN_ENOMEM)
		nn_errf(err, errlen, "out of memory");
	if (st == NN_OK)
		st = byte_copy(&t);
	if (st == NN_OK)
		st = sparse_setup(&t);
	t.batch = (nn_batch){ t.bx, t.by, t.bt, t.img, t.sp, &t.rng };
	if (st == NN_OK && cfg->shards > 1)
		st = nn_shard_init(&t, cfg->par, err, errlen);
	if (st == NN_OK && resume)
		st = nn_ckpt_load(&t, resume, resume_len, err, errlen);
	else if (st == NN_OK && cfg->standardize) {
		st = set_standardize(&t);
		if (st != NN_OK)
			nn_errf(err, errlen, "out of memory");
	}

	const nn_schedule *sc = &cfg->sched;
	double total = sc->per_step ? (double)cfg->epochs * (double)t.steps_per_epoch
	                            : (double)cfg->epochs;
	while (st == NN_OK && t.epoch < cfg->epochs && !t.stopped_early) {
		double t0 = now();
		int64_t samples = 0;
		if (!t.perm_valid) {
			memcpy(t.perm, t.tr_idx, sizeof(int64_t) * (size_t)t.n_tr);
			if (cfg->shuffle)
				shuffle(t.perm, t.n_tr, &t.rng);
			t.perm_valid = 1;
			t.pos = 0;
		}
		float lr = nn_schedule_lr(sc, cfg->opt.lr, sc->per_step ? (double)t.step : t.epoch,
		                          total);
		while (st == NN_OK && t.pos < t.n_tr) {
			int ask = cb && cb->should_stop ? cb->should_stop(cb->ctx) : NN_GO_ON;
			if (ask == NN_GO_ON && cfg->stop_at_epoch > 0 && t.epoch >= cfg->stop_at_epoch)
				ask = NN_STOP_CHECKPOINT;
			if (ask == NN_STOP_CHECKPOINT)
				st = checkpoint(&t, cb, err, errlen);
			if (ask != NN_GO_ON) {
				if (st == NN_OK) {
					st = NN_ESTOPPED;
					nn_errf(err, errlen, "stopped at epoch %d, step %lld", t.epoch,
					        (long long)t.step);
				}
				break;
			}
			int n = (int)(t.n_tr - t.pos < cfg->batch_size ? t.n_tr - t.pos
			                                               : cfg->batch_size);
			if (sc->per_step)
				lr = nn_schedule_lr(sc, cfg->opt.lr, (double)t.step, total);
			st = step(&t, n, lr, cb, err, errlen);
			samples += n;
		}
		if (st == NN_OK)
			st = end_epoch(&t, cb, lr, t0, now() - t0, samples, err, errlen);
	}
	if (st == NN_OK) {
		st = finish(&t);
		if (st != NN_OK)
			nn_errf(err, errlen, "batch-norm statistics over the training split: %s",
			        nn_status_name(st));
	}

	if (res) {
		res->epochs_run = t.epoch;
		res->steps = t.step;
		res->stopped_early = t.stopped_early;
		res->best_epoch = t.best_epoch;
		res->best_val_loss = t.best_epoch >= 0 ? t.best_loss : NAN;
		res->last = t.last;
		res->last.grad_norm_names = NULL;
		res->last.grad_norms = NULL;
	}
	trainer_release(&t);
	return st;
}

/* ---------------------------------------------------------------- evaluate */

nn_status nn_evaluate(const nn_model *m, const nn_data *d, float *loss, float *accuracy)
{
	nn_trainer t;
	nn_status st;
	char err[8];

	if (loss)
		*loss = NAN;
	if (accuracy)
		*accuracy = NAN;
	if (!m || !d)
		return NN_EINVAL;
	if ((st = check_data(m, d, "data", err, sizeof err)) != NN_OK)
		return st;
	/* A trainer with nothing but the batch buffers and a workspace. The
	 * forward pass in inference mode only reads the model. */
	memset(&t, 0, sizeof t);
	t.m = (nn_model *)m;
	t.features = d->features;
	t.outputs = d->outputs;
	t.max_batch = d->rows < 256 ? (int)d->rows : 256;
	t.ws = nn_ws_create(m, t.max_batch);
	t.bx = malloc(sizeof(float) * (size_t)t.max_batch * (size_t)t.features);
	if (nn_model_spec_of(m)->task == NN_TASK_CLASSIFICATION)
		t.by = malloc(sizeof(int32_t) * (size_t)t.max_batch);
	else
		t.bt = malloc(sizeof(float) * (size_t)t.max_batch * (size_t)t.outputs);
	if (!t.ws || !t.bx || (!t.by && !t.bt)) {
		trainer_release(&t);
		return NN_ENOMEM;
	}
	float l, a;
	t.batch = (nn_batch){ t.bx, t.by, t.bt, NULL, NULL, NULL };
	evaluate_rows(&t, d, NULL, d->rows, &l, &a);
	if (loss)
		*loss = l;
	if (accuracy)
		*accuracy = a;
	trainer_release(&t);
	return NN_OK;
}
