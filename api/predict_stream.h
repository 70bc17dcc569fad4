/*
 * predict_stream.h - predictions read as the body arrives.
 *
 * POST /v1/models/{id}/predict takes either the plain JSON body
 * {"instances": [[...], ...]} or, with Content-Type:
 * application/octet-stream, little-endian float32 rows of the model's input
 * width. A stream takes the model's snapshot when the request begins, reads
 * rows while the body is still arriving and runs the forward pass on each
 * full block of rows at once, so the computation overlaps the transfer; the
 * reply is written straight into one buffer (api_predict_reply, in
 * handlers_models.c), as JSON or, for Accept: application/octet-stream, as
 * float32 rows. Long bodies share their blocks with a helper thread
 * (predict_stream.c), which also writes the JSON reply as it goes; the
 * reply is the same, byte for byte.
 *
 * JSON streams take only the plain shape (one key, numbers only, rows of
 * the model's width); any other body makes the stream step aside, and the
 * caller runs api_model_predict_general on the whole body, which names the
 * error. Binary streams answer everything themselves.
 */
#ifndef API_PREDICT_STREAM_H
#define API_PREDICT_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include "handlers.h"

/* At most this many rows in one prediction request (either encoding). */
#define API_PREDICT_MAX_ROWS 100000

typedef enum { API_PREDICT_JSON, API_PREDICT_BINARY } api_predict_kind;

typedef struct api_predict_stream api_predict_stream;

/*
 * Starts a prediction for the model rq->id; expect_len is the body's
 * length when known (Content-Length), else -1; binary_reply: answer with
 * float32 rows (see api_predict_accepts_binary). Returns NULL when the
 * model cannot be served (e, which may be NULL, filled: 404 and the like)
 * or out of memory (e: 500). The stream holds b and a snapshot until
 * freed; b must outlive it.
 */
api_predict_stream *api_predict_stream_new(const api_backend *b, const api_req *rq,
                                           api_predict_kind kind, int64_t expect_len,
                                           int binary_reply, api_err *e);

/* Binary streams: the next piece of the body, in any split. */
void api_predict_stream_feed(api_predict_stream *ps, const char *piece, size_t len);

/* JSON streams: the whole body received so far (body[len] == 0; the
 * buffer may move between calls, its bytes must not change). Reads on from
 * where the previous call stopped. */
void api_predict_stream_scan(api_predict_stream *ps, const char *body, size_t len);

/*
 * The body is complete: predicts the rows left and fills rp (the reply,
 * or the problem). Returns 1 when rp is filled; 0 when a JSON body is not
 * the plain shape: the caller then answers with api_model_predict_general.
 */
int api_predict_stream_finish(api_predict_stream *ps, const api_req *rq, api_reply *rp);

void api_predict_stream_free(api_predict_stream *ps);

/* The cJSON path of predict: reads any JSON body and names every bad
 * field; binary_reply as for the stream. (api_model_predict, the route's
 * handler, tries the stream reader on the whole body first, then this.) */
int api_model_predict_general(const api_backend *b, const api_req *rq, api_reply *rp,
                              int binary_reply);

/* 1 when an Accept header value asks for float32 replies: it gives
 * application/octet-stream a higher q than application/json (a media range
 * without q has q=1; one not listed, q=0). */
int api_predict_accepts_binary(const char *accept);

/* How many streams have had a helper thread so far (bodies long enough to
 * hold HELPER_MIN_ROWS rows, see predict_stream.c). For tests. */
int64_t api_predict_helper_streams(void);

/* The shortest body (bytes, by its declared length) that gets a helper
 * thread: set it (>= 0; the default is 256 KiB) or leave it (-1). Returns
 * the value before. For tests, which use short bodies. */
int64_t api_predict_helper_min_bytes(int64_t bytes);

/* Whether JSON rows of small integers are read with AVX-512 (on CPUs that
 * have it): on 1, off 0, unchanged -1. Returns the setting before. For
 * tests, which check both readers against strtod. */
int api_predict_avx512_rows(int on);

/* This thread's scratch for snapshot s (rebuilt when the thread last
 * served another snapshot), or NULL when out of memory. */
nn_scratch *api_predict_scratch(const api_model_snap *s);

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

#endif
