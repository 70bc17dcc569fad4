/*
 * healthcheck.h - `nnd --healthcheck`: asks a running daemon's GET /healthz,
 * so a container's HEALTHCHECK needs no curl in the image.
 */
#ifndef NND_HEALTHCHECK_H
#define NND_HEALTHCHECK_H

#include <stddef.h>

/*
 * Connects to host:port (a wildcard listen address, 0.0.0.0 or ::, is asked
 * on the loopback of its family) and, when tls is 0, sends GET /healthz over
 * HTTP/1.0: healthy means a 200 reply whose body holds "status":"ok". With
 * tls set the daemon speaks only HTTPS, which this check does not: healthy
 * then means the port accepts a connection. The whole exchange is bounded
 * by timeout_ms. Returns 0 when healthy, else -1 with why in err.
 */
int healthcheck_run(const char *host, int port, int tls, int timeout_ms, char *err,
                    size_t errlen);

#endif
