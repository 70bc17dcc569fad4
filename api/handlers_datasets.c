/*
 * handlers_datasets.c - /v1/datasets: the streaming upload (CSV, JSON, IDX
 * pairs) and list, get, delete.
 *
 * An upload feeds the body to the matching reader as it arrives; only the
 * parsed matrix is kept. Nothing reaches the store unless the whole body
 * parsed, so a rejected upload leaves nothing behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "handlers.h"
#include "classes.h"
#include "dataset_rows.h"
#include "handlers_int.h"

#define NAME_MAX_LEN 200

struct api_upload {
	api_upload_kind kind;
	api_csv *csv;
	api_idx *idx;
	char *json;            /* JSON body so far (cJSON parses whole texts) */
	size_t json_len, json_cap;
	int64_t max_bytes;
	char name[NAME_MAX_LEN + 1];
	size_t name_len;
	int has_name;
	int failed;
	api_err err;           /* the first error */
	api_classes classes;   /* CSV ?classes= (the reader borrows the names) */
};

int api_upload_kind_of(const char *ctype)
{
	if (!ctype)
		return -1;
	size_t n = strcspn(ctype, ";");
	while (n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
		n--;
	if (n == 8 && strncasecmp(ctype, "text/csv", n) == 0)
		return API_UPLOAD_CSV;
	if (n == 16 && strncasecmp(ctype, "application/json", n) == 0)
		return API_UPLOAD_JSON;
	if (n == 19 && strncasecmp(ctype, "multipart/form-data", n) == 0)
		return API_UPLOAD_IDX;
	return -1;
}

static const char *q(const api_req *rq, const char *key)
{
	return rq && rq->query ? rq->query(rq->qcls, key) : NULL;
}

/* The CSV reader's options from the query (name is read by the caller). 0,
 * or -1 with every bad field in e. */
static int csv_opts(const api_req *rq, api_upload *u, api_csv_opts *o, api_err *e)
{
	*o = (api_csv_opts){ .header = 1, .task = -1, .max_bytes = u->max_bytes };
	const char *h = q(rq, "header");
	if (h) {
		if (strcmp(h, "true") == 0)
			o->header = 1;
		else if (strcmp(h, "false") == 0)
			o->header = 0;
		else
			api_err_field(e, "header", "must be true or false");
	}
	o->label = q(rq, "label");
	if (o->label && !*o->label)
		api_err_field(e, "label", "must be a column name or index");
	const char *t = q(rq, "task");
	if (t) {
		if (strcmp(t, "classification") == 0)
			o->task = NN_TASK_CLASSIFICATION;
		else if (strcmp(t, "regression") == 0)
			o->task = NN_TASK_REGRESSION;
		else
			api_err_field(e, "task", "must be classification or regression");
	}
	o->na = q(rq, "na");
	o->ignore = q(rq, "ignore");
	const char *ml = q(rq, "max_levels");
	if (ml) {
		char *end;
		long v = strtol(ml, &end, 10);
		if (!*ml || *end || v < 1 || v > 1000000)
			api_err_field(e, "max_levels", "must be an integer from 1 to 1000000");
		else
			o->max_levels = (int)v;
	}
	const char *cl = q(rq, "classes");
	if (cl && o->task == NN_TASK_REGRESSION)
		api_err_field(e, "classes", "applies to classification only");
	else if (cl && api_classes_from_text(cl, "classes", &u->classes, e) == 0) {
		o->classes = u->classes.names;
		o->n_classes = u->classes.n;
	}
	return e->n_fields || e->status >= 500 ? -1 : 0;
}

api_upload *api_upload_new(api_upload_kind kind, const api_req *rq, int64_t max_bytes,
                           api_err *e)
{
	api_upload *u = calloc(1, sizeof *u);
	if (!u) {
		api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	u->kind = kind;
	u->max_bytes = max_bytes;
	const char *name = q(rq, "name");
	if (name) {
		if (strlen(name) > NAME_MAX_LEN) {
			api_err_field(e, "name", "must be at most %d bytes", NAME_MAX_LEN);
			free(u);
			return NULL;
		}
		strcpy(u->name, name);
		u->name_len = strlen(name);
		u->has_name = 1;
	}
	if (kind == API_UPLOAD_CSV) {
		api_csv_opts o;
		if (csv_opts(rq, u, &o, e) != 0) {
			api_classes_free(&u->classes);
			free(u);
			return NULL;
		}
		u->csv = api_csv_new(&o);
		if (!u->csv) {
			free(u);
			api_err_set(e, 500, "out_of_memory", "out of memory");
			return NULL;
		}
	} else if (kind == API_UPLOAD_IDX) {
		u->idx = api_idx_new(max_bytes);
		if (!u->idx) {
			free(u);
			api_err_set(e, 500, "out_of_memory", "out of memory");
			return NULL;
		}
	}
	return u;
}

static int fail(api_upload *u, api_err *e)
{
	u->failed = 1;
	u->err = *e;
	return -1;
}

int api_upload_feed(api_upload *u, int part, const char *buf, size_t len, api_err *e)
{
	if (u->failed) {
		*e = u->err;
		return -1;
	}
	if (len == 0)
		return 0;
	switch (u->kind) {
	case API_UPLOAD_CSV:
		if (api_csv_feed(u->csv, buf, len, e) < 0)
			return fail(u, e);
		return 0;
	case API_UPLOAD_JSON:
		if (u->json_len + len + 1 > u->json_cap) {
			size_t cap = u->json_cap ? u->json_cap : 65536;
			while (cap < u->json_len + len + 1)
				cap *= 2;
			char *p = realloc(u->json, cap);
			if (!p) {
				api_err_set(e, 413, "body_too_large", "the body does not fit in memory");
				return fail(u, e);
			}
			u->json = p;
			u->json_cap = cap;
			nn_huge_pages(p, cap);   /* 2 MiB faults (a no-op below) */
		}
		memcpy(u->json + u->json_len, buf, len);
		u->json_len += len;
		u->json[u->json_len] = '\0';
		return 0;
	case API_UPLOAD_IDX:
		if (part == 2) {   /* the optional "name" form field */
			if (u->name_len + len > NAME_MAX_LEN) {
				api_err_field(e, "name", "must be at most %d bytes", NAME_MAX_LEN);
				return fail(u, e);
			}
			memcpy(u->name + u->name_len, buf, len);
			u->name_len += len;
			u->name[u->name_len] = '\0';
			u->has_name = 1;
			return 0;
		}
		if (api_idx_feed(u->idx, part, buf, len, e) < 0)
			return fail(u, e);
		return 0;
	}
	return 0;
}

int api_upload_finish(api_upload *u, const api_backend *b, const api_req *rq, api_reply *rp)
{
	(void)rq;
	api_err e = API_ERR_INIT;
	api_dataset d;
	memset(&d, 0, sizeof d);
	if (u->failed)
		return api_reply_error(rp, &u->err);

	int rc = 0;
	switch (u->kind) {
	case API_UPLOAD_CSV:
		rc = api_csv_finish(u->csv, &d, &e);
		break;
	case API_UPLOAD_IDX:
		rc = api_idx_finish(u->idx, &d, &e);
		break;
	case API_UPLOAD_JSON: {
		api_req jr = { "POST", NULL, NULL, NULL, u->json, u->json_len, NULL };
		cJSON *j = api_parse_body(&jr, &e);
		if (!j)
			return api_reply_error(rp, &e);
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
		if (nm && !cJSON_IsNull(nm)) {
			if (!cJSON_IsString(nm) || strlen(nm->valuestring) > NAME_MAX_LEN) {
				api_err_field(&e, "name", "must be a string of at most %d bytes",
				              NAME_MAX_LEN);
				cJSON_Delete(j);
				return api_reply_error(rp, &e);
			}
			if (!u->has_name) {
				strcpy(u->name, nm->valuestring);
				u->has_name = 1;
			}
		}
		rc = cJSON_GetObjectItemCaseSensitive(j, "generator")
		     ? api_dataset_from_generator(j, &d, &e)
		     : api_dataset_from_json(j, &d, &e);
		cJSON_Delete(j);
		free(u->json);
		u->json = NULL;
		break;
	}
	}
	if (rc < 0) {
		api_dataset_free(&d);
		return api_reply_error(rp, &e);
	}
	api_dataset_info info;
	memset(&info, 0, sizeof info);
	rc = b->dataset_create(b->ctx, &d, u->has_name ? u->name : NULL, &info, &e);
	api_dataset_free(&d);
	if (rc < 0)
		return api_reply_error(rp, &e);
	snprintf(rp->location, sizeof rp->location, "/v1/datasets/%s", info.id);
	cJSON *doc = info.doc;
	info.doc = NULL;
	return api_reply_json(rp, 201, doc);
}

void api_upload_free(api_upload *u)
{
	if (!u)
		return;
	api_csv_free(u->csv);
	api_idx_free(u->idx);
	free(u->json);
	api_classes_free(&u->classes);
	free(u);
}

cJSON *api_dataset_doc(const api_dataset *d, const char *name)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	if (name)
		cJSON_AddStringToObject(o, "name", name);
	else
		cJSON_AddNullToObject(o, "name");
	cJSON_AddStringToObject(o, "task",
	                        d->task == NN_TASK_CLASSIFICATION ? "classification" : "regression");
	cJSON_AddNumberToObject(o, "rows", (double)d->rows);
	cJSON_AddNumberToObject(o, "features", d->features);
	cJSON_AddNumberToObject(o, "outputs", d->outputs);
	if (d->task == NN_TASK_CLASSIFICATION) {
		cJSON *c = cJSON_AddArrayToObject(o, "classes");
		for (int i = 0; i < d->n_classes; i++)
			cJSON_AddItemToArray(c, cJSON_CreateString(d->classes[i] ? d->classes[i] : ""));
	}
	cJSON *f = cJSON_AddArrayToObject(o, "feature_names");
	for (int i = 0; d->feature_names && i < d->features; i++)
		cJSON_AddItemToArray(f, cJSON_CreateString(d->feature_names[i] ? d->feature_names[i] : ""));
	if (d->columns) {
		cJSON_AddItemToObject(o, "columns", api_columns_json(d->columns, d->n_columns));
		cJSON_AddNumberToObject(o, "skipped_rows", (double)d->skipped_rows);
	}
	if (d->width > 0) {
		cJSON *im = cJSON_AddObjectToObject(o, "image");
		cJSON_AddNumberToObject(im, "width", d->width);
		cJSON_AddNumberToObject(im, "height", d->height);
		cJSON_AddNumberToObject(im, "channels", d->channels);
	}
	for (const cJSON *it = d->extra ? d->extra->child : NULL; it; it = it->next)
		cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, 1));
	return o;
}

int api_datasets_list(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int64_t limit, offset, total = 0;
	if (api_paging(rq, &limit, &offset, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *items = cJSON_CreateArray();
	if (b->dataset_list(b->ctx, limit, offset, items, &total, &e) < 0) {
		cJSON_Delete(items);
		return api_reply_error(rp, &e);
	}
	return api_reply_list(rp, "datasets", items, total, limit, offset);
}

int api_dataset_get(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	api_dataset_info info;
	memset(&info, 0, sizeof info);
	if (b->dataset_get(b->ctx, rq->id, &info, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *doc = info.doc;
	info.doc = NULL;
	return api_reply_json(rp, 200, doc);
}

int api_dataset_delete(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	if (b->dataset_delete(b->ctx, rq->id, &e) < 0)
		return api_reply_error(rp, &e);
	rp->status = 204;
	rp->ctype = NULL;
	return 0;
}

/* The reply of /data: the writer over the held data set. */
typedef struct data_stream {
	const api_backend *b;
	const api_dataset *d;
	api_rows_writer *w;
	char *label;          /* the label column's name, or NULL */
} data_stream;

static long data_read(void *arg, char *buf, size_t cap)
{
	return api_rows_writer_read(((data_stream *)arg)->w, buf, cap);
}

static void data_done(void *arg)
{
	data_stream *s = arg;
	api_rows_writer_free(s->w);
	s->b->dataset_release(s->b->ctx, s->d);
	free(s->label);
	free(s);
}

/* ?offset= (default 0) and ?limit= (default all: -1). */
static int data_range(const api_req *rq, int64_t *offset, int64_t *limit, api_err *e)
{
	const char *o = q(rq, "offset"), *l = q(rq, "limit");
	*offset = 0;
	*limit = -1;
	if (o && api_parse_i64(o, offset) < 0)
		api_err_field(e, "offset", "must be a non-negative integer");
	if (l && api_parse_i64(l, limit) < 0)
		api_err_field(e, "limit", "must be a non-negative integer");
	if (e->n_fields)
		api_err_set(e, 422, "validation_failed", "invalid query parameters");
	return e->n_fields ? -1 : 0;
}

int api_dataset_data(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int64_t offset, limit;
	if (data_range(rq, &offset, &limit, &e) < 0)
		return api_reply_error(rp, &e);
	double qc = rq->accept ? api_accept_q(rq->accept, "text/csv") : 1;
	double qj = api_accept_q(rq->accept, "application/json");
	if (rq->accept && qc <= 0 && qj <= 0 && api_accept_q(rq->accept, "*/*") <= 0 &&
	    api_accept_q(rq->accept, "text/*") <= 0) {
		api_err_set(&e, 406, "not_acceptable",
		            "the rows come as text/csv or application/json, not %.100s", rq->accept);
		return api_reply_error(rp, &e);
	}
	int json = qj > 0 && qj > qc;
	data_stream *s = calloc(1, sizeof *s);
	if (!s) {
		api_err_set(&e, 500, "out_of_memory", "out of memory");
		return api_reply_error(rp, &e);
	}
	s->b = b;
	api_dataset_info info;
	if (b->dataset_get(b->ctx, rq->id, &info, &e) < 0) {
		free(s);
		return api_reply_error(rp, &e);
	}
	const cJSON *lab = cJSON_GetObjectItemCaseSensitive(info.doc, "label");
	s->label = cJSON_IsString(lab) ? strdup(lab->valuestring) : NULL;
	api_dataset_info_release(&info);
	if (!b->dataset_acquire || b->dataset_acquire(b->ctx, rq->id, &s->d, &e) < 0) {
		free(s->label);
		free(s);
		if (!e.status)
			api_err_set(&e, 404, "not_found", "no data set with this id");
		return api_reply_error(rp, &e);
	}
	s->w = api_rows_writer_new(s->d, offset, limit, json ? API_ROWS_JSON : API_ROWS_CSV,
	                           s->label);
	if (!s->w) {
		data_done(s);
		api_err_set(&e, 500, "out_of_memory", "out of memory");
		return api_reply_error(rp, &e);
	}
	rp->status = 200;
	rp->ctype = json ? "application/json" : "text/csv; charset=utf-8";
	rp->stream_read = data_read;
	rp->stream_done = data_done;
	rp->stream_arg = s;
	return 0;
}
