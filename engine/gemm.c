/*
 * gemm.c - nn_gemm: small products in nnd's kernel, the rest in OpenBLAS
 * (gemm.h says why and in which order the kernel sums).
 *
 * The vector kernel keeps a tile of up to 4 output rows by 32 columns in
 * registers (8 AVX-512 vectors) while k runs: each step loads 2 vectors of
 * op(B)'s row p and adds a(i, p) times them to each row's accumulators.
 * op(B) must have its rows contiguous, so a transposed B is first copied
 * into a k x n buffer on the stack (nn_gemm_small_fits bounds its size);
 * the columns past the last full vector are copied likewise into a buffer
 * 16 wide, padded with zeros, and computed as one more vector whose padding
 * lanes are dropped (each lane's sum is its own, so the valid lanes keep
 * their order and bits).
 */
#include <cblas.h>
#include <string.h>
#include "gemm.h"
#include "tune.h"

/* The largest transposed B the kernel copies (floats; 64 KB of stack). */
#define PACK_MAX 16384

typedef float v16 __attribute__((vector_size(64)));
/* the same at any float's address (unaligned loads and stores) */
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
#define LOAD16(p) (*(const v16u *)(p))
#define STORE16(p, v) (*(v16u *)(p) = (v))

typedef struct gemm_args {
	int m, n, k;
	const float *A;
	int lda;
	const float *B; /* k x n, rows contiguous: the full 16-column vectors */
	int ldb;
	const float *T; /* k x 16: columns n16 .. n-1, zero-padded (n16 < n) */
	int ldt;
	int n16;        /* n rounded down to 16 */
	int beta;
	float *C;
	int ldc;
} gemm_args;

#define INLINE static inline __attribute__((always_inline))

/* A's element (i, p); TA is a constant at every call. */
INLINE float a_at(const gemm_args *g, const int TA, int i, int p)
{
	return TA ? g->A[(int64_t)p * g->lda + i] : g->A[(int64_t)i * g->lda + p];
}

/* Rows i0 .. i0+RB-1 of C, the NV vectors of columns from j (C's column)
 * whose op(B) columns are b (row stride ldb). W < 16: one vector of which
 * only W columns are C's (the rest are the zero padding of T, loaded from
 * and stored to a buffer). RB, NV, W and TA are constants at every call,
 * so the accumulators live in registers. */
INLINE void tile(const gemm_args *g, const int TA, int i0, int j, const float *b, int ldb,
                 const int RB, const int NV, const int W)
{
	v16 acc[4][2];
	float part[16] = { 0 };
	for (int r = 0; r < RB; r++) {
		float *c = g->C + (int64_t)(i0 + r) * g->ldc + j;
		for (int v = 0; v < NV; v++) {
			if (!g->beta) {
				acc[r][v] = (v16){ 0 };
			} else if (W == 16) {
				acc[r][v] = (v16)LOAD16(c + 16 * v);
			} else {
				memcpy(part, c, sizeof(float) * W);
				acc[r][v] = (v16)LOAD16(part);
			}
		}
	}
	for (int p = 0; p < g->k; p++) {
		v16 bv[2];
		for (int v = 0; v < NV; v++)
			bv[v] = LOAD16(b + (int64_t)p * ldb + 16 * v);
		for (int r = 0; r < RB; r++) {
			float a = a_at(g, TA, i0 + r, p);
			for (int v = 0; v < NV; v++)
				acc[r][v] = acc[r][v] + a * bv[v];
		}
	}
	for (int r = 0; r < RB; r++) {
		float *c = g->C + (int64_t)(i0 + r) * g->ldc + j;
		for (int v = 0; v < NV; v++) {
			if (W == 16) {
				STORE16(c + 16 * v, acc[r][v]);
			} else {
				STORE16(part, acc[r][v]);
				memcpy(c, part, sizeof(float) * W);
			}
		}
	}
}

/* Rows i0 .. i0+RB-1, every column. */
INLINE void row_block(const gemm_args *g, const int TA, int i0, const int RB)
{
	int j = 0;
	for (; j + 32 <= g->n16; j += 32)
		tile(g, TA, i0, j, g->B + j, g->ldb, RB, 2, 16);
	if (j < g->n16) {
		tile(g, TA, i0, j, g->B + j, g->ldb, RB, 1, 16);
		j += 16;
	}
	if (j < g->n) {
		/* W is a constant in each branch: 1 .. 15 columns */
		switch (g->n - j) {
#define TAIL(w) case w: tile(g, TA, i0, j, g->T, g->ldt, RB, 1, w); break;
		TAIL(1) TAIL(2) TAIL(3) TAIL(4) TAIL(5) TAIL(6) TAIL(7) TAIL(8)
		TAIL(9) TAIL(10) TAIL(11) TAIL(12) TAIL(13) TAIL(14) TAIL(15)
#undef TAIL
		}
	}
}

INLINE void kernel_body(const gemm_args *g, const int TA)
{
	int i = 0;
	for (; i + 4 <= g->m; i += 4)
		row_block(g, TA, i, 4);
	for (; i < g->m; i++)
		row_block(g, TA, i, 1);
}

__attribute__((target("avx512f"))) static void kernel_avx512(const gemm_args *g, int ta)
{
	if (ta)
		kernel_body(g, 1);
	else
		kernel_body(g, 0);
}

__attribute__((target("avx2"))) static void kernel_avx2(const gemm_args *g, int ta)
{
	if (ta)
		kernel_body(g, 1);
	else
		kernel_body(g, 0);
}

void nn_gemm_small_plain(int ta, int tb, int m, int n, int k, const float *A, int lda,
                         const float *B, int ldb, int beta, float *C, int ldc)
{
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			float acc = beta ? C[(int64_t)i * ldc + j] : 0.0f;
			for (int p = 0; p < k; p++) {
				float a = ta ? A[(int64_t)p * lda + i] : A[(int64_t)i * lda + p];
				float b = tb ? B[(int64_t)j * ldb + p] : B[(int64_t)p * ldb + j];
				acc = acc + a * b;
			}
			C[(int64_t)i * ldc + j] = acc;
		}
}

typedef enum { KIND_PLAIN, KIND_AVX2, KIND_AVX512 } kernel_kind;

static kernel_kind kind(void)
{
	if (!nn_tune.simd)
		return KIND_PLAIN;
	if (__builtin_cpu_supports("avx512f"))
		return KIND_AVX512;
	if (__builtin_cpu_supports("avx2"))
		return KIND_AVX2;
	return KIND_PLAIN;
}

/* The floats pack_b copies (gemm_args). */
static int64_t pack_floats(int tb, int n, int k)
{
	return tb ? (int64_t)k * ((n + 15) & ~15) : (n & 15) ? (int64_t)k * 16 : 0;
}

int nn_gemm_small_fits(int tb, int m, int n, int k)
{
	if (m <= 0 || n <= 0 || k <= 0)
		return 0;
	if ((int64_t)m * n * k > nn_tune.small_gemm_max)
		return 0;
	return pack_floats(tb, n, k) <= PACK_MAX;
}

/* op(B)'s columns as the vector kernel reads them: with tb, all of B
 * transposed into buf (k x npad, zero-padded); else B itself for the full
 * vectors and its last n - n16 columns copied into buf (k x 16, padded). */
static void pack_b(gemm_args *g, int tb, const float *B, int ldb, float *buf)
{
	int n = g->n, k = g->k, n16 = g->n16;
	if (tb) {
		int npad = (n + 15) & ~15;
		/* 16 rows of B (16 columns of op(B)) at a time: contiguous stores */
		for (int j0 = 0; j0 < n16; j0 += 16) {
			const float *b = B + (int64_t)j0 * ldb;
			for (int p = 0; p < k; p++)
				for (int jj = 0; jj < 16; jj++)
					buf[(int64_t)p * npad + j0 + jj] = b[(int64_t)jj * ldb + p];
		}
		for (int p = 0; n16 < n && p < k; p++)
			for (int jj = 0; jj < 16; jj++)
				buf[(int64_t)p * npad + n16 + jj] =
					n16 + jj < n ? B[(int64_t)(n16 + jj) * ldb + p] : 0.0f;
		g->B = buf;
		g->ldb = npad;
		g->T = buf + n16;
		g->ldt = npad;
		return;
	}
	g->B = B;
	g->ldb = ldb;
	if (n16 < n) {
		for (int p = 0; p < k; p++)
			for (int jj = 0; jj < 16; jj++)
				buf[(int64_t)p * 16 + jj] =
					n16 + jj < n ? B[(int64_t)p * ldb + n16 + jj] : 0.0f;
		g->T = buf;
		g->ldt = 16;
	}
}

static void run_kind(kernel_kind kd, int ta, int tb, int m, int n, int k, const float *A,
                     int lda, const float *B, int ldb, int beta, float *C, int ldc)
{
	int64_t need = pack_floats(tb, n, k);
	if (kd == KIND_PLAIN || need > PACK_MAX) {
		nn_gemm_small_plain(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	float buf[need ? need : 1];
	gemm_args g = { m, n, k, A, lda, NULL, 0, NULL, 0, n & ~15, beta, C, ldc };
	pack_b(&g, tb, B, ldb, buf);
	if (kd == KIND_AVX512)
		kernel_avx512(&g, ta);
	else
		kernel_avx2(&g, ta);
}

void nn_gemm_small(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B,
                   int ldb, int beta, float *C, int ldc)
{
	run_kind(kind(), ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
}

#ifdef NND_TEST
int nn_gemm_small_as(const char *name, int ta, int tb, int m, int n, int k, const float *A,
                     int lda, const float *B, int ldb, int beta, float *C, int ldc)
{
	kernel_kind kd;
	if (strcmp(name, "avx512") == 0 && __builtin_cpu_supports("avx512f"))
		kd = KIND_AVX512;
	else if (strcmp(name, "avx2") == 0 && __builtin_cpu_supports("avx2"))
		kd = KIND_AVX2;
	else if (strcmp(name, "plain") == 0)
		kd = KIND_PLAIN;
	else
		return -1;
	run_kind(kd, ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
	return 0;
}
#endif

void nn_gemm(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B,
             int ldb, int beta, float *C, int ldc)
{
	if (nn_gemm_small_fits(tb, m, n, k)) {
		NN_TEST_COUNT(small_gemms);
		nn_gemm_small(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
	            n, k, 1.0f, A, lda, B, ldb, beta ? 1.0f : 0.0f, C, ldc);
}
