/*
 * jobs.c - the job queue, the worker pool that runs nn_train, and the
 * per-job event feeds (see jobs.h).
 *
 * Locks, always taken in this order: q->submit_mu (submissions, one at a
 * time), q->mu (the live list and queue), then the store's own lock inside
 * store_* calls; q->fmu (feeds) is taken alone or inside q->mu, never the
 * other way round.
 *
 * A job's durable record is the store's row; the in-memory `live` entry
 * exists while it is queued or running and carries the cancel flag and the
 * newest step for GET /v1/jobs/{id}. Metric history is buffered by the
 * worker and handed to the job's writer thread (see job_writer) at each
 * epoch end, before a checkpoint, and at least once a second, and written
 * by the worker itself after training; the checkpoint holds the step the
 * engine resumes from, so history written past it is simply rewritten on
 * resume (same values, same seed).
 *
 * A job's start reads what the store keeps in memory: the data sets'
 * shared mappings (store_dataset_acquire), their shared byte copies
 * (store_dataset_bytes) and the model's cached version.
 */
#include <errno.h>
#ifdef __GLIBC__
#endif
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "jobs.h"
#include "classes.h"
#include "cluster.h"
#include "ranks.h"
#include "replicas.h"
#include "util.h"

/* An event: id is the step number of a step event, the global step count
 * at the end of an epoch for an epoch event (a step and the epoch it ends
 * share an id, the step first), and the newest of those for a state event,
 * so ids never decrease along a feed. final marks the terminal state. */
typedef struct feed_ev {
	int kind;
	int final;
	int64_t id;
	char *data;
} feed_ev;

/* A live feed keeps at most this many events; past it the oldest quarter
 * goes (the full history stays in the store, GET .../metrics). */
#define FEED_MAX_EVENTS 100000
/* The all-jobs feed (GET /v1/events) keeps fewer: its readers want what
 * happens now, and a state event is a whole job object. */
#define ALL_MAX_EVENTS 2048

struct feed {
	int refs;
	int done;
	size_t max;           /* events kept at most (0 = FEED_MAX_EVENTS) */
	feed_ev *ev;
	size_t n, cap;
	size_t base;          /* absolute index of ev[0]; cursors are absolute */
	int64_t last_step;    /* newest step event */
	int last_epoch;       /* newest epoch event's epoch number */
	int64_t last_id;      /* newest event id (0 before any step or epoch) */
	feed_waiter *waiters;
};

typedef struct live {
	char id[API_ID_LEN];
	int state;            /* queued, running, or final while being recorded */
	volatile int cancel;
	double progress;
	int epoch;
	int64_t step;
	int need;             /* workers it holds while running: its replicas */
	int on_ranks;         /* its replicas are MPI ranks (ranks.h): it holds
	                       * one worker, and waits while another such job runs */
	char study[API_ID_LEN]; /* a study's trial: its study ("" otherwise) */
	int64_t waiting_since; /* when it first found too few free workers (0: not) */
	feed *f;              /* one reference held here */
	struct live *next;
} live;

/* A study's bound on its trials running at once (its parallelism): the
 * study may keep more of them queued, so that a worker going free finds
 * the next trial ready (see pick). */
typedef struct trial_limit {
	char study[API_ID_LEN];
	int limit;
	struct trial_limit *next;
} trial_limit;

struct jobs {
	store *st;
	api_limits lim;
	int n_workers;
	int free_workers;     /* not held by a running job */
	int capacity;
	pthread_t *threads;
	int started;
	pthread_mutex_t mu;
	pthread_mutex_t submit_mu;  /* one submission at a time */
	pthread_cond_t cv;
	live *lives;          /* submission order; the queue is its queued entries */
	struct trial_limit *limits; /* studies' bounds on their running trials */
	int limits_set;       /* the studies have set theirs once since the start */
	volatile int stopping;
	pthread_mutex_t fmu;
	int feeds_closed;
	feed *all;            /* every job's state and epoch events (ids: the
	                       * event's absolute index), for GET /v1/events */
	int64_t samples;      /* trained samples, for /metrics */
	int ranks_busy;       /* a job on MPI ranks is running (under mu) */
	/* called (outside every lock) when a study's trial pauses or ends */
	void (*on_trial)(void *ctx, const char *study);
	void *on_trial_ctx;
	/* a store shared with other daemons (see "shared store" below), else
	 * NULL: then the queue is the store's rows, lives hold only the jobs
	 * running here, and remotes the feeds of jobs streamed from here but
	 * run anywhere (guarded by mu) */
	cluster *cl;
	struct remote *remotes;
	uint64_t wakes;       /* counts wake-ups of idle workers (under mu) */
	/* opens a study's event feed (server/studies.c) */
	feed *(*study_open)(void *ctx, const char *id, api_err *e);
	void *study_open_ctx;
};

/* ---------------------------------------------------------------- feeds */

static feed *feed_new(void)
{
	feed *f = calloc(1, sizeof *f);
	if (f) {
		f->refs = 1;
		f->last_step = -1;
		f->last_epoch = -1;
	}
	return f;
}

static void feed_free(feed *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->ev[i].data);
	free(f->ev);
	free(f);
}

static void wake_all_locked(feed *f)
{
	feed_waiter *w = f->waiters;
	f->waiters = NULL;
	while (w) {
		feed_waiter *next = w->next;
		w->linked = 0;
		w->next = NULL;
		w->wake(w->arg);
		w = next;
	}
}

/* Appends an event (data taken) with its id, waking the readers; past
 * the feed's size its oldest quarter goes. Caller holds q->fmu. */
static void feed_append_locked(feed *f, int kind, int64_t ev_id, int final, char *data)
{
	size_t max = f->max ? f->max : FEED_MAX_EVENTS;
	if (f->n >= max) {
		size_t drop = f->n / 4;
		for (size_t i = 0; i < drop; i++)
			free(f->ev[i].data);
		memmove(f->ev, f->ev + drop, (f->n - drop) * sizeof *f->ev);
		f->n -= drop;
		f->base += drop;
	}
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		feed_ev *p = realloc(f->ev, cap * sizeof *p);
		if (!p) {
			free(data);
			return;
		}
		f->ev = p;
		f->cap = cap;
	}
	f->last_id = ev_id;
	f->ev[f->n].kind = kind;
	f->ev[f->n].final = final;
	f->ev[f->n].id = ev_id;
	f->ev[f->n].data = data;
	f->n++;
	wake_all_locked(f);
}

/* Appends a job's event (data taken): a step with its step number id, an
 * epoch (number epoch) ending at step id, or a state (id and epoch unused;
 * final for the terminal one). Steps and epochs already present (a resumed
 * job replays the steps after its checkpoint) are dropped. Caller holds
 * q->fmu. */
static void feed_push_locked(feed *f, int kind, int64_t id, int epoch, int final, char *data)
{
	if (!data)
		return;
	if ((kind == FEED_STEP && id <= f->last_step) ||
	    (kind == FEED_EPOCH && epoch <= f->last_epoch) || f->done) {
		free(data);
		return;
	}
	/* ids never go back (history written before epochs carried their
	 * step keeps its order this way); a study's events carry their own */
	int64_t ev_id = kind >= FEED_TRIAL ? id
	                : kind == FEED_STATE || id < f->last_id ? f->last_id : id;
	if (kind == FEED_STEP)
		f->last_step = id;
	if (kind == FEED_EPOCH)
		f->last_epoch = epoch;
	feed_append_locked(f, kind, ev_id,
	                   (kind == FEED_STATE || kind == FEED_STUDY_STATE) && final, data);
}

/* Appends a copy of text to the all-jobs feed, its id the event's absolute
 * index. Caller holds q->fmu. */
static void all_push_locked(jobs *q, int kind, const char *text)
{
	char *t = text && q->all ? strdup(text) : NULL;
	if (t)
		feed_append_locked(q->all, kind, (int64_t)(q->all->base + q->all->n), 0, t);
}

static void feed_push(jobs *q, feed *f, int kind, int64_t id, int epoch, char *data)
{
	pthread_mutex_lock(&q->fmu);
	feed_push_locked(f, kind, id, epoch, 0, data);
	pthread_mutex_unlock(&q->fmu);
}

static void feed_finish(jobs *q, feed *f)
{
	pthread_mutex_lock(&q->fmu);
	f->done = 1;
	wake_all_locked(f);
	pthread_mutex_unlock(&q->fmu);
}

static void feed_unref(jobs *q, feed *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&q->fmu);
	int last = --f->refs == 0;
	pthread_mutex_unlock(&q->fmu);
	if (last)
		feed_free(f);
}

static char *job_text(const api_job *j)
{
	cJSON *o = api_job_to_json(j);
	char *t = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return t;
}

/* A state event: the job object j, final when j's state is terminal; a
 * change (announce) also goes to the all-jobs feed. */
static void feed_push_state_of(jobs *q, feed *f, const api_job *j, int announce)
{
	char *t = job_text(j);
	pthread_mutex_lock(&q->fmu);
	if (announce)
		all_push_locked(q, FEED_STATE, t);
	feed_push_locked(f, FEED_STATE, 0, 0, api_job_state_final(j->state), t);
	pthread_mutex_unlock(&q->fmu);
}

static void feed_push_state(jobs *q, feed *f, const api_job *j)
{
	feed_push_state_of(q, f, j, 1);
}

/* Appends job id's stored history (steps and epochs) to f; those f holds
 * already are dropped by feed_push_locked. */
static void feed_add_history(jobs *q, feed *f, const char *id)
{
	store_event *ev = NULL;
	int n = 0;
	pthread_mutex_lock(&q->fmu);
	int64_t after = f->last_id;
	pthread_mutex_unlock(&q->fmu);
	store_history_after(q->st, id, after, &ev, &n);
	pthread_mutex_lock(&q->fmu);
	for (int i = 0; i < n; i++) {
		int epoch = 0;
		if (ev[i].kind == 1) {
			cJSON *d = cJSON_Parse(ev[i].data);
			const cJSON *e = d ? cJSON_GetObjectItemCaseSensitive(d, "epoch") : NULL;
			epoch = cJSON_IsNumber(e) ? (int)e->valuedouble : f->last_epoch + 1;
			cJSON_Delete(d);
		}
		feed_push_locked(f, ev[i].kind == 0 ? FEED_STEP : FEED_EPOCH, ev[i].id, epoch, 0,
		                 ev[i].data);
		ev[i].data = NULL;
	}
	pthread_mutex_unlock(&q->fmu);
	store_history_free(ev, n);
}

/* A feed holding job id's stored history (steps and epochs). */
static feed *feed_from_history(jobs *q, const char *id)
{
	feed *f = feed_new();
	if (f)
		feed_add_history(q, f, id);
	return f;
}

static feed *remote_open(jobs *q, const char *id, api_err *e);
feed *jobs_feed_detached(void)
{
	return feed_new();
}

void jobs_feed_append(jobs *q, feed *f, int kind, int64_t id, int final, char *data)
{
	pthread_mutex_lock(&q->fmu);
	feed_push_locked(f, kind, id, 0, final, data);
	if (final) {
		f->done = 1;
		wake_all_locked(f);
	}
	pthread_mutex_unlock(&q->fmu);
}

void jobs_feed_ref(jobs *q, feed *f)
{
	pthread_mutex_lock(&q->fmu);
	f->refs++;
	pthread_mutex_unlock(&q->fmu);
}

void jobs_feed_release(jobs *q, feed *f)
{
	feed_unref(q, f);
}

void jobs_set_study_feeds(jobs *q, feed *(*open)(void *ctx, const char *id, api_err *e),
                          void *ctx)
{
	pthread_mutex_lock(&q->mu);
	q->study_open = open;
	q->study_open_ctx = ctx;
	pthread_mutex_unlock(&q->mu);
}

feed *jobs_feed_open(jobs *q, const char *id, api_err *e)
{
	if (strncmp(id, "std_", 4) == 0) {
		if (!q->study_open)
			return api_err_set(e, 404, "not_found", "no study %s", id), NULL;
		return q->study_open(q->study_open_ctx, id, e);
	}
	pthread_mutex_lock(&q->mu);
	for (live *lv = q->lives; lv; lv = lv->next)
		if (strcmp(lv->id, id) == 0) {
			pthread_mutex_lock(&q->fmu);
			lv->f->refs++;
			pthread_mutex_unlock(&q->fmu);
			feed *f = lv->f;
			pthread_mutex_unlock(&q->mu);
			return f;
		}
	pthread_mutex_unlock(&q->mu);
	if (q->cl)
		return remote_open(q, id, e);
	/* not live: the stored history and the final state */
	api_job j;
	if (store_job_get(q->st, id, &j, e) < 0)
		return NULL;
	feed *f = feed_from_history(q, id);
	if (f) {
		feed_push_state_of(q, f, &j, 0);
		f->done = 1;
	} else {
		api_err_set(e, 500, "out_of_memory", "out of memory");
	}
	api_job_release(&j);
	return f;
}

void jobs_feed_close(jobs *q, feed *f, feed_waiter *w)
{
	if (!f)
		return;
	if (w) {
		pthread_mutex_lock(&q->fmu);
		if (w->linked) {
			for (feed_waiter **pp = &f->waiters; *pp; pp = &(*pp)->next)
				if (*pp == w) {
					*pp = w->next;
					break;
				}
			w->linked = 0;
		}
		pthread_mutex_unlock(&q->fmu);
	}
	feed_unref(q, f);
}

int jobs_feed_next(jobs *q, feed *f, size_t *cursor, int *kind, int64_t *id, char **data,
                   feed_waiter *w)
{
	return jobs_feed_next_after(q, f, cursor, -1, kind, id, data, w);
}

int jobs_feed_next_after(jobs *q, feed *f, size_t *cursor, int64_t after, int *kind,
                         int64_t *id, char **data, feed_waiter *w)
{
	pthread_mutex_lock(&q->fmu);
	int rc;
	if (*cursor < f->base)
		*cursor = f->base;     /* fell behind the kept window */
	while (*cursor < f->base + f->n && f->ev[*cursor - f->base].id <= after &&
	       !f->ev[*cursor - f->base].final)
		(*cursor)++;           /* the client has it already */
	if (*cursor < f->base + f->n) {
		feed_ev *ev = &f->ev[*cursor - f->base];
		*kind = ev->kind;
		*id = ev->id;
		*data = strdup(ev->data);
		(*cursor)++;
		rc = *data ? 1 : -1;
	} else if (f->done || q->feeds_closed) {
		rc = -1;
	} else {
		w->suspend(w->arg);
		w->next = f->waiters;
		f->waiters = w;
		w->linked = 1;
		rc = 0;
	}
	pthread_mutex_unlock(&q->fmu);
	return rc;
}

/* ---------------------------------------------------------------- all jobs */

feed *jobs_events_open(jobs *q, int64_t last_id, size_t *cursor)
{
	pthread_mutex_lock(&q->fmu);
	feed *f = q->all;
	f->refs++;
	size_t end = f->base + f->n;
	*cursor = last_id >= 0 && (size_t)last_id < end ? (size_t)last_id + 1 : end;
	pthread_mutex_unlock(&q->fmu);
	return f;
}

void jobs_events_publish(jobs *q, int kind, const char *text)
{
	pthread_mutex_lock(&q->fmu);
	all_push_locked(q, kind, text);
	pthread_mutex_unlock(&q->fmu);
}

/* ---------------------------------------------------------------- queue */

static live *find_live(jobs *q, const char *id)
{
	for (live *lv = q->lives; lv; lv = lv->next)
		if (strcmp(lv->id, id) == 0)
			return lv;
	return NULL;
}

static void remove_live(jobs *q, live *dead)
{
	for (live **pp = &q->lives; *pp; pp = &(*pp)->next)
		if (*pp == dead) {
			*pp = dead->next;
			break;
		}
}

static int count_queued(jobs *q)
{
	int n = 0;
	for (live *lv = q->lives; lv; lv = lv->next)
		n += lv->state == API_JOB_QUEUED;
	return n;
}

/* The replicas a job's config asks for (1 when it says nothing). */
static int config_replicas(const char *config)
{
	cJSON *c = config ? cJSON_Parse(config) : NULL;
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(c, "replicas");
	int n = cJSON_IsNumber(r) && r->valuedouble >= 1 ? (int)r->valuedouble : 1;
	cJSON_Delete(c);
	return n;
}

/* Do a job's replicas run on MPI ranks (ranks_fit's rule)? */
static int on_ranks(int replicas)
{
	return ranks_size() > 1 && replicas > 1 && replicas <= ranks_size();
}

/* The workers a job's config asks for (its replicas), at most all of them:
 * a job stored by a daemon with more workers still runs here, its shards
 * (which alone fix its weights) shared by fewer threads. A job on MPI
 * ranks holds one: its replica 0 (the others are ranks). */
static int workers_needed(jobs *q, const char *config)
{
	int n = config_replicas(config);
	if (on_ranks(n))
		return 1;
	return n < q->n_workers ? n : q->n_workers;
}

/* Appends a live entry for a stored job (caller holds q->mu). */
static live *add_live(jobs *q, const api_job *j, feed *f)
{
	live *lv = calloc(1, sizeof *lv);
	if (!lv)
		return NULL;
	lv->need = workers_needed(q, j->config);
	lv->on_ranks = on_ranks(config_replicas(j->config));
	snprintf(lv->id, sizeof lv->id, "%s", j->id);
	snprintf(lv->study, sizeof lv->study, "%s", j->study);
	lv->state = API_JOB_QUEUED;
	lv->f = f;
	lv->step = j->step;
	lv->epoch = j->epoch;
	lv->progress = j->progress;
	live **pp = &q->lives;
	while (*pp)
		pp = &(*pp)->next;
	*pp = lv;
	return lv;
}

/* A submission; a study's trial (study not NULL) does not count against
 * the queue's capacity (its study bounds its trials). */
static int submit(jobs *q, const api_job_refs *refs, const char *config, const char *study,
                  int trial, int pause_at, api_job *out, api_err *e)
{
	memset(out, 0, sizeof *out);
	if (study) {
		snprintf(out->study, sizeof out->study, "%s", study);
		out->trial = trial;
		out->pause_at = pause_at;
	}
	snprintf(out->model, sizeof out->model, "%s", refs->model ? refs->model : "");
	snprintf(out->dataset, sizeof out->dataset, "%s", refs->dataset ? refs->dataset : "");
	snprintf(out->val_dataset, sizeof out->val_dataset, "%s",
	         refs->val_dataset ? refs->val_dataset : "");
	out->state = API_JOB_QUEUED;
	out->model_version = -1;
	out->config = strdup(config);
	if (!out->config)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	/* submissions take turns (so the capacity check holds until the job
	 * is queued), but the store's commit happens outside q->mu, so the
	 * workers' per-step bookkeeping never waits for an fsync */
	pthread_mutex_lock(&q->submit_mu);
	pthread_mutex_lock(&q->mu);
	int stopping = q->stopping, full = !study && count_queued(q) >= q->capacity;
	pthread_mutex_unlock(&q->mu);
	int64_t counts[API_JOB_NSTATES];
	if (q->cl && !study && !stopping && store_job_counts(q->st, counts) == 0)
		full = counts[API_JOB_QUEUED] >= q->capacity;   /* the shared queue's depth */
	if (stopping || full) {
		pthread_mutex_unlock(&q->submit_mu);
		api_job_release(out);
		if (stopping)
			return api_err_set(e, 503, "shutting_down", "the daemon is shutting down");
		return api_err_set(e, 429, "queue_full",
		                   "the job queue is full (%d queued); retry later", q->capacity);
	}
	feed *f = feed_new();
	if (!f || store_job_insert(q->st, out, e) < 0) {
		pthread_mutex_unlock(&q->submit_mu);
		if (f)
			feed_free(f);
		else
			api_err_set(e, 500, "out_of_memory", "out of memory");
		api_job_release(out);
		return -1;
	}
	feed_push_state(q, f, out);
	pthread_mutex_lock(&q->mu);
	if (q->cl) {
		/* queued in the store: a worker of any daemon claims it */
		q->wakes++;
		pthread_cond_signal(&q->cv);
		pthread_mutex_unlock(&q->mu);
		pthread_mutex_unlock(&q->submit_mu);
		feed_unref(q, f);
		return 0;
	}
	if (!add_live(q, out, f)) {
		/* stored but not queued: it is picked up at the next start */
		feed_unref(q, f);
		util_log(0, "jobs: out of memory queueing %s", out->id);
	}
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_mutex_unlock(&q->submit_mu);
	return 0;
}

int jobs_submit(jobs *q, const api_job_refs *refs, const char *config, api_job *out,
                api_err *e)
{
	return submit(q, refs, config, NULL, 0, 0, out, e);
}

int jobs_submit_trial(jobs *q, const api_job_refs *refs, const char *config,
                      const char *study, int trial, int pause_at, api_job *out, api_err *e)
{
	return submit(q, refs, config, study, trial, pause_at, out, e);
}

int jobs_resume(jobs *q, const char *id, int pause_at)
{
	if (store_job_resume(q->st, id, pause_at) < 0)
		return -1;
	pthread_mutex_lock(&q->mu);
	live *lv = find_live(q, id);
	if (lv && lv->state == API_JOB_PAUSED)
		lv->state = API_JOB_QUEUED;
	q->wakes++;           /* shared store: queued there, any daemon claims it */
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return lv || q->cl ? 0 : -1;
}

void jobs_set_trial_listener(jobs *q, void (*fn)(void *ctx, const char *study), void *ctx)
{
	pthread_mutex_lock(&q->mu);
	q->on_trial = fn;
	q->on_trial_ctx = ctx;
	pthread_mutex_unlock(&q->mu);
}

int jobs_set_trial_limit(jobs *q, const char *study, int limit)
{
	if (q->cl)
		return -1;    /* daemons claim trials from the shared store: no pick */
	pthread_mutex_lock(&q->mu);
	trial_limit **pp = &q->limits;
	while (*pp && strcmp((*pp)->study, study) != 0)
		pp = &(*pp)->next;
	if (limit <= 0 && *pp) {
		trial_limit *dead = *pp;
		*pp = dead->next;
		free(dead);
	} else if (limit > 0 && !*pp && (*pp = calloc(1, sizeof **pp))) {
		snprintf((*pp)->study, sizeof (*pp)->study, "%s", study);
	}
	int rc = limit > 0 && !*pp ? -1 : 0;
	if (limit > 0 && *pp)
		(*pp)->limit = limit;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void jobs_trial_limits_set(jobs *q)
{
	pthread_mutex_lock(&q->mu);
	q->limits_set = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

int jobs_get(jobs *q, const char *id, api_job *out, api_err *e)
{
	if (store_job_get(q->st, id, out, e) < 0)
		return -1;
	pthread_mutex_lock(&q->mu);
	live *lv = find_live(q, id);
	if (lv && lv->state == API_JOB_RUNNING && out->state == API_JOB_RUNNING) {
		out->step = lv->step;
		out->epoch = lv->epoch;
		out->progress = lv->progress;
	}
	pthread_mutex_unlock(&q->mu);
	return 0;
}

void jobs_overlay(jobs *q, cJSON *items)
{
	cJSON *it;
	pthread_mutex_lock(&q->mu);
	cJSON_ArrayForEach(it, items) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "state");
		if (!cJSON_IsString(id) || !cJSON_IsString(st) || strcmp(st->valuestring, "running"))
			continue;
		live *lv = find_live(q, id->valuestring);
		if (!lv || lv->state != API_JOB_RUNNING)
			continue;
		cJSON_ReplaceItemInObjectCaseSensitive(it, "step", cJSON_CreateNumber((double)lv->step));
		cJSON_ReplaceItemInObjectCaseSensitive(it, "epoch", cJSON_CreateNumber(lv->epoch));
		cJSON_ReplaceItemInObjectCaseSensitive(it, "progress", cJSON_CreateNumber(lv->progress));
	}
	pthread_mutex_unlock(&q->mu);
}

static void set_error(api_job *j, const char *code, const char *detail);
static int shared_cancel(jobs *q, const char *id, const char *code, const char *detail,
                         api_job *out, api_err *e);

int jobs_cancel(jobs *q, const char *id, api_job *out, api_err *e)
{
	return jobs_cancel_code(q, id, NULL, NULL, out, e);
}

int jobs_cancel_code(jobs *q, const char *id, const char *code, const char *detail,
                     api_job *out, api_err *e)
{
	pthread_mutex_lock(&q->mu);
	live *lv = find_live(q, id);
	if (q->cl && (!lv || lv->state != API_JOB_RUNNING)) {
		/* not training here: the store's row decides (a job that just
		 * paused or went back to the queue here is no longer ours) */
		pthread_mutex_unlock(&q->mu);
		return shared_cancel(q, id, code, detail, out, e);
	}
	if (!lv || api_job_state_final(lv->state)) {
		pthread_mutex_unlock(&q->mu);
		if (store_job_get(q->st, id, out, e) < 0)
			return -1;
		api_job_release(out);
		return api_err_set(e, 409, "job_finished", "job %s has already finished", id);
	}
	if (lv->state == API_JOB_RUNNING) {
		lv->cancel = 1;
		pthread_mutex_unlock(&q->mu);
		if (store_job_request_cancel(q->st, id) < 0)
			return api_err_set(e, 500, "store_failed", "cannot record the cancel");
		return jobs_get(q, id, out, e);
	}
	/* queued: it never starts */
	remove_live(q, lv);
	pthread_mutex_unlock(&q->mu);
	if (store_job_get(q->st, id, out, e) < 0) {
		feed_finish(q, lv->f);
		feed_unref(q, lv->f);
		free(lv);
		return -1;
	}
	out->state = API_JOB_CANCELLED;
	out->finished_at = util_now_ms();
	if (code)
		set_error(out, code, detail ? detail : code);
	int rc = store_job_update(q->st, out, e);
	store_checkpoint_delete(q->st, id);
	feed_push_state(q, lv->f, out);
	feed_finish(q, lv->f);
	feed_unref(q, lv->f);
	free(lv);
	return rc;
}

int jobs_queue_depth(jobs *q)
{
	pthread_mutex_lock(&q->mu);
	int n = count_queued(q);
	pthread_mutex_unlock(&q->mu);
	return n;
}

int jobs_capacity(jobs *q) { return q->capacity; }
int jobs_workers(jobs *q) { return q->n_workers; }

int64_t jobs_samples_trained(jobs *q)
{
	pthread_mutex_lock(&q->mu);
	int64_t n = q->samples;
	pthread_mutex_unlock(&q->mu);
	return n;
}

/* ---------------------------------------------------------------- running */

/*
 * A job's writer: a thread of the job's own, started at the job's first
 * history write or checkpoint, that writes the job's metric history and
 * its newest checkpoint while training goes on. Each durable write (a
 * commit of the store, or a checkpoint's temporary file, fsync, rename and
 * directory fsync) takes milliseconds on a quiet disk and far longer on a
 * busy one, often more than an epoch of a small model, and the store
 * commits one at a time for every worker; so training never waits for
 * them: it hands the history (steps, epoch records, the job's row) and
 * copies of checkpoints over, and goes on (with a shared store the worker
 * writes the history itself: see handover). What was handed over while the
 * thread was writing goes out in its next round: all the history in one
 * commit, then the newest checkpoint (a newer one replaces one still
 * waiting: resuming from any of them reaches the same weights). A round
 * starts at least the gap (jobs_checkpoint_gap_ms) after the one before
 * it, the first one a gap after the job began training, the last one at
 * the job's end at once: a job of short epochs would otherwise spend a
 * core's fifth on a commit and a checkpoint file per epoch, the CPU a
 * second worker needs, and a job shorter than the gap (a study's small
 * trial) would pay a checkpoint's four durable writes, and their removal,
 * for nothing. Live
 * readers get every epoch through the events feed meanwhile, and a crash
 * loses at most the gap's training: the job resumes from its last
 * checkpoint, or starts again, to the same weights. A job that trained
 * to its last epoch does not write a checkpoint still waiting at its
 * end: it publishes next, and a crash before that resumes from the one
 * before, to the same weights (a job paused or stopped writes it; with a
 * gap of 0 every checkpoint handed over is written, as it comes). The
 * history handed over before a checkpoint is thus committed before that
 * checkpoint is written, and history written past a checkpoint is simply
 * rewritten on resume. The job's end (whatever the end) waits until
 * everything handed over is written, so nothing of the run lands after
 * its final state; a failed checkpoint write fails the job at the first
 * checkpoint after it is known, or at its end. A crash meanwhile leaves
 * the last checkpoint written (the rename is atomic), from which the job
 * resumes to the same weights.
 *
 * Invariants, under mu: steps, eps and row (when has_row) are handed over
 * and not yet taken; next (next_len bytes) holds a checkpoint not yet
 * taken while pending; the t_ fields and cur belong to the thread (the
 * history taken and not yet committed, kept for the next round when a
 * commit fails); err is the errno of the first checkpoint write that
 * failed; idle is set while the thread waits for something to write (so
 * the worker wakes it only then: during a gap it sleeps to its deadline,
 * whatever else is handed over); drop_ckpt, set with closing, drops a
 * checkpoint still waiting. started and last_us (the start of the last
 * round, or of the training) are the worker's and the thread's alone.
 */
int jobs_checkpoint_gap_ms = 100;

typedef struct job_writer {
	store *st;
	const char *job;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	store_step *steps;
	int n_steps, cap_steps;
	store_epoch_rec *eps;
	int n_eps, cap_eps;
	api_job row;
	int has_row;
	void *next;
	size_t next_len, next_cap;
	int pending;          /* next holds a checkpoint to write */
	int closing;          /* the job ends: write what is handed over, then stop */
	int drop_ckpt;        /* with closing: a checkpoint still waiting is not written */
	int err;
	int idle;             /* the thread waits for something to write */
	int64_t last_us;      /* util_mono_us() at the thread's last round, or training's start */
	store_step *t_steps;
	int t_n_steps, t_cap_steps;
	store_epoch_rec *t_eps;
	int t_n_eps, t_cap_eps;
	api_job t_row;
	int t_has_row;
	void *cur;
	size_t cur_cap;
} job_writer;

typedef struct run {
	jobs *q;
	live *lv;
	api_job j;
	store_step *steps;    /* buffered until the next flush */
	int n_steps, cap_steps;
	int64_t total_steps;
	int64_t n_train;
	int epochs;
	int64_t last_flush_us;
	int64_t train_us;     /* util_mono_us() when it was marked running */
	int ckpt_errno;       /* set when a checkpoint could not be written */
	job_writer w;
	int64_t ckpt_us;      /* time training spent in on_checkpoint (debug log) */
	int64_t flush_us;     /* time spent writing or handing over history (debug log) */
} run;

static cJSON *num_or_null(double v)
{
	return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* A float32 value as its shortest decimal, or null. */
static cJSON *flt_or_null(float v)
{
	return isfinite(v) ? cJSON_CreateNumber(api_float_json(v)) : cJSON_CreateNull();
}

static void flush(run *r, int epoch, int64_t end_step, const char *epoch_doc)
{
	api_err e = API_ERR_INIT;
	int64_t t0 = util_mono_us();
	r->last_flush_us = t0;
	if (store_metrics_write(r->q->st, r->j.id, r->steps, r->n_steps, epoch, end_step,
	                        epoch_doc, &r->j, &e) == 0)
		r->n_steps = 0;
	else
		util_log(0, "jobs: %s: cannot write metrics: %s", r->j.id, e.detail);
	r->flush_us += util_mono_us() - t0;
}

/* The all-jobs feed's epoch event: the record with the job's id first,
 * {"job":"job_...", ...}. */
static void all_push_epoch(jobs *q, const char *id, const char *rec)
{
	size_t n = strlen(rec) + strlen(id) + 16;
	char *t = rec[0] == '{' ? malloc(n) : NULL;
	if (!t)
		return;
	snprintf(t, n, "{\"job\":\"%s\"%s%s", id, rec[1] == '}' ? "" : ",", rec + 1);
	pthread_mutex_lock(&q->fmu);
	all_push_locked(q, FEED_EPOCH, t);
	pthread_mutex_unlock(&q->fmu);
	free(t);
}

static void handover(run *r, int epoch, int64_t end_step, const char *epoch_doc);

static void on_step(void *ctx, const nn_step_record *rec)
{
	run *r = ctx;
	if (r->n_steps == r->cap_steps) {
		int cap = r->cap_steps ? r->cap_steps * 2 : 256;
		store_step *p = realloc(r->steps, (size_t)cap * sizeof *p);
		if (!p)
			return;
		r->steps = p;
		r->cap_steps = cap;
	}
	r->steps[r->n_steps++] = (store_step){ rec->step, rec->epoch, rec->loss, rec->lr };
	double progress = r->total_steps > 0 ? (double)rec->step / (double)r->total_steps : 0;
	if (progress > 1)
		progress = 1;
	pthread_mutex_lock(&r->q->mu);
	r->lv->step = rec->step;
	r->lv->epoch = rec->epoch;
	r->lv->progress = progress;
	pthread_mutex_unlock(&r->q->mu);
	r->j.step = rec->step;
	r->j.epoch = rec->epoch;
	r->j.progress = progress;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "step", (double)rec->step);
	cJSON_AddNumberToObject(o, "epoch", rec->epoch);
	cJSON_AddItemToObject(o, "loss", flt_or_null(rec->loss));
	cJSON_AddItemToObject(o, "lr", flt_or_null(rec->lr));
	char *t = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	feed_push(r->q, r->lv->f, FEED_STEP, rec->step, rec->epoch, t);
	/* history readers lag live events by about a second at most */
	if (r->n_steps >= 4096 || util_mono_us() - r->last_flush_us > 1000000)
		handover(r, 0, 0, NULL);
}

static void on_epoch(void *ctx, const nn_epoch_record *rec)
{
	run *r = ctx;
	cJSON *m = cJSON_CreateObject();
	cJSON_AddItemToObject(m, "train_loss", flt_or_null(rec->train_loss));
	cJSON_AddItemToObject(m, "val_loss", flt_or_null(rec->val_loss));
	cJSON_AddItemToObject(m, "val_accuracy", flt_or_null(rec->val_accuracy));
	cJSON_AddItemToObject(m, "lr", flt_or_null(rec->lr));
	cJSON_AddItemToObject(m, "seconds", num_or_null(rec->seconds));
	cJSON_AddItemToObject(m, "samples_per_second", num_or_null(rec->samples_per_second));
	free(r->j.metrics);
	r->j.metrics = cJSON_PrintUnformatted(m);

	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "epoch", rec->epoch);
	cJSON_AddItemToObject(d, "train_loss", flt_or_null(rec->train_loss));
	cJSON_AddItemToObject(d, "val_loss", flt_or_null(rec->val_loss));
	cJSON_AddItemToObject(d, "val_accuracy", flt_or_null(rec->val_accuracy));
	cJSON_AddItemToObject(d, "lr", flt_or_null(rec->lr));
	cJSON_AddItemToObject(d, "seconds", num_or_null(rec->seconds));
	cJSON_AddItemToObject(d, "samples_per_second", num_or_null(rec->samples_per_second));
	cJSON *g = cJSON_AddObjectToObject(d, "grad_norms");
	for (int i = 0; i < rec->n_grad_norms; i++)
		if (rec->grad_norm_names && rec->grad_norm_names[i])
			cJSON_AddItemToObject(g, rec->grad_norm_names[i],
			                      flt_or_null(rec->grad_norms[i]));
	char *t = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	cJSON_Delete(m);

	r->j.epoch = rec->epoch;
	r->j.step = rec->step;   /* the step count, also when not a logged step */
	double progress = r->epochs > 0 ? (double)(rec->epoch + 1) / r->epochs : 0;
	if (progress > r->j.progress)
		r->j.progress = progress > 1 ? 1 : progress;
	pthread_mutex_lock(&r->q->mu);
	r->lv->step = rec->step;
	r->lv->progress = r->j.progress;
	r->q->samples += r->n_train;
	pthread_mutex_unlock(&r->q->mu);
	handover(r, rec->epoch, rec->step, t);
	all_push_epoch(r->q, r->j.id, t);
	feed_push(r->q, r->lv->f, FEED_EPOCH, rec->step, rec->epoch, t);
}

static int should_stop(void *ctx)
{
	run *r = ctx;
	if (r->q->stopping)
		return NN_STOP_CHECKPOINT;
	if (r->lv->cancel)
		return NN_STOP_CANCEL;
	if (r->q->cl && cluster_lost(r->q->cl, r->j.id))
		return NN_STOP_CANCEL;   /* another daemon has it: stop, write nothing */
	return NN_GO_ON;
}

static void ckpt_failed(run *r, int err)
{
	if (r->ckpt_errno)
		return;
	r->ckpt_errno = err ? err : EIO;
	util_log(0, "jobs: %s: cannot write a checkpoint: %s", r->j.id, strerror(r->ckpt_errno));
}

/* Makes room for need more items in *p (cap items of size). 0 or -1. */
static int grow(void **p, int *cap, int need, size_t size)
{
	if (need <= *cap)
		return 0;
	int c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, (size_t)c * size);
	if (!q)
		return -1;
	*p = q;
	*cap = c;
	return 0;
}

/* A copy of what the store's job row takes from j (not its config). */
static int row_copy(api_job *dst, const api_job *src)
{
	*dst = *src;
	dst->config = NULL;
	dst->metrics = src->metrics ? strdup(src->metrics) : NULL;
	dst->best = src->best ? strdup(src->best) : NULL;
	dst->error = src->error ? strdup(src->error) : NULL;
	if ((src->metrics && !dst->metrics) || (src->best && !dst->best) ||
	    (src->error && !dst->error)) {
		api_job_release(dst);
		return -1;
	}
	return 0;
}

static void eps_free(store_epoch_rec *eps, int n)
{
	for (int i = 0; i < n; i++)
		free(eps[i].doc);
}

/* Moves the history handed over to the thread's (under mu). 0, or -1 out
 * of memory (nothing moved). */
static int writer_take_history(job_writer *w)
{
	if (grow((void **)&w->t_steps, &w->t_cap_steps, w->t_n_steps + w->n_steps,
	         sizeof *w->t_steps) < 0 ||
	    grow((void **)&w->t_eps, &w->t_cap_eps, w->t_n_eps + w->n_eps, sizeof *w->t_eps) < 0)
		return -1;
	if (w->n_steps)
		memcpy(w->t_steps + w->t_n_steps, w->steps, sizeof *w->steps * (size_t)w->n_steps);
	if (w->n_eps)
		memcpy(w->t_eps + w->t_n_eps, w->eps, sizeof *w->eps * (size_t)w->n_eps);
	w->t_n_steps += w->n_steps;
	w->t_n_eps += w->n_eps;
	w->n_steps = w->n_eps = 0;
	if (w->has_row) {
		if (w->t_has_row)
			api_job_release(&w->t_row);
		w->t_row = w->row;
		w->t_has_row = 1;
		w->has_row = 0;
	}
	return 0;
}

/* Commits the thread's history. 0, or -1 (kept for the next round). */
static int writer_commit_history(job_writer *w)
{
	if (!w->t_n_steps && !w->t_n_eps && !w->t_has_row)
		return 0;
	api_err e = API_ERR_INIT;
	if (store_metrics_write_batch(w->st, w->job, w->t_steps, w->t_n_steps, w->t_eps, w->t_n_eps,
	                              w->t_has_row ? &w->t_row : NULL, &e) < 0) {
		util_log(0, "jobs: %s: cannot write metrics: %s", w->job, e.detail);
		return -1;
	}
	eps_free(w->t_eps, w->t_n_eps);
	w->t_n_steps = w->t_n_eps = 0;
	if (w->t_has_row)
		api_job_release(&w->t_row);
	w->t_has_row = 0;
	return 0;
}

/* Waits (under mu) until the gap after the last round's start (or the
 * training's), or until the job ends; what is handed over meanwhile goes out
 * together. */
static void writer_gap(job_writer *w)
{
	int64_t due = w->last_us + (int64_t)jobs_checkpoint_gap_ms * 1000;
	struct timespec ts = { (time_t)(due / 1000000), (long)(due % 1000000) * 1000 };
	while (!w->closing && util_mono_us() < due)
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
			break;
}

static void *writer_main(void *arg)
{
	job_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		w->idle = 1;
		while (!w->n_steps && !w->n_eps && !w->has_row && !w->pending && !w->closing)
			pthread_cond_wait(&w->cv, &w->mu);
		w->idle = 0;
		if (!w->n_steps && !w->n_eps && !w->has_row && !w->pending)
			break;        /* closing, and everything handed over is out */
		writer_gap(w);
		if (writer_take_history(w) < 0) {
			/* out of memory: drop it rather than spin on it */
			util_log(0, "jobs: %s: out of memory writing the history", w->job);
			eps_free(w->eps, w->n_eps);
			w->n_steps = w->n_eps = 0;
			if (w->has_row)
				api_job_release(&w->row);
			w->has_row = 0;
		}
		size_t len = 0;
		if (w->pending && w->closing && w->drop_ckpt)
			w->pending = 0;
		if (w->pending) {
			/* the newest checkpoint; its buffer becomes the thread's */
			void *b = w->cur;
			size_t cap = w->cur_cap;
			len = w->next_len;
			w->cur = w->next;
			w->cur_cap = w->next_cap;
			w->next = b;
			w->next_cap = cap;
			w->pending = 0;
		}
		pthread_mutex_unlock(&w->mu);
		w->last_us = util_mono_us();
		writer_commit_history(w);
		int err = 0;
		if (len && store_checkpoint_put(w->st, w->job, w->cur, len) < 0)
			err = errno ? errno : EIO;
		pthread_mutex_lock(&w->mu);
		if (err && !w->err)
			w->err = err;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* The errno of a checkpoint write that failed, or 0 (never waits). */
static int writer_error(run *r)
{
	if (r->w.started) {
		pthread_mutex_lock(&r->w.mu);
		int err = r->w.err;
		pthread_mutex_unlock(&r->w.mu);
		if (err)
			ckpt_failed(r, err);
	}
	return r->ckpt_errno;
}

/* Waits until everything handed over is written (a history commit that
 * failed is tried once more here; a checkpoint still waiting is dropped
 * when drop_ckpt) and stops the writer. 0, or the errno of a checkpoint
 * that could not be written. */
static int writer_finish(run *r, int drop_ckpt)
{
	job_writer *w = &r->w;
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->closing = 1;
		w->drop_ckpt = drop_ckpt;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
		w->started = 0;
		if (w->err)
			ckpt_failed(r, w->err);
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		if (writer_take_history(w) == 0)
			writer_commit_history(w);
	}
	eps_free(w->eps, w->n_eps);
	eps_free(w->t_eps, w->t_n_eps);
	if (w->has_row)
		api_job_release(&w->row);
	if (w->t_has_row)
		api_job_release(&w->t_row);
	free(w->steps);
	free(w->eps);
	free(w->t_steps);
	free(w->t_eps);
	free(w->next);
	free(w->cur);
	memset(w, 0, sizeof *w);
	return r->ckpt_errno;
}

/* Starts the job's writer thread. 0, or -1 (no thread: write in place). */
static int writer_start(run *r)
{
	job_writer *w = &r->w;
	w->st = r->q->st;
	w->job = r->j.id;
	w->pending = w->closing = w->drop_ckpt = w->err = w->idle = 0;
	w->last_us = r->train_us;   /* the first round a gap after training began */
	if (pthread_mutex_init(&w->mu, NULL) != 0)
		return -1;
	/* writer_gap's deadlines are util_mono_us() times */
	pthread_condattr_t ca;
	int ok = pthread_condattr_init(&ca) == 0;
	if (ok) {
		ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
		     pthread_cond_init(&w->cv, &ca) == 0;
		pthread_condattr_destroy(&ca);
	}
	if (!ok) {
		pthread_mutex_destroy(&w->mu);
		return -1;
	}
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		return -1;
	}
	w->started = 1;
	return 0;
}

/*
 * Hands the buffered steps, an epoch record (epoch_doc may be NULL) and
 * the job's row to the writer; without a writer thread they are written
 * here. Out of memory, the steps stay buffered for the next hand-over.
 */
static void handover(run *r, int epoch, int64_t end_step, const char *epoch_doc)
{
	job_writer *w = &r->w;
	r->last_flush_us = util_mono_us();
	/* a shared store: other daemons follow the job through its row and
	 * history, epoch by epoch (their streams, their polls of progress), so
	 * the worker writes them itself, as they come */
	if (r->q->cl || (!w->started && writer_start(r) < 0)) {
		flush(r, epoch, end_step, epoch_doc);
		return;
	}
	int64_t t0 = util_mono_us();
	char *doc = epoch_doc ? strdup(epoch_doc) : NULL;
	api_job row;
	pthread_mutex_lock(&w->mu);
	if ((epoch_doc && !doc) || row_copy(&row, &r->j) < 0 ||
	    grow((void **)&w->steps, &w->cap_steps, w->n_steps + r->n_steps, sizeof *w->steps) < 0 ||
	    grow((void **)&w->eps, &w->cap_eps, w->n_eps + 1, sizeof *w->eps) < 0) {
		pthread_mutex_unlock(&w->mu);
		free(doc);
		util_log(0, "jobs: %s: out of memory handing over the history", r->j.id);
		return;
	}
	if (r->n_steps)
		memcpy(w->steps + w->n_steps, r->steps, sizeof *r->steps * (size_t)r->n_steps);
	w->n_steps += r->n_steps;
	r->n_steps = 0;
	if (doc)
		w->eps[w->n_eps++] = (store_epoch_rec){ epoch, end_step, doc };
	if (w->has_row)
		api_job_release(&w->row);
	w->row = row;
	w->has_row = 1;
	if (w->idle)
		pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	r->flush_us += util_mono_us() - t0;
}

/*
 * A checkpoint from the engine: fails training when a write has failed,
 * hands the buffered history over (so that it is committed before the
 * checkpoint is written; at an epoch's end on_epoch has just done it) and
 * a copy of the checkpoint. 0, or 1 to fail training.
 *
 * The last epoch's checkpoint is not written: the job publishes right
 * after it, and a crash before the publish resumes from the checkpoint
 * before it, which reaches the same weights (as when checkpoint_every_epochs
 * does not divide the epochs).
 */
static int ckpt_start(run *r, const void *buf, size_t len, int epoch)
{
	job_writer *w = &r->w;
	if (writer_error(r))
		return 1;
	if (r->epochs > 0 && epoch >= r->epochs)
		return 0;
	if (r->n_steps > 0)
		handover(r, 0, 0, NULL);
	if (!w->started && writer_start(r) < 0) {
		/* no thread: written here */
		if (store_checkpoint_put(r->q->st, r->j.id, buf, len) < 0) {
			ckpt_failed(r, errno);
			return 1;
		}
		return 0;
	}
	pthread_mutex_lock(&w->mu);
	if (len > w->next_cap) {
		void *p = realloc(w->next, len);
		if (!p) {
			pthread_mutex_unlock(&w->mu);
			ckpt_failed(r, ENOMEM);
			return 1;
		}
		w->next = p;
		w->next_cap = len;
	}
	memcpy(w->next, buf, len);
	w->next_len = len;
	w->pending = 1;
	if (w->idle)
		pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

static int on_checkpoint(void *ctx, const void *buf, size_t len, int epoch, int64_t step)
{
	run *r = ctx;
	(void)step;
	int64_t t0 = util_mono_us();
	int rc = ckpt_start(r, buf, len, epoch);
	r->ckpt_us += util_mono_us() - t0;
	return rc;
}

static void set_error(api_job *j, const char *code, const char *detail)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "code", code);
	cJSON_AddStringToObject(o, "detail", detail);
	free(j->error);
	j->error = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
}

/*
 * Records a finished job's row. A store that cannot take it (a full disk)
 * is tried again every 200 ms until it can or the daemon stops: until then
 * readers see the last state recorded, and if the daemon stops first the
 * job stays unfinished in the store and runs again from its checkpoint at
 * the next start. 0 when recorded.
 */
static int record_end(jobs *q, const api_job *j)
{
	api_err e = API_ERR_INIT;
	for (int tries = 0; store_job_update(q->st, j, &e) < 0; tries++) {
		if (e.status == 409)
			return -1;    /* the lease was lost: not ours to record */
		if (tries == 0)
			util_log(0, "jobs: %s: cannot record its end (%s); retrying", j->id, e.detail);
		if (q->stopping)
			return -1;
		struct timespec ts = { 0, 200 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* The typed-column work of a job (api_tab_train_prepare) on the split the
 * engine will make. 0, or -1 with e set. */
static int prepare_tabular(const api_dataset *train, const api_dataset *val,
                           const api_dataset *test, const nn_train_config *cfg,
                           api_tab_train *tab, api_err *e)
{
	if (!train->columns)
		return 0;
	int64_t *idx = malloc(sizeof(int64_t) * (size_t)(train->rows + 1)), n_tr = 0;
	if (!idx)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	int rc;
	if (nn_train_split(train->rows, val != NULL, cfg, idx, &n_tr) != NN_OK)
		rc = 0;   /* nn_train reports it */
	else
		rc = api_tab_train_prepare(train, val, test, idx, n_tr, tab, e);
	free(idx);
	return rc;
}

/* Puts test_loss (and test_accuracy for classification) of the published
 * model m on the test set (labels: its rows by the model's class names, or
 * NULL for the stored ones) into j's metrics; x: the test set encoded with
 * the training set's typed columns (width inputs), or NULL. */
static void add_test_metrics(api_job *j, const nn_model *m, const api_dataset *test,
                             const int32_t *labels, const float *x, int width)
{
	float loss = NAN, acc = NAN;
	nn_data tv = api_dataset_view(test);
	if (labels)
		tv.labels = labels;
	if (test->task == NN_TASK_CLASSIFICATION)
		tv.outputs = nn_model_spec_of(m)->outputs;
	if (x) {
		tv.x = x;
		tv.x8 = NULL;
		tv.features = width;
	}
	if (nn_evaluate(m, &tv, &loss, &acc) != NN_OK)
		return;
	cJSON *o = j->metrics ? cJSON_Parse(j->metrics) : NULL;
	if (!o)
		o = cJSON_CreateObject();
	cJSON_DeleteItemFromObjectCaseSensitive(o, "test_loss");
	cJSON_AddItemToObject(o, "test_loss", flt_or_null(loss));
	if (test->task == NN_TASK_CLASSIFICATION)
		cJSON_AddItemToObject(o, "test_accuracy", flt_or_null(acc));
	char *t = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (t) {
		free(j->metrics);
		j->metrics = t;
	}
}

/*
 * A job's run, in phases: load_inputs reads what it trains on (config, data
 * sets, model, checkpoint); mark_running records the start; train_job runs
 * nn_train on the job's replicas; end_state decides how the run ended;
 * record_final writes a finished job's end (publishing its model);
 * release_inputs and unlist let go of the rest. `code` set by a phase means
 * the job cannot run; it fails with that code and err as its detail.
 */
typedef struct job_inputs {
	nn_train_config cfg;
	api_job_refs refs;
	/* the data sets' shared mappings (read-only; see store_dataset_acquire) */
	const api_dataset *train, *val, *test;
	int have_val;
	nn_model *m;
	void *ckpt;
	size_t ckpt_len;
	const uint8_t *x8;
	int new_base;         /* the version a first start trains from */
	/* typed columns: the training split's encoding (imputation means from
	 * its rows only), and the validation and test sets encoded with it */
	api_tab_train tab;
	/* classification: the model's classes (the training set's, or "0" to
	 * "outputs-1"), and the validation and test labels matched to them by
	 * name when they differ from the stored ones (else NULL) */
	api_classes cls;
	int32_t *val_labels, *test_labels;
	const char *code;
	char err[600];
} job_inputs;

/* The model's classes, and the other sets' labels by class name. The
 * checks at submission make a failure here rare (a set replaced since). */
static int relabel_sets(job_inputs *in, api_err *e)
{
	const api_dataset *t = in->train;
	if (!t || t->task != NN_TASK_CLASSIFICATION)
		return 0;
	int outputs = nn_model_spec_of(in->m)->outputs;
	int rc = api_classes_for_model(t->classes, t->n_classes, outputs, &in->cls);
	if (rc != 0)
		return rc == -1 ? api_err_field(e, "dataset", "has %d classes but the model has %d "
		                                "outputs", t->n_classes, outputs)
		                : api_err_set(e, 500, "out_of_memory", "out of memory");
	const api_dataset *o[2] = { in->have_val ? in->val : NULL, in->test };
	int32_t **lab[2] = { &in->val_labels, &in->test_labels };
	static const char *const F[2] = { "validation.dataset", "test.dataset" };
	for (int i = 0; i < 2; i++) {
		if (!o[i] || o[i]->task != NN_TASK_CLASSIFICATION)
			continue;
		int same = 0;
		*lab[i] = api_classes_relabel(o[i], in->cls.names, in->cls.n, F[i], &same, e);
		if (!*lab[i])
			return -1;
		if (same) {
			free(*lab[i]);
			*lab[i] = NULL;
		}
	}
	return 0;
}

/* The model's classes as JSON array text (NULL for regression). */
static char *classes_text(const job_inputs *in)
{
	if (!in->cls.names)
		return NULL;
	cJSON *a = api_classes_json(in->cls.names, in->cls.n);
	char *t = a ? cJSON_PrintUnformatted(a) : NULL;
	cJSON_Delete(a);
	return t;
}

static void load_inputs(jobs *q, run *r, job_inputs *in)
{
	api_err e = API_ERR_INIT;
	in->cfg = nn_train_config_default();
	in->new_base = -1;
	cJSON *cj = r->j.config ? cJSON_Parse(r->j.config) : NULL;
	if (!cj || api_train_config_from_json(cj, &q->lim, &in->cfg, &in->refs, &e) < 0) {
		in->code = "invalid_config";
		snprintf(in->err, sizeof in->err, "the stored config is invalid: %.500s", e.detail);
	}
	cJSON_Delete(cj);
	if (!in->code && store_dataset_acquire(q->st, r->j.dataset, &in->train, &e) < 0) {
		in->code = "dataset_unavailable";
		snprintf(in->err, sizeof in->err, "%s", e.detail);
	}
	if (!in->code && r->j.val_dataset[0]) {
		if (store_dataset_acquire(q->st, r->j.val_dataset, &in->val, &e) < 0) {
			in->code = "dataset_unavailable";
			snprintf(in->err, sizeof in->err, "%s", e.detail);
		} else {
			in->have_val = 1;
		}
	}
	if (!in->code && in->refs.test_dataset &&
	    store_dataset_acquire(q->st, in->refs.test_dataset, &in->test, &e) < 0) {
		in->code = "dataset_unavailable";
		snprintf(in->err, sizeof in->err, "test: %s", e.detail);
	}
	if (!in->code)
		in->cfg.stop_at_epoch = store_job_pause_at(q->st, r->j.id);
	if (!in->code) {
		int base = -1;
		store_job_base_version(q->st, r->j.id, &base);
		if (base < 0) {
			api_model_snap *s = NULL;
			if (store_model_snapshot(q->st, r->j.model, &s, &e) == 0) {
				in->m = nn_model_clone(s->model);
				in->new_base = s->version;
				store_snap_release(q->st, s);
			}
		} else if (store_model_load(q->st, r->j.model, base, &in->m, &e) < 0) {
			in->m = NULL;
		}
		if (!in->m) {
			in->code = "model_unavailable";
			snprintf(in->err, sizeof in->err, "%s",
			         e.detail[0] ? e.detail : "cannot load the model");
		}
	}
	if (!in->code && store_checkpoint_get(q->st, r->j.id, &in->ckpt, &in->ckpt_len) < 0) {
		in->code = "checkpoint_unreadable";
		snprintf(in->err, sizeof in->err, "cannot read the checkpoint");
	}
	/* image data: the data set's byte copy, shared with every other job
	 * on it, instead of one the engine would make for this job alone
	 * (none with image augmentation, which the engine runs on floats) */
	if (!in->code && !nn_augment_has_image(&in->cfg.aug))
		in->x8 = store_dataset_bytes(q->st, in->train);
	if (!in->code && relabel_sets(in, &e) < 0) {
		in->code = "invalid_dataset";
		snprintf(in->err, sizeof in->err, "%.200s%s%.380s", e.n_fields ? e.fields[0].field : e.detail,
		         e.n_fields ? " " : "", e.n_fields ? e.fields[0].message : "");
	}
	if (!in->code && prepare_tabular(in->train, in->have_val ? in->val : NULL, in->test,
	                                 &in->cfg, &in->tab, &e) < 0) {
		in->code = e.status == 422 ? "invalid_dataset" : "out_of_memory";
		snprintf(in->err, sizeof in->err, "%.380s%s%.200s", e.detail, e.n_fields ? ": " : "",
		         e.n_fields ? e.fields[0].message : "");
	}
}

/* The progress totals, and the running state recorded. */
static void mark_running(jobs *q, run *r, const job_inputs *in)
{
	const nn_train_config *cfg = &in->cfg;
	api_err e = API_ERR_INIT;
	r->epochs = cfg->epochs;
	r->last_flush_us = r->train_us = util_mono_us();
	r->n_train = in->train ? in->train->rows : 0;
	if (!in->have_val && cfg->val_fraction > 0)
		r->n_train -= (int64_t)((double)r->n_train * cfg->val_fraction);
	if (cfg->rows > 0 && cfg->rows < r->n_train)
		r->n_train = cfg->rows;
	int64_t spe = cfg->batch_size > 0 ? (r->n_train + cfg->batch_size - 1) / cfg->batch_size : 1;
	r->total_steps = spe * cfg->epochs;

	r->j.state = API_JOB_RUNNING;
	if (!r->j.started_at)
		r->j.started_at = util_now_ms();
	/* one commit for the state and the base version: a restart resumes
	 * from the same version (and a checkpoint only exists after this) */
	store_job_start(q->st, &r->j, in->m ? in->new_base : -1, &e);
	feed_push_state(q, r->lv->f, &r->j);
}

/* nn_train on the job's replicas (threads of replicas.c when it has more
 * than one; without threads to be had, the worker alone runs every shard,
 * to the same weights). Waits for the last checkpoint write. */
static nn_status train_job(run *r, job_inputs *in, nn_train_result *res)
{
	nn_status st = NN_EINVAL;
	memset(res, 0, sizeof *res);
	if (!in->code) {
		nn_callbacks cb = { r, on_step, on_epoch, should_stop, on_checkpoint };
		nn_data tv = api_dataset_view(in->train);
		tv.x8 = in->x8;
		if (in->cls.names)
			tv.outputs = in->cls.n;    /* the model's classes, maybe past the data's */
		if (in->tab.x) {
			tv.x = in->tab.x;
			tv.x8 = NULL;
		}
		in->cfg.std_skip = in->tab.std_skip;
		nn_data vv = in->have_val ? api_dataset_view(in->val) : (nn_data){ 0 };
		if (in->val_labels)
			vv.labels = in->val_labels;
		if (in->cls.names && in->have_val)
			vv.outputs = in->cls.n;
		if (in->tab.val_x) {
			vv.x = in->tab.val_x;
			vv.x8 = NULL;
			vv.features = in->tab.enc.width;
		}
		int mpi = ranks_fit(&in->cfg);
		replicas *rp = in->cfg.replicas > 1 && !mpi ? replicas_start(in->cfg.replicas) : NULL;
		in->cfg.par = replicas_carrier(rp);
		if (in->cfg.replicas > 1 && !rp && !mpi)
			util_log(1, "jobs: %s: no threads for %d replicas; one runs every shard",
			         r->j.id, in->cfg.replicas);
		util_log(2, "jobs: %s: %s (%lld rows, %d epochs, %d replicas%s, %d shards)", r->j.id,
		         in->ckpt ? "resuming from its checkpoint" : "starting",
		         (long long)in->train->rows, in->cfg.epochs, in->cfg.replicas,
		         mpi ? " on MPI ranks" : "", in->cfg.shards);
		if (mpi)
			st = ranks_train(in->m, &tv, in->have_val ? &vv : NULL, &in->cfg, &cb, in->ckpt,
			                 in->ckpt_len, res, in->err, sizeof in->err);
		else
			st = nn_train(in->m, &tv, in->have_val ? &vv : NULL, &in->cfg, &cb, in->ckpt,
			              in->ckpt_len, res, in->err, sizeof in->err);
		replicas_stop(rp);
		in->cfg.par = NULL;
	}
	free(in->ckpt);
	in->ckpt = NULL;
	/* no end is recorded before the last checkpoint write is done; one
	 * that failed fails the job, as it would have at its checkpoint. A job
	 * trained to its end publishes next: a checkpoint not yet written then
	 * is not needed */
	if (writer_finish(r, st == NN_OK && jobs_checkpoint_gap_ms > 0) &&
	    (st == NN_OK || st == NN_ESTOPPED))
		st = NN_EINVAL;
	return st;
}

/* The job's state after nn_train returned st; 1 when it is final. */
static int end_state(jobs *q, run *r, job_inputs *in, nn_status st, const nn_train_result *res)
{
	const char *code = in->code;
	live *lv = r->lv;
	if (q->cl && cluster_lost(q->cl, r->j.id)) {
		/* fenced: another daemon took the job over (our lease ended);
		 * it resumes from the last checkpoint, and nothing of ours is
		 * written (the store refuses it anyway) */
		util_log(1, "jobs: %s: lease lost at step %lld; stopped", r->j.id,
		         (long long)r->j.step);
		return 0;
	}
	if (!code && st == NN_ESTOPPED && !lv->cancel && !q->stopping && in->cfg.stop_at_epoch > 0) {
		/* a study's trial at the end of its rung: it waits, holding no
		 * worker, until the study continues or prunes it */
		r->j.state = API_JOB_PAUSED;
		flush(r, 0, 0, NULL);
		return 0;
	}
	if (!code && st == NN_ESTOPPED && !lv->cancel) {
		/* shutdown: stays queued, resumes from the checkpoint next start */
		r->j.state = API_JOB_QUEUED;
		flush(r, 0, 0, NULL);
		util_log(2, "jobs: %s: stopped at step %lld, stays queued", r->j.id,
		         (long long)r->j.step);
		return 0;
	}
	if (!code && st == NN_ESTOPPED) {
		r->j.state = API_JOB_CANCELLED;
	} else if (!code && st == NN_OK) {
		r->j.state = API_JOB_SUCCEEDED;
		r->j.progress = 1;
		if (in->test)
			add_test_metrics(&r->j, in->m, in->test, in->test_labels, in->tab.test_x,
			                 in->tab.enc.width);
		r->j.stopped_early = res->stopped_early;
		if (res->best_epoch >= 0) {
			cJSON *b = cJSON_CreateObject();
			cJSON_AddNumberToObject(b, "epoch", res->best_epoch);
			cJSON_AddItemToObject(b, "val_loss", flt_or_null(res->best_val_loss));
			free(r->j.best);
			r->j.best = cJSON_PrintUnformatted(b);
			cJSON_Delete(b);
		}
	} else {
		r->j.state = API_JOB_FAILED;
		if (!code && r->ckpt_errno) {
			/* a full disk is the store's 507, not a training error */
			code = util_errno_is_space(r->ckpt_errno) ? "insufficient_storage"
			                                         : "checkpoint_failed";
			snprintf(in->err, sizeof in->err, "cannot write a checkpoint: %s",
			         strerror(r->ckpt_errno));
		}
		if (!code)
			code = st == NN_EDIVERGED ? "diverged" : nn_status_name(st);
		set_error(&r->j, code, in->err[0] ? in->err : nn_status_name(st));
	}
	return 1;
}

/* Writes a finished job's end (publishing its model when it succeeded);
 * 1 when recorded, so its checkpoint can go. */
static int record_final(jobs *q, run *r, job_inputs *in)
{
	api_err e = API_ERR_INIT;
	/* from here on the job counts as finished (cancel answers 409); a
	 * cancel answered 202 after training's last look at the flag (while
	 * its last writes went out) ends it cancelled, as the 202 promised */
	pthread_mutex_lock(&q->mu);
	if (r->lv->cancel && r->j.state == API_JOB_SUCCEEDED)
		r->j.state = API_JOB_CANCELLED;
	r->lv->state = r->j.state;
	/* the end is when the job stopped counting as running: a study's next
	 * trial, let start by this, never seems to overlap it */
	int64_t finished_at = util_now_ms();
	pthread_mutex_unlock(&q->mu);
	/* the last steps first, with the row still running, so no reader
	 * sees the final state before the version is published (none are
	 * left when the last epoch's end wrote them) */
	int fin = r->j.state;
	r->j.state = API_JOB_RUNNING;
	if (r->n_steps > 0)
		flush(r, 0, 0, NULL);
	r->j.state = fin;
	r->j.finished_at = finished_at;
	int recorded = 1;
	if (r->j.state == API_JOB_SUCCEEDED) {
		char *classes = classes_text(in);
		if (in->tab.enc.cols) {
			char *meta = api_tab_meta_make(classes, &in->tab.enc);
			free(classes);
			classes = meta;
		}
		nn_model *pub = in->m;
		in->m = NULL;
		if (store_job_publish(q->st, &r->j, pub, classes, &e) < 0) {
			r->j.state = API_JOB_FAILED;
			set_error(&r->j, e.status == 507 ? e.code : "publish_failed", e.detail);
			recorded = record_end(q, &r->j) == 0;
		}
		free(classes);
	} else {
		recorded = record_end(q, &r->j) == 0;
	}
	util_log(2, "jobs: %s: %s", r->j.id, api_job_state_name(r->j.state));
	return recorded;
}

static void release_inputs(jobs *q, job_inputs *in)
{
	nn_model_free(in->m);
	store_dataset_release(q->st, in->train);
	store_dataset_release(q->st, in->val);
	store_dataset_release(q->st, in->test);
	api_job_refs_free(&in->refs);
	free(in->ckpt);
	api_tab_train_release(&in->tab);
	api_classes_free(&in->cls);
	free(in->val_labels);
	free(in->test_labels);
}

/* Takes a final job off the live list (its feed ends), or puts it back as
 * queued or paused; tells a study about its trial. */
static void unlist(jobs *q, run *r, int final)
{
	live *lv = r->lv;
	pthread_mutex_lock(&q->mu);
	if (final)
		remove_live(q, lv);
	else
		lv->state = r->j.state == API_JOB_PAUSED ? API_JOB_PAUSED : API_JOB_QUEUED;
	pthread_mutex_unlock(&q->mu);
	if (r->j.state == API_JOB_PAUSED)
		feed_push_state(q, lv->f, &r->j);
	if ((final || r->j.state == API_JOB_PAUSED) && q->on_trial && r->j.study[0])
		q->on_trial(q->on_trial_ctx, r->j.study);
	if (final) {
		feed_push_state(q, lv->f, &r->j);
		feed_finish(q, lv->f);
		feed_unref(q, lv->f);
		free(lv);
	}
}

/* Runs one job to an end state (or back to queued on shutdown). Returns 1
 * when the job reached a final state. */
static int run_job(jobs *q, live *lv)
{
	int64_t t_start = util_mono_us();   /* phases for the debug log */
	run r;
	memset(&r, 0, sizeof r);
	r.q = q;
	r.lv = lv;
	api_err e = API_ERR_INIT;
	if (store_job_get(q->st, lv->id, &r.j, &e) < 0) {
		util_log(0, "jobs: %s vanished: %s", lv->id, e.detail);
		return 1;
	}
	job_inputs in;
	memset(&in, 0, sizeof in);
	load_inputs(q, &r, &in);
	mark_running(q, &r, &in);

	int64_t t_train = util_mono_us();
	nn_train_result res;
	nn_status st = train_job(&r, &in, &res);
	int64_t t_end = util_mono_us();

	int final = end_state(q, &r, &in, st, &res);
	int drop_ckpt = final && record_final(q, &r, &in); /* else a restart resumes from it */
	util_log(3, "jobs: %s: %.1f ms to start, %.1f ms training (%.1f ms of it handing over "
	         "checkpoints, %.1f ms writing history), %.1f ms to record the end", r.j.id,
	         (t_train - t_start) / 1e3, (t_end - t_train) / 1e3, r.ckpt_us / 1e3,
	         r.flush_us / 1e3, (util_mono_us() - t_end) / 1e3);
	release_inputs(q, &in);
	free(r.steps);
	unlist(q, &r, final);
	/* after the final state is out: a finished job's checkpoint is
	 * useless, and one a crash leaves behind goes at the next start */
	if (drop_ckpt)
		store_checkpoint_delete(q->st, r.j.id);
	api_job_release(&r.j);
	return final;
}

/*
 * A worker going idle hands the memory its jobs freed back to the system.
 * glibc keeps freed blocks in the thread's arena for reuse, so without this
 * each worker that ever ran a job would hold a job's worth of buffers (some
 * 10-15 MB for the Fashion-MNIST MLP) for as long as it idles, and a job
 * on the other worker would add its own on top. A worker with a job waiting
 * keeps them: it is about to allocate the same again.
 */
static void release_idle_memory(void)
{
	util_malloc_release();
}

static void *worker_shared(jobs *q);
/*
 * The queued job a free worker starts (caller holds q->mu), or NULL: the
 * first in submission order whose replicas fit in the free workers. A job
 * that does not fit lets the ones behind it start for HOLD_US after it
 * first found too few workers; from then on nothing starts before it, so
 * the workers free up for it. *wake: when that time comes (unchanged when
 * nothing waits).
 */
#define HOLD_US 2000000

/*
 * Whether a study's queued trial may start (caller holds q->mu): while
 * fewer than its study's limit of its trials run. Until the studies have
 * set their limits after a start, a trial waits (the queue may hold more
 * of a study's trials than it lets run); a trial whose study has none
 * (it has ended) starts.
 */
static int trial_may_start(jobs *q, const live *t)
{
	const trial_limit *l = q->limits;
	while (l && strcmp(l->study, t->study) != 0)
		l = l->next;
	if (!l)
		return q->limits_set;
	int running = 0;
	for (const live *lv = q->lives; lv; lv = lv->next)
		running += lv->state == API_JOB_RUNNING && strcmp(lv->study, t->study) == 0;
	return running < l->limit;
}

static live *pick(jobs *q, int64_t now, int64_t *wake)
{
	for (live *lv = q->lives; lv; lv = lv->next) {
		if (lv->state != API_JOB_QUEUED || (lv->on_ranks && q->ranks_busy))
			continue;
		if (lv->study[0] && !trial_may_start(q, lv))
			continue;
		if (lv->need <= q->free_workers)
			return lv;
		if (!lv->waiting_since)
			lv->waiting_since = now;
		if (now - lv->waiting_since >= HOLD_US)
			return NULL;
		if (lv->waiting_since + HOLD_US < *wake)
			*wake = lv->waiting_since + HOLD_US;
	}
	return NULL;
}

/* Waits on q->cv until signalled or, when wake is set, until then. */
static void wait_for_work(jobs *q, int64_t wake)
{
	if (wake == INT64_MAX) {
		pthread_cond_wait(&q->cv, &q->mu);
		return;
	}
	int64_t us = wake - util_mono_us();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	us = us < 1000 ? 1000 : us;
	ts.tv_sec += us / 1000000;
	ts.tv_nsec += (long)(us % 1000000) * 1000;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

static void *worker(void *arg)
{
	jobs *q = arg;
	prctl(PR_SET_NAME, "nnd-train");   /* CPU by thread name: bench/dashboard.py */
	if (q->cl)
		return worker_shared(q);
	pthread_mutex_lock(&q->mu);
	for (;;) {
		live *lv = NULL;
		while (!q->stopping) {
			int64_t wake = INT64_MAX;
			if ((lv = pick(q, util_mono_us(), &wake)))
				break;
			wait_for_work(q, wake);
		}
		if (q->stopping)
			break;
		lv->state = API_JOB_RUNNING;
		lv->waiting_since = 0;
		int held = lv->need, ranks = lv->on_ranks;
		q->free_workers -= held;
		q->ranks_busy |= ranks;
		pthread_mutex_unlock(&q->mu);
		run_job(q, lv);
		pthread_mutex_lock(&q->mu);
		q->free_workers += held;
		if (ranks)
			q->ranks_busy = 0;
		/* a job that waited for workers may fit now */
		pthread_cond_broadcast(&q->cv);
		if (!q->stopping && count_queued(q) == 0) {
			pthread_mutex_unlock(&q->mu);
			release_idle_memory();
			pthread_mutex_lock(&q->mu);
		}
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

static int shared_start(jobs *q);
static void shared_stop(jobs *q);

int jobs_start(store *st, int workers, int capacity, const api_limits *lim, jobs **out)
{
	jobs *q = calloc(1, sizeof *q);
	if (!q)
		return -1;
	q->st = st;
	q->lim = *lim;
	q->n_workers = workers > 0 ? workers : 1;
	q->free_workers = q->n_workers;
	q->capacity = capacity > 0 ? capacity : 1;
	pthread_mutex_init(&q->mu, NULL);
	pthread_mutex_init(&q->submit_mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	pthread_mutex_init(&q->fmu, NULL);
	if (!(q->all = feed_new())) {
		jobs_free(q);
		return -1;
	}
	q->all->max = ALL_MAX_EVENTS;

	char (*ids)[API_ID_LEN] = NULL;
	int n = 0;
	if (shared_start(q) < 0) {
		jobs_free(q);
		return -1;
	}
	if (!q->cl)   /* shared: the jobs of a dead daemon return when their lease ends */
		store_jobs_unfinished(st, &ids, &n);
	for (int i = 0; i < n; i++) {
		api_job j;
		api_err e = API_ERR_INIT;
		if (store_job_get(st, ids[i], &j, &e) < 0)
			continue;
		if (store_job_cancel_requested(st, j.id)) {
			/* cancelled and acknowledged before the crash */
			j.state = API_JOB_CANCELLED;
			j.finished_at = util_now_ms();
			store_job_update(st, &j, &e);
			store_checkpoint_delete(st, j.id);
			util_log(2, "jobs: %s was cancelled before the restart", j.id);
			api_job_release(&j);
			continue;
		}
		if (j.state == API_JOB_RUNNING) {
			j.state = API_JOB_QUEUED;
			store_job_update(st, &j, &e);
		}
		feed *f = feed_from_history(q, j.id);
		if (f) {
			feed_push_state(q, f, &j);
			live *lv = add_live(q, &j, f);
			if (!lv)
				feed_free(f);
			else if (j.state == API_JOB_PAUSED)
				lv->state = API_JOB_PAUSED;
		}
		util_log(2, "jobs: %s requeued", j.id);
		api_job_release(&j);
	}
	free(ids);

	q->threads = calloc((size_t)q->n_workers, sizeof *q->threads);
	if (!q->threads) {
		jobs_free(q);
		return -1;
	}
	for (int i = 0; i < q->n_workers; i++) {
		if (pthread_create(&q->threads[i], NULL, worker, q) != 0) {
			q->n_workers = i;
			jobs_stop(q);
			jobs_free(q);
			return -1;
		}
	}
	q->started = 1;
	*out = q;
	return 0;
}

void jobs_stop(jobs *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->stopping = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (int i = 0; q->threads && i < q->n_workers; i++)
		pthread_join(q->threads[i], NULL);
	q->n_workers = 0;
	shared_stop(q);
	pthread_mutex_lock(&q->mu);
	pthread_mutex_lock(&q->fmu);
	q->feeds_closed = 1;
	for (live *lv = q->lives; lv; lv = lv->next)
		wake_all_locked(lv->f);
	if (q->all)
		wake_all_locked(q->all);
	pthread_mutex_unlock(&q->fmu);
	pthread_mutex_unlock(&q->mu);
}

void jobs_free(jobs *q)
{
	if (!q)
		return;
	live *lv = q->lives;
	while (lv) {
		live *next = lv->next;
		feed_unref(q, lv->f);
		free(lv);
		lv = next;
	}
	while (q->limits) {
		trial_limit *next = q->limits->next;
		free(q->limits);
		q->limits = next;
	}
	feed_unref(q, q->all);
	free(q->threads);
	pthread_mutex_destroy(&q->mu);
	pthread_mutex_destroy(&q->submit_mu);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->fmu);
	free(q);
}

/* ---------------------------------------------------------------- shared store
 *
 * With a store shared by several daemons (cluster.h) the queue is the
 * store's rows: a submission only inserts its row (and wakes one idle
 * worker here; the store's NOTIFY wakes the other daemons), and an idle
 * worker claims the oldest job that fits under a lease. A job running
 * elsewhere is streamed from a remote feed: its stored history, then
 * what the notifications of its new rows bring (and, as the fallback,
 * a refresh every second), until its final state.
 */

typedef struct remote {
	char id[API_ID_LEN];
	feed *f;              /* one reference held here */
	int state;            /* the last state pushed */
	int dirty;            /* a notification said it has new rows */
	struct remote *next;
} remote;

/* Pushes what the store holds of rm's job beyond what its feed has: new
 * steps and epochs, then the state when it changed. 1 when the job ended
 * (the feed is finished then). The state is read before the history: a
 * job's history is committed before its final state, so a final state
 * read first has all of it behind it (read the other way round, the last
 * steps and the final state could land in between, and the feed would end
 * without those steps). */
static int remote_refresh(jobs *q, remote *rm)
{
	api_job j;
	api_err e = API_ERR_INIT;
	if (store_job_get(q->st, rm->id, &j, &e) < 0)
		return 0;
	feed_add_history(q, rm->f, rm->id);
	int fin = api_job_state_final(j.state);
	if (j.state != rm->state) {
		feed_push_state(q, rm->f, &j);
		rm->state = j.state;
	}
	api_job_release(&j);
	if (fin)
		feed_finish(q, rm->f);
	return fin;
}

/* Unlinks and drops rm (caller holds q->mu). */
static void remote_drop_locked(jobs *q, remote *rm)
{
	for (remote **pp = &q->remotes; *pp; pp = &(*pp)->next)
		if (*pp == rm) {
			*pp = rm->next;
			break;
		}
	feed_unref(q, rm->f);
	free(rm);
}

/* Refreshes the remote feeds (only those notified since, unless all);
 * drops those that ended or that no stream reads any more. Runs on the
 * cluster thread only, so a remote is never refreshed twice at once. */
static void remote_refresh_all(jobs *q, int all)
{
	pthread_mutex_lock(&q->mu);
	remote *rm = q->remotes;
	while (rm) {
		remote *next = rm->next;
		if (!all && !rm->dirty) {
			rm = next;
			continue;
		}
		rm->dirty = 0;
		pthread_mutex_lock(&q->fmu);
		int unread = rm->f->refs == 1;
		pthread_mutex_unlock(&q->fmu);
		pthread_mutex_unlock(&q->mu);
		int ended = unread || remote_refresh(q, rm);
		pthread_mutex_lock(&q->mu);
		next = rm->next;   /* the list may have grown meanwhile (at its head) */
		if (ended)
			remote_drop_locked(q, rm);
		rm = next;
	}
	pthread_mutex_unlock(&q->mu);
}

/* A stream of a job not running here: its remote feed (made when none is
 * open yet, from the stored history and state). */
static feed *remote_open(jobs *q, const char *id, api_err *e)
{
	api_job j;
	if (store_job_get(q->st, id, &j, e) < 0)
		return NULL;
	pthread_mutex_lock(&q->mu);
	for (remote *rm = q->remotes; rm; rm = rm->next)
		if (strcmp(rm->id, id) == 0) {
			pthread_mutex_lock(&q->fmu);
			rm->f->refs++;
			pthread_mutex_unlock(&q->fmu);
			pthread_mutex_unlock(&q->mu);
			api_job_release(&j);
			return rm->f;
		}
	pthread_mutex_unlock(&q->mu);
	feed *f = feed_from_history(q, id);
	remote *rm = f && !api_job_state_final(j.state) ? calloc(1, sizeof *rm) : NULL;
	if (!f) {
		api_err_set(e, 500, "out_of_memory", "out of memory");
	} else {
		feed_push_state_of(q, f, &j, 0);
		if (rm) {
			snprintf(rm->id, sizeof rm->id, "%s", id);
			rm->f = f;
			rm->state = j.state;
			f->refs++;   /* the stream's */
			pthread_mutex_lock(&q->mu);
			rm->next = q->remotes;
			q->remotes = rm;
			pthread_mutex_unlock(&q->mu);
		} else {
			f->done = 1;
		}
	}
	api_job_release(&j);
	return f;
}

/* A job stopped here while its feed has streams (its lease was lost): the
 * feed goes on as a remote one. f's reference is taken. */
static void remote_adopt(jobs *q, const char *id, feed *f, int state)
{
	remote *rm = calloc(1, sizeof *rm);
	if (!rm) {
		feed_finish(q, f);
		feed_unref(q, f);
		return;
	}
	snprintf(rm->id, sizeof rm->id, "%s", id);
	rm->f = f;
	rm->state = state;
	pthread_mutex_lock(&q->mu);
	rm->next = q->remotes;
	q->remotes = rm;
	pthread_mutex_unlock(&q->mu);
}

static int shared_cancel(jobs *q, const char *id, const char *code, const char *detail,
                         api_job *out, api_err *e)
{
	/* queued anywhere: cancelled in one step, no daemon starts it */
	int r = cluster_cancel_queued(q->cl, id);
	if (r < 0)
		return api_err_set(e, 503, "store_unavailable", "cannot reach the store");
	if (store_job_get(q->st, id, out, e) < 0)
		return -1;
	if (r == 1) {
		if (code) {
			set_error(out, code, detail ? detail : code);
			store_job_update(q->st, out, e);
		}
		store_checkpoint_delete(q->st, id);
		return 0;
	}
	if (api_job_state_final(out->state)) {
		api_job_release(out);
		return api_err_set(e, 409, "job_finished", "job %s has already finished", id);
	}
	/* running on another daemon: it hears the cancel (NOTIFY, or its next
	 * lease renewal) and stops at its next step */
	if (store_job_request_cancel(q->st, id) < 0) {
		api_job_release(out);
		return api_err_set(e, 503, "store_unavailable", "cannot record the cancel");
	}
	return 0;
}

static void hk_queued(void *ctx)
{
	jobs *q = ctx;
	pthread_mutex_lock(&q->mu);
	q->wakes++;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

static void hk_cancel(void *ctx, const char *id)
{
	jobs *q = ctx;
	pthread_mutex_lock(&q->mu);
	live *lv = find_live(q, id);
	if (lv && lv->state == API_JOB_RUNNING)
		lv->cancel = 1;
	pthread_mutex_unlock(&q->mu);
}

/* Notifications of new rows only mark the feed: a busy job notifies at
 * every epoch, and the next tick (a fifth of a second) reads them all at
 * once. */
static void hk_events(void *ctx, const char *id)
{
	jobs *q = ctx;
	pthread_mutex_lock(&q->mu);
	for (remote *rm = q->remotes; rm; rm = rm->next)
		if (strcmp(rm->id, id) == 0)
			rm->dirty = 1;
	pthread_mutex_unlock(&q->mu);
}

static void hk_tick(void *ctx, int fallback)
{
	if (fallback)
		hk_queued(ctx);    /* idle workers look at the queue again */
	remote_refresh_all(ctx, fallback);
}

/* Claims a job that fits in the free workers and makes its live entry
 * (running, its workers held). NULL when none waits. */
static live *claim(jobs *q)
{
	char id[API_ID_LEN];
	pthread_mutex_lock(&q->mu);
	int free_workers = q->free_workers;
	pthread_mutex_unlock(&q->mu);
	if (!cluster_claim(q->cl, free_workers, id))
		return NULL;
	api_job j;
	api_err e = API_ERR_INIT;
	feed *f = NULL;
	live *lv = NULL;
	if (store_job_get(q->st, id, &j, &e) == 0) {
		f = feed_from_history(q, id);
		if (f) {
			pthread_mutex_lock(&q->mu);
			lv = add_live(q, &j, f);
			if (lv) {
				lv->state = API_JOB_RUNNING;
				q->free_workers -= lv->need;
			}
			pthread_mutex_unlock(&q->mu);
		}
		api_job_release(&j);
	}
	if (!lv) {
		/* it returns to the queue when the lease ends */
		if (f)
			feed_free(f);
		cluster_release(q->cl, id);
		util_log(0, "jobs: %s: claimed but cannot start it here", id);
	}
	return lv;
}

static void *worker_shared(jobs *q)
{
	for (;;) {
		pthread_mutex_lock(&q->mu);
		uint64_t seen = q->wakes;
		pthread_mutex_unlock(&q->mu);
		live *lv = q->stopping ? NULL : claim(q);
		if (!lv) {
			pthread_mutex_lock(&q->mu);
			while (!q->stopping && q->wakes == seen)
				pthread_cond_wait(&q->cv, &q->mu);
			int stop = q->stopping;
			pthread_mutex_unlock(&q->mu);
			if (stop)
				break;
			continue;
		}
		char id[API_ID_LEN];
		snprintf(id, sizeof id, "%s", lv->id);
		int held = lv->need;
		int final = run_job(q, lv);
		pthread_mutex_lock(&q->mu);
		q->free_workers += held;
		q->wakes++;        /* a job that needs more workers may fit now */
		pthread_cond_broadcast(&q->cv);
		pthread_mutex_unlock(&q->mu);
		int lost = cluster_lost(q->cl, id);
		cluster_release(q->cl, id);
		/* not final: back in the store's queue (a graceful stop, a
		 * paused trial) or another daemon's (lost): not ours any more */
		pthread_mutex_lock(&q->mu);
		lv = final ? NULL : find_live(q, id);
		if (lv)
			remove_live(q, lv);
		pthread_mutex_unlock(&q->mu);
		if (lv && lost && !q->stopping)
			remote_adopt(q, id, lv->f, API_JOB_RUNNING);
		else if (lv)
			feed_unref(q, lv->f);
		free(lv);
		release_idle_memory();
	}
	return NULL;
}

static int shared_start(jobs *q)
{
	cluster_hooks h = { q, hk_queued, hk_cancel, hk_events, hk_tick };
	if (strcmp(store_kind(q->st), "sqlite") == 0)
		return 0;
	q->cl = cluster_open(q->st, q->n_workers, &h);
	return q->cl ? 0 : -1;
}

static void shared_stop(jobs *q)
{
	if (!q->cl)
		return;
	cluster_close(q->cl);
	q->cl = NULL;
	pthread_mutex_lock(&q->mu);
	while (q->remotes) {
		feed_finish(q, q->remotes->f);
		remote_drop_locked(q, q->remotes);
	}
	pthread_mutex_unlock(&q->mu);
}
