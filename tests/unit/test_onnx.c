/*
 * test_onnx.c - the ONNX codec (api/onnx_*.c) without a runtime: every
 * layer type and activation exports at opsets 13 to 17, imports back into a
 * model that predicts the same numbers, and exports again to the same bytes;
 * the same model exports to the same bytes twice; the opset is checked;
 * unsupported operators are a 422 naming node and operator; truncated and
 * corrupted files are refused (400/422) without crashing or leaking.
 * (tests/onnx/run-onnx.sh checks the files with ONNX Runtime, onnx.checker
 * and PyTorch.)
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check_main.h"
#include "onnx.h"
#include "onnx_pb.h"
#include "spec_json.h"

/* A model from a spec in JSON, with its tensors and statistics set to
 * varied values and a standardization. */
static nn_model *model_of(const char *json, int standardize)
{
	cJSON *j = cJSON_Parse(json);
	ck_assert_ptr_nonnull(j);
	api_limits lim = api_limits_default();
	nn_model_spec spec;
	memset(&spec, 0, sizeof spec);
	char *name = NULL;
	api_err e = API_ERR_INIT;
	ck_assert_msg(api_model_spec_from_json(j, &lim, &spec, &name, &e) == 0, "%s", e.detail);
	cJSON_Delete(j);
	free(name);
	nn_model *m = nn_model_create(&spec, NULL, 0);
	nn_layers_free(spec.layers, spec.n_layers);
	ck_assert_ptr_nonnull(m);
	for (int i = 0; i < nn_model_tensor_count(m); i++) {
		nn_tensor t = nn_model_tensor(m, i);
		for (int k = 0; k < t.rows * t.cols; k++) {
			float v = sinf(0.7f * (float)k + (float)i);
			if (t.kind == NN_T_RUNNING_VAR || t.kind == NN_T_GAMMA)
				v = 0.5f + fabsf(v);
			if (t.kind == NN_T_BIAS || t.kind == NN_T_BETA || t.kind == NN_T_RUNNING_MEAN)
				v *= 0.3f;
			t.data[k] = v;
		}
	}
	if (standardize) {
		const nn_model_spec *s = nn_model_spec_of(m);
		float mean[64], sd[64];
		for (int k = 0; k < s->inputs; k++) {
			mean[k] = 0.25f * (float)k - 1;
			sd[k] = 0.5f + 0.125f * (float)k;
		}
		ck_assert_int_eq(nn_model_set_standardize(m, mean, sd), NN_OK);
	}
	return m;
}

/* The largest difference between the predictions of a and b on 64 rows. */
static double max_diff(const nn_model *a, const nn_model *b)
{
	const nn_model_spec *s = nn_model_spec_of(a);
	int n = 64, in = s->inputs, out = s->outputs;
	float *x = malloc(sizeof(float) * (size_t)(n * in));
	float *ya = malloc(sizeof(float) * (size_t)(n * out)), *yb = malloc(sizeof(float) * (size_t)(n * out));
	for (int k = 0; k < n * in; k++)
		x[k] = 3.0f * cosf(1.3f * (float)k);
	nn_scratch *sa = nn_scratch_create(a, n), *sb = nn_scratch_create(b, n);
	ck_assert_int_eq(nn_predict(a, sa, x, n, ya), NN_OK);
	ck_assert_int_eq(nn_predict(b, sb, x, n, yb), NN_OK);
	double d = 0;
	for (int k = 0; k < n * out; k++)
		d = fmax(d, fabs((double)ya[k] - (double)yb[k]));
	nn_scratch_free(sa);
	nn_scratch_free(sb);
	free(x);
	free(ya);
	free(yb);
	return d;
}

static const char *const specs[] = {
	/* every activation, fused into dense layers and as layers of their own */
	"{\"task\":\"classification\",\"inputs\":5,\"outputs\":3,\"layers\":["
	"{\"type\":\"dense\",\"units\":8,\"activation\":\"relu\"},"
	"{\"type\":\"dense\",\"units\":7,\"activation\":\"leaky_relu\",\"alpha\":0.2},"
	"{\"type\":\"dense\",\"units\":6,\"activation\":\"elu\"},"
	"{\"type\":\"dense\",\"units\":6,\"activation\":\"sigmoid\"},"
	"{\"type\":\"dense\",\"units\":6,\"activation\":\"tanh\"},"
	"{\"type\":\"dense\",\"units\":6,\"activation\":\"softplus\"},"
	"{\"type\":\"dense\",\"units\":6,\"activation\":\"gelu\"},"
	"{\"type\":\"dense\",\"units\":6,\"activation\":\"identity\",\"bias\":false},"
	"{\"type\":\"activation\",\"function\":\"gelu\"},"
	"{\"type\":\"activation\",\"function\":\"leaky_relu\"},"
	"{\"type\":\"activation\",\"function\":\"elu\",\"alpha\":0.5},"
	"{\"type\":\"activation\",\"function\":\"identity\"},"
	"{\"type\":\"activation\",\"function\":\"tanh\"}]}",
	/* batch norm, both dropouts, residuals with and without projection, nested */
	"{\"task\":\"regression\",\"inputs\":4,\"outputs\":2,\"layers\":["
	"{\"type\":\"dense\",\"units\":6,\"activation\":\"relu\"},"
	"{\"type\":\"batch_norm\",\"eps\":0.001},"
	"{\"type\":\"dropout\",\"rate\":0.3},"
	"{\"type\":\"dropout\",\"rate\":0.25,\"mode\":\"scale_at_test\"},"
	"{\"type\":\"residual\",\"layers\":[{\"type\":\"dense\",\"units\":6,\"activation\":\"tanh\"},"
	"  {\"type\":\"residual\",\"layers\":[{\"type\":\"dense\",\"units\":6}]},"
	"  {\"type\":\"dense\",\"units\":6}]},"
	"{\"type\":\"residual\",\"projection\":true,\"layers\":["
	"  {\"type\":\"activation\",\"function\":\"gelu\"},{\"type\":\"dense\",\"units\":3}]},"
	"{\"type\":\"residual\",\"layers\":[{\"type\":\"batch_norm\"}]}]}",
	/* no hidden layer at all */
	"{\"task\":\"regression\",\"inputs\":3,\"outputs\":1,\"layers\":[]}",
};

START_TEST(every_layer_round_trips_at_every_opset)
{
	for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
		for (int opset = API_ONNX_OPSET_MIN; opset <= API_ONNX_OPSET_MAX; opset++) {
			nn_model *m = model_of(specs[s], (int)(s + (size_t)opset) % 2);
			api_err e = API_ERR_INIT;
			uint8_t *a = NULL, *b = NULL, *c = NULL;
			size_t la, lb, lc;
			ck_assert_int_eq(api_onnx_export(m, opset, NULL, &a, &la, &e), 0);
			ck_assert_int_eq(api_onnx_export(m, opset, NULL, &c, &lc, &e), 0);
			ck_assert(la == lc && memcmp(a, c, la) == 0);  /* deterministic */
			nn_model *back = NULL;
			api_limits lim = api_limits_default();
			ck_assert_msg(api_onnx_import(a, la, API_ONNX_TASK_AUTO, &lim, &back, &e) == 0,
			              "spec %zu opset %d: %s", s, opset, e.detail);
			ck_assert_int_eq(nn_model_spec_of(back)->task, nn_model_spec_of(m)->task);
			ck_assert_int_eq(nn_model_param_count(back), nn_model_param_count(m));
			double d = max_diff(m, back);
			ck_assert_msg(d <= 1e-6, "spec %zu opset %d: predictions differ by %g", s, opset, d);
			ck_assert_int_eq(api_onnx_export(back, opset, NULL, &b, &lb, &e), 0);
			ck_assert_msg(la == lb && memcmp(a, b, la) == 0,
			              "spec %zu opset %d: export, import, export changed the bytes", s, opset);
			free(a);
			free(b);
			free(c);
			nn_model_free(m);
			nn_model_free(back);
		}
	}
}
END_TEST

START_TEST(opset_out_of_range_is_named)
{
	nn_model *m = model_of(specs[2], 0);
	api_err e = API_ERR_INIT;
	uint8_t *a = NULL;
	size_t la = 0;
	ck_assert_int_eq(api_onnx_export(m, 12, NULL, &a, &la, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.fields[0].field, "opset");
	ck_assert_ptr_null(a);
	api_err e2 = API_ERR_INIT;
	ck_assert_int_eq(api_onnx_export(m, 18, NULL, &a, &la, &e2), -1);
	nn_model_free(m);
}
END_TEST

START_TEST(columns_go_into_metadata_props)
{
	nn_model *m = model_of(specs[2], 0);
	api_err e = API_ERR_INIT;
	uint8_t *a = NULL;
	size_t la = 0;
	const char *cols = "[{\"name\":\"x\",\"type\":\"numeric\"}]";
	ck_assert_int_eq(api_onnx_export(m, 13, cols, &a, &la, &e), 0);
	/* ModelProto field 14 holds {key, value} */
	pb_rd r = pb_reader(a, la);
	pb_field f;
	int found = 0;
	while (pb_next(&r, &f) == 1) {
		if (f.num != 14)
			continue;
		pb_rd q = pb_reader(f.data, f.len);
		pb_field kv;
		char key[32] = "", val[128] = "";
		while (pb_next(&q, &kv) == 1) {
			if (kv.num == 1)
				memcpy(key, kv.data, kv.len < 31 ? kv.len : 31);
			if (kv.num == 2)
				memcpy(val, kv.data, kv.len < 127 ? kv.len : 127);
		}
		found = strcmp(key, "nnd.columns") == 0 && strcmp(val, cols) == 0;
	}
	ck_assert(found);
	free(a);
	nn_model_free(m);
}
END_TEST

/* A one-node graph: input [N, 4] -> op -> output. */
static void one_node_graph(const char *op, pb_buf *model)
{
	pb_buf node = PB_INIT, graph = PB_INIT, ops = PB_INIT;
	pb_str(&node, 1, "x");
	pb_str(&node, 2, "y");
	pb_str(&node, 3, "/0/Thing");
	pb_str(&node, 4, op);
	pb_msg(&graph, 1, &node);
	const char *io[2] = { "x", "y" };
	for (int k = 0; k < 2; k++) {
		pb_buf d0 = PB_INIT, d1 = PB_INIT, sh = PB_INIT, tt = PB_INIT, ty = PB_INIT, vi = PB_INIT;
		pb_str(&d0, 2, "N");
		pb_int(&d1, 1, 4);
		pb_msg(&sh, 1, &d0);
		pb_msg(&sh, 1, &d1);
		pb_int(&tt, 1, 1);
		pb_msg(&tt, 2, &sh);
		pb_msg(&ty, 1, &tt);
		pb_str(&vi, 1, io[k]);
		pb_msg(&vi, 2, &ty);
		pb_msg(&graph, 11 + k, &vi);
	}
	pb_int(model, 1, 7);
	pb_msg(model, 7, &graph);
	pb_int(&ops, 2, 13);
	pb_msg(model, 8, &ops);
	ck_assert(model->ok);
}

START_TEST(an_unknown_operator_is_a_422_naming_node_and_op)
{
	pb_buf f = PB_INIT;
	one_node_graph("Conv", &f);
	api_err e = API_ERR_INIT;
	nn_model *m = NULL;
	api_limits lim = api_limits_default();
	ck_assert_int_eq(api_onnx_import(f.b, f.len, API_ONNX_TASK_AUTO, &lim, &m, &e), -1);
	ck_assert_ptr_null(m);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.code, "unsupported_onnx");
	ck_assert_ptr_nonnull(strstr(e.detail, "Conv"));
	ck_assert_ptr_nonnull(strstr(e.detail, "/0/Thing"));
	ck_assert_str_eq(e.fields[0].field, "graph.node[0]");
	pb_release(&f);
}
END_TEST

START_TEST(a_graph_ending_in_an_activation_is_refused)
{
	pb_buf f = PB_INIT;
	one_node_graph("Relu", &f);
	api_err e = API_ERR_INIT;
	nn_model *m = NULL;
	api_limits lim = api_limits_default();
	ck_assert_int_eq(api_onnx_import(f.b, f.len, API_ONNX_TASK_AUTO, &lim, &m, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_ptr_nonnull(strstr(e.detail, "must end with Gemm"));
	pb_release(&f);
}
END_TEST

START_TEST(softmax_with_task_regression_is_refused)
{
	nn_model *m = model_of(specs[0], 1);
	api_err e = API_ERR_INIT;
	uint8_t *a = NULL;
	size_t la = 0;
	ck_assert_int_eq(api_onnx_export(m, 13, NULL, &a, &la, &e), 0);
	nn_model *back = NULL;
	api_limits lim = api_limits_default();
	ck_assert_int_eq(api_onnx_import(a, la, NN_TASK_REGRESSION, &lim, &back, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_ptr_nonnull(strstr(e.detail, "Softmax"));
	/* a small --max-params refuses it before anything is allocated */
	api_err e2 = API_ERR_INIT;
	lim.max_params = 10;
	ck_assert_int_eq(api_onnx_import(a, la, API_ONNX_TASK_AUTO, &lim, &back, &e2), -1);
	ck_assert_int_eq(e2.status, 422);
	ck_assert_ptr_null(back);
	free(a);
	nn_model_free(m);
}
END_TEST

START_TEST(garbage_and_truncations_are_refused)
{
	api_limits lim = api_limits_default();
	nn_model *out = NULL;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_onnx_import("hello, world", 12, API_ONNX_TASK_AUTO, &lim, &out, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.code, "malformed_onnx");
	nn_model *m = model_of(specs[1], 1);
	uint8_t *a = NULL;
	size_t la = 0;
	ck_assert_int_eq(api_onnx_export(m, 15, NULL, &a, &la, &e), 0);
	int refused = 0;
	for (size_t cut = 0; cut < la; cut++) {
		api_err ec = API_ERR_INIT;
		int rc = api_onnx_import(a, cut, API_ONNX_TASK_AUTO, &lim, &out, &ec);
		if (rc == 0) {
			nn_model_free(out);
			continue;
		}
		ck_assert_ptr_null(out);
		ck_assert(ec.status == 400 || ec.status == 422);
		refused++;
	}
	ck_assert_int_eq(refused, (int)la);  /* any cut loses the graph's tail */
	/* single corrupted bytes: refused or read, never a crash */
	uint8_t *c = malloc(la);
	for (size_t i = 0; i < la; i += 7) {
		memcpy(c, a, la);
		c[i] ^= 0xA5;
		api_err ec = API_ERR_INIT;
		if (api_onnx_import(c, la, API_ONNX_TASK_AUTO, &lim, &out, &ec) == 0)
			nn_model_free(out);
		else
			ck_assert(ec.status == 400 || ec.status == 422);
	}
	free(c);
	free(a);
	nn_model_free(m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("onnx");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, every_layer_round_trips_at_every_opset);
	tcase_add_test(tc, opset_out_of_range_is_named);
	tcase_add_test(tc, columns_go_into_metadata_props);
	tcase_add_test(tc, an_unknown_operator_is_a_422_naming_node_and_op);
	tcase_add_test(tc, a_graph_ending_in_an_activation_is_refused);
	tcase_add_test(tc, softmax_with_task_regression_is_refused);
	tcase_add_test(tc, garbage_and_truncations_are_refused);
	suite_add_tcase(s, tc);
	return check_run(s);
}
