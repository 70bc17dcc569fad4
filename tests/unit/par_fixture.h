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
#include <stdio.h>
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

/* One "process": a copy of the model, trained with its replica's carrier. */
typedef struct par_proc {
	const nn_model *m0;
	const nn_data *d;
	nn_train_config c;
	par_rank rank;
	nn_model *m;
	nn_train_result res;
	nn_status st;
	char err[300];
} par_proc;

static void *par_proc_main(void *arg)
{
	par_proc *p = arg;
	p->m = nn_model_clone(p->m0);
	p->c.par = &p->rank.par;
	p->c.replicas = p->rank.w->R;
	p->st = p->m ? nn_train(p->m, p->d, NULL, &p->c, NULL, NULL, 0, &p->res, p->err,
	                        sizeof p->err)
	             : NN_ENOMEM;
	return NULL;
}

/* R (<= 8) replicas as processes each train a copy of m0 on d with c: the
 * models into ms[0, R) (the caller frees them), results into res. NN_OK,
 * or the first failure with its message in err. */
static inline nn_status par_procs_train(const nn_model *m0, const nn_data *d, nn_train_config c,
                                        int R, nn_model **ms, nn_train_result *res, char *err,
                                        size_t errlen)
{
	par_world w = { .R = R };
	par_proc p[8];
	pthread_t th[8];
	nn_status st = NN_OK;
	if (R < 1 || R > 8)
		return NN_EINVAL;
	pthread_barrier_init(&w.bar, NULL, (unsigned)R);
	for (int r = 0; r < R; r++) {
		p[r] = (par_proc){ .m0 = m0, .d = d, .c = c };
		par_rank_init(&p[r].rank, &w, r);
		pthread_create(&th[r], NULL, par_proc_main, &p[r]);
	}
	for (int r = 0; r < R; r++) {
		pthread_join(th[r], NULL);
		ms[r] = p[r].m;
		if (res)
			res[r] = p[r].res;
		if (p[r].st != NN_OK && st == NN_OK) {
			st = p[r].st;
			snprintf(err, errlen, "replica %d: %s", r, p[r].err);
		}
	}
	pthread_barrier_destroy(&w.bar);
	return st;
}

#endif
