/*
 * onnx_import.c - an ONNX file into a new model (see onnx.h).
 *
 * Three phases, each its own group of functions:
 *  1. read: the protobuf messages into plain structs (ModelProto, its
 *     GraphProto's nodes, initializers, inputs and outputs); anything that
 *     is not well-formed protobuf or is inconsistent is a 400 malformed_onnx.
 *  2. walk: from the graph's input along the chain of operators to its
 *     output, each operator (or group: gelu's Erf formula, MatMul + Add)
 *     becoming an nnd layer. A tensor consumed by two nodes starts a residual
 *     block: the merge is an Add whose other input is the block's input, or
 *     a bias-free Gemm/MatMul of it (the projection). An activation fuses
 *     into the dense layer before it when both nodes share a name scope (the
 *     text before the last '/', as nnd and torch.onnx.export name nodes):
 *     "layers.0/Gemm" + "layers.0/Relu" is one dense layer, torch's
 *     "/0/Gemm" + "/1/Relu" a dense and an activation layer, as in the
 *     nn.Sequential. Anything else is a 422 naming the node and operator.
 *  3. build: the spec from the layers, the model, its tensors filled from
 *     the graph's (pre-order, as nn_model_tensor lists them).
 *
 * Import accepts: Gemm (transA 0) and MatMul (+ Add) with constant weights;
 * Relu, LeakyRelu, Elu, Sigmoid, Tanh, Softplus, Gelu (exact) and gelu's
 * Erf formula; BatchNormalization (inference); Add (residual); Sub and Div
 * by constants at the input (standardization); Mul by a constant scalar in
 * (0, 1] (scale_at_test dropout); Flatten (axis 1), Dropout (inference),
 * Identity; a final Softmax. Constants come from initializers or Constant
 * nodes.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.h"
#include "onnx_pb.h"

#define OX_MAX_RANK 8
#define OX_MAX_NODES 100000
#define OX_MAX_ELEMS ((int64_t)1 << 30)

enum { DT_FLOAT = 1, DT_INT32 = 6, DT_INT64 = 7, DT_DOUBLE = 11 };
enum { AT_FLOAT = 1, AT_INT = 2, AT_TENSOR = 4 };

/* ---------------------------------------------------------------- structs */

typedef struct ox_tensor {
	char *name;
	int dtype;
	int rank;
	int64_t dims[OX_MAX_RANK];
	int64_t n;             /* elements (1 for rank 0) */
	float *f;              /* n values, or NULL for a type nnd cannot read */
} ox_tensor;

typedef struct ox_attr {
	char *name;
	int has_f, has_i;
	float f;
	int64_t i;
	ox_tensor *t;          /* owned, or NULL */
} ox_attr;

typedef struct ox_node {
	char *name, *op, *domain;
	int *in, n_in;         /* value ids; -1 for an empty (omitted) input */
	int *out, n_out;
	ox_attr *attrs;
	int n_attrs;
	int done;
	int reserved_for;      /* a residual merge of this skip value, or -1 */
} ox_node;

typedef struct ox_io {
	char *name;
	int elem;
	int rank;              /* -1 when the shape is not given */
	int64_t dims[OX_MAX_RANK];  /* -1 for a symbolic dimension */
} ox_io;

typedef struct ox_val {
	char *name;
	int producer;          /* node index, or -1 */
	const ox_tensor *k;    /* a constant (initializer or Constant node), or NULL */
	int *cons, n_cons, cap_cons;
} ox_val;

typedef struct ox_graph {
	int64_t ir, opset;
	ox_node *nodes;
	int n_nodes, cap_nodes;
	ox_tensor *inits;
	int n_inits, cap_inits;
	ox_io *ins, *outs;
	int n_ins, cap_ins, n_outs, cap_outs;
	ox_val *vals;
	int n_vals, cap_vals;
	int *hash;             /* open addressing over vals, -1 = empty */
	int hcap;
} ox_graph;

/* ---------------------------------------------------------------- errors */

static int malformed(api_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int malformed(api_err *e, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return api_err_set(e, 400, "malformed_onnx", "not a valid ONNX model: %s", msg);
}

static int nomem(api_err *e)
{
	return api_err_set(e, 500, "out_of_memory", "out of memory reading the ONNX file");
}

/* A 422 naming node k (by index, name and operator). */
static int unsupported(const ox_graph *g, int k, api_err *e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int unsupported(const ox_graph *g, int k, api_err *e, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const ox_node *n = &g->nodes[k];
	char field[40];
	snprintf(field, sizeof field, "graph.node[%d]", k);
	api_err_set(e, 422, "unsupported_onnx", "node \"%.120s\" (%.60s): %s", n->name, n->op, msg);
	api_err_field(e, field, "%.60s \"%.80s\": %s", n->op, n->name, msg);
	e->status = 422;
	snprintf(e->code, sizeof e->code, "unsupported_onnx");
	return -1;
}

/* A 422 about the graph as a whole. */
static int unsupported_graph(api_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int unsupported_graph(api_err *e, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	api_err_set(e, 422, "unsupported_onnx", "%s", msg);
	api_err_field(e, "graph", "%s", msg);
	e->status = 422;
	snprintf(e->code, sizeof e->code, "unsupported_onnx");
	return -1;
}

/* ---------------------------------------------------------------- 1. read */

static char *dup_bytes(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
		/* an embedded NUL would make two names equal: keep them apart */
		for (size_t i = 0; i < n; i++)
			if (!s[i])
				s[i] = '?';
	}
	return s;
}

/* Grows *arr (elements of size sz) to hold n + 1. */
static int grow(void **arr, int *cap, int n, size_t sz)
{
	if (n < *cap)
		return 0;
	int nc = *cap ? *cap * 2 : 8;
	void *p = realloc(*arr, (size_t)nc * sz);
	if (!p)
		return -1;
	*arr = p;
	*cap = nc;
	return 0;
}

static void tensor_release(ox_tensor *t)
{
	if (t) {
		free(t->name);
		free(t->f);
	}
}

static float le_float(const uint8_t *d)
{
	uint32_t u = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static uint64_t le64(const uint8_t *d)
{
	uint64_t u = 0;
	for (int i = 7; i >= 0; i--)
		u = (u << 8) | d[i];
	return u;
}

/* The values of a repeated numeric field, packed or not: counts them
 * (out NULL) or converts them into out. wt5: fixed32 floats; wt1: fixed64
 * doubles; else varints (int32 or int64). */
typedef struct rep {
	int present;
	int kind;              /* 0 varint, 5 fixed32 float, 1 fixed64 double */
	int64_t count;
} rep;

/* Converts the data of a tensor message into t->f (pass 2 of read_tensor). */
static void fill_values(const uint8_t *msg, size_t len, int field, int kind, float *out)
{
	pb_rd r = pb_reader(msg, len);
	pb_field f;
	int64_t k = 0;
	while (pb_next(&r, &f) == 1) {
		if (f.num != field)
			continue;
		if (f.wt == 2) {
			pb_rd q = pb_reader(f.data, f.len);
			if (kind == 5) {
				for (size_t i = 0; i + 4 <= f.len; i += 4)
					out[k++] = le_float(f.data + i);
			} else if (kind == 1) {
				for (size_t i = 0; i + 8 <= f.len; i += 8) {
					uint64_t u = le64(f.data + i);
					double d;
					memcpy(&d, &u, 8);
					out[k++] = (float)d;
				}
			} else {
				uint64_t v;
				while (pb_read_varint(&q, &v) == 1)
					out[k++] = (float)(int64_t)v;
			}
		} else if (kind == 5) {
			uint32_t u = (uint32_t)f.v;
			float x;
			memcpy(&x, &u, 4);
			out[k++] = x;
		} else if (kind == 1) {
			double d;
			memcpy(&d, &f.v, 8);
			out[k++] = (float)d;
		} else {
			out[k++] = (float)(int64_t)f.v;
		}
	}
}

/* Counts one occurrence of a repeated numeric field into rp; -1 malformed. */
static int count_values(const pb_field *f, int kind, rep *rp)
{
	rp->present = 1;
	rp->kind = kind;
	if (f->wt == 2) {
		if (kind == 5) {
			if (f->len % 4)
				return -1;
			rp->count += (int64_t)(f->len / 4);
		} else if (kind == 1) {
			if (f->len % 8)
				return -1;
			rp->count += (int64_t)(f->len / 8);
		} else {
			pb_rd q = pb_reader(f->data, f->len);
			uint64_t v;
			int rc;
			while ((rc = pb_read_varint(&q, &v)) == 1)
				rp->count++;
			if (rc < 0)
				return -1;
		}
		return 0;
	}
	int want = kind == 5 ? 5 : kind == 1 ? 1 : 0;
	if (f->wt != want)
		return -1;
	rp->count++;
	return 0;
}

/* Where a TensorProto keeps its values: counts of each repeated field, or
 * raw_data. */
typedef struct tensor_src {
	rep fl, i32, i64, dbl;
	const uint8_t *raw;
	size_t raw_len;
	int has_raw, external;
} tensor_src;

/* A TensorProto's fields: dims, type, name into t; where the data is into src. */
static int tensor_fields(const uint8_t *msg, size_t len, ox_tensor *t, tensor_src *src, api_err *e)
{
	pb_rd r = pb_reader(msg, len);
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) == 1) {
		switch (f.num) {
		case 1:
			if (f.wt == 0) {
				if (t->rank >= OX_MAX_RANK)
					return malformed(e, "a tensor of more than %d dimensions", OX_MAX_RANK);
				t->dims[t->rank++] = (int64_t)f.v;
			} else if (f.wt == 2) {
				pb_rd q = pb_reader(f.data, f.len);
				uint64_t v;
				int r2;
				while ((r2 = pb_read_varint(&q, &v)) == 1) {
					if (t->rank >= OX_MAX_RANK)
						return malformed(e, "a tensor of more than %d dimensions",
						                 OX_MAX_RANK);
					t->dims[t->rank++] = (int64_t)v;
				}
				if (r2 < 0)
					return malformed(e, "a tensor's dims");
			} else {
				return malformed(e, "a tensor's dims");
			}
			break;
		case 2:
			if (f.wt != 0)
				return malformed(e, "a tensor's data_type");
			t->dtype = (int)f.v;
			break;
		case 4: if (count_values(&f, 5, &src->fl) < 0) return malformed(e, "float_data"); break;
		case 5: if (count_values(&f, 0, &src->i32) < 0) return malformed(e, "int32_data"); break;
		case 7: if (count_values(&f, 0, &src->i64) < 0) return malformed(e, "int64_data"); break;
		case 10: if (count_values(&f, 1, &src->dbl) < 0) return malformed(e, "double_data"); break;
		case 8:
			if (f.wt != 2)
				return malformed(e, "a tensor's name");
			free(t->name);
			if (!(t->name = dup_bytes(f.data, f.len)))
				return nomem(e);
			break;
		case 9:
			if (f.wt != 2)
				return malformed(e, "a tensor's raw_data");
			src->raw = f.data;
			src->raw_len = f.len;
			src->has_raw = 1;
			break;
		case 13:
			src->external = 1;
			break;
		case 14:
			if (f.wt == 0 && f.v == 1)
				src->external = 1;
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return malformed(e, "a TensorProto is truncated or not protobuf");
	if (!t->name && !(t->name = dup_bytes((const uint8_t *)"", 0)))
		return nomem(e);
	return 0;
}

/* One raw little-endian value of type dtype as a float. */
static float raw_value(const uint8_t *d, int dtype)
{
	if (dtype == DT_FLOAT)
		return le_float(d);
	if (dtype == DT_INT32)
		return (float)(int32_t)((uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 |
		                        (uint32_t)d[3] << 24);
	if (dtype == DT_INT64)
		return (float)(int64_t)le64(d);
	uint64_t u = le64(d);
	double x;
	memcpy(&x, &u, 8);
	return (float)x;
}

/* A TensorProto. Its values are converted to float when the type is float,
 * double, int32 or int64; other types (and external data) leave f NULL. */
static int read_tensor(const uint8_t *msg, size_t len, ox_tensor *t, api_err *e)
{
	memset(t, 0, sizeof *t);
	tensor_src src = { { 0, 5, 0 }, { 0, 0, 0 }, { 0, 0, 0 }, { 0, 1, 0 }, NULL, 0, 0, 0 };
	if (tensor_fields(msg, len, t, &src, e) < 0)
		return -1;
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++) {
		if (t->dims[i] < 0 || t->dims[i] > OX_MAX_ELEMS)
			return malformed(e, "tensor \"%.80s\" has a dimension of %lld", t->name,
			                 (long long)t->dims[i]);
		n *= t->dims[i];
		if (n > OX_MAX_ELEMS)
			return malformed(e, "tensor \"%.80s\" is too large", t->name);
	}
	t->n = n;
	if (src.external) {
		t->dtype = -1;   /* readable by nobody here: named when used */
		return 0;
	}
	int esz = t->dtype == DT_FLOAT || t->dtype == DT_INT32 ? 4
	          : t->dtype == DT_DOUBLE || t->dtype == DT_INT64 ? 8 : 0;
	if (!esz)
		return 0;
	rep *rp = t->dtype == DT_FLOAT ? &src.fl : t->dtype == DT_INT32 ? &src.i32
	          : t->dtype == DT_INT64 ? &src.i64 : &src.dbl;
	int64_t have = src.has_raw ? (int64_t)(src.raw_len / (size_t)esz) : rp->count;
	if ((src.has_raw && src.raw_len % (size_t)esz) || have != n)
		return malformed(e, "tensor \"%.80s\" holds %lld values for %lld elements", t->name,
		                 (long long)have, (long long)n);
	if (!(t->f = malloc((size_t)(n ? n : 1) * sizeof(float))))
		return nomem(e);
	if (src.has_raw) {
		for (int64_t i = 0; i < n; i++)
			t->f[i] = raw_value(src.raw + i * esz, t->dtype);
	} else {
		int field = t->dtype == DT_FLOAT ? 4 : t->dtype == DT_INT32 ? 5
		            : t->dtype == DT_INT64 ? 7 : 10;
		fill_values(msg, len, field, rp->kind, t->f);
	}
	return 0;
}

static int read_attr(const uint8_t *msg, size_t len, ox_attr *a, api_err *e)
{
	memset(a, 0, sizeof *a);
	pb_rd r = pb_reader(msg, len);
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) == 1) {
		if (f.num == 1 && f.wt == 2) {
			free(a->name);
			if (!(a->name = dup_bytes(f.data, f.len)))
				return nomem(e);
		} else if (f.num == 2 && f.wt == 5) {
			uint32_t u = (uint32_t)f.v;
			memcpy(&a->f, &u, 4);
			a->has_f = 1;
		} else if (f.num == 3 && f.wt == 0) {
			a->i = (int64_t)f.v;
			a->has_i = 1;
		} else if (f.num == 5 && f.wt == 2) {
			if (a->t) {
				tensor_release(a->t);
				free(a->t);
			}
			if (!(a->t = calloc(1, sizeof *a->t)))
				return nomem(e);
			if (read_tensor(f.data, f.len, a->t, e) < 0)
				return -1;
		}
	}
	if (rc < 0)
		return malformed(e, "an AttributeProto is truncated or not protobuf");
	if (!a->name && !(a->name = dup_bytes((const uint8_t *)"", 0)))
		return nomem(e);
	return 0;
}

static void node_release(ox_node *n)
{
	free(n->name);
	free(n->op);
	free(n->domain);
	free(n->in);
	free(n->out);
	for (int i = 0; i < n->n_attrs; i++) {
		free(n->attrs[i].name);
		if (n->attrs[i].t) {
			tensor_release(n->attrs[i].t);
			free(n->attrs[i].t);
		}
	}
	free(n->attrs);
}

/* ---- the value table (names -> ids) */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int rehash(ox_graph *g)
{
	int cap = g->hcap ? g->hcap * 2 : 64;
	int *h = malloc((size_t)cap * sizeof *h);
	if (!h)
		return -1;
	for (int i = 0; i < cap; i++)
		h[i] = -1;
	for (int v = 0; v < g->n_vals; v++) {
		uint64_t k = hash_str(g->vals[v].name) & (uint64_t)(cap - 1);
		while (h[k] >= 0)
			k = (k + 1) & (uint64_t)(cap - 1);
		h[k] = v;
	}
	free(g->hash);
	g->hash = h;
	g->hcap = cap;
	return 0;
}

/* The id of name, made when absent (create) or -1. -2 out of memory. */
static int val_id(ox_graph *g, const char *name, int create)
{
	if (g->hcap) {
		uint64_t k = hash_str(name) & (uint64_t)(g->hcap - 1);
		while (g->hash[k] >= 0) {
			if (strcmp(g->vals[g->hash[k]].name, name) == 0)
				return g->hash[k];
			k = (k + 1) & (uint64_t)(g->hcap - 1);
		}
	}
	if (!create)
		return -1;
	if ((g->n_vals + 1) * 2 > g->hcap && rehash(g) < 0)
		return -2;
	if (grow((void **)&g->vals, &g->cap_vals, g->n_vals, sizeof *g->vals) < 0)
		return -2;
	ox_val *v = &g->vals[g->n_vals];
	memset(v, 0, sizeof *v);
	if (!(v->name = strdup(name)))
		return -2;
	v->producer = -1;
	int id = g->n_vals++;
	uint64_t k = hash_str(name) & (uint64_t)(g->hcap - 1);
	while (g->hash[k] >= 0)
		k = (k + 1) & (uint64_t)(g->hcap - 1);
	g->hash[k] = id;
	return id;
}

/* A NodeProto: names of inputs and outputs become value ids. */
static int read_node(ox_graph *g, const uint8_t *msg, size_t len, ox_node *n, api_err *e)
{
	memset(n, 0, sizeof *n);
	n->reserved_for = -1;
	int cap_in = 0, cap_out = 0, cap_at = 0;
	pb_rd r = pb_reader(msg, len);
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) == 1) {
		if (f.wt != 2)
			continue;
		char *s = NULL;
		if (f.num != 5 && !(s = dup_bytes(f.data, f.len)))
			return nomem(e);
		switch (f.num) {
		case 1:
		case 2: {
			int id = s[0] ? val_id(g, s, 1) : -1;
			free(s);
			if (id < -1)
				return nomem(e);
			int **arr = f.num == 1 ? &n->in : &n->out;
			int *cnt = f.num == 1 ? &n->n_in : &n->n_out;
			int *cap = f.num == 1 ? &cap_in : &cap_out;
			if (grow((void **)arr, cap, *cnt, sizeof **arr) < 0)
				return nomem(e);
			(*arr)[(*cnt)++] = id;
			break;
		}
		case 3: free(n->name); n->name = s; break;
		case 4: free(n->op); n->op = s; break;
		case 7: free(n->domain); n->domain = s; break;
		case 5:
			if (grow((void **)&n->attrs, &cap_at, n->n_attrs, sizeof *n->attrs) < 0)
				return nomem(e);
			if (read_attr(f.data, f.len, &n->attrs[n->n_attrs++], e) < 0)
				return -1;
			break;
		default:
			free(s);
		}
	}
	if (rc < 0)
		return malformed(e, "a NodeProto is truncated or not protobuf");
	if (!n->op || !n->op[0])
		return malformed(e, "a node without op_type");
	if ((!n->name && !(n->name = strdup(""))) || (!n->domain && !(n->domain = strdup(""))))
		return nomem(e);
	return 0;
}

/* A ValueInfoProto's name, element type and shape. */
static int read_io(const uint8_t *msg, size_t len, ox_io *io, api_err *e)
{
	memset(io, 0, sizeof *io);
	io->rank = -1;
	pb_rd r = pb_reader(msg, len);
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) == 1) {
		if (f.num == 1 && f.wt == 2) {
			free(io->name);
			if (!(io->name = dup_bytes(f.data, f.len)))
				return nomem(e);
		} else if (f.num == 2 && f.wt == 2) {
			/* TypeProto.tensor_type: elem_type, shape.dim[] */
			pb_rd tr = pb_reader(f.data, f.len);
			pb_field tf;
			while (pb_next(&tr, &tf) == 1) {
				if (tf.num != 1 || tf.wt != 2)
					continue;
				pb_rd tt = pb_reader(tf.data, tf.len);
				pb_field xf;
				while (pb_next(&tt, &xf) == 1) {
					if (xf.num == 1 && xf.wt == 0)
						io->elem = (int)xf.v;
					if (xf.num != 2 || xf.wt != 2)
						continue;
					io->rank = 0;
					pb_rd sr = pb_reader(xf.data, xf.len);
					pb_field df;
					while (pb_next(&sr, &df) == 1) {
						if (df.num != 1 || df.wt != 2 || io->rank >= OX_MAX_RANK)
							continue;
						int64_t d = -1;
						pb_rd dr = pb_reader(df.data, df.len);
						pb_field vf;
						while (pb_next(&dr, &vf) == 1)
							if (vf.num == 1 && vf.wt == 0 && (int64_t)vf.v >= 0)
								d = (int64_t)vf.v;
						io->dims[io->rank++] = d;
					}
				}
			}
		}
	}
	if (rc < 0)
		return malformed(e, "a ValueInfoProto is truncated or not protobuf");
	if (!io->name && !(io->name = strdup("")))
		return nomem(e);
	return 0;
}

static int read_graph(ox_graph *g, const uint8_t *msg, size_t len, api_err *e)
{
	pb_rd r = pb_reader(msg, len);
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) == 1) {
		if (f.wt != 2)
			continue;
		if (f.num == 1) {
			if (g->n_nodes >= OX_MAX_NODES)
				return unsupported_graph(e, "more than %d nodes", OX_MAX_NODES);
			if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof *g->nodes) < 0)
				return nomem(e);
			int k = g->n_nodes++;
			if (read_node(g, f.data, f.len, &g->nodes[k], e) < 0)
				return -1;
		} else if (f.num == 5) {
			if (grow((void **)&g->inits, &g->cap_inits, g->n_inits, sizeof *g->inits) < 0)
				return nomem(e);
			if (read_tensor(f.data, f.len, &g->inits[g->n_inits++], e) < 0)
				return -1;
		} else if (f.num == 11 || f.num == 12) {
			ox_io **arr = f.num == 11 ? &g->ins : &g->outs;
			int *cnt = f.num == 11 ? &g->n_ins : &g->n_outs;
			int *cap = f.num == 11 ? &g->cap_ins : &g->cap_outs;
			if (grow((void **)arr, cap, *cnt, sizeof **arr) < 0)
				return nomem(e);
			if (read_io(f.data, f.len, &(*arr)[(*cnt)++], e) < 0)
				return -1;
		} else if (f.num == 15) {
			return unsupported_graph(e, "sparse initializers are not supported");
		}
	}
	if (rc < 0)
		return malformed(e, "the GraphProto is truncated or not protobuf");
	return 0;
}

/* The ModelProto: IR version, the default domain's opset, the graph. */
static int read_model(ox_graph *g, const uint8_t *buf, size_t len, api_err *e)
{
	pb_rd r = pb_reader(buf, len);
	pb_field f;
	int rc, graphs = 0;
	const uint8_t *gp = NULL;
	size_t gl = 0;
	while ((rc = pb_next(&r, &f)) == 1) {
		if (f.num == 1 && f.wt == 0) {
			g->ir = (int64_t)f.v;
		} else if (f.num == 7 && f.wt == 2) {
			gp = f.data;
			gl = f.len;
			graphs++;
		} else if (f.num == 8 && f.wt == 2) {
			pb_rd q = pb_reader(f.data, f.len);
			pb_field of;
			int64_t ver = 0;
			int default_domain = 1;
			while (pb_next(&q, &of) == 1) {
				if (of.num == 1 && of.wt == 2)
					default_domain = of.len == 0 ||
					                 (of.len == 7 && memcmp(of.data, "ai.onnx", 7) == 0);
				if (of.num == 2 && of.wt == 0)
					ver = (int64_t)of.v;
			}
			if (default_domain)
				g->opset = ver;
		}
	}
	if (rc < 0)
		return malformed(e, "the file is not a protobuf message (ModelProto)");
	if (!graphs || g->ir < 1)
		return malformed(e, "no graph or no ir_version (is this an ONNX file?)");
	if (g->opset < 1)
		return malformed(e, "no opset_import for the default domain");
	return read_graph(g, gp, gl, e);
}

/* The value table's links: producers, consumers, constants. */
static int index_graph(ox_graph *g, api_err *e)
{
	for (int i = 0; i < g->n_inits; i++) {
		int id = val_id(g, g->inits[i].name, 1);
		if (id < 0)
			return nomem(e);
		g->vals[id].k = &g->inits[i];
	}
	for (int k = 0; k < g->n_nodes; k++) {
		ox_node *n = &g->nodes[k];
		for (int j = 0; j < n->n_out; j++) {
			int id = n->out[j];
			if (id < 0)
				continue;
			if (g->vals[id].producer >= 0 || g->vals[id].k)
				return malformed(e, "value \"%.80s\" is produced twice", g->vals[id].name);
			g->vals[id].producer = k;
		}
		if (strcmp(n->op, "Constant") == 0 && n->n_out == 1 && n->out[0] >= 0) {
			for (int a = 0; a < n->n_attrs; a++) {
				ox_attr *at = &n->attrs[a];
				if (strcmp(at->name, "value") == 0 && at->t) {
					g->vals[n->out[0]].k = at->t;
				} else if ((strcmp(at->name, "value_float") == 0 && at->has_f) ||
				           (strcmp(at->name, "value_int") == 0 && at->has_i)) {
					/* a scalar: kept as a rank-0 tensor in the attribute */
					if (!(at->t = calloc(1, sizeof *at->t)) ||
					    !(at->t->f = malloc(sizeof(float))) || !(at->t->name = strdup("")))
						return nomem(e);
					at->t->dtype = DT_FLOAT;
					at->t->n = 1;
					at->t->f[0] = at->has_f ? at->f : (float)at->i;
					g->vals[n->out[0]].k = at->t;
				}
			}
			n->done = 1;
		}
		/* an Identity of a constant is that constant (torch writes one for
		 * each initializer equal to another: zero means, unit variances) */
		if (strcmp(n->op, "Identity") == 0 && n->n_in == 1 && n->n_out == 1 && n->in[0] >= 0 &&
		    n->out[0] >= 0 && g->vals[n->in[0]].k) {
			g->vals[n->out[0]].k = g->vals[n->in[0]].k;
			n->done = 1;
		}
		for (int j = 0; j < n->n_in; j++) {
			int id = n->in[j];
			if (id < 0)
				continue;
			ox_val *v = &g->vals[id];
			int seen = 0;
			for (int c = 0; c < v->n_cons; c++)
				seen |= v->cons[c] == k;
			if (seen)
				continue;
			if (grow((void **)&v->cons, &v->cap_cons, v->n_cons, sizeof *v->cons) < 0)
				return nomem(e);
			v->cons[v->n_cons++] = k;
		}
	}
	return 0;
}

static void graph_release(ox_graph *g)
{
	for (int i = 0; i < g->n_nodes; i++)
		node_release(&g->nodes[i]);
	free(g->nodes);
	for (int i = 0; i < g->n_inits; i++)
		tensor_release(&g->inits[i]);
	free(g->inits);
	for (int i = 0; i < g->n_ins; i++)
		free(g->ins[i].name);
	free(g->ins);
	for (int i = 0; i < g->n_outs; i++)
		free(g->outs[i].name);
	free(g->outs);
	for (int i = 0; i < g->n_vals; i++) {
		free(g->vals[i].name);
		free(g->vals[i].cons);
	}
	free(g->vals);
	free(g->hash);
}

/* ---------------------------------------------------------------- 2. walk */

typedef struct il_list il_list;

/* A layer as read: its spec (children built at the end from kids) and its
 * tensors, owned: dense t[0] weight [units][in], t[1] bias or NULL; batch
 * norm t[0..3] gamma, beta, mean, var; residual t[0] the projection or NULL. */
typedef struct il_layer {
	nn_layer_spec s;
	float *t[4];
	int64_t tn[4];
	il_list *kids;
} il_layer;

struct il_list {
	il_layer *v;
	int n, cap;
};

static void list_free(il_list *L)
{
	if (!L)
		return;
	for (int i = 0; i < L->n; i++) {
		for (int j = 0; j < 4; j++)
			free(L->v[i].t[j]);
		list_free(L->v[i].kids);
	}
	free(L->v);
	free(L);
}

typedef struct imp {
	ox_graph *g;
	api_err *e;
	const api_limits *lim;
	int cur;               /* the value the chain has reached */
	int w;                 /* its width (-1 while unknown) */
	int rank;              /* its rank */
	int out_val;           /* the graph's output */
	int softmax;           /* the final Softmax node, or -1 */
	float *mean, *sd;      /* the standardization, w values each, or NULL */
	int in_w;              /* the input's width, once known */
} imp;

static il_layer *list_push(imp *im, il_list *L, nn_layer_type type)
{
	if (grow((void **)&L->v, &L->cap, L->n, sizeof *L->v) < 0) {
		nomem(im->e);
		return NULL;
	}
	il_layer *l = &L->v[L->n++];
	memset(l, 0, sizeof *l);
	l->s = nn_layer_default(type);
	return l;
}

static const ox_tensor *konst(const imp *im, int v)
{
	if (v < 0 || !im->g->vals[v].k || !im->g->vals[v].k->f)
		return NULL;
	return im->g->vals[v].k;
}

/* 1 when v is computed by the graph (not a constant). */
static int is_var(const imp *im, int v)
{
	return v >= 0 && !im->g->vals[v].k;
}

static const char *vname(const imp *im, int v)
{
	return v >= 0 ? im->g->vals[v].name : "";
}

static const ox_attr *attr(const ox_node *n, const char *name)
{
	for (int i = 0; i < n->n_attrs; i++)
		if (strcmp(n->attrs[i].name, name) == 0)
			return &n->attrs[i];
	return NULL;
}

static int64_t attr_i(const ox_node *n, const char *name, int64_t def)
{
	const ox_attr *a = attr(n, name);
	return a && a->has_i ? a->i : def;
}

static float attr_f(const ox_node *n, const char *name, float def)
{
	const ox_attr *a = attr(n, name);
	return a && a->has_f ? a->f : def;
}

/* The nodes still to read that consume v (a merge reserved for v as its
 * skip is not counted), at most max of them into S; returns how many. */
static int consumers(const imp *im, int v, int *S, int max)
{
	const ox_val *x = &im->g->vals[v];
	int n = 0;
	for (int c = 0; c < x->n_cons; c++) {
		const ox_node *nd = &im->g->nodes[x->cons[c]];
		if (nd->done || nd->reserved_for == v)
			continue;
		if (n < max)
			S[n] = x->cons[c];
		n++;
	}
	return n;
}

/* The node's first output, when its other outputs are unused; else -1. */
static int main_out(const imp *im, const ox_node *n)
{
	if (n->n_out < 1 || n->out[0] < 0)
		return -1;
	for (int j = 1; j < n->n_out; j++)
		if (n->out[j] >= 0 && im->g->vals[n->out[j]].n_cons)
			return -1;
	return n->out[0];
}

static int is_op(const ox_node *n, const char *op)
{
	return strcmp(n->op, op) == 0;
}

/* An Add of two computed values (a residual merge, or a graph nnd cannot read). */
static int is_merge_add(const imp *im, int k)
{
	const ox_node *n = &im->g->nodes[k];
	return is_op(n, "Add") && n->n_in == 2 && is_var(im, n->in[0]) && is_var(im, n->in[1]);
}

/* The constant of a two-input node whose other input is v; NULL if none. */
static const ox_tensor *other_const(const imp *im, const ox_node *n, int v, int *first)
{
	if (n->n_in != 2)
		return NULL;
	if (n->in[0] == v && !is_var(im, n->in[1])) {
		if (first)
			*first = 0;
		return konst(im, n->in[1]);
	}
	if (n->in[1] == v && !is_var(im, n->in[0])) {
		if (first)
			*first = 1;
		return konst(im, n->in[0]);
	}
	return NULL;
}

static int scalar_near(const ox_tensor *t, double want, double tol)
{
	return t && t->n == 1 && fabs((double)t->f[0] - want) <= tol;
}

/* Both names have a scope (text before the last '/', not empty), the same. */
static int same_scope(const char *a, const char *b)
{
	const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
	if (!sa || !sb || sa == a || sb == b || sa - a != sb - b)
		return 0;
	return strncmp(a, b, (size_t)(sa - a)) == 0;
}

static int all_finite(const float *v, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

/* A single-node activation: 1 with act and alpha set. */
static int act_of(const imp *im, int k, nn_act *act, float *alpha)
{
	const ox_node *n = &im->g->nodes[k];
	*alpha = 0;
	if (n->n_in < 1 || n->in[0] != im->cur)
		return 0;
	if (is_op(n, "Relu")) *act = NN_ACT_RELU;
	else if (is_op(n, "Sigmoid")) *act = NN_ACT_SIGMOID;
	else if (is_op(n, "Tanh")) *act = NN_ACT_TANH;
	else if (is_op(n, "Softplus")) *act = NN_ACT_SOFTPLUS;
	else if (is_op(n, "LeakyRelu")) {
		*act = NN_ACT_LEAKY_RELU;
		*alpha = attr_f(n, "alpha", 0.01f);
	} else if (is_op(n, "Elu")) {
		*act = NN_ACT_ELU;
		*alpha = attr_f(n, "alpha", 1.0f);
	} else if (is_op(n, "Gelu")) {
		const ox_attr *a = attr(n, "approximate");
		(void)a;  /* "tanh" is read as a string; nnd has only the exact form */
		*act = NN_ACT_GELU;
	} else {
		return 0;
	}
	if ((*act == NN_ACT_LEAKY_RELU || *act == NN_ACT_ELU) && *alpha == 0.0f)
		*act = NN_ACT_RELU;  /* nnd reads alpha 0 as the default */
	return 1;
}

/* The only consumer of value v still to read, or -1. */
static int sole_consumer(const imp *im, int v)
{
	int S[2];
	return v >= 0 && consumers(im, v, S, 2) == 1 ? S[0] : -1;
}

/*
 * gelu's Erf formula from cur: x * 0.5 and (x / sqrt 2 or x * (1 / sqrt 2))
 * -> Erf -> + 1 -> times the half (nnd's order), or x * (1 + erf) * 0.5
 * (torch's). S holds cur's two consumers. On a match: 1, the group's nodes
 * in grp (n_grp) and its output in *out.
 */
static int match_gelu(const imp *im, const int *S, int ns, int *grp, int *n_grp, int *out)
{
	const ox_graph *g = im->g;
	int x = im->cur, d = -1, other = -1;
	if (ns != 2)
		return 0;
	for (int i = 0; i < 2; i++) {
		const ox_node *n = &g->nodes[S[i]];
		int first = 0;
		const ox_tensor *c = other_const(im, n, x, &first);
		if (is_op(n, "Div") && first == 0 && scalar_near(c, M_SQRT2, 1e-6))
			d = S[i];
		else if (is_op(n, "Mul") && scalar_near(c, M_SQRT1_2, 1e-6))
			d = S[i];
		else
			other = S[i];
	}
	if (d < 0 || other < 0)
		return 0;
	int erf = sole_consumer(im, main_out(im, &g->nodes[d]));
	if (erf < 0 || !is_op(&g->nodes[erf], "Erf"))
		return 0;
	int add = sole_consumer(im, main_out(im, &g->nodes[erf]));
	if (add < 0 || !is_op(&g->nodes[add], "Add") ||
	    !scalar_near(other_const(im, &g->nodes[add], main_out(im, &g->nodes[erf]), NULL), 1.0,
	                 1e-7))
		return 0;
	int a_out = main_out(im, &g->nodes[add]);
	int mul = sole_consumer(im, a_out);
	if (mul < 0 || !is_op(&g->nodes[mul], "Mul") || g->nodes[mul].n_in != 2)
		return 0;
	const ox_node *m = &g->nodes[mul];
	int m_other = m->in[0] == a_out ? m->in[1] : m->in[0];
	grp[0] = d;
	grp[1] = erf;
	grp[2] = add;
	grp[3] = mul;
	if (m_other == x && other == mul) {
		/* x * (1 + erf), then * 0.5 */
		int half = sole_consumer(im, main_out(im, m));
		if (half < 0 || !is_op(&g->nodes[half], "Mul") ||
		    !scalar_near(other_const(im, &g->nodes[half], main_out(im, m), NULL), 0.5, 1e-7))
			return 0;
		grp[4] = half;
		*out = main_out(im, &g->nodes[half]);
	} else {
		/* (x * 0.5) * (1 + erf) */
		const ox_node *h = &g->nodes[other];
		if (!is_op(h, "Mul") || main_out(im, h) != m_other ||
		    !scalar_near(other_const(im, h, x, NULL), 0.5, 1e-7))
			return 0;
		grp[4] = other;
		*out = main_out(im, m);
	}
	*n_grp = 5;
	return *out >= 0;
}

/*
 * The weight of Gemm or MatMul node k applied to cur (width im->w, or
 * unknown at the input): *W [out][in] and, for a Gemm with C, *b (both
 * malloc'd; *b NULL without). *units gets out.
 */
static int dense_weight(imp *im, int k, float **W, float **b, int *units)
{
	const ox_node *n = &im->g->nodes[k];
	int gemm = is_op(n, "Gemm");
	*W = *b = NULL;
	if (n->n_in < 2 || n->in[0] != im->cur)
		return unsupported(im->g, k, im->e, "the first input must be the layer's input");
	const ox_tensor *B = konst(im, n->in[1]);
	if (!B || B->rank != 2)
		return unsupported(im->g, k, im->e, "the weight must be a constant 2-D float tensor");
	int transB = gemm && attr_i(n, "transB", 0) != 0;
	if (gemm && attr_i(n, "transA", 0) != 0)
		return unsupported(im->g, k, im->e, "transA = 1 is not supported");
	float alpha = gemm ? attr_f(n, "alpha", 1.0f) : 1.0f;
	float beta = gemm ? attr_f(n, "beta", 1.0f) : 1.0f;
	int64_t in = transB ? B->dims[1] : B->dims[0], out = transB ? B->dims[0] : B->dims[1];
	if (im->w < 0)
		im->w = im->in_w = (int)in;
	if (in != im->w || out < 1 || out > im->lim->max_units)
		return unsupported(im->g, k, im->e, "a weight of %lld x %lld for an input of width %d",
		                   (long long)B->dims[0], (long long)B->dims[1], im->w);
	if (!all_finite(B->f, B->n))
		return unsupported(im->g, k, im->e, "weight \"%.80s\" holds a value that is not finite",
		                   B->name);
	const ox_tensor *C = gemm && n->n_in >= 3 ? konst(im, n->in[2]) : NULL;
	if (gemm && n->n_in >= 3 && n->in[2] >= 0 && !C)
		return unsupported(im->g, k, im->e, "the bias must be a constant float tensor");
	if (C && C->n != out && C->n != 1)
		return unsupported(im->g, k, im->e, "a bias of %lld values for %lld units",
		                   (long long)C->n, (long long)out);
	if (C && !all_finite(C->f, C->n))
		return unsupported(im->g, k, im->e, "bias \"%.80s\" holds a value that is not finite",
		                   C->name);
	*W = malloc((size_t)(out * in) * sizeof **W);
	*b = C ? malloc((size_t)out * sizeof **b) : NULL;
	if (!*W || (C && !*b)) {
		free(*W);
		free(*b);
		*W = *b = NULL;
		return nomem(im->e);
	}
	for (int64_t o = 0; o < out; o++)
		for (int64_t i = 0; i < in; i++)
			(*W)[o * in + i] = alpha * (transB ? B->f[o * in + i] : B->f[i * out + o]);
	for (int64_t o = 0; C && o < out; o++)
		(*b)[o] = beta * C->f[C->n == 1 ? 0 : o];
	*units = (int)out;
	return 0;
}

/* Fuses the activation after dense layer l (first node `first`) into it
 * when the activation's node shares the dense node's scope. */
static void try_fuse(imp *im, il_layer *l, int first)
{
	int S[3];
	int ns = consumers(im, im->cur, S, 3);
	nn_act act;
	float alpha;
	const char *fname = im->g->nodes[first].name;
	if (ns == 1 && act_of(im, S[0], &act, &alpha) &&
	    same_scope(fname, im->g->nodes[S[0]].name)) {
		int out = main_out(im, &im->g->nodes[S[0]]);
		if (out < 0)
			return;
		l->s.act = act;
		l->s.alpha = alpha;
		im->g->nodes[S[0]].done = 1;
		im->cur = out;
		return;
	}
	int grp[5], n_grp, out;
	if (ns == 2 && match_gelu(im, S, ns, grp, &n_grp, &out) &&
	    same_scope(fname, im->g->nodes[grp[0]].name)) {
		l->s.act = NN_ACT_GELU;
		for (int i = 0; i < n_grp; i++)
			im->g->nodes[grp[i]].done = 1;
		im->cur = out;
	}
}

/* Gemm, or MatMul with an optional Add of a constant bias: a dense layer. */
static int read_dense(imp *im, il_list *L, int k)
{
	float *W, *b;
	int units;
	if (dense_weight(im, k, &W, &b, &units) < 0)
		return -1;
	int out = main_out(im, &im->g->nodes[k]);
	il_layer *l = list_push(im, L, NN_LAYER_DENSE);
	if (!l || out < 0) {
		free(W);
		free(b);
		return l ? unsupported(im->g, k, im->e, "has no output") : -1;
	}
	l->s.units = units;
	l->t[0] = W;
	l->tn[0] = (int64_t)units * im->w;
	im->g->nodes[k].done = 1;
	im->cur = out;
	if (!b && is_op(&im->g->nodes[k], "MatMul")) {
		int add = sole_consumer(im, out);
		const ox_tensor *c = add >= 0 && is_op(&im->g->nodes[add], "Add")
		                     ? other_const(im, &im->g->nodes[add], out, NULL) : NULL;
		if (c && (c->n == units || c->n == 1) && all_finite(c->f, c->n) &&
		    main_out(im, &im->g->nodes[add]) >= 0) {
			if (!(b = malloc((size_t)units * sizeof *b)))
				return nomem(im->e);
			for (int o = 0; o < units; o++)
				b[o] = c->f[c->n == 1 ? 0 : o];
			im->g->nodes[add].done = 1;
			im->cur = main_out(im, &im->g->nodes[add]);
		}
	}
	l->t[1] = b;
	l->tn[1] = units;
	l->s.bias = b != NULL;
	im->w = units;
	try_fuse(im, l, k);
	return 0;
}

/* BatchNormalization in inference mode: the statistics are the layer's. */
static int read_batch_norm(imp *im, il_list *L, int k)
{
	const ox_node *n = &im->g->nodes[k];
	if (n->n_in != 5 || n->in[0] != im->cur)
		return unsupported(im->g, k, im->e, "needs its five inputs, the first the layer's input");
	if (attr_i(n, "training_mode", 0) != 0)
		return unsupported(im->g, k, im->e, "training_mode = 1 is not supported");
	if (im->w < 0)
		return unsupported(im->g, k, im->e, "the input's width is not known here");
	const ox_tensor *p[4];
	for (int i = 0; i < 4; i++) {
		p[i] = konst(im, n->in[i + 1]);
		if (!p[i] || p[i]->n != im->w || !all_finite(p[i]->f, p[i]->n))
			return unsupported(im->g, k, im->e,
			                   "input %d must be a constant of %d finite values", i + 1, im->w);
	}
	for (int j = 0; j < im->w; j++)
		if (p[3]->f[j] < 0)
			return unsupported(im->g, k, im->e, "a negative variance");
	int out = main_out(im, n);
	if (out < 0)
		return unsupported(im->g, k, im->e, "its running statistics outputs are used");
	il_layer *l = list_push(im, L, NN_LAYER_BATCH_NORM);
	if (!l)
		return -1;
	l->s.eps = attr_f(n, "epsilon", 1e-5f);
	if (!(l->s.eps > 0) || !isfinite(l->s.eps))
		return unsupported(im->g, k, im->e, "epsilon must be positive");
	for (int i = 0; i < 4; i++) {
		if (!(l->t[i] = malloc((size_t)im->w * sizeof(float))))
			return nomem(im->e);
		memcpy(l->t[i], p[i]->f, (size_t)im->w * sizeof(float));
		l->tn[i] = im->w;
	}
	im->g->nodes[k].done = 1;
	im->cur = out;
	return 0;
}

/* One node of the chain that is not a residual block's start. */
static int read_op(imp *im, il_list *L, int k)
{
	ox_node *n = &im->g->nodes[k];
	if (n->domain[0] && strcmp(n->domain, "ai.onnx") != 0)
		return unsupported(im->g, k, im->e, "operators of domain \"%.60s\" are not supported",
		                   n->domain);
	if (is_op(n, "Gemm") || is_op(n, "MatMul"))
		return read_dense(im, L, k);
	if (is_op(n, "BatchNormalization"))
		return read_batch_norm(im, L, k);
	if (n->n_in < 1 || n->in[0] != im->cur)
		return unsupported(im->g, k, im->e, "its first input must be the layer's input");
	int out = main_out(im, n);
	if (out < 0)
		return unsupported(im->g, k, im->e, "its extra outputs are used");
	nn_act act;
	float alpha;
	il_layer *l = NULL;
	if (act_of(im, k, &act, &alpha)) {
		if (!(l = list_push(im, L, NN_LAYER_ACTIVATION)))
			return -1;
		l->s.act = act;
		l->s.alpha = alpha;
	} else if (is_op(n, "Identity")) {
		if (!(l = list_push(im, L, NN_LAYER_ACTIVATION)))
			return -1;
	} else if (is_op(n, "Dropout")) {
		float ratio = attr_f(n, "ratio", 0.5f);
		const ox_tensor *r = n->n_in >= 2 ? konst(im, n->in[1]) : NULL;
		const ox_tensor *tm = n->n_in >= 3 ? konst(im, n->in[2]) : NULL;
		if (r && r->n == 1)
			ratio = r->f[0];
		if (tm && tm->n == 1 && tm->f[0] != 0)
			return unsupported(im->g, k, im->e, "training_mode is true");
		if (!(ratio >= 0 && ratio < 1))
			ratio = 0;
		if (!(l = list_push(im, L, NN_LAYER_DROPOUT)))
			return -1;
		l->s.rate = ratio;
	} else if (is_op(n, "Mul")) {
		const ox_tensor *c = other_const(im, n, im->cur, NULL);
		if (!c || c->n != 1 || !(c->f[0] > 0 && c->f[0] <= 1))
			return unsupported(im->g, k, im->e,
			                   "only a Mul by a constant scalar in (0, 1] imports (as "
			                   "scale_at_test dropout)");
		if (!(l = list_push(im, L, NN_LAYER_DROPOUT)))
			return -1;
		l->s.mode = NN_DROPOUT_SCALE_AT_TEST;
		l->s.rate = 1.0f - c->f[0];
	} else if (is_op(n, "Flatten")) {
		int64_t axis = attr_i(n, "axis", 1);
		if (axis != 1 && !(axis == -1 && im->rank == 2))
			return unsupported(im->g, k, im->e, "only axis 1 is supported");
		im->rank = 2;
	} else if (is_op(n, "Softmax")) {
		int64_t axis = attr_i(n, "axis", im->g->opset >= 13 ? -1 : 1);
		if (axis != 1 && axis != -1)
			return unsupported(im->g, k, im->e, "only axis 1 is supported");
		if (out != im->out_val)
			return unsupported(im->g, k, im->e, "only a final Softmax is supported");
		im->softmax = k;
	} else if (is_merge_add(im, k)) {
		return unsupported(im->g, k, im->e,
		                   "an Add of two computed values that does not close a residual "
		                   "block (a block's input must feed the Add or a bias-free projection)");
	} else if (is_op(n, "Sub") || is_op(n, "Div")) {
		return unsupported(im->g, k, im->e,
		                   "Sub and Div by constants import only at the input (standardization)");
	} else {
		return unsupported(im->g, k, im->e,
		                   "operator not supported (nnd imports Gemm, MatMul+Add, Relu, "
		                   "LeakyRelu, Elu, Sigmoid, Tanh, Softplus, Gelu and its Erf form, "
		                   "BatchNormalization, Add residuals, Sub/Div at the input, Mul by a "
		                   "scalar, Flatten, Dropout, Identity and a final Softmax)");
	}
	n->done = 1;
	im->cur = out;
	return 0;
}

/* The consumer among S that closes a residual block starting at cur: an
 * Add of cur (identity) or a bias-free Gemm/MatMul whose output only feeds
 * an Add (projection). The outermost (latest merge) wins. -1 if none. */
static int find_skip(const imp *im, const int *S, int ns)
{
	int best = -1, best_merge = -1;
	for (int i = 0; i < ns; i++) {
		const ox_node *n = &im->g->nodes[S[i]];
		int merge = -1;
		if (n->reserved_for >= 0)
			continue;  /* an enclosing block's merge, reached from its body */
		if (is_merge_add(im, S[i])) {
			merge = S[i];
		} else if ((is_op(n, "Gemm") && (n->n_in == 2 || (n->n_in == 3 && n->in[2] < 0))) ||
		           (is_op(n, "MatMul") && n->n_in == 2)) {
			int o = main_out(im, n);
			int c = o >= 0 && im->g->vals[o].n_cons == 1 ? im->g->vals[o].cons[0] : -1;
			if (c >= 0 && is_merge_add(im, c) && konst(im, n->in[1]))
				merge = c;
		}
		if (merge < 0)
			continue;
		if (merge > best_merge || (merge == best_merge && S[i] > best)) {
			best = S[i];
			best_merge = merge;
		}
	}
	return best;
}

static int walk(imp *im, il_list *L, int depth, int *merge);

/* A residual block starting at cur, closed by skip node s (the merge Add
 * or the projection). */
static int read_residual(imp *im, il_list *L, int depth, int s)
{
	ox_graph *g = im->g;
	int x = im->cur, w0 = im->w, proj = -1, merge = s;
	if (!is_op(&g->nodes[s], "Add")) {
		proj = s;
		merge = g->vals[main_out(im, &g->nodes[s])].cons[0];
	}
	if (depth + 1 > im->lim->max_depth || depth + 1 > NN_MAX_DEPTH) {
		api_err_field(im->e, "graph", "residual blocks nest deeper than %d",
		              im->lim->max_depth < NN_MAX_DEPTH ? im->lim->max_depth : NN_MAX_DEPTH);
		return -1;
	}
	if (w0 < 0)
		return unsupported(g, s, im->e, "the input's width is not known here");
	g->nodes[merge].reserved_for = x;
	if (proj >= 0)
		g->nodes[proj].reserved_for = x;
	il_layer *R = list_push(im, L, NN_LAYER_RESIDUAL);
	if (!R)
		return -1;
	if (!(R->kids = calloc(1, sizeof *R->kids)))
		return nomem(im->e);
	int m = -1;
	if (walk(im, R->kids, depth + 1, &m) < 0)
		return -1;
	R = &L->v[L->n - 1];
	if (m != merge)
		return unsupported(g, m >= 0 ? m : merge, im->e,
		                   "does not close the residual block that starts at \"%.80s\"",
		                   vname(im, x));
	if (R->kids->n == 0)
		return unsupported(g, merge, im->e, "an empty residual block");
	const ox_node *mn = &g->nodes[merge];
	int body = im->cur;
	int other = mn->in[0] == body ? mn->in[1] : mn->in[0];
	if (proj >= 0) {
		if (other != main_out(im, &g->nodes[proj]))
			return unsupported(g, merge, im->e, "its inputs are not the block and its shortcut");
		int bw = im->w;
		im->cur = x;
		im->w = w0;
		float *W, *b;
		int units;
		if (dense_weight(im, proj, &W, &b, &units) < 0)
			return -1;
		free(b);
		if (units != bw) {
			free(W);
			return unsupported(g, proj, im->e, "the projection gives %d values, the block %d",
			                   units, bw);
		}
		R->t[0] = W;
		R->tn[0] = (int64_t)units * w0;
		R->s.projection = 1;
		im->w = bw;
		g->nodes[proj].done = 1;
	} else {
		if (other != x)
			return unsupported(g, merge, im->e, "its inputs are not the block and its input");
		if (im->w != w0)
			return unsupported(g, merge, im->e,
			                   "the block changes the width from %d to %d without a projection",
			                   w0, im->w);
	}
	g->nodes[merge].done = 1;
	im->cur = main_out(im, mn);
	if (im->cur < 0)
		return unsupported(g, merge, im->e, "has no output");
	return 0;
}

/*
 * The chain from cur into L until the graph's output (*merge = -1) or a
 * residual merge of an enclosing block (*merge = that Add).
 */
static int walk(imp *im, il_list *L, int depth, int *merge)
{
	ox_graph *g = im->g;
	for (;;) {
		int S[8];
		int ns = consumers(im, im->cur, S, 8);
		if (ns == 0) {
			if (im->cur == im->out_val) {
				*merge = -1;
				return 0;
			}
			return unsupported_graph(im->e, "value \"%.80s\" is computed but neither used "
			                         "nor the graph's output", vname(im, im->cur));
		}
		if (im->cur == im->out_val)
			return unsupported(g, S[0], im->e, "it reads the graph's output");
		if (ns > 8)
			return unsupported(g, S[0], im->e, "its input feeds more than 8 nodes");
		if (ns == 1 && is_merge_add(im, S[0]) && g->nodes[S[0]].reserved_for >= 0) {
			*merge = S[0];
			return 0;
		}
		int skip = ns >= 2 ? find_skip(im, S, ns) : -1;
		if (skip >= 0) {
			if (read_residual(im, L, depth, skip) < 0)
				return -1;
			continue;
		}
		int grp[5], n_grp, out;
		if (ns == 2 && match_gelu(im, S, ns, grp, &n_grp, &out)) {
			il_layer *l = list_push(im, L, NN_LAYER_ACTIVATION);
			if (!l)
				return -1;
			l->s.act = NN_ACT_GELU;
			for (int i = 0; i < n_grp; i++)
				g->nodes[grp[i]].done = 1;
			im->cur = out;
			continue;
		}
		if (ns != 1)
			return unsupported(g, S[1], im->e,
			                   "its input \"%.80s\" also feeds node \"%.80s\"; only residual "
			                   "blocks may branch", vname(im, im->cur), g->nodes[S[0]].name);
		if (read_op(im, L, S[0]) < 0)
			return -1;
	}
}

/* The graph's one input (not an initializer) and what is read at it:
 * Flatten, then Sub and Div by constants (the standardization). */
static int read_input(imp *im)
{
	ox_graph *g = im->g;
	const ox_io *in = NULL;
	for (int i = 0; i < g->n_ins; i++) {
		int id = val_id(g, g->ins[i].name, 0);
		if (id >= 0 && g->vals[id].k)
			continue;  /* an initializer listed as an input (IR < 4) */
		if (in)
			return unsupported_graph(im->e, "the graph has more than one input");
		in = &g->ins[i];
	}
	if (!in)
		return unsupported_graph(im->e, "the graph has no input");
	if (g->n_outs != 1)
		return unsupported_graph(im->e, "the graph must have one output, not %d", g->n_outs);
	if (in->elem != DT_FLOAT)
		return unsupported_graph(im->e, "the input \"%.80s\" must be float32", in->name);
	im->cur = val_id(g, in->name, 0);
	im->out_val = val_id(g, g->outs[0].name, 0);
	if (im->cur < 0 || im->out_val < 0)
		return unsupported_graph(im->e, "the input or the output is not connected");
	im->rank = in->rank < 0 ? 2 : in->rank;
	im->w = -1;
	if (im->rank < 2)
		return unsupported_graph(im->e, "the input must be [N, features]");
	int64_t w = 1;
	for (int i = 1; i < im->rank; i++)
		w = in->dims[i] < 0 || w < 0 ? -1 : w * in->dims[i];
	if (w > INT32_MAX)
		return unsupported_graph(im->e, "the input is too wide");
	if (in->rank >= 2)
		im->w = (int)w;
	for (;;) {
		int S[2];
		if (consumers(im, im->cur, S, 2) != 1)
			break;
		ox_node *n = &g->nodes[S[0]];
		int first = -1, out = main_out(im, n);
		const ox_tensor *c = other_const(im, n, im->cur, &first);
		if (is_op(n, "Flatten") && out >= 0 && attr_i(n, "axis", 1) == 1 && !im->mean && !im->sd) {
			if (im->w < 0)
				return unsupported(g, S[0], im->e, "the input's shape is not known");
			im->rank = 2;
		} else if ((is_op(n, "Sub") || is_op(n, "Div")) && c && first == 0 && out >= 0 &&
		           im->rank == 2 && !im->sd && !(is_op(n, "Sub") && im->mean)) {
			int sub = is_op(n, "Sub");
			if (im->w < 0 && c->n > 1)
				im->w = im->in_w = (int)c->n;
			if (im->w < 0 || (c->n != im->w && c->n != 1))
				return unsupported(g, S[0], im->e, "a constant of %lld values for %d inputs",
				                   (long long)c->n, im->w);
			float *v = malloc((size_t)im->w * sizeof *v);
			if (!v)
				return nomem(im->e);
			for (int j = 0; j < im->w; j++) {
				v[j] = c->f[c->n == 1 ? 0 : j];
				if (!isfinite(v[j]) || (!sub && !(v[j] > 0))) {
					free(v);
					return unsupported(g, S[0], im->e, sub ? "a mean that is not finite"
					                   : "a divisor that is not a finite positive number");
				}
			}
			if (sub)
				im->mean = v;
			else
				im->sd = v;
		} else {
			break;
		}
		n->done = 1;
		im->cur = out;
	}
	if (im->rank != 2)
		return unsupported_graph(im->e, "the input has %d dimensions and no Flatten follows",
		                         im->rank);
	return 0;
}

/* ---------------------------------------------------------------- 3. build */

/* The spec array of list L (children included); -1 out of memory. */
static int to_specs(const il_list *L, nn_layer_spec **out)
{
	*out = NULL;
	if (L->n == 0)
		return 0;
	nn_layer_spec *s = calloc((size_t)L->n, sizeof *s);
	if (!s)
		return -1;
	for (int i = 0; i < L->n; i++) {
		s[i] = L->v[i].s;
		s[i].children = NULL;
		s[i].n_children = 0;
		if (L->v[i].kids) {
			if (to_specs(L->v[i].kids, &s[i].children) < 0) {
				nn_layers_free(s, i + 1);
				return -1;
			}
			s[i].n_children = L->v[i].kids->n;
		}
	}
	*out = s;
	return 0;
}

/* Copies L's tensors into m's, pre-order from tensor *t; -1 on a mismatch. */
static int fill_tensors(const il_list *L, nn_model *m, int *t)
{
	for (int i = 0; i < L->n; i++) {
		const il_layer *l = &L->v[i];
		if (l->kids && fill_tensors(l->kids, m, t) < 0)
			return -1;
		for (int j = 0; j < 4; j++) {
			if (!l->t[j])
				continue;
			if (*t >= nn_model_tensor_count(m))
				return -1;
			nn_tensor x = nn_model_tensor(m, (*t)++);
			if ((int64_t)x.rows * x.cols != l->tn[j])
				return -1;
			memcpy(x.data, l->t[j], (size_t)l->tn[j] * sizeof(float));
		}
	}
	return 0;
}

/* Checks the list sizes against the limits (every list, recursively). */
static int check_lists(const il_list *L, const api_limits *lim, api_err *e)
{
	if (L->n > lim->max_layers)
		return api_err_field(e, "graph", "a layer list of %d layers; the limit is %d", L->n,
		                     lim->max_layers);
	for (int i = 0; i < L->n; i++)
		if (L->v[i].kids && check_lists(L->v[i].kids, lim, e) < 0)
			return -1;
	return 0;
}

/* The model from the layers read: the last one is the output layer. */
static int build(imp *im, il_list *L, int inputs, int task, nn_model **out)
{
	il_layer *o = L->n ? &L->v[L->n - 1] : NULL;
	if (!o || o->s.type != NN_LAYER_DENSE || o->s.act != NN_ACT_IDENTITY)
		return unsupported_graph(im->e, "the graph must end with Gemm (or MatMul + Add), then "
		                         "an optional Softmax: nnd's output layer is affine");
	if (task == API_ONNX_TASK_AUTO)
		task = im->softmax >= 0 ? NN_TASK_CLASSIFICATION : NN_TASK_REGRESSION;
	if (task == NN_TASK_REGRESSION && im->softmax >= 0)
		return unsupported(im->g, im->softmax, im->e,
		                   "a final Softmax makes a classifier, but task is regression");
	if (!o->t[1]) {
		/* nnd's output layer has a bias: a zero one computes the same */
		if (!(o->t[1] = calloc((size_t)o->s.units, sizeof(float))))
			return nomem(im->e);
		o->tn[1] = o->s.units;
	}
	if (check_lists(L, im->lim, im->e) < 0)
		return -1;
	nn_model_spec spec;
	memset(&spec, 0, sizeof spec);
	spec.task = (nn_task)task;
	spec.inputs = inputs;
	spec.outputs = o->s.units;
	spec.init = NN_INIT_AUTO;
	spec.n_layers = L->n - 1;
	il_list hidden = { L->v, L->n - 1, L->cap };
	if (to_specs(&hidden, &spec.layers) < 0)
		return nomem(im->e);
	char err[256] = "";
	int64_t params = 0;
	nn_status st = nn_spec_check(&spec, im->lim->max_params, &params, err, sizeof err);
	nn_model *m = st == NN_OK ? nn_model_create(&spec, err, sizeof err) : NULL;
	nn_layers_free(spec.layers, spec.n_layers);
	if (!m) {
		api_err_set(im->e, 422, "validation_failed", "the imported model is not valid: %s",
		            err[0] ? err : nn_status_name(st));
		return api_err_field(im->e, "graph", "%s", err[0] ? err : "invalid model");
	}
	int t = 0;
	if (fill_tensors(L, m, &t) < 0 || t != nn_model_tensor_count(m)) {
		nn_model_free(m);
		return api_err_set(im->e, 500, "import_failed", "the tensors read do not fit the model");
	}
	if (im->mean || im->sd) {
		float *mean = im->mean, *sd = im->sd;
		float *tmp = malloc((size_t)inputs * sizeof *tmp);
		if (!tmp) {
			nn_model_free(m);
			return nomem(im->e);
		}
		for (int j = 0; j < inputs; j++)
			tmp[j] = mean ? 1.0f : 0.0f;
		st = nn_model_set_standardize(m, mean ? mean : tmp, sd ? sd : tmp);
		free(tmp);
		if (st != NN_OK) {
			nn_model_free(m);
			return unsupported_graph(im->e, "the standardization is not valid");
		}
	}
	*out = m;
	return 0;
}

int api_onnx_import(const void *buf, size_t len, int task, const api_limits *lim,
                    nn_model **out, api_err *e)
{
	*out = NULL;
	if (!buf || len == 0)
		return malformed(e, "the body is empty");
	ox_graph g;
	memset(&g, 0, sizeof g);
	imp im = { &g, e, lim, -1, -1, 2, -1, -1, NULL, NULL, -1 };
	il_list *top = calloc(1, sizeof *top);
	int rc = top ? 0 : nomem(e);
	if (rc == 0)
		rc = read_model(&g, buf, len, e);
	if (rc == 0)
		rc = index_graph(&g, e);
	if (rc == 0)
		rc = read_input(&im);
	int inputs = im.w, merge = -1;
	if (rc == 0)
		rc = walk(&im, top, 0, &merge);
	if (rc == 0 && merge >= 0)
		rc = unsupported(&g, merge, e, "an Add of two computed values outside a residual block");
	for (int k = 0; rc == 0 && k < g.n_nodes; k++)
		if (!g.nodes[k].done)
			rc = unsupported(&g, k, e, "is not on the path from the input to the output");
	if (rc == 0 && inputs < 0)
		inputs = im.in_w;
	if (rc == 0 && inputs < 1)
		rc = unsupported_graph(e, "the input's width is not known");
	if (rc == 0)
		rc = build(&im, top, inputs, task, out);
	list_free(top);
	free(im.mean);
	free(im.sd);
	graph_release(&g);
	return rc;
}
