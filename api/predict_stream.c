/*
 * predict_stream.c - predictions read as the body arrives (see
 * predict_stream.h): the plain JSON reader, the float32 row reader, the
 * blocks of rows handed to nn_predict as soon as they are full, the helper
 * thread that shares those blocks on long bodies, and each serving
 * thread's scratch.
 *
 * Rows go into one block buffer (at most STREAM_BLOCK rows, fewer when the
 * body's length says it holds fewer, so a single-row request allocates a
 * row, not a block); a full block is predicted at once into the outputs,
 * which grow with the rows. The JSON reader keeps its place in the body
 * between calls and reads a row only once its closing bracket has arrived,
 * so no number is ever split; whatever it accepts is valid JSON that the
 * general path would read to the same floats (a decimal with at most 19
 * digits and a power of ten up to 22 is exact in double, as strtod's;
 * anything else goes through strtod). Rows of small integers (image
 * pixels) are read 64 bytes at a time, with AVX-512 where the CPU has it.
 *
 * A body long enough to hold HELPER_MIN_ROWS rows (and of HELPER_MIN_BYTES
 * at least) gets a second thread
 * (see "the helper" below): the reading thread parses while the helper
 * predicts the blocks already read, and the JSON reply is written as rows
 * are predicted, so on two cores parsing, the forward passes and the reply
 * overlap. Blocks are the same 256 rows from the first, predicted with the
 * same frozen scratch kind, so the outputs are the same to the bit either
 * way.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "predict_stream.h"

#define STREAM_BLOCK 256   /* rows per forward call, and the scratch's rows */
#define HELPER_MIN_ROWS (2 * STREAM_BLOCK)  /* bodies that may hold this many rows get a helper */
#define HELPER_MIN_BYTES ((int64_t)256 << 10)  /* and are this long (a thread costs some 30 us) */
#define SPARE_SCRATCHES 2  /* helpers' scratches kept for the next helper */
#define HELPER_MAX 4       /* helpers at once, at most (more streams predict alone) */
#define HELPER_RING 4      /* blocks between the reader and the helper */
#define HELPER_TEXT_LAG (2 * STREAM_BLOCK)  /* rows predicted but not yet in the text, at most */
#define HELPER_MAX_OUTPUTS ((int64_t)16 << 20)  /* output floats allocated at once, at most */

static int64_t helper_min_bytes = HELPER_MIN_BYTES;   /* tests lower it */

/* ---- per-thread scratch */

typedef struct tl_scratch {
	uint64_t serial;
	nn_scratch *s;
} tl_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *p)
{
	tl_scratch *t = p;
	if (t) {
		nn_scratch_free(t->s);
		free(t);
	}
}

static void scratch_key_init(void)
{
	pthread_key_create(&scratch_key, scratch_destroy);
}

nn_scratch *api_predict_scratch(const api_model_snap *snap)
{
	pthread_once(&scratch_once, scratch_key_init);
	tl_scratch *t = pthread_getspecific(scratch_key);
	if (!t) {
		t = calloc(1, sizeof *t);
		if (!t)
			return NULL;
		pthread_setspecific(scratch_key, t);
	}
	if (!t->s || t->serial != snap->serial) {
		nn_scratch_free(t->s);
		t->s = nn_scratch_create_frozen(snap->model, STREAM_BLOCK);
		t->serial = snap->serial;
	}
	return t->s;
}

/* ---- the helpers' scratches: a helper thread lives for one request, so
 * its scratch (some 0.7 ms to build for a 784-256-128-10 MLP) is kept here
 * for the next helper on the same snapshot (serial), at most
 * SPARE_SCRATCHES of them; the oldest goes when a new one comes. */

static pthread_mutex_t spare_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { uint64_t serial; nn_scratch *s; } spare[SPARE_SCRATCHES];
static unsigned spare_next;   /* the slot to reuse when all are taken */

static nn_scratch *spare_take(const api_model_snap *snap)
{
	nn_scratch *s = NULL;
	pthread_mutex_lock(&spare_mu);
	for (int i = 0; i < SPARE_SCRATCHES && !s; i++)
		if (spare[i].s && spare[i].serial == snap->serial) {
			s = spare[i].s;
			spare[i].s = NULL;
		}
	pthread_mutex_unlock(&spare_mu);
	return s ? s : nn_scratch_create_frozen(snap->model, STREAM_BLOCK);
}

static void spare_put(uint64_t serial, nn_scratch *s)
{
	if (!s)
		return;
	nn_scratch *old = NULL;
	pthread_mutex_lock(&spare_mu);
	int k = -1;
	for (int i = 0; i < SPARE_SCRATCHES && k < 0; i++)
		if (!spare[i].s)
			k = i;
	if (k < 0) {
		k = (int)(spare_next++ % SPARE_SCRATCHES);
		old = spare[k].s;
	}
	spare[k].serial = serial;
	spare[k].s = s;
	pthread_mutex_unlock(&spare_mu);
	nn_scratch_free(old);
}

/* ---- Accept */

/* The q of one media range's parameters ("; q=0.5; x=y"), 1 when absent. */
static double accept_q(const char *p, const char *end)
{
	double q = 1;
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		if (!semi)
			break;
		p = semi + 1;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			char tmp[16];
			size_t n = strcspn(p + 2, ";,");
			if (n >= sizeof tmp)
				n = sizeof tmp - 1;
			memcpy(tmp, p + 2, n);
			tmp[n] = 0;
			q = strtod(tmp, NULL);
		}
	}
	return q;
}

int api_predict_accepts_binary(const char *accept)
{
	double q_bin = 0, q_json = 0;
	if (!accept)
		return 0;
	const char *p = accept;
	while (*p) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		size_t n = strcspn(p, ";, \t");
		if (n > (size_t)(end - p))
			n = (size_t)(end - p);
		if (n == 24 && strncasecmp(p, "application/octet-stream", n) == 0)
			q_bin = accept_q(p + n, end);
		else if (n == 16 && strncasecmp(p, "application/json", n) == 0)
			q_json = accept_q(p + n, end);
		p = *end ? end + 1 : end;
	}
	return q_bin > 0 && q_bin > q_json;
}

/* ---- numbers */

static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

/* One JSON number at *pp (before end) as a float (the double rounded, like
 * the general path). 0, or -1 when it is not a plain finite number within
 * +-3e38. */
static int fast_number(const char **pp, const char *end, float *out)
{
	const char *p = *pp, *start = p;
	int neg = 0, digits = 0, frac = 0, exp = 0;
	uint64_t m = 0;
	if (p < end && *p == '-') {
		neg = 1;
		p++;
	}
	if (p >= end || *p < '0' || *p > '9')
		return -1;
	if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9')
		return -1;  /* leading zero: not JSON */
	for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
		m = m * 10 + (uint64_t)(*p - '0');
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return -1;
		for (; p < end && *p >= '0' && *p <= '9'; p++, digits++, frac++)
			m = m * 10 + (uint64_t)(*p - '0');
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		int eneg = 0;
		if (p < end && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		if (p >= end || *p < '0' || *p > '9')
			return -1;
		for (; p < end && *p >= '0' && *p <= '9'; p++)
			if (exp < 10000)
				exp = exp * 10 + (*p - '0');
		if (eneg)
			exp = -exp;
	}
	if (digits <= 9 && frac == 0 && exp == 0) {
		/* a plain integer below 1e9: one conversion, always in range */
		*out = neg ? -(float)m : (float)m;
		*pp = p;
		return 0;
	}
	double v;
	int e10 = exp - frac;
	if (digits <= 19 && m < (1ULL << 53) && e10 >= -22 && e10 <= 22) {
		v = (double)m;
		v = e10 < 0 ? v / pow10_exact[-e10] : v * pow10_exact[e10];
		if (neg)
			v = -v;
	} else {
		char tmp[64];
		size_t n = (size_t)(p - start);
		if (n >= sizeof tmp)
			return -1;
		memcpy(tmp, start, n);
		tmp[n] = 0;
		v = strtod(tmp, NULL);
	}
	if (!isfinite(v) || fabs(v) > 3.0e38)
		return -1;
	*out = (float)v;
	*pp = p;
	return 0;
}

/* The run of decimal digits that starts the 8 bytes at p: its length (0
 * to 8) and, when 1 to 7, its value, eight bytes at a time (SWAR): a
 * byte's top bit marks it as no digit; the digits, moved to the top of the
 * word behind zero digits, are summed in pairs, then fours, then all. */
static int swar_digits(const char *p, uint32_t *val)
{
	const uint64_t top = 0x8080808080808080ull, zeros = 0x3030303030303030ull;
	uint64_t x;
	memcpy(&x, p, 8);
	/* > '9', or < '0' (the top bit cleared by the subtraction), or not ASCII */
	uint64_t nd = ((x + 0x4646464646464646ull) | ~((x | top) - zeros) | x) & top;
	int n = nd ? __builtin_ctzll(nd) >> 3 : 8;
	if (n == 0 || n == 8)
		return n;
	/* little-endian: the first character is the low byte; the bytes past
	 * the digits (and any borrow out of them) leave at the top */
	uint64_t d = (x - zeros) << (8 * (8 - n));
	d = d * 10 + (d >> 8);
	d = (((d & 0x000000ff000000ffull) * (100 + (1000000ull << 32))) +
	     (((d >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32)))) >> 32;
	*val = (uint32_t)d;
	return n;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* Bit i of each mask tells the class of byte i of the 64 at s: a digit, a
 * comma, white space, a '0'. */
static void classify64(const char *s, uint64_t *d, uint64_t *c, uint64_t *w, uint64_t *z)
{
	const __m128i lo = _mm_set1_epi8('0' - 1), hi = _mm_set1_epi8('9' + 1);
	const __m128i comma = _mm_set1_epi8(','), sp = _mm_set1_epi8(' '), zero = _mm_set1_epi8('0');
	const __m128i nl = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'), tab = _mm_set1_epi8('\t');
	uint64_t dm = 0, cm = 0, wm = 0, zm = 0;
	for (int k = 0; k < 4; k++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + 16 * k));
		__m128i dig = _mm_and_si128(_mm_cmpgt_epi8(v, lo), _mm_cmplt_epi8(v, hi));
		__m128i ws = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, sp), _mm_cmpeq_epi8(v, nl)),
		                          _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, tab)));
		dm |= (uint64_t)(uint16_t)_mm_movemask_epi8(dig) << (16 * k);
		cm |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, comma)) << (16 * k);
		wm |= (uint64_t)(uint16_t)_mm_movemask_epi8(ws) << (16 * k);
		zm |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)) << (16 * k);
	}
	*d = dm;
	*c = cm;
	*w = wm;
	*z = zm;
}

/* val[j] = the value of the up to 3 digits that end at byte j of the 64 at
 * s (s[-1] and s[-2] readable): units + 10 tens + 100 hundreds, each digit
 * counted only while the digits after it are digits too, 16 bits a lane. */
static void values64(const char *s, uint16_t *val)
{
	const __m128i lo = _mm_set1_epi8('0' - 1), hi = _mm_set1_epi8('9' + 1);
	const __m128i c0 = _mm_set1_epi8('0'), z = _mm_setzero_si128();
	const __m128i ten = _mm_set1_epi16(10), hundred = _mm_set1_epi16(100);
	for (int k = 0; k < 4; k++) {
		const char *q = s + 16 * k;
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)q);
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(q - 1));
		__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(q - 2));
		__m128i db = _mm_and_si128(_mm_cmpgt_epi8(b, lo), _mm_cmplt_epi8(b, hi));
		__m128i dc = _mm_and_si128(_mm_and_si128(_mm_cmpgt_epi8(c, lo), _mm_cmplt_epi8(c, hi)), db);
		__m128i va = _mm_sub_epi8(a, c0);
		__m128i vb = _mm_and_si128(_mm_sub_epi8(b, c0), db);
		__m128i vc = _mm_and_si128(_mm_sub_epi8(c, c0), dc);
		__m128i l16 = _mm_add_epi16(_mm_unpacklo_epi8(va, z),
		              _mm_add_epi16(_mm_mullo_epi16(_mm_unpacklo_epi8(vb, z), ten),
		                            _mm_mullo_epi16(_mm_unpacklo_epi8(vc, z), hundred)));
		__m128i h16 = _mm_add_epi16(_mm_unpackhi_epi8(va, z),
		              _mm_add_epi16(_mm_mullo_epi16(_mm_unpackhi_epi8(vb, z), ten),
		                            _mm_mullo_epi16(_mm_unpackhi_epi8(vc, z), hundred)));
		_mm_storeu_si128((__m128i *)(void *)(val + 16 * k), l16);
		_mm_storeu_si128((__m128i *)(void *)(val + 16 * k + 8), h16);
	}
}

/* What the scan of a row of small integers carries from one 64-byte block
 * to the next: the last byte's digit, comma and white-space bits, the
 * previous block's digits, and the numbers found bad so far. */
typedef struct row_scan {
	uint64_t carry_d, carry_c, carry_w, prev_d, bad;
} row_scan;

#define ROW_SCAN_INIT { 0, 1, 0, 0, 0 }

/*
 * One 64-byte block of a row at p + off (row length len), as masks with
 * bit i for byte i: d digits, cm commas, w white space, zm '0's; valid the
 * bytes inside the row. -1 when the block breaks int_row's structure
 * rules; else 0, with the bytes ending a run of digits in *ends, the bytes
 * after a digit in *pd (when pd is not NULL), numbers of 4 digits or more
 * and numbers starting with 0 marked in st->bad (checked once, after the
 * row), and st moved past the block.
 */
static inline int scan_block(row_scan *st, uint64_t d, uint64_t cm, uint64_t w, uint64_t zm,
                             uint64_t valid, const char *p, size_t off, size_t len,
                             uint64_t *ends, uint64_t *pd)
{
	uint64_t pdm = d << 1 | st->carry_d, pc = cm << 1 | st->carry_c, pw = w << 1 | st->carry_w;
	if ((~(d | cm | w) | (w & ~pc) | (pdm & ~d & ~cm) | (pc & ~(d | w)) | (pw & ~d)) & valid)
		return -1;
	/* a run that touches the block's end may go on in the next */
	uint64_t more = off + 64 < len && p[off + 64] >= '0' && p[off + 64] <= '9';
	uint64_t e = d & ~(d >> 1 | more << 63) & valid;
	uint64_t starts = d & ~pdm & valid;
	/* a run of 4 digits or more ends here; a number starts with 0 and
	 * goes on */
	st->bad |= e & pdm & (d << 2 | st->prev_d >> 62) & (d << 3 | st->prev_d >> 61);
	st->bad |= starts & zm & (d >> 1 | more << 63);
	st->carry_d = d >> 63;
	st->carry_c = cm >> 63;
	st->carry_w = w >> 63;
	st->prev_d = d;
	*ends = e;
	if (pd)
		*pd = pdm;
	return 0;
}

/*
 * A row of integers of 1 to 3 digits (image pixels): as int_row, but the
 * numbers' values are computed for every byte at once (values64) and read
 * where each run of digits ends. p - 2 must be readable (the body holds at
 * least '[' and one more byte before a row). 0 when read; -1 when the row
 * is of another shape or holds a longer number (int_row then reads it).
 */
static int small_int_row(const char *p, const char *close, float *x, int width)
{
	size_t len = (size_t)(close - p);
	row_scan st = ROW_SCAN_INIT;
	int c = 0, last_digit = 0;
	uint16_t val[64];
	for (size_t off = 0; off < len; off += 64) {
		const char *s = p + off;
		char tail[66];
		size_t m = len - off < 64 ? len - off : 64;
		if (m < 64) {
			memcpy(tail, s - 2, m + 2);
			memset(tail + 2 + m, 'x', 64 - m);
			s = tail + 2;
		}
		uint64_t d, cm, w, zm;
		classify64(s, &d, &cm, &w, &zm);
		uint64_t valid = m == 64 ? ~0ull : (1ull << m) - 1;
		uint64_t ends;
		if (scan_block(&st, d, cm, w, zm, valid, p, off, len, &ends, NULL) != 0)
			return -1;
		last_digit = (int)(d >> (m - 1) & 1);
		values64(s, val);
		if (c + 32 <= width) {
			/* room for any block: 64 bytes end 32 numbers at most */
			for (uint64_t e = ends; e; e &= e - 1)
				x[c++] = (float)val[__builtin_ctzll(e)];
		} else {
			for (uint64_t e = ends; e; e &= e - 1) {
				if (c == width)
					return -1;
				x[c++] = (float)val[__builtin_ctzll(e)];
			}
		}
	}
	return !st.bad && last_digit && c == width ? 0 : -1;
}

/*
 * A row of small non-negative integers, the common shape of image data
 * ("0,12,255" or "0, 12, 255"), p just past the '[' and close at the ']':
 * the bytes are classified 64 at a time, the structure checked on the bit
 * masks (digits, then a comma, then at most one white space, then digits
 * again), and each number read from where its run starts, so one number's
 * reading never waits for the one before. 0 when read (width numbers);
 * -1 when the row is of another shape (read_row then reads it).
 */
static int int_row(const char *p, const char *close, float *x, int width)
{
	size_t len = (size_t)(close - p);
	/* the byte before the row counts as a comma: a digit or one white space
	 * may follow it */
	uint64_t carry_d = 0, carry_c = 1, carry_w = 0;
	int c = 0, last_digit = 0;
	unsigned bad = 0;
	for (size_t off = 0; off < len; off += 64) {
		const char *s = p + off;
		char tail[64];
		size_t m = len - off < 64 ? len - off : 64;
		if (m < 64) {
			memcpy(tail, s, m);
			memset(tail + m, 'x', 64 - m);
			s = tail;
		}
		uint64_t d, cm, w, zm;
		classify64(s, &d, &cm, &w, &zm);
		(void)zm;
		uint64_t valid = m == 64 ? ~0ull : (1ull << m) - 1;
		/* the class of the byte before each byte */
		uint64_t pd = d << 1 | carry_d, pc = cm << 1 | carry_c, pw = w << 1 | carry_w;
		if ((~(d | cm | w) |                 /* another byte */
		     (w & ~pc) |                     /* white space not after a comma */
		     (pd & ~d & ~cm) |               /* a digit run not ended by a comma */
		     (pc & ~(d | w)) |               /* a comma not followed by a number */
		     (pw & ~d)) & valid)             /* white space not followed by one */
			return -1;
		carry_d = d >> 63;
		carry_c = cm >> 63;
		carry_w = w >> 63;
		last_digit = (int)(d >> (m - 1) & 1);
		for (uint64_t starts = d & ~pd & valid; starts; starts &= starts - 1) {
			int i = __builtin_ctzll(starts);
			const char *q = p + off + (size_t)i;
			uint32_t v = 0;
			/* the run's length from the mask, unless it reaches the
			 * block's end (and so may go on) */
			uint64_t after = ~(d >> i);  /* 0: 64 digits from the block's start */
			int n = after ? __builtin_ctzll(after) : 64;
			if (c == width)
				return -1;
			if (n <= 4 && i + n < 64) {
				/* 1 to 4 digits, then a comma or the ']': 4 bytes readable;
				 * the digits go to the top of the word behind zero digits */
				uint32_t y;
				memcpy(&y, q, 4);
				y = (y - 0x30303030u) << (8 * (4 - n));
				y = y * 10 + (y >> 8);
				v = (y & 0xff) * 100 + (y >> 16 & 0xff);
			} else if (close - q >= 8) {
				uint32_t w8 = 0;
				n = swar_digits(q, &w8);
				v = w8;
			} else {
				for (n = 0; q[n] >= '0' && q[n] <= '9' && n < 8; n++)
					v = v * 10 + (uint32_t)(q[n] - '0');
			}
			/* too long for a float to hold exactly, or 01: checked once,
			 * after the row (a branch here would guess wrong often) */
			bad |= (unsigned)(n >= 8) | ((unsigned)(n > 1) & (unsigned)(*q == '0'));
			x[c++] = (float)v;
		}
	}
	return !bad && last_digit && c == width ? 0 : -1;
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PIXEL_ROW_AVX512 1
#define AVX512_ROW __attribute__((target("avx512f,avx512bw,avx512vbmi2")))

/* 16 numbers from the bytes of their units, tens and hundreds (0 where a
 * number has fewer digits) into x, the first n of them (n <= 16). */
AVX512_ROW static inline void put16(float *x, __m128i u, __m128i t, __m128i h, int n)
{
	__m512i v = _mm512_add_epi32(_mm512_cvtepu8_epi32(u),
	            _mm512_add_epi32(_mm512_mullo_epi32(_mm512_cvtepu8_epi32(t), _mm512_set1_epi32(10)),
	                             _mm512_mullo_epi32(_mm512_cvtepu8_epi32(h), _mm512_set1_epi32(100))));
	_mm512_mask_storeu_ps(x, (__mmask16)((1u << n) - 1), _mm512_cvtepi32_ps(v));
}

/*
 * small_int_row with 64-byte vectors (AVX-512 BW and VBMI2): the same
 * structure rules on the same masks, but each number's digits are packed
 * together (compress: units, tens, hundreds, one byte each) and 16 numbers
 * at a time become floats, with no loop over the numbers. p - 2 readable;
 * the loads past close are masked off.
 */
AVX512_ROW static int small_int_row_avx512(const char *p, const char *close, float *x, int width)
{
	size_t len = (size_t)(close - p);
	row_scan st = ROW_SCAN_INIT;
	int c = 0, last_digit = 0;
	const __m512i c0 = _mm512_set1_epi8('0'), ten = _mm512_set1_epi8(10);
	const __m512i comma = _mm512_set1_epi8(','), sp = _mm512_set1_epi8(' ');
	const __m512i nl = _mm512_set1_epi8('\n'), cr = _mm512_set1_epi8('\r');
	const __m512i tab = _mm512_set1_epi8('\t');
	for (size_t off = 0; off < len; off += 64) {
		const char *s = p + off;
		size_t m = len - off < 64 ? len - off : 64;
		__mmask64 valid = m == 64 ? ~0ull : (1ull << m) - 1;
		__m512i v = _mm512_maskz_loadu_epi8(valid, s);
		__m512i v1 = _mm512_maskz_loadu_epi8(valid, s - 1);
		__m512i v2 = _mm512_maskz_loadu_epi8(valid, s - 2);
		__m512i dv = _mm512_sub_epi8(v, c0), dv1 = _mm512_sub_epi8(v1, c0);
		__m512i dv2 = _mm512_sub_epi8(v2, c0);
		uint64_t d = _mm512_mask_cmplt_epu8_mask(valid, dv, ten);
		uint64_t cm = _mm512_mask_cmpeq_epi8_mask(valid, v, comma);
		uint64_t w = (_mm512_cmpeq_epi8_mask(v, sp) | _mm512_cmpeq_epi8_mask(v, nl) |
		              _mm512_cmpeq_epi8_mask(v, cr) | _mm512_cmpeq_epi8_mask(v, tab)) & valid;
		uint64_t zm = _mm512_mask_cmpeq_epi8_mask(valid, v, c0);
		/* the bytes two before each byte are digits (taken before st moves on) */
		uint64_t pd2 = d << 2 | st.prev_d >> 62;
		uint64_t ends, pd;
		if (scan_block(&st, d, cm, w, zm, valid, p, off, len, &ends, &pd) != 0)
			return -1;
		last_digit = (int)(d >> (m - 1) & 1);
		int k = __builtin_popcountll(ends);
		if (k == 0)
			continue;
		if (c + k > width)
			return -1;
		/* each number's tens where the byte before its end is a digit,
		 * hundreds where the two before are (a run of 4 is bad above) */
		__m512i u = _mm512_maskz_compress_epi8(ends, dv);
		__m512i t = _mm512_maskz_compress_epi8(ends, _mm512_maskz_mov_epi8(pd, dv1));
		__m512i h = _mm512_maskz_compress_epi8(ends, _mm512_maskz_mov_epi8(pd & pd2, dv2));
		put16(x + c, _mm512_castsi512_si128(u), _mm512_castsi512_si128(t),
		      _mm512_castsi512_si128(h), k < 16 ? k : 16);
		if (k > 16)
			put16(x + c + 16, _mm512_extracti32x4_epi32(u, 1), _mm512_extracti32x4_epi32(t, 1),
			      _mm512_extracti32x4_epi32(h, 1), k - 16);
		c += k;
	}
	return !st.bad && last_digit && c == width ? 0 : -1;
}

static int avx512_rows = -1;   /* -1: not asked yet; 0 or 1 */

static int has_avx512_rows(void)
{
	int v = __atomic_load_n(&avx512_rows, __ATOMIC_RELAXED);
	if (v < 0) {
		v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		    __builtin_cpu_supports("avx512vbmi2");
		__atomic_store_n(&avx512_rows, v, __ATOMIC_RELAXED);
	}
	return v;
}
#endif

int api_predict_avx512_rows(int on)
{
#ifdef PIXEL_ROW_AVX512
	int was = has_avx512_rows();
	if (on >= 0)
		__atomic_store_n(&avx512_rows, on && __builtin_cpu_supports("avx512f") &&
		                 __builtin_cpu_supports("avx512bw") &&
		                 __builtin_cpu_supports("avx512vbmi2"), __ATOMIC_RELAXED);
	return was;
#else
	(void)on;
	return 0;
#endif
}

#define IS_WS(ch) ((ch) == ' ' || (ch) == '\n' || (ch) == '\r' || (ch) == '\t')

/* The numbers of one row, p just past its '[' and close at its ']', into
 * x (width numbers exactly). 0, or -1 when the row is not plain numbers or
 * not width of them. White space never runs past close (a ']'). */
static int read_row(const char *p, const char *close, float *x, int width)
{
	int c = 0;
	for (;;) {
		while (IS_WS(*p))
			p++;
		if (c == width)
			return -1;
		/* the common case: an integer of up to 7 digits, then , ] or
		 * white space (and no leading zero) */
		uint32_t v = 0;
		int n = close - p >= 8 ? swar_digits(p, &v) : -1;
		if (n < 0) {
			const char *q = p;
			while (*q >= '0' && *q <= '9' && q - p < 8)
				v = v * 10 + (uint32_t)(*q++ - '0');
			n = (int)(q - p);
		}
		if (n > 0 && n < 8 && (p[n] == ',' || p[n] == ']' || IS_WS(p[n])) &&
		    (*p != '0' || n == 1)) {
			x[c] = (float)v;
			p += n;
		} else if (fast_number(&p, close, &x[c]) < 0) {
			return -1;
		}
		c++;
		while (IS_WS(*p))
			p++;
		if (*p == ',') {
			p++;
			continue;
		}
		if (p == close)
			return c == width ? 0 : -1;
		return -1;
	}
}

/* ---- the stream */

typedef struct helper helper;
static void helper_start(api_predict_stream *ps, int64_t expect);
static void helper_end(api_predict_stream *ps, int stop);
static void helper_free(api_predict_stream *ps);

enum { JS_PREFIX, JS_ROW, JS_AFTER_ROW, JS_END, JS_TAIL, JS_FAIL };

struct api_predict_stream {
	const api_backend *b;
	api_model_snap *snap;
	api_predict_kind kind;
	int binary_reply;
	int inputs, outputs;
	/* the rows not yet predicted: blk_cap rows of inputs floats */
	float *blk;
	int blk_cap, blk_rows;
	size_t blk_fill;         /* binary: bytes in blk */
	/* the outputs: done rows predicted so far, room for out_cap */
	float *out;
	int64_t done, out_cap;
	int64_t rows;            /* rows read */
	nn_status st;            /* the first forward failure */
	/* JSON: where the reader is and what it expects there */
	size_t pos, searched;
	int js;
	/* binary */
	int64_t total;           /* body bytes */
	int too_many;            /* more rows than API_PREDICT_MAX_ROWS */
	api_err *err;            /* non-finite values (NULL until one) */
	int oom;                 /* out of memory naming them */
	helper *hp;              /* the helper thread, or NULL */
};

api_predict_stream *api_predict_stream_new(const api_backend *b, const api_req *rq,
                                           api_predict_kind kind, int64_t expect_len,
                                           int binary_reply, api_err *e)
{
	api_model_snap *s = NULL;
	if (!b || !rq || !rq->id)
		return NULL;
	if (b->model_snapshot(b->ctx, rq->id, &s, e) < 0)
		return NULL;
	const nn_model_spec *spec = nn_model_spec_of(s->model);
	api_predict_stream *ps = calloc(1, sizeof *ps);
	if (!ps) {
		b->snap_release(b->ctx, s);
		if (e)
			api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	ps->b = b;
	ps->snap = s;
	ps->kind = kind;
	ps->binary_reply = binary_reply;
	ps->inputs = spec->inputs;
	ps->outputs = spec->outputs;
	ps->st = NN_OK;
	if (kind == API_PREDICT_JSON && s->enc && !api_tab_enc_plain(s->enc))
		ps->js = JS_FAIL;   /* raw records: api_model_predict_general encodes them */
	int64_t row_bytes = (int64_t)spec->inputs * 4;
	int64_t expect = STREAM_BLOCK;
	if (expect_len >= 0) {
		/* a JSON number takes two bytes at least ("0,") */
		expect = kind == API_PREDICT_BINARY ? expect_len / row_bytes
		                                    : expect_len / (2 * (int64_t)spec->inputs) + 1;
		if (kind == API_PREDICT_BINARY && expect > 0 && expect <= API_PREDICT_MAX_ROWS &&
		    expect_len % row_bytes == 0) {
			ps->out = malloc((size_t)expect * (size_t)ps->outputs * sizeof(float));
			ps->out_cap = ps->out ? expect : 0;
		}
		if (expect < 1)
			expect = 1;
	}
	ps->blk_cap = expect < STREAM_BLOCK ? (int)expect : STREAM_BLOCK;
	if (expect >= HELPER_MIN_ROWS && expect_len >= helper_min_bytes)
		helper_start(ps, expect);
	if (!ps->hp)
		ps->blk = malloc((size_t)ps->blk_cap * (size_t)row_bytes);
	if (!ps->blk) {
		api_predict_stream_free(ps);
		if (e)
			api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	return ps;
}

void api_predict_stream_free(api_predict_stream *ps)
{
	if (!ps)
		return;
	helper_free(ps);
	if (ps->snap)
		ps->b->snap_release(ps->b->ctx, ps->snap);
	free(ps->blk);
	free(ps->out);
	free(ps->err);
	free(ps);
}

/* ---- the helper: a second thread that predicts blocks while this one
 * reads the next (bodies of HELPER_MIN_BYTES that may hold HELPER_MIN_ROWS
 * rows or more; HELPER_MAX of them at once, other streams predict alone).
 *
 * The reader fills a free slot of the ring and queues it; the helper
 * predicts the queued blocks, the lowest rows first. When no slot is free
 * the reader predicts a queued block itself rather than wait, so the two
 * threads share the forward passes by how fast each goes. The outputs are
 * allocated whole beforehand (the body's length bounds its rows), each
 * block writing its own rows, so rows before done (every block below it
 * predicted) are final. The JSON reply's text is written in row order, one
 * thread at a time: by the helper when nothing is queued or the text lags
 * more than HELPER_TEXT_LAG rows, by the reader when no slot is free
 * (before it predicts) and at the end, so that little is left for the end.
 * Under mu: the slots, done, texted, texting, st. */

enum { SLOT_FREE, SLOT_FILLING, SLOT_QUEUED, SLOT_BUSY };

static int64_t helper_streams;   /* streams that got a helper, ever */
static int helpers_live;         /* helpers now */

struct helper {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* any change below */
	float *ring[HELPER_RING];
	int state[HELPER_RING];
	int rows[HELPER_RING];    /* a queued block's rows */
	int64_t first[HELPER_RING];  /* and the first of them */
	int64_t queued;           /* rows queued so far */
	int64_t done;             /* rows before it all predicted */
	int64_t texted;           /* rows written into text */
	int texting;              /* a thread is writing text */
	int closing;              /* no more blocks come: predict the rest, then end */
	int stop;                 /* end now (the result is not wanted) */
	int joined;
	nn_status st;             /* the first failure */
	api_predict_text *text;   /* the JSON reply, or NULL (a float32 reply) */
};

/* Predicts n rows at x into the outputs from row first, with scratch sc
 * (NULL: out of memory). */
static nn_status predict_block(api_predict_stream *ps, nn_scratch *sc, const float *x,
                               int64_t first, int n)
{
	return sc ? nn_predict(ps->snap->model, sc, x, n, ps->out + first * ps->outputs)
	          : NN_ENOMEM;
}

/* Without a helper: predicts n rows at x after those done. */
static void predict_rows(api_predict_stream *ps, const float *x, int n)
{
	if (n == 0 || ps->st != NN_OK)
		return;
	if (ps->done + n > ps->out_cap) {
		int64_t cap = ps->out_cap ? ps->out_cap : ps->blk_cap;
		while (cap < ps->done + n)
			cap *= 2;
		float *o = realloc(ps->out, (size_t)cap * (size_t)ps->outputs * sizeof *o);
		if (!o) {
			ps->st = NN_ENOMEM;
			return;
		}
		ps->out = o;
		ps->out_cap = cap;
	}
	ps->st = predict_block(ps, api_predict_scratch(ps->snap), x, ps->done, n);
	ps->done += n;
}

/* The queued slot with the lowest rows, or -1. Under mu, as the rest. */
static int slot_next(const helper *hp)
{
	int best = -1;
	for (int i = 0; i < HELPER_RING; i++)
		if (hp->state[i] == SLOT_QUEUED && (best < 0 || hp->first[i] < hp->first[best]))
			best = i;
	return best;
}

/* Predicts the queued block in slot i with scratch sc, NULL for this
 * thread's (mu held on entry and exit). */
static void slot_predict(api_predict_stream *ps, int i, nn_scratch *sc)
{
	helper *hp = ps->hp;
	hp->state[i] = SLOT_BUSY;
	nn_status st = hp->st;
	if (st == NN_OK) {
		pthread_mutex_unlock(&hp->mu);
		st = predict_block(ps, sc ? sc : api_predict_scratch(ps->snap), hp->ring[i],
		                   hp->first[i], hp->rows[i]);
		pthread_mutex_lock(&hp->mu);
	}
	if (hp->st == NN_OK)
		hp->st = st;
	hp->state[i] = SLOT_FREE;
	int64_t done = hp->queued;
	for (int k = 0; k < HELPER_RING; k++)
		if ((hp->state[k] == SLOT_QUEUED || hp->state[k] == SLOT_BUSY) && hp->first[k] < done)
			done = hp->first[k];
	hp->done = done;
	pthread_cond_broadcast(&hp->cv);
}

/* Writes the next predicted rows not yet in the text, a block at most,
 * unless another thread is writing it (mu held on entry and exit). 1 when
 * it wrote some. */
static int text_step(api_predict_stream *ps)
{
	helper *hp = ps->hp;
	if (!hp->text || hp->texting || hp->st != NN_OK || hp->texted >= hp->done)
		return 0;
	int64_t from = hp->texted;
	int n = hp->done - from < STREAM_BLOCK ? (int)(hp->done - from) : STREAM_BLOCK;
	hp->texting = 1;
	pthread_mutex_unlock(&hp->mu);
	api_predict_text_rows(hp->text, ps->snap, ps->out + from * ps->outputs, from, n,
	                      ps->outputs);
	pthread_mutex_lock(&hp->mu);
	hp->texted = from + n;
	hp->texting = 0;
	pthread_cond_broadcast(&hp->cv);
	return 1;
}

/* The helper's thread: predicts queued blocks, else writes text, else
 * waits; ends when stopped, or closing with nothing left to do. */
static void *helper_main(void *arg)
{
	api_predict_stream *ps = arg;
	helper *hp = ps->hp;
	/* a kept scratch, or a new one (NULL: this thread's, as a last resort) */
	nn_scratch *sc = spare_take(ps->snap);
	pthread_mutex_lock(&hp->mu);
	while (!hp->stop) {
		/* blocks first, but the text lags HELPER_TEXT_LAG rows at most
		 * (what is left of it at the end is written by one thread alone) */
		if (hp->done - hp->texted > HELPER_TEXT_LAG && text_step(ps))
			continue;
		int i = slot_next(hp);
		if (i >= 0)
			slot_predict(ps, i, sc);
		else if (!text_step(ps)) {
			if (hp->closing)
				break;
			pthread_cond_wait(&hp->cv, &hp->mu);
		}
	}
	pthread_mutex_unlock(&hp->mu);
	spare_put(ps->snap->serial, sc);
	return NULL;
}

/* Starts the helper for a body of up to expect rows (ps->hp stays NULL when
 * the outputs would be too large or anything fails: the stream then
 * predicts on its own thread). */
static void helper_start(api_predict_stream *ps, int64_t expect)
{
	int64_t rows = expect < API_PREDICT_MAX_ROWS ? expect : API_PREDICT_MAX_ROWS;
	if (rows * ps->outputs > HELPER_MAX_OUTPUTS)
		return;
	/* more helpers than cores only add switching and memory */
	if (__atomic_add_fetch(&helpers_live, 1, __ATOMIC_RELAXED) > HELPER_MAX) {
		__atomic_sub_fetch(&helpers_live, 1, __ATOMIC_RELAXED);
		return;
	}
	helper *hp = calloc(1, sizeof *hp);
	if (!hp) {
		__atomic_sub_fetch(&helpers_live, 1, __ATOMIC_RELAXED);
		return;
	}
	size_t bytes = (size_t)ps->blk_cap * (size_t)ps->inputs * sizeof(float);
	int ok = 1;
	for (int i = 0; i < HELPER_RING; i++)
		ok &= (hp->ring[i] = malloc(bytes)) != NULL;
	if (ok && ps->out_cap < rows) {
		free(ps->out);
		ps->out = malloc((size_t)rows * (size_t)ps->outputs * sizeof(float));
		ps->out_cap = ps->out ? rows : 0;
		ok = ps->out != NULL;
	}
	if (ok && !ps->binary_reply) {
		/* some 10 bytes a number for the rows the body may hold (a JSON
		 * body holds about half as many, each number some 20 bytes) */
		int64_t hint = rows * ps->outputs * 10;
		hint = hint < ((int64_t)16 << 20) ? hint : (int64_t)16 << 20;
		ok = (hp->text = api_predict_text_new(ps->snap, (size_t)hint)) != NULL;
	}
	hp->st = NN_OK;
	hp->state[0] = SLOT_FILLING;
	if (ok && pthread_mutex_init(&hp->mu, NULL) != 0) {
		ok = 0;
	} else if (ok && pthread_cond_init(&hp->cv, NULL) != 0) {
		pthread_mutex_destroy(&hp->mu);
		ok = 0;
	}
	if (ok) {
		ps->hp = hp;
		if (pthread_create(&hp->th, NULL, helper_main, ps) != 0) {
			pthread_cond_destroy(&hp->cv);
			pthread_mutex_destroy(&hp->mu);
			ps->hp = NULL;
			ok = 0;
		}
	}
	if (!ok) {
		for (int i = 0; i < HELPER_RING; i++)
			free(hp->ring[i]);
		api_predict_text_free(hp->text);
		free(hp);
		__atomic_sub_fetch(&helpers_live, 1, __ATOMIC_RELAXED);
		return;
	}
	ps->blk = hp->ring[0];
	__atomic_add_fetch(&helper_streams, 1, __ATOMIC_RELAXED);
}

int64_t api_predict_helper_streams(void)
{
	return __atomic_load_n(&helper_streams, __ATOMIC_RELAXED);
}

int64_t api_predict_helper_min_bytes(int64_t bytes)
{
	int64_t was = __atomic_load_n(&helper_min_bytes, __ATOMIC_RELAXED);
	if (bytes >= 0)
		__atomic_store_n(&helper_min_bytes, bytes, __ATOMIC_RELAXED);
	return was;
}

/* Queues the block being filled (n rows) and takes a free slot; while none
 * is free, writes text, else predicts a queued block, else waits. */
static void helper_queue(api_predict_stream *ps, int n)
{
	helper *hp = ps->hp;
	pthread_mutex_lock(&hp->mu);
	int f = 0;
	while (hp->state[f] != SLOT_FILLING)
		f++;
	if (hp->queued + n > ps->out_cap) {
		/* never: the rows a body can hold were counted from its length */
		if (hp->st == NN_OK)
			hp->st = NN_EINVAL;
		pthread_mutex_unlock(&hp->mu);
		return;
	}
	hp->state[f] = SLOT_QUEUED;
	hp->rows[f] = n;
	hp->first[f] = hp->queued;
	hp->queued += n;
	pthread_cond_broadcast(&hp->cv);
	for (;;) {
		for (f = 0; f < HELPER_RING && hp->state[f] != SLOT_FREE; f++)
			;
		if (f < HELPER_RING)
			break;
		/* the text first: what is left of it at the end is written by one
		 * thread while the other waits */
		if (text_step(ps))
			continue;
		int i = slot_next(hp);
		if (i >= 0)
			slot_predict(ps, i, NULL);
		else
			pthread_cond_wait(&hp->cv, &hp->mu);
	}
	hp->state[f] = SLOT_FILLING;
	ps->blk = hp->ring[f];
	pthread_mutex_unlock(&hp->mu);
}

/* Ends the helper: stop, at once (the result is not wanted); else after
 * every queued block is predicted and every row is in the text, this
 * thread sharing the work. */
static void helper_end(api_predict_stream *ps, int stop)
{
	helper *hp = ps->hp;
	if (!hp || hp->joined)
		return;
	pthread_mutex_lock(&hp->mu);
	hp->closing = 1;
	if (stop)
		hp->stop = 1;
	pthread_cond_broadcast(&hp->cv);
	while (!stop) {
		int i = slot_next(hp), busy = 0;
		for (int k = 0; k < HELPER_RING; k++)
			busy |= hp->state[k] == SLOT_BUSY;
		if (i >= 0)
			slot_predict(ps, i, NULL);
		else if (text_step(ps))
			continue;
		else if (busy || hp->texting)
			pthread_cond_wait(&hp->cv, &hp->mu);
		else
			break;   /* all predicted, and the text (if any) written */
	}
	pthread_mutex_unlock(&hp->mu);
	pthread_join(hp->th, NULL);
	hp->joined = 1;
	if (ps->st == NN_OK)
		ps->st = hp->st;
	ps->done = hp->queued;
}

static void helper_free(api_predict_stream *ps)
{
	helper *hp = ps->hp;
	if (!hp)
		return;
	helper_end(ps, 1);
	pthread_cond_destroy(&hp->cv);
	pthread_mutex_destroy(&hp->mu);
	for (int i = 0; i < HELPER_RING; i++)
		free(hp->ring[i]);
	api_predict_text_free(hp->text);
	free(hp);
	ps->hp = NULL;
	ps->blk = NULL;
	__atomic_sub_fetch(&helpers_live, 1, __ATOMIC_RELAXED);
}

/* Predicts the block's rows into the outputs (or queues them for the
 * helper). */
static void flush(api_predict_stream *ps)
{
	int n = ps->blk_rows;
	ps->blk_rows = 0;
	ps->blk_fill = 0;
	if (n == 0)
		return;
	if (ps->hp)
		helper_queue(ps, n);
	else
		predict_rows(ps, ps->blk, n);
}

void api_predict_stream_scan(api_predict_stream *ps, const char *body, size_t len)
{
	static const char key[] = "\"instances\"";
	const size_t klen = sizeof key - 1;
	if (!ps || ps->kind != API_PREDICT_JSON || ps->js == JS_FAIL)
		return;
	if (!body || body[len] != 0 || ps->pos > len) {
		ps->js = JS_FAIL;
		return;
	}
	const char *p = body + ps->pos, *end = body + len, *q;
	for (;;) {
		switch (ps->js) {
		case JS_PREFIX:
			/* ws { ws "instances" ws : ws [ - read whole once it is all here */
			q = skip_ws(p, end);
			if (q == end)
				goto wait;
			if (*q++ != '{')
				goto fail;
			q = skip_ws(q, end);
			if ((size_t)(end - q) < klen) {
				if (memcmp(q, key, (size_t)(end - q)) != 0)
					goto fail;
				goto wait;
			}
			if (memcmp(q, key, klen) != 0)
				goto fail;
			q = skip_ws(q + klen, end);
			if (q == end)
				goto wait;
			if (*q++ != ':')
				goto fail;
			q = skip_ws(q, end);
			if (q == end)
				goto wait;
			if (*q++ != '[')
				goto fail;
			p = q;
			ps->js = JS_ROW;
			break;
		case JS_ROW: {
			p = skip_ws(p, end);
			if (p == end)
				goto wait;
			if (*p != '[')
				goto fail;
			/* resume the search for ']' where the last call left it */
			size_t from = (size_t)(p - body) + 1;
			if (ps->searched > from)
				from = ps->searched;
			const char *close = memchr(body + from, ']', len - from);
			if (!close) {
				ps->searched = len;
				goto wait;
			}
			ps->searched = 0;
			float *x = ps->blk + (size_t)ps->blk_rows * ps->inputs;
			if (ps->rows >= API_PREDICT_MAX_ROWS || (ps->hp && ps->rows >= ps->out_cap))
				goto fail;
#if defined(__SSE2__)
			if (
#ifdef PIXEL_ROW_AVX512
			    (has_avx512_rows() ? small_int_row_avx512(p + 1, close, x, ps->inputs)
			                       : small_int_row(p + 1, close, x, ps->inputs)) < 0 &&
#else
			    small_int_row(p + 1, close, x, ps->inputs) < 0 &&
#endif
			    int_row(p + 1, close, x, ps->inputs) < 0 &&
			    read_row(p + 1, close, x, ps->inputs) < 0)
				goto fail;
#else
			if (read_row(p + 1, close, x, ps->inputs) < 0)
				goto fail;
#endif
			ps->rows++;
			if (++ps->blk_rows == ps->blk_cap)
				flush(ps);
			p = close + 1;
			ps->js = JS_AFTER_ROW;
			break;
		}
		case JS_AFTER_ROW:
			p = skip_ws(p, end);
			if (p == end)
				goto wait;
			if (*p == ',')
				ps->js = JS_ROW;
			else if (*p == ']')
				ps->js = JS_END;
			else
				goto fail;
			p++;
			break;
		case JS_END:
			p = skip_ws(p, end);
			if (p == end)
				goto wait;
			if (*p++ != '}')
				goto fail;
			ps->js = JS_TAIL;
			break;
		default:   /* JS_TAIL: only white space may follow */
			p = skip_ws(p, end);
			if (p != end)
				goto fail;
			goto wait;
		}
	}
wait:
	ps->pos = (size_t)(p - body);
	return;
fail:
	ps->js = JS_FAIL;
}

/* 0 when one of the n float32 bit patterns is an infinity or a NaN (every
 * exponent bit set). Two at a time in 64-bit words: adding 1 to a full
 * exponent carries into the lane's top bit, and never out of the lane. */
static int all_finite(const uint32_t *w, size_t n)
{
	const uint64_t expo = 0x7f8000007f800000ull, one = 0x0080000000800000ull;
	uint64_t bad = 0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t a, b, c, d;
		memcpy(&a, w + i, 8);
		memcpy(&b, w + i + 2, 8);
		memcpy(&c, w + i + 4, 8);
		memcpy(&d, w + i + 6, 8);
		bad |= ((a & expo) + one) | ((b & expo) + one) | ((c & expo) + one) |
		       ((d & expo) + one);
	}
	for (; i < n; i++)
		bad |= (uint64_t)((w[i] & 0x7f800000u) + 0x00800000u);
	return (bad & 0x8000000080000000ull) == 0;
}

/* Binary: the n full rows in the block are read; check and predict them. */
static void binary_rows(api_predict_stream *ps, int n)
{
	if (ps->rows + n > API_PREDICT_MAX_ROWS)
		ps->too_many = 1;
	if (ps->too_many || ps->err) {
		ps->blk_fill = 0;
		return;
	}
	size_t count = (size_t)n * (size_t)ps->inputs;
	uint32_t *w = (uint32_t *)ps->blk;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	for (size_t i = 0; i < count; i++)
		w[i] = __builtin_bswap32(w[i]);
#endif
	if (!all_finite(w, count)) {
		ps->err = calloc(1, sizeof *ps->err);
		if (!ps->err) {
			ps->oom = 1;
		} else {
			for (size_t i = 0; i < count && ps->err->n_fields < API_MAX_FIELD_ERRORS; i++)
				if ((w[i] & 0x7f800000u) == 0x7f800000u) {
					char path[64];
					snprintf(path, sizeof path, "instances[%lld][%d]",
					         (long long)(ps->rows + (int64_t)(i / (size_t)ps->inputs)),
					         (int)(i % (size_t)ps->inputs));
					api_err_field(ps->err, path, "must be a finite number");
				}
		}
		ps->blk_fill = 0;
		return;
	}
	ps->blk_rows = n;
	ps->rows += n;
	flush(ps);
}

void api_predict_stream_feed(api_predict_stream *ps, const char *piece, size_t len)
{
	if (!ps || ps->kind != API_PREDICT_BINARY)
		return;
	ps->total += (int64_t)len;
	size_t cap = (size_t)ps->blk_cap * (size_t)ps->inputs * 4;
	while (len > 0) {
		size_t take = cap - ps->blk_fill;
		if (take > len)
			take = len;
		memcpy((char *)ps->blk + ps->blk_fill, piece, take);
		ps->blk_fill += take;
		piece += take;
		len -= take;
		if (ps->blk_fill == cap)
			binary_rows(ps, ps->blk_cap);
	}
}

/* The problem reply of a binary body: not whole rows (400), or the
 * non-finite values found, or no rows or too many (422). */
static void binary_problem(const api_predict_stream *ps, int bad_len, api_reply *rp)
{
	int64_t row_bytes = (int64_t)ps->inputs * 4;
	api_err *e = calloc(1, sizeof *e);
	if (!e) {
		api_reply_error(rp, NULL);   /* a 500 */
		return;
	}
	if (bad_len) {
		api_err_field(e, "body", "is %lld bytes, not a whole number of rows of %d "
		              "float32 values (%lld bytes each)", (long long)ps->total,
		              ps->inputs, (long long)row_bytes);
		api_err_set(e, 400, "malformed_body", "the body is not a whole number of "
		            "float32 rows of the model's %d inputs", ps->inputs);
	} else if (ps->err) {
		*e = *ps->err;
	} else {
		api_err_field(e, "body", "must hold 1 to %d rows of %d float32 values "
		              "(%lld bytes each); it holds %lld", API_PREDICT_MAX_ROWS,
		              ps->inputs, (long long)row_bytes, (long long)(ps->total / row_bytes));
	}
	api_reply_error(rp, e);
	free(e);
}

int api_predict_stream_finish(api_predict_stream *ps, const api_req *rq, api_reply *rp)
{
	(void)rq;
	if (!ps)
		return 0;
	int64_t row_bytes = (int64_t)ps->inputs * 4;
	if (ps->kind == API_PREDICT_JSON) {
		if (ps->js != JS_TAIL || ps->rows == 0)
			return 0;
		flush(ps);
	} else {
		if (ps->total % row_bytes == 0 && ps->blk_fill > 0)
			binary_rows(ps, (int)(ps->blk_fill / (size_t)row_bytes));
		int bad_len = ps->total % row_bytes != 0;
		if (bad_len || ps->err || ps->too_many || ps->rows == 0) {
			binary_problem(ps, bad_len, rp);
			return 1;
		}
	}
	helper_end(ps, 0);
	if (ps->oom && ps->st == NN_OK)
		ps->st = NN_ENOMEM;
	if (ps->st != NN_OK) {
		api_err *e = calloc(1, sizeof *e);
		if (e)
			api_err_set(e, 500, "predict_failed", "prediction failed: %s",
			            nn_status_name(ps->st));
		api_reply_error(rp, e);
		free(e);
		return 1;
	}
	if (ps->hp && ps->hp->text) {
		/* the helper wrote the reply as it went */
		api_predict_reply_text(rp, ps->hp->text, ps->done);
		ps->hp->text = NULL;
		return 1;
	}
	float *out = ps->out;
	ps->out = NULL;
	api_predict_reply(rp, ps->snap, out, ps->done, ps->outputs, ps->binary_reply);
	return 1;
}
