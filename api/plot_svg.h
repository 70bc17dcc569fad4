/*
 * plot_svg.h - line charts drawn as standalone SVG text (axes, ticks, a
 * legend, linear or log-10 y), for GET /v1/jobs/{id}/plot.svg: curves
 * for curl users, reports and README files, no browser needed.
 */
#ifndef API_PLOT_SVG_H
#define API_PLOT_SVG_H

#include <stddef.h>

typedef struct plot_series {
	const char *name;     /* the legend's text */
	const double *x, *y;  /* n points; a non-finite y (or <= 0 on a log
	                       * axis) breaks the line there */
	size_t n;
} plot_series;

typedef struct plot_spec {
	const char *title;
	const char *x_label, *y_label;
	int log_y;            /* 1: log-10 y axis */
	int width, height;    /* pixels (0: 720 x 420) */
	int log_x;            /* 1: log-10 x axis (x <= 0 breaks the line) */
} plot_spec;

/* The SVG document (malloc'd, NUL-terminated; the caller frees), or NULL
 * when out of memory. Text is escaped; with no drawable point the axes
 * carry a note instead of lines. */
char *plot_svg(const plot_spec *spec, const plot_series *series, int n_series);

/* Tick positions of a linear axis over [lo, hi]: "nice" steps (1, 2 or 5
 * times a power of ten) giving about want ticks, written to ticks (at most
 * cap); returns how many. lo < hi. */
int plot_ticks(double lo, double hi, int want, double *ticks, int cap);

#endif
