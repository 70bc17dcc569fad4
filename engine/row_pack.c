/*
 * row_pack.c - one-row products against weights packed once (row_pack.h):
 * the packing, the plain kernel and its AVX-512 twin.
 *
 * The AVX-512 kernel keeps 256 outputs in sixteen registers while it walks
 * the inputs (Wt's rows for those outputs: 1 KiB contiguous each, so a
 * layer 256 wide streams Wt from start to end), then the next 256; then 128
 * in eight, then 16 at a time, the last 16 stored under a mask. Each term is a multiply then an add, as the
 * plain loop computes it, so the two agree to the bit.
 *
 * Several rows (nn_row_product_rows) take the same blocks, the inputs in
 * chunks of RP_CHUNK: each row in turn runs a chunk from its outputs so far
 * (the bias before the first), so a chunk of Wt (32 KiB for 256 outputs)
 * comes from memory once and from the L1 cache for the other rows. Per
 * output the terms are the one-row kernel's, in its order: each row gets
 * the bits it gets alone.
 */
#include <stdlib.h>
#include <string.h>

#include "row_pack.h"
#include "tune.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RP_X86 1
#define RP_TARGET __attribute__((target("avx512f")))
#else
#define RP_X86 0
#endif

nn_row_pack *nn_row_pack_create(const float *W, const float *b, int in, int out)
{
	if (!W || in <= 0 || out <= 0)
		return NULL;
	nn_row_pack *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->in = in;
	p->out = out;
	p->pad = (out + 15) / 16 * 16;
	size_t n = sizeof(float) * (size_t)in * (size_t)p->pad;
	p->wt = aligned_alloc(64, (n + 63) / 64 * 64);
	p->b = calloc((size_t)p->pad, sizeof(float));
	if (!p->wt || !p->b) {
		nn_row_pack_free(p);
		return NULL;
	}
	memset(p->wt, 0, n);
	for (int j = 0; j < out; j++)
		for (int k = 0; k < in; k++)
			p->wt[(int64_t)k * p->pad + j] = W[(int64_t)j * in + k];
	if (b)
		memcpy(p->b, b, sizeof(float) * (size_t)out);
	return p;
}

void nn_row_pack_free(nn_row_pack *p)
{
	if (!p)
		return;
	free(p->wt);
	free(p->b);
	free(p);
}

void nn_row_product_plain(const nn_row_pack *p, const float *x, float *z)
{
	const int out = p->out, pad = p->pad;
	memcpy(z, p->b, sizeof(float) * (size_t)out);
	for (int k = 0; k < p->in; k++) {
		float xk = x[k];
		if (xk == 0.0f)
			continue;
		const float *w = p->wt + (int64_t)k * pad;
		for (int j = 0; j < out; j++)
			z[j] = z[j] + xk * w[j];
	}
}

#if RP_X86
/* Outputs [j0, j0 + 16 NA) over every input, in NA registers. */
#define RP_BLOCK(NAME, NA)                                                                   \
	RP_TARGET static inline void NAME(const nn_row_pack *p, const float *x, int j0,     \
	                                  __m512 a[NA])                                       \
	{                                                                                     \
		for (int q = 0; q < NA; q++)                                                  \
			a[q] = _mm512_loadu_ps(p->b + j0 + 16 * q);                           \
		const float *w = p->wt + j0;                                                  \
		for (int k = 0; k < p->in; k++, w += p->pad) {                                \
			if (x[k] == 0.0f)                                                     \
				continue;                                                     \
			__m512 xv = _mm512_set1_ps(x[k]);                                     \
			for (int q = 0; q < NA; q++)                                          \
				a[q] = _mm512_add_ps(                                         \
					a[q], _mm512_mul_ps(xv, _mm512_load_ps(w + 16 * q))); \
		}                                                                             \
	}
RP_BLOCK(block16, 16)
RP_BLOCK(block8, 8)
RP_BLOCK(block1, 1)

/* Inputs per chunk of the several-row kernel. */
#define RP_CHUNK 32

/* Outputs [j0, j0 + 16 NA) of the n rows x (row stride ldx) into z (row
 * stride ldz); the last 16 of them stored under mask m. */
#define RP_ROWS(NAME, NA)                                                                    \
	RP_TARGET static inline void NAME(const nn_row_pack *p, const float *x, int ldx, int n, \
	                                  float *z, int ldz, int j0, __mmask16 m)            \
	{                                                                                     \
		for (int k0 = 0; k0 < p->in; k0 += RP_CHUNK) {                                \
			int k1 = k0 + RP_CHUNK < p->in ? k0 + RP_CHUNK : p->in;               \
			for (int r = 0; r < n; r++) {                                         \
				const float *xr = x + (int64_t)r * ldx;                       \
				float *zr = z + (int64_t)r * ldz + j0;                        \
				__m512 a[NA];                                                 \
				for (int q = 0; q < NA; q++) {                                \
					__mmask16 mq = q == NA - 1 ? m : (__mmask16)0xffff;   \
					a[q] = k0 == 0 ? _mm512_loadu_ps(p->b + j0 + 16 * q)  \
					               : _mm512_maskz_loadu_ps(mq, zr + 16 * q); \
				}                                                             \
				const float *w = p->wt + (int64_t)k0 * p->pad + j0;           \
				for (int k = k0; k < k1; k++, w += p->pad) {                  \
					if (xr[k] == 0.0f)                                    \
						continue;                                     \
					__m512 xv = _mm512_set1_ps(xr[k]);                    \
					for (int q = 0; q < NA; q++)                          \
						a[q] = _mm512_add_ps(                         \
							a[q],                                 \
							_mm512_mul_ps(xv, _mm512_load_ps(w + 16 * q))); \
				}                                                             \
				for (int q = 0; q < NA - 1; q++)                              \
					_mm512_storeu_ps(zr + 16 * q, a[q]);                  \
				_mm512_mask_storeu_ps(zr + 16 * (NA - 1), m, a[NA - 1]);      \
			}                                                                     \
		}                                                                             \
	}
RP_ROWS(rows16, 16)
RP_ROWS(rows8, 8)
RP_ROWS(rows1, 1)

RP_TARGET static void product_avx512(const nn_row_pack *p, const float *x, float *z)
{
	const int out = p->out;
	int j0 = 0;
	for (; j0 + 256 <= out; j0 += 256) {
		__m512 a[16];
		block16(p, x, j0, a);
		for (int q = 0; q < 16; q++)
			_mm512_storeu_ps(z + j0 + 16 * q, a[q]);
	}
	for (; j0 + 128 <= out; j0 += 128) {
		__m512 a[8];
		block8(p, x, j0, a);
		for (int q = 0; q < 8; q++)
			_mm512_storeu_ps(z + j0 + 16 * q, a[q]);
	}
	for (; j0 < out; j0 += 16) {
		__m512 a[1];
		block1(p, x, j0, a);
		int left = out - j0;
		__mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
		_mm512_mask_storeu_ps(z + j0, m, a[0]);
	}
}

RP_TARGET static void product_rows_avx512(const nn_row_pack *p, const float *x, int ldx, int n,
                                          float *z, int ldz)
{
	const int out = p->out;
	const __mmask16 all = (__mmask16)0xffff;
	int j0 = 0;
	for (; j0 + 256 <= out; j0 += 256)
		rows16(p, x, ldx, n, z, ldz, j0, all);
	for (; j0 + 128 <= out; j0 += 128)
		rows8(p, x, ldx, n, z, ldz, j0, all);
	for (; j0 < out; j0 += 16) {
		int left = out - j0;
		rows1(p, x, ldx, n, z, ldz, j0,
		      left >= 16 ? all : (__mmask16)((1u << left) - 1));
	}
}
#endif

int nn_row_product_simd(void)
{
#if RP_X86
	return nn_tune.simd && __builtin_cpu_supports("avx512f");
#else
	return 0;
#endif
}

void nn_row_product(const nn_row_pack *p, const float *x, float *z)
{
#if RP_X86
	if (nn_row_product_simd()) {
		product_avx512(p, x, z);
		return;
	}
#endif
	nn_row_product_plain(p, x, z);
}

void nn_row_product_rows_plain(const nn_row_pack *p, const float *x, int ldx, int n, float *z,
                               int ldz)
{
	for (int r = 0; r < n; r++)
		nn_row_product_plain(p, x + (int64_t)r * ldx, z + (int64_t)r * ldz);
}

void nn_row_product_rows(const nn_row_pack *p, const float *x, int ldx, int n, float *z, int ldz)
{
	if (n == 1) {
		nn_row_product(p, x, z);
		return;
	}
#if RP_X86
	if (nn_row_product_simd()) {
		product_rows_avx512(p, x, ldx, n, z, ldz);
		return;
	}
#endif
	nn_row_product_rows_plain(p, x, ldx, n, z, ldz);
}
