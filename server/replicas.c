/*
 * replicas.c - the threads that carry a data-parallel job (see replicas.h).
 *
 * The job's worker is replica 0; replicas 1..n-1 are threads of their own
 * that wait for a phase and run its tasks. Task i's home is replica
 * i * n / tasks (nn.h's rule): each replica first runs the tasks of its
 * home, in order, then takes any task no replica has started yet. Threads
 * share memory and a task's numbers depend on its index alone, so where it
 * runs changes nothing; but a replica the kernel has not scheduled (the
 * machine busy with other work, a wake-up late) no longer holds up the
 * phase: the others run its tasks. When every replica runs promptly, each
 * runs exactly its home's tasks, so a shard's buffers and a parameter
 * range's optimizer state stay in one core's caches from step to step.
 *
 * A training step has a few phases of a few hundred microseconds each, so
 * both sides spin briefly on a counter before they sleep on a condition
 * variable: a wake-up through the kernel costs tens of microseconds, a
 * short spin far less, and a long one would take a core from the other
 * jobs (replicas_tune).
 *
 * Invariants: gen counts the phases handed out and cur is phase gen's tasks
 * (both change only under mu, cur by value, so a helper that wakes late
 * reads the newest phase, never a finished one's); claimed[i] == gen once
 * a replica took task i of phase gen (values only grow: a claim is a
 * compare-and-swap from below gen); done counts phase gen's finished
 * tasks. The phase is over when done == cur.n; a helper still looking
 * through a finished phase's claims finds them all taken and touches
 * nothing of the engine.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "replicas.h"

/* Tasks a phase may hand to another replica than their home; those past
 * it (more than any sharded step has) run at home only. */
#define STEAL_MAX 256

#ifndef NND_TEST
const
#endif
replicas_tuning replicas_tune = {
	/* about 70 us of pause instructions on a current x86 core */
	.spins = 4000,
	.steal = 1,
};

struct replicas {
	int n;
	pthread_t *th;
	int started;          /* helper threads running */
	pthread_mutex_t mu;
	pthread_cond_t go, finished;
	nn_tasks cur;
	uint64_t gen;
	int done;
	int stop;
	uint64_t claimed[STEAL_MAX];
	nn_parallel par;
	replicas_stats stats;
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

static int home(int i, int tasks, int n)
{
	return (int)((int64_t)i * n / tasks);
}

/* 1 when this replica takes task i of phase gen. */
static int claim(replicas *rp, int i, uint64_t gen)
{
	if (i >= STEAL_MAX)
		return 1;          /* home only: the caller is its home */
	uint64_t old = __atomic_load_n(&rp->claimed[i], __ATOMIC_ACQUIRE);
	while (old < gen)
		if (__atomic_compare_exchange_n(&rp->claimed[i], &old, gen, 0, __ATOMIC_ACQ_REL,
		                                __ATOMIC_ACQUIRE))
			return 1;
	return 0;
}

static void finish_task(replicas *rp, const nn_tasks *t)
{
	if (__atomic_add_fetch(&rp->done, 1, __ATOMIC_ACQ_REL) == t->n) {
		pthread_mutex_lock(&rp->mu);
		pthread_cond_signal(&rp->finished);
		pthread_mutex_unlock(&rp->mu);
	}
}

/* Replica r's share of phase gen: its home's tasks, then (stealing on) any
 * other not yet taken, from the last back. */
static void run_phase(replicas *rp, const nn_tasks *t, uint64_t gen, int r)
{
	for (int i = 0; i < t->n; i++)
		if (home(i, t->n, rp->n) == r && claim(rp, i, gen)) {
			t->fn(t->arg, i);
			__atomic_fetch_add(&rp->stats.home, 1, __ATOMIC_RELAXED);
			finish_task(rp, t);
		}
	if (!replicas_tune.steal)
		return;
	for (int i = (t->n < STEAL_MAX ? t->n : STEAL_MAX) - 1; i >= 0; i--)
		if (home(i, t->n, rp->n) != r && claim(rp, i, gen)) {
			t->fn(t->arg, i);
			__atomic_fetch_add(&rp->stats.stolen, 1, __ATOMIC_RELAXED);
			finish_task(rp, t);
		}
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
		for (int s = 0; s < replicas_tune.spins &&
		                __atomic_load_n(&rp->gen, __ATOMIC_ACQUIRE) == seen &&
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
		nn_tasks t = rp->cur;
		pthread_mutex_unlock(&rp->mu);
#ifdef NND_TEST
		if (replicas_tune.late_us > 0)
			usleep((useconds_t)replicas_tune.late_us);
#endif
		run_phase(rp, &t, seen, r);
	}
}

static void carry(void *ctx, const nn_tasks *t)
{
	replicas *rp = ctx;
	if (rp->n == 1 || t->n < 1) {
		for (int i = 0; i < t->n; i++)
			t->fn(t->arg, i);
		return;
	}
	pthread_mutex_lock(&rp->mu);
	rp->cur = *t;
	__atomic_store_n(&rp->done, 0, __ATOMIC_RELAXED);
	uint64_t gen = rp->gen + 1;
	__atomic_store_n(&rp->gen, gen, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&rp->go);
	pthread_mutex_unlock(&rp->mu);
	run_phase(rp, t, gen, 0);
	for (int s = 0; s < replicas_tune.spins &&
	                __atomic_load_n(&rp->done, __ATOMIC_ACQUIRE) < t->n; s++)
		cpu_relax();
	pthread_mutex_lock(&rp->mu);
	while (__atomic_load_n(&rp->done, __ATOMIC_ACQUIRE) < t->n)
		pthread_cond_wait(&rp->finished, &rp->mu);
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
	pthread_cond_init(&rp->finished, NULL);
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

replicas_stats replicas_get_stats(const replicas *rp)
{
	replicas_stats s = { 0, 0 };
	if (rp) {
		s.home = __atomic_load_n(&rp->stats.home, __ATOMIC_RELAXED);
		s.stolen = __atomic_load_n(&rp->stats.stolen, __ATOMIC_RELAXED);
	}
	return s;
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
	pthread_cond_destroy(&rp->finished);
	free(rp->th);
	free(rp);
}
