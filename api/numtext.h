/*
 * numtext.h - number text, read and written, for every reader and JSON
 * writer in api/ (and the daemon's cJSON documents): one table of exact
 * powers of ten, and one rule for a float written as text: the shortest of
 * "%.6g" to "%.9g" that reads back (strtod, then rounded to float) as the
 * same float, which is what a JSON client that reads doubles and keeps
 * float32 gets back.
 */
#ifndef API_NUMTEXT_H
#define API_NUMTEXT_H

#include <stddef.h>
#include <stdint.h>

/* 10^0 .. 10^22, each exact in double. */
extern const double api_pow10[23];

/* ---- reading */

/*
 * One JSON number at *pp (before end) as a float: the double strtod reads,
 * rounded to float (as cJSON then a float cast would give). 0 with *pp past
 * it; -1 (*pp unchanged) when it is not a JSON number, not finite, or
 * beyond +-3e38.
 */
int api_num_json(const char **pp, const char *end, float *out);

/*
 * Parses s[0..len) (surrounding spaces and tabs allowed) as a decimal number
 * ([+-]digits[.digits][e[+-]digits], or .digits) to the nearest float: a
 * field of CSV and the like. Returns 1 and sets *out, 0 when the text is not
 * a number ("", "abc", "inf", "nan", hex), -1 when it is a number outside
 * float range (1e999). _double: the same syntax to the nearest double.
 */
int api_parse_float(const char *s, size_t len, float *out);
int api_parse_double(const char *s, size_t len, double *out);

/* ---- writing */

/* Room for any text api_num_float_text or api_num_int_text writes. */
#define API_NUM_TEXT_MAX 32

/* v's text by the rule above ("null" when v is not finite) into d (room for
 * API_NUM_TEXT_MAX bytes, not NUL-terminated). Returns its length. */
int api_num_float_text(char *d, float v);

/* v in decimal into d (not NUL-terminated). Returns its length. */
int api_num_int_text(char *d, long long v);

/* The double that the rule's text reads back as (for cJSON documents: cJSON
 * then prints the same short text), or v when none of the precisions reads
 * back. */
double api_float_json(float v);

#endif
