/*
 * handlers_onnx.c - models as ONNX files: GET /v1/models/{id}/export
 * (?format=onnx&opset=) and POST /v1/models?format=onnx (the file as the
 * body; ?name=&task=&classes=). The codec is api/onnx_*.c; this file reads
 * the query, talks to the store and shapes the replies.
 *
 * An imported model is stored as version 0 and published at once as
 * version 1 with its classes, so GET /v1/models/{id}/weights shows the
 * graph's weights as a published version. When anything fails after the
 * model was created, it is deleted again: a refused import leaves nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "classes.h"
#include "handlers_int.h"
#include "onnx.h"

/* The tabular encoding of a model ("columns" of its object), as JSON text
 * for nnd.columns, or NULL when it has none. */
static char *columns_of(const api_backend *b, const char *id)
{
	api_model_info info;
	api_err e = API_ERR_INIT;
	memset(&info, 0, sizeof info);
	if (b->model_get(b->ctx, id, &info, &e) < 0)
		return NULL;
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(info.doc, "columns");
	char *text = c && !cJSON_IsNull(c) ? cJSON_PrintUnformatted(c) : NULL;
	api_model_info_release(&info);
	return text;
}

int api_model_export(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	const char *format = rq->query ? rq->query(rq->qcls, "format") : NULL;
	const char *op = rq->query ? rq->query(rq->qcls, "opset") : NULL;
	int64_t opset = API_ONNX_OPSET_DEFAULT;
	if (format && strcmp(format, "onnx") != 0)
		api_err_field(&e, "format", "must be onnx");
	if (op && (api_parse_i64(op, &opset) < 0 || opset < API_ONNX_OPSET_MIN ||
	           opset > API_ONNX_OPSET_MAX))
		api_err_field(&e, "opset", "must be an integer from %d to %d", API_ONNX_OPSET_MIN,
		              API_ONNX_OPSET_MAX);
	if (e.n_fields)
		return api_reply_error(rp, &e);
	api_model_snap *s = NULL;
	if (b->model_snapshot(b->ctx, rq->id, &s, &e) < 0)
		return api_reply_error(rp, &e);
	char *columns = columns_of(b, rq->id);
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = api_onnx_export(s->model, (int)opset, columns, &buf, &len, &e);
	int version = s->version;
	free(columns);
	b->snap_release(b->ctx, s);
	if (rc < 0)
		return api_reply_error(rp, &e);
	rp->status = 200;
	rp->body = (char *)buf;
	rp->body_len = len;
	rp->ctype = "application/octet-stream";
	snprintf(rp->disposition, sizeof rp->disposition,
	         "attachment; filename=\"%s-v%d.onnx\"", rq->id, version);
	snprintf(rp->model_version, sizeof rp->model_version, "%d", version);
	return 0;
}

/* ?classes=a,b,c as a JSON array of strings (NULL when absent); a bad list
 * is a field error in e. */
static cJSON *classes_query(const api_req *rq, api_err *e)
{
	const char *q = rq->query ? rq->query(rq->qcls, "classes") : NULL;
	api_classes c;
	if (!q || api_classes_from_text(q, "classes", &c, e) != 0)
		return NULL;
	cJSON *a = api_classes_json(c.names, c.n);
	api_classes_free(&c);
	if (!a)
		api_err_set(e, 500, "out_of_memory", "out of memory");
	return a;
}

/* The import's query: name, task, classes (JSON text or NULL). */
static int import_query(const api_req *rq, const char **name, int *task, char **classes,
                        int *n_classes, api_err *e)
{
	const char *t = rq->query ? rq->query(rq->qcls, "task") : NULL;
	*name = rq->query ? rq->query(rq->qcls, "name") : NULL;
	*task = API_ONNX_TASK_AUTO;
	if (t && strcmp(t, "classification") == 0)
		*task = NN_TASK_CLASSIFICATION;
	else if (t && strcmp(t, "regression") == 0)
		*task = NN_TASK_REGRESSION;
	else if (t)
		api_err_field(e, "task", "must be classification or regression");
	cJSON *cl = classes_query(rq, e);
	*classes = NULL;
	*n_classes = 0;
	if (cl) {
		*n_classes = cJSON_GetArraySize(cl);
		if (*task == NN_TASK_REGRESSION)
			api_err_field(e, "classes", "applies to classification only");
		*classes = cJSON_PrintUnformatted(cl);
		cJSON_Delete(cl);
	}
	if (e->n_fields || e->status) {
		free(*classes);
		*classes = NULL;
		return -1;
	}
	return 0;
}

int api_models_import_onnx(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	const char *name;
	int task, n_classes;
	char *classes;
	if (import_query(rq, &name, &task, &classes, &n_classes, &e) < 0)
		return api_reply_error(rp, &e);
	nn_model *m = NULL;
	if (api_onnx_import(rq->body, rq->body ? rq->body_len : 0, task, &b->limits, &m, &e) < 0) {
		free(classes);
		return api_reply_error(rp, &e);
	}
	const nn_model_spec *sp = nn_model_spec_of(m);
	if (classes && n_classes != sp->outputs) {
		api_err_field(&e, "classes", "names %d classes; the graph has %d outputs", n_classes,
		              sp->outputs);
		free(classes);
		nn_model_free(m);
		return api_reply_error(rp, &e);
	}
	api_model_info info;
	memset(&info, 0, sizeof info);
	int rc = b->model_create(b->ctx, name, m, &info, &e);
	nn_model *pub = rc == 0 ? nn_model_clone(m) : NULL;
	nn_model_free(m);
	if (rc < 0) {
		free(classes);
		return api_reply_error(rp, &e);
	}
	char id[API_ID_LEN];
	memcpy(id, info.id, sizeof id);
	api_model_info_release(&info);
	int version = 0;
	if (!pub)
		rc = api_err_set(&e, 500, "out_of_memory", "out of memory");
	else
		rc = b->model_publish_classes(b->ctx, id, pub, classes, &version, &e);
	free(classes);
	if (rc == 0)
		rc = b->model_get(b->ctx, id, &info, &e);
	if (rc < 0) {
		api_err drop = API_ERR_INIT;
		b->model_delete(b->ctx, id, &drop);
		return api_reply_error(rp, &e);
	}
	snprintf(rp->location, sizeof rp->location, "/v1/models/%s", id);
	cJSON *doc = info.doc;
	info.doc = NULL;
	return api_reply_json(rp, 201, doc);
}
