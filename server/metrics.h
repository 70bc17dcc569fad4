/*
 * metrics.h - request counters and latency histograms by route and status,
 * rendered with the job gauges in Prometheus text format for /metrics.
 * Updates are lock-free (atomic adds) so the hot path pays a few adds.
 */
#ifndef NND_METRICS_H
#define NND_METRICS_H

#include <stdint.h>
#include "jobs.h"

/* route: an index into router_table, or -1 for unmatched requests. */
void metrics_observe(int route, int status, int64_t micros);
void metrics_count_predictions(int64_t rows);
/* The exposition text (malloc'd). */
char *metrics_render(jobs *q, store *st);

#endif
