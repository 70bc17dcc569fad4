/*
 * test_layers.c - finite-difference gradient checks for every layer type,
 * every activation, batch norm (training and inference), dropout with a fixed
 * mask, residual blocks with and without projection (nested too), dense
 * without bias and both losses; plus the tensor table, spec checks, the
 * population statistics of batch norm and nn_predict.
 *
 * Settings are chosen to be friendly to float32 central differences: small
 * widths, inputs of order one, step 3e-3.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

#define ROWS 6
#define IN 4

static float X[ROWS * IN];
static int32_t LABELS[ROWS] = { 0, 2, 1, 1, 0, 2 };
static float TARGETS[ROWS * 3];

static void fill_data(void)
{
	nn_rng r;

	nn_rng_seed(&r, 11);
	for (int i = 0; i < ROWS * IN; i++)
		X[i] = 2.0f * nn_rng_uniform(&r) - 1.0f;
	for (int i = 0; i < ROWS * 3; i++)
		TARGETS[i] = 2.0f * nn_rng_uniform(&r) - 1.0f;
}

static nn_layer_spec dense(int units, nn_act a)
{
	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = units;
	l.act = a;
	return l;
}

static nn_layer_spec act_layer(nn_act a)
{
	nn_layer_spec l = nn_layer_default(NN_LAYER_ACTIVATION);
	l.act = a;
	return l;
}

static nn_layer_spec residual(nn_layer_spec *children, int n, int projection)
{
	nn_layer_spec l = nn_layer_default(NN_LAYER_RESIDUAL);
	nn_layers_copy(children, n, &l.children);
	l.n_children = n;
	l.projection = projection;
	return l;
}

/* Builds a model over copies of the given layers (residual children are
 * freed with the array). */
static nn_model *make(nn_task task, nn_layer_spec *layers, int n, uint64_t seed)
{
	nn_model_spec spec = { task, IN, 3, NN_INIT_AUTO, seed, layers, n };
	char err[256] = "";
	nn_model *m = nn_model_create(&spec, err, sizeof(err));

	ck_assert_msg(m != NULL, "create: %s", err);
	for (int i = 0; i < n; i++)
		nn_layers_free(layers[i].children, layers[i].n_children);
	return m;
}

static float eval(nn_model *m, nn_ws *w, int training, uint64_t seed, int want_grad)
{
	nn_rng rng;

	nn_rng_seed(&rng, seed);
	ck_assert_ptr_nonnull(nn_forward(m, w, X, ROWS, training, &rng));
	return nn_loss(m, w, LABELS, TARGETS, ROWS, want_grad);
}

/* Compares nn_backward with central differences on every parameter. */
static void grad_check(nn_model *m, int training, const char *what)
{
	nn_ws *w = nn_ws_create(m, ROWS);
	int64_t np;
	float *p = nn_model_params(m, &np);
	float *an = malloc(sizeof(float) * (size_t)np);
	const float h = 3e-3f;
	double diff2 = 0, norm2 = 0;

	ck_assert_ptr_nonnull(w);
	eval(m, w, training, 42, 1);
	nn_backward(m, w, ROWS);
	memcpy(an, nn_ws_grads(w), sizeof(float) * (size_t)np);
	for (int64_t i = 0; i < np; i++) {
		float orig = p[i];
		double fd = 0;
		/* a step that straddles a kink (relu family) is retried smaller */
		for (float step = h; step > h / 10; step /= 3) {
			float lp, lm;
			p[i] = orig + step;
			lp = eval(m, w, training, 42, 0);
			p[i] = orig - step;
			lm = eval(m, w, training, 42, 0);
			p[i] = orig;
			fd = ((double)lp - lm) / (2.0 * step);
			if (fabs(fd - an[i]) <= 1e-3 + 1e-2 * fabs(an[i]))
				break;
		}
		ck_assert_msg(fabs(fd - an[i]) <= 2e-3 + 3e-2 * fabs(an[i]),
		              "%s: parameter %lld: backward %.6g, finite difference %.6g", what,
		              (long long)i, an[i], fd);
		diff2 += (fd - an[i]) * (fd - an[i]);
		norm2 += (double)an[i] * an[i];
	}
	ck_assert_msg(norm2 > 1e-8, "%s: gradient is zero", what);
	ck_assert_msg(sqrt(diff2 / norm2) < 1e-2, "%s: relative error %g", what,
	              sqrt(diff2 / norm2));
	/* a second backward overwrites, it does not accumulate */
	eval(m, w, training, 42, 1);
	nn_backward(m, w, ROWS);
	for (int64_t i = 0; i < np; i++)
		ck_assert_float_eq(nn_ws_grads(w)[i], an[i]);
	free(an);
	nn_ws_free(w);
}

static const char *act_names[] = { "identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh",
                                   "softplus", "gelu" };

START_TEST(test_dense_gradient_matches_finite_differences_for_each_activation)
{
	for (int a = 0; a <= NN_ACT_GELU; a++) {
		for (int task = 0; task < 2; task++) {
			nn_layer_spec ls[2] = { dense(5, (nn_act)a), dense(4, (nn_act)a) };
			nn_model *m = make((nn_task)task, ls, 2, 100 + a);
			grad_check(m, 1, act_names[a]);
			nn_model_free(m);
		}
	}
}
END_TEST

START_TEST(test_dense_with_nondefault_alpha_and_without_bias)
{
	nn_layer_spec ls[3] = { dense(5, NN_ACT_LEAKY_RELU), dense(5, NN_ACT_ELU),
	                        dense(4, NN_ACT_LEAKY_RELU) };
	nn_model *m;

	ls[0].alpha = -0.2f; /* negative slope: derivative from the stored z */
	ls[1].alpha = 0.5f;
	ls[1].bias = 0;
	ls[2].alpha = 0.3f;
	m = make(NN_TASK_CLASSIFICATION, ls, 3, 7);
	ck_assert_int_eq(nn_model_param_count(m), 5 * 4 + 5 + 5 * 5 + 4 * 5 + 4 + 3 * 4 + 3);
	grad_check(m, 1, "alpha/no bias");
	nn_model_free(m);
}
END_TEST

START_TEST(test_activation_layer_gradient_matches_finite_differences_for_each_function)
{
	for (int a = 0; a <= NN_ACT_GELU; a++) {
		nn_layer_spec ls[3] = { dense(5, NN_ACT_IDENTITY), act_layer((nn_act)a),
		                        dense(4, NN_ACT_TANH) };
		nn_model *m = make(NN_TASK_REGRESSION, ls, 3, 200 + a);
		grad_check(m, 1, act_names[a]);
		nn_model_free(m);
	}
}
END_TEST

START_TEST(test_batch_norm_gradient_in_training_and_inference_mode)
{
	nn_layer_spec ls[4] = { dense(5, NN_ACT_IDENTITY), nn_layer_default(NN_LAYER_BATCH_NORM),
	                        act_layer(NN_ACT_TANH), dense(4, NN_ACT_SIGMOID) };
	nn_model *m = make(NN_TASK_CLASSIFICATION, ls, 4, 300);
	int64_t ns;
	float *st = nn_model_state(m, &ns);

	ck_assert_int_eq(ns, 10);
	grad_check(m, 1, "batch_norm training");
	/* inference mode normalises with running statistics: make them non-trivial */
	for (int j = 0; j < 5; j++) {
		st[j] = 0.1f * j;
		st[5 + j] = 0.5f + 0.2f * j;
	}
	grad_check(m, 0, "batch_norm inference");
	nn_model_free(m);
}
END_TEST

START_TEST(test_batch_norm_training_output_is_normalised_and_running_stats_move)
{
	nn_layer_spec ls[2] = { dense(5, NN_ACT_IDENTITY), nn_layer_default(NN_LAYER_BATCH_NORM) };
	nn_model *m;
	nn_ws *w;
	const float *y;
	float z[ROWS * 5];
	nn_tensor wt, bt, rm, rv;

	ls[1].momentum = 0.25f;
	m = make(NN_TASK_REGRESSION, ls, 2, 301);
	w = nn_ws_create(m, ROWS);
	wt = nn_model_tensor(m, 0);
	bt = nn_model_tensor(m, 1);
	rm = nn_model_tensor(m, 4);
	rv = nn_model_tensor(m, 5);
	ck_assert_int_eq(rm.kind, NN_T_RUNNING_MEAN);
	ck_assert_int_eq(rv.kind, NN_T_RUNNING_VAR);
	for (int j = 0; j < 5; j++)
		bt.data[j] = 0.3f * j;
	for (int i = 0; i < ROWS; i++)
		for (int j = 0; j < 5; j++) {
			double s = bt.data[j];
			for (int k = 0; k < IN; k++)
				s += (double)X[i * IN + k] * wt.data[j * IN + k];
			z[i * 5 + j] = (float)s;
		}
	/* the batch norm's output is value 2 (input, dense, batch norm) */
	y = nn_forward(m, w, X, ROWS, 1, NULL);
	ck_assert_ptr_nonnull(y);
	y = nn_ws_value(w, 2);
	for (int j = 0; j < 5; j++) {
		double mean = 0, var = 0, ym = 0, yv = 0;
		for (int i = 0; i < ROWS; i++)
			mean += z[i * 5 + j] / (double)ROWS;
		for (int i = 0; i < ROWS; i++)
			var += (z[i * 5 + j] - mean) * (z[i * 5 + j] - mean) / ROWS;
		for (int i = 0; i < ROWS; i++)
			ym += y[i * 5 + j] / (double)ROWS;
		for (int i = 0; i < ROWS; i++)
			yv += (y[i * 5 + j] - ym) * (y[i * 5 + j] - ym) / ROWS;
		ck_assert_double_le(fabs(ym), 1e-5);
		ck_assert_double_le(fabs(yv - var / (var + 1e-5)), 1e-4);
		/* running = 0.75 running + 0.25 batch, unbiased variance */
		ck_assert_double_le(fabs(rm.data[j] - 0.25 * mean), 1e-5);
		ck_assert_double_le(fabs(rv.data[j] - (0.75 + 0.25 * var * ROWS / (ROWS - 1))), 1e-5);
	}
	nn_ws_free(w);
	nn_model_free(m);
}
END_TEST

START_TEST(test_dropout_gradient_with_a_fixed_mask_in_both_modes)
{
	for (int mode = 0; mode < 2; mode++) {
		nn_layer_spec ls[3] = { dense(8, NN_ACT_TANH), nn_layer_default(NN_LAYER_DROPOUT),
		                        dense(4, NN_ACT_IDENTITY) };
		nn_model *m;
		ls[1].rate = 0.4f;
		ls[1].mode = (nn_dropout_mode)mode;
		m = make(NN_TASK_CLASSIFICATION, ls, 3, 400 + mode);
		grad_check(m, 1, mode ? "dropout scale_at_test" : "dropout inverted");
		grad_check(m, 0, "dropout inference");
		nn_model_free(m);
	}
}
END_TEST

START_TEST(test_residual_gradient_with_identity_shortcut)
{
	nn_layer_spec block[2] = { dense(7, NN_ACT_TANH), dense(5, NN_ACT_IDENTITY) };
	nn_layer_spec ls[2] = { dense(5, NN_ACT_SIGMOID), residual(block, 2, 0) };
	nn_model *m = make(NN_TASK_CLASSIFICATION, ls, 2, 500);

	grad_check(m, 1, "residual");
	nn_model_free(m);
}
END_TEST

START_TEST(test_residual_gradient_with_projection_and_as_first_layer)
{
	nn_layer_spec block[2] = { dense(7, NN_ACT_GELU), dense(3, NN_ACT_IDENTITY) };
	nn_layer_spec ls[2] = { residual(block, 2, 1), dense(4, NN_ACT_ELU) };
	nn_model *m = make(NN_TASK_REGRESSION, ls, 2, 501);

	grad_check(m, 1, "residual projection");
	nn_model_free(m);
}
END_TEST

START_TEST(test_nested_residuals_accumulate_every_path)
{
	/* the outer block's input feeds the inner block, the inner shortcut and
	 * the outer shortcut: three gradient paths into one value */
	nn_layer_spec inner_block[2] = { nn_layer_default(NN_LAYER_BATCH_NORM),
	                                 dense(5, NN_ACT_SOFTPLUS) };
	nn_layer_spec inner = residual(inner_block, 2, 0);
	nn_layer_spec outer_block[2] = { inner, dense(5, NN_ACT_RELU) };
	nn_layer_spec ls[3] = { dense(5, NN_ACT_TANH), residual(outer_block, 2, 0),
	                        act_layer(NN_ACT_SIGMOID) };
	nn_model *m;

	nn_layers_free(inner.children, inner.n_children);
	m = make(NN_TASK_CLASSIFICATION, ls, 3, 502);
	grad_check(m, 1, "nested residual");
	nn_model_free(m);
}
END_TEST

START_TEST(test_losses_values_and_gradients)
{
	for (int task = 0; task < 2; task++) {
		nn_model *m = make((nn_task)task, NULL, 0, 600 + task);
		nn_ws *w = nn_ws_create(m, ROWS);
		nn_tensor wt = nn_model_tensor(m, 0), bt = nn_model_tensor(m, 1);
		double want = 0;
		float got;

		for (int j = 0; j < 3; j++)
			bt.data[j] = 0.1f * (j + 1);
		for (int i = 0; i < ROWS; i++) {
			double z[3], mx = -1e30, s = 0;
			for (int j = 0; j < 3; j++) {
				z[j] = bt.data[j];
				for (int k = 0; k < IN; k++)
					z[j] += (double)X[i * IN + k] * wt.data[j * IN + k];
				mx = fmax(mx, z[j]);
			}
			if (task == NN_TASK_CLASSIFICATION) {
				for (int j = 0; j < 3; j++)
					s += exp(z[j] - mx);
				want += (log(s) + mx - z[LABELS[i]]) / ROWS;
			} else {
				for (int j = 0; j < 3; j++)
					want += (z[j] - TARGETS[i * 3 + j]) * (z[j] - TARGETS[i * 3 + j]) /
					        (ROWS * 3);
			}
		}
		got = eval(m, w, 1, 1, 0);
		ck_assert_double_le(fabs(got - want), 1e-6 * fmax(1, fabs(want)));
		nn_ws_free(w);
		grad_check(m, 1, task ? "mse" : "cross-entropy");
		nn_model_free(m);
	}
}
END_TEST

START_TEST(test_loss_is_stable_for_large_logits_and_rejects_bad_labels)
{
	nn_model *m = make(NN_TASK_CLASSIFICATION, NULL, 0, 700);
	nn_ws *w = nn_ws_create(m, ROWS);
	nn_tensor bt = nn_model_tensor(m, 1);
	int32_t bad[ROWS] = { 0, 1, 2, 3, 0, 0 };
	float l;

	bt.data[0] = 1000.0f;
	bt.data[1] = 0.0f;
	bt.data[2] = -1000.0f;
	l = eval(m, w, 0, 1, 1);
	ck_assert(isfinite(l));
	ck_assert_float_gt(l, 300.0f); /* labels 1 and 2 are ~1000 away from the max */
	ck_assert_ptr_nonnull(nn_forward(m, w, X, ROWS, 0, NULL));
	ck_assert(isnan(nn_loss(m, w, bad, NULL, ROWS, 0)));
	nn_ws_free(w);
	nn_model_free(m);
}
END_TEST

START_TEST(test_tensor_table_order_paths_and_blocks)
{
	nn_layer_spec block[2] = { nn_layer_default(NN_LAYER_BATCH_NORM), dense(6, NN_ACT_RELU) };
	nn_layer_spec ls[3] = { dense(5, NN_ACT_RELU), residual(block, 2, 1),
	                        nn_layer_default(NN_LAYER_DROPOUT) };
	nn_model *m = make(NN_TASK_CLASSIFICATION, ls, 3, 800);
	struct { const char *path; nn_tensor_kind kind; int rows, cols, trainable; } want[] = {
		{ "layers[0]", NN_T_WEIGHT, 5, 4, 1 },
		{ "layers[0]", NN_T_BIAS, 1, 5, 1 },
		{ "layers[1].layers[0]", NN_T_GAMMA, 1, 5, 1 },
		{ "layers[1].layers[0]", NN_T_BETA, 1, 5, 1 },
		{ "layers[1].layers[0]", NN_T_RUNNING_MEAN, 1, 5, 0 },
		{ "layers[1].layers[0]", NN_T_RUNNING_VAR, 1, 5, 0 },
		{ "layers[1].layers[1]", NN_T_WEIGHT, 6, 5, 1 },
		{ "layers[1].layers[1]", NN_T_BIAS, 1, 6, 1 },
		{ "layers[1].projection", NN_T_WEIGHT, 6, 5, 1 },
		{ "layers[3]", NN_T_WEIGHT, 3, 6, 1 },
		{ "layers[3]", NN_T_BIAS, 1, 3, 1 },
	};
	int64_t np, ns, off = 0, soff = 0;
	float *p = nn_model_params(m, &np), *s = nn_model_state(m, &ns);
	const nn_model_spec *spec = nn_model_spec_of(m);

	ck_assert_int_eq(spec->n_layers, 4);
	ck_assert_int_eq(spec->layers[3].type, NN_LAYER_DENSE);
	ck_assert_int_eq(spec->layers[3].units, 3);
	ck_assert_int_eq(nn_model_tensor_count(m), 11);
	for (int i = 0; i < 11; i++) {
		nn_tensor t = nn_model_tensor(m, i);
		ck_assert_str_eq(t.path, want[i].path);
		ck_assert_int_eq(t.kind, want[i].kind);
		ck_assert_int_eq(t.rows, want[i].rows);
		ck_assert_int_eq(t.cols, want[i].cols);
		ck_assert_int_eq(t.trainable, want[i].trainable);
		/* contiguous views in table order */
		if (t.trainable) {
			ck_assert_ptr_eq(t.data, p + off);
			off += t.rows * t.cols;
		} else {
			ck_assert_ptr_eq(t.data, s + soff);
			soff += t.rows * t.cols;
		}
	}
	ck_assert_int_eq(off, np);
	ck_assert_int_eq(soff, ns);
	ck_assert_int_eq(np, nn_model_param_count(m));
	ck_assert_int_eq(nn_model_has_bn(m), 1);
	ck_assert_ptr_null(nn_model_tensor(m, 11).data);
	nn_model_free(m);
}
END_TEST

START_TEST(test_spec_check_names_the_bad_layer_and_counts_parameters)
{
	nn_layer_spec block[1] = { dense(5, NN_ACT_RELU) };
	nn_layer_spec ls[2] = { dense(7, NN_ACT_RELU), residual(block, 1, 0) };
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, IN, 3, NN_INIT_AUTO, 1, ls, 2 };
	char err[256];
	int64_t params = -1;

	ck_assert_int_eq(nn_spec_check(&spec, 0, &params, err, sizeof(err)), NN_EINVAL);
	ck_assert_msg(strncmp(err, "layers[1]: ", 11) == 0, "message: %s", err);
	ls[1].projection = 1;
	ck_assert_int_eq(nn_spec_check(&spec, 0, &params, err, sizeof(err)), NN_OK);
	ck_assert_int_eq(params, 7 * 4 + 7 + 5 * 7 + 5 + 5 * 7 + 3 * 5 + 3);
	ck_assert_int_eq(nn_spec_check(&spec, params - 1, NULL, err, sizeof(err)), NN_ELIMIT);
	ls[1].children[0].units = 0;
	ck_assert_int_eq(nn_spec_check(&spec, 0, NULL, err, sizeof(err)), NN_EINVAL);
	ck_assert_msg(strncmp(err, "layers[1].layers[0].units: ", 27) == 0, "message: %s", err);
	ls[1].children[0].units = 5;
	ls[0].rate = 2; /* ignored: not a dropout layer */
	ck_assert_int_eq(nn_spec_check(&spec, 0, NULL, err, sizeof(err)), NN_OK);
	ls[0].type = NN_LAYER_DROPOUT;
	ck_assert_int_eq(nn_spec_check(&spec, 0, NULL, err, sizeof(err)), NN_EINVAL);
	ck_assert_msg(strncmp(err, "layers[0].rate: ", 16) == 0, "message: %s", err);
	ls[0] = nn_layer_default(NN_LAYER_BATCH_NORM);
	ls[0].eps = 0;
	ck_assert_int_eq(nn_spec_check(&spec, 0, NULL, err, sizeof(err)), NN_EINVAL);
	ck_assert_msg(strncmp(err, "layers[0].eps: ", 15) == 0, "message: %s", err);
	ck_assert_ptr_null(nn_model_create(&spec, err, sizeof(err)));
	nn_layers_free(ls[1].children, ls[1].n_children);
}
END_TEST

START_TEST(test_residual_nesting_deeper_than_the_limit_is_refused)
{
	nn_layer_spec l = dense(IN, NN_ACT_RELU);
	nn_model_spec spec = { NN_TASK_REGRESSION, IN, 3, NN_INIT_AUTO, 1, NULL, 1 };
	char err[256];

	for (int d = 0; d <= NN_MAX_DEPTH; d++) {
		nn_layer_spec r = residual(&l, 1, 0);
		if (d > 0)
			nn_layers_free(l.children, l.n_children);
		l = r;
	}
	spec.layers = &l;
	ck_assert_int_eq(nn_spec_check(&spec, 0, NULL, err, sizeof(err)), NN_ELIMIT);
	nn_layers_free(l.children, l.n_children);
}
END_TEST

START_TEST(test_bn_population_sets_mean_and_unbiased_variance_layer_by_layer)
{
	enum { R = 37 };
	nn_layer_spec ls[3] = { dense(5, NN_ACT_IDENTITY), nn_layer_default(NN_LAYER_BATCH_NORM),
	                        nn_layer_default(NN_LAYER_BATCH_NORM) };
	nn_model *m = make(NN_TASK_REGRESSION, ls, 3, 900);
	nn_ws *w = nn_ws_create(m, 8); /* chunks of 8 rows */
	nn_tensor wt = nn_model_tensor(m, 0), bt = nn_model_tensor(m, 1);
	nn_tensor g1 = nn_model_tensor(m, 2), rm1 = nn_model_tensor(m, 4), rv1 = nn_model_tensor(m, 5);
	nn_tensor rm2 = nn_model_tensor(m, 8), rv2 = nn_model_tensor(m, 9);
	float x[R * IN];
	double z[R][5];
	nn_rng r;

	nn_rng_seed(&r, 3);
	for (int i = 0; i < R * IN; i++)
		x[i] = 3.0f * nn_rng_normal(&r) + 1.0f;
	for (int j = 0; j < 5; j++) {
		bt.data[j] = (float)j;
		g1.data[j] = 2.0f;
	}
	for (int i = 0; i < R; i++)
		for (int j = 0; j < 5; j++) {
			z[i][j] = bt.data[j];
			for (int k = 0; k < IN; k++)
				z[i][j] += (double)x[i * IN + k] * wt.data[j * IN + k];
		}
	ck_assert_int_eq(nn_bn_population(m, w, x, R), NN_OK);
	for (int j = 0; j < 5; j++) {
		double mean = 0, var = 0;
		for (int i = 0; i < R; i++)
			mean += z[i][j] / R;
		for (int i = 0; i < R; i++)
			var += (z[i][j] - mean) * (z[i][j] - mean) / (R - 1);
		ck_assert_double_le(fabs(rm1.data[j] - mean), 1e-4 * fmax(1, fabs(mean)));
		ck_assert_double_le(fabs(rv1.data[j] - var), 1e-4 * var);
		/* the second layer sees the first's output with its final statistics:
		 * gamma 2, beta 0 -> mean 0, variance 4 var / (var + eps) */
		ck_assert_double_le(fabs(rm2.data[j]), 1e-4);
		ck_assert_double_le(fabs(rv2.data[j] - 4 * var / (var + 1e-5)), 1e-3);
	}
	nn_ws_free(w);
	nn_model_free(m);
}
END_TEST

START_TEST(test_predict_standardises_chunks_and_returns_probabilities)
{
	enum { R = 11 };
	nn_layer_spec ls[2] = { dense(6, NN_ACT_TANH), nn_layer_default(NN_LAYER_BATCH_NORM) };
	nn_model *m = make(NN_TASK_CLASSIFICATION, ls, 2, 1000);
	nn_scratch *s = nn_scratch_create(m, 4);
	nn_ws *w = nn_ws_create(m, R);
	float mean[IN] = { 1, -2, 0.5f, 3 }, sd[IN] = { 2, 0.5f, 1, 4 };
	float x[R * IN], xs[R * IN], out[R * 3];
	const float *logits;
	nn_rng r;
	nn_model *c;

	nn_rng_seed(&r, 5);
	for (int i = 0; i < R * IN; i++) {
		x[i] = 4.0f * nn_rng_uniform(&r) - 2.0f;
		xs[i] = (x[i] - mean[i % IN]) / sd[i % IN];
	}
	ck_assert_int_eq(nn_model_set_standardize(m, mean, sd), NN_OK);
	ck_assert_int_eq(nn_predict(m, s, x, R, out), NN_OK);
	logits = nn_forward(m, w, xs, R, 0, NULL);
	for (int i = 0; i < R; i++) {
		double mx = fmax(logits[i * 3], fmax(logits[i * 3 + 1], logits[i * 3 + 2])), sum = 0;
		for (int j = 0; j < 3; j++)
			sum += exp(logits[i * 3 + j] - mx);
		for (int j = 0; j < 3; j++)
			ck_assert_double_le(fabs(out[i * 3 + j] - exp(logits[i * 3 + j] - mx) / sum), 1e-6);
	}
	/* a clone predicts the same bits, and the model was not changed by predict */
	c = nn_model_clone(m);
	ck_assert_ptr_nonnull(c);
	{
		float out2[R * 3];
		ck_assert_int_eq(nn_predict(c, s, x, R, out2), NN_OK);
		ck_assert_mem_eq(out, out2, sizeof(out));
	}
	ck_assert_mem_eq(nn_model_std_std(c), sd, sizeof(sd));
	nn_model_free(c);
	ck_assert_int_eq(nn_model_set_standardize(m, NULL, NULL), NN_OK);
	ck_assert_ptr_null(nn_model_std_mean(m));
	ck_assert_int_eq(nn_predict(m, s, x, 0, out), NN_OK);
	nn_scratch_free(s);
	nn_ws_free(w);
	nn_model_free(m);
	nn_model_free(NULL);
	nn_scratch_free(NULL);
	nn_ws_free(NULL);
}
END_TEST

START_TEST(test_forward_refuses_oversized_batches_and_foreign_workspaces)
{
	nn_model *m = make(NN_TASK_REGRESSION, NULL, 0, 1);
	nn_ws *w = nn_ws_create(m, 2);
	/* same node count and parameter count as m2 below, other widths */
	nn_layer_spec a[1] = { dense(2, NN_ACT_RELU) }, b[1] = { dense(2, NN_ACT_RELU) };
	nn_model *m1, *m2;
	nn_ws *w1;
	nn_scratch *s1;
	float out[ROWS * 3];

	ck_assert_ptr_null(nn_forward(m, w, X, 3, 0, NULL));
	ck_assert_ptr_null(nn_forward(m, w, X, 0, 0, NULL));
	ck_assert_ptr_nonnull(nn_forward(m, w, X, 2, 0, NULL));
	ck_assert(isnan(nn_loss(m, w, NULL, TARGETS, 1, 0))); /* not the forward's rows */
	ck_assert(!isnan(nn_loss(m, w, NULL, TARGETS, 2, 0)));
	ck_assert_int_eq(nn_ws_max_batch(w), 2);
	m1 = make(NN_TASK_REGRESSION, a, 1, 1);
	b[0].act = NN_ACT_GELU; /* keeps z: a different cache layout */
	m2 = make(NN_TASK_REGRESSION, b, 1, 1);
	ck_assert_int_eq(nn_model_param_count(m1), nn_model_param_count(m2));
	w1 = nn_ws_create(m1, ROWS);
	s1 = nn_scratch_create(m1, ROWS);
	ck_assert_ptr_null(nn_forward(m, w1, X, 2, 0, NULL));
	ck_assert_ptr_null(nn_forward(m2, w1, X, 2, 0, NULL));
	ck_assert_int_eq(nn_predict(m2, s1, X, ROWS, out), NN_EINVAL);
	ck_assert_int_eq(nn_predict(m1, s1, X, ROWS, out), NN_OK);
	ck_assert_ptr_nonnull(nn_forward(m1, w1, X, 2, 0, NULL));
	ck_assert(isnan(nn_loss(m2, w1, NULL, TARGETS, 2, 0)));
	nn_scratch_free(s1);
	nn_ws_free(w1);
	nn_ws_free(w);
	nn_model_free(m);
	nn_model_free(m1);
	nn_model_free(m2);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("layers");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	fill_data();
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_dense_gradient_matches_finite_differences_for_each_activation);
	tcase_add_test(tc, test_dense_with_nondefault_alpha_and_without_bias);
	tcase_add_test(tc, test_activation_layer_gradient_matches_finite_differences_for_each_function);
	tcase_add_test(tc, test_batch_norm_gradient_in_training_and_inference_mode);
	tcase_add_test(tc, test_batch_norm_training_output_is_normalised_and_running_stats_move);
	tcase_add_test(tc, test_dropout_gradient_with_a_fixed_mask_in_both_modes);
	tcase_add_test(tc, test_residual_gradient_with_identity_shortcut);
	tcase_add_test(tc, test_residual_gradient_with_projection_and_as_first_layer);
	tcase_add_test(tc, test_nested_residuals_accumulate_every_path);
	tcase_add_test(tc, test_losses_values_and_gradients);
	tcase_add_test(tc, test_loss_is_stable_for_large_logits_and_rejects_bad_labels);
	tcase_add_test(tc, test_tensor_table_order_paths_and_blocks);
	tcase_add_test(tc, test_spec_check_names_the_bad_layer_and_counts_parameters);
	tcase_add_test(tc, test_residual_nesting_deeper_than_the_limit_is_refused);
	tcase_add_test(tc, test_bn_population_sets_mean_and_unbiased_variance_layer_by_layer);
	tcase_add_test(tc, test_predict_standardises_chunks_and_returns_probabilities);
	tcase_add_test(tc, test_forward_refuses_oversized_batches_and_foreign_workspaces);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
