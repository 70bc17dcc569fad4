/*
 * augment.c - image augmentation for training (API.md "augment"), applied
 * per sample on the raw pixels, before standardisation, freshly each epoch.
 *
 * Split in two so tests can check exact pixels: nn_augment_draw makes every
 * random choice from the job's generator (in a fixed, documented order), and
 * nn_augment_apply applies a given draw. The order of operations:
 *   1. flips (horizontal, vertical), exact;
 *   2. crop: zero-pad by p on every side, take the w x h window at an integer
 *      offset (crop_x, crop_y) in [0, 2p], exact;
 *   3. one affine resampling for rotation, scale and translation about the
 *      image centre ((w-1)/2, (h-1)/2), bilinear, zero outside the image;
 *   4. brightness: add a constant;
 *   5. contrast: scale around the image mean (over all pixels and channels).
 * Images are w x h x c, channel-last, rows top to bottom.
 */
#include <math.h>
#include <string.h>
#include "trainer.h"

int nn_augment_has_image(const nn_augment *a)
{
	return a->rotate_degrees > 0 || a->translate_pixels > 0 ||
	       ((a->scale_min > 0 || a->scale_max > 0) && !(a->scale_min == 1 && a->scale_max == 1)) ||
	       a->flip_horizontal || a->flip_vertical || a->crop_padding > 0 ||
	       a->brightness > 0 || a->contrast > 0;
}

/* Uniform in [-a, a]. */
static float sym(nn_rng *rng, float a)
{
	return (2.0f * nn_rng_uniform(rng) - 1.0f) * a;
}

/* The draws, in this order, each only when its option is on: flip_h, flip_v
 * (uniform < 1/2), crop x then y (nn_rng_below(2p + 1)), angle, scale, tx, ty,
 * brightness (uniform in [-b, b], multiplied later by the value range),
 * contrast. */
void nn_augment_draw(const nn_augment *a, nn_rng *rng, nn_aug_draw *d)
{
	memset(d, 0, sizeof *d);
	d->scale = 1.0f;
	d->contrast = 1.0f;
	if (a->flip_horizontal)
		d->flip_h = nn_rng_uniform(rng) < 0.5f;
	if (a->flip_vertical)
		d->flip_v = nn_rng_uniform(rng) < 0.5f;
	if (a->crop_padding > 0) {
		d->crop_pad = a->crop_padding;
		d->crop_x = (int)nn_rng_below(rng, (uint64_t)(2 * a->crop_padding + 1));
		d->crop_y = (int)nn_rng_below(rng, (uint64_t)(2 * a->crop_padding + 1));
	}
	if (a->rotate_degrees > 0)
		d->angle = sym(rng, a->rotate_degrees);
	if ((a->scale_min > 0 || a->scale_max > 0) && a->scale_max >= a->scale_min)
		d->scale = a->scale_min + nn_rng_uniform(rng) * (a->scale_max - a->scale_min);
	if (a->translate_pixels > 0) {
		d->tx = sym(rng, a->translate_pixels);
		d->ty = sym(rng, a->translate_pixels);
	}
	if (a->brightness > 0)
		d->brightness = sym(rng, a->brightness); /* times the range, in apply */
	if (a->contrast > 0)
		d->contrast = 1.0f + sym(rng, a->contrast);
}

/* The image after the exact stages (flips, crop) at integer (x, y), read
 * straight from src: the padded crop's (x + cx, y + cy) is the flipped image's
 * (x + cx - p, y + cy - p), zero outside. */
static float exact_px(const nn_aug_draw *d, const float *src, int w, int h, int c, int x, int y,
                      int ch)
{
	if (x < 0 || x >= w || y < 0 || y >= h)
		return 0.0f;
	int sx = x + d->crop_x - d->crop_pad, sy = y + d->crop_y - d->crop_pad;
	if (sx < 0 || sx >= w || sy < 0 || sy >= h)
		return 0.0f;
	if (d->flip_h)
		sx = w - 1 - sx;
	if (d->flip_v)
		sy = h - 1 - sy;
	return src[((size_t)sy * w + sx) * c + ch];
}

/* Bilinear sample of the exact-stage image at real (x, y); zero outside. */
static float sample(const nn_aug_draw *d, const float *src, int w, int h, int c, int ch,
                    double x, double y)
{
	double fx = floor(x), fy = floor(y);
	int x0 = (int)fx, y0 = (int)fy;
	double ax = x - fx, ay = y - fy;
	double v = 0;

	if (fx < -2 || fy < -2 || fx > w + 1 || fy > h + 1)
		return 0.0f;
	for (int j = 0; j < 2; j++) {
		double wy = j ? ay : 1.0 - ay;
		if (wy == 0)
			continue;
		for (int i = 0; i < 2; i++) {
			double wx = i ? ax : 1.0 - ax;
			if (wx == 0)
				continue;
			v += wx * wy * exact_px(d, src, w, h, c, x0 + i, y0 + j, ch);
		}
	}
	return (float)v;
}

/* Snaps a coordinate within 1e-9 of an integer onto it, so that rotations by
 * multiples of 90 degrees and integer shifts copy pixels exactly. */
static double snap(double v)
{
	double r = nearbyint(v);
	return fabs(v - r) < 1e-9 ? r : v;
}

void nn_augment_apply(const nn_aug_draw *d, const float *src, float *dst, int w, int h, int c)
{
	size_t n = (size_t)w * h * c;
	int x, y, ch;

	if (d->angle != 0 || d->scale != 1 || d->tx != 0 || d->ty != 0) {
		/* Output p maps back to s = R(-angle) (p - ctr - t) / scale + ctr.
		 * With y pointing down, a counter-clockwise turn as displayed is
		 * x' = cos a x + sin a y, y' = -sin a x + cos a y; its inverse is
		 * applied here. */
		double a = d->angle * M_PI / 180.0, co = cos(a), si = sin(a);
		double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0, s = d->scale > 0 ? d->scale : 1.0;
		for (y = 0; y < h; y++) {
			for (x = 0; x < w; x++) {
				double px = x - cx - d->tx, py = y - cy - d->ty;
				double sx = snap((co * px - si * py) / s + cx);
				double sy = snap((si * px + co * py) / s + cy);
				for (ch = 0; ch < c; ch++)
					dst[((size_t)y * w + x) * c + ch] = sample(d, src, w, h, c, ch, sx, sy);
			}
		}
	} else {
		for (y = 0; y < h; y++)
			for (x = 0; x < w; x++)
				for (ch = 0; ch < c; ch++)
					dst[((size_t)y * w + x) * c + ch] = exact_px(d, src, w, h, c, x, y, ch);
	}

	/* brightness, as a fraction of the image's value range */
	if (d->brightness != 0) {
		float lo = dst[0], hi = dst[0];
		for (size_t i = 1; i < n; i++) {
			if (dst[i] < lo)
				lo = dst[i];
			if (dst[i] > hi)
				hi = dst[i];
		}
		float add = d->brightness * (hi - lo);
		for (size_t i = 0; i < n; i++)
			dst[i] += add;
	}

	/* contrast around the mean */
	if (d->contrast != 1) {
		double sum = 0;
		for (size_t i = 0; i < n; i++)
			sum += dst[i];
		float mean = (float)(sum / (double)n);
		for (size_t i = 0; i < n; i++)
			dst[i] = mean + (dst[i] - mean) * d->contrast;
	}
}

void nn_augment_image(const nn_augment *a, const float *src, float *dst, int w, int h, int c,
                      nn_rng *rng)
{
	nn_aug_draw d;
	nn_augment_draw(a, rng, &d);
	nn_augment_apply(&d, src, dst, w, h, c);
}
