/*
 * dataset_rows.c - a data set's rows as CSV or JSON text, one piece at a
 * time (dataset_rows.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_rows.h"
#include "numtext.h"
#include "tabular.h"

/* What the writer gives next. JSON walks the rows twice: x, then y. */
typedef enum { P_HEAD, P_X, P_MID, P_Y, P_TAIL, P_DONE } phase;

struct api_rows_writer {
	const api_dataset *d;
	api_rows_format fmt;
	const char *label;
	int64_t begin, end, row;
	int ncols;
	phase ph;
	char *p;              /* the pending text, p[at..len) not yet read */
	size_t len, cap, at;
	int oom;
};

static void put(api_rows_writer *w, const char *s, size_t n)
{
	if (w->oom)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + n)
			cap *= 2;
		char *q = realloc(w->p, cap);
		if (!q) {
			w->oom = 1;
			return;
		}
		w->p = q;
		w->cap = cap;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void puts_(api_rows_writer *w, const char *s)
{
	put(w, s, strlen(s));
}

/* A CSV field, quoted when it holds a comma, quote, line break or edge
 * blank (RFC 4180; the reader trims unquoted blanks). */
static void csv_text(api_rows_writer *w, const char *s)
{
	size_t n = strlen(s);
	int q = n > 0 && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t');
	for (size_t i = 0; i < n && !q; i++)
		q = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
	if (!q) {
		put(w, s, n);
		return;
	}
	put(w, "\"", 1);
	for (const char *c = s; *c; c++) {
		put(w, c, 1);
		if (*c == '"')
			put(w, c, 1);   /* "" inside quotes */
	}
	put(w, "\"", 1);
}

static void json_text(api_rows_writer *w, const char *s)
{
	put(w, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		char b[8];
		if (*c == '"' || *c == '\\') {
			b[0] = '\\';
			b[1] = (char)*c;
			put(w, b, 2);
		} else if (*c < 0x20) {
			snprintf(b, sizeof b, "\\u%04x", *c);
			put(w, b, 6);
		} else {
			put(w, (const char *)c, 1);
		}
	}
	put(w, "\"", 1);
}

static void text(api_rows_writer *w, const char *s)
{
	if (w->fmt == API_ROWS_CSV)
		csv_text(w, s);
	else
		json_text(w, s);
}

/* A number; a missing one is empty (CSV) or null (JSON). */
static void num(api_rows_writer *w, float v)
{
	char b[API_NUM_TEXT_MAX];
	if (isnan(v)) {
		if (w->fmt == API_ROWS_JSON)
			put(w, "null", 4);
		return;
	}
	put(w, b, (size_t)api_num_float_text(b, v));
}

static const char *col_name(const api_dataset *d, int j, char *b, size_t n)
{
	if (d->columns)
		return d->columns[j].name;
	if (d->feature_names && d->feature_names[j])
		return d->feature_names[j];
	snprintf(b, n, "x%d", j);
	return b;
}

/* Row r, column j as stored: the raw value of a typed column (a level's
 * name for a categorical one), else x. */
static void cell(api_rows_writer *w, int64_t r, int j)
{
	const api_dataset *d = w->d;
	float v = d->raw ? d->raw[r * d->n_columns + j] : d->x[r * d->features + j];
	const api_column *c = d->columns ? &d->columns[j] : NULL;
	if (c && c->type == API_COL_EMPTY)
		v = NAN;
	if (c && c->type == API_COL_CATEGORICAL && !isnan(v)) {
		int k = (int)v;
		if (k >= 0 && k < c->n_levels) {
			text(w, c->levels[k]);
			return;
		}
		v = NAN;
	}
	num(w, v);
}

static void label_cells(api_rows_writer *w, int64_t r, const char *sep)
{
	const api_dataset *d = w->d;
	if (d->task == NN_TASK_CLASSIFICATION) {
		int32_t k = d->labels[r];
		if (w->fmt == API_ROWS_JSON) {
			char b[API_NUM_TEXT_MAX];
			put(w, b, (size_t)api_num_int_text(b, k));
		} else {
			text(w, k >= 0 && k < d->n_classes && d->classes[k] ? d->classes[k] : "");
		}
		return;
	}
	for (int o = 0; o < d->outputs; o++) {
		if (o)
			puts_(w, sep);
		num(w, d->targets[r * d->outputs + o]);
	}
}

static void head_csv(api_rows_writer *w)
{
	char b[32];
	for (int j = 0; j < w->ncols; j++) {
		text(w, col_name(w->d, j, b, sizeof b));
		put(w, ",", 1);
	}
	int k = w->d->task == NN_TASK_CLASSIFICATION ? 1 : w->d->outputs;
	for (int o = 0; o < k; o++) {
		if (k == 1) {
			text(w, w->label ? w->label : "label");
		} else {
			snprintf(b, sizeof b, "%sy%d", o ? "," : "", o);
			puts_(w, b);
		}
	}
	put(w, "\n", 1);
}

static void head_json(api_rows_writer *w)
{
	const api_dataset *d = w->d;
	char b[32];
	puts_(w, "{");
	if (d->task == NN_TASK_CLASSIFICATION) {
		puts_(w, "\"classes\":[");
		for (int k = 0; k < d->n_classes; k++) {
			if (k)
				put(w, ",", 1);
			json_text(w, d->classes[k] ? d->classes[k] : "");
		}
		puts_(w, "],");
	}
	puts_(w, "\"feature_names\":[");
	for (int j = 0; j < w->ncols; j++) {
		if (j)
			put(w, ",", 1);
		json_text(w, col_name(d, j, b, sizeof b));
	}
	puts_(w, "],\"x\":[");
}

/* The next piece of text into w->p. */
static void produce(api_rows_writer *w)
{
	int csv = w->fmt == API_ROWS_CSV;
	switch (w->ph) {
	case P_HEAD:
		csv ? head_csv(w) : head_json(w);
		w->ph = P_X;
		break;
	case P_X:
		if (w->row == w->end) {
			w->ph = csv ? P_DONE : P_MID;
			break;
		}
		if (!csv)
			puts_(w, w->row > w->begin ? ",[" : "[");
		for (int j = 0; j < w->ncols; j++) {
			if (j)
				put(w, ",", 1);
			cell(w, w->row, j);
		}
		if (csv) {
			put(w, ",", 1);
			label_cells(w, w->row, ",");
			put(w, "\n", 1);
		} else {
			put(w, "]", 1);
		}
		w->row++;
		break;
	case P_MID:
		puts_(w, "],\"y\":[");
		w->row = w->begin;
		w->ph = P_Y;
		break;
	case P_Y:
		/* a few hundred labels a piece */
		for (int i = 0; i < 256 && w->row < w->end; i++, w->row++) {
			if (w->row > w->begin)
				put(w, ",", 1);
			int list = w->d->task == NN_TASK_REGRESSION && w->d->outputs > 1;
			if (list)
				put(w, "[", 1);
			label_cells(w, w->row, ",");
			if (list)
				put(w, "]", 1);
		}
		if (w->row == w->end)
			w->ph = P_TAIL;
		break;
	case P_TAIL:
		puts_(w, "]}\n");
		w->ph = P_DONE;
		break;
	case P_DONE:
		break;
	}
}

api_rows_writer *api_rows_writer_new(const api_dataset *d, int64_t offset, int64_t limit,
                                     api_rows_format fmt, const char *label)
{
	api_rows_writer *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->d = d;
	w->fmt = fmt;
	w->label = label;
	w->begin = offset < d->rows ? offset : d->rows;
	w->end = limit < 0 || limit > d->rows - w->begin ? d->rows : w->begin + limit;
	w->row = w->begin;
	w->ncols = d->columns ? d->n_columns : d->features;
	w->ph = P_HEAD;
	return w;
}

long api_rows_writer_read(api_rows_writer *w, char *buf, size_t cap)
{
	while (w->at == w->len && w->ph != P_DONE && !w->oom) {
		w->at = w->len = 0;
		produce(w);
	}
	if (w->oom)
		return -1;
	size_t n = w->len - w->at;
	if (n > cap)
		n = cap;
	memcpy(buf, w->p + w->at, n);
	w->at += n;
	return (long)n;
}

void api_rows_writer_free(api_rows_writer *w)
{
	if (!w)
		return;
	free(w->p);
	free(w);
}
