/*
 * http.c - libmicrohttpd glue (see http.h).
 *
 * A request's life: the first call of on_request allocates its state in
 * *con_cls, routes it, checks the API key, the body's size and type, and
 * answers at once when any of that fails. Body pieces are then fed as MHD
 * delivers them (to a JSON buffer bounded by --max-body, or straight into
 * the upload readers, through the multipart parser for IDX pairs). The
 * final call dispatches. on_completed logs the line, counts the metrics
 * and frees the state.
 *
 * Event streams answer with a callback response. When the reader is ahead
 * of the job's feed, the connection is suspended under the feed lock and
 * resumed by whoever appends the next event, so no thread ever sleeps in
 * a callback.
 *
 * The request deadline (--request-timeout): MHD's idle timeout restarts on
 * every byte, so a client trickling a byte a second would hold a
 * connection forever. Every connection is tracked from MHD's connect
 * notification to its close notification (a list under a mutex); a reaper
 * thread looks once a second and shuts down the socket of a connection
 * whose request headers have not all arrived within the deadline (counted
 * from the connect, or from the end of the previous request on a kept-alive
 * connection, so an idle kept-alive connection also ends there), or whose
 * body, past the deadline, has averaged less than HTTP_MIN_BODY_RATE.
 * Connections answering (event streams included) are never cut by it. The
 * reaper only touches the fd recorded at connect, and only while the
 * connection is still registered, so it never races MHD's close.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http.h"
#include "metrics.h"
#include "multipart.h"
#include "numtext.h"
#include "predict.h"
#include "router.h"
#include "util.h"
#include "web.h"

extern const char nnd_openapi_json[];   /* openapi_blob.c */

struct http_server {
	struct MHD_Daemon *d;
	http_config cfg;
	char api_key[512];
	size_t api_key_len;
	store *st;
	jobs *q;
	api_backend be;
	volatile int ready;
	volatile int draining;
	int streams;             /* open event streams (atomic) */
	int nconns;              /* connections admitted and not yet closed (atomic) */
	pthread_mutex_t conns_mu;
	struct conn_rec *conns;
	pthread_t reaper;
	int reaper_on;
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cv;
	int stopping;
};

typedef struct stream stream;

/* A tracked connection (see the request deadline above). */
typedef struct conn_rec {
	struct conn_rec *next, *prev;
	int fd;
	int phase;               /* 0 headers, 1 body, 2 answering */
	int64_t since;           /* when the phase began (monotonic us) */
	int64_t body_bytes;
} conn_rec;

typedef struct req {
	http_server *h;
	struct MHD_Connection *conn;
	int64_t t0;
	int route;               /* index or -1 */
	char method[16];
	char path[256];
	char id[API_ID_LEN];
	int status;
	uint64_t bytes;
	int responded;
	/* a reply decided before the body was read, held until the body has
	 * been read and dropped (see on_request) */
	int hold;                /* while begin runs: hold what it queues */
	struct MHD_Response *held;
	int64_t held_at;         /* when it was decided (monotonic us) */
	int64_t dropped;         /* body bytes dropped since */
	/* body */
	route_body body;
	char *buf;
	size_t len, cap;
	int64_t total;
	int too_large;
	int failed;
	api_err *err;            /* uploads: the first error (allocated with the upload) */
	api_upload *up;
	mp_parser *mp;
	int part;                /* current multipart part: 0 images, 1 labels, 2 name */
	stream *sse;
	conn_rec *cr;            /* its connection's record (NULL when untracked) */
	/* BODY_ROWS: rows read and predicted as the body arrives */
	int bin;                 /* a float32 body (application/octet-stream); BODY_FILE: a file */
	predict_body *pb;        /* NULL when the handler reads the whole body */
} req;

struct stream {
	http_server *h;
	struct MHD_Connection *conn;
	feed *f;
	size_t cursor;
	feed_waiter w;
	int ndjson;
	int64_t last_id;         /* Last-Event-ID, -1 when none */
	char *pend;
	size_t pend_len, pend_off;
	int ended;
	int all;                 /* the all-jobs feed (GET /v1/events) */
	int epochs;              /* all: epoch events too (?all=true) */
	req *r;                  /* for the byte count; NULL once the request is done */
};

/* ---------------------------------------------------------------- replies */

/* The headers every reply may carry, onto resp. */
static void add_headers(struct MHD_Response *resp, const char *ctype, const char *location,
                        const char *allow, int retry_after, int www_auth,
                        const char *model_version, const char *disposition)
{
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (location && location[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
	if (allow && allow[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (retry_after > 0) {
		char ra[16];
		snprintf(ra, sizeof ra, "%d", retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (www_auth)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (model_version && model_version[0])
		MHD_add_response_header(resp, "X-Model-Version", model_version);
	if (disposition && disposition[0])
		MHD_add_response_header(resp, "Content-Disposition", disposition);
}

/* Queues resp (or holds it, for an early reply) and lets go of it. */
static enum MHD_Result send_resp(req *r, int status, struct MHD_Response *resp, size_t len)
{
	r->status = status;
	r->bytes = len;
	r->responded = 1;
	if (r->hold) {
		r->held = resp;
		r->held_at = util_mono_us();
		return MHD_YES;
	}
	enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result queue_v(req *r, int status, const char *ctype, char *body, size_t len,
                               const char *location, const char *allow, int retry_after,
                               int www_auth, const char *model_version,
                               const char *disposition)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE
		                                                               : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	add_headers(resp, ctype, location, allow, retry_after, www_auth, model_version, disposition);
	return send_resp(r, status, resp, len);
}

static enum MHD_Result queue(req *r, int status, const char *ctype, char *body, size_t len,
                             const char *location, const char *allow, int retry_after,
                             int www_auth)
{
	return queue_v(r, status, ctype, body, len, location, allow, retry_after, www_auth, NULL,
	               NULL);
}

static enum MHD_Result problem(req *r, const api_err *e, const char *allow, int retry_after,
                               int www_auth)
{
	char *body = api_problem_json(e);
	return queue(r, e->status, "application/problem+json", body, body ? strlen(body) : 0, NULL,
	             allow, retry_after, www_auth);
}

static enum MHD_Result fail(req *r, int status, const char *code, const char *detail)
{
	api_err e = API_ERR_INIT;
	api_err_set(&e, status, code, "%s", detail);
	return problem(r, &e, NULL, 0, 0);
}

static enum MHD_Result json(req *r, int status, const char *text)
{
	char *b = strdup(text);
	return queue(r, status, "application/json", b, b ? strlen(b) : 0, NULL, NULL, 0, 0);
}

/* A handler's streamed body (api_reply.stream_read), for libmicrohttpd. */
typedef struct body_stream {
	long (*read)(void *arg, char *buf, size_t cap);
	void (*done)(void *arg);
	void *arg;
} body_stream;

static ssize_t body_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	body_stream *b = cls;
	long n = b->read(b->arg, buf, max);
	return n > 0 ? (ssize_t)n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM
	                                   : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void body_stream_free(void *cls)
{
	body_stream *b = cls;
	b->done(b->arg);
	free(b);
}

/* rp's streamed body as a chunked reply (takes it over). */
static enum MHD_Result reply_stream(req *r, api_reply *rp)
{
	body_stream *b = malloc(sizeof *b);
	struct MHD_Response *resp = b ? MHD_create_response_from_callback(
		MHD_SIZE_UNKNOWN, 65536, body_stream_read, b, body_stream_free) : NULL;
	if (!resp) {
		free(b);
		return fail(r, 500, "out_of_memory", "out of memory");
	}
	*b = (body_stream){ rp->stream_read, rp->stream_done, rp->stream_arg };
	rp->stream_read = NULL;
	rp->stream_done = NULL;
	rp->stream_arg = NULL;
	add_headers(resp, rp->ctype, rp->location, NULL, rp->retry_after, 0, rp->model_version,
	            rp->disposition);
	return send_resp(r, rp->status, resp, 0);
}

static enum MHD_Result reply(req *r, api_reply *rp)
{
	if (rp->stream_read)
		return reply_stream(r, rp);
	char *body = rp->body;
	rp->body = NULL;
	size_t len = rp->body_len ? rp->body_len : body ? strlen(body) : 0;
	return queue_v(r, rp->status, rp->ctype, body, len, rp->location, NULL, rp->retry_after, 0,
	               rp->model_version, rp->disposition);
}

/* ---------------------------------------------------------------- helpers */

static const char *query_get(void *qcls, const char *key)
{
	return MHD_lookup_connection_value((struct MHD_Connection *)qcls, MHD_GET_ARGUMENT_KIND,
	                                   key);
}

static api_req make_req(req *r)
{
	api_req rq = { r->method, r->id[0] ? r->id : NULL, query_get, r->conn, r->buf, r->len,
		MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT) };
	return rq;
}

/* Constant-time comparison of the presented key and ours. */
static int key_ok(http_server *h, const char *auth)
{
	if (!auth || strncmp(auth, "Bearer ", 7) != 0)
		return 0;
	const char *k = auth + 7;
	size_t kl = strlen(k);
	unsigned diff = (unsigned)(kl ^ h->api_key_len);
	for (size_t i = 0; i < h->api_key_len; i++)
		diff |= (unsigned char)h->api_key[i] ^ (unsigned char)(i < kl ? k[i] : 0);
	return diff == 0;
}

static int ctype_is(const char *ct, const char *want)
{
	if (!ct)
		return 0;
	size_t n = strcspn(ct, "; \t");
	return n == strlen(want) && strncasecmp(ct, want, n) == 0;
}

/* ---------------------------------------------------------------- multipart */

static int mp_part_begin(void *ctx, const char *name, const char *filename)
{
	req *r = ctx;
	(void)filename;
	if (strcmp(name, "images") == 0)
		r->part = 0;
	else if (strcmp(name, "labels") == 0)
		r->part = 1;
	else if (strcmp(name, "name") == 0)
		r->part = 2;
	else {
		char field[160];
		snprintf(field, sizeof field, "%.100s", name[0] ? name : "(unnamed part)");
		api_err_field(r->err, field, "unknown part; expected images and labels");
		r->failed = 1;
		return 1;
	}
	return 0;
}

static int mp_part_data(void *ctx, const char *buf, size_t len)
{
	req *r = ctx;
	if (api_upload_feed(r->up, r->part, buf, len, r->err) < 0) {
		r->failed = 1;
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- streams */

static void stream_suspend(void *arg)
{
	stream *s = arg;
	MHD_suspend_connection(s->conn);
}

static void stream_wake(void *arg)
{
	stream *s = arg;
	MHD_resume_connection(s->conn);
}

static const char *kind_name(int kind)
{
	return kind == FEED_STEP ? "step" : kind == FEED_EPOCH ? "epoch" :
	       kind == FEED_TRIAL ? "trial" : "state";
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	stream *s = cls;
	(void)pos;
	for (;;) {
		if (s->pend_off < s->pend_len) {
			size_t n = s->pend_len - s->pend_off;
			if (n > max)
				n = max;
			memcpy(buf, s->pend + s->pend_off, n);
			s->pend_off += n;
			if (s->r)
				s->r->bytes += n;
			return (ssize_t)n;
		}
		if (s->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		int kind;
		int64_t id;
		char *data = NULL;
		int rc = jobs_feed_next_after(s->h->q, s->f, &s->cursor, s->last_id, &kind, &id,
		                              &data, &s->w);
		if (rc == 0)
			return 0;      /* suspended; resumed on the next event */
		if (rc < 0) {
			s->ended = 1;
			continue;
		}
		if (s->all && !s->epochs && (kind == FEED_EPOCH || kind == FEED_TRIAL)) {
			free(data);
			continue;
		}
		free(s->pend);
		size_t need = strlen(data) + 96;
		s->pend = malloc(need);
		if (!s->pend) {
			free(data);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		int n;
		if (s->ndjson)
			n = snprintf(s->pend, need, "{\"event\":\"%s\",\"id\":%lld,\"data\":%s}\n",
			             kind_name(kind), (long long)id, data);
		else
			n = snprintf(s->pend, need, "event: %s\nid: %lld\ndata: %s\n\n", kind_name(kind),
			             (long long)id, data);
		free(data);
		s->pend_len = n > 0 ? (size_t)n : 0;
		s->pend_off = 0;
	}
}

static void stream_free(void *cls)
{
	stream *s = cls;
	jobs_feed_close(s->h->q, s->f, &s->w);
	if (s->r)
		s->r->sse = NULL;
	__atomic_sub_fetch(&s->h->streams, 1, __ATOMIC_SEQ_CST);
	free(s->pend);
	free(s);
}

/* A job's events (all = 0), or every job's (all = 1: GET /v1/events). */
static enum MHD_Result serve_events(req *r, int all)
{
	http_server *h = r->h;
	api_err e = API_ERR_INIT;
	const char *fmt = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "format");
	if (fmt && strcmp(fmt, "ndjson") != 0 && strcmp(fmt, "sse") != 0)
		api_err_field(&e, "format", "must be sse or ndjson");
	const char *aq = all ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "all")
	                     : NULL;
	if (aq && strcmp(aq, "true") != 0 && strcmp(aq, "false") != 0)
		api_err_field(&e, "all", "must be true or false");
	if (e.n_fields)
		return problem(r, &e, NULL, 0, 0);
	int64_t last_id = -1, v;
	const char *lei = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
	if (lei && api_parse_i64(lei, &v) == 0)
		last_id = v;
	int max = h->cfg.max_streams > 0 ? h->cfg.max_streams : 1024;
	if (__atomic_add_fetch(&h->streams, 1, __ATOMIC_SEQ_CST) > max) {
		__atomic_sub_fetch(&h->streams, 1, __ATOMIC_SEQ_CST);
		api_err_set(&e, 429, "too_many_streams",
		            "%d event streams are open, the limit; retry later", max);
		return problem(r, &e, NULL, 1, 0);
	}
	size_t cursor = 0;
	feed *f = all ? jobs_events_open(h->q, last_id, &cursor) : jobs_feed_open(h->q, r->id, &e);
	if (!f) {
		__atomic_sub_fetch(&h->streams, 1, __ATOMIC_SEQ_CST);
		return problem(r, &e, NULL, 0, 0);
	}
	stream *s = calloc(1, sizeof *s);
	if (!s) {
		__atomic_sub_fetch(&h->streams, 1, __ATOMIC_SEQ_CST);
		jobs_feed_close(h->q, f, NULL);
		return fail(r, 500, "out_of_memory", "out of memory");
	}
	s->h = h;
	s->conn = r->conn;
	s->f = f;
	s->cursor = cursor;
	s->all = all;
	s->epochs = aq && strcmp(aq, "true") == 0;
	s->ndjson = fmt && strcmp(fmt, "ndjson") == 0;
	s->w.suspend = stream_suspend;
	s->w.wake = stream_wake;
	s->w.arg = s;
	s->last_id = all ? -1 : last_id;   /* the all-jobs cursor starts after it */
	struct MHD_Response *resp =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
	if (!resp) {
		stream_free(s);
		return fail(r, 500, "out_of_memory", "out of memory");
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        s->ndjson ? "application/x-ndjson" : "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	s->r = r;
	r->sse = s;
	enum MHD_Result rc = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	r->status = 200;
	r->responded = 1;
	return rc;
}

/* ---------------------------------------------------------------- dashboard */

/* GET / (a redirect to /ui/) and the dashboard's pages and files: stored
 * gzip-compressed, sent so to clients that accept gzip, inflated for the
 * others; never from another origin (the Content-Security-Policy). */
static enum MHD_Result serve_ui(req *r)
{
	struct MHD_Response *resp;
	int status = MHD_HTTP_OK;
	size_t len = 0;
	if (strcmp(r->path, "/") == 0) {
		resp = MHD_create_response_from_buffer(0, (char *)"", MHD_RESPMEM_PERSISTENT);
		status = MHD_HTTP_FOUND;
		if (resp)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, "/ui/");
	} else {
		web_asset a = web_asset_for(r->path);
		int gz = web_accepts_gzip(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
		                                                      MHD_HTTP_HEADER_ACCEPT_ENCODING));
		char *plain = gz ? NULL : web_inflate(&a, &len);
		if (!gz && !plain)
			return fail(r, 500, "out_of_memory", "out of memory");
		if (gz)
			len = a.gz_len;
		resp = gz ? MHD_create_response_from_buffer(len, (void *)a.gz, MHD_RESPMEM_PERSISTENT)
		          : MHD_create_response_from_buffer(len, plain, MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			free(plain);
			return MHD_NO;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a.ctype);
		if (gz)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
		MHD_add_response_header(resp, "Content-Security-Policy", web_csp);
		MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
		MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	}
	if (!resp)
		return MHD_NO;
	enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	r->status = status;
	r->bytes = len;
	r->responded = 1;
	return rc;
}

/* ---------------------------------------------------------------- service */

static enum MHD_Result serve_srv(req *r, route_srv srv)
{
	http_server *h = r->h;
	switch (srv) {
	case SRV_HEALTHZ:
		return json(r, 200, "{\"status\":\"ok\"}");
	case SRV_READYZ:
		if (h->ready && !h->draining && !store_ready(h->st))
			return fail(r, 503, "not_ready", "the store is unreachable");
		if (h->ready && !h->draining)
			return json(r, 200, "{\"status\":\"ready\"}");
		return fail(r, 503, "not_ready", h->draining ? "the daemon is shutting down"
		                                             : "the daemon is starting");
	case SRV_METRICS: {
		char *t = metrics_render(h->q, h->st);
		return queue(r, 200, "text/plain; version=0.0.4; charset=utf-8", t, t ? strlen(t) : 0,
		             NULL, NULL, 0, 0);
	}
	case SRV_OPENAPI:
		return json(r, 200, nnd_openapi_json);
	case SRV_INFO: {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "version", NN_VERSION);
		cJSON_AddNumberToObject(o, "workers", h->cfg.workers);
		cJSON_AddNumberToObject(o, "queue_capacity", h->cfg.queue);
		cJSON *b = cJSON_AddObjectToObject(o, "blas");
		cJSON_AddStringToObject(b, "library", "OpenBLAS");
		cJSON_AddStringToObject(b, "core", nn_blas_core() ? nn_blas_core() : "unknown");
		cJSON_AddNumberToObject(b, "threads", nn_blas_threads());
		cJSON_AddNumberToObject(o, "max_body", (double)h->cfg.max_body);
		char *t = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		return queue(r, 200, "application/json", t, t ? strlen(t) : 0, NULL, NULL, 0, 0);
	}
	case SRV_EVENTS:
		return serve_events(r, 0);
	case SRV_EVENTS_ALL:
		return serve_events(r, 1);
	case SRV_UI:
		return serve_ui(r);
	case SRV_NONE:
		break;
	}
	return fail(r, 404, "not_found", "no such route");
}

/* ---------------------------------------------------------------- connections */

/* Moves the request's connection record to a phase (under the list lock:
 * the reaper reads the fields). */
static int conn_live(http_server *h, const conn_rec *cr)
{
	for (const conn_rec *c = h->conns; c; c = c->next)
		if (c == cr)
			return 1;
	return 0;
}

static void conn_phase(req *r, int phase)
{
	if (!r->cr)
		return;
	pthread_mutex_lock(&r->h->conns_mu);
	if (conn_live(r->h, r->cr)) {
		r->cr->phase = phase;
		r->cr->since = util_mono_us();
		r->cr->body_bytes = 0;
	}
	pthread_mutex_unlock(&r->h->conns_mu);
}

/* ---------------------------------------------------------------- bodies */

/* JSON bodies of a known length up to this size get their buffer at once
 * (a 30 MB prediction batch is then never copied by realloc). */
#define HTTP_PREALLOC_MAX ((int64_t)64 << 20)

/* A hint for a large buffer about to be filled: transparent huge pages,
 * faulted in 2 MiB at a time rather than 4 KiB (a 30 MB batch body takes
 * 7,500 faults otherwise), over the whole of its pages, so that a body
 * longer than announced still grows by mremap. Nothing changes where the
 * kernel refuses. */
static void huge_pages(void *p, size_t len)
{
	if (len >= (size_t)8 << 20)
		nn_huge_pages(p, len);
}

/* How deep JSON text nests ([ and { outside strings), stopping past lim. */
static int json_depth_over(const char *s, size_t len, int lim)
{
	int depth = 0, in_str = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > lim)
				return 1;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return 0;
}

/* Answers with rp (taken), counting the predictions it holds. */
static enum MHD_Result answer(req *r, api_reply *rp)
{
	if (rp->rows > 0)
		metrics_count_predictions(rp->rows);
	enum MHD_Result rc = reply(r, rp);
	api_reply_release(rp);
	return rc;
}

/* BODY_NONE: the daemon's own endpoint, or the route's handler. */
static enum MHD_Result none_finish(req *r)
{
	const route *rt = &router_table[r->route];
	if (rt->srv != SRV_NONE)
		return serve_srv(r, rt->srv);
	api_req rq = make_req(r);
	api_reply rp = { 0 };
	rt->handler(&r->h->be, &rq, &rp);
	return answer(r, &rp);
}

/* BODY_JSON: the document, read whole into r->buf, to the handler. */
static enum MHD_Result json_begin(req *r, const char *ct, int64_t clen)
{
	(void)clen;
	if (ctype_is(ct, "application/json"))
		return MHD_YES;
	api_err e = API_ERR_INIT;
	api_err_set(&e, 415, "unsupported_media_type", "send application/json, not %.100s",
	            ct ? ct : "(no Content-Type)");
	return problem(r, &e, NULL, 0, 0);
}

static void json_piece(req *r, const char *data, size_t n)
{
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n + 1)
			cap *= 2;
		char *p = realloc(r->buf, cap);
		if (!p) {
			r->too_large = 1;
			return;
		}
		r->buf = p;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, n);
	r->len += n;
	r->buf[r->len] = '\0';
}

static enum MHD_Result json_finish(req *r)
{
	int jd = r->h->cfg.max_json_depth > 0 ? r->h->cfg.max_json_depth : 128;
	if (r->buf && json_depth_over(r->buf, r->len, jd)) {
		api_err e = API_ERR_INIT;
		api_err_set(&e, 400, "malformed_json", "the JSON nests deeper than %d levels", jd);
		return problem(r, &e, NULL, 0, 0);
	}
	return none_finish(r);
}

/* BODY_FILE: a JSON document, or a file (application/octet-stream: a
 * model file), read whole into r->buf for the handler. */
static enum MHD_Result file_begin(req *r, const char *ct, int64_t clen)
{
	r->bin = ctype_is(ct, "application/octet-stream");
	if (r->bin)
		return MHD_YES;
	if (ctype_is(ct, "application/json"))
		return json_begin(r, ct, clen);
	api_err e = API_ERR_INIT;
	api_err_set(&e, 415, "unsupported_media_type",
	            "send application/json, or application/octet-stream for a model file, "
	            "not %.100s", ct ? ct : "(no Content-Type)");
	return problem(r, &e, NULL, 0, 0);
}

static enum MHD_Result file_finish(req *r)
{
	return r->bin ? none_finish(r) : json_finish(r);
}

/* BODY_UPLOAD: CSV, JSON or multipart IDX, streamed into api_upload. */
static enum MHD_Result upload_begin(req *r, const char *ct, int64_t clen)
{
	(void)clen;
	if (!(r->err = calloc(1, sizeof *r->err)))
		return fail(r, 500, "out_of_memory", "out of memory");
	int kind = api_upload_kind_of(ct);
	if (kind < 0) {
		api_err e = API_ERR_INIT;
		api_err_set(&e, 415, "unsupported_media_type",
		            "upload text/csv, application/json or multipart/form-data, not %.100s",
		            ct ? ct : "(none)");
		return problem(r, &e, NULL, 0, 0);
	}
	if (kind == API_UPLOAD_IDX) {
		char boundary[80];
		mp_callbacks cb = { r, mp_part_begin, mp_part_data, NULL };
		if (mp_boundary_of(ct, boundary, sizeof boundary) < 0 ||
		    !(r->mp = mp_new(boundary, &cb)))
			return fail(r, 400, "malformed_multipart",
			            "the multipart Content-Type has no usable boundary");
	}
	api_err e = API_ERR_INIT;
	api_req rq = make_req(r);
	r->up = api_upload_new((api_upload_kind)kind, &rq, r->h->cfg.max_body, &e);
	if (!r->up)
		return problem(r, &e, NULL, 0, 0);
	return MHD_YES;
}

static void upload_piece(req *r, const char *data, size_t n)
{
	if (r->mp) {
		if (mp_feed(r->mp, data, n) < 0 && !r->failed) {
			r->failed = 1;
			api_err_set(r->err, 400, "malformed_multipart", "%s", mp_error(r->mp));
		}
	} else if (api_upload_feed(r->up, 0, data, n, r->err) < 0) {
		r->failed = 1;
	}
}

static enum MHD_Result upload_finish(req *r)
{
	if (r->mp && mp_finish(r->mp) < 0) {
		api_err e = API_ERR_INIT;
		api_err_set(&e, 400, "malformed_multipart", "%s", mp_error(r->mp));
		return problem(r, &e, NULL, 0, 0);
	}
	api_req rq = make_req(r);
	api_reply rp = { 0 };
	api_upload_finish(r->up, &r->h->be, &rq, &rp);
	return answer(r, &rp);
}

/* BODY_ROWS: JSON or float32 rows, read and predicted as they arrive
 * (predict.h). A JSON body also goes to r->buf: when it is not the plain
 * shape, it is a JSON document for the route's handler, which names the
 * fault. */
static enum MHD_Result rows_begin(req *r, const char *ct, int64_t clen)
{
	r->bin = ctype_is(ct, "application/octet-stream");
	if (!r->bin && !ctype_is(ct, "application/json")) {
		api_err e = API_ERR_INIT;
		api_err_set(&e, 415, "unsupported_media_type",
		            "send application/json or application/octet-stream (float32 rows), "
		            "not %.100s", ct ? ct : "(no Content-Type)");
		return problem(r, &e, NULL, 0, 0);
	}
	api_req rq = make_req(r);
	int binary_reply = api_predict_accepts_binary(rq.accept);
	if (!r->bin) {
		/* the model's absence or a bad body is the handler's to name */
		r->pb = predict_begin(&r->h->be, &rq, API_PREDICT_JSON, clen, binary_reply, NULL);
		if (clen > 0 && clen <= HTTP_PREALLOC_MAX) {
			if (!(r->buf = malloc((size_t)clen + 1)))
				return fail(r, 500, "out_of_memory", "out of memory");
			r->cap = (size_t)clen + 1;
			huge_pages(r->buf, r->cap);
		}
		return MHD_YES;
	}
	api_err *e = calloc(1, sizeof *e);
	if (!e)
		return fail(r, 500, "out_of_memory", "out of memory");
	r->pb = predict_begin(&r->h->be, &rq, API_PREDICT_BINARY, clen, binary_reply, e);
	enum MHD_Result rc = r->pb ? MHD_YES : problem(r, e, NULL, 0, 0);
	free(e);
	return rc;
}

static void rows_piece(req *r, const char *data, size_t n)
{
	if (r->bin) {
		predict_feed(r->pb, data, n);
		return;
	}
	json_piece(r, data, n);
	if (!r->too_large)
		predict_scan(r->pb, r->buf, r->len);
}

static enum MHD_Result rows_finish(req *r)
{
	api_reply rp = { 0 };
	int done = predict_finish(r->pb, &rp);
	predict_free(r->pb);
	r->pb = NULL;
	return done ? answer(r, &rp) : json_finish(r);
}

/* How each kind of body (the route's) is taken: begin checks the request's
 * headers (answering at once when they fail), piece takes each piece of
 * the body as it arrives, finish answers once the body is complete. */
static const struct body_kind {
	enum MHD_Result (*begin)(req *r, const char *ct, int64_t clen);
	void (*piece)(req *r, const char *data, size_t n);
	enum MHD_Result (*finish)(req *r);
} body_kinds[] = {
	[BODY_NONE] = { NULL, NULL, none_finish },
	[BODY_JSON] = { json_begin, json_piece, json_finish },
	[BODY_UPLOAD] = { upload_begin, upload_piece, upload_finish },
	[BODY_ROWS] = { rows_begin, rows_piece, rows_finish },
	[BODY_FILE] = { file_begin, json_piece, file_finish },
};

/* ---------------------------------------------------------------- requests */

/* The first call: route, auth, size and type checks, body sink. */
static enum MHD_Result begin(req *r, const char *method, const char *url)
{
	http_server *h = r->h;
	char allow[64];
	int idx = router_match(method, url, r->id, sizeof r->id, allow, sizeof allow);
	if (idx == -405) {
		api_err e = API_ERR_INIT;
		api_err_set(&e, 405, "method_not_allowed", "%s is not allowed here; use %s", method,
		            allow);
		return problem(r, &e, allow, 0, 0);
	}
	if (idx < 0)
		return fail(r, 404, "not_found", "no such resource");
	r->route = idx;
	const route *rt = &router_table[idx];
	if (h->api_key_len && !rt->open &&
	    !key_ok(h, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization"))) {
		api_err e = API_ERR_INIT;
		api_err_set(&e, 401, "unauthorized", "a valid API key is required (Authorization: Bearer <key>)");
		return problem(r, &e, NULL, 0, 1);
	}
	if (!h->ready && rt->srv != SRV_HEALTHZ && rt->srv != SRV_READYZ)
		return fail(r, 503, "not_ready", "the daemon is starting");
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t clen = 0;
	if (cl && api_parse_i64(cl, &clen) == 0 && clen > h->cfg.max_body) {
		api_err e = API_ERR_INIT;
		api_err_set(&e, 413, "body_too_large", "the body is %lld bytes; the limit is %lld",
		            (long long)clen, (long long)h->cfg.max_body);
		return problem(r, &e, NULL, 0, 0);
	}
	r->body = rt->body;
	const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                             MHD_HTTP_HEADER_CONTENT_TYPE);
	if (body_kinds[r->body].begin)
		return body_kinds[r->body].begin(r, ct, cl ? clen : -1);
	return MHD_YES;
}

/* A piece of the body. */
static void body_piece(req *r, const char *data, size_t n)
{
	r->total += (int64_t)n;
	if (r->cr) {
		pthread_mutex_lock(&r->h->conns_mu);
		if (conn_live(r->h, r->cr) && r->cr->phase == 1)
			r->cr->body_bytes += (int64_t)n;
		pthread_mutex_unlock(&r->h->conns_mu);
	}
	if (r->total > r->h->cfg.max_body)
		r->too_large = 1;
	if (r->too_large || r->failed || !body_kinds[r->body].piece)
		return;
	body_kinds[r->body].piece(r, data, n);
}

/* The last call: the body is complete. */
static enum MHD_Result dispatch(req *r)
{
	if (r->too_large) {
		api_err e = API_ERR_INIT;
		api_err_set(&e, 413, "body_too_large", "the body exceeds the limit of %lld bytes",
		            (long long)r->h->cfg.max_body);
		return problem(r, &e, NULL, 0, 0);
	}
	if (r->failed)
		return problem(r, r->err, NULL, 0, 0);
	conn_phase(r, 2);
	return body_kinds[r->body].finish(r);
}

/* ---------------------------------------------------------------- early replies */

/*
 * A reply decided from the headers alone (404, 405, 401, 413 by
 * Content-Length, 415...) is held while the body arrives, and queued once
 * it has been read and dropped. Queued at once, MHD would send it and
 * close the connection with the body still arriving, and the client's
 * unread bytes reset the connection, often before the client has read the
 * reply: a client that writes its whole body before reading (Python's
 * http.client) saw a broken pipe instead of the 413. Reading on is bounded
 * (HTTP_DROP_MAX bytes, HTTP_DROP_US), as nginx's lingering close is;
 * past either the connection is closed. A client that sent Expect:
 * 100-continue has sent no body yet and waits: it is answered at once (and
 * then sends none).
 */
#define HTTP_DROP_MAX ((int64_t)64 << 20)
#define HTTP_DROP_US ((int64_t)10 * 1000000)

/* 1 when replies decided before the body should wait for it: a body is
 * coming (a Content-Length up to HTTP_DROP_MAX, or chunked) and the
 * client does not wait for a 100 Continue. */
static int hold_early_replies(struct MHD_Connection *conn)
{
	const char *ex = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
	if (ex && strncasecmp(ex, "100-continue", 12) == 0)
		return 0;
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t clen = 0;
	if (cl)
		return api_parse_i64(cl, &clen) == 0 && clen > 0 && clen <= HTTP_DROP_MAX;
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                   MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/* A piece of a body behind a held reply: dropped, within the bounds. */
static enum MHD_Result drop_piece(req *r, size_t n)
{
	r->dropped += (int64_t)n;
	if (r->dropped > HTTP_DROP_MAX || util_mono_us() - r->held_at > HTTP_DROP_US) {
		util_log(3, "%s %s: the body after an early %d went on too long: closed", r->method,
		         r->path, r->status);
		return MHD_NO;
	}
	return MHD_YES;
}

/* Copies s into d (cap bytes, truncated, NUL-terminated) with control
 * bytes as '?'. */
static void log_copy(char *d, size_t cap, const char *s)
{
	size_t i = 0;
	for (; s[i] && i + 1 < cap; i++)
		d[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	d[i] = 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	http_server *h = cls;
	(void)version;
	req *r = *con_cls;
	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		r->h = h;
		r->conn = conn;
		r->t0 = util_mono_us();
		r->route = -1;
		/* both are logged: no control bytes from clients in the log */
		log_copy(r->method, sizeof r->method, method);
		log_copy(r->path, sizeof r->path, url);
		*con_cls = r;
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		r->cr = ci ? ci->socket_context : NULL;
		conn_phase(r, 1);
		r->hold = hold_early_replies(conn);
		enum MHD_Result rc = begin(r, method, url);
		r->hold = 0;
		if (r->responded && !r->held)
			conn_phase(r, 2);
		return rc;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (r->held)
			return drop_piece(r, n);
		if (!r->responded)
			body_piece(r, upload_data, n);
		return MHD_YES;
	}
	if (r->held) {
		/* the body is read: the reply now leaves on a clean connection */
		enum MHD_Result rc = MHD_queue_response(conn, (unsigned)r->status, r->held);
		MHD_destroy_response(r->held);
		r->held = NULL;
		conn_phase(r, 2);
		return rc;
	}
	if (r->responded)
		return MHD_YES;
	return dispatch(r);
}

/* The access log's line, "METHOD PATH STATUS BYTES USus[ (aborted)]",
 * made without printf (util_log_text). */
static void log_access(const req *r, int status, int64_t us, int aborted)
{
	char line[sizeof r->method + sizeof r->path + 4 * API_NUM_TEXT_MAX + 16];
	size_t n = 0, k;
	k = strlen(r->method);
	memcpy(line + n, r->method, k);
	n += k;
	line[n++] = ' ';
	k = strlen(r->path);
	memcpy(line + n, r->path, k);
	n += k;
	line[n++] = ' ';
	n += (size_t)api_num_int_text(line + n, status);
	line[n++] = ' ';
	n += (size_t)api_num_int_text(line + n, (long long)r->bytes);
	line[n++] = ' ';
	n += (size_t)api_num_int_text(line + n, (long long)us);
	memcpy(line + n, "us", 2);
	n += 2;
	if (aborted) {
		memcpy(line + n, " (aborted)", 10);
		n += 10;
	}
	util_log_text(2, line, n);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	int64_t us = util_mono_us() - r->t0;
	if (r->sse)
		r->sse->r = NULL;
	int status = r->status ? r->status : 499;
	if (util_log_level >= 2)
		log_access(r, status, us, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
	metrics_observe(r->route, status, us);
	conn_phase(r, 0);   /* a kept-alive connection waits for its next headers */
	if (r->held)
		MHD_destroy_response(r->held);
	int upload = r->up != NULL;
	api_upload_free(r->up);
	predict_free(r->pb);
	mp_free(r->mp);
	free(r->err);
	free(r->buf);
	free(r);
	if (upload)   /* its reader's freed blocks back to the system */
		util_malloc_release();
}

/* ---------------------------------------------------------------- deadline */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	http_server *h = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		conn_rec *c = calloc(1, sizeof *c);
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!c || !ci) {
			free(c);
			*socket_context = NULL;
			return;
		}
		c->fd = ci->connect_fd;
		c->since = util_mono_us();
		pthread_mutex_lock(&h->conns_mu);
		c->next = h->conns;
		if (h->conns)
			h->conns->prev = c;
		h->conns = c;
		pthread_mutex_unlock(&h->conns_mu);
		*socket_context = c;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		__atomic_sub_fetch(&h->nconns, 1, __ATOMIC_SEQ_CST);
		conn_rec *c = *socket_context;
		if (!c)
			return;
		pthread_mutex_lock(&h->conns_mu);
		if (c->prev)
			c->prev->next = c->next;
		else
			h->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		pthread_mutex_unlock(&h->conns_mu);
		*socket_context = NULL;
		free(c);
	}
}

/* The connection limit, over the whole pool: MHD divides its own limit
 * among the pool's threads, and a thread at its share leaves the others'
 * accepts waiting, so the daemon counts for itself. Past the limit a new
 * connection is closed at once, before any byte is read. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
	http_server *h = cls;
	(void)addr;
	(void)len;
	if (__atomic_load_n(&h->draining, __ATOMIC_SEQ_CST)) {
		util_log(3, "connection refused: the daemon is shutting down");
		return MHD_NO;
	}
	unsigned lim = h->cfg.conn_limit ? h->cfg.conn_limit : 1024u;
	if ((unsigned)__atomic_add_fetch(&h->nconns, 1, __ATOMIC_SEQ_CST) > lim) {
		__atomic_sub_fetch(&h->nconns, 1, __ATOMIC_SEQ_CST);
		util_log(3, "connection refused: %u open, the limit", lim);
		return MHD_NO;
	}
	return MHD_YES;   /* counted down on MHD_CONNECTION_NOTIFY_CLOSED */
}

/* Once a second: shut down the connections past the request deadline. */
static void *reaper_main(void *arg)
{
	http_server *h = arg;
	int64_t limit = (int64_t)h->cfg.request_timeout_s * 1000000;
	pthread_mutex_lock(&h->stop_mu);
	while (!h->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&h->stop_cv, &h->stop_mu, &ts);
		if (h->stopping)
			break;
		int64_t now = util_mono_us();
		pthread_mutex_lock(&h->conns_mu);
		for (conn_rec *c = h->conns; c; c = c->next) {
			int64_t age = now - c->since;
			int cut = 0;
			if (c->phase == 0)
				cut = age > limit;
			else if (c->phase == 1 && age > limit)
				cut = (double)c->body_bytes * 1e6 / (double)age < HTTP_MIN_BODY_RATE;
			if (cut && c->fd >= 0) {
				util_log(3, "connection past the request deadline: closed");
				shutdown(c->fd, SHUT_RDWR);
				c->fd = -1;   /* once */
			}
		}
		pthread_mutex_unlock(&h->conns_mu);
	}
	pthread_mutex_unlock(&h->stop_mu);
	return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

int http_start(const http_config *cfg, http_server **out, int *port, char *err, size_t errlen)
{
	http_server *h = calloc(1, sizeof *h);
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->cfg = *cfg;
	pthread_mutex_init(&h->conns_mu, NULL);
	pthread_mutex_init(&h->stop_mu, NULL);
	pthread_cond_init(&h->stop_cv, NULL);
	if (cfg->api_key && cfg->api_key[0]) {
		snprintf(h->api_key, sizeof h->api_key, "%s", cfg->api_key);
		h->api_key_len = strlen(h->api_key);
	}
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)cfg->port);
	const char *host = strcmp(cfg->host, "localhost") == 0 ? "127.0.0.1" : cfg->host;
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "not an IPv4 address: %s", cfg->host);
		free(h);
		return -1;
	}
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	/* HTTPS: the certificate and key from memory (MHD's GnuTLS) */
	int tls = cfg->tls_cert && cfg->tls_key;
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)cfg->tls_key },
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cfg->tls_cert },
		{ MHD_OPTION_END, 0, NULL },
	};
	struct MHD_OptionItem no_opts[] = { { MHD_OPTION_END, 0, NULL } };
	if (tls) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			snprintf(err, errlen, "this libmicrohttpd was built without TLS support");
			free(h);
			return -1;
		}
		flags |= MHD_USE_TLS;
	}
	unsigned threads = (unsigned)(cfg->threads > 0 ? cfg->threads : 2);
	unsigned conn_limit = cfg->conn_limit ? cfg->conn_limit : 1024u;
	h->d = MHD_start_daemon(flags, 0, on_accept, h, on_request, h,
	                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	                        MHD_OPTION_THREAD_POOL_SIZE, threads,
	                        /* each thread may hold them all; on_accept counts */
	                        MHD_OPTION_CONNECTION_LIMIT, conn_limit * threads,
	                        MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s ? cfg->timeout_s : 60u,
	                        /* MHD zeroes the whole pool after every request:
	                         * 32 KiB holds any sane header block and reads
	                         * bodies in pieces of some 16 KiB as fast as
	                         * 256 KiB did, at an eighth of the clearing */
	                        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
	                        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	                        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
	                        MHD_OPTION_ARRAY, tls ? tls_opts : no_opts,
	                        MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen, "cannot listen on %s:%d%s", cfg->host, cfg->port,
		         tls ? " (or the TLS certificate or key was refused)" : "");
		free(h);
		return -1;
	}
	if (cfg->request_timeout_s > 0) {
		if (pthread_create(&h->reaper, NULL, reaper_main, h) != 0) {
			snprintf(err, errlen, "cannot start the request-deadline thread");
			MHD_stop_daemon(h->d);
			free(h);
			return -1;
		}
		h->reaper_on = 1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	*port = di ? di->port : cfg->port;
	*out = h;
	return 0;
}

void http_set_backend(http_server *h, store *st, jobs *q, const api_backend *be)
{
	h->st = st;
	h->q = q;
	h->be = *be;
	__atomic_store_n(&h->ready, 1, __ATOMIC_SEQ_CST);
}

void http_drain(http_server *h)
{
	if (!h)
		return;
	/* new connections are closed as soon as they are accepted (on_accept)
	 * from now on, and the listen socket with MHD_stop_daemon. Not
	 * MHD_quiesce_daemon: with a thread pool it races the pool's threads
	 * taking the socket out of their epoll sets, and the loser aborts the
	 * daemon ("Failed to remove listen FD from epoll set", libmicrohttpd
	 * 0.9.75, seen under load at SIGTERM) */
	__atomic_store_n(&h->draining, 1, __ATOMIC_SEQ_CST);
}

void http_stop(http_server *h)
{
	if (!h)
		return;
	if (h->reaper_on) {
		pthread_mutex_lock(&h->stop_mu);
		h->stopping = 1;
		pthread_cond_signal(&h->stop_cv);
		pthread_mutex_unlock(&h->stop_mu);
		pthread_join(h->reaper, NULL);
	}
	MHD_stop_daemon(h->d);
	pthread_mutex_destroy(&h->conns_mu);
	pthread_mutex_destroy(&h->stop_mu);
	pthread_cond_destroy(&h->stop_cv);
	free(h);
}
