/*
 * curves.h - metric curves for charts: thinning a long history to a few
 * points per pixel column without losing its peaks (min and max per
 * bucket), shared by GET /v1/jobs/{id}/metrics?max_points= and the plots.
 */
#ifndef API_CURVES_H
#define API_CURVES_H

#include <cjson/cJSON.h>

/*
 * Thins records (an array of metric records such as {"step", "epoch",
 * "loss", "lr"} or epoch records with a "grad_norms" object) in place so
 * that each curve has at most max_points points (max_points >= 2).
 *
 * A curve is a numeric member other than "step" and "epoch" (the x
 * values), or one entry of "grad_norms". The records are cut into
 * max_points / 2 buckets of consecutive records; in each bucket each curve
 * keeps the record where it is smallest and the one where it is largest
 * (the first such). A kept record keeps its x values and the curves kept
 * there, with their values unchanged; it loses the others (so a curve's
 * points are exactly its kept ones); records keeping nothing go. Order is
 * kept. With at most max_points records nothing changes.
 *
 * Returns 1 when it thinned, 0 when it left records as they were, -1 when
 * out of memory (records unchanged).
 */
int api_curves_downsample(cJSON *records, int max_points);

#endif
