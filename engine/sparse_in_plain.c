/*
 * sparse_in_plain.c - the plain twins of sparse_in.c's AVX-512 kernels: the
 * fallback where the CPU has no AVX-512 and the oracle of their tests.
 *
 * Each function walks the same data in the same order as its twin and does
 * per output what the twin does per lane (sparse_in_impl.h): the forward
 * product of a pair of rows takes the features both rows have first, as
 * pair8 does; the gradient takes features two at a time with the rows
 * non-zero at both first, as grad_block does; the sums of Ws mean go to
 * four accumulators by k % 4, as pack_tile's do. fmaf where the twin fuses,
 * a multiply and an add where it does not.
 *
 * The loops are plain C the compiler vectorises; on x86-64 each function
 * is also built for x86-64-v3 (AVX2 and FMA; function clones picked at load
 * time), so fmaf is one instruction where the CPU has it.
 */
#include <math.h>
#include <string.h>

#include "sparse_in_impl.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SP_PLAIN __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SP_PLAIN
#endif

SP_PLAIN void sp_add_row_plain(nn_sparse_in *s, const uint8_t *b, const float *x)
{
	const int f = s->f;
	int32_t *cb = s->cb + (int64_t)s->n * (s->nchunk + 1);
	uint64_t *rm = s->rm + (int64_t)s->n * s->nchunk;
	uint32_t *mrow = s->mask ? s->mask + (int64_t)(s->n / 32) * f : NULL;
	uint32_t bit = 1u << (s->n % 32);
	int32_t nnz = s->nnz;
	memset(rm, 0, sizeof(uint64_t) * (size_t)s->nchunk);
	for (int k = 0; k < f; k++) {
		if (k % KC == 0)
			cb[k / KC] = nnz;
		float v = b ? (float)b[k] : x[k];
		if (v != 0.0f) { /* NaN too, as _CMP_NEQ_UQ; -0 is a zero */
			if (mrow)
				mrow[k] |= bit;
			rm[k / KC] |= 1ull << (k % KC);
			s->col[nnz] = k;
			s->val[nnz++] = v;
		}
	}
	cb[s->nchunk] = nnz;
	s->nnz = nnz;
	s->n++;
}

SP_PLAIN void sp_weights_plain(nn_sparse_in *s, const float *W, const float *b,
                               const float *mean)
{
	const int f = s->f, out = s->out, f16 = f - f % 16;
	for (int j = 0; j < out; j++) {
		float *wt = sp_wt_at(s, 0, j);
		int64_t w = sp_wt_at(s, 1, j) - wt;
		const float *wr = W + (int64_t)j * f;
		float acc[4] = { 0 }, tail = 0;
		for (int k = 0; k < f; k++) {
			float v = wr[k] * s->rs[k];
			wt[(int64_t)k * w] = v;
			if (mean && k < f16)
				acc[k & 3] = fmaf(v, mean[k], acc[k & 3]);
			else if (mean)
				tail += v * mean[k];
		}
		s->csum[j] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + tail;
		s->c[j] = (b ? b[j] : 0.0f) - s->csum[j];
	}
}

/* One row's terms of one chunk onto a [0..w): first the features in both
 * m and `first` (the pair's other row; 0 alone), then the rest of m, each
 * in feature order. v: the row's values of the chunk; wc: Ws^T of the
 * chunk's first feature, stride w. */
static inline void chunk_row(float *a, int w, const float *wc, const float *v, uint64_t m,
                             uint64_t first)
{
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t bits = pass ? m & ~first : m & first; bits; bits &= bits - 1) {
			int kk = __builtin_ctzll(bits);
			float x = v[__builtin_popcountll(m & ((1ull << kk) - 1))];
			const float *wr = wc + (int64_t)kk * w;
			for (int j = 0; j < w; j++)
				a[j] = fmaf(x, wr[j], a[j]);
		}
	}
}

SP_PLAIN void sp_forward_plain(const nn_sparse_in *s, float *z)
{
	const int out = s->out, nc1 = s->nchunk + 1;
	float a[BLK];
	for (int blk = 0; blk < s->nblk; blk++) {
		int j0 = blk * BLK;
		int w = out - j0 < BLK ? out - j0 : BLK;
		const float *wt = s->wt + (int64_t)j0 * s->f;
		for (int c = 0; c < s->nchunk; c++) {
			const float *wc = wt + (int64_t)c * KC * w;
			for (int i = 0; i < s->n; i++) {
				/* full blocks go two rows at a time, as pair8 */
				int paired = w == BLK && (i % 2 ? 1 : i + 1 < s->n);
				int o = i % 2 ? i - 1 : i + 1;
				float *zr = z + (int64_t)i * out + j0;
				memcpy(a, c == 0 ? s->c + j0 : zr, sizeof(float) * (size_t)w);
				chunk_row(a, w, wc, s->val + s->cb[(int64_t)i * nc1 + c],
				          s->rm[(int64_t)i * s->nchunk + c],
				          paired ? s->rm[(int64_t)o * s->nchunk + c] : 0);
				memcpy(zr, a, sizeof(float) * (size_t)w);
			}
		}
	}
}

/* The terms of the rows in `bits` of group bc at one feature onto a [BLK],
 * each row's value at its cursor (then moved on). */
static inline void grad_rows(const nn_sparse_in *s, float *a, const float *dzp, int bc,
                             uint32_t bits, int32_t *cur)
{
	for (; bits; bits &= bits - 1) {
		int r = __builtin_ctz(bits);
		float x = s->val[cur[r]++];
		const float *d = dzp + (int64_t)(bc * 32 + r) * BLK;
		for (int j = 0; j < BLK; j++)
			a[j] = fmaf(x, d[j], a[j]);
	}
}

SP_PLAIN void sp_grad_block_plain(nn_sparse_in *s, int blk)
{
	const int f = s->f;
	const float *dzp = s->dzp + (int64_t)blk * BLK * s->max_batch;
	float *gt = s->gt + (int64_t)blk * BLK * f;
	int nbc = (s->n + 31) / 32;
	for (int bc = 0; bc < nbc; bc++) {
		const uint32_t *mk = s->mask + (int64_t)bc * f;
		int32_t cur[32];
		sp_cursors(s, bc, cur);
		int k = 0;
		for (; k + 2 <= f; k += 2) {
			float *g1 = gt + (int64_t)k * BLK, *g2 = g1 + BLK;
			uint32_t m1 = mk[k], m2 = mk[k + 1];
			if (bc > 0 && !(m1 | m2))
				continue;
			if (bc == 0) {
				memset(g1, 0, sizeof(float) * BLK);
				memset(g2, 0, sizeof(float) * BLK);
			}
			/* rows non-zero at both: their two values are consecutive */
			for (uint32_t both = m1 & m2; both; both &= both - 1) {
				int r = __builtin_ctz(both);
				float x1 = s->val[cur[r]], x2 = s->val[cur[r] + 1];
				cur[r] += 2;
				const float *d = dzp + (int64_t)(bc * 32 + r) * BLK;
				for (int j = 0; j < BLK; j++) {
					g1[j] = fmaf(x1, d[j], g1[j]);
					g2[j] = fmaf(x2, d[j], g2[j]);
				}
			}
			grad_rows(s, g1, dzp, bc, m1 & ~m2, cur);
			grad_rows(s, g2, dzp, bc, m2 & ~m1, cur);
		}
		for (; k < f; k++) {
			float *g = gt + (int64_t)k * BLK;
			if (bc > 0 && !mk[k])
				continue;
			if (bc == 0)
				memset(g, 0, sizeof(float) * BLK);
			grad_rows(s, g, dzp, bc, mk[k], cur);
		}
	}
}

SP_PLAIN void sp_grad_block_narrow_plain(nn_sparse_in *s, int blk, int w)
{
	const int f = s->f;
	const float *dzp = s->dzp + (int64_t)blk * BLK * s->max_batch;
	float *gt = s->gt + (int64_t)blk * BLK * f;
	int nbc = (s->n + 31) / 32;
	memset(gt, 0, sizeof(float) * (size_t)f * (size_t)w);
	for (int bc = 0; bc < nbc; bc++) {
		const uint32_t *mk = s->mask + (int64_t)bc * f;
		int32_t cur[32];
		sp_cursors(s, bc, cur);
		for (int k = 0; k < f; k++) {
			float *g = gt + (int64_t)k * w;
			for (uint32_t bits = mk[k]; bits; bits &= bits - 1) {
				int r = __builtin_ctz(bits);
				float x = s->val[cur[r]++];
				const float *d = dzp + (int64_t)(bc * 32 + r) * w;
				for (int q = 0; q < w; q++)
					g[q] = fmaf(x, d[q], g[q]);
			}
		}
	}
}

/* dW[j][k] from gt: (gt[k][j] - mean[k] db[j]) / sd[k], the subtraction
 * fused below f16 (as grad_tile), not in the f % 16 tail. */
static inline float grad_at(const nn_sparse_in *s, const float *db, int j, int k, int f16)
{
	float g = *(sp_wt_at(s, k, j) - s->wt + s->gt);
	if (s->mean && k < f16)
		g = fmaf(-s->mean[k], db[j], g);
	else if (s->mean)
		g -= s->mean[k] * db[j];
	return g * s->rs[k];
}

SP_PLAIN void sp_grad_epilogue_plain(nn_sparse_in *s, const float *db, float *dW)
{
	const int f = s->f, f16 = f - f % 16;
	for (int j = 0; j < s->out; j++)
		for (int k = 0; k < f; k++)
			dW[(int64_t)j * f + k] = grad_at(s, db, j, k, f16);
}

SP_PLAIN double sp_adam_plain(nn_sparse_in *s, const nn_adam_scalars *a, float *W, float *m,
                              float *v, int j_from, int j_to)
{
	const int f = s->f, f16 = f - f % 16;
	const float *db = s->dbp, *mean = s->mean;
	const int decay = a->decay != 1.0f, l2 = a->l2 > 0.0f;
	float sq[16] = { 0 }; /* the twin's lanes: k % 16 below f16 */
	double sq_tail = 0;
	for (int j0 = j_from; j0 < j_to; j0 += 16) {
		float acc[4][16] = { { 0 } }, tail[16] = { 0 };
		/* tiles of 16 x 16, rows j in order within each, as the twin */
		for (int k0 = 0; k0 < f16; k0 += 16) {
			for (int i = 0; i < 16; i++) {
				for (int t = 0; t < 16; t++) {
					int64_t o = (int64_t)(j0 + i) * f + k0 + t;
					float g = grad_at(s, db, j0 + i, k0 + t, f16), wv = W[o];
					if (l2)
						g = g + a->l2 * wv;
					sq[t] = sq[t] + g * g;
					if (decay)
						wv = wv * a->decay;
					W[o] = nn_adam_one(a, wv, g, m + o, v + o);
				}
			}
			for (int t = 0; t < 16; t++) {
				int k = k0 + t;
				for (int i = 0; i < 16; i++) {
					float x = W[(int64_t)(j0 + i) * f + k] * s->rs[k];
					*sp_wt_at(s, k, j0 + i) = x;
					if (mean)
						acc[t & 3][i] = fmaf(x, mean[k], acc[t & 3][i]);
				}
			}
		}
		for (int k = f16; k < f; k++) {
			for (int i = 0; i < 16; i++) {
				int64_t o = (int64_t)(j0 + i) * f + k;
				float g = grad_at(s, db, j0 + i, k, f16), wv = W[o];
				if (l2)
					g += a->l2 * wv;
				sq_tail += (double)g * g;
				if (decay)
					wv *= a->decay;
				wv = nn_adam_one(a, wv, g, m + o, v + o);
				W[o] = wv;
				float x = wv * s->rs[k];
				*sp_wt_at(s, k, j0 + i) = x;
				if (mean)
					tail[i] += x * mean[k];
			}
		}
		for (int i = 0; i < 16; i++)
			s->csum[j0 + i] = ((acc[0][i] + acc[1][i]) + (acc[2][i] + acc[3][i])) + tail[i];
	}
	double total = sq_tail;
	for (int t = 0; t < 16; t++)
		total += sq[t];
	return total;
}
