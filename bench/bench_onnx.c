/*
 * bench_onnx.c - ONNX export and nnd against ONNX Runtime.
 *
 * A 784-1024-256-10 ReLU classifier with a standardization (1,068,810
 * parameters) is exported (api_onnx_export, opset 13): the time (median of
 * 5) and the file's size against the raw float32 weights. Then the same
 * model predicts 10,000 random rows in one batch and single rows one call at
 * a time, in nnd (nn_predict with a frozen scratch, as the daemon predicts)
 * and in ONNX Runtime's CPU provider (bench/onnx_ort.js through the
 * machine's node and tools/node_modules/onnxruntime-node), with the same
 * thread count on both sides (OpenBLAS threads, ORT intra-op threads), for
 * 1 and 2 threads. Prints the OpenBLAS core, each time, the ratios ORT / nnd
 * (above 1: nnd is faster) and the largest difference between the two sides'
 * probabilities. Never decides pass or fail.
 *
 *   bench_onnx [--rows N] [--reps N] [--singles N] [--threads LIST]
 *
 * Single rows through node pay its N-API call and a promise per run (some
 * microseconds); ORT has no other client on this machine (no Python wheel
 * in Debian 12), so that overhead is part of what a node user meets.
 * The last output line is one JSON object for scripts.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn.h"
#include "onnx.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static nn_model *make_model(void)
{
	nn_layer_spec ls[2];
	ls[0] = nn_layer_default(NN_LAYER_DENSE);
	ls[0].units = 1024;
	ls[0].act = NN_ACT_RELU;
	ls[1] = nn_layer_default(NN_LAYER_DENSE);
	ls[1].units = 256;
	ls[1].act = NN_ACT_RELU;
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, 784, 10, NN_INIT_AUTO, 7, ls, 2 };
	char err[256];
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	if (!m) {
		fprintf(stderr, "bench_onnx: %s\n", err);
		exit(1);
	}
	float mean[784], sd[784];
	for (int j = 0; j < 784; j++) {
		mean[j] = 0.1f * (float)(j % 7);
		sd[j] = 1.0f + 0.01f * (float)(j % 13);
	}
	nn_model_set_standardize(m, mean, sd);
	return m;
}

/* The three products of a batch alone (x W1^T, h1 W2^T, h2 W3^T) through
 * cblas_sgemm: how much of the batch time is OpenBLAS's. */
static double sgemm_only(const nn_model *m, const float *x, int rows, float *h1, float *h2,
                         float *out)
{
	const float *w[3];
	for (int i = 0, k = 0; i < nn_model_tensor_count(m) && k < 3; i++) {
		nn_tensor t = nn_model_tensor(m, i);
		if (t.kind == NN_T_WEIGHT)
			w[k++] = t.data;
	}
	double t0 = now();
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, 1024, 784, 1, x, 784, w[0], 784,
	            0, h1, 1024);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, 256, 1024, 1, h1, 1024, w[1],
	            1024, 0, h2, 256);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, 10, 256, 1, h2, 256, w[2], 256, 0,
	            out, 10);
	return now() - t0;
}

static int write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(buf, 1, len, f) == len;
	if (f)
		ok = fclose(f) == 0 && ok;
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	nn_blas_autoselect(argc, argv);
	int rows = 10000, reps = 5, singles = 2000;
	const char *threads = "1,2";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rows")) rows = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--singles")) singles = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads")) threads = argv[i + 1];
	}
	if (rows < 1 || reps < 1 || singles < 1)
		return 2;
	nn_model *m = make_model();
	int64_t params = nn_model_param_count(m);

	/* export: time and size */
	double t_exp[5];
	uint8_t *file = NULL;
	size_t len = 0;
	for (int r = 0; r < 5; r++) {
		free(file);
		api_err e = API_ERR_INIT;
		double t0 = now();
		if (api_onnx_export(m, 13, NULL, &file, &len, &e) < 0) {
			fprintf(stderr, "bench_onnx: export: %s\n", e.detail);
			return 1;
		}
		t_exp[r] = now() - t0;
	}
	double first = t_exp[0];
	qsort(t_exp, 5, sizeof *t_exp, cmp_d);
	size_t raw = (size_t)params * 4 + 2 * 784 * 4;
	printf("OpenBLAS core: %s\n", nn_blas_core());
	printf("export of %lld parameters (opset 13): %.2f ms (median of 5; the first, into fresh "
	       "pages, %.2f ms), %zu bytes = "
	       "weights and standardization %zu + %zu bytes of graph\n",
	       (long long)params, t_exp[2] * 1e3, first * 1e3, len, raw, len - raw);

	char dir[] = "/tmp/nnd-bench-onnx.XXXXXX", mpath[64], xpath[64], opath[64];
	if (!mkdtemp(dir))
		return 1;
	snprintf(mpath, sizeof mpath, "%s/model.onnx", dir);
	snprintf(xpath, sizeof xpath, "%s/x.f32", dir);
	snprintf(opath, sizeof opath, "%s/ort.f32", dir);
	float *x = malloc(sizeof(float) * (size_t)rows * 784);
	float *y = malloc(sizeof(float) * (size_t)rows * 10), *yo = malloc(sizeof(float) * (size_t)rows * 10);
	nn_rng rng;
	nn_rng_seed(&rng, 1);
	for (size_t k = 0; k < (size_t)rows * 784; k++)
		x[k] = nn_rng_normal(&rng);
	if (!x || !y || !yo || write_file(mpath, file, len) < 0 ||
	    write_file(xpath, x, sizeof(float) * (size_t)rows * 784) < 0)
		return 1;
	free(file);

	printf("%-8s %-22s %12s %12s %10s\n", "threads", "case", "nnd", "ORT", "ORT/nnd");
	char json[1024];
	int jl = snprintf(json, sizeof json, "{\"params\":%lld,\"export_ms\":%.3f,\"bytes\":%zu,"
	                  "\"core\":\"%s\",\"runs\":[", (long long)params, t_exp[2] * 1e3, len,
	                  nn_blas_core());
	for (const char *p = threads; *p;) {
		int t = atoi(p);
		nn_blas_set_threads(t);
		nn_scratch *s = nn_scratch_create_frozen(m, rows);
		nn_predict(m, s, x, rows, y);   /* warm-up */
		double *tb = malloc(sizeof(double) * (size_t)reps);
		for (int r = 0; r < reps; r++) {
			double t0 = now();
			nn_predict(m, s, x, rows, y);
			tb[r] = now() - t0;
		}
		qsort(tb, (size_t)reps, sizeof *tb, cmp_d);
		float *h1 = malloc(sizeof(float) * (size_t)rows * 1024);
		float *h2 = malloc(sizeof(float) * (size_t)rows * 256), *o3 = malloc(sizeof(float) * (size_t)rows * 10);
		double *tg = malloc(sizeof(double) * (size_t)reps);
		for (int r = 0; r < reps; r++)
			tg[r] = sgemm_only(m, x, rows, h1, h2, o3);
		qsort(tg, (size_t)reps, sizeof *tg, cmp_d);
		double gemm = tg[reps / 2];
		free(h1);
		free(h2);
		free(o3);
		free(tg);
		nn_scratch *s1 = nn_scratch_create_frozen(m, 1);
		float y1[10];
		for (int i = 0; i < 100; i++)
			nn_predict(m, s1, x + (size_t)(i % rows) * 784, 1, y1);
		double t0 = now();
		for (int i = 0; i < singles; i++)
			nn_predict(m, s1, x + (size_t)(i % rows) * 784, 1, y1);
		double single = (now() - t0) / singles;
		char cmd[512];
		snprintf(cmd, sizeof cmd, "node bench/onnx_ort.js %s %s %d 784 %d %d %d %s", mpath, xpath,
		         rows, t, reps, singles, opath);
		FILE *po = popen(cmd, "r");
		double ort_b = NAN, ort_s = NAN;
		char line[256] = "";
		if (po) {
			while (fgets(line, sizeof line, po))
				sscanf(line, "{\"batch_ms\":%lf,\"single_us\":%lf}", &ort_b, &ort_s);
			pclose(po);
		}
		double diff = NAN;
		FILE *fo = fopen(opath, "rb");
		if (fo && fread(yo, sizeof(float), (size_t)rows * 10, fo) == (size_t)rows * 10) {
			diff = 0;
			for (size_t k = 0; k < (size_t)rows * 10; k++)
				diff = fmax(diff, fabs((double)y[k] - (double)yo[k]));
		}
		if (fo)
			fclose(fo);
		char what[48];
		snprintf(what, sizeof what, "batch of %d rows", rows);
		printf("%-8d %-22s %9.2f ms %9.2f ms %10.2f\n", t, what, tb[reps / 2] * 1e3, ort_b,
		       ort_b / (tb[reps / 2] * 1e3));
		printf("%-8d %-22s %9.2f ms %12s   (%.0f%% of nnd's batch)\n", t, "  its 3 sgemm alone",
		       gemm * 1e3, "", 100 * gemm / tb[reps / 2]);
		printf("%-8d %-22s %9.1f us %9.1f us %10.2f\n", t, "single rows", single * 1e6, ort_s,
		       ort_s / (single * 1e6));
		printf("%-8d max |p_nnd - p_ORT| over the batch: %.3g\n", t, diff);
		jl += snprintf(json + jl, sizeof json - (size_t)jl,
		               "%s{\"threads\":%d,\"nnd_batch_ms\":%.3f,\"ort_batch_ms\":%.3f,"
		               "\"sgemm_ms\":%.3f,\"nnd_single_us\":%.2f,\"ort_single_us\":%.2f,"
		               "\"max_abs_diff\":%.3g}",
		               p == threads ? "" : ",", t, tb[reps / 2] * 1e3, ort_b, gemm * 1e3,
		               single * 1e6, ort_s, diff);
		free(tb);
		nn_scratch_free(s);
		nn_scratch_free(s1);
		p = strchr(p, ',');
		if (!p)
			break;
		p++;
	}
	printf("%s]}\n", json);
	unlink(mpath);
	unlink(xpath);
	unlink(opath);
	rmdir(dir);
	free(x);
	free(y);
	free(yo);
	nn_model_free(m);
	return 0;
}
