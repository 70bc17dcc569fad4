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

/* This daemon holds job's lease under token (after a claim): from now on
 * every write for the job commits only while the row carries the token. */
void pg_lease_hold(const char *job, int64_t token);
/* The job left this daemon. */
void pg_lease_drop(const char *job);
/* Marks the lease lost (a renewal found another token). */
void pg_lease_mark_lost(const char *job);
/* 1 once the lease of a held job was found lost (the job must stop). */
int pg_lease_lost(const char *job);
/* Writes refused because their lease was lost, over the process's life. */
extern int64_t pg_lease_fenced_writes;

/* A new connection to p's database, its search_path set to p's schema;
 * NULL when it cannot connect. The caller PQfinish-es it. */
PGconn *pg_connect_more(pgs *p);
/* The schema (quoted identifier) the tables live in. */
const char *pg_schema(const pgs *p);

#endif
