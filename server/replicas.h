/*
 * replicas.h - a data-parallel job's replicas as threads of the daemon: the
 * carrier (nn.h's nn_parallel) that runs each phase of a sharded training
 * step on n threads, the caller's among them.
 */
#ifndef NND_REPLICAS_H
#define NND_REPLICAS_H

#include "nn.h"

typedef struct replicas replicas;

/* n replicas: the calling thread (replica 0) and n - 1 threads started
 * here. NULL when out of memory or threads. */
replicas *replicas_start(int n);
/* The carrier to put in nn_train_config.par; valid until replicas_stop. */
const nn_parallel *replicas_carrier(const replicas *rp);
/* Stops and joins the threads (none may be inside a phase); NULL is fine. */
void replicas_stop(replicas *rp);

#endif
