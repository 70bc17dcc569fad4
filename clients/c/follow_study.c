/*
 * follow_study.c - `nnctl studies follow` and `studies create --follow`: a
 * study's events to its end. On a terminal one status line is redrawn in
 * place (trials done of total, running, paused, pruned, failed, the best
 * value so far, elapsed time); otherwise each trial event is one line; with
 * --json each event is one JSON line.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nnctl.h"

struct sfollow {
	const nc_ctx *c;
	int tty;
	char state[16];
	char error[256];
	double t0;
	const char *id;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
	return s ? s : "";
}

static int terminal(const char *s)
{
	return !strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

/* The status line from a study object. */
static void draw(struct sfollow *f, const cJSON *s)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "trials");
	double done = jnum(t, "succeeded") + jnum(t, "failed") + jnum(t, "pruned") +
	              jnum(t, "cancelled");
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "best");
	char best[64] = "-";
	if (cJSON_IsObject(b))
		snprintf(best, sizeof best, "%.6g (trial %.0f)", jnum(b, "value"), jnum(b, "trial"));
	printf("\r\033[K%s  %s  %.0f/%.0f trials done  %.0f running  %.0f paused  %.0f pruned  "
	       "%.0f failed  best %s  %.0fs", jstr(s, "id"), jstr(s, "state"), done,
	       jnum(t, "total"), jnum(t, "running"), jnum(t, "paused"), jnum(t, "pruned"),
	       jnum(t, "failed"), best, now_s() - f->t0);
	fflush(stdout);
}

static int on_event(const char *event, const char *id, const char *data, void *user)
{
	struct sfollow *f = user;
	if (f->c->json) {
		printf("{\"event\":\"%s\",\"id\":%s,\"data\":%s}\n", event, id && *id ? id : "null",
		       data);
		fflush(stdout);
	}
	cJSON *j = cJSON_Parse(data);
	if (!j)
		return 0;
	if (!strcmp(event, "state")) {
		snprintf(f->state, sizeof f->state, "%s", jstr(j, "state"));
		const cJSON *er = cJSON_GetObjectItemCaseSensitive(j, "error");
		if (cJSON_IsObject(er))
			snprintf(f->error, sizeof f->error, "%s", jstr(er, "detail"));
		if (f->tty)
			draw(f, j);
		else if (!f->c->json)
			printf("study %s: %s\n", jstr(j, "id"), f->state);
	} else if (!strcmp(event, "trial") && !f->c->json && !f->tty) {
		char *p = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "params"));
		printf("trial %.0f %s value %.6g epochs %.0f %s\n", jnum(j, "number"), jstr(j, "state"),
		       jnum(j, "value"), jnum(j, "epochs"), p ? p : "");
		free(p);
	}
	cJSON_Delete(j);
	fflush(stdout);
	return terminal(f->state);
}

/* On a terminal the line is redrawn from the study object after each
 * trial event (the events carry the trial only). */
static int on_event_tty(const char *event, const char *id, const char *data, void *user)
{
	struct sfollow *f = user;
	int rc = on_event(event, id, data, user);
	if (f->tty && !strcmp(event, "trial") && !rc) {
		char path[128];
		snprintf(path, sizeof path, "/v1/studies/%s", f->id);
		nc_reply r = NC_REPLY_INIT;
		if (nc_request(f->c, "GET", path, NULL, NULL, 0, &r) == 0) {
			cJSON *s = cJSON_Parse(r.body.data ? r.body.data : "");
			if (s)
				draw(f, s);
			cJSON_Delete(s);
		}
		nc_reply_release(&r);
	}
	return rc;
}

int nc_follow_study(const nc_ctx *c, const char *study_id)
{
	struct sfollow f;
	memset(&f, 0, sizeof f);
	f.c = c;
	f.id = study_id;
	f.tty = isatty(STDOUT_FILENO) && !c->json;
	f.t0 = now_s();
	char path[160], last_id[64] = "";
	snprintf(path, sizeof path, "/v1/studies/%s/events", study_id);
	for (int tries = 0; !terminal(f.state) && tries < 4; tries++) {
		nc_reply r = NC_REPLY_INIT;
		int rc = nc_stream(c, path, last_id, on_event_tty, &f, &r);
		if (rc != 0 && r.status >= 300) {
			nc_print_problem(&r);
			nc_reply_release(&r);
			return NC_ERR;
		}
		nc_reply_release(&r);
		if (!terminal(f.state))
			sleep(1);
	}
	if (f.tty)
		putchar('\n');
	fflush(stdout);
	if (!strcmp(f.state, "succeeded"))
		return NC_OK;
	if (!strcmp(f.state, "failed")) {
		fprintf(stderr, "nnctl: study %s failed%s%s\n", study_id, f.error[0] ? ": " : "",
		        f.error);
		return NC_JOB_FAILED;
	}
	if (!strcmp(f.state, "cancelled")) {
		fprintf(stderr, "nnctl: study %s was cancelled\n", study_id);
		return NC_JOB_CANCELLED;
	}
	fprintf(stderr, "nnctl: lost the event stream of study %s before it ended\n", study_id);
	return NC_ERR;
}
