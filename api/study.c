/*
 * study.c - the study document, its checks, and the decisions of its
 * strategies as pure functions (see study.h).
 *
 * A space path is "model" or "job" followed by ".key" and "[index]"
 * segments. It names a valid place when every segment but the last exists
 * in the base document (an index within its list) and the last is a key
 * of an object or an index within a list; the place is then checked by
 * setting each choice (each end of a range) there and running the model's
 * or the job's own validation on the result.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "study.h"
#include "store.h"

#define MAX_SEGS 32

typedef struct seg {
	int index;             /* >= 0: "[index]"; -1: ".key" */
	char key[64];
} seg;

/* Splits "model.layers[0].units" into its root (0 model, 1 job) and
 * segments. -1 when malformed. */
static int parse_path(const char *p, int *root, seg *segs, int *n)
{
	if (strncmp(p, "model", 5) == 0 && (p[5] == '.' || p[5] == '['))
		*root = 0, p += 5;
	else if (strncmp(p, "job", 3) == 0 && (p[3] == '.' || p[3] == '['))
		*root = 1, p += 3;
	else
		return -1;
	*n = 0;
	while (*p) {
		if (*n >= MAX_SEGS)
			return -1;
		seg *s = &segs[(*n)++];
		if (*p == '.') {
			size_t k = strspn(p + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
			if (k == 0 || k >= sizeof s->key)
				return -1;
			memcpy(s->key, p + 1, k);
			s->key[k] = '\0';
			s->index = -1;
			p += 1 + k;
		} else if (*p == '[') {
			char *end;
			long v = strtol(p + 1, &end, 10);
			if (end == p + 1 || *end != ']' || v < 0 || v > 100000)
				return -1;
			s->index = (int)v;
			p = end + 1;
		} else {
			return -1;
		}
	}
	return *n > 0 ? 0 : -1;
}

/* Sets value (copied) at segs in doc. 0, or -1 when the place does not
 * exist (why in msg). */
static int set_at(cJSON *doc, const seg *segs, int n, const cJSON *value, char *msg, size_t len)
{
	cJSON *cur = doc;
	for (int i = 0; i < n; i++) {
		const seg *s = &segs[i];
		int last = i == n - 1;
		cJSON *next;
		if (s->index >= 0) {
			if (!cJSON_IsArray(cur) || s->index >= cJSON_GetArraySize(cur)) {
				snprintf(msg, len, "index %d is not in the base document's list", s->index);
				return -1;
			}
			next = cJSON_GetArrayItem(cur, s->index);
			if (last) {
				cJSON *v = cJSON_Duplicate(value, 1);
				return v && cJSON_ReplaceItemInArray(cur, s->index, v) ? 0 : -1;
			}
		} else {
			if (!cJSON_IsObject(cur)) {
				snprintf(msg, len, "\"%s\" is not inside an object of the base document",
				         s->key);
				return -1;
			}
			next = cJSON_GetObjectItemCaseSensitive(cur, s->key);
			if (last) {
				cJSON *v = cJSON_Duplicate(value, 1);
				if (!v)
					return -1;
				if (next)
					return cJSON_ReplaceItemInObjectCaseSensitive(cur, s->key, v) ? 0 : -1;
				return cJSON_AddItemToObject(cur, s->key, v) ? 0 : -1;
			}
			if (!next) {
				snprintf(msg, len, "\"%s\" is not in the base document", s->key);
				return -1;
			}
		}
		cur = next;
	}
	return -1;
}

static int set_path(cJSON *model, cJSON *job, const char *path, const cJSON *value, char *msg,
                    size_t len)
{
	seg segs[MAX_SEGS];
	int root, n;
	if (parse_path(path, &root, segs, &n) < 0) {
		snprintf(msg, len, "must be model.<path> or job.<path> (keys and [index])");
		return -1;
	}
	return set_at(root ? job : model, segs, n, value, msg, len);
}

/* The model body of a trial: inputs and outputs from the data set when the
 * base leaves them out. */
static void fill_model(cJSON *m, const api_study_data *d)
{
	if (!d)
		return;
	if (!cJSON_GetObjectItemCaseSensitive(m, "inputs"))
		cJSON_AddNumberToObject(m, "inputs", d->features);
	if (!cJSON_GetObjectItemCaseSensitive(m, "outputs"))
		cJSON_AddNumberToObject(m, "outputs", d->outputs);
	if (!cJSON_GetObjectItemCaseSensitive(m, "task"))
		cJSON_AddStringToObject(m, "task", d->task == NN_TASK_CLASSIFICATION ? "classification"
		                                                                      : "regression");
}

/* The job body of a trial, made whole for validation (placeholder ids). */
static void fill_job(cJSON *j, const api_study *s)
{
	cJSON_DeleteItemFromObjectCaseSensitive(j, "model");
	cJSON_DeleteItemFromObjectCaseSensitive(j, "dataset");
	cJSON_AddStringToObject(j, "model", "mdl_0000000000000000");
	cJSON_AddStringToObject(j, "dataset", s->dataset ? s->dataset : "ds_0000000000000000");
	if (s->validation && !cJSON_IsNull(s->validation))
		cJSON_AddItemToObject(j, "validation", cJSON_Duplicate(s->validation, 1));
	if (s->test && !cJSON_IsNull(s->test))
		cJSON_AddItemToObject(j, "test", cJSON_Duplicate(s->test, 1));
}

/* Runs the model's and the job's validation on m and j; the first problem
 * into msg. 0 when both pass. */
static int check_docs(const api_study *s, const api_limits *lim, const api_study_data *d,
                      cJSON *m, cJSON *j, char *msg, size_t len, const char **which)
{
	api_err e = API_ERR_INIT;
	fill_model(m, d);
	nn_model_spec spec;
	char *name = NULL;
	memset(&spec, 0, sizeof spec);
	if (api_model_spec_from_json(m, lim, &spec, &name, &e) < 0) {
		*which = "model";
	} else {
		nn_layers_free(spec.layers, spec.n_layers);
		free(name);
		fill_job(j, s);
		nn_train_config cfg;
		api_job_refs refs;
		int rc = api_train_config_from_json(j, lim, &cfg, &refs, &e);
		api_job_refs_free(&refs);
		if (rc == 0)
			return 0;
		*which = "job";
	}
	if (e.n_fields)
		snprintf(msg, len, "%.60s: %.150s", e.fields[0].field, e.fields[0].message);
	else
		snprintf(msg, len, "%.200s", e.detail);
	return -1;
}

void api_study_free(api_study *s)
{
	if (!s)
		return;
	for (int i = 0; s->dims && i < s->n_dims; i++)
		free(s->dims[i].path);
	free(s->dims);
	free(s->rows);
	cJSON_Delete(s->doc);
	memset(s, 0, sizeof *s);
}

static const char *str_or_null(const cJSON *v)
{
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int is_int(const cJSON *v, double lo, double hi)
{
	return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
	       v->valuedouble >= lo && v->valuedouble <= hi;
}

/* ---------------------------------------------------------------- reading */

static void read_space(api_study *s, const cJSON *space, api_err *e)
{
	if (!space || cJSON_IsNull(space))
		return;
	if (!cJSON_IsObject(space)) {
		api_err_field(e, "space", "must be an object of paths");
		return;
	}
	int n = cJSON_GetArraySize(space);
	s->dims = calloc((size_t)(n ? n : 1), sizeof *s->dims);
	if (!s->dims)
		return;
	for (const cJSON *it = space->child; it; it = it->next) {
		api_space_dim *d = &s->dims[s->n_dims++];
		d->path = strdup(it->string ? it->string : "");
		char f[160];
		snprintf(f, sizeof f, "space.%.140s", d->path ? d->path : "");
		if (cJSON_IsArray(it)) {
			d->kind = API_DIM_CHOICES;
			d->choices = it;
			d->n_choices = cJSON_GetArraySize(it);
			if (d->n_choices == 0)
				api_err_field(e, f, "must hold at least one choice");
			continue;
		}
		static const char *const R[] = { "uniform", "log_uniform", "int_uniform" };
		const cJSON *r = NULL;
		int k = -1;
		for (int i = 0; cJSON_IsObject(it) && i < 3; i++)
			if ((r = cJSON_GetObjectItemCaseSensitive(it, R[i])))
				k = i;
		r = k >= 0 ? cJSON_GetObjectItemCaseSensitive(it, R[k]) : NULL;
		if (k < 0 || cJSON_GetArraySize(it) != 1 || !cJSON_IsArray(r) ||
		    cJSON_GetArraySize(r) != 2 || !cJSON_IsNumber(r->child) ||
		    !cJSON_IsNumber(r->child->next)) {
			api_err_field(e, f, "must be a list of choices or {\"uniform\"|\"log_uniform\"|"
			                    "\"int_uniform\": [a, b]}");
			continue;
		}
		d->kind = (api_dim_kind)(k + 1);
		d->lo = r->child->valuedouble;
		d->hi = r->child->next->valuedouble;
		if (!(d->lo < d->hi) || !isfinite(d->lo) || !isfinite(d->hi))
			api_err_field(e, f, "needs a < b");
		else if (d->kind == API_DIM_LOG_UNIFORM && d->lo <= 0)
			api_err_field(e, f, "log_uniform needs 0 < a");
		else if (d->kind == API_DIM_INT_UNIFORM && (d->lo != floor(d->lo) || d->hi != floor(d->hi)))
			api_err_field(e, f, "int_uniform needs integers");
	}
	/* a path inside another's */
	for (int i = 0; i < s->n_dims; i++)
		for (int j = 0; j < s->n_dims; j++) {
			const char *a = s->dims[i].path, *b = s->dims[j].path;
			size_t la = strlen(a);
			if (i != j && strncmp(a, b, la) == 0 && (b[la] == '.' || b[la] == '[')) {
				char f[160];
				snprintf(f, sizeof f, "space.%.140s", b);
				api_err_field(e, f, "lies inside %.100s, another key of the space", a);
			}
		}
}

/* Successive halving's min_epochs and reduction_factor (defaults written
 * into the config). */
static void read_halving(api_study *s, const cJSON *st, api_err *e)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(st, "min_epochs");
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(st, "reduction_factor");
	s->min_epochs = 1;
	s->factor = 3;
	if (m && !is_int(m, 1, s->epochs))
		api_err_field(e, "strategy.min_epochs", "must be an integer in [1, job.epochs = %d]",
		              s->epochs);
	else if (m)
		s->min_epochs = (int)m->valuedouble;
	if (f && !is_int(f, 2, 1000))
		api_err_field(e, "strategy.reduction_factor", "must be an integer in [2, 1000]");
	else if (f)
		s->factor = (int)f->valuedouble;
	cJSON *w = (cJSON *)st;
	cJSON_DeleteItemFromObjectCaseSensitive(w, "min_epochs");
	cJSON_DeleteItemFromObjectCaseSensitive(w, "reduction_factor");
	cJSON_AddNumberToObject(w, "min_epochs", s->min_epochs);
	cJSON_AddNumberToObject(w, "reduction_factor", s->factor);
}

/* A learning curve's rows (each within the training split) and repeats;
 * its trials: every configuration at every row count, repeats times. */
static void read_curve(api_study *s, const cJSON *st, const api_study_data *d, api_err *e)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(st, "rows");
	const cJSON *rep = cJSON_GetObjectItemCaseSensitive(st, "repeats");
	s->repeats = 1;
	if (rep && !is_int(rep, 1, 1000))
		api_err_field(e, "strategy.repeats", "must be an integer in [1, 1000]");
	else if (rep)
		s->repeats = (int)rep->valuedouble;
	if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) == 0) {
		api_err_field(e, "strategy.rows", "must be a non-empty list of row counts");
	} else {
		s->n_rows = cJSON_GetArraySize(r);
		s->rows = calloc((size_t)s->n_rows, sizeof *s->rows);
		double vf = s->val_dataset ? 0 : s->val_fraction;
		int64_t split = d ? api_train_split_rows(d->rows, vf) : INT64_MAX;
		int i = 0;
		for (const cJSON *v = r->child; v && s->rows; v = v->next, i++) {
			char f[48];
			snprintf(f, sizeof f, "strategy.rows[%d]", i);
			if (!is_int(v, 1, 1e12))
				api_err_field(e, f, "must be a positive integer");
			else if ((int64_t)v->valuedouble > split)
				api_err_field(e, f, "is more than the training split holds (%lld)",
				              (long long)split);
			else
				s->rows[i] = (int64_t)v->valuedouble;
		}
	}
	cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)st, "repeats");
	cJSON_AddNumberToObject((cJSON *)st, "repeats", s->repeats);
	double n = (double)s->configs * s->n_rows * s->repeats;
	s->trials = n > API_STUDY_MAX_TRIALS ? API_STUDY_MAX_TRIALS + 1 : (int)n;
}

static void read_strategy(api_study *s, const cJSON *st, const api_study_data *d, api_err *e)
{
	const char *t = cJSON_IsObject(st) ? str_or_null(cJSON_GetObjectItemCaseSensitive(st, "type"))
	                                   : NULL;
	static const char *const T[] = { "grid", "random", "halving", "learning_curve" };
	int k = -1;
	for (int i = 0; t && i < 4; i++)
		if (strcmp(t, T[i]) == 0)
			k = i;
	if (k < 0) {
		api_err_field(e, "strategy.type", "must be grid, random, halving or learning_curve");
		return;
	}
	s->strategy = (api_strategy)k;
	static const char *const allowed[4][4] = {
		{ "type" }, { "type", "trials" }, { "type", "trials", "min_epochs", "reduction_factor" },
		{ "type", "rows", "repeats" }
	};
	for (const cJSON *it = st->child; it; it = it->next) {
		int ok = 0;
		for (int i = 0; i < 4 && allowed[k][i]; i++)
			ok |= strcmp(it->string, allowed[k][i]) == 0;
		if (!ok) {
			char f[128];
			snprintf(f, sizeof f, "strategy.%.100s", it->string);
			api_err_field(e, f, "does not apply to strategy %s", T[k]);
		}
	}
	s->configs = 1;
	for (int i = 0; i < s->n_dims; i++) {
		if ((k == API_STRAT_GRID || k == API_STRAT_CURVE) && s->dims[i].kind != API_DIM_CHOICES) {
			char f[160];
			snprintf(f, sizeof f, "space.%.140s", s->dims[i].path);
			api_err_field(e, f, "a range needs a random or halving strategy; %s takes "
			              "lists of choices", T[k]);
		} else if (s->dims[i].kind == API_DIM_CHOICES) {
			double c = (double)s->configs * s->dims[i].n_choices;
			s->configs = c > API_STUDY_MAX_TRIALS ? API_STUDY_MAX_TRIALS + 1 : (int)c;
		}
	}
	if (k == API_STRAT_RANDOM || k == API_STRAT_HALVING) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(st, "trials");
		if (!is_int(n, 1, API_STUDY_MAX_TRIALS))
			api_err_field(e, "strategy.trials", "must be an integer in [1, %d]",
			              API_STUDY_MAX_TRIALS);
		else
			s->trials = (int)n->valuedouble;
	}
	if (k == API_STRAT_HALVING)
		read_halving(s, st, e);
	if (k == API_STRAT_GRID)
		s->trials = s->configs;
	if (k == API_STRAT_CURVE)
		read_curve(s, st, d, e);
	if (s->trials > API_STUDY_MAX_TRIALS)
		api_err_field(e, "strategy", "asks for more than %d trials", API_STUDY_MAX_TRIALS);
}

static void read_objective(api_study *s, cJSON *o, const api_study_data *d, api_err *e)
{
	const char *m = cJSON_IsObject(o) ? str_or_null(cJSON_GetObjectItemCaseSensitive(o, "metric"))
	                                  : NULL;
	static const char *const M[] = { "val_loss", "val_accuracy", "test_loss", "test_accuracy" };
	int k = -1;
	for (int i = 0; m && i < 4; i++)
		if (strcmp(m, M[i]) == 0)
			k = i;
	if (k < 0) {
		api_err_field(e, "objective.metric",
		              "must be val_loss, val_accuracy, test_loss or test_accuracy");
		return;
	}
	snprintf(s->metric, sizeof s->metric, "%s", M[k]);
	int val = k < 2, acc = k % 2;
	if (val && (!s->validation || cJSON_IsNull(s->validation)))
		api_err_field(e, "objective.metric", "%s needs \"validation\"", M[k]);
	if (!val && (!s->test || cJSON_IsNull(s->test)))
		api_err_field(e, "objective.metric", "%s needs \"test\"", M[k]);
	if (acc && d && d->task != NN_TASK_CLASSIFICATION)
		api_err_field(e, "objective.metric", "%s needs a classification data set", M[k]);
	if (!val && s->strategy == API_STRAT_HALVING)
		api_err_field(e, "objective.metric", "halving decides at rung ends, where test "
		                                     "scores do not exist: use val_loss or val_accuracy");
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "goal");
	s->maximize = acc && s->strategy != API_STRAT_CURVE;
	if (g && (!cJSON_IsString(g) || (strcmp(g->valuestring, "minimize") &&
	                                 strcmp(g->valuestring, "maximize"))))
		api_err_field(e, "objective.goal", "must be minimize or maximize");
	else if (g)
		s->maximize = strcmp(g->valuestring, "maximize") == 0;
	for (const cJSON *it = o->child; it; it = it->next)
		if (strcmp(it->string, "metric") && strcmp(it->string, "goal"))
			api_err_field(e, "objective", "takes metric and goal only");
	cJSON_DeleteItemFromObjectCaseSensitive(o, "goal");
	cJSON_AddStringToObject(o, "goal", s->maximize ? "maximize" : "minimize");
}

/* Reads the fields the rest depends on; 0 or -1 after reporting. */
static int read_top(api_study *s, int workers, api_err *e)
{
	static const char *const K[] = { "name", "dataset", "validation", "test", "objective",
	                                 "model", "job", "space", "strategy", "seed",
	                                 "parallelism" };
	cJSON *doc = s->doc;
	for (const cJSON *it = doc->child; it; it = it->next) {
		int ok = 0;
		for (int i = 0; i < 11; i++)
			ok |= strcmp(it->string, K[i]) == 0;
		if (!ok) {
			char f[128];
			snprintf(f, sizeof f, "%.100s", it->string);
			api_err_field(e, f, "unknown field");
		}
	}
	const cJSON *nm = cJSON_GetObjectItemCaseSensitive(doc, "name");
	if (nm && !cJSON_IsNull(nm) && (!cJSON_IsString(nm) || strlen(nm->valuestring) > 200))
		api_err_field(e, "name", "must be a string of at most 200 bytes");
	s->name = str_or_null(nm);
	s->dataset = str_or_null(cJSON_GetObjectItemCaseSensitive(doc, "dataset"));
	if (!s->dataset || !api_id_valid(s->dataset, "ds"))
		api_err_field(e, "dataset", "must be a data set id");
	s->validation = cJSON_GetObjectItemCaseSensitive(doc, "validation");
	s->test = cJSON_GetObjectItemCaseSensitive(doc, "test");
	if (s->validation && !cJSON_IsNull(s->validation)) {
		const cJSON *fr = cJSON_GetObjectItemCaseSensitive(s->validation, "fraction");
		s->val_dataset = str_or_null(cJSON_GetObjectItemCaseSensitive(s->validation, "dataset"));
		if (cJSON_IsNumber(fr))
			s->val_fraction = (float)fr->valuedouble;
	}
	if (s->test && !cJSON_IsNull(s->test))
		s->test_dataset = str_or_null(cJSON_GetObjectItemCaseSensitive(s->test, "dataset"));
	s->model = cJSON_GetObjectItemCaseSensitive(doc, "model");
	s->job = cJSON_GetObjectItemCaseSensitive(doc, "job");
	if (!cJSON_IsObject(s->model))
		api_err_field(e, "model", "must be a model spec object");
	if (!cJSON_IsObject(s->job))
		api_err_field(e, "job", "must be a job config object");
	static const char *const own[] = { "model", "dataset", "validation", "test" };
	for (int i = 0; cJSON_IsObject(s->job) && i < 4; i++)
		if (cJSON_GetObjectItemCaseSensitive(s->job, own[i])) {
			char f[32];
			snprintf(f, sizeof f, "job.%s", own[i]);
			api_err_field(e, f, "is the study's: give it at the top level");
		}
	const cJSON *ep = cJSON_IsObject(s->job) ? cJSON_GetObjectItemCaseSensitive(s->job, "epochs")
	                                        : NULL;
	s->epochs = is_int(ep, 1, 1e9) ? (int)ep->valuedouble : 10;
	const cJSON *js = cJSON_IsObject(s->job) ? cJSON_GetObjectItemCaseSensitive(s->job, "seed")
	                                        : NULL;
	const cJSON *ms = cJSON_IsObject(s->model) ? cJSON_GetObjectItemCaseSensitive(s->model, "seed")
	                                          : NULL;
	s->job_seed = cJSON_IsNumber(js) ? (int64_t)js->valuedouble : 0;
	s->model_seed = cJSON_IsNumber(ms) ? (int64_t)ms->valuedouble : 0;
	const cJSON *es = cJSON_IsObject(s->job) ? cJSON_GetObjectItemCaseSensitive(s->job, "early_stopping")
	                                        : NULL;
	const cJSON *rb = cJSON_IsObject(es) ? cJSON_GetObjectItemCaseSensitive(es, "restore_best") : NULL;
	s->restore_best = cJSON_IsObject(es) && (!rb || cJSON_IsTrue(rb));
	cJSON *sd = cJSON_GetObjectItemCaseSensitive(doc, "seed");
	if (sd && !is_int(sd, 0, 9007199254740991.0))
		api_err_field(e, "seed", "must be a non-negative integer");
	s->seed = is_int(sd, 0, 9007199254740991.0) ? (uint64_t)sd->valuedouble : 0;
	cJSON *pl = cJSON_GetObjectItemCaseSensitive(doc, "parallelism");
	if (pl && !is_int(pl, 1, 10000))
		api_err_field(e, "parallelism", "must be an integer in [1, 10000]");
	s->parallelism = is_int(pl, 1, 10000) ? (int)pl->valuedouble : (workers > 0 ? workers : 1);
	/* defaults into the stored document */
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "seed");
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "parallelism");
	cJSON_AddNumberToObject(doc, "seed", (double)s->seed);
	cJSON_AddNumberToObject(doc, "parallelism", s->parallelism);
	if (!nm)
		cJSON_AddNullToObject(doc, "name");
	if (!s->validation)
		s->validation = cJSON_AddNullToObject(doc, "validation");
	if (!s->test)
		s->test = cJSON_AddNullToObject(doc, "test");
	if (!cJSON_GetObjectItemCaseSensitive(doc, "space"))
		cJSON_AddObjectToObject(doc, "space");
	return e->n_fields ? -1 : 0;
}

/* Every choice and range end of every dim, and the base documents, through
 * the model's and the job's validation. */
static void check_places(api_study *s, const api_limits *lim, const api_study_data *d,
                         api_err *e)
{
	char msg[300];
	const char *which = "";
	cJSON *m = cJSON_Duplicate(s->model, 1), *j = cJSON_Duplicate(s->job, 1);
	if (check_docs(s, lim, d, m, j, msg, sizeof msg, &which) < 0)
		api_err_field(e, which, "%s", msg);
	cJSON_Delete(m);
	cJSON_Delete(j);
	for (int i = 0; i < s->n_dims && !e->n_fields; i++) {
		api_space_dim *dm = &s->dims[i];
		char f[160];
		snprintf(f, sizeof f, "space.%.140s", dm->path);
		if (s->strategy == API_STRAT_CURVE && strcmp(dm->path, "job.rows") == 0) {
			api_err_field(e, f, "a learning curve sets rows itself");
			continue;
		}
		int n = dm->kind == API_DIM_CHOICES ? dm->n_choices : 2;
		const cJSON *c = dm->kind == API_DIM_CHOICES ? dm->choices->child : NULL;
		for (int k = 0; k < n; k++) {
			cJSON *v = c ? NULL : cJSON_CreateNumber(k ? dm->hi : dm->lo);
			m = cJSON_Duplicate(s->model, 1);
			j = cJSON_Duplicate(s->job, 1);
			int bad = set_path(m, j, dm->path, c ? c : v, msg, sizeof msg) < 0 ||
			          check_docs(s, lim, d, m, j, msg, sizeof msg, &which) < 0;
			cJSON_Delete(m);
			cJSON_Delete(j);
			cJSON_Delete(v);
			if (bad) {
				api_err_field(e, f, "%s", msg);
				break;
			}
			if (c)
				c = c->next;
		}
	}
	if (s->strategy == API_STRAT_CURVE && cJSON_GetObjectItemCaseSensitive(s->job, "rows"))
		api_err_field(e, "job.rows", "a learning curve sets rows itself");
}

static int parse_doc(api_study *s, const api_limits *lim, const api_study_data *d, int workers,
                     api_err *e)
{
	if (read_top(s, workers, e) < 0)
		return -1;
	read_space(s, cJSON_GetObjectItemCaseSensitive(s->doc, "space"), e);
	read_strategy(s, cJSON_GetObjectItemCaseSensitive(s->doc, "strategy"), d, e);
	cJSON *o = cJSON_GetObjectItemCaseSensitive(s->doc, "objective");
	if (!cJSON_IsObject(o))
		api_err_field(e, "objective", "must be {\"metric\", \"goal\"}");
	else
		read_objective(s, o, d, e);
	if (!e->n_fields && lim)
		check_places(s, lim, d, e);
	return e->n_fields ? -1 : 0;
}

int api_study_parse(const cJSON *body, const api_limits *lim, const api_study_data *d,
                    int workers, api_study *out, api_err *e)
{
	memset(out, 0, sizeof *out);
	if (!cJSON_IsObject(body))
		return api_err_field(e, "body", "must be a JSON object");
	out->doc = cJSON_Duplicate(body, 1);
	if (!out->doc)
		return api_err_set(e, 500, "out_of_memory", "out of memory");
	api_limits dl = api_limits_default();
	if (parse_doc(out, lim ? lim : &dl, d, workers, e) < 0) {
		api_study_free(out);
		if (!e->status)
			api_err_set(e, 422, "validation_failed", "the study is invalid");
		return -1;
	}
	return 0;
}

int api_study_load(const char *config_json, api_study *out)
{
	memset(out, 0, sizeof *out);
	out->doc = config_json ? cJSON_Parse(config_json) : NULL;
	api_err e = API_ERR_INIT;
	if (!out->doc || parse_doc(out, NULL, NULL, 1, &e) < 0) {
		api_study_free(out);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- trials */

void api_study_curve_pos(const api_study *s, int t, int *config, int *size, int *repeat)
{
	int per = s->n_rows * s->repeats;
	*config = per ? t / per : 0;
	*size = s->repeats ? (t / s->repeats) % (s->n_rows ? s->n_rows : 1) : 0;
	*repeat = s->repeats ? t % s->repeats : 0;
}

/* Uniform in [0, 1) with 53 random bits. */
static double unit01(nn_rng *r)
{
	return (double)(nn_rng_next(r) >> 11) * 0x1p-53;
}

cJSON *api_study_params(const api_study *s, int t)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	if (s->strategy == API_STRAT_GRID || s->strategy == API_STRAT_CURVE) {
		int g = t, pos[MAX_SEGS * 4];
		if (s->strategy == API_STRAT_CURVE) {
			int size, rep;
			api_study_curve_pos(s, t, &g, &size, &rep);
		}
		for (int i = s->n_dims - 1; i >= 0; i--) {
			int n = s->dims[i].n_choices;
			pos[i < MAX_SEGS * 4 ? i : 0] = g % n;
			g /= n;
		}
		for (int i = 0; i < s->n_dims && i < MAX_SEGS * 4; i++)
			cJSON_AddItemToObject(o, s->dims[i].path,
			                      cJSON_Duplicate(cJSON_GetArrayItem(s->dims[i].choices, pos[i]), 1));
		return o;
	}
	nn_rng r;
	nn_rng_seed(&r, s->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(t + 1)));
	for (int i = 0; i < s->n_dims; i++) {
		const api_space_dim *d = &s->dims[i];
		cJSON *v;
		double u = unit01(&r);
		switch (d->kind) {
		case API_DIM_CHOICES:
			v = cJSON_Duplicate(cJSON_GetArrayItem(d->choices,
			                                       (int)nn_rng_below(&r, (uint64_t)d->n_choices)), 1);
			break;
		case API_DIM_UNIFORM:
			v = cJSON_CreateNumber(d->lo + u * (d->hi - d->lo));
			break;
		case API_DIM_LOG_UNIFORM:
			v = cJSON_CreateNumber(exp(log(d->lo) + u * (log(d->hi) - log(d->lo))));
			break;
		default:
			v = cJSON_CreateNumber(d->lo + (double)nn_rng_below(&r, (uint64_t)(d->hi - d->lo + 1)));
			break;
		}
		cJSON_AddItemToObject(o, d->path, v);
	}
	return o;
}

int api_study_trial_docs(const api_study *s, const api_study_data *d, int t, cJSON **model,
                         cJSON **job, api_err *e)
{
	*model = cJSON_Duplicate(s->model, 1);
	*job = cJSON_Duplicate(s->job, 1);
	cJSON *p = api_study_params(s, t);
	char msg[200];
	int bad = !*model || !*job || !p;
	for (const cJSON *it = p ? p->child : NULL; it && !bad; it = it->next)
		bad = set_path(*model, *job, it->string, it, msg, sizeof msg) < 0;
	cJSON_Delete(p);
	if (!bad && s->strategy == API_STRAT_CURVE) {
		int c, size, rep;
		api_study_curve_pos(s, t, &c, &size, &rep);
		cJSON_DeleteItemFromObjectCaseSensitive(*model, "seed");
		cJSON_AddNumberToObject(*model, "seed", (double)(s->model_seed + rep));
		cJSON_DeleteItemFromObjectCaseSensitive(*job, "seed");
		cJSON_AddNumberToObject(*job, "seed", (double)(s->job_seed + rep));
		cJSON_AddNumberToObject(*job, "rows", (double)s->rows[size]);
	}
	if (!bad) {
		fill_model(*model, d);
		if (s->validation && !cJSON_IsNull(s->validation))
			cJSON_AddItemToObject(*job, "validation", cJSON_Duplicate(s->validation, 1));
		if (s->test && !cJSON_IsNull(s->test))
			cJSON_AddItemToObject(*job, "test", cJSON_Duplicate(s->test, 1));
		return 0;
	}
	cJSON_Delete(*model);
	cJSON_Delete(*job);
	*model = *job = NULL;
	return api_err_set(e, 500, "study_failed", "trial %d: cannot build its documents", t);
}

/* ---------------------------------------------------------------- halving */

int api_halving_rungs(int min_epochs, int factor, int epochs, int *ends, int max)
{
	int n = 0;
	for (double e = min_epochs; e < epochs && n < max - 1; e *= factor)
		ends[n++] = (int)e;
	if (n < max)
		ends[n++] = epochs;
	return n;
}

int api_halving_keep(int n, int factor)
{
	int k = n / factor;
	return k < 1 ? 1 : k;
}

static const double *rank_vals;
static const int *rank_nums;
static int rank_max;

static int rank_cmp(const void *a, const void *b)
{
	int i = *(const int *)a, j = *(const int *)b;
	double x = rank_vals[i], y = rank_vals[j];
	int nx = isnan(x), ny = isnan(y);
	if (nx != ny)
		return nx - ny;
	if (!nx && x != y)
		return (rank_max ? x > y : x < y) ? -1 : 1;
	return rank_nums[i] - rank_nums[j];
}

void api_rank_trials(const double *values, const int *numbers, int n, int maximize, int *order)
{
	/* qsort's comparator takes no context: the arrays go through file
	 * statics, so callers must not rank from two threads at once (the
	 * scheduler is one thread; tests are single-threaded). An insertion
	 * sort keeps it simple and stable. */
	rank_vals = values;
	rank_nums = numbers;
	rank_max = maximize;
	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = 1; i < n; i++) {
		int v = order[i], k = i;
		while (k > 0 && rank_cmp(&order[k - 1], &v) > 0) {
			order[k] = order[k - 1];
			k--;
		}
		order[k] = v;
	}
}

/* ---------------------------------------------------------------- values */

double api_study_value(const api_study *s, const char *metrics, const char *best)
{
	double v = NAN;
	cJSON *m = metrics ? cJSON_Parse(metrics) : NULL;
	const cJSON *x = m ? cJSON_GetObjectItemCaseSensitive(m, s->metric) : NULL;
	if (cJSON_IsNumber(x))
		v = x->valuedouble;
	cJSON_Delete(m);
	if (s->restore_best && strcmp(s->metric, "val_loss") == 0 && best) {
		cJSON *b = cJSON_Parse(best);
		const cJSON *bv = b ? cJSON_GetObjectItemCaseSensitive(b, "val_loss") : NULL;
		if (cJSON_IsNumber(bv))
			v = bv->valuedouble;
		cJSON_Delete(b);
	}
	if (s->strategy == API_STRAT_CURVE && strstr(s->metric, "accuracy") && !isnan(v))
		v = 1 - v;
	return v;
}

static cJSON *num_or_null(double v)
{
	return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* One configuration's curve: points, and the fit over every value. */
static cJSON *one_curve(const api_study *s, int c, const double *values, int n, int has_theory,
                        double theory)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "params", api_study_params(s, c * s->n_rows * s->repeats));
	cJSON *pts = cJSON_AddArrayToObject(o, "points");
	int cap = s->n_rows * s->repeats, k = 0;
	double *xs = malloc(sizeof(double) * (size_t)(cap ? cap : 1));
	double *ys = malloc(sizeof(double) * (size_t)(cap ? cap : 1));
	int missing = 0;
	for (int r = 0; r < s->n_rows && xs && ys; r++) {
		cJSON *p = cJSON_CreateObject();
		cJSON_AddNumberToObject(p, "rows", (double)s->rows[r]);
		cJSON *vals = cJSON_CreateArray();
		double sum = 0, sq = 0;
		int m = 0;
		for (int rep = 0; rep < s->repeats; rep++) {
			int t = (c * s->n_rows + r) * s->repeats + rep;
			double v = t < n ? values[t] : NAN;
			cJSON_AddItemToArray(vals, num_or_null(v));
			if (isnan(v)) {
				missing = 1;
				continue;
			}
			sum += v;
			m++;
			xs[k] = (double)s->rows[r];
			ys[k++] = v;
		}
		double mean = m ? sum / m : NAN;
		for (int rep = 0; rep < s->repeats; rep++) {
			int t = (c * s->n_rows + r) * s->repeats + rep;
			if (t < n && !isnan(values[t]))
				sq += (values[t] - mean) * (values[t] - mean);
		}
		cJSON_AddItemToObject(p, "mean", num_or_null(mean));
		cJSON_AddItemToObject(p, "std", num_or_null(m > 1 ? sqrt(sq / (m - 1)) : NAN));
		cJSON_AddItemToObject(p, "values", vals);
		cJSON_AddItemToArray(pts, p);
	}
	nn_slope_fit f;
	char why[200] = "";
	nn_status st = nn_loglog_fit(xs, ys, k, &f, why, sizeof why);
	cJSON_AddItemToObject(o, "slope", num_or_null(st == NN_OK ? f.slope : NAN));
	if (st == NN_OK && isfinite(f.lo)) {
		cJSON *ci = cJSON_AddArrayToObject(o, "slope_ci95");
		cJSON_AddItemToArray(ci, cJSON_CreateNumber(f.lo));
		cJSON_AddItemToArray(ci, cJSON_CreateNumber(f.hi));
	} else {
		cJSON_AddNullToObject(o, "slope_ci95");
	}
	if (st != NN_OK)
		cJSON_AddStringToObject(o, "slope_error", why);
	else if (missing)
		cJSON_AddStringToObject(o, "note", "some trials have no value yet (or failed)");
	cJSON_AddItemToObject(o, "theory_slope", has_theory ? cJSON_CreateNumber(theory)
	                                                    : cJSON_CreateNull());
	free(xs);
	free(ys);
	return o;
}

cJSON *api_study_curves(const api_study *s, const double *values, int n, int has_theory,
                        double theory)
{
	cJSON *a = cJSON_CreateArray();
	for (int c = 0; a && c < s->configs; c++)
		cJSON_AddItemToArray(a, one_curve(s, c, values, n, has_theory, theory));
	return a;
}
