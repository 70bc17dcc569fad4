/*
 * itest_crash.c - crash consistency under kill -9 at a random moment.
 *
 * Each round starts the daemon on the same data directory, runs uploads
 * (CSV and JSON data sets, models, new weight versions, data-set deletes)
 * and training jobs from two threads, and SIGKILLs it at a random moment
 * while a long job runs (at a random step of it, plus a few ms). Then it
 * checks, before and after a restart:
 *  - the SQLite file passes PRAGMA integrity_check;
 *  - every object acknowledged with a 2xx is there and readable (data sets
 *    with their row count, models at or past the acknowledged version with
 *    readable weights, acknowledged deletes stay deleted);
 *  - no temporary file remains and every file under the data directory is
 *    named by a row (data sets, model versions, checkpoints of unfinished
 *    jobs only);
 *  - every acknowledged job, the interrupted ones included, resumes and
 *    ends succeeded with a published version and a whole metric history
 *    (the long first job of a round is still running at the kill, unless
 *    this process starved past its end: a job per round is unfinished in
 *    the store and must resume).
 *
 * CRASH_ROUNDS (default 3, as in make check; .ci runs 20) sets the rounds,
 * CRASH_SEED the random seed (printed, to replay a failure).
 */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* ACK_DELETING: a delete sent, maybe unanswered (either outcome is right) */
enum { ACK_DATASET, ACK_DELETING, ACK_DELETED, ACK_MODEL, ACK_JOB };

typedef struct ack {
	int kind;
	char id[32];
	int value;            /* rows of a data set, version of a model, epochs of a job */
} ack;

#define MAX_ACKS 8192

static struct {
	pthread_mutex_t mu;
	ack a[MAX_ACKS];
	int n;
} acks = { PTHREAD_MUTEX_INITIALIZER, { { 0, "", 0 } }, 0 };

static volatile int stop_flag;
static nnd D;
static char base_ds[32];
static char first_job[32];
static unsigned rng_state;

/* Thread-safe small generator for the workers (their own state). */
static unsigned next_rand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 8) & 0xffffff;
}

static void record(int kind, const char *id, int value)
{
	pthread_mutex_lock(&acks.mu);
	if (acks.n < MAX_ACKS) {
		acks.a[acks.n].kind = kind;
		snprintf(acks.a[acks.n].id, sizeof acks.a[acks.n].id, "%s", id);
		acks.a[acks.n].value = value;
		acks.n++;
	}
	pthread_mutex_unlock(&acks.mu);
}

/* Model for uploads and jobs: 32 inputs, 3 classes. */
static long post_model(nnd *d, int hidden, int seed, char *id)
{
	char body[512];
	snprintf(body, sizeof body,
	         "{\"name\":\"crash\",\"task\":\"classification\",\"inputs\":32,\"outputs\":3,"
	         "\"seed\":%d,\"layers\":[{\"type\":\"dense\",\"units\":%d,\"activation\":\"relu\"}]}",
	         seed, hidden);
	return create_model(d, body, id);
}

/* Uploads, new weight versions and deletes until stop_flag (or until the
 * daemon is gone). Only 2xx replies are recorded. */
static void *uploader(void *arg)
{
	unsigned s = (unsigned)(uintptr_t)arg;
	char own[64][32];
	int n_own = 0;
	for (int i = 0; !stop_flag; i++) {
		/* CSV and JSON uploads in turn */
		int rows = 40 + (int)(next_rand(&s) % 80);
		http_resp r;
		long st;
		if (i % 2 == 0) {
			char *csv = gen_csv(rows, 32, 3, next_rand(&s));
			st = http_do(&D, "POST", "/v1/datasets?name=up", "text/csv", csv, strlen(csv), &r);
			free(csv);
		} else {
			cJSON *body = gen_json(rows, 32, 3, next_rand(&s));
			char *text = cJSON_PrintUnformatted(body);
			cJSON_Delete(body);
			st = http_do(&D, "POST", "/v1/datasets", "application/json", text, strlen(text),
			             &r);
			free(text);
		}
		if (st == 201) {
			cJSON *j = cJSON_Parse(r.body);
			record(ACK_DATASET, jstr(j, "id"), rows);
			if (n_own < 64)
				snprintf(own[n_own++], 32, "%s", jstr(j, "id"));
			cJSON_Delete(j);
		}
		resp_free(&r);
		if (st == 0)
			break;   /* the daemon is gone */

		if (i % 3 == 2 && n_own > 0) {
			char path[96];
			const char *id = own[--n_own];
			snprintf(path, sizeof path, "/v1/datasets/%s", id);
			record(ACK_DELETING, id, 0);
			if (http_do(&D, "DELETE", path, NULL, NULL, 0, &r) == 204)
				record(ACK_DELETED, id, 0);
			resp_free(&r);
		}

		char mdl[32];
		if (post_model(&D, 16, (int)(next_rand(&s) % 1000), mdl) == 201) {
			record(ACK_MODEL, mdl, 0);
			/* a new version: the weights read back and put again */
			char path[96];
			snprintf(path, sizeof path, "/v1/models/%s/weights", mdl);
			if (http_do(&D, "GET", path, NULL, NULL, 0, &r) == 200) {
				http_resp p;
				if (http_do(&D, "PUT", path, "application/json", r.body, r.len, &p) == 200) {
					cJSON *j = cJSON_Parse(p.body);
					record(ACK_MODEL, mdl, (int)jnum(j, "version"));
					cJSON_Delete(j);
				}
				resp_free(&p);
			}
			resp_free(&r);
		}
	}
	return NULL;
}

static long post_job(const char *mdl, int epochs, char *id)
{
	return submit_job(&D, mdl, base_ds, epochs, 8,
	                  "\"checkpoint_every_epochs\":1,\"log_every_steps\":20", id);
}

/* Submits a few training jobs on fresh models until stop_flag. */
static void *submitter(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3 && !stop_flag; i++) {
		char mdl[32], job[32];
		if (post_model(&D, 64, 100 + i, mdl) != 201)
			break;
		record(ACK_MODEL, mdl, 0);
		if (post_job(mdl, 3, job) != 202)
			break;
		record(ACK_JOB, job, 3);
		for (int k = 0; k < 10 && !stop_flag; k++)
			sleep_ms(30);
	}
	return NULL;
}

/* The output of a sqlite3 CLI query on the store (malloc'd, "\n" first
 * so every line can be found as "\n<line>\n"), or NULL. */
static char *sql_out(const char *sql)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "sqlite3 '%s/nnd.db' \"%s\" 2>&1", D.data, sql);
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	size_t cap = 4096, n = 1;
	char *out = malloc(cap);
	out[0] = '\n';
	size_t got;
	while ((got = fread(out + n, 1, cap - n - 1, p)) > 0) {
		n += got;
		if (cap - n < 1024) {
			cap *= 2;
			out = realloc(out, cap);
		}
	}
	out[n] = '\0';
	if (pclose(p) != 0) {
		fprintf(stderr, "sqlite3: %s\n", out);
		free(out);
		return NULL;
	}
	return out;
}

static void check_integrity(void)
{
	char *out = sql_out("PRAGMA integrity_check");
	ck_assert_ptr_nonnull(out);
	ck_assert_msg(strcmp(out, "\nok\n") == 0, "integrity_check: %s", out);
	free(out);
}

static int has_line(const char *rows, const char *line)
{
	char key[300];
	snprintf(key, sizeof key, "\n%s\n", line);
	return strstr(rows, key) != NULL;
}

/* No temporary files anywhere; every stored file named by a row: data
 * sets by their id, model files by (model, version), checkpoints by an
 * unfinished job. */
static void check_files(void)
{
	const char *subs[] = { "", "datasets", "models", "checkpoints" };
	const char *sql[] = { NULL, "SELECT id || '.data' FROM datasets",
	                      "SELECT model || '-v' || version || '.model' FROM model_versions",
	                      "SELECT id || '.ckpt' FROM jobs WHERE state<2" };
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		char dir[512];
		snprintf(dir, sizeof dir, "%s/%s", D.data, subs[i]);
		char *rows = sql[i] ? sql_out(sql[i]) : NULL;
		ck_assert(!sql[i] || rows);
		DIR *dd = opendir(dir);
		ck_assert_ptr_nonnull(dd);
		struct dirent *de;
		while ((de = readdir(dd)) != NULL) {
			const char *nm = de->d_name;
			if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
				continue;
			ck_assert_msg(strncmp(nm, ".tmp-", 5) != 0, "temporary file %s/%s", dir, nm);
			if (rows)
				ck_assert_msg(has_line(rows, nm), "orphan file %s/%s", dir, nm);
		}
		closedir(dd);
		free(rows);
	}
}

static int was_deleted(const char *id)
{
	for (int k = 0; k < acks.n; k++)
		if (acks.a[k].kind == ACK_DELETING && strcmp(acks.a[k].id, id) == 0)
			return 1;
	return 0;
}

/* Every acknowledged object is there and readable. */
static void check_acks(void)
{
	for (int i = 0; i < acks.n; i++) {
		ack *a = &acks.a[i];
		char path[128];
		long st;
		cJSON *j;
		switch (a->kind) {
		case ACK_DATASET:
			snprintf(path, sizeof path, "/v1/datasets/%s", a->id);
			j = http_json(&D, "GET", path, NULL, &st);
			if (st == 404) {
				/* only when a delete was sent */
				ck_assert_msg(was_deleted(a->id), "data set %s lost", a->id);
			} else {
				ck_assert_msg(st == 200, "data set %s: %ld", a->id, st);
				ck_assert_int_eq((int)jnum(j, "rows"), a->value);
			}
			cJSON_Delete(j);
			break;
		case ACK_DELETING:
			break;
		case ACK_DELETED:
			snprintf(path, sizeof path, "/v1/datasets/%s", a->id);
			j = http_json(&D, "GET", path, NULL, &st);
			ck_assert_msg(st == 404, "deleted data set %s is back: %ld", a->id, st);
			cJSON_Delete(j);
			break;
		case ACK_MODEL:
			snprintf(path, sizeof path, "/v1/models/%s", a->id);
			j = http_json(&D, "GET", path, NULL, &st);
			ck_assert_msg(st == 200, "model %s: %ld", a->id, st);
			ck_assert_int_ge((int)jnum(j, "version"), a->value);
			cJSON_Delete(j);
			snprintf(path, sizeof path, "/v1/models/%s/weights", a->id);
			j = http_json(&D, "GET", path, NULL, &st);
			ck_assert_int_eq(st, 200);
			ck_assert_ptr_nonnull(cJSON_GetObjectItem(j, "layers"));
			cJSON_Delete(j);
			break;
		case ACK_JOB:
			snprintf(path, sizeof path, "/v1/jobs/%s", a->id);
			j = http_json(&D, "GET", path, NULL, &st);
			ck_assert_msg(st == 200, "job %s: %ld", a->id, st);
			cJSON_Delete(j);
			break;
		}
	}
}

/* A finished job's metric history is whole: one record per epoch in
 * order, logged steps strictly increasing up to the last step (75 steps an
 * epoch, one logged every 20), however often it was interrupted. */
static void check_history(const char *job, int epochs)
{
	char path[128];
	long st;
	snprintf(path, sizeof path, "/v1/jobs/%s/metrics", job);
	cJSON *m = http_json(&D, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	const cJSON *ep = cJSON_GetObjectItem(m, "epochs");
	ck_assert_int_eq(cJSON_GetArraySize(ep), epochs);
	int i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, ep)
		ck_assert_int_eq((int)jnum(e, "epoch"), i++);
	const cJSON *steps = cJSON_GetObjectItem(m, "steps");
	int last = 0, n = 0;
	cJSON_ArrayForEach(e, steps) {
		int k = (int)jnum(e, "step");
		ck_assert_msg(k > last, "job %s: step %d after %d", job, k, last);
		last = k;
		n++;
	}
	ck_assert_int_ge(n, epochs * 75 / 20);
	ck_assert_int_ge(last, epochs * 75 / 20 * 20);
	cJSON_Delete(m);
}

static void finish_jobs(void)
{
	for (int i = 0; i < acks.n; i++) {
		if (acks.a[i].kind != ACK_JOB)
			continue;
		cJSON *j = wait_job(&D, acks.a[i].id, 120);
		ck_assert_msg(j != NULL, "job %s did not finish", acks.a[i].id);
		ck_assert_msg(strcmp(jstr(j, "state"), "succeeded") == 0, "job %s: %s %s",
		              acks.a[i].id, jstr(j, "state"),
		              jstr(cJSON_GetObjectItem(j, "error"), "detail"));
		ck_assert_int_ge((int)jnum(j, "model_version"), 1);
		check_history(acks.a[i].id, acks.a[i].value);
		char path[128];
		long st;
		snprintf(path, sizeof path, "/v1/models/%s/weights", jstr(j, "model"));
		cJSON_Delete(http_json(&D, "GET", path, NULL, &st));
		ck_assert_int_eq(st, 200);
		cJSON_Delete(j);
	}
}

/* Waits until the job has passed step `step` while running: 1, or 0 when
 * it ended first (this process starved on a loaded machine). */
static int wait_step(const char *job, int step)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s", job);
	for (int i = 0; i < 20000; i++) {
		long st;
		cJSON *j = http_json(&D, "GET", path, NULL, &st);
		int past = strcmp(jstr(j, "state"), "running") == 0 && jnum(j, "step") >= step;
		const char *state = jstr(j, "state");
		int over = strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0;
		cJSON_Delete(j);
		if (past)
			return 1;
		if (over)
			return 0;
		sleep_ms(2);
	}
	ck_abort_msg("job %s never reached step %d", job, step);
	return 0;
}

START_TEST(test_kill9_at_random_moments_loses_nothing_acknowledged)
{
	const char *r_env = getenv("CRASH_ROUNDS");
	const char *s_env = getenv("CRASH_SEED");
	int rounds = r_env && atoi(r_env) > 0 ? atoi(r_env) : 3;
	unsigned seed = s_env ? (unsigned)strtoul(s_env, NULL, 10)
	                      : (unsigned)time(NULL) ^ (unsigned)getpid();
	rng_state = seed;
	fprintf(stderr, "crash: %d rounds, CRASH_SEED=%u\n", rounds, seed);

	ck_assert_int_eq(nnd_start(&D, NULL), 0);
	ck_assert_int_eq(make_dataset_csv(&D, 600, 32, 3, base_ds), 0);
	record(ACK_DATASET, base_ds, 600);
	int resumed = 0;
	for (int round = 0; round < rounds; round++) {
		if (round > 0)
			ck_assert_int_eq(nnd_restart(&D), 0);
		stop_flag = 0;
		/* one long job first, so a job is running when the kill comes */
		char mdl[32];
		ck_assert_int_eq(post_model(&D, 256, round, mdl), 201);
		record(ACK_MODEL, mdl, 0);
		ck_assert_int_eq(post_job(mdl, 100, first_job), 202);
		record(ACK_JOB, first_job, 100);
		pthread_t up, sub;
		pthread_create(&up, NULL, uploader, (void *)(uintptr_t)next_rand(&rng_state));
		pthread_create(&sub, NULL, submitter, NULL);
		/* the moment: a random step in the first half of the long job
		 * (75 steps an epoch, 100 epochs), then a random few ms */
		int step = 1 + (int)(next_rand(&rng_state) % 3750);
		int delay = (int)(next_rand(&rng_state) % 20);
		int caught = wait_step(first_job, step);
		sleep_ms(delay);
		nnd_kill9(&D);
		stop_flag = 1;
		pthread_join(up, NULL);
		pthread_join(sub, NULL);

		check_integrity();
		char *out = sql_out("SELECT count(*) FROM jobs WHERE state<2");
		ck_assert_ptr_nonnull(out);
		int unfinished = atoi(out + 1);
		free(out);
		ck_assert_int_eq(nnd_restart(&D), 0);
		check_acks();
		resumed += unfinished;
		fprintf(stderr, "crash: round %d: killed at step %d + %d ms, %d objects acknowledged, "
		        "%d jobs unfinished\n", round + 1, step, delay, acks.n, unfinished);
		if (caught && unfinished < 1) {
			out = sql_out("SELECT id, state, epoch, error FROM jobs");
			ck_abort_msg("no job was unfinished at the kill: %s", out);
		}
		finish_jobs();
		/* files are checked at rest: a running job writes temporary
		 * checkpoint files, and a finished one removes its checkpoint
		 * just after its final state shows */
		ck_assert_int_eq(nnd_stop(&D, 30), 0);
		check_files();
		check_integrity();
	}
	fprintf(stderr, "crash: %d rounds passed, %d interrupted jobs resumed\n", rounds, resumed);
	ck_assert_int_ge(resumed, 1);
	ck_assert_int_eq(nnd_cleanup(&D), 0);
}
END_TEST

int main(void)
{
	const char *r_env = getenv("CRASH_ROUNDS");
	int rounds = r_env && atoi(r_env) > 0 ? atoi(r_env) : 3;
	Suite *s = suite_create("crash");
	TCase *t = tcase_create("crash");
	tcase_set_timeout(t, 60 + 60 * rounds);
	tcase_add_test(t, test_kill9_at_random_moments_loses_nothing_acknowledged);
	suite_add_tcase(s, t);
	return run_suite(s);
}
