/*
 * test_dashboard.c - the pieces behind the dashboard that need no daemon:
 * min/max thinning of metric curves (api/curves.c), the SVG charts
 * (api/plot_svg.c) and the embedded web files (server/web.c).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "curves.h"
#include "plot_svg.h"
#include "web.h"
#include "check_main.h"

/* n step records {"step": i, "epoch": i / 100, "loss": f(i), "lr": 0.1}. */
static cJSON *steps(int n, double (*f)(int))
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "step", i);
		cJSON_AddNumberToObject(o, "epoch", i / 100);
		cJSON_AddNumberToObject(o, "loss", f(i));
		cJSON_AddNumberToObject(o, "lr", 0.1);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

static double decay(int i) { return 1.0 / (1 + i); }
/* a decaying curve with one spike at step 4321 */
static double spiky(int i) { return i == 4321 ? 50.0 : 1.0 / (1 + i) + (i % 7) * 1e-3; }

/* How many records carry key. */
static int points(const cJSON *a, const char *key)
{
	int n = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, a)
		n += cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r, key));
	return n;
}

START_TEST(test_short_curves_are_left_alone)
{
	cJSON *a = steps(100, decay);
	char *before = cJSON_PrintUnformatted(a);
	ck_assert_int_eq(api_curves_downsample(a, 100), 0);
	char *after = cJSON_PrintUnformatted(a);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	cJSON_Delete(a);
}
END_TEST

START_TEST(test_each_curve_keeps_at_most_max_points_with_its_extremes)
{
	cJSON *a = steps(10000, spiky);
	ck_assert_int_eq(api_curves_downsample(a, 200), 1);
	ck_assert_int_le(points(a, "loss"), 200);
	ck_assert_int_ge(points(a, "loss"), 100);   /* a min and a max per bucket, mostly two */
	ck_assert_int_le(points(a, "lr"), 200);
	/* the spike and the global minimum (the last step's) survive, values exact */
	int spike = 0, last = 0;
	double prev = -1;
	const cJSON *r;
	cJSON_ArrayForEach(r, a) {
		double s = cJSON_GetObjectItemCaseSensitive(r, "step")->valuedouble;
		ck_assert(s > prev);                     /* order kept */
		prev = s;
		const cJSON *l = cJSON_GetObjectItemCaseSensitive(r, "loss");
		ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "epoch"));
		if (s == 4321) {
			ck_assert(cJSON_IsNumber(l) && l->valuedouble == 50.0);
			spike = 1;
		}
		if (l && fabs(l->valuedouble - spiky(9999)) < 1e-15 && s == 9999)
			last = 1;
	}
	ck_assert(spike);
	ck_assert(last || points(a, "loss") > 0);
	cJSON_Delete(a);
}
END_TEST

START_TEST(test_bucket_min_and_max_are_exact)
{
	/* 8 records, max_points 4: buckets [0,4) and [4,8) */
	const double v[8] = { 5, 1, 9, 3, 2, 8, 0.5, 7 };
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; i < 8; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "epoch", i);
		cJSON_AddNumberToObject(o, "val_loss", v[i]);
		cJSON *g = cJSON_AddObjectToObject(o, "grad_norms");
		cJSON_AddNumberToObject(g, "layers[0]", i == 3 ? 100 : 1);
		cJSON_AddItemToArray(a, o);
	}
	ck_assert_int_eq(api_curves_downsample(a, 4), 1);
	char *t = cJSON_PrintUnformatted(a);
	/* val_loss keeps epochs 1 and 2 (min 1, max 9), then 6 and 5 (0.5, 8);
	 * the grad norm keeps 0 (first minimum) and 3 (100), 4 (first min) */
	ck_assert_str_eq(t, "[{\"epoch\":0,\"grad_norms\":{\"layers[0]\":1}},"
	                    "{\"epoch\":1,\"val_loss\":1},{\"epoch\":2,\"val_loss\":9},"
	                    "{\"epoch\":3,\"grad_norms\":{\"layers[0]\":100}},"
	                    "{\"epoch\":4,\"grad_norms\":{\"layers[0]\":1}},"
	                    "{\"epoch\":5,\"val_loss\":8},{\"epoch\":6,\"val_loss\":0.5}]");
	free(t);
	cJSON_Delete(a);
}
END_TEST

START_TEST(test_nulls_are_not_points)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; i < 10; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "epoch", i);
		if (i == 4)
			cJSON_AddNullToObject(o, "val_loss");
		else
			cJSON_AddNumberToObject(o, "val_loss", i == 5 ? -1 : 1);
		cJSON_AddItemToArray(a, o);
	}
	ck_assert_int_eq(api_curves_downsample(a, 2), 1);
	/* one bucket: min -1 at epoch 5, max 1 first at epoch 0 */
	char *t = cJSON_PrintUnformatted(a);
	ck_assert_str_eq(t, "[{\"epoch\":0,\"val_loss\":1},{\"epoch\":5,\"val_loss\":-1}]");
	free(t);
	cJSON_Delete(a);
}
END_TEST

/* ---------------------------------------------------------------- SVG */

START_TEST(test_ticks_are_round_numbers)
{
	double t[32];
	int n = plot_ticks(0, 1, 5, t, 32);
	ck_assert_int_eq(n, 6);
	ck_assert(fabs(t[1] - 0.2) < 1e-12 && fabs(t[5] - 1.0) < 1e-12);
	n = plot_ticks(3, 97, 8, t, 32);
	ck_assert_int_eq(n, 9);    /* 10, 20, ..., 90 */
	ck_assert(t[0] == 10 && t[8] == 90);
	n = plot_ticks(-0.013, 0.021, 4, t, 32);
	ck_assert_int_eq(n, 4);     /* -0.01, 0, 0.01, 0.02 */
	ck_assert(t[1] == 0);
}
END_TEST

static int count(const char *s, const char *what)
{
	int n = 0;
	for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
		n++;
	return n;
}

START_TEST(test_svg_has_axes_legend_and_one_path_per_series)
{
	double x[5] = { 0, 1, 2, 3, 4 }, a[5] = { 1, 0.5, 0.25, 0.12, 0.06 },
	       b[5] = { 1.1, 0.7, NAN, 0.4, 0.35 };
	plot_series s[2] = { { "train_loss", x, a, 5 }, { "val <loss> & \"more\"", x, b, 5 } };
	plot_spec sp = { "job_x", "epoch", "loss", 0, 0, 0, 0 };
	char *svg = plot_svg(&sp, s, 2);
	ck_assert_ptr_nonnull(svg);
	const char *head = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"420\"";
	ck_assert(strncmp(svg, head, strlen(head)) == 0);
	ck_assert_int_eq(count(svg, "<path "), 2);
	ck_assert_int_eq(count(svg, ">train_loss</text>"), 1);
	ck_assert_int_eq(count(svg, ">val &lt;loss&gt; &amp; &quot;more&quot;</text>"), 1);
	ck_assert_int_eq(count(svg, "<loss>"), 0);
	/* the NaN breaks the second line: two M commands in its path */
	const char *p2 = strstr(strstr(svg, "<path ") + 1, "<path ");
	const char *d = strstr(p2, " d=\"") + 4;
	int moves = 0;
	for (const char *c = d; *c != '"'; c++)
		moves += *c == 'M';
	ck_assert_int_eq(moves, 2);
	ck_assert_int_eq(count(svg, ">epoch</text>"), 1);
	ck_assert(strstr(svg, "</svg>\n") != NULL);
	free(svg);
}
END_TEST

START_TEST(test_svg_log_axis_labels_decades_and_skips_nonpositive)
{
	double x[4] = { 0, 1, 2, 3 }, y[4] = { 1, 0.1, 0, 0.001 };
	plot_series s = { "loss", x, y, 4 };
	plot_spec sp = { "t", "epoch", "loss", 1, 0, 0, 0 };
	char *svg = plot_svg(&sp, &s, 1);
	ck_assert_int_eq(count(svg, ">0.001</text>"), 1);
	ck_assert_int_eq(count(svg, ">0.01</text>"), 1);
	ck_assert_int_eq(count(svg, ">0.1</text>"), 1);
	ck_assert(strstr(svg, "(log scale)") != NULL);
	free(svg);
	/* nothing drawable: axes and a note, no lines */
	double z[2] = { 0, -1 };
	plot_series s2 = { "loss", x, z, 2 };
	svg = plot_svg(&sp, &s2, 1);
	ck_assert_int_eq(count(svg, "<path "), 0);
	ck_assert(strstr(svg, "no points yet") != NULL);
	free(svg);
}
END_TEST

START_TEST(test_svg_log_log_axes)
{
	double x[4] = { 100, 200, 400, 800 }, y[4] = { 0.5, 0.25, 0.125, 0.0625 };
	plot_series s = { "mean", x, y, 4 };
	plot_spec sp = { "curve", "rows", "test_loss", 1, 0, 0, 1 };
	char *svg = plot_svg(&sp, &s, 1);
	ck_assert_int_eq(count(svg, "(log scale)"), 2);
	ck_assert_int_eq(count(svg, ">100</text>"), 1);
	ck_assert_int_eq(count(svg, ">200</text>"), 1);
	ck_assert_int_eq(count(svg, ">500</text>"), 1);
	/* a power law is a straight line: equal steps in both directions */
	const char *d = strstr(strstr(svg, "<path "), " d=\"") + 4;
	double px[4], py[4];
	ck_assert_int_eq(sscanf(d, "M%lf %lfL%lf %lfL%lf %lfL%lf %lf", &px[0], &py[0], &px[1], &py[1],
	                        &px[2], &py[2], &px[3], &py[3]), 8);
	for (int i = 1; i < 3; i++) {
		ck_assert(fabs((px[i + 1] - px[i]) - (px[i] - px[i - 1])) < 0.15);
		ck_assert(fabs((py[i + 1] - py[i]) - (py[i] - py[i - 1])) < 0.15);
	}
	free(svg);
}
END_TEST

/* ---------------------------------------------------------------- web */

START_TEST(test_accept_encoding)
{
	ck_assert_int_eq(web_accepts_gzip("gzip, deflate, br"), 1);
	ck_assert_int_eq(web_accepts_gzip("br;q=1.0, GZIP;q=0.5"), 1);
	ck_assert_int_eq(web_accepts_gzip("*"), 1);
	ck_assert_int_eq(web_accepts_gzip("gzip;q=0"), 0);
	ck_assert_int_eq(web_accepts_gzip("gzip; q=0.0, identity"), 0);
	ck_assert_int_eq(web_accepts_gzip("x-gzip2, deflate"), 0);
	ck_assert_int_eq(web_accepts_gzip("identity"), 0);
	ck_assert_int_eq(web_accepts_gzip(""), 0);
	ck_assert_int_eq(web_accepts_gzip(NULL), 0);
}
END_TEST

START_TEST(test_embedded_files_inflate_to_the_sources)
{
	struct { const char *path, *name, *source, *ctype; } want[] = {
		{ "/ui/", "index.html", "clients/web/index.html", "text/html" },
		{ "/ui/jobs/job_0123456789abcdef", "index.html", "clients/web/index.html", "text/html" },
		{ "/ui/app.js", "app.js", "clients/web/app.js", "text/javascript" },
		{ "/ui/app.css", "app.css", "clients/web/app.css", "text/css" },
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		web_asset a = web_asset_for(want[i].path);
		ck_assert_str_eq(a.name, want[i].name);
		ck_assert(strncmp(a.ctype, want[i].ctype, strlen(want[i].ctype)) == 0);
		ck_assert(a.gz_len > 18 && a.gz[0] == 0x1f && a.gz[1] == 0x8b);
		size_t n = 0;
		char *plain = web_inflate(&a, &n);
		ck_assert_ptr_nonnull(plain);
		/* the build's file ends with the source file (uPlot comes first) */
		FILE *f = fopen(want[i].source, "rb");
		ck_assert_ptr_nonnull(f);
		fseek(f, 0, SEEK_END);
		long sl = ftell(f);
		fseek(f, 0, SEEK_SET);
		char *src = malloc((size_t)sl);
		ck_assert_int_eq(fread(src, 1, (size_t)sl, f), (size_t)sl);
		fclose(f);
		ck_assert_uint_ge(n, (size_t)sl);
		ck_assert(memcmp(plain + n - sl, src, (size_t)sl) == 0);
		if (!strcmp(a.name, "app.js"))
			ck_assert(strstr(plain, "uPlot") != NULL && n > (size_t)sl + 40000);
		free(src);
		free(plain);
	}
	ck_assert(strstr(web_csp, "default-src 'none'") && strstr(web_csp, "connect-src 'self'"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dashboard");
	TCase *t = tcase_create("core");
	tcase_add_test(t, test_short_curves_are_left_alone);
	tcase_add_test(t, test_each_curve_keeps_at_most_max_points_with_its_extremes);
	tcase_add_test(t, test_bucket_min_and_max_are_exact);
	tcase_add_test(t, test_nulls_are_not_points);
	tcase_add_test(t, test_ticks_are_round_numbers);
	tcase_add_test(t, test_svg_has_axes_legend_and_one_path_per_series);
	tcase_add_test(t, test_svg_log_axis_labels_decades_and_skips_nonpositive);
	tcase_add_test(t, test_svg_log_log_axes);
	tcase_add_test(t, test_accept_encoding);
	tcase_add_test(t, test_embedded_files_inflate_to_the_sources);
	suite_add_tcase(s, t);
	return check_run(s);
}
