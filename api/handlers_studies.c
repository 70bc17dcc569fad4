/*
 * handlers_studies.c - /v1/studies: create (the whole document checked
 * against its data sets here, before any trial exists), list, get, cancel,
 * delete and the trials' leaderboard. The scheduler is the daemon's
 * (server/studies.c); its event stream is the daemon's too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "handlers_int.h"
#include "study.h"

static const char *q(const api_req *rq, const char *k)
{
	return rq->query ? rq->query(rq->qcls, k) : NULL;
}

/* The data set named at path "field" of the body, or a field error. */
static int get_set(const api_backend *b, const cJSON *v, const char *field, api_dataset_info *out,
                   api_err *e)
{
	api_err tmp = API_ERR_INIT;
	memset(out, 0, sizeof *out);
	if (!cJSON_IsString(v) || !api_id_valid(v->valuestring, "ds") ||
	    b->dataset_get(b->ctx, v->valuestring, out, &tmp) < 0) {
		api_err_field(e, field, "no data set with this id");
		return -1;
	}
	return 0;
}

/* The data sets of the study: the training set into d; validation and
 * test sets must exist and fit it. 0 when the training set exists. */
static int study_sets(const api_backend *b, const cJSON *body, api_study_data *d, api_err *e)
{
	api_dataset_info ds, other;
	if (get_set(b, cJSON_GetObjectItemCaseSensitive(body, "dataset"), "dataset", &ds, e) < 0)
		return -1;
	memset(d, 0, sizeof *d);
	d->task = ds.task;
	d->rows = ds.rows;
	d->features = ds.features;
	d->outputs = ds.outputs;
	const cJSON *th = cJSON_GetObjectItemCaseSensitive(ds.doc, "theory");
	const cJSON *r = th ? cJSON_GetObjectItemCaseSensitive(th, "rate_exponent") : NULL;
	d->has_theory = cJSON_IsNumber(r);
	d->theory = d->has_theory ? r->valuedouble : 0;
	static const char *const K[2] = { "validation", "test" };
	for (int i = 0; i < 2; i++) {
		const cJSON *o = cJSON_GetObjectItemCaseSensitive(body, K[i]);
		const cJSON *id = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "dataset") : NULL;
		if (!id && i == 1 && o && !cJSON_IsNull(o))
			api_err_field(e, "test.dataset", "is required");
		if (!id)
			continue;
		char f[32];
		snprintf(f, sizeof f, "%s.dataset", K[i]);
		if (get_set(b, id, f, &other, e) < 0)
			continue;
		if (other.features != ds.features || other.task != ds.task)
			api_err_field(e, f, "has %d features of a %s task; the training set has %d",
			              other.features, other.task == NN_TASK_REGRESSION ? "regression"
			                                                               : "classification",
			              ds.features);
		else
			api_check_class_names(b, &ds, ds.outputs, &other, f, e);
		api_dataset_info_release(&other);
	}
	api_dataset_info_release(&ds);
	return 0;
}

int api_studies_create(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	cJSON *j = api_parse_body(rq, &e);
	if (!j)
		return api_reply_error(rp, &e);
	api_study_data d;
	api_study s;
	int have = cJSON_IsObject(j) && study_sets(b, j, &d, &e) == 0;
	if (!cJSON_IsObject(j))
		api_err_field(&e, "body", "must be a JSON object");
	if (!have || e.n_fields || api_study_parse(j, &b->limits, &d, b->workers, &s, &e) < 0) {
		cJSON_Delete(j);
		if (!e.status || e.n_fields)
			api_err_set(&e, 422, "validation_failed", "the study cannot run as submitted");
		return api_reply_error(rp, &e);
	}
	cJSON_Delete(j);
	cJSON *o = NULL;
	int rc = b->study_create ? b->study_create(b->ctx, &s, &o, &e)
	                         : api_err_set(&e, 404, "not_found", "no studies here");
	api_study_free(&s);
	if (rc < 0)
		return api_reply_error(rp, &e);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
	snprintf(rp->location, sizeof rp->location, "/v1/studies/%s",
	         cJSON_IsString(id) ? id->valuestring : "");
	return api_reply_json(rp, 202, o);
}

int api_studies_list(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int64_t limit, offset, total = 0;
	if (api_paging(rq, &limit, &offset, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *items = cJSON_CreateArray();
	if (b->study_list(b->ctx, limit, offset, items, &total, &e) < 0) {
		cJSON_Delete(items);
		return api_reply_error(rp, &e);
	}
	return api_reply_list(rp, "studies", items, total, limit, offset);
}

int api_study_get(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	cJSON *o = NULL;
	if (b->study_get(b->ctx, rq->id, &o, &e) < 0)
		return api_reply_error(rp, &e);
	return api_reply_json(rp, 200, o);
}

int api_study_cancel(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	cJSON *o = NULL;
	if (b->study_cancel(b->ctx, rq->id, &o, &e) < 0)
		return api_reply_error(rp, &e);
	return api_reply_json(rp, 202, o);
}

int api_study_delete(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	const char *kb = q(rq, "keep_best");
	if (kb && strcmp(kb, "true") && strcmp(kb, "false")) {
		api_err_field(&e, "keep_best", "must be true or false");
		return api_reply_error(rp, &e);
	}
	if (b->study_delete(b->ctx, rq->id, kb && strcmp(kb, "true") == 0, &e) < 0)
		return api_reply_error(rp, &e);
	rp->status = 204;
	rp->ctype = NULL;
	return 0;
}

int api_study_trials(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int64_t limit, offset, total = 0;
	const char *sort = q(rq, "sort");
	if (sort && strcmp(sort, "number") && strcmp(sort, "value"))
		api_err_field(&e, "sort", "must be number or value");
	if (api_paging(rq, &limit, &offset, &e) < 0 || e.n_fields)
		return api_reply_error(rp, &e);
	cJSON *items = cJSON_CreateArray();
	if (b->study_trials(b->ctx, rq->id, sort && strcmp(sort, "number") == 0, limit, offset,
	                    items, &total, &e) < 0) {
		cJSON_Delete(items);
		return api_reply_error(rp, &e);
	}
	return api_reply_list(rp, "trials", items, total, limit, offset);
}
