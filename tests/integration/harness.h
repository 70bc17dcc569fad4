/*
 * harness.h - what the integration tests share: start bin/nnd ($NND_BIN,
 * default "bin") on 127.0.0.1:0 with a fresh data directory, read its port
 * from the first line of its stderr, talk to it over libcurl, stop it (by
 * SIGTERM or SIGKILL) and restart it on the same data.
 *
 * NND_WRAP, when set, is a command put before the daemon's (split on
 * spaces), e.g. "valgrind --leak-check=full --log-file=/tmp/vg.%p"; it must
 * keep the daemon's stderr for the daemon.
 *
 * NND_TEST_STORE, when set, holds more daemon flags (split on spaces) with
 * "@ID@" standing for a name unique to the daemon's directory: the suite
 * runs against another store, e.g. PostgreSQL (tests/pg/run-pg.sh).
 */
#ifndef NND_HARNESS_H
#define NND_HARNESS_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

typedef struct nnd {
	pid_t pid;
	int port;
	char dir[256];        /* temporary root: data/ and nnd.log inside */
	char data[300];
	char log[300];
	char key[128];        /* sent as the bearer token when not empty */
	char args[8][64];     /* extra flags */
	int nargs;
	char cainfo[256];     /* when set: talk HTTPS, trusting this PEM file */
	uid_t uid;            /* run as this user when not 0 (nnd_start_as) */
	gid_t gid;
} nnd;

/* Makes the temporary directory, starts the daemon with the extra flags
 * (NULL-terminated list, may be NULL) and waits for /readyz. 0 or -1. */
int nnd_start(nnd *d, const char *const *flags);
/* As nnd_start, but the daemon runs as uid/gid (the test must be root):
 * the temporary directory is given to that user first. */
int nnd_start_as(nnd *d, const char *const *flags, uid_t uid, gid_t gid);
/* Starts it again on the same data directory and flags. */
int nnd_restart(nnd *d);
/* SIGTERM and wait (at most timeout_s); returns the exit status or -1. */
int nnd_stop(nnd *d, int timeout_s);
/* Waits at most timeout_s for the daemon (or its NND_WRAP command) to
 * exit by itself: its exit status, or -1 while it still runs. */
int nnd_wait(nnd *d, int timeout_s);
/* SIGKILL and reap. */
void nnd_kill9(nnd *d);
/* Stops (if running) and removes the temporary directory. Returns the
 * daemon's exit status (0 when it was not running), so a test can require
 * a clean exit (under make sanitize a leak report makes it non-zero). */
int nnd_cleanup(nnd *d);

typedef struct http_resp {
	long status;
	char *body;           /* NUL-terminated */
	size_t len;
	char ctype[128];
	char location[128];
	char allow[64];
	char retry_after[16];
	char www_auth[64];
} http_resp;

void resp_free(http_resp *r);

/* One request. ctype NULL = no body header; auth: 1 = send d->key when set,
 * 0 = no Authorization header; bearer overrides the key when not NULL. */
long http_do(nnd *d, const char *method, const char *path, const char *ctype,
             const char *body, size_t len, http_resp *out);
long http_do_auth(nnd *d, const char *method, const char *path, const char *ctype,
                  const char *body, size_t len, const char *bearer, http_resp *out);
/* POSTs a JSON text; the parsed reply (caller deletes; NULL when not
 * JSON) and the status. */
cJSON *http_post_text(nnd *d, const char *path, const char *body, long *status);
/* GET with an Accept header. */
long http_get_accept(nnd *d, const char *path, const char *accept, http_resp *out);
/* JSON helpers: the parsed body (caller deletes), NULL when not JSON. */
cJSON *http_json(nnd *d, const char *method, const char *path, const cJSON *body,
                 long *status);
/* Multipart upload of IDX parts from memory. */
long http_multipart(nnd *d, const char *path, const char *images, size_t ilen,
                    const char *labels, size_t llen, http_resp *out);

/* Polls GET /v1/jobs/{id} until a final state (or timeout_s); returns the
 * job object (caller deletes) or NULL. */
cJSON *wait_job(nnd *d, const char *id, int timeout_s);
/* The string field of o, or "" */
const char *jstr(const cJSON *o, const char *key);
double jnum(const cJSON *o, const char *key);

/* Reads the whole event stream of a job (SSE or ?format=ndjson) into a
 * malloc'd string; extra headers may be NULL. */
char *read_stream(nnd *d, const char *path, const char *last_event_id);

/* read_stream on a thread of its own: a subscriber that follows a job while
 * the test goes on. bg_stream_start returns 0, or -1 when no thread could be
 * started; bg_stream_join waits for the stream's end and returns its text
 * (the caller frees it; NULL when the daemon sent no stream). */
typedef struct bg_stream {
	nnd *d;
	char path[128];
	char *text;
	pthread_t th;
} bg_stream;
int bg_stream_start(bg_stream *s, nnd *d, const char *path);
char *bg_stream_join(bg_stream *s);

/* $NND_SHARED or ../shared (relative to the repo root). */
const char *shared_dir(void);

/* Sleeps ms milliseconds (for polling loops, never for timing asserts). */
void sleep_ms(int ms);
/* 1 when a line of the daemon's log (d->log) holds needle, else 0. */
int log_has(const nnd *d, const char *needle);
/* log_has, asked every 10 ms for up to ms: for a line the daemon writes after
 * what the test saw (a connection's end is logged once it is closed). */
int log_within(const nnd *d, const char *needle, int ms);

/* ---- check-based helpers (static inline: they assert as the tests do) */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs every test of s (and frees it); 1 when any failed, else 0. */
static inline int run_suite(Suite *s)
{
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}

/* v big-endian into p[0..3] (IDX headers). */
static inline void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* The headers of an IDX pair: images (magic 0x803, n x rows x cols bytes
 * after 16) and labels (magic 0x801, n bytes after 8). */
static inline void put_idx_headers(unsigned char *images, unsigned char *labels, uint32_t n,
                                   uint32_t rows, uint32_t cols)
{
	put_be32(images, 0x803);
	put_be32(images + 4, n);
	put_be32(images + 8, rows);
	put_be32(images + 12, cols);
	put_be32(labels, 0x801);
	put_be32(labels + 4, n);
}

/* The number `key` of the JSON object GET path_fmt (one %s: id) answers;
 * asserts there is a JSON reply. */
static inline int get_int(nnd *d, const char *path_fmt, const char *id, const char *key)
{
	char path[128];
	snprintf(path, sizeof path, path_fmt, id);
	cJSON *j = http_json(d, "GET", path, NULL, NULL);
	ck_assert_ptr_nonnull(j);
	int v = (int)jnum(j, key);
	cJSON_Delete(j);
	return v;
}

/* The weights of a model's current version as the JSON text GET
 * /v1/models/{id}/weights answers (asserting 200); the caller frees it. */
/* Submits the job document body (202 asserted) and waits for its end; the
 * final job object (caller deletes). */
static inline cJSON *train_to_end(nnd *d, const char *body)
{
	long st;
	cJSON *j = http_post_text(d, "/v1/jobs", body, &st);
	ck_assert_msg(st == 202, "job: %ld", st);
	char id[32];
	snprintf(id, sizeof id, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	cJSON *done = wait_job(d, id, 120);
	ck_assert_ptr_nonnull(done);
	return done;
}

static inline char *weights_text(nnd *d, const char *mdl)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/models/%s/weights", mdl);
	http_resp r;
	ck_assert_int_eq(http_do(d, "GET", path, NULL, NULL, 0, &r), 200);
	char *w = strdup(r.body);
	resp_free(&r);
	return w;
}

#endif

/* ---- small synthetic data (deterministic) */
/* CSV with a header "f0,...,label": rows x feats numbers, label "c<k>" of
 * `classes` separable classes. malloc'd. */
char *gen_csv(int rows, int feats, int classes, unsigned seed);
/* {"name", "task": "classification", "x", "y"} with the same data. */
cJSON *gen_json(int rows, int feats, int classes, unsigned seed);
/* Uploads (CSV or JSON), creates a model and returns their ids (0 or -1). */
int make_dataset_csv(nnd *d, int rows, int feats, int classes, char *ds_id);
int make_model(nnd *d, int inputs, int outputs, int hidden, int seed, char *mdl_id);
/* POST /v1/models with the JSON spec; returns the HTTP status and, when
 * mdl_id is not NULL, the new id (32 bytes; "" when the reply has none). */
long create_model(nnd *d, const char *spec, char *mdl_id);
/* Submits a job; returns the HTTP status and the job id. */
long submit_job(nnd *d, const char *mdl, const char *ds, int epochs, int batch,
                const char *extra_json, char *job_id);
