/*
 * nnctl.h - what the parts of the nnctl command-line client share: a growable
 * byte buffer, the HTTP layer over libcurl (one request, a streamed upload, an
 * IDX multipart upload, an event stream), the Server-Sent Events parser, and
 * the follow display. nnctl.c holds the commands; http.c, sse.c and follow.c
 * hold the rest.
 */
#ifndef NNCTL_H
#define NNCTL_H

#include <stddef.h>
#include <stdio.h>
#include <cjson/cJSON.h>

/* Exit statuses of nnctl. */
enum {
	NC_OK = 0,
	NC_ERR = 1,        /* the server answered with an error, or could not be reached */
	NC_USAGE = 2,      /* bad command line or unreadable input file */
	NC_JOB_FAILED = 3, /* a followed job ended failed */
	NC_JOB_CANCELLED = 4 /* a followed job ended cancelled */
};

/* A growable byte buffer. Invariant: data is NUL-terminated when non-NULL;
 * len excludes the NUL. NC_BUF_INIT is an empty buffer. */
typedef struct nc_buf {
	char *data;
	size_t len, cap;
} nc_buf;
#define NC_BUF_INIT { NULL, 0, 0 }

/* Appends n bytes; returns 0, or -1 when out of memory. */
int nc_buf_add(nc_buf *b, const void *p, size_t n);
/* Frees the buffer's memory and empties it (NULL is fine). */
void nc_buf_release(nc_buf *b);

/* Where and how to talk to the daemon. Strings are borrowed. */
typedef struct nc_ctx {
	const char *server;   /* "http://127.0.0.1:8080", no trailing slash */
	const char *api_key;  /* NULL or "" for none */
	int json;             /* --json: print raw replies */
	int quiet;            /* -q: print only ids */
} nc_ctx;

/* A reply: status 0 means the request did not reach the server (err holds why). */
typedef struct nc_reply {
	long status;
	nc_buf body;
	char err[256];
} nc_reply;
#define NC_REPLY_INIT { 0, NC_BUF_INIT, "" }

void nc_reply_release(nc_reply *r);

/* Sends method path (with any query) and a body of len bytes (body may be
 * NULL) of content_type (NULL for none). Fills r; returns 0 when the server
 * answered with a 2xx, -1 otherwise (r->status tells which). */
int nc_request(const nc_ctx *c, const char *method, const char *path,
               const char *content_type, const void *body, size_t len, nc_reply *r);

/* GETs path with an Accept header, writing a 2xx body to out as it
 * arrives (any other body goes to r, for nc_print_problem). */
int nc_get_to(const nc_ctx *c, const char *path, const char *accept, FILE *out, nc_reply *r);

/* Sends a JSON body (serialised compactly from j). */
int nc_request_json(const nc_ctx *c, const char *method, const char *path,
                    const cJSON *j, nc_reply *r);

/* POSTs the file at fpath as the body (streamed from disk). */
int nc_post_file(const nc_ctx *c, const char *path, const char *fpath,
                 const char *content_type, nc_reply *r);

/* POSTs an IDX pair as multipart/form-data with parts "images" and "labels". */
int nc_post_idx(const nc_ctx *c, const char *path, const char *images,
                const char *labels, nc_reply *r);

/* Prints why a failed request failed to stderr: the problem's detail (or
 * title), then each field error on its own line. */
void nc_print_problem(const nc_reply *r);

/* Parses r's body as JSON; NULL (with a message on stderr) when it is not. */
cJSON *nc_reply_json(const nc_reply *r);

/* URL-encodes s into out (size n); returns 0, or -1 when it does not fit. */
int nc_urlencode(const char *s, char *out, size_t n);

/* --- Server-Sent Events --------------------------------------------------- */

/* Called once per complete event; returns 0 to go on, non-zero to stop. */
typedef int (*nc_sse_cb)(const char *event, const char *id, const char *data, void *user);

/* Parser state for a text/event-stream, fed in arbitrary chunks. The id
 * persists across events, as the format says. */
typedef struct nc_sse {
	nc_buf line, data;
	char event[64];
	char id[64];
	int has_data;  /* a data: field was seen in this event */
	int after_cr;  /* the last line ended with CR: skip a following LF */
	int stopped;
	nc_sse_cb cb;
	void *user;
} nc_sse;

void nc_sse_init(nc_sse *s, nc_sse_cb cb, void *user);
/* Feeds bytes; returns 0, 1 when the callback asked to stop, -1 out of memory. */
int nc_sse_feed(nc_sse *s, const char *p, size_t n);
void nc_sse_release(nc_sse *s);

/* Streams GET path as SSE (with Last-Event-ID when last_id is non-empty),
 * calling cb per event until it returns non-zero or the stream ends. Returns
 * 0 when the stream ended or was stopped by cb; -1 on an error reply or a
 * transport failure (r describes it). last_id is updated (size 64). */
int nc_stream(const nc_ctx *c, const char *path, char *last_id, nc_sse_cb cb,
              void *user, nc_reply *r);

/* --- follow ----------------------------------------------------------------- */

/* Follows job_id's events to its end: a live progress bar when stdout is a
 * terminal, plain lines otherwise, raw events as JSON lines with --json.
 * Returns an exit status: NC_OK when it succeeded, NC_JOB_FAILED,
 * NC_JOB_CANCELLED, or NC_ERR when the stream could not be read. */
int nc_follow(const nc_ctx *c, const char *job_id);

/* Follows a study's events to its end: a live progress line on a terminal
 * (trials done, running, paused, pruned, the best value so far), one line
 * per trial event otherwise, JSON lines with --json. Exit statuses as
 * nc_follow's. */
int nc_follow_study(const nc_ctx *c, const char *study_id);

#endif
