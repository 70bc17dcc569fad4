/*
 * test_forward_ref.c - the engine's forward pass and loss against PyTorch.
 *
 * For every case in $NND_SHARED/reference/pytorch_cases.json (NND_SHARED
 * defaults to ../shared): build the model from its spec, load the initial
 * weights into the tensor table, and compare nn_forward + nn_loss with the
 * first expected loss. Cases trained with plain sgd, momentum or adam are
 * also stepped here with a minimal optimizer over nn_backward's gradients,
 * checking every loss, the final weights and the predictions: that pins the
 * backward pass to PyTorch's autograd too. Plus dropout in both modes.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static cJSON *cases_root;

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	long n;
	char *s;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = malloc((size_t)n + 1);
	if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
		free(s);
		s = NULL;
	}
	if (s)
		s[n] = 0;
	fclose(f);
	return s;
}

static cJSON *load_cases(void)
{
	char path[1024];
	const char *shared = getenv("NND_SHARED");
	char *text;
	cJSON *root;

	snprintf(path, sizeof(path), "%s/reference/pytorch_cases.json", shared ? shared : "../shared");
	text = read_all(path);
	if (!text) {
		fprintf(stderr, "cannot read %s (set NND_SHARED)\n", path);
		return NULL;
	}
	root = cJSON_Parse(text);
	free(text);
	if (!root)
		fprintf(stderr, "cannot parse %s\n", path);
	return root;
}

static nn_act act_of(const char *s)
{
	static const char *names[] = { "identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh",
	                               "softplus", "gelu" };
	for (int i = 0; i < 8; i++)
		if (s && strcmp(s, names[i]) == 0)
			return (nn_act)i;
	ck_abort_msg("unknown activation %s", s ? s : "(null)");
	return NN_ACT_IDENTITY;
}

static double num(const cJSON *o, const char *k, double def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void parse_layers(const cJSON *arr, nn_layer_spec **out, int *n);

static nn_layer_spec parse_layer(const cJSON *j)
{
	const char *type = str(j, "type");
	nn_layer_spec l;

	ck_assert_ptr_nonnull(type);
	if (strcmp(type, "dense") == 0) {
		l = nn_layer_default(NN_LAYER_DENSE);
		l.units = (int)num(j, "units", 0);
		l.act = str(j, "activation") ? act_of(str(j, "activation")) : NN_ACT_IDENTITY;
		l.alpha = (float)num(j, "alpha", 0);
		l.bias = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "bias"));
	} else if (strcmp(type, "activation") == 0) {
		l = nn_layer_default(NN_LAYER_ACTIVATION);
		l.act = act_of(str(j, "function"));
		l.alpha = (float)num(j, "alpha", 0);
	} else if (strcmp(type, "batch_norm") == 0) {
		l = nn_layer_default(NN_LAYER_BATCH_NORM);
		l.momentum = (float)num(j, "momentum", 0.1);
		l.eps = (float)num(j, "eps", 1e-5);
	} else if (strcmp(type, "dropout") == 0) {
		l = nn_layer_default(NN_LAYER_DROPOUT);
		l.rate = (float)num(j, "rate", 0);
		l.mode = str(j, "mode") && strcmp(str(j, "mode"), "scale_at_test") == 0
		         ? NN_DROPOUT_SCALE_AT_TEST : NN_DROPOUT_INVERTED;
	} else {
		ck_assert_str_eq(type, "residual");
		l = nn_layer_default(NN_LAYER_RESIDUAL);
		l.projection = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "projection"));
		parse_layers(cJSON_GetObjectItemCaseSensitive(j, "layers"), &l.children, &l.n_children);
	}
	return l;
}

static void parse_layers(const cJSON *arr, nn_layer_spec **out, int *n)
{
	int i = 0;
	const cJSON *e;

	*n = cJSON_GetArraySize(arr);
	*out = calloc((size_t)(*n > 0 ? *n : 1), sizeof(**out));
	cJSON_ArrayForEach(e, arr)
		(*out)[i++] = parse_layer(e);
}

static nn_model *model_of(const cJSON *c)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(c, "model");
	nn_model_spec spec;
	nn_model *m;
	char err[256];

	memset(&spec, 0, sizeof(spec));
	spec.task = strcmp(str(j, "task"), "regression") == 0 ? NN_TASK_REGRESSION
	                                                       : NN_TASK_CLASSIFICATION;
	spec.inputs = (int)num(j, "inputs", 0);
	spec.outputs = (int)num(j, "outputs", 0);
	spec.seed = 1;
	parse_layers(cJSON_GetObjectItemCaseSensitive(j, "layers"), &spec.layers, &spec.n_layers);
	m = nn_model_create(&spec, err, sizeof(err));
	ck_assert_msg(m != NULL, "%s: %s", str(c, "name"), err);
	nn_layers_free(spec.layers, spec.n_layers);
	return m;
}

/* Walks a weights document in tensor-table order. compare = 0 loads the
 * values into m; compare = 1 checks them (absolute tol) and returns the
 * largest difference. */
static double walk_tensor(const cJSON *vals, nn_tensor t, int compare)
{
	double worst = 0;
	int k = 0;
	const cJSON *row, *v;

	ck_assert_ptr_nonnull(vals);
	if (t.kind == NN_T_WEIGHT) {
		ck_assert_int_eq(cJSON_GetArraySize(vals), t.rows);
		cJSON_ArrayForEach(row, vals) {
			ck_assert_int_eq(cJSON_GetArraySize(row), t.cols);
			cJSON_ArrayForEach(v, row) {
				if (compare)
					worst = fmax(worst, fabs(t.data[k] - v->valuedouble));
				else
					t.data[k] = (float)v->valuedouble;
				k++;
			}
		}
	} else {
		ck_assert_int_eq(cJSON_GetArraySize(vals), t.cols);
		cJSON_ArrayForEach(v, vals) {
			if (compare)
				worst = fmax(worst, fabs(t.data[k] - v->valuedouble));
			else
				t.data[k] = (float)v->valuedouble;
			k++;
		}
	}
	return worst;
}

static double walk_weights(const cJSON *layers, const nn_model *m, int *ti, int compare)
{
	static const char *bn_keys[] = { "gamma", "beta", "running_mean", "running_var" };
	const cJSON *l;
	double worst = 0;

	cJSON_ArrayForEach(l, layers) {
		const char *type = str(l, "type");
		if (strcmp(type, "dense") == 0) {
			worst = fmax(worst, walk_tensor(cJSON_GetObjectItemCaseSensitive(l, "weight"),
			                                 nn_model_tensor(m, (*ti)++), compare));
			if (cJSON_GetObjectItemCaseSensitive(l, "bias"))
				worst = fmax(worst, walk_tensor(cJSON_GetObjectItemCaseSensitive(l, "bias"),
				                                 nn_model_tensor(m, (*ti)++), compare));
		} else if (strcmp(type, "batch_norm") == 0) {
			for (int i = 0; i < 4; i++)
				worst = fmax(worst, walk_tensor(cJSON_GetObjectItemCaseSensitive(l, bn_keys[i]),
				                                 nn_model_tensor(m, (*ti)++), compare));
		} else if (strcmp(type, "residual") == 0) {
			worst = fmax(worst, walk_weights(cJSON_GetObjectItemCaseSensitive(l, "layers"), m,
			                                 ti, compare));
			if (cJSON_GetObjectItemCaseSensitive(l, "projection"))
				worst = fmax(worst,
				             walk_tensor(cJSON_GetObjectItemCaseSensitive(l, "projection"),
				                         nn_model_tensor(m, (*ti)++), compare));
		}
	}
	return worst;
}

typedef struct ref_data {
	int rows;
	float *x;
	int32_t *labels;
	float *targets;
} ref_data;

static ref_data data_of(const cJSON *c, const nn_model *m)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "data");
	const cJSON *xs = cJSON_GetObjectItemCaseSensitive(d, "x");
	const cJSON *ys = cJSON_GetObjectItemCaseSensitive(d, "y");
	const nn_model_spec *s = nn_model_spec_of(m);
	ref_data r;
	const cJSON *row, *v;
	int i = 0, k = 0;

	memset(&r, 0, sizeof(r));
	r.rows = cJSON_GetArraySize(xs);
	r.x = malloc(sizeof(float) * (size_t)r.rows * (size_t)s->inputs);
	cJSON_ArrayForEach(row, xs) {
		ck_assert_int_eq(cJSON_GetArraySize(row), s->inputs);
		cJSON_ArrayForEach(v, row)
			r.x[k++] = (float)v->valuedouble;
	}
	ck_assert_int_eq(cJSON_GetArraySize(ys), r.rows);
	if (s->task == NN_TASK_CLASSIFICATION) {
		r.labels = malloc(sizeof(int32_t) * (size_t)r.rows);
		cJSON_ArrayForEach(v, ys)
			r.labels[i++] = (int32_t)v->valueint;
	} else {
		r.targets = malloc(sizeof(float) * (size_t)r.rows * (size_t)s->outputs);
		k = 0;
		cJSON_ArrayForEach(row, ys) {
			if (cJSON_IsNumber(row)) {
				r.targets[k++] = (float)row->valuedouble;
				continue;
			}
			cJSON_ArrayForEach(v, row)
				r.targets[k++] = (float)v->valuedouble;
		}
		ck_assert_int_eq(k, r.rows * s->outputs);
	}
	return r;
}

static void data_free(ref_data *r)
{
	free(r->x);
	free(r->labels);
	free(r->targets);
}

static int rel_close(double got, double want, double tol)
{
	return fabs(got - want) <= tol * fmax(fabs(want), 1e-3);
}

START_TEST(test_first_loss_matches_pytorch_for_every_case)
{
	const cJSON *c;
	int n_cases = 0;

	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(cases_root, "cases")) {
		nn_model *m = model_of(c);
		ref_data d = data_of(c, m);
		nn_ws *w = nn_ws_create(m, d.rows);
		nn_rng rng;
		int ti = 0;
		const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "expected");
		double want = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(exp, "losses"), 0)
		              ->valuedouble;
		float loss;

		walk_weights(cJSON_GetObjectItemCaseSensitive(
		                     cJSON_GetObjectItemCaseSensitive(c, "initial_weights"), "layers"),
		             m, &ti, 0);
		ck_assert_int_eq(ti, nn_model_tensor_count(m));
		nn_rng_seed(&rng, 1);
		ck_assert_ptr_nonnull(nn_forward(m, w, d.x, d.rows, 1, &rng));
		loss = nn_loss(m, w, d.labels, d.targets, d.rows, 0);
		ck_assert_msg(rel_close(loss, want, 1e-4), "%s: loss %.8g, PyTorch %.8g",
		              str(c, "name"), loss, want);
		nn_ws_free(w);
		data_free(&d);
		nn_model_free(m);
		n_cases++;
	}
	ck_assert_int_ge(n_cases, 11);
}
END_TEST

/* A minimal optimizer, PyTorch's rules, for the cases that use one of these. */
typedef struct mini_opt {
	int type; /* 0 sgd, 1 momentum, 2 adam */
	double lr, mu, b1, b2, eps;
	float *s1, *s2;
	int t;
} mini_opt;

static void opt_step(mini_opt *o, float *p, const float *g, int64_t n)
{
	o->t++;
	for (int64_t i = 0; i < n; i++) {
		if (o->type == 0) {
			p[i] -= (float)o->lr * g[i];
		} else if (o->type == 1) {
			o->s1[i] = o->t == 1 ? g[i] : (float)o->mu * o->s1[i] + g[i];
			p[i] -= (float)o->lr * o->s1[i];
		} else {
			double bc1 = 1 - pow(o->b1, o->t), bc2 = 1 - pow(o->b2, o->t);
			o->s1[i] = (float)o->b1 * o->s1[i] + (1 - (float)o->b1) * g[i];
			o->s2[i] = (float)o->b2 * o->s2[i] + (1 - (float)o->b2) * g[i] * g[i];
			p[i] -= (float)(o->lr / bc1 * o->s1[i] / (sqrt(o->s2[i]) / sqrt(bc2) + o->eps));
		}
	}
}

START_TEST(test_training_steps_match_pytorch_for_sgd_momentum_adam_cases)
{
	const cJSON *c;
	int n_run = 0;

	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(cases_root, "cases")) {
		const cJSON *train = cJSON_GetObjectItemCaseSensitive(c, "train");
		const cJSON *opt = cJSON_GetObjectItemCaseSensitive(train, "optimizer");
		const char *ot = str(opt, "type");
		const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "expected");
		const cJSON *losses = cJSON_GetObjectItemCaseSensitive(exp, "losses");
		mini_opt o;
		nn_model *m;
		ref_data d;
		nn_ws *w;
		nn_scratch *sc;
		nn_rng rng;
		int ti = 0, epochs = (int)num(train, "epochs", 0);
		int64_t np;
		float *params, *pred;
		double worst;

		memset(&o, 0, sizeof(o));
		if (num(train, "l2", 0) != 0)
			continue;
		if (strcmp(ot, "sgd") == 0)
			o.type = 0;
		else if (strcmp(ot, "momentum") == 0)
			o.type = 1;
		else if (strcmp(ot, "adam") == 0)
			o.type = 2;
		else
			continue;
		o.lr = num(opt, "lr", 0.01);
		o.mu = num(opt, "momentum", 0.9);
		o.b1 = num(opt, "beta1", 0.9);
		o.b2 = num(opt, "beta2", 0.999);
		o.eps = num(opt, "eps", 1e-8);
		m = model_of(c);
		d = data_of(c, m);
		w = nn_ws_create(m, d.rows);
		walk_weights(cJSON_GetObjectItemCaseSensitive(
		                     cJSON_GetObjectItemCaseSensitive(c, "initial_weights"), "layers"),
		             m, &ti, 0);
		params = nn_model_params(m, &np);
		o.s1 = calloc((size_t)np, sizeof(float));
		o.s2 = calloc((size_t)np, sizeof(float));
		nn_rng_seed(&rng, 1);
		ck_assert_int_eq(cJSON_GetArraySize(losses), epochs);
		for (int e = 0; e < epochs; e++) {
			float loss;
			ck_assert_ptr_nonnull(nn_forward(m, w, d.x, d.rows, 1, &rng));
			loss = nn_loss(m, w, d.labels, d.targets, d.rows, 1);
			ck_assert_msg(rel_close(loss, cJSON_GetArrayItem(losses, e)->valuedouble, 1e-4),
			              "%s epoch %d: loss %.8g, PyTorch %.8g", str(c, "name"), e, loss,
			              cJSON_GetArrayItem(losses, e)->valuedouble);
			nn_backward(m, w, d.rows);
			opt_step(&o, params, nn_ws_grads(w), np);
		}
		ti = 0;
		worst = walk_weights(cJSON_GetObjectItemCaseSensitive(
		                             cJSON_GetObjectItemCaseSensitive(exp, "weights"), "layers"),
		                     m, &ti, 1);
		ck_assert_msg(worst < 1e-4, "%s: weights differ by %g", str(c, "name"), worst);
		/* inference-mode predictions */
		pred = malloc(sizeof(float) * (size_t)d.rows * (size_t)nn_model_spec_of(m)->outputs);
		sc = nn_scratch_create(m, 5);
		ck_assert_int_eq(nn_predict(m, sc, d.x, d.rows, pred), NN_OK);
		{
			const cJSON *row, *v;
			int k = 0;
			cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(exp, "predictions")) {
				cJSON_ArrayForEach(v, row) {
					ck_assert_msg(fabs(pred[k] - v->valuedouble) <=
					              1e-4 * fabs(v->valuedouble) + 1e-5,
					              "%s: prediction %d %.8g, PyTorch %.8g", str(c, "name"), k,
					              pred[k], v->valuedouble);
					k++;
				}
			}
			ck_assert_int_eq(k, d.rows * nn_model_spec_of(m)->outputs);
		}
		free(pred);
		nn_scratch_free(sc);
		free(o.s1);
		free(o.s2);
		nn_ws_free(w);
		data_free(&d);
		nn_model_free(m);
		n_run++;
	}
	ck_assert_int_ge(n_run, 5);
}
END_TEST

/* ---------------------------------------------------------------- dropout */

/* inputs = outputs = W with a dropout layer and an identity output layer, so
 * the model's output is the dropout layer's output. */
static nn_model *dropout_model(int width, float rate, nn_dropout_mode mode)
{
	nn_layer_spec l = nn_layer_default(NN_LAYER_DROPOUT);
	nn_model_spec spec = { NN_TASK_REGRESSION, width, width, NN_INIT_AUTO, 3, &l, 1 };
	nn_model *m;
	nn_tensor t;

	l.rate = rate;
	l.mode = mode;
	m = nn_model_create(&spec, NULL, 0);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(nn_model_tensor_count(m), 2);
	t = nn_model_tensor(m, 0);
	memset(t.data, 0, sizeof(float) * (size_t)width * width);
	for (int i = 0; i < width; i++)
		t.data[i * width + i] = 1.0f;
	t = nn_model_tensor(m, 1);
	memset(t.data, 0, sizeof(float) * (size_t)width);
	return m;
}

static void check_dropout_mode(nn_dropout_mode mode)
{
	const int width = 100, rows = 1000;
	const float p = 0.3f;
	nn_model *m = dropout_model(width, p, mode);
	nn_ws *w = nn_ws_create(m, rows);
	float *x = malloc(sizeof(float) * rows * width);
	const float *y;
	nn_rng rng;
	int64_t dropped = 0, len = (int64_t)rows * width;
	double sum_in = 0, sum_out = 0;
	float keep = mode == NN_DROPOUT_INVERTED ? 1.0f / (1.0f - p) : 1.0f;
	float test_scale = mode == NN_DROPOUT_INVERTED ? 1.0f : 1.0f - p;

	nn_rng_seed(&rng, 99);
	for (int64_t i = 0; i < len; i++) {
		x[i] = 0.5f + nn_rng_uniform(&rng);
		sum_in += x[i];
	}
	nn_rng_seed(&rng, 5);
	y = nn_forward(m, w, x, rows, 1, &rng);
	ck_assert_ptr_nonnull(y);
	for (int64_t i = 0; i < len; i++) {
		if (y[i] == 0.0f)
			dropped++;
		else
			ck_assert_float_eq_tol(y[i], x[i] * keep, 1e-5f * fabsf(x[i] * keep));
		sum_out += y[i];
	}
	/* fraction dropped: p within 5 standard deviations of a binomial */
	ck_assert_double_le(fabs((double)dropped / len - p), 5 * sqrt(p * (1 - p) / len));
	/* expectation: inverted keeps E[y] = E[x] in training; scale_at_test
	 * gives (1 - p) E[x] in training, which inference reproduces exactly */
	ck_assert_double_le(fabs(sum_out / sum_in - (1 - p) * keep), 0.01);
	/* the mask is the generator's stream in row-major order */
	{
		nn_rng r2;
		nn_rng_seed(&r2, 5);
		for (int64_t i = 0; i < len; i++)
			ck_assert_int_eq(nn_rng_uniform(&r2) < p, y[i] == 0.0f);
	}
	/* inference */
	y = nn_forward(m, w, x, rows, 0, NULL);
	ck_assert_ptr_nonnull(y);
	for (int64_t i = 0; i < len; i++)
		ck_assert_float_eq_tol(y[i], x[i] * test_scale, 1e-6f);
	free(x);
	nn_ws_free(w);
	nn_model_free(m);
}

START_TEST(test_dropout_inverted_drops_p_scales_kept_and_is_identity_at_inference)
{
	check_dropout_mode(NN_DROPOUT_INVERTED);
}
END_TEST

START_TEST(test_dropout_scale_at_test_drops_p_and_scales_by_keep_at_inference)
{
	check_dropout_mode(NN_DROPOUT_SCALE_AT_TEST);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("forward_ref");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_first_loss_matches_pytorch_for_every_case);
	tcase_add_test(tc, test_training_steps_match_pytorch_for_sgd_momentum_adam_cases);
	tcase_add_test(tc, test_dropout_inverted_drops_p_scales_kept_and_is_identity_at_inference);
	tcase_add_test(tc, test_dropout_scale_at_test_drops_p_and_scales_by_keep_at_inference);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	cases_root = load_cases();
	if (!cases_root)
		return EXIT_FAILURE;
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	cJSON_Delete(cases_root);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
