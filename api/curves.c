/*
 * curves.c - min/max thinning of metric curves (see curves.h).
 *
 * One pass reads every curve's value of every record into a matrix (NaN
 * where a record lacks it or holds null), a second marks per bucket and
 * curve the records of the minimum and the maximum, a third rebuilds the
 * kept records from the originals' values, so nothing is rounded.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "curves.h"

#define GRAD "grad_norms"

typedef struct curves {
	char **names;       /* a top-level member, or "grad_norms" + '\x1f' + key */
	int n, cap;
} curves;

static int is_x(const char *k)
{
	return !strcmp(k, "step") || !strcmp(k, "epoch");
}

static int curve_index(curves *c, const char *name, int add)
{
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->names[i], name))
			return i;
	if (!add)
		return -1;
	if (c->n == c->cap) {
		int cap = c->cap ? c->cap * 2 : 16;
		char **p = realloc(c->names, (size_t)cap * sizeof *p);
		if (!p)
			return -2;
		c->names = p;
		c->cap = cap;
	}
	if (!(c->names[c->n] = strdup(name)))
		return -2;
	return c->n++;
}

static void curves_free(curves *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->names[i]);
	free(c->names);
}

/* The grad_norms key's curve name in buf. */
static const char *grad_name(char *buf, size_t cap, const char *key)
{
	size_t kl = strlen(key), gl = sizeof GRAD - 1;
	if (gl + 1 + kl + 1 > cap)
		return NULL;
	memcpy(buf, GRAD, gl);
	buf[gl] = '\x1f';
	memcpy(buf + gl + 1, key, kl + 1);
	return buf;
}

/* Every curve named in the records; -1 when out of memory. */
static int collect(const cJSON *records, curves *c)
{
	const cJSON *r, *m, *g;
	char buf[512];
	cJSON_ArrayForEach(r, records) {
		cJSON_ArrayForEach(m, r) {
			if (cJSON_IsNumber(m) && !is_x(m->string)) {
				if (curve_index(c, m->string, 1) < 0)
					return -1;
			} else if (cJSON_IsObject(m) && !strcmp(m->string, GRAD)) {
				cJSON_ArrayForEach(g, m) {
					const char *nm = grad_name(buf, sizeof buf, g->string);
					if (nm && cJSON_IsNumber(g) && curve_index(c, nm, 1) < 0)
						return -1;
				}
			}
		}
	}
	return 0;
}

/* v[i * nc + k]: record i's value of curve k, NaN when it has none. */
static void fill(const cJSON *records, curves *c, float *v)
{
	const cJSON *r, *m, *g;
	char buf[512];
	int nc = c->n;
	size_t i = 0;
	cJSON_ArrayForEach(r, records) {
		for (int k = 0; k < nc; k++)
			v[i * (size_t)nc + (size_t)k] = NAN;
		cJSON_ArrayForEach(m, r) {
			if (cJSON_IsNumber(m) && !is_x(m->string)) {
				int k = curve_index(c, m->string, 0);
				v[i * (size_t)nc + (size_t)k] = (float)m->valuedouble;
			} else if (cJSON_IsObject(m) && !strcmp(m->string, GRAD)) {
				cJSON_ArrayForEach(g, m) {
					const char *nm = grad_name(buf, sizeof buf, g->string);
					int k = nm && cJSON_IsNumber(g) ? curve_index(c, nm, 0) : -1;
					if (k >= 0)
						v[i * (size_t)nc + (size_t)k] = (float)g->valuedouble;
				}
			}
		}
		i++;
	}
}

/* Marks keep[i * nc + k] for each bucket's min and max of each curve. */
static void mark(const float *v, size_t n, int nc, int buckets, unsigned char *keep)
{
	for (int k = 0; k < nc; k++)
		for (int b = 0; b < buckets; b++) {
			size_t lo = n * (size_t)b / (size_t)buckets, hi = n * (size_t)(b + 1) / (size_t)buckets;
			size_t imin = hi, imax = hi;
			for (size_t i = lo; i < hi; i++) {
				float x = v[i * (size_t)nc + (size_t)k];
				if (isnan(x))
					continue;
				if (imin == hi || x < v[imin * (size_t)nc + (size_t)k])
					imin = i;
				if (imax == hi || x > v[imax * (size_t)nc + (size_t)k])
					imax = i;
			}
			if (imin < hi)
				keep[imin * (size_t)nc + (size_t)k] = 1;
			if (imax < hi)
				keep[imax * (size_t)nc + (size_t)k] = 1;
		}
}

/* The kept part of record r (its x values and kept curves), or NULL when
 * it keeps no curve. */
static cJSON *kept_record(const cJSON *r, curves *c, const unsigned char *keep)
{
	cJSON *o = cJSON_CreateObject(), *gn = NULL;
	const cJSON *m, *g;
	char buf[512];
	int any = 0;
	if (!o)
		return NULL;
	cJSON_ArrayForEach(m, r) {
		if (is_x(m->string)) {
			cJSON_AddItemToObject(o, m->string, cJSON_Duplicate(m, 1));
		} else if (cJSON_IsNumber(m)) {
			if (keep[curve_index(c, m->string, 0)]) {
				cJSON_AddItemToObject(o, m->string, cJSON_Duplicate(m, 1));
				any = 1;
			}
		} else if (cJSON_IsObject(m) && !strcmp(m->string, GRAD)) {
			cJSON_ArrayForEach(g, m) {
				const char *nm = grad_name(buf, sizeof buf, g->string);
				int k = nm && cJSON_IsNumber(g) ? curve_index(c, nm, 0) : -1;
				if (k < 0 || !keep[k])
					continue;
				if (!gn)
					gn = cJSON_AddObjectToObject(o, GRAD);
				cJSON_AddItemToObject(gn, g->string, cJSON_Duplicate(g, 1));
				any = 1;
			}
		}
	}
	if (!any) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int api_curves_downsample(cJSON *records, int max_points)
{
	int n = cJSON_GetArraySize(records);
	if (!cJSON_IsArray(records) || max_points < 2 || n <= max_points)
		return 0;
	curves c = { NULL, 0, 0 };
	if (collect(records, &c) < 0 || c.n == 0) {
		int rc = c.n == 0 ? 0 : -1;
		curves_free(&c);
		return rc;
	}
	int nc = c.n;
	float *v = malloc((size_t)n * (size_t)nc * sizeof *v);
	unsigned char *keep = calloc((size_t)n * (size_t)nc, 1);
	cJSON *out = cJSON_CreateArray();
	if (!v || !keep || !out) {
		free(v);
		free(keep);
		cJSON_Delete(out);
		curves_free(&c);
		return -1;
	}
	fill(records, &c, v);
	mark(v, (size_t)n, c.n, max_points / 2, keep);
	const cJSON *r;
	size_t i = 0;
	cJSON_ArrayForEach(r, records) {
		cJSON *o = kept_record(r, &c, keep + i * (size_t)nc);
		if (o)
			cJSON_AddItemToArray(out, o);
		i++;
	}
	/* the thinned records replace the originals */
	while (cJSON_GetArraySize(records) > 0)
		cJSON_DeleteItemFromArray(records, 0);
	while (out->child) {
		cJSON *o = cJSON_DetachItemViaPointer(out, out->child);
		cJSON_AddItemToArray(records, o);
	}
	cJSON_Delete(out);
	free(v);
	free(keep);
	curves_free(&c);
	return 1;
}
