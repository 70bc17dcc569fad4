/*
 * handlers_jobs.c - /v1/jobs: submit (with every compatibility check done
 * here, so a job that cannot run is a 422 now rather than a failure later),
 * list, get, cancel and the metric history. The event stream is the
 * daemon's (it needs suspend/resume); it reuses api_job_to_json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "handlers_int.h"

/* Checks one data set against the model; field is "dataset" or
 * "validation.dataset". */
static void check_compat(const api_model_info *m, const api_dataset_info *d,
                         const char *field, int by_name, api_err *e)
{
	if (d->task != m->task)
		api_err_field(e, field, "is a %s data set but the model does %s",
		              d->task == NN_TASK_CLASSIFICATION ? "classification" : "regression",
		              m->task == NN_TASK_CLASSIFICATION ? "classification" : "regression");
	if (!by_name && d->features != m->inputs)
		api_err_field(e, field, "has %d features but the model takes %d inputs",
		              d->features, m->inputs);
	if (d->task == m->task) {
		if (d->task == NN_TASK_REGRESSION && d->outputs != m->outputs)
			api_err_field(e, field, "has %d targets per row but the model has %d outputs",
			              d->outputs, m->outputs);
		if (d->task == NN_TASK_CLASSIFICATION && d->outputs > m->outputs)
			api_err_field(e, field, "has %d classes but the model has %d outputs",
			              d->outputs, m->outputs);
	}
}

int api_jobs_create(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	cJSON *j = api_parse_body(rq, &e);
	if (!j)
		return api_reply_error(rp, &e);
	nn_train_config cfg = nn_train_config_default();
	api_job_refs refs;
	memset(&refs, 0, sizeof refs);
	int rc = api_train_config_from_json(j, &b->limits, &cfg, &refs, &e);
	cJSON_Delete(j);
	if (rc < 0) {
		api_job_refs_free(&refs);
		return api_reply_error(rp, &e);
	}

	api_model_info m;
	api_dataset_info d, v;
	memset(&m, 0, sizeof m);
	memset(&d, 0, sizeof d);
	memset(&v, 0, sizeof v);
	api_err tmp = API_ERR_INIT;
	int have_m = 0, have_d = 0, have_v = 0;
	if (!refs.model || !api_id_valid(refs.model, "mdl") ||
	    b->model_get(b->ctx, refs.model, &m, &tmp) < 0)
		api_err_field(&e, "model", "no model with this id");
	else
		have_m = 1;
	if (!refs.dataset || !api_id_valid(refs.dataset, "ds") ||
	    b->dataset_get(b->ctx, refs.dataset, &d, &tmp) < 0)
		api_err_field(&e, "dataset", "no data set with this id");
	else
		have_d = 1;
	if (refs.val_dataset) {
		if (!api_id_valid(refs.val_dataset, "ds") ||
		    b->dataset_get(b->ctx, refs.val_dataset, &v, &tmp) < 0)
			api_err_field(&e, "validation.dataset", "no data set with this id");
		else
			have_v = 1;
	}
	if (have_m && have_d)
		check_compat(&m, &d, "dataset", 0, &e);
	/* a validation set with typed columns is encoded with the training
	 * set's encoding, column by column name: its own width does not count */
	const cJSON *tc = have_d ? cJSON_GetObjectItemCaseSensitive(d.doc, "columns") : NULL;
	const cJSON *vc = have_v ? cJSON_GetObjectItemCaseSensitive(v.doc, "columns") : NULL;
	if (tc && vc)
		api_tab_columns_check(tc, vc, "validation.dataset", &e);
	if (have_m && have_v)
		check_compat(&m, &v, "validation.dataset", tc && vc, &e);
	if (have_d && nn_augment_has_image(&cfg.aug) && !d.image)
		api_err_field(&e, "augment", "image augmentations need a data set with an image shape");
	if (cfg.early.enabled && cfg.val_fraction <= 0 && !refs.val_dataset)
		api_err_field(&e, "early_stopping", "needs a validation set");
	api_model_info_release(&m);
	api_dataset_info_release(&d);
	api_dataset_info_release(&v);
	if (e.n_fields) {
		api_job_refs_free(&refs);
		api_err_set(&e, 422, "validation_failed", "the job cannot run as submitted");
		return api_reply_error(rp, &e);
	}

	cJSON *cj = api_train_config_to_json(&cfg, &refs);
	char *text = cj ? cJSON_PrintUnformatted(cj) : NULL;
	cJSON_Delete(cj);
	if (!text) {
		api_job_refs_free(&refs);
		api_err_set(&e, 500, "out_of_memory", "out of memory");
		return api_reply_error(rp, &e);
	}
	api_job job;
	memset(&job, 0, sizeof job);
	rc = b->job_submit(b->ctx, &refs, text, &job, &e);
	free(text);
	api_job_refs_free(&refs);
	if (rc < 0) {
		if (e.status == 429 && !rp->retry_after)
			rp->retry_after = 5;
		return api_reply_error(rp, &e);
	}
	snprintf(rp->location, sizeof rp->location, "/v1/jobs/%s", job.id);
	cJSON *o = api_job_to_json(&job);
	api_job_release(&job);
	return api_reply_json(rp, 202, o);
}

int api_jobs_list(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int64_t limit, offset, total = 0;
	int state = -1;
	const char *s = rq->query ? rq->query(rq->qcls, "state") : NULL;
	if (s && (state = api_job_state_parse(s)) < 0)
		api_err_field(&e, "state",
		              "must be queued, running, succeeded, failed or cancelled");
	if (api_paging(rq, &limit, &offset, &e) < 0 || e.n_fields) {
		api_err_set(&e, 422, "validation_failed", "invalid query parameters");
		return api_reply_error(rp, &e);
	}
	cJSON *items = cJSON_CreateArray();
	if (b->job_list(b->ctx, state, limit, offset, items, &total, &e) < 0) {
		cJSON_Delete(items);
		return api_reply_error(rp, &e);
	}
	return api_reply_list(rp, "jobs", items, total, limit, offset);
}

int api_job_get(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	api_job job;
	memset(&job, 0, sizeof job);
	if (b->job_get(b->ctx, rq->id, &job, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *o = api_job_to_json(&job);
	api_job_release(&job);
	return api_reply_json(rp, 200, o);
}

int api_job_cancel(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	api_job job;
	memset(&job, 0, sizeof job);
	if (b->job_cancel(b->ctx, rq->id, &job, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *o = api_job_to_json(&job);
	api_job_release(&job);
	return api_reply_json(rp, 202, o);
}

int api_job_metrics(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int64_t since = -1;
	const char *s = rq->query ? rq->query(rq->qcls, "since_step") : NULL;
	if (s && api_parse_i64(s, &since) < 0) {
		api_err_field(&e, "since_step", "must be a non-negative integer");
		return api_reply_error(rp, &e);
	}
	cJSON *o = NULL;
	if (b->job_metrics(b->ctx, rq->id, since, &o, &e) < 0)
		return api_reply_error(rp, &e);
	return api_reply_json(rp, 200, o);
}
