/*
 * itest_faults.c - faults the daemon must ride out, and how it holds its
 * files:
 *  - a full disk (simulated with RLIMIT_FSIZE set on the running daemon
 *    through prlimit(2); the daemon ignores SIGXFSZ): uploads, new model
 *    files, weight versions, checkpoints and store commits fail with a 507
 *    problem "insufficient_storage" (a job: failed with that code), the
 *    store stays consistent, the daemon keeps serving, and everything works
 *    again once the limit is lifted; and the same on a real full
 *    filesystem (a small tmpfs, when the test may mount one);
 *  - a diverging job (lr 1e6) fails with code diverged while another job
 *    on the other worker succeeds and predictions keep answering;
 *  - every file the daemon writes is 0600 and every directory 0700;
 *  - as root, the daemon runs as `nobody` on a data directory owned by
 *    nobody and serves the whole flow;
 *  - a start removes what a crash can leave: temporary files, files with
 *    no row, a model version file whose commit never happened.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* A classification model on 32 inputs, 3 classes, one hidden layer. */
static long post_model(nnd *d, int hidden, char *id)
{
	char body[512];
	snprintf(body, sizeof body,
	         "{\"name\":\"faults\",\"task\":\"classification\",\"inputs\":32,\"outputs\":3,"
	         "\"seed\":5,\"layers\":[{\"type\":\"dense\",\"units\":%d,\"activation\":\"relu\"}]}",
	         hidden);
	return create_model(d, body, id);
}

/* Asserts a problem+json reply with this status and code. */
static void expect_problem(http_resp *r, long status, const char *code)
{
	ck_assert_msg(r->status == status, "status %ld, expected %ld: %s", r->status, status,
	              r->body);
	ck_assert_str_eq(r->ctype, "application/problem+json");
	cJSON *j = cJSON_Parse(r->body);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(jstr(j, "code"), code);
	ck_assert_int_eq((int)jnum(j, "status"), status);
	cJSON_Delete(j);
}

static void set_fsize(nnd *d, rlim_t limit)
{
	struct rlimit rl = { limit, RLIM_INFINITY };   /* the soft limit only */
	ck_assert_int_eq(prlimit(d->pid, RLIMIT_FSIZE, &rl, NULL), 0);
}

static long file_size(const char *dir, const char *name)
{
	char path[600];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Counts entries named .tmp-* under the data directory (one level of
 * subdirectories). */
static int count_temps(const char *data)
{
	const char *subs[] = { "", "datasets", "models", "checkpoints" };
	int n = 0;
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		char dir[600];
		snprintf(dir, sizeof dir, "%s/%s", data, subs[i]);
		DIR *dd = opendir(dir);
		if (!dd)
			continue;
		struct dirent *de;
		while ((de = readdir(dd)) != NULL)
			n += strncmp(de->d_name, ".tmp-", 5) == 0;
		closedir(dd);
	}
	return n;
}

static void check_integrity(nnd *d)
{
	char cmd[700], out[256] = "";
	snprintf(cmd, sizeof cmd, "sqlite3 '%s/nnd.db' 'PRAGMA integrity_check' 2>&1", d->data);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = '\0';
	ck_assert_int_eq(pclose(p), 0);
	ck_assert_str_eq(out, "ok\n");
}

static int64_t total_of(nnd *d, const char *path)
{
	long st;
	cJSON *j = http_json(d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	int64_t t = (int64_t)jnum(j, "total");
	cJSON_Delete(j);
	return t;
}

static void predict_ok(nnd *d, const char *mdl)
{
	char path[128], row[400];
	int n = snprintf(row, sizeof row, "{\"instances\":[[");
	for (int i = 0; i < 32; i++)
		n += snprintf(row + n, sizeof row - (size_t)n, "%s0.5", i ? "," : "");
	snprintf(row + n, sizeof row - (size_t)n, "]]}");
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	http_resp r;
	ck_assert_int_eq(http_do(d, "POST", path, "application/json", row, strlen(row), &r), 200);
	cJSON *j = cJSON_Parse(r.body);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "predictions")), 1);
	cJSON_Delete(j);
	resp_free(&r);
}

START_TEST(test_full_disk_is_507_and_the_daemon_recovers)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	char ds[32], small[32], big[32], job[32], path[128];
	ck_assert_int_eq(make_dataset_csv(&d, 200, 32, 3, ds), 0);
	ck_assert_int_eq(post_model(&d, 8, small), 201);

	/* the limit: 128 KiB past the biggest file so far (the store's own
	 * commits still fit); then sizes well past it */
	long biggest = file_size(d.data, "nnd.db");
	long wal = file_size(d.data, "nnd.db-wal");
	if (wal > biggest)
		biggest = wal;
	rlim_t limit = (rlim_t)biggest + 128 * 1024;
	int hidden = (int)(2 * limit / (4 * 36)) + 1;   /* ~36 parameters per unit */
	ck_assert_int_eq(post_model(&d, hidden, big), 201);
	snprintf(path, sizeof path, "/v1/models/%s/weights", big);
	http_resp w;
	ck_assert_int_eq(http_do(&d, "GET", path, NULL, NULL, 0, &w), 200);
	int64_t models = total_of(&d, "/v1/models");
	set_fsize(&d, limit);

	/* an upload bigger than the limit */
	int rows = (int)(2 * limit / (33 * 4)) + 1;
	char *csv = gen_csv(rows, 32, 3, 9);
	http_resp r;
	http_do(&d, "POST", "/v1/datasets?name=big", "text/csv", csv, strlen(csv), &r);
	expect_problem(&r, 507, "insufficient_storage");
	resp_free(&r);
	/* a new model whose file is bigger than the limit */
	char body[512];
	snprintf(body, sizeof body,
	         "{\"task\":\"classification\",\"inputs\":32,\"outputs\":3,"
	         "\"layers\":[{\"type\":\"dense\",\"units\":%d}]}", hidden);
	http_do(&d, "POST", "/v1/models", "application/json", body, strlen(body), &r);
	expect_problem(&r, 507, "insufficient_storage");
	resp_free(&r);
	/* a new weights version of the big model */
	http_do(&d, "PUT", path, "application/json", w.body, w.len, &r);
	expect_problem(&r, 507, "insufficient_storage");
	resp_free(&r);
	/* a job whose checkpoint is bigger than the limit */
	ck_assert_int_eq(submit_job(&d, big, ds, 3, 50, "\"checkpoint_every_epochs\":1", job), 202);
	cJSON *done = wait_job(&d, job, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "failed");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(done, "error"), "code"), "insufficient_storage");
	cJSON_Delete(done);

	/* still serving, nothing half-written */
	ck_assert_int_eq(http_do(&d, "GET", "/healthz", NULL, NULL, 0, &r), 200);
	resp_free(&r);
	ck_assert_int_eq(http_do(&d, "GET", "/readyz", NULL, NULL, 0, &r), 200);
	resp_free(&r);
	predict_ok(&d, small);
	ck_assert_int_eq(total_of(&d, "/v1/datasets"), 1);
	ck_assert_int_eq(total_of(&d, "/v1/models"), models);
	snprintf(path, sizeof path, "/v1/models/%s", big);
	cJSON *m = http_json(&d, "GET", path, NULL, NULL);
	ck_assert_int_eq((int)jnum(m, "version"), 0);
	cJSON_Delete(m);
	ck_assert_int_eq(count_temps(d.data), 0);
	check_integrity(&d);

	/* a store commit past the limit: 507 too (the file limit now below
	 * the write-ahead log's end) */
	set_fsize(&d, 1);
	char job2[32];
	char jb[256];
	snprintf(jb, sizeof jb, "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":1}", small, ds);
	http_do(&d, "POST", "/v1/jobs", "application/json", jb, strlen(jb), &r);
	expect_problem(&r, 507, "insufficient_storage");
	resp_free(&r);
	ck_assert_int_eq(total_of(&d, "/v1/jobs"), 1);
	predict_ok(&d, small);

	/* space returns: the same requests succeed */
	set_fsize(&d, RLIM_INFINITY);
	ck_assert_int_eq(http_do(&d, "POST", "/v1/datasets?name=big", "text/csv", csv, strlen(csv),
	                         &r), 201);
	resp_free(&r);
	free(csv);
	snprintf(path, sizeof path, "/v1/models/%s/weights", big);
	ck_assert_int_eq(http_do(&d, "PUT", path, "application/json", w.body, w.len, &r), 200);
	m = cJSON_Parse(r.body);
	ck_assert_int_eq((int)jnum(m, "version"), 1);
	cJSON_Delete(m);
	resp_free(&r);
	resp_free(&w);
	ck_assert_int_eq(submit_job(&d, big, ds, 2, 50, "\"checkpoint_every_epochs\":1", job2), 202);
	done = wait_job(&d, job2, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	cJSON_Delete(done);
	predict_ok(&d, big);
	ck_assert_int_eq(count_temps(d.data), 0);
	check_integrity(&d);
	ck_assert_int_eq(nnd_stop(&d, 20), 0);
	check_integrity(&d);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_diverging_job_leaves_other_jobs_and_predictions_alone)
{
	const char *flags[] = { "--workers", "2", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[32], good[32], bad[32], served[32], gj[32], bj[32];
	ck_assert_int_eq(make_dataset_csv(&d, 300, 32, 3, ds), 0);
	ck_assert_int_eq(post_model(&d, 32, good), 201);
	ck_assert_int_eq(post_model(&d, 32, bad), 201);
	ck_assert_int_eq(post_model(&d, 16, served), 201);
	/* a trained model to serve during both jobs */
	ck_assert_int_eq(submit_job(&d, served, ds, 2, 32, NULL, gj), 202);
	cJSON *j = wait_job(&d, gj, 60);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	cJSON_Delete(j);

	ck_assert_int_eq(submit_job(&d, good, ds, 30, 16, NULL, gj), 202);
	char body[512];
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":30,"
	         "\"batch_size\":16,\"optimizer\":{\"type\":\"sgd\",\"lr\":1e6}}", bad, ds);
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", "/v1/jobs", "application/json", body, strlen(body), &r),
	                 202);
	j = cJSON_Parse(r.body);
	snprintf(bj, sizeof bj, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	resp_free(&r);
	/* predictions answer while both run */
	for (int i = 0; i < 20; i++) {
		predict_ok(&d, served);
		sleep_ms(5);
	}
	cJSON *b = wait_job(&d, bj, 60);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(jstr(b, "state"), "failed");
	ck_assert_str_eq(jstr(cJSON_GetObjectItem(b, "error"), "code"), "diverged");
	cJSON_Delete(b);
	predict_ok(&d, served);
	cJSON *g = wait_job(&d, gj, 120);
	ck_assert_ptr_nonnull(g);
	ck_assert_str_eq(jstr(g, "state"), "succeeded");
	ck_assert_int_eq((int)jnum(g, "model_version"), 1);
	double loss = jnum(cJSON_GetObjectItem(g, "metrics"), "train_loss");
	ck_assert(loss > 0 && loss < 1.0);   /* separable classes: it learned */
	cJSON_Delete(g);
	predict_ok(&d, good);
	predict_ok(&d, served);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

/* Every entry under dir: files 0600, directories 0700, owned by uid. */
static int check_modes(const char *dir, uid_t uid)
{
	int n = 0;
	DIR *dd = opendir(dir);
	ck_assert_ptr_nonnull(dd);
	struct dirent *de;
	while ((de = readdir(dd)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char path[1200];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		ck_assert_int_eq(lstat(path, &st), 0);
		ck_assert_msg(st.st_uid == uid, "%s owned by %u", path, (unsigned)st.st_uid);
		if (S_ISDIR(st.st_mode)) {
			ck_assert_msg((st.st_mode & 07777) == 0700, "%s: mode %o", path,
			              (unsigned)(st.st_mode & 07777));
			n += check_modes(path, uid);
		} else {
			ck_assert_msg(S_ISREG(st.st_mode), "%s: not a regular file", path);
			ck_assert_msg((st.st_mode & 07777) == 0600, "%s: mode %o", path,
			              (unsigned)(st.st_mode & 07777));
		}
		n++;
	}
	closedir(dd);
	return n;
}

/* Data set, model, a checkpointed job, a new version, predictions. */
static void small_flow(nnd *d)
{
	char ds[32], mdl[32], job[32];
	ck_assert_int_eq(make_dataset_csv(d, 200, 32, 3, ds), 0);
	ck_assert_int_eq(post_model(d, 16, mdl), 201);
	ck_assert_int_eq(submit_job(d, mdl, ds, 3, 20, "\"checkpoint_every_epochs\":1", job), 202);
	cJSON *j = wait_job(d, job, 60);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	cJSON_Delete(j);
	predict_ok(d, mdl);
}

START_TEST(test_files_are_owner_only)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	small_flow(&d);
	/* a job still running at the kill leaves its checkpoint behind (its
	 * writer thread writes it while training goes on: wait for the file).
	 * The job asks for the most epochs allowed: however fast or slow the
	 * daemon runs (valgrind), it is still training at the kill. */
	char ds[32], mdl[32], job[32];
	ck_assert_int_eq(make_dataset_csv(&d, 300, 32, 3, ds), 0);
	ck_assert_int_eq(post_model(&d, 128, mdl), 201);
	ck_assert_int_eq(submit_job(&d, mdl, ds, 100000, 8, "\"checkpoint_every_epochs\":1", job), 202);
	char path[128], ck[700], state[32] = "";
	struct stat st;
	snprintf(path, sizeof path, "/v1/jobs/%s", job);
	snprintf(ck, sizeof ck, "%s/checkpoints/%s.ckpt", d.data, job);
	int e = 0, seen = 0;
	for (int i = 0; i < 12000 && !seen; i++) {   /* 120 s and more */
		cJSON *j = http_json(&d, "GET", path, NULL, NULL);
		e = (int)jnum(j, "epoch");
		snprintf(state, sizeof state, "%s", jstr(j, "state"));
		cJSON_Delete(j);
		seen = e >= 2 && stat(ck, &st) == 0;
		if (!seen)
			sleep_ms(10);
	}
	ck_assert_msg(seen, "no checkpoint at %s while the job ran (last seen: %s, epoch %d)", ck,
	              state, e);
	nnd_kill9(&d);
	ck_assert_int_eq(stat(d.data, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	int n = check_modes(d.data, getuid());
	ck_assert_int_eq(stat(ck, &st), 0);
	ck_assert_int_ge(n, 10);   /* db, wal, shm, 3 dirs, data sets, models, checkpoint */
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

/* May this user execute path (every directory on the way searchable)? */
static int can_exec_as(const char *path, uid_t uid, gid_t gid)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(2);
		_exit(access(path, X_OK) == 0 ? 0 : 1);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return 0;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

START_TEST(test_runs_as_nobody)
{
	if (getuid() != 0) {
		fprintf(stderr, "faults: not root, skipping the unprivileged-user test\n");
		return;
	}
	struct passwd *pw = getpwnam("nobody");
	ck_assert_ptr_nonnull(pw);
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	/* a checkout under a private directory (/root/...) is out of nobody's
	 * reach: then the binary runs from a copy nobody can read */
	const char *bin = getenv("NND_BIN") && *getenv("NND_BIN") ? getenv("NND_BIN") : "bin";
	char exe[600], copy[64] = "";
	snprintf(exe, sizeof exe, "%s/nnd", bin);
	if (!can_exec_as(exe, uid, gid)) {
		snprintf(copy, sizeof copy, "/tmp/nnd-nobody-XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(copy));
		ck_assert_int_eq(chmod(copy, 0755), 0);
		char cmd[800];
		snprintf(cmd, sizeof cmd, "cp '%s' '%s/nnd'", exe, copy);
		ck_assert_int_eq(system(cmd), 0);
		setenv("NND_BIN", copy, 1);
		fprintf(stderr, "faults: running a copy of %s as nobody\n", exe);
	}
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start_as(&d, NULL, uid, gid), 0);
	/* the process runs as nobody, with no supplementary groups */
	char proc[64], line[256];
	snprintf(proc, sizeof proc, "/proc/%d/status", (int)d.pid);
	FILE *f = fopen(proc, "r");
	ck_assert_ptr_nonnull(f);
	unsigned ruid = 1, euid = 1, suid = 1;
	int have_uid = 0, groups_empty = 0;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "Uid: %u %u %u", &ruid, &euid, &suid) == 3)
			have_uid = 1;
		if (strncmp(line, "Groups:", 7) == 0)
			groups_empty = strspn(line + 7, " \t\n") == strlen(line + 7);
	}
	fclose(f);
	ck_assert_int_eq(have_uid, 1);
	ck_assert_uint_eq(ruid, uid);
	ck_assert_uint_eq(euid, uid);
	ck_assert_int_eq(groups_empty, 1);
	small_flow(&d);
	ck_assert_int_eq(nnd_stop(&d, 20), 0);
	check_modes(d.data, uid);
	/* and it starts again on its own data */
	ck_assert_int_eq(nnd_restart(&d), 0);
	ck_assert_int_eq(total_of(&d, "/v1/jobs"), 1);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
	if (copy[0]) {
		char cmd[200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", copy);
		ck_assert_int_eq(system(cmd), 0);
	}
}
END_TEST

/* Files a crash can leave: a version file whose commit never happened, a
 * temporary file, a data set file without its row. The next start removes
 * them and keeps every file a row names. */
START_TEST(test_start_removes_what_a_crash_left)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	char ds[32], mdl[32];
	ck_assert_int_eq(make_dataset_csv(&d, 50, 32, 3, ds), 0);
	ck_assert_int_eq(post_model(&d, 8, mdl), 201);
	ck_assert_int_eq(nnd_stop(&d, 20), 0);
	const char *planted[] = { "models/%s-v1.model", "models/.tmp-0badf00d-%s-v1.model",
	                          "datasets/ds_00000000000000ff.data", "checkpoints/%s.ckpt" };
	char paths[4][700];
	for (int i = 0; i < 4; i++) {
		char rel[200];
		snprintf(rel, sizeof rel, planted[i], mdl);
		snprintf(paths[i], sizeof paths[i], "%s/%s", d.data, rel);
		FILE *f = fopen(paths[i], "w");
		ck_assert_ptr_nonnull(f);
		fputs("left by a crash", f);
		fclose(f);
	}
	ck_assert_int_eq(nnd_restart(&d), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(access(paths[i], F_OK) != 0, "%s is still there", paths[i]);
	char keep[700];
	snprintf(keep, sizeof keep, "%s/models/%s-v0.model", d.data, mdl);
	ck_assert_int_eq(access(keep, F_OK), 0);
	snprintf(keep, sizeof keep, "%s/datasets/%s.data", d.data, ds);
	ck_assert_int_eq(access(keep, F_OK), 0);
	predict_ok(&d, mdl);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

/* A real full filesystem, when the test may mount one (root): a 3 MiB
 * tmpfs as the data directory, filled by uploads. Every refusal is a 507
 * (store commits fail with SQLITE_FULL there, files with ENOSPC), reads
 * and predictions go on, and after the tmpfs grows everything works. */
START_TEST(test_full_filesystem_is_507_and_recovers_when_it_grows)
{
	char mnt[64] = "/tmp/nnd-full-XXXXXX", cmd[300];
	ck_assert_ptr_nonnull(mkdtemp(mnt));
	snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=3m,mode=0700 tmpfs '%s' 2>/dev/null", mnt);
	if (getuid() != 0 || system(cmd) != 0) {
		fprintf(stderr, "faults: cannot mount a tmpfs, skipping the full-filesystem test\n");
		rmdir(mnt);
		return;
	}
	char data[128];
	snprintf(data, sizeof data, "%s/data", mnt);
	const char *flags[] = { "--data-dir", data, NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	snprintf(d.data, sizeof d.data, "%s", data);   /* for count_temps and sqlite3 */
	char ds[32], mdl[32], job[32];
	ck_assert_int_eq(make_dataset_csv(&d, 100, 32, 3, ds), 0);
	ck_assert_int_eq(post_model(&d, 8, mdl), 201);

	/* fill it: 1000-row data sets (~130 KB each) until refused */
	char *csv = gen_csv(1000, 32, 3, 4);
	int created = 0, refused = 0;
	for (int i = 0; i < 40 && refused < 3; i++) {
		http_resp r;
		long st = http_do(&d, "POST", "/v1/datasets?name=fill", "text/csv", csv, strlen(csv), &r);
		if (st == 201)
			created++;
		else {
			expect_problem(&r, 507, "insufficient_storage");
			refused++;
		}
		resp_free(&r);
	}
	ck_assert_int_gt(created, 0);
	ck_assert_int_eq(refused, 3);
	/* more writes while full: 2xx or 507, never anything else */
	int full_models = 0, full_jobs = 0;
	for (int i = 0; i < 5; i++) {
		char id[32];
		http_resp r;
		long st = post_model(&d, 8, id);
		ck_assert_msg(st == 201 || st == 507, "model create while full: %ld", st);
		full_models += st == 507;
		st = submit_job(&d, mdl, ds, 1, 50, NULL, id);
		ck_assert_msg(st == 202 || st == 507, "job submit while full: %ld", st);
		full_jobs += st == 507;
		ck_assert_int_eq(http_do(&d, "GET", "/healthz", NULL, NULL, 0, &r), 200);
		resp_free(&r);
	}
	fprintf(stderr, "faults: full tmpfs: %d data sets fitted, then 507; while full %d of 5 "
	        "model creates and %d of 5 job submits got 507\n", created, full_models, full_jobs);
	predict_ok(&d, mdl);
	ck_assert_int_eq(total_of(&d, "/v1/datasets"), 1 + created);
	ck_assert_int_eq(count_temps(data), 0);
	check_integrity(&d);

	/* space returns */
	snprintf(cmd, sizeof cmd, "mount -o remount,size=64m '%s'", mnt);
	ck_assert_int_eq(system(cmd), 0);
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", "/v1/datasets?name=after", "text/csv", csv, strlen(csv),
	                         &r), 201);
	resp_free(&r);
	free(csv);
	ck_assert_int_eq(submit_job(&d, mdl, ds, 2, 20, "\"checkpoint_every_epochs\":1", job), 202);
	cJSON *done = wait_job(&d, job, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	cJSON_Delete(done);
	/* the jobs accepted while full reach a final state too (one whose
	 * end could not be recorded while full is recorded now) */
	cJSON *list = http_json(&d, "GET", "/v1/jobs", NULL, NULL);
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(list, "jobs")) {
		cJSON *j = wait_job(&d, jstr(it, "id"), 30);
		ck_assert_msg(j != NULL, "job %s never ended", jstr(it, "id"));
		int ok = strcmp(jstr(j, "state"), "succeeded") == 0 ||
		         (strcmp(jstr(j, "state"), "failed") == 0 &&
		          strcmp(jstr(cJSON_GetObjectItem(j, "error"), "code"),
		                 "insufficient_storage") == 0);
		ck_assert_msg(ok, "job %s: %s %s", jstr(j, "id"), jstr(j, "state"),
		              jstr(cJSON_GetObjectItem(j, "error"), "code"));
		cJSON_Delete(j);
	}
	cJSON_Delete(list);
	ck_assert_int_eq(nnd_stop(&d, 20), 0);
	check_integrity(&d);
	snprintf(cmd, sizeof cmd, "umount '%s' && rmdir '%s'", mnt, mnt);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("faults");
	TCase *t = tcase_create("faults");
	tcase_set_timeout(t, 180);
	tcase_add_test(t, test_full_disk_is_507_and_the_daemon_recovers);
	tcase_add_test(t, test_diverging_job_leaves_other_jobs_and_predictions_alone);
	tcase_add_test(t, test_files_are_owner_only);
	tcase_add_test(t, test_runs_as_nobody);
	tcase_add_test(t, test_start_removes_what_a_crash_left);
	tcase_add_test(t, test_full_filesystem_is_507_and_recovers_when_it_grows);
	suite_add_tcase(s, t);
	return run_suite(s);
}
