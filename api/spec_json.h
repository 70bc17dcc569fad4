/*
 * spec_json.h - JSON <-> engine structs for model specs, job configs and
 * weights, with validation that names every bad field by its JSON path.
 * Unknown fields are rejected (422) so typos do not pass silently.
 */
#ifndef API_SPEC_JSON_H
#define API_SPEC_JSON_H

#include <cjson/cJSON.h>
#include "nn.h"
#include "api_err.h"

typedef struct api_limits {
	int64_t max_params;   /* parameters per model (default 50,000,000) */
	int max_depth;        /* residual nesting (default 8) */
	int max_layers;       /* layers in one list (default 256) */
	int max_units;        /* units of one dense layer (default 65536) */
	int max_epochs;       /* default 100000 */
	int max_batch;        /* default 1<<20 */
	int max_replicas;     /* a job's replicas: the daemon's workers (0 = no bound) */
} api_limits;

api_limits api_limits_default(void);

/*
 * POST /v1/models body -> spec (owned by *out; free with nn_layers_free on
 * out->layers) and name (malloc'd, may be NULL). 0 or -1 with every bad field
 * in e (422, "validation_failed"). Parameter count checked before allocation.
 */
int api_model_spec_from_json(const cJSON *j, const api_limits *lim, nn_model_spec *out,
                             char **name, api_err *e);
/* The spec as stored (output layer included, defaults filled). */
cJSON *api_model_spec_to_json(const nn_model_spec *s);

/* POST /v1/jobs body. The ids are returned malloc'd (val_dataset NULL when the
 * validation is a fraction or absent). Defaults filled into *cfg. */
typedef struct api_job_refs {
	char *model;
	char *dataset;
	char *val_dataset;
	char *test_dataset;   /* "test": {"dataset"}, or NULL */
} api_job_refs;
void api_job_refs_free(api_job_refs *r);
int api_train_config_from_json(const cJSON *j, const api_limits *lim, nn_train_config *cfg,
                               api_job_refs *refs, api_err *e);
/* Rows of the training split of a data set of `rows` rows with a
 * validation fraction (0 = none), as the engine splits it. */
int64_t api_train_split_rows(int64_t rows, float val_fraction);
/* The config as stored, with defaults filled ("config" of the job object). */
cJSON *api_train_config_to_json(const nn_train_config *cfg, const api_job_refs *refs);

/* GET weights: {"layers": [...], "standardize"?: {...}} */
cJSON *api_weights_to_json(const nn_model *m);
/* PUT weights: checks every shape against m and writes the values into m
 * (nothing is written unless all of it is valid). 422 names the first mismatch. */
int api_weights_from_json(const cJSON *j, nn_model *m, api_err *e);

/* Names <-> enums, for the handlers and the docs. NULL / -1 when unknown. */
const char *api_act_name(nn_act a);
int api_act_parse(const char *s);
const char *api_init_name(nn_init i);
int api_init_parse(const char *s);
const char *api_opt_name(nn_opt_type t);
const char *api_sched_name(nn_sched_type t);

#endif
