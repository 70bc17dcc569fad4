/*
 * backend.c - the api_backend the handlers call, filled with the store's
 * and the job queue's functions. The context is a backend_ctx.
 */
#include "backend.h"

static int ds_create(void *c, const api_dataset *d, const char *name, api_dataset_info *out,
                     api_err *e)
{
	return store_dataset_create(((backend_ctx *)c)->st, d, name, out, e);
}
static int ds_get(void *c, const char *id, api_dataset_info *out, api_err *e)
{
	return store_dataset_get(((backend_ctx *)c)->st, id, out, e);
}
static int ds_list(void *c, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                   api_err *e)
{
	return store_dataset_list(((backend_ctx *)c)->st, limit, offset, items, total, e);
}
static int ds_delete(void *c, const char *id, api_err *e)
{
	return store_dataset_delete(((backend_ctx *)c)->st, id, e);
}
static int ds_acquire(void *c, const char *id, const api_dataset **out, api_err *e)
{
	return store_dataset_acquire(((backend_ctx *)c)->st, id, out, e);
}
static void ds_release(void *c, const api_dataset *d)
{
	store_dataset_release(((backend_ctx *)c)->st, d);
}
static int mdl_create(void *c, const char *name, const nn_model *m, api_model_info *out,
                      api_err *e)
{
	return store_model_create(((backend_ctx *)c)->st, name, m, out, e);
}
static int mdl_get(void *c, const char *id, api_model_info *out, api_err *e)
{
	return store_model_get(((backend_ctx *)c)->st, id, out, e);
}
static int mdl_list(void *c, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                    api_err *e)
{
	return store_model_list(((backend_ctx *)c)->st, limit, offset, items, total, e);
}
static int mdl_delete(void *c, const char *id, api_err *e)
{
	return store_model_delete(((backend_ctx *)c)->st, id, e);
}
static int mdl_snapshot(void *c, const char *id, api_model_snap **out, api_err *e)
{
	return store_model_snapshot(((backend_ctx *)c)->st, id, out, e);
}
static void snap_release(void *c, api_model_snap *s)
{
	store_snap_release(((backend_ctx *)c)->st, s);
}
static int mdl_publish(void *c, const char *id, nn_model *m, int *version, api_err *e)
{
	return store_model_publish(((backend_ctx *)c)->st, id, m, version, e);
}
static int mdl_publish_classes(void *c, const char *id, nn_model *m, const char *classes,
                               int *version, api_err *e)
{
	return store_model_publish_classes(((backend_ctx *)c)->st, id, m, classes, version, e);
}
static int job_submit(void *c, const api_job_refs *refs, const char *config, api_job *out,
                      api_err *e)
{
	return jobs_submit(((backend_ctx *)c)->q, refs, config, out, e);
}
static int job_get(void *c, const char *id, api_job *out, api_err *e)
{
	return jobs_get(((backend_ctx *)c)->q, id, out, e);
}
static int job_list(void *c, int state, int64_t limit, int64_t offset, cJSON *items,
                    int64_t *total, api_err *e)
{
	backend_ctx *b = c;
	if (store_job_list(b->st, state, limit, offset, items, total, e) < 0)
		return -1;
	jobs_overlay(b->q, items);
	return 0;
}
static int job_cancel(void *c, const char *id, api_job *out, api_err *e)
{
	return jobs_cancel(((backend_ctx *)c)->q, id, out, e);
}
static int job_metrics(void *c, const char *id, int64_t since, cJSON **out, api_err *e)
{
	return store_metrics_get(((backend_ctx *)c)->st, id, since, out, e);
}

static int std_create(void *c, struct api_study *s, cJSON **obj, api_err *e)
{
	backend_ctx *b = c;
	return b->S ? studies_create(b->S, s, obj, e) : api_err_set(e, 404, "not_found", "no studies");
}
static int std_get(void *c, const char *id, cJSON **obj, api_err *e)
{
	backend_ctx *b = c;
	return b->S ? studies_get(b->S, id, obj, e) : api_err_set(e, 404, "not_found", "no studies");
}
static int std_list(void *c, int64_t limit, int64_t offset, cJSON *items, int64_t *total,
                    api_err *e)
{
	backend_ctx *b = c;
	*total = 0;
	return b->S ? studies_list(b->S, limit, offset, items, total, e) : 0;
}
static int std_cancel(void *c, const char *id, cJSON **obj, api_err *e)
{
	backend_ctx *b = c;
	return b->S ? studies_cancel(b->S, id, obj, e) : api_err_set(e, 404, "not_found", "no studies");
}
static int std_delete(void *c, const char *id, int keep_best, api_err *e)
{
	backend_ctx *b = c;
	return b->S ? studies_delete(b->S, id, keep_best, e)
	            : api_err_set(e, 404, "not_found", "no studies");
}
static int std_trials(void *c, const char *id, int by_number, int64_t limit, int64_t offset,
                      cJSON *items, int64_t *total, api_err *e)
{
	backend_ctx *b = c;
	return b->S ? studies_trials(b->S, id, by_number, limit, offset, items, total, e)
	            : api_err_set(e, 404, "not_found", "no studies");
}
static int job_list_study(void *c, const char *study, int64_t limit, int64_t offset,
                          cJSON *items, int64_t *total, api_err *e)
{
	backend_ctx *b = c;
	if (store_job_list_study(b->st, study, limit, offset, items, total, e) < 0)
		return -1;
	jobs_overlay(b->q, items);
	return 0;
}

void backend_fill(backend_ctx *ctx, int64_t max_body, api_backend *b)
{
	b->ctx = ctx;
	b->limits = api_limits_default();
	b->max_body = max_body;
	b->dataset_create = ds_create;
	b->dataset_get = ds_get;
	b->dataset_acquire = ds_acquire;
	b->dataset_release = ds_release;
	b->dataset_list = ds_list;
	b->dataset_delete = ds_delete;
	b->model_create = mdl_create;
	b->model_get = mdl_get;
	b->model_list = mdl_list;
	b->model_delete = mdl_delete;
	b->model_snapshot = mdl_snapshot;
	b->snap_release = snap_release;
	b->model_publish = mdl_publish;
	b->model_publish_classes = mdl_publish_classes;
	b->job_submit = job_submit;
	b->job_get = job_get;
	b->job_list = job_list;
	b->job_cancel = job_cancel;
	b->job_metrics = job_metrics;
	b->workers = ctx->q ? jobs_workers(ctx->q) : 1;
	b->study_create = std_create;
	b->study_get = std_get;
	b->study_list = std_list;
	b->study_cancel = std_cancel;
	b->study_delete = std_delete;
	b->study_trials = std_trials;
	b->job_list_study = job_list_study;
}
