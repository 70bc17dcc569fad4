/*
 * numtext.c - number text (see numtext.h): the JSON number reader of the
 * prediction rows, the decimal field reader of the data-set readers, and
 * the float and integer writers of every JSON writer.
 *
 * Reading: a decimal with at most 19 significant digits and a power of ten
 * up to 22 is exact in double (Clinger's fast path), as strtod's result;
 * anything else goes through strtod/strtof. Writing: the digits of a
 * precision come from one double product, exact for the powers of ten up
 * to 1e22 (and from an exact 128-bit product for tiny values), and are
 * kept only when they read back; where the shortcut cannot tell, snprintf
 * decides.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numtext.h"

const double api_pow10[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* mant x 10^e10 in double by Clinger's fast path (both operands exact, so
 * one rounding, as strtod's): 1 with *d set, 0 when it does not apply. */
static int exact_double(uint64_t mant, long e10, double *d)
{
	if (mant > (1ull << 53) || e10 < -22 || e10 > 22)
		return 0;
	double v = (double)mant;
	*d = e10 < 0 ? v / api_pow10[-e10] : v * api_pow10[e10];
	return 1;
}

/* ---------------------------------------------------------------- JSON */

int api_num_json(const char **pp, const char *end, float *out)
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
	if (digits <= 19 && exact_double(m, e10, &v)) {
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

/* ---------------------------------------------------------------- fields */

typedef struct numtok {
	const char *s;     /* the token without surrounding blanks */
	size_t len;
	int neg;
	uint64_t mant;     /* up to 19 significant digits */
	int truncated;     /* nonzero digits were dropped past 19 */
	long e10;          /* value = mant * 10^e10 (when not truncated) */
} numtok;

/* Checks the syntax and gathers mantissa and exponent. 1 ok, 0 not a number. */
static int scan_number(const char *s, size_t len, numtok *t)
{
	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	t->s = s;
	t->len = len;
	t->neg = 0;
	t->mant = 0;
	t->truncated = 0;
	t->e10 = 0;
	size_t i = 0;
	if (i < len && (s[i] == '+' || s[i] == '-')) {
		t->neg = s[i] == '-';
		i++;
	}
	int nd = 0, any = 0;
	long dexp = 0;
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		unsigned d = (unsigned)(s[i++] - '0');
		any = 1;
		if (nd == 0 && d == 0)
			continue;
		if (nd < 19) {
			t->mant = t->mant * 10 + d;
			nd++;
		} else {
			dexp++;
			if (d)
				t->truncated = 1;
		}
	}
	if (i < len && s[i] == '.') {
		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			unsigned d = (unsigned)(s[i++] - '0');
			any = 1;
			if (nd == 0 && d == 0) {
				dexp--;
				continue;
			}
			if (nd < 19) {
				t->mant = t->mant * 10 + d;
				nd++;
				dexp--;
			} else if (d) {
				t->truncated = 1;
			}
		}
	}
	if (!any)
		return 0;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		int eneg = 0;
		if (i < len && (s[i] == '+' || s[i] == '-')) {
			eneg = s[i] == '-';
			i++;
		}
		if (i >= len || s[i] < '0' || s[i] > '9')
			return 0;
		long ev = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (ev < 1000000)
				ev = ev * 10 + (s[i] - '0');
			i++;
		}
		dexp += eneg ? -ev : ev;
	}
	if (i != len)
		return 0;
	t->e10 = dexp;
	return 1;
}

/* strtof/strtod on a token already checked by scan_number. */
static int slow_parse(const numtok *t, int want_double, double *out)
{
	char stack[128];
	char *buf = t->len < sizeof stack ? stack : malloc(t->len + 1);
	if (!buf)
		return 0;
	memcpy(buf, t->s, t->len);
	buf[t->len] = '\0';
	double v = want_double ? strtod(buf, NULL) : (double)strtof(buf, NULL);
	if (buf != stack)
		free(buf);
	if (!isfinite(v))
		return -1;
	*out = v;
	return 1;
}

int api_parse_float(const char *s, size_t len, float *out)
{
	numtok t;
	if (!scan_number(s, len, &t))
		return 0;
	if (t.mant == 0) {
		*out = t.neg ? -0.0f : 0.0f;
		return 1;
	}
	if (!t.truncated) {
		/* Clinger's fast path in float: both operands exact, one rounding. */
		if (t.mant <= (1u << 24) && t.e10 >= -10 && t.e10 <= 10) {
			float f = (float)t.mant;
			f = t.e10 < 0 ? f / (float)api_pow10[-t.e10] : f * (float)api_pow10[t.e10];
			*out = t.neg ? -f : f;
			return 1;
		}
		/* In double, correctly rounded; the second rounding to float can
		 * only go wrong when the double lands exactly on a float midpoint,
		 * which we detect and leave to strtof. */
		double d;
		if (exact_double(t.mant, t.e10, &d)) {
			if (d >= FLT_MIN && d <= FLT_MAX) {
				uint64_t bits;
				memcpy(&bits, &d, sizeof bits);
				if ((bits & ((1ull << 29) - 1)) != (1ull << 28)) {
					float f = (float)d;
					*out = t.neg ? -f : f;
					return 1;
				}
			}
		}
	}
	double v;
	int r = slow_parse(&t, 0, &v);
	if (r == 1)
		*out = (float)v;
	return r;
}

int api_parse_double(const char *s, size_t len, double *out)
{
	numtok t;
	if (!scan_number(s, len, &t))
		return 0;
	if (t.mant == 0) {
		*out = t.neg ? -0.0 : 0.0;
		return 1;
	}
	double d;
	if (!t.truncated && exact_double(t.mant, t.e10, &d)) {
		*out = t.neg ? -d : d;
		return 1;
	}
	return slow_parse(&t, 1, out);
}


/* ---------------------------------------------------------------- writing */

/* Whether dig x 10^-n (n in 23..44) reads back as the float v: 1 yes, 0
 * no, -1 too close to tell. The product in double is within 2^-52 of the
 * decimal (10^-n correctly rounded, dig exact); v's rounding interval ends
 * halfway to its neighbours, exact in double. */
static int tiny_reads_back(uint64_t dig, int n, float v)
{
	static const double neg_pow10[45] = {
		1e-0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12,
		1e-13, 1e-14, 1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22, 1e-23,
		1e-24, 1e-25, 1e-26, 1e-27, 1e-28, 1e-29, 1e-30, 1e-31, 1e-32, 1e-33, 1e-34,
		1e-35, 1e-36, 1e-37, 1e-38, 1e-39, 1e-40, 1e-41, 1e-42, 1e-43, 1e-44
	};
	if (n < 0 || n > 44)
		return -1;
	double x = (double)dig * neg_pow10[n];
	float a = fabsf(v);
	double lo = ((double)a + (double)nextafterf(a, 0.0f)) / 2;
	double hi = ((double)a + (double)nextafterf(a, INFINITY)) / 2;
	double margin = x * 0x1p-48;
	if (x > lo + margin && x < hi - margin)
		return 1;
	if (x < lo - margin || x > hi + margin)
		return 0;
	return -1;
}

/* |v| 10^n rounded half-even to an integer, for 22 < n <= 44 (small
 * values: tiny probabilities): |v| = m 2^x exactly, so |v| 10^n =
 * m 5^n 2^(n+x), an integer product below 2^127 shifted right with
 * round-half-even, as printf rounds. -1 when the shift is out of range. */
static int tiny_scaled(float v, int n, unsigned __int128 *out)
{
	int ex;
	float f = frexpf(fabsf(v), &ex);
	/* 5^n by squaring (the last square may wrap; it is not used) */
	unsigned __int128 p5 = 1, b5 = 5;
	for (int k5 = n; k5; k5 >>= 1) {
		if (k5 & 1)
			p5 *= b5;
		b5 *= b5;
	}
	unsigned __int128 x = (unsigned __int128)(uint32_t)ldexpf(f, 24) * p5;
	int k = -(n + ex - 24);
	if (k <= 0 || k >= 127)
		return -1;
	unsigned __int128 q = x >> k, rem = x - (q << k), half = (unsigned __int128)1 << (k - 1);
	if (rem > half || (rem == half && (q & 1)))
		q++;
	*out = q;
	return 0;
}

/* Writes the nd significant digits ds of a value of decimal exponent e as
 * %.{prec}g lays them out (fixed or with an exponent); the end. */
static char *put_g(char *q, const char *ds, int nd, int e, int prec)
{
	if (e >= -4 && e < prec) {
		if (e >= 0) {
			for (int i = 0; i <= e; i++)
				*q++ = i < nd ? ds[i] : '0';
			if (nd > e + 1) {
				*q++ = '.';
				for (int i = e + 1; i < nd; i++)
					*q++ = ds[i];
			}
		} else {
			*q++ = '0';
			*q++ = '.';
			for (int i = 0; i < -e - 1; i++)
				*q++ = '0';
			for (int i = 0; i < nd; i++)
				*q++ = ds[i];
		}
		return q;
	}
	*q++ = ds[0];
	if (nd > 1) {
		*q++ = '.';
		for (int i = 1; i < nd; i++)
			*q++ = ds[i];
	}
	*q++ = 'e';
	*q++ = e < 0 ? '-' : '+';
	int ae = e < 0 ? -e : e;
	if (ae >= 100)
		*q++ = (char)('0' + ae / 100);
	*q++ = (char)('0' + ae / 10 % 10);
	*q++ = (char)('0' + ae % 10);
	return q;
}

/* v (finite, not 0) as printf's "%.<prec>g" would print it, when that
 * text reads back (strtod, then float) as v; e10 = floor(log10(|v|)): its
 * length, else 0 (the text
 * does not read back, or the shortcut cannot tell: the caller then uses
 * snprintf). Digits come from one double product, exact for the powers of
 * ten up to 1e22, and the read-back is the same product the other way. */
static int fmt_float_g(char *d, float v, int prec, int e10)
{
	static const uint64_t p10[] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
	                                100000000, 1000000000, 10000000000ULL };
	double a = fabs((double)v);
	int e = e10;
	uint64_t dig = 0;
	for (int tries = 0; tries < 3; tries++) {
		int n = prec - 1 - e;
		if (n > 22 && n <= 44) {
			/* small values (tiny probabilities): exact integers */
			unsigned __int128 q;
			if (tiny_scaled(v, n, &q) < 0)
				return 0;
			if (q >= p10[prec]) {
				e++;
				continue;
			}
			if (q < p10[prec - 1]) {
				e--;
				continue;
			}
			dig = (uint64_t)q;
			break;
		}
		if (n < -22 || n > 22)
			return 0;
		double sc = n >= 0 ? a * api_pow10[n] : a / api_pow10[-n];
		double r = nearbyint(sc);
		if (r >= (double)p10[prec]) {
			e++;
			continue;
		}
		if (r < (double)p10[prec - 1]) {
			e--;
			continue;
		}
		dig = (uint64_t)r;
		/* reads back? (the same exact-power product strtod would do) */
		double back = n >= 0 ? (double)dig / api_pow10[n] : (double)dig * api_pow10[-n];
		if ((float)(v < 0 ? -back : back) != v)
			return -1;
		break;
	}
	if (!dig)
		return 0;
	char ds[16];
	int nd = prec;
	uint64_t digits = dig;
	for (int i = prec - 1; i >= 0; i--, dig /= 10)
		ds[i] = (char)('0' + dig % 10);
	while (nd > 1 && ds[nd - 1] == '0')
		nd--;
	char *q = d;
	if (v < 0)
		*q++ = '-';
	q = put_g(q, ds, nd, e, prec);
	if (prec - 1 - e > 22) {
		/* exact digits; whether they read back: the double product says so
		 * unless it falls near a rounding boundary, then strtod does */
		int back = tiny_reads_back(digits, prec - 1 - e, v);
		if (back < 0) {
			*q = 0;
			back = (float)strtod(d, NULL) == v;
		}
		if (!back)
			return -1;
	}
	return (int)(q - d);
}

int api_num_float_text(char *d, float v)
{
	if (!isfinite(v)) {
		memcpy(d, "null", 4);
		return 4;
	}
	if (v == 0) {
		*d = '0';
		return 1;
	}
	int n = 0;
	int e10 = (int)floor(log10(fabs((double)v)));   /* once for every precision */
	for (int prec = 6; prec <= 9; prec++) {
		n = fmt_float_g(d, v, prec, e10);
		if (n > 0)
			break;
		if (n < 0 && prec < 9)
			continue;
		n = snprintf(d, API_NUM_TEXT_MAX, "%.*g", prec, (double)v);
		if ((float)strtod(d, NULL) == v)
			break;
	}
	return n;
}

int api_num_int_text(char *d, long long v)
{
	char tmp[24];
	/* the digits backwards from the end of tmp, then the sign */
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	int n = 0;
	do {
		tmp[sizeof tmp - 1 - n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		tmp[sizeof tmp - 1 - n++] = '-';
	memcpy(d, tmp + sizeof tmp - n, (size_t)n);
	return n;
}

double api_float_json(float v)
{
	char buf[API_NUM_TEXT_MAX];
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
		double d = strtod(buf, NULL);
		if ((float)d == v)
			return d;
	}
	return (double)v;
}
