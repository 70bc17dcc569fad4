/*
 * idx.c - the IDX reader behind multipart uploads of MNIST-style data
 * (parts "images", idx3 of unsigned bytes, and "labels", idx1 of unsigned
 * bytes), gzip-compressed or not.
 *
 * Each part runs its own small pipeline: the first two bytes decide whether
 * it is gzip (1f 8b, several members allowed), then the IDX header is
 * gathered and checked (magic, dimensions, 64-bit overflow, the declared size
 * against max_bytes, the item counts of both parts) before anything is
 * allocated for the data, then the data bytes go into a matrix grown
 * geometrically up to the declared size, so a header that lies about its size
 * costs nothing. Parts may come in either order, interleaved, and split at
 * any byte.
 *
 * A gzip part is not inflated as it arrives: its compressed bytes are kept
 * (the IDX header alone is inflated at once by zlib, for the early checks),
 * and at the finish libdeflate inflates the whole of it, member by member, a
 * good deal faster than zlib's streaming inflate, straight into the tail of
 * the float matrix, which is then widened in place. The matrix asks for huge
 * pages (faulting it in 4 KiB at a time cost about as much as the inflation);
 * only what the data really fills is ever touched, so a lying header still
 * costs nothing. Whatever the fast path cannot take as it is (a corrupt,
 * truncated or odd stream, a header CRC only zlib checks, more data than
 * declared), the part is replayed through zlib's streaming inflate, the
 * reader it always had, which then names the error exactly as before; a
 * stream that grows past what its declared data could need while it arrives
 * switches to streaming on the spot, so the kept bytes stay bounded.
 *
 * Images become rows of width*height floats 0..255 (width = columns, height =
 * rows, one channel); labels become classes: the distinct label values
 * present, sorted numerically, named by their decimal text.
 * Errors: 400 "malformed_idx" naming the part and the byte offset in the
 * (inflated) IDX data, 413 "payload_too_large" past max_bytes.
 */
#include <libdeflate.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "dataset_io.h"
#include "dataset_util.h"

#define IDX_MAX_FEATURES (1 << 24)
/* Compressed bytes kept before the IDX header is known; past that (only a
 * pile of empty gzip members gets there) the part streams. */
#define IDX_KEEP_BEFORE_HEADER (1u << 20)
/* a buffer this large asks for huge pages */
#define IDX_HUGE_MIN (8u << 20)
/* A gzip part's buffer is sized at once to what its header allows, up to
 * this (beyond, it doubles as the bytes come). */
#define IDX_RESERVE_MAX ((size_t)1 << 30)

/*
 * One part's state. A gzip part is either kept (stream 0: zb holds every
 * compressed byte so far, zlib has inflated only as far as the IDX header,
 * zin of them) or streamed (stream 1: zlib inflates everything as it comes,
 * zin counts the compressed bytes consumed, zb is NULL).
 */
typedef struct idx_part {
	int started;
	int gz;                 /* -1 undecided, 0 raw, 1 gzip */
	int stream;             /* gzip: inflated as it comes, not kept */
	unsigned char pend[2];  /* first bytes held for the gzip test */
	int npend;
	z_stream z;
	int z_init;
	int z_end;              /* the current gzip member ended */
	uint64_t zin;           /* compressed bytes consumed */
	unsigned char *zb;      /* kept compressed bytes: zlen of zcap */
	size_t zlen, zcap;
	unsigned char hdr[16];
	int nhdr, hdr_need;     /* 0 until the magic says how long the header is */
	int hdr_done;
	uint64_t count, item, total, got;
	void *data;             /* images: float[count*item]; labels: uint8[count] */
	uint64_t cap;           /* in items of data (floats or bytes) */
} idx_part;

struct api_idx {
	int64_t max_bytes;
	idx_part p[2];
	int failed;
	api_err err;
	struct libdeflate_decompressor *ld;   /* made on first use */
	unsigned char zout[65536];
};

static const char *const PART[2] = { "images", "labels" };

api_idx *api_idx_new(int64_t max_bytes)
{
	api_idx *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->max_bytes = max_bytes;
	r->p[0].gz = r->p[1].gz = -1;
	return r;
}

void api_idx_free(api_idx *r)
{
	if (!r)
		return;
	for (int i = 0; i < 2; i++) {
		if (r->p[i].z_init)
			inflateEnd(&r->p[i].z);
		free(r->p[i].data);
		free(r->p[i].zb);
	}
	libdeflate_free_decompressor(r->ld);
	free(r);
}

static int fail(api_idx *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(api_idx *r, int status, const char *code, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	api_err_set(&r->err, status, code, "%s", msg);
	r->failed = 1;
	return -1;
}

static uint32_t be32(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* The header is complete: check it and size the data. */
static int header_done(api_idx *r, int k)
{
	idx_part *p = &r->p[k];
	p->hdr_done = 1;
	uint64_t n = be32(p->hdr + 4);
	uint64_t item = 1;
	if (k == 0) {
		uint64_t rows = be32(p->hdr + 8), cols = be32(p->hdr + 12);
		if (rows == 0 || cols == 0)
			return fail(r, 400, "malformed_idx", "images part, byte 8: an image of %llu x %llu pixels",
				    (unsigned long long)rows, (unsigned long long)cols);
		item = rows * cols; /* < 2^64 */
		if (item > IDX_MAX_FEATURES)
			return fail(r, 413, "payload_too_large",
				    "images part, byte 8: images of %llu x %llu pixels are too large (at most %d pixels)",
				    (unsigned long long)rows, (unsigned long long)cols, IDX_MAX_FEATURES);
	}
	if (n == 0)
		return fail(r, 400, "malformed_idx", "%s part, byte 4: the file declares no items", PART[k]);
	p->count = n;
	p->item = item;
	p->total = n * item; /* n < 2^32, item <= 2^24: no overflow */
	/* memory: floats for the images, an int32 per label */
	uint64_t need = k == 0 ? p->total * 4 : n * 4;
	if (r->max_bytes > 0 && need > (uint64_t)r->max_bytes)
		return fail(r, 413, "payload_too_large",
			    "%s part, byte 4: the header declares %llu items, %llu bytes in memory, over the limit of %lld",
			    PART[k], (unsigned long long)n, (unsigned long long)need, (long long)r->max_bytes);
	idx_part *o = &r->p[1 - k];
	if (o->hdr_done) {
		if (o->count != n)
			return fail(r, 400, "malformed_idx", "the images part holds %llu items but the labels part %llu",
				    (unsigned long long)r->p[0].count, (unsigned long long)r->p[1].count);
		uint64_t all = r->p[0].total * 4 + r->p[1].count * 4;
		if (r->max_bytes > 0 && all > (uint64_t)r->max_bytes)
			return fail(r, 413, "payload_too_large",
				    "the data set needs %llu bytes in memory, over the limit of %lld",
				    (unsigned long long)all, (long long)r->max_bytes);
	}
	return 0;
}

static int grow(api_idx *r, int k, uint64_t want)
{
	idx_part *p = &r->p[k];
	if (want <= p->cap)
		return 0;
	uint64_t cap = p->cap ? p->cap * 2 : (1u << 20);
	if (cap < want)
		cap = want;
	if (cap > p->total)
		cap = p->total;
	size_t esz = k == 0 ? sizeof(float) : 1;
	void *d = realloc(p->data, (size_t)cap * esz);
	if (!d)
		return fail(r, 413, "payload_too_large", "no memory for the %s", PART[k]);
	p->data = d;
	p->cap = cap;
	return 0;
}

/* IDX bytes (after any inflation) of part k. */
static int consume(api_idx *r, int k, const unsigned char *b, size_t n)
{
	idx_part *p = &r->p[k];
	while (n > 0) {
		if (!p->hdr_done) {
			int need = p->hdr_need ? p->hdr_need : 4;
			while (n > 0 && p->nhdr < need) {
				p->hdr[p->nhdr++] = *b++;
				n--;
			}
			if (p->nhdr < need)
				return 0;
			if (!p->hdr_need) {
				uint32_t magic = be32(p->hdr), want = k == 0 ? 0x803u : 0x801u;
				if (magic != want)
					return fail(r, 400, "malformed_idx",
						    "%s part, byte 0: magic 0x%08x, expected 0x%08x (IDX%d of unsigned bytes)%s",
						    PART[k], magic, want, k == 0 ? 3 : 1,
						    magic == (k == 0 ? 0x801u : 0x803u) ? "; are the parts swapped?" : "");
				p->hdr_need = k == 0 ? 16 : 8;
				continue;
			}
			if (header_done(r, k) != 0)
				return -1;
			continue;
		}
		uint64_t room = p->total - p->got;
		if (room == 0)
			return fail(r, 400, "malformed_idx",
				    "%s part, byte %llu: data past the %llu items the header declares",
				    PART[k], (unsigned long long)(p->got + (uint64_t)p->hdr_need),
				    (unsigned long long)p->count);
		size_t m = n < room ? n : (size_t)room;
		if (grow(r, k, p->got + m) != 0)
			return -1;
		if (k == 0) {
			float *x = (float *)p->data + p->got;
			for (size_t i = 0; i < m; i++)
				x[i] = (float)b[i];
		} else {
			memcpy((unsigned char *)p->data + p->got, b, m);
		}
		p->got += m;
		b += m;
		n -= m;
	}
	return 0;
}

/* How many bytes the IDX header still needs (the magic first, then the rest). */
static int header_left(const idx_part *p)
{
	return (p->hdr_need ? p->hdr_need : 4) - p->nhdr;
}

/*
 * Inflates the compressed bytes b[0, n) of part k with zlib into consume(),
 * member after member; p->zin counts the compressed bytes consumed. With peek
 * set, zlib is asked for no more output than the IDX header still needs, and
 * it stops as soon as the header is complete.
 */
static int inflate_some(api_idx *r, int k, const unsigned char *b, size_t n, int peek)
{
	idx_part *p = &r->p[k];
	while (n > 0 && !(peek && p->hdr_done)) {
		if (p->z_end) {
			/* another gzip member follows */
			if (inflateReset(&p->z) != Z_OK)
				return fail(r, 400, "malformed_idx", "%s part: bad gzip data", PART[k]);
			p->z_end = 0;
		}
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		p->z.next_in = (Bytef *)(uintptr_t)b;
		p->z.avail_in = chunk;
		while (p->z.avail_in > 0 && !p->z_end && !(peek && p->hdr_done)) {
			uInt room = peek ? (uInt)header_left(p) : (uInt)sizeof r->zout;
			p->z.next_out = r->zout;
			p->z.avail_out = room;
			int zr = inflate(&p->z, Z_NO_FLUSH);
			size_t produced = room - p->z.avail_out;
			if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
				return fail(r, 400, "malformed_idx",
					    "%s part: invalid gzip data near compressed byte %llu (%s)", PART[k],
					    (unsigned long long)(p->zin + (chunk - p->z.avail_in)),
					    p->z.msg ? p->z.msg : "inflate failed");
			if (produced && consume(r, k, r->zout, produced) != 0)
				return -1;
			if (zr == Z_STREAM_END)
				p->z_end = 1;
			else if (zr == Z_BUF_ERROR && produced == 0)
				break;
		}
		size_t used = chunk - p->z.avail_in;
		p->zin += used;
		b += used;
		n -= used;
		if (used == 0 && !p->z_end)
			break; /* cannot happen with input left, but never spin */
	}
	return 0;
}

/* The most compressed bytes part k keeps before it streams instead: what
 * its declared data could take as stored deflate blocks, with room for gzip
 * headers and members, or a fixed allowance while the header is unknown. */
static size_t keep_bound(const idx_part *p)
{
	if (!p->hdr_done)
		return IDX_KEEP_BEFORE_HEADER;
	uint64_t want = (uint64_t)p->hdr_need + p->total;
	uint64_t b = want + want / 64 + IDX_KEEP_BEFORE_HEADER;
	return b > SIZE_MAX ? SIZE_MAX : (size_t)b;
}

/* Part k goes from kept to streamed: zlib inflates the kept bytes from the
 * first (the header again, so every offset in a message is what the
 * streaming reader always said), then the rest as it comes. */
static int to_stream(api_idx *r, int k)
{
	idx_part *p = &r->p[k];
	unsigned char *zb = p->zb;
	size_t zlen = p->zlen;
	p->zb = NULL;
	p->zlen = p->zcap = 0;
	p->stream = 1;
	p->z_end = 0;
	p->zin = 0;
	p->nhdr = p->hdr_need = p->hdr_done = 0;
	free(p->data);
	p->data = NULL;
	p->cap = p->got = 0;
	int rc;
	if (inflateReset(&p->z) != Z_OK)
		rc = fail(r, 400, "malformed_idx", "%s part: bad gzip data", PART[k]);
	else
		rc = inflate_some(r, k, zb, zlen, 0);
	free(zb);
	return rc;
}

/* Keeps the compressed bytes b[0, n) of part k, inflating just enough of
 * them to check the IDX header the moment it is complete. */
static int keep(api_idx *r, int k, const unsigned char *b, size_t n)
{
	idx_part *p = &r->p[k];
	if (n > p->zcap - p->zlen) {
		size_t cap = p->zcap ? p->zcap : 65536;
		while (cap - p->zlen < n) {
			if (cap > SIZE_MAX / 2)
				return fail(r, 413, "payload_too_large", "no memory for the %s", PART[k]);
			cap *= 2;
		}
		unsigned char *z = NULL;
		/* With the header known, the bound at once: the kept bytes then
		 * never move again (doubling copied the part about once more and
		 * faulted in twice its memory), and the pages beyond what arrives
		 * are never touched, so a lying header still costs nothing. */
		size_t bound = keep_bound(p);
		if (p->hdr_done && bound <= IDX_RESERVE_MAX && bound + n > cap &&
		    (z = realloc(p->zb, bound + n)))
			cap = bound + n;
		else
			z = realloc(p->zb, cap);
		if (!z)
			return fail(r, 413, "payload_too_large", "no memory for the %s", PART[k]);
		p->zb = z;
		p->zcap = cap;
		if (cap >= IDX_HUGE_MIN)
			nn_huge_pages(z, cap);
	}
	memcpy(p->zb + p->zlen, b, n);
	p->zlen += n;
	if (!p->hdr_done && inflate_some(r, k, p->zb + p->zin, p->zlen - (size_t)p->zin, 1) != 0)
		return -1;
	if (p->zlen > keep_bound(p))
		return to_stream(r, k);
	return 0;
}

static int route(api_idx *r, int k, const unsigned char *b, size_t n)
{
	idx_part *p = &r->p[k];
	if (p->gz == 1)
		return p->stream ? inflate_some(r, k, b, n, 0) : keep(r, k, b, n);
	return consume(r, k, b, n);
}

/*
 * Widens the n bytes at b into n floats at x, front to back, where b lies
 * at least 3n bytes past x (the bytes sit at the end of the matrix): the
 * bytes of a block are copied out before its floats are written, and the
 * floats of elements [0, i + 64) end at byte 4i + 256 <= 3n + i + 64, where
 * the bytes not yet read begin.
 */
static void widen_in_place(float *x, const unsigned char *b, size_t n)
{
	size_t i = 0;
	for (; i + 64 <= n; i += 64) {
		unsigned char t[64];
		memcpy(t, b + i, sizeof t);
		for (int j = 0; j < 64; j++)
			x[i + j] = (float)t[j];
	}
	for (; i < n; i++)
		x[i] = (float)b[i];
}

/*
 * The fast path for a kept gzip part whose header is known: libdeflate
 * inflates the members one after another into the end of the part's final
 * buffer (for images, the last quarter of the float matrix, widened in place
 * after). Returns 1 when the part is complete, exactly the declared data in
 * whole members, with p->data set; 0 when it cannot tell (anything else:
 * corrupt, truncated, too long, a zlib member, a header CRC only zlib
 * checks, no memory), and the caller replays the part through zlib.
 */
static int inflate_kept(api_idx *r, int k)
{
	idx_part *p = &r->p[k];
	size_t hn = (size_t)p->hdr_need, n = (size_t)p->total, want = hn + n;
	if (!r->ld && !(r->ld = libdeflate_alloc_decompressor()))
		return 0;
	/* deflate makes at most 1032 bytes of one (zlib's FAQ): kept bytes too
	 * few for the declared data are a truncated part, which zlib's replay
	 * names, with no buffer of the size a header may lie about (gigabytes) */
	if ((uint64_t)p->zlen * 1032 + 1032 < (uint64_t)want)
		return 0;
	size_t memlen = k == 0 && n * sizeof(float) > want ? n * sizeof(float) : want;
	unsigned char *mem = malloc(memlen);
	if (!mem)
		return 0;
	if (memlen >= IDX_HUGE_MIN)
		nn_huge_pages(mem, memlen);
	unsigned char *out = mem + memlen - want;
	size_t in = 0, got = 0;
	int ok = 1;
	while (ok && in < p->zlen) {
		const unsigned char *z = p->zb + in;
		size_t ain = 0, aout = 0;
		if (p->zlen - in < 4 || z[0] != 0x1f || z[1] != 0x8b || (z[3] & 0x02))
			ok = 0;
		else if (libdeflate_gzip_decompress_ex(r->ld, z, p->zlen - in, out + got, want - got,
						       &ain, &aout) != LIBDEFLATE_SUCCESS || ain == 0)
			ok = 0;
		in += ain;
		got += aout;
	}
	if (!ok || got != want || memcmp(out, p->hdr, hn) != 0) {
		free(mem);
		return 0;
	}
	if (k == 0)
		widen_in_place((float *)(void *)mem, out + hn, n);
	else
		memmove(mem, out + hn, n);
	p->data = mem;
	p->cap = p->got = p->total;
	p->z_end = 1;
	free(p->zb);
	p->zb = NULL;
	p->zlen = p->zcap = 0;
	return 1;
}

int api_idx_feed(api_idx *r, int part, const char *buf, size_t len, api_err *e)
{
	if (!r)
		return api_err_set(e, 500, "internal_error", "no IDX reader");
	if (r->failed) {
		if (e)
			*e = r->err;
		return -1;
	}
	if (part != 0 && part != 1)
		return api_err_set(e, 400, "malformed_idx", "unknown part %d (want images or labels)", part);
	idx_part *p = &r->p[part];
	const unsigned char *b = (const unsigned char *)buf;
	p->started = 1;
	int rc = 0;
	if (p->gz < 0) {
		while (len > 0 && p->npend < 2) {
			p->pend[p->npend++] = *b++;
			len--;
		}
		if (p->npend == 0 || (p->npend == 1 && p->pend[0] == 0x1f))
			return 0; /* too few bytes yet to tell */
		p->gz = p->npend == 2 && p->pend[0] == 0x1f && p->pend[1] == 0x8b;
		if (p->gz) {
			if (inflateInit2(&p->z, 15 + 32) != Z_OK) {
				fail(r, 413, "payload_too_large", "no memory for gzip");
				goto out;
			}
			p->z_init = 1;
		}
		rc = route(r, part, p->pend, (size_t)p->npend);
		p->npend = 0;
	}
	if (rc == 0 && len > 0)
		rc = route(r, part, b, len);
out:
	if (r->failed) {
		if (e)
			*e = r->err;
		return -1;
	}
	return 0;
}

static int check_part(api_idx *r, int k)
{
	idx_part *p = &r->p[k];
	if (!p->started)
		return fail(r, 400, "malformed_idx", "the %s part is missing", PART[k]);
	if (p->gz < 0 && consume(r, k, p->pend, (size_t)p->npend) != 0)
		return -1;
	if (p->gz == 1 && !p->stream && !(p->hdr_done && inflate_kept(r, k)) && to_stream(r, k) != 0)
		return -1;
	if (p->gz == 1 && !p->z_end)
		return fail(r, 400, "malformed_idx", "%s part: the gzip stream is truncated", PART[k]);
	if (!p->hdr_done)
		return fail(r, 400, "malformed_idx", "%s part, byte %d: the header is truncated",
			    PART[k], p->nhdr);
	if (p->got < p->total)
		return fail(r, 400, "malformed_idx",
			    "%s part, byte %llu: truncated: the header declares %llu items (%llu bytes of data), the part has %llu",
			    PART[k], (unsigned long long)(p->got + (uint64_t)p->hdr_need),
			    (unsigned long long)p->count, (unsigned long long)p->total,
			    (unsigned long long)p->got);
	return 0;
}

int api_idx_finish(api_idx *r, api_dataset *out, api_err *e)
{
	memset(out, 0, sizeof *out);
	if (!r)
		return api_err_set(e, 500, "internal_error", "no IDX reader");
	if (r->failed || check_part(r, 0) != 0 || check_part(r, 1) != 0) {
		if (e)
			*e = r->err;
		return -1;
	}
	idx_part *im = &r->p[0], *lb = &r->p[1];
	const unsigned char *lab = lb->data;
	int present[256] = { 0 }, map[256];
	for (uint64_t i = 0; i < lb->count; i++)
		present[lab[i]] = 1;
	int nc = 0;
	for (int v = 0; v < 256; v++)
		if (present[v])
			map[v] = nc++;
	out->task = NN_TASK_CLASSIFICATION;
	out->rows = (int64_t)im->count;
	out->features = (int)im->item;
	out->height = (int)be32(im->hdr + 8);
	out->width = (int)be32(im->hdr + 12);
	out->channels = 1;
	out->labels = malloc((size_t)lb->count * sizeof(int32_t));
	out->classes = calloc((size_t)nc, sizeof(char *));
	out->feature_names = calloc((size_t)out->features, sizeof(char *));
	if (!out->labels || !out->classes || !out->feature_names)
		goto oom;
	for (uint64_t i = 0; i < lb->count; i++)
		out->labels[i] = map[lab[i]];
	for (int v = 0; v < 256; v++)
		if (present[v]) {
			char b[16];
			snprintf(b, sizeof b, "%d", v);
			if (!(out->classes[out->n_classes++] = api_strndup(b, strlen(b))))
				goto oom;
		}
	out->outputs = nc;
	for (int i = 0; i < out->features; i++) {
		char b[24];
		snprintf(b, sizeof b, "x%d", i);
		if (!(out->feature_names[i] = api_strndup(b, strlen(b))))
			goto oom;
	}
	out->x = im->data;
	im->data = NULL;
	r->failed = 1;
	api_err_set(&r->err, 500, "internal_error", "the IDX reader was already finished");
	return 0;
oom:
	api_dataset_free(out);
	fail(r, 413, "payload_too_large", "no memory to finish the data set");
	if (e)
		*e = r->err;
	return -1;
}
