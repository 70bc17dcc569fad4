/*
 * handlers_models.c - /v1/models: create, list, get, delete, the weights
 * (GET and PUT a new version) and predictions.
 *
 * Predictions read an immutable snapshot of the newest version, so they
 * never wait for training. Plain bodies go through the stream reader of
 * predict_stream.c (the daemon feeds it as the body arrives; this handler,
 * called with the whole body, feeds it in one piece); the cJSON path here
 * reads any other body and names every bad field. Both write their reply
 * with the codec (predict_codec.c).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "handlers_int.h"
#include "predict_stream.h"

int api_models_create(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	const char *format = rq->query ? rq->query(rq->qcls, "format") : NULL;
	if (format && strcmp(format, "onnx") == 0)
		return api_models_import_onnx(b, rq, rp);
	if (format) {
		api_err_field(&e, "format", "must be onnx (or absent for a JSON spec)");
		return api_reply_error(rp, &e);
	}
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
	return api_model_get(b, rq, rp);   /* the model's document, new version and all */
}

int api_model_predict(const api_backend *b, const api_req *rq, api_reply *rp)
{
	int binary = api_predict_accepts_binary(rq->accept);
	/* the plain body through the stream reader, in one piece */
	api_predict_stream *ps = NULL;
	if (rq->body)
		ps = api_predict_stream_new(b, rq, API_PREDICT_JSON, (int64_t)rq->body_len, binary,
		                            NULL);
	if (ps) {
		api_predict_stream_scan(ps, rq->body, rq->body_len);
		int done = api_predict_stream_finish(ps, rq, rp);
		api_predict_stream_free(ps);
		if (done)
			return 0;
	}
	return api_model_predict_general(b, rq, rp, binary);
}

/* Adds "warnings" (when there are any) to the JSON reply in rp. */
static void add_warnings(api_reply *rp, const cJSON *warnings)
{
	if (cJSON_GetArraySize(warnings) == 0 || !rp->body)
		return;
	char *w = cJSON_PrintUnformatted(warnings);
	size_t n = strlen(rp->body);
	char *b = w && n > 0 && rp->body[n - 1] == '}' ? realloc(rp->body, n + strlen(w) + 16) : NULL;
	if (b) {
		/* the reply ends with its closing brace */
		sprintf(b + n - 1, ",\"warnings\":%s}", w);
		rp->body = b;
	}
	free(w);
}

int api_model_predict_general(const api_backend *b, const api_req *rq, api_reply *rp,
                              int binary_reply)
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
	/* a model trained on typed columns takes raw records */
	cJSON *warnings = s->enc ? cJSON_CreateArray() : NULL;
	const cJSON *inst = cJSON_GetObjectItemCaseSensitive(j, "instances");
	float *x = s->enc ? api_tab_read_instances(s->enc, inst, API_PREDICT_MAX_ROWS, &rows,
	                                           warnings, &e)
	                  : api_rows_cjson(inst, spec->inputs, &rows, &e);
	cJSON_Delete(j);
	if (!x) {
		cJSON_Delete(warnings);
		b->snap_release(b->ctx, s);
		return api_reply_error(rp, &e);
	}
	int outs = spec->outputs;
	float *out = malloc((size_t)rows * (size_t)outs * sizeof *out);
	nn_scratch *sc = api_predict_scratch(s);
	nn_status st = out && sc ? nn_predict(s->model, sc, x, rows, out) : NN_ENOMEM;
	free(x);
	if (st != NN_OK) {
		free(out);
		cJSON_Delete(warnings);
		b->snap_release(b->ctx, s);
		api_err_set(&e, 500, "predict_failed", "prediction failed: %s", nn_status_name(st));
		return api_reply_error(rp, &e);
	}
	api_predict_reply(rp, s, out, rows, outs, binary_reply);
	if (!binary_reply && rp->status == 200)
		add_warnings(rp, warnings);
	cJSON_Delete(warnings);
	b->snap_release(b->ctx, s);
	return 0;
}
