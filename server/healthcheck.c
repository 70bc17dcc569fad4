/*
 * healthcheck.c - the client side of `nnd --healthcheck` (see healthcheck.h):
 * one non-blocking connection, one HTTP/1.0 request, every wait bounded by
 * a single deadline, so a hung daemon reads as unhealthy rather than
 * hanging the container runtime's probe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "healthcheck.h"

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { fd, events, 0 };
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		return n > 0;
	}
}

/* A connected non-blocking socket to one of ai's addresses, or -1. */
static int connect_any(const struct addrinfo *ai, long long deadline, char *err, size_t errlen)
{
	int last = ECONNREFUSED;
	for (; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		                ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			return fd;
		if (errno == EINPROGRESS) {
			int r = wait_fd(fd, POLLOUT, deadline);
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			if (r > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
				return fd;
			last = r == 0 ? ETIMEDOUT : soerr ? soerr : errno;
		} else {
			last = errno;
		}
		close(fd);
	}
	snprintf(err, errlen, "cannot connect: %s", strerror(last));
	return -1;
}

/* Sends all of req (rl bytes) by the deadline; -1 with err set. */
static int send_all(int fd, const char *req, int rl, long long deadline, char *err, size_t errlen)
{
	for (int off = 0; off < rl;) {
		if (wait_fd(fd, POLLOUT, deadline) <= 0) {
			snprintf(err, errlen, "timed out sending the request");
			return -1;
		}
		ssize_t n = send(fd, req + off, (size_t)(rl - off), MSG_NOSIGNAL);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot send: %s", strerror(errno));
			return -1;
		}
		off += (int)n;
	}
	return 0;
}

/* Reads the reply until the peer closes (or buf is full) by the deadline:
 * its length, or -1 with err set. buf ends with a NUL. */
static long recv_all(int fd, char *buf, size_t size, long long deadline, char *err, size_t errlen)
{
	size_t got = 0;
	while (got + 1 < size) {
		int w = wait_fd(fd, POLLIN, deadline);
		if (w <= 0) {
			snprintf(err, errlen, "%s waiting for the reply",
			         w == 0 ? "timed out" : "poll failed");
			return -1;
		}
		ssize_t n = recv(fd, buf + got, size - 1 - got, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read the reply: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (long)got;
}

/* 0 when buf is GET /healthz's 200 with {"status":"ok"}; -1 with err set. */
static int check_reply(const char *buf, char *err, size_t errlen)
{
	int major, minor, status = 0;
	if (sscanf(buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3) {
		snprintf(err, errlen, "not an HTTP reply");
		return -1;
	}
	if (status != 200) {
		snprintf(err, errlen, "GET /healthz answered %d", status);
		return -1;
	}
	const char *body = strstr(buf, "\r\n\r\n");
	if (!body || !strstr(body, "\"status\":\"ok\"")) {
		snprintf(err, errlen, "GET /healthz answered 200 without {\"status\":\"ok\"}");
		return -1;
	}
	return 0;
}

int healthcheck_run(const char *host, int port, int tls, int timeout_ms, char *err,
                    size_t errlen)
{
	char h[256], ps[16];
	size_t hl = strlen(host);
	/* "[::1]" as given to --listen is "::1" to the resolver */
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
		snprintf(h, sizeof h, "%.*s", (int)(hl - 2), host + 1);
	else
		snprintf(h, sizeof h, "%s", host);
	if (!strcmp(h, "0.0.0.0") || !h[0])
		snprintf(h, sizeof h, "127.0.0.1");
	else if (!strcmp(h, "::"))
		snprintf(h, sizeof h, "::1");
	if (port < 1 || port > 65535) {
		snprintf(err, errlen, "no port to ask (port %d)", port);
		return -1;
	}
	snprintf(ps, sizeof ps, "%d", port);
	long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 1);

	struct addrinfo hints, *ai = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int gr = getaddrinfo(h, ps, &hints, &ai);
	if (gr != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", h, gai_strerror(gr));
		return -1;
	}
	int fd = connect_any(ai, deadline, err, errlen);
	freeaddrinfo(ai);
	if (fd < 0)
		return -1;
	if (tls) {
		close(fd);
		return 0;
	}

	char req[400];
	int rl = snprintf(req, sizeof req,
	                  "GET /healthz HTTP/1.0\r\nHost: %s:%d\r\nUser-Agent: nnd-healthcheck\r\n"
	                  "Connection: close\r\n\r\n",
	                  strchr(h, ':') ? "localhost" : h, port);
	/* the reply is small: status line, a few headers, {"status":"ok"} */
	char buf[4096];
	long got = send_all(fd, req, rl, deadline, err, errlen) == 0
	                   ? recv_all(fd, buf, sizeof buf, deadline, err, errlen)
	                   : -1;
	close(fd);
	return got < 0 ? -1 : check_reply(buf, err, errlen);
}
