/*
 * handlers_common.c - pieces every resource handler shares: id checks, job
 * states, RFC 3339 times, replies (JSON and problem+json), the job object,
 * and list paging (?limit= default 100, at most 1000; ?offset=).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "classes.h"
#include "handlers.h"
#include "handlers_int.h"

int api_id_valid(const char *id, const char *prefix)
{
	if (!id || !prefix)
		return 0;
	size_t pl = strlen(prefix);
	if (strncmp(id, prefix, pl) != 0 || id[pl] != '_')
		return 0;
	const char *h = id + pl + 1;
	for (int i = 0; i < 16; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return 0;
	return h[16] == '\0';
}

static const char *const state_names[API_JOB_NSTATES] = {
	"queued", "running", "succeeded", "failed", "cancelled", "paused"
};

const char *api_job_state_name(int s)
{
	return s >= 0 && s < API_JOB_NSTATES ? state_names[s] : "unknown";
}

int api_job_state_parse(const char *s)
{
	for (int i = 0; s && i < API_JOB_NSTATES; i++)
		if (strcmp(s, state_names[i]) == 0)
			return i;
	return -1;
}

void api_time_format(int64_t ms, char *buf, size_t len)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(ms % 1000));
}

void api_dataset_info_release(api_dataset_info *d)
{
	if (!d)
		return;
	cJSON_Delete(d->doc);
	d->doc = NULL;
}

void api_model_info_release(api_model_info *m)
{
	if (!m)
		return;
	cJSON_Delete(m->doc);
	m->doc = NULL;
}

void api_job_release(api_job *j)
{
	if (!j)
		return;
	free(j->metrics);
	free(j->best);
	free(j->error);
	free(j->config);
	j->metrics = j->best = j->error = j->config = NULL;
}

void api_reply_release(api_reply *rp)
{
	if (!rp)
		return;
	free(rp->body);
	rp->body = NULL;
	if (rp->stream_done)
		rp->stream_done(rp->stream_arg);
	rp->stream_read = NULL;
	rp->stream_done = NULL;
	rp->stream_arg = NULL;
}

int api_reply_svg(api_reply *rp, char *svg)
{
	if (!svg) {
		api_err e = API_ERR_INIT;
		api_err_set(&e, 500, "out_of_memory", "out of memory");
		return api_reply_error(rp, &e);
	}
	rp->status = 200;
	rp->body = svg;
	rp->ctype = "image/svg+xml";
	return 0;
}

int api_reply_error(api_reply *rp, const api_err *e)
{
	api_err fallback = API_ERR_INIT;
	if (!e || e->status < 400) {
		api_err_set(&fallback, 500, "internal", "an internal error occurred");
		e = &fallback;
	}
	free(rp->body);
	rp->status = e->status;
	rp->body = api_problem_json(e);
	rp->ctype = "application/problem+json";
	return 0;
}

int api_reply_json(api_reply *rp, int status, cJSON *j)
{
	free(rp->body);
	rp->body = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	if (!rp->body) {
		api_err e = API_ERR_INIT;
		api_err_set(&e, 500, "out_of_memory", "could not render the reply");
		return api_reply_error(rp, &e);
	}
	rp->status = status;
	rp->ctype = "application/json";
	return 0;
}

int api_parse_i64(const char *s, int64_t *out)
{
	if (!s || !*s)
		return -1;
	int64_t v = 0;
	int n = 0;
	for (; *s; s++, n++) {
		if (*s < '0' || *s > '9' || n >= 18)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

int api_paging(const api_req *rq, int64_t *limit, int64_t *offset, api_err *e)
{
	const char *l = rq->query ? rq->query(rq->qcls, "limit") : NULL;
	const char *o = rq->query ? rq->query(rq->qcls, "offset") : NULL;
	*limit = 100;
	*offset = 0;
	if (l && (api_parse_i64(l, limit) < 0 || *limit < 1 || *limit > 1000))
		api_err_field(e, "limit", "must be an integer from 1 to 1000");
	if (o && api_parse_i64(o, offset) < 0)
		api_err_field(e, "offset", "must be a non-negative integer");
	if (e->n_fields) {
		api_err_set(e, 422, "validation_failed", "invalid query parameters");
		return -1;
	}
	return 0;
}

int api_reply_list(api_reply *rp, const char *key, cJSON *items, int64_t total,
                   int64_t limit, int64_t offset)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, key, items);
	cJSON_AddNumberToObject(o, "total", (double)total);
	cJSON_AddNumberToObject(o, "limit", (double)limit);
	cJSON_AddNumberToObject(o, "offset", (double)offset);
	return api_reply_json(rp, 200, o);
}

void api_add_time(cJSON *o, const char *key, int64_t ms)
{
	if (ms <= 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	char buf[40];
	api_time_format(ms, buf, sizeof buf);
	cJSON_AddStringToObject(o, key, buf);
}

/* Adds a stored JSON text under key, or null when absent or unparsable. */
static void add_raw(cJSON *o, const char *key, const char *text)
{
	cJSON *v = text ? cJSON_Parse(text) : NULL;
	if (v)
		cJSON_AddItemToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

/* How many MPI ranks the daemon runs on (0: not under --mpi). */
static int placement_ranks;

void api_set_placement_ranks(int ranks)
{
	placement_ranks = ranks;
}

/* "placement": where each replica ran, once the job has started. The
 * daemon runs replica i of a job on thread i of the job (server/replicas.c)
 * or, under --mpi, on rank i when the ranks are enough (server/ranks.c;
 * one replica runs on a worker of rank 0), so the config's replicas say it
 * all. */
static void add_placement(cJSON *o, const api_job *j)
{
	const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(o, "config");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(cfg, "replicas");
	int n = cJSON_IsNumber(r) && r->valuedouble >= 1 && r->valuedouble <= NN_MAX_SHARDS
	                ? (int)r->valuedouble
	                : 1;
	if (!j->started_at) {
		cJSON_AddNullToObject(o, "placement");
		return;
	}
	cJSON *a = cJSON_AddArrayToObject(o, "placement");
	for (int i = 0; a && i < n; i++) {
		char name[32];
		snprintf(name, sizeof name, "%s %d",
		         placement_ranks > 0 && n <= placement_ranks ? "rank" : "thread", i);
		cJSON_AddItemToArray(a, cJSON_CreateString(name));
	}
}

cJSON *api_job_to_json(const api_job *j)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", j->id);
	cJSON_AddStringToObject(o, "model", j->model);
	cJSON_AddStringToObject(o, "dataset", j->dataset);
	cJSON_AddStringToObject(o, "state", api_job_state_name(j->state));
	cJSON_AddNumberToObject(o, "progress", j->progress);
	cJSON_AddNumberToObject(o, "epoch", j->epoch);
	cJSON_AddNumberToObject(o, "step", (double)j->step);
	add_raw(o, "metrics", j->metrics);
	add_raw(o, "best", j->best);
	cJSON_AddBoolToObject(o, "stopped_early", j->stopped_early);
	if (j->model_version >= 0)
		cJSON_AddNumberToObject(o, "model_version", j->model_version);
	else
		cJSON_AddNullToObject(o, "model_version");
	add_raw(o, "error", j->error);
	add_raw(o, "config", j->config);
	add_placement(o, j);
	api_add_time(o, "created_at", j->created_at);
	api_add_time(o, "started_at", j->started_at);
	api_add_time(o, "finished_at", j->finished_at);
	if (j->study[0]) {
		cJSON_AddStringToObject(o, "study", j->study);
		cJSON_AddNumberToObject(o, "trial", j->trial);
	}
	return o;
}

/* Offset of the first byte that is not part of well-formed UTF-8
 * (RFC 3629: no overlongs, no surrogates, at most U+10FFFF) or is a raw
 * control character JSON does not allow (RFC 8259), or len. */
static size_t utf8_check(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		if (c < 0x80) {
			/* raw control characters are never valid JSON text */
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				return i;
			i++;
			continue;
		}
		size_t n;
		unsigned lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0;
			if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90;
			if (c == 0xf4)
				hi = 0x8f;
		} else {
			return i;
		}
		if (i + n >= len)
			return i;
		for (size_t k = 1; k <= n; k++) {
			unsigned b = s[i + k];
			if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
				return i;
		}
		i += n + 1;
	}
	return len;
}

/* Offset of the first raw control byte (JSON allows none but whitespace) or
 * "\u0000" escape (it would end the decoded C string early, so "relu\u0000x"
 * would read as "relu"), or len when there is none. */
static size_t json_control_check(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
			return i;
		if (c != '\\' || i + 1 >= len)
			continue;
		if (i + 5 < len && s[i + 1] == 'u' && s[i + 2] == '0' && s[i + 3] == '0' &&
		    s[i + 4] == '0' && s[i + 5] == '0')
			return i;
		i++;    /* skip the escaped character (a backslash pair is one escape) */
	}
	return len;
}

cJSON *api_parse_body(const api_req *rq, api_err *e)
{
	if (!rq->body || rq->body_len == 0) {
		api_err_set(e, 400, "malformed_json", "the request body is empty");
		return NULL;
	}
	size_t bad = utf8_check((const unsigned char *)rq->body, rq->body_len);
	if (bad < rq->body_len) {
		api_err_set(e, 400, "malformed_json",
		            "the body is not valid UTF-8 JSON text (byte %zu)", bad);
		return NULL;
	}
	size_t ctl = json_control_check(rq->body, rq->body_len);
	if (ctl < rq->body_len) {
		api_err_set(e, 400, "malformed_json",
		            "the body holds a raw control character or a \\u0000 escape (byte %zu)", ctl);
		return NULL;
	}
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(rq->body, rq->body_len, &end, 0);
	if (!j) {
		size_t at = end && end >= rq->body ? (size_t)(end - rq->body) : 0;
		api_err_set(e, 400, "malformed_json", "the body is not valid JSON (near byte %zu)", at);
		return NULL;
	}
	/* only whitespace may follow the value */
	for (const char *p = end; p && p < rq->body + rq->body_len; p++)
		if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
			cJSON_Delete(j);
			api_err_set(e, 400, "malformed_json", "trailing data after the JSON value");
			return NULL;
		}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		api_err_set(e, 422, "validation_failed", "the body must be a JSON object");
		api_err_field(e, "", "must be an object");
		return NULL;
	}
	return j;
}

void api_check_class_names(const api_backend *b, const api_dataset_info *d, int outputs,
                           const api_dataset_info *other, const char *field, api_err *e)
{
	if (d->task != NN_TASK_CLASSIFICATION || other->task != NN_TASK_CLASSIFICATION ||
	    !b->dataset_acquire)
		return;
	int n;
	char **names = api_classes_of_doc(d->doc, &n);
	api_classes mc;
	int rc = api_classes_for_model(names, n, outputs, &mc);
	free(names);
	if (rc != 0)
		return;    /* the training set's own error says it */
	const api_dataset *od = NULL;
	api_err tmp = API_ERR_INIT;
	if (b->dataset_acquire(b->ctx, other->id, &od, &tmp) < 0) {
		api_err_field(e, field, "cannot be read: %s", tmp.detail);
	} else {
		free(api_classes_relabel(od, mc.names, mc.n, field, NULL, e));
		b->dataset_release(b->ctx, od);
	}
	api_classes_free(&mc);
}

/* The q of one media range's parameters ("; q=0.5; x=y"), 1 when absent. */
static double accept_q(const char *p, const char *end)
{
	double q = 1;
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		if (!semi)
			break;
		p = semi + 1;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			char tmp[16];
			size_t n = strcspn(p + 2, ";,");
			if (n >= sizeof tmp)
				n = sizeof tmp - 1;
			memcpy(tmp, p + 2, n);
			tmp[n] = 0;
			q = strtod(tmp, NULL);
		}
	}
	return q;
}

double api_accept_q(const char *accept, const char *type)
{
	size_t tl = strlen(type);
	const char *p = accept;
	while (p && *p) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		size_t n = strcspn(p, ";, \t");
		if (n > (size_t)(end - p))
			n = (size_t)(end - p);
		if (n == tl && strncasecmp(p, type, n) == 0)
			return accept_q(p + n, end);
		p = *end ? end + 1 : end;
	}
	return 0;
}
