/*
 * handlers_jobs.c - /v1/jobs: submit (with every compatibility check done
 * here, so a job that cannot run is a 422 now rather than a failure later),
 * list, get, cancel and the metric history. The event stream is the
 * daemon's (it needs suspend/resume); it reuses api_job_to_json.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classes.h"
#include "curves.h"
#include "handlers.h"
#include "handlers_int.h"
#include "plot_svg.h"

/* Checks one data set against the model; field is "dataset",
 * "validation.dataset" or "test.dataset". The training set's classes must
 * fit the model's outputs (api_classes_for_model); the others are matched
 * to them by name (check_class_names). */
static void check_compat(const api_model_info *m, const api_dataset_info *d,
                         const char *field, int by_name, api_err *e)
{
	if (d->task != m->task)
		api_err_field(e, field, "is a %s data set but the model does %s",
		              d->task == NN_TASK_CLASSIFICATION ? "classification" : "regression",
		              m->task == NN_TASK_CLASSIFICATION ? "classification" : "regression");
	if (!by_name && d->features != m->inputs)
		api_err_field(e, field, "has %d features but the model takes %d inputs",
		              d->features, m->inputs);
	if (d->task != m->task)
		return;
	if (d->task == NN_TASK_REGRESSION && d->outputs != m->outputs)
		api_err_field(e, field, "has %d targets per row but the model has %d outputs",
		              d->outputs, m->outputs);
	if (d->task != NN_TASK_CLASSIFICATION || strcmp(field, "dataset") != 0)
		return;
	int n;
	char **names = api_classes_of_doc(d->doc, &n);
	api_classes mc;
	int rc = api_classes_for_model(names, n, m->outputs, &mc);
	api_classes_free(&mc);
	free(names);
	if (rc == -1)
		api_err_field(e, field, d->outputs > m->outputs
		              ? "has %d classes but the model has %d outputs"
		              : "has %d classes but the model has %d outputs (only classes that are "
		                "the indices 0..K-1 may be fewer than the outputs)",
		              d->outputs, m->outputs);
}

int64_t api_train_split_rows(int64_t rows, float val_fraction)
{
	if (val_fraction <= 0)
		return rows;
	int64_t nv = (int64_t)llround((double)rows * val_fraction);
	return rows - (nv < 1 ? 1 : nv);
}

/* Every check of a parsed job against what it names: the model and data
 * sets exist and fit, classes match by name, rows, replicas, augmentation.
 * Field errors into e. */
static void check_refs(const api_backend *b, const api_job_refs *r, const nn_train_config *c,
                       api_err *e)
{
	api_model_info m;
	api_dataset_info d, v, t;
	memset(&m, 0, sizeof m);
	memset(&d, 0, sizeof d);
	memset(&v, 0, sizeof v);
	memset(&t, 0, sizeof t);
	api_err tmp = API_ERR_INIT;
	int have_m = 0, have_d = 0, have_v = 0, have_t = 0;
	if (!r->model || !api_id_valid(r->model, "mdl") ||
	    b->model_get(b->ctx, r->model, &m, &tmp) < 0)
		api_err_field(e, "model", "no model with this id");
	else
		have_m = 1;
	if (!r->dataset || !api_id_valid(r->dataset, "ds") ||
	    b->dataset_get(b->ctx, r->dataset, &d, &tmp) < 0)
		api_err_field(e, "dataset", "no data set with this id");
	else
		have_d = 1;
	if (r->val_dataset) {
		if (!api_id_valid(r->val_dataset, "ds") ||
		    b->dataset_get(b->ctx, r->val_dataset, &v, &tmp) < 0)
			api_err_field(e, "validation.dataset", "no data set with this id");
		else
			have_v = 1;
	}
	if (r->test_dataset) {
		if (!api_id_valid(r->test_dataset, "ds") ||
		    b->dataset_get(b->ctx, r->test_dataset, &t, &tmp) < 0)
			api_err_field(e, "test.dataset", "no data set with this id");
		else
			have_t = 1;
	}
	if (have_m && have_d)
		check_compat(&m, &d, "dataset", 0, e);
	/* a validation set with typed columns is encoded with the training
	 * set's encoding, column by column name: its own width does not count */
	const cJSON *tc = have_d ? cJSON_GetObjectItemCaseSensitive(d.doc, "columns") : NULL;
	const cJSON *vc = have_v ? cJSON_GetObjectItemCaseSensitive(v.doc, "columns") : NULL;
	const cJSON *sc = have_t ? cJSON_GetObjectItemCaseSensitive(t.doc, "columns") : NULL;
	if (tc && vc)
		api_tab_columns_check(tc, vc, "validation.dataset", e);
	if (tc && sc)
		api_tab_columns_check(tc, sc, "test.dataset", e);
	if (have_m && have_v)
		check_compat(&m, &v, "validation.dataset", tc && vc, e);
	if (have_m && have_t)
		check_compat(&m, &t, "test.dataset", tc && sc, e);
	if (have_m && have_d && have_v && m.task == NN_TASK_CLASSIFICATION)
		api_check_class_names(b, &d, m.outputs, &v, "validation.dataset", e);
	if (have_m && have_d && have_t && m.task == NN_TASK_CLASSIFICATION)
		api_check_class_names(b, &d, m.outputs, &t, "test.dataset", e);
	if (have_d && c->rows > 0) {
		int64_t split = api_train_split_rows(d.rows, have_v ? 0 : c->val_fraction);
		if (c->rows > split)
			api_err_field(e, "rows", "is %lld but the training split holds %lld rows",
			              (long long)c->rows, (long long)split);
	}
	if (b->limits.max_replicas > 0 && c->replicas > b->limits.max_replicas)
		api_err_field(e, "replicas", "is %d but the daemon can give a job at most %d",
		              c->replicas, b->limits.max_replicas);
	if (have_d && nn_augment_has_image(&c->aug) && !d.image)
		api_err_field(e, "augment", "image augmentations need a data set with an image shape");
	if (c->early.enabled && c->val_fraction <= 0 && !r->val_dataset)
		api_err_field(e, "early_stopping", "needs a validation set");
	api_model_info_release(&m);
	api_dataset_info_release(&d);
	api_dataset_info_release(&v);
	api_dataset_info_release(&t);
}

int api_jobs_create(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	cJSON *j = api_parse_body(rq, &e);
	if (!j)
		return api_reply_error(rp, &e);
	nn_train_config cfg = nn_train_config_default();
	api_job_refs refs;
	memset(&refs, 0, sizeof refs);
	int rc = api_train_config_from_json(j, &b->limits, &cfg, &refs, &e);
	cJSON_Delete(j);
	if (rc < 0) {
		api_job_refs_free(&refs);
		return api_reply_error(rp, &e);
	}

	check_refs(b, &refs, &cfg, &e);
	if (e.n_fields) {
		api_job_refs_free(&refs);
		api_err_set(&e, 422, "validation_failed", "the job cannot run as submitted");
		return api_reply_error(rp, &e);
	}

	cJSON *cj = api_train_config_to_json(&cfg, &refs);
	char *text = cj ? cJSON_PrintUnformatted(cj) : NULL;
	cJSON_Delete(cj);
	if (!text) {
		api_job_refs_free(&refs);
		api_err_set(&e, 500, "out_of_memory", "out of memory");
		return api_reply_error(rp, &e);
	}
	api_job job;
	memset(&job, 0, sizeof job);
	rc = b->job_submit(b->ctx, &refs, text, &job, &e);
	free(text);
	api_job_refs_free(&refs);
	if (rc < 0) {
		if (e.status == 429 && !rp->retry_after)
			rp->retry_after = 5;
		return api_reply_error(rp, &e);
	}
	snprintf(rp->location, sizeof rp->location, "/v1/jobs/%s", job.id);
	cJSON *o = api_job_to_json(&job);
	api_job_release(&job);
	return api_reply_json(rp, 202, o);
}

int api_jobs_list(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int64_t limit, offset, total = 0;
	int state = -1;
	const char *s = rq->query ? rq->query(rq->qcls, "state") : NULL;
	if (s && (state = api_job_state_parse(s)) < 0)
		api_err_field(&e, "state",
		              "must be queued, running, succeeded, failed, cancelled or paused");
	if (api_paging(rq, &limit, &offset, &e) < 0 || e.n_fields) {
		api_err_set(&e, 422, "validation_failed", "invalid query parameters");
		return api_reply_error(rp, &e);
	}
	const char *study = rq->query ? rq->query(rq->qcls, "study") : NULL;
	if (study) {
		if (!api_id_valid(study, "std") || !b->job_list_study) {
			api_err_field(&e, "study", "must be a study id");
			return api_reply_error(rp, &e);
		}
		cJSON *items = cJSON_CreateArray();
		if (b->job_list_study(b->ctx, study, limit, offset, items, &total, &e) < 0) {
			cJSON_Delete(items);
			return api_reply_error(rp, &e);
		}
		return api_reply_list(rp, "jobs", items, total, limit, offset);
	}
	cJSON *items = cJSON_CreateArray();
	if (b->job_list(b->ctx, state, limit, offset, items, &total, &e) < 0) {
		cJSON_Delete(items);
		return api_reply_error(rp, &e);
	}
	return api_reply_list(rp, "jobs", items, total, limit, offset);
}

int api_job_get(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	api_job job;
	memset(&job, 0, sizeof job);
	if (b->job_get(b->ctx, rq->id, &job, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *o = api_job_to_json(&job);
	api_job_release(&job);
	return api_reply_json(rp, 200, o);
}

int api_job_cancel(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	api_job job;
	memset(&job, 0, sizeof job);
	if (b->job_cancel(b->ctx, rq->id, &job, &e) < 0)
		return api_reply_error(rp, &e);
	cJSON *o = api_job_to_json(&job);
	api_job_release(&job);
	return api_reply_json(rp, 202, o);
}

int api_job_metrics(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	int64_t since = -1, max_points = 0;
	const char *s = rq->query ? rq->query(rq->qcls, "since_step") : NULL;
	if (s && api_parse_i64(s, &since) < 0)
		api_err_field(&e, "since_step", "must be a non-negative integer");
	const char *mp = rq->query ? rq->query(rq->qcls, "max_points") : NULL;
	if (mp && (api_parse_i64(mp, &max_points) < 0 || max_points < 2 || max_points > 1000000))
		api_err_field(&e, "max_points", "must be an integer from 2 to 1000000");
	if (e.n_fields)
		return api_reply_error(rp, &e);
	cJSON *o = NULL;
	if (b->job_metrics(b->ctx, rq->id, since, &o, &e) < 0)
		return api_reply_error(rp, &e);
	if (mp) {
		int a = api_curves_downsample(cJSON_GetObjectItemCaseSensitive(o, "steps"),
		                              (int)max_points);
		int c = api_curves_downsample(cJSON_GetObjectItemCaseSensitive(o, "epochs"),
		                              (int)max_points);
		if (a < 0 || c < 0) {
			cJSON_Delete(o);
			api_err_set(&e, 500, "out_of_memory", "out of memory");
			return api_reply_error(rp, &e);
		}
		cJSON_AddBoolToObject(o, "downsampled", a > 0 || c > 0);
	}
	return api_reply_json(rp, 200, o);
}

/* ---------------------------------------------------------------- plot */

static const char *const PLOT_METRICS[] = { "train_loss", "val_loss", "val_accuracy", "lr",
                                            "seconds", "samples_per_second", "grad_norms" };
#define N_PLOT_METRICS ((int)(sizeof PLOT_METRICS / sizeof PLOT_METRICS[0]))
#define PLOT_MAX_SERIES 32

typedef struct plot_data {
	plot_series s[PLOT_MAX_SERIES];
	char *names[PLOT_MAX_SERIES];
	double *xy[PLOT_MAX_SERIES];
	int n;
} plot_data;

static void plot_data_release(plot_data *p)
{
	for (int i = 0; i < p->n; i++) {
		free(p->names[i]);
		free(p->xy[i]);
	}
	p->n = 0;
}

/* Adds the curve of member key (of each record, or of its "grad_norms"
 * when grad) as a series named name. */
static int add_series(plot_data *p, const cJSON *epochs, const char *key, int grad,
                      const char *name)
{
	if (p->n == PLOT_MAX_SERIES)
		return 0;
	size_t n = (size_t)cJSON_GetArraySize(epochs), i = 0;
	double *xy = malloc((2 * n + 1) * sizeof *xy);
	char *nm = strdup(name);
	if (!xy || !nm) {
		free(xy);
		free(nm);
		return -1;
	}
	const cJSON *r;
	cJSON_ArrayForEach(r, epochs) {
		const cJSON *from = grad ? cJSON_GetObjectItemCaseSensitive(r, "grad_norms") : r;
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(r, "epoch");
		const cJSON *y = cJSON_GetObjectItemCaseSensitive(from, key);
		xy[i] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
		xy[n + i] = cJSON_IsNumber(y) ? y->valuedouble : NAN;
		i++;
	}
	p->names[p->n] = nm;
	p->xy[p->n] = xy;
	p->s[p->n] = (plot_series){ nm, xy, xy + n, n };
	p->n++;
	return 0;
}

/* The series the ?metrics= list names (comma-separated), fields named in e
 * when one is unknown. */
static int plot_series_of(plot_data *p, const cJSON *epochs, const char *list, api_err *e)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s", list);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int known = 0;
		for (int k = 0; k < N_PLOT_METRICS; k++)
			known |= !strcmp(t, PLOT_METRICS[k]);
		if (!known) {
			api_err_field(e, "metrics",
			              "unknown metric %.64s; use train_loss, val_loss, val_accuracy, lr, "
			              "seconds, samples_per_second or grad_norms", t);
			return -1;
		}
		if (strcmp(t, "grad_norms") != 0) {
			if (add_series(p, epochs, t, 0, t) < 0)
				return -1;
			continue;
		}
		/* every layer's gradient norm, in the first record's order */
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(epochs, 0),
		                                                  "grad_norms"), *m;
		cJSON_ArrayForEach(m, g) {
			char nm[160];
			snprintf(nm, sizeof nm, "grad norm %.140s", m->string);
			if (add_series(p, epochs, m->string, 1, nm) < 0)
				return -1;
		}
	}
	return 0;
}

int api_job_plot_svg(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	const char *list = rq->query ? rq->query(rq->qcls, "metrics") : NULL;
	const char *ly = rq->query ? rq->query(rq->qcls, "log_y") : NULL;
	if (list && (!list[0] || strlen(list) > 500))
		api_err_field(&e, "metrics", "must be a comma-separated list of metric names");
	if (ly && strcmp(ly, "true") != 0 && strcmp(ly, "false") != 0)
		api_err_field(&e, "log_y", "must be true or false");
	if (e.n_fields)
		return api_reply_error(rp, &e);
	api_job job;
	memset(&job, 0, sizeof job);
	cJSON *o = NULL;
	if (b->job_get(b->ctx, rq->id, &job, &e) < 0 ||
	    b->job_metrics(b->ctx, rq->id, -1, &o, &e) < 0) {
		api_job_release(&job);
		return api_reply_error(rp, &e);
	}
	cJSON *epochs = cJSON_GetObjectItemCaseSensitive(o, "epochs");
	plot_data p = { .n = 0 };
	char title[200];
	snprintf(title, sizeof title, "%s (model %s, %s)", job.id, job.model,
	         api_job_state_name(job.state));
	api_job_release(&job);
	int rc = api_curves_downsample(epochs, 1000) < 0 ? -1 : 0;
	if (rc == 0)
		rc = plot_series_of(&p, epochs, list ? list : "train_loss,val_loss", &e);
	char *svg = NULL;
	if (rc == 0) {
		plot_spec sp = { title, "epoch", list ? "" : "loss", ly && !strcmp(ly, "true"), 0, 0, 0 };
		svg = plot_svg(&sp, p.s, p.n);
	}
	plot_data_release(&p);
	cJSON_Delete(o);
	if (rc < 0 && e.n_fields)
		return api_reply_error(rp, &e);
	return api_reply_svg(rp, svg);
}
