/*
 * bench_engine.c - training throughput of the engine on Fashion-MNIST, and
 * the GEMM roofline it is measured against.
 *
 * Trains the 784-256-128-10 ReLU MLP with Adam (lr 1e-3, batch 128) on the
 * standardised Fashion-MNIST training set (Debian's dataset-fashion-mnist)
 * with one BLAS thread, like shared/peers/torch_mlp.py, then reports the
 * OpenBLAS core, samples per second of the training steps, test accuracy,
 * and the roofline: the sgemm GFLOP/s measured at the exact shapes of the
 * forward and backward products of one step, against the training's
 * achieved 6 x parameters x samples FLOP/s. bench/run compares it with the
 * PyTorch peer in the same run; this program never decides pass or fail.
 *
 *   bench_engine [--epochs N] [--threads N] [--batch N] [--seed N] [--data DIR]
 *                [--init torch|auto] [--no-roofline] [--no-sparse]
 *                [--shards S] [--replicas R] [--profile]
 * --no-sparse: every product through cblas_sgemm (the training's sparse
 * kernels for mostly-zero inputs off, nn_train_config.sparse_kernels = 0).
 * --init torch (the default) draws every weight and bias from
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like torch.nn.Linear, so both sides
 * start from the same distribution; auto keeps the engine's He init.
 * --shards S --replicas R: the step cut into S shards carried by R replica
 * threads (server/replicas.c, as the daemon runs a job with those fields).
 * The last output line is one JSON object for scripts.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "nn.h"
#include "replicas.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads a whole gzip (or plain) file; zlib reads both. */
static unsigned char *read_gz(const char *path, size_t *len)
{
	gzFile f = gzopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 20, n = 0;
	unsigned char *buf = malloc(cap);
	for (;;) {
		if (!buf)
			break;
		if (n == cap) {
			unsigned char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		int got = gzread(f, buf + n, (unsigned)(cap - n > (1u << 30) ? (1u << 30) : cap - n));
		if (got < 0) {
			free(buf);
			buf = NULL;
			break;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	gzclose(f);
	*len = n;
	return buf;
}

/* IDX images (magic 0x803) as floats 0..255, and labels (0x801). */
static int load_idx(const char *dir, const char *images, const char *labels, nn_data *d,
                    float **x, int32_t **y)
{
	char path[1024];
	size_t ni, nl;
	snprintf(path, sizeof path, "%s/%s", dir, images);
	unsigned char *im = read_gz(path, &ni);
	snprintf(path, sizeof path, "%s/%s", dir, labels);
	unsigned char *lb = read_gz(path, &nl);
	if (!im || !lb || ni < 16 || nl < 8 || be32(im) != 0x803 || be32(lb) != 0x801) {
		fprintf(stderr, "bench_engine: cannot read %s/%s and %s\n", dir, images, labels);
		free(im);
		free(lb);
		return -1;
	}
	uint32_t n = be32(im + 4), h = be32(im + 8), w = be32(im + 12);
	if (be32(lb + 4) != n || ni < 16 + (size_t)n * h * w || nl < 8 + (size_t)n) {
		fprintf(stderr, "bench_engine: %s: sizes do not match\n", images);
		free(im);
		free(lb);
		return -1;
	}
	*x = malloc(sizeof(float) * (size_t)n * h * w);
	*y = malloc(sizeof(int32_t) * n);
	if (!*x || !*y)
		return -1;
	for (size_t i = 0; i < (size_t)n * h * w; i++)
		(*x)[i] = im[16 + i];
	for (uint32_t i = 0; i < n; i++)
		(*y)[i] = lb[8 + i];
	free(im);
	free(lb);
	memset(d, 0, sizeof *d);
	d->rows = n;
	d->features = (int)(h * w);
	d->outputs = 10;
	d->x = *x;
	d->labels = *y;
	d->width = (int)w;
	d->height = (int)h;
	d->channels = 1;
	return 0;
}

/* Seconds per call of one sgemm shape (best of a few timed batches). */
static double time_gemm(int ta, int tb, int m, int n, int k)
{
	float *a = calloc((size_t)m * k, sizeof(float));
	float *b = calloc((size_t)k * n, sizeof(float));
	float *c = calloc((size_t)m * n, sizeof(float));
	double best = 1e9;
	for (size_t i = 0; i < (size_t)m * k; i++)
		a[i] = (float)(i % 7) * 0.1f;
	for (size_t i = 0; i < (size_t)k * n; i++)
		b[i] = (float)(i % 5) * 0.1f;
	int reps = (int)(2e8 / (2.0 * m * n * k)) + 1;
	for (int trial = 0; trial < 5; trial++) {
		double t0 = now();
		for (int r = 0; r < reps; r++)
			cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
			            tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, ta ? m : k, b,
			            tb ? k : n, 0.0f, c, n);
		double dt = (now() - t0) / reps;
		if (dt < best)
			best = dt;
	}
	free(a);
	free(b);
	free(c);
	return best;
}

/*
 * --profile: a carrier around the replicas' that times every phase (on the
 * calling thread) and every task (on the thread that runs it), to show
 * where a sharded step's time goes, per kind of phase in the order first
 * seen (engine/shard.c: packing the sparse first layer's weights, when it
 * runs; the shards' passes; the units' fold and update): the phase's time,
 * its busiest replica's tasks (the difference is the carrier's hand-over
 * and waiting), and the engine's serial code between phases.
 */
#define PROF_KINDS 4
typedef struct prof {
	void (*fn[PROF_KINDS])(void *, int); /* the phase kinds, as first seen */
	int ntask[PROF_KINDS];
	const nn_parallel *inner;
	nn_parallel par;
	double last_end;              /* the end of the previous phase */
	double *phase[PROF_KINDS], *task_max[PROF_KINDS], *task_cpu[PROF_KINDS], *gap;
	int n_phase[PROF_KINDS], n_gap, cap;
} prof;

typedef struct prof_tasks {
	const nn_tasks *t;
	double *dur, *cpu;            /* per task: wall and thread CPU time */
} prof_tasks;

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void prof_task(void *arg, int i)
{
	prof_tasks *pt = arg;
	double t0 = now(), c0 = cpu_now();
	pt->t->fn(pt->t->arg, i);
	pt->dur[i] = now() - t0;
	pt->cpu[i] = cpu_now() - c0;
}

static void prof_run(void *ctx, const nn_tasks *t)
{
	prof *p = ctx;
	double dur[256], cpu[256];
	prof_tasks pt = { t, dur, cpu };
	nn_tasks w = { prof_task, &pt, t->n, NULL };
	int kind = 0;
	while (kind < PROF_KINDS - 1 && p->fn[kind] && p->fn[kind] != t->fn)
		kind++;
	p->fn[kind] = t->fn;
	p->ntask[kind] = t->n;
	double t0 = now();
	if (p->last_end > 0 && p->n_gap < p->cap)
		p->gap[p->n_gap++] = t0 - p->last_end;
	p->inner->run(p->inner->ctx, t->n <= 256 ? &w : t);
	double t1 = now();
	p->last_end = t1;
	/* the busiest replica's tasks (task i runs on replica i * R / n) */
	double per[64] = { 0 }, pc[64] = { 0 }, mx = 0, mc = 0;
	int R = p->inner->replicas < 64 ? p->inner->replicas : 64;
	for (int i = 0; t->n <= 256 && i < t->n; i++) {
		per[(int64_t)i * R / t->n] += dur[i];
		pc[(int64_t)i * R / t->n] += cpu[i];
	}
	for (int r = 0; r < R; r++) {
		mx = per[r] > mx ? per[r] : mx;
		mc = pc[r] > mc ? pc[r] : mc;
	}
	if (p->n_phase[kind] < p->cap) {
		p->phase[kind][p->n_phase[kind]] = t1 - t0;
		p->task_cpu[kind][p->n_phase[kind]] = mc;
		p->task_max[kind][p->n_phase[kind]++] = mx;
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median_of(double *v, int n)
{
	if (n == 0)
		return 0;
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return v[n / 2];
}

static void prof_report(prof *p)
{
	for (int k = 0; k < PROF_KINDS && p->fn[k]; k++)
		printf("  profile: phase kind %d (%d tasks) x %d, median %.1f us, busiest replica's "
		       "tasks median %.1f us (thread CPU %.1f us)\n", k, p->ntask[k],
		       p->n_phase[k], 1e6 * median_of(p->phase[k], p->n_phase[k]),
		       1e6 * median_of(p->task_max[k], p->n_phase[k]),
		       1e6 * median_of(p->task_cpu[k], p->n_phase[k]));
	printf("  profile: between phases (serial engine code) median %.1f us over %d\n",
	       1e6 * median_of(p->gap, p->n_gap), p->n_gap);
}

int main(int argc, char **argv)
{
	nn_blas_autoselect(argc, argv);

	int epochs = 1, threads = 1, batch = 128, roofline = 1, torch_init = 1, sparse = 1;
	int shards = 1, nrep = 1, profile = 0;
	uint64_t seed = 1;
	const char *dir = "/usr/share/datasets/fashion-mnist";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
			epochs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			batch = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--data") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--init") && i + 1 < argc)
			torch_init = strcmp(argv[++i], "auto") != 0;
		else if (!strcmp(argv[i], "--no-roofline"))
			roofline = 0;
		else if (!strcmp(argv[i], "--no-sparse"))
			sparse = 0;
		else if (!strcmp(argv[i], "--shards") && i + 1 < argc)
			shards = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--replicas") && i + 1 < argc)
			nrep = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--profile"))
			profile = 1;
		else {
			fprintf(stderr, "usage: %s [--epochs N] [--threads N] [--batch N] [--seed N] "
			                "[--data DIR] [--init torch|auto] [--no-roofline] [--no-sparse] "
			                "[--shards S] [--replicas R] [--profile]\n", argv[0]);
			return 2;
		}
	}
	nn_blas_set_threads(threads);

	nn_data tr, te;
	float *xtr, *xte;
	int32_t *ytr, *yte;
	if (load_idx(dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", &tr, &xtr,
	             &ytr) ||
	    load_idx(dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", &te, &xte,
	             &yte))
		return 1;

	const int widths[] = { 256, 128 };
	nn_layer_spec layers[2];
	for (int i = 0; i < 2; i++) {
		layers[i] = nn_layer_default(NN_LAYER_DENSE);
		layers[i].units = widths[i];
		layers[i].act = NN_ACT_RELU;
	}
	nn_model_spec spec = { NN_TASK_CLASSIFICATION, tr.features, 10, NN_INIT_AUTO, seed,
	                       layers, 2 };
	char err[256];
	nn_model *m = nn_model_create(&spec, err, sizeof err);
	if (!m) {
		fprintf(stderr, "bench_engine: %s\n", err);
		return 1;
	}

	if (torch_init) {
		/* weight [out][in] then bias, per dense layer, in tensor order */
		nn_rng r;
		nn_rng_seed(&r, seed);
		int fan_in = 0;
		for (int i = 0; i < nn_model_tensor_count(m); i++) {
			nn_tensor t = nn_model_tensor(m, i);
			if (t.kind == NN_T_WEIGHT)
				fan_in = t.cols;
			float limit = 1.0f / sqrtf((float)fan_in);
			nn_init_fill(t.data, (int64_t)t.rows * t.cols, NN_INIT_UNIFORM, limit, fan_in,
			             t.rows, &r);
		}
	}

	nn_train_config cfg = nn_train_config_default();
	cfg.epochs = epochs;
	cfg.batch_size = batch;
	cfg.seed = seed;
	cfg.opt = nn_optimizer_default(NN_OPT_ADAM);
	cfg.opt.lr = 1e-3f;
	cfg.standardize = 1;
	cfg.checkpoint_every_epochs = 0;
	cfg.log_every_steps = 1000000;
	cfg.sparse_kernels = sparse;
	cfg.shards = shards;
	cfg.replicas = nrep;
	replicas *rp = NULL;
	if (shards > 1) {
		rp = replicas_start(nrep);
		if (!rp) {
			fprintf(stderr, "bench_engine: cannot start %d replicas\n", nrep);
			return 1;
		}
		cfg.par = replicas_carrier(rp);
	}
	prof pf = { 0 };
	if (profile && cfg.par) {
		pf.inner = cfg.par;
		pf.par = *cfg.par;
		pf.par.ctx = &pf;
		pf.par.run = prof_run;
		pf.cap = 1 << 20;
		for (int k = 0; k < PROF_KINDS; k++) {
			pf.phase[k] = calloc((size_t)pf.cap, sizeof(double));
			pf.task_max[k] = calloc((size_t)pf.cap, sizeof(double));
			pf.task_cpu[k] = calloc((size_t)pf.cap, sizeof(double));
		}
		pf.gap = calloc((size_t)pf.cap, sizeof(double));
		cfg.par = &pf.par;
	}

	nn_train_result res;
	double t0 = now();
	nn_status st = nn_train(m, &tr, NULL, &cfg, NULL, NULL, 0, &res, err, sizeof err);
	double wall = now() - t0;
	replicas_stop(rp);
	if (st != NN_OK) {
		fprintf(stderr, "bench_engine: training failed: %s\n", err);
		return 1;
	}
	/* samples/s of the steps alone (the epoch record excludes setup such as
	 * computing the standardisation); over several epochs, of the last */
	double sps = res.last.samples_per_second;
	float loss, acc;
	nn_evaluate(m, &te, &loss, &acc);

	int64_t params = nn_model_param_count(m);
	/* FNV-1a of the trained weights' bytes: equal runs print equal hashes */
	uint64_t fnv = 1469598103934665603ull;
	{
		int64_t np = 0;
		const unsigned char *pb = (const unsigned char *)nn_model_params(m, &np);
		for (int64_t i = 0; i < np * (int64_t)sizeof(float); i++)
			fnv = (fnv ^ pb[i]) * 1099511628211ull;
	}
	double achieved = 6.0 * (double)params * sps; /* FLOP/s */
	double roof = 0;
	if (roofline) {
		/* one step's products at batch rows: forward Y = X W^T, backward
		 * dW = dY^T X and dX = dY W (not for the first layer). */
		const int in[] = { tr.features, 256, 128 }, out[] = { 256, 128, 10 };
		double secs = 0, flops = 0;
		for (int l = 0; l < 3; l++) {
			secs += time_gemm(0, 1, batch, out[l], in[l]);
			secs += time_gemm(1, 0, out[l], in[l], batch);
			flops += 4.0 * batch * out[l] * in[l];
			if (l > 0) {
				secs += time_gemm(0, 0, batch, in[l], out[l]);
				flops += 2.0 * batch * out[l] * in[l];
			}
		}
		roof = flops / secs;
	}

	const char *ct = getenv("OPENBLAS_CORETYPE");
	printf("nnd engine: core %s, %d BLAS thread(s), %d epoch(s), batch %d, shards %d, "
	       "replicas %d\n", nn_blas_core(), nn_blas_threads(), epochs, batch, shards, nrep);
	printf("  train: %.0f samples/s (steps), %.2f s wall; test accuracy %.4f, loss %.4f\n",
	       sps, wall, acc, loss);
	if (pf.inner)
		prof_report(&pf);
	if (roofline)
		printf("  roofline: sgemm at the layer shapes %.1f GFLOP/s; training %.1f GFLOP/s "
		       "(6 x %lld params x samples/s) = %.2f of it\n",
		       roof / 1e9, achieved / 1e9, (long long)params, achieved / roof);
	printf("{\"engine\": \"nnd %s\", \"core\": \"%s\", \"coretype\": \"%s\", \"threads\": %d, "
	       "\"epochs\": %d, \"batch\": %d, \"samples_per_second\": %.0f, \"wall_seconds\": %.3f, "
	       "\"test_accuracy\": %.4f, \"params\": %lld, \"train_gflops\": %.2f, "
	       "\"gemm_gflops\": %.2f, \"roofline_fraction\": %.3f, \"shards\": %d, \"replicas\": %d, "
	       "\"weights_fnv\": \"%016llx\"}\n",
	       NN_VERSION, nn_blas_core(), ct ? ct : "", nn_blas_threads(), epochs, batch, sps,
	       wall, acc, (long long)params, achieved / 1e9, roof / 1e9,
	       roof > 0 ? achieved / roof : 0.0, shards, nrep, (unsigned long long)fnv);
	nn_model_free(m);
	free(xtr);
	free(ytr);
	free(xte);
	free(yte);
	return 0;
}
