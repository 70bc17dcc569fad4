/*
 * ranks.c - a data-parallel job's replicas as MPI ranks (see ranks.h).
 *
 * The wire, all from rank 0: a job starts with a header (TAG_JOB, sent to
 * each rank of the job on MPI_COMM_WORLD, where idle ranks probe for it),
 * then broadcasts on the job's communicator (ranks 0..R-1, made once at
 * start for every R): the config struct (the same binary runs everywhere),
 * the standardisation skips, the model file, the checkpoint, the training
 * and validation arrays; then every rank says whether it holds them all
 * (an allreduce), and all train or none. In training, every shard phase
 * ends with one MPI_Allgatherv of the phases' out() regions (in 8-byte
 * units), and every step begins with a broadcast of rank 0's should_stop
 * answer (cancel, or a checkpoint at shutdown). TAG_STOP ends a rank.
 *
 * Order: the allgather only moves bytes; the engine adds the shards'
 * gradients and statistics in shard order in every rank, so MPI's choice
 * of reduction order never enters (no MPI_Allreduce on floats).
 *
 * Invariants: MPI is called by one thread at a time (MPI_THREAD_SERIALIZED):
 * main() before the workers start and after they stopped, and the worker
 * holding job_mu in between. world_n is 0 unless ranks_init succeeded.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ranks.h"
#include "util.h"

static int world_n;

int ranks_size(void)
{
	return world_n;
}

int ranks_fit(const nn_train_config *cfg)
{
	return world_n > 1 && cfg->replicas > 1 && cfg->replicas <= world_n;
}

#ifndef NND_MPI

int ranks_init(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "nnd: --mpi: this nnd was built without MPI (install libopenmpi-dev "
	                "and rebuild)\n");
	return -1;
}

int ranks_serve(void)
{
	return 1;
}

void ranks_finish(void)
{
}

nn_status ranks_train(nn_model *m, const nn_data *train, const nn_data *val,
                      const nn_train_config *cfg, const nn_callbacks *cb, const void *resume,
                      size_t resume_len, nn_train_result *res, char *err, size_t errlen)
{
	return nn_train(m, train, val, cfg, cb, resume, resume_len, res, err, errlen);
}

#else

#include <mpi.h>

enum { TAG_JOB = 1, TAG_STOP = 2 };
#define IDENT_LEN 512
/* idle ranks probe for a job this often at most / at least */
#define IDLE_MIN_US 100
#define IDLE_MAX_US 20000
/* broadcasts go in pieces MPI's int counts can hold */
#define PIECE (1 << 30)

static int me;
static MPI_Comm *comms;       /* comms[R]: ranks 0..R-1 (R >= 2) */
static MPI_Datatype unit8;    /* 8 contiguous bytes: the allgather's unit */
static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER;
static int finished;

/* ---------------------------------------------------------------- start */

/* Every rank's kernels against rank 0's; 0 when all agree. */
static int check_kernels(void)
{
	char mine[IDENT_LEN] = "";
	nn_kernel_ident(mine, sizeof mine);
	char *all = me == 0 ? calloc((size_t)world_n, IDENT_LEN) : NULL;
	int bad = -1;
	if (me == 0 && !all)
		bad = 0;
	MPI_Gather(mine, IDENT_LEN, MPI_CHAR, all, IDENT_LEN, MPI_CHAR, 0, MPI_COMM_WORLD);
	for (int r = 1; all && r < world_n && bad < 0; r++)
		if (memcmp(all + (size_t)r * IDENT_LEN, mine, IDENT_LEN) != 0)
			bad = r;
	if (me == 0 && bad > 0)
		fprintf(stderr,
		        "nnd: --mpi: rank %d runs other kernels than rank 0, so the ranks would "
		        "not compute the same weights; refusing to start\n"
		        "  rank 0: %s\n  rank %d: %s\n"
		        "  (give every rank the same OpenBLAS and OPENBLAS_CORETYPE, on CPUs with "
		        "the same AVX-512 support)\n",
		        bad, mine, bad, all + (size_t)bad * IDENT_LEN);
	free(all);
	MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
	return bad < 0 ? 0 : -1;
}

int ranks_init(int *argc, char ***argv)
{
	int provided = 0;
	if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
		fprintf(stderr, "nnd: --mpi: MPI_Init failed\n");
		return -1;
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &me);
	MPI_Comm_size(MPI_COMM_WORLD, &world_n);
	if (provided < MPI_THREAD_SERIALIZED) {
		if (me == 0)
			fprintf(stderr, "nnd: --mpi: this MPI gives no MPI_THREAD_SERIALIZED\n");
		MPI_Finalize();
		world_n = 0;
		return -1;
	}
	if (check_kernels() < 0) {
		MPI_Finalize();
		world_n = 0;
		return -1;
	}
	comms = calloc((size_t)world_n + 1, sizeof *comms);
	if (!comms)
		MPI_Abort(MPI_COMM_WORLD, 1);
	/* collective over the world, so made once here, for every size */
	for (int R = 2; R <= world_n; R++)
		MPI_Comm_split(MPI_COMM_WORLD, me < R ? 0 : MPI_UNDEFINED, me, &comms[R]);
	MPI_Type_contiguous(8, MPI_BYTE, &unit8);
	MPI_Type_commit(&unit8);
	return me;
}

static void release_comms(void)
{
	for (int R = 2; comms && R <= world_n; R++)
		if (comms[R] != MPI_COMM_NULL && comms[R] != 0)
			MPI_Comm_free(&comms[R]);
	free(comms);
	comms = NULL;
	MPI_Type_free(&unit8);
}

void ranks_finish(void)
{
	if (!world_n || finished)
		return;
	finished = 1;
	int z = 0;
	for (int r = 1; me == 0 && r < world_n; r++)
		MPI_Send(&z, 1, MPI_INT, r, TAG_STOP, MPI_COMM_WORLD);
	release_comms();
	MPI_Finalize();
}

/* ---------------------------------------------------------------- the carrier */

/* One job's replica here: its communicator and the allgather's scratch. */
typedef struct rjob {
	MPI_Comm comm;
	int R, rank;
	nn_parallel par;
	char *buf;
	size_t cap;
	int *counts, *displs;  /* R each, in 8-byte units */
	/* what it cost */
	int64_t phases;
	double bytes, comm_s, task_s, copy_s;
} rjob;

static int owner(int i, int n, int R)
{
	return (int)((int64_t)i * R / n);
}

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* Task i's regions, packed at p (when p is not NULL) or unpacked from it
 * (unpack); returns their padded size. */
static size_t task_bytes(const nn_tasks *t, int i, char *p, int unpack)
{
	size_t total = 0, len = 0;
	void *r;
	for (int k = 0; (r = t->out(t->arg, i, k, &len)) != NULL; k++) {
		if (p && unpack)
			memcpy(r, p + total, len);
		else if (p)
			memcpy(p + total, r, len);
		total += pad8(len);
	}
	return total;
}

/* Runs this rank's tasks, then gives every rank every task's regions. */
static void carry(void *ctx, const nn_tasks *t)
{
	rjob *j = ctx;
	double t0 = MPI_Wtime();
	for (int i = 0; i < t->n; i++)
		if (owner(i, t->n, j->R) == j->rank)
			t->fn(t->arg, i);
	double t1 = MPI_Wtime();
	j->task_s += t1 - t0;
	if (!t->out)
		return;
	size_t per[64] = { 0 }, total = 0;
	for (int i = 0; i < t->n; i++)
		per[owner(i, t->n, j->R)] += task_bytes(t, i, NULL, 0);
	for (int q = 0; q < j->R; q++) {
		j->displs[q] = (int)(total / 8);
		j->counts[q] = (int)(per[q] / 8);
		total += per[q];
	}
	if (total / 8 > INT32_MAX) {
		util_log(0, "mpi: a phase of %zu bytes is more than one allgather carries", total);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	if (total > j->cap) {
		char *b = realloc(j->buf, total);
		if (!b) {
			util_log(0, "mpi: out of memory for a phase of %zu bytes", total);
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
		j->buf = b;
		j->cap = total;
	}
	char *p = j->buf + (size_t)j->displs[j->rank] * 8;
	for (int i = 0; i < t->n; i++)
		if (owner(i, t->n, j->R) == j->rank)
			p += task_bytes(t, i, p, 0);
	double t2 = MPI_Wtime();
	MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, j->buf, j->counts, j->displs, unit8,
	               j->comm);
	double t3 = MPI_Wtime();
	j->comm_s += t3 - t2;
	j->bytes += (double)(total - per[j->rank]);
	j->phases++;
	for (int q = 0; q < j->R; q++) {
		if (q == j->rank)
			continue;
		p = j->buf + (size_t)j->displs[q] * 8;
		for (int i = 0; i < t->n; i++)
			if (owner(i, t->n, j->R) == q)
				p += task_bytes(t, i, p, 1);
	}
	j->copy_s += (t2 - t1) + (MPI_Wtime() - t3);
}

static int rjob_init(rjob *j, int R)
{
	memset(j, 0, sizeof *j);
	j->comm = comms[R];
	j->R = R;
	MPI_Comm_rank(j->comm, &j->rank);
	j->counts = calloc((size_t)R, sizeof(int));
	j->displs = calloc((size_t)R, sizeof(int));
	j->par = (nn_parallel){ R, j, carry, 1 };
	return j->counts && j->displs ? 0 : -1;
}

static void rjob_release(rjob *j)
{
	free(j->buf);
	free(j->counts);
	free(j->displs);
}

/* ---------------------------------------------------------------- callbacks */

/* Rank 0's callbacks, run there; their answers broadcast to every rank. */
typedef struct rcb {
	const nn_callbacks *in;  /* NULL on ranks > 0 */
	rjob *j;
	int64_t steps;
} rcb;

static void r_on_step(void *ctx, const nn_step_record *r)
{
	rcb *c = ctx;
	if (c->in && c->in->on_step)
		c->in->on_step(c->in->ctx, r);
}

static void r_on_epoch(void *ctx, const nn_epoch_record *r)
{
	rcb *c = ctx;
	if (c->in && c->in->on_epoch)
		c->in->on_epoch(c->in->ctx, r);
}

static int r_should_stop(void *ctx)
{
	rcb *c = ctx;
	int v = c->in && c->in->should_stop ? c->in->should_stop(c->in->ctx) : NN_GO_ON;
	double t0 = MPI_Wtime();
	MPI_Bcast(&v, 1, MPI_INT, 0, c->j->comm);
	c->j->comm_s += MPI_Wtime() - t0;
	c->steps++;
	return v;
}

static int r_on_checkpoint(void *ctx, const void *buf, size_t len, int epoch, int64_t step)
{
	rcb *c = ctx;
	int v = c->in && c->in->on_checkpoint
	                ? c->in->on_checkpoint(c->in->ctx, buf, len, epoch, step)
	                : 0;
	MPI_Bcast(&v, 1, MPI_INT, 0, c->j->comm);
	return v;
}

/* ---------------------------------------------------------------- the job's inputs */

/* The header: sizes and shapes of what follows. */
enum {
	H_R, H_CFG, H_SKIP, H_MODEL, H_RESUME, H_HAS_VAL,
	H_TRAIN, H_VAL = H_TRAIN + 10, H_N = H_VAL + 10
};

static void bcast_bytes(void *p, size_t len, MPI_Comm comm)
{
	for (size_t off = 0; off < len; off += PIECE) {
		size_t n = len - off < PIECE ? len - off : PIECE;
		MPI_Bcast((char *)p + off, (int)n, MPI_BYTE, 0, comm);
	}
}

static void put_data(int64_t *h, const nn_data *d)
{
	h[0] = d->rows;
	h[1] = d->features;
	h[2] = d->outputs;
	h[3] = d->width;
	h[4] = d->height;
	h[5] = d->channels;
	h[6] = d->x != NULL;
	h[7] = d->x8 != NULL;
	h[8] = d->labels != NULL;
	h[9] = d->targets != NULL;
}

/* A data set's arrays as received (owned here). */
typedef struct rdata {
	nn_data d;
	float *x, *t;
	uint8_t *x8;
	int32_t *y;
} rdata;

static void rdata_release(rdata *a)
{
	free(a->x);
	free(a->t);
	free(a->x8);
	free(a->y);
}

static size_t cells(const int64_t *h)
{
	return (size_t)h[0] * (size_t)h[1];
}

/* Rank 0 sends d's arrays; other ranks allocate (from h) and receive them
 * into a. Returns 0, or -1 when out of memory (then what follows is still
 * received into a scratch-free path: the caller's allreduce says so). */
static int move_data(const int64_t *h, const nn_data *d, rdata *a, MPI_Comm comm)
{
	size_t n = cells(h), rows = (size_t)h[0], out = (size_t)h[2];
	int ok = 1;
	if (me != 0) {
		a->d = (nn_data){ h[0], (int)h[1], (int)h[2], NULL, NULL, NULL,
		                  (int)h[3], (int)h[4], (int)h[5], NULL };
		if (h[6] && !(a->x = malloc(sizeof(float) * n + 1)))
			ok = 0;
		if (h[7] && !(a->x8 = malloc(n + 1)))
			ok = 0;
		if (h[8] && !(a->y = malloc(sizeof(int32_t) * rows + 1)))
			ok = 0;
		if (h[9] && !(a->t = malloc(sizeof(float) * rows * out + 1)))
			ok = 0;
		a->d.x = a->x;
		a->d.x8 = a->x8;
		a->d.labels = a->y;
		a->d.targets = a->t;
		d = &a->d;
	}
	/* a rank without room still takes part in every broadcast, into
	 * nothing: MPI needs the same calls on every rank */
	int all_ok = 0;
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
	if (!all_ok)
		return -1;
	if (h[6])
		bcast_bytes((void *)d->x, sizeof(float) * n, comm);
	if (h[7])
		bcast_bytes((void *)d->x8, n, comm);
	if (h[8])
		bcast_bytes((void *)d->labels, sizeof(int32_t) * rows, comm);
	if (h[9])
		bcast_bytes((void *)d->targets, sizeof(float) * rows * out, comm);
	return 0;
}

/* Everything but the rows: config, skips, model, checkpoint. */
typedef struct rinputs {
	nn_train_config cfg;
	uint8_t *skip;
	void *model, *resume;
	size_t model_len, resume_len;
	rdata train, val;
} rinputs;

static void rinputs_release(rinputs *in)
{
	free(in->skip);
	if (me != 0) {
		free(in->model);
		free(in->resume);
	}
	rdata_release(&in->train);
	rdata_release(&in->val);
}

/* The small inputs over comm: rank 0 sends, the others allocate and
 * receive. 0, or -1 when a rank had no room (every rank then knows). */
static int move_small(const int64_t *h, rinputs *in, MPI_Comm comm)
{
	int ok = 1;
	if (me != 0) {
		in->model_len = (size_t)h[H_MODEL];
		in->resume_len = (size_t)h[H_RESUME];
		in->model = malloc(in->model_len + 1);
		in->resume = h[H_RESUME] ? malloc(in->resume_len + 1) : NULL;
		in->skip = h[H_SKIP] ? malloc((size_t)h[H_SKIP]) : NULL;
		ok = in->model && (!h[H_RESUME] || in->resume) && (!h[H_SKIP] || in->skip) &&
		     h[H_CFG] == (int64_t)sizeof in->cfg;
	}
	int all_ok = 0;
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
	if (!all_ok)
		return -1;
	bcast_bytes(&in->cfg, sizeof in->cfg, comm);
	if (h[H_SKIP])
		bcast_bytes(in->skip, (size_t)h[H_SKIP], comm);
	bcast_bytes(in->model, in->model_len, comm);
	if (h[H_RESUME])
		bcast_bytes(in->resume, in->resume_len, comm);
	return 0;
}

/* ---------------------------------------------------------------- training */

/* The job on this rank once its inputs are here: nn_train with the
 * carrier and the broadcasting callbacks. */
static nn_status train_here(nn_model *m, rinputs *in, int has_val, const nn_callbacks *cb,
                            rjob *j, nn_train_result *res, char *err, size_t errlen)
{
	rcb c = { cb, j, 0 };
	nn_callbacks wrap = { &c, r_on_step, r_on_epoch, r_should_stop, r_on_checkpoint };
	nn_train_config cfg = in->cfg;
	cfg.par = &j->par;
	cfg.std_skip = in->skip;
	double t0 = MPI_Wtime();
	nn_status st = nn_train(m, &in->train.d, has_val ? &in->val.d : NULL, &cfg, &wrap,
	                        in->resume, in->resume_len, res, err, errlen);
	double wall = MPI_Wtime() - t0;
	double k = c.steps > 0 ? 1e3 / (double)c.steps : 0;
	if (me == 0 && c.steps > 0)
		util_log(2, "mpi: %d ranks, %lld steps: %.0f bytes received per step and rank, "
		         "%.3f ms of %.3f ms per step in MPI (allgather and stop broadcast); "
		         "%.3f ms in its shards' passes, %.3f ms copying regions",
		         j->R, (long long)c.steps, j->bytes / (double)c.steps, j->comm_s * k,
		         wall * k, j->task_s * k, j->copy_s * k);
	return st;
}

nn_status ranks_train(nn_model *m, const nn_data *train, const nn_data *val,
                      const nn_train_config *cfg, const nn_callbacks *cb, const void *resume,
                      size_t resume_len, nn_train_result *res, char *err, size_t errlen)
{
	if (!ranks_fit(cfg))
		return nn_train(m, train, val, cfg, cb, resume, resume_len, res, err, errlen);
	pthread_mutex_lock(&job_mu);
	const int R = cfg->replicas;
	int64_t h[H_N] = { 0 };
	rinputs in;
	memset(&in, 0, sizeof in);
	in.cfg = *cfg;
	in.cfg.par = NULL;
	in.cfg.std_skip = NULL;
	void *mbuf = NULL;
	size_t mlen = 0;
	nn_status st = nn_model_save(m, &mbuf, &mlen);
	rjob j;
	if (st != NN_OK || rjob_init(&j, R) < 0) {
		if (st == NN_OK)
			rjob_release(&j);
		free(mbuf);
		pthread_mutex_unlock(&job_mu);
		snprintf(err, errlen, "out of memory");
		return NN_ENOMEM;
	}
	in.model = mbuf;
	in.model_len = mlen;
	in.resume = (void *)resume;
	in.resume_len = resume ? resume_len : 0;
	in.skip = NULL;
	h[H_R] = R;
	h[H_CFG] = (int64_t)sizeof in.cfg;
	h[H_SKIP] = cfg->std_skip ? train->features : 0;
	h[H_MODEL] = (int64_t)mlen;
	h[H_RESUME] = (int64_t)in.resume_len;
	h[H_HAS_VAL] = val != NULL;
	put_data(h + H_TRAIN, train);
	if (val)
		put_data(h + H_VAL, val);
	for (int r = 1; r < R; r++)
		MPI_Send(h, H_N, MPI_INT64_T, r, TAG_JOB, MPI_COMM_WORLD);
	in.skip = (uint8_t *)cfg->std_skip;
	int ok = move_small(h, &in, j.comm) == 0 &&
	         move_data(h + H_TRAIN, train, &in.train, j.comm) == 0 &&
	         (!val || move_data(h + H_VAL, val, &in.val, j.comm) == 0);
	in.skip = NULL;
	if (!ok) {
		snprintf(err, errlen, "a rank has no memory for the job's inputs");
		st = NN_ENOMEM;
	} else {
		in.skip = (uint8_t *)cfg->std_skip;
		in.train.d = *train;
		if (val)
			in.val.d = *val;
		st = train_here(m, &in, val != NULL, cb, &j, res, err, errlen);
		in.skip = NULL;
		memset(&in.train, 0, sizeof in.train);
		memset(&in.val, 0, sizeof in.val);
	}
	free(mbuf);
	in.model = NULL;
	in.resume = NULL;
	rinputs_release(&in);
	rjob_release(&j);
	pthread_mutex_unlock(&job_mu);
	return st;
}

/* A rank > 0's part of the job whose header h came. */
static void serve_job(const int64_t *h)
{
	const int R = (int)h[H_R];
	rjob j;
	rinputs in;
	memset(&in, 0, sizeof in);
	if (R < 2 || R > world_n || rjob_init(&j, R) < 0) {
		util_log(0, "mpi: rank %d: a job of %d ranks cannot run here", me, R);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	int ok = move_small(h, &in, j.comm) == 0 &&
	         move_data(h + H_TRAIN, NULL, &in.train, j.comm) == 0 &&
	         (!h[H_HAS_VAL] || move_data(h + H_VAL, NULL, &in.val, j.comm) == 0);
	if (ok) {
		char err[512] = "";
		nn_model *m = NULL;
		if (nn_model_load(in.model, in.model_len, &m, err, sizeof err) != NN_OK) {
			/* the same bytes loaded on rank 0: cannot happen short of memory */
			util_log(0, "mpi: rank %d: cannot load the job's model: %s", me, err);
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
		nn_train_result res;
		nn_status st = train_here(m, &in, (int)h[H_HAS_VAL], NULL, &j, &res, err,
		                          sizeof err);
		if (st != NN_OK && st != NN_ESTOPPED)
			util_log(3, "mpi: rank %d: the job ended: %s", me, err);
		nn_model_free(m);
	}
	rinputs_release(&in);
	rjob_release(&j);
}

int ranks_serve(void)
{
	/* rank 0 decides when to stop; a signal to the whole job (srun's
	 * SIGTERM, mpirun's forwarded SIGUSR1) must not end a rank in the
	 * middle of a job */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	nn_blas_set_threads(1);
	long us = IDLE_MIN_US;
	for (;;) {
		int flag = 0;
		MPI_Status s;
		MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &s);
		if (!flag) {
			struct timespec ts = { 0, us * 1000 };
			nanosleep(&ts, NULL);
			us = us * 2 > IDLE_MAX_US ? IDLE_MAX_US : us * 2;
			continue;
		}
		us = IDLE_MIN_US;
		if (s.MPI_TAG == TAG_STOP) {
			int z;
			MPI_Recv(&z, 1, MPI_INT, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			break;
		}
		int64_t h[H_N];
		MPI_Recv(h, H_N, MPI_INT64_T, 0, TAG_JOB, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		serve_job(h);
	}
	finished = 1;
	release_comms();
	MPI_Finalize();
	return 0;
}

#endif
