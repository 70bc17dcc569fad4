/*
 * backend.h - binds the handlers' api_backend to the daemon's store and
 * job queue.
 */
#ifndef NND_BACKEND_H
#define NND_BACKEND_H

#include "jobs.h"
#include "storage.h"
#include "studies.h"

typedef struct backend_ctx {
	store *st;
	jobs *q;
	studies *S;           /* NULL: no study routes (404) */
} backend_ctx;

/* Fills b with functions over ctx (which must outlive b). */
void backend_fill(backend_ctx *ctx, int64_t max_body, api_backend *b);

#endif
