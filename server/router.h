/*
 * router.h - the daemon's one routing table and the matcher over it.
 *
 * A route is a method, a path pattern whose "{ds}", "{mdl}" or "{job}"
 * segment captures an id of that prefix, how the body is read, and what
 * serves it: an api/ handler or one of the daemon's own endpoints.
 */
#ifndef NND_ROUTER_H
#define NND_ROUTER_H

#include <stddef.h>
#include "handlers.h"

typedef enum {
	BODY_NONE,     /* no body expected (one sent is read and ignored) */
	BODY_JSON,     /* read whole, up to --max-body, then the handler runs */
	BODY_UPLOAD,   /* streamed to api_upload (CSV, JSON or multipart IDX) */
	BODY_FILE,     /* read whole like BODY_JSON, but application/octet-stream too
	                * (a model file: POST /v1/models?format=onnx) */
	BODY_ROWS      /* rows predicted as they arrive (predict.h: JSON or float32);
	                * a JSON body that is not the plain shape goes to the
	                * handler whole, as BODY_JSON */
} route_body;

typedef enum {
	SRV_NONE,      /* an api handler */
	SRV_HEALTHZ, SRV_READYZ, SRV_METRICS, SRV_OPENAPI, SRV_INFO, SRV_EVENTS,
	SRV_EVENTS_ALL, SRV_UI
} route_srv;

typedef struct route {
	const char *method;
	const char *pattern;
	const char *name;      /* the label used in /metrics */
	route_body body;
	route_srv srv;
	api_handler handler;
	int open;              /* 1: served without an API key */
} route;

extern const route router_table[];
extern const int router_count;

/*
 * Matches method and path. Returns the route's index with its id (if any)
 * copied into id; -404 when no route's path matches (or the id is not
 * well-formed); -405 when the path matches under other methods only, with
 * those methods in allow ("GET, DELETE").
 */
int router_match(const char *method, const char *path, char *id, size_t idlen,
                 char *allow, size_t allowlen);

#endif
