/*
 * handlers_models.c - /v1/models: create, list, get, delete, the weights
 * (GET and PUT a new version) and predictions.
 *
 * Predictions read an immutable snapshot of the newest version, so they
 * never wait for training; each serving thread keeps its own scratch
 * buffers, rebuilt only when the snapshot it last served changes.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "handlers_int.h"

#define PREDICT_MAX_ROWS 100000
#define SCRATCH_ROWS 64

int api_models_create(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	cJSON *j = api_parse_body(rq, &e);
	if (!j)
		return api_reply_error(rp, &e);
	nn_model_spec spec;
	memset(&spec, 0, sizeof spec);
	char *name = NULL;
	int rc = api_model_spec_from_json(j, &b->limits, &spec, &name, &e);
	cJSON_Delete(j);
	if (rc < 0) {
		free(name);
		return api_reply_error(rp, &e);
	}
	char err[256] = "";
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	nn_layers_free(spec.layers, spec.n_layers);
	if (!m) {
		free(name);
		api_err_set(&e, 422, "validation_failed", "%s", err[0] ? err : "invalid model");
		return api_reply_error(rp, &e);
	}
	api_model_info info;
	memset(&info, 0, sizeof info);
	rc = b->model_create(b->ctx, name, m, &info, &e);
	free(name);
	nn_model_free(m);
	if (rc < 0)
		return api_reply_error(rp, &e);
	snprintf(rp->location, sizeof rp->location, "/v1/models/%s", info.id);
	cJSON *doc = info.doc;
	info.doc = NULL;
	return api_reply_json(rp, 201, doc);
}

int api_models_list(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int64_t limit, offset, total = 0;
	if (api_paging(rq, &limit, &offset, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *items = cJSON_CreateArray();
	if (b->model_list(b->ctx, limit, offset, items, &total, &e) < 0) {
		cJSON_Delete(items);
		return api_reply_error(rp, &e);
	}
	return api_reply_list(rp, "models", items, total, limit, offset);
}

int api_model_get(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	api_model_info info;
	memset(&info, 0, sizeof info);
	if (b->model_get(b->ctx, rq->id, &info, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *doc = info.doc;
	info.doc = NULL;
	return api_reply_json(rp, 200, doc);
}

int api_model_delete(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	if (b->model_delete(b->ctx, rq->id, &e) < 0)
		return api_reply_error(rp, &e);
	rp->status = 204;
	rp->ctype = NULL;
	return 0;
}

int api_model_weights_get(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	api_model_snap *s = NULL;
	if (b->model_snapshot(b->ctx, rq->id, &s, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *w = api_weights_to_json(s->model);
	if (w)
		cJSON_AddNumberToObject(w, "version", s->version);
	b->snap_release(b->ctx, s);
	if (!w) {
		api_err_set(&e, 500, "out_of_memory", "could not render the weights");
		return api_reply_error(rp, &e);
	}
	return api_reply_json(rp, 200, w);
}

int api_model_weights_put(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	cJSON *j = api_parse_body(rq, &e);
	if (!j)
		return api_reply_error(rp, &e);
	api_model_snap *s = NULL;
	if (b->model_snapshot(b->ctx, rq->id, &s, &e) < 0) {
		cJSON_Delete(j);
		return api_reply_error(rp, &e);
	}
	nn_model *m = nn_model_clone(s->model);
	b->snap_release(b->ctx, s);
	if (!m) {
		cJSON_Delete(j);
		api_err_set(&e, 500, "out_of_memory", "out of memory");
		return api_reply_error(rp, &e);
	}
	/* "version" is what GET returns beside the layers; accept it back */
	cJSON_DeleteItemFromObjectCaseSensitive(j, "version");
	int rc = api_weights_from_json(j, m, &e);
	cJSON_Delete(j);
	if (rc < 0) {
		nn_model_free(m);
		return api_reply_error(rp, &e);
	}
	int version = 0;
	if (b->model_publish(b->ctx, rq->id, m, &version, &e) < 0)
		return api_reply_error(rp, &e);
	api_model_info info;
	memset(&info, 0, sizeof info);
	if (b->model_get(b->ctx, rq->id, &info, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *doc = info.doc;
	info.doc = NULL;
	return api_reply_json(rp, 200, doc);
}

/* ---- per-thread scratch for predictions */

typedef struct tl_scratch {
	uint64_t serial;
	nn_scratch *s;
} tl_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *p)
{
	tl_scratch *t = p;
	if (t) {
		nn_scratch_free(t->s);
		free(t);
	}
}

static void scratch_key_init(void)
{
	pthread_key_create(&scratch_key, scratch_destroy);
}

static nn_scratch *thread_scratch(const api_model_snap *snap)
{
	pthread_once(&scratch_once, scratch_key_init);
	tl_scratch *t = pthread_getspecific(scratch_key);
	if (!t) {
		t = calloc(1, sizeof *t);
		if (!t)
			return NULL;
		pthread_setspecific(scratch_key, t);
	}
	if (!t->s || t->serial != snap->serial) {
		nn_scratch_free(t->s);
		t->s = nn_scratch_create(snap->model, SCRATCH_ROWS);
		t->serial = snap->serial;
	}
	return t->s;
}

/* instances -> a rows x inputs matrix; every bad value named by its path. */
static float *read_instances(const cJSON *inst, int inputs, int *rows, api_err *e)
{
	if (!cJSON_IsArray(inst)) {
		api_err_field(e, "instances", "must be an array of rows");
		return NULL;
	}
	int n = cJSON_GetArraySize(inst);
	if (n < 1 || n > PREDICT_MAX_ROWS) {
		api_err_field(e, "instances", "must hold 1 to %d rows", PREDICT_MAX_ROWS);
		return NULL;
	}
	float *x = malloc((size_t)n * (size_t)inputs * sizeof *x);
	if (!x) {
		api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	int r = 0;
	const cJSON *row;
	cJSON_ArrayForEach(row, inst) {
		char path[64];
		snprintf(path, sizeof path, "instances[%d]", r);
		if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != inputs) {
			api_err_field(e, path, "must be an array of %d numbers", inputs);
		} else {
			int c = 0;
			const cJSON *v;
			cJSON_ArrayForEach(v, row) {
				if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
				    fabs(v->valuedouble) > 3.0e38) {
					snprintf(path, sizeof path, "instances[%d][%d]", r, c);
					api_err_field(e, path, "must be a finite number");
				} else {
					x[(size_t)r * inputs + c] = (float)v->valuedouble;
				}
				c++;
			}
		}
		if (e->n_fields >= API_MAX_FIELD_ERRORS)
			break;
		r++;
	}
	if (e->n_fields) {
		free(x);
		return NULL;
	}
	*rows = n;
	return x;
}

static cJSON *num(float v)
{
	return isfinite(v) ? cJSON_CreateNumber(api_float_json(v)) : cJSON_CreateNull();
}

int api_model_predict(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	cJSON *j = api_parse_body(rq, &e);
	if (!j)
		return api_reply_error(rp, &e);
	const cJSON *it;
	cJSON_ArrayForEach(it, j) {
		if (strcmp(it->string, "instances") != 0) {
			char path[160];
			snprintf(path, sizeof path, "%.150s", it->string);
			api_err_field(&e, path, "unknown field");
		}
	}
	if (e.n_fields) {
		cJSON_Delete(j);
		return api_reply_error(rp, &e);
	}
	api_model_snap *s = NULL;
	if (b->model_snapshot(b->ctx, rq->id, &s, &e) < 0) {
		cJSON_Delete(j);
		return api_reply_error(rp, &e);
	}
	const nn_model_spec *spec = nn_model_spec_of(s->model);
	int rows = 0;
	float *x = read_instances(cJSON_GetObjectItemCaseSensitive(j, "instances"), spec->inputs,
	                         &rows, &e);
	cJSON_Delete(j);
	if (!x) {
		b->snap_release(b->ctx, s);
		return api_reply_error(rp, &e);
	}
	int outs = spec->outputs;
	float *out = malloc((size_t)rows * (size_t)outs * sizeof *out);
	nn_scratch *sc = thread_scratch(s);
	nn_status st = out && sc ? nn_predict(s->model, sc, x, rows, out) : NN_ENOMEM;
	free(x);
	if (st != NN_OK) {
		free(out);
		b->snap_release(b->ctx, s);
		api_err_set(&e, 500, "predict_failed", "prediction failed: %s", nn_status_name(st));
		return api_reply_error(rp, &e);
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "model_version", s->version);
	cJSON *preds = cJSON_AddArrayToObject(o, "predictions");
	for (int r = 0; r < rows; r++) {
		const float *p = out + (size_t)r * outs;
		if (spec->task == NN_TASK_CLASSIFICATION) {
			int best = 0;
			for (int k = 1; k < outs; k++)
				if (p[k] > p[best])
					best = k;
			cJSON *pr = cJSON_CreateObject();
			cJSON_AddNumberToObject(pr, "class", best);
			char lab[32];
			const char *label = lab;
			if (s->classes && best < s->n_classes && s->classes[best])
				label = s->classes[best];
			else
				snprintf(lab, sizeof lab, "%d", best);
			cJSON_AddStringToObject(pr, "label", label);
			cJSON *pa = cJSON_AddArrayToObject(pr, "probabilities");
			for (int k = 0; k < outs; k++)
				cJSON_AddItemToArray(pa, num(p[k]));
			cJSON_AddItemToArray(preds, pr);
		} else {
			cJSON *pa = cJSON_CreateArray();
			for (int k = 0; k < outs; k++)
				cJSON_AddItemToArray(pa, num(p[k]));
			cJSON_AddItemToArray(preds, pa);
		}
	}
	free(out);
	b->snap_release(b->ctx, s);
	rp->rows = rows;
	return api_reply_json(rp, 200, o);
}
