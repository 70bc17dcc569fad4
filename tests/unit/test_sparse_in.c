/*
 * test_sparse_in.c - the first layer's forward product and weight gradient
 * from non-zero bytes (engine/sparse_in.c) against sgemm on the
 * standardised rows, over shapes
 * that exercise every edge: widths with a narrower last block of outputs,
 * feature counts that are not multiples of 16 or of the chunk, partial
 * batches, empty and full rows, no bias and no standardisation, float rows
 * (a hidden layer's input); then a training run through it (input layer
 * and a hidden layer) against the dense path, and prediction with a frozen
 * scratch against the dense path.
 */
#include <cblas.h>
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "nn.h"
#include "sparse_in.h"
#include "trainer.h"

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static float unit(uint32_t *s)
{
	return (float)lcg(s) / 16777216.0f;
}

/* One case: n rows of f bytes (about `density` of them non-zero) into a
 * layer of `out` outputs; compares with (x - mean) / sd times W^T plus b. */
static void check_case_as(int max_batch, int n, int f, int out, float density, int with_bias,
                          int with_std, uint32_t seed, int floats)
{
	uint8_t *x8 = malloc((size_t)n * f);
	float *xs = malloc(sizeof(float) * (size_t)n * f);
	float *W = malloc(sizeof(float) * (size_t)out * f);
	float *b = malloc(sizeof(float) * (size_t)out);
	float *mean = malloc(sizeof(float) * (size_t)f), *sd = malloc(sizeof(float) * (size_t)f);
	float *want = malloc(sizeof(float) * (size_t)n * out);
	float *got = malloc(sizeof(float) * (size_t)n * out);
	uint32_t s = seed;

	for (int k = 0; k < f; k++) {
		mean[k] = with_std ? 100.0f * unit(&s) : 0.0f;
		sd[k] = with_std ? 0.5f + 80.0f * unit(&s) : 1.0f;
	}
	for (int i = 0; i < n; i++)
		for (int k = 0; k < f; k++) {
			uint8_t v = unit(&s) < density ? (uint8_t)(1 + lcg(&s) % 255) : 0;
			if (i == 1)
				v = 0; /* an empty row */
			if (i == 2)
				v = (uint8_t)(1 + k % 255); /* a full row */
			x8[(int64_t)i * f + k] = v;
			xs[(int64_t)i * f + k] = ((float)v - mean[k]) / sd[k];
			if (floats && v) /* a hidden layer's input: any non-zero float */
				xs[(int64_t)i * f + k] = (unit(&s) - 0.3f) * 7.0f;
		}
	for (int64_t i = 0; i < (int64_t)out * f; i++)
		W[i] = (unit(&s) - 0.5f) * 0.2f;
	for (int j = 0; j < out; j++)
		b[j] = with_bias ? unit(&s) - 0.5f : 0.0f;
	for (int i = 0; i < n; i++)
		memcpy(want + (int64_t)i * out, b, sizeof(float) * (size_t)out);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, f, 1.0f, xs, f, W, f, 1.0f,
	            want, out);

	nn_sparse_in *sp = nn_sparse_in_create(max_batch, f, out);
	ck_assert_ptr_nonnull(sp);
	/* a first batch, to show that begin forgets it */
	nn_sparse_in_begin(sp);
	nn_sparse_in_add_row(sp, x8 + (int64_t)(n - 1) * f);
	nn_sparse_in_begin(sp);
	ck_assert_int_eq(nn_sparse_in_active(sp), 0);
	for (int i = 0; i < n; i++) {
		if (floats)
			nn_sparse_in_add_row_f32(sp, xs + (int64_t)i * f);
		else
			nn_sparse_in_add_row(sp, x8 + (int64_t)i * f);
	}
	if (floats) {
		int64_t nz = 0;
		for (int64_t i = 0; i < (int64_t)n * f; i++)
			nz += xs[i] != 0.0f;
		ck_assert_double_eq_tol(nn_sparse_in_density(sp), (double)nz / ((double)n * f), 1e-12);
	}
	ck_assert_int_eq(nn_sparse_in_rows(sp), n);
	nn_sparse_in_weights(sp, W, with_bias ? b : NULL, with_std ? mean : NULL,
	                     with_std ? sd : NULL);
	ck_assert_int_eq(nn_sparse_in_active(sp), 1);
	memset(got, 0xff, sizeof(float) * (size_t)n * out); /* NaN: every output must be written */
	nn_sparse_in_forward(sp, got);

	/* Rounding errors scale with the sum of the magnitudes of the terms
	 * (both paths' terms), not with the result: the error is measured
	 * against that sum. A wrong index or a lost term is of its order. */
	double worst = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < out; j++) {
			double mag = fabs((double)b[j]) + 1e-3;
			for (int k = 0; k < f; k++) {
				double w = fabs((double)W[(int64_t)j * f + k]) / sd[k];
				double xv = floats ? fabs((double)xs[(int64_t)i * f + k]) * sd[k]
				                   : x8[(int64_t)i * f + k];
				mag += w * (xv + fabs((double)mean[k]));
			}
			double g = got[(int64_t)i * out + j], e = want[(int64_t)i * out + j];
			ck_assert_msg(isfinite(g), "output %d,%d not written", i, j);
			double err = fabs(g - e) / mag;
			if (err > worst)
				worst = err;
		}
	ck_assert_msg(worst < 1e-6, "n %d f %d out %d: worst error %g of the magnitude", n, f, out,
	              worst);
	/* the empty row is the bias alone */
	for (int j = 0; j < out; j++)
		ck_assert_float_eq_tol(got[out + j], want[out + j], 1e-4f);

	/* the weight gradient dz^T x' against sgemm, with the bias gradient
	 * given and summed inside */
	float *dz = malloc(sizeof(float) * (size_t)n * out);
	float *db = calloc((size_t)out, sizeof(float));
	float *dw_want = malloc(sizeof(float) * (size_t)out * f);
	float *dw_got = malloc(sizeof(float) * (size_t)out * f);
	for (int64_t i = 0; i < (int64_t)n * out; i++) {
		dz[i] = unit(&s) - 0.5f;
		db[i % out] += dz[i];
	}
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, f, n, 1.0f, dz, out, xs, f, 0.0f,
	            dw_want, f);
	for (int pass = 0; pass < 2; pass++) {
		memset(dw_got, 0xff, sizeof(float) * (size_t)out * f);
		nn_sparse_in_grad(sp, dz, pass ? NULL : db, dw_got);
		double gworst = 0;
		for (int j = 0; j < out; j++)
			for (int k = 0; k < f; k++) {
				double mag = 1e-3;
				for (int i = 0; i < n; i++) {
					double xv = floats ? fabs((double)xs[(int64_t)i * f + k]) * sd[k]
					                   : x8[(int64_t)i * f + k];
					mag += fabs((double)dz[(int64_t)i * out + j]) *
					       (xv + fabs((double)mean[k])) / sd[k];
				}
				double g = dw_got[(int64_t)j * f + k], e = dw_want[(int64_t)j * f + k];
				ck_assert_msg(isfinite(g), "dW %d,%d not written", j, k);
				if (fabs(g - e) / mag > gworst)
					gworst = fabs(g - e) / mag;
			}
		ck_assert_msg(gworst < 1e-6, "n %d f %d out %d: gradient error %g of the magnitude",
		              n, f, out, gworst);
	}
	/* another batch of the same rows reading sp's packed weights (shard.c's
	 * shards of one replica): the same bits as sp itself; then packing its
	 * own (other) weights leaves sp's alone */
	nn_sparse_in *sh = nn_sparse_in_create(max_batch, f, out);
	ck_assert_ptr_nonnull(sh);
	nn_sparse_in_begin(sh);
	for (int i = 0; i < n; i++) {
		if (floats)
			nn_sparse_in_add_row_f32(sh, xs + (int64_t)i * f);
		else
			nn_sparse_in_add_row(sh, x8 + (int64_t)i * f);
	}
	ck_assert_int_eq(nn_sparse_in_active(sh), 0);
	nn_sparse_in_share_weights(sh, sp);
	ck_assert_int_eq(nn_sparse_in_active(sh), 1);
	float *z2 = malloc(sizeof(float) * (size_t)n * out);
	float *dw2 = malloc(sizeof(float) * (size_t)out * f);
	nn_sparse_in_forward(sh, z2);
	ck_assert_msg(memcmp(z2, got, sizeof(float) * (size_t)n * out) == 0,
	              "shared weights: other forward bits");
	nn_sparse_in_grad(sh, dz, NULL, dw2);
	ck_assert_msg(memcmp(dw2, dw_got, sizeof(float) * (size_t)out * f) == 0,
	              "shared weights: other gradient bits");
	for (int64_t i = 0; i < (int64_t)out * f; i++)
		W[i] = -W[i];
	nn_sparse_in_weights(sh, W, with_bias ? b : NULL, with_std ? mean : NULL,
	                     with_std ? sd : NULL);
	nn_sparse_in_forward(sp, z2);
	ck_assert_msg(memcmp(z2, got, sizeof(float) * (size_t)n * out) == 0,
	              "packing the sharer's own weights changed the owner's");
	nn_sparse_in_forward(sh, z2);
	ck_assert_msg(memcmp(z2, got, sizeof(float) * (size_t)n * out) != 0,
	              "the sharer still reads the owner's weights");
	nn_sparse_in_free(sh);
	free(z2);
	free(dw2);

	free(dz);
	free(db);
	free(dw_want);
	free(dw_got);

	nn_sparse_in_free(sp);
	free(x8);
	free(xs);
	free(W);
	free(b);
	free(mean);
	free(sd);
	free(want);
	free(got);
}

static void check_case(int max_batch, int n, int f, int out, float density, int with_bias,
                       int with_std, uint32_t seed)
{
	check_case_as(max_batch, n, f, out, density, with_bias, with_std, seed, 0);
}

/* A hidden layer's input: floats, no standardisation. */
static void float_cases(void)
{
	check_case_as(128, 128, 256, 128, 0.5f, 1, 0, 21, 1);
	check_case_as(64, 50, 100, 48, 0.4f, 1, 0, 22, 1);
	check_case_as(64, 64, 40, 144, 0.7f, 0, 0, 23, 1);
}

START_TEST(test_float_rows_match_sgemm_avx512)
{
	float_cases();
}
END_TEST

/* Runs cases through the plain twins. */
static void plain(void (*cases)(void))
{
	nn_tune.simd = 0;
	cases();
	nn_tune.simd = 1;
}

START_TEST(test_float_rows_match_sgemm_plain)
{
	plain(float_cases);
}
END_TEST

static void standardised_cases(void)
{
	/* Fashion-MNIST's first layer, a whole and a partial batch */
	check_case(128, 128, 784, 256, 0.5f, 1, 1, 1);
	check_case(128, 37, 784, 256, 0.5f, 1, 1, 2);
	/* a narrower last block (144 = 128 + 16), odd feature counts */
	check_case(16, 16, 150, 144, 0.3f, 1, 1, 3);
	check_case(80, 70, 150, 144, 0.3f, 1, 1, 8);
	check_case(8, 5, 17, 16, 0.9f, 1, 1, 4);
	check_case(8, 8, 64, 48, 0.05f, 1, 1, 5);
	/* no bias, no standardisation */
	check_case(32, 20, 200, 128, 0.5f, 0, 0, 6);
	check_case(32, 20, 200, 128, 0.5f, 1, 0, 7);
}

START_TEST(test_forward_and_gradient_match_sgemm_on_standardised_rows_avx512)
{
	standardised_cases();
}
END_TEST

START_TEST(test_forward_and_gradient_match_sgemm_on_standardised_rows_plain)
{
	plain(standardised_cases);
}
END_TEST

START_TEST(test_create_refuses_widths_that_are_not_multiples_of_16)
{
	ck_assert_ptr_null(nn_sparse_in_create(8, 10, 20));
	ck_assert_ptr_null(nn_sparse_in_create(0, 10, 16));
	ck_assert_ptr_null(nn_sparse_in_create(8, 0, 16));
	nn_sparse_in *s = nn_sparse_in_create(8, 10, 32);
	ck_assert_ptr_nonnull(s);
	nn_sparse_in_free(s);
	nn_sparse_in_free(NULL);
}
END_TEST

/* Sparse byte images (about 30% non-zero), 4 classes decided by which
 * quarter of the image is brightest. */
typedef struct images {
	float *x;
	int32_t *y;
	nn_data d;
} images;

static images make_images(int rows, int side, uint32_t seed)
{
	images im;
	int f = side * side;
	uint32_t s = seed;
	im.x = calloc((size_t)rows * f, sizeof(float));
	im.y = malloc(sizeof(int32_t) * (size_t)rows);
	for (int i = 0; i < rows; i++) {
		int cls = (int)(lcg(&s) % 4);
		im.y[i] = cls;
		for (int r = 0; r < side; r++)
			for (int c = 0; c < side; c++) {
				int q = (r >= side / 2) * 2 + (c >= side / 2);
				float p = q == cls ? 0.6f : 0.2f;
				if (unit(&s) < p)
					im.x[(int64_t)i * f + r * side + c] = (float)(1 + lcg(&s) % 255);
			}
	}
	memset(&im.d, 0, sizeof im.d);
	im.d.rows = rows;
	im.d.features = f;
	im.d.outputs = 4;
	im.d.x = im.x;
	im.d.labels = im.y;
	im.d.width = im.d.height = side;
	im.d.channels = 1;
	return im;
}

/* f -> units relu -> 16 relu -> 4, seed 7: node 0 reads the bytes, node 1
 * (units -> 16) is a hidden layer fed by a ReLU. */
static nn_model *mlp_units(int f, int units)
{
	nn_layer_spec hidden[2] = { nn_layer_default(NN_LAYER_DENSE),
		                    nn_layer_default(NN_LAYER_DENSE) };
	hidden[0].units = units;
	hidden[0].act = NN_ACT_RELU;
	hidden[1].units = 16;
	hidden[1].act = NN_ACT_RELU;
	nn_model_spec s = { NN_TASK_CLASSIFICATION, f, 4, NN_INIT_AUTO, 7, hidden, 2 };
	char err[128];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	return m;
}

static nn_model *mlp(int f)
{
	return mlp_units(f, 32);
}

typedef struct losses {
	int n;
	float loss[8];
} losses;

static void on_epoch(void *ctx, const nn_epoch_record *r)
{
	losses *l = ctx;
	if (l->n < 8)
		l->loss[l->n++] = r->train_loss;
}

START_TEST(test_training_through_it_tracks_the_dense_path)
{
	images im = make_images(600, 16, 9);
	nn_train_config c = nn_train_config_default();
	c.epochs = 3;
	c.batch_size = 50;
	c.seed = 4;
	c.standardize = 1;
	c.opt = nn_optimizer_default(NN_OPT_ADAM);
	c.log_every_steps = 1000;
	c.checkpoint_every_epochs = 0;
	int64_t saved_min = nn_tune.byte_copy_min;
	float saved_density = nn_tune.sparse_max_density;
	int64_t runs = nn_counts.sparse_runs, hidden_min = nn_tune.sparse_hidden_min;
	int64_t hidden_steps = nn_counts.sparse_hidden_steps;
	losses ld = { 0 }, ls = { 0 };
	nn_callbacks cbd = { &ld, NULL, on_epoch, NULL, NULL }, cbs = { &ls, NULL, on_epoch, NULL, NULL };
	char err[128];

	nn_tune.byte_copy_min = 0;
	nn_tune.sparse_hidden_min = 0;
	nn_tune.sparse_max_density = 0.0f;
	nn_model *dense = mlp(256), *sparse = mlp(256);
	ck_assert_int_eq(nn_train(dense, &im.d, NULL, &c, &cbd, NULL, 0, NULL, err, sizeof err),
	                 NN_OK);
	ck_assert_int_eq(nn_counts.sparse_runs, runs);
	ck_assert_int_eq(nn_counts.sparse_hidden_steps, hidden_steps);
	nn_tune.sparse_max_density = 1.0f;
	ck_assert_int_eq(nn_train(sparse, &im.d, NULL, &c, &cbs, NULL, 0, NULL, err, sizeof err),
	                 NN_OK);
	ck_assert_int_eq(nn_counts.sparse_runs, runs + 1);
	/* the hidden layer took the sparse path at every step: 3 epochs of 12 */
	ck_assert_int_eq(nn_counts.sparse_hidden_steps, hidden_steps + 36);
	nn_tune.byte_copy_min = saved_min;
	nn_tune.sparse_hidden_min = hidden_min;
	nn_tune.sparse_max_density = saved_density;

	ck_assert_int_eq(ld.n, 3);
	ck_assert_int_eq(ls.n, 3);
	for (int e = 0; e < 3; e++)
		ck_assert_msg(fabsf(ld.loss[e] - ls.loss[e]) <= 1e-4f * fabsf(ld.loss[e]),
		              "epoch %d loss: dense %.7f sparse %.7f", e, ld.loss[e], ls.loss[e]);
	/* it learns: the last epoch's loss is well below log(4), chance */
	ck_assert_float_lt(ls.loss[2], 0.7f * logf(4.0f));
	int64_t np = 0, np2 = 0;
	const float *pd = nn_model_params(dense, &np), *ps = nn_model_params(sparse, &np2);
	ck_assert_int_eq(np, np2);
	for (int64_t i = 0; i < np; i++)
		ck_assert_msg(fabsf(pd[i] - ps[i]) <= 1e-4f, "param %lld: %g vs %g", (long long)i,
		              pd[i], ps[i]);
	nn_model_free(dense);
	nn_model_free(sparse);
	free(im.x);
	free(im.y);
}
END_TEST

typedef struct norms {
	int n;
	float loss[4], gn[4][8];
} norms;

static void on_epoch_norms(void *ctx, const nn_epoch_record *r)
{
	norms *l = ctx;
	if (l->n >= 4)
		return;
	l->loss[l->n] = r->train_loss;
	for (int k = 0; k < r->n_grad_norms && k < 8; k++)
		l->gn[l->n][k] = r->grad_norms[k];
	l->n++;
}

/* The first layer's Adam step fused with its gradient's last pass
 * (nn_sparse_in_adam) gives the same weights, to the bit, as the separate
 * passes: Adam and AdamW with l2, a feature count that is not a multiple of
 * 16, a first layer of a full block of 128 plus a narrower one, a last batch
 * smaller than the others. Clipping, which needs the global norm before the
 * step, does not fuse. */
START_TEST(test_fused_adam_step_gives_the_same_bits_as_the_separate_passes)
{
	images im = make_images(300, 15, 12); /* 225 features */
	int64_t saved_min = nn_tune.byte_copy_min;
	float saved_density = nn_tune.sparse_max_density;
	int saved_fuse = nn_tune.sparse_fuse;
	nn_tune.byte_copy_min = 0;
	nn_tune.sparse_max_density = 1.0f;
	char err[128];
	for (int variant = 0; variant < 3; variant++) {
		nn_train_config c = nn_train_config_default();
		c.epochs = 2;
		c.batch_size = 64; /* 4 steps of 64 and one of 44 per epoch */
		c.seed = 5;
		c.standardize = variant != 1;
		c.opt = nn_optimizer_default(variant == 1 ? NN_OPT_ADAMW : NN_OPT_ADAM);
		c.l2 = variant == 1 ? 1e-3f : 0.0f;
		c.clip_grad_norm = variant == 2 ? 0.5f : 0.0f;
		c.log_every_steps = 1000;
		c.checkpoint_every_epochs = 0;
		norms lf = { 0 }, ls = { 0 };
		nn_callbacks cbf = { &lf, NULL, on_epoch_norms, NULL, NULL };
		nn_callbacks cbs = { &ls, NULL, on_epoch_norms, NULL, NULL };
		nn_model *fused = mlp_units(225, 144), *separate = mlp_units(225, 144);

		int64_t steps = nn_counts.sparse_fused_steps;
		nn_tune.sparse_fuse = 1;
		ck_assert_int_eq(nn_train(fused, &im.d, NULL, &c, &cbf, NULL, 0, NULL, err, sizeof err),
		                 NN_OK);
		ck_assert_int_eq(nn_counts.sparse_fused_steps - steps, variant == 2 ? 0 : 10);
		steps = nn_counts.sparse_fused_steps;
		nn_tune.sparse_fuse = 0;
		ck_assert_int_eq(nn_train(separate, &im.d, NULL, &c, &cbs, NULL, 0, NULL, err,
		                          sizeof err),
		                 NN_OK);
		ck_assert_int_eq(nn_counts.sparse_fused_steps, steps);

		int64_t np = 0, np2 = 0;
		const float *pf = nn_model_params(fused, &np), *ps = nn_model_params(separate, &np2);
		ck_assert_int_eq(np, np2);
		for (int64_t i = 0; i < np; i++)
			ck_assert_msg(memcmp(pf + i, ps + i, sizeof(float)) == 0,
			              "variant %d param %lld: %.9g vs %.9g", variant, (long long)i,
			              pf[i], ps[i]);
		ck_assert_int_eq(lf.n, 2);
		ck_assert_int_eq(ls.n, 2);
		for (int e = 0; e < 2; e++) {
			ck_assert_float_eq(lf.loss[e], ls.loss[e]);
			/* the norms are summed in another order: equal to float rounding */
			for (int k = 0; k < 3; k++)
				ck_assert_msg(fabsf(lf.gn[e][k] - ls.gn[e][k]) <= 1e-5f * ls.gn[e][k] &&
				                      ls.gn[e][k] > 0,
				              "variant %d epoch %d norm %d: %g vs %g", variant, e, k,
				              lf.gn[e][k], ls.gn[e][k]);
		}
		nn_model_free(fused);
		nn_model_free(separate);
	}
	nn_tune.byte_copy_min = saved_min;
	nn_tune.sparse_max_density = saved_density;
	nn_tune.sparse_fuse = saved_fuse;
	free(im.x);
	free(im.y);
}
END_TEST

/* Every kernel against its plain twin, through whole training runs: node 0
 * from bytes (144 outputs: a full block and a narrow one; 225 features, not
 * a multiple of 16), the hidden layer from floats, the gradient's epilogue
 * (separate passes) and the fused Adam step; then prediction. The AVX-512
 * run and the plain run give the same weights and probabilities to the bit. */
START_TEST(test_avx512_kernels_give_their_plain_twins_bits)
{
	images im = make_images(300, 15, 14);
	int64_t saved_min = nn_tune.byte_copy_min, hidden_min = nn_tune.sparse_hidden_min;
	float saved_density = nn_tune.sparse_max_density;
	int saved_fuse = nn_tune.sparse_fuse;
	nn_tune.byte_copy_min = 0;
	nn_tune.sparse_hidden_min = 0;
	nn_tune.sparse_max_density = 1.0f;
	char err[128];
	for (int fuse = 0; fuse < 2; fuse++) {
		nn_train_config c = nn_train_config_default();
		c.epochs = 2;
		c.batch_size = 64;
		c.seed = 6;
		c.standardize = 1;
		c.opt = nn_optimizer_default(fuse ? NN_OPT_ADAMW : NN_OPT_ADAM);
		c.l2 = fuse ? 1e-3f : 0.0f;
		c.log_every_steps = 1000;
		c.checkpoint_every_epochs = 0;
		nn_tune.sparse_fuse = fuse;
		nn_model *m[2];
		float probs[2][40 * 4];
		norms nv[2] = { { 0 }, { 0 } };
		int64_t runs = nn_counts.sparse_runs, hidden = nn_counts.sparse_hidden_steps;
		for (int v = 0; v < 2; v++) {
			nn_tune.simd = v;
			m[v] = mlp_units(225, 144);
			nn_callbacks cb = { &nv[v], NULL, on_epoch_norms, NULL, NULL };
			ck_assert_int_eq(nn_train(m[v], &im.d, NULL, &c, &cb, NULL, 0, NULL, err,
			                          sizeof err),
			                 NN_OK);
			nn_scratch *sc = nn_scratch_create_frozen(m[v], 16);
			ck_assert_int_eq(nn_predict(m[v], sc, im.x, 40, probs[v]), NN_OK);
			nn_scratch_free(sc);
		}
		nn_tune.simd = 1;
		ck_assert_int_eq(nn_counts.sparse_runs, runs + 2);
		ck_assert_int_eq(nn_counts.sparse_hidden_steps, hidden + 2 * 10);
		int64_t np = 0, np2 = 0;
		const float *pa = nn_model_params(m[1], &np), *pp = nn_model_params(m[0], &np2);
		ck_assert_int_eq(np, np2);
		for (int64_t i = 0; i < np; i++)
			ck_assert_msg(memcmp(pa + i, pp + i, sizeof(float)) == 0,
			              "fuse %d param %lld: avx512 %.9g plain %.9g", fuse, (long long)i,
			              pa[i], pp[i]);
		ck_assert_int_eq(memcmp(probs[0], probs[1], sizeof probs[0]), 0);
		/* the losses and gradient norms (the fused step sums the first
		 * layer's) too */
		ck_assert_int_eq(nv[0].n, 2);
		ck_assert_int_eq(memcmp(&nv[0], &nv[1], sizeof nv[0]), 0);
		nn_model_free(m[0]);
		nn_model_free(m[1]);
	}
	nn_tune.byte_copy_min = saved_min;
	nn_tune.sparse_hidden_min = hidden_min;
	nn_tune.sparse_max_density = saved_density;
	nn_tune.sparse_fuse = saved_fuse;
	free(im.x);
	free(im.y);
}
END_TEST

/* Prediction with a frozen scratch: mostly-zero rows take the sparse first
 * layer; the probabilities agree with the dense path's, a row alone gets
 * its result within a batch, and another model of the same shape is not
 * predicted with the packed weights of the first. */
START_TEST(test_frozen_scratch_predicts_sparse_rows_like_the_dense_path)
{
	const int f = 256, rows = 40;
	images im = make_images(rows, 16, 31);
	nn_model *m = mlp(f), *other = mlp(f);
	int64_t np = 0;
	float *po = nn_model_params(other, &np);
	for (int64_t i = 0; i < np; i++)
		po[i] *= -0.5f; /* different weights, same shape */
	float mean[256], sd[256];
	for (int k = 0; k < f; k++) {
		mean[k] = 20.0f + k % 7;
		sd[k] = 40.0f + k % 5;
	}
	ck_assert_int_eq(nn_model_set_standardize(m, mean, sd), NN_OK);
	ck_assert_int_eq(nn_model_set_standardize(other, mean, sd), NN_OK);

	nn_scratch *dense = nn_scratch_create(m, 16), *frozen = nn_scratch_create_frozen(m, 16);
	ck_assert_ptr_nonnull(dense);
	ck_assert_ptr_nonnull(frozen);
	float *pd = malloc(sizeof(float) * rows * 4), *pf = malloc(sizeof(float) * rows * 4);
	float one[4];
	int64_t blocks = nn_counts.sparse_predict_blocks;
	ck_assert_int_eq(nn_predict(m, dense, im.x, rows, pd), NN_OK);
	ck_assert_int_eq(nn_counts.sparse_predict_blocks, blocks);
	ck_assert_int_eq(nn_predict(m, frozen, im.x, rows, pf), NN_OK);
	ck_assert_int_eq(nn_counts.sparse_predict_blocks, blocks + 3); /* 40 rows in blocks of 16 */
	for (int i = 0; i < rows * 4; i++)
		ck_assert_msg(fabsf(pd[i] - pf[i]) <= 1e-5f, "probability %d: %g vs %g", i, pd[i],
		              pf[i]);
	for (int r = 0; r < rows; r++) {
		ck_assert_int_eq(nn_predict(m, frozen, im.x + (int64_t)r * f, 1, one), NN_OK);
		for (int j = 0; j < 4; j++)
			ck_assert_float_eq_tol(one[j], pf[r * 4 + j], 1e-6f);
	}
	/* the other model through m's frozen scratch: its own (dense) result */
	nn_scratch *od = nn_scratch_create(other, 16);
	ck_assert_int_eq(nn_predict(other, od, im.x, rows, pd), NN_OK);
	ck_assert_int_eq(nn_predict(other, frozen, im.x, rows, pf), NN_OK);
	ck_assert_int_eq(memcmp(pd, pf, sizeof(float) * rows * 4), 0);
	/* dense rows (no zeros) stay on the dense path */
	float *full = malloc(sizeof(float) * rows * f);
	for (int64_t i = 0; i < (int64_t)rows * f; i++)
		full[i] = 1.0f + (float)(i % 200);
	blocks = nn_counts.sparse_predict_blocks;
	ck_assert_int_eq(nn_predict(m, frozen, full, rows, pf), NN_OK);
	ck_assert_int_eq(nn_counts.sparse_predict_blocks, blocks);

	nn_scratch_free(dense);
	nn_scratch_free(frozen);
	nn_scratch_free(od);
	nn_model_free(m);
	nn_model_free(other);
	free(pd);
	free(pf);
	free(full);
	free(im.x);
	free(im.y);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sparse_in");
	TCase *tc = tcase_create("sparse_in");
	int skipped = 0, avx = nn_sparse_in_simd(), fast = nn_sparse_in_supported();
	const char *no_avx = "this CPU has no AVX-512F";
	const char *slow = "the trainer uses the kernels only with AVX-512F";
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_forward_and_gradient_match_sgemm_on_standardised_rows_plain);
	tcase_add_test(tc, test_float_rows_match_sgemm_plain);
	tcase_add_test_if(tc, test_forward_and_gradient_match_sgemm_on_standardised_rows_avx512, avx,
	                  no_avx, &skipped);
	tcase_add_test_if(tc, test_float_rows_match_sgemm_avx512, avx, no_avx, &skipped);
	tcase_add_test_if(tc, test_avx512_kernels_give_their_plain_twins_bits, avx && fast, no_avx,
	                  &skipped);
	tcase_add_test(tc, test_create_refuses_widths_that_are_not_multiples_of_16);
	tcase_add_test_if(tc, test_training_through_it_tracks_the_dense_path, fast, slow, &skipped);
	tcase_add_test_if(tc, test_fused_adam_step_gives_the_same_bits_as_the_separate_passes, fast,
	                  slow, &skipped);
	tcase_add_test_if(tc, test_frozen_scratch_predicts_sparse_rows_like_the_dense_path, fast,
	                  slow, &skipped);
	suite_add_tcase(s, tc);
	return check_run_skipping(s, skipped);
}
