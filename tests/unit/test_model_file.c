/*
 * test_model_file.c - model files: a round trip is bit-exact (spec,
 * parameters, running statistics, standardisation); every single corrupted
 * byte and every truncation length is rejected with NN_ECORRUPT; a file
 * claiming absurd sizes is rejected without allocating them.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static nn_model *sample_model(void)
{
	nn_layer_spec block[2], ls[4];
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, 6, 3, NN_INIT_XAVIER_NORMAL, 5, ls, 4 };
	nn_model *m;
	float mean[6] = { 1, 2, 3, 4, 5, 6 }, sd[6] = { 1, 0.5f, 2, 1, 1, 3 };
	int64_t ns;
	float *st;

	block[0] = nn_layer_default(NN_LAYER_BATCH_NORM);
	block[0].momentum = 0.3f;
	block[1] = nn_layer_default(NN_LAYER_DENSE);
	block[1].units = 4;
	block[1].act = NN_ACT_LEAKY_RELU;
	block[1].alpha = 0.2f;
	ls[0] = nn_layer_default(NN_LAYER_DENSE);
	ls[0].units = 5;
	ls[0].act = NN_ACT_GELU;
	ls[0].bias = 0;
	ls[1] = nn_layer_default(NN_LAYER_RESIDUAL);
	ls[1].children = block;
	ls[1].n_children = 2;
	ls[1].projection = 1;
	ls[2] = nn_layer_default(NN_LAYER_DROPOUT);
	ls[2].rate = 0.25f;
	ls[2].mode = NN_DROPOUT_SCALE_AT_TEST;
	ls[3] = nn_layer_default(NN_LAYER_ACTIVATION);
	ls[3].act = NN_ACT_SOFTPLUS;
	m = nn_model_create(&spec, NULL, 0);
	ck_assert_ptr_nonnull(m);
	st = nn_model_state(m, &ns);
	for (int64_t i = 0; i < ns; i++)
		st[i] = 0.1f * (float)i + 0.5f;
	ck_assert_int_eq(nn_model_set_standardize(m, mean, sd), NN_OK);
	return m;
}

static void assert_same_spec(const nn_layer_spec *a, const nn_layer_spec *b, int n)
{
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(a[i].type, b[i].type);
		ck_assert_int_eq(a[i].units, b[i].units);
		ck_assert_int_eq(a[i].act, b[i].act);
		ck_assert_float_eq(a[i].alpha, b[i].alpha);
		ck_assert_int_eq(a[i].init, b[i].init);
		ck_assert_int_eq(a[i].bias, b[i].bias);
		ck_assert_float_eq(a[i].momentum, b[i].momentum);
		ck_assert_float_eq(a[i].eps, b[i].eps);
		ck_assert_float_eq(a[i].rate, b[i].rate);
		ck_assert_int_eq(a[i].mode, b[i].mode);
		ck_assert_int_eq(a[i].projection, b[i].projection);
		ck_assert_int_eq(a[i].n_children, b[i].n_children);
		assert_same_spec(a[i].children, b[i].children, a[i].n_children);
	}
}

START_TEST(test_round_trip_is_bit_exact)
{
	nn_model *m = sample_model(), *l = NULL;
	void *buf = NULL, *buf2 = NULL;
	size_t len = 0, len2 = 0;
	char err[256];
	int64_t np, ns, np2, ns2;
	const nn_model_spec *a, *b;

	ck_assert_int_eq(nn_model_save(m, &buf, &len), NN_OK);
	ck_assert_mem_eq(buf, "NNDMODEL", 8);
	ck_assert_int_eq(((unsigned char *)buf)[8], 1); /* version 1, little-endian */
	ck_assert_int_eq(nn_model_load(buf, len, &l, err, sizeof(err)), NN_OK);
	ck_assert_ptr_nonnull(l);
	a = nn_model_spec_of(m);
	b = nn_model_spec_of(l);
	ck_assert_int_eq(a->task, b->task);
	ck_assert_int_eq(a->inputs, b->inputs);
	ck_assert_int_eq(a->outputs, b->outputs);
	ck_assert_int_eq(a->init, b->init);
	ck_assert_uint_eq(a->seed, b->seed);
	ck_assert_int_eq(a->n_layers, b->n_layers);
	assert_same_spec(a->layers, b->layers, a->n_layers);
	nn_model_params(m, &np);
	nn_model_params(l, &np2);
	nn_model_state(m, &ns);
	nn_model_state(l, &ns2);
	ck_assert_int_eq(np, np2);
	ck_assert_int_eq(ns, ns2);
	ck_assert_mem_eq(nn_model_params(m, NULL), nn_model_params(l, NULL), sizeof(float) * np);
	ck_assert_mem_eq(nn_model_state(m, NULL), nn_model_state(l, NULL), sizeof(float) * ns);
	ck_assert_mem_eq(nn_model_std_mean(m), nn_model_std_mean(l), sizeof(float) * 6);
	ck_assert_mem_eq(nn_model_std_std(m), nn_model_std_std(l), sizeof(float) * 6);
	/* saving the loaded model gives the same bytes */
	ck_assert_int_eq(nn_model_save(l, &buf2, &len2), NN_OK);
	ck_assert_uint_eq(len, len2);
	ck_assert_mem_eq(buf, buf2, len);
	free(buf);
	free(buf2);
	nn_model_free(m);
	nn_model_free(l);
}
END_TEST

START_TEST(test_model_without_standardisation_round_trips)
{
	nn_model_spec spec = { NN_TASK_REGRESSION, 3, 2, NN_INIT_AUTO, 1, NULL, 0 };
	nn_model *m = nn_model_create(&spec, NULL, 0), *l = NULL;
	void *buf;
	size_t len;

	ck_assert_int_eq(nn_model_save(m, &buf, &len), NN_OK);
	ck_assert_int_eq(nn_model_load(buf, len, &l, NULL, 0), NN_OK);
	ck_assert_ptr_null(nn_model_std_mean(l));
	ck_assert_mem_eq(nn_model_params(m, NULL), nn_model_params(l, NULL), sizeof(float) * 8);
	free(buf);
	nn_model_free(m);
	nn_model_free(l);
}
END_TEST

START_TEST(test_every_corrupted_byte_is_rejected)
{
	nn_model *m = sample_model(), *l;
	unsigned char *buf;
	size_t len;
	char err[256];

	ck_assert_int_eq(nn_model_save(m, (void **)&buf, &len), NN_OK);
	for (size_t i = 0; i < len; i++) {
		unsigned char orig = buf[i];
		for (int bit = 0; bit < 8; bit += 3) {
			buf[i] = orig ^ (unsigned char)(1u << bit);
			l = (nn_model *)1;
			ck_assert_msg(nn_model_load(buf, len, &l, err, sizeof(err)) == NN_ECORRUPT,
			              "byte %zu bit %d accepted", i, bit);
			ck_assert_ptr_null(l);
		}
		buf[i] = orig;
	}
	l = NULL;
	ck_assert_int_eq(nn_model_load(buf, len, &l, err, sizeof(err)), NN_OK);
	nn_model_free(l);
	free(buf);
	nn_model_free(m);
}
END_TEST

START_TEST(test_every_truncation_is_rejected)
{
	nn_model *m = sample_model(), *l;
	unsigned char *buf, *copy;
	size_t len;
	char err[256];

	ck_assert_int_eq(nn_model_save(m, (void **)&buf, &len), NN_OK);
	for (size_t n = 0; n < len; n++) {
		/* an exact-size heap copy, so reading past it would trip ASan */
		copy = malloc(n ? n : 1);
		memcpy(copy, buf, n);
		l = NULL;
		ck_assert_msg(nn_model_load(copy, n, &l, err, sizeof(err)) == NN_ECORRUPT,
		              "truncation to %zu bytes accepted", n);
		ck_assert_ptr_null(l);
		free(copy);
	}
	/* and a trailing byte */
	copy = malloc(len + 1);
	memcpy(copy, buf, len);
	copy[len] = 0;
	ck_assert_int_eq(nn_model_load(copy, len + 1, &l, err, sizeof(err)), NN_ECORRUPT);
	free(copy);
	free(buf);
	nn_model_free(m);
}
END_TEST

/* Re-seals a modified buffer with a valid CRC, so the structural checks (not
 * the checksum) must catch the problem. */
static void reseal(unsigned char *buf, size_t len)
{
	uint32_t c = nn_crc32(0, buf, len - 4);
	buf[len - 4] = c & 0xff;
	buf[len - 3] = (c >> 8) & 0xff;
	buf[len - 2] = (c >> 16) & 0xff;
	buf[len - 1] = c >> 24;
}

START_TEST(test_lying_counts_with_a_valid_checksum_are_rejected)
{
	nn_model *m = sample_model(), *l;
	unsigned char *buf;
	size_t len;
	char err[256];

	ck_assert_int_eq(nn_model_save(m, (void **)&buf, &len), NN_OK);
	/* every 4-byte field set to 0xffffffff in turn, checksum fixed up */
	for (size_t off = 12; off + 4 <= len - 4; off += 4) {
		unsigned char save[4];
		memcpy(save, buf + off, 4);
		memset(buf + off, 0xff, 4);
		reseal(buf, len);
		l = NULL;
		nn_status st = nn_model_load(buf, len, &l, err, sizeof(err));
		if (st == NN_OK) {
			/* only a float value may legally change (a parameter is NaN now) */
			ck_assert_ptr_nonnull(l);
			nn_model_free(l);
		} else {
			ck_assert_int_eq(st, NN_ECORRUPT);
			ck_assert_ptr_null(l);
		}
		memcpy(buf + off, save, 4);
	}
	reseal(buf, len);
	ck_assert_int_eq(nn_model_load(buf, len, &l, err, sizeof(err)), NN_OK);
	nn_model_free(l);
	free(buf);
	nn_model_free(m);
}
END_TEST

START_TEST(test_random_mutations_with_a_valid_checksum_never_crash)
{
	nn_model *m = sample_model(), *l;
	unsigned char *buf, *copy;
	size_t len;
	char err[256];
	nn_rng r;
	int ok = 0, bad = 0;

	ck_assert_int_eq(nn_model_save(m, (void **)&buf, &len), NN_OK);
	nn_rng_seed(&r, 2024);
	for (int it = 0; it < 3000; it++) {
		/* a random cut (or none), 1..8 random bytes, the checksum fixed up */
		size_t n = nn_rng_below(&r, 4) == 0 ? 16 + nn_rng_below(&r, len - 16) : len;
		int k = 1 + (int)nn_rng_below(&r, 8);
		nn_status st;
		copy = malloc(n);
		memcpy(copy, buf, n);
		for (int j = 0; j < k; j++) {
			size_t at = 8 + nn_rng_below(&r, n - 12);
			copy[at] = (unsigned char)nn_rng_next(&r);
		}
		reseal(copy, n);
		l = NULL;
		st = nn_model_load(copy, n, &l, err, sizeof(err));
		if (st == NN_OK) {
			/* whatever loaded is a usable model */
			nn_scratch *s = nn_scratch_create(l, 2);
			float x[12] = { 0 }, out[64];
			ck_assert_ptr_nonnull(s);
			if (nn_model_spec_of(l)->inputs <= 6 && nn_model_spec_of(l)->outputs * 2 <= 64)
				ck_assert_int_eq(nn_predict(l, s, x, 2, out), NN_OK);
			nn_scratch_free(s);
			nn_model_free(l);
			ok++;
		} else {
			ck_assert_int_eq(st, NN_ECORRUPT);
			ck_assert_ptr_null(l);
			bad++;
		}
		free(copy);
	}
	ck_assert_int_gt(bad, 1000);
	ck_assert_int_gt(ok, 100); /* mutated parameter values load fine */
	free(buf);
	nn_model_free(m);
}
END_TEST

START_TEST(test_crc32_matches_the_ieee_check_value)
{
	ck_assert_uint_eq(nn_crc32(0, "123456789", 9), 0xCBF43926u);
	/* incremental */
	ck_assert_uint_eq(nn_crc32(nn_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
	ck_assert_str_eq(nn_status_name(NN_ECORRUPT), "corrupt");
	ck_assert_str_eq(nn_status_name(NN_OK), "ok");

	/* eight bytes per round: against a bit-at-a-time CRC written here, for
	 * every length 0..40 at every start offset 0..7, and a long buffer
	 * split at odd places */
	unsigned char buf[4096 + 8];
	uint32_t st = 12345;
	for (size_t i = 0; i < sizeof buf; i++) {
		st = st * 1103515245u + 12345u;
		buf[i] = (unsigned char)(st >> 16);
	}
	for (int off = 0; off < 8; off++)
		for (size_t len = 0; len <= 40; len++) {
			uint32_t c = 0xffffffffu;
			for (size_t i = 0; i < len; i++) {
				c ^= buf[off + i];
				for (int k = 0; k < 8; k++)
					c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			}
			ck_assert_uint_eq(nn_crc32(0, buf + off, len), ~c);
		}
	uint32_t whole = nn_crc32(0, buf, 4096);
	uint32_t parts = nn_crc32(nn_crc32(nn_crc32(0, buf, 3), buf + 3, 1001), buf + 1004, 3092);
	ck_assert_uint_eq(whole, parts);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("model_file");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_round_trip_is_bit_exact);
	tcase_add_test(tc, test_model_without_standardisation_round_trips);
	tcase_add_test(tc, test_every_corrupted_byte_is_rejected);
	tcase_add_test(tc, test_every_truncation_is_rejected);
	tcase_add_test(tc, test_lying_counts_with_a_valid_checksum_are_rejected);
	tcase_add_test(tc, test_random_mutations_with_a_valid_checksum_never_crash);
	tcase_add_test(tc, test_crc32_matches_the_ieee_check_value);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
