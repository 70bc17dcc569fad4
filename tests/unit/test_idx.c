/*
 * test_idx.c - the IDX reader (api/idx.c): raw and gzip parts in any order
 * and any split give the same data set; the real Fashion-MNIST test files
 * decode to their bytes; lying headers, truncation and corrupt gzip are
 * rejected with the part and byte named, before any large allocation.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "dataset_io.h"
#include "check_main.h"

typedef struct blob {
	unsigned char *p;
	size_t n;
} blob;

static void put32(unsigned char *b, uint32_t v)
{
	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
}

static blob images(uint32_t n, uint32_t rows, uint32_t cols, size_t data_bytes)
{
	blob b;
	b.n = 16 + data_bytes;
	b.p = malloc(b.n);
	put32(b.p, 0x803);
	put32(b.p + 4, n);
	put32(b.p + 8, rows);
	put32(b.p + 12, cols);
	for (size_t i = 0; i < data_bytes; i++)
		b.p[16 + i] = (unsigned char)(i * 37 + 11);
	return b;
}

static blob labels(uint32_t n, const unsigned char *v, size_t nv)
{
	blob b;
	b.n = 8 + nv;
	b.p = malloc(b.n);
	put32(b.p, 0x801);
	put32(b.p + 4, n);
	memcpy(b.p + 8, v, nv);
	return b;
}

static blob gzip_of(blob in, int members)
{
	blob out = { malloc(in.n * 2 + 200 * (size_t)members), 0 };
	size_t per = in.n / (size_t)members + 1, off = 0;
	for (int m = 0; m < members; m++) {
		size_t take = in.n - off < per ? in.n - off : per;
		z_stream z;
		memset(&z, 0, sizeof z);
		ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
		z.next_in = in.p + off;
		z.avail_in = (uInt)take;
		z.next_out = out.p + out.n;
		z.avail_out = (uInt)(in.n * 2 + 200);
		ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
		out.n += z.total_out;
		deflateEnd(&z);
		off += take;
	}
	return out;
}

enum { WHOLE, BYTES, RANDOM, INTERLEAVED };

/* Feeds parts a (images) and b (labels) in the given way; order 1 = labels first. */
static int run(blob a, blob b, int way, int order, int64_t max_bytes, api_dataset *d, api_err *e)
{
	api_idx *r = api_idx_new(max_bytes);
	*e = (api_err)API_ERR_INIT;
	blob part[2] = { a, b };
	size_t off[2] = { 0, 0 };
	int rc = 0;
	srand(7);
	int k = order;
	while (rc == 0 && (off[0] < part[0].n || off[1] < part[1].n)) {
		if (way != INTERLEAVED && off[k] == part[k].n)
			k = 1 - k;
		if (way == INTERLEAVED)
			k = off[1 - k] < part[1 - k].n && (rand() & 1) ? 1 - k : k;
		if (off[k] == part[k].n)
			k = 1 - k;
		size_t n = way == WHOLE ? part[k].n : way == BYTES ? 1 : (size_t)(rand() % 300);
		if (n > part[k].n - off[k])
			n = part[k].n - off[k];
		rc = api_idx_feed(r, k, (const char *)part[k].p + off[k], n, e);
		off[k] += n;
	}
	if (rc == 0)
		rc = api_idx_finish(r, d, e);
	api_idx_free(r);
	return rc;
}

START_TEST(test_small_raw_and_gzip_every_split)
{
	unsigned char lv[5] = { 7, 3, 7, 9, 3 };
	blob im = images(5, 2, 3, 30), lb = labels(5, lv, 5);
	blob gim = gzip_of(im, 1), glb = gzip_of(lb, 3);
	for (int gz = 0; gz < 4; gz++)
		for (int way = WHOLE; way <= INTERLEAVED; way++)
			for (int order = 0; order < 2; order++) {
				api_dataset d;
				api_err e;
				int rc = run(gz & 1 ? gim : im, gz & 2 ? glb : lb, way, order, 0, &d, &e);
				ck_assert_msg(rc == 0, "gz %d way %d: %s", gz, way, e.detail);
				ck_assert_int_eq(d.task, NN_TASK_CLASSIFICATION);
				ck_assert_int_eq(d.rows, 5);
				ck_assert_int_eq(d.features, 6);
				ck_assert_int_eq(d.width, 3);
				ck_assert_int_eq(d.height, 2);
				ck_assert_int_eq(d.channels, 1);
				ck_assert_int_eq(d.outputs, 3);
				ck_assert_int_eq(d.n_classes, 3);
				ck_assert_str_eq(d.classes[0], "3");
				ck_assert_str_eq(d.classes[1], "7");
				ck_assert_str_eq(d.classes[2], "9");
				int want[5] = { 1, 0, 1, 2, 0 };
				for (int i = 0; i < 5; i++)
					ck_assert_int_eq(d.labels[i], want[i]);
				for (int i = 0; i < 30; i++)
					ck_assert_float_eq(d.x[i], (float)(unsigned char)(i * 37 + 11));
				ck_assert_str_eq(d.feature_names[5], "x5");
				api_dataset_free(&d);
			}
	free(im.p);
	free(lb.p);
	free(gim.p);
	free(glb.p);
}
END_TEST

static blob read_file(const char *path)
{
	blob b = { NULL, 0 };
	FILE *f = fopen(path, "rb");
	if (!f)
		return b;
	fseek(f, 0, SEEK_END);
	b.n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	b.p = malloc(b.n);
	ck_assert_uint_eq(fread(b.p, 1, b.n, f), b.n);
	fclose(f);
	return b;
}

START_TEST(test_fashion_mnist_test_set)
{
	const char *dir = "/usr/share/datasets/fashion-mnist/";
	char pi[256], pl[256];
	snprintf(pi, sizeof pi, "%st10k-images-idx3-ubyte.gz", dir);
	snprintf(pl, sizeof pl, "%st10k-labels-idx1-ubyte.gz", dir);
	blob im = read_file(pi), lb = read_file(pl);
	if (!im.p || !lb.p) {
		free(im.p);
		free(lb.p);
		return; /* the data package is not installed here */
	}
	api_dataset d;
	api_err e;
	ck_assert_int_eq(run(im, lb, RANDOM, 1, 0, &d, &e), 0);
	ck_assert_int_eq(d.rows, 10000);
	ck_assert_int_eq(d.features, 784);
	ck_assert_int_eq(d.width, 28);
	ck_assert_int_eq(d.height, 28);
	ck_assert_int_eq(d.n_classes, 10);
	for (int c = 0; c < 10; c++) {
		char b[16];
		snprintf(b, sizeof b, "%d", c);
		ck_assert_str_eq(d.classes[c], b);
	}
	/* compare with zlib's own decoding of the files */
	gzFile g = gzopen(pi, "rb");
	unsigned char *raw = malloc(16 + 7840000);
	ck_assert_int_eq(gzread(g, raw, 16 + 7840000), 16 + 7840000);
	gzclose(g);
	for (size_t i = 0; i < 7840000; i++)
		if (d.x[i] != (float)raw[16 + i])
			ck_abort_msg("pixel %zu differs", i);
	g = gzopen(pl, "rb");
	ck_assert_int_eq(gzread(g, raw, 10008), 10008);
	gzclose(g);
	for (int i = 0; i < 10000; i++)
		ck_assert_int_eq(d.labels[i], raw[8 + i]);
	free(raw);
	api_dataset_free(&d);
	free(im.p);
	free(lb.p);
}
END_TEST

static void expect(blob im, blob lb, int64_t max_bytes, int status, const char *detail)
{
	for (int way = WHOLE; way <= RANDOM; way++) {
		api_dataset d;
		api_err e;
		ck_assert_int_eq(run(im, lb, way, 0, max_bytes, &d, &e), -1);
		ck_assert_int_eq(e.status, status);
		ck_assert_str_eq(e.code, status == 413 ? "payload_too_large" : "malformed_idx");
		ck_assert_str_eq(e.detail, detail);
		ck_assert_ptr_null(d.x);
	}
	free(im.p);
	free(lb.p);
}

START_TEST(test_lying_and_broken_headers)
{
	unsigned char lv[4] = { 1, 2, 3, 4 };
	/* counts larger than the data */
	expect(images(4000000, 28, 28, 784 * 2), labels(4000000, lv, 4), 0, 400,
	       "images part, byte 1584: truncated: the header declares 4000000 items (3136000000 bytes of data), the part has 1568");
	/* the declared size over the limit: refused at the header */
	expect(images(60000, 28, 28, 10), labels(60000, lv, 4), 100000000, 413,
	       "images part, byte 4: the header declares 60000 items, 188160000 bytes in memory, over the limit of 100000000");
	/* dimensions whose product is absurd */
	expect(images(4294967295u, 4294967295u, 4294967295u, 0), labels(2, lv, 2), 0, 413,
	       "images part, byte 8: images of 4294967295 x 4294967295 pixels are too large (at most 16777216 pixels)");
	expect(images(2, 0, 5, 0), labels(2, lv, 2), 0, 400, "images part, byte 8: an image of 0 x 5 pixels");
	expect(images(0, 2, 2, 0), labels(0, lv, 0), 0, 400, "images part, byte 4: the file declares no items");
	/* counts that disagree */
	expect(images(3, 1, 1, 3), labels(4, lv, 4), 0, 400, "the images part holds 3 items but the labels part 4");
	/* data past the declared items */
	expect(images(2, 1, 2, 5), labels(2, lv, 2), 0, 400,
	       "images part, byte 20: data past the 2 items the header declares");
	/* wrong magic, and swapped parts */
	blob bad = images(2, 1, 1, 2);
	bad.p[2] = 0x09;
	expect(bad, labels(2, lv, 2), 0, 400,
	       "images part, byte 0: magic 0x00000903, expected 0x00000803 (IDX3 of unsigned bytes)");
	expect(labels(2, lv, 2), images(2, 1, 1, 2), 0, 400,
	       "images part, byte 0: magic 0x00000801, expected 0x00000803 (IDX3 of unsigned bytes); are the parts swapped?");
	/* a truncated header */
	blob shorth = images(2, 1, 1, 0);
	shorth.n = 10;
	expect(shorth, labels(2, lv, 2), 0, 400, "images part, byte 10: the header is truncated");
}
END_TEST

START_TEST(test_broken_gzip_and_missing_parts)
{
	unsigned char lv[3] = { 0, 1, 0 };
	blob im = images(3, 4, 4, 48), g = gzip_of(im, 1);
	/* truncated gzip stream */
	blob t = { malloc(g.n), g.n - 9 };
	memcpy(t.p, g.p, g.n);
	expect(t, labels(3, lv, 3), 0, 400, "images part: the gzip stream is truncated");
	/* corrupt deflate data */
	blob c = { malloc(g.n), g.n };
	memcpy(c.p, g.p, g.n);
	c.p[3] = 0xff; /* reserved flag bits in the gzip header */
	api_dataset d;
	api_err e;
	blob l3 = labels(3, lv, 3);
	ck_assert_int_eq(run(c, l3, WHOLE, 0, 0, &d, &e), -1);
	free(l3.p);
	ck_assert_int_eq(e.status, 400);
	ck_assert(strstr(e.detail, "images part: invalid gzip data") == e.detail);
	free(c.p);
	/* a lone 0x1f byte */
	blob one = { malloc(1), 1 };
	one.p[0] = 0x1f;
	expect(one, labels(3, lv, 3), 0, 400, "images part, byte 1: the header is truncated");
	/* missing parts */
	api_idx *r = api_idx_new(0);
	ck_assert_int_eq(api_idx_feed(r, 0, (const char *)im.p, im.n, &e), 0);
	ck_assert_int_eq(api_idx_finish(r, &d, &e), -1);
	ck_assert_str_eq(e.detail, "the labels part is missing");
	api_idx_free(r);
	r = api_idx_new(0);
	ck_assert_int_eq(api_idx_feed(r, 2, "x", 1, &e), -1);
	ck_assert_int_eq(e.status, 400);
	api_idx_free(r);
	api_idx_free(NULL);
	free(im.p);
	free(g.p);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("idx");
	TCase *t = tcase_create("idx");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_small_raw_and_gzip_every_split);
	tcase_add_test(t, test_fashion_mnist_test_set);
	tcase_add_test(t, test_lying_and_broken_headers);
	tcase_add_test(t, test_broken_gzip_and_missing_parts);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(suite());
}
