/*
 * studies.c - the scheduler of studies' trials (see studies.h).
 *
 * A study's durable state is its row, its trials' rows and its trials'
 * jobs; the scheduler keeps nothing else that matters. Each pass over an
 * active study (advance) reads them, brings the trials' rows up to date
 * with their jobs, takes halving's decision when a rung is complete,
 * continues promoted trials and creates new ones while fewer than twice
 * `parallelism` are queued or running (the job queue starts at most
 * `parallelism` of them at once: jobs_set_trial_limit; with a shared store,
 * whose queue cannot, while fewer than `parallelism`), and ends the study
 * when every trial has ended. Every step is written to the store before the next
 * one, and every step can be redone after a crash:
 *  - a trial's row is written before its model and job are made; a row
 *    without a job finds the job made for it (jobs carry study and trial)
 *    or makes it;
 *  - promotions and prunings are written to the trials' rows first, then
 *    carried out (a pruned trial whose job still waits is cancelled at the
 *    next pass);
 *  - a job paused or resumed is the job queue's own durable state.
 * Decisions use only the trials' values, which training makes the same
 * bit for bit whatever the timing, so results never depend on it.
 *
 * Locks: S->mu guards the feeds list and serialises the passes with the
 * API's cancel and delete; it is taken before any jobs or store lock.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "studies.h"
#include "util.h"

typedef struct sfeed {
	char id[API_ID_LEN];
	feed *f;
	int64_t last;         /* shared store: the newest event appended */
	struct sfeed *next;
} sfeed;

struct studies {
	store *st;
	jobs *q;
	api_limits lim;
	int workers;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stopping;
	int kick;             /* a pass is due now */
	int reconciled;       /* the first pass (after a start) checks pruned trials */
	int shared;           /* several daemons share the store (see sync_feeds) */
	int waiting;          /* API calls waiting for mu: a pass makes no more trials */
	sfeed *feeds;
};

/* ---------------------------------------------------------------- events */

static sfeed *find_feed(studies *S, const char *id)
{
	for (sfeed *x = S->feeds; x; x = x->next)
		if (strcmp(x->id, id) == 0)
			return x;
	return NULL;
}

/* Hands data to every dashboard's stream (GET /v1/events; a trial with
 * its study) and returns its text for the study's own events (NULL when
 * out of memory). Frees data. */
static char *publish(studies *S, const char *id, int kind, cJSON *data)
{
	char *t = data ? cJSON_PrintUnformatted(data) : NULL;
	if (data && kind == FEED_TRIAL) {
		cJSON_AddStringToObject(data, "study", id);
		char *all = cJSON_PrintUnformatted(data);
		if (all)
			jobs_events_publish(S->q, FEED_TRIAL, all);
		free(all);
	} else if (t) {
		jobs_events_publish(S->q, FEED_STATE, t);
	}
	cJSON_Delete(data);
	return t;
}

/* Hands a recorded event (seq) to the study's live feed, which ends with
 * a final one (caller holds S->mu). Takes t. */
static void feed_event(studies *S, const char *id, int kind, int64_t seq, int final, char *t)
{
	sfeed *x = S->shared ? NULL : find_feed(S, id);
	if (x)
		jobs_feed_append(S->q, x->f, kind, seq, final, t);
	else
		free(t);
	if (final && x) {
		for (sfeed **pp = &S->feeds; *pp; pp = &(*pp)->next)
			if (*pp == x) {
				*pp = x->next;
				break;
			}
		jobs_feed_release(S->q, x->f);
		free(x);
	}
}

/* Records an event and hands it to the live feed (caller holds S->mu). */
static void emit(studies *S, const char *id, int kind, cJSON *data, int final)
{
	char *t = publish(S, id, kind, data);
	int64_t seq = 0;
	if (!t || store_study_event(S->st, id, kind, t, &seq) < 0) {
		free(t);
		return;
	}
	feed_event(S, id, kind, seq, final, t);
}

/* Writes trial t's row with its event in one commit, and hands the event
 * to the feeds (caller holds S->mu). 0 or -1. */
static int record_trial(studies *S, const char *id, const store_trial *t)
{
	char *text = publish(S, id, FEED_TRIAL, store_trial_json(t));
	int64_t seq = 0;
	if (!text || store_trial_record(S->st, id, t, FEED_TRIAL, text, &seq) < 0) {
		free(text);
		return -1;
	}
	feed_event(S, id, FEED_TRIAL, seq, 0, text);
	return 0;
}

/* 1 when data (a study object) is in a final state. */
static int final_state_event(int kind, const char *data)
{
	if (kind != FEED_STUDY_STATE || !data)
		return 0;
	cJSON *o = cJSON_Parse(data);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
	int fin = cJSON_IsString(st) && api_job_state_final(api_job_state_parse(st->valuestring));
	cJSON_Delete(o);
	return fin;
}

/*
 * With a shared store, any daemon may record a study's events (whichever
 * held its lock for a pass or a cancel), so live feeds are fed from the
 * store: the events past the feed's newest, after every pass (caller
 * holds S->mu). A feed ends with its study's final state event.
 */
static void sync_feeds(studies *S)
{
	sfeed **pp = &S->feeds;
	while (*pp) {
		sfeed *x = *pp;
		store_event *ev = NULL;
		int n = 0, done = 0;
		if (store_study_events_after(S->st, x->id, x->last, &ev, &n) == 0)
			for (int i = 0; i < n && !done; i++) {
				done = final_state_event(ev[i].kind, ev[i].data);
				x->last = ev[i].id;
				jobs_feed_append(S->q, x->f, ev[i].kind, ev[i].id, done, ev[i].data);
				ev[i].data = NULL;
			}
		store_history_free(ev, n);
		if (done) {
			*pp = x->next;
			jobs_feed_release(S->q, x->f);
			free(x);
		} else {
			pp = &x->next;
		}
	}
}

/* ---------------------------------------------------------------- the object */

static cJSON *raw_or_null(const char *t)
{
	cJSON *v = t ? cJSON_Parse(t) : NULL;
	return v ? v : cJSON_CreateNull();
}

static void add_time(cJSON *o, const char *k, int64_t ms)
{
	if (!ms) {
		cJSON_AddNullToObject(o, k);
		return;
	}
	char b[40];
	api_time_format(ms, b, sizeof b);
	cJSON_AddStringToObject(o, k, b);
}

/* What the study's data set says (task, sizes, theory). 0 or -1. */
static int study_data(store *st, const char *ds, api_study_data *d, api_err *e)
{
	api_dataset_info info;
	memset(d, 0, sizeof *d);
	if (store_dataset_get(st, ds, &info, e) < 0)
		return -1;
	d->task = info.task;
	d->rows = info.rows;
	d->features = info.features;
	d->outputs = info.outputs;
	const cJSON *th = cJSON_GetObjectItemCaseSensitive(info.doc, "theory");
	const cJSON *r = th ? cJSON_GetObjectItemCaseSensitive(th, "rate_exponent") : NULL;
	if (cJSON_IsNumber(r)) {
		d->has_theory = 1;
		d->theory = r->valuedouble;
	}
	api_dataset_info_release(&info);
	return 0;
}

/* The study object of API.md. */
static cJSON *study_json(studies *S, const store_study *row)
{
	api_study s;
	int loaded = api_study_load(row->config, &s) == 0;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", row->id);
	if (row->name)
		cJSON_AddStringToObject(o, "name", row->name);
	else
		cJSON_AddNullToObject(o, "name");
	cJSON_AddStringToObject(o, "state", api_job_state_name(row->state));
	int64_t c[7], epochs = 0;
	store_trial_counts(S->st, row->id, c, &epochs);
	int64_t made = 0;
	for (int i = 0; i < 7; i++)
		made += c[i];
	cJSON *t = cJSON_AddObjectToObject(o, "trials");
	int64_t total = loaded ? s.trials : made;
	cJSON_AddNumberToObject(t, "total", (double)total);
	int64_t unmade = total > made && !api_job_state_final(row->state) ? total - made : 0;
	cJSON_AddNumberToObject(t, "queued", (double)(c[API_JOB_QUEUED] + unmade));
	cJSON_AddNumberToObject(t, "running", (double)c[API_JOB_RUNNING]);
	cJSON_AddNumberToObject(t, "paused", (double)c[API_JOB_PAUSED]);
	cJSON_AddNumberToObject(t, "succeeded", (double)c[API_JOB_SUCCEEDED]);
	cJSON_AddNumberToObject(t, "failed", (double)c[API_JOB_FAILED]);
	cJSON_AddNumberToObject(t, "pruned", (double)c[STORE_TRIAL_PRUNED]);
	cJSON_AddNumberToObject(t, "cancelled", (double)c[API_JOB_CANCELLED]);

	store_trial *tr = NULL;
	int n = 0;
	store_trials_get(S->st, row->id, &tr, &n);
	int best = -1;
	for (int i = 0; i < n; i++) {
		if (tr[i].state != API_JOB_SUCCEEDED || isnan(tr[i].value))
			continue;
		if (best < 0 || (loaded && s.maximize ? tr[i].value > tr[best].value
		                                      : tr[i].value < tr[best].value))
			best = i;
	}
	if (best >= 0) {
		cJSON *b = cJSON_AddObjectToObject(o, "best");
		cJSON_AddNumberToObject(b, "trial", tr[best].number);
		cJSON_AddItemToObject(b, "params", raw_or_null(tr[best].params));
		cJSON_AddNumberToObject(b, "value", tr[best].value);
		cJSON_AddStringToObject(b, "model", tr[best].model);
		cJSON_AddStringToObject(b, "job", tr[best].job);
	} else {
		cJSON_AddNullToObject(o, "best");
	}
	if (loaded && s.strategy == API_STRAT_CURVE) {
		double *v = malloc(sizeof(double) * (size_t)(s.trials ? s.trials : 1));
		for (int i = 0; v && i < s.trials; i++)
			v[i] = NAN;
		for (int i = 0; v && i < n; i++)
			if (tr[i].number < s.trials && tr[i].state == API_JOB_SUCCEEDED)
				v[tr[i].number] = tr[i].value;
		api_study_data d;
		api_err e = API_ERR_INIT;
		int th = s.dataset && study_data(S->st, s.dataset, &d, &e) == 0 && d.has_theory;
		if (v)
			cJSON_AddItemToObject(o, "curves", api_study_curves(&s, v, s.trials, th,
			                                                    th ? d.theory : 0));
		free(v);
	}
	store_trials_free(tr, n);
	cJSON_AddNumberToObject(o, "epochs_run", (double)epochs);
	cJSON_AddItemToObject(o, "config", raw_or_null(row->config));
	add_time(o, "created_at", row->created_at);
	add_time(o, "started_at", row->started_at);
	add_time(o, "finished_at", row->finished_at);
	cJSON_AddItemToObject(o, "error", raw_or_null(row->error));
	if (loaded)
		api_study_free(&s);
	return o;
}

static void set_state(studies *S, store_study *row, int state, const char *code,
                      const char *detail)
{
	row->state = state;
	if (state == API_JOB_RUNNING && !row->started_at)
		row->started_at = util_now_ms();
	if (api_job_state_final(state))
		row->finished_at = util_now_ms();
	if (code) {
		cJSON *er = cJSON_CreateObject();
		cJSON_AddStringToObject(er, "code", code);
		cJSON_AddStringToObject(er, "detail", detail ? detail : code);
		free(row->error);
		row->error = cJSON_PrintUnformatted(er);
		cJSON_Delete(er);
	}
	store_study_update(S->st, row);
	if (api_job_state_final(state))
		jobs_set_trial_limit(S->q, row->id, 0);
	emit(S, row->id, FEED_STUDY_STATE, study_json(S, row), api_job_state_final(state));
}

/* ---------------------------------------------------------------- trials */

/* The epoch a trial at rung k pauses at (0 = the job's end). */
static int pause_for(const api_study *s, int k)
{
	if (s->strategy != API_STRAT_HALVING)
		return 0;
	int ends[64];
	int n = api_halving_rungs(s->min_epochs, s->factor, s->epochs, ends, 64);
	return k < n - 1 ? ends[k] : 0;
}

/* Makes trial t's model and job. 0, or -1 with e set. */
static int make_trial(studies *S, const char *sid, const api_study *s, const api_study_data *d,
                      store_trial *t, api_err *e)
{
	cJSON *mj = NULL, *jj = NULL;
	if (api_study_trial_docs(s, d, t->number, &mj, &jj, e) < 0)
		return -1;
	nn_model_spec spec;
	char *name = NULL;
	memset(&spec, 0, sizeof spec);
	int rc = api_model_spec_from_json(mj, &S->lim, &spec, &name, e);
	cJSON_Delete(mj);
	nn_model *m = NULL;
	if (rc == 0) {
		char err[256];
		m = nn_model_create(&spec, err, sizeof err);
		if (!m)
			rc = api_err_set(e, 422, "invalid_model", "%s", err);
	}
	nn_layers_free(spec.layers, spec.n_layers);
	free(name);
	api_model_info mi;
	memset(&mi, 0, sizeof mi);
	char mname[96];
	snprintf(mname, sizeof mname, "%s trial %d", sid, t->number);
	if (rc == 0)
		rc = store_model_create(S->st, mname, m, &mi, e);
	nn_model_free(m);
	if (rc < 0) {
		cJSON_Delete(jj);
		return -1;
	}
	snprintf(t->model, sizeof t->model, "%s", mi.id);
	api_model_info_release(&mi);
	cJSON_AddStringToObject(jj, "model", t->model);
	cJSON_AddStringToObject(jj, "dataset", s->dataset);
	nn_train_config cfg;
	api_job_refs refs;
	rc = api_train_config_from_json(jj, &S->lim, &cfg, &refs, e);
	cJSON_Delete(jj);
	if (rc < 0)
		return -1;
	cJSON *cj = api_train_config_to_json(&cfg, &refs);
	char *text = cj ? cJSON_PrintUnformatted(cj) : NULL;
	cJSON_Delete(cj);
	api_job job;
	api_err es = API_ERR_INIT;   /* this submission's own (e may hold an earlier one) */
	rc = text ? jobs_submit_trial(S->q, &refs, text, sid, t->number, pause_for(s, 0), &job, &es)
	          : api_err_set(&es, 500, "out_of_memory", "out of memory");
	free(text);
	api_job_refs_free(&refs);
	if (rc < 0 && es.status == 409 && strcmp(es.code, "trial_exists") == 0) {
		/* a shared store: another daemon made this trial's job first */
		api_err e2 = API_ERR_INIT;
		store_model_delete(S->st, t->model, &e2);
		t->model[0] = '\0';
		if (store_job_of_trial(S->st, sid, t->number, t->job, t->model))
			return 0;
		return api_err_set(e, 500, "store_failed", "trial %d: its job is not found",
		                   t->number);
	}
	if (rc < 0) {
		*e = es;
		return -1;
	}
	snprintf(t->job, sizeof t->job, "%s", job.id);
	t->seed = (int64_t)cfg.seed;
	t->rows = cfg.rows;
	api_job_release(&job);
	return 0;
}

/* 1 when the job was cancelled by a halving decision (its error's code is
 * "pruned"). */
static int pruned_job(const api_job *j)
{
	if (j->state != API_JOB_CANCELLED || !j->error)
		return 0;
	cJSON *o = cJSON_Parse(j->error);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "code");
	int pruned = cJSON_IsString(c) && strcmp(c->valuestring, "pruned") == 0;
	cJSON_Delete(o);
	return pruned;
}

/* Brings trial t's row up to date with its job. 1 when it changed. A job
 * that halving pruned makes its trial pruned: with a shared store a pass's
 * rows are committed at its end, and a daemon killed after it cancelled
 * the pruned trials' jobs leaves their rows paused. */
static int refresh(studies *S, const api_study *s, store_trial *t)
{
	api_job j;
	api_err e = API_ERR_INIT;
	if (!t->job[0] || store_job_get(S->st, t->job, &j, &e) < 0)
		return 0;
	int state = pruned_job(&j) ? STORE_TRIAL_PRUNED : j.state;
	int changed = state != t->state;
	if (changed) {
		t->state = state;
		if (j.state == API_JOB_PAUSED || api_job_state_final(j.state))
			t->value = api_study_value(s, j.metrics, j.best);
		t->epochs = j.step > 0 ? j.epoch + 1 : 0;
		if (j.finished_at && j.started_at)
			t->seconds = (double)(j.finished_at - j.started_at) / 1e3;
	}
	api_job_release(&j);
	return changed;
}

/* Successive halving at rung k: when every trial of the rung has paused or
 * ended, the best keep continue and the other paused ones are pruned
 * (rows first). 1 when it decided. */
static int decide_rung(studies *S, const char *sid, const api_study *s, store_trial *tr, int n,
                       int k)
{
	int end = pause_for(s, k), in = 0, waiting = 0;
	if (end <= 0)
		return 0;         /* the last rung: trials run to their end */
	for (int i = 0; i < n; i++) {
		if (tr[i].rung != k)
			continue;
		in++;
		/* paused at this rung's end; a trial promoted into the rung and
		 * not yet continued is paused at the rung before's end */
		if (tr[i].state == API_JOB_PAUSED && tr[i].epochs >= end)
			waiting++;
		else if (!api_job_state_final(tr[i].state) && tr[i].state != STORE_TRIAL_PRUNED)
			return 0;     /* still training towards the rung's end */
	}
	if (!waiting)
		return 0;
	double *v = malloc(sizeof(double) * (size_t)in);
	int *num = malloc(sizeof(int) * (size_t)in), *idx = malloc(sizeof(int) * (size_t)in),
	    *order = malloc(sizeof(int) * (size_t)in);
	if (!v || !num || !idx || !order) {
		free(v);
		free(num);
		free(idx);
		free(order);
		return 0;
	}
	int m = 0;
	for (int i = 0; i < n; i++)
		if (tr[i].rung == k) {
			v[m] = tr[i].state == API_JOB_FAILED ? NAN : tr[i].value;
			num[m] = tr[i].number;
			idx[m++] = i;
		}
	api_rank_trials(v, num, m, s->maximize, order);
	int keep = api_halving_keep(m, s->factor);
	for (int r = 0; r < m; r++) {
		store_trial *t = &tr[idx[order[r]]];
		if (t->state != API_JOB_PAUSED)
			continue;
		if (r < keep)
			t->rung = k + 1;
		else
			t->state = STORE_TRIAL_PRUNED;
		store_trial_put(S->st, sid, t);
	}
	for (int r = keep; r < m; r++) {
		store_trial *t = &tr[idx[order[r]]];
		if (t->state != STORE_TRIAL_PRUNED)
			continue;
		api_job j;
		api_err e = API_ERR_INIT;
		if (jobs_cancel_code(S->q, t->job, "pruned", "successive halving stopped this trial",
		                     &j, &e) == 0)
			api_job_release(&j);
		emit(S, sid, FEED_TRIAL, store_trial_json(t), 0);   /* its row is written */
	}
	util_log(2, "studies: %s: rung %d decided, %d of %d continue", sid, k, keep < m ? keep : m, m);
	free(v);
	free(num);
	free(idx);
	free(order);
	return 1;
}

/* Brings the trials' rows up to date with their jobs: a row written
 * without its job (before a crash) adopts the job or makes it; pruned
 * trials' jobs are cancelled once after a start. The trials queued or
 * running (caller holds S->mu). */
static int sync_trials(studies *S, const char *sid, const api_study *s, const api_study_data *d,
                       store_trial *tr, int n)
{
	int active = 0;
	for (int i = 0; i < n; i++) {
		store_trial *t = &tr[i];
		api_err e = API_ERR_INIT;
		if (!t->job[0] && t->state == API_JOB_QUEUED) {
			if (store_job_of_trial(S->st, sid, t->number, t->job, t->model) ||
			    make_trial(S, sid, s, d, t, &e) == 0)
				store_trial_put(S->st, sid, t);
			else
				util_log(0, "studies: %s: trial %d: %s", sid, t->number, e.detail);
		}
		if ((t->state <= API_JOB_RUNNING || t->state == API_JOB_PAUSED) && refresh(S, s, t)) {
			record_trial(S, sid, t);
		} else if (t->state == STORE_TRIAL_PRUNED && !S->reconciled) {
			api_job j;
			if (jobs_cancel_code(S->q, t->job, "pruned", "successive halving stopped this "
			                     "trial", &j, &e) == 0)
				api_job_release(&j);
		}
		active += t->state == API_JOB_QUEUED || t->state == API_JOB_RUNNING;
	}
	return active;
}

/* Promoted trials continue, in trial order, while fewer than `parallelism`
 * are active. The trials active then. */
static int continue_promoted(studies *S, const char *sid, const api_study *s, store_trial *tr,
                             int n, int active)
{
	for (int i = 0; i < n && active < s->parallelism; i++) {
		store_trial *t = &tr[i];
		if (t->state != API_JOB_PAUSED || !t->job[0])
			continue;
		int want = pause_for(s, t->rung);
		if (store_job_pause_at(S->st, t->job) == want)
			continue;    /* waiting for its rung's decision */
		if (jobs_resume(S->q, t->job, want) == 0) {
			t->state = API_JOB_QUEUED;
			record_trial(S, sid, t);
			active++;
		}
	}
	return active;
}

/* Makes trial number n: its model and job (or adopts the job made for it
 * before a crash, or by another daemon, whose row was not written), then
 * its row with its event in one commit. A row written before its job was
 * made is not needed: jobs carry their study and trial. 0, or -1 when
 * nothing could be written (the next pass tries again). */
static int new_trial(studies *S, const char *sid, const api_study *s, const api_study_data *d,
                     int n)
{
	store_trial t;
	memset(&t, 0, sizeof t);
	t.number = n;
	t.state = API_JOB_QUEUED;
	t.value = NAN;
	cJSON *p = api_study_params(s, n);
	t.params = p ? cJSON_PrintUnformatted(p) : NULL;
	cJSON_Delete(p);
	if (!t.params)
		return -1;
	api_err e = API_ERR_INIT;
	if (!store_job_of_trial(S->st, sid, n, t.job, t.model) &&
	    make_trial(S, sid, s, d, &t, &e) < 0) {
		util_log(0, "studies: %s: trial %d: %s", sid, n, e.detail);
		t.state = API_JOB_FAILED;
	}
	int rc = record_trial(S, sid, &t);
	free(t.params);
	return rc;
}

/* New trials, in order, from number n: up to `parallelism` more than may
 * run (the queue runs at most `parallelism` of them at once), so a worker
 * going free starts the next trial at once instead of waiting for this
 * thread to make it; those extra ones wait for the next pass while a
 * cancel waits for S->mu. Stops when the study's lock is lost (*lost). The
 * trials made so far. */
static int make_trials(studies *S, const char *sid, const api_study *s, const api_study_data *d,
                       int n, int active, int ahead, int *lost)
{
	while (n < s->trials && active < s->parallelism + ahead &&
	       !(active >= s->parallelism && __atomic_load_n(&S->waiting, __ATOMIC_SEQ_CST)) &&
	       !(*lost = *lost || !store_study_lock_held(S->st))) {
		if (new_trial(S, sid, s, d, n) < 0)
			break;
		n++;
		active++;
	}
	return n;
}

/* Ends the study when every trial has ended (made is the trials made). */
static void finish_if_ended(studies *S, store_study *row, int made, const api_study *s)
{
	int64_t c[7], ep;
	if (made < s->trials || store_trial_counts(S->st, row->id, c, &ep) < 0 ||
	    c[API_JOB_QUEUED] + c[API_JOB_RUNNING] + c[API_JOB_PAUSED] > 0 ||
	    !store_study_lock_held(S->st))
		return;
	if (c[API_JOB_SUCCEEDED] > 0)
		set_state(S, row, API_JOB_SUCCEEDED, NULL, NULL);
	else
		set_state(S, row, API_JOB_FAILED, "no_trial_succeeded",
		          "every trial failed, was pruned or was cancelled");
}

/* The trials' phases of one pass: rows brought up to date, halving's
 * decision, promoted trials continued, new ones made, the end. */
static void run_trials(studies *S, store_study *row, const api_study *s,
                       const api_study_data *d)
{
	const char *sid = row->id;
	/* trials queued beyond `parallelism`: only where the queue holds them back */
	int ahead = jobs_set_trial_limit(S->q, sid, s->parallelism) == 0 ? s->parallelism : 0;
	store_trial *tr = NULL;
	int n = 0;
	if (store_trials_get(S->st, sid, &tr, &n) < 0)
		return;
	int active = sync_trials(S, sid, s, d, tr, n);
	/* a shared store: a daemon frozen past its lease finds the study's
	 * lock gone, and leaves the rest of its pass (made from rows another
	 * daemon has moved on from since) to whoever holds it now */
	int lost = !store_study_lock_held(S->st);
	if (!lost && s->strategy == API_STRAT_HALVING && n == s->trials)
		for (int k = 0; k < 64; k++)
			if (decide_rung(S, sid, s, tr, n, k))
				break;
	lost = lost || !store_study_lock_held(S->st);
	if (!lost)
		active = continue_promoted(S, sid, s, tr, n, active);
	int made = make_trials(S, sid, s, d, n, active, ahead, &lost);
	store_trials_free(tr, n);
	if (lost)
		util_log(1, "studies: %s: the study's lock was lost; this pass ends here", sid);
	else
		finish_if_ended(S, row, made, s);
}

/* One pass over an active study (caller holds S->mu). */
static void advance(studies *S, const char *sid)
{
	store_study row;
	api_err e = API_ERR_INIT;
	if (store_study_get(S->st, sid, &row, &e) < 0)
		return;
	api_study s;
	api_study_data d;
	if (api_job_state_final(row.state)) {
		store_study_release(&row);
		return;
	}
	if (api_study_load(row.config, &s) < 0) {
		set_state(S, &row, API_JOB_FAILED, "invalid_config", "the stored study is invalid");
		store_study_release(&row);
		return;
	}
	if (study_data(S->st, s.dataset, &d, &e) < 0) {
		set_state(S, &row, API_JOB_FAILED, "dataset_unavailable", e.detail);
	} else {
		if (row.state == API_JOB_QUEUED)
			set_state(S, &row, API_JOB_RUNNING, NULL, NULL);
		run_trials(S, &row, &s, &d);
	}
	api_study_free(&s);
	store_study_release(&row);
}

static void *scheduler(void *arg)
{
	studies *S = arg;
	pthread_mutex_lock(&S->mu);
	while (!S->stopping) {
		S->kick = 0;
		char (*ids)[API_ID_LEN] = NULL;
		int n = 0;
		store_study_ids(S->st, 1, INT64_MAX, 0, &ids, &n, NULL);
		for (int i = 0; i < n && !S->stopping; i++) {
			/* a shared store: skipped while another daemon works on it */
			if (store_study_lock(S->st, ids[i], 0) == 1)
				advance(S, ids[i]);
			store_study_unlock(S->st);
		}
		free(ids);
		if (S->shared)
			sync_feeds(S);
		if (!S->reconciled)
			jobs_trial_limits_set(S->q);   /* every active study's is set */
		S->reconciled = 1;
		if (S->kick || S->stopping)
			continue;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&S->cv, &S->mu, &ts);
	}
	pthread_mutex_unlock(&S->mu);
	return NULL;
}

static void kick(studies *S)
{
	pthread_mutex_lock(&S->mu);
	S->kick = 1;
	pthread_cond_signal(&S->cv);
	pthread_mutex_unlock(&S->mu);
}

static void on_trial(void *ctx, const char *study)
{
	(void)study;
	kick(ctx);
}

/* A study's event feed: its recorded events, then live ones while it runs. */
static feed *open_feed(void *ctx, const char *id, api_err *e)
{
	studies *S = ctx;
	store_study row;
	if (store_study_get(S->st, id, &row, e) < 0)
		return NULL;
	pthread_mutex_lock(&S->mu);
	if (S->shared)
		sync_feeds(S);    /* a live feed is up to date before a reader joins */
	sfeed *x = find_feed(S, id);
	feed *f = NULL;
	if (x) {
		jobs_feed_ref(S->q, x->f);
		f = x->f;
	} else {
		store_study cur;
		api_err e2 = API_ERR_INIT;
		int final = store_study_get(S->st, id, &cur, &e2) < 0 || api_job_state_final(cur.state);
		store_study_release(&cur);
		f = jobs_feed_detached();
		store_event *ev = NULL;
		int n = 0;
		store_study_events(S->st, id, &ev, &n);
		int64_t last_id = 0;
		int ended = 0;
		for (int i = 0; f && i < n && !ended; i++) {
			/* shared: the feed ends with the study's final state event,
			 * whoever recorded it (the row may say so a moment before) */
			ended = S->shared ? final_state_event(ev[i].kind, ev[i].data)
			                  : final && i == n - 1 && ev[i].kind == FEED_STUDY_STATE;
			last_id = ev[i].id;
			jobs_feed_append(S->q, f, ev[i].kind, ev[i].id, ended, ev[i].data);
			ev[i].data = NULL;
		}
		store_history_free(ev, n);
		if (f && final && !n) {
			cJSON *o = study_json(S, &row);
			jobs_feed_append(S->q, f, FEED_STUDY_STATE, 0, 1, cJSON_PrintUnformatted(o));
			cJSON_Delete(o);
		}
		if (S->shared && n)
			final = ended;
		if (f && !final && (x = calloc(1, sizeof *x))) {
			snprintf(x->id, sizeof x->id, "%s", id);
			x->f = f;
			x->last = last_id;
			jobs_feed_ref(S->q, f);
			x->next = S->feeds;
			S->feeds = x;
		}
	}
	pthread_mutex_unlock(&S->mu);
	store_study_release(&row);
	if (!f)
		api_err_set(e, 500, "out_of_memory", "out of memory");
	return f;
}

int studies_start(store *st, jobs *q, const api_limits *lim, int workers, studies **out)
{
	studies *S = calloc(1, sizeof *S);
	if (!S)
		return -1;
	S->st = st;
	S->q = q;
	S->lim = *lim;
	S->workers = workers;
	S->shared = store_impl(st) != NULL;
	pthread_mutex_init(&S->mu, NULL);
	pthread_cond_init(&S->cv, NULL);
	jobs_set_trial_listener(q, on_trial, S);
	jobs_set_study_feeds(q, open_feed, S);
	if (pthread_create(&S->thread, NULL, scheduler, S) != 0) {
		studies_free(S);
		return -1;
	}
	S->started = 1;
	*out = S;
	return 0;
}

void studies_stop(studies *S)
{
	if (!S || !S->started)
		return;
	pthread_mutex_lock(&S->mu);
	S->stopping = 1;
	pthread_cond_signal(&S->cv);
	pthread_mutex_unlock(&S->mu);
	pthread_join(S->thread, NULL);
	S->started = 0;
	jobs_set_trial_listener(S->q, NULL, NULL);
}

void studies_free(studies *S)
{
	if (!S)
		return;
	studies_stop(S);
	jobs_set_study_feeds(S->q, NULL, NULL);
	sfeed *x = S->feeds;
	while (x) {
		sfeed *next = x->next;
		jobs_feed_release(S->q, x->f);
		free(x);
		x = next;
	}
	pthread_mutex_destroy(&S->mu);
	pthread_cond_destroy(&S->cv);
	free(S);
}

/* ---------------------------------------------------------------- the API */

int studies_create(studies *S, api_study *s, cJSON **obj, api_err *e)
{
	store_study row;
	memset(&row, 0, sizeof row);
	row.state = API_JOB_QUEUED;
	row.name = s->name ? strdup(s->name) : NULL;
	row.config = cJSON_PrintUnformatted(s->doc);
	if (!row.config) {
		store_study_release(&row);
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	}
	pthread_mutex_lock(&S->mu);
	int rc = store_study_insert(S->st, &row, s->dataset, s->val_dataset, s->test_dataset, e);
	if (rc == 0) {
		cJSON *o = study_json(S, &row);
		char *t = o ? cJSON_PrintUnformatted(o) : NULL;
		int64_t seq;
		if (t)
			store_study_event(S->st, row.id, FEED_STUDY_STATE, t, &seq);
		free(t);
		*obj = o;
		S->kick = 1;
		pthread_cond_signal(&S->cv);
	}
	pthread_mutex_unlock(&S->mu);
	store_study_release(&row);
	return rc;
}

int studies_get(studies *S, const char *id, cJSON **obj, api_err *e)
{
	store_study row;
	if (store_study_get(S->st, id, &row, e) < 0)
		return -1;
	*obj = study_json(S, &row);
	store_study_release(&row);
	return 0;
}

int studies_list(studies *S, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                 api_err *e)
{
	char (*ids)[API_ID_LEN] = NULL;
	int n = 0;
	if (store_study_ids(S->st, 0, limit, offset, &ids, &n, total) < 0) {
		free(ids);
		return api_err_set(e, 500, "store_failed", "cannot list studies");
	}
	for (int i = 0; i < n; i++) {
		cJSON *o = NULL;
		api_err e2 = API_ERR_INIT;
		if (studies_get(S, ids[i], &o, &e2) == 0)
			cJSON_AddItemToArray(items, o);
	}
	free(ids);
	return 0;
}

/* Asks done every 10 ms until it says yes or max_ms have passed. */
static void poll_10ms(studies *S, int (*done)(studies *S, void *arg), void *arg, int max_ms)
{
	for (int waited = 0; !done(S, arg) && waited < max_ms; waited += 10) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* The job (an id) has ended, or cannot be read. */
static int job_ended(studies *S, void *arg)
{
	api_job j;
	api_err e = API_ERR_INIT;
	if (store_job_get(S->st, arg, &j, &e) < 0)
		return 1;
	int fin = api_job_state_final(j.state);
	api_job_release(&j);
	return fin;
}

static int unfinished(const store_trial *t)
{
	return t->state == API_JOB_QUEUED || t->state == API_JOB_RUNNING ||
	       t->state == API_JOB_PAUSED;
}

/* Cancels every unfinished trial (caller holds S->mu). */
static void cancel_trials(studies *S, const char *id, const char *config)
{
	api_study s;
	int loaded = config && api_study_load(config, &s) == 0;
	store_trial *tr = NULL;
	int n = 0;
	store_trials_get(S->st, id, &tr, &n);
	/* every job's cancel first, so that none runs on while another's
	 * end is waited for; wait[i]: trial i's job took the cancel or had
	 * ended (out of memory: no waiting, the trials are cancelled) */
	char *wait = calloc((size_t)n + 1, 1);
	for (int i = 0; i < n; i++) {
		store_trial *t = &tr[i];
		if (!unfinished(t))
			continue;
		api_job j;
		api_err e = API_ERR_INIT;
		int accepted = t->job[0] && jobs_cancel(S->q, t->job, &j, &e) == 0;
		if (accepted)
			api_job_release(&j);
		if (wait)
			wait[i] = accepted || e.status == 409;
	}
	/* then each trial takes its job's end: a job that ended before the
	 * cancel (409) keeps it, and the queue counts it finished a moment
	 * before its row says so (its last writes); a running job that takes
	 * the cancel may have trained its last step already and end
	 * succeeded. So the job's row is waited for until it says how the job
	 * ended (10 s at most) */
	for (int i = 0; i < n; i++) {
		store_trial *t = &tr[i];
		if (!unfinished(t))
			continue;
		if (loaded && wait && wait[i]) {
			poll_10ms(S, job_ended, t->job, 10000);
			refresh(S, &s, t);
		}
		if (!(loaded && (api_job_state_final(t->state) || t->state == STORE_TRIAL_PRUNED)))
			t->state = API_JOB_CANCELLED;
		record_trial(S, id, t);
	}
	free(wait);
	store_trials_free(tr, n);
	if (loaded)
		api_study_free(&s);
}

int studies_cancel(studies *S, const char *id, cJSON **obj, api_err *e)
{
	store_study row;
	if (store_study_get(S->st, id, &row, e) < 0)
		return -1;
	__atomic_add_fetch(&S->waiting, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&S->mu);
	__atomic_sub_fetch(&S->waiting, 1, __ATOMIC_SEQ_CST);
	/* a shared store: after any pass another daemon is making on it, and
	 * from the row as that pass left it */
	int rc = 0;
	if (store_study_lock(S->st, id, 1) != 1) {
		rc = api_err_set(e, 503, "store_unavailable", "cannot lock study %s", id);
	} else if (S->shared) {
		store_study_release(&row);
		rc = store_study_get(S->st, id, &row, e);
	}
	if (rc < 0) {
		/* nothing written */
	} else if (api_job_state_final(row.state)) {
		rc = api_err_set(e, 409, "study_finished", "study %s has already ended", id);
	} else {
		/* the state first: the scheduler leaves a cancelled study alone */
		row.state = API_JOB_CANCELLED;
		row.finished_at = util_now_ms();
		store_study_update(S->st, &row);
		cancel_trials(S, id, row.config);
		set_state(S, &row, API_JOB_CANCELLED, NULL, NULL);
		*obj = study_json(S, &row);
	}
	store_study_unlock(S->st);
	if (S->shared)
		sync_feeds(S);
	pthread_mutex_unlock(&S->mu);
	store_study_release(&row);
	return rc;
}

int studies_delete(studies *S, const char *id, int keep_best, api_err *e)
{
	cJSON *o = NULL;
	api_err e2 = API_ERR_INIT;
	if (studies_cancel(S, id, &o, &e2) < 0 && e2.status != 409) {
		*e = e2;
		return -1;
	}
	cJSON_Delete(o);
	if (studies_get(S, id, &o, e) < 0)
		return -1;
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "best");
	const cJSON *bm = cJSON_IsObject(b) ? cJSON_GetObjectItemCaseSensitive(b, "model") : NULL;
	char best[API_ID_LEN] = "";
	if (keep_best && cJSON_IsString(bm))
		snprintf(best, sizeof best, "%s", bm->valuestring);
	cJSON_Delete(o);
	store_trial *tr = NULL;
	int n = 0;
	store_trials_get(S->st, id, &tr, &n);
	/* running trials stop at their next step: wait for them (10 s at most) */
	for (int i = 0; i < n; i++) {
		api_err e3 = API_ERR_INIT;
		if (tr[i].job[0]) {
			poll_10ms(S, job_ended, tr[i].job, 10000);
			store_job_delete(S->st, tr[i].job, &e3);
		}
		if (tr[i].model[0] && strcmp(tr[i].model, best) != 0)
			store_model_delete(S->st, tr[i].model, &e3);
	}
	store_trials_free(tr, n);
	pthread_mutex_lock(&S->mu);
	int rc = store_study_delete(S->st, id);
	pthread_mutex_unlock(&S->mu);
	return rc < 0 ? api_err_set(e, 500, "store_failed", "cannot delete study %s", id) : 0;
}

int studies_trials(studies *S, const char *id, int by_number, int64_t limit, int64_t offset,
                   cJSON *items, int64_t *total, api_err *e)
{
	store_study row;
	if (store_study_get(S->st, id, &row, e) < 0)
		return -1;
	cJSON *cfg = row.config ? cJSON_Parse(row.config) : NULL;
	const cJSON *o = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "objective") : NULL;
	const cJSON *g = o ? cJSON_GetObjectItemCaseSensitive(o, "goal") : NULL;
	int maximize = cJSON_IsString(g) && strcmp(g->valuestring, "maximize") == 0;
	cJSON_Delete(cfg);
	store_study_release(&row);
	return store_trials_page(S->st, id, by_number, maximize, limit, offset, items, total, e);
}
