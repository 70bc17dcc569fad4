/*
 * fuzz_multipart.c - libFuzzer target for the daemon's streaming
 * multipart/form-data parser (server/multipart.c), which IDX uploads pass
 * through before the IDX reader.
 *
 * Input: the Content-Type value up to the first '\n' (its boundary taken by
 * mp_boundary_of), then the body. The body is parsed twice: in one feed,
 * and in pieces whose lengths come from the input's last four bytes. Both
 * runs must agree exactly: the same result, and the same parts with the
 * same names, file names and bytes. A part's bytes never exceed the body's.
 */
#include <stdio.h>
#include "fuzz_common.h"
#include "multipart.h"

/* What the callbacks saw: "B<name>\0<filename>\0", the part's bytes, "E". */
typedef struct trace {
	char *p;
	size_t len, cap;
	int in_part;
	size_t data;             /* part bytes seen in all */
} trace;

static void put(trace *t, const void *s, size_t n)
{
	if (t->len + n > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap < t->len + n)
			cap *= 2;
		t->p = realloc(t->p, cap);
		FUZZ_ASSERT(t->p != NULL);
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
}

static int on_begin(void *ctx, const char *name, const char *filename)
{
	trace *t = ctx;
	FUZZ_ASSERT(!t->in_part && name && filename);
	t->in_part = 1;
	put(t, "B", 1);
	put(t, name, strlen(name) + 1);
	put(t, filename, strlen(filename) + 1);
	return 0;
}

static int on_data(void *ctx, const char *buf, size_t len)
{
	trace *t = ctx;
	FUZZ_ASSERT(t->in_part);
	t->data += len;
	put(t, buf, len);
	return 0;
}

static int on_end(void *ctx)
{
	trace *t = ctx;
	FUZZ_ASSERT(t->in_part);
	t->in_part = 0;
	put(t, "E", 1);
	return 0;
}

/* Parses body in pieces (whole when sp is NULL); returns 0 or -1. */
static int parse(const char *boundary, const char *body, size_t len, fuzz_splitter *sp, trace *t)
{
	mp_callbacks cb = { t, on_begin, on_data, on_end };
	mp_parser *p = mp_new(boundary, &cb);
	FUZZ_ASSERT(p != NULL);
	int rc = 0;
	while (rc == 0 && len > 0) {
		size_t n = sp ? fuzz_next_piece(sp, len) : len;
		rc = mp_feed(p, body, n);
		body += n;
		len -= n;
	}
	if (rc == 0)
		rc = mp_finish(p);
	if (rc != 0)
		FUZZ_ASSERT(mp_error(p) != NULL && mp_error(p)[0] != '\0');
	mp_free(p);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	if (!nl || size < 4)
		return 0;
	char ctype[256];
	size_t clen = (size_t)(nl - data);
	if (clen >= sizeof ctype)
		return 0;
	memcpy(ctype, data, clen);
	ctype[clen] = '\0';
	char boundary[128];
	if (strlen(ctype) != clen || mp_boundary_of(ctype, boundary, sizeof boundary) != 0)
		return 0;
	mp_parser *probe = mp_new(boundary, &(mp_callbacks){ NULL, NULL, NULL, NULL });
	if (!probe)
		return 0;          /* a boundary mp_new refuses: the daemon answers 400 */
	mp_free(probe);
	const char *body = (const char *)nl + 1;
	size_t blen = size - clen - 1;
	fuzz_splitter sp = fuzz_splitter_of(data + size - 4, 4);

	trace whole = { 0 }, pieces = { 0 };
	int r1 = parse(boundary, body, blen, NULL, &whole);
	int r2 = parse(boundary, body, blen, &sp, &pieces);
	FUZZ_ASSERT(r1 == r2);
	if (r1 == 0) {
		FUZZ_ASSERT(!whole.in_part && !pieces.in_part);
		FUZZ_ASSERT(whole.len == pieces.len &&
		            (whole.len == 0 || memcmp(whole.p, pieces.p, whole.len) == 0));
		FUZZ_ASSERT(whole.data <= blen);
	}
	free(whole.p);
	free(pieces.p);
	return 0;
}
