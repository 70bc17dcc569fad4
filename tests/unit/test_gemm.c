/*
 * test_gemm.c - nnd's kernel for small products (engine/gemm.c): the plain
 * twin against a sum in double for every transpose, beta 0 and 1 and
 * strides wider than the matrices; each vector version this CPU has (AVX-512,
 * AVX2) against the plain one to the bit, over sizes that reach every tile
 * shape (4 or 1 rows; 32, 16 or single columns), with nothing written
 * outside C; nn_gemm's choice: small products through the kernel (counted,
 * the kernel's bits), large ones and small_gemm_max 0 through sgemm.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "gemm.h"
#include "tune.h"

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static float *rand_floats(int64_t n, uint32_t seed)
{
	float *x = malloc(sizeof(float) * (size_t)n);
	uint32_t s = seed;
	for (int64_t i = 0; i < n; i++) {
		uint32_t u = lcg(&s) % 100;
		/* a ReLU output's zeros among values of both signs */
		x[i] = u < 20 ? 0.0f : ((float)lcg(&s) / 16777216.0f - 0.5f) * 4.0f;
	}
	return x;
}

/* One product's operands, with strides 3 wider than the matrices. */
typedef struct prod {
	int ta, tb, m, n, k, lda, ldb, ldc;
	float *A, *B, *C0;
} prod;

static prod make_prod(int ta, int tb, int m, int n, int k, uint32_t seed)
{
	prod p = { ta, tb, m, n, k, (ta ? m : k) + 3, (tb ? k : n) + 3, n + 3, NULL, NULL, NULL };
	p.A = rand_floats((int64_t)(ta ? k : m) * p.lda, seed);
	p.B = rand_floats((int64_t)(tb ? n : k) * p.ldb, seed + 1);
	p.C0 = rand_floats((int64_t)m * p.ldc, seed + 2);
	return p;
}

static void free_prod(prod *p)
{
	free(p->A);
	free(p->B);
	free(p->C0);
}

static float *fresh_c(const prod *p)
{
	float *c = malloc(sizeof(float) * (size_t)p->m * p->ldc);
	memcpy(c, p->C0, sizeof(float) * (size_t)p->m * p->ldc);
	return c;
}

static float a_of(const prod *p, int i, int q)
{
	return p->ta ? p->A[(int64_t)q * p->lda + i] : p->A[(int64_t)i * p->lda + q];
}

static float b_of(const prod *p, int q, int j)
{
	return p->tb ? p->B[(int64_t)j * p->ldb + q] : p->B[(int64_t)q * p->ldb + j];
}

/* C's padding columns keep C0's values. */
static void check_padding(const prod *p, const float *c)
{
	for (int i = 0; i < p->m; i++)
		for (int j = p->n; j < p->ldc; j++)
			ck_assert_float_eq(c[(int64_t)i * p->ldc + j], p->C0[(int64_t)i * p->ldc + j]);
}

static const int sizes[][3] = { { 1, 1, 1 },   { 3, 5, 7 },    { 4, 16, 2 },  { 5, 17, 9 },
	                        { 7, 31, 64 },  { 8, 32, 10 },  { 9, 33, 33 }, { 32, 64, 64 },
	                        { 33, 48, 5 },  { 6, 70, 100 }, { 64, 10, 128 }, { 2, 100, 1 } };
#define NSIZES (sizeof sizes / sizeof sizes[0])

START_TEST(test_plain_matches_a_sum_in_double)
{
	for (size_t t = 0; t < NSIZES; t++)
		for (int tr = 0; tr < 4; tr++)
			for (int beta = 0; beta < 2; beta++) {
				prod p = make_prod(tr & 1, tr >> 1, sizes[t][0], sizes[t][1], sizes[t][2],
				                   11 + 7 * (uint32_t)t + (uint32_t)tr);
				float *c = fresh_c(&p);
				nn_gemm_small_plain(p.ta, p.tb, p.m, p.n, p.k, p.A, p.lda, p.B, p.ldb, beta,
				                    c, p.ldc);
				for (int i = 0; i < p.m; i++)
					for (int j = 0; j < p.n; j++) {
						double want = beta ? p.C0[(int64_t)i * p.ldc + j] : 0.0;
						double mag = fabs(want);
						for (int q = 0; q < p.k; q++) {
							want += (double)a_of(&p, i, q) * b_of(&p, q, j);
							mag += fabs((double)a_of(&p, i, q) * b_of(&p, q, j));
						}
						ck_assert_msg(fabs(c[(int64_t)i * p.ldc + j] - want) <=
						                      1e-6 * mag + 1e-7,
						              "%dx%dx%d t%d beta %d (%d,%d): %g vs %g", p.m, p.n,
						              p.k, tr, beta, i, j, c[(int64_t)i * p.ldc + j], want);
					}
				check_padding(&p, c);
				free(c);
				free_prod(&p);
			}
}
END_TEST

/* Every size, transpose and beta through the version named, against the
 * plain twin to the bit; a NaN in A reaches its row of C in both. */
static void check_kind_bits(const char *kind)
{
	for (size_t t = 0; t < NSIZES; t++)
		for (int tr = 0; tr < 4; tr++)
			for (int beta = 0; beta < 2; beta++) {
				prod p = make_prod(tr & 1, tr >> 1, sizes[t][0], sizes[t][1], sizes[t][2],
				                   101 + 5 * (uint32_t)t + (uint32_t)tr);
				if (t == 7)
					p.A[0] = NAN; /* row 0 (ta: column 0 of A, still row 0 of C) */
				float *cv = fresh_c(&p), *cp = fresh_c(&p);
				ck_assert_int_eq(nn_gemm_small_as(kind, p.ta, p.tb, p.m, p.n, p.k, p.A, p.lda,
				                                  p.B, p.ldb, beta, cv, p.ldc),
				                 0);
				nn_gemm_small_plain(p.ta, p.tb, p.m, p.n, p.k, p.A, p.lda, p.B, p.ldb, beta,
				                    cp, p.ldc);
				ck_assert_msg(memcmp(cv, cp, sizeof(float) * (size_t)p.m * p.ldc) == 0,
				              "%s %dx%dx%d t%d beta %d: differs from the plain kernel", kind,
				              p.m, p.n, p.k, tr, beta);
				check_padding(&p, cv);
				if (t == 7) {
					ck_assert(isnan(cv[0]) && isnan(cv[p.n - 1]));
					ck_assert(!isnan(cv[p.ldc]));
				}
				free(cv);
				free(cp);
				free_prod(&p);
			}
}

START_TEST(test_avx512_gives_the_plain_bits)
{
	check_kind_bits("avx512");
}
END_TEST

START_TEST(test_avx2_gives_the_plain_bits)
{
	check_kind_bits("avx2");
}
END_TEST

START_TEST(test_unknown_or_missing_versions_are_refused)
{
	float a = 1, b = 1, c = 0;
	ck_assert_int_eq(nn_gemm_small_as("sse9", 0, 0, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1), -1);
	ck_assert_float_eq(c, 0.0f);
	ck_assert_int_eq(nn_gemm_small_as("plain", 0, 0, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1), 0);
	ck_assert_float_eq(c, 1.0f);
}
END_TEST

START_TEST(test_nn_gemm_takes_the_kernel_for_small_products_only)
{
	/* small: through the kernel (counted), its bits */
	prod p = make_prod(0, 1, 32, 64, 64, 7);
	ck_assert(nn_gemm_small_fits(1, 32, 64, 64));
	float *c = fresh_c(&p), *want = fresh_c(&p);
	int64_t before = nn_counts.small_gemms;
	nn_gemm(0, 1, p.m, p.n, p.k, p.A, p.lda, p.B, p.ldb, 1, c, p.ldc);
	ck_assert_int_eq(nn_counts.small_gemms, before + 1);
	nn_gemm_small(0, 1, p.m, p.n, p.k, p.A, p.lda, p.B, p.ldb, 1, want, p.ldc);
	ck_assert_int_eq(memcmp(c, want, sizeof(float) * (size_t)p.m * p.ldc), 0);
	free(c);
	free(want);
	free_prod(&p);

	/* over the limit (and a transposed B too large to copy): sgemm, the
	 * same sums within float rounding */
	static const int big[][4] = { { 128, 256, 784, 1 }, { 8, 200, 100, 1 }, { 100, 50, 60, 0 } };
	for (int t = 0; t < 3; t++) {
		p = make_prod(0, big[t][3], big[t][0], big[t][1], big[t][2], 50 + (uint32_t)t);
		ck_assert(!nn_gemm_small_fits(p.tb, p.m, p.n, p.k));
		c = fresh_c(&p);
		want = fresh_c(&p);
		before = nn_counts.small_gemms;
		nn_gemm(p.ta, p.tb, p.m, p.n, p.k, p.A, p.lda, p.B, p.ldb, 0, c, p.ldc);
		ck_assert_int_eq(nn_counts.small_gemms, before);
		nn_gemm_small_plain(p.ta, p.tb, p.m, p.n, p.k, p.A, p.lda, p.B, p.ldb, 0, want, p.ldc);
		for (int64_t i = 0; i < (int64_t)p.m * p.ldc; i++)
			ck_assert_msg(fabsf(c[i] - want[i]) <= 1e-4f * (1.0f + fabsf(want[i])),
			              "%d: %g vs %g", t, c[i], want[i]);
		free(c);
		free(want);
		free_prod(&p);
	}

	/* small_gemm_max 0: everything through sgemm */
	int64_t keep = nn_tune.small_gemm_max;
	nn_tune.small_gemm_max = 0;
	ck_assert(!nn_gemm_small_fits(0, 1, 1, 1));
	nn_tune.small_gemm_max = keep;
	ck_assert(!nn_gemm_small_fits(0, 0, 4, 4));
	ck_assert(!nn_gemm_small_fits(0, 4, 4, -1));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gemm");
	TCase *tc = tcase_create("gemm");
	int skipped = 0;
	tcase_add_test(tc, test_plain_matches_a_sum_in_double);
	tcase_add_test_if(tc, test_avx512_gives_the_plain_bits, __builtin_cpu_supports("avx512f"),
	                  "this CPU has no AVX-512F", &skipped);
	tcase_add_test_if(tc, test_avx2_gives_the_plain_bits, __builtin_cpu_supports("avx2"),
	                  "this CPU has no AVX2", &skipped);
	tcase_add_test(tc, test_unknown_or_missing_versions_are_refused);
	tcase_add_test(tc, test_nn_gemm_takes_the_kernel_for_small_products_only);
	suite_add_tcase(s, tc);
	return check_run_skipping(s, skipped);
}
