/*
 * plot_svg.c - SVG line charts (see plot_svg.h).
 *
 * The chart is built in three phases: the data ranges (with log-10 taken
 * first on a log axis), the axes with their ticks and grid lines, then one
 * path per series and the legend. Text goes through a growing buffer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_svg.h"
#include "textbuf.h"

static const char *const COLORS[] = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };
#define N_COLORS ((int)(sizeof COLORS / sizeof COLORS[0]))

/* ---------------------------------------------------------------- text */

typedef textbuf sbuf;
#define put textbuf_put

/* s with &, <, >, " and ' escaped, control bytes dropped. */
static void put_text(sbuf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': put(b, "&amp;"); break;
		case '<': put(b, "&lt;"); break;
		case '>': put(b, "&gt;"); break;
		case '"': put(b, "&quot;"); break;
		case '\'': put(b, "&#39;"); break;
		default:
			if ((unsigned char)*s >= 0x20)
				put(b, "%c", *s);
		}
	}
}

/* A tick label: at most 4 significant digits, no trailing zeros. */
static void fmt_num(char *out, size_t cap, double v)
{
	if (fabs(v) < 1e-12)
		v = 0;
	snprintf(out, cap, "%.4g", v);
}

/* ---------------------------------------------------------------- ticks */

int plot_ticks(double lo, double hi, int want, double *ticks, int cap)
{
	if (!(hi > lo) || want < 1 || cap < 1)
		return 0;
	/* the step nearest raw on a log scale (d3's thresholds) */
	double raw = (hi - lo) / want, p = pow(10, floor(log10(raw))), err = raw / p, step = p;
	if (err >= sqrt(50))
		step = 10 * p;
	else if (err >= sqrt(10))
		step = 5 * p;
	else if (err >= sqrt(2))
		step = 2 * p;
	int n = 0;
	for (double t = ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9 && n < cap; t += step)
		ticks[n++] = fabs(t) < step * 1e-9 ? 0 : t;
	return n;
}

/* Ticks of a log-10 axis over [lo, hi] (exponents): each decade, and 2 and
 * 5 times it when the range spans fewer than three decades; returned as
 * exponents. */
static int log_ticks(double lo, double hi, double *ticks, int cap)
{
	int n = 0;
	int fine = hi - lo < 3;
	for (double d = floor(lo); d <= ceil(hi) && n < cap; d++) {
		const double mult[3] = { 1, 2, 5 };
		for (int m = 0; m < (fine ? 3 : 1) && n < cap; m++) {
			double e = d + log10(mult[m]);
			if (e >= lo - 1e-9 && e <= hi + 1e-9)
				ticks[n++] = e;
		}
	}
	if (n < 2 && hi > lo) {   /* inside one step: round values, placed on the log axis */
		double v[64];
		int m = plot_ticks(pow(10, lo), pow(10, hi), 4, v, cap < 64 ? cap : 64);
		n = 0;
		for (int i = 0; i < m; i++)
			if (v[i] > 0)
				ticks[n++] = log10(v[i]);
	}
	return n;
}

/* ---------------------------------------------------------------- chart */

typedef struct frame {
	double x0, x1, y0, y1;   /* data ranges (y as exponents on a log axis) */
	double left, top, w, h;  /* the plot area in pixels */
	int log_y, log_x;
} frame;

static double y_of(const frame *f, double y)
{
	return f->log_y ? log10(y) : y;
}

static double x_of(const frame *f, double x)
{
	return f->log_x ? log10(x) : x;
}

static int drawable(const frame *f, double x, double y)
{
	return isfinite(x) && isfinite(y) && (!f->log_y || y > 0) && (!f->log_x || x > 0);
}

static double px(const frame *f, double x)
{
	return f->left + (x - f->x0) / (f->x1 - f->x0) * f->w;
}

static double py(const frame *f, double y)
{
	return f->top + f->h - (y - f->y0) / (f->y1 - f->y0) * f->h;
}

/* The ranges over every drawable point; 0 when there is none. */
static int ranges(frame *f, const plot_series *s, int ns)
{
	int any = 0;
	for (int k = 0; k < ns; k++)
		for (size_t i = 0; i < s[k].n; i++) {
			if (!drawable(f, s[k].x[i], s[k].y[i]))
				continue;
			double x = x_of(f, s[k].x[i]), y = y_of(f, s[k].y[i]);
			if (!any) {
				f->x0 = f->x1 = x;
				f->y0 = f->y1 = y;
				any = 1;
			}
			f->x0 = fmin(f->x0, x);
			f->x1 = fmax(f->x1, x);
			f->y0 = fmin(f->y0, y);
			f->y1 = fmax(f->y1, y);
		}
	if (!any) {
		f->x0 = 0;
		f->x1 = 1;
		f->y0 = 0;
		f->y1 = 1;
	}
	if (f->x1 - f->x0 < 1e-12) {
		f->x0 -= 0.5;
		f->x1 += 0.5;
	} else if (f->log_x) {
		double pad = (f->x1 - f->x0) * 0.04;
		f->x0 -= pad;
		f->x1 += pad;
	}
	if (f->y1 - f->y0 < 1e-12 * fmax(1, fabs(f->y0))) {
		double pad = f->log_y ? 0.5 : fmax(fabs(f->y0) * 0.1, 0.5);
		f->y0 -= pad;
		f->y1 += pad;
	} else {
		double pad = (f->y1 - f->y0) * 0.05;
		f->y0 -= pad;
		f->y1 += pad;
	}
	return any;
}

static void axes(sbuf *b, const frame *f, const plot_spec *sp)
{
	double t[64];
	char lab[32];
	put(b, "<g font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\" fill=\"#333\">\n");
	int n = f->log_x ? log_ticks(f->x0, f->x1, t, 64) : plot_ticks(f->x0, f->x1, 8, t, 64);
	for (int i = 0; i < n; i++) {
		double x = px(f, t[i]);
		fmt_num(lab, sizeof lab, f->log_x ? pow(10, t[i]) : t[i]);
		put(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>"
		       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		    x, f->top, x, f->top + f->h, x, f->top + f->h + 16, lab);
	}
	n = f->log_y ? log_ticks(f->y0, f->y1, t, 64) : plot_ticks(f->y0, f->y1, 6, t, 64);
	for (int i = 0; i < n; i++) {
		double y = py(f, t[i]);
		fmt_num(lab, sizeof lab, f->log_y ? pow(10, t[i]) : t[i]);
		put(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>"
		       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
		    f->left, y, f->left + f->w, y, f->left - 6, y + 4, lab);
	}
	put(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
	       "stroke=\"#888\"/>\n", f->left, f->top, f->w, f->h);
	put(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", f->left + f->w / 2,
	    f->top + f->h + 34);
	put_text(b, sp->x_label ? sp->x_label : "");
	if (f->log_x)
		put(b, " (log scale)");
	put(b, "</text>\n<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\">",
	    f->top + f->h / 2);
	put_text(b, sp->y_label ? sp->y_label : "");
	if (f->log_y)
		put(b, " (log scale)");
	put(b, "</text>\n<text x=\"%.1f\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" "
	       "font-weight=\"bold\">", f->left + f->w / 2);
	put_text(b, sp->title ? sp->title : "");
	put(b, "</text>\n</g>\n");
}

static void lines(sbuf *b, const frame *f, const plot_series *s, int ns)
{
	for (int k = 0; k < ns; k++) {
		put(b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" "
		       "stroke-linejoin=\"round\" d=\"", COLORS[k % N_COLORS]);
		int pen = 0;
		for (size_t i = 0; i < s[k].n; i++) {
			if (!drawable(f, s[k].x[i], s[k].y[i])) {
				pen = 0;
				continue;
			}
			put(b, "%c%.1f %.1f", pen ? 'L' : 'M', px(f, x_of(f, s[k].x[i])),
			    py(f, y_of(f, s[k].y[i])));
			pen = 1;
		}
		put(b, "\"/>\n");
		/* a lone point (one epoch so far) still shows */
		if (s[k].n == 1 && drawable(f, s[k].x[0], s[k].y[0]))
			put(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
			    px(f, x_of(f, s[k].x[0])), py(f, y_of(f, s[k].y[0])), COLORS[k % N_COLORS]);
	}
}

static void legend(sbuf *b, const frame *f, const plot_series *s, int ns)
{
	if (ns == 0)
		return;
	size_t longest = 0;
	for (int k = 0; k < ns; k++)
		if (s[k].name && strlen(s[k].name) > longest)
			longest = strlen(s[k].name);
	double w = 34 + 7.2 * (double)longest, x = f->left + f->w - w - 8, y = f->top + 8;
	put(b, "<g font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\" fill=\"#333\">\n"
	       "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"#fff\" "
	       "fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n", x, y, w, 8 + 16 * ns);
	for (int k = 0; k < ns; k++) {
		double ly = y + 14 + 16 * k;
		put(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
		       "stroke-width=\"2.5\"/><text x=\"%.1f\" y=\"%.1f\">", x + 6, ly - 4, x + 24,
		    ly - 4, COLORS[k % N_COLORS], x + 28, ly);
		put_text(b, s[k].name);
		put(b, "</text>\n");
	}
	put(b, "</g>\n");
}

char *plot_svg(const plot_spec *sp, const plot_series *s, int ns)
{
	int W = sp->width > 0 ? sp->width : 720, H = sp->height > 0 ? sp->height : 420;
	frame f = { 0, 0, 0, 0, 72, 32, W - 72 - 16, H - 32 - 48, sp->log_y, sp->log_x };
	int any = ranges(&f, s, ns);
	sbuf b = TEXTBUF_INIT;
	put(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	        "viewBox=\"0 0 %d %d\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
	    W, H, W, H);
	axes(&b, &f, sp);
	if (any) {
		lines(&b, &f, s, ns);
		legend(&b, &f, s, ns);
	} else {
		put(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-family=\"DejaVu Sans, "
		        "Arial, sans-serif\" font-size=\"13\" fill=\"#888\">no points yet</text>\n",
		    f.left + f.w / 2, f.top + f.h / 2);
	}
	put(&b, "</svg>\n");
	return textbuf_detach(&b);
}
