/*
 * csv.c - the streaming CSV reader behind POST /v1/datasets (text/csv).
 *
 * RFC 4180: fields separated by commas, records by LF or CRLF (a lone CR
 * too), quoted fields may hold commas, quotes ("" escapes one) and line
 * breaks; an optional UTF-8 byte-order mark and trailing newline; blank lines
 * are skipped. The reader is a byte-level state machine, so the body can come
 * in any split down to single bytes; unquoted fields that lie whole inside
 * one piece are parsed in place, the rest go through a bounded field buffer.
 *
 * Numbers go straight into the growing matrix through api_parse_float (no
 * strtod per field). Labels are kept twice until the end, as a parsed value
 * (for regression) and as an id in a label set (for classification), because
 * with task auto-detection the task is known only when every label was seen.
 * A classification has at most 65536 classes: past that many distinct labels
 * an auto-detected task can only be regression (even for integer labels), and
 * the label set is dropped, so a large regression file costs no string memory.
 *
 * Feature columns are typed as they come (API.md, "Tabular columns"): a
 * column holds floats until its first value that is neither a number nor a
 * missing token; from then on it is categorical, its earlier numbers turn
 * into levels named by their shortest text (api_tab_number_text), and x
 * holds provisional level ids. Missing values are NaN in x. A row whose
 * label is missing is skipped. At the end the columns get their types,
 * sorted levels and statistics, and when any column is not plain numeric
 * the raw matrix is kept beside its encoding. All-numeric files never
 * leave the fast path (a per-column byte says which columns it may take).
 *
 * Every error names its place: 400 "malformed_csv", detail
 * "line L, column C: ..." with L the 1-based physical line where the field
 * starts and C the 1-based field number in its record.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "dataset_io.h"
#include "dataset_util.h"

#define CSV_MAX_COLUMNS 100000
#define CSV_MAX_FIELD (1u << 20)          /* bytes in one field */
#define CSV_MAX_FIRST ((size_t)16 << 20)  /* bytes in the first record */
#define CSV_MAX_CLASSES 65536             /* distinct labels of a classification */
#define CSV_MAX_LEVELS 1000               /* default levels of a categorical column */

enum { S_START, S_UNQ, S_QUO, S_QQ };

struct api_csv {
	api_csv_opts o;
	char *label;            /* copy of o.label */
	int failed;
	api_err err;            /* the first error, repeated on later calls */
	/* byte-order mark: bytes held until we know whether they are one */
	int bom_done;
	unsigned char bom[3];
	int bom_n;
	/* the state machine */
	int state;
	int prev_cr;            /* the last byte ended a record with CR */
	int64_t line;           /* 1-based physical line of the next byte */
	int64_t field_line;     /* line where the current field started */
	int col;                /* 0-based field number in the record */
	int in_record;          /* the record has at least one byte */
	char *fb;               /* field buffer */
	size_t fb_len, fb_cap;
	/* the first record, held as strings until the column count is known */
	char **first;
	int n_first, cap_first;
	size_t first_bytes;
	int64_t first_line;
	/* shape, fixed by the first record */
	int ncols;              /* 0 until the first record ended */
	int label_col;
	char *label_name;       /* the label column's header, or NULL */
	int features;
	char **names;
	/* data */
	float *x;               /* rows x features */
	float *yv;              /* label as a number (NAN when it is none); NULL if classification */
	int32_t *yid;           /* provisional label id; NULL if regression */
	int64_t rows, cap;
	api_labelset *ls;
	int any_nonnum;
	int given;              /* > 0: classes= fixed the classes (ids = positions in ls) */
	int regression_only;    /* task auto, but too many distinct labels for classes */
	/* typed columns */
	int *fidx;              /* per column: feature index, -1 the label, -2 ignored */
	unsigned char *fast;    /* per column: 1 while the numeric fast path may take it */
	int *fcol;              /* per feature: its column */
	api_labelset **lv;      /* per feature: its levels once categorical, else NULL */
	char **na;              /* missing tokens */
	int n_na;
	char *ignore;           /* copy of o.ignore */
	int max_levels;
	int skip;               /* the current record's label is missing */
	int holes;              /* some feature value is NaN (missing, or a level column) */
	int64_t skipped;
	/* running column sums (column_stats): per feature the sum and the sum
	 * of squares (st[j], st[f + j]) and the NaNs (miss[j]) of rows before
	 * st_rows, added a block at a time while the rows are in the cache */
	double *st;
	int64_t *miss;
	int64_t st_rows;
};

static const unsigned char BOM[3] = { 0xEF, 0xBB, 0xBF };

/* Bytes that end an unquoted field (or are errors in it). */
static unsigned char special_unq[256];
/* Bytes of interest inside a quoted field. */
static unsigned char special_quo[256];

static void init_tables(void)
{
	/* Idempotent; racing threads write the same values. */
	special_unq[(unsigned char)','] = 1;
	special_unq[(unsigned char)'\n'] = 1;
	special_unq[(unsigned char)'\r'] = 1;
	special_unq[(unsigned char)'"'] = 1;
	special_unq[0] = 1;
	special_quo[(unsigned char)'"'] = 1;
	special_quo[(unsigned char)'\n'] = 1;
	special_quo[0] = 1;
}

/* Splits a comma-separated list into c->na. 0 or -1 (no memory). */
static int set_tokens(api_csv *c, const char *list)
{
	int n = 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	c->na = calloc((size_t)n + 1, sizeof *c->na);
	if (!c->na)
		return -1;
	const char *p = list;
	for (;;) {
		size_t k = strcspn(p, ",");
		if (k > 0 && !(c->na[c->n_na++] = api_strndup(p, k)))
			return -1;
		if (!p[k])
			break;
		p += k + 1;
	}
	return 0;
}

api_csv *api_csv_new(const api_csv_opts *opts)
{
	init_tables();
	api_csv *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	if (opts) {
		c->o = *opts;
	} else {
		c->o.header = 1;
		c->o.task = -1;
	}
	c->o.label = NULL;
	if (opts && opts->label && opts->label[0]) {
		c->label = api_strndup(opts->label, strlen(opts->label));
		if (!c->label) {
			free(c);
			return NULL;
		}
	}
	if (c->o.task != NN_TASK_CLASSIFICATION && c->o.task != NN_TASK_REGRESSION)
		c->o.task = -1;
	if (c->o.n_classes > 0 && c->o.task < 0)
		c->o.task = NN_TASK_CLASSIFICATION;
	c->max_levels = c->o.max_levels > 0 ? c->o.max_levels : CSV_MAX_LEVELS;
	if (set_tokens(c, opts && opts->na ? opts->na : "NA,NaN,null,?") != 0 ||
	    (opts && opts->ignore && !(c->ignore = api_strndup(opts->ignore, strlen(opts->ignore))))) {
		api_csv_free(c);
		return NULL;
	}
	c->o.na = c->o.ignore = NULL;
	c->line = 1;
	c->state = S_START;
	return c;
}

void api_csv_free(api_csv *c)
{
	if (!c)
		return;
	free(c->label);
	free(c->label_name);
	free(c->fb);
	api_strv_free(c->first, c->n_first);
	api_strv_free(c->names, c->features);
	free(c->x);
	free(c->yv);
	free(c->yid);
	api_labelset_free(c->ls);
	for (int j = 0; c->lv && j < c->features; j++)
		api_labelset_free(c->lv[j]);
	free(c->lv);
	free(c->fidx);
	free(c->fast);
	free(c->fcol);
	api_strv_free(c->na, c->n_na);
	free(c->ignore);
	free(c->st);
	free(c->miss);
	free(c);
}

/* ---------------------------------------------------------------- errors */

/* A short printable excerpt of a field for messages. */
static void excerpt(char *dst, size_t cap, const char *s, size_t len)
{
	/* ASCII only, so a message never carries broken UTF-8 */
	size_t n = len < cap - 4 ? len : cap - 4;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		dst[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
	}
	if (n < len)
		memcpy(dst + n, "...", 3), n += 3;
	dst[n] = '\0';
}

static int fail_at(api_csv *c, int64_t line, int col, const char *fmt, const char *arg)
{
	char msg[400];
	snprintf(msg, sizeof msg, fmt, arg ? arg : "");
	api_err_set(&c->err, 400, "malformed_csv", "line %lld, column %d: %s",
		    (long long)line, col, msg);
	c->failed = 1;
	return -1;
}

static int fail_err(api_csv *c)
{
	c->failed = 1;
	return -1;
}

/* ---------------------------------------------------------------- building */

static int row_begin(api_csv *c)
{
	if (c->rows < c->cap)
		return 0;
	size_t row_bytes = (size_t)c->features * 4 + (c->yv ? 4 : 0) + (c->yid ? 4 : 0);
	int64_t ncap = c->cap ? c->cap * 2 : 1024;
	if (c->o.max_bytes > 0) {
		int64_t held = (int64_t)api_labelset_bytes(c->ls);
		for (int j = 0; c->lv && j < c->features; j++)
			held += (int64_t)api_labelset_bytes(c->lv[j]);
		int64_t fit = (c->o.max_bytes - held) / (int64_t)row_bytes;
		if (c->rows + 1 > fit) {
			api_err_set(&c->err, 413, "payload_too_large",
				    "line %lld: the data set needs more than the %lld bytes allowed in memory",
				    (long long)c->field_line, (long long)c->o.max_bytes);
			return fail_err(c);
		}
		if (ncap > fit)
			ncap = fit;
	}
	if ((uint64_t)ncap > SIZE_MAX / row_bytes / 2) {
		api_err_set(&c->err, 413, "payload_too_large", "the data set is too large");
		return fail_err(c);
	}
	float *x = realloc(c->x, (size_t)ncap * (size_t)c->features * 4);
	if (!x)
		goto oom;
	c->x = x;
	/* a page fault per 4 KB costs more than parsing it (188 MB of
	 * Fashion-MNIST: 0.7 s of faults against 25 ms in 2 MB pages) */
	nn_huge_pages(x, (size_t)ncap * (size_t)c->features * 4);
	if (c->yv) {
		float *y = realloc(c->yv, (size_t)ncap * 4);
		if (!y)
			goto oom;
		c->yv = y;
	}
	if (c->yid) {
		int32_t *y = realloc(c->yid, (size_t)ncap * 4);
		if (!y)
			goto oom;
		c->yid = y;
	}
	c->cap = ncap;
	return 0;
oom:
	api_err_set(&c->err, 413, "payload_too_large", "no memory for a data set this large");
	return fail_err(c);
}

/* 1 when s[0..len) (trimmed) is a missing token. */
static int is_na(const api_csv *c, const char *s, size_t len)
{
	for (int i = 0; i < c->n_na; i++)
		if (strlen(c->na[i]) == len && memcmp(c->na[i], s, len) == 0)
			return 1;
	return 0;
}

/* 1 when s[0..len) is inf or infinity, signed or not, in any case. */
static int is_inf(const char *s, size_t len)
{
	if (len > 0 && (*s == '+' || *s == '-'))
		s++, len--;
	return (len == 3 && strncasecmp(s, "inf", 3) == 0) ||
	       (len == 8 && strncasecmp(s, "infinity", 8) == 0);
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

static int put_label(api_csv *c, const char *s, size_t len)
{
	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	int col = c->col + 1;
	if (len == 0 || is_na(c, s, len)) {
		c->skip = 1;   /* a missing label: the row is left out */
		return 0;
	}
	if (!api_utf8_valid(s, len))
		return fail_at(c, c->field_line, col, "the label is not valid UTF-8%s", NULL);
	float v;
	int r = api_parse_float(s, len, &v);
	char ex[48];
	if (r != 1) {
		if (c->o.task == NN_TASK_REGRESSION || c->regression_only) {
			excerpt(ex, sizeof ex, s, len);
			return fail_at(c, c->field_line, col,
				       r < 0 ? "label '%s' is not a finite number (outside float range)"
				       : c->regression_only
					       ? "label '%s' is not a number (the column has too many distinct values for classes)"
					       : "label '%s' is not a number (the task is regression)", ex);
		}
		c->any_nonnum = 1;
		v = NAN;
	}
	if (c->yv)
		c->yv[c->rows] = v;
	if (c->yid) {
		int32_t id = api_labelset_add(c->ls, s, len);
		if (id < 0) {
			api_err_set(&c->err, 413, "payload_too_large", "no memory for the labels");
			return fail_err(c);
		}
		if (c->given && id >= c->given) {
			excerpt(ex, sizeof ex, s, len);
			return fail_at(c, c->field_line, col, "label '%s' is not one of classes=", ex);
		}
		c->yid[c->rows] = id;
		if (api_labelset_count(c->ls) > CSV_MAX_CLASSES) {
			char m[16];
			snprintf(m, sizeof m, "%d", CSV_MAX_CLASSES);
			if (c->o.task == NN_TASK_CLASSIFICATION || c->any_nonnum)
				return fail_at(c, c->field_line, col,
					       "more than %s distinct labels: too many classes", m);
			/* Task auto with numbers only: just regression can follow,
			 * so stop keeping the labels as strings. */
			api_labelset_free(c->ls);
			c->ls = NULL;
			free(c->yid);
			c->yid = NULL;
			c->regression_only = 1;
		}
	}
	return 0;
}

static int too_many_levels(api_csv *c, int j)
{
	api_err_field(&c->err, "max_levels",
	              "column '%.100s' has more than %d distinct values (levels): raise max_levels "
	              "or leave it out with ignore=", c->names[j], c->max_levels);
	api_err_set(&c->err, 422, "validation_failed",
	            "column '%.100s' has more than %d levels", c->names[j], c->max_levels);
	return fail_err(c);
}

/* Adds level text s to categorical feature j's set; its provisional id, or
 * -1 with the error set. */
static int add_level(api_csv *c, int j, const char *s, size_t len)
{
	int32_t id = api_labelset_add(c->lv[j], s, len);
	if (id < 0) {
		api_err_set(&c->err, 413, "payload_too_large", "no memory for the levels");
		return fail_err(c);
	}
	if (api_labelset_count(c->lv[j]) > c->max_levels)
		return too_many_levels(c, j);
	return id;
}

/* Feature j turns categorical: its numbers so far become levels. */
static int to_categorical(api_csv *c, int j)
{
	c->lv[j] = api_labelset_new();
	if (!c->lv[j]) {
		api_err_set(&c->err, 413, "payload_too_large", "no memory for the levels");
		return fail_err(c);
	}
	c->fast[c->fcol[j]] = 0;
	for (int64_t i = 0; i < c->rows; i++) {
		float *v = &c->x[i * c->features + j];
		if (isnan(*v))
			continue;
		char t[40];
		api_tab_number_text(*v, t, sizeof t);
		int id = add_level(c, j, t, strlen(t));
		if (id < 0)
			return -1;
		*v = (float)id;
	}
	return 0;
}

static int bad_value(api_csv *c, const char *s, size_t len, int r)
{
	char ex[48];
	excerpt(ex, sizeof ex, s, len);
	return fail_at(c, c->field_line, c->col + 1,
		       r < 0 ? "'%s' is not a finite number (outside float range)"
			     : "'%s' is not a finite number", ex);
}

/* A value of categorical feature j. */
static int put_level(api_csv *c, int j, const char *s, size_t len)
{
	float *dst = &c->x[c->rows * c->features + j];
	trim(&s, &len);
	if (len == 0 || is_na(c, s, len)) {
		*dst = NAN;
		c->holes = 1;
		return 0;
	}
	float v;
	int r = api_parse_float(s, len, &v);
	char t[40];
	if (r == 1) {
		api_tab_number_text(v, t, sizeof t);
		s = t;
		len = strlen(t);
	} else if (r < 0 || is_inf(s, len)) {
		return bad_value(c, s, len, r);
	} else if (!api_utf8_valid(s, len)) {
		return fail_at(c, c->field_line, c->col + 1, "the value is not valid UTF-8%s", NULL);
	}
	int id = add_level(c, j, s, len);
	if (id < 0)
		return -1;
	*dst = (float)id;
	return 0;
}

static int put_feature(api_csv *c, int j, const char *s, size_t len)
{
	if (c->lv[j])
		return put_level(c, j, s, len);
	float v;
	int r = api_parse_float(s, len, &v);
	if (r == 1) {
		c->x[c->rows * c->features + j] = v;
		return 0;
	}
	trim(&s, &len);
	if (len == 0 || is_na(c, s, len)) {
		c->x[c->rows * c->features + j] = NAN;
		c->holes = 1;
		return 0;
	}
	if (r < 0 || is_inf(s, len))
		return bad_value(c, s, len, r);
	if (to_categorical(c, j) != 0)
		return -1;
	return put_level(c, j, s, len);
}

/* One field of a data record, at column c->col of row c->rows. */
static int data_field(api_csv *c, const char *s, size_t len)
{
	if (c->col == 0 && row_begin(c) != 0)
		return -1;
	if (c->col >= c->ncols) {
		char n[16];
		snprintf(n, sizeof n, "%d", c->ncols);
		return fail_at(c, c->field_line, c->col + 1,
			       "too many fields (the first line has %s)", n);
	}
	if (c->col == c->label_col)
		return put_label(c, s, len);
	int j = c->fidx[c->col];
	if (j < 0)
		return 0;  /* an ignored column */
	return put_feature(c, j, s, len);
}

/* Rows the running column sums take at a time: the last STAT_BLOCK rows
 * (some 200 KiB of 784 columns) are still in the cache when they are added,
 * rather than read back from memory once the whole file is in. */
#define STAT_BLOCK 64

/* Columns [j0, j0 + 4) of rows [r0, r1) of x (f wide) into the sums, each
 * column's in row order (as one pass over the rows adds them), in
 * registers (the compiler pairs the four columns in vectors). */
static void stats_cols4(double *sum, double *sq, const float *x, int f, int j0, int64_t r0,
                        int64_t r1)
{
	double s[4], q[4];
	for (int u = 0; u < 4; u++) {
		s[u] = sum[j0 + u];
		q[u] = sq[j0 + u];
	}
	for (int64_t i = r0; i < r1; i++) {
		const float *r = x + i * f + j0;
		for (int u = 0; u < 4; u++) {
			double v = r[u];
			s[u] += v;
			q[u] += v * v;
		}
	}
	for (int u = 0; u < 4; u++) {
		sum[j0 + u] = s[u];
		sq[j0 + u] = q[u];
	}
}

/* Rows [c->st_rows, upto) of x into the running column sums. A NaN (a
 * hole) adds nothing and is counted; rows before the first hole take the
 * path without the test. 0, or -1 without memory for the sums. */
static int stats_add(api_csv *c, const float *x, int64_t upto)
{
	int f = c->features;
	if (!c->st) {
		c->st = calloc((size_t)f * 2 + 1, sizeof *c->st);
		c->miss = calloc((size_t)f + 1, sizeof *c->miss);
		if (!c->st || !c->miss)
			return -1;
	}
	double *sum = c->st, *sq = c->st + f;
	int64_t r0 = c->st_rows;
	if (!c->holes) {
		int j = 0;
		for (; j + 4 <= f; j += 4)
			stats_cols4(sum, sq, x, f, j, r0, upto);
		for (int64_t i = r0; i < upto; i++)
			for (int k = j; k < f; k++) {
				double v = x[i * f + k];
				sum[k] += v;
				sq[k] += v * v;
			}
	} else {
		for (int64_t i = r0; i < upto; i++)
			for (int k = 0; k < f; k++) {
				float xv = x[i * f + k];
				if (isnan(xv)) {
					c->miss[k]++;
					continue;
				}
				double v = xv;
				sum[k] += v;
				sq[k] += v * v;
			}
	}
	c->st_rows = upto;
	return 0;
}

static int data_record_end(api_csv *c)
{
	if (c->col + 1 < c->ncols) {
		char m[64];
		snprintf(m, sizeof m, "%d fields, expected %d", c->col + 1, c->ncols);
		return fail_at(c, c->line, c->col + 2, "missing field: the record has %s", m);
	}
	if (c->skip) {
		c->skip = 0;
		c->skipped++;
		return 0;
	}
	c->rows++;
	if (c->rows - c->st_rows >= STAT_BLOCK && stats_add(c, c->x, c->rows) != 0) {
		api_err_set(&c->err, 413, "payload_too_large", "no memory for the column sums");
		return fail_err(c);
	}
	return 0;
}

static int is_index(const char *s)
{
	if (!*s || strlen(s) > 9)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* Marks the columns of the ignore list with fidx -2 (c->first holds the
 * first record). 0, or -1 with a 422 naming "ignore". */
static int mark_ignored(api_csv *c)
{
	const char *p = c->ignore;
	while (p && *p) {
		size_t k = strcspn(p, ",");
		int hit = -1;
		for (int i = 0; c->o.header && i < c->n_first; i++)
			if (strlen(c->first[i]) == k && memcmp(c->first[i], p, k) == 0) {
				hit = i;
				break;
			}
		char t[16];
		if (hit < 0 && k > 0 && k < sizeof t) {
			memcpy(t, p, k);
			t[k] = '\0';
			if (is_index(t) && atoi(t) < c->n_first)
				hit = atoi(t);
		}
		char ex[48];
		excerpt(ex, sizeof ex, p, k);
		if (hit < 0) {
			api_err_field(&c->err, "ignore", "no column is named '%s'", ex);
			return fail_err(c);
		}
		if (hit == c->label_col) {
			api_err_field(&c->err, "ignore", "'%s' is the label column", ex);
			return fail_err(c);
		}
		c->fidx[hit] = -2;
		p += k + (p[k] == ',');
	}
	return 0;
}

/* The first record ended: fix the shape, then treat it as data if there is
 * no header. */
/* The label column of a first record of n fields, or -1 (failed). */
static int label_column(api_csv *c, int n)
{
	int lc = n - 1;
	if (c->label) {
		lc = -1;
		for (int i = 0; c->o.header && i < n; i++)
			if (strcmp(c->first[i], c->label) == 0) {
				lc = i;
				break;
			}
		if (lc < 0 && is_index(c->label)) {
			lc = atoi(c->label);
			if (lc >= n) {
				api_err_field(&c->err, "label", "column %d does not exist (the file has %d columns)",
					      lc, n);
				return fail_err(c);
			}
		}
		if (lc < 0) {
			char ex[48];
			excerpt(ex, sizeof ex, c->label, strlen(c->label));
			if (c->o.header)
				api_err_field(&c->err, "label", "no column is named '%s'", ex);
			else
				api_err_field(&c->err, "label",
					      "without a header the label column must be a 0-based index");
			return fail_err(c);
		}
	}
	return lc;
}

/* The feature columns' names: the header's, or x0, x1, ...; -1 without
 * memory. */
static int name_features(api_csv *c, int n)
{
	c->names = calloc((size_t)c->features, sizeof *c->names);
	if (!c->names)
		return -1;
	for (int i = 0, j = 0; i < n; i++) {
		if (c->fidx[i] < 0)
			continue;
		if (c->o.header) {
			c->names[j] = c->first[i];
			c->first[i] = NULL;
		} else {
			char b[24];
			snprintf(b, sizeof b, "x%d", j);
			c->names[j] = api_strndup(b, strlen(b));
		}
		if (!c->names[j++])
			return -1;
	}
	return 0;
}

static int first_record_end(api_csv *c)
{
	int n = c->n_first;
	if (n < 2)
		return fail_at(c, c->first_line, 1,
			       "need at least two columns (features and a label)%s", NULL);
	int lc = label_column(c, n);
	if (lc < 0)
		return -1;
	c->ncols = n;
	c->label_col = lc;
	if (c->o.header && !(c->label_name = api_strndup(c->first[lc], strlen(c->first[lc]))))
		goto oom;
	c->fidx = calloc((size_t)n, sizeof *c->fidx);
	c->fast = calloc((size_t)n, 1);
	c->fcol = calloc((size_t)n, sizeof *c->fcol);
	c->lv = calloc((size_t)n, sizeof *c->lv);
	if (!c->fidx || !c->fast || !c->fcol || !c->lv)
		goto oom;
	c->fidx[lc] = -1;
	if (mark_ignored(c) != 0)
		return -1;
	c->features = 0;
	for (int i = 0; i < n; i++)
		if (c->fidx[i] == 0) {
			c->fcol[c->features] = i;
			c->fidx[i] = c->features++;
			c->fast[i] = 1;
		}
	if (c->features == 0) {
		api_err_field(&c->err, "ignore", "leaves no feature column");
		return fail_err(c);
	}
	if (name_features(c, n) != 0)
		goto oom;
	if (c->o.task != NN_TASK_CLASSIFICATION) {
		c->yv = malloc(4);
		if (!c->yv)
			goto oom;
	}
	if (c->o.task != NN_TASK_REGRESSION) {
		c->yid = malloc(4);
		c->ls = api_labelset_new();
		if (!c->yid || !c->ls)
			goto oom;
		for (int k = 0; k < c->o.n_classes; k++)
			if (api_labelset_add(c->ls, c->o.classes[k], strlen(c->o.classes[k])) < 0)
				goto oom;
		c->given = c->o.n_classes;
	}
	if (!c->o.header) {
		int64_t save = c->field_line;
		c->field_line = c->first_line;
		for (c->col = 0; c->col < n; c->col++)
			if (data_field(c, c->first[c->col], strlen(c->first[c->col])) != 0)
				return -1;
		c->col = n - 1;
		if (data_record_end(c) != 0)
			return -1;
		c->field_line = save;
	}
	api_strv_free(c->first, c->n_first);
	c->first = NULL;
	c->n_first = 0;
	return 0;
oom:
	api_err_set(&c->err, 413, "payload_too_large", "no memory for the columns");
	return fail_err(c);
}

static int end_field(api_csv *c, const char *s, size_t len)
{
	if (c->ncols)
		return data_field(c, s, len);
	if (c->n_first == 0)
		c->first_line = c->field_line;
	if (c->n_first >= CSV_MAX_COLUMNS) {
		char m[16];
		snprintf(m, sizeof m, "%d", CSV_MAX_COLUMNS);
		return fail_at(c, c->field_line, c->n_first + 1, "more than %s columns", m);
	}
	c->first_bytes += len + 1;
	if (c->first_bytes > CSV_MAX_FIRST)
		return fail_at(c, c->field_line, c->n_first + 1, "the first line is longer than 16 MiB%s", NULL);
	if (!api_utf8_valid(s, len))
		return fail_at(c, c->field_line, c->n_first + 1, "the field is not valid UTF-8%s", NULL);
	if (c->n_first == c->cap_first) {
		int cap = c->cap_first ? c->cap_first * 2 : 64;
		char **f = realloc(c->first, (size_t)cap * sizeof *f);
		if (!f)
			goto oom;
		c->first = f;
		c->cap_first = cap;
	}
	c->first[c->n_first] = api_strndup(s, len);
	if (!c->first[c->n_first])
		goto oom;
	c->n_first++;
	return 0;
oom:
	api_err_set(&c->err, 413, "payload_too_large", "no memory for the first line");
	return fail_err(c);
}

static int end_record(api_csv *c)
{
	int r = c->ncols ? data_record_end(c) : first_record_end(c);
	c->col = 0;
	c->in_record = 0;
	return r;
}

static int fb_append(api_csv *c, const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (c->fb_len + n > CSV_MAX_FIELD)
		return fail_at(c, c->field_line, c->col + 1, "field longer than 1 MiB%s", NULL);
	if (c->fb_len + n > c->fb_cap) {
		size_t cap = c->fb_cap ? c->fb_cap : 256;
		while (cap < c->fb_len + n)
			cap *= 2;
		char *b = realloc(c->fb, cap);
		if (!b) {
			api_err_set(&c->err, 413, "payload_too_large", "no memory for a field");
			return fail_err(c);
		}
		c->fb = b;
		c->fb_cap = cap;
	}
	memcpy(c->fb + c->fb_len, s, n);
	c->fb_len += n;
	return 0;
}

/* Ends the field held in the field buffer. */
static int end_fb_field(api_csv *c)
{
	int r = end_field(c, c->fb ? c->fb : "", c->fb_len);
	c->fb_len = 0;
	return r;
}

static const float P10F[] = { 1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f, 1e6f, 1e7f, 1e8f, 1e9f, 1e10f };

/*
 * The hot path for the common feature field: a plain decimal ([-]digits
 * [.digits], at most 18 digits) ending inside this piece with ',', LF or CR.
 * Scans and converts in one pass and stores the value; returns the position
 * of the terminator, or NULL to let the general path take the field (any
 * other shape, or the field runs past the piece).
 */
static const char *fast_feature(api_csv *c, const char *p, const char *end)
{
	const char *q = p;
	int neg = 0;
	if (q < end && *q == '-') {
		neg = 1;
		q++;
	}
	uint64_t m = 0;
	const char *d0 = q;
	while (q < end && (unsigned)(*q - '0') < 10)
		m = m * 10 + (unsigned)(*q++ - '0');
	long digits = q - d0, frac = 0;
	if (q < end && *q == '.') {
		const char *f0 = ++q;
		while (q < end && (unsigned)(*q - '0') < 10)
			m = m * 10 + (unsigned)(*q++ - '0');
		frac = q - f0;
		digits += frac;
	}
	if (q == end || digits == 0 || digits > 18 || (*q != ',' && *q != '\n' && *q != '\r'))
		return NULL;
	if (c->col == 0 && row_begin(c) != 0)
		return NULL;
	float v;
	if (m <= (1u << 24) && frac <= 10) {
		v = (float)m;
		if (frac)
			v /= P10F[frac];
		if (neg)
			v = -v;
	} else if (api_parse_float(p, (size_t)(q - p), &v) != 1) {
		return NULL;
	}
	c->x[c->rows * c->features + c->fidx[c->col]] = v;
	return q;
}

/* A record terminator byte (LF or CR) outside quotes. */
static void newline(api_csv *c, unsigned char ch)
{
	c->line++;
	c->prev_cr = ch == '\r';
}

/* The state machine over one chunk, a function a state: each takes the
 * input at p (p < end) and returns where it stopped, or NULL on a failure
 * (c->failed says why). */
static const char *in_unquoted(api_csv *c, const char *p, const char *end)
{
	const char *q = p;
	while (q < end && !special_unq[(unsigned char)*q])
		q++;
	if (q == end)
		return fb_append(c, p, (size_t)(q - p)) != 0 ? NULL : q;
	unsigned char ch = (unsigned char)*q;
	if (ch == '"')
		return fail_at(c, c->line, c->col + 1, "quote inside an unquoted field%s", NULL), NULL;
	if (ch == 0)
		return fail_at(c, c->line, c->col + 1, "NUL byte in the input%s", NULL), NULL;
	int r;
	if (c->fb_len == 0) {
		r = end_field(c, p, (size_t)(q - p));
	} else {
		r = fb_append(c, p, (size_t)(q - p));
		if (r == 0)
			r = end_fb_field(c);
	}
	if (r != 0)
		return NULL;
	c->state = S_START;
	if (ch == ',') {
		c->col++;
	} else {
		if (end_record(c) != 0)
			return NULL;
		newline(c, ch);
	}
	return q + 1;
}

static const char *in_quoted(api_csv *c, const char *p, const char *end)
{
	const char *q = p;
	while (q < end && !special_quo[(unsigned char)*q])
		q++;
	if (fb_append(c, p, (size_t)(q - p)) != 0)
		return NULL;
	if (q == end)
		return q;
	unsigned char ch = (unsigned char)*q;
	if (ch == '\n') {
		if (fb_append(c, "\n", 1) != 0)
			return NULL;
		c->line++;
	} else if (ch == 0) {
		return fail_at(c, c->line, c->col + 1, "NUL byte in the input%s", NULL), NULL;
	} else {
		c->state = S_QQ;
	}
	return q + 1;
}

/* The byte after a quote inside a quoted field: an escaped quote or the
 * field's end. */
static const char *after_quote(api_csv *c, const char *p)
{
	unsigned char ch = (unsigned char)*p;
	if (ch == '"') {
		if (fb_append(c, "\"", 1) != 0)
			return NULL;
		c->state = S_QUO;
	} else if (ch == ',') {
		if (end_fb_field(c) != 0)
			return NULL;
		c->col++;
		c->state = S_START;
	} else if (ch == '\n' || ch == '\r') {
		if (end_fb_field(c) != 0 || end_record(c) != 0)
			return NULL;
		newline(c, ch);
		c->state = S_START;
	} else {
		return fail_at(c, c->line, c->col + 1,
		               ch == 0 ? "NUL byte in the input%s"
		                       : "unexpected character after a closing quote%s", NULL), NULL;
	}
	return p + 1;
}

/* A field's first byte (the loop's hot path: an unquoted numeric feature
 * is read in place); the other states in the functions above. */
static int process(api_csv *c, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;
	while (p < end) {
		if (c->state != S_START) {
			p = c->state == S_UNQ   ? in_unquoted(c, p, end)
			    : c->state == S_QUO ? in_quoted(c, p, end)
			                        : after_quote(c, p);
			if (!p)
				return -1;
			continue;
		}
		unsigned char ch = (unsigned char)*p;
		if (c->prev_cr) {
			c->prev_cr = 0;
			if (ch == '\n') {
				p++;
				continue;
			}
		}
		if (ch == '\n' || ch == '\r') {
			p++;
			if (c->col == 0 && !c->in_record) {
				newline(c, ch);  /* a blank line */
				continue;
			}
			if (end_field(c, "", 0) != 0 || end_record(c) != 0)
				return -1;
			newline(c, ch);
			continue;
		}
		c->in_record = 1;
		c->field_line = c->line;
		if (ch == ',') {
			p++;
			if (end_field(c, "", 0) != 0)
				return -1;
			c->col++;
			continue;
		}
		if (ch == '"') {
			p++;
			c->state = S_QUO;
			continue;
		}
		if (ch == 0)
			return fail_at(c, c->line, c->col + 1, "NUL byte in the input%s", NULL);
		if (c->col < c->ncols && c->fast[c->col]) {
			const char *q = fast_feature(c, p, end);
			if (!q && c->failed)
				return -1;
			if (q) {
				unsigned char t = (unsigned char)*q;
				p = q + 1;
				if (t == ',') {
					c->col++;
				} else {
					if (end_record(c) != 0)
						return -1;
					newline(c, t);
				}
				continue;
			}
		}
		c->state = S_UNQ;
	}
	return 0;
}

static int report(api_csv *c, api_err *e)
{
	if (e)
		*e = c->err;
	return -1;
}

int api_csv_feed(api_csv *c, const char *buf, size_t len, api_err *e)
{
	if (!c)
		return api_err_set(e, 500, "internal_error", "no CSV reader");
	if (c->failed)
		return report(c, e);
	if (!c->bom_done) {
		while (len > 0 && c->bom_n < 3 && (unsigned char)*buf == BOM[c->bom_n]) {
			c->bom[c->bom_n++] = (unsigned char)*buf++;
			len--;
		}
		if (c->bom_n == 3) {
			c->bom_done = 1;
		} else if (len > 0) {
			c->bom_done = 1;
			if (c->bom_n && process(c, (const char *)c->bom, (size_t)c->bom_n) != 0)
				return report(c, e);
		} else {
			return 0;
		}
	}
	if (len && process(c, buf, len) != 0)
		return report(c, e);
	return 0;
}

typedef struct lvl_ent {
	const char *s;
	int32_t id;
} lvl_ent;

static int cmp_lvl(const void *a, const void *b)
{
	return strcmp(((const lvl_ent *)a)->s, ((const lvl_ent *)b)->s);
}

/* Categorical feature j of d (x holds provisional ids): the levels its
 * rows use, sorted bytewise, into col; x gets their indices. 0 or -1. */
static int finish_levels(api_csv *c, api_dataset *d, int j, api_column *col)
{
	int32_t n = api_labelset_count(c->lv[j]);
	int64_t *cnt = calloc((size_t)n + 1, sizeof *cnt);
	lvl_ent *ord = malloc(((size_t)n + 1) * sizeof *ord);
	int32_t *map = malloc(((size_t)n + 1) * sizeof *map);
	col->levels = calloc((size_t)n + 1, sizeof *col->levels);
	int rc = -1;
	if (!cnt || !ord || !map || !col->levels)
		goto out;
	int f = d->features;
	for (int64_t i = 0; i < d->rows; i++) {
		float v = d->x[i * f + j];
		if (!isnan(v))
			cnt[(int32_t)v]++;
	}
	int k = 0;
	for (int32_t id = 0; id < n; id++) {
		map[id] = -1;
		if (cnt[id])
			ord[k++] = (lvl_ent){ api_labelset_str(c->lv[j], id), id };
	}
	qsort(ord, (size_t)k, sizeof *ord, cmp_lvl);
	for (int i = 0; i < k; i++, col->n_levels++) {
		map[ord[i].id] = i;
		if (!(col->levels[i] = api_strndup(ord[i].s, strlen(ord[i].s))))
			goto out;
	}
	for (int64_t i = 0; i < d->rows; i++) {
		float *v = &d->x[i * f + j];
		if (!isnan(*v))
			*v = (float)map[(int32_t)*v];
	}
	col->type = k ? API_COL_CATEGORICAL : API_COL_EMPTY;
	rc = 0;
out:
	free(cnt);
	free(ord);
	free(map);
	return rc;
}

/* Missing counts of every column, and for the numeric ones (the rest
 * are skipped) mean and population std, from the running sums (values and
 * squares in double, each column's in row order; stats_add), the last rows
 * added first. */
static int column_stats(api_csv *c, api_dataset *d)
{
	int f = d->features;
	if (stats_add(c, d->x, d->rows) != 0)   /* the rows since the last block */
		return -1;
	const double *sum = c->st, *sq = c->st + f;
	for (int j = 0; j < f; j++) {
		api_column *col = &d->columns[j];
		int64_t n = d->rows - c->miss[j];
		col->missing = c->miss[j];
		col->type = n ? API_COL_NUMERIC : API_COL_EMPTY;
		if (n && !c->lv[j]) {
			col->mean = sum[j] / (double)n;
			double var = sq[j] / (double)n - col->mean * col->mean;
			col->std = var > 0 ? sqrt(var) : 0;
		}
	}
	return 0;
}

/* Types d's feature columns; encodes d when any is not plain numeric. */
static int type_columns(api_csv *c, api_dataset *d)
{
	int f = d->features;
	d->skipped_rows = c->skipped;
	d->columns = calloc((size_t)f + 1, sizeof *d->columns);
	if (!d->columns)
		return -1;
	d->n_columns = f;
	for (int j = 0; j < f; j++)
		if (!(d->columns[j].name = api_strndup(d->feature_names[j], strlen(d->feature_names[j]))))
			return -1;
	if (column_stats(c, d) != 0)
		return -1;
	int plain = 1;
	for (int j = 0; j < f; j++) {
		api_column *col = &d->columns[j];
		if (c->lv[j] && finish_levels(c, d, j, col) != 0)
			return -1;
		plain &= col->type == API_COL_NUMERIC && col->missing == 0;
	}
	if (plain)
		return 0;
	api_err e = API_ERR_INIT;
	if (api_tab_encode_in_place(d, c->o.max_bytes, &e) == 0)
		return 0;
	c->err = e;
	return -2;
}

static int build(api_csv *c, api_dataset *out)
{
	nn_task task;
	if (c->o.task >= 0)
		task = (nn_task)c->o.task;
	else if (!c->regression_only && (c->any_nonnum || api_labelset_numeric(c->ls) == 2))
		task = NN_TASK_CLASSIFICATION;
	else
		task = NN_TASK_REGRESSION;
	out->task = task;
	out->rows = c->rows;
	out->features = c->features;
	if (task == NN_TASK_CLASSIFICATION && c->given) {
		out->classes = calloc((size_t)c->given + 1, sizeof *out->classes);
		for (int k = 0; out->classes && k < c->given; k++, out->n_classes++)
			if (!(out->classes[k] = api_strndup(c->o.classes[k], strlen(c->o.classes[k]))))
				return -1;
		if (!out->classes)
			return -1;
		out->labels = c->yid;
		c->yid = NULL;
		out->outputs = out->n_classes;
	} else if (task == NN_TASK_CLASSIFICATION) {
		int32_t *remap;
		if (api_labelset_finish(c->ls, &out->classes, &out->n_classes, &remap) != 0)
			return -1;
		for (int64_t i = 0; i < c->rows; i++)
			c->yid[i] = remap[c->yid[i]];
		free(remap);
		out->labels = c->yid;
		c->yid = NULL;
		out->outputs = out->n_classes;
	} else {
		out->targets = c->yv;
		c->yv = NULL;
		out->outputs = 1;
	}
	float *x = realloc(c->x, (size_t)c->rows * (size_t)c->features * 4);
	out->x = x ? x : c->x;
	c->x = NULL;
	out->feature_names = c->names;
	c->names = NULL;
	/* the data set object names the label column ("label") */
	if (c->label_name && (!(out->extra = cJSON_CreateObject()) ||
	                      !cJSON_AddStringToObject(out->extra, "label", c->label_name)))
		return -1;
	return type_columns(c, out);
}

int api_csv_finish(api_csv *c, api_dataset *out, api_err *e)
{
	memset(out, 0, sizeof *out);
	if (!c)
		return api_err_set(e, 500, "internal_error", "no CSV reader");
	if (c->failed)
		return report(c, e);
	if (!c->bom_done) {
		c->bom_done = 1;
		if (c->bom_n && process(c, (const char *)c->bom, (size_t)c->bom_n) != 0)
			return report(c, e);
	}
	int r = 0;
	int tail = c->in_record || c->state != S_START; /* no final line break */
	switch (c->state) {
	case S_QUO:
		fail_at(c, c->field_line, c->col + 1, "quoted field not closed at the end of the input%s", NULL);
		return report(c, e);
	case S_UNQ:
	case S_QQ:
		r = end_fb_field(c);
		if (r == 0)
			r = end_record(c);
		break;
	default:
		if (c->in_record) {
			r = end_field(c, "", 0);
			if (r == 0)
				r = end_record(c);
		}
	}
	c->state = S_START;
	if (r != 0)
		return report(c, e);
	if (c->ncols == 0) {
		fail_at(c, 1, 1, "the file is empty%s", NULL);
		return report(c, e);
	}
	if (c->rows == 0) {
		fail_at(c, c->line + tail, 1, "no data rows%s", NULL);
		return report(c, e);
	}
	if ((r = build(c, out)) != 0) {
		api_dataset_free(out);
		if (r != -2)
			api_err_set(&c->err, 413, "payload_too_large", "no memory to finish the data set");
		c->failed = 1;
		return report(c, e);
	}
	c->failed = 1; /* finished: the reader holds nothing more */
	api_err_set(&c->err, 500, "internal_error", "the CSV reader was already finished");
	return 0;
}
