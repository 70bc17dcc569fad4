/*
 * sparse_in_impl.h - the layout behind sparse_in.h, shared by its AVX-512
 * kernels (sparse_in.c) and their plain twins (sparse_in_plain.c). Private
 * to those two files.
 *
 * The plain twins compute the same float operations in the same order as
 * the AVX-512 kernels: a lane of a vector operation is one scalar
 * operation, _mm512_fmadd_ps is fmaf, a multiply and an add stay two
 * (the engine builds with -ffp-contract=off). So either kind may run any
 * call, and tests compare the two to the bit. sparse_in.c picks the
 * AVX-512 kernels where the CPU has them (and nn_tune.simd), else these.
 */
#ifndef NN_SPARSE_IN_IMPL_H
#define NN_SPARSE_IN_IMPL_H

#include <stdint.h>

#include "sparse_in.h"

#define KC 64   /* features per chunk: KC x 128 floats (32 KiB) of Ws^T */
#define BLK 128 /* outputs per block: eight 16-float accumulators */

struct nn_sparse_in {
	int max_batch, f, out, n;
	int nchunk;            /* ceil(f / KC) */
	int nblk;              /* ceil(out / BLK) */
	int32_t nnz;
	int32_t *col;          /* feature index of each non-zero (+16 slack) */
	float *val;            /* its value */
	int32_t *cb;           /* row i, chunk c: cb[i * (nchunk + 1) + c] */
	uint64_t *rm;          /* row i, chunk c: rm[i * nchunk + c], bit j = feature
	                        * c * KC + j is non-zero */
	float *wt;             /* [nblk][f][BLK] packed Ws^T (tail block narrower) */
	float *c;              /* [out] folded bias */
	float *rs;             /* [f] 1 / sd */
	const float *mean;     /* the step's standardisation mean, or NULL */
	const float *sd;       /* and sd, or NULL */
	/* the weight gradient */
	int active;            /* weights given since the last begin */
	uint32_t *mask;        /* [nbc][f]: bit i = row bc * 32 + i is non-zero at k
	                        * (set as the rows are added) */
	float *dzp;            /* [nblk][max_batch][BLK] packed dz */
	float *gt;             /* [nblk][f][BLK] packed x^T dz */
	float *db;             /* [out] bias gradient scratch (layers without bias) */
	/* the fused optimizer step (nn_sparse_in_adam) */
	int defer;             /* nn_sparse_in_grad leaves dW to nn_sparse_in_adam */
	int pending;           /* a deferred gradient waits in gt */
	const float *dbp;      /* its bias gradient */
	const float *fresh;    /* W whose Ws^T nn_sparse_in_adam packed, or NULL */
	const float *fresh_sd; /* the sd it was packed with */
	float *csum;           /* [out] sum_k Ws[j][k] mean[k] of that packing */
	/* wt, c and rs are these, or another's lent by nn_sparse_in_share_weights */
	float *own_wt, *own_c, *own_rs;
};

/* Where Ws^T[k][j] lives in the packed layout (x^T dz in gt: the same
 * offset). */
static inline float *sp_wt_at(const nn_sparse_in *s, int k, int j)
{
	int blk = j / BLK;
	int w = s->out - blk * BLK < BLK ? s->out - blk * BLK : BLK;
	return s->wt + (int64_t)blk * BLK * s->f + (int64_t)k * w + (j - blk * BLK);
}

/* The gradient walks the rows of group bc (rows bc * 32 ..) feature by
 * feature: cur[r] starts at row bc * 32 + r's first value. */
static inline void sp_cursors(const nn_sparse_in *s, int bc, int32_t cur[32])
{
	for (int r = 0; r < 32 && bc * 32 + r < s->n; r++)
		cur[r] = s->cb[(int64_t)(bc * 32 + r) * (s->nchunk + 1)];
}

/* The plain twins of the AVX-512 kernels (sparse_in.c says what each does). */
void sp_add_row_plain(nn_sparse_in *s, const uint8_t *b, const float *x);
void sp_weights_plain(nn_sparse_in *s, const float *W, const float *b, const float *mean);
void sp_forward_plain(const nn_sparse_in *s, float *z);
void sp_grad_block_plain(nn_sparse_in *s, int blk);
void sp_grad_block_narrow_plain(nn_sparse_in *s, int blk, int w);
void sp_grad_epilogue_plain(nn_sparse_in *s, const float *db, float *dW);
double sp_adam_plain(nn_sparse_in *s, const nn_adam_scalars *a, float *W, float *m, float *v);

#endif
