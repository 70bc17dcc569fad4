/*
 * test_augment.c - each image augmentation on a small known image with the
 * pixel values asserted (flips, crop with padding, translation, rotation by
 * 90 degrees, scaling, brightness, contrast), the random draws' ranges and
 * frequencies, and the statistics of Gaussian input noise during training.
 *
 * Test images hold v(x, y) = 10 y + x + 1: every pixel distinct and
 * non-zero, and bilinear sampling of a linear function is exact, so scaled
 * images have closed-form values.
 */
#include <check.h>
#include <math.h>
#include <string.h>

#include "trainer.h"

#define W 4
#define H 3

static float px(int x, int y) { return 10.0f * y + x + 1; }

static void image(float *img, int w, int h)
{
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			img[y * w + x] = px(x, y);
}

static nn_aug_draw none(void)
{
	nn_aug_draw d;
	memset(&d, 0, sizeof d);
	d.scale = 1;
	d.contrast = 1;
	return d;
}

#define AT(img, w, x, y) ((img)[(y) * (w) + (x)])

START_TEST(test_flip_horizontal_mirrors_each_row_exactly)
{
	float src[W * H], dst[W * H];
	image(src, W, H);
	nn_aug_draw d = none();
	d.flip_h = 1;
	nn_augment_apply(&d, src, dst, W, H, 1);
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			ck_assert_float_eq(AT(dst, W, x, y), px(W - 1 - x, y));
}
END_TEST

START_TEST(test_flip_vertical_mirrors_each_column_exactly)
{
	float src[W * H], dst[W * H];
	image(src, W, H);
	nn_aug_draw d = none();
	d.flip_v = 1;
	nn_augment_apply(&d, src, dst, W, H, 1);
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			ck_assert_float_eq(AT(dst, W, x, y), px(x, H - 1 - y));
}
END_TEST

START_TEST(test_flips_keep_channels_together)
{
	/* 2 x 1 image, 3 channels: (1,2,3) (4,5,6) -> (4,5,6) (1,2,3) */
	float src[6] = { 1, 2, 3, 4, 5, 6 }, dst[6];
	nn_aug_draw d = none();
	d.flip_h = 1;
	nn_augment_apply(&d, src, dst, 2, 1, 3);
	float want[6] = { 4, 5, 6, 1, 2, 3 };
	for (int i = 0; i < 6; i++)
		ck_assert_float_eq(dst[i], want[i]);
}
END_TEST

START_TEST(test_crop_with_padding_shifts_and_fills_zeros)
{
	float src[W * H], dst[W * H];
	image(src, W, H);
	nn_aug_draw d = none();
	/* pad 1, window at (0, 2) of the padded image: out(x, y) = src(x - 1, y + 1) */
	d.crop_pad = 1;
	d.crop_x = 0;
	d.crop_y = 2;
	nn_augment_apply(&d, src, dst, W, H, 1);
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++) {
			int sx = x - 1, sy = y + 1;
			float want = sx >= 0 && sy < H ? px(sx, sy) : 0.0f;
			ck_assert_float_eq(AT(dst, W, x, y), want);
		}
	/* the centred window (p, p) is the identity */
	d.crop_x = d.crop_y = 1;
	nn_augment_apply(&d, src, dst, W, H, 1);
	for (int i = 0; i < W * H; i++)
		ck_assert_float_eq(dst[i], src[i]);
}
END_TEST

START_TEST(test_translate_by_whole_pixels_moves_content)
{
	float src[W * H], dst[W * H];
	image(src, W, H);
	nn_aug_draw d = none();
	d.tx = 1; /* content moves right by one, down by one */
	d.ty = 1;
	nn_augment_apply(&d, src, dst, W, H, 1);
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++) {
			float want = x >= 1 && y >= 1 ? px(x - 1, y - 1) : 0.0f;
			ck_assert_float_eq(AT(dst, W, x, y), want);
		}
	d.tx = -2;
	d.ty = 0;
	nn_augment_apply(&d, src, dst, W, H, 1);
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++) {
			float want = x + 2 < W ? px(x + 2, y) : 0.0f;
			ck_assert_float_eq(AT(dst, W, x, y), want);
		}
}
END_TEST

START_TEST(test_translate_by_half_a_pixel_interpolates)
{
	float src[W * H], dst[W * H];
	image(src, W, H);
	nn_aug_draw d = none();
	d.tx = 0.5f;
	nn_augment_apply(&d, src, dst, W, H, 1);
	/* out(x, y) = src(x - 0.5, y): the mean of two neighbours inside */
	for (int y = 0; y < H; y++)
		for (int x = 1; x < W; x++)
			ck_assert_float_eq_tol(AT(dst, W, x, y), px(x, y) - 0.5f, 1e-5);
	/* x = 0 reads half of src(0) and half of the zero outside */
	ck_assert_float_eq_tol(AT(dst, W, 0, 1), px(0, 1) / 2, 1e-5);
}
END_TEST

START_TEST(test_rotate_90_degrees_turns_a_square_image_counter_clockwise)
{
	enum { S = 3 };
	float src[S * S], dst[S * S];
	image(src, S, S);
	nn_aug_draw d = none();
	d.angle = 90;
	nn_augment_apply(&d, src, dst, S, S, 1);
	/* counter-clockwise as displayed: the top-right corner goes top-left,
	 * out(x, y) = src(S - 1 - y, x) */
	for (int y = 0; y < S; y++)
		for (int x = 0; x < S; x++)
			ck_assert_float_eq_tol(AT(dst, S, x, y), px(S - 1 - y, x), 1e-5);
	ck_assert_float_eq_tol(AT(dst, S, 0, 0), px(2, 0), 1e-5);
	/* -90 undoes it */
	float back[S * S];
	d.angle = -90;
	nn_augment_apply(&d, dst, back, S, S, 1);
	for (int i = 0; i < S * S; i++)
		ck_assert_float_eq_tol(back[i], src[i], 1e-5);
}
END_TEST

START_TEST(test_scale_zooms_about_the_centre)
{
	enum { S = 4 };
	float src[S * S], dst[S * S];
	image(src, S, S);
	nn_aug_draw d = none();
	d.scale = 2;
	nn_augment_apply(&d, src, dst, S, S, 1);
	/* out(x, y) = src(c + (x - c) / 2, ...), c = 1.5, exact for a linear image */
	for (int y = 0; y < S; y++)
		for (int x = 0; x < S; x++) {
			double sx = 1.5 + (x - 1.5) / 2, sy = 1.5 + (y - 1.5) / 2;
			ck_assert_float_eq_tol(AT(dst, S, x, y), 10 * sy + sx + 1, 1e-5);
		}
	ck_assert_float_eq_tol(AT(dst, S, 0, 0), 9.25f, 1e-5);
	/* zooming out by 2 reads outside the image at the border: zeros */
	d.scale = 0.5f;
	nn_augment_apply(&d, src, dst, S, S, 1);
	ck_assert_float_eq(AT(dst, S, 0, 0), 0.0f);           /* src(-1.5, -1.5) */
	ck_assert_float_eq_tol(AT(dst, S, 1, 1), 6.5f, 1e-5); /* src(0.5, 0.5) */
}
END_TEST

START_TEST(test_brightness_adds_a_fraction_of_the_value_range)
{
	float src[W * H], dst[W * H];
	image(src, W, H);
	nn_aug_draw d = none();
	d.brightness = 0.1f; /* range 24 - 1 = 23 -> + 2.3 */
	nn_augment_apply(&d, src, dst, W, H, 1);
	for (int i = 0; i < W * H; i++)
		ck_assert_float_eq_tol(dst[i], src[i] + 2.3f, 1e-5);
}
END_TEST

START_TEST(test_contrast_scales_around_the_mean)
{
	float src[W * H], dst[W * H];
	image(src, W, H);
	double mean = 0;
	for (int i = 0; i < W * H; i++)
		mean += src[i];
	mean /= W * H;
	nn_aug_draw d = none();
	d.contrast = 1.5f;
	nn_augment_apply(&d, src, dst, W, H, 1);
	double m2 = 0;
	for (int i = 0; i < W * H; i++) {
		ck_assert_float_eq_tol(dst[i], mean + (src[i] - mean) * 1.5, 1e-4);
		m2 += dst[i];
	}
	ck_assert_float_eq_tol(m2 / (W * H), mean, 1e-4);
}
END_TEST

START_TEST(test_random_flip_happens_about_half_the_time_and_is_exact)
{
	float src[W * H], dst[W * H];
	image(src, W, H);
	nn_augment a;
	memset(&a, 0, sizeof a);
	a.flip_horizontal = 1;
	ck_assert_int_eq(nn_augment_has_image(&a), 1);
	nn_rng r;
	nn_rng_seed(&r, 5);
	int flipped = 0, n = 2000;
	for (int k = 0; k < n; k++) {
		nn_augment_image(&a, src, dst, W, H, 1, &r);
		int same = 1, mirror = 1;
		for (int y = 0; y < H; y++)
			for (int x = 0; x < W; x++) {
				same &= AT(dst, W, x, y) == px(x, y);
				mirror &= AT(dst, W, x, y) == px(W - 1 - x, y);
			}
		ck_assert(same || mirror);
		flipped += mirror;
	}
	ck_assert_int_gt(flipped, n * 45 / 100);
	ck_assert_int_lt(flipped, n * 55 / 100);
}
END_TEST

START_TEST(test_draws_stay_within_their_ranges)
{
	nn_augment a;
	memset(&a, 0, sizeof a);
	a.rotate_degrees = 15;
	a.translate_pixels = 2;
	a.scale_min = 0.9f;
	a.scale_max = 1.1f;
	a.crop_padding = 3;
	a.brightness = 0.2f;
	a.contrast = 0.3f;
	nn_rng r;
	nn_rng_seed(&r, 9);
	float amin = 1e9f, amax = -1e9f;
	for (int k = 0; k < 5000; k++) {
		nn_aug_draw d;
		nn_augment_draw(&a, &r, &d);
		ck_assert(d.angle >= -15 && d.angle <= 15);
		ck_assert(d.tx >= -2 && d.tx <= 2 && d.ty >= -2 && d.ty <= 2);
		ck_assert(d.scale >= 0.9f && d.scale <= 1.1f);
		ck_assert(d.crop_x >= 0 && d.crop_x <= 6 && d.crop_y >= 0 && d.crop_y <= 6);
		ck_assert(d.brightness >= -0.2f && d.brightness <= 0.2f);
		ck_assert(d.contrast >= 0.7f && d.contrast <= 1.3f);
		amin = fminf(amin, d.angle);
		amax = fmaxf(amax, d.angle);
	}
	/* and cover them */
	ck_assert_float_lt(amin, -14);
	ck_assert_float_gt(amax, 14);

	memset(&a, 0, sizeof a);
	a.noise_std = 0.1f;
	ck_assert_int_eq(nn_augment_has_image(&a), 0);
}
END_TEST

/* ---------------------------------------------------------------- noise */

static float first_loss;
static void on_step(void *ctx, const nn_step_record *r)
{
	(void)ctx;
	if (r->step == 1)
		first_loss = r->loss;
}

/* One full-batch step of a 1-in 1-out linear model (w = 1, b = 0) on x = 0
 * with noise: the MSE loss against target t is mean((t - noise)^2). */
static double noisy_loss(float target)
{
	enum { N = 8192 };
	static float x[N], y[N];
	for (int i = 0; i < N; i++) {
		x[i] = 0;
		y[i] = target;
	}
	nn_model_spec s = { NN_TASK_REGRESSION, 1, 1, NN_INIT_AUTO, 1, NULL, 0 };
	char err[128];
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	int64_t np;
	float *p = nn_model_params(m, &np);
	ck_assert_int_eq(np, 2);
	p[0] = 1; /* weight */
	p[1] = 0; /* bias */
	nn_data d = { N, 1, 1, x, NULL, y, 0, 0, 0, NULL };
	nn_train_config c = nn_train_config_default();
	c.epochs = 1;
	c.batch_size = N;
	c.standardize = 0;
	c.shuffle = 0;
	c.aug.noise_std = 0.5f;
	c.log_every_steps = 1;
	c.opt.lr = 1e-6f;
	nn_callbacks cb = { .on_step = on_step };
	ck_assert_int_eq(nn_train(m, &d, NULL, &c, &cb, NULL, 0, NULL, err, sizeof err), NN_OK);
	nn_model_free(m);
	return first_loss;
}

START_TEST(test_noise_has_zero_mean_and_the_asked_std)
{
	double e0 = noisy_loss(0); /* sigma^2 */
	double e1 = noisy_loss(1); /* 1 - 2 mu + sigma^2 (same seed, same noise) */
	double mu = (1 + e0 - e1) / 2;
	ck_assert_msg(fabs(e0 - 0.25) < 0.02, "noise variance %.4f, want 0.25", e0);
	ck_assert_msg(fabs(mu) < 0.02, "noise mean %.4f, want 0", mu);
}
END_TEST

START_TEST(test_image_augmentation_needs_an_image_data_set)
{
	float x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, y[2] = { 0, 1 };
	nn_model_spec s = { NN_TASK_REGRESSION, 4, 1, NN_INIT_AUTO, 1, NULL, 0 };
	char err[128] = "";
	nn_model *m = nn_model_create(&s, err, sizeof err);
	ck_assert_ptr_nonnull(m);
	nn_data d = { 2, 4, 1, x, NULL, y, 0, 0, 0, NULL };
	nn_train_config c = nn_train_config_default();
	c.epochs = 1;
	c.aug.flip_horizontal = 1;
	ck_assert_int_eq(nn_train(m, &d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err),
	                 NN_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "augment"));
	/* as a 2 x 2 image it trains */
	d.width = 2;
	d.height = 2;
	d.channels = 1;
	ck_assert_int_eq(nn_train(m, &d, NULL, &c, NULL, NULL, 0, NULL, err, sizeof err), NN_OK);
	nn_model_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("augment");
	TCase *tc = tcase_create("augment");
	tcase_add_test(tc, test_flip_horizontal_mirrors_each_row_exactly);
	tcase_add_test(tc, test_flip_vertical_mirrors_each_column_exactly);
	tcase_add_test(tc, test_flips_keep_channels_together);
	tcase_add_test(tc, test_crop_with_padding_shifts_and_fills_zeros);
	tcase_add_test(tc, test_translate_by_whole_pixels_moves_content);
	tcase_add_test(tc, test_translate_by_half_a_pixel_interpolates);
	tcase_add_test(tc, test_rotate_90_degrees_turns_a_square_image_counter_clockwise);
	tcase_add_test(tc, test_scale_zooms_about_the_centre);
	tcase_add_test(tc, test_brightness_adds_a_fraction_of_the_value_range);
	tcase_add_test(tc, test_contrast_scales_around_the_mean);
	tcase_add_test(tc, test_random_flip_happens_about_half_the_time_and_is_exact);
	tcase_add_test(tc, test_draws_stay_within_their_ranges);
	tcase_add_test(tc, test_noise_has_zero_mean_and_the_asked_std);
	tcase_add_test(tc, test_image_augmentation_needs_an_image_data_set);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
