/*
 * http.h - the libmicrohttpd glue: one daemon with an internal epoll
 * thread pool, per-request state in *con_cls, routing through the one
 * table in router.c, bodies streamed into readers as they arrive, API-key
 * checks, problem+json errors, event streams by suspend/resume, and one
 * log line per request.
 */
#ifndef NND_HTTP_H
#define NND_HTTP_H

#include <stdint.h>
#include "handlers.h"
#include "jobs.h"
#include "storage.h"

typedef struct http_config {
	const char *host;        /* "127.0.0.1" */
	int port;                /* 0 = any free port */
	int threads;             /* MHD thread pool size */
	unsigned conn_limit;
	unsigned timeout_s;      /* idle connection timeout */
	int64_t max_body;
	const char *api_key;     /* NULL or "" = open */
	int workers, queue;      /* for /v1/info */
	const char *tls_cert;    /* PEM text of the certificate (chain) and its */
	const char *tls_key;     /* key: HTTPS only when both are set; the
	                          * caller keeps them until http_stop */
	int max_streams;         /* concurrent event streams (0 = 1024); past it 429 */
	unsigned request_timeout_s; /* request deadline (0 = none): headers must be
	                          * complete within it (counted from the connection's
	                          * start or the end of its previous request), and a
	                          * body still arriving after it must average at
	                          * least HTTP_MIN_BODY_RATE bytes a second */
	int max_json_depth;      /* JSON bodies nested deeper: 400 malformed_json */
} http_config;

#define HTTP_MIN_BODY_RATE (64 * 1024)

typedef struct http_server http_server;

/* Binds and starts serving (not ready: /v1 answers 503 until
 * http_set_backend). *port gets the bound port. With tls_cert and tls_key
 * the port speaks HTTPS only; -1 with a message when this libmicrohttpd
 * has no TLS support or the certificate or key is refused. */
int http_start(const http_config *cfg, http_server **out, int *port, char *err, size_t errlen);
/* Connects the store, jobs and backend and marks the server ready. */
void http_set_backend(http_server *h, store *st, jobs *q, const api_backend *be);
/* Readiness off (503 from /readyz) and no new connections. */
void http_drain(http_server *h);
void http_stop(http_server *h);

#endif
