/*
 * studies.h - the scheduler of studies' trials, next to the worker pool.
 *
 * One thread carries out what api/study.c decides: it creates each trial's
 * model and job (in trial order, at most `parallelism` queued or running
 * at once, not counted against the job queue), follows their jobs, makes
 * successive halving's decisions when a rung is complete, and records
 * every step in the store first, so a restarted daemon continues a study
 * where it was: no trial lost, none run twice, the same decisions.
 */
#ifndef NND_STUDIES_H
#define NND_STUDIES_H

#include "jobs.h"
#include "storage.h"
#include "study.h"

typedef struct studies studies;

/* Starts the scheduler (it picks up the studies left queued or running). */
int studies_start(store *st, jobs *q, const api_limits *lim, int workers, studies **out);
/* Stops the scheduler thread (jobs_stop stops the trials' jobs). */
void studies_stop(studies *S);
void studies_free(studies *S);

/* The API's operations (server/backend.c binds them). obj: the study object. */
int studies_create(studies *S, api_study *s, cJSON **obj, api_err *e);
int studies_get(studies *S, const char *id, cJSON **obj, api_err *e);
int studies_list(studies *S, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                 api_err *e);
int studies_cancel(studies *S, const char *id, cJSON **obj, api_err *e);
int studies_delete(studies *S, const char *id, int keep_best, api_err *e);
int studies_trials(studies *S, const char *id, int by_number, int64_t limit, int64_t offset,
                   cJSON *items, int64_t *total, api_err *e);

#endif
