/*
 * test_generate.c - generated data sets (engine/generate.c, api/dataset_gen.c)
 * and the learning-curve statistics (engine/stats.c): determinism from the
 * seeds, X independent of everything but sample_seed, the noise level,
 * noise_std 0 giving f*, the theory's rates, Student's t quantiles and the
 * log-log slope fit against known numbers, and the generator document's
 * validation (a field the function does not take is a 422 naming it).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "dataset_io.h"
#include "check_main.h"

static const nn_gen_function all_fns[] = {
	NN_GEN_LINEAR, NN_GEN_ADDITIVE, NN_GEN_TENSOR, NN_GEN_COMPOSITION, NN_GEN_TEACHER
};

typedef struct gen_out {
	float *x, *y, *f;
} gen_out;

static gen_out gen(const nn_gen_spec *s)
{
	gen_out o;
	o.x = malloc(sizeof(float) * (size_t)s->rows * (size_t)s->inputs);
	o.y = malloc(sizeof(float) * (size_t)s->rows);
	o.f = malloc(sizeof(float) * (size_t)s->rows);
	char err[200] = "";
	ck_assert_msg(nn_generate(s, o.x, o.y, o.f, err, sizeof err) == NN_OK, "%s", err);
	return o;
}

static void gen_free(gen_out *o)
{
	free(o->x);
	free(o->y);
	free(o->f);
}

START_TEST(test_same_seeds_give_the_same_bytes_for_every_function)
{
	for (int i = 0; i < 5; i++) {
		nn_gen_spec s = nn_gen_default(all_fns[i]);
		s.rows = 300;
		gen_out a = gen(&s), b = gen(&s);
		ck_assert(memcmp(a.x, b.x, sizeof(float) * 300 * 10) == 0);
		ck_assert(memcmp(a.y, b.y, sizeof(float) * 300) == 0);
		s.function_seed = 99;
		gen_out c = gen(&s);
		ck_assert_msg(memcmp(a.f, c.f, sizeof(float) * 300) != 0,
		              "function %d: another function_seed gives another f*", i);
		gen_free(&a);
		gen_free(&b);
		gen_free(&c);
	}
}
END_TEST

START_TEST(test_x_depends_only_on_sample_seed_inputs_and_rows)
{
	nn_gen_spec s = nn_gen_default(NN_GEN_ADDITIVE);
	s.rows = 200;
	gen_out a = gen(&s);
	nn_gen_spec t = nn_gen_default(NN_GEN_TEACHER);
	t.rows = 200;
	t.function_seed = 77;
	t.noise_std = 3;
	gen_out b = gen(&t);
	ck_assert(memcmp(a.x, b.x, sizeof(float) * 200 * 10) == 0);
	for (int i = 0; i < 2000; i++)
		ck_assert(a.x[i] >= 0 && a.x[i] < 1);
	s.sample_seed = 3;
	gen_out c = gen(&s);
	ck_assert(memcmp(a.x, c.x, sizeof(float) * 200 * 10) != 0);
	gen_free(&a);
	gen_free(&b);
	gen_free(&c);
}
END_TEST

START_TEST(test_noise_has_variance_noise_std_squared_and_only_scales)
{
	for (int i = 0; i < 5; i++) {
		nn_gen_spec s = nn_gen_default(all_fns[i]);
		s.rows = 20000;
		s.noise_std = 0.5;
		gen_out a = gen(&s);
		double m = 0, v = 0;
		for (int r = 0; r < 20000; r++)
			m += a.y[r] - a.f[r];
		m /= 20000;
		for (int r = 0; r < 20000; r++)
			v += (a.y[r] - a.f[r] - m) * (a.y[r] - a.f[r] - m);
		v /= 19999;
		/* the sample variance of 20000 normals is within 4% of 0.25 with
		 * probability far above 0.999 (its sd is 0.25 * sqrt(2/n) = 1%) */
		ck_assert_msg(fabs(v - 0.25) < 0.01, "function %d: noise variance %g", i, v);
		ck_assert_msg(fabs(m) < 0.02, "function %d: noise mean %g", i, m);
		/* doubling noise_std doubles the noise, the same draws */
		s.noise_std = 1.0;
		gen_out b = gen(&s);
		for (int r = 0; r < 20000; r += 97)
			ck_assert(fabs((b.y[r] - b.f[r]) - 2 * (a.y[r] - a.f[r])) < 1e-4);
		gen_free(&a);
		gen_free(&b);
	}
}
END_TEST

START_TEST(test_noise_std_zero_gives_f_star)
{
	for (int i = 0; i < 5; i++) {
		nn_gen_spec s = nn_gen_default(all_fns[i]);
		s.rows = 500;
		s.noise_std = 0;
		gen_out a = gen(&s);
		nn_gen_fn *f = nn_gen_fn_create(&s, NULL, 0);
		ck_assert_ptr_nonnull(f);
		double var = 0;
		for (int r = 0; r < 500; r++) {
			ck_assert(a.y[r] == a.f[r]);
			ck_assert(a.y[r] == (float)nn_gen_fn_eval(f, a.x + r * 10));
			var += a.y[r] * a.y[r];
		}
		/* f* is not trivially zero */
		ck_assert_msg(var / 500 > 1e-3, "function %d: mean square %g", i, var / 500);
		nn_gen_fn_free(f);
		gen_free(&a);
	}
}
END_TEST

START_TEST(test_linear_is_an_affine_map)
{
	nn_gen_spec s = nn_gen_default(NN_GEN_LINEAR);
	s.inputs = 3;
	nn_gen_fn *f = nn_gen_fn_create(&s, NULL, 0);
	float z[3] = { 0, 0, 0 }, e[3] = { 0.5f, 0, 0 }, e2[3] = { 1, 0, 0 };
	double b = nn_gen_fn_eval(f, z), h = nn_gen_fn_eval(f, e), o = nn_gen_fn_eval(f, e2);
	ck_assert(fabs((o - b) - 2 * (h - b)) < 1e-12);
	nn_gen_fn_free(f);
}
END_TEST

START_TEST(test_smoother_components_have_smaller_high_frequencies)
{
	/* an additive function of one input: the mean squared second difference
	 * on a fine grid falls as alpha grows (coefficients k^-(alpha+1/2)) */
	double rough[2];
	for (int a = 0; a < 2; a++) {
		nn_gen_spec s = nn_gen_default(NN_GEN_ADDITIVE);
		s.inputs = 1;
		s.smoothness = a ? 3.0 : 0.5;
		nn_gen_fn *f = nn_gen_fn_create(&s, NULL, 0);
		double sum = 0, h = 1.0 / 512;
		for (int i = 1; i < 511; i++) {
			float x0 = (float)((i - 1) * h), x1 = (float)(i * h), x2 = (float)((i + 1) * h);
			double d = nn_gen_fn_eval(f, &x0) - 2 * nn_gen_fn_eval(f, &x1) +
			           nn_gen_fn_eval(f, &x2);
			sum += d * d;
		}
		rough[a] = sum;
		nn_gen_fn_free(f);
	}
	ck_assert_msg(rough[1] < rough[0] / 10, "alpha 3: %g, alpha 0.5: %g", rough[1], rough[0]);
}
END_TEST

START_TEST(test_rate_exponents_are_the_seeds)
{
	int known;
	nn_gen_spec s = nn_gen_default(NN_GEN_LINEAR);
	ck_assert(nn_gen_rate_exponent(&s, &known) == -1 && known);
	s = nn_gen_default(NN_GEN_ADDITIVE);
	ck_assert(fabs(nn_gen_rate_exponent(&s, &known) + 0.8) < 1e-12 && known);
	s = nn_gen_default(NN_GEN_TENSOR);
	s.smoothness = 1;
	ck_assert(fabs(nn_gen_rate_exponent(&s, &known) + 2.0 / 3) < 1e-12);
	/* composition, alpha 0.5, q 2, t 2: b_i = 0.5 * 0.5^(2-i) = 0.125, 0.25,
	 * 0.5; rates -0.25/2.25, -0.5/2.5, -1/3; the max is -1/9 */
	s = nn_gen_default(NN_GEN_COMPOSITION);
	s.smoothness = 0.5;
	ck_assert(fabs(nn_gen_rate_exponent(&s, &known) + 1.0 / 9) < 1e-12 && known);
	s.smoothness = 2;  /* alpha >= 1: b_i = 2 for all, -4/6 */
	ck_assert(fabs(nn_gen_rate_exponent(&s, &known) + 4.0 / 6) < 1e-12);
	s = nn_gen_default(NN_GEN_TEACHER);
	nn_gen_rate_exponent(&s, &known);
	ck_assert(!known);
}
END_TEST

START_TEST(test_t_quantiles_match_the_tables)
{
	/* two-sided 95% critical values of Student's t */
	static const double df[] = { 1, 2, 3, 6, 10, 30 };
	static const double t[] = { 12.706204736, 4.302652730, 3.182446305, 2.446911851,
	                            2.228138852, 2.042272456 };
	for (int i = 0; i < 6; i++) {
		double q = nn_t_quantile(0.975, df[i]);
		ck_assert_msg(fabs(q - t[i]) < 1e-8, "df %g: %.10f != %.10f", df[i], q, t[i]);
		ck_assert(fabs(nn_t_quantile(0.025, df[i]) + t[i]) < 1e-8);
	}
	ck_assert(nn_t_quantile(0.5, 4) == 0);
	ck_assert(isnan(nn_t_quantile(1.5, 4)));
}
END_TEST

START_TEST(test_loglog_fit_matches_numpy_least_squares)
{
	/* numpy.linalg.lstsq on these logs: slope -1.0211943479171304,
	 * intercept 4.745943551157182, standard error 0.023326203366406607,
	 * so the interval is slope -+ 2.446911851 se (6 dof) */
	double rows[] = { 100, 100, 200, 200, 400, 400, 800, 800 };
	double vals[] = { 1.0, 1.1, 0.52, 0.5, 0.24, 0.27, 0.13, 0.12 };
	nn_slope_fit f;
	ck_assert(nn_loglog_fit(rows, vals, 8, &f, NULL, 0) == NN_OK);
	ck_assert(fabs(f.slope + 1.0211943479171304) < 1e-12);
	ck_assert(fabs(f.intercept - 4.745943551157182) < 1e-12);
	ck_assert(fabs(f.lo + 1.0782715113766084) < 1e-9);
	ck_assert(fabs(f.hi + 0.9641171844576524) < 1e-9);
	ck_assert_int_eq(f.points, 8);
}
END_TEST

START_TEST(test_loglog_fit_refuses_nonpositive_values)
{
	double rows[] = { 100, 200, 400 }, vals[] = { 1, 0, 0.5 };
	nn_slope_fit f;
	char err[100] = "";
	ck_assert(nn_loglog_fit(rows, vals, 3, &f, err, sizeof err) == NN_EINVAL);
	ck_assert(strstr(err, "> 0") != NULL);
	ck_assert(isnan(f.slope));
	double same[] = { 100, 100, 100 }, ok[] = { 1, 2, 3 };
	ck_assert(nn_loglog_fit(same, ok, 3, &f, NULL, 0) == NN_EINVAL);
}
END_TEST

START_TEST(test_loglog_fit_of_an_exact_power_law_has_zero_width)
{
	double rows[] = { 250, 500, 1000, 2000 }, vals[4];
	for (int i = 0; i < 4; i++)
		vals[i] = 3 * pow(rows[i], -0.8);
	nn_slope_fit f;
	ck_assert(nn_loglog_fit(rows, vals, 4, &f, NULL, 0) == NN_OK);
	ck_assert(fabs(f.slope + 0.8) < 1e-12);
	ck_assert(fabs(f.hi - f.lo) < 1e-9);
}
END_TEST

/* ---- the generator document */

static int parse(const char *text, api_dataset *d, api_err *e)
{
	cJSON *j = cJSON_Parse(text);
	ck_assert_ptr_nonnull(j);
	int rc = api_dataset_from_generator(j, d, e);
	cJSON_Delete(j);
	return rc;
}

START_TEST(test_generator_echoes_its_defaults_and_theory)
{
	api_dataset d;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(parse("{\"name\":\"a\",\"generator\":{\"function\":\"additive\","
	                       "\"rows\":50}}", &d, &e), 0);
	ck_assert_int_eq(d.rows, 50);
	ck_assert_int_eq(d.features, 10);
	ck_assert(d.task == NN_TASK_REGRESSION);
	cJSON *g = cJSON_GetObjectItem(d.extra, "generator");
	ck_assert_str_eq(cJSON_GetObjectItem(g, "function")->valuestring, "additive");
	ck_assert(cJSON_GetObjectItem(g, "smoothness")->valuedouble == 2.0);
	ck_assert(cJSON_GetObjectItem(g, "noise_std")->valuedouble == 0.1);
	ck_assert(cJSON_GetObjectItem(g, "sample_seed")->valuedouble == 2);
	ck_assert_ptr_null(cJSON_GetObjectItem(g, "width"));
	cJSON *th = cJSON_GetObjectItem(d.extra, "theory");
	ck_assert(fabs(cJSON_GetObjectItem(th, "rate_exponent")->valuedouble + 0.8) < 1e-12);
	api_dataset_free(&d);

	ck_assert_int_eq(parse("{\"generator\":{\"function\":\"teacher\",\"rows\":5,"
	                       "\"width\":8,\"nonzero\":20}}", &d, &e), 0);
	th = cJSON_GetObjectItem(d.extra, "theory");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(th, "rate_exponent")));
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_generator_fields_that_do_not_apply_are_named)
{
	api_dataset d;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(parse("{\"generator\":{\"function\":\"linear\",\"smoothness\":2,"
	                       "\"width\":3}}", &d, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_int_eq(e.n_fields, 2);
	ck_assert_str_eq(e.fields[0].field, "generator.smoothness");
	ck_assert_str_eq(e.fields[1].field, "generator.width");

	api_err e2 = API_ERR_INIT;
	ck_assert_int_eq(parse("{\"generator\":{\"function\":\"composition\",\"arity\":11}}",
	                       &d, &e2), -1);
	ck_assert_str_eq(e2.fields[0].field, "generator.arity");

	api_err e3 = API_ERR_INIT;
	ck_assert_int_eq(parse("{\"generator\":{\"function\":\"teacher\",\"nonzero\":100000}}",
	                       &d, &e3), -1);
	ck_assert_str_eq(e3.fields[0].field, "generator.nonzero");

	api_err e4 = API_ERR_INIT;
	ck_assert_int_eq(parse("{\"x\":[[1]],\"generator\":{\"function\":\"cubic\"}}", &d, &e4), -1);
	ck_assert_str_eq(e4.fields[0].field, "x");
	ck_assert_str_eq(e4.fields[1].field, "generator.function");

	api_err e5 = API_ERR_INIT;
	ck_assert_int_eq(parse("{\"generator\":{\"function\":\"additive\",\"noise_std\":-1,"
	                       "\"rows\":0}}", &d, &e5), -1);
	ck_assert_int_eq(e5.n_fields, 2);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("generate");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_same_seeds_give_the_same_bytes_for_every_function);
	tcase_add_test(tc, test_x_depends_only_on_sample_seed_inputs_and_rows);
	tcase_add_test(tc, test_noise_has_variance_noise_std_squared_and_only_scales);
	tcase_add_test(tc, test_noise_std_zero_gives_f_star);
	tcase_add_test(tc, test_linear_is_an_affine_map);
	tcase_add_test(tc, test_smoother_components_have_smaller_high_frequencies);
	tcase_add_test(tc, test_rate_exponents_are_the_seeds);
	tcase_add_test(tc, test_t_quantiles_match_the_tables);
	tcase_add_test(tc, test_loglog_fit_matches_numpy_least_squares);
	tcase_add_test(tc, test_loglog_fit_refuses_nonpositive_values);
	tcase_add_test(tc, test_loglog_fit_of_an_exact_power_law_has_zero_width);
	tcase_add_test(tc, test_generator_echoes_its_defaults_and_theory);
	tcase_add_test(tc, test_generator_fields_that_do_not_apply_are_named);
	suite_add_tcase(s, tc);
	return check_run(s);
}
