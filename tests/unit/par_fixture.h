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
	nn_parallel p = { *R, (void *)R, par_threads_run };
	return p;
}

static inline nn_parallel par_backwards(void)
{
	nn_parallel p = { 1, NULL, par_backwards_run };
	return p;
}

#endif
