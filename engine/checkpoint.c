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
#include "trainer.h"

static const char magic[8] = "NNDCKPT";

/* ---------------------------------------------------------------- writer */

typedef struct wbuf {
	unsigned char *buf;
	size_t len, cap;
	int failed;           /* an allocation failed; later writes are no-ops */
} wbuf;

static void w_bytes(wbuf *w, const void *p, size_t n)
{
	if (w->failed)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + n)
			cap *= 2;
		unsigned char *nb = realloc(w->buf, cap);
		if (!nb) {
			w->failed = 1;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void w_u64(wbuf *w, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	w_bytes(w, b, 8);
}

static void w_u32(wbuf *w, uint32_t v)
{
	unsigned char b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	w_bytes(w, b, 4);
}

static void w_i32(wbuf *w, int32_t v) { w_u32(w, (uint32_t)v); }

static void w_f32(wbuf *w, float v)
{
	uint32_t u;
	memcpy(&u, &v, 4);
	w_u32(w, u);
}

static void w_f64(wbuf *w, double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	w_u64(w, u);
}

/* Arrays, value by value in little-endian order. */
static void w_f32s(wbuf *w, const float *v, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		w_f32(w, v[i]);
}

static void w_f64s(wbuf *w, const double *v, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		w_f64(w, v[i]);
}

static void w_i64s(wbuf *w, const int64_t *v, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		w_u64(w, (uint64_t)v[i]);
}

/* An optional array: a presence flag, then the values. */
static void w_opt_f32s(wbuf *w, const float *v, int64_t n)
{
	w_u32(w, v != NULL);
	if (v)
		w_f32s(w, v, n);
}

/* ---------------------------------------------------------------- reader */

typedef struct rbuf {
	const unsigned char *buf;
	size_t len, pos;
	int failed;           /* a read ran past the end; reads return 0 */
} rbuf;

static const unsigned char *r_take(rbuf *r, size_t n)
{
	if (r->failed || n > r->len - r->pos) {
		r->failed = 1;
		return NULL;
	}
	const unsigned char *p = r->buf + r->pos;
	r->pos += n;
	return p;
}

static uint64_t r_u64(rbuf *r)
{
	const unsigned char *p = r_take(r, 8);
	uint64_t v = 0;
	if (p)
		for (int i = 0; i < 8; i++)
			v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t r_u32(rbuf *r)
{
	const unsigned char *p = r_take(r, 4);
	uint32_t v = 0;
	if (p)
		for (int i = 0; i < 4; i++)
			v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static int32_t r_i32(rbuf *r) { return (int32_t)r_u32(r); }

static float r_f32(rbuf *r)
{
	uint32_t u = r_u32(r);
	float v;
	memcpy(&v, &u, 4);
	return v;
}

static double r_f64(rbuf *r)
{
	uint64_t u = r_u64(r);
	double v;
	memcpy(&v, &u, 8);
	return v;
}

/* Array readers check the length first so a corrupt count cannot make them
 * loop for long. */
static int r_room(rbuf *r, int64_t n, size_t size)
{
	if (r->failed || n < 0 || (uint64_t)n > (r->len - r->pos) / size) {
		r->failed = 1;
		return 0;
	}
	return 1;
}

static void r_f32s(rbuf *r, float *v, int64_t n)
{
	if (!r_room(r, n, 4))
		return;
	for (int64_t i = 0; i < n; i++)
		v[i] = r_f32(r);
}

static void r_f64s(rbuf *r, double *v, int64_t n)
{
	if (!r_room(r, n, 8))
		return;
	for (int64_t i = 0; i < n; i++)
		v[i] = r_f64(r);
}

static void r_i64s(rbuf *r, int64_t *v, int64_t n)
{
	if (!r_room(r, n, 8))
		return;
	for (int64_t i = 0; i < n; i++)
		v[i] = (int64_t)r_u64(r);
}

/* ---------------------------------------------------------------- format */

nn_status nn_ckpt_save(const nn_trainer *t, void **buf, size_t *len)
{
	wbuf w = {0};
	int64_t np = 0, ns = 0;
	float *params = nn_model_params(t->m, &np);
	float *state = nn_model_state(t->m, &ns);
	int nb = nn_optim_buffers(t->cfg.opt.type);

	*buf = NULL;
	*len = 0;
	w_bytes(&w, magic, 8);
	w_u32(&w, NN_CKPT_VERSION);

	/* what it belongs to */
	w_u64(&w, (uint64_t)np);
	w_u64(&w, (uint64_t)ns);
	w_u32(&w, (uint32_t)t->features);
	w_u32(&w, (uint32_t)t->outputs);
	w_u64(&w, (uint64_t)t->train->rows);
	w_u64(&w, (uint64_t)(t->val ? t->val->rows : 0));
	w_u32(&w, (uint32_t)t->cfg.batch_size);
	w_u32(&w, (uint32_t)t->cfg.opt.type);
	w_u64(&w, t->cfg.seed);

	/* where the run is */
	w_i32(&w, t->epoch);
	w_u64(&w, (uint64_t)t->pos);
	w_u64(&w, (uint64_t)t->step);
	w_u64(&w, (uint64_t)t->opt_t);
	for (int i = 0; i < 4; i++)
		w_u64(&w, t->rng.s[i]);

	/* splits and the epoch's order */
	w_u64(&w, (uint64_t)t->n_tr);
	w_i64s(&w, t->tr_idx, t->n_tr);
	w_u64(&w, (uint64_t)t->n_va);
	w_i64s(&w, t->va_idx, t->n_va);
	w_u32(&w, (uint32_t)t->perm_valid);
	if (t->perm_valid)
		w_i64s(&w, t->perm, t->n_tr);

	/* the epoch's accumulators */
	w_f64(&w, t->loss_sum);
	w_u64(&w, (uint64_t)t->loss_n);
	w_u32(&w, (uint32_t)t->n_groups);
	w_f64s(&w, t->gn_sum, t->n_groups);

	/* the model */
	w_f32s(&w, params, np);
	w_f32s(&w, state, ns);
	w_opt_f32s(&w, nn_model_std_mean(t->m), t->features);
	w_opt_f32s(&w, nn_model_std_std(t->m), t->features);

	/* optimizer */
	w_u32(&w, (uint32_t)nb);
	if (nb >= 1)
		w_f32s(&w, t->s1, np);
	if (nb >= 2)
		w_f32s(&w, t->s2, np);

	/* averaging */
	w_u64(&w, (uint64_t)t->avg_n);
	w_u32(&w, t->avg != NULL);
	if (t->avg)
		w_f64s(&w, t->avg, np);

	/* early stopping */
	w_f32(&w, t->best_loss);
	w_i32(&w, t->best_epoch);
	w_i32(&w, t->bad_epochs);
	w_u32(&w, (uint32_t)t->stopped_early);
	w_u32(&w, t->best_params != NULL);
	if (t->best_params) {
		w_f32s(&w, t->best_params, np);
		w_f32s(&w, t->best_state, ns);
	}

	/* the last epoch's record (for the result after a resume) */
	w_i32(&w, t->last.epoch);
	w_f32(&w, t->last.train_loss);
	w_f32(&w, t->last.val_loss);
	w_f32(&w, t->last.val_accuracy);
	w_f32(&w, t->last.lr);

	uint32_t crc = w.failed ? 0 : nn_crc32(0, w.buf, w.len);
	w_u32(&w, crc);
	if (w.failed) {
		free(w.buf);
		return NN_ENOMEM;
	}
	*buf = w.buf;
	*len = w.len;
	return NN_OK;
}

#define EXPECT(cond, ...)                                         \
	do {                                                      \
		if (!(cond)) {                                    \
			nn_errf(err, errlen, __VA_ARGS__);        \
			return NN_EINVAL;                         \
		}                                                 \
	} while (0)

nn_status nn_ckpt_load(nn_trainer *t, const void *buf, size_t len, char *err, size_t errlen)
{
	rbuf r = { buf, len, 0, 0 };
	int64_t np = 0, ns = 0;
	float *params = nn_model_params(t->m, &np);
	float *state = nn_model_state(t->m, &ns);
	int nb = nn_optim_buffers(t->cfg.opt.type);
	uint32_t crc;

	if (!buf || len < 8 + 4 + 4 || memcmp(buf, magic, 8) != 0) {
		nn_errf(err, errlen, "checkpoint: bad magic or too short");
		return NN_ECORRUPT;
	}
	{
		rbuf c = { (const unsigned char *)buf + len - 4, 4, 0, 0 };
		crc = r_u32(&c);
	}
	if (nn_crc32(0, buf, len - 4) != crc) {
		nn_errf(err, errlen, "checkpoint: checksum mismatch");
		return NN_ECORRUPT;
	}
	r.len = len - 4;
	r.pos = 8;
	uint32_t version = r_u32(&r);
	if (version != NN_CKPT_VERSION) {
		nn_errf(err, errlen, "checkpoint: unsupported version %u", version);
		return NN_ECORRUPT;
	}

	EXPECT(r_u64(&r) == (uint64_t)np && r_u64(&r) == (uint64_t)ns,
	       "checkpoint: belongs to a model of another shape");
	EXPECT(r_u32(&r) == (uint32_t)t->features && r_u32(&r) == (uint32_t)t->outputs,
	       "checkpoint: belongs to data of another shape");
	EXPECT(r_u64(&r) == (uint64_t)t->train->rows &&
	       r_u64(&r) == (uint64_t)(t->val ? t->val->rows : 0),
	       "checkpoint: belongs to data sets of other sizes");
	EXPECT(r_u32(&r) == (uint32_t)t->cfg.batch_size && r_u32(&r) == (uint32_t)t->cfg.opt.type &&
	       r_u64(&r) == t->cfg.seed, "checkpoint: belongs to another training config");

	t->epoch = r_i32(&r);
	t->pos = (int64_t)r_u64(&r);
	t->step = (int64_t)r_u64(&r);
	t->opt_t = (int64_t)r_u64(&r);
	for (int i = 0; i < 4; i++)
		t->rng.s[i] = r_u64(&r);

	EXPECT(!r.failed && (int64_t)r_u64(&r) == t->n_tr, "checkpoint: training split differs");
	r_i64s(&r, t->tr_idx, t->n_tr);
	EXPECT(!r.failed && (int64_t)r_u64(&r) == t->n_va, "checkpoint: validation split differs");
	r_i64s(&r, t->va_idx, t->n_va);
	t->perm_valid = (int)r_u32(&r);
	if (t->perm_valid)
		r_i64s(&r, t->perm, t->n_tr);

	t->loss_sum = r_f64(&r);
	t->loss_n = (int64_t)r_u64(&r);
	EXPECT(!r.failed && (int)r_u32(&r) == t->n_groups, "checkpoint: layer count differs");
	r_f64s(&r, t->gn_sum, t->n_groups);

	r_f32s(&r, params, np);
	r_f32s(&r, state, ns);
	float *mean = NULL, *sd = NULL;
	int has_mean = (int)r_u32(&r);
	if (!r.failed && has_mean) {
		mean = malloc(sizeof(float) * (size_t)t->features);
		if (!mean) {
			nn_errf(err, errlen, "checkpoint: out of memory");
			return NN_ENOMEM;
		}
		r_f32s(&r, mean, t->features);
	}
	int has_sd = (int)r_u32(&r);
	if (!r.failed && has_sd) {
		sd = malloc(sizeof(float) * (size_t)t->features);
		if (!sd) {
			free(mean);
			nn_errf(err, errlen, "checkpoint: out of memory");
			return NN_ENOMEM;
		}
		r_f32s(&r, sd, t->features);
	}
	if (r.failed || has_mean != has_sd) {
		free(mean);
		free(sd);
		nn_errf(err, errlen, "checkpoint: malformed standardisation");
		return NN_ECORRUPT;
	}
	/* none in the checkpoint clears the model's */
	nn_status st = nn_model_set_standardize(t->m, mean, sd);
	free(mean);
	free(sd);
	if (st != NN_OK) {
		nn_errf(err, errlen, "checkpoint: cannot restore the standardisation");
		return st;
	}

	EXPECT(!r.failed && (int)r_u32(&r) == nb, "checkpoint: optimizer state differs");
	if (nb >= 1)
		r_f32s(&r, t->s1, np);
	if (nb >= 2)
		r_f32s(&r, t->s2, np);

	t->avg_n = (int64_t)r_u64(&r);
	EXPECT(!r.failed && (int)r_u32(&r) == (t->avg != NULL), "checkpoint: averaging differs");
	if (t->avg)
		r_f64s(&r, t->avg, np);

	t->best_loss = r_f32(&r);
	t->best_epoch = r_i32(&r);
	t->bad_epochs = r_i32(&r);
	t->stopped_early = r_u32(&r) != 0;
	EXPECT(!r.failed && (int)r_u32(&r) == (t->best_params != NULL),
	       "checkpoint: early stopping differs");
	if (t->best_params) {
		r_f32s(&r, t->best_params, np);
		r_f32s(&r, t->best_state, ns);
	}

	t->last.epoch = r_i32(&r);
	t->last.train_loss = r_f32(&r);
	t->last.val_loss = r_f32(&r);
	t->last.val_accuracy = r_f32(&r);
	t->last.lr = r_f32(&r);

	if (r.failed || r.pos != r.len) {
		nn_errf(err, errlen, "checkpoint: truncated or malformed body");
		return NN_ECORRUPT;
	}
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
