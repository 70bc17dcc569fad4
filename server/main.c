/*
 * main.c - the nnd daemon: flags, start-up order and graceful shutdown.
 *
 * Start-up: bind (and print "listening on HOST:PORT" as the first line of
 * stderr, which tests read for the port), open the store (removing
 * leftover temporary files), requeue unfinished jobs, start the workers,
 * then report ready. SIGTERM / SIGINT: report not ready, stop accepting,
 * let running jobs checkpoint at their next step (they stay queued for the
 * next start), close the streams, and exit 0. A second signal changes
 * nothing: the drain is already under way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "healthcheck.h"
#include "http.h"
#include "jobs.h"
#include "storage.h"
#include "util.h"

static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;
	if (write(sig_pipe[1], &c, 1) < 0) {
		/* nothing to do: a signal is already pending in the pipe */
	}
	errno = saved;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: nnd [--listen HOST:PORT] [--data-dir DIR | --store URI] [--workers N]\n"
	        "           [--queue N]\n"
	        "           [--max-body BYTES] [--api-key-file FILE] [--log-level LEVEL]\n"
	        "           [--max-params N] [--max-depth N] [--max-layers N] [--max-epochs N]\n"
	        "           [--max-batch N] [--max-json-depth N] [--max-connections N]\n"
	        "           [--max-streams N] [--idle-timeout SECONDS] [--request-timeout SECONDS]\n"
	        "           [--tls-cert FILE --tls-key FILE] [--help] [--version]\n"
	        "       nnd --healthcheck [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE]\n"
	        "\n"
	        "  --listen HOST:PORT    address to serve on (default 127.0.0.1:8080; port 0 = any)\n"
	        "  --data-dir DIR        where the store lives (default ./nnd-data)\n"
	        "  --store URI           keep everything in PostgreSQL instead (a libpq URI,\n"
	        "                        postgresql://...), shared by every daemon given it\n"
	        "  --workers N           training jobs run at once (default: the cores)\n"
	        "  --queue N             queued jobs accepted at most (default 64; then 429)\n"
	        "  --max-body BYTES      request body limit (default 1 GiB; then 413)\n"
	        "  --max-params N        parameters per model (default 50000000; then 422)\n"
	        "  --max-depth N         residual blocks nested (default 8; then 422)\n"
	        "  --max-layers N        layers in one list (default 256; then 422)\n"
	        "  --max-epochs N        epochs of a job (default 100000; then 422)\n"
	        "  --max-batch N         batch size of a job (default 1048576; then 422)\n"
	        "  --max-json-depth N    JSON body nesting (default 128; then 400 malformed_json)\n"
	        "  --max-connections N   concurrent connections (default 1024; more are refused)\n"
	        "  --max-streams N       concurrent event streams (default 1024; then 429\n"
	        "                        too_many_streams with Retry-After)\n"
	        "  --idle-timeout S      close a connection silent this long (default 60)\n"
	        "  --request-timeout S   request headers must arrive within S seconds (default\n"
	        "                        30; idle kept-alive connections end then too); a body\n"
	        "                        still arriving after S must average >= 64 KiB/s;\n"
	        "                        answers (event streams) are never cut; 0 = off\n"
	        "  --api-key-file FILE   require 'Authorization: Bearer <key>' (also NND_API_KEY)\n"
	        "  --log-level LEVEL     error, warn, info (default) or debug\n"
	        "  --tls-cert FILE       serve HTTPS only, with this PEM certificate (chain)\n"
	        "  --tls-key FILE        and this PEM private key (both or neither)\n"
	        "  --healthcheck         do not serve: ask GET /healthz of the daemon at --listen\n"
	        "                        (0.0.0.0 and :: are asked on the loopback) and exit 0\n"
	        "                        when it answers ok, 1 otherwise, within 2 seconds; with\n"
	        "                        --tls-cert only the connection is checked\n");
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* The key file's first line. */
static int read_key(const char *path, char *key, size_t len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(key, (int)len, f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	key[strcspn(key, "\r\n")] = '\0';
	return key[0] ? 0 : -1;
}

/* A whole PEM file as a NUL-terminated malloc'd string, or NULL. */
static char *read_pem(const char *path)
{
	void *buf = NULL;
	size_t len = 0;
	if (util_read_file(path, &buf, &len) < 0)
		return NULL;
	char *s = realloc(buf, len + 1);
	if (!s) {
		free(buf);
		return NULL;
	}
	s[len] = '\0';
	if (len == 0 || strlen(s) != len) {   /* empty, or not text */
		free(s);
		return NULL;
	}
	return s;
}

/* Wipes and frees the private key's text. */
static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

int main(int argc, char **argv)
{
	/* a health probe does no arithmetic: no BLAS self-test and re-exec */
	int probe = 0;
	for (int i = 1; i < argc; i++)
		probe |= strcmp(argv[i], "--healthcheck") == 0;
	if (!probe)
		nn_blas_autoselect(argc, argv);
	umask(077);   /* the store's files are the owner's alone */

	char host[256] = "127.0.0.1";
	long long port = 8080, workers = 0, queue = 64, max_body = 1LL << 30;
	const char *data_dir = "./nnd-data", *key_file = NULL, *store_url = NULL;
	const char *cert_file = NULL, *tls_key_file = NULL;
	long long max_json_depth = 128, max_conns = 1024, max_streams = 1024;
	long long idle_timeout = 60, request_timeout = 30;
	api_limits lim = api_limits_default();
	long long lv;
	char key[512] = "";
	int healthcheck = 0;
	char err_hc[300];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--version") == 0) {
			printf("nnd %s\n", NN_VERSION);
			return 0;
		}
		if (strcmp(a, "--healthcheck") == 0) {
			healthcheck = 1;
			continue;
		}
		if (!v) {
			fprintf(stderr, "nnd: %s needs a value (or unknown flag)\n", a);
			usage(stderr);
			return 2;
		}
		i++;
		int bad = 0;
		if (strcmp(a, "--listen") == 0) {
			const char *colon = strrchr(v, ':');
			long long p;
			if (!colon || colon == v || (size_t)(colon - v) >= sizeof host ||
			    parse_int(colon + 1, 0, 65535, &p) < 0) {
				bad = 1;
			} else {
				memcpy(host, v, (size_t)(colon - v));
				host[colon - v] = '\0';
				port = p;
			}
		} else if (strcmp(a, "--data-dir") == 0) {
			data_dir = v;
		} else if (strcmp(a, "--store") == 0) {
			store_url = v;
		} else if (strcmp(a, "--workers") == 0) {
			bad = parse_int(v, 1, 256, &workers) < 0;
		} else if (strcmp(a, "--queue") == 0) {
			bad = parse_int(v, 1, 1000000, &queue) < 0;
		} else if (strcmp(a, "--max-body") == 0) {
			bad = parse_int(v, 1, 1LL << 40, &max_body) < 0;
		} else if (strcmp(a, "--max-params") == 0) {
			bad = parse_int(v, 1, 1LL << 40, &lv) < 0;
			lim.max_params = lv;
		} else if (strcmp(a, "--max-depth") == 0) {
			bad = parse_int(v, 0, 1000, &lv) < 0;
			lim.max_depth = (int)lv;
		} else if (strcmp(a, "--max-layers") == 0) {
			bad = parse_int(v, 1, 100000, &lv) < 0;
			lim.max_layers = (int)lv;
		} else if (strcmp(a, "--max-epochs") == 0) {
			bad = parse_int(v, 1, 100000000, &lv) < 0;
			lim.max_epochs = (int)lv;
		} else if (strcmp(a, "--max-batch") == 0) {
			bad = parse_int(v, 1, 1LL << 30, &lv) < 0;
			lim.max_batch = (int)lv;
		} else if (strcmp(a, "--max-json-depth") == 0) {
			bad = parse_int(v, 1, 900, &max_json_depth) < 0;
		} else if (strcmp(a, "--max-connections") == 0) {
			bad = parse_int(v, 1, 1000000, &max_conns) < 0;
		} else if (strcmp(a, "--max-streams") == 0) {
			bad = parse_int(v, 1, 1000000, &max_streams) < 0;
		} else if (strcmp(a, "--idle-timeout") == 0) {
			bad = parse_int(v, 1, 86400, &idle_timeout) < 0;
		} else if (strcmp(a, "--request-timeout") == 0) {
			bad = parse_int(v, 0, 86400, &request_timeout) < 0;
		} else if (strcmp(a, "--api-key-file") == 0) {
			key_file = v;
		} else if (strcmp(a, "--tls-cert") == 0) {
			cert_file = v;
		} else if (strcmp(a, "--tls-key") == 0) {
			tls_key_file = v;
		} else if (strcmp(a, "--log-level") == 0) {
			int l = util_log_level_parse(v);
			bad = l < 0;
			if (!bad)
				util_log_level = l;
		} else {
			fprintf(stderr, "nnd: unknown flag %s\n", a);
			usage(stderr);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "nnd: bad value for %s: %s\n", a, v);
			return 2;
		}
	}
	if (healthcheck) {
		/* a probe: the other flags only say where the daemon listens */
		if (healthcheck_run(host, (int)port, cert_file != NULL, 2000, err_hc, sizeof err_hc) < 0) {
			fprintf(stderr, "nnd: unhealthy: %s\n", err_hc);
			return 1;
		}
		return 0;
	}
	if (key_file) {
		if (read_key(key_file, key, sizeof key) < 0) {
			fprintf(stderr, "nnd: cannot read an API key from %s\n", key_file);
			return 2;
		}
	} else if (getenv("NND_API_KEY")) {
		snprintf(key, sizeof key, "%s", getenv("NND_API_KEY"));
	}
	char *tls_cert = NULL, *tls_key = NULL;
	if (!cert_file != !tls_key_file) {
		fprintf(stderr, "nnd: --tls-cert and --tls-key go together\n");
		return 2;
	}
	if (cert_file) {
		tls_cert = read_pem(cert_file);
		tls_key = tls_cert ? read_pem(tls_key_file) : NULL;
		if (!tls_key) {
			fprintf(stderr, "nnd: cannot read %s\n", tls_cert ? tls_key_file : cert_file);
			free(tls_cert);
			return 2;
		}
	}
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (cores < 1)
		cores = 1;
	if (workers == 0)
		workers = cores;
	/* jobs share the cores: BLAS threads per job so they do not oversubscribe */
	nn_blas_set_threads(workers >= cores ? 1 : (int)(cores / workers));

	/* SIGTERM / SIGINT may land on any thread (OpenBLAS starts its own
	 * before main), so the handler only writes to a pipe main waits on */
	if (pipe2(sig_pipe, O_CLOEXEC) < 0) {
		perror("nnd: pipe");
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* past a file-size limit a write fails with EFBIG (a 507), instead
	 * of the signal ending the daemon */
	signal(SIGXFSZ, SIG_IGN);

	/* a connection stays on one pool thread; a long upload parses on its
	 * thread, so more threads than cores keep the others answering */
	int pool = (int)(cores * 2 < 4 ? 4 : cores * 2);
	http_config hc = { .host = host, .port = (int)port, .threads = pool,
	                   .conn_limit = (unsigned)max_conns, .timeout_s = (unsigned)idle_timeout,
	                   .max_body = max_body, .api_key = key, .workers = (int)workers,
	                   .queue = (int)queue, .tls_cert = tls_cert, .tls_key = tls_key,
	                   .max_streams = (int)max_streams,
	                   .request_timeout_s = (unsigned)request_timeout,
	                   .max_json_depth = (int)max_json_depth };
	http_server *h = NULL;
	int bound = 0;
	char err[512];
	if (http_start(&hc, &h, &bound, err, sizeof err) < 0) {
		fprintf(stderr, "nnd: %s\n", err);
		free(tls_cert);
		free_secret(tls_key);
		return 1;
	}
	fprintf(stderr, "listening on %s:%d\n", host, bound);
	fflush(stderr);

	store *st = NULL;
	if (store_open_url(store_url, data_dir, &st, err, sizeof err) < 0) {
		fprintf(stderr, "nnd: %s\n", err);
		http_stop(h);
		return 1;
	}
	jobs *q = NULL;
	if (jobs_start(st, (int)workers, (int)queue, &lim, &q) < 0) {
		fprintf(stderr, "nnd: cannot start the workers\n");
		store_close(st);
		http_stop(h);
		return 1;
	}
	studies *S = NULL;
	if (studies_start(st, q, &lim, (int)workers, &S) < 0)
		util_log(0, "nnd: cannot start the study scheduler; studies are off");
	backend_ctx bctx = { st, q, S };
	api_backend be;
	backend_fill(&bctx, max_body, &be);
	be.limits = lim;
	http_set_backend(h, st, q, &be);
	util_log(2, "nnd %s ready: data %s, %lld workers, queue %lld, BLAS %s, %s", NN_VERSION,
	         store_url ? store_kind(st) : data_dir, workers, queue, nn_blas_core() ? nn_blas_core() : "?",
	         tls_cert ? "HTTPS" : "HTTP");

	unsigned char sig = 0;
	while (read(sig_pipe[0], &sig, 1) < 0 && errno == EINTR)
		;
	util_log(2, "signal %d: draining", sig);
	http_drain(h);
	studies_stop(S);
	jobs_stop(q);
	usleep(100 * 1000);   /* let resumed streams write their end */
	http_stop(h);
	free(tls_cert);
	free_secret(tls_key);
	studies_free(S);
	jobs_free(q);
	store_close(st);
	util_log(2, "stopped");
	return 0;
}
