/*
 * test_numtext.c - number text (api/numtext.c), the one module every JSON
 * writer and number reader of api/ goes through: against the C library as
 * the oracle, on random float bit patterns and random decimal text.
 *  - api_num_float_text writes the shortest "%.6g".."%.9g" text that reads
 *    back (strtod, then float) as the float: snprintf's text, byte for
 *    byte, and api_float_json's double is that text's value;
 *  - api_num_int_text is "%lld";
 *  - api_num_json reads JSON numbers as (float)strtod, and refuses what
 *    JSON does not allow;
 *  - api_parse_float and api_parse_double read CSV fields as strtof and
 *    strtod.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "numtext.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* The rule, spelled with the C library: the first of %.6g..%.9g that
 * reads back through strtod as v. */
static int oracle_text(char *d, float v)
{
	if (!isfinite(v))
		return snprintf(d, 32, "null");
	int n = 0;
	for (int prec = 6; prec <= 9; prec++) {
		n = snprintf(d, 32, "%.*g", prec, (double)v);
		if ((float)strtod(d, NULL) == v)
			break;
	}
	return n;
}

static float random_float(void)
{
	uint32_t bits = (uint32_t)next();
	float v;
	memcpy(&v, &bits, 4);
	return v;
}

START_TEST(test_floats_are_written_as_the_rule_says)
{
	const float fixed[] = { 0.1f, 1.0f / 3, 1e-45f, 1.17549435e-38f, 3.4028235e38f, 255.0f,
		                -2.5e-7f, 123456789.0f, 16777217.0f, 1e22f, 9.999999e-5f };
	char got[API_NUM_TEXT_MAX + 1], want[64];
	for (int i = 0; i < 50000 + (int)(sizeof fixed / sizeof fixed[0]); i++) {
		float v = i < (int)(sizeof fixed / sizeof fixed[0]) ? fixed[i] : random_float();
		if (v == 0)
			continue;   /* "0" and "-0": see below */
		int n = api_num_float_text(got, v);
		ck_assert_int_gt(n, 0);
		ck_assert_int_le(n, API_NUM_TEXT_MAX);
		got[n] = 0;
		oracle_text(want, v);
		ck_assert_msg(strcmp(got, want) == 0, "%a: %s, want %s", (double)v, got, want);
		if (isfinite(v))
			ck_assert(api_float_json(v) == strtod(want, NULL));
	}
	int n = api_num_float_text(got, 0.0f);
	ck_assert_int_eq(n, 1);
	ck_assert(got[0] == '0');
	n = api_num_float_text(got, NAN);
	got[n] = 0;
	ck_assert_str_eq(got, "null");
}
END_TEST

START_TEST(test_integers_are_written_as_printf)
{
	const long long fixed[] = { 0, 1, -1, 9, 10, -10, 2147483647LL, -9223372036854775807LL - 1,
		                    9223372036854775807LL };
	char got[API_NUM_TEXT_MAX + 1], want[32];
	for (int i = 0; i < 10000; i++) {
		long long v = i < 9 ? fixed[i] : (long long)next() >> (next() % 63);
		int n = api_num_int_text(got, v);
		got[n] = 0;
		snprintf(want, sizeof want, "%lld", v);
		ck_assert_str_eq(got, want);
	}
}
END_TEST

/* A random decimal: sign, 1 to 22 digits with a point somewhere, maybe an
 * exponent. */
static size_t random_decimal(char *s, int json)
{
	size_t n = 0;
	if (next() % 2)
		s[n++] = '-';
	int digits = 1 + (int)(next() % 22), point = (int)(next() % (uint64_t)(digits + 1));
	for (int i = 0; i < digits; i++) {
		if (i == point && i > 0)
			s[n++] = '.';
		char c = (char)('0' + next() % 10);
		if (i == 0 && c == '0' && digits > 1 && (json || next() % 2))
			c = '1';   /* JSON: no leading zero */
		s[n++] = c;
	}
	if (next() % 3 == 0)
		n += (size_t)sprintf(s + n, "e%d", (int)(next() % 90) - 45);
	s[n] = 0;
	return n;
}

START_TEST(test_json_numbers_read_as_strtod_then_float)
{
	char s[64];
	for (int i = 0; i < 50000; i++) {
		size_t n = random_decimal(s, 1);
		const char *p = s;
		float f;
		double d = strtod(s, NULL);
		int rc = api_num_json(&p, s + n, &f);
		if (!isfinite(d) || fabs(d) > 3.0e38) {
			ck_assert_int_eq(rc, -1);
			continue;
		}
		ck_assert_msg(rc == 0, "%s refused", s);
		ck_assert_ptr_eq(p, s + n);
		ck_assert_msg(f == (float)d, "%s: %a, want %a", s, (double)f, (double)(float)d);
	}
	const char *bad[] = { "01", "-", "1.", ".5", "1e", "+1", "1e+", "--1", "x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *p = bad[i];
		float f;
		ck_assert_msg(api_num_json(&p, bad[i] + strlen(bad[i]), &f) == -1, "%s", bad[i]);
		ck_assert_ptr_eq(p, bad[i]);
	}
}
END_TEST

START_TEST(test_fields_read_as_strtof_and_strtod)
{
	char s[64];
	for (int i = 0; i < 50000; i++) {
		size_t n = random_decimal(s, 0);
		float f;
		double d;
		double want_d = strtod(s, NULL);
		float want_f = strtof(s, NULL);
		int rf = api_parse_float(s, n, &f), rd = api_parse_double(s, n, &d);
		if (isinf(want_f)) {
			ck_assert_int_eq(rf, -1);
		} else {
			ck_assert_int_eq(rf, 1);
			ck_assert_msg(f == want_f, "%s: %a, want %a", s, (double)f, (double)want_f);
		}
		ck_assert_int_eq(rd, 1);
		ck_assert_msg(d == want_d, "%s: %a, want %a", s, d, want_d);
	}
	float f;
	ck_assert_int_eq(api_parse_float(" 2.5\t", 5, &f), 1);
	ck_assert(f == 2.5f);
	ck_assert_int_eq(api_parse_float("abc", 3, &f), 0);
	ck_assert_int_eq(api_parse_float("1e999", 5, &f), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("numtext");
	TCase *tc = tcase_create("numtext");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_floats_are_written_as_the_rule_says);
	tcase_add_test(tc, test_integers_are_written_as_printf);
	tcase_add_test(tc, test_json_numbers_read_as_strtod_then_float);
	tcase_add_test(tc, test_fields_read_as_strtof_and_strtod);
	suite_add_tcase(s, tc);
	return check_run(s);
}
