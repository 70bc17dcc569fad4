/*
 * replicas.h - a data-parallel job's replicas as threads of the daemon: the
 * carrier (nn.h's nn_parallel) that runs each phase of a sharded training
 * step on n threads, the caller's among them.
 */
#ifndef NND_REPLICAS_H
#define NND_REPLICAS_H

#include "nn.h"

typedef struct replicas replicas;

/* How the replicas wait and share (replicas.c). Constant in production
 * builds; test builds (-DNND_TEST) may change it between phases. */
typedef struct replicas_tuning {
	int spins;   /* pause instructions a waiting replica spins before it sleeps */
	int steal;   /* 1: a replica that is done runs tasks no replica started */
#ifdef NND_TEST
	int late_us; /* helpers sleep this long before each phase (others steal) */
#endif
} replicas_tuning;
#ifdef NND_TEST
extern replicas_tuning replicas_tune;
#else
extern const replicas_tuning replicas_tune;
#endif

/* Tasks run by their home replica, and by another one (stolen). */
typedef struct replicas_stats {
	long long home, stolen;
} replicas_stats;

/* n replicas: the calling thread (replica 0) and n - 1 threads started
 * here. NULL when out of memory or threads. */
replicas *replicas_start(int n);
/* The carrier to put in nn_train_config.par; valid until replicas_stop. */
const nn_parallel *replicas_carrier(const replicas *rp);
replicas_stats replicas_get_stats(const replicas *rp);
/* Stops and joins the threads (none may be inside a phase); NULL is fine. */
void replicas_stop(replicas *rp);

#endif
