/*
 * predict.h - the predict route's streamed rows (route body BODY_ROWS):
 * an api/ prediction stream (predict_stream.h) fed as the body arrives,
 * with a helper thread for long bodies that predicts blocks of rows, and
 * writes the JSON reply, while the connection's thread reads the next.
 * The reply is the same, byte for byte, with or without the helper.
 */
#ifndef NND_PREDICT_H
#define NND_PREDICT_H

#include <stdint.h>
#include "handlers.h"
#include "predict_stream.h"

typedef struct predict_body predict_body;

/* Starts the prediction (as api_predict_stream_new, whose arguments these
 * are); a body that may hold HELPER_MIN_ROWS rows by its declared length
 * gets a helper thread (see predict.c). NULL: e (may be NULL) says why. */
predict_body *predict_begin(const api_backend *b, const api_req *rq, api_predict_kind kind,
                            int64_t expect_len, int binary_reply, api_err *e);

/* The next piece of a binary body; the JSON body received so far. */
void predict_feed(predict_body *pb, const char *piece, size_t len);
void predict_scan(predict_body *pb, const char *body, size_t len);

/* The body is complete: fills rp and returns 1, or returns 0 when a JSON
 * body is not the plain shape (the caller then runs the route's handler on
 * the whole body). */
int predict_finish(predict_body *pb, api_reply *rp);

/* Ends it (a helper still running is stopped, its result dropped). NULL
 * is fine. */
void predict_free(predict_body *pb);

/* How many bodies have had a helper thread so far (for tests). */
int64_t predict_helper_streams(void);

#ifdef NND_TEST
/* The shortest body (bytes, by its declared length) that gets a helper
 * thread: set it (>= 0; the default is 256 KiB) or leave it (-1). Returns
 * the value before. Test builds only: the tests use short bodies. */
int64_t predict_helper_min_bytes(int64_t bytes);
#endif

#endif
