/*
 * itest_events.c - event ids and Last-Event-ID resume on a job's event
 * stream (SSE and ndjson), against a real daemon.
 *
 * The contract being pinned down: a step event's id is its step number, an
 * epoch event's id is the global step count at the end of that epoch (a
 * step and the epoch it ends share an id, the step first), a state event's
 * id is the newest id before it; ids never decrease. Resuming after id N
 * skips every event with id <= N except the terminal state event, which
 * ends every stream, so a client that reconnects with the id of the last
 * event it saw gets exactly the events it missed, each once.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MAX_EV 4096

/* One event: kind ("step", "epoch", "state"), its id, and what it names
 * (the step number, the epoch number, or the state). */
typedef struct ev {
	char kind[8];
	long long id;
	long long key;
	char state[16];
} ev;

/* The events of an ndjson stream; returns their number. */
static int parse_ndjson(char *text, ev *out)
{
	int n = 0;
	for (char *l = strtok(text, "\n"); l && n < MAX_EV; l = strtok(NULL, "\n")) {
		cJSON *j = cJSON_Parse(l);
		ck_assert_ptr_nonnull(j);
		ev *e = &out[n++];
		memset(e, 0, sizeof *e);
		snprintf(e->kind, sizeof e->kind, "%s", jstr(j, "event"));
		const cJSON *id = cJSON_GetObjectItem(j, "id");
		ck_assert(cJSON_IsNumber(id));
		e->id = (long long)id->valuedouble;
		const cJSON *d = cJSON_GetObjectItem(j, "data");
		if (!strcmp(e->kind, "step"))
			e->key = (long long)jnum(d, "step");
		else if (!strcmp(e->kind, "epoch"))
			e->key = (long long)jnum(d, "epoch");
		else
			snprintf(e->state, sizeof e->state, "%s", jstr(d, "state"));
		cJSON_Delete(j);
	}
	return n;
}

/* The events of an SSE stream (kind and id; the data's key as above). */
static int parse_sse(const char *text, ev *out)
{
	int n = 0;
	const char *p = text;
	while (n < MAX_EV && (p = strstr(p, "event: ")) != NULL) {
		ev *e = &out[n++];
		memset(e, 0, sizeof *e);
		p += 7;
		size_t k = strcspn(p, "\n");
		ck_assert_uint_lt(k, sizeof e->kind);
		memcpy(e->kind, p, k);
		p += k + 1;
		ck_assert_int_eq(strncmp(p, "id: ", 4), 0);
		e->id = strtoll(p + 4, NULL, 10);
		p = strstr(p, "data: ");
		ck_assert_ptr_nonnull(p);
		p += 6;
		size_t dl = strcspn(p, "\n");
		char *data = strndup(p, dl);
		cJSON *d = cJSON_Parse(data);
		free(data);
		ck_assert_ptr_nonnull(d);
		if (!strcmp(e->kind, "step"))
			e->key = (long long)jnum(d, "step");
		else if (!strcmp(e->kind, "epoch"))
			e->key = (long long)jnum(d, "epoch");
		else
			snprintf(e->state, sizeof e->state, "%s", jstr(d, "state"));
		cJSON_Delete(d);
		p += dl;
	}
	return n;
}

/* Reads the job's stream in one format, resuming after `after` (< 0: no
 * Last-Event-ID header); returns the number of events. */
static int read_events(nnd *d, const char *job, int ndjson, long long after, ev *out)
{
	char path[160], lei[32];
	snprintf(path, sizeof path, "/v1/jobs/%s/events%s", job, ndjson ? "?format=ndjson" : "");
	snprintf(lei, sizeof lei, "%lld", after);
	char *text = read_stream(d, path, after >= 0 ? lei : NULL);
	ck_assert_ptr_nonnull(text);
	int n = ndjson ? parse_ndjson(text, out) : parse_sse(text, out);
	free(text);
	return n;
}

static int is_final(const ev *e)
{
	return !strcmp(e->kind, "state") &&
	       (!strcmp(e->state, "succeeded") || !strcmp(e->state, "failed") ||
	        !strcmp(e->state, "cancelled"));
}

static void assert_same(const ev *got, int ng, const ev *want, int nw, const char *what)
{
	ck_assert_msg(ng == nw, "%s: %d events, want %d", what, ng, nw);
	for (int i = 0; i < nw; i++) {
		ck_assert_msg(!strcmp(got[i].kind, want[i].kind) && got[i].id == want[i].id &&
		              got[i].key == want[i].key && !strcmp(got[i].state, want[i].state),
		              "%s: event %d is %s id %lld key %lld %s, want %s id %lld key %lld %s",
		              what, i, got[i].kind, got[i].id, got[i].key, got[i].state,
		              want[i].kind, want[i].id, want[i].key, want[i].state);
	}
}

/* 8 rows, batch 4: two steps an epoch; log_every_steps 5; 4 epochs. */
START_TEST(test_event_ids_are_steps_and_epoch_ends_and_resume_is_exact)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	char ds[32], mdl[32], job[32];
	ck_assert_int_eq(make_dataset_csv(&d, 8, 3, 2, ds), 0);
	ck_assert_int_eq(make_model(&d, 3, 2, 4, 1, mdl), 0);
	ck_assert_int_eq(submit_job(&d, mdl, ds, 4, 4, "\"log_every_steps\":5", job), 202);

	static ev got[MAX_EV];
	/* a subscriber from the start: whatever states it sees around them,
	 * the step and epoch events are exactly these, with ids in order */
	static const ev want[] = {
		{ "epoch", 2, 0, "" }, { "epoch", 4, 1, "" }, { "step", 5, 5, "" },
		{ "epoch", 6, 2, "" }, { "epoch", 8, 3, "" }, { "state", 8, 0, "succeeded" },
	};
	const int nwant = (int)(sizeof want / sizeof want[0]);
	int n = read_events(&d, job, 0, -1, got);
	ck_assert_int_ge(n, nwant);
	static ev progress[MAX_EV];
	int np = 0;
	for (int i = 0; i < n; i++) {
		if (i > 0)
			ck_assert_int_ge(got[i].id, got[i - 1].id);
		if (strcmp(got[i].kind, "state") != 0 || is_final(&got[i]))
			progress[np++] = got[i];
		else
			ck_assert_int_le(got[i].id, 8);
	}
	assert_same(progress, np, want, nwant, "live, ndjson");
	cJSON *j = wait_job(&d, job, 60);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	ck_assert_double_eq(jnum(j, "step"), 8);
	cJSON_Delete(j);

	/* the finished job's stream is its history and its final state; after
	 * each id it is exactly the rest, in both formats */
	for (int fmt = 0; fmt < 2; fmt++) {
		for (long long after = -1; after <= 9; after++) {
			static ev rest[MAX_EV];
			int nr = 0;
			for (int i = 0; i < nwant; i++)
				if (want[i].id > after || is_final(&want[i]))
					rest[nr++] = want[i];
			char what[64];
			snprintf(what, sizeof what, "%s after %lld", fmt ? "ndjson" : "sse", after);
			n = read_events(&d, job, fmt, after, got);
			assert_same(got, n, rest, nr, what);
		}
	}
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

/* 200 rows, batch 4: 50 steps an epoch, 30 epochs, a step event every 5
 * steps, a checkpoint every 3 epochs. kill -9 past step 400 (the history
 * reaching an epoch end the checkpoint does not: one at step 300 or 450);
 * after the restart the job resumes from its checkpoint and replays steps
 * already in the history; a subscriber still sees each step and each epoch
 * once, with ids that only grow. */
START_TEST(test_events_after_a_crash_and_resume_come_once_each)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	char ds[32], mdl[32], job[32], path[160];
	ck_assert_int_eq(make_dataset_csv(&d, 200, 6, 3, ds), 0);
	ck_assert_int_eq(make_model(&d, 6, 3, 64, 2, mdl), 0);
	ck_assert_int_eq(submit_job(&d, mdl, ds, 30, 4,
	                            "\"log_every_steps\":5,\"checkpoint_every_epochs\":3", job), 202);
	snprintf(path, sizeof path, "/v1/jobs/%s", job);
	for (int i = 0; i < 2000; i++) {
		long st;
		cJSON *j = http_json(&d, "GET", path, NULL, &st);
		double step = jnum(j, "step");
		int done = strcmp(jstr(j, "state"), "running") && strcmp(jstr(j, "state"), "queued");
		cJSON_Delete(j);
		if (step >= 400 || done)
			break;
		usleep(2000);
	}
	nnd_kill9(&d);
	ck_assert_int_eq(nnd_restart(&d), 0);

	static ev got[MAX_EV];
	for (int fmt = 0; fmt < 2; fmt++) {
		int n = read_events(&d, job, fmt, -1, got);
		long long next_step = 5, epoch = 0;
		int finals = 0;
		for (int i = 0; i < n; i++) {
			if (i > 0)
				ck_assert_int_ge(got[i].id, got[i - 1].id);
			if (!strcmp(got[i].kind, "step")) {
				ck_assert_int_eq(got[i].key, next_step);
				ck_assert_int_eq(got[i].id, next_step);
				next_step += 5;
			} else if (!strcmp(got[i].kind, "epoch")) {
				ck_assert_int_eq(got[i].key, epoch);
				ck_assert_int_eq(got[i].id, (epoch + 1) * 50);
				epoch++;
			} else if (is_final(&got[i])) {
				ck_assert_str_eq(got[i].state, "succeeded");
				ck_assert_int_eq(i, n - 1);
				finals++;
			}
		}
		ck_assert_int_eq(next_step, 1500 + 5);
		ck_assert_int_eq(epoch, 30);
		ck_assert_int_eq(finals, 1);
	}
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("events");
	TCase *t = tcase_create("events");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_event_ids_are_steps_and_epoch_ends_and_resume_is_exact);
	tcase_add_test(t, test_events_after_a_crash_and_resume_come_once_each);
	suite_add_tcase(s, t);
	return run_suite(s);
}
