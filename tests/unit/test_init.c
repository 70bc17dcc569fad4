/*
 * test_init.c - weight initialisation and the random generator: each init
 * scheme's mean, variance and bounds on a large tensor against its formula,
 * the `auto` rule, defaults, determinism, and the generator's basic
 * properties.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FAN_IN 400
#define FAN_OUT 500
#define N (FAN_IN * FAN_OUT)

typedef struct moments {
	double mean, var, maxabs, within1; /* within1: fraction with |w| <= sqrt(var) */
} moments;

static moments moments_of(const float *w, int64_t n)
{
	moments m = { 0, 0, 0, 0 };

	for (int64_t i = 0; i < n; i++)
		m.mean += w[i];
	m.mean /= n;
	for (int64_t i = 0; i < n; i++) {
		m.var += (w[i] - m.mean) * (w[i] - m.mean);
		m.maxabs = fmax(m.maxabs, fabs(w[i]));
	}
	m.var /= n;
	for (int64_t i = 0; i < n; i++)
		if (fabs(w[i]) <= sqrt(m.var))
			m.within1++;
	m.within1 /= n;
	return m;
}

/* normal: std sigma; the sample variance is within 3% (about 9 standard
 * errors at this size), the mean within 5 standard errors, 68.3% within one
 * sigma, nothing beyond 6 sigma. */
static void check_normal(nn_init init, float param, double sigma)
{
	float *w = malloc(sizeof(float) * N);
	nn_rng r;
	moments m;

	nn_rng_seed(&r, 1234);
	nn_init_fill(w, N, init, param, FAN_IN, FAN_OUT, &r);
	m = moments_of(w, N);
	ck_assert_msg(fabs(m.mean) <= 5 * sigma / sqrt(N), "init %d: mean %g", init, m.mean);
	ck_assert_msg(fabs(m.var / (sigma * sigma) - 1) <= 0.03, "init %d: var %g, want %g", init,
	              m.var, sigma * sigma);
	ck_assert_msg(fabs(m.within1 - 0.6827) <= 0.01, "init %d: %g within 1 sigma", init,
	              m.within1);
	ck_assert_double_le(m.maxabs, 6 * sigma);
	free(w);
}

/* uniform on [-limit, limit]: variance limit^2 / 3, every value inside, the
 * extremes reached. */
static void check_uniform(nn_init init, float param, double limit)
{
	float *w = malloc(sizeof(float) * N);
	nn_rng r;
	moments m;

	nn_rng_seed(&r, 4321);
	nn_init_fill(w, N, init, param, FAN_IN, FAN_OUT, &r);
	m = moments_of(w, N);
	ck_assert_msg(fabs(m.mean) <= 5 * limit / sqrt(3.0 * N), "init %d: mean %g", init, m.mean);
	ck_assert_msg(fabs(m.var / (limit * limit / 3) - 1) <= 0.03, "init %d: var %g, want %g",
	              init, m.var, limit * limit / 3);
	ck_assert_double_le(m.maxabs, limit * (1 + 1e-6));
	ck_assert_double_ge(m.maxabs, limit * 0.999);
	free(w);
}

START_TEST(test_zeros_are_zero)
{
	float *w = malloc(sizeof(float) * N);
	nn_rng r;

	nn_rng_seed(&r, 1);
	for (int i = 0; i < N; i++)
		w[i] = 1.0f;
	nn_init_fill(w, N, NN_INIT_ZEROS, 0, FAN_IN, FAN_OUT, &r);
	for (int i = 0; i < N; i++)
		ck_assert_float_eq(w[i], 0.0f);
	free(w);
}
END_TEST

START_TEST(test_normal_has_the_given_std_default_0_01)
{
	check_normal(NN_INIT_NORMAL, 0, 0.01);
	check_normal(NN_INIT_NORMAL, 0.3f, 0.3);
}
END_TEST

START_TEST(test_uniform_has_the_given_limit_default_0_05)
{
	check_uniform(NN_INIT_UNIFORM, 0, 0.05);
	check_uniform(NN_INIT_UNIFORM, 0.7f, 0.7);
}
END_TEST

START_TEST(test_lecun_he_xavier_normal_std)
{
	check_normal(NN_INIT_LECUN_NORMAL, 0, sqrt(1.0 / FAN_IN));
	check_normal(NN_INIT_HE_NORMAL, 0, sqrt(2.0 / FAN_IN));
	check_normal(NN_INIT_XAVIER_NORMAL, 0, sqrt(2.0 / (FAN_IN + FAN_OUT)));
}
END_TEST

START_TEST(test_lecun_he_xavier_uniform_bounds)
{
	check_uniform(NN_INIT_LECUN_UNIFORM, 0, sqrt(3.0 / FAN_IN));
	check_uniform(NN_INIT_HE_UNIFORM, 0, sqrt(6.0 / FAN_IN));
	check_uniform(NN_INIT_XAVIER_UNIFORM, 0, sqrt(6.0 / (FAN_IN + FAN_OUT)));
}
END_TEST

static nn_layer_spec dense(int units, nn_act a, nn_init init)
{
	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = units;
	l.act = a;
	l.init = init;
	return l;
}

/* The std of a model's weight tensor i and its max |w|. */
static moments tensor_moments(const nn_model *m, int i)
{
	nn_tensor t = nn_model_tensor(m, i);
	ck_assert_int_eq(t.kind, NN_T_WEIGHT);
	return moments_of(t.data, (int64_t)t.rows * t.cols);
}

START_TEST(test_auto_picks_he_xavier_or_lecun_by_activation)
{
	nn_layer_spec act = nn_layer_default(NN_LAYER_ACTIVATION);
	nn_layer_spec ls[7];
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, 300, 10, NN_INIT_AUTO, 9, ls, 7 };
	nn_model *m;
	moments mo;

	act.act = NN_ACT_SIGMOID;
	ls[0] = dense(300, NN_ACT_GELU, NN_INIT_AUTO);      /* He normal */
	ls[1] = dense(300, NN_ACT_TANH, NN_INIT_AUTO);      /* Xavier uniform */
	ls[2] = dense(300, NN_ACT_IDENTITY, NN_INIT_AUTO);  /* followed by sigmoid: Xavier */
	ls[3] = act;
	ls[4] = dense(300, NN_ACT_IDENTITY, NN_INIT_AUTO);  /* LeCun normal */
	ls[5] = dense(300, NN_ACT_SOFTPLUS, NN_INIT_AUTO);  /* LeCun normal */
	ls[6] = dense(300, NN_ACT_RELU, NN_INIT_XAVIER_NORMAL); /* explicit */
	m = nn_model_create(&spec, NULL, 0);
	ck_assert_ptr_nonnull(m);
	mo = tensor_moments(m, 0);
	ck_assert_double_le(fabs(sqrt(mo.var) / sqrt(2.0 / 300) - 1), 0.03);
	ck_assert_double_le(fabs(mo.within1 - 0.6827), 0.02);
	mo = tensor_moments(m, 2);
	ck_assert_double_le(mo.maxabs, sqrt(6.0 / 600) * (1 + 1e-6));
	ck_assert_double_le(fabs(mo.var / (6.0 / 600 / 3) - 1), 0.03);
	mo = tensor_moments(m, 4);
	ck_assert_double_le(mo.maxabs, sqrt(6.0 / 600) * (1 + 1e-6));
	ck_assert_double_le(fabs(mo.var / (6.0 / 600 / 3) - 1), 0.03);
	mo = tensor_moments(m, 6);
	ck_assert_double_le(fabs(mo.var / (1.0 / 300) - 1), 0.03);
	ck_assert_double_le(fabs(mo.within1 - 0.6827), 0.02);
	mo = tensor_moments(m, 8);
	ck_assert_double_le(fabs(mo.var / (1.0 / 300) - 1), 0.03);
	mo = tensor_moments(m, 10);
	ck_assert_double_le(fabs(mo.var / (2.0 / 600) - 1), 0.03);
	/* the output layer (identity) gets LeCun normal: fan_in 300 */
	mo = tensor_moments(m, 12);
	ck_assert_double_le(fabs(mo.var / (1.0 / 300) - 1), 0.15);
	/* every bias starts at zero */
	for (int i = 1; i < nn_model_tensor_count(m); i += 2) {
		nn_tensor t = nn_model_tensor(m, i);
		ck_assert_int_eq(t.kind, NN_T_BIAS);
		for (int j = 0; j < t.cols; j++)
			ck_assert_float_eq(t.data[j], 0.0f);
	}
	nn_model_free(m);
}
END_TEST

START_TEST(test_model_init_overrides_auto_layers_only)
{
	nn_layer_spec ls[2] = { dense(300, NN_ACT_RELU, NN_INIT_AUTO),
	                        dense(300, NN_ACT_RELU, NN_INIT_UNIFORM) };
	nn_model_spec spec = { NN_TASK_REGRESSION, 300, 10, NN_INIT_HE_UNIFORM, 9, ls, 2 };
	nn_model *m;
	moments mo;

	ls[1].init_param = 0.2f;
	m = nn_model_create(&spec, NULL, 0);
	ck_assert_ptr_nonnull(m);
	mo = tensor_moments(m, 0);
	ck_assert_double_le(mo.maxabs, sqrt(6.0 / 300) * (1 + 1e-6));
	ck_assert_double_le(fabs(mo.var / (6.0 / 300 / 3) - 1), 0.03);
	mo = tensor_moments(m, 2);
	ck_assert_double_le(mo.maxabs, 0.2 * (1 + 1e-6));
	ck_assert_double_ge(mo.maxabs, 0.199);
	mo = tensor_moments(m, 4); /* output layer: auto -> the model's he_uniform */
	ck_assert_double_le(mo.maxabs, sqrt(6.0 / 300) * (1 + 1e-6));
	nn_model_free(m);
}
END_TEST

START_TEST(test_same_seed_same_bits_and_init_resets_state)
{
	nn_layer_spec bn = nn_layer_default(NN_LAYER_BATCH_NORM);
	nn_layer_spec block[1] = { dense(20, NN_ACT_TANH, NN_INIT_AUTO) };
	nn_layer_spec ls[3] = { dense(20, NN_ACT_RELU, NN_INIT_AUTO), bn,
	                        nn_layer_default(NN_LAYER_RESIDUAL) };
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, 8, 3, NN_INIT_AUTO, 77, ls, 3 };
	nn_model *a, *b, *c;
	int64_t np, ns;
	float *pa, *sa;

	ls[2].children = block;
	ls[2].n_children = 1;
	ls[2].projection = 1;
	a = nn_model_create(&spec, NULL, 0);
	b = nn_model_create(&spec, NULL, 0);
	spec.seed = 78;
	c = nn_model_create(&spec, NULL, 0);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_nonnull(c);
	pa = nn_model_params(a, &np);
	sa = nn_model_state(a, &ns);
	ck_assert_int_eq(ns, 40);
	ck_assert_mem_eq(pa, nn_model_params(b, NULL), sizeof(float) * (size_t)np);
	ck_assert(memcmp(pa, nn_model_params(c, NULL), sizeof(float) * (size_t)np) != 0);
	/* gamma 1, beta 0, running mean 0, running var 1 */
	for (int j = 0; j < 20; j++) {
		ck_assert_float_eq(nn_model_tensor(a, 2).data[j], 1.0f);
		ck_assert_float_eq(nn_model_tensor(a, 3).data[j], 0.0f);
		ck_assert_float_eq(sa[j], 0.0f);
		ck_assert_float_eq(sa[20 + j], 1.0f);
	}
	/* re-initialising c with a's seed reproduces a, state included */
	for (int64_t i = 0; i < ns; i++)
		nn_model_state(c, NULL)[i] = 5.0f;
	nn_model_init(c, 77);
	ck_assert_mem_eq(pa, nn_model_params(c, NULL), sizeof(float) * (size_t)np);
	ck_assert_mem_eq(sa, nn_model_state(c, NULL), sizeof(float) * (size_t)ns);
	/* the projection is initialised (not zero) */
	{
		nn_tensor t = nn_model_tensor(a, 8);
		ck_assert_str_eq(t.path, "layers[2].projection");
		ck_assert_double_gt(moments_of(t.data, (int64_t)t.rows * t.cols).var, 0);
	}
	nn_model_free(a);
	nn_model_free(b);
	nn_model_free(c);
}
END_TEST

START_TEST(test_rng_is_xoshiro256ss_seeded_by_splitmix64)
{
	nn_rng r, r2;
	double s = 0, s2 = 0;
	int counts[7] = { 0 };
	const int n = 700000;

	nn_rng_seed(&r, 0);
	/* the first splitmix64 output for seed 0 */
	ck_assert_uint_eq(r.s[0], 0xE220A8397B1DCDAFull);
	r2 = r;
	ck_assert_uint_eq(nn_rng_next(&r), nn_rng_next(&r2)); /* plain data: copies continue alike */
	for (int i = 0; i < n; i++) {
		float u = nn_rng_uniform(&r);
		ck_assert(u >= 0.0f && u < 1.0f);
		counts[nn_rng_below(&r, 7)]++;
	}
	for (int k = 0; k < 7; k++)
		ck_assert_double_le(fabs(counts[k] - n / 7.0), 5 * sqrt(n / 7.0));
	for (int i = 0; i < n; i++) {
		double z = nn_rng_normal(&r);
		s += z;
		s2 += z * z;
	}
	ck_assert_double_le(fabs(s / n), 5 / sqrt(n));
	ck_assert_double_le(fabs(s2 / n - 1), 0.01);
	ck_assert_uint_eq(nn_rng_below(&r, 1), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("init");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_zeros_are_zero);
	tcase_add_test(tc, test_normal_has_the_given_std_default_0_01);
	tcase_add_test(tc, test_uniform_has_the_given_limit_default_0_05);
	tcase_add_test(tc, test_lecun_he_xavier_normal_std);
	tcase_add_test(tc, test_lecun_he_xavier_uniform_bounds);
	tcase_add_test(tc, test_auto_picks_he_xavier_or_lecun_by_activation);
	tcase_add_test(tc, test_model_init_overrides_auto_layers_only);
	tcase_add_test(tc, test_same_seed_same_bits_and_init_resets_state);
	tcase_add_test(tc, test_rng_is_xoshiro256ss_seeded_by_splitmix64);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
