/*
 * test_row_pack.c - one-row products against packed weights
 * (engine/row_pack.c) and the prediction path that uses them
 * (engine/predict.c): the plain kernel against a sum in double over widths
 * that exercise every block size and the masked tail, the AVX-512 and the
 * AVX2 kernels against the plain one to the bit, one row and several (each
 * a SKIP on a CPU without it), the kernel nn_row_product picks, several
 * rows at once against the one-row plain kernel to the bit (every kernel),
 * and single-row predictions through a frozen scratch against sgemm's,
 * counted, never for another model's weights, and not for models over the
 * size limit; blocks of a few rows (up to row_pack_max_rows) each row with
 * the bits it gets alone; the packs built once per model and shared by its
 * scratches and threads.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "internal.h"
#include "nn.h"
#include "row_pack.h"
#include "sparse_in.h"
#include "tune.h"

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static float unit(uint32_t *s)
{
	return (float)lcg(s) / 16777216.0f;
}

/* Widths: below 16, a masked tail, exactly 128 and 256, and mixes of the
 * 256, 128 and 16 blocks; then a masked last vector in AVX2's blocks of
 * 96, 64 and 32 outputs (93, 61, 29) and in AVX-512's of 128 and 256 (120,
 * 250). */
static const int shapes[][2] = { { 1, 1 },    { 7, 10 },   { 33, 100 }, { 64, 128 },
	                         { 5, 256 },  { 784, 256 }, { 9, 300 },  { 40, 513 },
	                         { 128, 10 }, { 20, 93 },  { 3, 61 },   { 11, 29 },
	                         { 16, 120 }, { 50, 250 } };

typedef struct pcase {
	int in, out;
	float *W, *b, *x;
} pcase;

static pcase make_case(int in, int out, int with_bias, uint32_t seed)
{
	pcase c = { in, out, malloc(sizeof(float) * (size_t)in * out),
		    with_bias ? malloc(sizeof(float) * (size_t)out) : NULL,
		    malloc(sizeof(float) * (size_t)in) };
	uint32_t s = seed;
	for (int64_t i = 0; i < (int64_t)in * out; i++)
		c.W[i] = unit(&s) - 0.5f;
	for (int j = 0; with_bias && j < out; j++)
		c.b[j] = unit(&s) - 0.5f;
	for (int k = 0; k < in; k++) {
		float u = unit(&s);
		c.x[k] = u < 0.4f ? 0.0f : u < 0.45f ? -0.0f : 255.0f * unit(&s) - 100.0f;
	}
	return c;
}

static void free_case(pcase *c)
{
	free(c->W);
	free(c->b);
	free(c->x);
}

START_TEST(test_plain_product_matches_a_sum_in_double)
{
	for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
		for (int with_bias = 0; with_bias < 2; with_bias++) {
			pcase c = make_case(shapes[t][0], shapes[t][1], with_bias, 17 + (uint32_t)t);
			nn_row_pack *p = nn_row_pack_create(c.W, c.b, c.in, c.out);
			ck_assert_ptr_nonnull(p);
			ck_assert_int_eq(p->pad % 16, 0);
			float *z = malloc(sizeof(float) * (size_t)c.out + 64);
			z[c.out] = 12345.0f; /* nothing is written past out */
			nn_row_product_plain(p, c.x, z);
			ck_assert_float_eq(z[c.out], 12345.0f);
			for (int j = 0; j < c.out; j++) {
				double want = c.b ? c.b[j] : 0.0, mag = fabs(want);
				for (int k = 0; k < c.in; k++) {
					want += (double)c.x[k] * c.W[(int64_t)j * c.in + k];
					mag += fabs((double)c.x[k] * c.W[(int64_t)j * c.in + k]);
				}
				ck_assert_msg(fabs(z[j] - want) <= 1e-5 * mag + 1e-6,
				              "%dx%d output %d: %g vs %g", c.in, c.out, j, z[j], want);
			}
			free(z);
			nn_row_pack_free(p);
			free_case(&c);
		}
	}
	ck_assert_ptr_null(nn_row_pack_create(NULL, NULL, 3, 3));
	float w = 1.0f;
	ck_assert_ptr_null(nn_row_pack_create(&w, NULL, 0, 1));
	nn_row_pack_free(NULL);
}
END_TEST

/* n rows (row stride ldx, the gaps filled too) as make_case draws them:
 * zeros, negative zeros, and the rest from -100 to 155. */
static float *rows_of(int n, int ldx, uint32_t seed)
{
	float *x = malloc(sizeof(float) * (size_t)n * (size_t)ldx);
	uint32_t s = seed;
	for (int i = 0; i < n * ldx; i++) {
		float u = unit(&s);
		x[i] = u < 0.4f ? 0.0f : u < 0.45f ? -0.0f : 255.0f * unit(&s) - 100.0f;
	}
	return x;
}

/* The kernel a check runs: one named (NN_ROW_*, through the test hook,
 * whatever nn_tune says) or PICKED, the one nn_row_product picks. */
#define PICKED -1

static void rows_through(int kind, const nn_row_pack *p, const float *x, int ldx, int n,
                         float *z, int ldz)
{
	if (kind == PICKED)
		nn_row_product_rows(p, x, ldx, n, z, ldz);
	else
		ck_assert_int_eq(nn_row_product_rows_as(kind, p, x, ldx, n, z, ldz), 0);
}

/* One row through kind, every shape: the plain kernel's bits, nothing
 * written past out (the masked tail stays inside), and a NaN input
 * reaches every output. */
static void check_one_row(int kind)
{
	for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
		pcase c = make_case(shapes[t][0], shapes[t][1], 1, 91 + (uint32_t)t);
		if (t == 3)
			c.x[c.in / 2] = NAN; /* a NaN input reaches every output in both */
		nn_row_pack *p = nn_row_pack_create(c.W, c.b, c.in, c.out);
		float *zs = malloc(sizeof(float) * (size_t)c.out + 64);
		float *zp = malloc(sizeof(float) * (size_t)c.out + 64);
		zs[c.out] = zp[c.out] = 777.0f;
		if (kind == PICKED)
			nn_row_product(p, c.x, zs);
		else
			rows_through(kind, p, c.x, c.in, 1, zs, c.out);
		nn_row_product_plain(p, c.x, zp);
		ck_assert_float_eq(zs[c.out], 777.0f);
		ck_assert_msg(memcmp(zs, zp, sizeof(float) * (size_t)c.out) == 0,
		              "kernel %d, %dx%d: the kernels differ", kind, c.in, c.out);
		if (t == 3)
			ck_assert(isnan(zs[0]) && isnan(zs[c.out - 1]));
		free(zs);
		free(zp);
		nn_row_pack_free(p);
		free_case(&c);
	}
}

/* Several rows at once through kind (strides wider than the rows), every
 * shape: each row the bits of the one-row plain kernel, nothing written
 * between the rows; with a NaN in one row, only that row's outputs are
 * NaN. */
static void check_rows(int kind)
{
	static const int ns[] = { 2, 3, 5, 8 };
	for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
		for (size_t u = 0; u < sizeof ns / sizeof ns[0]; u++) {
			int n = ns[u];
			pcase c = make_case(shapes[t][0], shapes[t][1], (int)(t % 2), 7 + (uint32_t)t);
			nn_row_pack *p = nn_row_pack_create(c.W, c.b, c.in, c.out);
			int ldx = c.in + 3, ldz = c.out + 5;
			float *x = rows_of(n, ldx, 100 + (uint32_t)(t * 8 + u));
			if (t == 5)
				x[ldx + c.in / 3] = NAN;   /* row 1 */
			float *z = malloc(sizeof(float) * (size_t)n * ldz);
			float *one = malloc(sizeof(float) * (size_t)c.out);
			for (int i = 0; i < n * ldz; i++)
				z[i] = 4321.0f;
			rows_through(kind, p, x, ldx, n, z, ldz);
			for (int r = 0; r < n; r++) {
				nn_row_product_plain(p, x + (int64_t)r * ldx, one);
				ck_assert_msg(memcmp(z + (int64_t)r * ldz, one, sizeof(float) * c.out) == 0,
				              "kernel %d, %dx%d, %d rows: row %d differs from the row alone",
				              kind, c.in, c.out, n, r);
				for (int j = c.out; j < ldz; j++)
					ck_assert_float_eq(z[(int64_t)r * ldz + j], 4321.0f);
				if (t == 5)
					ck_assert(isnan(z[(int64_t)r * ldz]) == (r == 1));
			}
			nn_row_product_rows_plain(p, x, ldx, n, z, ldz);
			for (int r = 0; r < n; r++) {
				nn_row_product_plain(p, x + (int64_t)r * ldx, one);
				ck_assert(memcmp(z + (int64_t)r * ldz, one, sizeof(float) * c.out) == 0);
			}
			free(x);
			free(z);
			free(one);
			nn_row_pack_free(p);
			free_case(&c);
		}
	}
}

START_TEST(test_avx512_product_gives_the_plain_ones_bits)
{
	check_one_row(NN_ROW_AVX512);
	check_rows(NN_ROW_AVX512);
}
END_TEST

START_TEST(test_avx2_product_gives_the_plain_ones_bits)
{
	check_one_row(NN_ROW_AVX2);
	check_rows(NN_ROW_AVX2);
}
END_TEST

/* nn_row_product picks the widest kernel this CPU has (the plain one with
 * nn_tune.simd off) and gives its bits; the hook refuses a kernel unknown. */
START_TEST(test_the_widest_kernel_is_picked)
{
	int want = __builtin_cpu_supports("avx512f") ? NN_ROW_AVX512
	           : __builtin_cpu_supports("avx2")  ? NN_ROW_AVX2
	                                             : NN_ROW_PLAIN;
	ck_assert_int_eq(nn_row_product_simd(), want);
	check_one_row(PICKED);
	nn_tune.simd = 0;
	ck_assert_int_eq(nn_row_product_simd(), NN_ROW_PLAIN);
	nn_tune.simd = 1;
	float w = 2.0f, x = 3.0f, z = 0.0f;
	nn_row_pack *p = nn_row_pack_create(&w, NULL, 1, 1);
	ck_assert_int_eq(nn_row_product_rows_as(7, p, &x, 1, 1, &z, 1), -1);
	ck_assert_float_eq(z, 0.0f);
	ck_assert_int_eq(nn_row_product_rows_as(NN_ROW_PLAIN, p, &x, 1, 1, &z, 1), 0);
	ck_assert_float_eq(z, 6.0f);
	nn_row_pack_free(p);
}
END_TEST

/* A pack is cut for the kernel picked when it is made: blocks of
 * consecutive outputs, each [in][cols] right after the one before, that
 * meet every output once; a pack made with the vector kernels off is one
 * block as wide as pad, and keeps the plain kernel's bits when they are
 * turned on again (the vector kernel does not run on it). */
START_TEST(test_packs_are_cut_for_the_kernel_picked)
{
	pcase c = make_case(784, 250, 1, 5);
	for (int simd = 1; simd >= 0; simd--) {
		nn_tune.simd = simd;
		nn_row_pack *p = nn_row_pack_create(c.W, c.b, c.in, c.out);
		nn_tune.simd = 1;
		ck_assert_int_eq(p->kind, simd ? nn_row_product_simd() : NN_ROW_PLAIN);
		int64_t off = 0;
		int next = 0;
		for (int i = 0; i < p->nblk; i++) {
			ck_assert_int_eq(p->blk[i].j0, next);
			ck_assert_int_eq(p->blk[i].off, off);
			ck_assert_int_eq(p->blk[i].cols % (p->kind == NN_ROW_AVX2 ? 8 : 16), 0);
			next += p->blk[i].cols;
			off += (int64_t)c.in * p->blk[i].cols;
		}
		ck_assert_int_ge(next, c.out);
		ck_assert_int_le(next, p->pad);
		if (p->kind == NN_ROW_AVX2)   /* 250 in 32 vectors: 12 + 12 + 8 */
			ck_assert(p->nblk == 3 && p->blk[2].cols == 64);
		if (p->kind == NN_ROW_PLAIN)
			ck_assert(p->nblk == 1 && p->blk[0].cols == p->pad);
		float zs[250], zp[250];
		nn_row_product(p, c.x, zs);
		nn_row_product_plain(p, c.x, zp);
		ck_assert_int_eq(memcmp(zs, zp, sizeof zs), 0);
		nn_row_pack_free(p);
	}
	free_case(&c);
}
END_TEST

START_TEST(test_rows_at_once_give_each_row_its_bits_alone)
{
	check_rows(PICKED);    /* the vector kernel this CPU has */
	nn_tune.simd = 0;
	check_rows(PICKED);    /* plain */
	nn_tune.simd = 1;
}
END_TEST

static nn_model *mlp(int f, uint64_t seed)
{
	nn_layer_spec hidden[2] = { nn_layer_default(NN_LAYER_DENSE),
		                    nn_layer_default(NN_LAYER_DENSE) };
	hidden[0].units = 48;
	hidden[0].act = NN_ACT_RELU;
	hidden[1].units = 20;
	hidden[1].act = NN_ACT_TANH;
	hidden[1].bias = 0;
	nn_model_spec s = { NN_TASK_CLASSIFICATION, f, 3, NN_INIT_AUTO, seed, hidden, 2 };
	char err[128];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	return m;
}

/* A frozen scratch predicts one row through the packs of its three dense
 * layers, within rounding of sgemm's result, plain and vector alike; a
 * block of more rows than row_pack_max_rows and another model of the same
 * shape keep sgemm. */
START_TEST(test_one_row_through_a_frozen_scratch_uses_the_packs)
{
	const int f = 70, rows = 5;
	nn_model *m = mlp(f, 3), *other = mlp(f, 4);
	float mean[70], sd[70], x[5 * 70];
	uint32_t s = 5;
	for (int k = 0; k < f; k++) {
		mean[k] = 10.0f * unit(&s);
		sd[k] = 1.0f + 20.0f * unit(&s);
	}
	for (int i = 0; i < rows * f; i++)
		x[i] = 1.0f + (float)(lcg(&s) % 255); /* no zeros */
	ck_assert_int_eq(nn_model_set_standardize(m, mean, sd), NN_OK);
	nn_scratch *gen = nn_scratch_create(m, 8), *frozen = nn_scratch_create_frozen(m, 8);
	float want[15], got[3], plain[3], block[15];

	int64_t before = nn_counts.row_predictions;
	int saved = nn_tune.row_pack_max_rows;
	nn_tune.row_pack_max_rows = rows - 1;
	ck_assert_int_eq(nn_predict(m, gen, x, rows, want), NN_OK);
	ck_assert_int_eq(nn_predict(m, frozen, x, rows, block), NN_OK);
	ck_assert_int_eq(memcmp(want, block, sizeof want), 0); /* a larger block: sgemm */
	ck_assert_int_eq(nn_counts.row_predictions, before);
	nn_tune.row_pack_max_rows = saved;
	for (int r = 0; r < rows; r++) {
		ck_assert_int_eq(nn_predict(m, frozen, x + r * f, 1, got), NN_OK);
		ck_assert_int_eq(nn_counts.row_predictions, before + 6 * r + 3); /* 3 dense layers */
		nn_tune.simd = 0;
		ck_assert_int_eq(nn_predict(m, frozen, x + r * f, 1, plain), NN_OK);
		nn_tune.simd = 1;
		ck_assert_int_eq(memcmp(got, plain, sizeof got), 0);
		for (int j = 0; j < 3; j++)
			ck_assert_msg(fabsf(got[j] - want[r * 3 + j]) <= 1e-5f, "row %d class %d: %g vs %g",
			              r, j, got[j], want[r * 3 + j]);
	}
	/* another model through m's frozen scratch: sgemm, its own weights */
	before = nn_counts.row_predictions;
	nn_scratch *og = nn_scratch_create(other, 8);
	ck_assert_int_eq(nn_predict(other, og, x, 1, plain), NN_OK);
	ck_assert_int_eq(nn_predict(other, frozen, x, 1, got), NN_OK);
	ck_assert_int_eq(memcmp(got, plain, sizeof got), 0);
	ck_assert_int_eq(nn_counts.row_predictions, before);
	nn_scratch_free(og);
	nn_scratch_free(gen);
	nn_scratch_free(frozen);
	nn_model_free(m);
	nn_model_free(other);
}
END_TEST

/* A block of a few rows (up to row_pack_max_rows) through a frozen
 * scratch: the packs, each row the bits nn_predict gives it alone, plain
 * and vector; a block of rows mostly zero keeps the sparse kernel. */
START_TEST(test_a_few_rows_get_the_bits_of_each_alone)
{
	const int f = 70, rows = 8;
	nn_model *m = mlp(f, 6);
	float mean[70], sd[70], x[8 * 70], sparse_x[2 * 70];
	uint32_t s = 12;
	for (int k = 0; k < f; k++) {
		mean[k] = 10.0f * unit(&s);
		sd[k] = 1.0f + 20.0f * unit(&s);
	}
	for (int i = 0; i < rows * f; i++)
		x[i] = 1.0f + (float)(lcg(&s) % 255);
	for (int i = 0; i < 2 * f; i++)   /* nine zeros in ten */
		sparse_x[i] = lcg(&s) % 10 ? 0.0f : 1.0f + (float)(lcg(&s) % 255);
	ck_assert_int_eq(nn_model_set_standardize(m, mean, sd), NN_OK);
	nn_scratch *frozen = nn_scratch_create_frozen(m, 16);
	for (int simd = 1; simd >= 0; simd--) {
		nn_tune.simd = simd;
		float alone[8 * 3], block[8 * 3];
		for (int r = 0; r < rows; r++)
			ck_assert_int_eq(nn_predict(m, frozen, x + r * f, 1, alone + r * 3), NN_OK);
		for (int n = 2; n <= rows; n += 3) {
			int64_t before = nn_counts.row_predictions;
			ck_assert_int_eq(nn_predict(m, frozen, x, n, block), NN_OK);
			ck_assert_int_eq(nn_counts.row_predictions - before, 3); /* one pass, 3 layers */
			ck_assert_msg(memcmp(block, alone, sizeof(float) * 3 * (size_t)n) == 0,
			              "simd %d: a block of %d rows differs from the rows alone", simd, n);
		}
		if (nn_sparse_in_supported()) {
			int64_t before = nn_counts.sparse_predict_blocks;
			ck_assert_int_eq(nn_predict(m, frozen, sparse_x, 2, block), NN_OK);
			ck_assert_int_eq(nn_counts.sparse_predict_blocks, before + 1);
		}
	}
	nn_tune.simd = 1;
	nn_scratch_free(frozen);
	nn_model_free(m);
}
END_TEST

START_TEST(test_models_over_the_size_limit_keep_sgemm)
{
	nn_model *m = mlp(70, 3);
	int64_t saved = nn_tune.row_pack_max_weights, before = nn_counts.row_predictions;
	nn_tune.row_pack_max_weights = 70 * 48; /* less than the model's dense weights */
	nn_scratch *frozen = nn_scratch_create_frozen(m, 4);
	nn_tune.row_pack_max_weights = saved;
	float x[70] = { 1.0f }, out[3];
	ck_assert_int_eq(nn_predict(m, frozen, x, 1, out), NN_OK);
	ck_assert_int_eq(nn_counts.row_predictions, before);
	ck_assert_float_eq_tol(out[0] + out[1] + out[2], 1.0f, 1e-6f);
	nn_scratch_free(frozen);
	nn_model_free(m);
}
END_TEST

typedef struct packs_ask {
	const nn_model *m;
	const struct nn_row_pack *const *got;
} packs_ask;

static void *ask_packs(void *arg)
{
	packs_ask *a = arg;
	a->got = nn_model_row_packs(a->m);
	return NULL;
}

/* The packs are the model's: built once, the same for every frozen scratch
 * and every thread that asks at once (one copy kept, the others freed:
 * make sanitize finds a leak or a double free), and still there for one
 * scratch after another is freed; both scratches predict the same bits. */
START_TEST(test_frozen_scratches_of_one_model_share_its_packs)
{
	const int f = 70;
	nn_model *m = mlp(f, 5);
	enum { T = 4 };
	packs_ask ask[T];
	pthread_t th[T];
	for (int i = 0; i < T; i++) {
		ask[i].m = m;
		ck_assert_int_eq(pthread_create(&th[i], NULL, ask_packs, &ask[i]), 0);
	}
	for (int i = 0; i < T; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	const struct nn_row_pack *const *rp = ask[0].got;
	ck_assert_ptr_nonnull(rp);
	for (int i = 1; i < T; i++)
		ck_assert_ptr_eq(ask[i].got, rp);
	ck_assert_ptr_eq(nn_model_row_packs(m), rp);
	/* nodes: dense 48 (then its ReLU), dense 20 (tanh), dense 3 */
	int dense = 0;
	for (int k = 0; k < nn_model_nodes(m); k++)
		dense += rp[k] != NULL;
	ck_assert_int_eq(dense, 3);

	nn_scratch *a = nn_scratch_create_frozen(m, 4), *b = nn_scratch_create_frozen(m, 4);
	float x[70], pa[3], pb[3];
	uint32_t s = 9;
	for (int k = 0; k < f; k++)
		x[k] = 1.0f + (float)(lcg(&s) % 255);
	int64_t before = nn_counts.row_predictions;
	ck_assert_int_eq(nn_predict(m, a, x, 1, pa), NN_OK);
	nn_scratch_free(a);
	ck_assert_int_eq(nn_predict(m, b, x, 1, pb), NN_OK);
	ck_assert_int_eq(nn_counts.row_predictions, before + 6);  /* both: 3 dense layers */
	ck_assert_int_eq(memcmp(pa, pb, sizeof pa), 0);
	ck_assert_ptr_eq(nn_model_row_packs(m), rp);
	nn_scratch_free(b);
	nn_model_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("row_pack");
	TCase *tc = tcase_create("row_pack");
	int skipped = 0;
	tcase_add_test(tc, test_plain_product_matches_a_sum_in_double);
	tcase_add_test_if(tc, test_avx512_product_gives_the_plain_ones_bits,
	                  __builtin_cpu_supports("avx512f"), "this CPU has no AVX-512F", &skipped);
	tcase_add_test_if(tc, test_avx2_product_gives_the_plain_ones_bits,
	                  __builtin_cpu_supports("avx2"), "this CPU has no AVX2", &skipped);
	tcase_add_test(tc, test_the_widest_kernel_is_picked);
	tcase_add_test(tc, test_packs_are_cut_for_the_kernel_picked);
	tcase_add_test(tc, test_rows_at_once_give_each_row_its_bits_alone);
	tcase_add_test(tc, test_one_row_through_a_frozen_scratch_uses_the_packs);
	tcase_add_test(tc, test_a_few_rows_get_the_bits_of_each_alone);
	tcase_add_test(tc, test_models_over_the_size_limit_keep_sgemm);
	tcase_add_test(tc, test_frozen_scratches_of_one_model_share_its_packs);
	suite_add_tcase(s, tc);
	return check_run_skipping(s, skipped);
}
