/*
 * store_trials_check.h - what every store does with a study's trial rows
 * and events (storage.h's studies block), checked the same way against the
 * SQLite store (test_store.c) and the PostgreSQL one (test_store_pg.c).
 */
#ifndef TESTS_STORE_TRIALS_CHECK_H
#define TESTS_STORE_TRIALS_CHECK_H

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "storage.h"

/* A study's row, no data set behind it (the rows need none). */
static void trials_check_study(store *s, store_study *st)
{
	memset(st, 0, sizeof *st);
	st->state = API_JOB_RUNNING;
	st->config = strdup("{}");
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_study_insert(s, st, "ds_0000000000000000", NULL, NULL, &e), 0);
}

/* store_trial_record: the row and its event land together, the events
 * numbered on from the study's own (store_study_event), the row replaced
 * in place; what it wrote is read back by a store opened again (reopen,
 * NULL: the same one). */
static void check_trial_record(store *s, store *(*reopen)(store *))
{
	store_study st;
	trials_check_study(s, &st);
	int64_t seq = 0;
	ck_assert_int_eq(store_study_event(s, st.id, FEED_STUDY_STATE, "{\"state\":\"queued\"}", &seq), 0);
	ck_assert_int_eq(seq, 1);

	store_trial t;
	memset(&t, 0, sizeof t);
	t.number = 0;
	t.state = API_JOB_QUEUED;
	t.value = NAN;
	t.params = "{\"job.seed\":7}";
	snprintf(t.job, sizeof t.job, "job_00000000000000a0");
	snprintf(t.model, sizeof t.model, "mdl_00000000000000a0");
	ck_assert_int_eq(store_trial_record(s, st.id, &t, FEED_TRIAL, "{\"trial\":0,\"state\":\"queued\"}",
	                                    &seq), 0);
	ck_assert_int_eq(seq, 2);
	t.number = 1;
	t.params = "{\"job.seed\":8}";
	ck_assert_int_eq(store_trial_record(s, st.id, &t, FEED_TRIAL, "{\"trial\":1}", &seq), 0);
	ck_assert_int_eq(seq, 3);
	/* trial 0 ends: its row replaced (params kept when NULL) */
	t.number = 0;
	t.params = NULL;
	t.state = API_JOB_SUCCEEDED;
	t.value = 0.25;
	t.epochs = 6;
	ck_assert_int_eq(store_trial_record(s, st.id, &t, FEED_TRIAL, "{\"trial\":0,\"state\":\"succeeded\"}",
	                                    &seq), 0);
	ck_assert_int_eq(seq, 4);

	if (reopen)
		s = reopen(s);
	store_trial *tr = NULL;
	int n = 0;
	ck_assert_int_eq(store_trials_get(s, st.id, &tr, &n), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(tr[0].number, 0);
	ck_assert_int_eq(tr[0].state, API_JOB_SUCCEEDED);
	ck_assert(fabs(tr[0].value - 0.25) < 1e-12);
	ck_assert_int_eq(tr[0].epochs, 6);
	ck_assert_str_eq(tr[0].params, "{\"job.seed\":7}");
	ck_assert_str_eq(tr[0].job, "job_00000000000000a0");
	ck_assert_int_eq(tr[1].number, 1);
	ck_assert_int_eq(tr[1].state, API_JOB_QUEUED);
	ck_assert(isnan(tr[1].value));
	ck_assert_str_eq(tr[1].params, "{\"job.seed\":8}");
	store_trials_free(tr, n);

	store_event *ev = NULL;
	ck_assert_int_eq(store_study_events(s, st.id, &ev, &n), 0);
	ck_assert_int_eq(n, 4);
	const int kinds[4] = { FEED_STUDY_STATE, FEED_TRIAL, FEED_TRIAL, FEED_TRIAL };
	const char *data[4] = { "{\"state\":\"queued\"}", "{\"trial\":0,\"state\":\"queued\"}",
	                        "{\"trial\":1}", "{\"trial\":0,\"state\":\"succeeded\"}" };
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(ev[i].id, i + 1);
		ck_assert_int_eq(ev[i].kind, kinds[i]);
		ck_assert_str_eq(ev[i].data, data[i]);
	}
	store_history_free(ev, n);
	int64_t c[7], epochs = 0;
	ck_assert_int_eq(store_trial_counts(s, st.id, c, &epochs), 0);
	ck_assert_int_eq(c[API_JOB_QUEUED], 1);
	ck_assert_int_eq(c[API_JOB_SUCCEEDED], 1);
	ck_assert_int_eq(epochs, 6);
	ck_assert_int_eq(store_study_delete(s, st.id), 0);
	store_study_release(&st);
	if (reopen)
		store_close(s);
}

#endif
