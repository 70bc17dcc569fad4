/*
 * storage.h - the durable store under --data-dir: one SQLite database (WAL)
 * for data sets, models, model versions, jobs and their metric history, and
 * binary files beside it (data matrices, model versions, checkpoints), each
 * written to a temporary name, fsynced and renamed before the row that
 * names it commits. Anything a 2xx acknowledged survives kill -9.
 *
 * Layout: DIR/nnd.db, DIR/datasets/<id>.data, DIR/models/<id>-v<N>.model,
 * DIR/checkpoints/<job>.ckpt. Only ids the store made itself (and that
 * match api_id_valid) ever reach a path.
 *
 * Every function is thread-safe (one connection behind a mutex; file I/O
 * happens outside it). Failures return -1 with e set.
 */
#ifndef NND_STORE_H
#define NND_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "nn.h"
#include "api_err.h"
#include "dataset_io.h"
#include "store.h"       /* api/store.h: the rows the handlers see */

typedef struct store store;

/* Opens (creating) the store; removes leftover temporary files. */
int store_open(const char *dir, store **out, char *err, size_t errlen);
/* With url NULL or "": store_open(dir). With a postgresql:// URI: the
 * PostgreSQL store there (store_pg.c, see store_ops.h), shared with any
 * other daemon given the same URI; dir is then unused. */
int store_open_url(const char *url, const char *dir, store **out, char *err, size_t errlen);
/* "sqlite" or the other store's name ("postgresql"). */
const char *store_kind(store *s);
/* 1 while the store answers (SQLite: always), for /readyz. */
int store_ready(store *s);
/* The other store's handle (NULL for SQLite), for the code that shares
 * its queue with other daemons (cluster.c). */
void *store_impl(store *s);
void store_close(store *s);

/* Row builders both stores share: the served objects from column values
 * (doc and spec are the JSON texts stored). 0, or -1 when out of memory
 * or the stored JSON does not parse. */
int store_ds_info_make(api_dataset_info *out, const char *id, const char *doc, int regression,
                       int64_t rows, int features, int outputs, int image, int64_t bytes,
                       int64_t created_at);
typedef struct store_mdl_row {
	const char *id, *name, *spec;
	int64_t params;
	int version;
	const char *trained_by, *metrics, *classes;   /* NULL when absent */
	int64_t created_at;
	int regression, inputs, outputs;
} store_mdl_row;
int store_mdl_info_make(api_model_info *out, const store_mdl_row *r);
/* {"step", "epoch", "loss" (null unless has_loss), "lr"} */
cJSON *store_step_json(int64_t step, int epoch, int has_loss, double loss, double lr);

/* ---- data sets */
int store_dataset_create(store *s, const api_dataset *d, const char *name,
                         api_dataset_info *out, api_err *e);
int store_dataset_get(store *s, const char *id, api_dataset_info *out, api_err *e);
int store_dataset_list(store *s, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                       api_err *e);
/* 409 while a queued or running job uses it. */
int store_dataset_delete(store *s, const char *id, api_err *e);
/* The stored matrix (a private mapping, checked against its CRC). */
int store_dataset_load(store *s, const char *id, api_dataset *out, api_err *e);
/* The same, shared: the first call in this process checks and maps the
 * file, later ones (until the entry leaves the cache, see storage.c) get
 * that mapping back. *out is read-only and valid until
 * store_dataset_release(s, *out) (NULL ok). */
int store_dataset_acquire(store *s, const char *id, const api_dataset **out, api_err *e);
void store_dataset_release(store *s, const api_dataset *d);
/*
 * The rows of d (from store_dataset_acquire, still held) as bytes, for
 * nn_data.x8, when every value is an integer 0..255 and there are at
 * least STORE_BYTES_MIN of them (the engine's own threshold for its byte
 * copy): one copy per data set, shared by every holder. The first caller
 * makes it; callers arriving meanwhile convert part of it too and all
 * return together. When the last holder releases the data set, the copy
 * stays for the next job while the data set is one of the two most
 * recently used idle ones (and the copy at most 512 MB), or goes with the
 * data set (deleted, or out of the cache); else it goes at once. NULL
 * when the data are not all bytes, too few, or memory is short
 * (train from the floats then: the engine's numbers are the same).
 * Valid until the caller's store_dataset_release.
 */
#define STORE_BYTES_MIN ((int64_t)1 << 20)
const uint8_t *store_dataset_bytes(store *s, const api_dataset *d);
/* Byte copies completed so far in this process (for tests). */
extern int64_t store_bytes_built;

/* ---- models */
int store_model_create(store *s, const char *name, const nn_model *m, api_model_info *out,
                       api_err *e);
int store_model_get(store *s, const char *id, api_model_info *out, api_err *e);
int store_model_list(store *s, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                     api_err *e);
int store_model_delete(store *s, const char *id, api_err *e);
/* The newest version (cached, shared, reference counted). */
int store_model_snapshot(store *s, const char *id, api_model_snap **out, api_err *e);
void store_snap_release(store *s, api_model_snap *snap);
/* A private copy of one stored version. */
int store_model_load(store *s, const char *id, int version, nn_model **out, api_err *e);
/* Publishes m (taken) as the next version (PUT weights). Publishers of
 * one model take turns; the file is written and synced without the
 * store's lock, which only the version's read and the commit take. */
int store_model_publish(store *s, const char *id, nn_model *m, int *version, api_err *e);
#ifdef NND_TEST
/* Tests: called by a SQLite store's publish once the version's file is
 * durable and before its rows are committed, without the store's lock. */
extern void (*store_publish_hook)(store *s, const char *id, int version);
#endif
/* The same, also setting the model's classes (JSON array text, or NULL to
 * keep them). */
int store_model_publish_classes(store *s, const char *id, nn_model *m, const char *classes,
                                int *version, api_err *e);

/* ---- jobs */
/* Inserts j (id, created_at filled here) after checking that its model
 * and data sets still exist (422 otherwise). */
int store_job_insert(store *s, api_job *j, api_err *e);
int store_job_get(store *s, const char *id, api_job *out, api_err *e);
int store_job_list(store *s, int state, int64_t limit, int64_t offset, cJSON *items,
                   int64_t *total, api_err *e);
/* Writes every mutable field of j. */
int store_job_update(store *s, const api_job *j, api_err *e);
/* The model version a job started from (-1 when not started yet). */
int store_job_base_version(store *s, const char *id, int *version);
int store_job_set_base_version(store *s, const char *id, int version);
/* A job's start in one commit: every mutable field of j (as
 * store_job_update) and, when base_version >= 0, the model version it
 * starts from. */
int store_job_start(store *s, const api_job *j, int base_version, api_err *e);
/* A cancel of a running job, recorded before it is acknowledged so a crash
 * before the job stops cannot undo it. 0 or -1. */
int store_job_request_cancel(store *s, const char *id);
int store_job_cancel_requested(store *s, const char *id);
/* Ids of queued and running jobs, oldest first (malloc'd array). */
int store_jobs_unfinished(store *s, char (**ids)[API_ID_LEN], int *n);
/* Jobs per state. */
int store_job_counts(store *s, int64_t counts[API_JOB_NSTATES]);
/* The epoch a study's trial pauses at (0 = none, also on errors). */
int store_job_pause_at(store *s, const char *id);
/* A paused trial goes back to queued with a new pause epoch (0 = none). */
int store_job_resume(store *s, const char *id, int pause_at);
/* The job (and its model) made for trial `number` of a study: 1 when
 * there is one, 0 when none. */
int store_job_of_trial(store *s, const char *study, int number, char job[API_ID_LEN],
                       char model[API_ID_LEN]);
/* Deletes a finished job with its history and checkpoint (a study's
 * DELETE). 409 while it is unfinished. */
int store_job_delete(store *s, const char *id, api_err *e);
/* The jobs of one study in trial order (GET /v1/jobs?study=). */
int store_job_list_study(store *s, const char *study, int64_t limit, int64_t offset,
                         cJSON *items, int64_t *total, api_err *e);

typedef struct store_step {
	int64_t step;
	int epoch;
	float loss;    /* NAN stored as NULL */
	float lr;
} store_step;

/* One transaction: the steps, the epoch record (epoch_doc may be NULL) and
 * the job row (j may be NULL). Rows already present are replaced. */
int store_metrics_write(store *s, const char *job, const store_step *steps, int n,
                        int epoch, int64_t end_step, const char *epoch_doc, const api_job *j,
                        api_err *e);
/* An epoch record of store_metrics_write_batch. */
typedef struct store_epoch_rec {
	int epoch;
	int64_t end_step;
	char *doc;
} store_epoch_rec;
/* store_metrics_write of several epochs' records at once: one transaction
 * with SQLite; through a backend of store_ops one write per record, each
 * with the steps up to its end_step (then one with the steps left), the
 * job row with the last. */
int store_metrics_write_batch(store *s, const char *job, const store_step *steps, int n,
                              const store_epoch_rec *eps, int n_eps, const api_job *j,
                              api_err *e);
/* {"steps": [...], "epochs": [...]} with steps after since_step. */
int store_metrics_get(store *s, const char *job, int64_t since_step, cJSON **out, api_err *e);

/* One history entry for event streams, in the order they happened. */
typedef struct store_event {
	int kind;        /* 0 step, 1 epoch */
	int64_t id;      /* the step number (the epoch's last step for epochs) */
	char *data;      /* JSON text, malloc'd */
} store_event;
int store_history(store *s, const char *job, store_event **out, int *n);
/* The same from event id `after` on (a caller dropping those it has);
 * may return more. */
int store_history_after(store *s, const char *job, int64_t after, store_event **out, int *n);
void store_history_free(store_event *ev, int n);

/* ---- studies (API.md "Studies"; server/studies.c runs them) */
typedef struct store_study {
	char id[API_ID_LEN];
	char *name;           /* may be NULL */
	int state;            /* api_job_state values: queued .. cancelled */
	char *config;         /* the document as stored */
	char *error;          /* {"code", "detail"} or NULL */
	int64_t created_at, started_at, finished_at;
} store_study;
void store_study_release(store_study *st);

/* Inserts a new study (id made here) with the data sets it uses. */
int store_study_insert(store *s, store_study *st, const char *dataset, const char *val,
                       const char *test, api_err *e);
int store_study_get(store *s, const char *id, store_study *out, api_err *e);
/* Ids in creation order: all (limit/offset) or, active_only, those queued
 * or running. *ids malloc'd. */
int store_study_ids(store *s, int active_only, int64_t limit, int64_t offset,
                    char (**ids)[API_ID_LEN], int *n, int64_t *total);
/* Writes state, error and the times. */
int store_study_update(store *s, const store_study *st);
/* Deletes the study, its trials and events (not its jobs and models). */
int store_study_delete(store *s, const char *id);

/* A trial's row. state: an api_job_state, or STORE_TRIAL_PRUNED. */
#define STORE_TRIAL_PRUNED 6
typedef struct store_trial {
	int number;
	int state;
	char *params;         /* JSON object text */
	double value;         /* NAN = none */
	int epochs;
	double seconds;
	int64_t rows, seed;
	char job[API_ID_LEN], model[API_ID_LEN]; /* "" until made */
	int rung;
} store_trial;
/* Inserts or replaces the row (params kept when t->params is NULL). */
int store_trial_put(store *s, const char *study, const store_trial *t);
/* Every trial of a study, by number. */
int store_trials_get(store *s, const char *study, store_trial **out, int *n);
void store_trials_free(store_trial *t, int n);
/* The trial's leaderboard entry (API.md's trials list). */
cJSON *store_trial_json(const store_trial *t);
/* The leaderboard page: best first (NULL values last, ties by number) or
 * by number; entries as API.md's trials list. */
int store_trials_page(store *s, const char *study, int by_number, int maximize, int64_t limit,
                      int64_t offset, cJSON *items, int64_t *total, api_err *e);
/* Trials per state (index STORE_TRIAL_PRUNED included) and epochs summed. */
int store_trial_counts(store *s, const char *study, int64_t counts[7], int64_t *epochs);
/* A study event: its sequence number (from 1) into *seq. */
int store_study_event(store *s, const char *study, int kind, const char *data, int64_t *seq);
/* A trial's row (store_trial_put) and a study event (store_study_event:
 * its sequence number into *seq) in one commit. */
int store_trial_record(store *s, const char *study, const store_trial *t, int kind,
                       const char *data, int64_t *seq);
/* Every event of a study, in order (kind, id = seq, data). */
int store_study_events(store *s, const char *study, store_event **out, int *n);
/* The same, only those whose seq is above after. */
int store_study_events_after(store *s, const char *study, int64_t after, store_event **out,
                             int *n);
/*
 * One daemon at a time works on a study: its scheduler's pass, a cancel.
 * With a store shared by several daemons (PostgreSQL) this takes a lock in
 * the database (held by an open transaction on a connection of its own:
 * a killed daemon's ends with its connection, a frozen one's after the
 * lease's idle-transaction timeout); SQLite has one daemon, whose
 * studies.c lock is enough. wait: block (up to 30 s) instead of giving up.
 * 1 locked, 0 another daemon holds it, -1 the store failed. The caller
 * serialises its calls and ends each with store_study_unlock (whatever
 * the lock returned).
 */
int store_study_lock(store *s, const char *id, int wait);
/* 1 while the lock taken is still held (a frozen daemon's may have ended
 * meanwhile: it must then write nothing more for the study). */
int store_study_lock_held(store *s);
void store_study_unlock(store *s);

/* Checkpoints: the engine's restorable state of a running job. */
int store_checkpoint_put(store *s, const char *job, const void *buf, size_t len);
/* 0 and *buf NULL when there is none. */
int store_checkpoint_get(store *s, const char *job, void **buf, size_t *len);
int store_checkpoint_delete(store *s, const char *job);

/* A finished job that publishes: writes m (taken) as the model's next
 * version, then in one transaction records the version, points the model
 * at it (trained_by, metrics, classes) and stores j with its
 * model_version set. */
int store_job_publish(store *s, api_job *j, nn_model *m, const char *classes_json,
                      api_err *e);

#endif
