/*
 * fuzz_idx.c - libFuzzer target for the IDX reader (api/idx.c), gzip
 * included.
 *
 * Input: byte 0 chooses how the parts arrive: bit 0 which part comes first,
 * bit 1 interleaved or one after the other, bits 2-3 whether this harness
 * gzips the images and/or the labels part (so mutated headers and bodies
 * also reach the reader through a valid gzip stream; the raw input may of
 * course hold gzip bytes of its own), bit 4 a small memory limit. Bytes 1-2
 * give the images part's length (big-endian, cut to what is there), bytes
 * 3-6 seed the piece lengths; the rest is images then labels. The pair is
 * also read whole, images first: both readings must agree.
 */
#include <zlib.h>
#include "fuzz_common.h"

typedef struct part {
	const uint8_t *p;
	size_t n;
	uint8_t *owned;
} part;

static part gzip_part(const uint8_t *p, size_t n)
{
	part out = { p, n, NULL };
	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return out;
	uLong cap = deflateBound(&z, (uLong)n) + 64;
	uint8_t *buf = malloc(cap);
	if (!buf) {
		deflateEnd(&z);
		return out;
	}
	z.next_in = (Bytef *)p;
	z.avail_in = (uInt)n;
	z.next_out = buf;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		free(buf);
		deflateEnd(&z);
		return out;
	}
	out.p = buf;
	out.n = z.total_out;
	out.owned = buf;
	deflateEnd(&z);
	return out;
}

/* Feeds both parts, first part `first`, in pieces from sp (whole when sp is
 * NULL), alternating the parts piece by piece when interleave is set. */
static int read_idx(const part parts[2], int first, int interleave, fuzz_splitter *sp,
                    int64_t max_bytes, api_dataset *d, api_err *e)
{
	api_idx *r = api_idx_new(max_bytes);
	FUZZ_ASSERT(r != NULL);
	int rc = 0, k = first;
	size_t off[2] = { 0, 0 };
	while (rc == 0 && (off[0] < parts[0].n || off[1] < parts[1].n)) {
		if (off[k] >= parts[k].n)
			k = !k;
		size_t left = parts[k].n - off[k];
		size_t n = sp ? fuzz_next_piece(sp, left) : left;
		rc = api_idx_feed(r, k, (const char *)parts[k].p + off[k], n, e);
		off[k] += n;
		if (interleave)
			k = !k;
	}
	memset(d, 0, sizeof *d);
	if (rc == 0)
		rc = api_idx_finish(r, d, e);
	api_idx_free(r);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 7)
		return 0;
	uint8_t o = data[0];
	size_t rest = size - 7;
	size_t nimg = ((size_t)data[1] << 8 | data[2]);
	if (nimg > rest)
		nimg = rest;
	fuzz_splitter sp = fuzz_splitter_of(data + 3, 4);
	part parts[2] = { { data + 7, nimg, NULL }, { data + 7 + nimg, rest - nimg, NULL } };
	if (o & 4)
		parts[0] = gzip_part(parts[0].p, parts[0].n);
	if (o & 8)
		parts[1] = gzip_part(parts[1].p, parts[1].n);
	int64_t max_bytes = (o & 16) ? 4096 : 64 << 20;

	api_err e = API_ERR_INIT, e1 = API_ERR_INIT;
	api_dataset d, whole;
	int rc = read_idx(parts, o & 1, (o & 2) != 0, &sp, max_bytes, &d, &e);
	int rc1 = read_idx(parts, 0, 0, NULL, max_bytes, &whole, &e1);
	/* order and split never change whether the pair is accepted, nor what
	 * it holds (which error is found first may depend on the order) */
	FUZZ_ASSERT(rc == rc1);
	if (rc == 0) {
		fuzz_check_dataset(&d, 1);
		FUZZ_ASSERT(d.width > 0 && d.height > 0 && d.channels > 0);
		fuzz_same_dataset(&d, &whole);
	} else {
		FUZZ_ASSERT(e.status >= 400 && e.status < 500 && e.code[0] != '\0');
		FUZZ_ASSERT(e1.status >= 400 && e1.status < 500 && e1.code[0] != '\0');
	}
	api_dataset_free(&d);
	api_dataset_free(&whole);
	free(parts[0].owned);
	free(parts[1].owned);
	return 0;
}
