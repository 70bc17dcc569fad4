/*
 * par_fixture.h - data-parallel carriers for engine tests: `threads` runs
 * each phase's tasks on R threads (task i on thread i * R / n, as nn.h says),
 * started for the phase and joined after it; `backwards` runs them on the
 * calling thread in reverse order. Neither may change a single bit of what
 * a sharded run computes.
 */
#ifndef TESTS_PAR_FIXTURE_H
#define TESTS_PAR_FIXTURE_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "nn.h"

typedef struct par_slice {
	const nn_tasks *t;
	int r, R;
} par_slice;

static void *par_slice_main(void *arg)
{
	const par_slice *s = arg;
	for (int i = 0; i < s->t->n; i++)
		if ((int)((int64_t)i * s->R / s->t->n) == s->r)
			s->t->fn(s->t->arg, i);
	return NULL;
}

static void par_threads_run(void *ctx, const nn_tasks *t)
{
	int R = *(const int *)ctx;
	pthread_t th[64];
	par_slice sl[64];
	for (int r = 0; r < R; r++) {
		sl[r] = (par_slice){ t, r, R };
		if (r > 0)
			pthread_create(&th[r], NULL, par_slice_main, &sl[r]);
	}
	par_slice_main(&sl[0]);
	for (int r = 1; r < R; r++)
		pthread_join(th[r], NULL);
}

static void par_backwards_run(void *ctx, const nn_tasks *t)
{
	(void)ctx;
	for (int i = t->n - 1; i >= 0; i--)
		t->fn(t->arg, i);
}

/* A carrier of R threads (R <= 64); *R must outlive it. */
static inline nn_parallel par_threads(const int *R)
{
	nn_parallel p = { *R, (void *)R, par_threads_run, 0 };
	return p;
}

static inline nn_parallel par_backwards(void)
{
	nn_parallel p = { 1, NULL, par_backwards_run, 0 };
	return p;
}

/*
 * `procs`: R replicas as if each were a process of its own (an MPI rank):
 * each runs nn_train on a model of its own, on a thread, with a distributed
 * carrier that runs the replica's tasks and then, between two barriers,
 * copies every other replica's tasks' out() regions from that replica's
 * copy into its own, as an allgather would. Whatever a replica reads of a
 * shard it did not run and that no region carried is stale in its copy, so
 * a region missing from nn_tasks.out shows as other weights or losses.
 */
typedef struct par_world {
	int R;
	pthread_barrier_t bar;
	const nn_tasks *cur[64];
} par_world;

typedef struct par_rank {
	par_world *w;
	int r;
	nn_parallel par;
} par_rank;

static void par_rank_run(void *ctx, const nn_tasks *t)
{
	par_rank *me = ctx;
	par_world *w = me->w;
	for (int i = 0; i < t->n; i++)
		if ((int)((int64_t)i * w->R / t->n) == me->r)
			t->fn(t->arg, i);
	w->cur[me->r] = t;
	pthread_barrier_wait(&w->bar);
	for (int i = 0; t->out && i < t->n; i++) {
		int q = (int)((int64_t)i * w->R / t->n);
		if (q == me->r)
			continue;
		const nn_tasks *o = w->cur[q];
		size_t ls = 0, ld = 0;
		void *src, *dst;
		for (int k = 0; (src = o->out(o->arg, i, k, &ls)) != NULL; k++) {
			dst = t->out(t->arg, i, k, &ld);
			if (!dst || ld != ls)
				abort();   /* regions must not depend on the replica */
			memcpy(dst, src, ls);
		}
	}
	pthread_barrier_wait(&w->bar);
}

/* Replica r of world w (w->R set, w->bar initialised for R threads). */
static inline void par_rank_init(par_rank *p, par_world *w, int r)
{
	p->w = w;
	p->r = r;
	p->par = (nn_parallel){ w->R, p, par_rank_run, 1 };
}

#endif
