/*
 * study.h - studies (API.md "Studies"): the study document read and checked
 * up front, and every decision a study makes as a pure function of the
 * document and its trials' results, so the scheduler (server/studies.c)
 * only carries them out and a study's numbers never depend on timing.
 *
 *  - the space: paths into the base `model` and `job` documents, each a
 *    list of choices or a range; a path must name a valid place (the value
 *    set there passes the model's or the job's own validation) and lie
 *    inside no other key's path;
 *  - trials: grid (row-major over the keys as written, the last fastest),
 *    random (draws from a generator seeded with the study's seed and the
 *    trial number), halving (random draws; rungs and promotions below) and
 *    learning curves (configuration-major, then rows, then repeat; repeat r
 *    trains with job seed + r and model seed + r);
 *  - successive halving's rung ends and promotions (ties by trial number);
 *  - a learning curve's means, standard deviations and slope fit.
 */
#ifndef API_STUDY_H
#define API_STUDY_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "api_err.h"
#include "spec_json.h"

typedef enum { API_STRAT_GRID, API_STRAT_RANDOM, API_STRAT_HALVING, API_STRAT_CURVE } api_strategy;
typedef enum { API_DIM_CHOICES, API_DIM_UNIFORM, API_DIM_LOG_UNIFORM, API_DIM_INT_UNIFORM } api_dim_kind;

typedef struct api_space_dim {
	char *path;            /* "model.layers[0].units", as written */
	api_dim_kind kind;
	const cJSON *choices;  /* API_DIM_CHOICES: points into the study's doc */
	int n_choices;
	double lo, hi;         /* ranges */
} api_space_dim;

/* What the data set tells the study (from its object). */
typedef struct api_study_data {
	nn_task task;
	int64_t rows;
	int features;
	int outputs;
	int has_theory;        /* 1 when the data set states a rate exponent */
	double theory;
} api_study_data;

/* A parsed study document. Owns doc (the config as stored, defaults
 * filled in) and everything else points into it or is owned. */
typedef struct api_study {
	cJSON *doc;
	const char *name;      /* NULL when none */
	const char *dataset, *val_dataset, *test_dataset; /* ids or NULL */
	float val_fraction;
	const cJSON *model, *job, *validation, *test;
	api_space_dim *dims;
	int n_dims;
	api_strategy strategy;
	int trials;            /* the number of trials the study runs */
	int min_epochs, factor;/* halving */
	int64_t *rows;         /* learning curve sizes */
	int n_rows, repeats;
	int configs;           /* grid and learning curve: configurations of the space */
	char metric[16];       /* val_loss, val_accuracy, test_loss, test_accuracy */
	int maximize;
	int restore_best;      /* job.early_stopping.restore_best */
	uint64_t seed;
	int parallelism;
	int epochs;            /* job.epochs (default 10) */
	int64_t job_seed, model_seed;
} api_study;

#define API_STUDY_MAX_TRIALS 100000

/*
 * Reads and checks a POST /v1/studies body against the data set d (NULL
 * when the data set is unknown: then only the document's shape is checked
 * and "dataset" is reported). workers is the default parallelism. 0, or
 * -1 with every bad field in e (422). On success out owns a copy of body.
 */
int api_study_parse(const cJSON *body, const api_limits *lim, const api_study_data *d,
                    int workers, api_study *out, api_err *e);
void api_study_free(api_study *s);

/* The study document as stored, back into s (the store's copy; data and
 * checks were done at creation). 0 or -1. */
int api_study_load(const char *config_json, api_study *out);

/* Trial t's parameters: {"<path>": value, ...} in the space's key order. */
cJSON *api_study_params(const api_study *s, int t);
/* Learning curves: the configuration, size index and repeat of trial t. */
void api_study_curve_pos(const api_study *s, int t, int *config, int *size, int *repeat);

/*
 * Trial t's model body (the base model with the parameters applied, inputs
 * and outputs from d, seed + repeat) and job body (the base job with the
 * parameters, seed + repeat, rows, and the study's validation and test;
 * without "model" and "dataset"). The caller owns both.
 */
int api_study_trial_docs(const api_study *s, const api_study_data *d, int t, cJSON **model,
                         cJSON **job, api_err *e);

/* Successive halving: the epochs at which rungs end (ascending, the last
 * one = epochs), at most max of them; the count. */
int api_halving_rungs(int min_epochs, int factor, int epochs, int *ends, int max);
/* How many of n trials of a rung continue: max(1, floor(n / factor)). */
int api_halving_keep(int n, int factor);
/*
 * Ranks n trials by value (NAN = no value, ranked last), best first for the
 * goal, ties by trial number; order gets indices into values/numbers.
 */
void api_rank_trials(const double *values, const int *numbers, int n, int maximize, int *order);

/* The objective value of a finished (or paused) trial from its job's
 * metrics and best (JSON texts, may be NULL); NAN when absent. A learning
 * curve turns an accuracy into its error rate 1 - accuracy. */
double api_study_value(const api_study *s, const char *metrics, const char *best);

/*
 * A learning curve's summary: per configuration
 * {"params", "points": [{"rows", "mean", "std", "values"}], "slope",
 *  "slope_ci95", "theory_slope"} (and "slope_error" when there is no
 * slope). values[t] is trial t's value (NAN when it has none).
 */
cJSON *api_study_curves(const api_study *s, const double *values, int n, int has_theory,
                        double theory);

#endif
