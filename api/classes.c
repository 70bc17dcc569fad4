/*
 * classes.c - class names given at upload, a model's classes, and the
 * relabelling of another data set by name (classes.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classes.h"
#include "dataset_util.h"

void api_classes_free(api_classes *c)
{
	if (!c)
		return;
	api_strv_free(c->names, c->n);
	c->names = NULL;
	c->n = 0;
}

/* Appends s[0..len) to out after checking it; set holds the names so far
 * (ids = positions). 0, or -1 with a field error on path. */
static int add_name(api_classes *out, api_labelset *set, const char *s, size_t len,
                    const char *path, api_err *e)
{
	if (len == 0 || len > API_CLASS_NAME_MAX || !api_utf8_valid(s, len))
		return api_err_field(e, path, "must be a non-empty UTF-8 name of at most %d bytes",
		                     API_CLASS_NAME_MAX);
	if (out->n >= API_MAX_CLASSES)
		return api_err_field(e, path, "is past the limit of %d classes", API_MAX_CLASSES);
	int32_t id = api_labelset_add(set, s, len);
	if (id < 0)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	if (id < out->n)
		return api_err_field(e, path, "names \"%.60s\" a second time", api_labelset_str(set, id));
	char *c = api_strndup(s, len);
	if (!c)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	char **nv = realloc(out->names, ((size_t)out->n + 1) * sizeof *nv);
	if (!nv) {
		free(c);
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	}
	out->names = nv;
	out->names[out->n++] = c;
	return 0;
}

int api_classes_from_text(const char *text, const char *field, api_classes *out, api_err *e)
{
	memset(out, 0, sizeof *out);
	api_labelset *set = api_labelset_new();
	if (!set)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	int rc = 0;
	for (const char *p = text;;) {
		size_t n = strcspn(p, ",");
		if ((rc = add_name(out, set, p, n, field, e)) != 0)
			break;
		if (!p[n])
			break;
		p += n + 1;
	}
	api_labelset_free(set);
	if (rc)
		api_classes_free(out);
	return rc;
}

int api_classes_from_json(const cJSON *a, const char *field, api_classes *out, api_err *e)
{
	memset(out, 0, sizeof *out);
	if (!cJSON_IsArray(a) || !a->child)
		return api_err_field(e, field, "must be a non-empty array of class names");
	api_labelset *set = api_labelset_new();
	if (!set)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	int rc = 0, i = 0;
	for (const cJSON *it = a->child; it; it = it->next, i++) {
		char path[64];
		snprintf(path, sizeof path, "%.40s[%d]", field, i);
		if (!cJSON_IsString(it)) {
			rc = api_err_field(e, path, "must be a string");
			break;
		}
		if ((rc = add_name(out, set, it->valuestring, strlen(it->valuestring), path, e)) != 0)
			break;
	}
	api_labelset_free(set);
	if (rc)
		api_classes_free(out);
	return rc;
}

cJSON *api_classes_json(char *const *names, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a && i < n; i++) {
		cJSON *s = cJSON_CreateString(names[i] ? names[i] : "");
		if (!s) {
			cJSON_Delete(a);
			return NULL;
		}
		cJSON_AddItemToArray(a, s);
	}
	return a;
}

int api_classes_are_indices(char *const *names, int n)
{
	for (int i = 0; i < n; i++) {
		char b[16];
		snprintf(b, sizeof b, "%d", i);
		if (!names[i] || strcmp(names[i], b) != 0)
			return 0;
	}
	return 1;
}

int api_classes_for_model(char *const *names, int n, int outputs, api_classes *out)
{
	memset(out, 0, sizeof *out);
	int indices = api_classes_are_indices(names, n);
	if (outputs != n && !(indices && outputs > n))
		return -1;
	out->names = calloc((size_t)outputs + 1, sizeof *out->names);
	if (!out->names)
		return -2;
	for (int i = 0; i < outputs; i++, out->n++) {
		char b[16];
		snprintf(b, sizeof b, "%d", i);
		const char *s = i < n ? names[i] : b;
		out->names[i] = api_strndup(s, strlen(s));
		if (!out->names[i]) {
			api_classes_free(out);
			return -2;
		}
	}
	return 0;
}

/* map[k] = the index in names of d's class k, -1 when names lacks it. */
static int32_t *class_map(const api_dataset *d, char *const *names, int n)
{
	api_labelset *set = api_labelset_new();
	int32_t *map = malloc(((size_t)d->n_classes + 1) * sizeof *map);
	int ok = set && map;
	for (int i = 0; ok && i < n; i++)
		ok = api_labelset_add(set, names[i], strlen(names[i])) >= 0;
	for (int k = 0; ok && k < d->n_classes; k++) {
		const char *s = d->classes[k] ? d->classes[k] : "";
		int32_t id = api_labelset_add(set, s, strlen(s));
		ok = id >= 0;
		map[k] = id < n ? id : -1;
	}
	api_labelset_free(set);
	if (!ok) {
		free(map);
		return NULL;
	}
	return map;
}

/* The 422 naming the classes of d that rows use and names lacks. */
static void unknown_error(const api_dataset *d, const int32_t *map, const char *field, api_err *e)
{
	char *used = calloc((size_t)d->n_classes + 1, 1);
	for (int64_t r = 0; used && r < d->rows; r++)
		if (d->labels[r] >= 0 && d->labels[r] < d->n_classes && map[d->labels[r]] < 0)
			used[d->labels[r]] = 1;
	char list[400] = "";
	size_t at = 0;
	int shown = 0, more = 0;
	for (int k = 0; used && k < d->n_classes; k++) {
		if (!used[k])
			continue;
		if (shown == 8 || at + 70 >= sizeof list) {
			more++;
			continue;
		}
		at += (size_t)snprintf(list + at, sizeof list - at, "%s\"%.60s\"", shown ? ", " : "",
		                       d->classes[k] ? d->classes[k] : "");
		shown++;
	}
	free(used);
	if (more)
		snprintf(list + at, sizeof list - at, " and %d more", more);
	api_err_field(e, field, "has rows of classes the training set lacks: %s", list);
}

int32_t *api_classes_relabel(const api_dataset *d, char *const *names, int n, const char *field,
                             int *identity, api_err *e)
{
	int32_t *map = class_map(d, names, n);
	int32_t *lab = malloc(((size_t)d->rows + 1) * sizeof *lab);
	if (!map || !lab) {
		free(map);
		free(lab);
		api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	int same = 1, bad = 0;
	for (int64_t r = 0; r < d->rows; r++) {
		int32_t k = d->labels[r];
		int32_t to = k >= 0 && k < d->n_classes ? map[k] : -1;
		if (to < 0)
			bad = 1;
		same &= to == k;
		lab[r] = to;
	}
	if (bad) {
		unknown_error(d, map, field, e);
		free(map);
		free(lab);
		return NULL;
	}
	free(map);
	if (identity)
		*identity = same;
	return lab;
}

char **api_classes_of_doc(const cJSON *doc, int *n)
{
	*n = 0;
	const cJSON *c = doc ? cJSON_GetObjectItemCaseSensitive(doc, "classes") : NULL;
	int k = cJSON_IsArray(c) ? cJSON_GetArraySize(c) : 0;
	char **v = k > 0 ? calloc((size_t)k, sizeof *v) : NULL;
	if (!v)
		return NULL;
	for (const cJSON *it = c->child; it; it = it->next)
		v[(*n)++] = cJSON_IsString(it) ? it->valuestring : (char *)"";
	return v;
}
