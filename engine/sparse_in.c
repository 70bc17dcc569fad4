/*
 * sparse_in.c - a dense layer's forward product and weight gradient from
 * the non-zero inputs of a batch (see sparse_in.h for the identity and when
 * the trainer and prediction use it).
 *
 * Layout, chosen so that the hot loops read only L1:
 *  - the batch is kept as compressed rows: per row its non-zero features
 *    (index and value) in feature order, with the start of every chunk of
 *    KC features (cb) and the chunk's 64-bit mask of non-zeros (rm), built
 *    16 values at a time with AVX-512 compress; per 32 rows and feature, a
 *    mask of the rows non-zero there (mask), for the gradient;
 *  - Ws^T is packed per block of 128 outputs: wt[block][k][128], so the KC
 *    rows of one chunk of one block (KC x 512 bytes) are contiguous and stay
 *    in L1 while every row of the batch runs over them;
 *  - the forward product runs block by block, chunk by chunk, two rows at a
 *    time, each row's 128 outputs in eight AVX-512 accumulators, loaded from
 *    z (or from the folded bias at the first chunk) and stored back after
 *    the chunk; the features non-zero in both rows load Ws^T once;
 *  - the gradient runs per 32 rows (their dz, packed, 16 KiB) and feature,
 *    the sums in eight accumulators, then is corrected and transposed back.
 * Ws^T and the folded bias are rebuilt once per step from the current
 * weights with 16 x 16 in-register transposes; with Adam, the trainer has
 * nn_sparse_in_adam do that in the same pass as the gradient's transpose
 * and the optimizer step (sparse_in.h).
 *
 * The kernels here are compiled for AVX-512F (function attributes) and run
 * where the CPU has it (and nn_tune.simd); elsewhere each entry point calls
 * the kernel's plain twin (sparse_in_plain.c), which gives the same bits.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sparse_in_impl.h"
#include "tune.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SP_X86 1
#define SP_TARGET __attribute__((target("avx512f")))
#else
#define SP_X86 0
#endif

/* 1 when the AVX-512 kernels run: the CPU has them and nn_tune.simd. */
static int simd(void)
{
#if SP_X86
	return nn_tune.simd && __builtin_cpu_supports("avx512f");
#else
	return 0;
#endif
}

int nn_sparse_in_simd(void)
{
	return simd();
}

int nn_sparse_in_supported(void)
{
	/* the plain twins, even vectorised for AVX2 and FMA, train a
	 * 784-256-128-10 MLP on Fashion-MNIST about 3x slower than sgemm (6.5k
	 * against 16-20k samples/s, measured on an AVX-512 machine with
	 * nn_tune.simd 0): worth it only with AVX-512 */
#if SP_X86
	return __builtin_cpu_supports("avx512f");
#else
	return 0;
#endif
}

void nn_sparse_in_free(nn_sparse_in *s)
{
	if (!s)
		return;
	free(s->col);
	free(s->val);
	free(s->cb);
	free(s->rm);
	free(s->own_wt);
	free(s->own_c);
	free(s->own_rs);
	free(s->mask);
	free(s->dzp);
	free(s->gt);
	free(s->db);
	free(s->csum);
	free(s);
}

static nn_sparse_in *create(int max_batch, int f, int out, int grad);

nn_sparse_in *nn_sparse_in_create(int max_batch, int f, int out)
{
	return create(max_batch, f, out, 1);
}

nn_sparse_in *nn_sparse_in_create_forward(int max_batch, int f, int out)
{
	return create(max_batch, f, out, 0);
}

static nn_sparse_in *create(int max_batch, int f, int out, int grad)
{
	if (max_batch <= 0 || f <= 0 || out <= 0 || out % 16)
		return NULL;
	nn_sparse_in *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->max_batch = max_batch;
	s->f = f;
	s->out = out;
	s->nchunk = (f + KC - 1) / KC;
	s->nblk = (out + BLK - 1) / BLK;
	size_t cap = (size_t)max_batch * (size_t)f + 16;
	s->col = malloc(sizeof(int32_t) * cap);
	s->val = malloc(sizeof(float) * cap);
	s->cb = malloc(sizeof(int32_t) * (size_t)max_batch * (size_t)(s->nchunk + 1));
	s->rm = malloc(sizeof(uint64_t) * (size_t)max_batch * (size_t)s->nchunk);
	s->wt = aligned_alloc(64, sizeof(float) * (size_t)f * (size_t)s->nblk * BLK);
	s->c = malloc(sizeof(float) * (size_t)out);
	s->rs = malloc(sizeof(float) * (size_t)f);
	s->own_wt = s->wt;
	s->own_c = s->c;
	s->own_rs = s->rs;
	if (grad) {
		s->mask = malloc(sizeof(uint32_t) * (size_t)f * (size_t)((max_batch + 31) / 32));
		s->dzp = aligned_alloc(64, sizeof(float) * (size_t)max_batch * (size_t)s->nblk * BLK);
		s->gt = aligned_alloc(64, sizeof(float) * (size_t)f * (size_t)s->nblk * BLK);
		s->db = malloc(sizeof(float) * (size_t)out);
	}
	s->csum = malloc(sizeof(float) * (size_t)out);
	if (!s->col || !s->val || !s->cb || !s->rm || !s->wt || !s->c || !s->rs || !s->csum ||
	    (grad && (!s->mask || !s->dzp || !s->gt || !s->db))) {
		nn_sparse_in_free(s);
		return NULL;
	}
	return s;
}

void nn_sparse_in_begin(nn_sparse_in *s)
{
	s->n = 0;
	s->nnz = 0;
	s->active = 0;
	if (s->mask)
		memset(s->mask, 0,
		       sizeof(uint32_t) * (size_t)s->f * (size_t)((s->max_batch + 31) / 32));
}

int nn_sparse_in_active(const nn_sparse_in *s)
{
	return s->active;
}

void nn_sparse_in_reuse_weights(nn_sparse_in *s)
{
	s->active = 1;
}

double nn_sparse_in_density(const nn_sparse_in *s)
{
	return s->n ? (double)s->nnz / ((double)s->n * (double)s->f) : 1.0;
}

int nn_sparse_in_rows(const nn_sparse_in *s)
{
	return s->n;
}

#if SP_X86
/* Appends one row, from bytes (b) or from floats (x, a hidden layer's input:
 * every value that is not 0, NaN included, is kept as it is): its non-zeros
 * (compressed 16 at a time), its chunk starts and chunk masks, and its bit
 * in the per-feature row masks. */
SP_TARGET static void add_row_avx512(nn_sparse_in *s, const uint8_t *b, const float *x)
{
	const int f = s->f;
	int32_t *cb = s->cb + (int64_t)s->n * (s->nchunk + 1);
	int32_t nnz = s->nnz;
	const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	                                       15);
	uint32_t *mrow = s->mask ? s->mask + (int64_t)(s->n / 32) * f : NULL;
	uint32_t bit = 1u << (s->n % 32);
	const __m512i bitv = _mm512_set1_epi32((int)bit);
	uint64_t *rm = s->rm + (int64_t)s->n * s->nchunk;
	int32_t *restrict col = s->col;
	float *restrict val = s->val;
	memset(rm, 0, sizeof(uint64_t) * (size_t)s->nchunk);
	int k = 0, c = 0;
	uint64_t cm = 0; /* the current chunk's mask, stored when it is full */
	for (; k + 16 <= f; k += 16) {
		if (k % KC == 0) {
			if (k)
				rm[k / KC - 1] = cm;
			cm = 0;
			cb[c++] = nnz;
		}
		__m512 v;
		__mmask16 m;
		if (b) {
			__m512i vi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + k)));
			m = _mm512_test_epi32_mask(vi, vi);
			v = _mm512_cvtepi32_ps(vi);
		} else {
			v = _mm512_loadu_ps(x + k);
			m = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
		}
		__m512i idx = _mm512_add_epi32(_mm512_set1_epi32(k), lane);
		/* full-width stores, the slack absorbs what lies past the count */
		_mm512_storeu_si512(col + nnz, _mm512_maskz_compress_epi32(m, idx));
		_mm512_storeu_ps(val + nnz, _mm512_maskz_compress_ps(m, v));
		/* this row's bit in the masks of the 16 features, 16 words at once */
		if (mrow) {
			__m512i *mw = (__m512i *)(mrow + k);
			_mm512_storeu_si512(mw, _mm512_mask_or_epi32(_mm512_loadu_si512(mw), m,
			                                             _mm512_loadu_si512(mw), bitv));
		}
		cm |= (uint64_t)m << (k % KC);
		nnz += __builtin_popcount(m);
	}
	if (k)
		rm[(k - 1) / KC] = cm;
	for (; k < f; k++) {
		if (k % KC == 0)
			cb[c++] = nnz;
		float v = b ? (float)b[k] : x[k];
		if (v != 0.0f || v != v) {
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
#endif

static void add_row(nn_sparse_in *s, const uint8_t *b, const float *x)
{
	if (s->n >= s->max_batch)
		return;
#if SP_X86
	if (simd()) {
		add_row_avx512(s, b, x);
		return;
	}
#endif
	sp_add_row_plain(s, b, x);
}

void nn_sparse_in_add_row_f32(nn_sparse_in *s, const float *row)
{
	add_row(s, NULL, row);
}

void nn_sparse_in_add_row(nn_sparse_in *s, const uint8_t *row)
{
	add_row(s, row, NULL);
}

#if SP_X86
/* Transposes the 16 x 16 tile r (rows in registers) in place. */
SP_TARGET static inline void transpose16(__m512 r[16])
{
	__m512 t[16], u[16];
	for (int i = 0; i < 8; i++) {
		t[i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[i + 8] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	/* t[i]: rows 2i, 2i+1 interleaved, columns 4L, 4L+1 of each lane L;
	 * t[i + 8]: columns 4L+2, 4L+3 */
	for (int q = 0; q < 4; q++) {
		__m512d a = _mm512_castps_pd(t[2 * q]), b = _mm512_castps_pd(t[2 * q + 1]);
		__m512d a2 = _mm512_castps_pd(t[2 * q + 8]), b2 = _mm512_castps_pd(t[2 * q + 9]);
		/* u[4q + m]: rows 4q..4q+3, column 4L + m in lane L */
		u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
		u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
		u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a2, b2));
		u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a2, b2));
	}
	for (int m = 0; m < 4; m++) {
		__m512 x0 = _mm512_shuffle_f32x4(u[m], u[4 + m], _MM_SHUFFLE(2, 0, 2, 0));
		__m512 y0 = _mm512_shuffle_f32x4(u[m], u[4 + m], _MM_SHUFFLE(3, 1, 3, 1));
		__m512 x1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], _MM_SHUFFLE(2, 0, 2, 0));
		__m512 y1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], _MM_SHUFFLE(3, 1, 3, 1));
		r[m] = _mm512_shuffle_f32x4(x0, x1, _MM_SHUFFLE(2, 0, 2, 0));
		r[8 + m] = _mm512_shuffle_f32x4(x0, x1, _MM_SHUFFLE(3, 1, 3, 1));
		r[4 + m] = _mm512_shuffle_f32x4(y0, y1, _MM_SHUFFLE(2, 0, 2, 0));
		r[12 + m] = _mm512_shuffle_f32x4(y0, y1, _MM_SHUFFLE(3, 1, 3, 1));
	}
}

/* Stores a 16 x 16 tile of W transposed and scaled (r[t]: column k0 + t of
 * 16 rows j, in place) as rows k0.. of the packed Ws^T at base (stride w),
 * adding Ws[j][k] mean[k] into acc[k % 4]. */
SP_TARGET static inline void pack_tile(const nn_sparse_in *s, __m512 r[16], float *base,
                                       int64_t w, int k0, const float *mean, __m512 acc[4])
{
	transpose16(r);
	for (int t = 0; t < 16; t++) {
		__m512 v = _mm512_mul_ps(r[t], _mm512_set1_ps(s->rs[k0 + t]));
		_mm512_storeu_ps(base + (int64_t)(k0 + t) * w, v);
		if (mean)
			acc[t & 3] = _mm512_fmadd_ps(v, _mm512_set1_ps(mean[k0 + t]), acc[t & 3]);
	}
}

/* Loads the gradient tile dW[j0..j0+15][k0..k0+15] into r[0..15] (rows j)
 * from the packed x^T dz at gbase (stride w): (gt[k][j] - mean[k] db[j]) /
 * sd[k]. */
SP_TARGET static inline void grad_tile(const nn_sparse_in *s, __m512 r[16], const float *gbase,
                                       int64_t w, int k0, __m512 dbv)
{
	for (int t = 0; t < 16; t++) {
		__m512 g = _mm512_loadu_ps(gbase + (int64_t)(k0 + t) * w);
		if (s->mean)
			g = _mm512_fnmadd_ps(_mm512_set1_ps(s->mean[k0 + t]), dbv, g);
		r[t] = _mm512_mul_ps(g, _mm512_set1_ps(s->rs[k0 + t]));
	}
	transpose16(r);
}

/* csum[j0 + i] = sum_k Ws[j0 + i][k] mean[k]: the four accumulators'
 * lanes, then the f % 16 tail's. */
SP_TARGET static inline void fold_sums(nn_sparse_in *s, int j0, const __m512 acc[4],
                                       const float tail[16])
{
	float sum[16];
	_mm512_storeu_ps(sum, _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]),
	                                    _mm512_add_ps(acc[2], acc[3])));
	for (int i = 0; i < 16; i++)
		s->csum[j0 + i] = sum[i] + tail[i];
}

SP_TARGET static void weights_avx512(nn_sparse_in *s, const float *W, const float *b,
                                     const float *mean)
{
	const int f = s->f, out = s->out;
	const int f16 = f - f % 16;
	for (int j0 = 0; j0 < out; j0 += 16) {
		/* the packed rows of this block: Ws^T[k][j0..j0+15] at base + k w */
		float *base = sp_wt_at(s, 0, j0);
		int64_t w = sp_wt_at(s, 1, j0) - base;
		/* four accumulators for sum_k Ws[j][k] mean[k], 16 rows j at once */
		__m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
		                  _mm512_setzero_ps() };
		for (int k0 = 0; k0 < f16; k0 += 16) {
			__m512 r[16];
			for (int i = 0; i < 16; i++)
				r[i] = _mm512_loadu_ps(W + (int64_t)(j0 + i) * f + k0);
			pack_tile(s, r, base, w, k0, mean, acc);
		}
		float tail[16] = { 0 };
		for (int k = f16; k < f; k++) {
			for (int i = 0; i < 16; i++) {
				float v = W[(int64_t)(j0 + i) * f + k] * s->rs[k];
				*sp_wt_at(s, k, j0 + i) = v;
				if (mean)
					tail[i] += v * mean[k];
			}
		}
		fold_sums(s, j0, acc, tail);
		for (int i = 0; i < 16; i++)
			s->c[j0 + i] = (b ? b[j0 + i] : 0.0f) - s->csum[j0 + i];
	}
}
#endif

/* s computes with its own packed weights again (nn_sparse_in_share_weights
 * lent it another's). */
static void own_weights(nn_sparse_in *s)
{
	s->wt = s->own_wt;
	s->c = s->own_c;
	s->rs = s->own_rs;
}

void nn_sparse_in_weights(nn_sparse_in *s, const float *W, const float *b, const float *mean,
                          const float *sd)
{
	own_weights(s);
	if (s->fresh && s->fresh == W && s->fresh_sd == sd && s->mean == mean) {
		/* nn_sparse_in_adam packed these weights: refold the bias only */
		for (int j = 0; j < s->out; j++)
			s->c[j] = (b ? b[j] : 0.0f) - s->csum[j];
		s->fresh = NULL;
		s->active = 1;
		return;
	}
	s->fresh = NULL;
	s->mean = mean;
	s->sd = sd;
	s->active = 1;
	for (int k = 0; k < s->f; k++)
		s->rs[k] = sd ? 1.0f / sd[k] : 1.0f;
#if SP_X86
	if (simd()) {
		weights_avx512(s, W, b, mean);
		return;
	}
#endif
	sp_weights_plain(s, W, b, mean);
}

void nn_sparse_in_share_weights(nn_sparse_in *s, const nn_sparse_in *w)
{
	s->wt = w->wt;
	s->c = w->c;
	s->rs = w->rs;
	s->mean = w->mean;
	s->sd = w->sd;
	s->fresh = NULL;
	s->active = 1;
}

#if SP_X86
/* One row, one chunk, one block of w = 16 * NA outputs. */
#define SP_ROW_KERNEL(NAME, NA)                                                              \
	SP_TARGET static inline void NAME(const nn_sparse_in *s, const float *wt, int w,      \
	                                  const float *init, float *z, int32_t p0, int32_t p1) \
	{                                                                                      \
		__m512 a[NA];                                                                  \
		for (int q = 0; q < NA; q++)                                                   \
			a[q] = _mm512_loadu_ps(init + 16 * q);                                 \
		for (int32_t p = p0; p < p1; p++) {                                            \
			__m512 x = _mm512_set1_ps(s->val[p]);                                  \
			const float *wr = wt + (int64_t)s->col[p] * w;                         \
			for (int q = 0; q < NA; q++)                                           \
				a[q] = _mm512_fmadd_ps(x, _mm512_loadu_ps(wr + 16 * q), a[q]); \
		}                                                                              \
		for (int q = 0; q < NA; q++)                                                   \
			_mm512_storeu_ps(z + 16 * q, a[q]);                                    \
	}
SP_ROW_KERNEL(row8, 8)
SP_ROW_KERNEL(row1, 1)

/*
 * Two rows, one chunk, one full block: the features non-zero in both rows
 * load each packed row of Ws^T once for both (the loads, not the
 * multiply-adds, bound this kernel); the rest go row by row. A value's place
 * in its row's list is the count of the row's mask bits below it.
 */
SP_TARGET static inline void pair8(const nn_sparse_in *s, const float *wt, const float *init1,
                                   const float *init2, float *z1, float *z2, int32_t p1,
                                   int32_t p2, uint64_t m1, uint64_t m2)
{
	__m512 a[8], b[8];
	const float *v1 = s->val + p1, *v2 = s->val + p2;
	for (int q = 0; q < 8; q++) {
		a[q] = _mm512_loadu_ps(init1 + 16 * q);
		b[q] = _mm512_loadu_ps(init2 + 16 * q);
	}
	for (uint64_t both = m1 & m2; both; both &= both - 1) {
		int kk = __builtin_ctzll(both);
		uint64_t below = (1ull << kk) - 1;
		__m512 x1 = _mm512_set1_ps(v1[__builtin_popcountll(m1 & below)]);
		__m512 x2 = _mm512_set1_ps(v2[__builtin_popcountll(m2 & below)]);
		const float *wr = wt + (int64_t)kk * BLK;
		for (int q = 0; q < 8; q++) {
			__m512 w = _mm512_loadu_ps(wr + 16 * q);
			a[q] = _mm512_fmadd_ps(x1, w, a[q]);
			b[q] = _mm512_fmadd_ps(x2, w, b[q]);
		}
	}
	for (uint64_t only = m1 & ~m2; only; only &= only - 1) {
		int kk = __builtin_ctzll(only);
		__m512 x1 = _mm512_set1_ps(v1[__builtin_popcountll(m1 & ((1ull << kk) - 1))]);
		const float *wr = wt + (int64_t)kk * BLK;
		for (int q = 0; q < 8; q++)
			a[q] = _mm512_fmadd_ps(x1, _mm512_loadu_ps(wr + 16 * q), a[q]);
	}
	for (uint64_t only = m2 & ~m1; only; only &= only - 1) {
		int kk = __builtin_ctzll(only);
		__m512 x2 = _mm512_set1_ps(v2[__builtin_popcountll(m2 & ((1ull << kk) - 1))]);
		const float *wr = wt + (int64_t)kk * BLK;
		for (int q = 0; q < 8; q++)
			b[q] = _mm512_fmadd_ps(x2, _mm512_loadu_ps(wr + 16 * q), b[q]);
	}
	for (int q = 0; q < 8; q++) {
		_mm512_storeu_ps(z1 + 16 * q, a[q]);
		_mm512_storeu_ps(z2 + 16 * q, b[q]);
	}
}

SP_TARGET static void forward_avx512(const nn_sparse_in *s, float *z)
{
	const int out = s->out, nc1 = s->nchunk + 1;
	for (int blk = 0; blk < s->nblk; blk++) {
		int j0 = blk * BLK;
		int w = out - j0 < BLK ? out - j0 : BLK;
		const float *wt = s->wt + (int64_t)j0 * s->f;
		for (int c = 0; c < s->nchunk; c++) {
			int i = 0;
			if (w == BLK) {
				const float *wc = wt + (int64_t)c * KC * BLK;
				for (; i + 2 <= s->n; i += 2) {
					float *z1 = z + (int64_t)i * out + j0, *z2 = z1 + out;
					pair8(s, wc, c == 0 ? s->c + j0 : z1, c == 0 ? s->c + j0 : z2, z1, z2,
					      s->cb[(int64_t)i * nc1 + c], s->cb[(int64_t)(i + 1) * nc1 + c],
					      s->rm[(int64_t)i * s->nchunk + c],
					      s->rm[(int64_t)(i + 1) * s->nchunk + c]);
				}
			}
			for (; i < s->n; i++) {
				float *zr = z + (int64_t)i * out + j0;
				const float *init = c == 0 ? s->c + j0 : zr;
				int32_t p0 = s->cb[(int64_t)i * nc1 + c], p1 = s->cb[(int64_t)i * nc1 + c + 1];
				if (w == BLK) {
					row8(s, wt, w, init, zr, p0, p1);
				} else {
					for (int q = 0; q < w; q += 16)
						row1(s, wt + q, w, init + q, zr + q, p0, p1);
				}
			}
		}
	}
}
#endif

void nn_sparse_in_forward(const nn_sparse_in *s, float *z)
{
#if SP_X86
	if (simd()) {
		forward_avx512(s, z);
		return;
	}
#endif
	sp_forward_plain(s, z);
}

#if SP_X86
/* x^T dz for one block of 128 outputs: gt[k][0..128) = sum over the rows
 * non-zero at k of x[row][k] dz[row][block], 32 rows at a time (their dz,
 * 16 KiB, stay in L1), the sums in eight accumulators. */
/* The sums of one feature k over the rows in bits, added to a (cursor walk
 * as in grad_block). */
#define SP_GRAD_ONE(a, bits)                                                            \
	for (uint32_t bb_ = (bits); bb_; bb_ &= bb_ - 1) {                                   \
		int r_ = __builtin_ctz(bb_);                                                 \
		__m512 x_ = _mm512_set1_ps(s->val[cur[r_]++]);                               \
		const float *d_ = dzp + (int64_t)(bc * 32 + r_) * BLK;                       \
		for (int q = 0; q < 8; q++)                                                  \
			a[q] = _mm512_fmadd_ps(x_, _mm512_loadu_ps(d_ + 16 * q), a[q]);      \
	}

SP_TARGET static void grad_block(nn_sparse_in *s, int blk)
{
	const int f = s->f;
	const float *dzp = s->dzp + (int64_t)blk * BLK * s->max_batch;
	float *gt = s->gt + (int64_t)blk * BLK * f;
	int nbc = (s->n + 31) / 32;
	for (int bc = 0; bc < nbc; bc++) {
		const uint32_t *mk = s->mask + (int64_t)bc * f;
		/* Each row's non-zeros are in feature order and k only grows, so a
		 * cursor per row walks its values: a broadcast from memory, no
		 * conversion on the vector ports. */
		int32_t cur[32];
		sp_cursors(s, bc, cur);
		/* Features two at a time: a row non-zero at both (neighbouring
		 * pixels mostly are) loads its dz once for both sums. A row's two
		 * values are then consecutive in its list, k's first. */
		int k = 0;
		for (; k + 2 <= f; k += 2) {
			float *g1 = gt + (int64_t)k * BLK, *g2 = g1 + BLK;
			uint32_t m1 = mk[k], m2 = mk[k + 1];
			__m512 a[8], b[8];
			/* the sums' lines four pairs ahead, for writing: with
			 * replicas another core read them in the last step's fold,
			 * and a store waits for that copy's invalidation */
			if (bc == 0 && k + 10 <= f)
				for (int q = 0; q < 16; q++)
					__builtin_prefetch(g1 + 8 * BLK + 16 * q, 1);
			if (bc > 0 && !(m1 | m2))
				continue;
			for (int q = 0; q < 8; q++) {
				a[q] = bc == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(g1 + 16 * q);
				b[q] = bc == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(g2 + 16 * q);
			}
			for (uint32_t both = m1 & m2; both; both &= both - 1) {
				int r = __builtin_ctz(both);
				__m512 x1 = _mm512_set1_ps(s->val[cur[r]]);
				__m512 x2 = _mm512_set1_ps(s->val[cur[r] + 1]);
				cur[r] += 2;
				const float *d = dzp + (int64_t)(bc * 32 + r) * BLK;
				for (int q = 0; q < 8; q++) {
					__m512 dv = _mm512_loadu_ps(d + 16 * q);
					a[q] = _mm512_fmadd_ps(x1, dv, a[q]);
					b[q] = _mm512_fmadd_ps(x2, dv, b[q]);
				}
			}
			SP_GRAD_ONE(a, m1 & ~m2)
			SP_GRAD_ONE(b, m2 & ~m1)
			for (int q = 0; q < 8; q++) {
				_mm512_storeu_ps(g1 + 16 * q, a[q]);
				_mm512_storeu_ps(g2 + 16 * q, b[q]);
			}
		}
		for (; k < f; k++) {
			float *g = gt + (int64_t)k * BLK;
			uint32_t bits = mk[k];
			__m512 a[8];
			if (bc > 0 && !bits)
				continue;
			for (int q = 0; q < 8; q++)
				a[q] = bc == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(g + 16 * q);
			SP_GRAD_ONE(a, bits)
			for (int q = 0; q < 8; q++)
				_mm512_storeu_ps(g + 16 * q, a[q]);
		}
	}
}

/* The same for a block narrower than 128 (w outputs): the sums kept in gt
 * itself, 16 outputs at a time (a tail block only, not a hot path). */
SP_TARGET static void grad_block_narrow(nn_sparse_in *s, int blk, int w)
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
			uint32_t bits = mk[k];
			while (bits) {
				int r = __builtin_ctz(bits);
				bits &= bits - 1;
				__m512 x = _mm512_set1_ps(s->val[cur[r]++]);
				const float *d = dzp + (int64_t)(bc * 32 + r) * w;
				for (int q = 0; q < w; q += 16)
					_mm512_storeu_ps(g + q, _mm512_fmadd_ps(x, _mm512_loadu_ps(d + q),
					                                        _mm512_loadu_ps(g + q)));
			}
		}
	}
}


/* dW[j][k] = (gt[k][j] - mean[k] db[j]) / sd[k], transposed back 16 x 16 */
SP_TARGET static void grad_epilogue(nn_sparse_in *s, const float *db, float *dW)
{
	const int f = s->f, out = s->out;
	const int f16 = f - f % 16;
	for (int j0 = 0; j0 < out; j0 += 16) {
		const float *base = sp_wt_at(s, 0, j0) - s->wt + s->gt;
		int64_t w = sp_wt_at(s, 1, j0) - sp_wt_at(s, 0, j0);
		__m512 dbv = _mm512_loadu_ps(db + j0);
		for (int k0 = 0; k0 < f16; k0 += 16) {
			__m512 r[16];
			grad_tile(s, r, base, w, k0, dbv);
			for (int i = 0; i < 16; i++)
				_mm512_storeu_ps(dW + (int64_t)(j0 + i) * f + k0, r[i]);
		}
		for (int k = f16; k < f; k++)
			for (int i = 0; i < 16; i++) {
				float g = base[(int64_t)k * w + i];
				if (s->mean)
					g -= s->mean[k] * db[j0 + i];
				dW[(int64_t)(j0 + i) * f + k] = g * s->rs[k];
			}
	}
}
#endif

#if SP_X86
/* Sixteen weights' Adam step (adam.h), in lanes: the compiler vectorises
 * nn_adam_one over the local copies. */
SP_TARGET static inline __m512 adam16(const nn_adam_scalars *a, __m512 w, __m512 g, float *m,
                                      float *v)
{
	float wl[16], gl[16], ml[16], vl[16];
	_mm512_storeu_ps(wl, w);
	_mm512_storeu_ps(gl, g);
	memcpy(ml, m, sizeof ml);
	memcpy(vl, v, sizeof vl);
	for (int t = 0; t < 16; t++)
		wl[t] = nn_adam_one(a, wl[t], gl[t], &ml[t], &vl[t]);
	memcpy(m, ml, sizeof ml);
	memcpy(v, vl, sizeof vl);
	return _mm512_loadu_ps(wl);
}

/* Outputs [j_from, j_to) (multiples of 16). */
__attribute__((target("avx512f,prfchw"))) static double adam_avx512(nn_sparse_in *s, const nn_adam_scalars *a, float *W,
                                    float *m, float *v, int j_from, int j_to)
{
	const int f = s->f;
	const int f16 = f - f % 16;
	const float *db = s->dbp;
	const float *mean = s->mean;
	const int decay = a->decay != 1.0f, l2 = a->l2 > 0.0f;
	__m512 sq = _mm512_setzero_ps();
	double sq_tail = 0;
	for (int j0 = j_from; j0 < j_to; j0 += 16) {
		float *base = sp_wt_at(s, 0, j0);
		int64_t w = sp_wt_at(s, 1, j0) - base;
		const float *gbase = base - s->wt + s->gt;
		__m512 dbv = _mm512_loadu_ps(db + j0);
		__m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
		                  _mm512_setzero_ps() };
		for (int k0 = 0; k0 < f16; k0 += 16) {
			__m512 r[16];
			/* the packed rows four tiles ahead, for writing, and the
			 * sums to read: with replicas both cores read the packed
			 * weights each step, and each store otherwise waits for
			 * the other core's copy to be invalidated (measured: a
			 * block's step took 3.6x its time with one replica, 1.7x
			 * with these) */
			if (k0 + 64 + 16 <= f)
				for (int t = 0; t < 16; t++) {
					__builtin_prefetch(base + (int64_t)(k0 + 64 + t) * w, 1);
					__builtin_prefetch(gbase + (int64_t)(k0 + 64 + t) * w, 0);
				}
			grad_tile(s, r, gbase, w, k0, dbv);
			/* r[i]: dW[j0 + i][k0 .. k0 + 15]; the step, row by row. The
			 * 48 rows of W, m and v in flight are too many streams for the
			 * hardware prefetcher: ask for the lines four tiles ahead. */
			for (int i = 0; i < 16; i++) {
				int64_t o = (int64_t)(j0 + i) * f + k0;
				if (k0 + 64 < f) {
					__builtin_prefetch(W + o + 64, 1);
					__builtin_prefetch(m + o + 64, 1);
					__builtin_prefetch(v + o + 64, 1);
				}
				__m512 wv = _mm512_loadu_ps(W + o), g = r[i];
				if (l2)
					g = _mm512_add_ps(g, _mm512_mul_ps(_mm512_set1_ps(a->l2), wv));
				sq = _mm512_add_ps(sq, _mm512_mul_ps(g, g));
				if (decay)
					wv = _mm512_mul_ps(wv, _mm512_set1_ps(a->decay));
				wv = adam16(a, wv, g, m + o, v + o);
				_mm512_storeu_ps(W + o, wv);
				r[i] = wv;
			}
			/* and the new W packed for the next step, as weights_avx512 */
			pack_tile(s, r, base, w, k0, mean, acc);
		}
		float tail[16] = { 0 };
		for (int k = f16; k < f; k++) {
			for (int i = 0; i < 16; i++) {
				int64_t o = (int64_t)(j0 + i) * f + k;
				float g = gbase[(int64_t)k * w + i];
				if (mean)
					g -= mean[k] * db[j0 + i];
				g *= s->rs[k];
				float wv = W[o];
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
		fold_sums(s, j0, acc, tail);
	}
	float lanes[16];
	_mm512_storeu_ps(lanes, sq);
	double total = sq_tail;
	for (int i = 0; i < 16; i++)
		total += lanes[i];
	return total;
}
#endif

void nn_sparse_in_defer(nn_sparse_in *s, int on)
{
	s->defer = on && s->gt;
	if (!s->defer)
		s->pending = 0;
}

int nn_sparse_in_pending(const nn_sparse_in *s)
{
	return s->pending;
}

void nn_sparse_in_forget(nn_sparse_in *s)
{
	if (s)
		s->fresh = NULL;
}

double nn_sparse_in_adam(nn_sparse_in *s, const nn_adam_scalars *a, float *W, float *m,
                         float *v)
{
	if (!s->pending)
		return 0;
	return nn_sparse_in_adam_rows(s, s->dbp, a, W, m, v, 0, s->out);
}

float *nn_sparse_in_grad_sums(nn_sparse_in *s, int64_t *n)
{
	/* blocks of BLK outputs, then the narrower tail: f x out in all */
	*n = s->gt ? (int64_t)s->f * s->out : 0;
	return s->gt;
}

void nn_sparse_in_fold_grad_rows(nn_sparse_in *dst, const nn_sparse_in *src, int j_from,
                                 int j_to)
{
	for (int j0 = j_from; j0 < j_to; j0 += 16) {
		int64_t off = sp_wt_at(dst, 0, j0) - dst->wt, w = sp_wt_at(dst, 1, j0) - sp_wt_at(dst, 0, j0);
		float *d = dst->gt + off;
		const float *x = src->gt + off;
		for (int k = 0; k < dst->f; k++) {
			/* lines another core wrote (src) or read (dst): ahead */
			if (k + 16 < dst->f) {
				__builtin_prefetch(d + (int64_t)(k + 16) * w, 1);
				__builtin_prefetch(x + (int64_t)(k + 16) * w, 0);
			}
			for (int i = 0; i < 16; i++)
				d[(int64_t)k * w + i] += x[(int64_t)k * w + i];
		}
	}
}

double nn_sparse_in_adam_rows(nn_sparse_in *s, const float *db, const nn_adam_scalars *a,
                              float *W, float *m, float *v, int j_from, int j_to)
{
	double sq;
	s->dbp = db;
#if SP_X86
	if (simd())
		sq = adam_avx512(s, a, W, m, v, j_from, j_to);
	else
#endif
		sq = sp_adam_plain(s, a, W, m, v, j_from, j_to);
	s->pending = 0;
	s->fresh = W;
	s->fresh_sd = s->sd;
	return sq;
}

void nn_sparse_in_grad(nn_sparse_in *s, const float *dz, const float *db, float *dW)
{
	const int out = s->out, n = s->n, v = simd();
	if (!s->gt)
		return;
	/* dz packed per block, so a block's rows are contiguous */
	for (int blk = 0; blk < s->nblk; blk++) {
		int j0 = blk * BLK, w = out - j0 < BLK ? out - j0 : BLK;
		float *dst = s->dzp + (int64_t)blk * BLK * s->max_batch;
		for (int i = 0; i < n; i++)
			memcpy(dst + (int64_t)i * w, dz + (int64_t)i * out + j0, sizeof(float) * (size_t)w);
	}
	if (!db) {
		memset(s->db, 0, sizeof(float) * (size_t)out);
		for (int i = 0; i < n; i++)
			for (int j = 0; j < out; j++)
				s->db[j] += dz[(int64_t)i * out + j];
		db = s->db;
	}
	for (int blk = 0; blk < s->nblk; blk++) {
		int w = out - blk * BLK < BLK ? out - blk * BLK : BLK;
#if SP_X86
		if (v && w == BLK)
			grad_block(s, blk);
		else if (v)
			grad_block_narrow(s, blk, w);
		else
#endif
		if (w == BLK)
			sp_grad_block_plain(s, blk);
		else
			sp_grad_block_narrow_plain(s, blk, w);
	}
	if (s->defer) {
		s->dbp = db;
		s->pending = 1;
		return;
	}
#if SP_X86
	if (v) {
		grad_epilogue(s, db, dW);
		return;
	}
#endif
	sp_grad_epilogue_plain(s, db, dW);
}
