/*
 * trainer.h - what the training files share (train.c, optim.c, checkpoint.c,
 * augment.c) and the unit tests may call: the optimizer step, the explicit
 * form of an image augmentation, the trainer's state and its checkpoint.
 * Private to engine/ like internal.h; callers outside use nn.h only.
 */
#ifndef NN_TRAINER_H
#define NN_TRAINER_H

#include "internal.h"

/* Hot element-wise loops get an AVX-512 and an AVX2 clone next to the
 * baseline one, picked at load time. Contraction into FMA is off (Makefile
 * HOT_CFLAGS), so every clone computes the same floats. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define NN_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NN_HOT
#endif

/*
 * One optimizer step over n parameters p with gradient g (already holding the
 * l2 term and clipping), learning rate lr, and t = the 1-based count of steps
 * taken including this one. s1 and s2 are the optimizer's buffers (n floats
 * each, zero at the start): momentum/nesterov buffer, adagrad sum, rmsprop
 * square average, adam first and second moments. Follows PyTorch 1.13's
 * update rules and order of operations. AdamW's decoupled weight decay
 * applies to the n_wr ranges [wr_off[r], wr_off[r] + wr_len[r]) of p only:
 * the dense weights, like l2 (not biases, not batch-norm parameters).
 */
void nn_optim_step(const nn_optimizer *o, float lr, int64_t t, float *p, const float *g,
                   float *s1, float *s2, int64_t n, int n_wr, const int64_t *wr_off,
                   const int64_t *wr_len);
/* How many state buffers (0, 1 or 2) the optimizer keeps. */
int nn_optim_buffers(nn_opt_type t);
/* Adam's per-step scalars (sparse_in.h's nn_adam_scalars; l2 left 0). */
struct nn_adam_scalars;
void nn_optim_adam_scalars(const nn_optimizer *o, float lr, int64_t t,
                           struct nn_adam_scalars *a);

/* Tuning constants and the counters tests read. */
#include "tune.h"

/* The rows a job with `rows` = k trains on: idx holds the n rows of the
 * training split (ascending); afterwards idx[0..k) are the chosen ones,
 * ascending. The same seed and idx give nested choices for every k. */
void nn_rows_subset(int64_t *idx, int64_t n, int64_t k, uint64_t seed);

/*
 * An image augmentation with every random draw made: nn_augment_image draws
 * these from its rng and applies them with nn_augment_apply, which tests can
 * call with known values.
 */
typedef struct nn_aug_draw {
	int flip_h, flip_v;    /* mirror left-right / top-bottom */
	int crop_x, crop_y;    /* offset in [0, 2 pad] into the zero-padded image */
	int crop_pad;          /* 0 = no crop */
	float angle;           /* degrees, counter-clockwise as displayed (y down) */
	float scale;           /* > 1 zooms in; 1 = none */
	float tx, ty;          /* shift of the content in pixels (+x right, +y down) */
	float brightness;      /* added, already multiplied by the value range */
	float contrast;        /* factor around the mean; 1 = none */
} nn_aug_draw;

void nn_augment_draw(const nn_augment *a, nn_rng *rng, nn_aug_draw *d);
/* dst and src are distinct w x h x c images. */
void nn_augment_apply(const nn_aug_draw *d, const float *src, float *dst, int w, int h, int c);

/* Where a gather puts a batch and what it draws from: the trainer's own
 * buffers, or a shard's (shard.c). sp: node 0's sparse input, or NULL. */
typedef struct nn_batch {
	float *bx;
	int32_t *by;
	float *bt;
	float *img;
	struct nn_sparse_in *sp;
	nn_rng *rng;
} nn_batch;

/*
 * A training run in progress: everything nn_train needs to continue, so a
 * checkpoint is this struct written out (checkpoint.c) and read back.
 * Buffers are sized once in nn_train; a step allocates nothing.
 */
typedef struct nn_trainer {
	nn_model *m;
	nn_ws *ws;
	nn_train_config cfg;
	const nn_data *train;
	const nn_data *val;        /* a separate validation set, or NULL */
	int features, outputs, max_batch;

	/* the training split and (without a separate set) the validation
	 * split: row indices into train->x */
	int64_t *tr_idx, n_tr;
	int64_t *va_idx, n_va;

	/* where the run is */
	int epoch;                 /* 0-based, the epoch in progress */
	int64_t pos;               /* rows of the epoch's permutation done */
	int64_t step;              /* steps taken over the run */
	int64_t steps_per_epoch;
	int perm_valid;            /* perm holds this epoch's order */
	int64_t *perm;             /* n_tr row indices: the split's rows in this epoch's order */
	nn_rng rng;

	/* the epoch's accumulators */
	double loss_sum;
	int64_t loss_n;
	int n_groups;              /* layers with parameters */
	int64_t *group_off, *group_len; /* ranges of params/grads per layer */
	const char **group_names;  /* layer paths, owned by the model */
	double *gn_sum;            /* per layer: sum over the epoch's steps of |g| */
	float *gn_mean;

	/* dense weights (kind NN_T_WEIGHT): ranges into params */
	int n_wr;
	int64_t *wr_off, *wr_len, n_weights;
	float *mag;                /* n_weights scratch for sparsity */

	/* the batch */
	float *bx;                 /* max_batch x features, standardised */
	int32_t *by;               /* labels, or NULL */
	float *bt;                 /* targets, or NULL */
	float *img;                /* one raw image, for augmentation */
	uint8_t *x8;               /* train->x as bytes when every value is an
	                            * integer 0..255 (see byte_copy), or NULL */
	int x8_owned;              /* x8 is our copy (else train->x8) */
	struct nn_sparse_in *sp;   /* the batch's non-zero bytes for node 0's
	                            * forward product (sparse_in.h), or NULL */
	struct nn_sparse_in **sph; /* per node: hidden layers fed by a ReLU */
	int n_nodes;
	int64_t sp_w_off, sp_b_off, sp_w_len;
	int64_t *part_off, *part_len; /* scratch: weight ranges of a part of p */

	/* optimizer */
	float *s1, *s2;            /* n_params each, or NULL */
	int64_t opt_t;

	/* averaging: sum (polyak) or average (ema) of the weights, in double */
	double *avg;
	int64_t avg_n;

	/* early stopping */
	float best_loss;
	int best_epoch;            /* -1 until a validated epoch */
	int bad_epochs;
	int stopped_early;         /* set at the end of the stopping epoch */
	float *best_params, *best_state;

	/* the last finished epoch */
	nn_epoch_record last;

	nn_batch batch;            /* the buffers above, for nn_trainer_gather */
	struct nn_dp *dp;          /* shards > 1: shard.c's state, else NULL */
} nn_trainer;

/* ---- the phases of a step, shared by train.c and shard.c */

/* Gathers n rows of d (rows idx[start..start+n), or start..start+n when idx
 * is NULL) into b: raw image augmentation when `train`, standardisation,
 * then Gaussian noise when `train`, drawing from b->rng. */
void nn_trainer_gather(nn_trainer *t, const nn_batch *b, const nn_data *d, const int64_t *idx,
                       int64_t start, int n, int train);
/* Sum of squares of v[0, n) in 16 float lanes (a fixed order). */
double nn_sumsq(const float *v, int64_t n);
/* g[i] += l2 p[i] over the dense weights within [from, to), leaving out
 * the weight range that starts at skip. */
void nn_trainer_l2(const nn_trainer *t, float *g, const float *p, int64_t from, int64_t to,
                   int64_t skip);
/* clip_grad_norm's factor for a squared global norm (1: none). */
float nn_trainer_clip_coef(const nn_trainer *t, double total);
/* The optimizer on p[from, to) (the dense-weight ranges rebased into the
 * part_off/part_len scratch, n_wr entries each). */
void nn_trainer_optim_range(const nn_trainer *t, float lr, float *p, const float *g,
                            int64_t from, int64_t to, int64_t *part_off, int64_t *part_len);
/* 1 when this step's weights enter the average; nn_trainer_average adds
 * p[from, to) to it (the caller then counts avg_n). */
int nn_trainer_averaging(const nn_trainer *t);
/* 1 when the configuration lets the sparse first layer's Adam step be
 * fused with its gradient (sparse_in.h): Adam or AdamW, no clipping, no
 * sparsity, and nn_tune allows it. One shard or several decide alike. */
int nn_trainer_sparse_fusable(const nn_trainer *t);
void nn_trainer_average(nn_trainer *t, const float *p, int64_t from, int64_t to);
/* Sparsity and averaging over all of p, after the optimizer. */
void nn_trainer_after_update(nn_trainer *t, float *p, int64_t np);
/* Counts the step and reports it to cb->on_step. */
void nn_trainer_end_step(nn_trainer *t, int n, float loss, float lr, const nn_callbacks *cb);
/* The divergence error for a loss that is not finite. */
nn_status nn_trainer_diverged(const nn_trainer *t, float loss, char *err, size_t errlen);

/* ---- shards (shard.c) */

/* Per-shard buffers and the parameter units for cfg.shards > 1, carried by
 * par (NULL: the calling thread runs every task). */
nn_status nn_shard_init(nn_trainer *t, const nn_parallel *par, char *err, size_t errlen);
void nn_shard_release(nn_trainer *t);
/* One step on the rows perm[pos .. pos + n), cut into shards. */
nn_status nn_shard_step(nn_trainer *t, int n, float lr, const nn_callbacks *cb, char *err,
                        size_t errlen);

/* Checkpoint format: "NNDCKPT\0", u32 version, the trainer's fields in a
 * fixed order (little-endian), and a CRC-32 of every byte before it. */
#define NN_CKPT_VERSION 1u
/* Serialises t (the model's params, state and standardisation included)
 * into *buf, malloc'd; free with free(). */
nn_status nn_ckpt_save(const nn_trainer *t, void **buf, size_t *len);
/* Restores a checkpoint into t, whose buffers nn_train has already sized for
 * the same model, data and config; anything else is NN_EINVAL/NN_ECORRUPT. */
nn_status nn_ckpt_load(nn_trainer *t, const void *buf, size_t len, char *err, size_t errlen);

#endif
