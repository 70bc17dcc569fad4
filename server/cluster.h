/*
 * cluster.h - several daemons sharing one PostgreSQL store: this daemon's
 * side of the shared queue (claims under leases), the lease renewals, the
 * return of expired jobs to the queue, and the wake-ups other daemons send
 * (LISTEN/NOTIFY).
 *
 * Two threads per daemon. One renews the leases of the jobs running here
 * every third of a lease and every second (at most half a lease) returns
 * jobs whose lease ended to the queue, any daemon's; nothing else runs on
 * it, so no stream or slow hook can starve a renewal. The other listens on
 * a connection of its own and hands what it hears to the hooks (the job
 * queue's, jobs.c), from that thread.
 */
#ifndef NND_CLUSTER_H
#define NND_CLUSTER_H

#include "storage.h"

typedef struct cluster cluster;

typedef struct cluster_hooks {
	void *ctx;
	/* a job may be waiting: idle workers try a claim */
	void (*queued)(void *ctx);
	/* job id's cancel was asked for (on any daemon) */
	void (*cancel)(void *ctx, const char *id);
	/* job id has new rows (events, state), written by any daemon */
	void (*events)(void *ctx, const char *id);
	/* five times a second, fallback set once a second: the fallback for
	 * anything a notification missed */
	void (*tick)(void *ctx, int fallback);
} cluster_hooks;

/* The lease a claim takes (ms; --lease-seconds) and how many claims a job
 * gets before it fails with too_many_attempts. Set before cluster_open. */
extern int cluster_lease_ms;
extern int cluster_max_attempts;

/* NULL when st is not shared (SQLite), else the running cluster thread.
 * workers bounds the replicas of the jobs this daemon claims. */
cluster *cluster_open(store *st, int workers, const cluster_hooks *h);
/* Stops the thread (held leases stay: their jobs were requeued by the
 * workers' graceful stop, or expire). NULL ok. */
void cluster_close(cluster *c);

/* Claims a queued job whose replicas fit in free_workers: 1 with id set
 * (this daemon now holds its lease), 0 when none waits (or the store
 * failed). */
int cluster_claim(cluster *c, int free_workers, char id[API_ID_LEN]);
/* The job left this daemon: its lease is no longer renewed. */
void cluster_release(cluster *c, const char *id);
/* 1 when the lease of a job running here was lost: it must stop and
 * write nothing more. */
int cluster_lost(cluster *c, const char *id);
/* Cancels job id while queued: 1 done, 0 not queued, -1 store failed. */
int cluster_cancel_queued(cluster *c, const char *id);
/* This daemon's name in the jobs it holds ("host/pid"). */
const char *cluster_owner(const cluster *c);

#endif
