/*
 * test_store_pg.c - the PostgreSQL store (server/store_pg.c) does with a
 * study's trial rows and events what the SQLite store does
 * (store_trials_check.h, also run by test_store.c): a trial's row and its
 * event commit together, in the study lock's transaction or in one of their
 * own. Needs a server: NND_TEST_PG_URL (tests/pg/run-pg.sh starts a
 * throwaway cluster and sets it); SKIP (77) without one.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check_main.h"
#include "storage.h"
#include "store_data.h"
#include "store_trials_check.h"

static char dir[64];    /* --data-dir: the caches' files only */

static void setup(void)
{
	temp_dir_make(dir, sizeof dir, "/tmp/nnd-store-pg-XXXXXX");
}

static void teardown(void)
{
	temp_dir_remove(dir);
}

static store *open_pg(void)
{
	char url[1024], err[256];
	/* a schema of this run's own (created by the store) */
	snprintf(url, sizeof url, "%s&options=-csearch_path%%3Dtest_store_pg_%ld",
	         getenv("NND_TEST_PG_URL"), (long)getpid());
	store *s = NULL;
	ck_assert_msg(store_open_url(url, dir, &s, err, sizeof err) == 0, "%s", err);
	return s;
}

static store *reopen(store *s)
{
	store_close(s);
	return open_pg();
}

START_TEST(test_a_trial_row_and_its_event_commit_together)
{
	check_trial_record(open_pg(), reopen);
}
END_TEST

/* Inside a pass (the study's lock held), the rows commit with the lock's
 * end: the same reads afterwards. */
START_TEST(test_within_the_study_lock_they_commit_at_its_end)
{
	store *s = open_pg();
	store_study st;
	trials_check_study(s, &st);
	ck_assert_int_eq(store_study_lock(s, st.id, 1), 1);
	store_trial t;
	memset(&t, 0, sizeof t);
	t.state = API_JOB_RUNNING;
	t.value = NAN;
	t.params = "{}";
	int64_t seq = 0;
	ck_assert_int_eq(store_trial_record(s, st.id, &t, FEED_TRIAL, "{\"trial\":0}", &seq), 0);
	ck_assert_int_eq(seq, 1);
	store_study_unlock(s);
	store_trial *tr = NULL;
	int n = 0;
	ck_assert_int_eq(store_trials_get(s, st.id, &tr, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(tr[0].state, API_JOB_RUNNING);
	store_trials_free(tr, n);
	store_event *ev = NULL;
	ck_assert_int_eq(store_study_events(s, st.id, &ev, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(ev[0].data, "{\"trial\":0}");
	store_history_free(ev, n);
	store_study_release(&st);
	store_close(s);
}
END_TEST

int main(void)
{
	if (!getenv("NND_TEST_PG_URL") || !*getenv("NND_TEST_PG_URL")) {
		printf("SKIP: NND_TEST_PG_URL not set (tests/pg/run-pg.sh sets it)\n");
		return 77;
	}
	Suite *s = suite_create("store_pg");
	TCase *t = tcase_create("trials");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_a_trial_row_and_its_event_commit_together);
	tcase_add_test(t, test_within_the_study_lock_they_commit_at_its_end);
	suite_add_tcase(s, t);
	return check_run(s);
}
