/*
 * itest_checkpoints.c - checkpoints written while training goes on
 * (server/jobs.c hands each one to a writer thread and waits for it at the
 * next checkpoint and at the job's end):
 *  - a checkpoint write that fails (a full disk: RLIMIT_FSIZE on the
 *    daemon, as in itest_faults) after training has moved on still fails
 *    the job with "insufficient_storage" and "cannot write a checkpoint",
 *    also when the failure is only found at the job's end, and nothing is
 *    published;
 *  - the last epoch's checkpoint is not written, so a job whose only
 *    checkpoint would be that one succeeds under the same limit;
 *  - a job that ends within --checkpoint-gap-ms of its start writes no
 *    checkpoint at all: it succeeds under the same limit (a study's small
 *    trials pay no checkpoint); with a gap of 0 every one is written;
 *  - jobs cancelled while a write may be in flight, and a job that
 *    succeeds, leave no checkpoint and no temporary file behind;
 *  - a graceful stop waits for the stop checkpoint: the job resumes from
 *    it and reaches the weights of a run never stopped.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static long file_size(const char *dir, const char *name)
{
	char path[600];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Entries of data/checkpoints: all of them, and those named .tmp-*. */
static int count_checkpoints(const nnd *d, int *temps)
{
	char dir[600];
	snprintf(dir, sizeof dir, "%s/checkpoints", d->data);
	DIR *dd = opendir(dir);
	ck_assert_ptr_nonnull(dd);
	int n = 0;
	*temps = 0;
	struct dirent *de;
	while ((de = readdir(dd)) != NULL) {
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0))
			continue;
		n++;
		*temps += strncmp(de->d_name, ".tmp-", 5) == 0;
	}
	closedir(dd);
	return n;
}

/* Stops the daemon and checks it left no checkpoint and no temporary file
 * (every job had ended), then removes its directory. */
static void stop_with_no_checkpoint(nnd *d)
{
	ck_assert_int_eq(nnd_stop(d, 20), 0);
	int temps = 0;
	ck_assert_int_eq(count_checkpoints(d, &temps), 0);
	ck_assert_int_eq(temps, 0);
	ck_assert_int_eq(nnd_cleanup(d), 0);
}

static long post_model(nnd *d, int hidden, char *id)
{
	char body[512];
	snprintf(body, sizeof body,
	         "{\"name\":\"ckpt\",\"task\":\"classification\",\"inputs\":32,\"outputs\":3,"
	         "\"seed\":3,\"layers\":[{\"type\":\"dense\",\"units\":%d,\"activation\":\"relu\"}]}",
	         hidden);
	return create_model(d, body, id);
}

static int model_version(nnd *d, const char *mdl)
{
	return get_int(d, "/v1/models/%s", mdl, "version");
}

/* A daemon started with --checkpoint-gap-ms gap_ms, a data set ds and a
 * model mdl whose checkpoint cannot be written under the file-size limit
 * set on the daemon (rl): 1 MiB past the store's own files (its commits
 * fit); the model file about half of it, an Adam checkpoint (weights and
 * two moments) about one and a half. */
static void start_at_the_limit(nnd *d, const char *gap_ms, char *ds, char *mdl,
                               struct rlimit *rl)
{
	const char *flags[] = { "--checkpoint-gap-ms", gap_ms, NULL };
	ck_assert_int_eq(nnd_start(d, flags), 0);
	ck_assert_int_eq(make_dataset_csv(d, 200, 32, 3, ds), 0);
	long biggest = file_size(d->data, "nnd.db");
	long wal = file_size(d->data, "nnd.db-wal");
	if (wal > biggest)
		biggest = wal;
	rlim_t limit = (rlim_t)biggest + 1024 * 1024;
	int hidden = (int)(limit / (2 * 4 * 36));   /* ~36 parameters per unit */
	ck_assert_int_eq(post_model(d, hidden, mdl), 201);
	*rl = (struct rlimit){ limit, RLIM_INFINITY };
	ck_assert_int_eq(prlimit(d->pid, RLIMIT_FSIZE, rl, NULL), 0);
}

START_TEST(test_failed_write_found_at_the_end_fails_the_job_and_the_last_epoch_writes_none)
{
	/* every checkpoint handed over is written, at once */
	nnd d = { 0 };
	char ds[32], mdl[32], job[32];
	struct rlimit rl;
	start_at_the_limit(&d, "0", ds, mdl, &rl);

	/* two epochs: the first epoch's checkpoint fails on the writer
	 * thread while the second epoch trains; the second's is the last
	 * (not written), so the failure is found at the job's end */
	ck_assert_int_eq(submit_job(&d, mdl, ds, 2, 50, "\"checkpoint_every_epochs\":1", job), 202);
	cJSON *done = wait_job(&d, job, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "failed");
	const cJSON *err = cJSON_GetObjectItem(done, "error");
	ck_assert_str_eq(jstr(err, "code"), "insufficient_storage");
	ck_assert_msg(strstr(jstr(err, "detail"), "cannot write a checkpoint") != NULL, "detail: %s",
	              jstr(err, "detail"));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(done, "model_version")));
	cJSON_Delete(done);
	ck_assert_int_eq(model_version(&d, mdl), 0);
	ck_assert(log_has(&d, "cannot write a checkpoint"));

	/* one epoch under the same limit: its only checkpoint would be the
	 * last epoch's, which is not written; the job publishes */
	ck_assert_int_eq(submit_job(&d, mdl, ds, 1, 50, "\"checkpoint_every_epochs\":1", job), 202);
	done = wait_job(&d, job, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_msg(strcmp(jstr(done, "state"), "succeeded") == 0, "state %s: %s",
	              jstr(done, "state"), jstr(cJSON_GetObjectItem(done, "error"), "detail"));
	ck_assert_int_eq((int)jnum(done, "model_version"), 1);
	cJSON_Delete(done);
	ck_assert_int_eq(model_version(&d, mdl), 1);

	/* three epochs: the failure is found at the second checkpoint */
	ck_assert_int_eq(submit_job(&d, mdl, ds, 3, 50, "\"checkpoint_every_epochs\":1", job), 202);
	done = wait_job(&d, job, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "failed");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(done, "error"), "code"), "insufficient_storage");
	cJSON_Delete(done);
	ck_assert_int_eq(model_version(&d, mdl), 1);

	/* space returns: the two-epoch job succeeds */
	rl.rlim_cur = RLIM_INFINITY;
	ck_assert_int_eq(prlimit(d.pid, RLIMIT_FSIZE, &rl, NULL), 0);
	ck_assert_int_eq(submit_job(&d, mdl, ds, 2, 50, "\"checkpoint_every_epochs\":1", job), 202);
	done = wait_job(&d, job, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	ck_assert_int_eq((int)jnum(done, "model_version"), 2);
	cJSON_Delete(done);

	/* at rest: no checkpoint of a finished job, no temporary file */
	stop_with_no_checkpoint(&d);
}
END_TEST

START_TEST(test_a_job_within_the_gap_writes_no_checkpoint)
{
	/* a gap far longer than the jobs: none of their checkpoints is due */
	nnd d = { 0 };
	char ds[32], mdl[32], job[32];
	struct rlimit rl;
	start_at_the_limit(&d, "60000", ds, mdl, &rl);
	/* the three epochs that fail with a gap of 0: two checkpoints handed
	 * over, neither written, and the job publishes */
	ck_assert_int_eq(submit_job(&d, mdl, ds, 3, 50, "\"checkpoint_every_epochs\":1", job), 202);
	cJSON *done = wait_job(&d, job, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_msg(strcmp(jstr(done, "state"), "succeeded") == 0, "state %s: %s",
	              jstr(done, "state"), jstr(cJSON_GetObjectItem(done, "error"), "detail"));
	ck_assert_int_eq((int)jnum(done, "model_version"), 1);
	/* its history still went out, once, at its end */
	ck_assert_int_eq((int)jnum(done, "epoch"), 2);
	cJSON_Delete(done);
	ck_assert(!log_has(&d, "cannot write a checkpoint"));
	stop_with_no_checkpoint(&d);
}
END_TEST

START_TEST(test_cancels_during_writes_leave_no_checkpoint)
{
	const char *flags[] = { "--workers", "2", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[32], mdl[32], job[32], path[128];
	ck_assert_int_eq(make_dataset_csv(&d, 300, 32, 3, ds), 0);
	ck_assert_int_eq(post_model(&d, 256, mdl), 201);
	/* short epochs, a checkpoint each: a write is often in flight when
	 * the cancel lands */
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(submit_job(&d, mdl, ds, 100000, 100, "\"checkpoint_every_epochs\":1",
		                            job), 202);
		snprintf(path, sizeof path, "/v1/jobs/%s", job);
		for (int k = 0; k < 3000; k++) {
			cJSON *j = http_json(&d, "GET", path, NULL, NULL);
			int e = (int)jnum(j, "epoch");
			cJSON_Delete(j);
			if (e >= 2 + i)
				break;
			sleep_ms(2);
		}
		snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job);
		http_resp r;
		ck_assert_int_eq(http_do(&d, "POST", path, NULL, NULL, 0, &r), 202);
		resp_free(&r);
		cJSON *done = wait_job(&d, job, 30);
		ck_assert_ptr_nonnull(done);
		ck_assert_str_eq(jstr(done, "state"), "cancelled");
		ck_assert(cJSON_IsNull(cJSON_GetObjectItem(done, "error")) ||
		          cJSON_GetObjectItem(done, "error") == NULL);
		cJSON_Delete(done);
	}
	/* and one that succeeds */
	ck_assert_int_eq(submit_job(&d, mdl, ds, 3, 100, "\"checkpoint_every_epochs\":1", job), 202);
	cJSON *done = wait_job(&d, job, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	cJSON_Delete(done);
	stop_with_no_checkpoint(&d);
}
END_TEST

START_TEST(test_graceful_stop_waits_for_the_checkpoint_and_resumes_to_the_same_weights)
{
	const char *flags[] = { "--workers", "1", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[32], a[32], b[32], job[32], path[128];
	ck_assert_int_eq(make_dataset_csv(&d, 1200, 32, 3, ds), 0);
	ck_assert_int_eq(post_model(&d, 256, a), 201);
	ck_assert_int_eq(post_model(&d, 256, b), 201);
	/* b: never stopped */
	ck_assert_int_eq(submit_job(&d, b, ds, 30, 8, "\"checkpoint_every_epochs\":1", job), 202);
	cJSON *done = wait_job(&d, job, 120);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	cJSON_Delete(done);
	char *straight = weights_text(&d, b);

	/* a: stopped mid-run, after some epoch checkpoints were handed over */
	ck_assert_int_eq(submit_job(&d, a, ds, 30, 8, "\"checkpoint_every_epochs\":1", job), 202);
	snprintf(path, sizeof path, "/v1/jobs/%s", job);
	for (int k = 0; k < 5000; k++) {
		cJSON *j = http_json(&d, "GET", path, NULL, NULL);
		int e = (int)jnum(j, "epoch");
		cJSON_Delete(j);
		if (e >= 3)
			break;
		sleep_ms(2);
	}
	ck_assert_int_eq(nnd_stop(&d, 20), 0);
	int temps = 0;
	int n = count_checkpoints(&d, &temps);
	ck_assert_int_eq(temps, 0);
	if (!log_has(&d, "stays queued")) {
		/* it finished before the signal: nothing to resume */
		fprintf(stderr, "checkpoints: the job ended before the stop\n");
		ck_assert_int_eq(n, 0);
	} else {
		ck_assert_int_eq(n, 1);   /* the stop's checkpoint, complete */
		ck_assert_int_eq(nnd_restart(&d), 0);
		done = wait_job(&d, job, 120);
		ck_assert_ptr_nonnull(done);
		ck_assert_str_eq(jstr(done, "state"), "succeeded");
		cJSON_Delete(done);
		ck_assert(log_has(&d, "resuming from its checkpoint"));
	}
	/* both models started from the same spec and seed */
	char *resumed = weights_text(&d, a);
	ck_assert_msg(strcmp(resumed, straight) == 0, "resumed and uninterrupted weights differ");
	free(resumed);
	free(straight);
	ck_assert_int_eq(nnd_stop(&d, 20), 0);
	ck_assert_int_eq(count_checkpoints(&d, &temps), 0);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("checkpoints");
	TCase *t = tcase_create("checkpoints");
	tcase_set_timeout(t, 240);
	tcase_add_test(t, test_failed_write_found_at_the_end_fails_the_job_and_the_last_epoch_writes_none);
	tcase_add_test(t, test_a_job_within_the_gap_writes_no_checkpoint);
	tcase_add_test(t, test_cancels_during_writes_leave_no_checkpoint);
	tcase_add_test(t, test_graceful_stop_waits_for_the_checkpoint_and_resumes_to_the_same_weights);
	suite_add_tcase(s, t);
	return run_suite(s);
}
