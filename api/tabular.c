/*
 * tabular.c - typed columns and their encoding (see tabular.h): built from a
 * data set's columns, kept with a model as JSON, applied to data sets
 * (matched by column name) and to the raw records of predictions.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dataset_io.h"
#include "dataset_util.h"
#include "store.h"
#include "tabular.h"

/* ---------------------------------------------------------------- columns */

void api_columns_free(api_column *c, int n)
{
	if (!c)
		return;
	for (int i = 0; i < n; i++) {
		free(c[i].name);
		api_strv_free(c[i].levels, c[i].n_levels);
	}
	free(c);
}

static char **strv_copy(char *const *v, int n)
{
	char **o = calloc((size_t)n + 1, sizeof *o);
	for (int i = 0; o && i < n; i++)
		if (!(o[i] = api_strndup(v[i], strlen(v[i])))) {
			api_strv_free(o, i);
			return NULL;
		}
	return o;
}

int api_columns_copy(const api_column *src, int n, api_column **out)
{
	*out = NULL;
	api_column *c = calloc((size_t)n + 1, sizeof *c);
	if (!c)
		return -1;
	for (int i = 0; i < n; i++) {
		c[i] = src[i];
		c[i].name = api_strndup(src[i].name, strlen(src[i].name));
		c[i].levels = src[i].n_levels ? strv_copy(src[i].levels, src[i].n_levels) : NULL;
		if (!c[i].name || (src[i].n_levels && !c[i].levels)) {
			free(c[i].name);
			c[i].n_levels = 0;
			api_columns_free(c, i + 1);
			return -1;
		}
	}
	*out = c;
	return 0;
}

const char *api_col_type_name(api_col_type t)
{
	return t == API_COL_NUMERIC ? "numeric" : t == API_COL_CATEGORICAL ? "categorical" : "empty";
}

static cJSON *levels_json(char *const *levels, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(levels[i]));
	return a;
}

/* The shortest decimal of a double that is a float's or a mean's. */
static double short_num(double v)
{
	char b[40];
	for (int p = 6; p <= 17; p++) {
		snprintf(b, sizeof b, "%.*g", p, v);
		double r = strtod(b, NULL);   /* once: a data set's doc has two per column */
		if (r == v || (p >= 9 && fabs(r - v) <= fabs(v) * 1e-15))
			return r;
	}
	return v;
}

cJSON *api_columns_json(const api_column *c, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a && i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", c[i].name);
		cJSON_AddStringToObject(o, "type", api_col_type_name(c[i].type));
		if (c[i].type == API_COL_CATEGORICAL)
			cJSON_AddItemToObject(o, "levels", levels_json(c[i].levels, c[i].n_levels));
		cJSON_AddNumberToObject(o, "missing", (double)c[i].missing);
		if (c[i].type == API_COL_NUMERIC) {
			cJSON_AddNumberToObject(o, "mean", short_num(c[i].mean));
			cJSON_AddNumberToObject(o, "std", short_num(c[i].std));
		}
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

/* ---------------------------------------------------------------- encodings */

void api_tab_enc_free(api_tab_enc *enc)
{
	if (!enc)
		return;
	for (int i = 0; enc->cols && i < enc->n; i++) {
		free(enc->cols[i].name);
		api_strv_free(enc->cols[i].levels, enc->cols[i].n_levels);
	}
	free(enc->cols);
	memset(enc, 0, sizeof *enc);
}

/* Gives each column its offset and sums the width. */
static void layout(api_tab_enc *enc)
{
	int w = 0;
	for (int i = 0; i < enc->n; i++) {
		api_tab_col *c = &enc->cols[i];
		c->offset = w;
		w += c->type == API_COL_NUMERIC ? 1 : c->type == API_COL_CATEGORICAL ? c->n_levels : 0;
		w += c->indicator;
	}
	enc->width = w;
}

int api_tab_enc_from_dataset(const api_dataset *d, const int64_t *rows, int64_t n,
                             api_tab_enc *out)
{
	memset(out, 0, sizeof *out);
	int nc = d->n_columns;
	const float *raw = d->raw ? d->raw : d->x;
	out->cols = calloc((size_t)nc + 1, sizeof *out->cols);
	double *sum = calloc((size_t)nc + 1, sizeof *sum);
	int64_t *cnt = calloc((size_t)nc + 1, sizeof *cnt);
	if (!out->cols || !sum || !cnt)
		goto oom;
	out->n = nc;
	for (int j = 0; j < nc; j++) {
		const api_column *s = &d->columns[j];
		api_tab_col *c = &out->cols[j];
		c->type = s->type;
		c->name = api_strndup(s->name, strlen(s->name));
		if (!c->name)
			goto oom;
		if (s->type == API_COL_CATEGORICAL) {
			c->levels = strv_copy(s->levels, s->n_levels);
			if (!c->levels)
				goto oom;
			c->n_levels = s->n_levels;
		}
		c->indicator = s->type != API_COL_EMPTY && s->missing > 0;
	}
	int64_t m = rows ? n : d->rows;
	for (int64_t k = 0; k < m; k++) {
		const float *r = raw + (rows ? rows[k] : k) * nc;
		for (int j = 0; j < nc; j++)
			if (out->cols[j].type == API_COL_NUMERIC && !isnan(r[j])) {
				sum[j] += r[j];
				cnt[j]++;
			}
	}
	for (int j = 0; j < nc; j++)
		out->cols[j].impute = cnt[j] ? (float)(sum[j] / (double)cnt[j]) : 0.0f;
	free(sum);
	free(cnt);
	layout(out);
	return 0;
oom:
	free(sum);
	free(cnt);
	api_tab_enc_free(out);
	return -1;
}

char **api_tab_enc_names(const api_tab_enc *enc)
{
	char **v = calloc((size_t)enc->width + 1, sizeof *v);
	int k = 0;
	for (int i = 0; v && i < enc->n; i++) {
		const api_tab_col *c = &enc->cols[i];
		size_t nl = strlen(c->name);
		if (c->type == API_COL_NUMERIC)
			v[k++] = api_strndup(c->name, nl);
		for (int l = 0; c->type == API_COL_CATEGORICAL && l < c->n_levels; l++) {
			size_t ll = strlen(c->levels[l]);
			char *s = malloc(nl + ll + 2);
			if (s)
				snprintf(s, nl + ll + 2, "%s=%s", c->name, c->levels[l]);
			v[k++] = s;
		}
		if (c->indicator) {
			char *s = malloc(nl + 9);
			if (s)
				snprintf(s, nl + 9, "%s:missing", c->name);
			v[k++] = s;
		}
	}
	for (int i = 0; v && i < k; i++)
		if (!v[i]) {
			api_strv_free(v, k);
			return NULL;
		}
	return v;
}

uint8_t *api_tab_enc_passthrough(const api_tab_enc *enc)
{
	uint8_t *p = calloc((size_t)enc->width + 1, 1);
	for (int i = 0; p && i < enc->n; i++) {
		const api_tab_col *c = &enc->cols[i];
		int n = c->type == API_COL_CATEGORICAL ? c->n_levels : 0;
		memset(p + c->offset + (c->type == API_COL_NUMERIC), 1, (size_t)(n + c->indicator));
	}
	return p;
}

void api_tab_encode_row(const api_tab_enc *enc, const float *raw, float *out)
{
	for (int i = 0; i < enc->n; i++) {
		const api_tab_col *c = &enc->cols[i];
		float v = raw[i];
		int miss = isnan(v);
		float *o = out + c->offset;
		if (c->type == API_COL_NUMERIC) {
			*o++ = miss ? c->impute : v;
		} else if (c->type == API_COL_CATEGORICAL) {
			memset(o, 0, sizeof *o * (size_t)c->n_levels);
			if (!miss && v >= 0 && v < (float)c->n_levels)
				o[(int)v] = 1.0f;
			o += c->n_levels;
		}
		if (c->indicator)
			*o = miss ? 1.0f : 0.0f;
	}
}

int api_tab_level(char *const *levels, int n, const char *s)
{
	int lo = 0, hi = n - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		int r = strcmp(levels[mid], s);
		if (r == 0)
			return mid;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

void api_tab_number_text(float v, char *buf, size_t cap)
{
	if (v == 0)
		v = 0; /* -0 is 0 */
	for (int p = 1; p <= 9; p++) {
		snprintf(buf, cap, "%.*g", p, (double)v);
		if (strtof(buf, NULL) == v)
			return;
	}
}

/* Per column of enc: where its values come from in d (-1: d lacks it) and,
 * for categorical columns, d's level index -> enc's (-1 unknown). */
typedef struct col_map {
	int src;
	int *lv;
	int by_text;   /* numbers of d matched to enc's levels by their text */
} col_map;

static void maps_free(col_map *m, int n)
{
	for (int i = 0; m && i < n; i++)
		free(m[i].lv);
	free(m);
}

static col_map *maps_build(const api_tab_enc *enc, const api_dataset *d, const char *field,
                           api_err *e)
{
	col_map *m = calloc((size_t)enc->n + 1, sizeof *m);
	if (!m) {
		api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	for (int i = 0; i < enc->n; i++) {
		const api_tab_col *c = &enc->cols[i];
		/* the same place first, so files with repeated names match
		 * themselves; then the first column of that name */
		m[i].src = i < d->n_columns && strcmp(d->columns[i].name, c->name) == 0 ? i : -1;
		for (int j = 0; j < d->n_columns && m[i].src < 0; j++)
			if (strcmp(d->columns[j].name, c->name) == 0) {
				m[i].src = j;
				break;
			}
		if (m[i].src < 0)
			continue;
		const api_column *s = &d->columns[m[i].src];
		if (s->type == API_COL_EMPTY || c->type == API_COL_EMPTY)
			continue;
		if (s->type == API_COL_CATEGORICAL && c->type == API_COL_NUMERIC) {
			api_err_field(e, field, "column '%s' is %s here but %s in the training set",
			              c->name, api_col_type_name(s->type), api_col_type_name(c->type));
			maps_free(m, enc->n);
			return NULL;
		}
		m[i].by_text = s->type == API_COL_NUMERIC && c->type == API_COL_CATEGORICAL;
		if (c->type != API_COL_CATEGORICAL || m[i].by_text)
			continue;
		m[i].lv = malloc(sizeof(int) * ((size_t)s->n_levels + 1));
		if (!m[i].lv) {
			maps_free(m, enc->n);
			api_err_set(e, 500, "out_of_memory", "out of memory");
			return NULL;
		}
		for (int l = 0; l < s->n_levels; l++)
			m[i].lv[l] = api_tab_level(c->levels, c->n_levels, s->levels[l]);
	}
	return m;
}

int api_tab_encode_dataset(const api_tab_enc *enc, const api_dataset *d, const char *field,
                           float **x, api_err *e)
{
	*x = NULL;
	size_t n = (size_t)d->rows * (size_t)enc->width;
	if (!d->columns) {
		if (d->features != enc->width)
			return api_err_field(e, field, "the data set has %d features, the training set %d",
			                     d->features, enc->width);
		*x = malloc(n ? n * 4 : 1);
		if (!*x)
			return api_err_set(e, 500, "out_of_memory", "out of memory");
		if (n)
			memcpy(*x, d->x, n * 4);
		return 0;
	}
	col_map *m = maps_build(enc, d, field, e);
	if (!m)
		return -1;
	float *out = malloc(n ? n * 4 : 1);
	float *row = malloc(sizeof(float) * ((size_t)enc->n + 1));
	if (!out || !row) {
		free(out);
		free(row);
		maps_free(m, enc->n);
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	}
	const float *raw = d->raw ? d->raw : d->x;
	for (int64_t r = 0; r < d->rows; r++) {
		const float *src = raw + r * d->n_columns;
		for (int i = 0; i < enc->n; i++) {
			float v = m[i].src >= 0 ? src[m[i].src] : NAN;
			if (m[i].src >= 0 && d->columns[m[i].src].type == API_COL_EMPTY)
				v = NAN;
			if (m[i].lv && !isnan(v))
				v = m[i].lv[(int)v] < 0 ? -1.0f : (float)m[i].lv[(int)v];
			if (m[i].by_text && !isnan(v)) {
				char t[40];
				api_tab_number_text(v, t, sizeof t);
				v = (float)api_tab_level(enc->cols[i].levels, enc->cols[i].n_levels, t);
			}
			row[i] = v;
		}
		api_tab_encode_row(enc, row, out + r * enc->width);
	}
	free(row);
	maps_free(m, enc->n);
	*x = out;
	return 0;
}

/* ---------------------------------------------------------------- JSON */

cJSON *api_tab_enc_to_json(const api_tab_enc *enc)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a && i < enc->n; i++) {
		const api_tab_col *c = &enc->cols[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", c->name);
		cJSON_AddStringToObject(o, "type", api_col_type_name(c->type));
		if (c->type == API_COL_CATEGORICAL)
			cJSON_AddItemToObject(o, "levels", levels_json(c->levels, c->n_levels));
		if (c->type == API_COL_NUMERIC)
			cJSON_AddNumberToObject(o, "impute", api_float_json(c->impute));
		cJSON_AddBoolToObject(o, "indicator", c->indicator);
		cJSON_AddNumberToObject(o, "inputs", c->offset);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

int api_tab_enc_from_json(const cJSON *a, api_tab_enc *out, api_err *e)
{
	memset(out, 0, sizeof *out);
	int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
	if (n < 0)
		return api_err_set(e, 500, "corrupt_model", "the model's columns are not a list");
	out->cols = calloc((size_t)n + 1, sizeof *out->cols);
	if (!out->cols)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	const cJSON *o;
	cJSON_ArrayForEach(o, a) {
		api_tab_col *c = &out->cols[out->n++];
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
		const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
		const cJSON *lv = cJSON_GetObjectItemCaseSensitive(o, "levels");
		const cJSON *im = cJSON_GetObjectItemCaseSensitive(o, "impute");
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "indicator");
		if (!cJSON_IsString(nm) || !cJSON_IsString(ty))
			goto bad;
		c->name = api_strndup(nm->valuestring, strlen(nm->valuestring));
		if (!c->name)
			goto bad;
		if (strcmp(ty->valuestring, "numeric") == 0)
			c->type = API_COL_NUMERIC;
		else if (strcmp(ty->valuestring, "categorical") == 0)
			c->type = API_COL_CATEGORICAL;
		else if (strcmp(ty->valuestring, "empty") == 0)
			c->type = API_COL_EMPTY;
		else
			goto bad;
		c->indicator = cJSON_IsTrue(in);
		c->impute = cJSON_IsNumber(im) ? (float)im->valuedouble : 0.0f;
		if (c->type == API_COL_CATEGORICAL) {
			int nl = cJSON_IsArray(lv) ? cJSON_GetArraySize(lv) : -1;
			if (nl < 0 || !(c->levels = calloc((size_t)nl + 1, sizeof *c->levels)))
				goto bad;
			const cJSON *l;
			cJSON_ArrayForEach(l, lv) {
				if (!cJSON_IsString(l) ||
				    !(c->levels[c->n_levels] = api_strndup(l->valuestring, strlen(l->valuestring))))
					goto bad;
				if (c->n_levels > 0 && strcmp(c->levels[c->n_levels - 1], l->valuestring) >= 0) {
					c->n_levels++;
					goto bad;
				}
				c->n_levels++;
			}
		}
	}
	layout(out);
	return 0;
bad:
	api_tab_enc_free(out);
	return api_err_set(e, 500, "corrupt_model", "the model's columns are damaged");
}

/* ---------------------------------------------------------------- records */

static void warn(cJSON *w, int64_t row, const char *col, const char *msg)
{
	if (!w)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "row", (double)row);
	cJSON_AddStringToObject(o, "column", col);
	cJSON_AddStringToObject(o, "message", msg);
	cJSON_AddItemToArray(w, o);
}

/* One raw JSON value of column c into a raw float (NaN when missing):
 * 0, or -2 for a value of the wrong kind. */
static int raw_value(const api_tab_col *c, const cJSON *v, int64_t row, float *out,
                     cJSON *warnings)
{
	*out = NAN;
	if (!v || cJSON_IsNull(v) || c->type == API_COL_EMPTY)
		return 0;
	if (c->type == API_COL_NUMERIC) {
		if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && fabs(v->valuedouble) <= 3.4028234e38) {
			*out = (float)v->valuedouble;
			return 0;
		}
		return -2;
	}
	char num[40];
	const char *s;
	if (cJSON_IsString(v)) {
		s = v->valuestring;
	} else if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
		api_tab_number_text((float)v->valuedouble, num, sizeof num);
		s = num;
	} else {
		return -2;
	}
	int l = api_tab_level(c->levels, c->n_levels, s);
	if (l < 0) {
		char msg[300];
		snprintf(msg, sizeof msg, "unknown level '%.200s' (encoded as all zeros)", s);
		warn(warnings, row, c->name, msg);
		*out = -1.0f;
	} else {
		*out = (float)l;
	}
	return 0;
}

int api_tab_encode_record(const api_tab_enc *enc, const cJSON *rec, int64_t row, float *out,
                          cJSON *warnings, api_err *e)
{
	float stackraw[64];
	float *raw = enc->n <= 64 ? stackraw : malloc(sizeof(float) * (size_t)enc->n);
	if (!raw)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	int rc = 0;
	if (cJSON_IsObject(rec)) {
		for (int i = 0; i < enc->n && rc == 0; i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, enc->cols[i].name);
			rc = raw_value(&enc->cols[i], v, row, &raw[i], warnings);
			if (rc)
				rc = -1 - i;
		}
		const cJSON *k;
		cJSON_ArrayForEach(k, rec) {
			int known = 0;
			for (int i = 0; i < enc->n && !known; i++)
				known = strcmp(enc->cols[i].name, k->string) == 0;
			if (!known && rc == 0)
				warn(warnings, row, k->string, "not a column of the model: ignored");
		}
	} else if (cJSON_IsArray(rec)) {
		int n = cJSON_GetArraySize(rec);
		if (n != enc->n) {
			if (raw != stackraw)
				free(raw);
			char f[48];
			snprintf(f, sizeof f, "instances[%lld]", (long long)row);
			return api_err_field(e, f, "must have %d values (the model's columns), has %d",
			                     enc->n, n);
		}
		const cJSON *v = rec->child;
		for (int i = 0; i < enc->n && rc == 0; i++, v = v->next) {
			rc = raw_value(&enc->cols[i], v, row, &raw[i], warnings);
			if (rc)
				rc = -1 - i;
		}
	} else {
		if (raw != stackraw)
			free(raw);
		char f[48];
		snprintf(f, sizeof f, "instances[%lld]", (long long)row);
		return api_err_field(e, f, "must be an object by column name or a list of values");
	}
	if (rc) {
		const api_tab_col *c = &enc->cols[-1 - rc];
		if (raw != stackraw)
			free(raw);
		char f[300];
		snprintf(f, sizeof f, "instances[%lld].%.200s", (long long)row, c->name);
		return api_err_field(e, f, c->type == API_COL_NUMERIC ? "must be a number or null"
		                                                     : "must be a string, a number or null");
	}
	api_tab_encode_row(enc, raw, out);
	if (raw != stackraw)
		free(raw);
	return 0;
}

/* ---------------------------------------------------------------- jobs */

int api_tab_train_prepare(const api_dataset *train, const api_dataset *val,
                          const api_dataset *test, const int64_t *tr_rows, int64_t n_tr,
                          api_tab_train *out, api_err *e)
{
	memset(out, 0, sizeof *out);
	if (!train->columns)
		return 0;
	if (api_tab_enc_from_dataset(train, tr_rows, n_tr, &out->enc) != 0)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	if (train->raw) {
		out->std_skip = api_tab_enc_passthrough(&out->enc);
		if (!out->std_skip) {
			api_tab_train_release(out);
			return api_err_set(e, 500, "out_of_memory", "out of memory");
		}
		if (api_tab_encode_dataset(&out->enc, train, "dataset", &out->x, e) < 0) {
			api_tab_train_release(out);
			return -1;
		}
	}
	if ((val && val->columns &&
	     api_tab_encode_dataset(&out->enc, val, "validation.dataset", &out->val_x, e) < 0) ||
	    (test && test->columns &&
	     api_tab_encode_dataset(&out->enc, test, "test.dataset", &out->test_x, e) < 0)) {
		api_tab_train_release(out);
		return -1;
	}
	return 0;
}

void api_tab_train_release(api_tab_train *t)
{
	if (!t)
		return;
	api_tab_enc_free(&t->enc);
	free(t->x);
	free(t->val_x);
	free(t->test_x);
	free(t->std_skip);
	memset(t, 0, sizeof *t);
}

char *api_tab_meta_make(const char *classes_json, const api_tab_enc *enc)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *c = classes_json ? cJSON_Parse(classes_json) : NULL;
	cJSON_AddItemToObject(o, "classes", c ? c : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "columns", api_tab_enc_to_json(enc));
	char *t = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return t;
}

void api_tab_meta_parse(const cJSON *meta, const cJSON **classes, const cJSON **columns)
{
	*classes = *columns = NULL;
	if (cJSON_IsArray(meta)) {
		*classes = meta;
	} else if (cJSON_IsObject(meta)) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(meta, "classes");
		*classes = cJSON_IsArray(c) ? c : NULL;
		c = cJSON_GetObjectItemCaseSensitive(meta, "columns");
		*columns = cJSON_IsArray(c) ? c : NULL;
	}
}

int api_tab_enc_plain(const api_tab_enc *enc)
{
	for (int i = 0; i < enc->n; i++)
		if (enc->cols[i].type != API_COL_NUMERIC || enc->cols[i].indicator)
			return 0;
	return 1;
}

float *api_tab_read_instances(const api_tab_enc *enc, const cJSON *inst, int max_rows,
                              int *rows, cJSON *warnings, api_err *e)
{
	if (!cJSON_IsArray(inst)) {
		api_err_field(e, "instances", "must be an array of records");
		return NULL;
	}
	int n = cJSON_GetArraySize(inst);
	if (n < 1 || n > max_rows) {
		api_err_field(e, "instances", "must hold 1 to %d records", max_rows);
		return NULL;
	}
	float *x = malloc((size_t)n * (size_t)(enc->width ? enc->width : 1) * sizeof *x);
	if (!x) {
		api_err_set(e, 500, "out_of_memory", "out of memory");
		return NULL;
	}
	int r = 0;
	const cJSON *rec;
	cJSON_ArrayForEach(rec, inst) {
		if (api_tab_encode_record(enc, rec, r, x + (size_t)r * enc->width, warnings, e) < 0 &&
		    (e->status != 422 || e->n_fields >= API_MAX_FIELD_ERRORS))
			break;
		r++;
	}
	if (e->status) {
		free(x);
		return NULL;
	}
	*rows = n;
	return x;
}

int api_tab_columns_check(const cJSON *train, const cJSON *other, const char *field,
                          api_err *e)
{
	int bad = 0;
	const cJSON *t, *o;
	cJSON_ArrayForEach(t, train) {
		const cJSON *tn = cJSON_GetObjectItemCaseSensitive(t, "name");
		const cJSON *tt = cJSON_GetObjectItemCaseSensitive(t, "type");
		if (!cJSON_IsString(tn) || !cJSON_IsString(tt) || strcmp(tt->valuestring, "empty") == 0)
			continue;
		cJSON_ArrayForEach(o, other) {
			const cJSON *on = cJSON_GetObjectItemCaseSensitive(o, "name");
			const cJSON *ot = cJSON_GetObjectItemCaseSensitive(o, "type");
			if (!cJSON_IsString(on) || !cJSON_IsString(ot) ||
			    strcmp(on->valuestring, tn->valuestring) != 0)
				continue;
			/* numbers may be levels; text is never a number */
			if (strcmp(ot->valuestring, "categorical") == 0 &&
			    strcmp(tt->valuestring, "numeric") == 0) {
				api_err_field(e, field, "column '%.100s' is %s here but %s in the training set",
				              tn->valuestring, ot->valuestring, tt->valuestring);
				bad++;
			}
			break;
		}
	}
	return bad;
}

/* ---------------------------------------------------------------- readers */

int api_tab_encode_in_place(api_dataset *d, int64_t max_bytes, api_err *e)
{
	api_tab_enc enc;
	if (api_tab_enc_from_dataset(d, NULL, 0, &enc) != 0)
		return api_err_set(e, 413, "payload_too_large", "no memory to encode the data set");
	size_t n = (size_t)d->rows * (size_t)enc.width;
	if (max_bytes > 0 && (int64_t)((n + (size_t)d->rows * (size_t)d->n_columns) * 4) > max_bytes) {
		api_tab_enc_free(&enc);
		return api_err_set(e, 413, "payload_too_large",
		                   "the encoded data set (%d inputs per row) needs more than the %lld "
		                   "bytes allowed in memory", enc.width, (long long)max_bytes);
	}
	char **names = api_tab_enc_names(&enc);
	float *x = malloc(n ? n * 4 : 4);
	if (!names || !x) {
		api_strv_free(names, enc.width);
		free(x);
		api_tab_enc_free(&enc);
		return api_err_set(e, 413, "payload_too_large", "no memory to encode the data set");
	}
	for (int64_t i = 0; i < d->rows; i++)
		api_tab_encode_row(&enc, d->x + i * d->n_columns, x + i * enc.width);
	api_strv_free(d->feature_names, d->features);
	d->raw = d->x;
	d->x = x;
	d->feature_names = names;
	d->features = enc.width;
	api_tab_enc_free(&enc);
	return 0;
}

int api_tab_type_numeric(api_dataset *d, int64_t max_bytes, api_err *e)
{
	int f = d->features;
	d->columns = calloc((size_t)f + 1, sizeof *d->columns);
	double *sum = calloc((size_t)f * 2 + 1, sizeof *sum), *sq = sum ? sum + f : NULL;
	int64_t *cnt = calloc((size_t)f + 1, sizeof *cnt);
	if (!d->columns || !sum || !cnt) {
		free(sum);
		free(cnt);
		return api_err_set(e, 413, "payload_too_large", "no memory for the columns");
	}
	d->n_columns = f;
	for (int64_t i = 0; i < d->rows; i++)
		for (int j = 0; j < f; j++) {
			float v = d->x[i * f + j];
			if (!isnan(v)) {
				sum[j] += v;
				sq[j] += (double)v * v;
				cnt[j]++;
			}
		}
	int plain = 1;
	for (int j = 0; j < f; j++) {
		api_column *c = &d->columns[j];
		c->name = api_strndup(d->feature_names[j], strlen(d->feature_names[j]));
		c->missing = d->rows - cnt[j];
		c->type = cnt[j] ? API_COL_NUMERIC : API_COL_EMPTY;
		if (cnt[j]) {
			c->mean = sum[j] / (double)cnt[j];
			double var = sq[j] / (double)cnt[j] - c->mean * c->mean;
			c->std = var > 0 ? sqrt(var) : 0;
		}
		plain &= c->missing == 0;
		if (!c->name) {
			free(sum);
			free(cnt);
			return api_err_set(e, 413, "payload_too_large", "no memory for the columns");
		}
	}
	free(sum);
	free(cnt);
	int empty = 1;
	for (int j = 0; j < f; j++)
		empty &= d->columns[j].type == API_COL_EMPTY;
	if (empty)
		return api_err_field(e, "x", "no column holds a value (every one is null)");
	return plain ? 0 : api_tab_encode_in_place(d, max_bytes, e);
}
