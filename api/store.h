/*
 * store.h - what the resource handlers need from whoever keeps the objects.
 *
 * The handlers in api/ turn requests into engine calls and JSON; they do not
 * know where data sets, models and jobs live or how jobs run. The daemon
 * (server/) fills an api_backend with its functions and a context pointer;
 * tests can fill one with fakes. Every operation returns 0, or -1 with e set
 * to the problem to report (404 for an unknown id, 409 for a conflict, ...).
 *
 * Ownership: the *_info and api_job structs handed out own their cJSON docs
 * and strings; release them with the matching *_release function.
 */
#ifndef API_STORE_H
#define API_STORE_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "nn.h"
#include "api_err.h"
#include "dataset_io.h"
#include "spec_json.h"
#include "numtext.h"   /* api_float_json */

#define API_ID_LEN 24   /* "mdl_" + 16 hex digits + NUL fits */

/* 1 when id is prefix + "_" + 16 lowercase hex digits (prefix "ds", "mdl",
 * "job"), else 0. Anything else is answered 404 before reaching a store. */
int api_id_valid(const char *id, const char *prefix);

/* API_JOB_PAUSED: a study's trial waiting between rungs of successive
 * halving (it holds no worker and is not final). */
typedef enum {
	API_JOB_QUEUED, API_JOB_RUNNING, API_JOB_SUCCEEDED, API_JOB_FAILED, API_JOB_CANCELLED,
	API_JOB_PAUSED
} api_job_state;
#define API_JOB_NSTATES 6

const char *api_job_state_name(int s);
int api_job_state_parse(const char *s);           /* -1 when unknown */
static inline int api_job_state_final(int s)
{
	return s >= API_JOB_SUCCEEDED && s <= API_JOB_CANCELLED;
}

/* A stored data set: the fields compatibility checks need, and the object as
 * served (doc). */
typedef struct api_dataset_info {
	char id[API_ID_LEN];
	nn_task task;
	int64_t rows;
	int features;
	int outputs;          /* classes (classification) or targets per row */
	int image;            /* 1 when the data set records an image shape */
	cJSON *doc;           /* owned */
} api_dataset_info;
void api_dataset_info_release(api_dataset_info *d);

/* The data set object of API.md for d, without "id", "bytes" and
 * "created_at" (the store adds those). name may be NULL (null). */
cJSON *api_dataset_doc(const api_dataset *d, const char *name);

/* A stored model: what checks need, and the object as served (doc). */
typedef struct api_model_info {
	char id[API_ID_LEN];
	nn_task task;
	int inputs;
	int outputs;
	int version;
	cJSON *doc;           /* owned */
} api_model_info;
void api_model_info_release(api_model_info *m);

/* An immutable published model version. Readers share it; the backend frees
 * it when the last reference is released. serial is unique per snapshot over
 * the process's life (scratch buffers are cached per serial). */
typedef struct api_model_snap {
	const nn_model *model;
	int version;
	char **classes;       /* n_classes labels, or NULL */
	int n_classes;
	uint64_t serial;
	/* The encoding of the training set's typed columns (raw records are
	 * encoded with it), or NULL when the model takes numbers only. */
	const api_tab_enc *enc;
} api_model_snap;

/* A job row. Text fields hold JSON ("null" or NULL when absent). */
typedef struct api_job {
	char id[API_ID_LEN];
	char model[API_ID_LEN];
	char dataset[API_ID_LEN];
	char val_dataset[API_ID_LEN];  /* "" when none */
	int state;
	double progress;
	int epoch;
	int64_t step;
	char *metrics;        /* {"train_loss", ...} or NULL */
	char *best;           /* {"epoch", "val_loss"} or NULL */
	char *error;          /* {"code", "detail"} or NULL */
	char *config;         /* the stored config (never NULL once stored) */
	int stopped_early;
	int model_version;    /* -1 until it published one */
	int64_t created_at, started_at, finished_at; /* ms since the epoch; 0 = null */
	char study[API_ID_LEN];        /* a study's trial: its study, else "" */
	int trial;                     /* and its trial number */
	int pause_at;                  /* insert only: the epoch a trial pauses at (0 = none) */
} api_job;
void api_job_release(api_job *j);

/* The job object of API.md. */
cJSON *api_job_to_json(const api_job *j);
/* The daemon runs on this many MPI ranks (nnd --mpi): a job's placement
 * then names ranks ("rank 1") for replicas that fit them, else threads.
 * Set once at start, before any request. */
void api_set_placement_ranks(int ranks);


/* Milliseconds since the epoch as RFC 3339 UTC with milliseconds, into
 * buf (>= 25 bytes). */
void api_time_format(int64_t ms, char *buf, size_t len);

struct api_study;

typedef struct api_backend {
	void *ctx;
	api_limits limits;
	int64_t max_body;

	/* Data sets. create takes the parsed matrix (left to the caller to free). */
	int (*dataset_create)(void *ctx, const api_dataset *d, const char *name,
	                      api_dataset_info *out, api_err *e);
	int (*dataset_get)(void *ctx, const char *id, api_dataset_info *out, api_err *e);
	/* Appends the docs of [offset, offset+limit) (oldest first) to items. */
	int (*dataset_list)(void *ctx, int64_t limit, int64_t offset, cJSON *items,
	                    int64_t *total, api_err *e);
	int (*dataset_delete)(void *ctx, const char *id, api_err *e);
	/* The stored rows, read-only, held until dataset_release (NULL ok). */
	int (*dataset_acquire)(void *ctx, const char *id, const api_dataset **out, api_err *e);
	void (*dataset_release)(void *ctx, const api_dataset *d);

	/* Models. create stores m as version 0 (m stays the caller's). */
	int (*model_create)(void *ctx, const char *name, const nn_model *m,
	                    api_model_info *out, api_err *e);
	int (*model_get)(void *ctx, const char *id, api_model_info *out, api_err *e);
	int (*model_list)(void *ctx, int64_t limit, int64_t offset, cJSON *items,
	                  int64_t *total, api_err *e);
	int (*model_delete)(void *ctx, const char *id, api_err *e);
	/* The newest version, one reference for the caller. */
	int (*model_snapshot)(void *ctx, const char *id, api_model_snap **out, api_err *e);
	void (*snap_release)(void *ctx, api_model_snap *s);
	/* Publishes m (ownership passes to the backend, also on failure) as the
	 * next version; *version gets its number. */
	int (*model_publish)(void *ctx, const char *id, nn_model *m, int *version, api_err *e);
	/* The same, setting the model's classes (JSON array text; NULL keeps
	 * them): an imported model's first version. */
	int (*model_publish_classes)(void *ctx, const char *id, nn_model *m, const char *classes,
	                             int *version, api_err *e);

	/* Jobs. submit stores and queues a job (429 when the queue is full). */
	int (*job_submit)(void *ctx, const api_job_refs *refs, const char *config_json,
	                  api_job *out, api_err *e);
	int (*job_get)(void *ctx, const char *id, api_job *out, api_err *e);
	/* state -1 = any. */
	int (*job_list)(void *ctx, int state, int64_t limit, int64_t offset, cJSON *items,
	                int64_t *total, api_err *e);
	/* 409 when already final; out gets the job after the request. */
	int (*job_cancel)(void *ctx, const char *id, api_job *out, api_err *e);
	/* {"steps": [...], "epochs": [...]} with steps after since_step. */
	int (*job_metrics)(void *ctx, const char *id, int64_t since_step, cJSON **out,
	                   api_err *e);

	/* Studies (API.md "Studies"). obj: the study object (the caller's).
	 * create takes a checked document (s stays the caller's). */
	int workers;          /* a study's default parallelism */
	int (*study_create)(void *ctx, struct api_study *s, cJSON **obj, api_err *e);
	int (*study_get)(void *ctx, const char *id, cJSON **obj, api_err *e);
	int (*study_list)(void *ctx, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
	                  api_err *e);
	int (*study_cancel)(void *ctx, const char *id, cJSON **obj, api_err *e);
	int (*study_delete)(void *ctx, const char *id, int keep_best, api_err *e);
	int (*study_trials)(void *ctx, const char *id, int by_number, int64_t limit,
	                    int64_t offset, cJSON *items, int64_t *total, api_err *e);
	/* GET /v1/jobs?study=: the study's jobs in trial order */
	int (*job_list_study)(void *ctx, const char *study, int64_t limit, int64_t offset,
	                      cJSON *items, int64_t *total, api_err *e);
} api_backend;

#endif
