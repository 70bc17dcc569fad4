/*
 * fuzz_common.h - small helpers shared by the libFuzzer targets in this
 * directory: cutting an input into pieces at positions derived from its own
 * bytes (so the streaming readers see every kind of split), repairing a
 * trailing CRC-32 (so mutations reach the parsers behind the checksum),
 * invariant checks that stop the run loudly when a reader accepts something
 * inconsistent or two readings of the same bytes differ, and the tiny models
 * and training run the checkpoint and weights targets (and seedgen.c) share.
 *
 * Every helper is static inline: each target is one translation unit.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dataset_io.h"

/* Stops the run with a crash libFuzzer records: an invariant was broken. */
#define FUZZ_ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)

/* A cursor that hands out piece lengths from four seed bytes taken from the
 * input, cycling through them, so splits land everywhere, single bytes and
 * long runs included. */
typedef struct fuzz_splitter {
	unsigned char seed[4];
	unsigned i;
} fuzz_splitter;

static inline fuzz_splitter fuzz_splitter_of(const uint8_t *b, size_t n)
{
	fuzz_splitter s = { { 1, 7, 64, 3 }, 0 };
	for (size_t i = 0; i < 4 && i < n; i++)
		s.seed[i] = b[i];
	return s;
}

/* The next piece length: seed % 32 (1..31), seed + 1 for multiples of 32
 * (up to 225), or everything left when the seed byte is 255. */
static inline size_t fuzz_next_piece(fuzz_splitter *s, size_t left)
{
	unsigned char b = s->seed[s->i++ % 4];
	size_t n = b == 255 ? left : (size_t)(b % 32 == 0 ? b + 1 : b % 32);
	return n > left ? left : n;
}

/* Writes the little-endian CRC-32 (IEEE) of buf[0, len-4) into its last four
 * bytes. crc is the checksum function of the module under test. */
static inline void fuzz_fix_crc(uint8_t *buf, size_t len,
                                uint32_t (*crc)(const uint8_t *, size_t))
{
	if (len < 4)
		return;
	uint32_t c = crc(buf, len - 4);
	buf[len - 4] = (uint8_t)c;
	buf[len - 3] = (uint8_t)(c >> 8);
	buf[len - 2] = (uint8_t)(c >> 16);
	buf[len - 1] = (uint8_t)(c >> 24);
}

/* What every accepted data set must satisfy, whatever reader made it. The
 * upload readers promise finite values (finite = 1); the stored-file reader
 * trusts its checksum instead. */
static inline void fuzz_check_dataset(const api_dataset *d, int finite)
{
	FUZZ_ASSERT(d->rows >= 0 && d->features >= 0 && d->outputs >= 0);
	if (d->rows > 0 && d->features > 0)
		FUZZ_ASSERT(d->x != NULL);
	if (d->task == NN_TASK_CLASSIFICATION) {
		FUZZ_ASSERT(d->targets == NULL);
		for (int64_t i = 0; i < d->rows; i++)
			FUZZ_ASSERT(d->labels && d->labels[i] >= 0 && d->labels[i] < d->outputs);
		for (int i = 0; d->classes && i < d->n_classes; i++)
			FUZZ_ASSERT(d->classes[i] != NULL);
	} else {
		FUZZ_ASSERT(d->labels == NULL);
		int64_t n = d->rows * d->outputs;
		for (int64_t i = 0; i < n; i++) {
			volatile float v = d->targets[i]; /* touch every target */
			FUZZ_ASSERT(!finite || isfinite(v));
		}
	}
	int64_t nx = d->rows * d->features;
	for (int64_t i = 0; i < nx; i++) {
		volatile float v = d->x[i];           /* touch every value */
		FUZZ_ASSERT(!finite || isfinite(v));
	}
	for (int i = 0; d->feature_names && i < d->features; i++)
		FUZZ_ASSERT(d->feature_names[i] != NULL);
	if (d->width > 0)
		FUZZ_ASSERT((int64_t)d->width * d->height * d->channels == d->features);
}

/* Reads body with opts, in pieces from sp (whole when sp is NULL). */
static inline int fuzz_read_csv(const api_csv_opts *opts, const char *body, size_t left, fuzz_splitter *sp,
                    api_dataset *d, api_err *e)
{
	api_csv *c = api_csv_new(opts);
	FUZZ_ASSERT(c != NULL);
	int rc = 0;
	while (left > 0 && rc == 0) {
		size_t n = sp ? fuzz_next_piece(sp, left) : left;
		rc = api_csv_feed(c, body, n, e);
		body += n;
		left -= n;
	}
	memset(d, 0, sizeof *d);
	if (rc == 0)
		rc = api_csv_finish(c, d, e);
	api_csv_free(c);
	return rc;
}

/* Two readings of the same bytes (whole, and in pieces) must agree exactly. */
static inline void fuzz_same_dataset(const api_dataset *a, const api_dataset *b)
{
	FUZZ_ASSERT(a->task == b->task && a->rows == b->rows && a->features == b->features &&
	            a->outputs == b->outputs && a->n_classes == b->n_classes &&
	            a->width == b->width && a->height == b->height && a->channels == b->channels);
	size_t nx = (size_t)a->rows * (size_t)a->features;
	FUZZ_ASSERT(nx == 0 || memcmp(a->x, b->x, nx * sizeof(float)) == 0);
	if (a->labels)
		FUZZ_ASSERT(b->labels && memcmp(a->labels, b->labels, (size_t)a->rows * 4) == 0);
	if (a->targets)
		FUZZ_ASSERT(b->targets &&
		            memcmp(a->targets, b->targets, (size_t)a->rows * (size_t)a->outputs * 4) == 0);
	for (int i = 0; a->classes && i < a->n_classes; i++)
		FUZZ_ASSERT(strcmp(a->classes[i], b->classes[i]) == 0);
	for (int i = 0; a->feature_names && i < a->features; i++)
		FUZZ_ASSERT(strcmp(a->feature_names[i], b->feature_names[i]) == 0);
}

/*
 * The tiny training run the checkpoint target resumes (and the seed
 * generator checkpoints): 12 rows of 3 features, 2 classes, a dense layer,
 * batch norm and dropout. Config 0 turns on everything a checkpoint carries
 * (Adam's two buffers, Polyak averaging, early stopping with a best copy, a
 * validation split, standardisation); config 1 is plain SGD without extras.
 */
typedef struct fuzz_run {
	nn_model *m;
	nn_data d;
	nn_train_config cfg;
	float x[12 * 3];
	int32_t y[12];
} fuzz_run;

static inline int fuzz_run_setup(fuzz_run *r, int config)
{
	nn_layer_spec l[3] = { nn_layer_default(NN_LAYER_DENSE),
	                       nn_layer_default(NN_LAYER_BATCH_NORM),
	                       nn_layer_default(NN_LAYER_DROPOUT) };
	l[0].units = 4;
	l[0].act = NN_ACT_RELU;
	l[2].rate = 0.25f;
	nn_model_spec s = { NN_TASK_CLASSIFICATION, 3, 2, NN_INIT_AUTO, 7, l, 3 };
	char err[256];
	memset(r, 0, sizeof *r);
	r->m = nn_model_create(&s, err, sizeof err);
	if (!r->m)
		return -1;
	for (int i = 0; i < 12 * 3; i++)
		r->x[i] = (float)((i * 7) % 11) - 5.0f;
	for (int i = 0; i < 12; i++)
		r->y[i] = (i * 5) % 3 == 0;
	r->d.rows = 12;
	r->d.features = 3;
	r->d.outputs = 2;
	r->d.x = r->x;
	r->d.labels = r->y;
	r->cfg = nn_train_config_default();
	r->cfg.epochs = 2;
	r->cfg.batch_size = 4;
	r->cfg.seed = 3;
	r->cfg.checkpoint_every_epochs = 1;
	r->cfg.log_every_steps = 1;
	if (config == 0) {
		r->cfg.opt = nn_optimizer_default(NN_OPT_ADAM);
		r->cfg.opt.lr = 0.01f;
		r->cfg.val_fraction = 0.25f;
		r->cfg.standardize = 1;
		r->cfg.early.enabled = 1;
		r->cfg.early.patience = 1;
		r->cfg.early.restore_best = 1;
		r->cfg.avg.type = NN_AVG_POLYAK;
		r->cfg.avg.start_epoch = 0;
		r->cfg.l2 = 0.01f;
	} else {
		r->cfg.opt = nn_optimizer_default(NN_OPT_SGD);
		r->cfg.opt.lr = 0.1f;
		r->cfg.shuffle = 0;
		r->cfg.bn_stats = NN_BN_RUNNING;
	}
	return 0;
}

static inline void fuzz_run_release(fuzz_run *r)
{
	nn_model_free(r->m);
	r->m = NULL;
}

/*
 * The models the weights target writes onto: 0 the tiny run's model (dense,
 * batch norm, dropout); 1 a regression model with a residual block and a
 * projection, leaky ReLU, a dense layer without bias, and standardisation;
 * 2 the first PyTorch reference case (8 inputs, dense 7 relu, dense 6 tanh).
 */
#define FUZZ_WEIGHT_MODELS 3

static inline nn_model *fuzz_weights_model(int k)
{
	char err[256];
	if (k == 0) {
		fuzz_run r;
		return fuzz_run_setup(&r, 0) == 0 ? r.m : NULL;
	}
	if (k == 1) {
		nn_layer_spec inner[2] = { nn_layer_default(NN_LAYER_DENSE),
		                           nn_layer_default(NN_LAYER_DENSE) };
		inner[0].units = 3;
		inner[0].act = NN_ACT_GELU;
		inner[1].units = 5;
		nn_layer_spec l[3] = { nn_layer_default(NN_LAYER_RESIDUAL),
		                       nn_layer_default(NN_LAYER_ACTIVATION),
		                       nn_layer_default(NN_LAYER_DENSE) };
		l[0].children = inner;
		l[0].n_children = 2;
		l[0].projection = 1;
		l[1].act = NN_ACT_LEAKY_RELU;
		l[1].alpha = 0.2f;
		l[2].units = 2;
		l[2].bias = 0;
		l[2].init = NN_INIT_NORMAL;
		l[2].init_param = 0.5f;
		nn_model_spec s = { NN_TASK_REGRESSION, 4, 2, NN_INIT_XAVIER_UNIFORM, 11, l, 3 };
		nn_model *m = nn_model_create(&s, err, sizeof err);
		float mean[4] = { 1, 2, 3, 4 }, sd[4] = { 1, 0.5f, 2, 4 };
		if (m && nn_model_set_standardize(m, mean, sd) != NN_OK) {
			nn_model_free(m);
			m = NULL;
		}
		return m;
	}
	nn_layer_spec l[2] = { nn_layer_default(NN_LAYER_DENSE), nn_layer_default(NN_LAYER_DENSE) };
	l[0].units = 7;
	l[0].act = NN_ACT_RELU;
	l[1].units = 6;
	l[1].act = NN_ACT_TANH;
	nn_model_spec s = { NN_TASK_CLASSIFICATION, 8, 2, NN_INIT_AUTO, 1, l, 2 };
	return nn_model_create(&s, err, sizeof err);
}

#endif
