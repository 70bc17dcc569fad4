/*
 * jobs.h - training jobs: a bounded FIFO queue, a pool of worker threads
 * running nn_train, cancellation, graceful stop with checkpoints, and the
 * per-job event feeds that SSE / ndjson streams read.
 *
 * A feed is the job's whole event history (step, epoch and state events in
 * the order they happened) plus live appends. Readers keep a cursor into it
 * and, when they are ahead, register a waiter whose suspend function runs
 * under the feed lock and whose wake function runs when the next event (or
 * the end) arrives, so a reader never sleeps inside a callback and a slow
 * reader never slows training.
 */
#ifndef NND_JOBS_H
#define NND_JOBS_H

#include <stddef.h>
#include <stdint.h>
#include "storage.h"

typedef struct jobs jobs;

/* A running job's history and checkpoint go to the store at most every
 * jobs_checkpoint_gap_ms, the first time that long after its training
 * began (--checkpoint-gap-ms; 0: as they come). A crash loses at most this
 * much training: the job resumes from its last checkpoint, or starts
 * again, to the same weights. */
extern int jobs_checkpoint_gap_ms;

/* Requeues jobs left queued or running by an earlier run (they resume from
 * their checkpoints) and starts `workers` threads. capacity bounds the
 * queued jobs accepted by jobs_submit. */
int jobs_start(store *st, int workers, int capacity, const api_limits *lim, jobs **out);
/* Graceful stop: running jobs checkpoint at their next step and stay queued
 * in the store; waits for the workers. Wakes every stream. */
void jobs_stop(jobs *q);
void jobs_free(jobs *q);

int jobs_submit(jobs *q, const api_job_refs *refs, const char *config, api_job *out,
                api_err *e);
int jobs_cancel(jobs *q, const char *id, api_job *out, api_err *e);

/* ---- studies' trials (server/studies.c) */
/* Submits a study's trial: it does not count against the capacity; with
 * pause_at > 0 it pauses (state paused, holding no worker) at the start of
 * that epoch. */
int jobs_submit_trial(jobs *q, const api_job_refs *refs, const char *config,
                      const char *study, int trial, int pause_at, api_job *out, api_err *e);
/* Continues a paused trial from its checkpoint, to pause again at pause_at
 * (0 = run to the end). 0, or -1 when it is not paused here. */
int jobs_resume(jobs *q, const char *id, int pause_at);
/* Cancels like jobs_cancel; a job that had not started (queued or paused)
 * records the error {code, detail} when code is not NULL (pruned trials). */
int jobs_cancel_code(jobs *q, const char *id, const char *code, const char *detail,
                     api_job *out, api_err *e);
/* At most limit of the study's trials run at once (limit <= 0: the study
 * has ended; forgets it). 0 when the queue holds to it, so the study may
 * keep more of its trials queued; -1 when it cannot (out of memory, or a
 * shared store, whose daemons claim queued jobs from the store). */
int jobs_set_trial_limit(jobs *q, const char *study, int limit);
/* Every active study has set its limit since the start: until then a
 * queued trial (of a study that has not) does not start. */
void jobs_trial_limits_set(jobs *q);
/* fn(ctx, study) runs on a worker, outside every lock, whenever a study's
 * trial pauses or reaches a final state. */
void jobs_set_trial_listener(jobs *q, void (*fn)(void *ctx, const char *study), void *ctx);
/* The stored job with the live step, epoch and progress of a running job. */
int jobs_get(jobs *q, const char *id, api_job *out, api_err *e);

/* Puts the live step, epoch and progress into running jobs of a list. */
void jobs_overlay(jobs *q, cJSON *items);

/* For /metrics. */
int jobs_queue_depth(jobs *q);
int jobs_capacity(jobs *q);
int jobs_workers(jobs *q);
int64_t jobs_samples_trained(jobs *q);

/* ---- event feeds */
typedef struct feed feed;

/* FEED_TRIAL and FEED_STUDY_STATE are a study's events ("trial" and
 * "state"); in a study's own feed their ids are the study's event sequence
 * numbers. */
enum { FEED_STEP = 0, FEED_EPOCH = 1, FEED_STATE = 2, FEED_TRIAL = 3, FEED_STUDY_STATE = 4 };

typedef struct feed_waiter {
	void (*suspend)(void *arg);  /* called under the feed lock */
	void (*wake)(void *arg);     /* called under the feed lock, once */
	void *arg;
	struct feed_waiter *next;
	int linked;
} feed_waiter;

/* A reference to job id's feed (404 when there is no such job). */
feed *jobs_feed_open(jobs *q, const char *id, api_err *e);
/* Study feeds (server/studies.c keeps them): a new feed with one
 * reference; an event appended with its own id (data taken; final ends the
 * feed); references; and the function jobs_feed_open calls for "std_" ids. */
feed *jobs_feed_detached(void);
void jobs_feed_append(jobs *q, feed *f, int kind, int64_t id, int final, char *data);
void jobs_feed_ref(jobs *q, feed *f);
void jobs_feed_release(jobs *q, feed *f);
void jobs_set_study_feeds(jobs *q, feed *(*open)(void *ctx, const char *id, api_err *e),
                          void *ctx);
/* Unregisters w (may be NULL) and drops the reference. */
void jobs_feed_close(jobs *q, feed *f, feed_waiter *w);
/*
 * The event at *cursor: 1 with *kind, *id and *data (malloc'd) filled and
 * the cursor advanced; 0 when there is none yet (w->suspend was called and
 * w->wake will be); -1 at the end of the stream.
 */
int jobs_feed_next(jobs *q, feed *f, size_t *cursor, int *kind, int64_t *id, char **data,
                   feed_waiter *w);
/*
 * The same, resuming after event id `after` (a Last-Event-ID; -1 = none):
 * events whose id is <= after are skipped, except the terminal state event,
 * which every stream ends with. Ids never decrease along a feed: a step's
 * id is its step number, an epoch's the global step count at its end (a
 * step and the epoch it ends share an id, the step coming first), a state
 * event's the newest id before it.
 */
int jobs_feed_next_after(jobs *q, feed *f, size_t *cursor, int64_t after, int *kind,
                         int64_t *id, char **data, feed_waiter *w);

/* ---- the all-jobs feed (GET /v1/events)
 * Every job's state events (the job object, at each change) and epoch
 * events (the epoch record with "job": id first), in the order they
 * happened; an event's id is its absolute index in the feed. It keeps the
 * newest 2048 events: a reader that falls further behind skips ahead. It
 * never ends while the daemon runs. */

/* A reference to the feed (close it with jobs_feed_close) and the cursor
 * of the event after last_id (a Last-Event-ID), or of the next event to
 * come when last_id is -1. Read it with jobs_feed_next. */
feed *jobs_events_open(jobs *q, int64_t last_id, size_t *cursor);
/* Appends a copy of text (a JSON document) as an event of kind (FEED_STATE
 * for a study object, FEED_TRIAL for a trial), for whoever else has
 * events to tell every dashboard (studies). */
void jobs_events_publish(jobs *q, int kind, const char *text);

#endif
