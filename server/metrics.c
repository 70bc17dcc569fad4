/*
 * metrics.c - the counters behind /metrics. Statuses fold into a fixed set
 * of slots (the codes API.md uses, plus "other"), so the tables are static
 * and updates need no lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "router.h"
#include "textbuf.h"

#define MAX_ROUTES 64
static const int statuses[] = { 200, 201, 202, 204, 400, 401, 404, 405, 409, 413, 415, 422,
                                429, 500, 503, 507, 0 };
#define N_STATUS ((int)(sizeof statuses / sizeof statuses[0]))
static const double bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                 0.5, 1, 2.5, 5, 10 };
#define N_BOUNDS ((int)(sizeof bounds / sizeof bounds[0]))

typedef struct cell {
	uint64_t count;
	uint64_t micros;
	uint64_t bucket[N_BOUNDS];
} cell;

static cell cells[MAX_ROUTES + 1][N_STATUS];
static uint64_t predictions;

static int status_slot(int status)
{
	for (int i = 0; i < N_STATUS - 1; i++)
		if (statuses[i] == status)
			return i;
	return N_STATUS - 1;
}

void metrics_observe(int route, int status, int64_t micros)
{
	int r = route >= 0 && route < MAX_ROUTES ? route : MAX_ROUTES;
	cell *c = &cells[r][status_slot(status)];
	__atomic_fetch_add(&c->count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&c->micros, (uint64_t)(micros > 0 ? micros : 0), __ATOMIC_RELAXED);
	double secs = (double)micros / 1e6;
	for (int i = 0; i < N_BOUNDS; i++)
		if (secs <= bounds[i]) {
			__atomic_fetch_add(&c->bucket[i], 1, __ATOMIC_RELAXED);
			break;
		}
}

void metrics_count_predictions(int64_t rows)
{
	__atomic_fetch_add(&predictions, (uint64_t)rows, __ATOMIC_RELAXED);
}

/* the page is built in a textbuf (api/textbuf.h) */
typedef textbuf buf;
#define put textbuf_put

static const char *route_name(int r)
{
	return r < router_count && r < MAX_ROUTES ? router_table[r].name : "unmatched";
}

char *metrics_render(jobs *q, store *st)
{
	buf b = TEXTBUF_INIT;
	put(&b, "# HELP nnd_http_requests_total HTTP requests by route and status.\n"
	        "# TYPE nnd_http_requests_total counter\n");
	int nr = router_count < MAX_ROUTES ? router_count : MAX_ROUTES;
	for (int r = 0; r <= MAX_ROUTES; r++) {
		if (r >= nr && r != MAX_ROUTES)
			continue;
		for (int s = 0; s < N_STATUS; s++) {
			uint64_t n = __atomic_load_n(&cells[r][s].count, __ATOMIC_RELAXED);
			if (!n)
				continue;
			char st_s[8];
			snprintf(st_s, sizeof st_s, "%d", statuses[s]);
			put(&b, "nnd_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
			    route_name(r), r < nr ? router_table[r].method : "",
			    statuses[s] ? st_s : "other", (unsigned long long)n);
		}
	}
	put(&b, "# HELP nnd_http_request_duration_seconds Request latency by route and status.\n"
	        "# TYPE nnd_http_request_duration_seconds histogram\n");
	for (int r = 0; r <= MAX_ROUTES; r++) {
		if (r >= nr && r != MAX_ROUTES)
			continue;
		for (int s = 0; s < N_STATUS; s++) {
			cell *c = &cells[r][s];
			uint64_t n = __atomic_load_n(&c->count, __ATOMIC_RELAXED);
			if (!n)
				continue;
			char lab[160], st_s[8];
			snprintf(st_s, sizeof st_s, "%d", statuses[s]);
			snprintf(lab, sizeof lab, "route=\"%s\",method=\"%s\",status=\"%s\"", route_name(r),
			         r < nr ? router_table[r].method : "", statuses[s] ? st_s : "other");
			uint64_t cum = 0;
			for (int i = 0; i < N_BOUNDS; i++) {
				cum += __atomic_load_n(&c->bucket[i], __ATOMIC_RELAXED);
				put(&b, "nnd_http_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n", lab,
				    bounds[i], (unsigned long long)cum);
			}
			put(&b, "nnd_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n", lab,
			    (unsigned long long)n);
			put(&b, "nnd_http_request_duration_seconds_sum{%s} %.6f\n", lab,
			    (double)__atomic_load_n(&c->micros, __ATOMIC_RELAXED) / 1e6);
			put(&b, "nnd_http_request_duration_seconds_count{%s} %llu\n", lab,
			    (unsigned long long)n);
		}
	}
	int64_t counts[API_JOB_NSTATES] = { 0 };
	if (st)
		store_job_counts(st, counts);
	put(&b, "# HELP nnd_jobs Jobs by state.\n# TYPE nnd_jobs gauge\n");
	for (int i = 0; i < API_JOB_NSTATES; i++)
		put(&b, "nnd_jobs{state=\"%s\"} %lld\n", api_job_state_name(i), (long long)counts[i]);
	put(&b, "# HELP nnd_job_queue_depth Jobs waiting for a worker.\n"
	        "# TYPE nnd_job_queue_depth gauge\nnnd_job_queue_depth %d\n",
	    q ? jobs_queue_depth(q) : 0);
	put(&b, "# HELP nnd_job_queue_capacity Queued jobs accepted at most.\n"
	        "# TYPE nnd_job_queue_capacity gauge\nnnd_job_queue_capacity %d\n",
	    q ? jobs_capacity(q) : 0);
	put(&b, "# HELP nnd_training_samples_total Samples trained on (epochs x rows).\n"
	        "# TYPE nnd_training_samples_total counter\nnnd_training_samples_total %lld\n",
	    (long long)(q ? jobs_samples_trained(q) : 0));
	put(&b, "# HELP nnd_predictions_total Rows predicted.\n"
	        "# TYPE nnd_predictions_total counter\nnnd_predictions_total %llu\n",
	    (unsigned long long)__atomic_load_n(&predictions, __ATOMIC_RELAXED));
	return b.p;
}
