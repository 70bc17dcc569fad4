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

/* ---- gzip kept whole (libdeflate) against gzip streamed (zlib) */

static blob cat(blob a, blob b)
{
	blob o = { malloc(a.n + b.n + 1), a.n + b.n };
	memcpy(o.p, a.p, a.n);
	memcpy(o.p + a.n, b.p, b.n);
	return o;
}

static blob copy(blob a)
{
	blob o = { malloc(a.n + 1), a.n };
	memcpy(o.p, a.p, a.n);
	return o;
}

/* n empty gzip members (20 bytes each). */
static blob empty_members(size_t n)
{
	blob e = images(1, 1, 1, 0); /* any buffer; emptied below */
	e.n = 0;
	blob one = gzip_of(e, 1);
	free(e.p);
	blob o = { malloc(one.n * n + 1), one.n * n };
	for (size_t i = 0; i < n; i++)
		memcpy(o.p + i * one.n, one.p, one.n);
	free(one.p);
	return o;
}

/* The same member with a zlib wrapper instead of gzip's (zlib's inflate, set
 * to detect either, takes it as a later member). */
static blob zlib_of(blob in)
{
	uLongf n = compressBound((uLong)in.n);
	blob o = { malloc(n), 0 };
	ck_assert_int_eq(compress(o.p, &n, in.p, (uLong)in.n), Z_OK);
	o.n = n;
	return o;
}

/* A one-member gzip stream whose header carries a CRC-16 (FHCRC), right or
 * wrong; only zlib checks it. */
static blob gzip_fhcrc(blob in, int right)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	blob o = { malloc(in.n * 2 + 64), 0 };
	unsigned char h[10] = { 0x1f, 0x8b, 8, 0x02, 0, 0, 0, 0, 0, 3 };
	memcpy(o.p, h, 10);
	uLong hc = crc32(0L, h, 10);
	o.p[10] = (unsigned char)(hc ^ (right ? 0 : 1));
	o.p[11] = (unsigned char)(hc >> 8);
	z.next_in = in.p;
	z.avail_in = (uInt)in.n;
	z.next_out = o.p + 12;
	z.avail_out = (uInt)(in.n * 2 + 40);
	ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	o.n = 12 + z.total_out;
	deflateEnd(&z);
	uLong c = crc32(0L, in.p, (uInt)in.n);
	for (int i = 0; i < 4; i++) {
		o.p[o.n + (size_t)i] = (unsigned char)(c >> (8 * i));
		o.p[o.n + 4 + (size_t)i] = (unsigned char)(in.n >> (8 * i));
	}
	o.n += 8;
	return o;
}

/* Label i of d is the value v (the class named by its decimal text). */
static void label_is(const api_dataset *d, int64_t i, int v)
{
	char b[8];
	snprintf(b, sizeof b, "%d", v);
	ck_assert_int_ge(d->labels[i], 0);
	ck_assert_int_lt(d->labels[i], d->n_classes);
	ck_assert_str_eq(d->classes[d->labels[i]], b);
}

/* Reads the pair and checks the data set holds exactly im's pixels and lb's
 * labels, whatever way it was fed. */
static void same_matrix(blob gim, blob glb, blob im, blob lb, int way, const char *what)
{
	api_dataset d;
	api_err e;
	int rc = run(gim, glb, way, way & 1, 0, &d, &e);
	ck_assert_msg(rc == 0, "%s way %d: %s", what, way, e.detail);
	size_t n = (size_t)d.rows * (size_t)d.features;
	ck_assert_uint_eq(16 + n, im.n);
	ck_assert_uint_eq(8 + (size_t)d.rows, lb.n);
	for (size_t i = 0; i < n; i++)
		if (d.x[i] != (float)im.p[16 + i])
			ck_abort_msg("%s way %d: pixel %zu is %g, not %d", what, way, i, d.x[i], im.p[16 + i]);
	for (int64_t i = 0; i < d.rows; i++)
		label_is(&d, i, lb.p[8 + i]);
	api_dataset_free(&d);
}

static blob ten_labels(uint32_t n)
{
	unsigned char *v = malloc(n);
	for (uint32_t i = 0; i < n; i++)
		v[i] = (unsigned char)((i * 7 + i / 3) % 10);
	blob b = labels(n, v, n);
	free(v);
	return b;
}

START_TEST(test_kept_and_streamed_gzip_agree)
{
	/* 3000 images of 28 x 28: a float matrix over 8 MiB (huge pages) */
	blob im = images(3000, 28, 28, 3000 * 784), lb = ten_labels(3000);
	for (size_t i = 16; i < im.n; i++) /* less regular than the default, still compressible */
		im.p[i] = (unsigned char)((i * 2654435761u) >> 27 & 0xff);
	blob g1 = gzip_of(im, 1), g3 = gzip_of(im, 3), g7 = gzip_of(im, 7), gl = gzip_of(lb, 2);
	/* over 1 MiB of empty members before the header: the part streams */
	blob flood = empty_members(60000);
	blob fg1 = cat(flood, g1), fgl = cat(flood, gl);
	/* as many after the data: kept, inflated member by member */
	blob g1f = cat(g1, flood);
	/* a zlib-wrapped member after a gzip one (zlib takes either) */
	blob half = copy(im);
	half.n = im.n / 2;
	blob rest = { im.p + half.n, im.n - half.n };
	blob gh = gzip_of(half, 1), zr = zlib_of(rest), gz = cat(gh, zr);
	blob hc = gzip_fhcrc(im, 1);
	for (int way = WHOLE; way <= INTERLEAVED; way++) {
		if (way == BYTES)
			continue; /* below, on smaller parts */
		same_matrix(im, lb, im, lb, way, "raw");
		same_matrix(g1, gl, im, lb, way, "1 member");
		same_matrix(g3, lb, im, lb, way, "3 members");
		same_matrix(g7, gl, im, lb, way, "7 members");
		same_matrix(fg1, fgl, im, lb, way, "empty members first");
		same_matrix(g1f, gl, im, lb, way, "empty members after");
		same_matrix(gz, gl, im, lb, way, "gzip then zlib member");
		same_matrix(hc, gl, im, lb, way, "header CRC");
	}
	/* far more empty members after a small part's data than it could
	 * need: the part streams from there */
	blob sim = images(20, 5, 5, 500), slb = ten_labels(20), sg = gzip_of(sim, 1);
	blob sgf = cat(sg, flood);
	same_matrix(sgf, slb, sim, slb, WHOLE, "small part, empty members after");
	same_matrix(sgf, slb, sim, slb, RANDOM, "small part, empty members after");
	free(sim.p);
	free(slb.p);
	free(sg.p);
	free(sgf.p);
	blob bad = gzip_fhcrc(im, 0);
	api_dataset d;
	api_err e;
	ck_assert_int_eq(run(bad, gl, WHOLE, 0, 0, &d, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.detail, "images part: invalid gzip data near compressed byte 12 (header crc mismatch)");
	blob all[] = { im, lb, g1, g3, g7, gl, flood, fg1, fgl, g1f, half, gh, zr, gz, hc, bad };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		free(all[i].p);
}
END_TEST

START_TEST(test_gzip_split_at_every_byte)
{
	blob im = images(6, 3, 4, 72), lb = ten_labels(6);
	for (int members = 1; members <= 3; members += 2) {
		blob g = gzip_of(im, members), gl = gzip_of(lb, members);
		for (size_t cut = 0; cut <= g.n; cut++) {
			/* images in two pieces cut there, labels cut at the same place */
			api_idx *r = api_idx_new(0);
			api_err e = API_ERR_INIT;
			api_dataset d;
			size_t lcut = cut < gl.n ? cut : gl.n;
			ck_assert_int_eq(api_idx_feed(r, 0, (const char *)g.p, cut, &e), 0);
			ck_assert_int_eq(api_idx_feed(r, 1, (const char *)gl.p, lcut, &e), 0);
			ck_assert_int_eq(api_idx_feed(r, 0, (const char *)g.p + cut, g.n - cut, &e), 0);
			ck_assert_int_eq(api_idx_feed(r, 1, (const char *)gl.p + lcut, gl.n - lcut, &e), 0);
			ck_assert_msg(api_idx_finish(r, &d, &e) == 0, "cut %zu: %s", cut, e.detail);
			api_idx_free(r);
			ck_assert_int_eq(d.rows, 6);
			ck_assert_int_eq(d.features, 12);
			for (int i = 0; i < 72; i++)
				ck_assert_float_eq(d.x[i], (float)im.p[16 + i]);
			for (int i = 0; i < 6; i++)
				label_is(&d, i, lb.p[8 + i]);
			api_dataset_free(&d);
		}
		same_matrix(g, gl, im, lb, BYTES, "byte by byte");
		free(g.p);
		free(gl.p);
	}
	free(im.p);
	free(lb.p);
}
END_TEST

/* Rejected with exactly this detail, fed whole and in random pieces. */
static void expect_detail(blob im, blob lb, const char *detail)
{
	for (int way = WHOLE; way <= INTERLEAVED; way += 2) {
		api_dataset d;
		api_err e;
		ck_assert_int_eq(run(im, lb, way, 0, 0, &d, &e), -1);
		ck_assert_int_eq(e.status, 400);
		ck_assert_str_eq(e.code, "malformed_idx");
		ck_assert_str_eq(e.detail, detail);
		ck_assert_ptr_null(d.x);
	}
}

START_TEST(test_truncated_and_corrupt_gzip)
{
	blob im = images(20, 5, 5, 500), lb = ten_labels(20);
	blob g = gzip_of(im, 1), g2 = gzip_of(im, 2), gl = gzip_of(lb, 1);
	/* cut anywhere: always refused, never a smaller data set */
	for (size_t n = 1; n < g2.n; n++) {
		blob t = { g2.p, n };
		api_dataset d;
		api_err e;
		ck_assert_msg(run(t, gl, WHOLE, 0, 0, &d, &e) == -1, "cut at %zu accepted", n);
		ck_assert_int_eq(e.status, 400);
		ck_assert_ptr_null(d.x);
	}
	/* cut inside the trailer: every byte of the data is there */
	for (size_t n = g.n - 8; n < g.n; n++) {
		blob t = { g.p, n };
		expect_detail(t, gl, "images part: the gzip stream is truncated");
	}
	/* the trailer's CRC-32 and size wrong */
	char want[200];
	blob c = copy(g);
	c.p[c.n - 8] ^= 1;
	snprintf(want, sizeof want, "images part: invalid gzip data near compressed byte %zu (incorrect data check)", g.n - 4);
	expect_detail(c, gl, want);
	c.p[c.n - 8] ^= 1;
	c.p[c.n - 1] ^= 1;
	snprintf(want, sizeof want, "images part: invalid gzip data near compressed byte %zu (incorrect length check)", g.n);
	expect_detail(c, gl, want);
	c.p[c.n - 1] ^= 1;
	/* garbage after the last member */
	blob tail = { (unsigned char *)"xyz", 3 }, gt = cat(g, tail);
	snprintf(want, sizeof want, "images part: invalid gzip data near compressed byte %zu (incorrect header check)", g.n + 2);
	expect_detail(gt, gl, want);
	/* every deflate byte flipped in turn: refused, or (where the flip
	 * happens to decode) the CRC-32 catches it */
	for (size_t i = 10; i < g.n - 8; i++) {
		c.p[i] ^= 0x5a;
		api_dataset d;
		api_err e;
		ck_assert_msg(run(c, gl, RANDOM, 0, 0, &d, &e) == -1, "flip at %zu accepted", i);
		ck_assert_int_eq(e.status, 400);
		ck_assert_msg(strncmp(e.detail, "images part", 11) == 0 ||
			      strncmp(e.detail, "the images part holds", 21) == 0, "flip at %zu: %s", i, e.detail);
		c.p[i] ^= 0x5a;
	}
	/* the IDX layer's errors read the same through gzip */
	blob lie = images(4000000, 28, 28, 784 * 2), glie = gzip_of(lie, 3);
	blob l4 = labels(4000000, lb.p + 8, 4), gl4 = gzip_of(l4, 1);
	expect_detail(glie, gl4,
		      "images part, byte 1584: truncated: the header declares 4000000 items (3136000000 bytes of data), the part has 1568");
	blob past = images(20, 5, 5, 501), gpast = gzip_of(past, 2);
	expect_detail(gpast, gl, "images part, byte 516: data past the 20 items the header declares");
	blob bad = images(20, 5, 5, 500);
	bad.p[2] = 0x09;
	blob gbad = gzip_of(bad, 1);
	expect_detail(gbad, gl, "images part, byte 0: magic 0x00000903, expected 0x00000803 (IDX3 of unsigned bytes)");
	blob l21 = ten_labels(21), gl21 = gzip_of(l21, 1);
	expect_detail(g, gl21, "the images part holds 20 items but the labels part 21");
	blob all[] = { im, lb, g, g2, gl, c, gt, lie, glie, l4, gl4, past, gpast, bad, gbad, l21, gl21 };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		free(all[i].p);
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
	tcase_add_test(t, test_kept_and_streamed_gzip_agree);
	tcase_add_test(t, test_gzip_split_at_every_byte);
	tcase_add_test(t, test_truncated_and_corrupt_gzip);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(suite());
}
