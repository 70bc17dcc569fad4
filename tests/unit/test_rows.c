/*
 * test_rows.c - the job fields a study's trials need from the engine:
 * `rows` (train on a nested sample of the training split, drawn with the
 * seed) and `stop_at_epoch` (a trial pauses at the end of its rung and
 * continues from its checkpoint bit for bit).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "trainer.h"
#include "check_main.h"

#define ROWS 200
#define FEAT 3

typedef struct prob {
	float x[ROWS * FEAT], y[ROWS];
	nn_data d;
} prob;

static void make(prob *p)
{
	nn_rng r;
	nn_rng_seed(&r, 5);
	for (int i = 0; i < ROWS; i++) {
		float s = 0;
		for (int j = 0; j < FEAT; j++) {
			p->x[i * FEAT + j] = nn_rng_normal(&r);
			s += (j + 1) * p->x[i * FEAT + j];
		}
		p->y[i] = s + 0.1f * nn_rng_normal(&r);
	}
	nn_data d = { ROWS, FEAT, 1, p->x, NULL, p->y, 0, 0, 0, NULL };
	p->d = d;
}

static nn_model *model(void)
{
	nn_layer_spec h = nn_layer_default(NN_LAYER_DENSE);
	h.units = 8;
	h.act = NN_ACT_TANH;
	nn_model_spec s = { NN_TASK_REGRESSION, FEAT, 1, NN_INIT_AUTO, 3, &h, 1 };
	nn_model *m = nn_model_create(&s, NULL, 0);
	ck_assert_ptr_nonnull(m);
	return m;
}

static nn_train_config cfg(void)
{
	nn_train_config c = nn_train_config_default();
	c.epochs = 4;
	c.batch_size = 16;
	c.seed = 11;
	c.opt = nn_optimizer_default(NN_OPT_ADAM);
	c.opt.lr = 0.01f;
	c.checkpoint_every_epochs = 1;
	return c;
}

static int same_params(nn_model *a, nn_model *b)
{
	int64_t na, nb;
	float *pa = nn_model_params(a, &na), *pb = nn_model_params(b, &nb);
	return na == nb && memcmp(pa, pb, sizeof(float) * (size_t)na) == 0;
}

START_TEST(test_row_samples_are_nested_and_ascending)
{
	int64_t a[ROWS], b[ROWS];
	for (int i = 0; i < ROWS; i++)
		a[i] = b[i] = i;
	nn_rows_subset(a, ROWS, 50, 7);
	nn_rows_subset(b, ROWS, 120, 7);
	for (int i = 1; i < 50; i++)
		ck_assert(a[i - 1] < a[i]);
	for (int i = 0; i < 50; i++) {
		int found = 0;
		for (int j = 0; j < 120; j++)
			found |= b[j] == a[i];
		ck_assert_msg(found, "row %lld of the 50 is not among the 120", (long long)a[i]);
	}
	int64_t c[ROWS];
	for (int i = 0; i < ROWS; i++)
		c[i] = i;
	nn_rows_subset(c, ROWS, 50, 8);
	ck_assert_msg(memcmp(a, c, sizeof(int64_t) * 50) != 0, "another seed, another sample");
}
END_TEST

/* Training on rows = k is training on exactly the chosen rows. */
START_TEST(test_rows_trains_on_the_chosen_rows_only)
{
	static prob p;
	make(&p);
	nn_train_config c = cfg();
	c.rows = 60;
	nn_model *a = model();
	char err[200] = "";
	ck_assert_msg(nn_train(a, &p.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err) == NN_OK,
	              "%s", err);

	int64_t idx[ROWS];
	for (int i = 0; i < ROWS; i++)
		idx[i] = i;
	nn_rows_subset(idx, ROWS, 60, c.seed);
	static float xs[60 * FEAT], ys[60];
	for (int i = 0; i < 60; i++) {
		memcpy(xs + i * FEAT, p.x + idx[i] * FEAT, sizeof(float) * FEAT);
		ys[i] = p.y[idx[i]];
	}
	nn_data sub = { 60, FEAT, 1, xs, NULL, ys, 0, 0, 0, NULL };
	nn_train_config c2 = cfg();
	nn_model *b = model();
	ck_assert(nn_train(b, &sub, NULL, &c2, NULL, NULL, 0, NULL, err, sizeof err) == NN_OK);
	ck_assert_msg(same_params(a, b), "rows = 60 differs from training on those 60 rows");
	nn_model_free(a);
	nn_model_free(b);
}
END_TEST

START_TEST(test_rows_beyond_the_split_is_refused)
{
	static prob p;
	make(&p);
	nn_train_config c = cfg();
	c.val_fraction = 0.25f;
	c.rows = 151;   /* the split holds 150 */
	nn_model *a = model();
	char err[200] = "";
	ck_assert(nn_train(a, &p.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err) == NN_EINVAL);
	ck_assert_msg(strncmp(err, "rows:", 5) == 0, "%s", err);
	c.rows = 150;
	ck_assert(nn_train(a, &p.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err) == NN_OK);
	nn_model_free(a);
}
END_TEST

typedef struct saved {
	void *buf;
	size_t len;
	int epochs_seen;
} saved;

static int keep(void *ctx, const void *buf, size_t len, int epoch, int64_t step)
{
	(void)epoch;
	(void)step;
	saved *s = ctx;
	free(s->buf);
	s->buf = malloc(len);
	memcpy(s->buf, buf, len);
	s->len = len;
	return 0;
}

static void count_epoch(void *ctx, const nn_epoch_record *r)
{
	(void)r;
	((saved *)ctx)->epochs_seen++;
}

START_TEST(test_stop_at_epoch_pauses_and_resumes_bit_for_bit)
{
	static prob p;
	make(&p);
	nn_train_config c = cfg();
	c.val_fraction = 0.2f;
	c.rows = 100;
	nn_model *whole = model();
	char err[200] = "";
	ck_assert(nn_train(whole, &p.d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err) == NN_OK);

	/* rung 1 ends after epoch 1: paused before epoch 2's first step */
	saved s = { NULL, 0, 0 };
	nn_callbacks cb = { &s, NULL, count_epoch, NULL, keep };
	nn_model *paused = model();
	c.stop_at_epoch = 2;
	ck_assert(nn_train(paused, &p.d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err) ==
	          NN_ESTOPPED);
	ck_assert_int_eq(s.epochs_seen, 2);
	ck_assert_ptr_nonnull(s.buf);
	/* continue to the end (a promoted trial): the uninterrupted weights */
	c.stop_at_epoch = 0;
	s.epochs_seen = 0;
	void *ck = s.buf;
	size_t ck_len = s.len;
	s.buf = NULL;
	ck_assert_msg(nn_train(paused, &p.d, NULL, &c, &cb, ck, ck_len, NULL, err, sizeof err) ==
	              NN_OK, "%s", err);
	ck_assert_int_eq(s.epochs_seen, 2);
	ck_assert(same_params(paused, whole));
	free(ck);
	free(s.buf);
	nn_model_free(whole);
	nn_model_free(paused);
}
END_TEST

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The validation split: the training rows then the validating ones, each
 * part ascending, together every row once; the same rows as a shuffle with
 * the job's seed (the engine's Fisher-Yates over nn_rng_below) and two
 * sorts, which is how splits were drawn before (a job stored then resumes
 * on the same rows). */
START_TEST(test_split_is_the_seeded_shuffle_in_ascending_parts)
{
	static const int64_t sizes[] = { 2, 7, 200, 5003 };
	for (int t = 0; t < 4; t++) {
		int64_t rows = sizes[t];
		nn_train_config c = nn_train_config_default();
		c.val_fraction = 0.25f;
		c.seed = 40 + (uint64_t)t;
		int64_t *idx = malloc(sizeof(int64_t) * (size_t)rows);
		int64_t *want = malloc(sizeof(int64_t) * (size_t)rows);
		char *seen = calloc((size_t)rows, 1);
		int64_t n_tr = 0;
		ck_assert_int_eq(nn_train_split(rows, 0, &c, idx, &n_tr), NN_OK);
		int64_t n_va = rows / 4 + (rows % 4 >= 2);   /* llround(rows / 4) */
		ck_assert_int_eq(n_tr, rows - (n_va < 1 ? 1 : n_va));
		for (int64_t i = 0; i < rows; i++) {
			ck_assert(idx[i] >= 0 && idx[i] < rows && !seen[idx[i]]);
			seen[idx[i]] = 1;
			if (i > 0 && i != n_tr)
				ck_assert_int_lt(idx[i - 1], idx[i]);
		}
		nn_rng r;
		nn_rng_seed(&r, c.seed);
		for (int64_t i = 0; i < rows; i++)
			want[i] = i;
		for (int64_t i = rows - 1; i > 0; i--) {
			int64_t j = (int64_t)nn_rng_below(&r, (uint64_t)i + 1), x = want[i];
			want[i] = want[j];
			want[j] = x;
		}
		qsort(want, (size_t)n_tr, sizeof(int64_t), cmp_i64);
		qsort(want + n_tr, (size_t)(rows - n_tr), sizeof(int64_t), cmp_i64);
		ck_assert_int_eq(memcmp(idx, want, sizeof(int64_t) * (size_t)rows), 0);
		free(idx);
		free(want);
		free(seen);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rows");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_row_samples_are_nested_and_ascending);
	tcase_add_test(tc, test_rows_trains_on_the_chosen_rows_only);
	tcase_add_test(tc, test_rows_beyond_the_split_is_refused);
	tcase_add_test(tc, test_stop_at_epoch_pauses_and_resumes_bit_for_bit);
	tcase_add_test(tc, test_split_is_the_seeded_shuffle_in_ascending_parts);
	suite_add_tcase(s, tc);
	return check_run(s);
}
