/*
 * predict_stream.h - predictions read as the body arrives.
 *
 * POST /v1/models/{id}/predict takes either the plain JSON body
 * {"instances": [[...], ...]} or, with Content-Type:
 * application/octet-stream, little-endian float32 rows of the model's input
 * width. A stream takes the model's snapshot when the request begins, reads
 * rows (predict_codec.h) while the body is still arriving and runs the
 * forward pass on each full block of rows at once, so the computation
 * overlaps the transfer; the reply is written by the codec, as JSON or,
 * for Accept: application/octet-stream, as float32 rows.
 *
 * A stream predicts on the thread that feeds it, unless its blocks are
 * shared (api_predict_stream_share): then each full block goes to a sink
 * that may predict it on another thread, with the work functions below.
 * The stream itself starts no thread.
 *
 * JSON streams take only the plain shape (one key, numbers only, rows of
 * the model's width); any other body makes the stream step aside, and the
 * caller answers with the route's handler (api_model_predict) on the whole
 * body, which names the error. Binary streams answer everything themselves.
 */
#ifndef API_PREDICT_STREAM_H
#define API_PREDICT_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include "handlers.h"
#include "predict_codec.h"

/* Rows per forward call: a block, and the rows of every scratch. */
#define API_PREDICT_BLOCK 256

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
 * The body is complete (a stream whose blocks are not shared): predicts the
 * rows left and fills rp (the reply, or the problem). Returns 1 when rp is
 * filled; 0 when a JSON body is not the plain shape: the caller then
 * answers with api_model_predict.
 */
int api_predict_stream_finish(api_predict_stream *ps, const api_req *rq, api_reply *rp);

void api_predict_stream_free(api_predict_stream *ps);

/* This thread's scratch for snapshot s (rebuilt when the thread last
 * served another snapshot), or NULL when out of memory. */
nn_scratch *api_predict_scratch(const api_model_snap *s);

/* ---- sharing the blocks with another thread (the daemon's helper) */

/* Where full blocks go once shared: block takes the full block x, rows
 * [first, first + n) of the body, and returns the buffer to fill next
 * (api_predict_stream_block_bytes; x itself when it is free again). */
typedef struct api_predict_sink {
	float *(*block)(void *ctx, float *x, int64_t first, int n);
	void *ctx;
} api_predict_sink;

/* The rows the body may hold by its declared length (a block when it has
 * none), and the bytes of one block. */
int64_t api_predict_stream_capacity(const api_predict_stream *ps);
size_t api_predict_stream_block_bytes(const api_predict_stream *ps);
const api_model_snap *api_predict_stream_snap(const api_predict_stream *ps);

/*
 * From now on full blocks go to sink, first is the buffer to fill next
 * (block_bytes, the caller's; the stream's own is freed), and the outputs
 * have room for rows rows, written by api_predict_stream_rows. For a JSON
 * reply *text is a new reply text (the caller's, for api_predict_stream_text),
 * else NULL. Returns 0; -1 (nothing changed) when the outputs would exceed
 * API_PREDICT_SHARE_MAX_OUTPUTS floats or memory runs out.
 */
#define API_PREDICT_SHARE_MAX_OUTPUTS ((int64_t)16 << 20)
int api_predict_stream_share(api_predict_stream *ps, const api_predict_sink *sink,
                             float *first, int64_t rows, api_predict_text **text);

/* A new scratch for another thread's forward passes (nn_scratch_free it),
 * or NULL. */
nn_scratch *api_predict_stream_scratch_new(const api_predict_stream *ps);

/* Predicts rows [first, first + n) at x into the outputs with scratch sc
 * (NULL: this thread's). Any thread; threads write disjoint rows. */
nn_status api_predict_stream_rows(api_predict_stream *ps, nn_scratch *sc, const float *x,
                                  int64_t first, int n);

/* Appends the predicted rows [first, first + n) to the reply text t. */
void api_predict_stream_text(const api_predict_stream *ps, api_predict_text *t,
                             int64_t first, int n);

/*
 * The body is complete: reads the rows left (a last block goes to the
 * sink). Returns 1 when rp holds the answer already (a bad binary body),
 * 0 when a JSON body is not the plain shape (as _finish), 2 when every row
 * is predicted or with the sink: once the sink is done, call _reply.
 */
int api_predict_stream_close(api_predict_stream *ps, api_reply *rp);

/* Fills rp with the reply after _close returned 2: st is the sink's first
 * failure (NN_OK when none); text the JSON reply the sink wrote, taken,
 * or NULL to write it now. */
void api_predict_stream_reply(api_predict_stream *ps, api_reply *rp, nn_status st,
                              api_predict_text *text);

#endif
