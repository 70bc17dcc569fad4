/*
 * store_ops.h - the seam between the daemon and where it keeps things.
 *
 * The daemon calls the store_* functions of storage.h. By default they are
 * the embedded SQLite store and the files beside it (storage.c); with
 * `--store postgresql://...` store_open_url picks another implementation
 * once, at start, and every store_* call that touches durable state goes
 * through this table instead (as Redis picks ae_epoll.c or ae_kqueue.c).
 * What stays in storage.c whichever store is used: the caches of mapped
 * data sets, their byte copies and model snapshots.
 *
 * Every function takes the implementation's own handle (be) first and has
 * the contract of the store_* function of the same name in storage.h.
 */
#ifndef NND_STORE_OPS_H
#define NND_STORE_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "nn.h"
#include "api_err.h"
#include "dataset_io.h"
#include "store.h"       /* api/store.h */

struct store_step;
struct store_event;
struct store_study;
struct store_trial;

typedef struct store_ops {
	const char *name;     /* "postgresql" */
	void (*close)(void *be);
	/* 1 while the store answers (for /readyz), else 0. */
	int (*ready)(void *be);

	int (*dataset_create)(void *be, const api_dataset *d, const char *name,
	                      api_dataset_info *out, api_err *e);
	int (*dataset_get)(void *be, const char *id, api_dataset_info *out, api_err *e);
	int (*dataset_list)(void *be, int64_t limit, int64_t offset, cJSON *items,
	                    int64_t *total, api_err *e);
	int (*dataset_delete)(void *be, const char *id, api_err *e);
	/* The matrix, as api_dataset_deserialize(_mapped) makes it. */
	int (*dataset_load)(void *be, const char *id, api_dataset *out, api_err *e);

	int (*model_create)(void *be, const char *name, const nn_model *m, api_model_info *out,
	                    api_err *e);
	int (*model_get)(void *be, const char *id, api_model_info *out, api_err *e);
	int (*model_list)(void *be, int64_t limit, int64_t offset, cJSON *items,
	                  int64_t *total, api_err *e);
	int (*model_delete)(void *be, const char *id, api_err *e);
	/* The newest published version and the classes (JSON text, malloc'd,
	 * NULL when none): what a snapshot is cached by. 404 when no model. */
	int (*model_head)(void *be, const char *id, int *version, char **classes, api_err *e);
	int (*model_load)(void *be, const char *id, int version, nn_model **out, api_err *e);
	/* Stores m (left to the caller) as the next version; with j, records
	 * the job's end in the same transaction (j->model_version set). */
	int (*model_publish)(void *be, const char *id, const nn_model *m, api_job *j,
	                     const char *classes, int *version, api_err *e);

	int (*job_insert)(void *be, api_job *j, api_err *e);
	int (*job_get)(void *be, const char *id, api_job *out, api_err *e);
	int (*job_list)(void *be, int state, int64_t limit, int64_t offset, cJSON *items,
	                int64_t *total, api_err *e);
	int (*job_update)(void *be, const api_job *j, api_err *e);
	int (*job_base_version)(void *be, const char *id, int *version);
	int (*job_set_base_version)(void *be, const char *id, int version);
	int (*job_start)(void *be, const api_job *j, int base_version, api_err *e);
	int (*job_request_cancel)(void *be, const char *id);
	int (*job_cancel_requested)(void *be, const char *id);
	int (*jobs_unfinished)(void *be, char (**ids)[API_ID_LEN], int *n);
	int (*job_counts)(void *be, int64_t counts[API_JOB_NSTATES]);
	int (*metrics_write)(void *be, const char *job, const struct store_step *steps, int n,
	                     int epoch, int64_t end_step, const char *epoch_doc,
	                     const api_job *j, api_err *e);
	int (*metrics_get)(void *be, const char *job, int64_t since_step, cJSON **out,
	                   api_err *e);
	int (*history)(void *be, const char *job, struct store_event **out, int *n);
	/* The events with ids >= after (what a feed holding up to `after`
	 * may lack; it drops those it has). */
	int (*history_after)(void *be, const char *job, int64_t after, struct store_event **out,
	                     int *n);
	int (*job_pause_at)(void *be, const char *id);
	int (*job_resume)(void *be, const char *id, int pause_at);
	int (*job_list_study)(void *be, const char *study, int64_t limit, int64_t offset,
	                      cJSON *items, int64_t *total, api_err *e);
	int (*checkpoint_put)(void *be, const char *job, const void *buf, size_t len);
	int (*checkpoint_get)(void *be, const char *job, void **buf, size_t *len);
	int (*checkpoint_delete)(void *be, const char *job);

	/* studies (storage.h's studies block; the same contracts) */
	int (*job_of_trial)(void *be, const char *study, int number, char job[API_ID_LEN],
	                    char model[API_ID_LEN]);
	int (*job_delete)(void *be, const char *id, api_err *e);
	int (*study_insert)(void *be, struct store_study *st, const char *dataset,
	                    const char *val, const char *test, api_err *e);
	int (*study_get)(void *be, const char *id, struct store_study *out, api_err *e);
	int (*study_ids)(void *be, int active_only, int64_t limit, int64_t offset,
	                 char (**ids)[API_ID_LEN], int *n, int64_t *total);
	int (*study_update)(void *be, const struct store_study *st);
	int (*study_delete)(void *be, const char *id);
	int (*trial_put)(void *be, const char *study, const struct store_trial *t);
	int (*trials_get)(void *be, const char *study, struct store_trial **out, int *n);
	int (*trials_page)(void *be, const char *study, int by_number, int maximize,
	                   int64_t limit, int64_t offset, cJSON *items, int64_t *total,
	                   api_err *e);
	int (*trial_counts)(void *be, const char *study, int64_t counts[7], int64_t *epochs);
	int (*study_event)(void *be, const char *study, int kind, const char *data,
	                   int64_t *seq);
	int (*trial_record)(void *be, const char *study, const struct store_trial *t, int kind,
	                    const char *data, int64_t *seq);
	int (*study_events)(void *be, const char *study, int64_t after, struct store_event **out,
	                    int *n);
	int (*study_lock)(void *be, const char *id, int wait);
	int (*study_lock_held)(void *be);
	void (*study_unlock)(void *be);
} store_ops;

/* The PostgreSQL store (store_pg.c): connects to url (a libpq URI or
 * conninfo), creates or migrates the schema. 0 with *be and *ops set, or
 * -1 with err filled. */
int store_pg_open(const char *url, void **be, const store_ops **ops, char *err,
                  size_t errlen);

#endif
