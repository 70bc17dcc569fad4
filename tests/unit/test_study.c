/*
 * test_study.c - the study document and its strategies' decisions
 * (api/study.c): every check up front with the field named (bad path, path
 * inside another, range in a grid, an objective the data cannot give), grid
 * order, random draws from the seed, halving rungs and promotions (ties by
 * trial number), learning-curve seeds and rows per repeat, and a curve's
 * summary with its slope.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "study.h"
#include "check_main.h"

static const api_study_data REG = { NN_TASK_REGRESSION, 1000, 3, 1, 1, -0.8 };

/* A study body: base parts plus the text of space, strategy, objective. */
static int parse(const char *space, const char *strategy, const char *extra, api_study *s,
                 api_err *e)
{
	char buf[4096];
	snprintf(buf, sizeof buf,
	         "{\"name\":\"t\",\"dataset\":\"ds_00000000000000aa\",\"validation\":{\"fraction\":0.2},"
	         "%s"
	         "\"model\":{\"task\":\"regression\",\"seed\":5,\"layers\":[{\"type\":\"dense\",\"units\":8,"
	         "\"activation\":\"relu\"}]},"
	         "\"job\":{\"epochs\":9,\"seed\":2,\"optimizer\":{\"type\":\"adam\",\"lr\":0.001}},"
	         "\"space\":%s,\"strategy\":%s%s}",
	         strstr(extra, "objective") ? "" : "\"objective\":{\"metric\":\"val_loss\"},",
	         space, strategy, extra);
	cJSON *j = cJSON_Parse(buf);
	ck_assert_msg(j != NULL, "bad test JSON: %s", buf);
	int rc = api_study_parse(j, NULL, &REG, 2, s, e);
	cJSON_Delete(j);
	return rc;
}

static int has_field(const api_err *e, const char *f)
{
	for (int i = 0; i < e->n_fields; i++)
		if (strcmp(e->fields[i].field, f) == 0)
			return 1;
	return 0;
}

static void expect_bad(const char *space, const char *strategy, const char *extra,
                       const char *field)
{
	api_study s;
	api_err e = API_ERR_INIT;
	ck_assert_msg(parse(space, strategy, extra, &s, &e) == -1, "accepted %s %s", space, strategy);
	ck_assert_int_eq(e.status, 422);
	ck_assert_msg(has_field(&e, field), "expected %s, got %s (%s)", field,
	              e.n_fields ? e.fields[0].field : "none", e.n_fields ? e.fields[0].message : "");
}

START_TEST(test_bad_documents_name_their_field)
{
	/* a path the base documents lack, or a value the model refuses */
	expect_bad("{\"model.layers[3].units\":[4,8]}", "{\"type\":\"grid\"}", "",
	           "space.model.layers[3].units");
	expect_bad("{\"model.layers[0].units\":[4,0]}", "{\"type\":\"grid\"}", "",
	           "space.model.layers[0].units");
	expect_bad("{\"job.optimizer.lr\":[0.1,-1]}", "{\"type\":\"grid\"}", "",
	           "space.job.optimizer.lr");
	expect_bad("{\"job.optimiser.lr\":[0.1]}", "{\"type\":\"grid\"}", "",
	           "space.job.optimiser.lr");
	expect_bad("{\"weights\":[1]}", "{\"type\":\"grid\"}", "", "space.weights");
	/* a path inside another key's */
	expect_bad("{\"model.layers\":[[]],\"model.layers[0].units\":[4]}", "{\"type\":\"grid\"}", "",
	           "space.model.layers[0].units");
	/* ranges need random or halving */
	expect_bad("{\"job.optimizer.lr\":{\"log_uniform\":[0.001,0.1]}}", "{\"type\":\"grid\"}", "",
	           "space.job.optimizer.lr");
	expect_bad("{\"job.optimizer.lr\":{\"log_uniform\":[0,0.1]}}",
	           "{\"type\":\"random\",\"trials\":3}", "", "space.job.optimizer.lr");
	/* objectives the data cannot give */
	expect_bad("{}", "{\"type\":\"grid\"}", ",\"objective\":{\"metric\":\"test_loss\"}",
	           "objective.metric");
	expect_bad("{}", "{\"type\":\"grid\"}", ",\"objective\":{\"metric\":\"val_accuracy\"}",
	           "objective.metric");
	expect_bad("{}", "{\"type\":\"halving\",\"trials\":9}",
	           ",\"test\":{\"dataset\":\"ds_00000000000000bb\"},\"objective\":{\"metric\":\"test_loss\"}",
	           "objective.metric");
	/* the study's own fields, and strategy fields */
	expect_bad("{}", "{\"type\":\"grid\",\"trials\":3}", "", "strategy.trials");
	expect_bad("{}", "{\"type\":\"halving\",\"trials\":9,\"min_epochs\":10}", "",
	           "strategy.min_epochs");
	expect_bad("{}", "{\"type\":\"learning_curve\",\"rows\":[100,801]}", "", "strategy.rows[1]");
	expect_bad("{\"job.rows\":[10]}", "{\"type\":\"learning_curve\",\"rows\":[100]}", "",
	           "space.job.rows");
}
END_TEST

START_TEST(test_job_keys_of_the_study_are_refused)
{
	api_study s;
	api_err e = API_ERR_INIT;
	cJSON *j = cJSON_Parse("{\"dataset\":\"ds_00000000000000aa\",\"objective\":{\"metric\":\"val_loss\"},"
	                       "\"validation\":{\"fraction\":0.1},\"model\":{\"layers\":[]},"
	                       "\"job\":{\"dataset\":\"ds_00000000000000aa\"},\"strategy\":{\"type\":\"grid\"}}");
	ck_assert_int_eq(api_study_parse(j, NULL, &REG, 1, &s, &e), -1);
	ck_assert(has_field(&e, "job.dataset"));
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_grid_is_row_major_with_the_last_key_fastest)
{
	api_study s;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(parse("{\"model.layers[0].units\":[4,8],\"job.batch_size\":[16,32,64]}",
	                       "{\"type\":\"grid\"}", "", &s, &e), 0);
	ck_assert_int_eq(s.trials, 6);
	int units[6] = { 4, 4, 4, 8, 8, 8 }, batch[6] = { 16, 32, 64, 16, 32, 64 };
	for (int t = 0; t < 6; t++) {
		cJSON *p = api_study_params(&s, t);
		ck_assert_int_eq(cJSON_GetObjectItem(p, "model.layers[0].units")->valueint, units[t]);
		ck_assert_int_eq(cJSON_GetObjectItem(p, "job.batch_size")->valueint, batch[t]);
		ck_assert_str_eq(p->child->string, "model.layers[0].units");
		cJSON_Delete(p);
	}
	cJSON *m, *j;
	ck_assert_int_eq(api_study_trial_docs(&s, &REG, 5, &m, &j, &e), 0);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "layers"), 0),
	                                     "units")->valueint, 8);
	ck_assert_int_eq(cJSON_GetObjectItem(j, "batch_size")->valueint, 64);
	ck_assert_int_eq(cJSON_GetObjectItem(m, "inputs")->valueint, 3);
	ck_assert(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "validation"), "fraction")->valuedouble == 0.2);
	cJSON_Delete(m);
	cJSON_Delete(j);
	api_study_free(&s);
}
END_TEST

START_TEST(test_random_draws_depend_on_the_seed_only)
{
	api_study a, b, c;
	api_err e = API_ERR_INIT;
	const char *sp = "{\"job.optimizer.lr\":{\"log_uniform\":[0.0001,0.1]},"
	                 "\"model.layers[0].units\":{\"int_uniform\":[2,9]},\"job.l2\":{\"uniform\":[0,1]}}";
	ck_assert_int_eq(parse(sp, "{\"type\":\"random\",\"trials\":20}", ",\"seed\":7", &a, &e), 0);
	ck_assert_int_eq(parse(sp, "{\"type\":\"random\",\"trials\":20}", ",\"seed\":7", &b, &e), 0);
	ck_assert_int_eq(parse(sp, "{\"type\":\"random\",\"trials\":20}", ",\"seed\":8", &c, &e), 0);
	int differ = 0;
	for (int t = 0; t < 20; t++) {
		cJSON *pa = api_study_params(&a, t), *pb = api_study_params(&b, t),
		      *pc = api_study_params(&c, t);
		char *ta = cJSON_PrintUnformatted(pa), *tb = cJSON_PrintUnformatted(pb),
		     *tc = cJSON_PrintUnformatted(pc);
		ck_assert_str_eq(ta, tb);
		differ += strcmp(ta, tc) != 0;
		double lr = cJSON_GetObjectItem(pa, "job.optimizer.lr")->valuedouble;
		double u = cJSON_GetObjectItem(pa, "model.layers[0].units")->valuedouble;
		double l2 = cJSON_GetObjectItem(pa, "job.l2")->valuedouble;
		ck_assert(lr >= 0.0001 && lr <= 0.1);
		ck_assert(u == floor(u) && u >= 2 && u <= 9);
		ck_assert(l2 >= 0 && l2 < 1);
		free(ta);
		free(tb);
		free(tc);
		cJSON_Delete(pa);
		cJSON_Delete(pb);
		cJSON_Delete(pc);
	}
	ck_assert_int_eq(differ, 20);
	api_study_free(&a);
	api_study_free(&b);
	api_study_free(&c);
}
END_TEST

START_TEST(test_halving_rungs_and_keep)
{
	int ends[16];
	ck_assert_int_eq(api_halving_rungs(1, 3, 9, ends, 16), 3);
	ck_assert_int_eq(ends[0], 1);
	ck_assert_int_eq(ends[1], 3);
	ck_assert_int_eq(ends[2], 9);
	ck_assert_int_eq(api_halving_rungs(1, 3, 10, ends, 16), 4);
	ck_assert_int_eq(ends[3], 10);
	ck_assert_int_eq(api_halving_rungs(2, 2, 8, ends, 16), 3);
	ck_assert_int_eq(ends[0], 2);
	ck_assert_int_eq(ends[2], 8);
	ck_assert_int_eq(api_halving_rungs(5, 3, 5, ends, 16), 1);
	ck_assert_int_eq(api_halving_keep(27, 3), 9);
	ck_assert_int_eq(api_halving_keep(9, 3), 3);
	ck_assert_int_eq(api_halving_keep(2, 3), 1);
	ck_assert_int_eq(api_halving_keep(10, 3), 3);
}
END_TEST

START_TEST(test_promotions_rank_by_value_then_trial_number)
{
	double v[6] = { 0.5, 0.2, NAN, 0.2, 0.9, 0.1 };
	int num[6] = { 4, 7, 0, 3, 1, 9 };
	int order[6];
	api_rank_trials(v, num, 6, 0, order);
	/* 0.1 (#9), 0.2 (#3 before #7), 0.5, 0.9, then no value */
	int want[6] = { 5, 3, 1, 0, 4, 2 };
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(order[i], want[i]);
	api_rank_trials(v, num, 6, 1, order);
	int want_max[6] = { 4, 0, 3, 1, 5, 2 };
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(order[i], want_max[i]);
}
END_TEST

START_TEST(test_learning_curve_seeds_and_rows_per_repeat)
{
	api_study s;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(parse("{\"model.layers[0].units\":[4,8]}",
	                       "{\"type\":\"learning_curve\",\"rows\":[100,200,400],\"repeats\":2}",
	                       "", &s, &e), 0);
	ck_assert_int_eq(s.trials, 12);
	/* trial 7: configuration 1, size 0, repeat 1 */
	int c, size, rep;
	api_study_curve_pos(&s, 7, &c, &size, &rep);
	ck_assert(c == 1 && size == 0 && rep == 1);
	cJSON *m, *j;
	ck_assert_int_eq(api_study_trial_docs(&s, &REG, 7, &m, &j, &e), 0);
	ck_assert_int_eq(cJSON_GetObjectItem(j, "seed")->valueint, 3);
	ck_assert_int_eq(cJSON_GetObjectItem(m, "seed")->valueint, 6);
	ck_assert_int_eq(cJSON_GetObjectItem(j, "rows")->valueint, 100);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "layers"), 0),
	                                     "units")->valueint, 8);
	cJSON_Delete(m);
	cJSON_Delete(j);
	ck_assert_int_eq(api_study_trial_docs(&s, &REG, 4, &m, &j, &e), 0);
	ck_assert_int_eq(cJSON_GetObjectItem(j, "seed")->valueint, 2);
	ck_assert_int_eq(cJSON_GetObjectItem(j, "rows")->valueint, 400);
	cJSON_Delete(m);
	cJSON_Delete(j);
	api_study_free(&s);
}
END_TEST

START_TEST(test_curve_summary_fits_every_value)
{
	api_study s;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(parse("{}", "{\"type\":\"learning_curve\",\"rows\":[100,400],\"repeats\":2}",
	                       "", &s, &e), 0);
	/* exact power law c n^-0.5 with a factor 2 spread between repeats: the
	 * slope is -0.5 exactly, its interval has width > 0 */
	double v[4] = { 0.1, 0.2, 0.05, 0.1 };
	cJSON *c = api_study_curves(&s, v, 4, 1, -0.8);
	cJSON *c0 = cJSON_GetArrayItem(c, 0);
	ck_assert(fabs(cJSON_GetObjectItem(c0, "slope")->valuedouble + 0.5) < 1e-12);
	cJSON *p0 = cJSON_GetArrayItem(cJSON_GetObjectItem(c0, "points"), 0);
	ck_assert(fabs(cJSON_GetObjectItem(p0, "mean")->valuedouble - 0.15) < 1e-12);
	ck_assert(fabs(cJSON_GetObjectItem(p0, "std")->valuedouble - sqrt(0.005)) < 1e-12);
	ck_assert(cJSON_GetObjectItem(c0, "theory_slope")->valuedouble == -0.8);
	cJSON *ci = cJSON_GetObjectItem(c0, "slope_ci95");
	ck_assert(cJSON_GetArrayItem(ci, 0)->valuedouble < -0.5);
	cJSON_Delete(c);
	/* a value <= 0: no slope, and the reason */
	double z[4] = { 0.1, 0.0, 0.05, 0.1 };
	c = api_study_curves(&s, z, 4, 0, 0);
	c0 = cJSON_GetArrayItem(c, 0);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(c0, "slope")));
	ck_assert(cJSON_IsString(cJSON_GetObjectItem(c0, "slope_error")));
	cJSON_Delete(c);
	api_study_free(&s);
}
END_TEST

START_TEST(test_stored_document_loads_back_with_defaults)
{
	api_study s, t;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(parse("{\"job.batch_size\":[16,32]}", "{\"type\":\"halving\",\"trials\":9}",
	                       "", &s, &e), 0);
	ck_assert_int_eq(s.parallelism, 2);
	ck_assert_int_eq(s.min_epochs, 1);
	ck_assert_int_eq(s.factor, 3);
	ck_assert_int_eq(s.maximize, 0);
	char *text = cJSON_PrintUnformatted(s.doc);
	ck_assert_int_eq(api_study_load(text, &t), 0);
	ck_assert_int_eq(t.trials, 9);
	ck_assert_int_eq(t.factor, 3);
	ck_assert_int_eq(t.epochs, 9);
	ck_assert_str_eq(t.metric, "val_loss");
	free(text);
	api_study_free(&s);
	api_study_free(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("study");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_bad_documents_name_their_field);
	tcase_add_test(tc, test_job_keys_of_the_study_are_refused);
	tcase_add_test(tc, test_grid_is_row_major_with_the_last_key_fastest);
	tcase_add_test(tc, test_random_draws_depend_on_the_seed_only);
	tcase_add_test(tc, test_halving_rungs_and_keep);
	tcase_add_test(tc, test_promotions_rank_by_value_then_trial_number);
	tcase_add_test(tc, test_learning_curve_seeds_and_rows_per_repeat);
	tcase_add_test(tc, test_curve_summary_fits_every_value);
	tcase_add_test(tc, test_stored_document_loads_back_with_defaults);
	suite_add_tcase(s, tc);
	return check_run(s);
}
