/*
 * router.c - the routing table of every endpoint of API.md, and the matcher.
 * The table is the one place to find a route.
 */
#include <stdio.h>
#include <string.h>

#include "router.h"

const route router_table[] = {
	{ "GET",    "/healthz",                  "healthz",       BODY_NONE,   SRV_HEALTHZ, NULL, 1 },
	{ "GET",    "/readyz",                   "readyz",        BODY_NONE,   SRV_READYZ,  NULL, 1 },
	{ "GET",    "/metrics",                  "metrics",       BODY_NONE,   SRV_METRICS, NULL, 0 },
	{ "GET",    "/openapi.json",             "openapi",       BODY_NONE,   SRV_OPENAPI, NULL, 1 },
	{ "GET",    "/v1/info",                  "info",          BODY_NONE,   SRV_INFO,    NULL, 0 },
	{ "POST",   "/v1/datasets",              "datasets",      BODY_UPLOAD, SRV_NONE,    NULL, 0 },
	{ "GET",    "/v1/datasets",              "datasets",      BODY_NONE,   SRV_NONE,    api_datasets_list, 0 },
	{ "GET",    "/v1/datasets/{ds}",         "dataset",       BODY_NONE,   SRV_NONE,    api_dataset_get, 0 },
	{ "DELETE", "/v1/datasets/{ds}",         "dataset",       BODY_NONE,   SRV_NONE,    api_dataset_delete, 0 },
	{ "GET",    "/v1/datasets/{ds}/data",    "dataset_data",  BODY_NONE,   SRV_NONE,    api_dataset_data, 0 },
	{ "POST",   "/v1/models",                "models",        BODY_FILE,   SRV_NONE,    api_models_create, 0 },
	{ "GET",    "/v1/models",                "models",        BODY_NONE,   SRV_NONE,    api_models_list, 0 },
	{ "GET",    "/v1/models/{mdl}",          "model",         BODY_NONE,   SRV_NONE,    api_model_get, 0 },
	{ "DELETE", "/v1/models/{mdl}",          "model",         BODY_NONE,   SRV_NONE,    api_model_delete, 0 },
	{ "GET",    "/v1/models/{mdl}/weights",  "model_weights", BODY_NONE,   SRV_NONE,    api_model_weights_get, 0 },
	{ "PUT",    "/v1/models/{mdl}/weights",  "model_weights", BODY_JSON,   SRV_NONE,    api_model_weights_put, 0 },
	{ "GET",    "/v1/models/{mdl}/export",   "model_export",  BODY_NONE,   SRV_NONE,    api_model_export, 0 },
	{ "POST",   "/v1/models/{mdl}/predict",  "predict",       BODY_ROWS,   SRV_NONE,    api_model_predict, 0 },
	{ "POST",   "/v1/jobs",                  "jobs",          BODY_JSON,   SRV_NONE,    api_jobs_create, 0 },
	{ "GET",    "/v1/jobs",                  "jobs",          BODY_NONE,   SRV_NONE,    api_jobs_list, 0 },
	{ "GET",    "/v1/jobs/{job}",            "job",           BODY_NONE,   SRV_NONE,    api_job_get, 0 },
	{ "POST",   "/v1/jobs/{job}/cancel",     "job_cancel",    BODY_NONE,   SRV_NONE,    api_job_cancel, 0 },
	{ "GET",    "/v1/jobs/{job}/metrics",    "job_metrics",   BODY_NONE,   SRV_NONE,    api_job_metrics, 0 },
	{ "GET",    "/v1/jobs/{job}/events",     "job_events",    BODY_NONE,   SRV_EVENTS,  NULL, 0 },
	{ "POST",   "/v1/studies",               "studies",       BODY_JSON,   SRV_NONE,    api_studies_create, 0 },
	{ "GET",    "/v1/studies",               "studies",       BODY_NONE,   SRV_NONE,    api_studies_list, 0 },
	{ "GET",    "/v1/studies/{std}",         "study",         BODY_NONE,   SRV_NONE,    api_study_get, 0 },
	{ "DELETE", "/v1/studies/{std}",         "study",         BODY_NONE,   SRV_NONE,    api_study_delete, 0 },
	{ "POST",   "/v1/studies/{std}/cancel",  "study_cancel",  BODY_NONE,   SRV_NONE,    api_study_cancel, 0 },
	{ "GET",    "/v1/studies/{std}/trials",  "study_trials",  BODY_NONE,   SRV_NONE,    api_study_trials, 0 },
	{ "GET",    "/v1/studies/{std}/events",  "study_events",  BODY_NONE,   SRV_EVENTS,  NULL, 0 },
	{ "GET",    "/v1/studies/{std}/plot.svg", "study_plot",   BODY_NONE,   SRV_NONE,    api_study_plot_svg, 0 },
	{ "GET",    "/v1/jobs/{job}/plot.svg",   "job_plot",      BODY_NONE,   SRV_NONE,    api_job_plot_svg, 0 },
	{ "GET",    "/v1/events",                "events",        BODY_NONE,   SRV_EVENTS_ALL, NULL, 0 },
	/* the dashboard: its pages, script and style (open: they hold no data) */
	{ "GET",    "/",                         "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/",                      "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/app.js",                "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/app.css",               "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/compare",               "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/jobs/{job}",            "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/models",                "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/models/{mdl}",          "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/datasets",              "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/datasets/{ds}",         "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/studies",               "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
	{ "GET",    "/ui/studies/{std}",         "ui",            BODY_NONE,   SRV_UI,      NULL, 1 },
};
const int router_count = (int)(sizeof router_table / sizeof router_table[0]);

/* n bytes of src, NUL-terminated, into dst[len] (cut to fit). */
static void copy_cut(char *dst, size_t len, const char *src, size_t n)
{
	if (!len)
		return;
	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* 1 when path matches pattern; a "{prefix}" segment's text goes to id
 * (and *prefix gets its prefix) whether or not it is a well-formed id. */
static int path_match(const char *pattern, const char *path, char *id, size_t idlen,
                      char *prefix, size_t plen)
{
	const char *p = pattern, *s = path;
	while (*p && *s) {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			size_t segl = strcspn(s, "/");
			if (!pe || segl == 0)
				return 0;
			/* copies, not snprintf: this runs for every route of every
			 * request (some 700 instructions a call) */
			copy_cut(prefix, plen, p + 1, (size_t)(pe - p - 1));
			if (segl < idlen)
				copy_cut(id, idlen, s, segl);
			else if (idlen)
				id[0] = '\0';  /* too long to be an id */
			p = pe + 1;
			s += segl;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	return *p == '\0' && *s == '\0';
}

int router_match(const char *method, const char *path, char *id, size_t idlen, char *allow,
                 size_t allowlen)
{
	int path_hit = 0, bad_id = 0;
	if (allow && allowlen)
		allow[0] = '\0';
	if (id && idlen)
		id[0] = '\0';
	for (int i = 0; i < router_count; i++) {
		char cap[128] = "", prefix[16] = "";
		if (!path_match(router_table[i].pattern, path, cap, sizeof cap, prefix, sizeof prefix))
			continue;
		if (prefix[0] && !api_id_valid(cap, prefix)) {
			bad_id = 1;
			continue;
		}
		path_hit = 1;
		if (strcmp(router_table[i].method, method) == 0) {
			copy_cut(id, idlen, cap, strlen(cap));
			return i;
		}
		if (allow && !strstr(allow, router_table[i].method)) {
			size_t n = strlen(allow);
			snprintf(allow + n, allowlen - n, "%s%s", n ? ", " : "", router_table[i].method);
		}
	}
	if (path_hit && !bad_id)
		return -405;
	return -404;
}
