/*
 * dataset.c - the parsed data set (api_dataset) and what every reader shares:
 * freeing, the engine's borrowed view, the binary file format the store
 * writes, and the label set that turns label
 * strings into sorted classes.
 *
 * File format ("NNDDATA1"), all little-endian:
 *   magic[8] "NNDDATA1"
 *   u32 task, u32 features, u32 outputs, u32 n_classes,
 *   u32 width, u32 height, u32 channels, u32 reserved (0), i64 rows
 *   f32 x[rows * features]
 *   classification: i32 labels[rows]; regression: f32 targets[rows * outputs]
 *   n_classes x (u32 length, bytes)       class names
 *   features  x (u32 length, bytes)       feature names
 *   (format 2) the typed columns: u32 n_columns, i64 skipped_rows,
 *     u32 has_raw, per column (str name, u32 type, i64 missing, f64 mean,
 *     f64 std, u32 n_levels, n_levels x str), then when has_raw
 *     f32 raw[rows * n_columns]
 *   u32 CRC-32 (IEEE, zlib's) of every byte before it
 * The header's last u32 is the format: 0 (no typed columns; every file
 * written before them) or 2.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <libdeflate.h>
#include "dataset_io.h"
#include "dataset_util.h"

/* ---------------------------------------------------------------- basics */

char *api_strndup(const char *s, size_t len)
{
	char *d = malloc(len + 1);
	if (!d)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

int api_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		unsigned lo = 0x80, hi = 0xBF; /* bounds of the second byte */
		if (c >= 0xC2 && c <= 0xDF)
			n = 2;
		else if (c >= 0xE0 && c <= 0xEF) {
			n = 3;
			if (c == 0xE0)
				lo = 0xA0;     /* no overlong forms */
			else if (c == 0xED)
				hi = 0x9F;     /* no surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 4;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;     /* at most U+10FFFF */
		} else
			return 0;
		if (len - i < n || s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
		i += n;
	}
	return 1;
}

void api_strv_free(char **v, int n)
{
	if (!v)
		return;
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void api_dataset_free(api_dataset *d)
{
	if (!d)
		return;
	if (d->map) {
		munmap(d->map, d->map_len);
	} else {
		free(d->x);
		free(d->labels);
		free(d->targets);
	}
	api_strv_free(d->classes, d->n_classes);
	api_strv_free(d->feature_names, d->features);
	api_columns_free(d->columns, d->n_columns);
	free(d->raw);
	cJSON_Delete(d->extra);
	memset(d, 0, sizeof *d);
}

nn_data api_dataset_view(const api_dataset *d)
{
	nn_data v;
	memset(&v, 0, sizeof v);
	if (!d)
		return v;
	v.rows = d->rows;
	v.features = d->features;
	v.outputs = d->outputs;
	v.x = d->x;
	v.labels = d->task == NN_TASK_CLASSIFICATION ? d->labels : NULL;
	v.targets = d->task == NN_TASK_REGRESSION ? d->targets : NULL;
	v.width = d->width;
	v.height = d->height;
	v.channels = d->channels;
	return v;
}

/* ---------------------------------------------------------------- labels */

typedef struct label_ent {
	char *s;
	size_t len;
	uint64_t hash;
} label_ent;

struct api_labelset {
	label_ent *ents;   /* by provisional id */
	int32_t n, cap;
	int32_t *slots;    /* open addressing: provisional id + 1, 0 = empty */
	size_t nslots;     /* power of two */
	size_t bytes;
};

static uint64_t fnv1a(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

api_labelset *api_labelset_new(void)
{
	api_labelset *ls = calloc(1, sizeof *ls);
	if (!ls)
		return NULL;
	ls->nslots = 64;
	ls->slots = calloc(ls->nslots, sizeof *ls->slots);
	if (!ls->slots) {
		free(ls);
		return NULL;
	}
	return ls;
}

static int labelset_rehash(api_labelset *ls)
{
	size_t ns = ls->nslots * 2;
	int32_t *slots = calloc(ns, sizeof *slots);
	if (!slots)
		return -1;
	for (int32_t i = 0; i < ls->n; i++) {
		size_t k = ls->ents[i].hash & (ns - 1);
		while (slots[k])
			k = (k + 1) & (ns - 1);
		slots[k] = i + 1;
	}
	free(ls->slots);
	ls->slots = slots;
	ls->nslots = ns;
	return 0;
}

int32_t api_labelset_add(api_labelset *ls, const char *s, size_t len)
{
	uint64_t h = fnv1a(s, len);
	size_t k = h & (ls->nslots - 1);
	while (ls->slots[k]) {
		label_ent *e = &ls->ents[ls->slots[k] - 1];
		if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0)
			return ls->slots[k] - 1;
		k = (k + 1) & (ls->nslots - 1);
	}
	if (ls->n == INT32_MAX - 1)
		return -1;
	if ((size_t)(ls->n + 1) * 2 > ls->nslots) {
		if (labelset_rehash(ls) != 0)
			return -1;
		k = h & (ls->nslots - 1);
		while (ls->slots[k])
			k = (k + 1) & (ls->nslots - 1);
	}
	if (ls->n == ls->cap) {
		int32_t cap = ls->cap ? (ls->cap > INT32_MAX / 2 ? INT32_MAX - 1 : ls->cap * 2) : 16;
		label_ent *ne = realloc(ls->ents, (size_t)cap * sizeof *ne);
		if (!ne)
			return -1;
		ls->ents = ne;
		ls->cap = cap;
	}
	char *c = api_strndup(s, len);
	if (!c)
		return -1;
	int32_t id = ls->n++;
	ls->ents[id] = (label_ent){ c, len, h };
	ls->slots[k] = id + 1;
	ls->bytes += len + 1 + sizeof(label_ent);
	return id;
}

int32_t api_labelset_count(const api_labelset *ls)
{
	return ls ? ls->n : 0;
}

const char *api_labelset_str(const api_labelset *ls, int32_t id)
{
	return ls->ents[id].s;
}

size_t api_labelset_bytes(const api_labelset *ls)
{
	return ls ? ls->bytes + ls->nslots * sizeof(int32_t) : 0;
}

int api_labelset_numeric(const api_labelset *ls)
{
	int integral = 1;
	for (int32_t i = 0; ls && i < ls->n; i++) {
		double v;
		if (api_parse_double(ls->ents[i].s, ls->ents[i].len, &v) != 1)
			return 0;
		if (v != floor(v))
			integral = 0;
	}
	return integral ? 2 : 1;
}

typedef struct sort_ent {
	int32_t id;
	double v;
	const char *s;
} sort_ent;

static int cmp_num(const void *a, const void *b)
{
	const sort_ent *x = a, *y = b;
	if (x->v < y->v)
		return -1;
	if (x->v > y->v)
		return 1;
	return strcmp(x->s, y->s);
}

static int cmp_str(const void *a, const void *b)
{
	const sort_ent *x = a, *y = b;
	return strcmp(x->s, y->s);
}

int api_labelset_finish(api_labelset *ls, char ***classes, int *n_classes, int32_t **remap)
{
	*classes = NULL;
	*n_classes = 0;
	*remap = NULL;
	int32_t n = ls ? ls->n : 0;
	int numeric = api_labelset_numeric(ls);
	sort_ent *se = malloc(((size_t)n + 1) * sizeof *se);
	int32_t *map = malloc(((size_t)n + 1) * sizeof *map);
	char **cls = calloc((size_t)n + 1, sizeof *cls);
	if (!se || !map || !cls)
		goto fail;
	for (int32_t i = 0; i < n; i++) {
		se[i].id = i;
		se[i].s = ls->ents[i].s;
		se[i].v = 0;
		if (numeric)
			api_parse_double(ls->ents[i].s, ls->ents[i].len, &se[i].v);
		if (se[i].v == 0)
			se[i].v = 0; /* -0 and 0 are one class */
	}
	qsort(se, (size_t)n, sizeof *se, numeric ? cmp_num : cmp_str);
	int nc = 0;
	for (int32_t i = 0; i < n; i++) {
		if (numeric && nc > 0 && se[i].v == se[i - 1].v) {
			map[se[i].id] = nc - 1;
			continue;
		}
		if (numeric == 2 && fabs(se[i].v) < 9007199254740992.0) {
			char buf[32];
			snprintf(buf, sizeof buf, "%lld", (long long)se[i].v);
			cls[nc] = api_strndup(buf, strlen(buf));
		} else {
			cls[nc] = api_strndup(se[i].s, strlen(se[i].s));
		}
		if (!cls[nc])
			goto fail;
		map[se[i].id] = nc++;
	}
	free(se);
	*classes = cls;
	*n_classes = nc;
	*remap = map;
	return 0;
fail:
	free(se);
	free(map);
	api_strv_free(cls, n);
	return -1;
}

void api_labelset_free(api_labelset *ls)
{
	if (!ls)
		return;
	for (int32_t i = 0; i < ls->n; i++)
		free(ls->ents[i].s);
	free(ls->ents);
	free(ls->slots);
	free(ls);
}

/* ---------------------------------------------------------------- file format */

#define DS_MAGIC "NNDDATA1"
#define DS_HDR 48

typedef struct wbuf {
	unsigned char *p;
	size_t len, cap;
	int failed;
} wbuf;

static void wb_put(wbuf *w, const void *src, size_t n)
{
	if (w->failed)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + n)
			cap *= 2;
		unsigned char *p = realloc(w->p, cap);
		if (!p) {
			w->failed = 1;
			return;
		}
		w->p = p;
		w->cap = cap;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void wb_u32(wbuf *w, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8),
			       (unsigned char)(v >> 16), (unsigned char)(v >> 24) };
	wb_put(w, b, 4);
}

static void wb_u64(wbuf *w, uint64_t v)
{
	wb_u32(w, (uint32_t)v);
	wb_u32(w, (uint32_t)(v >> 32));
}

/* 32-bit words (floats or int32) in little-endian order. */
static void wb_words(wbuf *w, const void *src, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	wb_put(w, src, n * 4);
#else
	const uint32_t *s = src;
	for (size_t i = 0; i < n; i++)
		wb_u32(w, s[i]);
#endif
}

static void wb_str(wbuf *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	wb_u32(w, (uint32_t)n);
	wb_put(w, s ? s : "", n);
}

static void wb_f64(wbuf *w, double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	wb_u64(w, u);
}

/* The typed-columns section of format 2 (nothing without columns). */
static void wb_columns(wbuf *w, const api_dataset *d)
{
	if (!d->columns)
		return;
	wb_u32(w, (uint32_t)d->n_columns);
	wb_u64(w, (uint64_t)d->skipped_rows);
	wb_u32(w, d->raw ? 1u : 0u);
	for (int i = 0; i < d->n_columns; i++) {
		const api_column *c = &d->columns[i];
		wb_str(w, c->name);
		wb_u32(w, (uint32_t)c->type);
		wb_u64(w, (uint64_t)c->missing);
		wb_f64(w, c->mean);
		wb_f64(w, c->std);
		wb_u32(w, (uint32_t)c->n_levels);
		for (int l = 0; l < c->n_levels; l++)
			wb_str(w, c->levels[l]);
	}
	if (d->raw)
		wb_words(w, d->raw, (size_t)d->rows * (size_t)d->n_columns);
}

int api_dataset_serialize(const api_dataset *d, void **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	if (!d || d->rows < 0 || d->features < 0 || d->outputs < 0)
		return -1;
	int cls = d->task == NN_TASK_CLASSIFICATION;
	size_t nx = (size_t)d->rows * (size_t)d->features;
	size_t ny = cls ? (size_t)d->rows : (size_t)d->rows * (size_t)d->outputs;
	wbuf w = { 0 };
	w.cap = DS_HDR + (nx + ny) * 4 + 4096;
	w.p = malloc(w.cap);
	if (!w.p)
		return -1;
	wb_put(&w, DS_MAGIC, 8);
	wb_u32(&w, (uint32_t)d->task);
	wb_u32(&w, (uint32_t)d->features);
	wb_u32(&w, (uint32_t)d->outputs);
	wb_u32(&w, (uint32_t)(cls ? d->n_classes : 0));
	wb_u32(&w, (uint32_t)d->width);
	wb_u32(&w, (uint32_t)d->height);
	wb_u32(&w, (uint32_t)d->channels);
	wb_u32(&w, d->columns ? 2u : 0u);
	wb_u64(&w, (uint64_t)d->rows);
	if (nx)
		wb_words(&w, d->x, nx);
	if (ny)
		wb_words(&w, cls ? (const void *)d->labels : (const void *)d->targets, ny);
	for (int i = 0; cls && i < d->n_classes; i++)
		wb_str(&w, d->classes ? d->classes[i] : NULL);
	for (int i = 0; i < d->features; i++)
		wb_str(&w, d->feature_names ? d->feature_names[i] : NULL);
	wb_columns(&w, d);
	wb_u32(&w, 0); /* the CRC's place */
	if (w.failed) {
		free(w.p);
		return -1;
	}
	/* The CRC covers everything before it: overwrite the placeholder. */
	size_t body = w.len - 4;
	uint32_t c = libdeflate_crc32(0, w.p, body);
	unsigned char *t = w.p + body;
	t[0] = (unsigned char)c;
	t[1] = (unsigned char)(c >> 8);
	t[2] = (unsigned char)(c >> 16);
	t[3] = (unsigned char)(c >> 24);
	*buf = w.p;
	*len = w.len;
	return 0;
}

/* CRC-32 (gzip's, as zlib's crc32) of n bytes on from c: libdeflate's
 * is some 3x faster than zlib's on large buffers, and takes size_t. */
static uint32_t crc_more(uint32_t c, const void *p, size_t n)
{
	return libdeflate_crc32(c, p, n);
}

int api_dataset_serialize_pieces(const api_dataset *d, api_dataset_pieces *out)
{
	memset(out, 0, sizeof *out);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (!d || d->rows < 0 || d->features < 0 || d->outputs < 0)
		return -1;
	int cls = d->task == NN_TASK_CLASSIFICATION;
	size_t nx = (size_t)d->rows * (size_t)d->features;
	size_t ny = cls ? (size_t)d->rows : (size_t)d->rows * (size_t)d->outputs;
	wbuf h = { 0 }, t = { 0 };
	wb_put(&h, DS_MAGIC, 8);
	wb_u32(&h, (uint32_t)d->task);
	wb_u32(&h, (uint32_t)d->features);
	wb_u32(&h, (uint32_t)d->outputs);
	wb_u32(&h, (uint32_t)(cls ? d->n_classes : 0));
	wb_u32(&h, (uint32_t)d->width);
	wb_u32(&h, (uint32_t)d->height);
	wb_u32(&h, (uint32_t)d->channels);
	wb_u32(&h, d->columns ? 2u : 0u);
	wb_u64(&h, (uint64_t)d->rows);
	for (int i = 0; cls && i < d->n_classes; i++)
		wb_str(&t, d->classes ? d->classes[i] : NULL);
	for (int i = 0; i < d->features; i++)
		wb_str(&t, d->feature_names ? d->feature_names[i] : NULL);
	wb_columns(&t, d);
	if (h.failed || t.failed || (nx && !d->x) || (ny && !(cls ? (void *)d->labels : (void *)d->targets))) {
		free(h.p);
		free(t.p);
		return -1;
	}
	uint32_t c = 0;
	c = crc_more(c, h.p, h.len);
	c = crc_more(c, d->x, nx * 4);
	c = crc_more(c, cls ? (const void *)d->labels : (const void *)d->targets, ny * 4);
	c = crc_more(c, t.p, t.len);
	wb_u32(&t, (uint32_t)c);
	if (t.failed) {
		free(h.p);
		free(t.p);
		return -1;
	}
	out->head = h.p;
	out->tail = t.p;
	out->p[0] = h.p;
	out->len[0] = h.len;
	out->p[1] = d->x;
	out->len[1] = nx * 4;
	out->p[2] = cls ? (const void *)d->labels : (const void *)d->targets;
	out->len[2] = ny * 4;
	out->p[3] = t.p;
	out->len[3] = t.len;
	return 0;
#else
	(void)d;
	return -1;
#endif
}

void api_dataset_pieces_release(api_dataset_pieces *pc)
{
	if (!pc)
		return;
	free(pc->head);
	free(pc->tail);
	memset(pc, 0, sizeof *pc);
}

typedef struct rbuf {
	const unsigned char *p;
	size_t len, off;
} rbuf;

static int rb_u32(rbuf *r, uint32_t *v)
{
	if (r->len - r->off < 4)
		return -1;
	const unsigned char *b = r->p + r->off;
	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	r->off += 4;
	return 0;
}

static int rb_words(rbuf *r, void *dst, size_t n)
{
	if (n > (r->len - r->off) / 4)
		return -1;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(dst, r->p + r->off, n * 4);
	r->off += n * 4;
#else
	uint32_t *d = dst;
	for (size_t i = 0; i < n; i++)
		rb_u32(r, &d[i]);
#endif
	return 0;
}

static int rb_str(rbuf *r, char **out)
{
	uint32_t n;
	if (rb_u32(r, &n) != 0 || n > r->len - r->off)
		return -1;
	if (memchr(r->p + r->off, '\0', n))
		return -1;
	*out = api_strndup((const char *)r->p + r->off, n);
	if (!*out)
		return -1;
	r->off += n;
	return 0;
}

static int corrupt(api_err *e, const char *what)
{
	return api_err_set(e, 500, "corrupt_dataset", "the stored data set is damaged: %s", what);
}

static int rb_u64(rbuf *r, uint64_t *v)
{
	uint32_t lo, hi;
	if (rb_u32(r, &lo) != 0 || rb_u32(r, &hi) != 0)
		return -1;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

/* Reads the typed-columns section into out (rows and features set). */
static int rb_columns(rbuf *r, api_dataset *out)
{
	uint32_t n, has_raw;
	uint64_t skipped;
	if (rb_u32(r, &n) != 0 || rb_u64(r, &skipped) != 0 || rb_u32(r, &has_raw) != 0 ||
	    n > (r->len - r->off) / 4 || has_raw > 1 || (int64_t)skipped < 0)
		return -1;
	out->skipped_rows = (int64_t)skipped;
	out->columns = calloc((size_t)n + 1, sizeof *out->columns);
	if (!out->columns)
		return -1;
	int width = 0;
	for (uint32_t i = 0; i < n; i++) {
		api_column *c = &out->columns[out->n_columns++];
		uint32_t type, nl;
		uint64_t miss, mean, sd;
		if (rb_str(r, &c->name) != 0 || rb_u32(r, &type) != 0 || rb_u64(r, &miss) != 0 ||
		    rb_u64(r, &mean) != 0 || rb_u64(r, &sd) != 0 || rb_u32(r, &nl) != 0 ||
		    type > API_COL_EMPTY || (int64_t)miss < 0 || (int64_t)miss > out->rows ||
		    nl > (r->len - r->off) / 4 || (type != API_COL_CATEGORICAL && nl))
			return -1;
		c->type = (api_col_type)type;
		c->missing = (int64_t)miss;
		memcpy(&c->mean, &mean, 8);
		memcpy(&c->std, &sd, 8);
		c->levels = calloc((size_t)nl + 1, sizeof *c->levels);
		if (!c->levels)
			return -1;
		for (; (uint32_t)c->n_levels < nl; c->n_levels++)
			if (rb_str(r, &c->levels[c->n_levels]) != 0 ||
			    (c->n_levels > 0 && strcmp(c->levels[c->n_levels - 1], c->levels[c->n_levels]) >= 0)) {
				c->n_levels++;
				return -1;
			}
		width += type == API_COL_NUMERIC ? 1 : (int)nl;
		width += type != API_COL_EMPTY && miss > 0;
	}
	if (!has_raw)
		return width == out->features && width == (int)n ? 0 : -1;
	if (width != out->features)
		return -1;
	size_t nr = (size_t)out->rows * n;
	if (out->rows && n && (uint64_t)out->rows > (r->len - r->off) / 4 / n)
		return -1;
	out->raw = malloc(nr ? nr * 4 : 4);
	if (!out->raw || rb_words(r, out->raw, nr) != 0)
		return -1;
	/* level indices in range */
	for (size_t k = 0; k < nr; k++) {
		const api_column *c = &out->columns[k % n];
		float v = out->raw[k];
		if (c->type == API_COL_CATEGORICAL && !isnan(v) &&
		    !(v >= 0 && v < (float)c->n_levels && v == floorf(v)))
			return -1;
	}
	return 0;
}

/* Frees what a failed deserialize built; borrowed arrays are the caller's. */
static void free_partial(api_dataset *d, int borrow)
{
	if (borrow) {
		d->x = NULL;
		d->labels = NULL;
		d->targets = NULL;
	}
	api_dataset_free(d);
}

/* borrow: x and labels/targets point into buf (little-endian hosts, and
 * buf 4-byte aligned) instead of copies. */
static int deserialize(const void *buf, size_t len, api_dataset *out, api_err *e, int borrow);

int api_dataset_deserialize(const void *buf, size_t len, api_dataset *out, api_err *e)
{
	return deserialize(buf, len, out, e, 0);
}

int api_dataset_deserialize_mapped(void *map, size_t len, api_dataset *out, api_err *e)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	int borrow = ((uintptr_t)map & 3) == 0;
#else
	int borrow = 0;
#endif
	if (deserialize(map, len, out, e, borrow) < 0)
		return -1;
	if (borrow) {
		out->map = map;
		out->map_len = len;
	} else {
		munmap(map, len);
	}
	return 0;
}

static int deserialize(const void *buf, size_t len, api_dataset *out, api_err *e, int borrow)
{
	memset(out, 0, sizeof *out);
	if (!buf || len < DS_HDR + 4 || memcmp(buf, DS_MAGIC, 8) != 0)
		return corrupt(e, "bad magic or too short");
	rbuf r = { buf, len - 4, 8 };
	uint32_t crc_stored, h[8], lo, hi;
	rbuf t = { buf, len, len - 4 };
	rb_u32(&t, &crc_stored);
	uint32_t c = crc_more(0, buf, len - 4);
	if (c != crc_stored)
		return corrupt(e, "checksum mismatch");
	for (int i = 0; i < 8; i++)
		rb_u32(&r, &h[i]);
	rb_u32(&r, &lo);
	rb_u32(&r, &hi);
	int64_t rows = (int64_t)((uint64_t)hi << 32 | lo);
	if (h[0] > 1 || (h[7] != 0 && h[7] != 2) || h[1] > INT32_MAX || h[2] > INT32_MAX || h[3] > INT32_MAX ||
	    h[4] > INT32_MAX || h[5] > INT32_MAX || h[6] > INT32_MAX || rows < 0)
		return corrupt(e, "bad header");
	/* an image shape, when there is one, covers the features exactly */
	if ((h[4] || h[5] || h[6]) &&
	    (!h[4] || !h[5] || !h[6] || (uint64_t)h[4] * h[5] > h[1] ||
	     (uint64_t)h[4] * h[5] * h[6] != h[1]))
		return corrupt(e, "bad image shape");
	out->task = h[0] == 0 ? NN_TASK_CLASSIFICATION : NN_TASK_REGRESSION;
	out->features = (int)h[1];
	out->outputs = (int)h[2];
	int cls = out->task == NN_TASK_CLASSIFICATION;
	int ncls = (int)h[3];
	out->width = (int)h[4];
	out->height = (int)h[5];
	out->channels = (int)h[6];
	uint64_t avail = (r.len - r.off) / 4;
	if ((out->features && (uint64_t)rows > avail / (uint64_t)out->features) ||
	    (!cls && out->outputs && (uint64_t)rows > avail / (uint64_t)out->outputs) ||
	    (cls && ncls != out->outputs))
		return corrupt(e, "sizes do not match the file");
	size_t nx = (size_t)rows * (size_t)out->features;
	size_t ny = cls ? (size_t)rows : (size_t)rows * (size_t)out->outputs;
	/* every class and feature name takes at least its 4-byte length */
	if (nx + ny > avail || (uint64_t)ncls + (uint64_t)out->features > avail - (nx + ny))
		return corrupt(e, "sizes do not match the file");
	out->rows = rows;
	if (borrow) {
		/* the caller's buffer outlives out: x and y stay where they are */
		out->x = (float *)(void *)(r.p + r.off);
		if (cls)
			out->labels = (int32_t *)(void *)(r.p + r.off + nx * 4);
		else
			out->targets = (float *)(void *)(r.p + r.off + nx * 4);
		r.off += (nx + ny) * 4;
	} else {
		out->x = malloc(nx ? nx * 4 : 1);
		if (cls)
			out->labels = malloc(ny ? ny * 4 : 1);
		else
			out->targets = malloc(ny ? ny * 4 : 1);
	}
	out->classes = calloc((size_t)ncls + 1, sizeof(char *));
	out->feature_names = calloc((size_t)out->features + 1, sizeof(char *));
	if (!out->x || (cls ? !out->labels : !out->targets) || !out->classes || !out->feature_names) {
		free_partial(out, borrow);
		return api_err_set(e, 500, "out_of_memory", "no memory to load the data set");
	}
	if (!borrow) {
		rb_words(&r, out->x, nx);
		rb_words(&r, cls ? (void *)out->labels : (void *)out->targets, ny);
	}
	for (size_t i = 0; cls && i < ny; i++)
		if (out->labels[i] < 0 || out->labels[i] >= out->outputs) {
			free_partial(out, borrow);
			return corrupt(e, "label out of range");
		}
	for (int i = 0; i < ncls; i++, out->n_classes++)
		if (rb_str(&r, &out->classes[i]) != 0) {
			free_partial(out, borrow);
			return corrupt(e, "bad class name");
		}
	for (int i = 0; i < out->features; i++)
		if (rb_str(&r, &out->feature_names[i]) != 0) {
			free_partial(out, borrow);
			return corrupt(e, "bad feature name");
		}
	if (h[7] == 2 && rb_columns(&r, out) != 0) {
		free_partial(out, borrow);
		return corrupt(e, "bad typed columns");
	}
	if (r.off != r.len) {
		free_partial(out, borrow);
		return corrupt(e, "trailing bytes");
	}
	return 0;
}
