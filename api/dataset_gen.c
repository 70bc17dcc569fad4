/*
 * dataset_gen.c - a generated data set (POST /v1/datasets with a JSON body
 * holding "generator" instead of "x"/"y"): the generator document read into
 * an nn_gen_spec, every bad or inapplicable field named, the engine's
 * nn_generate called, and the data set's "generator" (with defaults) and
 * "theory" kept for its object.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_io.h"
#include "dataset_util.h"

static const char *const fn_names[] = {
	"linear", "additive", "tensor_product", "composition", "teacher"
};

/* Which optional fields apply to each function. */
enum { F_SMOOTH = 1, F_TERMS = 2, F_DEPTH = 4, F_ARITY = 8, F_WIDTH = 16, F_NONZERO = 32 };
static const int fn_fields[] = {
	0, F_SMOOTH, F_SMOOTH | F_TERMS, F_SMOOTH | F_DEPTH | F_ARITY,
	F_DEPTH | F_WIDTH | F_NONZERO
};

static int read_int(const cJSON *v, const char *field, double lo, double hi, int64_t *out,
                    api_err *e)
{
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble < lo || v->valuedouble > hi) {
		char path[64];
		snprintf(path, sizeof path, "generator.%s", field);
		return api_err_field(e, path, "must be an integer in [%.0f, %.0f]", lo, hi);
	}
	*out = (int64_t)v->valuedouble;
	return 0;
}

static int read_num(const cJSON *v, const char *field, double lo, double hi, double *out,
                    api_err *e)
{
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
	    v->valuedouble > hi) {
		char path[64];
		snprintf(path, sizeof path, "generator.%s", field);
		return api_err_field(e, path, "must be a number in [%g, %g]", lo, hi);
	}
	*out = v->valuedouble;
	return 0;
}

int api_gen_spec_from_json(const cJSON *g, nn_gen_spec *out, api_err *e)
{
	if (!cJSON_IsObject(g))
		return api_err_field(e, "generator", "must be an object");
	const cJSON *fn = cJSON_GetObjectItemCaseSensitive(g, "function");
	int f = -1;
	for (int i = 0; cJSON_IsString(fn) && i < 5; i++)
		if (strcmp(fn->valuestring, fn_names[i]) == 0)
			f = i;
	if (f < 0)
		return api_err_field(e, "generator.function", "must be linear, additive, "
		                     "tensor_product, composition or teacher");
	*out = nn_gen_default((nn_gen_function)f);
	int bad = 0, n0 = e->n_fields;
	for (const cJSON *it = g->child; it; it = it->next) {
		const char *k = it->string ? it->string : "";
		int64_t iv = 0;
		int need = 0;
		if (strcmp(k, "function") == 0)
			continue;
		if (strcmp(k, "inputs") == 0) {
			if (!read_int(it, k, 1, 10000, &iv, e))
				out->inputs = (int)iv;
		} else if (strcmp(k, "rows") == 0) {
			if (!read_int(it, k, 1, 10000000, &iv, e))
				out->rows = iv;
		} else if (strcmp(k, "noise_std") == 0) {
			read_num(it, k, 0, 1e6, &out->noise_std, e);
		} else if (strcmp(k, "function_seed") == 0) {
			if (!read_int(it, k, 0, 9007199254740991.0, &iv, e))
				out->function_seed = (uint64_t)iv;
		} else if (strcmp(k, "sample_seed") == 0) {
			if (!read_int(it, k, 0, 9007199254740991.0, &iv, e))
				out->sample_seed = (uint64_t)iv;
		} else if (strcmp(k, "smoothness") == 0) {
			need = F_SMOOTH;
			if (fn_fields[f] & need)
				read_num(it, k, 0.01, 20, &out->smoothness, e);
		} else if (strcmp(k, "terms") == 0) {
			need = F_TERMS;
			if ((fn_fields[f] & need) && !read_int(it, k, 1, 100, &iv, e))
				out->terms = (int)iv;
		} else if (strcmp(k, "depth") == 0) {
			need = F_DEPTH;
			if ((fn_fields[f] & need) && !read_int(it, k, 1, 10, &iv, e))
				out->depth = (int)iv;
		} else if (strcmp(k, "arity") == 0) {
			need = F_ARITY;
			if ((fn_fields[f] & need) && !read_int(it, k, 1, 10000, &iv, e))
				out->arity = (int)iv;
		} else if (strcmp(k, "width") == 0) {
			need = F_WIDTH;
			if ((fn_fields[f] & need) && !read_int(it, k, 1, 4096, &iv, e))
				out->width = (int)iv;
		} else if (strcmp(k, "nonzero") == 0) {
			need = F_NONZERO;
			if ((fn_fields[f] & need) && !read_int(it, k, 1, 1e9, &iv, e))
				out->nonzero = iv;
		} else {
			char path[160];
			snprintf(path, sizeof path, "generator.%.100s", k);
			bad = api_err_field(e, path, "unknown field");
		}
		if (need && !(fn_fields[f] & need)) {
			char path[64];
			snprintf(path, sizeof path, "generator.%s", k);
			bad = api_err_field(e, path, "does not apply to function %s", fn_names[f]);
		}
	}
	if (bad || e->n_fields > n0)
		return -1;
	if ((double)out->rows * out->inputs > 2e8)
		return api_err_field(e, "generator.rows", "rows x inputs must be at most 2e8");
	char msg[200];
	if (nn_gen_check(out, msg, sizeof msg) != NN_OK) {
		char path[64];
		size_t n = strcspn(msg, ":");
		snprintf(path, sizeof path, "%.*s", (int)(n < 60 ? n : 60), msg);
		return api_err_field(e, path, "%s", msg[n] ? msg + n + 2 : msg);
	}
	return 0;
}

cJSON *api_gen_spec_to_json(const nn_gen_spec *s)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	int f = (int)s->function;
	cJSON_AddStringToObject(o, "function", fn_names[f]);
	cJSON_AddNumberToObject(o, "inputs", s->inputs);
	cJSON_AddNumberToObject(o, "rows", (double)s->rows);
	if (fn_fields[f] & F_SMOOTH)
		cJSON_AddNumberToObject(o, "smoothness", s->smoothness);
	if (fn_fields[f] & F_TERMS)
		cJSON_AddNumberToObject(o, "terms", s->terms);
	if (fn_fields[f] & F_DEPTH)
		cJSON_AddNumberToObject(o, "depth", s->depth);
	if (fn_fields[f] & F_ARITY)
		cJSON_AddNumberToObject(o, "arity", s->arity);
	if (fn_fields[f] & F_WIDTH)
		cJSON_AddNumberToObject(o, "width", s->width);
	if (fn_fields[f] & F_NONZERO)
		cJSON_AddNumberToObject(o, "nonzero", (double)s->nonzero);
	cJSON_AddNumberToObject(o, "noise_std", s->noise_std);
	cJSON_AddNumberToObject(o, "function_seed", (double)s->function_seed);
	cJSON_AddNumberToObject(o, "sample_seed", (double)s->sample_seed);
	return o;
}

int api_dataset_from_generator(const cJSON *body, api_dataset *out, api_err *e)
{
	memset(out, 0, sizeof *out);
	for (const cJSON *it = body->child; it; it = it->next) {
		const char *k = it->string ? it->string : "";
		if (strcmp(k, "generator") && strcmp(k, "name")) {
			char path[128];
			snprintf(path, sizeof path, "%.100s", k);
			api_err_field(e, path, "%s", strcmp(k, "x") && strcmp(k, "y") && strcmp(k, "task")
			                             && strcmp(k, "feature_names") && strcmp(k, "classes")
			                             ? "unknown field" : "does not go with generator");
		}
	}
	nn_gen_spec s;
	if (api_gen_spec_from_json(cJSON_GetObjectItemCaseSensitive(body, "generator"), &s, e) < 0 ||
	    e->n_fields)
		goto fail;
	out->task = NN_TASK_REGRESSION;
	out->rows = s.rows;
	out->features = s.inputs;
	out->outputs = 1;
	out->x = malloc(sizeof(float) * (size_t)s.rows * (size_t)s.inputs);
	out->targets = malloc(sizeof(float) * (size_t)s.rows);
	out->feature_names = calloc((size_t)s.inputs, sizeof(char *));
	if (!out->x || !out->targets || !out->feature_names) {
		api_err_set(e, 413, "payload_too_large", "no memory for a data set this large");
		goto fail;
	}
	for (int i = 0; i < s.inputs; i++) {
		char b[24];
		snprintf(b, sizeof b, "x%d", i);
		if (!(out->feature_names[i] = api_strndup(b, strlen(b)))) {
			api_err_set(e, 413, "payload_too_large", "no memory");
			goto fail;
		}
	}
	char msg[200];
	if (nn_generate(&s, out->x, out->targets, NULL, msg, sizeof msg) != NN_OK) {
		api_err_set(e, 422, "validation_failed", "%s", msg);
		goto fail;
	}
	out->extra = cJSON_CreateObject();
	cJSON *gj = api_gen_spec_to_json(&s);
	if (!out->extra || !gj) {
		cJSON_Delete(gj);
		api_err_set(e, 500, "out_of_memory", "out of memory");
		goto fail;
	}
	cJSON_AddItemToObject(out->extra, "generator", gj);
	cJSON *th = cJSON_AddObjectToObject(out->extra, "theory");
	int known = 0;
	double r = nn_gen_rate_exponent(&s, &known);
	if (known)
		cJSON_AddNumberToObject(th, "rate_exponent", r);
	else
		cJSON_AddNullToObject(th, "rate_exponent");
	return 0;
fail:
	api_dataset_free(out);
	if (e->status == 0)
		api_err_set(e, 422, "validation_failed", "the generator is invalid");
	return -1;
}
