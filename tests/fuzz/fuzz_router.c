/*
 * fuzz_router.c - libFuzzer target for the daemon's request path without
 * sockets: the router (router_match in server/router.c), the query string
 * as libmicrohttpd hands it over (split on '&' and '=', percent-decoded),
 * and the api/ handler the route names, on a fake in-memory backend; for
 * POST /v1/datasets the streaming upload, through the multipart parser
 * (server/multipart.c) for IDX.
 *
 * Input: "METHOD TARGET\n" "CONTENT-TYPE\n" then the body. Whatever the
 * bytes: the match is a route of that method, a 404 or a 405 with an Allow
 * list; every reply is a status below 500 (the fake backend never fails on
 * its own) and every error reply is problem+json naming a code.
 *
 * The fake backend knows one data set (ds_00000000000000aa: 8 features, 2
 * classes), one model (mdl_00000000000000aa: the first PyTorch reference
 * case) and one job (job_00000000000000aa, finished).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include "fuzz_common.h"
#include "handlers.h"
#include "multipart.h"
#include "router.h"

#define DS_ID "ds_00000000000000aa"
#define MDL_ID "mdl_00000000000000aa"
#define JOB_ID "job_00000000000000aa"

static nn_model *model;        /* the known model, built once */

static int not_found(api_err *e, const char *what)
{
	return api_err_set(e, 404, "not_found", "no %s with this id", what);
}

static cJSON *doc_of(const char *id)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", id);
	return o;
}

static int ds_create(void *ctx, const api_dataset *d, const char *name, api_dataset_info *out,
                     api_err *e)
{
	(void)ctx;
	(void)e;
	fuzz_check_dataset(d, 1);
	snprintf(out->id, sizeof out->id, "ds_0000000000000001");
	out->task = d->task;
	out->rows = d->rows;
	out->features = d->features;
	out->outputs = d->outputs;
	out->image = d->width > 0;
	out->doc = api_dataset_doc(d, name);
	return 0;
}

static int ds_get(void *ctx, const char *id, api_dataset_info *out, api_err *e)
{
	(void)ctx;
	if (strcmp(id, DS_ID) != 0)
		return not_found(e, "data set");
	snprintf(out->id, sizeof out->id, "%s", id);
	out->task = NN_TASK_CLASSIFICATION;
	out->rows = 12;
	out->features = 8;
	out->outputs = 2;
	out->image = 0;
	out->doc = doc_of(id);
	return 0;
}

static int any_list(void *ctx, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                    api_err *e)
{
	(void)ctx;
	(void)items;
	(void)e;
	FUZZ_ASSERT(limit >= 1 && limit <= 1000 && offset >= 0);
	*total = 0;
	return 0;
}

static int ds_delete(void *ctx, const char *id, api_err *e)
{
	(void)ctx;
	return strcmp(id, DS_ID) == 0 ? 0 : not_found(e, "data set");
}

static int mdl_create(void *ctx, const char *name, const nn_model *m, api_model_info *out,
                      api_err *e)
{
	(void)ctx;
	(void)name;
	(void)e;
	const nn_model_spec *s = nn_model_spec_of(m);
	snprintf(out->id, sizeof out->id, "mdl_0000000000000001");
	out->task = s->task;
	out->inputs = s->inputs;
	out->outputs = s->outputs;
	out->version = 0;
	out->doc = api_model_spec_to_json(s);
	return 0;
}

static int mdl_get(void *ctx, const char *id, api_model_info *out, api_err *e)
{
	(void)ctx;
	if (strcmp(id, MDL_ID) != 0)
		return not_found(e, "model");
	snprintf(out->id, sizeof out->id, "%s", id);
	out->task = NN_TASK_CLASSIFICATION;
	out->inputs = 8;
	out->outputs = 2;
	out->version = 1;
	out->doc = doc_of(id);
	return 0;
}

static int mdl_list(void *ctx, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                    api_err *e)
{
	return any_list(ctx, limit, offset, items, total, e);
}

static int mdl_delete(void *ctx, const char *id, api_err *e)
{
	(void)ctx;
	return strcmp(id, MDL_ID) == 0 ? 0 : not_found(e, "model");
}

static char *class_names[2] = { "no", "yes" };

static int mdl_snapshot(void *ctx, const char *id, api_model_snap **out, api_err *e)
{
	(void)ctx;
	if (strcmp(id, MDL_ID) != 0)
		return not_found(e, "model");
	api_model_snap *s = calloc(1, sizeof *s);
	FUZZ_ASSERT(s != NULL);
	s->model = model;
	s->version = 1;
	s->classes = class_names;
	s->n_classes = 2;
	s->serial = 1;
	*out = s;
	return 0;
}

static void snap_release(void *ctx, api_model_snap *s)
{
	(void)ctx;
	free(s);
}

static int mdl_publish(void *ctx, const char *id, nn_model *m, int *version, api_err *e)
{
	(void)ctx;
	(void)e;
	FUZZ_ASSERT(strcmp(id, MDL_ID) == 0);
	nn_model_free(m);
	*version = 2;
	return 0;
}

static void job_fill(api_job *out, const char *id)
{
	memset(out, 0, sizeof *out);
	snprintf(out->id, sizeof out->id, "%s", id);
	snprintf(out->model, sizeof out->model, MDL_ID);
	snprintf(out->dataset, sizeof out->dataset, DS_ID);
	out->state = API_JOB_SUCCEEDED;
	out->progress = 1;
	out->model_version = 1;
	out->config = strdup("{}");
}

static int job_submit(void *ctx, const api_job_refs *refs, const char *config, api_job *out,
                      api_err *e)
{
	(void)ctx;
	(void)e;
	FUZZ_ASSERT(refs->model && refs->dataset && config);
	cJSON *c = cJSON_Parse(config);
	FUZZ_ASSERT(c != NULL);            /* the stored config is JSON */
	cJSON_Delete(c);
	job_fill(out, "job_0000000000000001");
	out->state = API_JOB_QUEUED;
	out->model_version = -1;
	return 0;
}

static int job_get(void *ctx, const char *id, api_job *out, api_err *e)
{
	(void)ctx;
	if (strcmp(id, JOB_ID) != 0)
		return not_found(e, "job");
	job_fill(out, id);
	return 0;
}

static int job_list(void *ctx, int state, int64_t limit, int64_t offset, cJSON *items,
                    int64_t *total, api_err *e)
{
	FUZZ_ASSERT(state >= -1 && state < API_JOB_NSTATES);
	return any_list(ctx, limit, offset, items, total, e);
}

static int job_cancel(void *ctx, const char *id, api_job *out, api_err *e)
{
	(void)ctx;
	(void)out;
	if (strcmp(id, JOB_ID) != 0)
		return not_found(e, "job");
	return api_err_set(e, 409, "job_finished", "the job has already finished");
}

static int job_metrics(void *ctx, const char *id, int64_t since, cJSON **out, api_err *e)
{
	(void)ctx;
	FUZZ_ASSERT(since >= -1);         /* -1: the query had none */
	if (strcmp(id, JOB_ID) != 0)
		return not_found(e, "job");
	*out = cJSON_CreateObject();
	cJSON_AddItemToObject(*out, "steps", cJSON_CreateArray());
	cJSON_AddItemToObject(*out, "epochs", cJSON_CreateArray());
	return 0;
}

/* ---------------------------------------------------------------- query */

#define MAX_ARGS 16
typedef struct query {
	int n;
	char *key[MAX_ARGS], *val[MAX_ARGS];
} query;

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	     : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes %XX and '+' in place, as libmicrohttpd does for GET arguments. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (*r == '+') {
			*w++ = ' ';
		} else if (*r == '%' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
			*w++ = (char)(hexval(r[1]) * 16 + hexval(r[2]));
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static void query_parse(query *q, char *s)
{
	q->n = 0;
	while (s && *s && q->n < MAX_ARGS) {
		char *amp = strchr(s, '&');
		if (amp)
			*amp = '\0';
		char *eq = strchr(s, '=');
		if (eq)
			*eq = '\0';
		unescape(s);
		if (eq)
			unescape(eq + 1);
		q->key[q->n] = s;
		q->val[q->n++] = eq ? eq + 1 : NULL;
		s = amp ? amp + 1 : NULL;
	}
}

static const char *query_get(void *qcls, const char *key)
{
	const query *q = qcls;
	for (int i = 0; i < q->n; i++)
		if (strcmp(q->key[i], key) == 0)
			return q->val[i] ? q->val[i] : "";
	return NULL;
}

/* ---------------------------------------------------------------- upload */

typedef struct upload_ctx {
	api_upload *u;
	api_err *e;
	int part;                 /* 0 images, 1 labels, -1 another part (skipped) */
	int failed;
} upload_ctx;

static int part_begin(void *ctx, const char *name, const char *filename)
{
	upload_ctx *c = ctx;
	(void)filename;
	c->part = strcmp(name, "images") == 0 ? 0 : strcmp(name, "labels") == 0 ? 1 : -1;
	return 0;
}

static int part_data(void *ctx, const char *buf, size_t len)
{
	upload_ctx *c = ctx;
	if (c->part < 0)
		return 0;
	if (api_upload_feed(c->u, c->part, buf, len, c->e) != 0) {
		c->failed = 1;
		return 1;
	}
	return 0;
}

static int part_end(void *ctx)
{
	(void)ctx;
	return 0;
}

static void upload(const api_backend *b, const api_req *rq, const char *ctype,
                   const char *body, size_t len, fuzz_splitter *sp, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int kind = api_upload_kind_of(ctype);
	if (kind < 0)
		return;
	api_upload *u = api_upload_new((api_upload_kind)kind, rq, 1 << 20, &e);
	if (!u) {
		FUZZ_ASSERT(e.status >= 400 && e.status < 500);
		api_reply_error(rp, &e);
		return;
	}
	if (kind == API_UPLOAD_IDX) {
		char boundary[128];
		upload_ctx c = { u, &e, -1, 0 };
		mp_callbacks cb = { &c, part_begin, part_data, part_end };
		mp_parser *p = mp_boundary_of(ctype, boundary, sizeof boundary) == 0
		             ? mp_new(boundary, &cb) : NULL;
		int rc = p ? 0 : -1;
		while (rc == 0 && len > 0) {
			size_t n = fuzz_next_piece(sp, len);
			rc = mp_feed(p, body, n);
			body += n;
			len -= n;
		}
		if (rc == 0)
			rc = mp_finish(p);
		if (p && rc != 0)
			FUZZ_ASSERT(mp_error(p) != NULL);
		mp_free(p);
		if (rc != 0) {
			api_upload_free(u);
			return;           /* the daemon answers a bad multipart body itself */
		}
	} else {
		int rc = 0;
		while (rc == 0 && len > 0) {
			size_t n = fuzz_next_piece(sp, len);
			rc = api_upload_feed(u, 0, body, n, &e);
			body += n;
			len -= n;
		}
	}
	api_upload_finish(u, b, rq, rp);
	api_upload_free(u);
}

/* ---------------------------------------------------------------- the target */

static void check_reply(const api_reply *rp)
{
	FUZZ_ASSERT(rp->status >= 200 && rp->status < 500);
	if (rp->status == 204)
		return;
	FUZZ_ASSERT(rp->body != NULL && rp->ctype != NULL);
	cJSON *j = cJSON_Parse(rp->body);
	FUZZ_ASSERT(j != NULL);
	if (rp->status >= 400) {
		FUZZ_ASSERT(strstr(rp->ctype, "problem+json") != NULL);
		FUZZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "code")));
		FUZZ_ASSERT(cJSON_GetObjectItemCaseSensitive(j, "status")->valueint == rp->status);
	}
	cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static api_backend b;
	if (!model) {
		model = fuzz_weights_model(2);
		FUZZ_ASSERT(model != NULL);
		/* designated: the backend grows (studies) without touching this */
		api_backend fake = {
			.limits = api_limits_default(), .max_body = 1 << 20,
			.dataset_create = ds_create, .dataset_get = ds_get,
			.dataset_list = any_list, .dataset_delete = ds_delete,
			.model_create = mdl_create, .model_get = mdl_get, .model_list = mdl_list,
			.model_delete = mdl_delete, .model_snapshot = mdl_snapshot,
			.snap_release = snap_release, .model_publish = mdl_publish,
			.job_submit = job_submit, .job_get = job_get, .job_list = job_list,
			.job_cancel = job_cancel, .job_metrics = job_metrics };
		fake.limits.max_params = 100000;   /* keep created models small */
		b = fake;
	}
	/* "METHOD TARGET\nCTYPE\nBODY": copy so every piece is NUL-terminated */
	char *in = malloc(size + 1);
	FUZZ_ASSERT(in != NULL);
	memcpy(in, data, size);
	in[size] = '\0';
	fuzz_splitter sp = fuzz_splitter_of(size >= 4 ? data + size - 4 : data, size >= 4 ? 4 : size);
	char *nl1 = memchr(in, '\n', size);
	char *nl2 = nl1 ? memchr(nl1 + 1, '\n', size - (size_t)(nl1 + 1 - in)) : NULL;
	char *sp1 = nl1 ? memchr(in, ' ', (size_t)(nl1 - in)) : NULL;
	if (!nl2 || !sp1) {
		free(in);
		return 0;
	}
	*sp1 = *nl1 = *nl2 = '\0';
	const char *method = in, *ctype = nl1 + 1;
	char *target = sp1 + 1, *body = nl2 + 1;
	size_t blen = size - (size_t)(body - in);
	char *qs = strchr(target, '?');
	if (qs)
		*qs++ = '\0';
	query q;
	query_parse(&q, qs);

	char id[64], allow[64];
	int r = router_match(method, target, id, sizeof id, allow, sizeof allow);
	FUZZ_ASSERT(r == -404 || r == -405 || (r >= 0 && r < router_count));
	if (r == -405)
		FUZZ_ASSERT(allow[0] != '\0');
	if (r >= 0) {
		const route *rt = &router_table[r];
		FUZZ_ASSERT(strcmp(rt->method, method) == 0);
		const char *brace = strchr(rt->pattern, '{');
		if (brace) {
			char prefix[8] = "";
			snprintf(prefix, sizeof prefix, "%.*s", (int)strcspn(brace + 1, "}"), brace + 1);
			FUZZ_ASSERT(api_id_valid(id, prefix));
		}
		api_req rq = { method, id[0] ? id : NULL, query_get, &q, blen ? body : NULL, blen, NULL };
		api_reply rp;
		memset(&rp, 0, sizeof rp);
		if (rt->handler)
			rt->handler(&b, &rq, &rp);
		else if (rt->body == BODY_UPLOAD)
			upload(&b, &rq, ctype, body, blen, &sp, &rp);
		if (rp.status)
			check_reply(&rp);
		api_reply_release(&rp);
	}
	free(in);
	return 0;
}
