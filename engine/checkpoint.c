/*
 * checkpoint.c - the complete state of a training run as bytes, and back.
 *
 * A checkpoint holds everything a run needs to continue bit for bit: the
 * model's parameters, running statistics and standardisation, optimizer
 * buffers and step count, the generator state, the epoch, the position in
 * the epoch and its permutation, the loss and gradient-norm accumulators,
 * the averaging buffer, the early-stopping best copy and counters, and the
 * train/validation split.
 *
 * Layout: "NNDCKPT\0", u32 version, then the fields below in order, all
 * little-endian (floats as their IEEE-754 bits), then a u32 CRC-32 of every
 * byte before it. Reading is bounds-checked throughout; a checkpoint that
 * does not fit the model, data or config it is restored into is rejected.
 */
#include <stdlib.h>
#include <string.h>
#include "bytes.h"
#include "trainer.h"

static const char magic[8] = "NNDCKPT";

/* An optional array: a presence flag, then the values. */
static void w_opt_f32s(nn_wbuf *w, const float *v, int64_t n)
{
	nn_wb_u32(w, v != NULL);
	if (v)
		nn_wb_f32s(w, v, n);
}

/* ---------------------------------------------------------------- format */

nn_status nn_ckpt_save(const nn_trainer *t, void **buf, size_t *len)
{
	nn_wbuf w = NN_WBUF_INIT;
	int64_t np = 0, ns = 0;
	float *params = nn_model_params(t->m, &np);
	float *state = nn_model_state(t->m, &ns);
	int nb = nn_optim_buffers(t->cfg.opt.type);

	*buf = NULL;
	*len = 0;
	/* the size near enough, so the buffer never moves as it fills */
	int best = t->best_params != NULL;
	nn_wb_reserve(&w, 512 + 8 * (size_t)(t->n_tr * (t->perm_valid ? 2 : 1) + t->n_va + t->n_groups) +
	                      4 * (size_t)(np * (1 + nb + best) + ns * (1 + best) + 2 * (int64_t)t->features) +
	                      (t->avg ? 8 * (size_t)np : 0));
	nn_wb_bytes(&w, magic, 8);
	nn_wb_u32(&w, NN_CKPT_VERSION);

	/* what it belongs to */
	nn_wb_u64(&w, (uint64_t)np);
	nn_wb_u64(&w, (uint64_t)ns);
	nn_wb_u32(&w, (uint32_t)t->features);
	nn_wb_u32(&w, (uint32_t)t->outputs);
	nn_wb_u64(&w, (uint64_t)t->train->rows);
	nn_wb_u64(&w, (uint64_t)(t->val ? t->val->rows : 0));
	nn_wb_u32(&w, (uint32_t)t->cfg.batch_size);
	nn_wb_u32(&w, (uint32_t)t->cfg.opt.type);
	nn_wb_u64(&w, t->cfg.seed);

	/* where the run is */
	nn_wb_i32(&w, t->epoch);
	nn_wb_u64(&w, (uint64_t)t->pos);
	nn_wb_u64(&w, (uint64_t)t->step);
	nn_wb_u64(&w, (uint64_t)t->opt_t);
	for (int i = 0; i < 4; i++)
		nn_wb_u64(&w, t->rng.s[i]);

	/* splits and the epoch's order */
	nn_wb_u64(&w, (uint64_t)t->n_tr);
	nn_wb_i64s(&w, t->tr_idx, t->n_tr);
	nn_wb_u64(&w, (uint64_t)t->n_va);
	nn_wb_i64s(&w, t->va_idx, t->n_va);
	nn_wb_u32(&w, (uint32_t)t->perm_valid);
	if (t->perm_valid)
		nn_wb_i64s(&w, t->perm, t->n_tr);

	/* the epoch's accumulators */
	nn_wb_f64(&w, t->loss_sum);
	nn_wb_u64(&w, (uint64_t)t->loss_n);
	nn_wb_u32(&w, (uint32_t)t->n_groups);
	nn_wb_f64s(&w, t->gn_sum, t->n_groups);

	/* the model */
	nn_wb_f32s(&w, params, np);
	nn_wb_f32s(&w, state, ns);
	w_opt_f32s(&w, nn_model_std_mean(t->m), t->features);
	w_opt_f32s(&w, nn_model_std_std(t->m), t->features);

	/* optimizer */
	nn_wb_u32(&w, (uint32_t)nb);
	if (nb >= 1)
		nn_wb_f32s(&w, t->s1, np);
	if (nb >= 2)
		nn_wb_f32s(&w, t->s2, np);

	/* averaging */
	nn_wb_u64(&w, (uint64_t)t->avg_n);
	nn_wb_u32(&w, t->avg != NULL);
	if (t->avg)
		nn_wb_f64s(&w, t->avg, np);

	/* early stopping */
	nn_wb_f32(&w, t->best_loss);
	nn_wb_i32(&w, t->best_epoch);
	nn_wb_i32(&w, t->bad_epochs);
	nn_wb_u32(&w, (uint32_t)t->stopped_early);
	nn_wb_u32(&w, t->best_params != NULL);
	if (t->best_params) {
		nn_wb_f32s(&w, t->best_params, np);
		nn_wb_f32s(&w, t->best_state, ns);
	}

	/* the last epoch's record (for the result after a resume) */
	nn_wb_i32(&w, t->last.epoch);
	nn_wb_f32(&w, t->last.train_loss);
	nn_wb_f32(&w, t->last.val_loss);
	nn_wb_f32(&w, t->last.val_accuracy);
	nn_wb_f32(&w, t->last.lr);

	return nn_wb_seal(&w, buf, len);
}

#define EXPECT(cond, ...)                                         \
	do {                                                      \
		if (!(cond)) {                                    \
			nn_errf(err, errlen, __VA_ARGS__);        \
			return NN_EINVAL;                         \
		}                                                 \
	} while (0)

/* The header: magic, checksum and version, then the model's, the data's
 * and the config's shape, which must be this trainer's. */
static nn_status ckpt_header(nn_trainer *t, nn_rbuf *r, const void *buf, size_t len, char *err,
                             size_t errlen)
{
	int64_t np = 0, ns = 0;
	nn_model_params(t->m, &np);
	nn_model_state(t->m, &ns);
	if (!nn_rb_open(r, buf, len, magic)) {
		nn_errf(err, errlen, "checkpoint: bad magic or too short");
		return NN_ECORRUPT;
	}
	if (!nn_rb_crc_ok(buf, len)) {
		nn_errf(err, errlen, "checkpoint: checksum mismatch");
		return NN_ECORRUPT;
	}
	uint32_t version = nn_rb_u32(r);
	if (version != NN_CKPT_VERSION) {
		nn_errf(err, errlen, "checkpoint: unsupported version %u", version);
		return NN_ECORRUPT;
	}
	EXPECT(nn_rb_u64(r) == (uint64_t)np && nn_rb_u64(r) == (uint64_t)ns,
	       "checkpoint: belongs to a model of another shape");
	EXPECT(nn_rb_u32(r) == (uint32_t)t->features && nn_rb_u32(r) == (uint32_t)t->outputs,
	       "checkpoint: belongs to data of another shape");
	EXPECT(nn_rb_u64(r) == (uint64_t)t->train->rows &&
	       nn_rb_u64(r) == (uint64_t)(t->val ? t->val->rows : 0),
	       "checkpoint: belongs to data sets of other sizes");
	EXPECT(nn_rb_u32(r) == (uint32_t)t->cfg.batch_size && nn_rb_u32(r) == (uint32_t)t->cfg.opt.type &&
	       nn_rb_u64(r) == t->cfg.seed, "checkpoint: belongs to another training config");
	return NN_OK;
}

/* Where the run was: epoch, position, step, generator, the splits and the
 * epoch's order, the running sums; then the weights and statistics. */
static nn_status ckpt_progress(nn_trainer *t, nn_rbuf *r, char *err, size_t errlen)
{
	int64_t np = 0, ns = 0;
	float *params = nn_model_params(t->m, &np);
	float *state = nn_model_state(t->m, &ns);
	t->epoch = nn_rb_i32(r);
	t->pos = (int64_t)nn_rb_u64(r);
	t->step = (int64_t)nn_rb_u64(r);
	t->opt_t = (int64_t)nn_rb_u64(r);
	for (int i = 0; i < 4; i++)
		t->rng.s[i] = nn_rb_u64(r);

	EXPECT(!r->failed && (int64_t)nn_rb_u64(r) == t->n_tr, "checkpoint: training split differs");
	nn_rb_i64s(r, t->tr_idx, t->n_tr);
	EXPECT(!r->failed && (int64_t)nn_rb_u64(r) == t->n_va, "checkpoint: validation split differs");
	nn_rb_i64s(r, t->va_idx, t->n_va);
	t->perm_valid = (int)nn_rb_u32(r);
	if (t->perm_valid)
		nn_rb_i64s(r, t->perm, t->n_tr);

	t->loss_sum = nn_rb_f64(r);
	t->loss_n = (int64_t)nn_rb_u64(r);
	EXPECT(!r->failed && (int)nn_rb_u32(r) == t->n_groups, "checkpoint: layer count differs");
	nn_rb_f64s(r, t->gn_sum, t->n_groups);

	nn_rb_f32s(r, params, np);
	nn_rb_f32s(r, state, ns);
	return NN_OK;
}

/* One optional feature vector (a flag, then the floats) into a new buffer
 * (*v NULL when absent). NN_ENOMEM, else NN_OK (r->failed says the rest). */
static nn_status ckpt_vector(nn_trainer *t, nn_rbuf *r, int *has, float **v)
{
	*v = NULL;
	*has = (int)nn_rb_u32(r);
	if (r->failed || !*has)
		return NN_OK;
	*v = malloc(sizeof(float) * (size_t)t->features);
	if (!*v)
		return NN_ENOMEM;
	nn_rb_f32s(r, *v, t->features);
	return NN_OK;
}

/* The standardisation: none in the checkpoint clears the model's. */
static nn_status ckpt_standardize(nn_trainer *t, nn_rbuf *r, char *err, size_t errlen)
{
	float *mean = NULL, *sd = NULL;
	int has_mean = 0, has_sd = 0;
	nn_status st = ckpt_vector(t, r, &has_mean, &mean);
	if (st == NN_OK)
		st = ckpt_vector(t, r, &has_sd, &sd);
	if (st != NN_OK) {
		free(mean);
		nn_errf(err, errlen, "checkpoint: out of memory");
		return st;
	}
	if (r->failed || has_mean != has_sd) {
		free(mean);
		free(sd);
		nn_errf(err, errlen, "checkpoint: malformed standardisation");
		return NN_ECORRUPT;
	}
	st = nn_model_set_standardize(t->m, mean, sd);
	free(mean);
	free(sd);
	if (st != NN_OK)
		nn_errf(err, errlen, "checkpoint: cannot restore the standardisation");
	return st;
}

/* The optimizer's buffers, the weight average, early stopping's state and
 * the last epoch's record. */
static nn_status ckpt_optimizer(nn_trainer *t, nn_rbuf *r, char *err, size_t errlen)
{
	int64_t np = 0, ns = 0;
	nn_model_params(t->m, &np);
	nn_model_state(t->m, &ns);
	int nb = nn_optim_buffers(t->cfg.opt.type);
	EXPECT(!r->failed && (int)nn_rb_u32(r) == nb, "checkpoint: optimizer state differs");
	if (nb >= 1)
		nn_rb_f32s(r, t->s1, np);
	if (nb >= 2)
		nn_rb_f32s(r, t->s2, np);

	t->avg_n = (int64_t)nn_rb_u64(r);
	EXPECT(!r->failed && (int)nn_rb_u32(r) == (t->avg != NULL), "checkpoint: averaging differs");
	if (t->avg)
		nn_rb_f64s(r, t->avg, np);

	t->best_loss = nn_rb_f32(r);
	t->best_epoch = nn_rb_i32(r);
	t->bad_epochs = nn_rb_i32(r);
	t->stopped_early = nn_rb_u32(r) != 0;
	EXPECT(!r->failed && (int)nn_rb_u32(r) == (t->best_params != NULL),
	       "checkpoint: early stopping differs");
	if (t->best_params) {
		nn_rb_f32s(r, t->best_params, np);
		nn_rb_f32s(r, t->best_state, ns);
	}

	t->last.epoch = nn_rb_i32(r);
	t->last.train_loss = nn_rb_f32(r);
	t->last.val_loss = nn_rb_f32(r);
	t->last.val_accuracy = nn_rb_f32(r);
	t->last.lr = nn_rb_f32(r);
	return NN_OK;
}

/* Positions and row indices read from the file are within the data. */
static nn_status ckpt_check_ranges(const nn_trainer *t, char *err, size_t errlen)
{
	EXPECT(t->epoch >= 0 && t->pos >= 0 && t->pos <= t->n_tr && t->step >= 0,
	       "checkpoint: position out of range");
	if (t->perm_valid) {
		for (int64_t i = 0; i < t->n_tr; i++)
			EXPECT(t->perm[i] >= 0 && t->perm[i] < t->train->rows,
			       "checkpoint: bad permutation");
	}
	for (int64_t i = 0; i < t->n_tr; i++)
		EXPECT(t->tr_idx[i] >= 0 && t->tr_idx[i] < t->train->rows, "checkpoint: bad split");
	for (int64_t i = 0; i < t->n_va; i++)
		EXPECT(t->va_idx[i] >= 0 && t->va_idx[i] < t->train->rows, "checkpoint: bad split");
	return NN_OK;
}

nn_status nn_ckpt_load(nn_trainer *t, const void *buf, size_t len, char *err, size_t errlen)
{
	nn_rbuf r;
	nn_status st;
	if ((st = ckpt_header(t, &r, buf, len, err, errlen)) != NN_OK ||
	    (st = ckpt_progress(t, &r, err, errlen)) != NN_OK ||
	    (st = ckpt_standardize(t, &r, err, errlen)) != NN_OK ||
	    (st = ckpt_optimizer(t, &r, err, errlen)) != NN_OK)
		return st;
	if (r.failed || r.pos != r.len) {
		nn_errf(err, errlen, "checkpoint: truncated or malformed body");
		return NN_ECORRUPT;
	}
	return ckpt_check_ranges(t, err, errlen);
}
