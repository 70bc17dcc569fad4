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
#include <stddef.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "cluster.h"
#include "store_pg.h"
#include "healthcheck.h"
#include "http.h"
#include "jobs.h"
#include "ranks.h"
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
	        "           [--queue N] [--checkpoint-gap-ms N]\n"
	        "           [--max-body BYTES] [--api-key-file FILE] [--log-level LEVEL]\n"
	        "           [--max-params N] [--max-depth N] [--max-layers N] [--max-epochs N]\n"
	        "           [--max-batch N] [--max-json-depth N] [--max-connections N]\n"
	        "           [--max-streams N] [--idle-timeout SECONDS] [--request-timeout SECONDS]\n"
	        "           [--tls-cert FILE --tls-key FILE] [--mpi] [--help] [--version]\n"
	        "       nnd --healthcheck [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE]\n"
	        "\n"
	        "  --listen HOST:PORT    address to serve on (default 127.0.0.1:8080; port 0 = any)\n"
	        "  --data-dir DIR        where the store lives (default ./nnd-data)\n"
	        "  --store URI           keep everything in PostgreSQL instead (a libpq URI,\n"
	        "                        postgresql://...), shared by every daemon given it\n"
	        "  --lease-seconds N     with --store: a job's lease (default 10); another\n"
	        "                        daemon takes over a job whose lease ran out\n"
	        "  --max-attempts N      with --store: claims of a job before it fails with\n"
	        "                        too_many_attempts (default 5)\n"
	        "  --workers N           training jobs run at once (default: the cores)\n"
	        "  --queue N             queued jobs accepted at most (default 64; then 429)\n"
	        "  --checkpoint-gap-ms N a running job's history and checkpoint are written at\n"
	        "                        most every N ms, the first N ms into its training\n"
	        "                        (default 100; 0: at every epoch); a crash loses at\n"
	        "                        most that much training (same weights on resume)\n"
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
	        "  --mpi                 under mpirun (or srun): rank 0 is the daemon, and a\n"
	        "                        job's replicas run on ranks 0..replicas-1 (replicas at\n"
	        "                        most the ranks); the other ranks serve rank 0 only;\n"
	        "                        not with --store\n"
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

/* Everything the flags say. */
typedef struct opts {
	char host[256];
	long long port, workers, queue, max_body;
	const char *data_dir, *key_file, *store_url, *cert_file, *tls_key_file;
	long long max_json_depth, max_conns, max_streams, idle_timeout, request_timeout;
	api_limits lim;
	int healthcheck;
	int mpi;
} opts;

#define OPTS_DEFAULT                                                                       \
	(opts){ .host = "127.0.0.1", .port = 8080, .queue = 64, .max_body = 1LL << 30,     \
	        .data_dir = "./nnd-data", .max_json_depth = 128, .max_conns = 1024,         \
	        .max_streams = 1024, .idle_timeout = 60, .request_timeout = 30,             \
	        .lim = api_limits_default() }

/* --listen's HOST:PORT into o. -1 when it is not one. */
static int parse_listen(opts *o, const char *v)
{
	const char *colon = strrchr(v, ':');
	long long p;
	if (!colon || colon == v || (size_t)(colon - v) >= sizeof o->host ||
	    parse_int(colon + 1, 0, 65535, &p) < 0)
		return -1;
	memcpy(o->host, v, (size_t)(colon - v));
	o->host[colon - v] = '\0';
	o->port = p;
	return 0;
}

/* One flag a with its value v into o: 0 when taken, -1 for a bad value,
 * -2 for a flag nnd does not know. */
static int parse_flag(opts *o, const char *a, const char *v)
{
	/* flags whose value is a number in a range, and where it goes */
	static const struct {
		const char *flag;
		long long lo, hi;
		size_t off;
	} nums[] = {
		{ "--workers", 1, 256, offsetof(opts, workers) },
		{ "--queue", 1, 1000000, offsetof(opts, queue) },
		{ "--max-body", 1, 1LL << 40, offsetof(opts, max_body) },
		{ "--max-json-depth", 1, 900, offsetof(opts, max_json_depth) },
		{ "--max-connections", 1, 1000000, offsetof(opts, max_conns) },
		{ "--max-streams", 1, 1000000, offsetof(opts, max_streams) },
		{ "--idle-timeout", 1, 86400, offsetof(opts, idle_timeout) },
		{ "--request-timeout", 0, 86400, offsetof(opts, request_timeout) },
	};
	long long lv;
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
		if (strcmp(a, nums[i].flag) == 0)
			return parse_int(v, nums[i].lo, nums[i].hi,
			                 (long long *)((char *)o + nums[i].off));
	if (strcmp(a, "--listen") == 0)
		return parse_listen(o, v);
	if (strcmp(a, "--data-dir") == 0)
		o->data_dir = v;
	else if (strcmp(a, "--store") == 0)
		o->store_url = v;
	else if (strcmp(a, "--lease-seconds") == 0) {
		if (parse_int(v, 1, 86400, &lv) < 0)
			return -1;
		cluster_lease_ms = (int)lv * 1000;
		pg_idle_tx_ms = cluster_lease_ms;
	} else if (strcmp(a, "--checkpoint-gap-ms") == 0) {
		if (parse_int(v, 0, 3600000, &lv) < 0)
			return -1;
		jobs_checkpoint_gap_ms = (int)lv;
	} else if (strcmp(a, "--max-attempts") == 0) {
		if (parse_int(v, 1, 1000, &lv) < 0)
			return -1;
		cluster_max_attempts = (int)lv;
	}
	else if (strcmp(a, "--api-key-file") == 0)
		o->key_file = v;
	else if (strcmp(a, "--tls-cert") == 0)
		o->cert_file = v;
	else if (strcmp(a, "--tls-key") == 0)
		o->tls_key_file = v;
	else if (strcmp(a, "--max-params") == 0) {
		if (parse_int(v, 1, 1LL << 40, &lv) < 0)
			return -1;
		o->lim.max_params = lv;
	} else if (strcmp(a, "--max-depth") == 0) {
		if (parse_int(v, 0, 1000, &lv) < 0)
			return -1;
		o->lim.max_depth = (int)lv;
	} else if (strcmp(a, "--max-layers") == 0) {
		if (parse_int(v, 1, 100000, &lv) < 0)
			return -1;
		o->lim.max_layers = (int)lv;
	} else if (strcmp(a, "--max-epochs") == 0) {
		if (parse_int(v, 1, 100000000, &lv) < 0)
			return -1;
		o->lim.max_epochs = (int)lv;
	} else if (strcmp(a, "--max-batch") == 0) {
		if (parse_int(v, 1, 1LL << 30, &lv) < 0)
			return -1;
		o->lim.max_batch = (int)lv;
	} else if (strcmp(a, "--log-level") == 0) {
		int l = util_log_level_parse(v);
		if (l < 0)
			return -1;
		util_log_level = l;
	} else {
		return -2;
	}
	return 0;
}

/* The command line into o. -1 to go on, else the exit status (after
 * --help, --version or a bad flag, said on stderr). */
static int parse_args(int argc, char **argv, opts *o)
{
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
			o->healthcheck = 1;
			continue;
		}
		if (strcmp(a, "--mpi") == 0) {
			o->mpi = 1;
			continue;
		}
		if (!v) {
			fprintf(stderr, "nnd: %s needs a value (or unknown flag)\n", a);
			usage(stderr);
			return 2;
		}
		i++;
		int rc = parse_flag(o, a, v);
		if (rc == -2) {
			fprintf(stderr, "nnd: unknown flag %s\n", a);
			usage(stderr);
			return 2;
		}
		if (rc < 0) {
			fprintf(stderr, "nnd: bad value for %s: %s\n", a, v);
			return 2;
		}
	}
	return -1;
}

/* The API key (file or NND_API_KEY) and the TLS certificate and key. */
typedef struct secrets {
	char key[512];
	char *tls_cert, *tls_key; /* PEM text, or NULL without TLS */
} secrets;

static void secrets_release(secrets *s)
{
	free(s->tls_cert);
	free_secret(s->tls_key);
	explicit_bzero(s->key, sizeof s->key);
}

/* Reads o's secrets into s: 0, or an exit status after saying why. */
static int read_secrets(const opts *o, secrets *s)
{
	memset(s, 0, sizeof *s);
	if (o->key_file) {
		if (read_key(o->key_file, s->key, sizeof s->key) < 0) {
			fprintf(stderr, "nnd: cannot read an API key from %s\n", o->key_file);
			return 2;
		}
	} else if (getenv("NND_API_KEY")) {
		snprintf(s->key, sizeof s->key, "%s", getenv("NND_API_KEY"));
	}
	if (!o->cert_file != !o->tls_key_file) {
		fprintf(stderr, "nnd: --tls-cert and --tls-key go together\n");
		return 2;
	}
	if (o->cert_file) {
		s->tls_cert = read_pem(o->cert_file);
		s->tls_key = s->tls_cert ? read_pem(o->tls_key_file) : NULL;
		if (!s->tls_key) {
			fprintf(stderr, "nnd: cannot read %s\n",
			        s->tls_cert ? o->tls_key_file : o->cert_file);
			secrets_release(s);
			return 2;
		}
	}
	return 0;
}

/* SIGTERM / SIGINT may land on any thread (OpenBLAS starts its own before
 * main), so the handler only writes to a pipe main waits on. Under --mpi
 * SIGUSR1 drains too: mpirun forwards it to every rank (the others ignore
 * it), while its own SIGTERM kills every rank a second later. -1 when the
 * pipe cannot be made. */
static int install_signals(int mpi)
{
	if (pipe2(sig_pipe, O_CLOEXEC) < 0) {
		perror("nnd: pipe");
		return -1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (mpi)
		sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* past a file-size limit a write fails with EFBIG (a 507), instead
	 * of the signal ending the daemon */
	signal(SIGXFSZ, SIG_IGN);
	return 0;
}

/* The running daemon's parts, in start-up order. */
typedef struct daemon_parts {
	http_server *h;
	store *st;
	jobs *q;
	studies *S;
	backend_ctx bctx;
	api_backend be;
} daemon_parts;

/* Binds (saying "listening on HOST:PORT" first on stderr), opens the store,
 * starts the workers and the study scheduler and hands requests the
 * backend. 0, or -1 after saying why with everything started stopped. */
static int start_parts(const opts *o, const secrets *sec, daemon_parts *d)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	char err[512];
	int bound = 0;
	if (cores < 1)
		cores = 1;
	/* a connection stays on one pool thread; a long upload parses on its
	 * thread, so more threads than cores keep the others answering */
	int pool = (int)(cores * 2 < 4 ? 4 : cores * 2);
	http_config hc = { .host = o->host, .port = (int)o->port, .threads = pool,
	                   .conn_limit = (unsigned)o->max_conns,
	                   .timeout_s = (unsigned)o->idle_timeout, .max_body = o->max_body,
	                   .api_key = sec->key, .workers = (int)o->workers, .queue = (int)o->queue,
	                   .tls_cert = sec->tls_cert, .tls_key = sec->tls_key,
	                   .max_streams = (int)o->max_streams,
	                   .request_timeout_s = (unsigned)o->request_timeout,
	                   .max_json_depth = (int)o->max_json_depth };
	memset(d, 0, sizeof *d);
	if (http_start(&hc, &d->h, &bound, err, sizeof err) < 0) {
		fprintf(stderr, "nnd: %s\n", err);
		return -1;
	}
	fprintf(stderr, "listening on %s:%d\n", o->host, bound);
	fflush(stderr);
	if (store_open_url(o->store_url, o->data_dir, &d->st, err, sizeof err) < 0) {
		fprintf(stderr, "nnd: %s\n", err);
		http_stop(d->h);
		return -1;
	}
	if (jobs_start(d->st, (int)o->workers, (int)o->queue, &o->lim, &d->q) < 0) {
		fprintf(stderr, "nnd: cannot start the workers\n");
		store_close(d->st);
		http_stop(d->h);
		return -1;
	}
	if (studies_start(d->st, d->q, &o->lim, (int)o->workers, &d->S) < 0)
		util_log(0, "nnd: cannot start the study scheduler; studies are off");
	d->bctx = (backend_ctx){ d->st, d->q, d->S };
	backend_fill(&d->bctx, o->max_body, &d->be);
	d->be.limits = o->lim;
	http_set_backend(d->h, d->st, d->q, &d->be);
	return 0;
}

/* The drain: not ready, no new connections, running jobs checkpoint and
 * stay queued, streams end; then everything is freed. */
static void stop_parts(daemon_parts *d)
{
	http_drain(d->h);
	studies_stop(d->S);
	jobs_stop(d->q);
	usleep(100 * 1000);   /* let resumed streams write their end */
	http_stop(d->h);
	studies_free(d->S);
	jobs_free(d->q);
	store_close(d->st);
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

	opts o = OPTS_DEFAULT;
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.healthcheck) {
		/* a probe: the other flags only say where the daemon listens */
		char err[300];
		if (healthcheck_run(o.host, (int)o.port, o.cert_file != NULL, 2000, err,
		                    sizeof err) < 0) {
			fprintf(stderr, "nnd: unhealthy: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (o.mpi && o.store_url) {
		/* a shared store's daemons claim jobs by their workers; the
		 * ranks of one daemon are not part of that */
		fprintf(stderr, "nnd: --mpi runs with its own store (--data-dir), not --store\n");
		return 2;
	}
	if (o.mpi) {
		/* every rank runs this binary; only rank 0 goes on to serve */
		int rank = ranks_init(&argc, &argv);
		if (rank < 0)
			return 1;
		if (rank > 0)
			return ranks_serve();
	}
	secrets sec;
	if ((rc = read_secrets(&o, &sec)) != 0) {
		ranks_finish();
		return rc;
	}
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (cores < 1)
		cores = 1;
	if (o.workers == 0)
		o.workers = cores;
	/* a data-parallel job holds up to every worker; under --mpi its
	 * replicas are ranks instead */
	o.lim.max_replicas = o.mpi ? ranks_size() : (int)o.workers;
	api_set_placement_ranks(o.mpi ? ranks_size() : 0);
	/* jobs share the cores: BLAS threads per job so they do not oversubscribe */
	nn_blas_set_threads(o.workers >= cores ? 1 : (int)(cores / o.workers));

	daemon_parts d;
	if (install_signals(o.mpi) < 0 || start_parts(&o, &sec, &d) < 0) {
		secrets_release(&sec);
		ranks_finish();
		return 1;
	}
	util_log(2, "nnd %s ready: data %s, %lld workers, queue %lld, BLAS %s, %s", NN_VERSION,
	         o.store_url ? store_kind(d.st) : o.data_dir, o.workers, o.queue,
	         nn_blas_core() ? nn_blas_core() : "?", sec.tls_cert ? "HTTPS" : "HTTP");
	if (o.mpi)
		util_log(2, "mpi: %d ranks; jobs of 2 to %d replicas run on them", ranks_size(),
		         ranks_size());

	unsigned char sig = 0;
	while (read(sig_pipe[0], &sig, 1) < 0 && errno == EINTR)
		;
	util_log(2, "signal %d: draining", sig);
	stop_parts(&d);
	ranks_finish();
	secrets_release(&sec);
	util_log(2, "stopped");
	return 0;
}
