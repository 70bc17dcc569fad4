/*
 * predict_codec.h - the prediction codec: the rows of a prediction request
 * read from JSON text ({"instances": [[...], ...]}, as it arrives), from a
 * parsed cJSON document, or from little-endian float32 bytes; and the 200
 * reply written as JSON (whole, or a block of rows at a time, the same
 * bytes either way) or as float32 rows. No state beyond its arguments; no
 * threads.
 */
#ifndef API_PREDICT_CODEC_H
#define API_PREDICT_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include "handlers.h"

/* At most this many rows in one prediction request (either encoding). */
#define API_PREDICT_MAX_ROWS 100000

/* 1 when an Accept header value asks for float32 replies: it gives
 * application/octet-stream a higher q than application/json (a media range
 * without q has q=1; one not listed, q=0). */
int api_predict_accepts_binary(const char *accept);

/* ---- rows in */

/* Where a JSON row reader is in the body; starts zeroed (API_ROWS_JSON_INIT). */
typedef struct api_rows_json {
	size_t pos, searched;
	int state;
} api_rows_json;
#define API_ROWS_JSON_INIT { 0, 0, 0 }

/*
 * The next row of the plain shape {"instances": [[n, ...], ...]} (white
 * space anywhere, numbers only, rows of width numbers) from body[0, len)
 * (body[len] == 0; the body may grow and move between calls, its bytes
 * must not change) into x (width floats; NULL when there is no room for
 * another row). A row is read only once its ']' has arrived. 1: a row was
 * read; 0: more body is needed, or the document is complete
 * (api_rows_json_done); -1: not the plain shape (or no room), for good:
 * the whole body then goes to cJSON (api_rows_cjson names the fault).
 */
int api_rows_json_next(api_rows_json *st, const char *body, size_t len, float *x, int width);
int api_rows_json_done(const api_rows_json *st);

/* instances (a parsed cJSON value) as a rows x inputs matrix (malloc'd;
 * *rows set), or NULL with every bad value named by its path in e (500
 * when out of memory). */
float *api_rows_cjson(const cJSON *inst, int inputs, int *rows, api_err *e);

/* rows x width float32 values at x, as little-endian bytes from the body:
 * put into host order; 0 when all are finite, else -1 (then _name names
 * each, as rows [first, first + rows) of the body, up to e's limit). */
int api_rows_f32(float *x, int rows, int width);
void api_rows_f32_name(const float *x, int rows, int width, int64_t first, api_err *e);

/* ---- replies out */

/* Fills rp with the 200 reply for rows x outs outputs of snapshot s:
 * JSON (as API.md) or, when binary, the float32 rows (little-endian) with
 * the version in X-Model-Version. Takes out (malloc'd; freed or handed on
 * as the body). Returns 0 (a 500 problem when out of memory). */
int api_predict_reply(api_reply *rp, const api_model_snap *s, float *out, int64_t rows,
                      int outs, int binary);

/* The same JSON reply written piece by piece, as blocks of rows are
 * predicted (byte for byte what api_predict_reply writes for all of them):
 * _new starts the document (hint: the bytes expected, 0 when unknown);
 * _rows appends rows [first, first + rows), out holding those rows only;
 * api_predict_reply_text ends it and makes it rp's 200 reply (a 500
 * problem when out of memory), freeing t. NULL from _new: out of memory. */
typedef struct api_predict_text api_predict_text;
api_predict_text *api_predict_text_new(const api_model_snap *s, size_t hint);
void api_predict_text_rows(api_predict_text *t, const api_model_snap *s, const float *out,
                           int64_t first, int rows, int outs);
void api_predict_text_free(api_predict_text *t);
int api_predict_reply_text(api_reply *rp, api_predict_text *t, int64_t rows);

#ifdef NND_TEST
/* Whether JSON rows of small integers are read with AVX-512 (on CPUs that
 * have it): on 1, off 0, unchanged -1. Returns the setting before. Test
 * builds only: the tests check every reader against strtod. */
int api_predict_avx512_rows(int on);
#endif

#endif
