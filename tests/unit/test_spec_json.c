/*
 * test_spec_json.c - model specs, job configs and weights as JSON
 * (api/spec_json.c): exact parsed values and defaults, every bad field named
 * by its path in one reply, limits checked before allocation, stored
 * documents that read back to themselves, and weights that either match the
 * model exactly or change nothing (checked on the PyTorch reference cases).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spec_json.h"
#include "check_main.h"

/* Single quotes stand for double quotes, to keep the JSON readable. */
static cJSON *J(const char *s)
{
	char *t = strdup(s);
	for (char *p = t; *p; p++)
		if (*p == '\'')
			*p = '"';
	cJSON *j = cJSON_Parse(t);
	free(t);
	ck_assert_msg(j != NULL, "bad test JSON: %.200s", s);
	return j;
}

static int spec(const char *s, nn_model_spec *out, char **name, api_err *e)
{
	cJSON *j = J(s);
	*e = (api_err)API_ERR_INIT;
	api_limits lim = api_limits_default();
	int r = api_model_spec_from_json(j, &lim, out, name, e);
	cJSON_Delete(j);
	return r;
}

/* Asserts the error list holds (path, message). */
static void has_field(const api_err *e, const char *path, const char *msg)
{
	for (int i = 0; i < e->n_fields; i++)
		if (strcmp(e->fields[i].field, path) == 0) {
			ck_assert_str_eq(e->fields[i].message, msg);
			return;
		}
	char all[4096] = "";
	for (int i = 0; i < e->n_fields; i++) {
		strcat(all, e->fields[i].field);
		strcat(all, ": ");
		strcat(all, e->fields[i].message);
		strcat(all, "; ");
	}
	ck_abort_msg("no error for %s (have: %s)", path, all);
}

static void spec_fails(const char *s, const char *path, const char *msg)
{
	nn_model_spec m;
	char *name;
	api_err e;
	ck_assert_int_eq(spec(s, &m, &name, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.code, "validation_failed");
	ck_assert_ptr_null(m.layers);
	ck_assert_ptr_null(name);
	has_field(&e, path, msg);
}

static const char *API_MODEL =
	"{'name': 'fmnist-mlp', 'task': 'classification', 'inputs': 784, 'outputs': 10,"
	" 'init': 'auto', 'seed': 7,"
	" 'layers': ["
	"  {'type': 'dense', 'units': 256, 'activation': 'relu', 'init': 'he_uniform'},"
	"  {'type': 'batch_norm', 'momentum': 0.1, 'eps': 1e-5},"
	"  {'type': 'dropout', 'rate': 0.2, 'mode': 'inverted'},"
	"  {'type': 'residual', 'layers': [{'type': 'dense', 'units': 256, 'activation': 'relu'},"
	"                                  {'type': 'dense', 'units': 256}]},"
	"  {'type': 'activation', 'function': 'tanh'}"
	" ]}";

START_TEST(test_api_example_model_parses)
{
	nn_model_spec m;
	char *name;
	api_err e;
	ck_assert_int_eq(spec(API_MODEL, &m, &name, &e), 0);
	ck_assert_str_eq(name, "fmnist-mlp");
	ck_assert_int_eq(m.task, NN_TASK_CLASSIFICATION);
	ck_assert_int_eq(m.inputs, 784);
	ck_assert_int_eq(m.outputs, 10);
	ck_assert_int_eq(m.init, NN_INIT_AUTO);
	ck_assert_uint_eq(m.seed, 7);
	ck_assert_int_eq(m.n_layers, 5);
	ck_assert_int_eq(m.layers[0].type, NN_LAYER_DENSE);
	ck_assert_int_eq(m.layers[0].units, 256);
	ck_assert_int_eq(m.layers[0].act, NN_ACT_RELU);
	ck_assert_int_eq(m.layers[0].init, NN_INIT_HE_UNIFORM);
	ck_assert_int_eq(m.layers[0].bias, 1);
	ck_assert_int_eq(m.layers[1].type, NN_LAYER_BATCH_NORM);
	ck_assert_float_eq(m.layers[1].momentum, 0.1f);
	ck_assert_float_eq(m.layers[1].eps, 1e-5f);
	ck_assert_int_eq(m.layers[2].type, NN_LAYER_DROPOUT);
	ck_assert_float_eq(m.layers[2].rate, 0.2f);
	ck_assert_int_eq(m.layers[2].mode, NN_DROPOUT_INVERTED);
	ck_assert_int_eq(m.layers[3].type, NN_LAYER_RESIDUAL);
	ck_assert_int_eq(m.layers[3].n_children, 2);
	ck_assert_int_eq(m.layers[3].projection, 0);
	ck_assert_int_eq(m.layers[3].children[1].act, NN_ACT_IDENTITY);
	ck_assert_int_eq(m.layers[4].type, NN_LAYER_ACTIVATION);
	ck_assert_int_eq(m.layers[4].act, NN_ACT_TANH);
	int64_t params;
	ck_assert_int_eq(nn_spec_check(&m, 0, &params, NULL, 0), NN_OK);
	ck_assert_int_eq(params, 784 * 256 + 256 + 512 + 2 * (256 * 256 + 256) + 256 * 10 + 10);
	nn_layers_free(m.layers, m.n_layers);
	free(name);
}
END_TEST

START_TEST(test_defaults_of_a_minimal_model)
{
	nn_model_spec m;
	char *name;
	api_err e;
	ck_assert_int_eq(spec("{'task':'regression','inputs':3,'outputs':1,'layers':[{'type':'dropout'},"
			      "{'type':'batch_norm'},{'type':'dense','units':4,'activation':'leaky_relu'}]}",
			      &m, &name, &e), 0);
	ck_assert_ptr_null(name);
	ck_assert_int_eq(m.task, NN_TASK_REGRESSION);
	ck_assert_uint_eq(m.seed, 0);
	ck_assert_float_eq(m.layers[0].rate, 0.5f);
	ck_assert_int_eq(m.layers[0].mode, NN_DROPOUT_INVERTED);
	ck_assert_float_eq(m.layers[1].momentum, 0.1f);
	ck_assert_float_eq(m.layers[1].eps, 1e-5f);
	ck_assert_float_eq(m.layers[2].alpha, 0.0f); /* the engine's default, 0.01 */
	nn_layers_free(m.layers, m.n_layers);
	ck_assert_int_eq(spec("{'task':'classification','inputs':3,'outputs':2}", &m, &name, &e), 0);
	ck_assert_int_eq(m.n_layers, 0);
	ck_assert_ptr_null(m.layers);
}
END_TEST

START_TEST(test_every_bad_field_is_named)
{
	nn_model_spec m;
	char *name;
	api_err e;
	ck_assert_int_eq(spec("{'task':'clustering','inputs':0,'outputs':2.5,'seed':-1,'colour':'red','init':'magic',"
			      "'layers':[{'type':'dense','units':0},"
			      "{'type':'dense','units':1e400,'activation':'swish'},"
			      "{'type':'dropout','rate':1},"
			      "{'type':'residual','layers':[{'type':'dropout','rate':-0.5,'units':3}]},"
			      "{'type':'batch_norm','momentum':'high','eps':0},"
			      "{'type':'activation'},"
			      "{'type':'conv'},"
			      "{'units':5},"
			      "{'type':'dense','units':3,'bias':1,'alpha':0.1},"
			      "{'type':'dense','units':3,'std':0.1,'init':'uniform','limit':-1}]}",
			      &m, &name, &e), -1);
	ck_assert_int_eq(e.status, 422);
	has_field(&e, "task", "must be one of classification or regression");
	has_field(&e, "inputs", "must be an integer in [1, 16777216]");
	has_field(&e, "outputs", "must be an integer");
	has_field(&e, "seed", "must be an integer in [0, 9007199254740992]");
	has_field(&e, "colour", "unknown field");
	has_field(&e, "init", "must be one of auto, zeros, normal, uniform, lecun_normal, lecun_uniform, "
			      "he_normal, he_uniform, xavier_normal or xavier_uniform");
	has_field(&e, "layers[0].units", "must be an integer in [1, 65536]");
	has_field(&e, "layers[1].units", "must be a finite integer");
	has_field(&e, "layers[1].activation", "must be one of identity, relu, leaky_relu, elu, sigmoid, "
					      "tanh, softplus or gelu");
	has_field(&e, "layers[2].rate", "must be in [0, 1)");
	has_field(&e, "layers[3].layers[0].rate", "must be in [0, 1)");
	has_field(&e, "layers[3].layers[0].units", "unknown field for a dropout layer");
	has_field(&e, "layers[4].momentum", "must be a number");
	has_field(&e, "layers[4].eps", "must be in (0, 1]");
	has_field(&e, "layers[5].function", "is required");
	has_field(&e, "layers[6].type", "must be one of dense, activation, batch_norm, dropout or residual");
	has_field(&e, "layers[7].type", "is required");
	has_field(&e, "layers[8].bias", "must be true or false");
	has_field(&e, "layers[8].alpha", "only leaky_relu and elu take an alpha");
	has_field(&e, "layers[9].std", "only the normal init takes a std");
	has_field(&e, "layers[9].limit", "must be in (0, 1e+06]");
	ck_assert_int_eq(e.n_fields, 21);
	char *body = api_problem_json(&e);
	cJSON *p = cJSON_Parse(body);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p, "errors")), 21);
	cJSON_Delete(p);
	free(body);
}
END_TEST

START_TEST(test_types_tasks_and_widths)
{
	spec_fails("[]", "body", "must be a JSON object");
	spec_fails("{'inputs':3,'outputs':2}", "task", "is required");
	spec_fails("{'task':'classification','outputs':2}", "inputs", "is required");
	spec_fails("{'task':'classification','inputs':3,'outputs':1}", "outputs",
		   "a classifier needs at least 2 outputs (classes)");
	spec_fails("{'task':'classification','inputs':'3','outputs':2}", "inputs", "must be an integer");
	spec_fails("{'task':'classification','inputs':3,'outputs':2,'layers':{}}", "layers",
		   "must be an array of layers");
	spec_fails("{'task':'classification','inputs':3,'outputs':2,'layers':[3]}", "layers[0]",
		   "must be an object with a \"type\"");
	spec_fails("{'task':'classification','inputs':3,'outputs':2,'inputs':4}", "inputs", "duplicate field");
	spec_fails("{'task':'classification','inputs':3,'outputs':2,'name':7}", "name",
		   "must be a UTF-8 string of at most 200 bytes");
	spec_fails("{'task':'classification','inputs':3,'outputs':2,'name':'\xff\xfe'}", "name",
		   "must be a UTF-8 string of at most 200 bytes");
	spec_fails("{'task':'classification','inputs':3,'outputs':2,'layers':[{'type':'residual','layers':[]}]}",
		   "layers[0].layers", "must be a non-empty array of layers");
	spec_fails("{'task':'classification','inputs':3,'outputs':2,'layers':[{'type':'residual',"
		   "'layers':[{'type':'dense','units':5}]}]}",
		   "layers[0]", "the block maps width 3 to 5; it must keep the width or set \"projection\": true");
	nn_model_spec m;
	char *name;
	api_err e;
	ck_assert_int_eq(spec("{'task':'regression','inputs':3,'outputs':1,'layers':[{'type':'residual',"
			      "'projection':true,'layers':[{'type':'dense','units':5}]}]}", &m, &name, &e), 0);
	ck_assert_int_eq(m.layers[0].projection, 1);
	int64_t params;
	ck_assert_int_eq(nn_spec_check(&m, 0, &params, NULL, 0), NN_OK);
	ck_assert_int_eq(params, 3 * 5 + 5 + 3 * 5 + 5 * 1 + 1);
	nn_layers_free(m.layers, m.n_layers);
}
END_TEST

START_TEST(test_limits_depth_layers_and_parameters)
{
	/* residual blocks nested 9 deep (the limit is 8) */
	char s[4096] = "{'task':'regression','inputs':2,'outputs':1,'layers':[";
	for (int i = 0; i < 9; i++)
		strcat(s, "{'type':'residual','layers':[");
	strcat(s, "{'type':'activation','function':'relu'}");
	for (int i = 0; i < 9; i++)
		strcat(s, "]}");
	strcat(s, "]}");
	spec_fails(s, "layers[0].layers[0].layers[0].layers[0].layers[0].layers[0].layers[0].layers[0].layers[0]",
		   "residual blocks nest deeper than 8");
	/* very deep nesting stops at the limit, not in a stack overflow */
	char *deep = malloc(200000);
	strcpy(deep, "{'task':'regression','inputs':2,'outputs':1,'layers':[");
	for (int i = 0; i < 450; i++)
		strcat(deep, "{'type':'residual','layers':[");
	strcat(deep, "{'type':'dropout'}");
	for (int i = 0; i < 450; i++)
		strcat(deep, "]}");
	strcat(deep, "]}");
	nn_model_spec m;
	char *name;
	api_err e;
	ck_assert_int_eq(spec(deep, &m, &name, &e), -1);
	ck_assert_int_eq(e.n_fields, 1);
	free(deep);
	/* 257 layers in one list */
	char *many = malloc(20000);
	strcpy(many, "{'task':'regression','inputs':2,'outputs':1,'layers':[");
	for (int i = 0; i < 257; i++)
		strcat(many, i ? ",{'type':'dropout'}" : "{'type':'dropout'}");
	strcat(many, "]}");
	spec_fails(many, "layers", "has 257 layers; at most 256 are allowed");
	free(many);
	/* 60000 x 60000 x 20 parameters: refused before anything is allocated */
	char big[8192] = "{'task':'regression','inputs':60000,'outputs':1,'layers':[";
	for (int i = 0; i < 20; i++)
		strcat(big, i ? ",{'type':'dense','units':60000}" : "{'type':'dense','units':60000}");
	strcat(big, "]}");
	spec_fails(big, "layers", "the model would have 72001260001 parameters; at most 50000000 are allowed");
	/* a custom limit */
	api_limits lim = api_limits_default();
	lim.max_params = 100;
	cJSON *j = J("{'task':'regression','inputs':10,'outputs':1,'layers':[{'type':'dense','units':9}]}");
	e = (api_err)API_ERR_INIT;
	ck_assert_int_eq(api_model_spec_from_json(j, &lim, &m, &name, &e), -1);
	has_field(&e, "layers", "the model would have 109 parameters; at most 100 are allowed");
	lim.max_params = 109;
	e = (api_err)API_ERR_INIT;
	ck_assert_int_eq(api_model_spec_from_json(j, &lim, &m, &name, &e), 0);
	nn_layers_free(m.layers, m.n_layers);
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_error_list_is_bounded)
{
	char *s = malloc(100000);
	strcpy(s, "{'task':'regression','inputs':2,'outputs':1,'layers':[");
	for (int i = 0; i < 200; i++)
		strcat(s, i ? ",{'type':'dense','units':-1}" : "{'type':'dense','units':-1}");
	strcat(s, "]}");
	nn_model_spec m;
	char *name;
	api_err e;
	ck_assert_int_eq(spec(s, &m, &name, &e), -1);
	ck_assert_int_eq(e.n_fields, API_MAX_FIELD_ERRORS);
	ck_assert_str_eq(e.fields[31].field, "layers[31].units");
	free(s);
}
END_TEST

START_TEST(test_stored_spec_has_output_layer_and_defaults)
{
	nn_model_spec m;
	char *name;
	api_err e;
	ck_assert_int_eq(spec(API_MODEL, &m, &name, &e), 0);
	free(name);
	char err[200];
	nn_model *model = nn_model_create(&m, err, sizeof err);
	ck_assert_msg(model != NULL, "%s", err);
	cJSON *j = api_model_spec_to_json(nn_model_spec_of(model));
	char *txt = cJSON_PrintUnformatted(j);
	ck_assert_str_eq(txt,
		"{\"task\":\"classification\",\"inputs\":784,\"outputs\":10,\"init\":\"auto\",\"seed\":7,\"layers\":["
		"{\"type\":\"dense\",\"units\":256,\"activation\":\"relu\",\"init\":\"he_uniform\",\"bias\":true},"
		"{\"type\":\"batch_norm\",\"momentum\":0.1,\"eps\":1e-05},"
		"{\"type\":\"dropout\",\"rate\":0.2,\"mode\":\"inverted\"},"
		"{\"type\":\"residual\",\"layers\":["
		"{\"type\":\"dense\",\"units\":256,\"activation\":\"relu\",\"init\":\"auto\",\"bias\":true},"
		"{\"type\":\"dense\",\"units\":256,\"activation\":\"identity\",\"init\":\"auto\",\"bias\":true}],"
		"\"projection\":false},"
		"{\"type\":\"activation\",\"function\":\"tanh\"},"
		"{\"type\":\"dense\",\"units\":10,\"activation\":\"identity\",\"init\":\"auto\",\"bias\":true}]}");
	free(txt);
	cJSON_Delete(j);
	nn_model_free(model);
	nn_layers_free(m.layers, m.n_layers);

	/* defaults that only show in the output: alpha, std, limit */
	ck_assert_int_eq(spec("{'task':'regression','inputs':2,'outputs':1,'layers':["
			      "{'type':'dense','units':2,'activation':'elu','init':'normal'},"
			      "{'type':'activation','function':'leaky_relu','alpha':0.2},"
			      "{'type':'dense','units':2,'init':'uniform','bias':false}]}", &m, &name, &e), 0);
	j = api_model_spec_to_json(&m);
	txt = cJSON_PrintUnformatted(j);
	ck_assert_str_eq(txt,
		"{\"task\":\"regression\",\"inputs\":2,\"outputs\":1,\"init\":\"auto\",\"seed\":0,\"layers\":["
		"{\"type\":\"dense\",\"units\":2,\"activation\":\"elu\",\"alpha\":1,\"init\":\"normal\",\"std\":0.01,\"bias\":true},"
		"{\"type\":\"activation\",\"function\":\"leaky_relu\",\"alpha\":0.2},"
		"{\"type\":\"dense\",\"units\":2,\"activation\":\"identity\",\"init\":\"uniform\",\"limit\":0.05,\"bias\":false}]}");
	/* and it reads back to the same spec */
	nn_model_spec m2;
	e = (api_err)API_ERR_INIT;
	ck_assert_int_eq(api_model_spec_from_json(j, NULL, &m2, &name, &e), 0);
	cJSON *j2 = api_model_spec_to_json(&m2);
	char *txt2 = cJSON_PrintUnformatted(j2);
	ck_assert_str_eq(txt2, txt);
	free(txt);
	free(txt2);
	cJSON_Delete(j);
	cJSON_Delete(j2);
	nn_layers_free(m.layers, m.n_layers);
	nn_layers_free(m2.layers, m2.n_layers);
}
END_TEST

/* ---- job configs */

static int job(const char *s, nn_train_config *c, api_job_refs *r, api_err *e)
{
	cJSON *j = J(s);
	*e = (api_err)API_ERR_INIT;
	api_limits lim = api_limits_default();
	int rc = api_train_config_from_json(j, &lim, c, r, e);
	cJSON_Delete(j);
	return rc;
}

static void job_fails(const char *s, const char *path, const char *msg)
{
	nn_train_config c;
	api_job_refs r;
	api_err e;
	ck_assert_int_eq(job(s, &c, &r, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_ptr_null(r.model);
	has_field(&e, path, msg);
}

#define IDS "'model':'mdl_0123456789abcdef','dataset':'ds_00000000000000ff'"

static const char *API_JOB =
	"{'model': 'mdl_0123456789abcdef', 'dataset': 'ds_00000000000000ff',"
	" 'validation': {'fraction': 0.1},"
	" 'epochs': 20, 'batch_size': 128, 'shuffle': true, 'seed': 1,"
	" 'optimizer': {'type': 'adam', 'lr': 0.001, 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-8},"
	" 'schedule': {'type': 'step', 'step_epochs': 10, 'gamma': 0.5, 'warmup_epochs': 1},"
	" 'l2': 0.0, 'standardize': true, 'batch_norm_stats': 'population',"
	" 'early_stopping': {'patience': 5, 'min_delta': 0.0, 'restore_best': true},"
	" 'averaging': {'type': 'polyak', 'start_epoch': 10},"
	" 'augment': {'rotate_degrees': 10, 'translate_pixels': 2, 'scale': [0.9, 1.1],"
	"             'flip_horizontal': true, 'flip_vertical': false, 'crop_padding': 2,"
	"             'brightness': 0.1, 'contrast': 0.1, 'noise_std': 0.0},"
	" 'sparsity': {'max_nonzero': 20000, 'start_epoch': 2, 'bound': 1.0},"
	" 'clip_grad_norm': null, 'log_every_steps': 10, 'checkpoint_every_epochs': 1}";

/* The stored form j of a job config (printed as t1) parses again into c2
 * and prints the same; frees j and t1. */
static void reads_back(cJSON *j, char *t1, nn_train_config *c2)
{
	api_job_refs r2;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_train_config_from_json(j, NULL, c2, &r2, &e), 0);
	cJSON *j2 = api_train_config_to_json(c2, &r2);
	char *t2 = cJSON_PrintUnformatted(j2);
	ck_assert_str_eq(t2, t1);
	free(t1);
	free(t2);
	cJSON_Delete(j);
	cJSON_Delete(j2);
	api_job_refs_free(&r2);
}

START_TEST(test_api_example_job_parses)
{
	nn_train_config c;
	api_job_refs r;
	api_err e;
	ck_assert_int_eq(job(API_JOB, &c, &r, &e), 0);
	ck_assert_str_eq(r.model, "mdl_0123456789abcdef");
	ck_assert_str_eq(r.dataset, "ds_00000000000000ff");
	ck_assert_ptr_null(r.val_dataset);
	ck_assert_float_eq(c.val_fraction, 0.1f);
	ck_assert_int_eq(c.epochs, 20);
	ck_assert_int_eq(c.batch_size, 128);
	ck_assert_int_eq(c.shuffle, 1);
	ck_assert_uint_eq(c.seed, 1);
	ck_assert_int_eq(c.opt.type, NN_OPT_ADAM);
	ck_assert_float_eq(c.opt.lr, 0.001f);
	ck_assert_float_eq(c.opt.beta2, 0.999f);
	ck_assert_float_eq(c.opt.eps, 1e-8f);
	ck_assert_int_eq(c.sched.type, NN_SCHED_STEP);
	ck_assert_float_eq(c.sched.step_epochs, 10);
	ck_assert_float_eq(c.sched.gamma, 0.5f);
	ck_assert_float_eq(c.sched.warmup_epochs, 1);
	ck_assert_int_eq(c.standardize, 1);
	ck_assert_int_eq(c.bn_stats, NN_BN_POPULATION);
	ck_assert_int_eq(c.early.enabled, 1);
	ck_assert_int_eq(c.early.patience, 5);
	ck_assert_int_eq(c.early.restore_best, 1);
	ck_assert_int_eq(c.avg.type, NN_AVG_POLYAK);
	ck_assert_int_eq(c.avg.start_epoch, 10);
	ck_assert_float_eq(c.aug.rotate_degrees, 10);
	ck_assert_float_eq(c.aug.scale_min, 0.9f);
	ck_assert_float_eq(c.aug.scale_max, 1.1f);
	ck_assert_int_eq(c.aug.flip_horizontal, 1);
	ck_assert_int_eq(c.aug.crop_padding, 2);
	ck_assert_float_eq(c.aug.brightness, 0.1f);
	ck_assert_int_eq(c.sparsity.enabled, 1);
	ck_assert_int_eq(c.sparsity.max_nonzero, 20000);
	ck_assert_int_eq(c.sparsity.start_epoch, 2);
	ck_assert_float_eq(c.sparsity.bound, 1.0f);
	ck_assert_float_eq(c.clip_grad_norm, 0);
	ck_assert_int_eq(c.log_every_steps, 10);
	ck_assert_int_eq(c.checkpoint_every_epochs, 1);
	ck_assert_int_eq(c.sparse_kernels, 1);   /* absent: on */
	/* the stored config reads back to itself */
	cJSON *j = api_train_config_to_json(&c, &r);
	char *t1 = cJSON_PrintUnformatted(j);
	ck_assert_str_eq(t1,
		"{\"model\":\"mdl_0123456789abcdef\",\"dataset\":\"ds_00000000000000ff\","
		"\"validation\":{\"fraction\":0.1},\"epochs\":20,\"batch_size\":128,\"shuffle\":true,\"seed\":1,"
		"\"optimizer\":{\"type\":\"adam\",\"lr\":0.001,\"beta1\":0.9,\"beta2\":0.999,\"eps\":1e-08},"
		"\"schedule\":{\"type\":\"step\",\"per\":\"epoch\",\"warmup_epochs\":1,\"step_epochs\":10,\"gamma\":0.5},"
		"\"l2\":0,\"standardize\":true,\"batch_norm_stats\":\"population\","
		"\"early_stopping\":{\"patience\":5,\"min_delta\":0,\"restore_best\":true},"
		"\"averaging\":{\"type\":\"polyak\",\"start_epoch\":10},"
		"\"augment\":{\"rotate_degrees\":10,\"translate_pixels\":2,\"scale\":[0.9,1.1],"
		"\"flip_horizontal\":true,\"flip_vertical\":false,\"crop_padding\":2,\"brightness\":0.1,"
		"\"contrast\":0.1,\"noise_std\":0},"
		"\"sparsity\":{\"max_nonzero\":20000,\"start_epoch\":2,\"bound\":1},"
		"\"clip_grad_norm\":null,\"log_every_steps\":10,\"checkpoint_every_epochs\":1,"
		"\"sparse_kernels\":true,\"test\":null,\"rows\":null,\"replicas\":1,\"shards\":1}");
	nn_train_config c2;
	reads_back(j, t1, &c2);
	api_job_refs_free(&r);
}
END_TEST

START_TEST(test_job_defaults)
{
	nn_train_config c;
	api_job_refs r;
	api_err e;
	ck_assert_int_eq(job("{" IDS "}", &c, &r, &e), 0);
	cJSON *j = api_train_config_to_json(&c, &r);
	char *t = cJSON_PrintUnformatted(j);
	ck_assert_str_eq(t,
		"{\"model\":\"mdl_0123456789abcdef\",\"dataset\":\"ds_00000000000000ff\",\"validation\":null,"
		"\"epochs\":10,\"batch_size\":32,\"shuffle\":true,\"seed\":0,"
		"\"optimizer\":{\"type\":\"sgd\",\"lr\":0.01},"
		"\"schedule\":{\"type\":\"constant\",\"per\":\"epoch\",\"warmup_epochs\":0},"
		"\"l2\":0,\"standardize\":true,\"batch_norm_stats\":\"population\",\"early_stopping\":null,"
		"\"averaging\":null,\"augment\":{\"rotate_degrees\":0,\"translate_pixels\":0,\"scale\":null,"
		"\"flip_horizontal\":false,\"flip_vertical\":false,\"crop_padding\":0,\"brightness\":0,"
		"\"contrast\":0,\"noise_std\":0},\"sparsity\":null,\"clip_grad_norm\":null,"
		"\"log_every_steps\":10,\"checkpoint_every_epochs\":1,\"sparse_kernels\":true,\"test\":null,\"rows\":null,\"replicas\":1,\"shards\":1}");
	free(t);
	cJSON_Delete(j);
	api_job_refs_free(&r);
	/* optimizer defaults per type */
	ck_assert_int_eq(job("{" IDS ",'optimizer':{'type':'adamw'}}", &c, &r, &e), 0);
	ck_assert_float_eq(c.opt.lr, 0.001f);
	ck_assert_float_eq(c.opt.weight_decay, 0.01f);
	ck_assert_float_eq(c.opt.beta1, 0.9f);
	api_job_refs_free(&r);
	ck_assert_int_eq(job("{" IDS ",'optimizer':{'type':'adagrad'}}", &c, &r, &e), 0);
	ck_assert_float_eq(c.opt.lr, 0.01f);
	ck_assert_float_eq(c.opt.eps, 1e-10f);
	api_job_refs_free(&r);
	ck_assert_int_eq(job("{" IDS ",'optimizer':{'type':'rmsprop'},'validation':{'dataset':'ds_1111111111111111'},"
			     "'early_stopping':{},'schedule':{'type':'cyclical','min_lr':0.001,'max_lr':0.1,'per':'step'}}",
			     &c, &r, &e), 0);
	ck_assert_float_eq(c.opt.rho, 0.99f);
	ck_assert_str_eq(r.val_dataset, "ds_1111111111111111");
	ck_assert_int_eq(c.early.enabled, 1);
	ck_assert_int_eq(c.early.patience, 5);
	ck_assert_int_eq(c.sched.per_step, 1);
	ck_assert_float_eq(c.sched.half_cycle_epochs, 2);
	j = api_train_config_to_json(&c, &r);
	t = cJSON_PrintUnformatted(j);
	ck_assert(strstr(t, "\"validation\":{\"dataset\":\"ds_1111111111111111\"}") != NULL);
	ck_assert(strstr(t, "\"optimizer\":{\"type\":\"rmsprop\",\"lr\":0.01,\"eps\":1e-08,\"rho\":0.99}") != NULL);
	ck_assert(strstr(t, "\"schedule\":{\"type\":\"cyclical\",\"per\":\"step\",\"warmup_epochs\":0,"
			    "\"min_lr\":0.001,\"max_lr\":0.1,\"half_cycle_epochs\":2}") != NULL);
	free(t);
	cJSON_Delete(j);
	api_job_refs_free(&r);
	/* the reference cases' configs */
	ck_assert_int_eq(job("{" IDS ",'epochs': 4, 'batch_size': 1000, 'shuffle': false, 'standardize': false,"
			     "'batch_norm_stats': 'running', 'optimizer': {'type': 'rmsprop', 'lr': 0.01, 'rho': 0.9}}",
			     &c, &r, &e), 0);
	ck_assert_int_eq(c.bn_stats, NN_BN_RUNNING);
	ck_assert_int_eq(c.standardize, 0);
	ck_assert_float_eq(c.opt.rho, 0.9f);
	api_job_refs_free(&r);
}
END_TEST

/* "sparse_kernels": true when absent or null, false reaches the engine as 0,
 * anything but a boolean is named; the stored config says it and reads back. */
START_TEST(test_job_sparse_kernels)
{
	nn_train_config c;
	api_job_refs r;
	api_err e;
	ck_assert_int_eq(job("{" IDS "}", &c, &r, &e), 0);
	ck_assert_int_eq(c.sparse_kernels, 1);
	api_job_refs_free(&r);
	ck_assert_int_eq(job("{" IDS ",'sparse_kernels':null}", &c, &r, &e), 0);
	ck_assert_int_eq(c.sparse_kernels, 1);
	api_job_refs_free(&r);
	ck_assert_int_eq(job("{" IDS ",'sparse_kernels':true}", &c, &r, &e), 0);
	ck_assert_int_eq(c.sparse_kernels, 1);
	api_job_refs_free(&r);
	ck_assert_int_eq(job("{" IDS ",'epochs':3,'sparse_kernels':false}", &c, &r, &e), 0);
	ck_assert_int_eq(c.sparse_kernels, 0);
	ck_assert_int_eq(c.epochs, 3);
	/* echoed (after checkpoint_every_epochs), and the echo reads back to
	 * the same config */
	cJSON *j = api_train_config_to_json(&c, &r);
	ck_assert_ptr_nonnull(j);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "sparse_kernels")));
	char *t1 = cJSON_PrintUnformatted(j);
	ck_assert_ptr_nonnull(strstr(t1, "\"checkpoint_every_epochs\":1,\"sparse_kernels\":false"));
	nn_train_config c2;
	reads_back(j, t1, &c2);
	ck_assert_int_eq(c2.sparse_kernels, 0);
	api_job_refs_free(&r);
	/* a config stored before the field existed reads as on */
	ck_assert_int_eq(job("{" IDS ",'clip_grad_norm':null,'log_every_steps':10,'checkpoint_every_epochs':1}",
			     &c, &r, &e), 0);
	ck_assert_int_eq(c.sparse_kernels, 1);
	api_job_refs_free(&r);
	/* not a boolean */
	job_fails("{" IDS ",'sparse_kernels':'false'}", "sparse_kernels", "must be true or false");
	job_fails("{" IDS ",'sparse_kernels':0}", "sparse_kernels", "must be true or false");
	job_fails("{" IDS ",'sparse_kernels':1}", "sparse_kernels", "must be true or false");
	job_fails("{" IDS ",'sparse_kernels':[]}", "sparse_kernels", "must be true or false");
	job_fails("{" IDS ",'sparse_kernels':true,'sparse_kernels':false}", "sparse_kernels", "duplicate field");
	/* alongside other bad fields, each is named */
	ck_assert_int_eq(job("{" IDS ",'epochs':0,'sparse_kernels':'no'}", &c, &r, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_int_eq(e.n_fields, 2);
	has_field(&e, "epochs", "must be an integer in [1, 100000]");
	has_field(&e, "sparse_kernels", "must be true or false");
}
END_TEST

START_TEST(test_job_errors_name_fields)
{
	job_fails("{'dataset':'ds_00000000000000ff'}", "model", "is required");
	job_fails("{'model':'mdl_../etc/passwd','dataset':'ds_00000000000000ff'}", "model",
		  "must be a model id (mdl_ followed by 16 lowercase hex digits)");
	job_fails("{'model':'mdl_0123456789ABCDEF','dataset':'ds_00000000000000ff'}", "model",
		  "must be a model id (mdl_ followed by 16 lowercase hex digits)");
	job_fails("{" IDS ",'early_stopping':{'patience':3}}", "early_stopping",
		  "needs \"validation\" (a fraction or a data set)");
	job_fails("{" IDS ",'validation':{'fraction':1}}", "validation.fraction", "must be in (0, 1)");
	job_fails("{" IDS ",'validation':{'fraction':0.1,'dataset':'ds_00000000000000ff'}}", "validation",
		  "give either fraction or dataset, not both");
	job_fails("{" IDS ",'validation':{}}", "validation", "must be {\"fraction\": f} or {\"dataset\": id}");
	job_fails("{" IDS ",'epochs':0}", "epochs", "must be an integer in [1, 100000]");
	job_fails("{" IDS ",'epochs':100001}", "epochs", "must be an integer in [1, 100000]");
	job_fails("{" IDS ",'epochs':2.5}", "epochs", "must be an integer");
	job_fails("{" IDS ",'batch_size':1e400}", "batch_size", "must be a finite integer");
	job_fails("{" IDS ",'batch_size':2000000}", "batch_size", "must be an integer in [1, 1048576]");
	job_fails("{" IDS ",'optimizer':{'type':'sgd','lr':0}}", "optimizer.lr", "must be in (0, 1e+09]");
	job_fails("{" IDS ",'optimizer':{'type':'sgd','lr':1e400}}", "optimizer.lr", "must be a finite number");
	job_fails("{" IDS ",'optimizer':{'type':'sgd','momentum':0.9}}", "optimizer.momentum",
		  "unknown field for the sgd optimizer");
	job_fails("{" IDS ",'optimizer':{'type':'nesterov','momentum':0}}", "optimizer.momentum", "must be in (0, 1)");
	job_fails("{" IDS ",'optimizer':{'type':'adam','beta2':1}}", "optimizer.beta2", "must be in [0, 1)");
	job_fails("{" IDS ",'optimizer':{'lr':0.1}}", "optimizer.type", "is required");
	job_fails("{" IDS ",'optimizer':{'type':'lbfgs'}}", "optimizer.type",
		  "must be one of sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw");
	job_fails("{" IDS ",'schedule':{'type':'step','min_lr':0.1}}", "schedule.min_lr",
		  "unknown field for the step schedule");
	job_fails("{" IDS ",'schedule':{'type':'step','gamma':0}}", "schedule.gamma", "must be greater than 0");
	job_fails("{" IDS ",'schedule':{'type':'cyclical','max_lr':0.1}}", "schedule.min_lr", "is required");
	job_fails("{" IDS ",'schedule':{'type':'cyclical','min_lr':0.1,'max_lr':0.1}}", "schedule.max_lr",
		  "must be greater than min_lr");
	job_fails("{" IDS ",'schedule':{'type':'constant','per':'batch'}}", "schedule.per", "must be one of epoch or step");
	job_fails("{" IDS ",'augment':{'rotate_degrees':200}}", "augment.rotate_degrees", "must be in [0, 180]");
	job_fails("{" IDS ",'augment':{'scale':[1.1,0.9]}}", "augment.scale", "must be [min, max] with 0 < min <= max");
	job_fails("{" IDS ",'augment':{'scale':[0,1]}}", "augment.scale[0]", "must be in (0, 100]");
	job_fails("{" IDS ",'augment':{'flip_vertical':1}}", "augment.flip_vertical", "must be true or false");
	job_fails("{" IDS ",'augment':{'crop_padding':-1}}", "augment.crop_padding", "must be an integer in [0, 1000]");
	job_fails("{" IDS ",'augment':{'contrast':2}}", "augment.contrast", "must be in [0, 1]");
	job_fails("{" IDS ",'sparsity':{'start_epoch':1}}", "sparsity.max_nonzero", "is required");
	job_fails("{" IDS ",'sparsity':{'max_nonzero':0}}", "sparsity.max_nonzero",
		  "must be a positive integer (at most 9007199254740992)");
	job_fails("{" IDS ",'averaging':{'type':'polyak','decay':0.9}}", "averaging.decay",
		  "unknown field for polyak averaging");
	job_fails("{" IDS ",'averaging':{'type':'ema','decay':1}}", "averaging.decay", "must be in (0, 1)");
	job_fails("{" IDS ",'clip_grad_norm':0}", "clip_grad_norm", "must be greater than 0");
	job_fails("{" IDS ",'log_every_steps':0}", "log_every_steps", "must be a positive integer (at most 2147483647)");
	job_fails("{" IDS ",'checkpoint_every_epochs':-1}", "checkpoint_every_epochs", "must be an integer in [0, 100000]");
	job_fails("{" IDS ",'batch_norm_stats':'ema'}", "batch_norm_stats", "must be one of population or running");
	job_fails("{" IDS ",'shuffle':'yes'}", "shuffle", "must be true or false");
	job_fails("{" IDS ",'learning_rate':0.1}", "learning_rate", "unknown field");
	job_fails("{" IDS ",'optimizer':{'type':'sgd','lr':0.1,'lr':0.2}}", "optimizer.lr", "duplicate field");
	job_fails("[]", "body", "must be a JSON object");
	/* in range as a double but not once rounded to a float (found by fuzzing) */
	job_fails("{" IDS ",'optimizer':{'type':'adam','eps':1e-88}}", "optimizer.eps", "must be in (0, 1]");
	job_fails("{" IDS ",'optimizer':{'type':'adam','beta1':0.99999999999}}", "optimizer.beta1",
		  "must be in [0, 1)");
	job_fails("{" IDS ",'augment':{'scale':[1e-50,1]}}", "augment.scale", "must be [min, max] with 0 < min <= max");
	spec_fails("{'task':'regression','inputs':2,'outputs':1,'layers':[{'type':'dropout','rate':0.999999999999}]}",
		   "layers[0].rate", "must be in [0, 1)");
	/* several at once */
	nn_train_config c;
	api_job_refs r;
	api_err e;
	ck_assert_int_eq(job("{'epochs':-1,'batch_size':0,'seed':-5,'l2':-1}", &c, &r, &e), -1);
	ck_assert_int_eq(e.n_fields, 6);
	has_field(&e, "l2", "must be in [0, 1e+06]");
	has_field(&e, "seed", "must be an integer in [0, 9007199254740992]");
}
END_TEST

/* ---- weights */

static nn_model *make_model(const char *s, uint64_t seed)
{
	nn_model_spec m;
	char *name;
	api_err e;
	ck_assert_int_eq(spec(s, &m, &name, &e), 0);
	m.seed = seed;
	char err[200];
	nn_model *model = nn_model_create(&m, err, sizeof err);
	ck_assert_msg(model != NULL, "%s", err);
	nn_layers_free(m.layers, m.n_layers);
	return model;
}

static const char *PROJ_MODEL =
	"{'task':'classification','inputs':3,'outputs':2,'layers':["
	"{'type':'dense','units':4,'activation':'relu'},{'type':'batch_norm'},{'type':'dropout','rate':0.1},"
	"{'type':'residual','projection':true,'layers':[{'type':'dense','units':5,'bias':false},"
	"{'type':'activation','function':'gelu'}]}]}";

/* All parameters and state of m, copied. */
static float *snapshot(nn_model *m, int64_t *n)
{
	int64_t np, ns;
	float *p = nn_model_params(m, &np), *s = nn_model_state(m, &ns);
	float *out = malloc((size_t)(np + ns + 1) * sizeof *out);
	memcpy(out, p, (size_t)np * sizeof *out);
	if (ns)
		memcpy(out + np, s, (size_t)ns * sizeof *out);
	*n = np + ns;
	return out;
}

START_TEST(test_weights_round_trip_between_models)
{
	nn_model *a = make_model(PROJ_MODEL, 1), *b = make_model(PROJ_MODEL, 2);
	float mean[3] = { 1, 2, 3 }, sd[3] = { 0.5f, 1, 2 };
	ck_assert_int_eq(nn_model_set_standardize(a, mean, sd), NN_OK);
	cJSON *w = api_weights_to_json(a);
	ck_assert_ptr_nonnull(w);
	cJSON *layers = cJSON_GetObjectItem(w, "layers");
	ck_assert_int_eq(cJSON_GetArraySize(layers), 5);
	cJSON *d0 = cJSON_GetArrayItem(layers, 0);
	ck_assert_str_eq(cJSON_GetObjectItem(d0, "type")->valuestring, "dense");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d0, "weight")), 4);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(d0, "weight"), 0)), 3);
	cJSON *bn = cJSON_GetArrayItem(layers, 1);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(bn, "running_var")), 4);
	ck_assert_double_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(bn, "gamma"), 0)->valuedouble, 1.0);
	cJSON *dr = cJSON_GetArrayItem(layers, 2);
	ck_assert_int_eq(cJSON_GetArraySize(dr), 1);
	cJSON *res = cJSON_GetArrayItem(layers, 3);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res, "layers")), 2);
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(res, "layers"), 0), "bias"));
	cJSON *proj = cJSON_GetObjectItem(cJSON_GetObjectItem(res, "projection"), "weight");
	ck_assert_int_eq(cJSON_GetArraySize(proj), 5);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(proj, 0)), 4);
	cJSON *out = cJSON_GetArrayItem(layers, 4);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(out, "weight")), 2);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(out, "weight"), 0)), 5);
	cJSON *st = cJSON_GetObjectItem(w, "standardize");
	ck_assert_double_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(st, "std"), 0)->valuedouble, 0.5);

	/* through text and into another model: every value identical */
	char *txt = cJSON_PrintUnformatted(w);
	cJSON *back = cJSON_Parse(txt);
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_weights_from_json(back, b, &e), 0);
	int64_t na, nb;
	float *sa = snapshot(a, &na), *sb = snapshot(b, &nb);
	ck_assert_int_eq(na, nb);
	ck_assert_int_eq(memcmp(sa, sb, (size_t)na * sizeof *sa), 0);
	ck_assert_float_eq(nn_model_std_std(b)[2], 2.0f);
	ck_assert_float_eq(nn_model_std_mean(b)[1], 2.0f);
	free(sa);
	free(sb);
	/* without "standardize" the model has none */
	cJSON_DeleteItemFromObject(back, "standardize");
	ck_assert_int_eq(api_weights_from_json(back, b, &e), 0);
	ck_assert_ptr_null(nn_model_std_mean(b));
	free(txt);
	cJSON_Delete(back);
	cJSON_Delete(w);
	nn_model_free(a);
	nn_model_free(b);
}
END_TEST

/* Applies a broken copy of a's weights to b: must fail naming path/msg and
 * leave b untouched. */
static void put_fails(nn_model *a, nn_model *b, void (*breakit)(cJSON *), const char *path, const char *msg)
{
	cJSON *w = api_weights_to_json(a);
	breakit(w);
	int64_t n0, n1;
	float *before = snapshot(b, &n0);
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_weights_from_json(w, b, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_int_eq(e.n_fields, 1);
	ck_assert_str_eq(e.fields[0].field, path);
	ck_assert_str_eq(e.fields[0].message, msg);
	float *after = snapshot(b, &n1);
	ck_assert_int_eq(memcmp(before, after, (size_t)n0 * sizeof *before), 0);
	free(before);
	free(after);
	cJSON_Delete(w);
}

static cJSON *L(cJSON *w, int i) { return cJSON_GetArrayItem(cJSON_GetObjectItem(w, "layers"), i); }
static void short_row(cJSON *w) { cJSON_DeleteItemFromArray(cJSON_GetArrayItem(cJSON_GetObjectItem(L(w, 4), "weight"), 1), 4); }
static void long_bias(cJSON *w) { cJSON_AddItemToArray(cJSON_GetObjectItem(L(w, 0), "bias"), cJSON_CreateNumber(1)); }
static void nan_value(cJSON *w) { cJSON_ReplaceItemInArray(cJSON_GetObjectItem(L(w, 1), "beta"), 2, cJSON_CreateNumber(INFINITY)); }
static void neg_var(cJSON *w) { cJSON_ReplaceItemInArray(cJSON_GetObjectItem(L(w, 1), "running_var"), 0, cJSON_CreateNumber(-1)); }
static void str_value(cJSON *w) { cJSON_ReplaceItemInArray(cJSON_GetArrayItem(cJSON_GetObjectItem(L(w, 0), "weight"), 3), 1, cJSON_CreateString("x")); }
static void wrong_type(cJSON *w) { cJSON_ReplaceItemInObject(L(w, 2), "type", cJSON_CreateString("activation")); }
static void extra_field(cJSON *w) { cJSON_AddNumberToObject(L(w, 2), "rate", 0.5); }
static void no_bias_given(cJSON *w) { cJSON_AddItemToObject(cJSON_GetArrayItem(cJSON_GetObjectItem(L(w, 3), "layers"), 0), "bias", cJSON_CreateArray()); }
static void no_projection(cJSON *w) { cJSON_DeleteItemFromObject(L(w, 3), "projection"); }
static void proj_rows(cJSON *w) { cJSON_DeleteItemFromArray(cJSON_GetObjectItem(cJSON_GetObjectItem(L(w, 3), "projection"), "weight"), 0); }
static void missing_layer(cJSON *w) { cJSON_DeleteItemFromArray(cJSON_GetObjectItem(w, "layers"), 4); }
static void bad_std(cJSON *w)
{
	cJSON *st = cJSON_AddObjectToObject(w, "standardize");
	float m[3] = { 0, 0, 0 }, s[3] = { 1, 0, 1 };
	cJSON_AddItemToObject(st, "mean", cJSON_CreateFloatArray(m, 3));
	cJSON_AddItemToObject(st, "std", cJSON_CreateFloatArray(s, 3));
}
static void unknown_top(cJSON *w) { cJSON_AddNumberToObject(w, "version", 3); }
static void tiny_std(cJSON *w)
{
	cJSON *st = cJSON_AddObjectToObject(w, "standardize");
	double m[3] = { 0, 0, 0 }, s[3] = { 1, 1, 1e-50 };
	cJSON_AddItemToObject(st, "mean", cJSON_CreateDoubleArray(m, 3));
	cJSON_AddItemToObject(st, "std", cJSON_CreateDoubleArray(s, 3));
}

START_TEST(test_weights_mismatch_named_and_nothing_written)
{
	nn_model *a = make_model(PROJ_MODEL, 1), *b = make_model(PROJ_MODEL, 2);
	put_fails(a, b, short_row, "layers[4].weight[1]", "expected 5 values, got 4");
	put_fails(a, b, long_bias, "layers[0].bias", "expected 4 values, got 5");
	put_fails(a, b, nan_value, "layers[1].beta[2]", "must be a finite number within float range");
	put_fails(a, b, neg_var, "layers[1].running_var[0]", "must be at least 0");
	put_fails(a, b, str_value, "layers[0].weight[3][1]", "must be a number");
	put_fails(a, b, wrong_type, "layers[2].type", "must be \"dropout\" like the model's layer");
	put_fails(a, b, extra_field, "layers[2].rate", "unknown field for a dropout layer");
	put_fails(a, b, no_bias_given, "layers[3].layers[0].bias", "the layer has no bias");
	put_fails(a, b, no_projection, "layers[3].projection", "is required ({\"weight\": [[...]]})");
	put_fails(a, b, proj_rows, "layers[3].projection.weight", "expected 5 rows, got 4");
	put_fails(a, b, missing_layer, "layers", "expected 5 layers (the output layer last), got 4");
	put_fails(a, b, bad_std, "standardize.std[1]", "must be greater than 0");
	put_fails(a, b, unknown_top, "version", "unknown field");
	put_fails(a, b, tiny_std, "standardize.std[2]", "must be greater than 0");
	nn_model_free(a);
	nn_model_free(b);
}
END_TEST

/* The reference cases' initial weights load, and come back out unchanged. */
START_TEST(test_reference_initial_weights)
{
	const char *shared = getenv("NND_SHARED");
	char path[512];
	snprintf(path, sizeof path, "%s/reference/pytorch_cases.json", shared ? shared : "../shared");
	FILE *f = fopen(path, "rb");
	if (!f)
		return; /* the reference folder is not beside this checkout */
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *txt = malloc((size_t)n + 1);
	ck_assert_int_eq(fread(txt, 1, (size_t)n, f), n);
	txt[n] = '\0';
	fclose(f);
	cJSON *all = cJSON_Parse(txt);
	free(txt);
	int ncases = 0;
	cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(all, "cases")) {
		api_err e = API_ERR_INIT;
		nn_model_spec m;
		char *name;
		ck_assert_msg(api_model_spec_from_json(cJSON_GetObjectItem(c, "model"), NULL, &m, &name, &e) == 0,
			      "%s", e.n_fields ? e.fields[0].message : e.detail);
		char err[200];
		nn_model *model = nn_model_create(&m, err, sizeof err);
		nn_layers_free(m.layers, m.n_layers);
		ck_assert_ptr_nonnull(model);
		cJSON *iw = cJSON_GetObjectItem(c, "initial_weights");
		ck_assert_msg(api_weights_from_json(iw, model, &e) == 0, "%s: %s",
			      e.n_fields ? e.fields[0].field : "", e.n_fields ? e.fields[0].message : e.detail);
		/* the first dense weight, value by value, as floats */
		nn_tensor t = nn_model_tensor(model, 0);
		cJSON *w0 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(iw, "layers"), 0), "weight");
		for (int r = 0; r < t.rows; r++)
			for (int k = 0; k < t.cols; k++)
				ck_assert_float_eq(t.data[r * t.cols + k],
						   (float)cJSON_GetArrayItem(cJSON_GetArrayItem(w0, r), k)->valuedouble);
		/* out and in again gives the same bits */
		cJSON *out = api_weights_to_json(model);
		ck_assert_ptr_nonnull(out);
		int64_t n0, n1;
		float *s0 = snapshot(model, &n0);
		ck_assert_int_eq(api_weights_from_json(out, model, &e), 0);
		float *s1 = snapshot(model, &n1);
		ck_assert_int_eq(memcmp(s0, s1, (size_t)n0 * sizeof *s0), 0);
		free(s0);
		free(s1);
		cJSON_Delete(out);
		nn_model_free(model);
		ncases++;
	}
	ck_assert_int_ge(ncases, 10);
	cJSON_Delete(all);
}
END_TEST

START_TEST(test_names_and_enums)
{
	ck_assert_str_eq(api_act_name(NN_ACT_GELU), "gelu");
	ck_assert_int_eq(api_act_parse("leaky_relu"), NN_ACT_LEAKY_RELU);
	ck_assert_int_eq(api_act_parse("swish"), -1);
	ck_assert_int_eq(api_act_parse(NULL), -1);
	ck_assert_ptr_null(api_act_name((nn_act)99));
	ck_assert_str_eq(api_init_name(NN_INIT_XAVIER_UNIFORM), "xavier_uniform");
	ck_assert_int_eq(api_init_parse("he_normal"), NN_INIT_HE_NORMAL);
	ck_assert_str_eq(api_opt_name(NN_OPT_ADAMW), "adamw");
	ck_assert_str_eq(api_sched_name(NN_SCHED_COSINE), "cosine");
	api_limits l = api_limits_default();
	ck_assert_int_eq(l.max_params, 50000000);
	ck_assert_int_eq(l.max_depth, 8);
	ck_assert_int_eq(l.max_layers, 256);
	ck_assert_int_eq(l.max_units, 65536);
	ck_assert_int_eq(l.max_epochs, 100000);
	ck_assert_int_eq(l.max_batch, 1 << 20);
	api_job_refs_free(NULL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("spec_json");
	TCase *t = tcase_create("spec_json");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_api_example_model_parses);
	tcase_add_test(t, test_defaults_of_a_minimal_model);
	tcase_add_test(t, test_every_bad_field_is_named);
	tcase_add_test(t, test_types_tasks_and_widths);
	tcase_add_test(t, test_limits_depth_layers_and_parameters);
	tcase_add_test(t, test_error_list_is_bounded);
	tcase_add_test(t, test_stored_spec_has_output_layer_and_defaults);
	tcase_add_test(t, test_api_example_job_parses);
	tcase_add_test(t, test_job_defaults);
	tcase_add_test(t, test_job_sparse_kernels);
	tcase_add_test(t, test_job_errors_name_fields);
	tcase_add_test(t, test_weights_round_trip_between_models);
	tcase_add_test(t, test_weights_mismatch_named_and_nothing_written);
	tcase_add_test(t, test_reference_initial_weights);
	tcase_add_test(t, test_names_and_enums);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(suite());
}
