/*
 * gemm.c - nn_gemm: small products in nnd's kernel, the rest in OpenBLAS
 * (gemm.h says why and in which order the kernel sums).
 *
 * The vector kernel keeps a tile of up to 4 output rows by 2 vectors in
 * registers (8 AVX-512 vectors of 16 floats, or 8 AVX2 ones of 8) while k
 * runs: each step loads 2 vectors of op(B)'s row p and adds a(i, p) times
 * them to each row's accumulators (gemm_tile.h, once per width).
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

/* The vector kernels, one per width: gemm_tile.h written once for VW-float
 * vectors (v16: 16 floats, AVX-512's zmm; v8: 8, AVX2's ymm). AVX2 takes
 * 8-float vectors of its own: 16-float ones, lowered to pairs of ymm for a
 * tile of 4 x 32, spilled most of their operations to the stack (measured
 * on Zen 3: a study trial of 10-64-64-1 spent 95% of its time in that
 * kernel, 40 times its AVX-512 time). */
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

typedef float v16 __attribute__((vector_size(64)));
/* the same at any float's address (unaligned loads and stores) */
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));

#define VW 16
#define V v16
#define VU v16u
#define SFX(name) name##_16
#include "gemm_tile.h"
#undef VW
#undef V
#undef VU
#undef SFX

#define VW 8
#define V v8
#define VU v8u
#define SFX(name) name##_8
#include "gemm_tile.h"
#undef VW
#undef V
#undef VU
#undef SFX

__attribute__((target("avx512f"))) static void kernel_avx512(const gemm_args *g, int ta)
{
	if (ta)
		kernel_body_16(g, 1);
	else
		kernel_body_16(g, 0);
}

__attribute__((target("avx2"))) static void kernel_avx2(const gemm_args *g, int ta)
{
	if (ta)
		kernel_body_8(g, 1);
	else
		kernel_body_8(g, 0);
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
