/*
 * handlers.h - the resource handlers of API.md (data sets, models, jobs,
 * predictions): a parsed request in, a status and body out.
 *
 * The daemon routes a request to one of these with the path id already
 * checked and the body already read (JSON bodies are small; data-set uploads
 * go through the streaming api_upload instead). Handlers never fail without
 * a reply: an error becomes a problem+json body in rp.
 */
#ifndef API_HANDLERS_H
#define API_HANDLERS_H

#include <stddef.h>
#include <stdint.h>
#include "store.h"

typedef struct api_req {
	const char *method;
	const char *id;          /* the path's id, or NULL */
	/* query parameter lookup; returns NULL when absent */
	const char *(*query)(void *qcls, const char *key);
	void *qcls;
	const char *body;        /* NUL-terminated, may be NULL */
	size_t body_len;
	const char *accept;      /* the Accept header, or NULL */
} api_req;

typedef struct api_reply {
	int status;
	char *body;              /* malloc'd, may be NULL (204) */
	const char *ctype;       /* static string */
	char location[96];       /* "" = no Location header */
	int retry_after;         /* > 0: a Retry-After header */
	int64_t rows;            /* predictions: rows answered (for metrics) */
	size_t body_len;         /* > 0: body holds this many bytes (binary, may
	                          * hold NULs); 0: body is a NUL-terminated text */
	char model_version[16];  /* "" = none; else an X-Model-Version header */
	char disposition[128];   /* "" = none; else a Content-Disposition header */
	/* A streamed body instead of body: stream_read gives the next bytes
	 * into buf (0 at the end, -1 on failure), stream_done frees
	 * stream_arg. The daemon takes them over; api_reply_release frees
	 * them when it did not. */
	long (*stream_read)(void *arg, char *buf, size_t cap);
	void (*stream_done)(void *arg);
	void *stream_arg;
} api_reply;

void api_reply_release(api_reply *rp);
/* Fills rp with e's problem+json. Returns 0. */
int api_reply_error(api_reply *rp, const api_err *e);
/* Fills rp with a JSON body (takes j). Returns 0. */
int api_reply_json(api_reply *rp, int status, cJSON *j);
/* Fills rp with an SVG image (takes svg; NULL: a 500 out of memory). Returns 0. */
int api_reply_svg(api_reply *rp, char *svg);

typedef int (*api_handler)(const api_backend *b, const api_req *rq, api_reply *rp);

int api_datasets_list(const api_backend *b, const api_req *rq, api_reply *rp);
int api_dataset_get(const api_backend *b, const api_req *rq, api_reply *rp);
int api_dataset_delete(const api_backend *b, const api_req *rq, api_reply *rp);
/* GET /v1/datasets/{id}/data?offset=&limit= (CSV, or JSON when Accept asks
 * for it): the rows, streamed. */
int api_dataset_data(const api_backend *b, const api_req *rq, api_reply *rp);

int api_models_create(const api_backend *b, const api_req *rq, api_reply *rp);
int api_models_list(const api_backend *b, const api_req *rq, api_reply *rp);
int api_model_get(const api_backend *b, const api_req *rq, api_reply *rp);
int api_model_delete(const api_backend *b, const api_req *rq, api_reply *rp);
int api_model_weights_get(const api_backend *b, const api_req *rq, api_reply *rp);
int api_model_weights_put(const api_backend *b, const api_req *rq, api_reply *rp);
/* Predictions from a whole body (JSON; the reply as rq->accept asks). */
int api_model_predict(const api_backend *b, const api_req *rq, api_reply *rp);
/* GET /v1/models/{id}/export?format=onnx&opset= (handlers_onnx.c) */
int api_model_export(const api_backend *b, const api_req *rq, api_reply *rp);
/* POST /v1/models?format=onnx: the body is an ONNX file (api_models_create
 * calls it) */
int api_models_import_onnx(const api_backend *b, const api_req *rq, api_reply *rp);
/* The cJSON path of predict: reads any JSON body and names every bad
 * field; binary_reply: answer with float32 rows. (api_model_predict tries
 * the stream reader on the whole body first, then this.) */
int api_model_predict_general(const api_backend *b, const api_req *rq, api_reply *rp,
                              int binary_reply);

int api_jobs_create(const api_backend *b, const api_req *rq, api_reply *rp);
int api_jobs_list(const api_backend *b, const api_req *rq, api_reply *rp);
int api_job_get(const api_backend *b, const api_req *rq, api_reply *rp);
int api_job_cancel(const api_backend *b, const api_req *rq, api_reply *rp);
int api_job_metrics(const api_backend *b, const api_req *rq, api_reply *rp);
/* GET /v1/jobs/{id}/plot.svg: ?metrics= (epoch metrics, comma-separated;
 * default train_loss,val_loss) against the epoch, ?log_y=true for a log
 * axis; image/svg+xml. */
int api_job_plot_svg(const api_backend *b, const api_req *rq, api_reply *rp);
/* GET /v1/studies/{id}/plot.svg: a learning-curve study's curves on
 * log-log axes (means, fitted line, theory's slope), else the trials'
 * objective in trial order (?log_y=true for a log axis); image/svg+xml. */
int api_study_plot_svg(const api_backend *b, const api_req *rq, api_reply *rp);

int api_studies_create(const api_backend *b, const api_req *rq, api_reply *rp);
int api_studies_list(const api_backend *b, const api_req *rq, api_reply *rp);
int api_study_get(const api_backend *b, const api_req *rq, api_reply *rp);
int api_study_cancel(const api_backend *b, const api_req *rq, api_reply *rp);
int api_study_delete(const api_backend *b, const api_req *rq, api_reply *rp);
int api_study_trials(const api_backend *b, const api_req *rq, api_reply *rp);

/* ---- streaming data-set upload (POST /v1/datasets) */
typedef enum { API_UPLOAD_CSV, API_UPLOAD_JSON, API_UPLOAD_IDX } api_upload_kind;

/* The upload kind for a Content-Type value (parameters ignored), or -1
 * (415). Multipart is API_UPLOAD_IDX; the caller splits the parts. */
int api_upload_kind_of(const char *ctype);

typedef struct api_upload api_upload;
/* Reads the query (name, label, header, task) from rq. NULL with e set. */
api_upload *api_upload_new(api_upload_kind kind, const api_req *rq, int64_t max_bytes,
                           api_err *e);
/* part: 0 for CSV/JSON bodies; for IDX 0 = images, 1 = labels. The first
 * error sticks: later feeds return -1 at once. */
int api_upload_feed(api_upload *u, int part, const char *buf, size_t len, api_err *e);
/* Ends the body, stores the data set through b and fills rp (201 or the
 * error). Returns 0. */
int api_upload_finish(api_upload *u, const api_backend *b, const api_req *rq, api_reply *rp);
void api_upload_free(api_upload *u);

/* Parses a non-negative decimal integer of at most 18 digits. 0 or -1. */
int api_parse_i64(const char *s, int64_t *out);

#endif
