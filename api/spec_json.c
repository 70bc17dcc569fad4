/*
 * spec_json.c - JSON <-> engine structs for the three documents a client
 * writes: the model spec (POST /v1/models), the job config (POST /v1/jobs)
 * and the weights (GET/PUT /v1/models/{id}/weights).
 *
 * Validation never stops at the first problem of a spec or config: every bad
 * field is added to the api_err by its JSON path ("layers[3].layers[0].rate",
 * "optimizer.beta2"), up to API_MAX_FIELD_ERRORS, so a client fixes all of
 * them in one round. Unknown and duplicate fields are errors, so typos never
 * pass silently. Numbers must be finite (cJSON turns 1e400 into infinity) and
 * integers integral. Sizes are checked before anything is allocated: list
 * lengths, residual depth, the total layer count and the parameter count
 * (64-bit, saturating), so a hostile spec costs no memory.
 *
 * Weights are different: a PUT either matches the model exactly or changes
 * nothing, and the reply names the first mismatch.
 *
 * Output documents carry every default filled in, and floats are printed in
 * their shortest form that reads back as the same float (0.1, not
 * 0.10000000149011612); weights are printed as the exact double of each float.
 */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spec_json.h"
#include "dataset_util.h"

#define MAX_SEED 9007199254740992.0   /* 2^53: integers JSON numbers hold exactly */
#define MAX_INPUTS (1 << 24)
#define MAX_NAME 200

api_limits api_limits_default(void)
{
	api_limits l;
	l.max_params = 50000000;
	l.max_depth = 8;
	l.max_layers = 256;
	l.max_units = 65536;
	l.max_epochs = 100000;
	l.max_batch = 1 << 20;
	l.max_replicas = 0;
	return l;
}

/* ---------------------------------------------------------------- names */

static const char *const ACT_NAMES[] = {
	"identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "gelu"
};
static const char *const INIT_NAMES[] = {
	"auto", "zeros", "normal", "uniform", "lecun_normal", "lecun_uniform",
	"he_normal", "he_uniform", "xavier_normal", "xavier_uniform"
};
static const char *const OPT_NAMES[] = {
	"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"
};
static const char *const SCHED_NAMES[] = {
	"constant", "step", "exponential", "polynomial", "cyclical", "cosine"
};
static const char *const LAYER_NAMES[] = {
	"dense", "activation", "batch_norm", "dropout", "residual"
};
static const char *const AVG_NAMES[] = { "none", "polyak", "ema" };

#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))

static int find_name(const char *const *names, int n, const char *s)
{
	for (int i = 0; s && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

static const char *name_of(const char *const *names, int n, int i)
{
	return i >= 0 && i < n ? names[i] : NULL;
}

const char *api_act_name(nn_act a) { return name_of(ACT_NAMES, COUNT(ACT_NAMES), (int)a); }
int api_act_parse(const char *s) { return find_name(ACT_NAMES, COUNT(ACT_NAMES), s); }
const char *api_init_name(nn_init i) { return name_of(INIT_NAMES, COUNT(INIT_NAMES), (int)i); }
int api_init_parse(const char *s) { return find_name(INIT_NAMES, COUNT(INIT_NAMES), s); }
const char *api_opt_name(nn_opt_type t) { return name_of(OPT_NAMES, COUNT(OPT_NAMES), (int)t); }
const char *api_sched_name(nn_sched_type t) { return name_of(SCHED_NAMES, COUNT(SCHED_NAMES), (int)t); }

/* "a, b or c" for messages. */
static void list_names(char *dst, size_t cap, const char *const *names, int n)
{
	size_t off = 0;
	dst[0] = '\0';
	for (int i = 0; i < n && off < cap; i++)
		off += (size_t)snprintf(dst + off, cap - off, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
					names[i]);
}

/* ---------------------------------------------------------------- paths and fields */

/* Appends s to the string in dst, truncating at cap. */
static void pcat(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(dst);
	while (*s && n + 1 < cap)
		dst[n++] = *s++;
	dst[n] = '\0';
}

/* path + "." + key (or key alone at the root). */
static void join(char *dst, size_t cap, const char *path, const char *key)
{
	dst[0] = '\0';
	if (path && path[0]) {
		pcat(dst, cap, path);
		pcat(dst, cap, ".");
	}
	pcat(dst, cap, key);
}

static void joini(char *dst, size_t cap, const char *path, int i)
{
	char b[16];
	snprintf(b, sizeof b, "[%d]", i);
	dst[0] = '\0';
	pcat(dst, cap, path);
	pcat(dst, cap, b);
}

/* Picks the known fields of object o into out[] (NULL when absent or JSON
 * null); reports unknown and duplicate keys. Returns the number of errors. */
static int pick(const cJSON *o, const char *path, const char *const *names, int n,
		const cJSON **out, api_err *e)
{
	int bad = 0;
	char p[160];
	for (int i = 0; i < n; i++)
		out[i] = NULL;
	for (const cJSON *it = o->child; it; it = it->next) {
		const char *k = it->string ? it->string : "";
		int i = find_name(names, n, k);
		join(p, sizeof p, path, k);
		if (i < 0) {
			api_err_field(e, p, "unknown field");
			bad++;
		} else if (out[i]) {
			api_err_field(e, p, "duplicate field");
			bad++;
		} else if (!cJSON_IsNull(it)) {
			out[i] = it;
		}
	}
	return bad;
}

/* The field's value is read by the checkers below; each returns 0 when the
 * value is acceptable (stored in *out), -1 after reporting it. */

static int in_range(double x, double lo, int lo_open, double hi, int hi_open)
{
	return !((lo_open ? x <= lo : x < lo) || (hi_open ? x >= hi : x > hi));
}

static int range_error(const char *p, double lo, int lo_open, double hi, int hi_open, api_err *e)
{
	if (hi >= 1e300)
		return api_err_field(e, p, lo_open ? "must be greater than %g" : "must be at least %g", lo);
	return api_err_field(e, p, "must be in %c%g, %g%c", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
}

static int get_num(const cJSON *v, const char *path, const char *key, double lo, int lo_open,
		   double hi, int hi_open, double *out, api_err *e)
{
	char p[160];
	join(p, sizeof p, path, key);
	if (!cJSON_IsNumber(v))
		return api_err_field(e, p, "must be a number");
	double x = v->valuedouble;
	if (!isfinite(x))
		return api_err_field(e, p, "must be a finite number");
	if (!in_range(x, lo, lo_open, hi, hi_open))
		return range_error(p, lo, lo_open, hi, hi_open, e);
	*out = x;
	return 0;
}

/* A float field: the number must also be in range once rounded to a float
 * (1e-88 is above 0 but its float is not; 0.9999999999 rounds to 1). */
static int get_float(const cJSON *v, const char *path, const char *key, double lo, int lo_open,
		     double hi, int hi_open, float *out, api_err *e)
{
	double d;
	if (get_num(v, path, key, lo, lo_open, hi, hi_open, &d, e) != 0)
		return -1;
	char p[160];
	join(p, sizeof p, path, key);
	if (fabs(d) > FLT_MAX)
		return api_err_field(e, p, "is outside the float range");
	float f = (float)d;
	if (!in_range((double)f, lo, lo_open, hi, hi_open))
		return range_error(p, lo, lo_open, hi, hi_open, e);
	*out = f;
	return 0;
}

static int get_int(const cJSON *v, const char *path, const char *key, int64_t lo, int64_t hi,
		   int64_t *out, api_err *e)
{
	char p[160];
	join(p, sizeof p, path, key);
	if (!cJSON_IsNumber(v))
		return api_err_field(e, p, "must be an integer");
	double x = v->valuedouble;
	if (!isfinite(x))
		return api_err_field(e, p, "must be a finite integer");
	if (x != floor(x))
		return api_err_field(e, p, "must be an integer");
	if (x < (double)lo || x > (double)hi) {
		if (lo == 1 && hi >= INT32_MAX)
			return api_err_field(e, p, "must be a positive integer (at most %lld)", (long long)hi);
		return api_err_field(e, p, "must be an integer in [%lld, %lld]", (long long)lo, (long long)hi);
	}
	*out = (int64_t)x;
	return 0;
}

static int get_int32(const cJSON *v, const char *path, const char *key, int64_t lo, int64_t hi,
		     int *out, api_err *e)
{
	int64_t x;
	if (get_int(v, path, key, lo, hi, &x, e) != 0)
		return -1;
	*out = (int)x;
	return 0;
}

static int get_bool(const cJSON *v, const char *path, const char *key, int *out, api_err *e)
{
	char p[160];
	join(p, sizeof p, path, key);
	if (!cJSON_IsBool(v))
		return api_err_field(e, p, "must be true or false");
	*out = cJSON_IsTrue(v);
	return 0;
}

/* A string among names; returns its index or -1 after reporting. */
static int get_enum(const cJSON *v, const char *path, const char *key, const char *const *names,
		    int n, api_err *e)
{
	char p[160], list[200];
	join(p, sizeof p, path, key);
	int i = cJSON_IsString(v) ? find_name(names, n, v->valuestring) : -1;
	if (i < 0) {
		list_names(list, sizeof list, names, n);
		api_err_field(e, p, "must be one of %s", list);
	}
	return i;
}

static void missing(const char *path, const char *key, api_err *e)
{
	char p[160];
	join(p, sizeof p, path, key);
	api_err_field(e, p, "is required");
}

/*
 * Scalar fields read by a table: each rule names the field (an index into the
 * object's keys, and so into what pick() found), its type and range, and where
 * the value goes (an offset into the struct being filled). read_fields reads
 * the rules in order, so errors come in the table's order; a value is written
 * only when it is acceptable.
 */
enum {
	F_FLOAT,               /* float, range lo..hi with open or closed ends */
	F_INT,                 /* int in [lo, hi] */
	F_INT64,               /* int64_t in [lo, hi] */
	F_BOOL,                /* int, 0 or 1 */
	F_REQUIRED = 0x10      /* or'ed in: absent is an error */
};

typedef struct field_rule {
	int key;
	int type;
	double lo;
	int lo_open;           /* F_FLOAT only */
	double hi;
	int hi_open;           /* F_FLOAT only */
	size_t off;
} field_rule;

/* Returns the number of bad fields; sets bit `key` of *failed (when not NULL)
 * for each of them. */
static int read_fields(const cJSON *const *f, const char *const *keys, const char *path,
		       const field_rule *r, int n, void *dst, unsigned *failed, api_err *e)
{
	int bad = 0;
	for (; n > 0; n--, r++) {
		const cJSON *v = f[r->key];
		const char *k = keys[r->key];
		char *d = (char *)dst + r->off;
		int rc;
		if (!v) {
			if (!(r->type & F_REQUIRED))
				continue;
			missing(path, k, e);
			rc = -1;
		} else {
			switch (r->type & ~F_REQUIRED) {
			case F_FLOAT:
				rc = get_float(v, path, k, r->lo, r->lo_open, r->hi, r->hi_open, (float *)d, e);
				break;
			case F_INT:
				rc = get_int32(v, path, k, (int64_t)r->lo, (int64_t)r->hi, (int *)d, e);
				break;
			case F_INT64:
				rc = get_int(v, path, k, (int64_t)r->lo, (int64_t)r->hi, (int64_t *)d, e);
				break;
			default:
				rc = get_bool(v, path, k, (int *)d, e);
				break;
			}
		}
		if (rc != 0) {
			bad++;
			if (failed)
				*failed |= 1u << r->key;
		}
	}
	return bad;
}

/* An engine check's message, "field: problem", reported under its field
 * (under `whole` when it names none). */
static void engine_error(api_err *e, const char *msg, const char *whole)
{
	char field[128];
	const char *colon = strstr(msg, ": ");
	if (colon) {
		snprintf(field, sizeof field, "%.*s", (int)(colon - msg), msg);
		api_err_field(e, field, "%s", colon + 2);
	} else {
		api_err_field(e, whole, "%s", msg);
	}
}

/* ---------------------------------------------------------------- model spec */

typedef struct spec_ctx {
	const api_limits *lim;
	api_err *e;
	int errors;
	int total_layers;      /* across the whole tree */
	int max_total;
	int64_t params;        /* saturates at INT64_MAX */
} spec_ctx;

static void add_params(spec_ctx *c, int64_t k)
{
	c->params = k > INT64_MAX - c->params ? INT64_MAX : c->params + k;
}

static int parse_layer_list(spec_ctx *c, const cJSON *arr, const char *path, int depth, int width,
			    int *out_width, nn_layer_spec **out, int *n_out);

enum { L_TYPE, L_UNITS, L_ACTIVATION, L_ALPHA, L_INIT, L_STD, L_LIMIT, L_BIAS, L_FUNCTION,
       L_MOMENTUM, L_EPS, L_RATE, L_MODE, L_LAYERS, L_PROJECTION, L_N };
static const char *const LAYER_KEYS[L_N] = {
	"type", "units", "activation", "alpha", "init", "std", "limit", "bias", "function",
	"momentum", "eps", "rate", "mode", "layers", "projection"
};
/* Which keys each layer type takes (bit i = LAYER_KEYS[i]). */
static const unsigned LAYER_ALLOWED[] = {
	[NN_LAYER_DENSE] = 1u << L_TYPE | 1u << L_UNITS | 1u << L_ACTIVATION | 1u << L_ALPHA |
			   1u << L_INIT | 1u << L_STD | 1u << L_LIMIT | 1u << L_BIAS,
	[NN_LAYER_ACTIVATION] = 1u << L_TYPE | 1u << L_FUNCTION | 1u << L_ALPHA,
	[NN_LAYER_BATCH_NORM] = 1u << L_TYPE | 1u << L_MOMENTUM | 1u << L_EPS,
	[NN_LAYER_DROPOUT] = 1u << L_TYPE | 1u << L_RATE | 1u << L_MODE,
	[NN_LAYER_RESIDUAL] = 1u << L_TYPE | 1u << L_LAYERS | 1u << L_PROJECTION,
};

/* alpha for the activations that take one; act < 0 when unknown. */
static void parse_alpha(spec_ctx *c, const cJSON *v, const char *path, int act, float *alpha)
{
	if (!v)
		return;
	if (act >= 0 && act != NN_ACT_LEAKY_RELU && act != NN_ACT_ELU) {
		char p[160];
		join(p, sizeof p, path, "alpha");
		api_err_field(c->e, p, "only leaky_relu and elu take an alpha");
		c->errors++;
		return;
	}
	if (get_float(v, path, "alpha", 0, 1, 1000, 0, alpha, c->e) != 0)
		c->errors++;
}

/* A layer's defaults, its type and its fields (f), each allowed for the
 * type; the type, or -1 after an error that leaves nothing to read. */
static int layer_head(spec_ctx *c, const cJSON *o, const char *path, const cJSON *f[L_N],
		      nn_layer_spec *l)
{
	memset(l, 0, sizeof *l);
	l->act = NN_ACT_IDENTITY;
	l->init = NN_INIT_AUTO;
	l->bias = 1;
	l->momentum = 0.1f;
	l->eps = 1e-5f;
	l->rate = 0.5f;
	l->mode = NN_DROPOUT_INVERTED;
	if (!cJSON_IsObject(o)) {
		api_err_field(c->e, path, "must be an object with a \"type\"");
		c->errors++;
		return -1;
	}
	const cJSON *tv = cJSON_GetObjectItemCaseSensitive(o, "type");
	if (!tv) {
		missing(path, "type", c->e);
		c->errors++;
		return -1;
	}
	int type = get_enum(tv, path, "type", LAYER_NAMES, COUNT(LAYER_NAMES), c->e);
	if (type < 0) {
		c->errors++;
		return -1;
	}
	l->type = (nn_layer_type)type;
	c->errors += pick(o, path, LAYER_KEYS, L_N, f, c->e);
	for (int i = 0; i < L_N; i++)
		if (f[i] && !(LAYER_ALLOWED[type] & (1u << i))) {
			char p[160];
			join(p, sizeof p, path, LAYER_KEYS[i]);
			api_err_field(c->e, p, "unknown field for a %s layer", LAYER_NAMES[type]);
			c->errors++;
			f[i] = NULL;
		}
	return type;
}

/* A dense layer's init, and the std or limit that goes with it. */
static void parse_dense_init(spec_ctx *c, const cJSON *const f[L_N], const char *path,
			     nn_layer_spec *l)
{
	int init = NN_INIT_AUTO;
	if (f[L_INIT] &&
	    (init = get_enum(f[L_INIT], path, "init", INIT_NAMES, COUNT(INIT_NAMES), c->e)) < 0)
		c->errors++;
	l->init = init < 0 ? NN_INIT_AUTO : (nn_init)init;
	for (int k = L_STD; k <= L_LIMIT; k++) {
		if (!f[k])
			continue;
		int want = k == L_STD ? NN_INIT_NORMAL : NN_INIT_UNIFORM;
		if (init >= 0 && init != want) {
			char p[160];
			join(p, sizeof p, path, LAYER_KEYS[k]);
			api_err_field(c->e, p, "only the %s init takes a %s", INIT_NAMES[want], LAYER_KEYS[k]);
			c->errors++;
		} else if (get_float(f[k], path, LAYER_KEYS[k], 0, 1, 1e6, 0, &l->init_param, c->e) != 0) {
			c->errors++;
		}
	}
}

static int parse_dense(spec_ctx *c, const cJSON *const f[L_N], const char *path, int width,
		       nn_layer_spec *l)
{
	int ok = 1;
	if (!f[L_UNITS]) {
		missing(path, "units", c->e);
		ok = 0;
	} else if (get_int32(f[L_UNITS], path, "units", 1, c->lim->max_units, &l->units, c->e) != 0) {
		ok = 0;
	}
	int act = NN_ACT_IDENTITY;
	if (f[L_ACTIVATION] &&
	    (act = get_enum(f[L_ACTIVATION], path, "activation", ACT_NAMES, COUNT(ACT_NAMES), c->e)) < 0)
		c->errors++;
	l->act = act < 0 ? NN_ACT_IDENTITY : (nn_act)act;
	parse_alpha(c, f[L_ALPHA], path, act, &l->alpha);
	parse_dense_init(c, f, path, l);
	if (f[L_BIAS] && get_bool(f[L_BIAS], path, "bias", &l->bias, c->e) != 0)
		c->errors++;
	if (!ok) {
		c->errors++;
		return -1;
	}
	if (width > 0)
		add_params(c, (int64_t)width * l->units + (l->bias ? l->units : 0));
	return l->units;
}

static int parse_activation(spec_ctx *c, const cJSON *const f[L_N], const char *path, int width,
			    nn_layer_spec *l)
{
	int act = -1;
	if (!f[L_FUNCTION]) {
		missing(path, "function", c->e);
		c->errors++;
	} else if ((act = get_enum(f[L_FUNCTION], path, "function", ACT_NAMES, COUNT(ACT_NAMES), c->e)) < 0) {
		c->errors++;
	}
	l->act = act < 0 ? NN_ACT_IDENTITY : (nn_act)act;
	parse_alpha(c, f[L_ALPHA], path, act, &l->alpha);
	return width;
}

static int parse_batch_norm(spec_ctx *c, const cJSON *const f[L_N], const char *path, int width,
			    nn_layer_spec *l)
{
	static const field_rule R[] = {
		{ L_MOMENTUM, F_FLOAT, 0, 0, 1, 0, offsetof(nn_layer_spec, momentum) },
		{ L_EPS, F_FLOAT, 0, 1, 1, 0, offsetof(nn_layer_spec, eps) },
	};
	c->errors += read_fields(f, LAYER_KEYS, path, R, COUNT(R), l, NULL, c->e);
	if (width > 0)
		add_params(c, 2 * (int64_t)width);
	return width;
}

static int parse_dropout(spec_ctx *c, const cJSON *const f[L_N], const char *path, int width,
			 nn_layer_spec *l)
{
	static const field_rule R[] = { { L_RATE, F_FLOAT, 0, 0, 1, 1, offsetof(nn_layer_spec, rate) } };
	c->errors += read_fields(f, LAYER_KEYS, path, R, COUNT(R), l, NULL, c->e);
	if (f[L_MODE]) {
		static const char *const MODES[] = { "inverted", "scale_at_test" };
		int m = get_enum(f[L_MODE], path, "mode", MODES, 2, c->e);
		if (m < 0)
			c->errors++;
		else
			l->mode = (nn_dropout_mode)m;
	}
	return width;
}

/* A residual block: its children, and a width it keeps or projects. */
static int parse_residual(spec_ctx *c, const cJSON *const f[L_N], const char *path, int depth,
			  int width, nn_layer_spec *l)
{
	if (f[L_PROJECTION] && get_bool(f[L_PROJECTION], path, "projection", &l->projection, c->e))
		c->errors++;
	if (depth + 1 > c->lim->max_depth || depth + 1 > NN_MAX_DEPTH) {
		int lim = c->lim->max_depth < NN_MAX_DEPTH ? c->lim->max_depth : NN_MAX_DEPTH;
		api_err_field(c->e, path, "residual blocks nest deeper than %d", lim);
		c->errors++;
		return -1;
	}
	char p[160];
	join(p, sizeof p, path, "layers");
	if (!f[L_LAYERS]) {
		missing(path, "layers", c->e);
		c->errors++;
		return -1;
	}
	if (!cJSON_IsArray(f[L_LAYERS]) || cJSON_GetArraySize(f[L_LAYERS]) == 0) {
		api_err_field(c->e, p, "must be a non-empty array of layers");
		c->errors++;
		return -1;
	}
	int w = -1;
	if (parse_layer_list(c, f[L_LAYERS], p, depth + 1, width, &w, &l->children, &l->n_children) != 0)
		return -1;
	if (w < 0 || width < 0)
		return -1;
	if (l->projection) {
		add_params(c, (int64_t)width * w);
	} else if (w != width) {
		api_err_field(c->e, path,
			      "the block maps width %d to %d; it must keep the width or set \"projection\": true",
			      width, w);
		c->errors++;
		return -1;
	}
	return w;
}

/* One layer; returns its output width (-1 when unknown after an error). */
static int parse_layer(spec_ctx *c, const cJSON *o, const char *path, int depth, int width,
		       nn_layer_spec *l)
{
	const cJSON *f[L_N];
	switch (layer_head(c, o, path, f, l)) {
	case NN_LAYER_DENSE:
		return parse_dense(c, f, path, width, l);
	case NN_LAYER_ACTIVATION:
		return parse_activation(c, f, path, width, l);
	case NN_LAYER_BATCH_NORM:
		return parse_batch_norm(c, f, path, width, l);
	case NN_LAYER_DROPOUT:
		return parse_dropout(c, f, path, width, l);
	case NN_LAYER_RESIDUAL:
		return parse_residual(c, f, path, depth, width, l);
	}
	return -1;
}

/* Parses a layer array into a new spec array (always allocated when the
 * array was, even with errors, so the caller can free it). 0 or -1. */
static int parse_layer_list(spec_ctx *c, const cJSON *arr, const char *path, int depth, int width,
			    int *out_width, nn_layer_spec **out, int *n_out)
{
	*out = NULL;
	*n_out = 0;
	int n = cJSON_GetArraySize(arr);
	int before = c->errors;
	if (n > c->lim->max_layers) {
		api_err_field(c->e, path, "has %d layers; at most %d are allowed", n, c->lim->max_layers);
		c->errors++;
		return -1;
	}
	if (c->total_layers + n > c->max_total) {
		api_err_field(c->e, path, "the model has more than %d layers in all", c->max_total);
		c->errors++;
		return -1;
	}
	c->total_layers += n;
	if (n == 0) {
		*out_width = width;
		return 0;
	}
	nn_layer_spec *ls = calloc((size_t)n, sizeof *ls);
	if (!ls) {
		api_err_set(c->e, 413, "payload_too_large", "no memory for the layers");
		c->errors++;
		return -1;
	}
	*out = ls;
	int i = 0;
	char p[160];
	for (const cJSON *it = arr->child; it && i < n; it = it->next, i++) {
		joini(p, sizeof p, path, i);
		*n_out = i + 1;
		width = parse_layer(c, it, p, depth, width, &ls[i]);
		if (c->e->n_fields >= API_MAX_FIELD_ERRORS)
			break;
	}
	*out_width = width;
	return c->errors > before ? -1 : 0;
}

enum { M_NAME, M_TASK, M_INPUTS, M_OUTPUTS, M_INIT, M_SEED, M_LAYERS, M_N };
static const char *const MODEL_KEYS[M_N] = {
	"name", "task", "inputs", "outputs", "init", "seed", "layers"
};
static const char *const TASK_NAMES[] = { "classification", "regression" };

int api_model_spec_from_json(const cJSON *j, const api_limits *lim, nn_model_spec *out,
			     char **name, api_err *e)
{
	api_err scratch = API_ERR_INIT;
	if (!e)
		e = &scratch;
	api_limits dl = api_limits_default();
	if (!lim)
		lim = &dl;
	memset(out, 0, sizeof *out);
	if (name)
		*name = NULL;
	if (!cJSON_IsObject(j))
		return api_err_field(e, "body", "must be a JSON object");
	spec_ctx c = { lim, e, 0, 0, lim->max_layers * 16, 0 };
	const cJSON *f[M_N];
	c.errors += pick(j, "", MODEL_KEYS, M_N, f, e);
	if (f[M_NAME] && (!cJSON_IsString(f[M_NAME]) || strlen(f[M_NAME]->valuestring) > MAX_NAME ||
			  !api_utf8_valid(f[M_NAME]->valuestring, strlen(f[M_NAME]->valuestring)))) {
		api_err_field(e, "name", "must be a UTF-8 string of at most %d bytes", MAX_NAME);
		c.errors++;
	}
	int task = -1;
	if (!f[M_TASK]) {
		missing("", "task", e);
		c.errors++;
	} else if ((task = get_enum(f[M_TASK], "", "task", TASK_NAMES, 2, e)) < 0) {
		c.errors++;
	}
	out->task = task < 0 ? NN_TASK_CLASSIFICATION : (nn_task)task;
	static const field_rule INPUTS[] = {
		{ M_INPUTS, F_INT | F_REQUIRED, 1, 0, MAX_INPUTS, 0, offsetof(nn_model_spec, inputs) }
	};
	c.errors += read_fields(f, MODEL_KEYS, "", INPUTS, 1, out, NULL, e);
	if (!f[M_OUTPUTS]) {
		missing("", "outputs", e);
		c.errors++;
	} else if (cJSON_IsNumber(f[M_OUTPUTS]) && task == NN_TASK_CLASSIFICATION &&
		   f[M_OUTPUTS]->valuedouble == 1) {
		api_err_field(e, "outputs", "a classifier needs at least 2 outputs (classes)");
		c.errors++;
	} else if (get_int32(f[M_OUTPUTS], "", "outputs", 1, lim->max_units, &out->outputs, e)) {
		c.errors++;
	}
	int init = NN_INIT_AUTO;
	if (f[M_INIT] && (init = get_enum(f[M_INIT], "", "init", INIT_NAMES, COUNT(INIT_NAMES), e)) < 0)
		c.errors++;
	out->init = init < 0 ? NN_INIT_AUTO : (nn_init)init;
	int64_t seed = 0;
	if (f[M_SEED] && get_int(f[M_SEED], "", "seed", 0, (int64_t)MAX_SEED, &seed, e))
		c.errors++;
	out->seed = (uint64_t)seed;
	int width = out->inputs > 0 ? out->inputs : -1;
	if (f[M_LAYERS]) {
		if (!cJSON_IsArray(f[M_LAYERS])) {
			api_err_field(e, "layers", "must be an array of layers");
			c.errors++;
		} else {
			parse_layer_list(&c, f[M_LAYERS], "layers", 0, width, &width, &out->layers, &out->n_layers);
		}
	}
	if (c.errors == 0 && width > 0 && out->outputs > 0) {
		add_params(&c, (int64_t)width * out->outputs + out->outputs);
		if (lim->max_params > 0 && c.params > lim->max_params) {
			api_err_field(e, "layers", "the model would have %lld parameters; at most %lld are allowed",
				      (long long)c.params, (long long)lim->max_params);
			c.errors++;
		}
	}
	if (c.errors == 0) {
		/* The engine's own check, as a safety net: it must agree. */
		char msg[256];
		if (nn_spec_check(out, lim->max_params, NULL, msg, sizeof msg) != NN_OK) {
			engine_error(e, msg, "layers");
			c.errors++;
		}
	}
	if (c.errors || e->status) {
		if (e->status == 0)
			api_err_set(e, 422, "validation_failed", "the model spec is invalid");
		nn_layers_free(out->layers, out->n_layers);
		out->layers = NULL;
		out->n_layers = 0;
		return -1;
	}
	if (name && f[M_NAME]) {
		*name = strdup(f[M_NAME]->valuestring);
		if (!*name) {
			nn_layers_free(out->layers, out->n_layers);
			out->layers = NULL;
			out->n_layers = 0;
			return api_err_set(e, 413, "payload_too_large", "no memory");
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- output helpers */

static int add_num(cJSON *o, const char *k, float f)
{
	return cJSON_AddNumberToObject(o, k, api_float_json(f)) != NULL;
}

/* Appends item (made by the caller) to array a and returns a; when item is
 * NULL or cannot be added, frees both and returns NULL. */
static cJSON *push(cJSON *a, cJSON *item)
{
	if (item && cJSON_AddItemToArray(a, item))
		return a;
	cJSON_Delete(item);
	cJSON_Delete(a);
	return NULL;
}

static cJSON *layers_to_json(const nn_layer_spec *ls, int n);

static cJSON *layer_to_json(const nn_layer_spec *l)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	const char *t = name_of(LAYER_NAMES, COUNT(LAYER_NAMES), (int)l->type);
	int ok = t && cJSON_AddStringToObject(o, "type", t);
	int has_alpha = l->act == NN_ACT_LEAKY_RELU || l->act == NN_ACT_ELU;
	float alpha = l->alpha > 0 ? l->alpha : l->act == NN_ACT_LEAKY_RELU ? 0.01f : 1.0f;
	switch (l->type) {
	case NN_LAYER_DENSE:
		ok = ok && cJSON_AddNumberToObject(o, "units", l->units) &&
		     api_act_name(l->act) && cJSON_AddStringToObject(o, "activation", api_act_name(l->act));
		if (ok && has_alpha)
			ok = add_num(o, "alpha", alpha);
		ok = ok && api_init_name(l->init) && cJSON_AddStringToObject(o, "init", api_init_name(l->init));
		if (ok && l->init == NN_INIT_NORMAL)
			ok = add_num(o, "std", l->init_param > 0 ? l->init_param : 0.01f);
		if (ok && l->init == NN_INIT_UNIFORM)
			ok = add_num(o, "limit", l->init_param > 0 ? l->init_param : 0.05f);
		ok = ok && cJSON_AddBoolToObject(o, "bias", l->bias != 0);
		break;
	case NN_LAYER_ACTIVATION:
		ok = ok && api_act_name(l->act) && cJSON_AddStringToObject(o, "function", api_act_name(l->act));
		if (ok && has_alpha)
			ok = add_num(o, "alpha", alpha);
		break;
	case NN_LAYER_BATCH_NORM:
		ok = ok && add_num(o, "momentum", l->momentum) && add_num(o, "eps", l->eps);
		break;
	case NN_LAYER_DROPOUT:
		ok = ok && add_num(o, "rate", l->rate) &&
		     cJSON_AddStringToObject(o, "mode", l->mode == NN_DROPOUT_SCALE_AT_TEST ? "scale_at_test" : "inverted");
		break;
	case NN_LAYER_RESIDUAL: {
		cJSON *c = ok ? layers_to_json(l->children, l->n_children) : NULL;
		ok = c && cJSON_AddItemToObject(o, "layers", c);
		if (c && !ok)
			cJSON_Delete(c);
		ok = ok && cJSON_AddBoolToObject(o, "projection", l->projection != 0);
		break;
	}
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *layers_to_json(const nn_layer_spec *ls, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a && i < n; i++)
		a = push(a, layer_to_json(&ls[i]));
	return a;
}

/*
 * s is the spec as the model stores it (nn_model_spec_of: the output layer
 * is the last entry of layers); every entry is written out as it is.
 */
cJSON *api_model_spec_to_json(const nn_model_spec *s)
{
	if (!s)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON *ls = layers_to_json(s->layers, s->n_layers);
	int ok = ls && cJSON_AddStringToObject(o, "task", TASK_NAMES[s->task == NN_TASK_REGRESSION]) &&
		 cJSON_AddNumberToObject(o, "inputs", s->inputs) &&
		 cJSON_AddNumberToObject(o, "outputs", s->outputs) &&
		 api_init_name(s->init) && cJSON_AddStringToObject(o, "init", api_init_name(s->init)) &&
		 cJSON_AddNumberToObject(o, "seed", (double)s->seed);
	if (ok && cJSON_AddItemToObject(o, "layers", ls))
		return o;
	if (!ok)
		cJSON_Delete(ls);
	cJSON_Delete(o);
	return NULL;
}

/* ---------------------------------------------------------------- job config */

void api_job_refs_free(api_job_refs *r)
{
	if (!r)
		return;
	free(r->model);
	free(r->dataset);
	free(r->val_dataset);
	free(r->test_dataset);
	memset(r, 0, sizeof *r);
}

/* An id of the given prefix ("mdl_", "ds_") and 16 lowercase hex digits. */
static int get_id(const cJSON *v, const char *path, const char *key, const char *prefix,
		  const char *what, char **out, api_err *e)
{
	char p[160];
	join(p, sizeof p, path, key);
	size_t pl = strlen(prefix);
	int ok = cJSON_IsString(v) && strlen(v->valuestring) == pl + 16 &&
		 strncmp(v->valuestring, prefix, pl) == 0;
	for (size_t i = pl; ok && i < pl + 16; i++) {
		char ch = v->valuestring[i];
		ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
	}
	if (!ok)
		return api_err_field(e, p, "must be a %s id (%s followed by 16 lowercase hex digits)", what, prefix);
	*out = strdup(v->valuestring);
	if (!*out)
		return api_err_set(e, 413, "payload_too_large", "no memory");
	return 0;
}

enum { J_MODEL, J_DATASET, J_VALIDATION, J_EPOCHS, J_BATCH, J_SHUFFLE, J_SEED, J_OPT, J_SCHED,
       J_L2, J_STD, J_BNSTATS, J_EARLY, J_AVG, J_AUG, J_SPARSITY, J_CLIP, J_LOG, J_CKPT,
       J_SPARSE_K, J_TEST, J_ROWS, J_REPLICAS, J_SHARDS, J_N };
static const char *const JOB_KEYS[J_N] = {
	"model", "dataset", "validation", "epochs", "batch_size", "shuffle", "seed", "optimizer",
	"schedule", "l2", "standardize", "batch_norm_stats", "early_stopping", "averaging",
	"augment", "sparsity", "clip_grad_norm", "log_every_steps", "checkpoint_every_epochs",
	"sparse_kernels", "test", "rows", "replicas", "shards"
};

enum { O_TYPE, O_LR, O_MOMENTUM, O_BETA1, O_BETA2, O_EPS, O_RHO, O_WD, O_N };
static const char *const OPT_KEYS[O_N] = {
	"type", "lr", "momentum", "beta1", "beta2", "eps", "rho", "weight_decay"
};
static const unsigned OPT_ALLOWED[] = {
	[NN_OPT_SGD] = 1u << O_TYPE | 1u << O_LR,
	[NN_OPT_MOMENTUM] = 1u << O_TYPE | 1u << O_LR | 1u << O_MOMENTUM,
	[NN_OPT_NESTEROV] = 1u << O_TYPE | 1u << O_LR | 1u << O_MOMENTUM,
	[NN_OPT_ADAGRAD] = 1u << O_TYPE | 1u << O_LR | 1u << O_EPS,
	[NN_OPT_RMSPROP] = 1u << O_TYPE | 1u << O_LR | 1u << O_RHO | 1u << O_EPS,
	[NN_OPT_ADAM] = 1u << O_TYPE | 1u << O_LR | 1u << O_BETA1 | 1u << O_BETA2 | 1u << O_EPS,
	[NN_OPT_ADAMW] = 1u << O_TYPE | 1u << O_LR | 1u << O_BETA1 | 1u << O_BETA2 | 1u << O_EPS | 1u << O_WD,
};

/* Drops (and reports) the fields of f that the variant does not take. */
static int only_allowed(const cJSON **f, int n, const char *const *keys, unsigned allowed,
			const char *path, const char *what, api_err *e)
{
	int bad = 0;
	for (int i = 0; i < n; i++)
		if (f[i] && !(allowed & (1u << i))) {
			char p[160];
			join(p, sizeof p, path, keys[i]);
			api_err_field(e, p, "unknown field for %s", what);
			f[i] = NULL;
			bad++;
		}
	return bad;
}

/* An object whose "type" says which of its keys it takes (the optimizer,
 * the schedule, the averaging); keys[0] is "type". */
typedef struct variant {
	const char *path;
	const char *not_object;          /* the message when it is not an object */
	const char *const *keys;
	int n_keys;
	const char *const *types;
	int n_types;
	const unsigned *allowed;         /* per type: bit i = keys[i] */
	const char *what_pre, *what_post; /* around the type: "the adam optimizer" */
} variant;

/* Picks the fields of o into f[v->n_keys] and reads its type. Returns the
 * type, with the fields it does not take dropped and reported, and the errors
 * counted in *bad; -1 after reporting when o has no valid type. */
static int pick_variant(const cJSON *o, const variant *v, const cJSON **f, int *bad, api_err *e)
{
	if (!cJSON_IsObject(o))
		return api_err_field(e, v->path, "%s", v->not_object);
	*bad = pick(o, v->path, v->keys, v->n_keys, f, e);
	if (!f[0]) {
		missing(v->path, "type", e);
		return -1;
	}
	int t = get_enum(f[0], v->path, "type", v->types, v->n_types, e);
	if (t < 0)
		return -1;
	char what[64];
	snprintf(what, sizeof what, "%s%s%s", v->what_pre, v->types[t], v->what_post);
	*bad += only_allowed(f, v->n_keys, v->keys, v->allowed[t], v->path, what, e);
	return t;
}

static const variant OPTIMIZER = {
	"optimizer", "must be an object with a \"type\"", OPT_KEYS, O_N,
	OPT_NAMES, COUNT(OPT_NAMES), OPT_ALLOWED, "the ", " optimizer"
};

static int parse_optimizer(const cJSON *o, nn_optimizer *opt, api_err *e)
{
	const cJSON *f[O_N];
	int bad = 0;
	int t = pick_variant(o, &OPTIMIZER, f, &bad, e);
	if (t < 0)
		return -1;
	*opt = nn_optimizer_default((nn_opt_type)t);
	opt->lr = (t == NN_OPT_ADAM || t == NN_OPT_ADAMW) ? 0.001f : 0.01f;
	const field_rule R[] = {
		{ O_LR, F_FLOAT, 0, 1, 1e9, 0, offsetof(nn_optimizer, lr) },
		/* nesterov needs a momentum above 0, as in PyTorch */
		{ O_MOMENTUM, F_FLOAT, 0, t == NN_OPT_NESTEROV, 1, 1, offsetof(nn_optimizer, momentum) },
		{ O_BETA1, F_FLOAT, 0, 0, 1, 1, offsetof(nn_optimizer, beta1) },
		{ O_BETA2, F_FLOAT, 0, 0, 1, 1, offsetof(nn_optimizer, beta2) },
		{ O_EPS, F_FLOAT, 0, 1, 1, 0, offsetof(nn_optimizer, eps) },
		{ O_RHO, F_FLOAT, 0, 0, 1, 1, offsetof(nn_optimizer, rho) },
		{ O_WD, F_FLOAT, 0, 0, 1e3, 0, offsetof(nn_optimizer, weight_decay) },
	};
	bad += read_fields(f, OPT_KEYS, OPTIMIZER.path, R, COUNT(R), opt, NULL, e);
	return bad ? -1 : 0;
}

enum { S_TYPE, S_PER, S_WARMUP, S_STEP_EPOCHS, S_GAMMA, S_K, S_POWER, S_MIN_LR, S_MAX_LR,
       S_HALF, S_N };
static const char *const SCHED_KEYS[S_N] = {
	"type", "per", "warmup_epochs", "step_epochs", "gamma", "k", "power", "min_lr", "max_lr",
	"half_cycle_epochs"
};
#define S_COMMON (1u << S_TYPE | 1u << S_PER | 1u << S_WARMUP)
static const unsigned SCHED_ALLOWED[] = {
	[NN_SCHED_CONSTANT] = S_COMMON,
	[NN_SCHED_STEP] = S_COMMON | 1u << S_STEP_EPOCHS | 1u << S_GAMMA,
	[NN_SCHED_EXPONENTIAL] = S_COMMON | 1u << S_K,
	[NN_SCHED_POLYNOMIAL] = S_COMMON | 1u << S_K | 1u << S_POWER,
	[NN_SCHED_CYCLICAL] = S_COMMON | 1u << S_MIN_LR | 1u << S_MAX_LR | 1u << S_HALF,
	[NN_SCHED_COSINE] = S_COMMON | 1u << S_MIN_LR,
};

static const variant SCHEDULE = {
	"schedule", "must be an object with a \"type\"", SCHED_KEYS, S_N,
	SCHED_NAMES, COUNT(SCHED_NAMES), SCHED_ALLOWED, "the ", " schedule"
};

static int parse_schedule(const cJSON *o, nn_schedule *s, api_err *e)
{
	const char *P = SCHEDULE.path;
	const cJSON *f[S_N];
	int bad = 0;
	int t = pick_variant(o, &SCHEDULE, f, &bad, e);
	if (t < 0)
		return -1;
	s->type = (nn_sched_type)t;
	if (f[S_PER]) {
		static const char *const PER[] = { "epoch", "step" };
		int p = get_enum(f[S_PER], P, "per", PER, 2, e);
		if (p < 0)
			bad++;
		else
			s->per_step = p;
	}
	static const field_rule R[] = {
		{ S_WARMUP, F_FLOAT, 0, 0, 1e300, 0, offsetof(nn_schedule, warmup_epochs) },
		{ S_STEP_EPOCHS, F_FLOAT, 0, 1, 1e300, 0, offsetof(nn_schedule, step_epochs) },
		{ S_GAMMA, F_FLOAT, 0, 1, 1e300, 0, offsetof(nn_schedule, gamma) },
		{ S_K, F_FLOAT, 0, 0, 1e300, 0, offsetof(nn_schedule, k) },
		{ S_POWER, F_FLOAT, 0, 1, 1e300, 0, offsetof(nn_schedule, power) },
		{ S_HALF, F_FLOAT, 0, 1, 1e300, 0, offsetof(nn_schedule, half_cycle_epochs) },
		{ S_MIN_LR, F_FLOAT, 0, 0, 1e300, 0, offsetof(nn_schedule, min_lr) },
		{ S_MAX_LR, F_FLOAT, 0, 1, 1e300, 0, offsetof(nn_schedule, max_lr) },
	};
	unsigned failed = 0;
	bad += read_fields(f, SCHED_KEYS, P, R, COUNT(R), s, &failed, e);
	if (t == NN_SCHED_CYCLICAL) {
		if (!f[S_MIN_LR])
			missing(P, "min_lr", e), bad++;
		if (!f[S_MAX_LR])
			missing(P, "max_lr", e), bad++;
		if (f[S_MIN_LR] && f[S_MAX_LR] && !(failed & (1u << S_MIN_LR | 1u << S_MAX_LR)) &&
		    s->max_lr <= s->min_lr)
			api_err_field(e, "schedule.max_lr", "must be greater than min_lr"), bad++;
	}
	return bad ? -1 : 0;
}

static int parse_validation(const cJSON *o, nn_train_config *cfg, api_job_refs *refs, api_err *e)
{
	static const char *const K[] = { "fraction", "dataset" };
	const char *P = "validation";
	if (!cJSON_IsObject(o))
		return api_err_field(e, P, "must be {\"fraction\": f} or {\"dataset\": id}");
	const cJSON *f[2];
	int bad = pick(o, P, K, 2, f, e);
	if (f[0] && f[1])
		return api_err_field(e, P, "give either fraction or dataset, not both");
	if (!f[0] && !f[1])
		return bad ? -1 : api_err_field(e, P, "must be {\"fraction\": f} or {\"dataset\": id}");
	static const field_rule R[] = { { 0, F_FLOAT, 0, 1, 1, 1, offsetof(nn_train_config, val_fraction) } };
	bad += read_fields(f, K, P, R, COUNT(R), cfg, NULL, e);
	if (f[1] && get_id(f[1], P, "dataset", "ds_", "data set", &refs->val_dataset, e))
		bad++;
	return bad ? -1 : 0;
}

/* "test": {"dataset": id}: the set the published model is scored on. */
static int parse_test(const cJSON *o, api_job_refs *refs, api_err *e)
{
	static const char *const K[] = { "dataset" };
	if (cJSON_IsNull(o))
		return 0;
	if (!cJSON_IsObject(o))
		return api_err_field(e, "test", "must be {\"dataset\": id}");
	const cJSON *f[1];
	int bad = pick(o, "test", K, 1, f, e);
	if (!f[0])
		return api_err_field(e, "test.dataset", "is required");
	if (get_id(f[0], "test", "dataset", "ds_", "data set", &refs->test_dataset, e))
		bad++;
	return bad ? -1 : 0;
}

/* An optional object made of n scalar fields (keys[i] read by rule i) only;
 * 0, or -1 after reporting. */
static int read_object(const cJSON *o, const char *path, const char *const *keys,
		       const field_rule *r, int n, void *dst, api_err *e)
{
	if (!cJSON_IsObject(o))
		return api_err_field(e, path, "must be an object or null");
	const cJSON *f[n];
	int bad = pick(o, path, keys, n, f, e);
	bad += read_fields(f, keys, path, r, n, dst, NULL, e);
	return bad ? -1 : 0;
}

static int parse_early(const cJSON *o, nn_train_config *cfg, api_err *e)
{
	static const char *const K[] = { "patience", "min_delta", "restore_best" };
	static const field_rule R[] = {
		{ 0, F_INT, 0, 0, 1000000, 0, offsetof(nn_train_config, early.patience) },
		{ 1, F_FLOAT, 0, 0, 1e300, 0, offsetof(nn_train_config, early.min_delta) },
		{ 2, F_BOOL, 0, 0, 0, 0, offsetof(nn_train_config, early.restore_best) },
	};
	cfg->early.enabled = cJSON_IsObject(o);
	return read_object(o, "early_stopping", K, R, COUNT(R), cfg, e);
}

static const char *const AVG_KEYS[] = { "type", "start_epoch", "decay" };
static const unsigned AVG_ALLOWED[] = { 1u, 1u | 2u, 1u | 2u | 4u };
static const variant AVERAGING = {
	"averaging", "must be an object with a \"type\" or null", AVG_KEYS, COUNT(AVG_KEYS),
	AVG_NAMES, COUNT(AVG_NAMES), AVG_ALLOWED, "", " averaging"
};

static int parse_averaging(const cJSON *o, nn_train_config *cfg, api_err *e)
{
	const cJSON *f[COUNT(AVG_KEYS)];
	int bad = 0;
	int t = pick_variant(o, &AVERAGING, f, &bad, e);
	if (t < 0)
		return -1;
	cfg->avg.type = (nn_avg_type)t;
	static const field_rule R[] = {
		{ 1, F_INT, 0, 0, INT32_MAX, 0, offsetof(nn_train_config, avg.start_epoch) },
		{ 2, F_FLOAT, 0, 1, 1, 1, offsetof(nn_train_config, avg.decay) },
	};
	bad += read_fields(f, AVG_KEYS, AVERAGING.path, R, COUNT(R), cfg, NULL, e);
	return bad ? -1 : 0;
}

enum { A_ROT, A_TRANS, A_SCALE, A_FLIPH, A_FLIPV, A_CROP, A_BRIGHT, A_CONTRAST, A_NOISE, A_N };
static const char *const AUG_KEYS[A_N] = {
	"rotate_degrees", "translate_pixels", "scale", "flip_horizontal", "flip_vertical",
	"crop_padding", "brightness", "contrast", "noise_std"
};

static int parse_augment(const cJSON *o, nn_augment *a, api_err *e)
{
	const char *P = "augment";
	if (!cJSON_IsObject(o))
		return api_err_field(e, P, "must be an object or null");
	const cJSON *f[A_N];
	int bad = pick(o, P, AUG_KEYS, A_N, f, e);
	/* in the order of AUG_KEYS, with the scale pair read in between */
	static const field_rule R[] = {
		{ A_ROT, F_FLOAT, 0, 0, 180, 0, offsetof(nn_augment, rotate_degrees) },
		{ A_TRANS, F_FLOAT, 0, 0, 1000, 0, offsetof(nn_augment, translate_pixels) },
		{ A_FLIPH, F_BOOL, 0, 0, 0, 0, offsetof(nn_augment, flip_horizontal) },
		{ A_FLIPV, F_BOOL, 0, 0, 0, 0, offsetof(nn_augment, flip_vertical) },
		{ A_CROP, F_INT, 0, 0, 1000, 0, offsetof(nn_augment, crop_padding) },
		{ A_BRIGHT, F_FLOAT, 0, 0, 1, 0, offsetof(nn_augment, brightness) },
		{ A_CONTRAST, F_FLOAT, 0, 0, 1, 0, offsetof(nn_augment, contrast) },
		{ A_NOISE, F_FLOAT, 0, 0, 1000, 0, offsetof(nn_augment, noise_std) },
	};
	bad += read_fields(f, AUG_KEYS, P, R, 2, a, NULL, e);
	if (f[A_SCALE]) {
		const cJSON *s = f[A_SCALE];
		double lo, hi;
		if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) != 2) {
			api_err_field(e, "augment.scale", "must be [min, max] with 0 < min <= max");
			bad++;
		} else if (get_num(s->child, "augment", "scale[0]", 0, 1, 100, 0, &lo, e) ||
			   get_num(s->child->next, "augment", "scale[1]", 0, 1, 100, 0, &hi, e)) {
			bad++;
		} else if (lo > hi || (float)lo <= 0 || (float)lo > (float)hi) {
			api_err_field(e, "augment.scale", "must be [min, max] with 0 < min <= max");
			bad++;
		} else {
			a->scale_min = (float)lo;
			a->scale_max = (float)hi;
		}
	}
	bad += read_fields(f, AUG_KEYS, P, R + 2, COUNT(R) - 2, a, NULL, e);
	return bad ? -1 : 0;
}

static int parse_sparsity(const cJSON *o, nn_train_config *cfg, api_err *e)
{
	static const char *const K[] = { "max_nonzero", "start_epoch", "bound" };
	static const field_rule R[] = {
		{ 0, F_INT64 | F_REQUIRED, 1, 0, MAX_SEED, 0, offsetof(nn_train_config, sparsity.max_nonzero) },
		{ 1, F_INT, 0, 0, INT32_MAX, 0, offsetof(nn_train_config, sparsity.start_epoch) },
		{ 2, F_FLOAT, 0, 1, 1e300, 0, offsetof(nn_train_config, sparsity.bound) },
	};
	cfg->sparsity.enabled = cJSON_IsObject(o);
	return read_object(o, "sparsity", K, R, COUNT(R), cfg, e);
}

/* replicas (default 1) and shards (default: replicas), each at most
 * NN_MAX_SHARDS; replicas must divide shards. The daemon's own bound on
 * replicas (its workers) is the submission's check (api_jobs_create). */
static int parse_parallel(const cJSON *rj, const cJSON *sj, nn_train_config *cfg, api_err *e)
{
	int64_t r = 1, sh = 0;
	int bad = 0;
	if (rj && get_int(rj, "", "replicas", 1, NN_MAX_SHARDS, &r, e))
		bad++;
	if (sj && get_int(sj, "", "shards", 1, NN_MAX_SHARDS, &sh, e))
		bad++;
	if (bad)
		return bad;
	cfg->replicas = (int)r;
	cfg->shards = sj ? (int)sh : (int)r;
	if (cfg->shards % cfg->replicas) {
		api_err_field(e, "replicas", "must divide shards (%d replicas, %d shards)",
		              cfg->replicas, cfg->shards);
		return 1;
	}
	return 0;
}

int api_train_config_from_json(const cJSON *j, const api_limits *lim, nn_train_config *cfg,
			       api_job_refs *refs, api_err *e)
{
	api_err scratch = API_ERR_INIT;
	if (!e)
		e = &scratch;
	api_limits dl = api_limits_default();
	if (!lim)
		lim = &dl;
	memset(refs, 0, sizeof *refs);
	*cfg = nn_train_config_default();
	cfg->opt = nn_optimizer_default(NN_OPT_SGD);
	cfg->opt.lr = 0.01f;
	cfg->sparsity.bound = 0;
	if (!cJSON_IsObject(j))
		return api_err_field(e, "body", "must be a JSON object");
	const cJSON *f[J_N];
	int bad = pick(j, "", JOB_KEYS, J_N, f, e);
	if (!f[J_MODEL])
		missing("", "model", e), bad++;
	else if (get_id(f[J_MODEL], "", "model", "mdl_", "model", &refs->model, e))
		bad++;
	if (!f[J_DATASET])
		missing("", "dataset", e), bad++;
	else if (get_id(f[J_DATASET], "", "dataset", "ds_", "data set", &refs->dataset, e))
		bad++;
	if (f[J_VALIDATION] && parse_validation(f[J_VALIDATION], cfg, refs, e))
		bad++;
	/* The scalar fields: three runs of R, read in JOB_KEYS order between the others. */
	const field_rule R[] = {
		{ J_EPOCHS, F_INT, 1, 0, lim->max_epochs, 0, offsetof(nn_train_config, epochs) },
		{ J_BATCH, F_INT, 1, 0, lim->max_batch, 0, offsetof(nn_train_config, batch_size) },
		{ J_SHUFFLE, F_BOOL, 0, 0, 0, 0, offsetof(nn_train_config, shuffle) },
		{ J_L2, F_FLOAT, 0, 0, 1e6, 0, offsetof(nn_train_config, l2) },
		{ J_STD, F_BOOL, 0, 0, 0, 0, offsetof(nn_train_config, standardize) },
		{ J_CLIP, F_FLOAT, 0, 1, 1e300, 0, offsetof(nn_train_config, clip_grad_norm) },
		{ J_LOG, F_INT, 1, 0, INT32_MAX, 0, offsetof(nn_train_config, log_every_steps) },
		{ J_CKPT, F_INT, 0, 0, lim->max_epochs, 0, offsetof(nn_train_config, checkpoint_every_epochs) },
		{ J_SPARSE_K, F_BOOL, 0, 0, 0, 0, offsetof(nn_train_config, sparse_kernels) },
	};
	bad += read_fields(f, JOB_KEYS, "", R, 3, cfg, NULL, e);           /* epochs .. shuffle */
	int64_t seed = 0;
	if (f[J_SEED] && get_int(f[J_SEED], "", "seed", 0, (int64_t)MAX_SEED, &seed, e))
		bad++;
	cfg->seed = (uint64_t)seed;
	if (f[J_OPT] && parse_optimizer(f[J_OPT], &cfg->opt, e))
		bad++;
	if (f[J_SCHED] && parse_schedule(f[J_SCHED], &cfg->sched, e))
		bad++;
	bad += read_fields(f, JOB_KEYS, "", R + 3, 2, cfg, NULL, e);       /* l2, standardize */
	if (f[J_BNSTATS]) {
		static const char *const BN[] = { "population", "running" };
		int b = get_enum(f[J_BNSTATS], "", "batch_norm_stats", BN, 2, e);
		if (b < 0)
			bad++;
		else
			cfg->bn_stats = b == 0 ? NN_BN_POPULATION : NN_BN_RUNNING;
	}
	if (f[J_EARLY]) {
		if (parse_early(f[J_EARLY], cfg, e))
			bad++;
		else if (!f[J_VALIDATION])
			api_err_field(e, "early_stopping", "needs \"validation\" (a fraction or a data set)"), bad++;
	}
	if (f[J_AVG] && parse_averaging(f[J_AVG], cfg, e))
		bad++;
	if (f[J_AUG] && parse_augment(f[J_AUG], &cfg->aug, e))
		bad++;
	if (f[J_SPARSITY] && parse_sparsity(f[J_SPARSITY], cfg, e))
		bad++;
	bad += read_fields(f, JOB_KEYS, "", R + 5, 4, cfg, NULL, e);       /* clip .. sparse_kernels */
	if (f[J_TEST] && parse_test(f[J_TEST], refs, e))
		bad++;
	int64_t rows = 0;
	if (f[J_ROWS] && !cJSON_IsNull(f[J_ROWS]) &&
	    get_int(f[J_ROWS], "", "rows", 1, INT64_C(1) << 40, &rows, e))
		bad++;
	cfg->rows = rows;
	bad += parse_parallel(f[J_REPLICAS], f[J_SHARDS], cfg, e);
	if (!bad) {
		/* The engine's own check, as a safety net: it must agree. */
		char msg[256];
		if (nn_train_config_check(cfg, msg, sizeof msg) != NN_OK) {
			engine_error(e, msg, "body");
			bad++;
		}
	}
	if (bad || e->status) {
		if (e->status == 0)
			api_err_set(e, 422, "validation_failed", "the job config is invalid");
		api_job_refs_free(refs);
		return -1;
	}
	return 0;
}

static cJSON *optimizer_to_json(const nn_optimizer *o)
{
	cJSON *j = cJSON_CreateObject();
	const char *t = api_opt_name(o->type);
	if (!j || !t || !cJSON_AddStringToObject(j, "type", t)) {
		cJSON_Delete(j);
		return NULL;
	}
	unsigned a = OPT_ALLOWED[o->type];
	float v[O_N] = { 0, o->lr, o->momentum, o->beta1, o->beta2, o->eps, o->rho, o->weight_decay };
	for (int i = O_LR; i < O_N; i++)
		if ((a & (1u << i)) && !add_num(j, OPT_KEYS[i], v[i])) {
			cJSON_Delete(j);
			return NULL;
		}
	return j;
}

static cJSON *schedule_to_json(const nn_schedule *s)
{
	cJSON *j = cJSON_CreateObject();
	const char *t = api_sched_name(s->type);
	if (!j || !t || !cJSON_AddStringToObject(j, "type", t) ||
	    !cJSON_AddStringToObject(j, "per", s->per_step ? "step" : "epoch")) {
		cJSON_Delete(j);
		return NULL;
	}
	unsigned a = SCHED_ALLOWED[s->type];
	float v[S_N] = { 0, 0, s->warmup_epochs, s->step_epochs, s->gamma, s->k, s->power,
			 s->min_lr, s->max_lr, s->half_cycle_epochs };
	for (int i = S_WARMUP; i < S_N; i++)
		if ((a & (1u << i)) && !add_num(j, SCHED_KEYS[i], v[i])) {
			cJSON_Delete(j);
			return NULL;
		}
	return j;
}

/* Attaches c (made by the caller) to o under k; 0 when c is NULL or on
 * failure, and c is then freed. */
static int add_obj(cJSON *o, const char *k, cJSON *c)
{
	if (!c)
		return 0;
	if (!cJSON_AddItemToObject(o, k, c)) {
		cJSON_Delete(c);
		return 0;
	}
	return 1;
}

cJSON *api_train_config_to_json(const nn_train_config *cfg, const api_job_refs *refs)
{
	if (!cfg || (unsigned)cfg->opt.type > NN_OPT_ADAMW || (unsigned)cfg->sched.type > NN_SCHED_COSINE ||
	    (unsigned)cfg->avg.type > NN_AVG_EMA)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	int ok = 1;
	if (refs && refs->model)
		ok = ok && cJSON_AddStringToObject(o, "model", refs->model);
	if (refs && refs->dataset)
		ok = ok && cJSON_AddStringToObject(o, "dataset", refs->dataset);
	if (ok && refs && refs->val_dataset) {
		cJSON *v = cJSON_AddObjectToObject(o, "validation");
		ok = v && cJSON_AddStringToObject(v, "dataset", refs->val_dataset);
	} else if (ok && cfg->val_fraction > 0) {
		cJSON *v = cJSON_AddObjectToObject(o, "validation");
		ok = v && add_num(v, "fraction", cfg->val_fraction);
	} else if (ok) {
		ok = cJSON_AddNullToObject(o, "validation") != NULL;
	}
	ok = ok && cJSON_AddNumberToObject(o, "epochs", cfg->epochs) &&
	     cJSON_AddNumberToObject(o, "batch_size", cfg->batch_size) &&
	     cJSON_AddBoolToObject(o, "shuffle", cfg->shuffle != 0) &&
	     cJSON_AddNumberToObject(o, "seed", (double)cfg->seed) &&
	     add_obj(o, "optimizer", optimizer_to_json(&cfg->opt)) &&
	     add_obj(o, "schedule", schedule_to_json(&cfg->sched)) &&
	     add_num(o, "l2", cfg->l2) &&
	     cJSON_AddBoolToObject(o, "standardize", cfg->standardize != 0) &&
	     cJSON_AddStringToObject(o, "batch_norm_stats", cfg->bn_stats == NN_BN_RUNNING ? "running" : "population");
	if (ok && cfg->early.enabled) {
		cJSON *x = cJSON_CreateObject();
		ok = add_obj(o, "early_stopping", x) && cJSON_AddNumberToObject(x, "patience", cfg->early.patience) &&
		     add_num(x, "min_delta", cfg->early.min_delta) &&
		     cJSON_AddBoolToObject(x, "restore_best", cfg->early.restore_best != 0);
	} else if (ok) {
		ok = cJSON_AddNullToObject(o, "early_stopping") != NULL;
	}
	if (ok && cfg->avg.type != NN_AVG_NONE) {
		cJSON *x = cJSON_CreateObject();
		ok = add_obj(o, "averaging", x) &&
		     cJSON_AddStringToObject(x, "type", AVG_NAMES[cfg->avg.type]) &&
		     cJSON_AddNumberToObject(x, "start_epoch", cfg->avg.start_epoch);
		if (ok && cfg->avg.type == NN_AVG_EMA)
			ok = add_num(x, "decay", cfg->avg.decay);
	} else if (ok) {
		ok = cJSON_AddNullToObject(o, "averaging") != NULL;
	}
	if (ok) {
		const nn_augment *a = &cfg->aug;
		cJSON *x = cJSON_CreateObject();
		ok = add_obj(o, "augment", x) && add_num(x, "rotate_degrees", a->rotate_degrees) &&
		     add_num(x, "translate_pixels", a->translate_pixels);
		if (ok && a->scale_min > 0) {
			cJSON *s = cJSON_CreateArray();
			ok = add_obj(x, "scale", s) && cJSON_AddItemToArray(s, cJSON_CreateNumber(api_float_json(a->scale_min))) &&
			     cJSON_AddItemToArray(s, cJSON_CreateNumber(api_float_json(a->scale_max))) &&
			     cJSON_GetArraySize(s) == 2;
		} else if (ok) {
			ok = cJSON_AddNullToObject(x, "scale") != NULL;
		}
		ok = ok && cJSON_AddBoolToObject(x, "flip_horizontal", a->flip_horizontal != 0) &&
		     cJSON_AddBoolToObject(x, "flip_vertical", a->flip_vertical != 0) &&
		     cJSON_AddNumberToObject(x, "crop_padding", a->crop_padding) &&
		     add_num(x, "brightness", a->brightness) && add_num(x, "contrast", a->contrast) &&
		     add_num(x, "noise_std", a->noise_std);
	}
	if (ok && cfg->sparsity.enabled) {
		cJSON *x = cJSON_CreateObject();
		ok = add_obj(o, "sparsity", x) &&
		     cJSON_AddNumberToObject(x, "max_nonzero", (double)cfg->sparsity.max_nonzero) &&
		     cJSON_AddNumberToObject(x, "start_epoch", cfg->sparsity.start_epoch) &&
		     (cfg->sparsity.bound > 0 ? add_num(x, "bound", cfg->sparsity.bound)
					      : cJSON_AddNullToObject(x, "bound") != NULL);
	} else if (ok) {
		ok = cJSON_AddNullToObject(o, "sparsity") != NULL;
	}
	ok = ok && (cfg->clip_grad_norm > 0 ? add_num(o, "clip_grad_norm", cfg->clip_grad_norm)
					    : cJSON_AddNullToObject(o, "clip_grad_norm") != NULL) &&
	     cJSON_AddNumberToObject(o, "log_every_steps", cfg->log_every_steps) &&
	     cJSON_AddNumberToObject(o, "checkpoint_every_epochs", cfg->checkpoint_every_epochs) &&
	     cJSON_AddBoolToObject(o, "sparse_kernels", cfg->sparse_kernels != 0);
	if (ok && refs && refs->test_dataset) {
		cJSON *t = cJSON_AddObjectToObject(o, "test");
		ok = t && cJSON_AddStringToObject(t, "dataset", refs->test_dataset);
	} else if (ok) {
		ok = cJSON_AddNullToObject(o, "test") != NULL;
	}
	ok = ok && (cfg->rows > 0 ? cJSON_AddNumberToObject(o, "rows", (double)cfg->rows) != NULL
	                          : cJSON_AddNullToObject(o, "rows") != NULL);
	ok = ok && cJSON_AddNumberToObject(o, "replicas", cfg->replicas) &&
	     cJSON_AddNumberToObject(o, "shards", cfg->shards);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ---------------------------------------------------------------- weights */

/* A JSON array of n floats; NULL when a value is not finite or on no memory. */
static cJSON *vec_to_json(const float *v, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a && i < n; i++)
		a = push(a, isfinite(v[i]) ? cJSON_CreateNumber((double)v[i]) : NULL);
	return a;
}

static cJSON *mat_to_json(const float *w, int rows, int cols)
{
	cJSON *a = cJSON_CreateArray();
	for (int r = 0; a && r < rows; r++)
		a = push(a, vec_to_json(w + (size_t)r * (size_t)cols, cols));
	return a;
}

typedef struct wctx {
	nn_model *m;
	int next;              /* the next tensor index */
	int count;
	int write;             /* 0: check only, 1: copy the values in */
	api_err *e;
} wctx;

/* The next tensor, which must be of the kind the spec walk expects. */
static int next_tensor(wctx *c, nn_tensor_kind kind, nn_tensor *t)
{
	if (c->next >= c->count)
		return -1;
	*t = nn_model_tensor(c->m, c->next++);
	return t->kind == kind && t->data ? 0 : -1;
}

static cJSON *wlayers_to_json(wctx *c, const nn_layer_spec *ls, int n);

static cJSON *wlayer_to_json(wctx *c, const nn_layer_spec *l)
{
	cJSON *o = cJSON_CreateObject();
	nn_tensor t;
	if (!o || !cJSON_AddStringToObject(o, "type", LAYER_NAMES[l->type]))
		goto fail;
	switch (l->type) {
	case NN_LAYER_DENSE:
		if (next_tensor(c, NN_T_WEIGHT, &t) || !add_obj(o, "weight", mat_to_json(t.data, t.rows, t.cols)))
			goto fail;
		if (l->bias && (next_tensor(c, NN_T_BIAS, &t) || !add_obj(o, "bias", vec_to_json(t.data, t.cols))))
			goto fail;
		break;
	case NN_LAYER_BATCH_NORM: {
		static const char *const K[] = { "gamma", "beta", "running_mean", "running_var" };
		static const nn_tensor_kind KK[] = { NN_T_GAMMA, NN_T_BETA, NN_T_RUNNING_MEAN, NN_T_RUNNING_VAR };
		for (int i = 0; i < 4; i++)
			if (next_tensor(c, KK[i], &t) || !add_obj(o, K[i], vec_to_json(t.data, t.cols)))
				goto fail;
		break;
	}
	case NN_LAYER_RESIDUAL:
		if (!add_obj(o, "layers", wlayers_to_json(c, l->children, l->n_children)))
			goto fail;
		if (l->projection) {
			cJSON *p = cJSON_CreateObject();
			if (!add_obj(o, "projection", p) || next_tensor(c, NN_T_WEIGHT, &t) ||
			    !add_obj(p, "weight", mat_to_json(t.data, t.rows, t.cols)))
				goto fail;
		}
		break;
	default:
		break;
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

static cJSON *wlayers_to_json(wctx *c, const nn_layer_spec *ls, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a && i < n; i++)
		a = push(a, wlayer_to_json(c, &ls[i]));
	return a;
}

cJSON *api_weights_to_json(const nn_model *m)
{
	if (!m)
		return NULL;
	const nn_model_spec *s = nn_model_spec_of(m);
	wctx c = { (nn_model *)m, 0, nn_model_tensor_count(m), 0, NULL };
	cJSON *o = cJSON_CreateObject();
	if (!o || !add_obj(o, "layers", wlayers_to_json(&c, s->layers, s->n_layers)) || c.next != c.count)
		goto fail;
	const float *mean = nn_model_std_mean(m), *std = nn_model_std_std(m);
	if (mean && std) {
		cJSON *st = cJSON_CreateObject();
		if (!add_obj(o, "standardize", st) || !add_obj(st, "mean", vec_to_json(mean, s->inputs)) ||
		    !add_obj(st, "std", vec_to_json(std, s->inputs)))
			goto fail;
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

/* Reads n floats of JSON array a at path into dst (when writing). */
static int read_vec(wctx *c, const cJSON *a, const char *path, float *dst, int n, int positive,
		    int nonneg)
{
	if (!cJSON_IsArray(a))
		return api_err_field(c->e, path, "must be an array of %d numbers", n);
	int got = cJSON_GetArraySize(a);
	if (got != n)
		return api_err_field(c->e, path, "expected %d values, got %d", n, got);
	int i = 0;
	for (const cJSON *v = a->child; v; v = v->next, i++) {
		double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
		float fx = isfinite(x) && fabs(x) <= FLT_MAX ? (float)x : 0;
		if (!isfinite(x) || fabs(x) > FLT_MAX || (positive && !(fx > 0)) || (nonneg && x < 0)) {
			char p[160];
			joini(p, sizeof p, path, i);
			return api_err_field(c->e, p, !cJSON_IsNumber(v) ? "must be a number"
						      : !isfinite(x) || fabs(x) > FLT_MAX ? "must be a finite number within float range"
						      : positive ? "must be greater than 0" : "must be at least 0");
		}
		if (c->write)
			dst[i] = fx;
	}
	return 0;
}

static int read_mat(wctx *c, const cJSON *a, const char *path, const nn_tensor *t)
{
	if (!cJSON_IsArray(a))
		return api_err_field(c->e, path, "must be an array of %d rows of %d values", t->rows, t->cols);
	int got = cJSON_GetArraySize(a);
	if (got != t->rows)
		return api_err_field(c->e, path, "expected %d rows, got %d", t->rows, got);
	int r = 0;
	char p[160];
	for (const cJSON *row = a->child; row; row = row->next, r++) {
		joini(p, sizeof p, path, r);
		if (read_vec(c, row, p, t->data + (size_t)r * (size_t)t->cols, t->cols, 0, 0))
			return -1;
	}
	return 0;
}

/* Reads field v (at path p) into the model's next tensor, which must be of the
 * given kind: rows of numbers for a weight matrix, else one row (nonneg: no
 * value below 0). -1 after reporting when v is absent or does not fit. */
static int read_tensor(wctx *c, const cJSON *v, const char *p, nn_tensor_kind kind, int nonneg)
{
	nn_tensor t;
	if (next_tensor(c, kind, &t))
		return -1;
	if (!v)
		return api_err_field(c->e, p, "is required");
	if (kind == NN_T_WEIGHT)
		return read_mat(c, v, p, &t);
	return read_vec(c, v, p, t.data, t.cols, 0, nonneg);
}

static int wlayers_from_json(wctx *c, const cJSON *a, const char *path, const nn_layer_spec *ls, int n);

static int wlayer_from_json(wctx *c, const cJSON *o, const char *path, const nn_layer_spec *l)
{
	static const char *const K[] = { "type", "weight", "bias", "gamma", "beta", "running_mean",
					 "running_var", "layers", "projection" };
	static const unsigned allowed[] = {
		[NN_LAYER_DENSE] = 1u | 2u | 4u,
		[NN_LAYER_ACTIVATION] = 1u,
		[NN_LAYER_BATCH_NORM] = 1u | 8u | 16u | 32u | 64u,
		[NN_LAYER_DROPOUT] = 1u,
		[NN_LAYER_RESIDUAL] = 1u | 128u | 256u,
	};
	char p[160];
	if (!cJSON_IsObject(o))
		return api_err_field(c->e, path, "must be an object for the %s layer", LAYER_NAMES[l->type]);
	const cJSON *f[9];
	for (int i = 0; i < 9; i++)
		f[i] = NULL;
	for (const cJSON *it = o->child; it; it = it->next) {
		const char *k = it->string ? it->string : "";
		int i = find_name(K, 9, k);
		join(p, sizeof p, path, k);
		if (i < 0 || !(allowed[l->type] & (1u << i)))
			return api_err_field(c->e, p, "unknown field for a %s layer", LAYER_NAMES[l->type]);
		if (f[i])
			return api_err_field(c->e, p, "duplicate field");
		f[i] = it;
	}
	join(p, sizeof p, path, "type");
	if (!f[0])
		return api_err_field(c->e, p, "is required (\"%s\")", LAYER_NAMES[l->type]);
	if (!cJSON_IsString(f[0]) || strcmp(f[0]->valuestring, LAYER_NAMES[l->type]) != 0)
		return api_err_field(c->e, p, "must be \"%s\" like the model's layer", LAYER_NAMES[l->type]);
	nn_tensor t;
	switch (l->type) {
	case NN_LAYER_DENSE:
		join(p, sizeof p, path, "weight");
		if (read_tensor(c, f[1], p, NN_T_WEIGHT, 0))
			return -1;
		join(p, sizeof p, path, "bias");
		if (!l->bias)
			return f[2] ? api_err_field(c->e, p, "the layer has no bias") : 0;
		return read_tensor(c, f[2], p, NN_T_BIAS, 0);
	case NN_LAYER_BATCH_NORM: {
		static const nn_tensor_kind KK[] = { NN_T_GAMMA, NN_T_BETA, NN_T_RUNNING_MEAN, NN_T_RUNNING_VAR };
		for (int i = 0; i < 4; i++) {
			join(p, sizeof p, path, K[3 + i]);
			if (read_tensor(c, f[3 + i], p, KK[i], i == 3))
				return -1;
		}
		break;
	}
	case NN_LAYER_RESIDUAL:
		join(p, sizeof p, path, "layers");
		if (!f[7])
			return api_err_field(c->e, p, "is required");
		if (wlayers_from_json(c, f[7], p, l->children, l->n_children))
			return -1;
		join(p, sizeof p, path, "projection");
		if (!l->projection) {
			if (f[8])
				return api_err_field(c->e, p, "the block has no projection");
			break;
		}
		if (next_tensor(c, NN_T_WEIGHT, &t))
			return -1;
		if (!f[8])
			return api_err_field(c->e, p, "is required ({\"weight\": [[...]]})");
		if (!cJSON_IsObject(f[8]) || !f[8]->child || f[8]->child->next ||
		    !f[8]->child->string || strcmp(f[8]->child->string, "weight") != 0)
			return api_err_field(c->e, p, "must be {\"weight\": [[...]]}");
		join(p, sizeof p, path, "projection.weight");
		return read_mat(c, f[8]->child, p, &t);
	default:
		break;
	}
	return 0;
}

static int wlayers_from_json(wctx *c, const cJSON *a, const char *path, const nn_layer_spec *ls, int n)
{
	if (!cJSON_IsArray(a))
		return api_err_field(c->e, path, "must be an array of %d layers", n);
	int got = cJSON_GetArraySize(a);
	if (got != n)
		return api_err_field(c->e, path, "expected %d layers (the output layer last), got %d", n, got);
	int i = 0;
	char p[160];
	for (const cJSON *it = a->child; it; it = it->next, i++) {
		joini(p, sizeof p, path, i);
		if (wlayer_from_json(c, it, p, &ls[i]))
			return -1;
	}
	return 0;
}

/* Picks the two keys an object of the weights document may hold, each at
 * most once, into v[0] and v[1] (NULL when absent); -1 after reporting the
 * first other or repeated key (cut at 100 bytes at the root). */
static int pick_two(wctx *c, const cJSON *o, const char *path, const char *k0, const char *k1,
		    const cJSON **v)
{
	v[0] = v[1] = NULL;
	for (const cJSON *it = o->child; it; it = it->next) {
		const char *k = it->string ? it->string : "";
		int i = strcmp(k, k0) == 0 ? 0 : strcmp(k, k1) == 0 ? 1 : -1;
		if (i >= 0 && !v[i]) {
			v[i] = it;
			continue;
		}
		char p[160];
		if (path[0])
			join(p, sizeof p, path, k);
		else
			snprintf(p, sizeof p, "%.100s", k);
		return api_err_field(c->e, p, "unknown field");
	}
	return 0;
}

static int weights_pass(wctx *c, const cJSON *j, const nn_model_spec *s, float *mean, float *std)
{
	c->next = 0;
	const cJSON *top[2];
	if (pick_two(c, j, "", "layers", "standardize", top))
		return -1;
	const cJSON *layers = top[0], *st = top[1];
	if (!layers)
		return api_err_field(c->e, "layers", "is required");
	if (wlayers_from_json(c, layers, "layers", s->layers, s->n_layers))
		return -1;
	if (c->next != c->count)
		return -1;
	if (st && !cJSON_IsNull(st)) {
		const cJSON *ms[2];
		if (!cJSON_IsObject(st))
			return api_err_field(c->e, "standardize", "must be {\"mean\": [...], \"std\": [...]} or null");
		if (pick_two(c, st, "standardize", "mean", "std", ms))
			return -1;
		const cJSON *sm = ms[0], *ss = ms[1];
		if (!sm)
			return api_err_field(c->e, "standardize.mean", "is required");
		if (!ss)
			return api_err_field(c->e, "standardize.std", "is required");
		if (read_vec(c, sm, "standardize.mean", mean, s->inputs, 0, 0) ||
		    read_vec(c, ss, "standardize.std", std, s->inputs, 1, 0))
			return -1;
	}
	return 0;
}

int api_weights_from_json(const cJSON *j, nn_model *m, api_err *e)
{
	api_err scratch = API_ERR_INIT;
	if (!e)
		e = &scratch;
	if (!m)
		return api_err_set(e, 500, "internal_error", "no model");
	if (!cJSON_IsObject(j))
		return api_err_field(e, "body", "must be a JSON object with \"layers\"");
	const nn_model_spec *s = nn_model_spec_of(m);
	wctx c = { m, 0, nn_model_tensor_count(m), 0, e };
	int has_std = 0;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "standardize");
	has_std = st && !cJSON_IsNull(st);
	/* Pass 1 checks everything and writes nothing. */
	int before = e->n_fields;
	if (weights_pass(&c, j, s, NULL, NULL) != 0) {
		if (e->n_fields == before && e->status == 0)
			return api_err_set(e, 500, "internal_error", "the model's tensors do not follow its spec");
		if (e->status == 0)
			api_err_set(e, 422, "validation_failed", "the weights do not match the model");
		return -1;
	}
	float *mean = NULL, *std = NULL;
	if (has_std) {
		mean = malloc((size_t)s->inputs * sizeof *mean);
		std = malloc((size_t)s->inputs * sizeof *std);
		if (!mean || !std) {
			free(mean);
			free(std);
			return api_err_set(e, 413, "payload_too_large", "no memory");
		}
	}
	/* Pass 2 writes; it cannot fail where pass 1 succeeded. */
	c.write = 1;
	weights_pass(&c, j, s, mean, std);
	nn_status r = nn_model_set_standardize(m, mean, std);
	free(mean);
	free(std);
	if (r != NN_OK)
		return api_err_set(e, 500, "internal_error", "could not set the standardization");
	return 0;
}
