/*
 * replicas.c - the threads that carry a data-parallel job (see replicas.h).
 *
 * The job's worker is replica 0; replicas 1..n-1 are threads of their own
 * that wait for a phase, run their tasks (task i belongs to replica
 * i * n / tasks, nn.h's rule), and report back. A training step has a few
 * phases of a few hundred microseconds each, so both sides spin briefly on
 * the phase counter before they sleep on a condition variable: a wake-up
 * through the kernel costs tens of microseconds, a short spin far less,
 * and a long one would take a core from the other jobs.
 *
 * Invariants: tasks, gen and pending change only under mu; gen counts the
 * phases handed out; pending is the helpers still inside the current phase
 * (0 between phases); a helper reads tasks only after seeing a new gen.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>

#include "replicas.h"

#define SPINS 4000

struct replicas {
	int n;
	pthread_t *th;
	int started;          /* helper threads running */
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	const nn_tasks *tasks;
	uint64_t gen;
	int pending;
	int stop;
	nn_parallel par;
};

typedef struct helper_arg {
	replicas *rp;
	int r;
} helper_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void run_mine(const nn_tasks *t, int r, int n)
{
	for (int i = 0; i < t->n; i++)
		if ((int)((int64_t)i * n / t->n) == r)
			t->fn(t->arg, i);
}

static void *helper_main(void *arg)
{
	helper_arg *h = arg;
	replicas *rp = h->rp;
	int r = h->r;
	free(h);
	prctl(PR_SET_NAME, "nnd-train");
	uint64_t seen = 0;
	for (;;) {
		for (int s = 0; s < SPINS && __atomic_load_n(&rp->gen, __ATOMIC_ACQUIRE) == seen &&
		                !__atomic_load_n(&rp->stop, __ATOMIC_ACQUIRE); s++)
			cpu_relax();
		pthread_mutex_lock(&rp->mu);
		while (rp->gen == seen && !rp->stop)
			pthread_cond_wait(&rp->go, &rp->mu);
		if (rp->stop) {
			pthread_mutex_unlock(&rp->mu);
			return NULL;
		}
		seen = rp->gen;
		const nn_tasks *t = rp->tasks;
		pthread_mutex_unlock(&rp->mu);
		run_mine(t, r, rp->n);
		pthread_mutex_lock(&rp->mu);
		if (--rp->pending == 0)
			pthread_cond_signal(&rp->done);
		pthread_mutex_unlock(&rp->mu);
	}
}

static void carry(void *ctx, const nn_tasks *t)
{
	replicas *rp = ctx;
	if (rp->n == 1) {
		run_mine(t, 0, 1);
		return;
	}
	pthread_mutex_lock(&rp->mu);
	rp->tasks = t;
	rp->pending = rp->n - 1;
	__atomic_store_n(&rp->gen, rp->gen + 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&rp->go);
	pthread_mutex_unlock(&rp->mu);
	run_mine(t, 0, rp->n);
	for (int s = 0; s < SPINS && __atomic_load_n(&rp->pending, __ATOMIC_ACQUIRE) > 0; s++)
		cpu_relax();
	pthread_mutex_lock(&rp->mu);
	while (rp->pending > 0)
		pthread_cond_wait(&rp->done, &rp->mu);
	pthread_mutex_unlock(&rp->mu);
}

replicas *replicas_start(int n)
{
	replicas *rp = calloc(1, sizeof *rp);
	if (!rp || n < 1) {
		free(rp);
		return NULL;
	}
	rp->n = n;
	pthread_mutex_init(&rp->mu, NULL);
	pthread_cond_init(&rp->go, NULL);
	pthread_cond_init(&rp->done, NULL);
	rp->par = (nn_parallel){ n, rp, carry, 0 };
	rp->th = calloc((size_t)n, sizeof *rp->th);
	if (!rp->th) {
		replicas_stop(rp);
		return NULL;
	}
	for (int r = 1; r < n; r++) {
		helper_arg *h = malloc(sizeof *h);
		if (h) {
			h->rp = rp;
			h->r = r;
		}
		if (!h || pthread_create(&rp->th[r], NULL, helper_main, h) != 0) {
			free(h);
			replicas_stop(rp);
			return NULL;
		}
		rp->started++;
	}
	return rp;
}

const nn_parallel *replicas_carrier(const replicas *rp)
{
	return rp ? &rp->par : NULL;
}

void replicas_stop(replicas *rp)
{
	if (!rp)
		return;
	pthread_mutex_lock(&rp->mu);
	__atomic_store_n(&rp->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&rp->go);
	pthread_mutex_unlock(&rp->mu);
	for (int r = 1; r <= rp->started; r++)
		pthread_join(rp->th[r], NULL);
	pthread_mutex_destroy(&rp->mu);
	pthread_cond_destroy(&rp->go);
	pthread_cond_destroy(&rp->done);
	free(rp->th);
	free(rp);
}
