/*
 * onnx_export.c - a model's inference graph as an ONNX ModelProto (see
 * onnx.h for the graph's shape and names).
 *
 * The bytes are written in field-number order, as protobuf's own
 * serializers do, and depend only on the spec, the tensors and the opset.
 * Every constant is an initializer (never a Constant node). The operators
 * used (Sub, Div, Gemm, Relu, LeakyRelu, Elu, Sigmoid, Tanh, Softplus, Mul,
 * Erf, Add, BatchNormalization, Identity, Softmax) have the same form in
 * opsets 13 to 17, so only the opset and IR version numbers change.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.h"
#include "onnx_pb.h"

#define NAME_MAX_LEN 256

/* ONNX's TensorProto.DataType and AttributeProto.AttributeType values */
enum { ONNX_FLOAT = 1 };
enum { ATTR_FLOAT = 1, ATTR_INT = 2 };

typedef struct ex {
	const nn_model *m;
	pb_buf nodes;    /* GraphProto.node fields, in order */
	pb_buf inits;    /* GraphProto.initializer fields, in order */
	int t;           /* the next of the model's tensors (pre-order) */
	int ok;
} ex;

static void attr_int(pb_buf *attrs, const char *name, int64_t v)
{
	pb_buf a = PB_INIT;
	pb_str(&a, 1, name);
	pb_int(&a, 3, v);
	pb_int(&a, 20, ATTR_INT);
	pb_msg(attrs, 5, &a);
}

static void attr_float(pb_buf *attrs, const char *name, float v)
{
	pb_buf a = PB_INIT;
	pb_str(&a, 1, name);
	pb_float(&a, 2, v);
	pb_int(&a, 20, ATTR_FLOAT);
	pb_msg(attrs, 5, &a);
}

/* d = a b, cut to NAME_MAX_LEN - 1 bytes (paths are far shorter: the
 * nesting depth is at most NN_MAX_DEPTH). */
static void path_join(char *d, const char *a, const char *b)
{
	size_t la = strnlen(a, NAME_MAX_LEN - 1), lb = strlen(b);
	if (lb > NAME_MAX_LEN - 1 - la)
		lb = NAME_MAX_LEN - 1 - la;
	memmove(d, a, la);
	memcpy(d + la, b, lb);
	d[la + lb] = 0;
}

/* A node: op named `name` ("<layer path>/<Op>"), its output "<name>_out"
 * unless out is given (the graph's output); the output's name goes to cur,
 * which must hold NAME_MAX_LEN bytes. attrs holds AttributeProto fields
 * (released here), or is NULL. */
static void node(ex *x, const char *op, const char *name, const char *const *in, int nin,
                 const char *out, char *cur, pb_buf *attrs)
{
	pb_buf n = PB_INIT;
	char o[NAME_MAX_LEN];
	path_join(o, out ? out : name, out ? "" : "_out");
	for (int i = 0; i < nin; i++)
		pb_str(&n, 1, in[i]);
	pb_str(&n, 2, o);
	pb_str(&n, 3, name);
	pb_str(&n, 4, op);
	if (attrs)
		pb_append(&n, attrs);
	pb_msg(&x->nodes, 1, &n);
	memcpy(cur, o, sizeof o);
}

/* An initializer: float32 of the given dims (rank 0 to 2), raw data. */
static void init_tensor(ex *x, const char *name, const float *v, int rank, int64_t d0, int64_t d1)
{
	pb_buf t = PB_INIT;
	size_t n = 1;
	if (rank >= 1) {
		pb_int(&t, 1, d0);
		n *= (size_t)d0;
	}
	if (rank >= 2) {
		pb_int(&t, 1, d1);
		n *= (size_t)d1;
	}
	pb_int(&t, 2, ONNX_FLOAT);
	pb_str(&t, 8, name);
	pb_floats(&t, 9, v, n);
	pb_msg(&x->inits, 5, &t);
}

/* The model's next tensor, which must be of kind k and rows x cols. */
static const float *next_tensor(ex *x, nn_tensor_kind k, int rows, int cols)
{
	if (x->t >= nn_model_tensor_count(x->m)) {
		x->ok = 0;
		return NULL;
	}
	nn_tensor t = nn_model_tensor(x->m, x->t++);
	if (t.kind != k || t.rows != rows || t.cols != cols) {
		x->ok = 0;
		return NULL;
	}
	return t.data;
}

/* gelu(v) = 0.5 v (1 + erf(v / sqrt 2)), in the engine's order of
 * operations: (0.5 v) (1 + erf(v * (1 / sqrt 2))). */
static void emit_gelu(ex *x, const char *path, char *cur, const char *out)
{
	static const float half = 0.5f, one = 1.0f, rs2 = (float)M_SQRT1_2;
	char n_half[NAME_MAX_LEN], n_rs2[NAME_MAX_LEN], n_one[NAME_MAX_LEN], nm[NAME_MAX_LEN];
	char in0[NAME_MAX_LEN], h[NAME_MAX_LEN], s[NAME_MAX_LEN], t[NAME_MAX_LEN];
	path_join(n_half, path, ".gelu.half");
	path_join(n_rs2, path, ".gelu.rsqrt2");
	path_join(n_one, path, ".gelu.one");
	init_tensor(x, n_half, &half, 0, 0, 0);
	init_tensor(x, n_rs2, &rs2, 0, 0, 0);
	init_tensor(x, n_one, &one, 0, 0, 0);
	memcpy(in0, cur, NAME_MAX_LEN);
	const char *a1[2] = { in0, n_half };
	path_join(nm, path, "/Mul_half");
	node(x, "Mul", nm, a1, 2, NULL, h, NULL);
	const char *a2[2] = { in0, n_rs2 };
	path_join(nm, path, "/Mul_scale");
	node(x, "Mul", nm, a2, 2, NULL, s, NULL);
	const char *a3[1] = { s };
	path_join(nm, path, "/Erf");
	node(x, "Erf", nm, a3, 1, NULL, t, NULL);
	const char *a4[2] = { t, n_one };
	path_join(nm, path, "/Add");
	node(x, "Add", nm, a4, 2, NULL, s, NULL);
	const char *a5[2] = { h, s };
	path_join(nm, path, "/Mul");
	node(x, "Mul", nm, a5, 2, out, cur, NULL);
}

/* An activation function as its operator(s); identity as Identity. */
static void emit_act(ex *x, nn_act act, float alpha, const char *path, char *cur, const char *out)
{
	const char *op = "Identity";
	pb_buf attrs = PB_INIT;
	switch (act) {
	case NN_ACT_IDENTITY: op = "Identity"; break;
	case NN_ACT_RELU: op = "Relu"; break;
	case NN_ACT_LEAKY_RELU:
		op = "LeakyRelu";
		attr_float(&attrs, "alpha", alpha != 0.0f ? alpha : 0.01f);
		break;
	case NN_ACT_ELU:
		op = "Elu";
		attr_float(&attrs, "alpha", alpha != 0.0f ? alpha : 1.0f);
		break;
	case NN_ACT_SIGMOID: op = "Sigmoid"; break;
	case NN_ACT_TANH: op = "Tanh"; break;
	case NN_ACT_SOFTPLUS: op = "Softplus"; break;
	case NN_ACT_GELU:
		pb_release(&attrs);
		emit_gelu(x, path, cur, out);
		return;
	}
	char nm[NAME_MAX_LEN], in0[NAME_MAX_LEN], suffix[32];
	snprintf(suffix, sizeof suffix, "/%s", op);
	path_join(nm, path, suffix);
	memcpy(in0, cur, NAME_MAX_LEN);
	const char *in[1] = { in0 };
	node(x, op, nm, in, 1, out, cur, attrs.len ? &attrs : NULL);
	pb_release(&attrs);
}

/* A Gemm of cur by the model's next weight (out x w), with its bias when
 * has_bias; name is the node's name, wname the weight's. */
static void emit_gemm(ex *x, const char *name, const char *wname, const char *bname, int out_w,
                      int w, int has_bias, char *cur, const char *out)
{
	const float *wt = next_tensor(x, NN_T_WEIGHT, out_w, w);
	const float *bt = has_bias ? next_tensor(x, NN_T_BIAS, 1, out_w) : NULL;
	if (!x->ok)
		return;
	init_tensor(x, wname, wt, 2, out_w, w);
	if (has_bias)
		init_tensor(x, bname, bt, 1, out_w, 0);
	char in0[NAME_MAX_LEN];
	memcpy(in0, cur, NAME_MAX_LEN);
	const char *in[3] = { in0, wname, bname };
	pb_buf attrs = PB_INIT;
	attr_int(&attrs, "transB", 1);
	node(x, "Gemm", name, in, has_bias ? 3 : 2, out, cur, &attrs);
}

static void emit_layers(ex *x, const nn_layer_spec *L, int n, const char *prefix, char *cur,
                        int *w, const char *last_out);

static void emit_layer(ex *x, const nn_layer_spec *l, const char *path, char *cur, int *w,
                       const char *out)
{
	char nm[NAME_MAX_LEN], a[NAME_MAX_LEN], b[NAME_MAX_LEN], c[NAME_MAX_LEN], d[NAME_MAX_LEN];
	char in0[NAME_MAX_LEN];
	memcpy(in0, cur, NAME_MAX_LEN);
	switch (l->type) {
	case NN_LAYER_DENSE:
		path_join(nm, path, "/Gemm");
		path_join(a, path, ".weight");
		path_join(b, path, ".bias");
		emit_gemm(x, nm, a, b, l->units, *w, l->bias, cur,
		          l->act == NN_ACT_IDENTITY ? out : NULL);
		*w = l->units;
		if (l->act != NN_ACT_IDENTITY)
			emit_act(x, l->act, l->alpha, path, cur, out);
		break;
	case NN_LAYER_ACTIVATION:
		emit_act(x, l->act, l->alpha, path, cur, out);
		break;
	case NN_LAYER_BATCH_NORM: {
		const float *g = next_tensor(x, NN_T_GAMMA, 1, *w);
		const float *be = next_tensor(x, NN_T_BETA, 1, *w);
		const float *mu = next_tensor(x, NN_T_RUNNING_MEAN, 1, *w);
		const float *var = next_tensor(x, NN_T_RUNNING_VAR, 1, *w);
		if (!x->ok)
			return;
		path_join(a, path, ".weight");
		path_join(b, path, ".bias");
		path_join(c, path, ".running_mean");
		path_join(d, path, ".running_var");
		init_tensor(x, a, g, 1, *w, 0);
		init_tensor(x, b, be, 1, *w, 0);
		init_tensor(x, c, mu, 1, *w, 0);
		init_tensor(x, d, var, 1, *w, 0);
		const char *in[5] = { in0, a, b, c, d };
		pb_buf attrs = PB_INIT;
		attr_float(&attrs, "epsilon", l->eps);
		path_join(nm, path, "/BatchNormalization");
		node(x, "BatchNormalization", nm, in, 5, out, cur, &attrs);
		break;
	}
	case NN_LAYER_DROPOUT:
		if (l->mode == NN_DROPOUT_INVERTED) {
			/* the identity at inference; a node keeps the positions */
			emit_act(x, NN_ACT_IDENTITY, 0, path, cur, out);
		} else {
			float keep = 1.0f - l->rate;
			path_join(a, path, ".scale");
			init_tensor(x, a, &keep, 0, 0, 0);
			const char *in[2] = { in0, a };
			path_join(nm, path, "/Mul");
			node(x, "Mul", nm, in, 2, out, cur, NULL);
		}
		break;
	case NN_LAYER_RESIDUAL: {
		int w0 = *w;
		path_join(a, path, ".layers");
		emit_layers(x, l->children, l->n_children, a, cur, w, NULL);
		char skip[NAME_MAX_LEN], body[NAME_MAX_LEN];
		memcpy(skip, in0, NAME_MAX_LEN);
		memcpy(body, cur, NAME_MAX_LEN);
		if (l->projection) {
			path_join(nm, path, "/projection/Gemm");
			path_join(b, path, ".projection.weight");
			emit_gemm(x, nm, b, NULL, *w, w0, 0, skip, NULL);
		}
		const char *in[2] = { body, skip };
		path_join(nm, path, "/Add");
		node(x, "Add", nm, in, 2, out, cur, NULL);
		break;
	}
	}
}

static void emit_layers(ex *x, const nn_layer_spec *L, int n, const char *prefix, char *cur,
                        int *w, const char *last_out)
{
	for (int i = 0; i < n && x->ok; i++) {
		char path[NAME_MAX_LEN], idx[16];
		snprintf(idx, sizeof idx, ".%d", i);
		path_join(path, prefix, idx);
		emit_layer(x, &L[i], path, cur, w, i == n - 1 ? last_out : NULL);
	}
}

/* A ValueInfoProto: float32 [N, width]. */
static void value_info(pb_buf *g, int field, const char *name, int width)
{
	pb_buf dn = PB_INIT, dw = PB_INIT, shape = PB_INIT, tt = PB_INIT, type = PB_INIT,
	       vi = PB_INIT;
	pb_str(&dn, 2, "N");
	pb_int(&dw, 1, width);
	pb_msg(&shape, 1, &dn);
	pb_msg(&shape, 1, &dw);
	pb_int(&tt, 1, ONNX_FLOAT);
	pb_msg(&tt, 2, &shape);
	pb_msg(&type, 1, &tt);
	pb_str(&vi, 1, name);
	pb_msg(&vi, 2, &type);
	pb_msg(g, field, &vi);
}

/* The graph: standardization, the layers, the softmax. */
static void emit_graph(ex *x, pb_buf *graph)
{
	const nn_model_spec *sp = nn_model_spec_of(x->m);
	int classification = sp->task == NN_TASK_CLASSIFICATION;
	const char *out_name = classification ? "probabilities" : "outputs";
	char cur[NAME_MAX_LEN] = "input";
	int w = sp->inputs;
	const float *mean = nn_model_std_mean(x->m), *sd = nn_model_std_std(x->m);
	if (mean && sd) {
		init_tensor(x, "standardize.mean", mean, 1, w, 0);
		init_tensor(x, "standardize.std", sd, 1, w, 0);
		const char *a1[2] = { "input", "standardize.mean" };
		node(x, "Sub", "standardize/Sub", a1, 2, NULL, cur, NULL);
		char in0[NAME_MAX_LEN];
		memcpy(in0, cur, NAME_MAX_LEN);
		const char *a2[2] = { in0, "standardize.std" };
		node(x, "Div", "standardize/Div", a2, 2, NULL, cur, NULL);
	}
	emit_layers(x, sp->layers, sp->n_layers, "layers", cur, &w,
	            classification ? NULL : out_name);
	if (classification && x->ok) {
		char in0[NAME_MAX_LEN], nm[NAME_MAX_LEN];
		memcpy(in0, cur, NAME_MAX_LEN);
		snprintf(nm, sizeof nm, "layers.%d/Softmax", sp->n_layers - 1);
		const char *in[1] = { in0 };
		pb_buf attrs = PB_INIT;
		attr_int(&attrs, "axis", 1);
		node(x, "Softmax", nm, in, 1, out_name, cur, &attrs);
	}
	if (x->t != nn_model_tensor_count(x->m))
		x->ok = 0;
	pb_append(graph, &x->nodes);
	pb_str(graph, 2, "nnd");
	pb_append(graph, &x->inits);
	value_info(graph, 11, "input", sp->inputs);
	value_info(graph, 12, out_name, sp->outputs);
}

int api_onnx_export(const nn_model *m, int opset, const char *columns_json, uint8_t **buf,
                    size_t *len, api_err *e)
{
	*buf = NULL;
	*len = 0;
	if (opset < API_ONNX_OPSET_MIN || opset > API_ONNX_OPSET_MAX)
		return api_err_field(e, "opset", "must be an integer from %d to %d",
		                     API_ONNX_OPSET_MIN, API_ONNX_OPSET_MAX);
	ex x = { m, PB_INIT, PB_INIT, 0, 1 };
	pb_buf graph = PB_INIT, model = PB_INIT, ops = PB_INIT;
	/* the tensors are nearly the whole file: one allocation each level
	 * instead of a doubling series of copies */
	int64_t values = 2 * (int64_t)nn_model_spec_of(m)->inputs;
	for (int i = 0; i < nn_model_tensor_count(m); i++) {
		nn_tensor t = nn_model_tensor(m, i);
		values += (int64_t)t.rows * t.cols;
	}
	size_t approx = (size_t)values * 4 + 65536;
	pb_reserve(&x.inits, approx);
	pb_reserve(&graph, approx);
	pb_reserve(&model, approx);
	emit_graph(&x, &graph);
	if (!x.ok) {
		pb_release(&graph);
		return api_err_set(e, 500, "export_failed", "the model's tensors do not match its spec");
	}
	/* IR 7 came with opset 13 and 14 (ONNX 1.8, 1.9), IR 8 with 15 to 17 */
	pb_int(&model, 1, opset <= 14 ? 7 : 8);
	pb_str(&model, 2, "nnd");
	pb_str(&model, 3, NN_VERSION);
	pb_msg(&model, 7, &graph);
	pb_int(&ops, 2, opset);
	pb_msg(&model, 8, &ops);
	if (columns_json) {
		pb_buf kv = PB_INIT;
		pb_str(&kv, 1, "nnd.columns");
		pb_str(&kv, 2, columns_json);
		pb_msg(&model, 14, &kv);
	}
	if (!model.ok) {
		pb_release(&model);
		return api_err_set(e, 500, "out_of_memory", "out of memory writing the ONNX file");
	}
	*buf = model.b;
	*len = model.len;
	return 0;
}
