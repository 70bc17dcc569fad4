/*
 * test_schedule.c - each learning-rate schedule at several times against its
 * formula (API.md "Schedules"), warmup, per-step time, and that nn_train
 * hands the scheduled rate to the optimizer (step records carry it).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#define LR0 0.1f
#define NEAR(a, b) ck_assert_msg(fabs((double)(a) - (double)(b)) <= 1e-6 * (fabs(b) + 1e-3), \
                                 "%.9g != %.9g", (double)(a), (double)(b))

static nn_schedule sched(nn_sched_type t)
{
	nn_train_config c = nn_train_config_default();
	c.sched.type = t;
	return c.sched;
}

START_TEST(test_constant_is_lr0_at_every_epoch)
{
	nn_schedule s = sched(NN_SCHED_CONSTANT);
	for (int t = 0; t < 50; t += 7)
		NEAR(nn_schedule_lr(&s, LR0, t, 50), LR0);
}
END_TEST

START_TEST(test_step_multiplies_by_gamma_every_step_epochs)
{
	nn_schedule s = sched(NN_SCHED_STEP);
	s.step_epochs = 3;
	s.gamma = 0.5f;
	NEAR(nn_schedule_lr(&s, LR0, 0, 20), 0.1);
	NEAR(nn_schedule_lr(&s, LR0, 2, 20), 0.1);
	NEAR(nn_schedule_lr(&s, LR0, 3, 20), 0.05);
	NEAR(nn_schedule_lr(&s, LR0, 5, 20), 0.05);
	NEAR(nn_schedule_lr(&s, LR0, 6, 20), 0.025);
	NEAR(nn_schedule_lr(&s, LR0, 10, 20), 0.1 * pow(0.5, 3));
}
END_TEST

START_TEST(test_exponential_is_lr0_exp_minus_kt)
{
	nn_schedule s = sched(NN_SCHED_EXPONENTIAL);
	s.k = 0.2f;
	for (int t = 0; t < 10; t += 3)
		NEAR(nn_schedule_lr(&s, LR0, t, 10), 0.1 * exp(-0.2 * t));
}
END_TEST

START_TEST(test_polynomial_is_lr0_over_1_plus_kt_to_the_power)
{
	nn_schedule s = sched(NN_SCHED_POLYNOMIAL);
	s.k = 0.5f;
	s.power = 2;
	NEAR(nn_schedule_lr(&s, LR0, 0, 10), 0.1);
	NEAR(nn_schedule_lr(&s, LR0, 2, 10), 0.1 / 4.0);
	NEAR(nn_schedule_lr(&s, LR0, 6, 10), 0.1 / 16.0);
	s.power = 1;
	NEAR(nn_schedule_lr(&s, LR0, 3, 10), 0.1 / 2.5);
}
END_TEST

START_TEST(test_cyclical_is_a_triangle_from_min_to_max)
{
	nn_schedule s = sched(NN_SCHED_CYCLICAL);
	s.min_lr = 0.01f;
	s.max_lr = 0.05f;
	s.half_cycle_epochs = 4;
	NEAR(nn_schedule_lr(&s, LR0, 0, 20), 0.01);
	NEAR(nn_schedule_lr(&s, LR0, 1, 20), 0.02);
	NEAR(nn_schedule_lr(&s, LR0, 2, 20), 0.03);
	NEAR(nn_schedule_lr(&s, LR0, 4, 20), 0.05);
	NEAR(nn_schedule_lr(&s, LR0, 6, 20), 0.03);
	NEAR(nn_schedule_lr(&s, LR0, 8, 20), 0.01);
	NEAR(nn_schedule_lr(&s, LR0, 9, 20), 0.02);
	NEAR(nn_schedule_lr(&s, LR0, 12, 20), 0.05);
}
END_TEST

START_TEST(test_cosine_goes_from_lr0_to_min_lr_at_the_last_epoch)
{
	nn_schedule s = sched(NN_SCHED_COSINE);
	s.min_lr = 0.001f;
	/* 11 epochs: t = 0..10, half way at t = 5 */
	NEAR(nn_schedule_lr(&s, LR0, 0, 11), 0.1);
	NEAR(nn_schedule_lr(&s, LR0, 5, 11), 0.001 + (0.1 - 0.001) * 0.5);
	NEAR(nn_schedule_lr(&s, LR0, 10, 11), 0.001);
	double t = 3;
	NEAR(nn_schedule_lr(&s, LR0, t, 11), 0.001 + (0.1 - 0.001) * (1 + cos(M_PI * t / 10)) / 2);
	/* a one-epoch run stays at lr0 */
	NEAR(nn_schedule_lr(&s, LR0, 0, 1), 0.1);
}
END_TEST

START_TEST(test_warmup_ramps_linearly_then_runs_the_schedule_from_zero)
{
	nn_schedule s = sched(NN_SCHED_STEP);
	s.step_epochs = 2;
	s.gamma = 0.1f;
	s.warmup_epochs = 4;
	NEAR(nn_schedule_lr(&s, LR0, 0, 20), 0.1 * 1 / 4);
	NEAR(nn_schedule_lr(&s, LR0, 1, 20), 0.1 * 2 / 4);
	NEAR(nn_schedule_lr(&s, LR0, 3, 20), 0.1);
	/* t = 4 is the schedule's t = 0 */
	NEAR(nn_schedule_lr(&s, LR0, 4, 20), 0.1);
	NEAR(nn_schedule_lr(&s, LR0, 5, 20), 0.1);
	NEAR(nn_schedule_lr(&s, LR0, 6, 20), 0.01);

	nn_schedule c = sched(NN_SCHED_COSINE);
	c.min_lr = 0;
	c.warmup_epochs = 2;
	/* cosine over the 10 epochs after the warmup: ends at t = 11 */
	NEAR(nn_schedule_lr(&c, LR0, 2, 12), 0.1);
	NEAR(nn_schedule_lr(&c, LR0, 11, 12), 0.0);
}
END_TEST

/* ---------------------------------------------------------------- in training */

typedef struct { float lr[64]; int n; } lrs;

static void on_step(void *ctx, const nn_step_record *r)
{
	lrs *l = ctx;
	if (l->n < 64)
		l->lr[l->n++] = r->lr;
}

static nn_model *tiny(void)
{
	nn_layer_spec l = nn_layer_default(NN_LAYER_DENSE);
	l.units = 3;
	l.act = NN_ACT_TANH;
	nn_model_spec s = { NN_TASK_REGRESSION, 2, 1, NN_INIT_AUTO, 3, &l, 1 };
	char err[128];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	return m;
}

START_TEST(test_training_uses_the_epoch_rate_for_every_step_of_the_epoch)
{
	float x[8] = { 0, 1, 1, 0, 1, 1, 0, 0 }, y[4] = { 1, 1, 0, 0 };
	nn_data d = { 4, 2, 1, x, NULL, y, 0, 0, 0, NULL };
	nn_model *m = tiny();
	nn_train_config c = nn_train_config_default();
	c.epochs = 3;
	c.batch_size = 2;
	c.log_every_steps = 1;
	c.sched.type = NN_SCHED_STEP;
	c.sched.step_epochs = 1;
	c.sched.gamma = 0.5f;
	c.opt.lr = 0.2f;
	lrs l = { .n = 0 };
	nn_callbacks cb = { .ctx = &l, .on_step = on_step };
	char err[128];
	ck_assert_int_eq(nn_train(m, &d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err), NN_OK);
	ck_assert_int_eq(l.n, 6);
	NEAR(l.lr[0], 0.2);
	NEAR(l.lr[1], 0.2);
	NEAR(l.lr[2], 0.1);
	NEAR(l.lr[3], 0.1);
	NEAR(l.lr[4], 0.05);
	NEAR(l.lr[5], 0.05);

	/* per step: t counts steps, warmup in steps */
	c.sched.per_step = 1;
	c.sched.warmup_epochs = 2;
	l.n = 0;
	nn_model_free(m);
	m = tiny();
	ck_assert_int_eq(nn_train(m, &d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err), NN_OK);
	ck_assert_int_eq(l.n, 6);
	NEAR(l.lr[0], 0.1);
	NEAR(l.lr[1], 0.2);
	NEAR(l.lr[2], 0.2);
	NEAR(l.lr[3], 0.1);
	NEAR(l.lr[4], 0.05);
	nn_model_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("schedule");
	TCase *tc = tcase_create("schedule");
	tcase_add_test(tc, test_constant_is_lr0_at_every_epoch);
	tcase_add_test(tc, test_step_multiplies_by_gamma_every_step_epochs);
	tcase_add_test(tc, test_exponential_is_lr0_exp_minus_kt);
	tcase_add_test(tc, test_polynomial_is_lr0_over_1_plus_kt_to_the_power);
	tcase_add_test(tc, test_cyclical_is_a_triangle_from_min_to_max);
	tcase_add_test(tc, test_cosine_goes_from_lr0_to_min_lr_at_the_last_epoch);
	tcase_add_test(tc, test_warmup_ramps_linearly_then_runs_the_schedule_from_zero);
	tcase_add_test(tc, test_training_uses_the_epoch_rate_for_every_step_of_the_epoch);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
