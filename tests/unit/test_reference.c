/*
 * test_reference.c - every case of shared/reference/pytorch_cases.json run
 * through nn_train, against PyTorch 1.13's numbers (float64): the loss
 * before each step to 1e-4 relative, the weights and running statistics
 * after training to 1e-4 absolute, and the inference-mode predictions to
 * 1e-4 relative.
 *
 * The file is read from $NND_SHARED/reference/pytorch_cases.json (NND_SHARED
 * defaults to ../shared, relative to the repository root the tests run from).
 * The spec and config parsing here is deliberately small and separate from
 * api/, so an engine failure cannot hide behind a parser bug or vice versa.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "par_fixture.h"

static cJSON *cases;

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = 0;
	fclose(f);
	return buf;
}

static void load_cases(void)
{
	const char *shared = getenv("NND_SHARED");
	char path[1024];
	snprintf(path, sizeof path, "%s/reference/pytorch_cases.json", shared ? shared : "../shared");
	char *text = slurp(path);
	ck_assert_msg(text != NULL, "cannot read %s", path);
	cases = cJSON_Parse(text);
	free(text);
	ck_assert_msg(cases != NULL, "cannot parse %s", path);
}

static double num(const cJSON *o, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static nn_act act_of(const char *s)
{
	static const char *names[] = { "identity", "relu", "leaky_relu", "elu", "sigmoid",
	                               "tanh", "softplus", "gelu" };
	if (!s)
		return NN_ACT_IDENTITY;
	for (int i = 0; i < 8; i++)
		if (strcmp(s, names[i]) == 0)
			return (nn_act)i;
	ck_abort_msg("unknown activation %s", s);
	return NN_ACT_IDENTITY;
}

static void parse_layers(const cJSON *arr, nn_layer_spec **out, int *n)
{
	int k = cJSON_GetArraySize(arr);
	nn_layer_spec *ls = calloc((size_t)k + 1, sizeof *ls);
	ck_assert_ptr_nonnull(ls);
	for (int i = 0; i < k; i++) {
		const cJSON *j = cJSON_GetArrayItem(arr, i);
		const char *type = str(j, "type");
		ck_assert_ptr_nonnull(type);
		if (strcmp(type, "dense") == 0) {
			ls[i] = nn_layer_default(NN_LAYER_DENSE);
			ls[i].units = (int)num(j, "units", 0);
			ls[i].act = act_of(str(j, "activation"));
			ls[i].alpha = (float)num(j, "alpha", 0);
			ls[i].bias = cJSON_IsFalse(cJSON_GetObjectItem(j, "bias")) ? 0 : 1;
		} else if (strcmp(type, "activation") == 0) {
			ls[i] = nn_layer_default(NN_LAYER_ACTIVATION);
			ls[i].act = act_of(str(j, "function"));
			ls[i].alpha = (float)num(j, "alpha", 0);
		} else if (strcmp(type, "batch_norm") == 0) {
			ls[i] = nn_layer_default(NN_LAYER_BATCH_NORM);
			ls[i].momentum = (float)num(j, "momentum", 0.1);
			ls[i].eps = (float)num(j, "eps", 1e-5);
		} else if (strcmp(type, "dropout") == 0) {
			ls[i] = nn_layer_default(NN_LAYER_DROPOUT);
			ls[i].rate = (float)num(j, "rate", 0);
		} else if (strcmp(type, "residual") == 0) {
			ls[i] = nn_layer_default(NN_LAYER_RESIDUAL);
			ls[i].projection = cJSON_IsTrue(cJSON_GetObjectItem(j, "projection"));
			parse_layers(cJSON_GetObjectItem(j, "layers"), &ls[i].children,
			             &ls[i].n_children);
		} else {
			ck_abort_msg("unknown layer type %s", type);
		}
	}
	*out = ls;
	*n = k;
}

/* Appends the numbers of a (nested) array to v. */
static void flatten(const cJSON *a, double *v, int *n, int cap)
{
	if (cJSON_IsNumber(a)) {
		ck_assert_int_lt(*n, cap);
		v[(*n)++] = a->valuedouble;
		return;
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, a)
		flatten(e, v, n, cap);
}

/* The weights JSON in the engine's tensor order: per layer, pre-order,
 * dense weight, bias; batch norm gamma, beta, running mean and variance;
 * a residual's children, then its projection. */
static void weights_flat(const cJSON *layers, double *v, int *n, int cap)
{
	static const char *keys[] = { "weight", "bias", "gamma", "beta", "running_mean",
	                              "running_var" };
	const cJSON *l;
	cJSON_ArrayForEach(l, layers) {
		const char *type = str(l, "type");
		if (type && strcmp(type, "residual") == 0) {
			weights_flat(cJSON_GetObjectItem(l, "layers"), v, n, cap);
			const cJSON *p = cJSON_GetObjectItem(l, "projection");
			if (p)
				flatten(p, v, n, cap);
			continue;
		}
		for (int k = 0; k < 6; k++) {
			const cJSON *a = cJSON_GetObjectItem(l, keys[k]);
			if (a)
				flatten(a, v, n, cap);
		}
	}
}

static int64_t model_values(const nn_model *m)
{
	int64_t total = 0;
	for (int i = 0; i < nn_model_tensor_count(m); i++) {
		nn_tensor t = nn_model_tensor(m, i);
		total += (int64_t)t.rows * t.cols;
	}
	return total;
}

static nn_opt_type opt_of(const char *s)
{
	static const char *names[] = { "sgd", "momentum", "nesterov", "adagrad", "rmsprop",
	                               "adam", "adamw" };
	for (int i = 0; i < 7; i++)
		if (s && strcmp(s, names[i]) == 0)
			return (nn_opt_type)i;
	ck_abort_msg("unknown optimizer %s", s ? s : "(null)");
	return NN_OPT_SGD;
}

typedef struct losses {
	float v[1024];
	int n;
} losses;

static void on_step(void *ctx, const nn_step_record *r)
{
	losses *l = ctx;
	if (l->n < 1024)
		l->v[l->n++] = r->loss;
}

/* Case idx with its batches cut into `shards` slices, carried by as many
 * threads (shards 1: today's engine): the same mathematics as one batch. */
static void run_case(int idx, int shards)
{
	const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(cases, "cases"), idx);
	const char *name = str(c, "name");
	const cJSON *mj = cJSON_GetObjectItem(c, "model");
	const cJSON *tj = cJSON_GetObjectItem(c, "train");
	const cJSON *dj = cJSON_GetObjectItem(c, "data");
	const cJSON *ej = cJSON_GetObjectItem(c, "expected");

	/* the model */
	nn_model_spec spec;
	memset(&spec, 0, sizeof spec);
	spec.task = strcmp(str(mj, "task"), "regression") == 0 ? NN_TASK_REGRESSION
	                                                        : NN_TASK_CLASSIFICATION;
	spec.inputs = (int)num(mj, "inputs", 0);
	spec.outputs = (int)num(mj, "outputs", 0);
	spec.init = NN_INIT_AUTO;
	spec.seed = 1;
	parse_layers(cJSON_GetObjectItem(mj, "layers"), &spec.layers, &spec.n_layers);
	char err[256] = "";
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	ck_assert_msg(m != NULL, "%s: nn_model_create: %s", name, err);
	nn_layers_free(spec.layers, spec.n_layers);

	/* initial weights, in tensor order */
	int64_t nv = model_values(m);
	double *w0 = malloc(sizeof(double) * (size_t)nv);
	int got = 0;
	weights_flat(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "initial_weights"), "layers"), w0,
	             &got, (int)nv);
	ck_assert_int_eq(got, nv);
	int at = 0;
	for (int i = 0; i < nn_model_tensor_count(m); i++) {
		nn_tensor t = nn_model_tensor(m, i);
		for (int k = 0; k < t.rows * t.cols; k++)
			t.data[k] = (float)w0[at++];
	}

	/* the data */
	const cJSON *xj = cJSON_GetObjectItem(dj, "x"), *yj = cJSON_GetObjectItem(dj, "y");
	int rows = cJSON_GetArraySize(xj);
	float *x = malloc(sizeof(float) * (size_t)rows * (size_t)spec.inputs);
	int32_t *labels = NULL;
	float *targets = NULL;
	for (int r = 0; r < rows; r++)
		for (int k = 0; k < spec.inputs; k++)
			x[r * spec.inputs + k] =
				(float)cJSON_GetArrayItem(cJSON_GetArrayItem(xj, r), k)->valuedouble;
	if (spec.task == NN_TASK_CLASSIFICATION) {
		labels = malloc(sizeof(int32_t) * (size_t)rows);
		for (int r = 0; r < rows; r++)
			labels[r] = cJSON_GetArrayItem(yj, r)->valueint;
	} else {
		targets = malloc(sizeof(float) * (size_t)rows * (size_t)spec.outputs);
		for (int r = 0; r < rows; r++)
			for (int k = 0; k < spec.outputs; k++)
				targets[r * spec.outputs + k] = (float)cJSON_GetArrayItem(
					cJSON_GetArrayItem(yj, r), k)->valuedouble;
	}
	nn_data d = { rows, spec.inputs, spec.outputs, x, labels, targets, 0, 0, 0, NULL };

	/* the job */
	nn_train_config cfg = nn_train_config_default();
	const cJSON *oj = cJSON_GetObjectItem(tj, "optimizer");
	cfg.epochs = (int)num(tj, "epochs", 1);
	cfg.batch_size = (int)num(tj, "batch_size", 32);
	cfg.shuffle = cJSON_IsTrue(cJSON_GetObjectItem(tj, "shuffle"));
	cfg.standardize = cJSON_IsTrue(cJSON_GetObjectItem(tj, "standardize"));
	cfg.bn_stats = strcmp(str(tj, "batch_norm_stats"), "running") == 0 ? NN_BN_RUNNING
	                                                                  : NN_BN_POPULATION;
	cfg.l2 = (float)num(tj, "l2", 0);
	cfg.opt = nn_optimizer_default(opt_of(str(oj, "type")));
	cfg.opt.lr = (float)num(oj, "lr", cfg.opt.lr);
	cfg.opt.momentum = (float)num(oj, "momentum", cfg.opt.momentum);
	cfg.opt.beta1 = (float)num(oj, "beta1", cfg.opt.beta1);
	cfg.opt.beta2 = (float)num(oj, "beta2", cfg.opt.beta2);
	cfg.opt.eps = (float)num(oj, "eps", cfg.opt.eps);
	cfg.opt.rho = (float)num(oj, "rho", cfg.opt.rho);
	cfg.opt.weight_decay = (float)num(oj, "weight_decay", cfg.opt.weight_decay);
	cfg.log_every_steps = 1;
	cfg.checkpoint_every_epochs = 0;

	losses l = { .n = 0 };
	nn_callbacks cb = { .ctx = &l, .on_step = on_step };
	nn_parallel par = par_threads(&shards);
	cfg.shards = cfg.replicas = shards;
	if (shards > 1)
		cfg.par = &par;
	nn_train_result res;
	nn_model *m0 = shards > 1 ? nn_model_clone(m) : NULL;
	nn_status st = nn_train(m, &d, NULL, &cfg, &cb, NULL, 0, &res, err, sizeof err);
	ck_assert_msg(st == NN_OK, "%s: nn_train: %s", name, err);
	if (m0) {
		/* the same shards as processes (MPI ranks' carrier): each
		 * replica ends with the threads' bits */
		nn_model *ms[8];
		int64_t np, ns;
		const float *p = nn_model_params(m, &np), *q = nn_model_state(m, &ns);
		cfg.par = NULL;
		st = par_procs_train(m0, &d, cfg, shards, ms, NULL, err, sizeof err);
		ck_assert_msg(st == NN_OK, "%s: as processes: %s", name, err);
		for (int r = 0; r < shards; r++) {
			ck_assert_msg(memcmp(p, nn_model_params(ms[r], NULL), sizeof(float) * np) == 0 &&
			              memcmp(q, nn_model_state(ms[r], NULL), sizeof(float) * ns) == 0,
			              "%s: shards %d as processes: replica %d has other weights",
			              name, shards, r);
			nn_model_free(ms[r]);
		}
		nn_model_free(m0);
	}

	/* losses */
	const cJSON *el = cJSON_GetObjectItem(ej, "losses");
	ck_assert_int_eq(l.n, cJSON_GetArraySize(el));
	for (int i = 0; i < l.n; i++) {
		double want = cJSON_GetArrayItem(el, i)->valuedouble;
		ck_assert_msg(fabs(l.v[i] - want) <= 1e-4 * fabs(want) + 1e-7,
		              "%s: loss of epoch %d: %.9g, PyTorch %.9g", name, i, l.v[i], want);
	}

	/* weights and running statistics */
	got = 0;
	weights_flat(cJSON_GetObjectItem(cJSON_GetObjectItem(ej, "weights"), "layers"), w0, &got,
	             (int)nv);
	ck_assert_int_eq(got, nv);
	at = 0;
	for (int i = 0; i < nn_model_tensor_count(m); i++) {
		nn_tensor t = nn_model_tensor(m, i);
		for (int k = 0; k < t.rows * t.cols; k++, at++)
			ck_assert_msg(fabs(t.data[k] - w0[at]) <= 1e-4,
			              "%s: %s tensor %d value %d: %.9g, PyTorch %.9g", name, t.path,
			              i, k, t.data[k], w0[at]);
	}

	/* predictions */
	const cJSON *pj = cJSON_GetObjectItem(ej, "predictions");
	float *out = malloc(sizeof(float) * (size_t)rows * (size_t)spec.outputs);
	nn_scratch *s = nn_scratch_create(m, 4);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(nn_predict(m, s, x, rows, out), NN_OK);
	for (int r = 0; r < rows; r++)
		for (int k = 0; k < spec.outputs; k++) {
			double want = cJSON_GetArrayItem(cJSON_GetArrayItem(pj, r), k)->valuedouble;
			double have = out[r * spec.outputs + k];
			ck_assert_msg(fabs(have - want) <= 1e-4 * fabs(want) + 1e-6,
			              "%s: prediction [%d][%d]: %.9g, PyTorch %.9g", name, r, k,
			              have, want);
		}

	nn_scratch_free(s);
	free(out);
	free(w0);
	free(x);
	free(labels);
	free(targets);
	nn_model_free(m);
}

START_TEST(test_reference_case_matches_pytorch)
{
	load_cases();
	run_case(_i, 1);
	cJSON_Delete(cases);
	cases = NULL;
}
END_TEST

/* Loop index i: case i % 11 with 2 shards, then with 4 (threads 2, 4). */
START_TEST(test_reference_case_in_shards_matches_pytorch)
{
	load_cases();
	run_case(_i % 11, _i < 11 ? 2 : 4);
	cJSON_Delete(cases);
	cases = NULL;
}
END_TEST

START_TEST(test_reference_file_has_cases)
{
	load_cases();
	ck_assert_int_ge(cJSON_GetArraySize(cJSON_GetObjectItem(cases, "cases")), 11);
	cJSON_Delete(cases);
	cases = NULL;
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reference");
	TCase *tc = tcase_create("pytorch");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reference_file_has_cases);
	/* one test per case, so a failure names its case index */
	tcase_add_loop_test(tc, test_reference_case_matches_pytorch, 0, 11);
	tcase_add_loop_test(tc, test_reference_case_in_shards_matches_pytorch, 0, 22);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
