/*
 * test_fuzz_regressions.c - one test per fault the fuzz targets (tests/fuzz/)
 * found, feeding the input that exposed it and asserting the documented
 * outcome, so none comes back:
 *  - early stopping with restore_best on a model with batch norm copied the
 *    running statistics into a buffer sized for none (engine/train.c);
 *  - a stored data-set file claiming 2^31 features and no rows allocated
 *    16 GiB of name pointers before noticing (api/dataset.c);
 *  - a stored data-set file whose image shape does not cover its features
 *    was accepted (api/dataset.c);
 *  - job-config floats that round onto an open bound (eps 1e-80 -> 0,
 *    beta1 0.9999999999 -> 1) were accepted (api/spec_json.c).
 * The memory faults show as failures under `make sanitize`; the tests also
 * assert the values a correct build gives.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <cjson/cJSON.h>

#include "nn.h"
#include "dataset_io.h"
#include "spec_json.h"

/* ---------------------------------------------------------------- restore_best + batch norm */

typedef struct epoch_states {
	nn_model *m;
	int n;
	float state[8][8];     /* the running statistics after each epoch */
} epoch_states;

static void record_state(void *ctx, const nn_epoch_record *r)
{
	epoch_states *es = ctx;
	int64_t ns = 0;
	const float *s = nn_model_state(es->m, &ns);
	ck_assert_int_eq(ns, 8);
	ck_assert_int_lt(r->epoch, 8);
	memcpy(es->state[r->epoch], s, sizeof(float) * 8);
	es->n = r->epoch + 1;
}

START_TEST(test_restore_best_with_batch_norm_publishes_the_best_epochs_statistics)
{
	nn_layer_spec l[2] = { nn_layer_default(NN_LAYER_DENSE),
	                       nn_layer_default(NN_LAYER_BATCH_NORM) };
	l[0].units = 4;
	l[0].act = NN_ACT_RELU;
	nn_model_spec s = { NN_TASK_CLASSIFICATION, 3, 2, NN_INIT_AUTO, 7, l, 2 };
	char err[256];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_ptr_nonnull(m);
	float x[12 * 3];
	int32_t y[12];
	for (int i = 0; i < 12 * 3; i++)
		x[i] = (float)((i * 7) % 11) - 5.0f;
	for (int i = 0; i < 12; i++)
		y[i] = (i * 5) % 3 == 0;
	nn_data d = { 12, 3, 2, x, y, NULL, 0, 0, 0, NULL };
	nn_train_config cfg = nn_train_config_default();
	cfg.epochs = 6;
	cfg.batch_size = 4;
	cfg.seed = 3;
	cfg.opt = nn_optimizer_default(NN_OPT_ADAM);
	cfg.opt.lr = 0.05f;
	cfg.val_fraction = 0.25f;
	cfg.bn_stats = NN_BN_RUNNING;
	cfg.early.enabled = 1;
	cfg.early.patience = 100;
	cfg.early.restore_best = 1;
	epoch_states es = { m, 0, { { 0 } } };
	nn_callbacks cb = { &es, NULL, record_state, NULL, NULL };
	nn_train_result res;

	ck_assert_int_eq(nn_train(m, &d, NULL, &cfg, &cb, NULL, 0, &res, err, sizeof err), NN_OK);
	ck_assert_int_eq(es.n, 6);
	ck_assert_int_ge(res.best_epoch, 0);
	ck_assert_int_lt(res.best_epoch, 6);
	int64_t ns = 0;
	const float *st = nn_model_state(m, &ns);
	ck_assert_int_eq(ns, 8);
	for (int i = 0; i < 8; i++)
		ck_assert_float_eq(st[i], es.state[res.best_epoch][i]);
	for (int i = 4; i < 8; i++)       /* running variances */
		ck_assert(isfinite(st[i]) && st[i] > 0);
	nn_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- stored data-set files */

/* A stored data-set file (api/dataset.c's layout): "NNDDATA1", eight u32
 * header words (task, features, outputs, classes, width, height, channels,
 * reserved), u64 rows, then body bytes, then the CRC-32 of all before it. */
static size_t ds_file(unsigned char *buf, const uint32_t h[8], uint64_t rows,
                      const unsigned char *body, size_t nbody)
{
	size_t n = 0;
	memcpy(buf, "NNDDATA1", 8);
	n = 8;
	for (int i = 0; i < 8; i++, n += 4)
		for (int b = 0; b < 4; b++)
			buf[n + (size_t)b] = (unsigned char)(h[i] >> (8 * b));
	for (int b = 0; b < 8; b++)
		buf[n++] = (unsigned char)(rows >> (8 * b));
	memcpy(buf + n, body, nbody);
	n += nbody;
	uLong c = crc32(0L, buf, (uInt)n);
	for (int b = 0; b < 4; b++)
		buf[n++] = (unsigned char)(c >> (8 * b));
	return n;
}

START_TEST(test_dataset_file_claiming_2g_features_and_no_rows_is_corrupt)
{
	unsigned char buf[256];
	uint32_t h[8] = { 1, 0x7fffffffu, 1, 0, 0, 0, 0, 0 };
	unsigned char body[16] = { 0 };
	size_t n = ds_file(buf, h, 0, body, sizeof body);
	api_dataset d;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_dataset_deserialize(buf, n, &d, &e), -1);
	ck_assert_int_eq(e.status, 500);
	ck_assert_str_eq(e.code, "corrupt_dataset");
	ck_assert_ptr_nonnull(strstr(e.detail, "sizes do not match the file"));
	ck_assert_ptr_null(d.x);
	ck_assert_ptr_null(d.feature_names);

	/* the same with 2^31 - 1 classes */
	uint32_t hc[8] = { 0, 1, 0x7fffffffu, 0x7fffffffu, 0, 0, 0, 0 };
	n = ds_file(buf, hc, 0, body, sizeof body);
	e = (api_err)API_ERR_INIT;
	ck_assert_int_eq(api_dataset_deserialize(buf, n, &d, &e), -1);
	ck_assert_str_eq(e.code, "corrupt_dataset");
}
END_TEST

START_TEST(test_dataset_file_with_image_shape_not_covering_features_is_corrupt)
{
	/* regression, 2 features, 1 output, one row: x = {1.5, 2}, y = {0.25},
	 * names "x0" and "x1"; then the same with an image shape */
	unsigned char body[] = { 0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0x40,
	                         0x00, 0x00, 0x80, 0x3e,
	                         0x02, 0x00, 0x00, 0x00, 'x', '0',
	                         0x02, 0x00, 0x00, 0x00, 'x', '1' };
	unsigned char buf[256];
	api_dataset d;
	api_err e = API_ERR_INIT;

	uint32_t plain[8] = { 1, 2, 1, 0, 0, 0, 0, 0 };
	size_t n = ds_file(buf, plain, 1, body, sizeof body);
	ck_assert_int_eq(api_dataset_deserialize(buf, n, &d, &e), 0);
	ck_assert_int_eq(d.features, 2);
	ck_assert_float_eq(d.x[0], 1.5f);
	ck_assert_float_eq(d.targets[0], 0.25f);
	api_dataset_free(&d);

	uint32_t fits[8] = { 1, 2, 1, 0, 2, 1, 1, 0 };
	n = ds_file(buf, fits, 1, body, sizeof body);
	ck_assert_int_eq(api_dataset_deserialize(buf, n, &d, &e), 0);
	ck_assert_int_eq(d.width, 2);
	api_dataset_free(&d);

	const uint32_t bad[][3] = { { 3, 1, 1 }, { 1, 1, 1 }, { 2, 0, 1 }, { 0, 0, 2 },
	                            { 0x7fffffffu, 0x7fffffffu, 2 }, { 65536, 65536, 1 } };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint32_t h[8] = { 1, 2, 1, 0, bad[i][0], bad[i][1], bad[i][2], 0 };
		n = ds_file(buf, h, 1, body, sizeof body);
		e = (api_err)API_ERR_INIT;
		ck_assert_int_eq(api_dataset_deserialize(buf, n, &d, &e), -1);
		ck_assert_str_eq(e.code, "corrupt_dataset");
		ck_assert_ptr_nonnull(strstr(e.detail, "bad image shape"));
	}
}
END_TEST

/* ---------------------------------------------------------------- job config floats */

static void expect_field(const char *body, const char *field)
{
	cJSON *j = cJSON_Parse(body);
	ck_assert_ptr_nonnull(j);
	api_limits lim = api_limits_default();
	nn_train_config cfg;
	api_job_refs refs = { .model = NULL };
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_train_config_from_json(j, &lim, &cfg, &refs, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.code, "validation_failed");
	ck_assert_int_eq(e.n_fields, 1);
	ck_assert_str_eq(e.fields[0].field, field);
	api_job_refs_free(&refs);
	cJSON_Delete(j);
}

START_TEST(test_job_config_floats_rounding_onto_an_open_bound_are_rejected)
{
#define JOB "{\"model\":\"mdl_0123456789abcdef\",\"dataset\":\"ds_0123456789abcdef\","
	expect_field(JOB "\"optimizer\":{\"type\":\"adam\",\"eps\":1e-80}}", "optimizer.eps");
	expect_field(JOB "\"optimizer\":{\"type\":\"adam\",\"beta1\":0.9999999999}}", "optimizer.beta1");
	expect_field(JOB "\"optimizer\":{\"type\":\"sgd\",\"lr\":1e-50}}", "optimizer.lr");

	/* the smallest values that stay positive as floats still pass */
	cJSON *j = cJSON_Parse(JOB "\"optimizer\":{\"type\":\"adam\",\"eps\":1e-30,\"beta1\":0.99999}}");
#undef JOB
	api_limits lim = api_limits_default();
	nn_train_config cfg;
	api_job_refs refs = { .model = NULL };
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_train_config_from_json(j, &lim, &cfg, &refs, &e), 0);
	ck_assert_float_eq(cfg.opt.eps, 1e-30f);
	ck_assert(cfg.opt.beta1 < 1.0f);
	api_job_refs_free(&refs);
	cJSON_Delete(j);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fuzz_regressions");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_restore_best_with_batch_norm_publishes_the_best_epochs_statistics);
	tcase_add_test(tc, test_dataset_file_claiming_2g_features_and_no_rows_is_corrupt);
	tcase_add_test(tc, test_dataset_file_with_image_shape_not_covering_features_is_corrupt);
	tcase_add_test(tc, test_job_config_floats_rounding_onto_an_open_bound_are_rejected);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
