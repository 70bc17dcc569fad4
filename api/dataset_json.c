/*
 * dataset_json.c - a data set given as JSON (POST /v1/datasets with
 * application/json): {"name", "task", "x": [[...], ...], "y": [...],
 * "feature_names"?: [...], "classes"?: [...]}.
 *
 * x is a non-empty rectangular array of finite numbers (within float range);
 * classification y holds integers or strings, regression y numbers or
 * equal-length lists of numbers (several outputs). Without "task" the rule of
 * the CSV reader applies: classification when a label is not a number or all
 * labels are integers, else regression (lists always mean regression);
 * "classes" alone means classification. Integer labels >= 0 are class
 * indices (K = max + 1, or the given classes); strings, or integers some of
 * which are negative, are names (sorted, or matched to the given classes).
 * At most 65536 classes: past that, integer labels (task auto) become a
 * regression, as in the CSV reader.
 * Every problem is a 422 naming its field path ("x[3][2]", "y[5]"); up to
 * API_MAX_FIELD_ERRORS are collected before the reader gives up.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dataset_io.h"
#include "classes.h"
#include "dataset_util.h"

#define JSON_MAX_FEATURES 100000
#define JSON_MAX_CLASSES 65536

static int full(const api_err *e)
{
	return e->n_fields >= API_MAX_FIELD_ERRORS;
}

/* A finite number that fits a float. */
static int as_float(const cJSON *v, float *out)
{
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > FLT_MAX)
		return 0;
	*out = (float)v->valuedouble;
	return 1;
}

static int is_integer(const cJSON *v)
{
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
	       v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9007199254740992.0;
}

static int read_x(const cJSON *x, api_dataset *out, api_err *e)
{
	int n = cJSON_GetArraySize(x);
	const cJSON *row0 = cJSON_IsArray(x) ? x->child : NULL;
	if (!cJSON_IsArray(x) || n == 0)
		return api_err_field(e, "x", "must be a non-empty array of rows");
	if (!cJSON_IsArray(row0) || cJSON_GetArraySize(row0) == 0)
		return api_err_field(e, "x[0]", "must be a non-empty array of numbers");
	int f = cJSON_GetArraySize(row0);
	if (f > JSON_MAX_FEATURES)
		return api_err_field(e, "x[0]", "has %d features; at most %d are allowed", f,
				     JSON_MAX_FEATURES);
	out->rows = n;
	out->features = f;
	out->x = malloc((size_t)n * (size_t)f * sizeof(float));
	if (!out->x)
		return api_err_set(e, 413, "payload_too_large", "no memory for a data set this large");
	char path[64];
	int i = 0, bad = 0;
	for (const cJSON *row = x->child; row && !full(e); row = row->next, i++) {
		if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != f) {
			snprintf(path, sizeof path, "x[%d]", i);
			api_err_field(e, path, "must be an array of %d numbers like x[0]%s", f,
				      cJSON_IsArray(row) ? "" : " (got a non-array)");
			bad = 1;
			continue;
		}
		int j = 0;
		float *dst = out->x + (size_t)i * (size_t)f;
		for (const cJSON *v = row->child; v && !full(e); v = v->next, j++)
			if (cJSON_IsNull(v)) {
				dst[j] = NAN;   /* missing: imputed and flagged (tabular.h) */
				out->skipped_rows = -1;
			} else if (!as_float(v, &dst[j])) {
				snprintf(path, sizeof path, "x[%d][%d]", i, j);
				api_err_field(e, path, cJSON_IsNumber(v)
							? "must be a finite number within float range"
							: "must be a number");
				bad = 1;
			}
	}
	return bad ? -1 : 0;
}

static int read_names(const cJSON *fn, api_dataset *out, api_err *e)
{
	out->feature_names = calloc((size_t)out->features, sizeof(char *));
	if (!out->feature_names)
		return api_err_set(e, 413, "payload_too_large", "no memory for the feature names");
	if (fn && !cJSON_IsNull(fn)) {
		if (!cJSON_IsArray(fn) || cJSON_GetArraySize(fn) != out->features)
			return api_err_field(e, "feature_names", "must be an array of %d strings",
					     out->features);
		int i = 0;
		for (const cJSON *s = fn->child; s; s = s->next, i++) {
			if (!cJSON_IsString(s) || strlen(s->valuestring) > 256 ||
			    !api_utf8_valid(s->valuestring, strlen(s->valuestring))) {
				char path[48];
				snprintf(path, sizeof path, "feature_names[%d]", i);
				return api_err_field(e, path, "must be a UTF-8 string of at most 256 bytes");
			}
			out->feature_names[i] = api_strndup(s->valuestring, strlen(s->valuestring));
			if (!out->feature_names[i])
				return api_err_set(e, 413, "payload_too_large", "no memory");
		}
		return 0;
	}
	for (int i = 0; i < out->features; i++) {
		char b[24];
		snprintf(b, sizeof b, "x%d", i);
		out->feature_names[i] = api_strndup(b, strlen(b));
		if (!out->feature_names[i])
			return api_err_set(e, 413, "payload_too_large", "no memory");
	}
	return 0;
}

/* What y holds, for classification: 1 integers >= 0 (class indices), 2
 * names (strings, or integers some of which are negative), 0 something
 * else (each bad entry is named later), -1 strings and numbers mixed. */
static int label_kind(const cJSON *y)
{
	int str = 0, num = 0, neg = 0, other = 0;
	for (const cJSON *v = y->child; v; v = v->next) {
		if (cJSON_IsString(v))
			str = 1;
		else if (is_integer(v))
			num = 1, neg |= v->valuedouble < 0;
		else
			other = 1;
	}
	if (str && num)
		return -1;
	if (other)
		return 0;
	return num && !neg ? 1 : 2;
}

/* The text of label v (a string or an integer) into num when needed;
 * NULL when v is neither (the error is named). */
static const char *label_text(const cJSON *v, int i, char *num, size_t cap, api_err *e)
{
	if (is_integer(v)) {
		snprintf(num, cap, "%lld", (long long)v->valuedouble);
		return num;
	}
	if (cJSON_IsString(v) && v->valuestring[0] &&
	    api_utf8_valid(v->valuestring, strlen(v->valuestring)))
		return v->valuestring;
	char path[48];
	snprintf(path, sizeof path, "y[%d]", i);
	api_err_field(e, path, !cJSON_IsString(v) ? "must be an integer or a string (classification)"
			       : v->valuestring[0] ? "must be valid UTF-8" : "must not be empty");
	return NULL;
}

/* Integer labels >= 0 are class indices: K = max + 1 classes "0".."K-1", or
 * the given names (every index below their count). 1 when K is past
 * JSON_MAX_CLASSES (out->n_classes = K, nothing kept), 0, or -1. */
static int read_indices(const cJSON *y, const api_classes *given, api_dataset *out, api_err *e)
{
	double max = 0;
	for (const cJSON *v = y->child; v; v = v->next)
		max = v->valuedouble > max ? v->valuedouble : max;
	if (!given->names && max + 1 > JSON_MAX_CLASSES) {
		out->n_classes = max + 1 > INT32_MAX ? INT32_MAX : (int)(max + 1);
		return 1;
	}
	int k = given->names ? given->n : (int)max + 1, i = 0, bad = 0;
	out->labels = malloc((size_t)out->rows * sizeof *out->labels);
	out->classes = calloc((size_t)k + 1, sizeof *out->classes);
	if (!out->labels || !out->classes)
		return api_err_set(e, 413, "payload_too_large", "no memory for the labels");
	for (const cJSON *v = y->child; v && !full(e); v = v->next, i++) {
		if (v->valuedouble >= k) {
			char path[48];
			snprintf(path, sizeof path, "y[%d]", i);
			bad = api_err_field(e, path, "is class index %.0f, but \"classes\" names %d classes",
			                    v->valuedouble, k);
			continue;
		}
		out->labels[i] = (int32_t)v->valuedouble;
	}
	for (int c = 0; c < k && !bad; c++, out->n_classes++) {
		char b[16];
		snprintf(b, sizeof b, "%d", c);
		const char *s = given->names ? given->names[c] : b;
		if (!(out->classes[c] = api_strndup(s, strlen(s))))
			return api_err_set(e, 413, "payload_too_large", "no memory for the labels");
	}
	out->outputs = out->n_classes;
	return bad ? -1 : 0;
}

/* Names matched to the given classes: ids are their positions. */
static int read_given_names(const cJSON *y, const api_classes *given, int32_t *ids, api_err *e)
{
	api_labelset *ls = api_labelset_new();
	int bad = !ls, i = 0;
	for (int c = 0; ls && c < given->n && !bad; c++)
		bad = api_labelset_add(ls, given->names[c], strlen(given->names[c])) < 0;
	if (bad) {
		api_labelset_free(ls);
		return api_err_set(e, 413, "payload_too_large", "no memory for the labels");
	}
	for (const cJSON *v = y->child; v && !full(e); v = v->next, i++) {
		char num[32];
		const char *s = label_text(v, i, num, sizeof num, e);
		ids[i] = s ? api_labelset_add(ls, s, strlen(s)) : -1;
		if (s && (ids[i] < 0 || ids[i] >= given->n)) {
			char path[48];
			snprintf(path, sizeof path, "y[%d]", i);
			api_err_field(e, path, "is \"%.60s\", not one of \"classes\"", s);
		}
		bad |= !s || ids[i] < 0 || ids[i] >= given->n;
	}
	api_labelset_free(ls);
	return bad ? -1 : 0;
}

/* Names: the sorted distinct labels, or matched to the given classes. */
static int read_label_names(const cJSON *y, const api_classes *given, api_dataset *out, api_err *e)
{
	int32_t *ids = malloc((size_t)out->rows * sizeof *ids);
	if (!ids)
		return api_err_set(e, 413, "payload_too_large", "no memory for the labels");
	if (given->names) {
		if (read_given_names(y, given, ids, e) != 0) {
			free(ids);
			return -1;
		}
		out->labels = ids;
		out->classes = calloc((size_t)given->n + 1, sizeof *out->classes);
		for (int c = 0; out->classes && c < given->n; c++, out->n_classes++)
			if (!(out->classes[c] = api_strndup(given->names[c], strlen(given->names[c]))))
				break;
		out->outputs = out->n_classes;
		return out->n_classes == given->n ? 0
		       : api_err_set(e, 413, "payload_too_large", "no memory for the labels");
	}
	api_labelset *ls = api_labelset_new();
	if (!ls) {
		free(ids);
		return api_err_set(e, 413, "payload_too_large", "no memory for the labels");
	}
	int i = 0, bad = 0;
	for (const cJSON *v = y->child; v && !full(e); v = v->next, i++) {
		char num[32];
		const char *s = label_text(v, i, num, sizeof num, e);
		if (!s) {
			bad = 1;
			continue;
		}
		ids[i] = api_labelset_add(ls, s, strlen(s));
		if (ids[i] < 0) {
			bad = 1;
			api_err_set(e, 413, "payload_too_large", "no memory for the labels");
			break;
		}
	}
	int32_t *remap = NULL;
	if (!bad && api_labelset_finish(ls, &out->classes, &out->n_classes, &remap) != 0) {
		bad = 1;
		api_err_set(e, 413, "payload_too_large", "no memory for the labels");
	}
	api_labelset_free(ls);
	if (bad) {
		free(ids);
		return -1;
	}
	for (int64_t r = 0; r < out->rows; r++)
		ids[r] = remap[ids[r]];
	free(remap);
	out->labels = ids;
	out->outputs = out->n_classes;
	return 0;
}

/* Classification labels (API.md): integers >= 0 are class indices, other
 * labels names; a mix of strings and numbers is refused. 1 when integer
 * indices ask for more than JSON_MAX_CLASSES classes, 0, or -1. */
static int read_classes(const cJSON *y, const api_classes *given, api_dataset *out, api_err *e)
{
	int kind = label_kind(y);
	if (kind < 0)
		return api_err_field(e, "y", "mixes strings and numbers: give every label as a string, "
		                             "or every one as a class index");
	if (kind == 1)
		return read_indices(y, given, out, e);
	return read_label_names(y, given, out, e);
}

static int read_targets(const cJSON *y, api_dataset *out, api_err *e)
{
	const cJSON *y0 = y->child;
	int lists = cJSON_IsArray(y0);
	int k = lists ? cJSON_GetArraySize(y0) : 1;
	if (lists && (k == 0 || k > JSON_MAX_FEATURES))
		return api_err_field(e, "y[0]", "must be a non-empty list of numbers");
	out->outputs = k;
	out->targets = malloc((size_t)out->rows * (size_t)k * sizeof(float));
	if (!out->targets)
		return api_err_set(e, 413, "payload_too_large", "no memory for the targets");
	int i = 0, bad = 0;
	char path[64];
	for (const cJSON *v = y->child; v && !full(e); v = v->next, i++) {
		float *dst = out->targets + (size_t)i * (size_t)k;
		if (!lists) {
			if (!as_float(v, dst)) {
				snprintf(path, sizeof path, "y[%d]", i);
				api_err_field(e, path, cJSON_IsArray(v)
						       ? "must be a number like y[0]"
						       : "must be a finite number within float range (regression)");
				bad = 1;
			}
			continue;
		}
		if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != k) {
			snprintf(path, sizeof path, "y[%d]", i);
			api_err_field(e, path, "must be a list of %d numbers like y[0]", k);
			bad = 1;
			continue;
		}
		int j = 0;
		for (const cJSON *t = v->child; t && !full(e); t = t->next, j++)
			if (!as_float(t, &dst[j])) {
				snprintf(path, sizeof path, "y[%d][%d]", i, j);
				api_err_field(e, path, "must be a finite number within float range");
				bad = 1;
			}
	}
	return bad ? -1 : 0;
}

/* The task from y when the body gives none. */
static nn_task infer_task(const cJSON *y)
{
	int integral = 1;
	for (const cJSON *v = y->child; v; v = v->next) {
		if (cJSON_IsArray(v))
			return NN_TASK_REGRESSION;
		if (!cJSON_IsNumber(v))
			return NN_TASK_CLASSIFICATION;
		if (!is_integer(v))
			integral = 0;
	}
	return integral ? NN_TASK_CLASSIFICATION : NN_TASK_REGRESSION;
}

/* The body's members. */
typedef struct json_fields {
	const cJSON *x, *y, *task, *fn, *cls;
} json_fields;

/* Sorts the members into f, naming bad and unknown ones; then the task
 * (-1 when absent) into *t. 0, or -1 with field errors in e. */
static int read_fields(const cJSON *body, json_fields *f, int *t, api_err *e)
{
	int bad = 0;
	memset(f, 0, sizeof *f);
	for (const cJSON *it = body->child; it; it = it->next) {
		const char *k = it->string ? it->string : "";
		if (strcmp(k, "x") == 0)
			f->x = it;
		else if (strcmp(k, "y") == 0)
			f->y = it;
		else if (strcmp(k, "task") == 0)
			f->task = it;
		else if (strcmp(k, "feature_names") == 0)
			f->fn = it;
		else if (strcmp(k, "classes") == 0)
			f->cls = cJSON_IsNull(it) ? NULL : it;
		else if (strcmp(k, "name") == 0) {
			if (!cJSON_IsNull(it) && (!cJSON_IsString(it) ||
						  !api_utf8_valid(it->valuestring, strlen(it->valuestring))))
				bad = api_err_field(e, "name", "must be a UTF-8 string");
		} else {
			char path[128];
			snprintf(path, sizeof path, "%.100s", k);
			bad = api_err_field(e, path, "unknown field");
		}
	}
	*t = -1;
	const cJSON *task = f->task;
	if (task && !cJSON_IsNull(task)) {
		if (cJSON_IsString(task) && strcmp(task->valuestring, "classification") == 0)
			*t = NN_TASK_CLASSIFICATION;
		else if (cJSON_IsString(task) && strcmp(task->valuestring, "regression") == 0)
			*t = NN_TASK_REGRESSION;
		else
			bad = api_err_field(e, "task", "must be \"classification\" or \"regression\"");
	}
	if (!f->x)
		bad = api_err_field(e, "x", "is required");
	if (!f->y)
		bad = api_err_field(e, "y", "is required");
	else if (!cJSON_IsArray(f->y) || cJSON_GetArraySize(f->y) == 0)
		bad = api_err_field(e, "y", "must be a non-empty array");
	if (f->cls && *t == NN_TASK_REGRESSION)
		bad = api_err_field(e, "classes", "applies to classification only");
	return bad ? -1 : 0;
}

/* y into out by the task: classes or targets. t: the task the body gave
 * (-1 none). 0 or -1. */
static int read_labels(const cJSON *y, int t, const api_classes *given, api_dataset *out,
                       api_err *e)
{
	out->task = t >= 0 ? (nn_task)t : given->names ? NN_TASK_CLASSIFICATION : infer_task(y);
	if (given->names && cJSON_IsArray(y->child))
		return api_err_field(e, "classes", "applies to classification only (y holds lists)");
	int rc = out->task == NN_TASK_CLASSIFICATION ? read_classes(y, given, out, e)
	                                              : read_targets(y, out, e);
	if (rc < 0)
		return -1;
	if (rc == 0 && (out->task != NN_TASK_CLASSIFICATION || out->n_classes <= JSON_MAX_CLASSES))
		return 0;
	/* Like the CSV reader: integers asking for more classes than a model
	 * can have are an auto-detected regression. */
	int numbers = 1;
	for (const cJSON *v = y->child; v && numbers; v = v->next)
		numbers = cJSON_IsNumber(v);
	if (t >= 0 || !numbers)
		return api_err_field(e, "y", rc > 0 ? "asks for %d classes (the largest index + 1); a "
		                                       "classification has at most %d classes"
		                                    : "has %d distinct labels; a classification has at "
		                                      "most %d classes", out->n_classes, JSON_MAX_CLASSES);
	free(out->labels);
	out->labels = NULL;
	api_strv_free(out->classes, out->n_classes);
	out->classes = NULL;
	out->n_classes = 0;
	out->task = NN_TASK_REGRESSION;
	return read_targets(y, out, e);
}

int api_dataset_from_json(const cJSON *body, api_dataset *out, api_err *e)
{
	api_err scratch = API_ERR_INIT;
	if (!e)
		e = &scratch;
	memset(out, 0, sizeof *out);
	if (!cJSON_IsObject(body))
		return api_err_field(e, "body", "must be a JSON object");
	json_fields f;
	api_classes given = { NULL, 0 };
	int t, bad = read_fields(body, &f, &t, e);
	if (f.cls && t != NN_TASK_REGRESSION && api_classes_from_json(f.cls, "classes", &given, e) != 0)
		bad = -1;
	if (f.x && read_x(f.x, out, e) != 0)
		bad = -1;
	if (bad)
		goto fail;
	if (cJSON_GetArraySize(f.y) != out->rows) {
		api_err_field(e, "y", "must have one entry per row of x (%lld), got %d",
			      (long long)out->rows, cJSON_GetArraySize(f.y));
		goto fail;
	}
	if (read_labels(f.y, t, &given, out, e) != 0 || read_names(f.fn, out, e) != 0)
		goto fail;
	if (out->skipped_rows < 0) {
		/* holes in x: typed numeric columns with indicators */
		out->skipped_rows = 0;
		if (api_tab_type_numeric(out, 0, e) != 0)
			goto fail;
	}
	api_classes_free(&given);
	return 0;
fail:
	api_classes_free(&given);
	api_dataset_free(out);
	if (e && e->status == 0)
		api_err_set(e, 422, "validation_failed", "the data set is invalid");
	return -1;
}
