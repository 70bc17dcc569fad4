/*
 * stats.c - the numbers of a learning curve: Student's t quantiles and the
 * least-squares slope of log(value) against log(rows) with its interval.
 *
 * The t distribution's tail is the regularized incomplete beta function,
 * P(|T| > t) = I_{df / (df + t^2)}(df / 2, 1 / 2), evaluated by its
 * continued fraction (modified Lentz); the quantile is found by bisection
 * on t, so it is exact to double rounding for any df >= 1.
 */
#include <math.h>

#include "internal.h"

/* One term of the modified Lentz recurrence: updates c and d with the
 * coefficient aa and returns the factor the fraction is multiplied by. */
static double lentz(double aa, double *c, double *d)
{
	const double tiny = 1e-300;
	*d = 1 + aa * *d;
	if (fabs(*d) < tiny)
		*d = tiny;
	*c = 1 + aa / *c;
	if (fabs(*c) < tiny)
		*c = tiny;
	*d = 1 / *d;
	return *d * *c;
}

/* The continued fraction of I_x(a, b), for x < (a + 1) / (a + b + 2). */
static double beta_cf(double a, double b, double x)
{
	double qab = a + b, qap = a + 1, qam = a - 1;
	double c = 1, d = 1 - qab * x / qap;
	if (fabs(d) < 1e-300)
		d = 1e-300;
	d = 1 / d;
	double h = d;
	for (int m = 1; m <= 1000; m++) {
		int m2 = 2 * m;
		h *= lentz(m * (b - m) * x / ((qam + m2) * (a + m2)), &c, &d);
		double del = lentz(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)), &c, &d);
		h *= del;
		if (fabs(del - 1) < 1e-15)
			break;
	}
	return h;
}

/* The regularized incomplete beta function I_x(a, b). */
static double beta_inc(double a, double b, double x)
{
	if (x <= 0)
		return 0;
	if (x >= 1)
		return 1;
	double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
	if (x < (a + 1) / (a + b + 2))
		return exp(lbt) * beta_cf(a, b, x) / a;
	return 1 - exp(lbt) * beta_cf(b, a, 1 - x) / b;
}

double nn_t_quantile(double p, double df)
{
	if (!(p > 0 && p < 1) || !(df > 0))
		return NAN;
	if (p == 0.5)
		return 0;
	/* the two-sided tail of t is 2 min(p, 1 - p) */
	double tail = 2 * (p < 0.5 ? p : 1 - p);
	double lo = 0, hi = 1;
	while (beta_inc(df / 2, 0.5, df / (df + hi * hi)) > tail && hi < 1e12)
		hi *= 2;
	for (int i = 0; i < 200; i++) {
		double mid = (lo + hi) / 2;
		if (beta_inc(df / 2, 0.5, df / (df + mid * mid)) > tail)
			lo = mid;
		else
			hi = mid;
	}
	double t = (lo + hi) / 2;
	return p < 0.5 ? -t : t;
}

nn_status nn_loglog_fit(const double *rows, const double *values, int n, nn_slope_fit *out,
                        char *err, size_t errlen)
{
	out->slope = out->intercept = out->lo = out->hi = NAN;
	out->points = n;
	if (n < 2)
		return nn_errf(err, errlen, "a slope needs at least 2 values, got %d", n), NN_EINVAL;
	double mx = 0, my = 0;
	for (int i = 0; i < n; i++) {
		if (!(values[i] > 0) || !isfinite(values[i]))
			return nn_errf(err, errlen, "value %d is %g: a log needs values > 0", i,
			               values[i]), NN_EINVAL;
		if (!(rows[i] > 0))
			return nn_errf(err, errlen, "rows %d is %g: must be > 0", i, rows[i]), NN_EINVAL;
		mx += log(rows[i]);
		my += log(values[i]);
	}
	mx /= n;
	my /= n;
	double sxx = 0, sxy = 0;
	for (int i = 0; i < n; i++) {
		double dx = log(rows[i]) - mx, dy = log(values[i]) - my;
		sxx += dx * dx;
		sxy += dx * dy;
	}
	if (!(sxx > 0))
		return nn_errf(err, errlen, "every value has the same rows: no slope"), NN_EINVAL;
	out->slope = sxy / sxx;
	out->intercept = my - out->slope * mx;
	if (n < 3)
		return NN_OK;   /* no degrees of freedom for an interval */
	double sse = 0;
	for (int i = 0; i < n; i++) {
		double r = log(values[i]) - (out->intercept + out->slope * log(rows[i]));
		sse += r * r;
	}
	double se = sqrt(sse / (n - 2) / sxx);
	double t = nn_t_quantile(0.975, n - 2);
	out->lo = out->slope - t * se;
	out->hi = out->slope + t * se;
	return NN_OK;
}
