/*
 * bench_latency.c - request latency over one keep-alive HTTP/1.1 connection.
 *
 * Sends N requests one after the other on a single loopback TCP connection
 * and prints the p50, p90, p99 and max round-trip times (from the first byte
 * written to the last byte of the reply read). A C client with raw sockets,
 * so that the client's own cost stays far below the server's; bench/service.py
 * runs it against nnd's /healthz and against a single-row predict and prints
 * the ratio. This program never decides pass or fail.
 *
 *   bench_latency --port P --path /healthz [--body FILE] [--ctype TYPE]
 *                 [--accept TYPE] [--n 10000] [--warmup 200]
 * With --body the request is a POST of the file's bytes as --ctype (default
 * application/json); --accept adds an Accept header (application/octet-stream
 * asks predict for float32 rows). --versus PATH sends a GET of PATH before each
 * request, on the same connection, and reports its times too (vs_p50_us,
 * ...): the two are then measured under the same conditions, request by
 * request, however the machine's load drifts.
 * The last output line is one JSON object for scripts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one reply (headers with Content-Length, or chunked ending in
 * "0\r\n\r\n") into buf. Returns the HTTP status, or -1. */
static int read_reply(int fd, char *buf, size_t cap)
{
	size_t n = 0, head = 0, want = 0;
	int chunked = 0, status = -1;
	for (;;) {
		if (n == cap)
			return -1;
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		n += (size_t)r;
		if (!head) {
			char *e = memmem(buf, n, "\r\n\r\n", 4);
			if (!e)
				continue;
			head = (size_t)(e - buf) + 4;
			status = atoi(buf + 9);
			for (char *l = buf; l && l < e; l = memchr(l, '\n', (size_t)(e - l))) {
				if (*l == '\n')
					l++;
				if (!strncasecmp(l, "Content-Length:", 15))
					want = strtoul(l + 15, NULL, 10);
				else if (!strncasecmp(l, "Transfer-Encoding:", 18) &&
				         strstr(l, "chunked") && strstr(l, "chunked") < e)
					chunked = 1;
			}
		}
		if (chunked) {
			if (n >= head + 5 && !memcmp(buf + n - 5, "0\r\n\r\n", 5))
				return status;
		} else if (n >= head + want) {
			return status;
		}
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int port = 0, n = 10000, warmup = 200;
	const char *path = "/healthz", *body_file = NULL, *ctype = "application/json";
	const char *accept = NULL, *versus = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--path") && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--body") && i + 1 < argc)
			body_file = argv[++i];
		else if (!strcmp(argv[i], "--ctype") && i + 1 < argc)
			ctype = argv[++i];
		else if (!strcmp(argv[i], "--accept") && i + 1 < argc)
			accept = argv[++i];
		else if (!strcmp(argv[i], "--versus") && i + 1 < argc)
			versus = argv[++i];
		else if (!strcmp(argv[i], "--n") && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
			warmup = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s --port P [--path P] [--body FILE] [--ctype TYPE] "
			                "[--accept TYPE] [--versus PATH] [--n N] [--warmup N]\n", argv[0]);
			return 2;
		}
	}
	if (port <= 0 || n <= 0 || warmup < 0) {
		fprintf(stderr, "bench_latency: need --port and positive --n\n");
		return 2;
	}

	char *body = NULL;
	long blen = 0;
	if (body_file) {
		FILE *f = fopen(body_file, "rb");
		if (!f || fseek(f, 0, SEEK_END) || (blen = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
			fprintf(stderr, "bench_latency: cannot read %s\n", body_file);
			return 1;
		}
		body = malloc((size_t)blen + 1);
		if (!body || fread(body, 1, (size_t)blen, f) != (size_t)blen) {
			fprintf(stderr, "bench_latency: cannot read %s\n", body_file);
			return 1;
		}
		fclose(f);
	}
	size_t rlen = 1024 + (size_t)blen;
	char *req = malloc(rlen);
	size_t cap = 1 << 20;
	char *reply = malloc(cap);
	double *t = malloc(sizeof(double) * (size_t)n);
	double *tv = malloc(sizeof(double) * (size_t)n);
	char vreq[1024];
	int vl = 0;
	if (!req || !reply || !t || !tv)
		return 1;
	if (versus) {
		vl = snprintf(vreq, sizeof vreq, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
		              versus, port);
		if (vl < 0 || vl >= (int)sizeof vreq) {
			fprintf(stderr, "bench_latency: path too long\n");
			return 2;
		}
	}
	char acc[256] = "";
	if (accept)
		snprintf(acc, sizeof acc, "Accept: %.200s\r\n", accept);
	int hl;
	if (body)
		hl = snprintf(req, 1024, "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s"
		              "Content-Type: %.200s\r\nContent-Length: %ld\r\n\r\n",
		              path, port, acc, ctype, blen);
	else
		hl = snprintf(req, 1024, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n", path,
		              port, acc);
	if (hl < 0 || hl >= 1024) {
		fprintf(stderr, "bench_latency: path too long\n");
		return 2;
	}
	if (body)
		memcpy(req + hl, body, (size_t)blen);
	size_t total = (size_t)hl + (size_t)blen;

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		fprintf(stderr, "bench_latency: cannot connect to port %d\n", port);
		return 1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	int last = 0;
	for (int i = -warmup; i < n; i++) {
		if (versus) {
			double v0 = now();
			if (write_all(fd, vreq, (size_t)vl) < 0 ||
			    (last = read_reply(fd, reply, cap)) != 200) {
				fprintf(stderr, "bench_latency: %s failed at request %d\n", versus, i);
				return 1;
			}
			if (i >= 0)
				tv[i] = now() - v0;
		}
		double t0 = now();
		if (write_all(fd, req, total) < 0 || (last = read_reply(fd, reply, cap)) < 0) {
			fprintf(stderr, "bench_latency: connection failed at request %d\n", i);
			return 1;
		}
		double dt = now() - t0;
		if (last != 200) {
			fprintf(stderr, "bench_latency: status %d for %s\n", last, path);
			return 1;
		}
		if (i >= 0)
			t[i] = dt;
	}
	close(fd);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += t[i];
	qsort(t, (size_t)n, sizeof *t, cmp_double);
#define PCT(p) (t[(size_t)((double)(n - 1) * (p) + 0.5)] * 1e6)
	printf("%s: %d requests, p50 %.1f us, p90 %.1f us, p99 %.1f us, max %.1f us\n", path, n,
	       PCT(0.50), PCT(0.90), PCT(0.99), t[n - 1] * 1e6);
	printf("{\"path\": \"%s\", \"n\": %d, \"p50_us\": %.2f, \"p90_us\": %.2f, \"p99_us\": %.2f, "
	       "\"max_us\": %.2f, \"mean_us\": %.2f", path, n, PCT(0.50), PCT(0.90), PCT(0.99),
	       t[n - 1] * 1e6, sum / n * 1e6);
	if (versus) {
		double p50 = PCT(0.50), p99 = PCT(0.99);
		qsort(tv, (size_t)n, sizeof *tv, cmp_double);
		double *keep = t;
		t = tv;
		printf(", \"versus\": \"%s\", \"vs_p50_us\": %.2f, \"vs_p99_us\": %.2f, "
		       "\"p50_ratio\": %.3f, \"p99_ratio\": %.3f", versus, PCT(0.50), PCT(0.99),
		       p50 / PCT(0.50), p99 / PCT(0.99));
		t = keep;
	}
	printf("}\n");
	free(body);
	free(req);
	free(reply);
	free(t);
	free(tv);
	return 0;
}
