/*
 * row_pack.c - one-row products against weights packed once (row_pack.h):
 * the packing, the plain kernel and its AVX-512 and AVX2 twins.
 *
 * A vector kernel keeps a block of outputs in registers while it walks the
 * inputs, then takes the next block: AVX-512 256 outputs in sixteen
 * registers, then 128 in eight, then 16 at a time; AVX2, with sixteen
 * registers of 8, 96 outputs in twelve, then 64, 32, 16 and 8. The pack
 * holds each block's weights [in][cols] contiguous, so a block streams
 * from memory in order. b is read whole up to pad (zeros past out); a
 * block's last vector is stored under a mask that keeps z's writes within
 * out. Each term is a multiply then an add, as the plain loop computes it,
 * so the kernels agree to the bit.
 *
 * Several rows (nn_row_product_rows) take the same blocks, the inputs in
 * chunks of RP_CHUNK: each row in turn runs a chunk from its outputs so far
 * (the bias before the first), so a chunk of a block (32 KiB for AVX-512's
 * 256 outputs, 12 KiB for AVX2's 96) comes from memory once and from the L1
 * cache for the other rows. One row is the same walk in a single chunk.
 * Per output the terms are the one-row kernel's, in its order: each row
 * gets the bits it gets alone.
 */
#include <stdlib.h>
#include <string.h>

#include "row_pack.h"
#include "tune.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RP_X86 1
#else
#define RP_X86 0
#endif

/* Where W[j][k] (j in block bk) sits in wt. */
static inline int64_t slot(const nn_row_block *bk, int j, int k)
{
	return bk->off + (int64_t)k * bk->cols + (j - bk->j0);
}

void nn_row_pack_free(nn_row_pack *p)
{
	if (!p)
		return;
	free(p->wt);
	free(p->b);
	free(p->blk);
	free(p);
}

void nn_row_product_plain(const nn_row_pack *p, const float *x, float *z)
{
	memcpy(z, p->b, sizeof(float) * (size_t)p->out);
	for (int i = 0; i < p->nblk; i++) {
		const nn_row_block *bk = &p->blk[i];
		const int cols = bk->cols, n = p->out - bk->j0 < cols ? p->out - bk->j0 : cols;
		float *zb = z + bk->j0;
		for (int k = 0; k < p->in; k++) {
			float xk = x[k];
			if (xk == 0.0f)
				continue;
			const float *w = p->wt + slot(bk, bk->j0, k);
			for (int j = 0; j < n; j++)
				zb[j] = zb[j] + xk * w[j];
		}
	}
}

#if RP_X86
/*
 * The two vector kernels under one set of names, ZMM_ for AVX-512 (16
 * floats a vector, masks of bits) and YMM_ for AVX2 (8 floats, masks of
 * lanes), so that one body (RP_ROWS) writes both kernels' sums: TERM(a, xv,
 * w) is a + xv w, a product then a sum; TAIL(left) keeps the lanes of a
 * vector that hold outputs, left of them from its first (all when left is
 * the width or more).
 */
#define ZMM_TARGET __attribute__((target("avx512f")))
#define ZMM_W 16
#define ZMM_V __m512
#define ZMM_M __mmask16
#define ZMM_TAIL(left) ((left) >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (left)) - 1))
#define ZMM_SET1(f) _mm512_set1_ps(f)
#define ZMM_LOADU(p) _mm512_loadu_ps(p)
#define ZMM_MLOAD(p, m) _mm512_maskz_loadu_ps(m, p)
#define ZMM_STOREU(p, v) _mm512_storeu_ps(p, v)
#define ZMM_MSTORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define ZMM_TERM(a, xv, w) _mm512_add_ps(a, _mm512_mul_ps(xv, _mm512_load_ps(w)))

#define YMM_TARGET __attribute__((target("avx2")))
#define YMM_W 8
#define YMM_V __m256
#define YMM_M __m256i
#define YMM_TAIL(left)                                                                       \
	_mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define YMM_SET1(f) _mm256_set1_ps(f)
#define YMM_LOADU(p) _mm256_loadu_ps(p)
#define YMM_MLOAD(p, m) _mm256_maskload_ps(p, m)
#define YMM_STOREU(p, v) _mm256_storeu_ps(p, v)
#define YMM_MSTORE(p, m, v) _mm256_maskstore_ps(p, m, v)
#define YMM_TERM(a, xv, w) _mm256_add_ps(a, _mm256_mul_ps(xv, _mm256_load_ps(w)))

/* Inputs per chunk of several rows. */
#define RP_CHUNK 32

/* The outputs of block bk (NA vectors) of the n rows x (row stride ldx)
 * into z (row stride ldz), in NA registers of kernel V, the inputs chunk
 * at a time; the last vector's lanes past out neither loaded nor stored. */
#define RP_ROWS(NAME, NA, V)                                                                 \
	V##_TARGET static inline void NAME(const nn_row_pack *p, const nn_row_block *bk,        \
	                                   const float *x, int ldx, int n, float *z, int ldz,   \
	                                   int chunk)                                        \
	{                                                                                     \
		const int j0 = bk->j0;                                                        \
		V##_M m = V##_TAIL(p->out - j0 - V##_W * (NA - 1));                           \
		for (int k0 = 0; k0 < p->in; k0 += chunk) {                                   \
			int k1 = k0 + chunk < p->in ? k0 + chunk : p->in;                     \
			for (int r = 0; r < n; r++) {                                         \
				const float *xr = x + (int64_t)r * ldx;                       \
				float *zr = z + (int64_t)r * ldz + j0;                        \
				V##_V a[NA];                                                  \
				for (int q = 0; q < NA; q++)                                  \
					a[q] = k0 == 0       ? V##_LOADU(p->b + j0 + V##_W * q) \
					       : q < NA - 1 ? V##_LOADU(zr + V##_W * q)          \
					                    : V##_MLOAD(zr + V##_W * q, m);      \
				const float *w = p->wt + bk->off + (int64_t)k0 * V##_W * NA;  \
				for (int k = k0; k < k1; k++, w += V##_W * NA) {              \
					if (xr[k] == 0.0f)                                    \
						continue;                                     \
					V##_V xv = V##_SET1(xr[k]);                           \
					for (int q = 0; q < NA; q++)                          \
						a[q] = V##_TERM(a[q], xv, w + V##_W * q);     \
				}                                                             \
				for (int q = 0; q < NA - 1; q++)                              \
					V##_STOREU(zr + V##_W * q, a[q]);                     \
				V##_MSTORE(zr + V##_W * (NA - 1), m, a[NA - 1]);              \
			}                                                                     \
		}                                                                             \
	}
RP_ROWS(avx512_rows16, 16, ZMM)
RP_ROWS(avx512_rows8, 8, ZMM)
RP_ROWS(avx512_rows1, 1, ZMM)
RP_ROWS(avx2_rows12, 12, YMM)
RP_ROWS(avx2_rows8, 8, YMM)
RP_ROWS(avx2_rows4, 4, YMM)
RP_ROWS(avx2_rows2, 2, YMM)
RP_ROWS(avx2_rows1, 1, YMM)

/* A kernel's blocks, widest first: nv vectors of the kernel's width. */
#define RP_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))
typedef void rp_rows_fn(const nn_row_pack *p, const nn_row_block *bk, const float *x, int ldx,
                        int n, float *z, int ldz, int chunk);
typedef struct rp_block {
	int nv;
	rp_rows_fn *rows;
} rp_block;

static const rp_block avx512_blocks[] = { { 16, avx512_rows16 }, { 8, avx512_rows8 },
	                                  { 1, avx512_rows1 } };
static const rp_block avx2_blocks[] = { { 12, avx2_rows12 }, { 8, avx2_rows8 },
	                                { 4, avx2_rows4 },   { 2, avx2_rows2 },
	                                { 1, avx2_rows1 } };
#endif

/* Kernel kd's blocks: its table and the table's length (the plain
 * kernel: no table, one block as wide as pad); *width: its vectors' width
 * in floats. */
static int kind_blocks(int kd, const void **table, int *width)
{
	*table = NULL;
	*width = 0;
#if RP_X86
	if (kd == NN_ROW_AVX512) {
		*table = avx512_blocks;
		*width = 16;
		return RP_LEN(avx512_blocks);
	}
	if (kd == NN_ROW_AVX2) {
		*table = avx2_blocks;
		*width = 8;
		return RP_LEN(avx2_blocks);
	}
#endif
	return 0;
}

/* Cuts the outputs into kd's blocks, widest first (the last of a table is
 * one vector, so every output is met), filling blk's j0, cols and fn (room
 * for one block a vector of pad): the count. */
static int cut_blocks(int kd, int out, int pad, nn_row_block *blk)
{
	const void *table;
	int width;
	const int nt = kind_blocks(kd, &table, &width);
	if (!table) {
		blk[0] = (nn_row_block){ 0, pad, 0, 0 };
		return 1;
	}
#if RP_X86
	const rp_block *t = table;
	const int nvec = (out + width - 1) / width;
	int nb = 0;
	for (int i = 0, v = 0; i < nt; i++)
		for (; v + t[i].nv <= nvec; v += t[i].nv)
			blk[nb++] = (nn_row_block){ width * v, width * t[i].nv, i, 0 };
	return nb;
#else
	(void)nt;
	(void)out;
	return 0;
#endif
}

/* W [out][in] and b packed for kernel kd (one this build knows). */
static nn_row_pack *pack_as(int kd, const float *W, const float *b, int in, int out)
{
	if (!W || in <= 0 || out <= 0)
		return NULL;
	nn_row_pack *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->in = in;
	p->out = out;
	p->pad = (out + 15) / 16 * 16;
	p->kind = kd;
	p->blk = calloc((size_t)p->pad / 8, sizeof *p->blk);   /* vectors of 8 at the most */
	p->b = calloc((size_t)p->pad, sizeof(float));
	size_t n = sizeof(float) * (size_t)in * (size_t)p->pad;
	p->wt = aligned_alloc(64, (n + 63) / 64 * 64);
	if (!p->wt || !p->b || !p->blk) {
		nn_row_pack_free(p);
		return NULL;
	}
	memset(p->wt, 0, n);
	p->nblk = cut_blocks(kd, out, p->pad, p->blk);
	int64_t off = 0;
	for (int i = 0; i < p->nblk; i++) {
		nn_row_block *bk = &p->blk[i];
		bk->off = off;
		off += (int64_t)in * bk->cols;
		for (int j = bk->j0; j < out && j < bk->j0 + bk->cols; j++)
			for (int k = 0; k < in; k++)
				p->wt[slot(bk, j, k)] = W[(int64_t)j * in + k];
	}
	if (b)
		memcpy(p->b, b, sizeof(float) * (size_t)out);
	return p;
}

/* Non-zero when this CPU can run kernel kd (NN_ROW_*). */
static int cpu_has(int kd)
{
#if RP_X86
	if (kd == NN_ROW_AVX512)
		return __builtin_cpu_supports("avx512f");
	if (kd == NN_ROW_AVX2)
		return __builtin_cpu_supports("avx2");
#endif
	return kd == NN_ROW_PLAIN;
}

int nn_row_product_simd(void)
{
	if (nn_tune.simd && cpu_has(NN_ROW_AVX512))
		return NN_ROW_AVX512;
	if (nn_tune.simd && cpu_has(NN_ROW_AVX2))
		return NN_ROW_AVX2;
	return NN_ROW_PLAIN;
}

void nn_row_product_rows_plain(const nn_row_pack *p, const float *x, int ldx, int n, float *z,
                               int ldz)
{
	for (int r = 0; r < n; r++)
		nn_row_product_plain(p, x + (int64_t)r * ldx, z + (int64_t)r * ldz);
}

/* The n rows through kernel kd, one this CPU has and p is cut for (any
 * other runs the plain kernel): a row alone in one chunk of every input,
 * several in chunks of RP_CHUNK. */
static void product_as(int kd, const nn_row_pack *p, const float *x, int ldx, int n, float *z,
                       int ldz)
{
	const void *table;
	int width;
	kind_blocks(kd, &table, &width);
	if (!table || kd != p->kind) {
		nn_row_product_rows_plain(p, x, ldx, n, z, ldz);
		return;
	}
#if RP_X86
	const rp_block *t = table;
	const int chunk = n == 1 ? p->in : RP_CHUNK;
	for (int i = 0; i < p->nblk; i++)
		t[p->blk[i].fn].rows(p, &p->blk[i], x, ldx, n, z, ldz, chunk);
#endif
}

nn_row_pack *nn_row_pack_create(const float *W, const float *b, int in, int out)
{
	return pack_as(nn_row_product_simd(), W, b, in, out);
}

void nn_row_product(const nn_row_pack *p, const float *x, float *z)
{
	product_as(nn_row_product_simd(), p, x, p->in, 1, z, p->out);
}

void nn_row_product_rows(const nn_row_pack *p, const float *x, int ldx, int n, float *z, int ldz)
{
	product_as(nn_row_product_simd(), p, x, ldx, n, z, ldz);
}

#ifdef NND_TEST
/* W [out][in] back from p's blocks (malloc'd). */
static float *unpack(const nn_row_pack *p)
{
	float *W = malloc(sizeof(float) * (size_t)p->in * (size_t)p->out);
	for (int i = 0; W && i < p->nblk; i++) {
		const nn_row_block *bk = &p->blk[i];
		for (int j = bk->j0; j < p->out && j < bk->j0 + bk->cols; j++)
			for (int k = 0; k < p->in; k++)
				W[(int64_t)j * p->in + k] = p->wt[slot(bk, j, k)];
	}
	return W;
}

int nn_row_product_rows_as(int kind, const nn_row_pack *p, const float *x, int ldx, int n,
                           float *z, int ldz)
{
	if (!cpu_has(kind))
		return -1;
	if (kind == p->kind || kind == NN_ROW_PLAIN) {
		product_as(kind, p, x, ldx, n, z, ldz);
		return 0;
	}
	float *W = unpack(p);
	nn_row_pack *q = W ? pack_as(kind, W, p->b, p->in, p->out) : NULL;
	if (q)
		product_as(kind, q, x, ldx, n, z, ldz);
	nn_row_pack_free(q);
	free(W);
	return q ? 0 : -1;
}
#endif
