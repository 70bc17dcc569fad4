/*
 * itest_mpi.c - `nnd --mpi` under Open MPI's mpirun (server/ranks.c), ranks
 * on this machine (--oversubscribe; as root also --allow-run-as-root):
 *  - 2 ranks: a job of replicas 2, shards 2 (batch norm, dropout, a
 *    residual block, validation) publishes the same weights, to the byte,
 *    as the same job on 2 threads of a plain daemon; its placement names
 *    ranks 0 and 1; replicas above the ranks are a 422; a job cancelled
 *    mid-run ends cancelled and the next one runs on the ranks;
 *  - 4 ranks: replicas 4 and replicas 2, shards 4, the same bytes as
 *    threads (and as each other);
 *  - rank 1 killed (-9) mid-job: Open MPI ends every rank; the daemon,
 *    started again, resumes the job from its checkpoint; stopped again
 *    gracefully (SIGUSR1 to mpirun) mid-job, it checkpoints and exits 0;
 *    started once more, it reaches the weights of an uninterrupted run;
 *  - ranks whose OpenBLAS cores differ: the daemon refuses to start, says
 *    why, and mpirun exits non-zero.
 * SKIP (77) when mpirun is missing, nnd was built without MPI, or the
 * suite runs against a shared store (tests/pg/run-pg.sh): --mpi refuses it.
 */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static const char *SPEC =
	"{\"name\":\"dp\",\"task\":\"classification\",\"inputs\":8,\"outputs\":3,\"seed\":4,"
	"\"layers\":[{\"type\":\"dense\",\"units\":32,\"activation\":\"relu\"},"
	"{\"type\":\"batch_norm\"},{\"type\":\"dropout\",\"rate\":0.2},"
	"{\"type\":\"residual\",\"layers\":[{\"type\":\"dense\",\"units\":32,\"activation\":\"tanh\"},"
	"{\"type\":\"batch_norm\"}]},{\"type\":\"dense\",\"units\":16,\"activation\":\"relu\"}]}";

#define MPIRUN "mpirun --oversubscribe --allow-run-as-root --mca btl_base_warn_component_unused 0"

static pid_t rank_pid(pid_t mpirun, int rank);

/* The MPI daemon of the running test: a failing test exits without its
 * cleanup, and mpirun would outlive it; this kills its ranks and it. */
static nnd *running;

static void kill_running(void)
{
	if (!running || running->pid <= 0)
		return;
	for (int r = 0; r < 8; r++) {
		pid_t p = rank_pid(running->pid, r);
		if (p > 0)
			kill(p, SIGKILL);
	}
	nnd_kill9(running);
}

/*
 * Under make sanitize (ASAN_OPTIONS set): the ranks' leak check skips what
 * Open MPI keeps from MPI_Init to exit (tests/mpi/lsan.supp), which it can
 * only match with whole stacks (Open MPI's components have no frame
 * pointers: the fast unwinder stops in them). Called around a start.
 */
static char *saved_asan;

static void sanitizer_env(int on)
{
	if (on && getenv("ASAN_OPTIONS")) {
		char supp[4096], opts[4200];
		saved_asan = strdup(getenv("ASAN_OPTIONS"));
		snprintf(opts, sizeof opts, "%s:fast_unwind_on_malloc=0", saved_asan);
		setenv("ASAN_OPTIONS", opts, 1);
		if (realpath("tests/mpi/lsan.supp", supp)) {
			snprintf(opts, sizeof opts, "suppressions=%s:print_suppressions=0", supp);
			setenv("LSAN_OPTIONS", opts, 1);
		}
	} else if (!on && saved_asan) {
		setenv("ASAN_OPTIONS", saved_asan, 1);
		free(saved_asan);
		saved_asan = NULL;
		unsetenv("LSAN_OPTIONS");
	}
}

/* Starts an MPI daemon of np ranks (mpirun is d->pid), or again on the
 * same data when restart. */
static int start_mpi_as(nnd *d, int np, int restart)
{
	static int registered;
	if (!registered++)
		atexit(kill_running);
	running = d;
	char wrap[256];
	snprintf(wrap, sizeof wrap, MPIRUN " -np %d", np);
	setenv("NND_WRAP", wrap, 1);
	sanitizer_env(1);
	const char *flags[] = { "--mpi", NULL };
	int rc = restart ? nnd_restart(d) : nnd_start(d, flags);
	sanitizer_env(0);
	unsetenv("NND_WRAP");
	return rc;
}

static int start_mpi(nnd *d, int np)
{
	return start_mpi_as(d, np, 0);
}

static int restart_mpi(nnd *d, int np)
{
	return start_mpi_as(d, np, 1);
}

/* The graceful stop: SIGUSR1, which mpirun forwards to every rank (rank 0
 * drains, tells the others to stop, all finalize). The exit status. */
static int stop_mpi(nnd *d)
{
	kill(d->pid, SIGUSR1);
	int st = nnd_wait(d, 60);
	if (st < 0)
		nnd_kill9(d);
	return st;
}

/* The pid of mpirun's child that is rank `rank`, or -1. */
static pid_t rank_pid(pid_t mpirun, int rank)
{
	DIR *dir = opendir("/proc");
	struct dirent *e;
	char want[64];
	snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
	pid_t found = -1;
	while (dir && found < 0 && (e = readdir(dir))) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
		FILE *f = fopen(path, "r");
		int ppid = 0;
		if (f) {
			if (fgets(buf, sizeof buf, f)) {
				const char *p = strrchr(buf, ')');
				if (p)
					sscanf(p + 2, "%*c %d", &ppid);
			}
			fclose(f);
		}
		if (ppid != mpirun)
			continue;
		snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		char *env = NULL;
		size_t cap = 0;
		ssize_t n = getdelim(&env, &cap, '\0', f);
		while (n > 0) {
			if (strcmp(env, want) == 0)
				found = pid;
			n = getdelim(&env, &cap, '\0', f);
		}
		free(env);
		fclose(f);
	}
	if (dir)
		closedir(dir);
	return found;
}

static void start(nnd *d, const char *ds, int epochs, const char *extra, char *mdl, char *job)
{
	ck_assert_int_eq(create_model(d, SPEC, mdl), 201);
	char more[256];
	snprintf(more, sizeof more, "\"validation\":{\"fraction\":0.2},%s", extra);
	ck_assert_int_eq(submit_job(d, mdl, ds, epochs, 16, more, job), 202);
}

static cJSON *finish(nnd *d, const char *job)
{
	cJSON *j = wait_job(d, job, 240);
	ck_assert_ptr_nonnull(j);
	char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "error"));
	ck_assert_msg(strcmp(jstr(j, "state"), "succeeded") == 0, "%s: %s", jstr(j, "state"), text);
	free(text);
	return j;
}

/* The weights of a job of `extra` run to its end on d. */
static char *weights_of(nnd *d, const char *ds, int epochs, const char *extra, cJSON **job)
{
	char mdl[64], id[64];
	start(d, ds, epochs, extra, mdl, id);
	cJSON *j = finish(d, id);
	if (job)
		*job = j;
	else
		cJSON_Delete(j);
	return weights_text(d, mdl);
}

static void assert_placement(const cJSON *job, const char *unit, int n)
{
	const cJSON *p = cJSON_GetObjectItem(job, "placement");
	ck_assert_int_eq(cJSON_GetArraySize(p), n);
	for (int i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof want, "%s %d", unit, i);
		ck_assert_str_eq(cJSON_GetArrayItem(p, i)->valuestring, want);
	}
}

/* The same weights on threads of a plain daemon, for each extra. */
static void thread_weights(int n, const char *const *extra, int epochs, char **w)
{
	nnd d = { 0 };
	const char *flags[] = { "--workers", "4", NULL };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[64];
	ck_assert_int_eq(make_dataset_csv(&d, 300, 8, 3, ds), 0);
	for (int i = 0; i < n; i++)
		w[i] = weights_of(&d, ds, epochs, extra[i], NULL);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}

START_TEST(test_two_ranks_same_bytes_as_two_threads)
{
	const char *extra[] = { "\"replicas\":2,\"shards\":2" };
	char *ref;
	thread_weights(1, extra, 3, &ref);

	nnd d = { 0 };
	ck_assert_int_eq(start_mpi(&d, 2), 0);
	char ds[64];
	ck_assert_int_eq(make_dataset_csv(&d, 300, 8, 3, ds), 0);
	cJSON *job;
	char *w = weights_of(&d, ds, 3, extra[0], &job);
	assert_placement(job, "rank", 2);
	cJSON_Delete(job);
	ck_assert_msg(strcmp(ref, w) == 0, "other weights on ranks than on threads");
	ck_assert_msg(log_has(&d, "2 replicas on MPI ranks"), "the job did not run on ranks");

	/* more replicas than ranks: a 422 naming the field */
	char mdl[64];
	ck_assert_int_eq(create_model(&d, SPEC, mdl), 201);
	char body[256];
	snprintf(body, sizeof body,
	         "{\"model\":\"%s\",\"dataset\":\"%s\",\"replicas\":4,\"shards\":4}", mdl, ds);
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", "/v1/jobs", "application/json", body, strlen(body),
	                         &r), 422);
	ck_assert_msg(strstr(r.body, "\"field\":\"replicas\"") != NULL, "%s", r.body);
	resp_free(&r);

	/* a job on the ranks cancelled mid-run ends cancelled, and the ranks
	 * are free again: the next job runs on them to the same bytes */
	char id[64], path[128];
	start(&d, ds, 200, extra[0], mdl, id);
	for (int i = 0; i < 6000 && get_int(&d, "/v1/jobs/%s", id, "step") < 5; i++)
		sleep_ms(10);
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
	ck_assert_int_eq(http_do(&d, "POST", path, NULL, NULL, 0, &r), 202);
	resp_free(&r);
	cJSON *c = wait_job(&d, id, 120);
	ck_assert_str_eq(jstr(c, "state"), "cancelled");
	cJSON_Delete(c);
	char *again = weights_of(&d, ds, 3, extra[0], NULL);
	ck_assert_msg(strcmp(ref, again) == 0, "other weights after a cancelled job");
	free(again);

	ck_assert_int_eq(stop_mpi(&d), 0);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
	free(ref);
	free(w);
}
END_TEST

START_TEST(test_four_ranks_same_bytes_as_threads)
{
	const char *extra[] = { "\"replicas\":4,\"shards\":4", "\"replicas\":2,\"shards\":4" };
	char *ref[2];
	thread_weights(2, extra, 2, ref);
	ck_assert_msg(strcmp(ref[0], ref[1]) == 0, "replicas 4 and 2 of shards 4 differ");

	nnd d = { 0 };
	ck_assert_int_eq(start_mpi(&d, 4), 0);
	char ds[64];
	ck_assert_int_eq(make_dataset_csv(&d, 300, 8, 3, ds), 0);
	for (int i = 0; i < 2; i++) {
		cJSON *job;
		char *w = weights_of(&d, ds, 2, extra[i], &job);
		assert_placement(job, "rank", i == 0 ? 4 : 2);
		cJSON_Delete(job);
		ck_assert_msg(strcmp(ref[i], w) == 0, "%s: other weights on ranks", extra[i]);
		free(w);
	}
	ck_assert_int_eq(stop_mpi(&d), 0);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
	free(ref[0]);
	free(ref[1]);
}
END_TEST

START_TEST(test_rank_killed_mid_job_resumes_to_the_same_weights)
{
	const char *extra = "\"replicas\":2,\"shards\":2";
	const int epochs = 120;   /* long enough that the kill lands mid-job on a quiet machine */
	char *ref;
	thread_weights(1, &extra, epochs, &ref);

	nnd d = { 0 };
	ck_assert_int_eq(start_mpi(&d, 2), 0);
	char ds[64], mdl[64], job[64];
	ck_assert_int_eq(make_dataset_csv(&d, 300, 8, 3, ds), 0);
	start(&d, ds, epochs, extra, mdl, job);
	/* past the first epochs' checkpoints, then kill -9 rank 1 */
	for (int i = 0; i < 6000 && get_int(&d, "/v1/jobs/%s", job, "epoch") < 3; i++)
		sleep_ms(10);
	ck_assert_int_lt(get_int(&d, "/v1/jobs/%s", job, "epoch"), epochs - 1);
	pid_t r1 = rank_pid(d.pid, 1);
	ck_assert_msg(r1 > 0, "cannot find rank 1 among mpirun's children");
	ck_assert_int_eq(kill(r1, SIGKILL), 0);
	/* Open MPI ends the whole world, rank 0 (the daemon) too */
	int st = nnd_wait(&d, 60);
	ck_assert_msg(st > 0, "mpirun: exit status %d after a rank was killed", st);

	ck_assert_int_eq(restart_mpi(&d, 2), 0);
	/* resumed; then a graceful stop mid-job (SIGUSR1 through mpirun): it
	 * checkpoints on every rank at once, stays queued, and mpirun exits 0 */
	int at = get_int(&d, "/v1/jobs/%s", job, "epoch");
	for (int i = 0; i < 6000 && get_int(&d, "/v1/jobs/%s", job, "epoch") < at + 2; i++)
		sleep_ms(10);
	ck_assert_int_lt(get_int(&d, "/v1/jobs/%s", job, "epoch"), epochs - 1);
	ck_assert_int_eq(stop_mpi(&d), 0);
	ck_assert_msg(log_has(&d, "stays queued"), "the job did not stop at a checkpoint");
	ck_assert_int_eq(restart_mpi(&d, 2), 0);
	cJSON *j = finish(&d, job);
	assert_placement(j, "rank", 2);
	cJSON_Delete(j);
	ck_assert_msg(log_has(&d, "resuming from its checkpoint"), "the job did not resume");
	char *w = weights_text(&d, mdl);
	ck_assert_msg(strcmp(ref, w) == 0, "other weights on ranks than on threads");
	ck_assert_int_eq(stop_mpi(&d), 0);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
	free(ref);
	free(w);
}
END_TEST

/* Two OpenBLAS cores every x86-64 CPU with AVX2 runs: the ranks differ. */
START_TEST(test_ranks_with_other_kernels_refuse_to_start)
{
	char dir[] = "/tmp/nnd-itest-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	const char *bin = getenv("NND_BIN") ? getenv("NND_BIN") : "bin";
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
	         "timeout -s KILL 60 " MPIRUN " -np 1 -x OPENBLAS_CORETYPE=Haswell %s/nnd --mpi --listen 127.0.0.1:0 "
	         "--data-dir %s/data : -np 1 -x OPENBLAS_CORETYPE=Prescott %s/nnd --mpi "
	         "--listen 127.0.0.1:0 --data-dir %s/data > %s/log 2>&1",
	         bin, dir, bin, dir, dir);
	sanitizer_env(1);
	int st = system(cmd);
	sanitizer_env(0);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "mpirun exited 0");
	char path[600];
	snprintf(path, sizeof path, "%s/log", dir);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char buf[4096] = "";
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	ck_assert_msg(strstr(buf, "rank 1 runs other kernels than rank 0") &&
	              strstr(buf, "refusing to start") && strstr(buf, "Prescott"), "%s", buf);
	ck_assert_msg(!strstr(buf, "listening on"), "a daemon started: %s", buf);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* 1 when this nnd runs under mpirun with MPI built in. */
static int mpi_usable(void)
{
	if (getenv("NND_TEST_STORE")) {
		printf("SKIP: nnd --mpi keeps its own store, and this run gives every daemon a "
		       "shared one (NND_TEST_STORE)\n");
		return 0;
	}
	if (system("command -v mpirun > /dev/null 2>&1") != 0) {
		printf("SKIP: mpirun is not installed (Debian: openmpi-bin)\n");
		return 0;
	}
	const char *bin = getenv("NND_BIN") ? getenv("NND_BIN") : "bin";
	char cmd[512];
	snprintf(cmd, sizeof cmd, "%s/nnd --mpi --listen 127.0.0.1:0 --data-dir /nonexistent/x "
	         "2>&1 | grep -q 'built without MPI'", bin);
	if (system(cmd) == 0) {
		printf("SKIP: nnd was built without MPI (libopenmpi-dev missing at build time)\n");
		return 0;
	}
	return 1;
}

int main(void)
{
	if (!mpi_usable())
		return 77;
	Suite *s = suite_create("mpi");
	TCase *tc = tcase_create("mpi");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_two_ranks_same_bytes_as_two_threads);
	tcase_add_test(tc, test_four_ranks_same_bytes_as_threads);
	tcase_add_test(tc, test_rank_killed_mid_job_resumes_to_the_same_weights);
	tcase_add_test(tc, test_ranks_with_other_kernels_refuse_to_start);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
