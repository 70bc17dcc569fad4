/*
 * predict_codec.c - the prediction codec (see predict_codec.h): rows read
 * from JSON text, from a cJSON document and from float32 bytes, and the
 * replies written as JSON text or float32 rows.
 *
 * The JSON row reader reads a row only once its closing bracket has
 * arrived, so no number is ever split; whatever it accepts is valid JSON
 * that cJSON would read to the same floats (numtext's api_num_json).
 * Rows of small integers (image pixels) are read 64 bytes at a time, with
 * AVX-512 where the CPU has it, else SSE2; read_row is the plain reader
 * behind them (and their oracle in the tests).
 *
 * The JSON reply is written straight into one growing buffer, whole or a
 * block of rows at a time; it is the one writer of prediction replies.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "handlers_int.h"
#include "numtext.h"
#include "predict_codec.h"

/* ---------------------------------------------------------------- Accept */


int api_predict_accepts_binary(const char *accept)
{
	double q_bin = api_accept_q(accept, "application/octet-stream");
	return q_bin > 0 && q_bin > api_accept_q(accept, "application/json");
}

/* ---------------------------------------------------------------- JSON rows */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
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

#ifdef NND_TEST
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
#endif

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
		} else if (api_num_json(&p, close, &x[c]) < 0) {
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

/* One row's numbers, p just past its '[' and close at its ']', by the
 * fastest reader that takes them. */
static int json_row(const char *p, const char *close, float *x, int width)
{
#if defined(__SSE2__)
#ifdef PIXEL_ROW_AVX512
	if ((has_avx512_rows() ? small_int_row_avx512(p, close, x, width)
	                       : small_int_row(p, close, x, width)) == 0)
		return 0;
#else
	if (small_int_row(p, close, x, width) == 0)
		return 0;
#endif
	if (int_row(p, close, x, width) == 0)
		return 0;
#endif
	return read_row(p, close, x, width);
}

enum { RJ_PREFIX, RJ_ROW, RJ_AFTER_ROW, RJ_END, RJ_TAIL, RJ_FAIL };

int api_rows_json_next(api_rows_json *st, const char *body, size_t len, float *x, int width)
{
	static const char key[] = "\"instances\"";
	const size_t klen = sizeof key - 1;
	if (st->state == RJ_FAIL)
		return -1;
	if (!body || body[len] != 0 || st->pos > len)
		goto fail;
	const char *p = body + st->pos, *end = body + len, *q;
	for (;;) {
		switch (st->state) {
		case RJ_PREFIX:
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
			st->state = RJ_ROW;
			break;
		case RJ_ROW: {
			p = skip_ws(p, end);
			if (p == end)
				goto wait;
			if (*p != '[')
				goto fail;
			/* resume the search for ']' where the last call left it */
			size_t from = (size_t)(p - body) + 1;
			if (st->searched > from)
				from = st->searched;
			const char *close = memchr(body + from, ']', len - from);
			if (!close) {
				st->searched = len;
				goto wait;
			}
			st->searched = 0;
			if (!x || json_row(p + 1, close, x, width) < 0)
				goto fail;
			st->pos = (size_t)(close + 1 - body);
			st->state = RJ_AFTER_ROW;
			return 1;
		}
		case RJ_AFTER_ROW:
			p = skip_ws(p, end);
			if (p == end)
				goto wait;
			if (*p == ',')
				st->state = RJ_ROW;
			else if (*p == ']')
				st->state = RJ_END;
			else
				goto fail;
			p++;
			break;
		case RJ_END:
			p = skip_ws(p, end);
			if (p == end)
				goto wait;
			if (*p++ != '}')
				goto fail;
			st->state = RJ_TAIL;
			break;
		default:   /* RJ_TAIL: only white space may follow */
			p = skip_ws(p, end);
			if (p != end)
				goto fail;
			goto wait;
		}
	}
wait:
	st->pos = (size_t)(p - body);
	return 0;
fail:
	st->state = RJ_FAIL;
	return -1;
}

int api_rows_json_done(const api_rows_json *st)
{
	return st->state == RJ_TAIL;
}

/* ---------------------------------------------------------------- cJSON rows */

float *api_rows_cjson(const cJSON *inst, int inputs, int *rows, api_err *e)
{
	if (!cJSON_IsArray(inst)) {
		api_err_field(e, "instances", "must be an array of rows");
		return NULL;
	}
	int n = cJSON_GetArraySize(inst);
	if (n < 1 || n > API_PREDICT_MAX_ROWS) {
		api_err_field(e, "instances", "must hold 1 to %d rows", API_PREDICT_MAX_ROWS);
		return NULL;
	}
	float *x = malloc((size_t)n * (size_t)inputs * sizeof *x);
	if (!x) {
		api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	int r = 0;
	const cJSON *row;
	cJSON_ArrayForEach(row, inst) {
		char path[64];
		snprintf(path, sizeof path, "instances[%d]", r);
		if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != inputs) {
			api_err_field(e, path, "must be an array of %d numbers", inputs);
		} else {
			int c = 0;
			const cJSON *v;
			cJSON_ArrayForEach(v, row) {
				if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
				    fabs(v->valuedouble) > 3.0e38) {
					snprintf(path, sizeof path, "instances[%d][%d]", r, c);
					api_err_field(e, path, "must be a finite number");
				} else {
					x[(size_t)r * inputs + c] = (float)v->valuedouble;
				}
				c++;
			}
		}
		if (e->n_fields >= API_MAX_FIELD_ERRORS)
			break;
		r++;
	}
	if (e->n_fields) {
		free(x);
		return NULL;
	}
	*rows = n;
	return x;
}

/* ---------------------------------------------------------------- float32 rows */

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

int api_rows_f32(float *x, int rows, int width)
{
	size_t count = (size_t)rows * (size_t)width;
	uint32_t *w = (uint32_t *)x;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	for (size_t i = 0; i < count; i++)
		w[i] = __builtin_bswap32(w[i]);
#endif
	return all_finite(w, count) ? 0 : -1;
}

void api_rows_f32_name(const float *x, int rows, int width, int64_t first, api_err *e)
{
	size_t count = (size_t)rows * (size_t)width;
	const uint32_t *w = (const uint32_t *)x;
	for (size_t i = 0; i < count && e->n_fields < API_MAX_FIELD_ERRORS; i++)
		if ((w[i] & 0x7f800000u) == 0x7f800000u) {
			char path[64];
			snprintf(path, sizeof path, "instances[%lld][%d]",
			         (long long)(first + (int64_t)(i / (size_t)width)), (int)(i % (size_t)width));
			api_err_field(e, path, "must be a finite number");
		}
}

/* ---------------------------------------------------------------- replies */

/* A growing reply text; on allocation failure ok drops to 0. */
typedef struct obuf {
	char *b;
	size_t len, cap;
	int ok;
} obuf;

static char *ob_room(obuf *o, size_t n)
{
	if (!o->ok)
		return NULL;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (o->len + n + 1 > cap)
			cap *= 2;
		char *nb = realloc(o->b, cap);
		if (!nb) {
			o->ok = 0;
			return NULL;
		}
		o->b = nb;
		o->cap = cap;
	}
	return o->b + o->len;
}

static void ob_put(obuf *o, const char *s, size_t n)
{
	char *d = ob_room(o, n);
	if (d) {
		memcpy(d, s, n);
		o->len += n;
	}
}

#define OB_LIT(o, s) ob_put((o), (s), sizeof(s) - 1)

/* v in decimal. */
static void ob_int(obuf *o, long long v)
{
	char *d = ob_room(o, API_NUM_TEXT_MAX);
	if (d)
		o->len += (size_t)api_num_int_text(d, v);
}

/* A float by numtext's rule, or null. */
static void ob_float(obuf *o, float v)
{
	char *d = ob_room(o, API_NUM_TEXT_MAX);
	if (d)
		o->len += (size_t)api_num_float_text(d, v);
}

/* A JSON string (UTF-8 passes through; quote, backslash and control
 * characters are escaped). */
static void ob_str(obuf *o, const char *s)
{
	OB_LIT(o, "\"");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			char esc[2] = { '\\', (char)ch };
			ob_put(o, esc, 2);
		} else if (ch < 0x20) {
			char esc[8];
			snprintf(esc, sizeof esc, "\\u%04x", ch);
			ob_put(o, esc, 6);
		} else {
			ob_put(o, s, 1);
		}
	}
	OB_LIT(o, "\"");
}

/* The rows [first, first + rows) of a reply's "predictions" array (out
 * holds those rows only), each after a comma but the very first. */
static void text_rows(obuf *o, const api_model_snap *s, const float *out, int64_t first,
                         int rows, int outs, int classification)
{
	for (int r = 0; r < rows && o->ok; r++) {
		const float *p = out + (size_t)r * outs;
		if (first + r)
			OB_LIT(o, ",");
		if (classification) {
			int best = 0;
			for (int k = 1; k < outs; k++)
				if (p[k] > p[best])
					best = k;
			OB_LIT(o, "{\"class\":");
			ob_int(o, best);
			OB_LIT(o, ",\"label\":");
			if (s->classes && best < s->n_classes && s->classes[best]) {
				ob_str(o, s->classes[best]);
			} else {
				OB_LIT(o, "\"");
				ob_int(o, best);
				OB_LIT(o, "\"");
			}
			OB_LIT(o, ",\"probabilities\":[");
		} else {
			OB_LIT(o, "[");
		}
		for (int k = 0; k < outs; k++) {
			if (k)
				OB_LIT(o, ",");
			ob_float(o, p[k]);
		}
		if (classification)
			OB_LIT(o, "]}");
		else
			OB_LIT(o, "]");
	}
}

/* The reply of a prediction, written directly: the same document the
 * general path builds with cJSON. NULL when out of memory. */
static char *predict_text(const api_model_snap *s, const float *out, int rows, int outs,
                          int classification)
{
	obuf o = { NULL, 0, 0, 1 };
	ob_room(&o, (size_t)rows * (size_t)outs * 14 + 64);
	OB_LIT(&o, "{\"model_version\":");
	ob_int(&o, s->version);
	OB_LIT(&o, ",\"predictions\":[");
	text_rows(&o, s, out, 0, rows, outs, classification);
	OB_LIT(&o, "]}");
	if (!o.ok) {
		free(o.b);
		return NULL;
	}
	o.b[o.len] = 0;
	return o.b;
}

/* ---- the same text piece by piece (predict_stream.h) */

struct api_predict_text {
	obuf o;
	int classification;
};

api_predict_text *api_predict_text_new(const api_model_snap *s, size_t hint)
{
	api_predict_text *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->o.ok = 1;
	t->classification = nn_model_spec_of(s->model)->task == NN_TASK_CLASSIFICATION;
	ob_room(&t->o, hint + 64);
	OB_LIT(&t->o, "{\"model_version\":");
	ob_int(&t->o, s->version);
	OB_LIT(&t->o, ",\"predictions\":[");
	return t;
}

void api_predict_text_rows(api_predict_text *t, const api_model_snap *s, const float *out,
                           int64_t first, int rows, int outs)
{
	if (t)
		text_rows(&t->o, s, out, first, rows, outs, t->classification);
}

void api_predict_text_free(api_predict_text *t)
{
	if (t) {
		free(t->o.b);
		free(t);
	}
}

/* Puts a rendered prediction into rp (status 200, `rows` rows, JSON), or,
 * when body is NULL (out of memory), the 500 problem. 1 when the body went
 * in, 0 when the problem did. */
static int put_body(api_reply *rp, char *body, int64_t rows)
{
	if (!body) {
		api_err *e = calloc(1, sizeof *e);
		if (e)
			api_err_set(e, 500, "out_of_memory", "could not render the prediction");
		api_reply_error(rp, e);
		free(e);
		return 0;
	}
	free(rp->body);
	rp->body = body;
	rp->status = 200;
	rp->rows = rows;
	rp->ctype = "application/json";
	return 1;
}

int api_predict_reply_text(api_reply *rp, api_predict_text *t, int64_t rows)
{
	char *body = NULL;
	if (t) {
		OB_LIT(&t->o, "]}");
		if (t->o.ok) {
			t->o.b[t->o.len] = 0;
			body = t->o.b;
			t->o.b = NULL;
		}
		api_predict_text_free(t);
	}
	put_body(rp, body, rows);
	return 0;
}

int api_predict_reply(api_reply *rp, const api_model_snap *s, float *out, int64_t rows,
                      int outs, int binary)
{
	const nn_model_spec *spec = nn_model_spec_of(s->model);
	char *body = NULL;
	size_t len = 0;
	if (binary && out && rows > 0 && outs > 0) {
		/* the outputs are the body (body_len > 0 marks it binary) */
		body = (char *)out;
		len = (size_t)rows * (size_t)outs * sizeof *out;
		out = NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		uint32_t *w = (uint32_t *)body;
		for (size_t i = 0; i < len / 4; i++)
			w[i] = __builtin_bswap32(w[i]);
#endif
	} else if (!binary && out) {
		body = predict_text(s, out, (int)rows, outs, spec->task == NN_TASK_CLASSIFICATION);
	}
	free(out);
	if (put_body(rp, body, rows) && binary) {
		rp->ctype = "application/octet-stream";
		rp->body_len = len;
		snprintf(rp->model_version, sizeof rp->model_version, "%d", s->version);
	}
	return 0;
}
