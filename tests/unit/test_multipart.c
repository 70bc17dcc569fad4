/*
 * test_multipart.c - the streaming multipart/form-data parser
 * (server/multipart.c): parts and their bytes come out the same for every
 * way of splitting the body, binary data with CR, LF and boundary-like
 * bytes passes through untouched, and malformed bodies are rejected.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "multipart.h"

typedef struct got {
	char names[4][32];
	char data[4][512];
	size_t len[4];
	int parts;
	int ended;
} got;

static int begin(void *ctx, const char *name, const char *filename)
{
	got *g = ctx;
	(void)filename;
	if (g->parts >= 4)
		return 1;
	snprintf(g->names[g->parts], sizeof g->names[0], "%s", name);
	g->len[g->parts] = 0;
	g->parts++;
	return 0;
}

static int data(void *ctx, const char *buf, size_t len)
{
	got *g = ctx;
	int i = g->parts - 1;
	ck_assert_uint_le(g->len[i] + len, sizeof g->data[0]);
	memcpy(g->data[i] + g->len[i], buf, len);
	g->len[i] += len;
	return 0;
}

static int end(void *ctx)
{
	got *g = ctx;
	g->ended++;
	return 0;
}

/* Parses body cut into pieces of `step` bytes (0 = whole). */
static int parse(const char *body, size_t len, size_t step, got *g)
{
	memset(g, 0, sizeof *g);
	mp_callbacks cb = { g, begin, data, end };
	mp_parser *p = mp_new("XyZ123", &cb);
	ck_assert_ptr_nonnull(p);
	int rc = 0;
	for (size_t off = 0; off < len && rc == 0;) {
		size_t n = step ? step : len;
		if (n > len - off)
			n = len - off;
		rc = mp_feed(p, body + off, n);
		off += n;
	}
	if (rc == 0)
		rc = mp_finish(p);
	mp_free(p);
	return rc;
}

static const char binary[] = "\r\n--XyZ12\r\n-\r\r\n\0\xff--XyZ";

static size_t build(char *out)
{
	size_t n = 0;
	n += (size_t)sprintf(out + n, "preamble\r\n--XyZ123\r\n"
	                              "Content-Disposition: form-data; name=\"images\"; filename=\"a.gz\"\r\n"
	                              "Content-Type: application/octet-stream\r\n\r\n");
	memcpy(out + n, binary, sizeof binary - 1);
	n += sizeof binary - 1;
	n += (size_t)sprintf(out + n, "\r\n--XyZ123\r\n"
	                              "Content-Disposition: form-data; filename=\"l\"; name=labels\r\n\r\n"
	                              "abc\r\n--XyZ123--\r\nepilogue");
	return n;
}

START_TEST(test_parts_identical_for_every_split)
{
	char body[1024];
	size_t len = build(body);
	size_t steps[] = { 0, 1, 2, 3, 5, 7, 11, 64 };
	for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
		got g;
		ck_assert_int_eq(parse(body, len, steps[s], &g), 0);
		ck_assert_int_eq(g.parts, 2);
		ck_assert_int_eq(g.ended, 2);
		ck_assert_str_eq(g.names[0], "images");
		ck_assert_str_eq(g.names[1], "labels");
		ck_assert_uint_eq(g.len[0], sizeof binary - 1);
		ck_assert_mem_eq(g.data[0], binary, sizeof binary - 1);
		ck_assert_uint_eq(g.len[1], 3);
		ck_assert_mem_eq(g.data[1], "abc", 3);
	}
}
END_TEST

START_TEST(test_truncated_body_is_rejected)
{
	char body[1024];
	size_t len = build(body);
	got g;
	/* cut inside the second part: no closing delimiter */
	ck_assert_int_eq(parse(body, len - 30, 1, &g), -1);
	ck_assert_int_eq(parse("", 0, 0, &g), -1);
}
END_TEST

START_TEST(test_bad_delimiter_and_header_are_rejected)
{
	const char *a = "--XyZ123junk\r\n\r\nx\r\n--XyZ123--";
	got g;
	ck_assert_int_eq(parse(a, strlen(a), 0, &g), -1);
	const char *b = "--XyZ123\r\nContent-Disposition: form-data; name=x\n\r\n";
	ck_assert_int_eq(parse(b, strlen(b), 0, &g), -1);
}
END_TEST

START_TEST(test_boundary_from_content_type)
{
	char b[80];
	ck_assert_int_eq(mp_boundary_of("multipart/form-data; boundary=abc", b, sizeof b), 0);
	ck_assert_str_eq(b, "abc");
	ck_assert_int_eq(mp_boundary_of("multipart/form-data; boundary=\"a b\"; x=1", b, sizeof b), 0);
	ck_assert_str_eq(b, "a b");
	ck_assert_int_eq(mp_boundary_of("multipart/form-data", b, sizeof b), -1);
	ck_assert_int_eq(mp_boundary_of("multipart/form-data; boundary=", b, sizeof b), -1);
	ck_assert_ptr_null(mp_new("", &(mp_callbacks){ 0 }));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("multipart");
	TCase *t = tcase_create("core");
	tcase_add_test(t, test_parts_identical_for_every_split);
	tcase_add_test(t, test_truncated_body_is_rejected);
	tcase_add_test(t, test_bad_delimiter_and_header_are_rejected);
	tcase_add_test(t, test_boundary_from_content_type);
	suite_add_tcase(s, t);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
