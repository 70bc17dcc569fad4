/*
 * blas.c - which OpenBLAS kernel runs, and picking a faster one.
 *
 * OpenBLAS 0.3.21 may not recognise a recent CPU and fall back to a generic
 * core such as "Prescott" (an SSE3 kernel, several times slower than the
 * AVX-512 one). OPENBLAS_CORETYPE overrides the choice, but only when set
 * before the library initialises, i.e. before main() runs. So
 * nn_blas_autoselect, called first thing in main(), re-executes the program
 * with the variable set, once a child process has shown that the chosen
 * kernel computes a correct sgemm. It never overrides a user's
 * OPENBLAS_CORETYPE and marks the environment (NND_BLAS_AUTOSELECTED) so it
 * never loops.
 *
 * The self-test child is the program itself (/proc/self/exe) started with
 * NND_BLAS_SELFTEST=1: nn_blas_autoselect sees the variable, runs
 * nn_blas_selftest_main() and exits with its status. This is the one place in
 * engine/ that exits, by design: it only happens in that child.
 */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include "nn.h"
#include "sparse_in.h"

extern char **environ;

const char *nn_blas_core(void)
{
	const char *s = openblas_get_corename();
	return s ? s : "unknown";
}

void nn_kernel_ident(char *buf, size_t len)
{
	if (!buf || !len)
		return;
	const char *cfg = openblas_get_config();
	snprintf(buf, len, "OpenBLAS %s, core %s; sparse kernels %s", cfg ? cfg : "?",
	         nn_blas_core(),
	         !nn_sparse_in_supported() ? "off" : nn_sparse_in_simd() ? "avx512" : "plain");
}

int nn_blas_threads(void)
{
	return openblas_get_num_threads();
}

void nn_blas_set_threads(int n)
{
	if (n < 1)
		n = 1;
	openblas_set_num_threads(n);
}

/* Cores that OpenBLAS uses as fallbacks for CPUs it does not know. */
static int core_is_generic(const char *core)
{
	static const char *const generic[] = {
		"prescott", "core2", "nehalem", "penryn", "dunnington", "katmai",
		"coppermine", "northwood", "banias", "atom", "generic", "unknown", NULL
	};
	for (int i = 0; generic[i]; i++)
		if (strcasecmp(core, generic[i]) == 0)
			return 1;
	return 0;
}

/*
 * sgemm of a few awkward shapes (odd sizes, transposes, alpha/beta) against a
 * naive double-precision product. Returns 0 when all match to 1e-4 relative.
 */
int nn_blas_selftest_main(void)
{
	static const int shapes[][5] = {
		/* m, n, k, transA, transB */
		{ 37, 29, 61, 0, 0 }, { 128, 256, 784, 0, 1 }, { 33, 70, 129, 1, 0 }, { 17, 5, 300, 1, 1 }
	};
	nn_rng r;
	nn_rng_seed(&r, 12345);
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
		int ta = shapes[s][3], tb = shapes[s][4];
		float *a = malloc(sizeof(float) * (size_t)m * k);
		float *b = malloc(sizeof(float) * (size_t)k * n);
		float *c = malloc(sizeof(float) * (size_t)m * n);
		if (!a || !b || !c) {
			free(a); free(b); free(c);
			return 2;
		}
		for (int i = 0; i < m * k; i++)
			a[i] = nn_rng_uniform(&r) * 2 - 1;
		for (int i = 0; i < k * n; i++)
			b[i] = nn_rng_uniform(&r) * 2 - 1;
		for (int i = 0; i < m * n; i++)
			c[i] = nn_rng_uniform(&r);
		float *c0 = malloc(sizeof(float) * (size_t)m * n);
		if (!c0) {
			free(a); free(b); free(c);
			return 2;
		}
		memcpy(c0, c, sizeof(float) * (size_t)m * n);
		/* A is m x k (stored k x m when transposed), B is k x n (n x k). */
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
		            m, n, k, 0.75f, a, ta ? m : k, b, tb ? k : n, 0.5f, c, n);
		int bad = 0;
		for (int i = 0; i < m && !bad; i++) {
			for (int j = 0; j < n; j++) {
				double acc = 0, mag = 0;
				for (int p = 0; p < k; p++) {
					double x = ta ? a[p * m + i] : a[i * k + p];
					double y = tb ? b[j * k + p] : b[p * n + j];
					acc += x * y;
					mag += fabs(x * y);
				}
				double want = 0.75 * acc + 0.5 * c0[i * n + j];
				if (!(fabs(want - c[i * n + j]) <= 1e-4 * (mag + 1.0))) {
					bad = 1;
					break;
				}
			}
		}
		free(a); free(b); free(c); free(c0);
		if (bad)
			return 1;
	}
	return 0;
}

/* The environment plus extra "NAME=value" entries, for execve. */
static char **env_with(const char *e1, const char *e2)
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **env = calloc(n + 3, sizeof *env);
	if (!env)
		return NULL;
	size_t j = 0;
	for (size_t i = 0; i < n; i++)
		env[j++] = environ[i];
	env[j++] = (char *)e1;
	env[j++] = (char *)e2;
	env[j] = NULL;
	return env;
}

void nn_blas_autoselect(int argc, char **argv)
{
	static char ct[64];
	const char *target = NULL;

	(void)argc;
	if (getenv("NND_BLAS_SELFTEST"))
		_exit(nn_blas_selftest_main());
	if (getenv("OPENBLAS_CORETYPE") || getenv("NND_BLAS_AUTOSELECTED"))
		return;
	if (!core_is_generic(nn_blas_core()))
		return;
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
		target = "SKYLAKEX";
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		target = "HASWELL";
	if (!target)
		return;
	snprintf(ct, sizeof ct, "OPENBLAS_CORETYPE=%s", target);

	/* Self-test in a child: the same program with the kernel forced. */
	char **env = env_with(ct, "NND_BLAS_SELFTEST=1");
	if (!env)
		return;
	char *child_argv[] = { argv && argv[0] ? argv[0] : (char *)"nnd", NULL };
	pid_t pid = fork();
	if (pid < 0) {
		free(env);
		return;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execve("/proc/self/exe", child_argv, env);
		_exit(127);
	}
	free(env);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return;

	/* Passed: re-execute ourselves with the kernel set. The marker keeps
	 * the new process (and its children) from trying again. */
	if (setenv("OPENBLAS_CORETYPE", target, 1) != 0 ||
	    setenv("NND_BLAS_AUTOSELECTED", target, 1) != 0)
		return;
	if (argv)
		execv("/proc/self/exe", argv);
	/* execv failed: carry on with the generic kernel, and do not leave a
	 * setting behind that would mislead nn_blas_core's readers. */
	unsetenv("OPENBLAS_CORETYPE");
}
