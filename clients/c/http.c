/*
 * http.c - nnctl's HTTP layer over libcurl: plain requests with an in-memory
 * body, uploads streamed from a file, IDX multipart uploads, event streams,
 * and the printing of problem+json errors. Every request carries the bearer
 * key when one is set.
 */
#include "nnctl.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int nc_buf_add(nc_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d)
			return -1;
		b->data = d;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

void nc_buf_release(nc_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void nc_reply_release(nc_reply *r)
{
	if (r)
		nc_buf_release(&r->body);
}

int nc_urlencode(const char *s, char *out, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~';
		if (o + (plain ? 1 : 3) >= n)
			return -1;
		if (plain) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *user)
{
	nc_buf *b = user;
	return nc_buf_add(b, p, size * nmemb) ? 0 : size * nmemb;
}

/* A curl handle aimed at server+path with the common options and headers.
 * *hdrs receives the header list (the caller frees it). */
static CURL *open_handle(const nc_ctx *c, const char *method, const char *path,
                         const char *content_type, const char *extra_header,
                         struct curl_slist **hdrs, nc_reply *r)
{
	static int inited;
	if (!inited) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		inited = 1;
	}
	CURL *h = curl_easy_init();
	if (!h) {
		snprintf(r->err, sizeof r->err, "cannot create a curl handle");
		return NULL;
	}
	size_t n = strlen(c->server) + strlen(path) + 1;
	char *url = malloc(n);
	if (!url) {
		curl_easy_cleanup(h);
		snprintf(r->err, sizeof r->err, "out of memory");
		return NULL;
	}
	snprintf(url, n, "%s%s", c->server, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	free(url); /* curl copies it */
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "nnctl/1");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);

	struct curl_slist *l = NULL;
	char line[600];
	if (c->api_key && *c->api_key) {
		snprintf(line, sizeof line, "Authorization: Bearer %s", c->api_key);
		l = curl_slist_append(l, line);
	}
	if (content_type) {
		snprintf(line, sizeof line, "Content-Type: %s", content_type);
		l = curl_slist_append(l, line);
	}
	if (extra_header)
		l = curl_slist_append(l, extra_header);
	l = curl_slist_append(l, "Expect:");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
	*hdrs = l;
	return h;
}

/* Runs the transfer and records the outcome in r; 0 for a 2xx. */
static int perform(const nc_ctx *c, CURL *h, nc_reply *r)
{
	CURLcode rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		r->status = 0;
		snprintf(r->err, sizeof r->err, "%s: %s", c->server, curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	return r->status >= 200 && r->status < 300 ? 0 : -1;
}

int nc_request(const nc_ctx *c, const char *method, const char *path,
               const char *content_type, const void *body, size_t len, nc_reply *r)
{
	struct curl_slist *hdrs = NULL;
	CURL *h = open_handle(c, method, path, content_type, NULL, &hdrs, r);
	if (!h)
		return -1;
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	}
	int rc = perform(c, h, r);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

/* A 2xx body goes to out as it arrives; any other into the reply. */
typedef struct sink {
	CURL *h;
	FILE *out;
	nc_buf *body;
} sink;

static size_t on_body_to(char *p, size_t size, size_t nmemb, void *user)
{
	sink *s = user;
	long st = 0;
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &st);
	if (st >= 200 && st < 300)
		return fwrite(p, size, nmemb, s->out) * size;
	return on_body(p, size, nmemb, s->body);
}

int nc_get_to(const nc_ctx *c, const char *path, const char *accept, FILE *out, nc_reply *r)
{
	struct curl_slist *hdrs = NULL;
	char line[160];
	snprintf(line, sizeof line, "Accept: %s", accept);
	CURL *h = open_handle(c, "GET", path, NULL, line, &hdrs, r);
	if (!h)
		return -1;
	sink s = { h, out, &r->body };
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body_to);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	int rc = perform(c, h, r);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

int nc_request_json(const nc_ctx *c, const char *method, const char *path,
                    const cJSON *j, nc_reply *r)
{
	char *s = cJSON_PrintUnformatted(j);
	if (!s) {
		snprintf(r->err, sizeof r->err, "out of memory");
		return -1;
	}
	int rc = nc_request(c, method, path, "application/json", s, strlen(s), r);
	free(s);
	return rc;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *user)
{
	return fread(p, 1, size * nmemb, (FILE *)user);
}

int nc_post_file(const nc_ctx *c, const char *path, const char *fpath,
                 const char *content_type, nc_reply *r)
{
	FILE *f = fopen(fpath, "rb");
	struct stat st;
	if (!f || fstat(fileno(f), &st) != 0) {
		snprintf(r->err, sizeof r->err, "%s: %s", fpath, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	struct curl_slist *hdrs = NULL;
	CURL *h = open_handle(c, "POST", path, content_type, NULL, &hdrs, r);
	if (!h) {
		fclose(f);
		return -1;
	}
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h, CURLOPT_READDATA, f);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
	int rc = perform(c, h, r);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	fclose(f);
	return rc;
}

int nc_post_idx(const nc_ctx *c, const char *path, const char *images,
                const char *labels, nc_reply *r)
{
	const char *files[2] = { images, labels }, *names[2] = { "images", "labels" };
	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(files[i], "rb");
		if (!f) {
			snprintf(r->err, sizeof r->err, "%s: %s", files[i], strerror(errno));
			return -1;
		}
		fclose(f);
	}
	struct curl_slist *hdrs = NULL;
	CURL *h = open_handle(c, "POST", path, NULL, NULL, &hdrs, r);
	if (!h)
		return -1;
	curl_mime *m = curl_mime_init(h);
	for (int i = 0; i < 2 && m; i++) {
		curl_mimepart *p = curl_mime_addpart(m);
		curl_mime_name(p, names[i]);
		curl_mime_filedata(p, files[i]);
		curl_mime_type(p, "application/octet-stream");
	}
	curl_easy_setopt(h, CURLOPT_MIMEPOST, m);
	int rc = perform(c, h, r);
	curl_mime_free(m);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}

cJSON *nc_reply_json(const nc_reply *r)
{
	cJSON *j = r->body.data ? cJSON_Parse(r->body.data) : NULL;
	if (!j)
		fprintf(stderr, "nnctl: the server's reply is not JSON\n");
	return j;
}

void nc_print_problem(const nc_reply *r)
{
	if (r->status == 0) {
		fprintf(stderr, "nnctl: %s\n", r->err[0] ? r->err : "request failed");
		return;
	}
	cJSON *p = r->body.data ? cJSON_Parse(r->body.data) : NULL;
	const char *detail = NULL, *title = NULL, *code = NULL;
	if (p) {
		detail = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "detail"));
		title = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "title"));
		code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "code"));
	}
	if (detail && *detail)
		fprintf(stderr, "nnctl: %s\n", detail);
	else if (title && *title)
		fprintf(stderr, "nnctl: %s\n", title);
	else if (r->body.len && r->body.len < 500)
		fprintf(stderr, "nnctl: HTTP %ld: %s\n", r->status, r->body.data);
	else
		fprintf(stderr, "nnctl: HTTP %ld\n", r->status);
	const cJSON *e, *errs = cJSON_GetObjectItemCaseSensitive(p, "errors");
	cJSON_ArrayForEach(e, errs) {
		const char *f = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "field"));
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
		fprintf(stderr, "  %s: %s\n", f ? f : "?", m ? m : "?");
	}
	if (code && *code)
		fprintf(stderr, "  (HTTP %ld, %s)\n", r->status, code);
	cJSON_Delete(p);
}

/* Stream state: the parser, and the reply for an error body. */
struct stream_ctx {
	nc_sse sse;
	nc_reply *r;
	CURL *h;
	int stopped;
};

static size_t on_stream(char *p, size_t size, size_t nmemb, void *user)
{
	struct stream_ctx *s = user;
	size_t n = size * nmemb;
	long status = 0;
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 300)
		return nc_buf_add(&s->r->body, p, n) ? 0 : n;
	int rc = nc_sse_feed(&s->sse, p, n);
	if (rc != 0) {
		s->stopped = rc == 1;
		return 0; /* aborts the transfer */
	}
	return n;
}

int nc_stream(const nc_ctx *c, const char *path, char *last_id, nc_sse_cb cb,
              void *user, nc_reply *r)
{
	char hdr[100] = "";
	if (last_id && *last_id)
		snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", last_id);
	struct curl_slist *hdrs = NULL;
	CURL *h = open_handle(c, "GET", path, NULL, hdr[0] ? hdr : NULL, &hdrs, r);
	if (!h)
		return -1;
	hdrs = curl_slist_append(hdrs, "Accept: text/event-stream");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	struct stream_ctx s = { .r = r, .h = h };
	nc_sse_init(&s.sse, cb, user);
	if (last_id)
		snprintf(s.sse.id, sizeof s.sse.id, "%s", last_id);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	CURLcode cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	int rc = 0;
	if (r->status >= 300) {
		rc = -1;
	} else if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && s.stopped)) {
		snprintf(r->err, sizeof r->err, "%s", curl_easy_strerror(cc));
		r->status = 0;
		rc = -1;
	}
	if (last_id)
		snprintf(last_id, 64, "%s", s.sse.id);
	nc_sse_release(&s.sse);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return rc;
}
