/*
 * handlers_study_plot.c - GET /v1/studies/{id}/plot.svg: a study drawn by
 * the server. A learning-curve study shows each configuration's mean
 * objective against the rows on log-log axes, with its least-squares line
 * (slope as the study reports it, through the centre of the logs of every
 * value) and the theory's slope through the same centre; any other study
 * shows its trials' objective values in trial order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "plot_svg.h"

#define STUDY_PLOT_MAX 30          /* series drawn at most */

typedef struct splot {
	plot_series s[STUDY_PLOT_MAX];
	char names[STUDY_PLOT_MAX][160];
	double *buf[STUDY_PLOT_MAX];
	int n;
} splot;

static void splot_release(splot *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->buf[i]);
	p->n = 0;
}

/* A series of n points (x, y filled by the caller), or NULL when full. */
static plot_series *splot_add(splot *p, size_t n, const char *name)
{
	if (p->n == STUDY_PLOT_MAX)
		return NULL;
	double *b = calloc(2 * n + 1, sizeof *b);
	if (!b)
		return NULL;
	snprintf(p->names[p->n], sizeof p->names[p->n], "%s", name);
	p->buf[p->n] = b;
	p->s[p->n] = (plot_series){ p->names[p->n], b, b + n, n };
	return &p->s[p->n++];
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The centre (mean log rows, mean log value) of a curve's positive values. */
static int centre(const cJSON *points, double *mx, double *my)
{
	double sx = 0, sy = 0;
	int n = 0;
	const cJSON *p, *v;
	cJSON_ArrayForEach(p, points) {
		double rows = num(p, "rows");
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(p, "values"))
			if (cJSON_IsNumber(v) && v->valuedouble > 0 && rows > 0) {
				sx += log(rows);
				sy += log(v->valuedouble);
				n++;
			}
	}
	if (n == 0)
		return 0;
	*mx = sx / n;
	*my = sy / n;
	return 1;
}

/* The line exp(my + slope (log x - mx)) at the curve's sizes. */
static void line(plot_series *s, const cJSON *points, double slope, double mx, double my)
{
	size_t i = 0;
	const cJSON *p;
	cJSON_ArrayForEach(p, points) {
		double rows = num(p, "rows");
		((double *)s->x)[i] = rows;
		((double *)s->y)[i] = isfinite(slope) ? exp(my + slope * (log(rows) - mx)) : NAN;
		i++;
	}
}

static int curves_series(splot *p, const cJSON *curves)
{
	const cJSON *c;
	int k = 0;
	cJSON_ArrayForEach(c, curves) {
		const cJSON *pts = cJSON_GetObjectItemCaseSensitive(c, "points");
		size_t n = (size_t)cJSON_GetArraySize(pts), i = 0;
		char *params = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "params"));
		char name[160];
		int several = cJSON_GetArraySize(curves) > 1;
		snprintf(name, sizeof name, "mean%s%.120s", several ? " " : "",
		         several && params ? params : "");
		free(params);
		plot_series *m = splot_add(p, n, name);
		if (!m)
			return k ? 0 : -1;
		const cJSON *pt;
		cJSON_ArrayForEach(pt, pts) {
			((double *)m->x)[i] = num(pt, "rows");
			((double *)m->y)[i] = num(pt, "mean");
			i++;
		}
		double mx, my, slope = num(c, "slope"), theory = num(c, "theory_slope");
		if (centre(pts, &mx, &my)) {
			snprintf(name, sizeof name, "fit: slope %.3g", slope);
			plot_series *f = isfinite(slope) ? splot_add(p, n, name) : NULL;
			if (f)
				line(f, pts, slope, mx, my);
			snprintf(name, sizeof name, "theory: slope %.3g", theory);
			plot_series *t = isfinite(theory) ? splot_add(p, n, name) : NULL;
			if (t)
				line(t, pts, theory, mx, my);
		}
		k++;
	}
	return 0;
}

static int trials_series(splot *p, const cJSON *trials)
{
	size_t n = (size_t)cJSON_GetArraySize(trials), i = 0;
	plot_series *s = splot_add(p, n, "objective");
	if (!s)
		return -1;
	const cJSON *t;
	cJSON_ArrayForEach(t, trials) {
		((double *)s->x)[i] = num(t, "number");
		((double *)s->y)[i] = num(t, "value");
		i++;
	}
	return 0;
}

int api_study_plot_svg(const api_backend *b, const api_req *rq, api_reply *rp)
{
	api_err e = API_ERR_INIT;
	const char *ly = rq->query ? rq->query(rq->qcls, "log_y") : NULL;
	if (ly && strcmp(ly, "true") != 0 && strcmp(ly, "false") != 0) {
		api_err_field(&e, "log_y", "must be true or false");
		return api_reply_error(rp, &e);
	}
	cJSON *st = NULL, *trials = cJSON_CreateArray();
	int64_t total = 0;
	if (!trials || b->study_get(b->ctx, rq->id, &st, &e) < 0 ||
	    b->study_trials(b->ctx, rq->id, 1, 10000, 0, trials, &total, &e) < 0) {
		cJSON_Delete(st);
		cJSON_Delete(trials);
		return api_reply_error(rp, &e);
	}
	const cJSON *curves = cJSON_GetObjectItemCaseSensitive(st, "curves");
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(st, "config"), "objective");
	const char *metric = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "metric"));
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "name"));
	const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "state"));
	int lc = cJSON_GetArraySize(curves) > 0;
	char title[200];
	snprintf(title, sizeof title, "%s%s%.60s%s (%s)", rq->id, name ? " " : "", name ? name : "",
	         lc ? ": learning curve" : "", state ? state : "");
	splot p = { .n = 0 };
	int rc = lc ? curves_series(&p, curves) : trials_series(&p, trials);
	char *svg = NULL;
	if (rc == 0) {
		plot_spec sp = { title, lc ? "rows" : "trial", metric ? metric : "objective",
		                 lc || (ly && !strcmp(ly, "true")), 0, 0, lc };
		svg = plot_svg(&sp, p.s, p.n);
	}
	splot_release(&p);
	cJSON_Delete(st);
	cJSON_Delete(trials);
	return api_reply_svg(rp, svg);
}
