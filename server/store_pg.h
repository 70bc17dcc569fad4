/*
 * store_pg.h - what the PostgreSQL store (store_pg.c) offers beyond the
 * store_ops table: the leases of the jobs this daemon runs, and more
 * connections to the same database for cluster.c (claims, LISTEN).
 */
#ifndef NND_STORE_PG_H
#define NND_STORE_PG_H

#include <stdint.h>
#include <libpq-fe.h>
#include "store_ops.h"

typedef struct pgs pgs;

/* idle_in_transaction_session_timeout of every connection (ms; main sets
 * it to the lease): a frozen daemon's open transaction, and the row locks
 * it holds, end then. */
extern int pg_idle_tx_ms;

/* This daemon holds job's lease under token (after a claim): from now on
 * every write for the job commits only while the row carries the token. */
void pg_lease_hold(const char *job, int64_t token);
/* The job left this daemon. */
void pg_lease_drop(const char *job);
/* Marks the lease lost (a renewal found another token). */
void pg_lease_mark_lost(const char *job);
/* 1 once the lease of a held job was found lost (the job must stop). */
int pg_lease_lost(const char *job);
/* The leases held and not lost (malloc'd arrays): how many, or -1. */
int pg_leases_held(char (**ids)[API_ID_LEN], int64_t **tokens);
/* Writes refused because their lease was lost, over the process's life. */
extern int64_t pg_lease_fenced_writes;

/* Claims the oldest queued job whose replicas fit in `workers`, for
 * owner, under a lease of lease_ms (FOR UPDATE SKIP LOCKED), and holds
 * it (pg_lease_hold). 1 with id and *token set, 0 when none waits, -1. */
int pg_claim(pgs *p, const char *owner, int workers, int lease_ms, char id[API_ID_LEN],
             int64_t *token);
/* Extends a held lease: 1 (and *cancel: a cancel was asked for), 0 when
 * the lease is no longer this token's (lost), 2 when the job has ended
 * (final or paused: nothing to renew), -1 when the store failed. */
int pg_renew(pgs *p, const char *id, int64_t token, int lease_ms, int *cancel);
/* Any daemon: running jobs whose lease ended go back to the queue (or,
 * claimed max_attempts times already, fail with too_many_attempts).
 * How many, or -1. */
int pg_requeue_expired(pgs *p, int max_attempts);
/* A queued job cancelled in one step: 1, 0 when it was not queued, -1. */
int pg_cancel_queued(pgs *p, const char *id);
/* The NOTIFY channel of p's schema (payloads: see notify in store_pg.c). */
const char *pg_channel(const pgs *p);

/* A new connection to p's database, its search_path set to p's schema;
 * NULL when it cannot connect. The caller PQfinish-es it. */
PGconn *pg_connect_more(pgs *p);
/* Another handle on p's database and schema, with a connection of its
 * own (the cluster's, so its claims and renewals never wait behind an
 * upload on the store's connection), whose lock waits end after a second.
 * NULL when it cannot connect. */
pgs *pg_clone(pgs *p);
void pg_free(pgs *p);
/* The schema (quoted identifier) the tables live in. */
const char *pg_schema(const pgs *p);

#endif
