/*
 * test_shards.c - data-parallel training in the engine (shard.c): for a model
 * with batch norm, dropout and a residual block, the weights after training
 * with `shards` 2 and 4 are the same bits whether the phases run on the
 * calling thread, backwards, or on 2 or 4 threads; on image bytes through the
 * sparse kernels too; with clipping, averaging and sparsity; with batches
 * smaller than the shard count (empty shards); and after a resume from a
 * mid-epoch checkpoint; and as R processes (each its own copy of the
 * trainer, sharing only what nn_tasks.out names, as MPI ranks do) every
 * replica ends with those bits; and on the daemon's replica threads
 * (server/replicas.c), also when their helpers come late to every phase
 * and replica 0 runs their tasks. Sharded runs compute the one-batch mathematics
 * (losses and weights close to shards 1; the PyTorch cases with shards 2
 * and 4 are in test_reference). Replicas that do not divide shards are
 * refused.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "nn.h"
#include "par_fixture.h"
#include "replicas.h"

/* ---------------------------------------------------------------- fixtures */

/* dense 32 relu, batch norm, [dropout 0.2], residual(dense 32 tanh, batch
 * norm), dense 16 relu, the output layer. */
static nn_model *bn_model(int in, int out, nn_task task, int dropout)
{
	nn_layer_spec L[6], R[2];
	int n = 0;
	L[n] = nn_layer_default(NN_LAYER_DENSE);
	L[n].units = 32;
	L[n++].act = NN_ACT_RELU;
	L[n++] = nn_layer_default(NN_LAYER_BATCH_NORM);
	if (dropout) {
		L[n] = nn_layer_default(NN_LAYER_DROPOUT);
		L[n++].rate = 0.2f;
	}
	R[0] = nn_layer_default(NN_LAYER_DENSE);
	R[0].units = 32;
	R[0].act = NN_ACT_TANH;
	R[1] = nn_layer_default(NN_LAYER_BATCH_NORM);
	L[n] = nn_layer_default(NN_LAYER_RESIDUAL);
	L[n].children = R;
	L[n++].n_children = 2;
	L[n] = nn_layer_default(NN_LAYER_DENSE);
	L[n].units = 16;
	L[n++].act = NN_ACT_RELU;
	nn_model_spec s = { task, in, out, NN_INIT_AUTO, 3, L, n };
	char err[200];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	return m;
}

/* rows x f values: half zeros, the rest integers 0..255 (image-like
 * bytes); labels from one pixel, two regression targets from two others. */
typedef struct data {
	float *x, *t;
	int32_t *y;
	nn_data d;
} data;

static data make_data(int rows, int f, int regression)
{
	data a;
	nn_rng r;
	nn_rng_seed(&r, 5);
	a.x = malloc(sizeof(float) * (size_t)rows * f);
	a.y = malloc(sizeof(int32_t) * (size_t)rows);
	a.t = malloc(sizeof(float) * (size_t)rows * 2);
	for (int64_t i = 0; i < (int64_t)rows * f; i++)
		a.x[i] = nn_rng_uniform(&r) < 0.5f ? 0.0f : (float)(int)(nn_rng_uniform(&r) * 255);
	for (int i = 0; i < rows; i++) {
		a.y[i] = (int)(a.x[i * f + f / 3] / 26);
		a.t[2 * i] = a.x[i * f + f / 2] / 100;
		a.t[2 * i + 1] = a.x[i * f + f - 1] / 50;
	}
	nn_data d = { rows, f, regression ? 2 : 10, a.x, regression ? NULL : a.y,
	              regression ? a.t : NULL, 0, 0, 0, NULL };
	a.d = d;
	return a;
}

static void free_data(data *a)
{
	free(a->x);
	free(a->y);
	free(a->t);
}

static nn_train_config config(int shards)
{
	nn_train_config c = nn_train_config_default();
	c.epochs = 2;
	c.batch_size = 50;
	c.seed = 9;
	c.opt = nn_optimizer_default(NN_OPT_ADAM);
	c.shards = shards;
	c.checkpoint_every_epochs = 0;
	return c;
}

/* THREADS: par_fixture.h's threads; DAEMON: the daemon's replica threads
 * (server/replicas.c), DAEMON_LATE the same with its helpers late to every
 * phase, so that replica 0 runs (steals) their tasks. */
enum { SERIAL, BACKWARDS, THREADS, DAEMON, DAEMON_LATE };

static long long stolen; /* tasks the DAEMON carriers ran away from home */

/* Trains a fresh model; returns it. */
static nn_model *train(const data *a, int regression, int dropout, nn_train_config c,
                       int carrier, int replicas, nn_train_result *res)
{
	nn_model *m = bn_model(a->d.features, regression ? 2 : 10,
	                       regression ? NN_TASK_REGRESSION : NN_TASK_CLASSIFICATION, dropout);
	nn_parallel par = carrier == THREADS ? par_threads(&replicas) : par_backwards();
	struct replicas *rp = NULL;
	c.par = carrier == SERIAL ? NULL : &par;
	c.replicas = carrier == THREADS ? replicas : 1;
	if (carrier == DAEMON || carrier == DAEMON_LATE) {
		rp = replicas_start(replicas);
		ck_assert_ptr_nonnull(rp);
		c.par = replicas_carrier(rp);
		c.replicas = replicas;
		replicas_tune.late_us = carrier == DAEMON_LATE ? 1000 : 0;
	}
	char err[300];
	nn_status st = nn_train(m, &a->d, NULL, &c, NULL, NULL, 0, res, err, sizeof err);
	stolen += replicas_get_stats(rp).stolen;
	replicas_stop(rp);
	replicas_tune.late_us = 0;
	ck_assert_msg(st == NN_OK, "nn_train: %s", err);
	return m;
}

/* R replicas as processes (par_fixture.h's procs): each trains a copy of
 * the fresh model; they are returned in ms[0, R), results in res. */
static void train_procs(const data *a, int regression, int dropout, nn_train_config c, int R,
                        nn_model **ms, nn_train_result *res)
{
	nn_model *m0 = bn_model(a->d.features, regression ? 2 : 10,
	                        regression ? NN_TASK_REGRESSION : NN_TASK_CLASSIFICATION, dropout);
	char err[400];
	nn_status st = par_procs_train(m0, &a->d, c, R, ms, res, err, sizeof err);
	ck_assert_msg(st == NN_OK, "%s", err);
	nn_model_free(m0);
}

static int same_bits(nn_model *a, nn_model *b)
{
	int64_t na, nb, sa, sb;
	float *pa = nn_model_params(a, &na), *pb = nn_model_params(b, &nb);
	float *ta = nn_model_state(a, &sa), *tb = nn_model_state(b, &sb);
	return na == nb && sa == sb && memcmp(pa, pb, sizeof(float) * (size_t)na) == 0 &&
	       memcmp(ta, tb, sizeof(float) * (size_t)sa) == 0;
}

static double max_diff(nn_model *a, nn_model *b)
{
	int64_t n;
	float *pa = nn_model_params(a, &n), *pb = nn_model_params(b, NULL);
	double d = 0;
	for (int64_t i = 0; i < n; i++)
		d = fmax(d, fabs((double)pa[i] - pb[i]));
	return d;
}

/* Every carrier and replica count for `shards` gives reference's bits. */
static void all_placements_agree(const data *a, int regression, int dropout,
                                 nn_train_config c)
{
	nn_train_result r0, r;
	nn_model *ref = train(a, regression, dropout, c, SERIAL, 1, &r0);
	nn_model *back = train(a, regression, dropout, c, BACKWARDS, 1, &r);
	ck_assert_msg(same_bits(ref, back), "shards %d: backwards order changed the weights",
	              c.shards);
	ck_assert_float_eq(r.last.train_loss, r0.last.train_loss);
	nn_model_free(back);
	for (int R = 1; R <= c.shards; R *= 2) {
		if (c.shards % R)
			continue;
		nn_model *m = train(a, regression, dropout, c, THREADS, R, &r);
		ck_assert_msg(same_bits(ref, m), "shards %d, %d threads: other weights", c.shards, R);
		ck_assert_float_eq(r.last.train_loss, r0.last.train_loss);
		nn_model_free(m);
		if (R == 1)
			continue;
		/* the daemon's replica threads; late helpers: replica 0 steals */
		for (int carrier = DAEMON; carrier <= DAEMON_LATE; carrier++) {
			stolen = 0;
			m = train(a, regression, dropout, c, carrier, R, &r);
			ck_assert_msg(same_bits(ref, m), "shards %d, %d daemon replicas%s: other weights",
			              c.shards, R, carrier == DAEMON_LATE ? " (late helpers)" : "");
			ck_assert_float_eq(r.last.train_loss, r0.last.train_loss);
			if (carrier == DAEMON_LATE)
				ck_assert_msg(stolen > 0, "shards %d, %d late replicas: nothing stolen",
				              c.shards, R);
			nn_model_free(m);
		}
		/* as processes: every replica ends with the reference's bits */
		nn_model *ms[4];
		nn_train_result rs[4];
		train_procs(a, regression, dropout, c, R, ms, rs);
		for (int q = 0; q < R; q++) {
			ck_assert_msg(same_bits(ref, ms[q]), "shards %d, %d processes: replica %d "
			              "has other weights", c.shards, R, q);
			ck_assert_float_eq(rs[q].last.train_loss, r0.last.train_loss);
			if (c.val_fraction > 0)
				ck_assert_float_eq(rs[q].last.val_loss, r0.last.val_loss);
			nn_model_free(ms[q]);
		}
	}
	nn_model_free(ref);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_weights_same_bits_for_every_replica_count_bn_dropout_residual)
{
	data a = make_data(300, 24, 0);
	for (int shards = 2; shards <= 4; shards += 2)
		all_placements_agree(&a, 0, 1, config(shards));
	free_data(&a);
}
END_TEST

START_TEST(test_regression_with_clipping_l2_and_polyak_same_bits)
{
	data a = make_data(300, 24, 1);
	nn_train_config c = config(4);
	c.opt = nn_optimizer_default(NN_OPT_MOMENTUM);
	c.clip_grad_norm = 0.5f;
	c.l2 = 0.01f;
	c.avg.type = NN_AVG_POLYAK;
	c.avg.start_epoch = 1;
	c.aug.noise_std = 0.1f;
	all_placements_agree(&a, 1, 0, c);
	free_data(&a);
}
END_TEST

START_TEST(test_sparsity_and_ema_same_bits)
{
	data a = make_data(300, 24, 0);
	nn_train_config c = config(2);
	c.sparsity.enabled = 1;
	c.sparsity.max_nonzero = 500;
	c.sparsity.start_epoch = 1;
	c.avg.type = NN_AVG_EMA;
	all_placements_agree(&a, 0, 1, c);
	free_data(&a);
}
END_TEST

/* Validation with the running batch-norm statistics, and those published:
 * they come from shard 0's batch mean and variance, which a process that
 * did not run shard 0 only has when they were sent. */
START_TEST(test_running_statistics_and_validation_same_bits)
{
	data a = make_data(300, 24, 0);
	nn_train_config c = config(4);
	c.val_fraction = 0.2f;
	c.bn_stats = NN_BN_RUNNING;
	all_placements_agree(&a, 0, 1, c);
	free_data(&a);
}
END_TEST

/* 2000 rows of 784 bytes: the byte copy and the sparse kernels (on CPUs with
 * AVX-512) per shard, Adam, 4 shards. */
START_TEST(test_image_bytes_through_sparse_kernels_same_bits)
{
	data a = make_data(2000, 784, 0);
	nn_train_config c = config(4);
	c.batch_size = 128;
	c.epochs = 1;
	all_placements_agree(&a, 0, 0, c);
	free_data(&a);
}
END_TEST

/* 61 rows, batch 5, 4 shards: the last batch has 1 row (3 empty shards). */
START_TEST(test_empty_shards_add_nothing)
{
	data a = make_data(61, 12, 0);
	nn_train_config c = config(4);
	c.batch_size = 5;
	all_placements_agree(&a, 0, 1, c);
	free_data(&a);
}
END_TEST

/* Without dropout (the only stream that differs), shards 1, 2 and 4 are the
 * same mathematics: losses and weights agree to float rounding. */
START_TEST(test_shards_compute_the_one_batch_mathematics)
{
	data a = make_data(300, 24, 0);
	nn_train_config c = config(1);
	c.opt = nn_optimizer_default(NN_OPT_SGD);
	c.opt.lr = 0.05f;
	nn_train_result r1, r;
	nn_model *one = train(&a, 0, 0, c, SERIAL, 1, &r1);
	for (int shards = 2; shards <= 4; shards += 2) {
		c.shards = shards;
		nn_model *m = train(&a, 0, 0, c, SERIAL, 1, &r);
		double d = max_diff(one, m);
		ck_assert_msg(d < 1e-4, "shards %d: weights %g away from shards 1", shards, d);
		ck_assert_msg(d > 0 || shards == 1, "shards %d: expected other rounding", shards);
		ck_assert_msg(fabs(r.last.train_loss - r1.last.train_loss) < 1e-5,
		              "shards %d: loss %.9g against %.9g", shards, r.last.train_loss,
		              r1.last.train_loss);
		nn_model_free(m);
	}
	nn_model_free(one);
	free_data(&a);
}
END_TEST

typedef struct saver {
	int calls, stop_at;
	void *buf;
	size_t len;
} saver;

static int stop(void *ctx)
{
	saver *s = ctx;
	return ++s->calls == s->stop_at ? NN_STOP_CHECKPOINT : NN_GO_ON;
}

static int save(void *ctx, const void *buf, size_t len, int epoch, int64_t step)
{
	saver *s = ctx;
	(void)epoch;
	(void)step;
	free(s->buf);
	s->buf = malloc(len);
	memcpy(s->buf, buf, len);
	s->len = len;
	return 0;
}

/* Stopped mid-epoch on 2 threads, resumed on 4: the uninterrupted bits. */
START_TEST(test_resume_mid_epoch_on_other_replicas_same_bits)
{
	data a = make_data(300, 24, 0);
	nn_train_config c = config(4);
	nn_model *straight = train(&a, 0, 1, c, SERIAL, 1, NULL);

	int two = 2, four = 4;
	nn_parallel p2 = par_threads(&two), p4 = par_threads(&four);
	saver s = { .stop_at = 9 };
	nn_callbacks cb = { .ctx = &s, .should_stop = stop, .on_checkpoint = save };
	char err[300];
	nn_model *m = bn_model(24, 10, NN_TASK_CLASSIFICATION, 1);
	c.replicas = 2;
	c.par = &p2;
	ck_assert_int_eq(nn_train(m, &a.d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err),
	                 NN_ESTOPPED);
	ck_assert_ptr_nonnull(s.buf);
	nn_model_free(m);

	nn_model *resumed = bn_model(24, 10, NN_TASK_CLASSIFICATION, 1);
	c.replicas = 4;
	c.par = &p4;
	ck_assert_int_eq(nn_train(resumed, &a.d, NULL, &c, NULL, s.buf, s.len, NULL, err,
	                          sizeof err), NN_OK);
	ck_assert(same_bits(straight, resumed));
	free(s.buf);
	nn_model_free(straight);
	nn_model_free(resumed);
	free_data(&a);
}
END_TEST

START_TEST(test_replicas_must_divide_shards)
{
	char err[200] = "";
	nn_train_config c = config(4);
	c.replicas = 3;
	ck_assert_int_eq(nn_train_config_check(&c, err, sizeof err), NN_EINVAL);
	ck_assert_msg(strstr(err, "replicas") != NULL, "%s", err);
	c.replicas = 1;
	c.shards = 0;
	ck_assert_int_eq(nn_train_config_check(&c, err, sizeof err), NN_EINVAL);
	ck_assert_msg(strstr(err, "shards") != NULL, "%s", err);
	c.shards = NN_MAX_SHARDS + 1;
	ck_assert_int_eq(nn_train_config_check(&c, err, sizeof err), NN_EINVAL);
	c.shards = 4;
	ck_assert_int_eq(nn_train_config_check(&c, err, sizeof err), NN_OK);

	/* a carrier of 3 replicas for 4 shards is refused by nn_train */
	data a = make_data(40, 6, 0);
	int three = 3;
	nn_parallel p3 = par_threads(&three);
	c.par = &p3;
	nn_model *m = bn_model(6, 10, NN_TASK_CLASSIFICATION, 0);
	ck_assert_int_eq(nn_train(m, &a.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
	                 NN_EINVAL);
	ck_assert_msg(strstr(err, "replicas") != NULL, "%s", err);
	nn_model_free(m);
	free_data(&a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shards");
	TCase *tc = tcase_create("shards");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_weights_same_bits_for_every_replica_count_bn_dropout_residual);
	tcase_add_test(tc, test_regression_with_clipping_l2_and_polyak_same_bits);
	tcase_add_test(tc, test_sparsity_and_ema_same_bits);
	tcase_add_test(tc, test_running_statistics_and_validation_same_bits);
	tcase_add_test(tc, test_image_bytes_through_sparse_kernels_same_bits);
	tcase_add_test(tc, test_empty_shards_add_nothing);
	tcase_add_test(tc, test_shards_compute_the_one_batch_mathematics);
	tcase_add_test(tc, test_resume_mid_epoch_on_other_replicas_same_bits);
	tcase_add_test(tc, test_replicas_must_divide_shards);
	suite_add_tcase(s, tc);
	return check_run(s);
}
