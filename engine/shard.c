/*
 * shard.c - a training step with its batch cut into shards (API.md `shards`),
 * so that replicas can share it and still compute the same floats.
 *
 * The batch's n rows are cut into S contiguous slices in batch order, of
 * sizes differing by at most one (larger first; a slice may be empty). Each
 * shard runs the forward and backward pass of its rows in a workspace of its
 * own; its loss gradient is scaled by 1 / n (the whole batch), so the
 * shard's parameter gradient is its share of the batch mean and the batch
 * gradient is the shards' sum. Every sum over shards is added in one fixed
 * order, a left fold over shard indices (((s0 + s1) + s2) + ...):
 *  - batch norm in training uses the whole batch's statistics: per-shard
 *    column sums folded into the mean, per-shard squared deviations folded
 *    into the biased variance; backward folds the shards' dgamma and dbeta
 *    (SyncBatchNorm by construction);
 *  - the parameter gradient is folded unit by unit (ranges of at most UNIT
 *    parameters within one layer), and each unit then takes its l2 term,
 *    its sum of squares (the layer norms add the units' in order) and its
 *    optimizer update;
 *  - the loss is the fold of the shards' row sums (double) over n.
 * Random draws (dropout masks, augmentation, noise) come from a generator
 * per shard seeded from (seed, step, shard), not from the run's generator.
 *
 * Nothing here knows threads: a step is a sequence of phases, each a set of
 * tasks (one per shard, or one per unit) whose results depend on their index
 * only; the caller's nn_parallel runs them (train.c's nn_callbacks.par), or
 * the calling thread does. So any number of replicas dividing S, anywhere,
 * gives the same weights. The phases of a model with m batch-norm layers:
 * m + 1 forward segments with a variance phase between each pair (2m + 1),
 * then m backward phases from the last batch norm down, then one phase of
 * units (two with clipping, which needs the global norm first), a
 * contiguous group of units per thread replica.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "sparse_in.h"
#include "trainer.h"

/* Parameters per update unit: a multiple of the sums' 16 lanes. */
#define UNIT 16384

/* Each shard on cache lines of its own: replicas write their shards' loss,
 * generator and packing marks while others read the next shard's. */
typedef struct __attribute__((aligned(64))) shard {
	nn_ws *ws;
	nn_batch b;            /* own buffers; b.rng = &rng */
	nn_sparse_in **sph;    /* per node: hidden sparse inputs, or NULL */
	nn_rng rng;
	nn_run r;              /* the step's pass over ws */
	int64_t start;         /* its first row in the batch */
	int n;                 /* its rows this step (0: empty) */
	double loss;           /* summed over its rows */
	int64_t pack_claim;    /* the step whose weights its sparse input packs */
	int64_t packed;        /* the step whose weights it has packed (-1: none) */
	float *part;           /* 4 x max_w: a batch norm's sums (sum, squares)
	                        * and what the fold made of them (mean, var /
	                        * dgamma, dbeta) */
} shard;

typedef struct unit {
	int64_t from, to;
	int group;
	int64_t *part_off, *part_len; /* n_wr + 1 each: optimizer scratch */
} unit;

struct nn_dp {
	nn_trainer *t;
	const nn_parallel *par;
	int S;
	shard *sh;
	int *bn, n_bn;         /* the batch-norm nodes, in order */
	int n_nodes, max_w;
	unit *u;
	int n_units;
	double *unit_ss;
	/* the unit phases' tasks: task g runs units [ug[g], ug[g + 1]), one
	 * contiguous group per thread replica, balanced by parameter count */
	int *ug, n_ug;
	/* the sparse first layer (t->sp): the first shard of each replica's
	 * packs the step's weights (pack_owner), its other shards read them */
	int R;                 /* the replicas the carrier's rule maps tasks to */
	/* the first layer's Adam step fused (sparse_in.h), per 16 outputs: its
	 * weight gradient never written, the shards' sums x^T dz folded into
	 * shard 0's scratch and stepped from there; n_fb blocks (0: not
	 * fused), their squares fb_ss; db the batch's bias gradient */
	int n_fb, fgroup;
	double *fb_ss;
	float *db;
	nn_adam_scalars sc;
	/* the step in progress */
	int N, phase, clip, avg;
	float lr, coef;
};

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* ---------------------------------------------------------------- folds */

/* out[0, w) = the shards' part[off + j], added in shard order. */
static void fold_part(const struct nn_dp *dp, int off, int w, float *out)
{
	memcpy(out, dp->sh[0].part + off, sizeof(float) * (size_t)w);
	for (int s = 1; s < dp->S; s++) {
		const float *x = dp->sh[s].part + off;
		for (int j = 0; j < w; j++)
			out[j] += x[j];
	}
}

/* out[0, w) = the shards' gradients at [off, off + w), in shard order. */
static void fold_grads(const struct nn_dp *dp, int64_t off, int w, float *out)
{
	memcpy(out, nn_ws_grads(dp->sh[0].ws) + off, sizeof(float) * (size_t)w);
	for (int s = 1; s < dp->S; s++) {
		const float *x = nn_ws_grads(dp->sh[s].ws) + off;
		for (int j = 0; j < w; j++)
			out[j] += x[j];
	}
}

/* ---------------------------------------------------------------- passes */

static void forward_nodes(struct nn_dp *dp, shard *s, int from, int to)
{
	for (int k = from; k < to; k++) {
		const nn_node *nd = nn_model_node(dp->t->m, k);
		nn_node_ops(nd)->forward(nd, k, &s->r);
	}
}

/* Backward over nodes [from, to), last first. */
static void backward_nodes(struct nn_dp *dp, shard *s, int from, int to)
{
	for (int k = to - 1; k >= from; k--) {
		const nn_node *nd = nn_model_node(dp->t->m, k);
		nn_node_ops(nd)->backward(nd, k, &s->r);
	}
}

/*
 * The sparse first layer's packed weights for shard s this step: packed
 * once per replica, by whichever of its shards runs first (task i's home is
 * replica i * R / S, nn.h's rule). Packing once for all shards would cost
 * the same on one replica, but each replica packing its own keeps the copy
 * in its core's caches: one copy written by one core and read by another
 * costs more than packing it twice. A carrier may run a shard away from
 * home (a thread carrier whose replica is late), so two shards of a replica
 * may want the packing at once: one claims it, the other waits for it.
 * With the fused step, shard 0's is the one copy every shard reads: the
 * step packed it (nn_sparse_in_weights then only refolds the bias).
 */
static nn_sparse_in *pack_owner(struct nn_dp *dp, shard *s)
{
	nn_trainer *t = dp->t;
	const int64_t step = t->step;
	int i = (int)(s - dp->sh), r = dp->n_fb ? 0 : (int)((int64_t)i * dp->R / dp->S);
	int first = (int)(((int64_t)r * dp->S + dp->R - 1) / dp->R); /* least i of replica r */
	shard *o = &dp->sh[first];
	int64_t c = __atomic_load_n(&o->pack_claim, __ATOMIC_ACQUIRE);
	if (c != step && __atomic_compare_exchange_n(&o->pack_claim, &c, step, 0,
	                                             __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		float *p = nn_model_params(t->m, NULL);
		if (!dp->n_fb)
			nn_sparse_in_forget(o->b.sp);
		nn_sparse_in_weights(o->b.sp, p + t->sp_w_off,
		                     t->sp_b_off >= 0 ? p + t->sp_b_off : NULL,
		                     nn_model_std_mean(t->m), nn_model_std_std(t->m));
		__atomic_store_n(&o->packed, step, __ATOMIC_RELEASE);
	} else {
		/* another task packs it: tens of microseconds */
		while (__atomic_load_n(&o->packed, __ATOMIC_ACQUIRE) != step)
			relax();
	}
	return o->b.sp;
}

/* Phase 0's start: the shard's rows gathered, its run set up. */
static void begin(struct nn_dp *dp, shard *s)
{
	nn_trainer *t = dp->t;
	nn_trainer_gather(t, &s->b, t->train, t->perm, t->pos + s->start, s->n, 1);
	if (s->b.sp && nn_sparse_in_rows(s->b.sp) == s->n)
		nn_sparse_in_share_weights(s->b.sp, pack_owner(dp, s));
	s->r = nn_ws_train_run(t->m, s->ws, s->b.bx, s->n, &s->rng);
}

/* Forward segment i (0..m): after batch norm i - 1, up to batch norm i (its
 * column sums) or, for i = m, to the end, the loss and the backward pass
 * down to the last batch norm (its dgamma and dbeta). */
static void forward_segment(struct nn_dp *dp, shard *s, int i)
{
	const int W = dp->max_w, m = dp->n_bn;
	int from = 0;
	if (i == 0) {
		begin(dp, s);
	} else {
		int k = dp->bn[i - 1];
		const nn_node *nd = nn_model_node(dp->t->m, k);
		float *mean = s->part + 2 * W, *var = s->part + 3 * W;
		fold_part(dp, W, nd->out_w, var);
		for (int j = 0; j < nd->out_w; j++)
			var[j] /= (float)dp->N;
		nn_bn_apply(nd, k, &s->r, mean, var);
		from = k + 1;
	}
	if (i < m) {
		int k = dp->bn[i];
		const nn_node *nd = nn_model_node(dp->t->m, k);
		forward_nodes(dp, s, from, k);
		nn_bn_sum(nd, s->r.v[nd->in_v], s->n, s->part);
		return;
	}
	forward_nodes(dp, s, from, dp->n_nodes);
	const nn_trainer *t = dp->t;
	s->loss = nn_loss_sum(t->m, s->ws, s->b.by, s->b.bt, s->n, dp->N, 1);
	int low = m ? dp->bn[m - 1] + 1 : 0;
	backward_nodes(dp, s, low, dp->n_nodes);
	if (m)
		nn_bn_grad_sums(nn_model_node(t->m, dp->bn[m - 1]), dp->bn[m - 1], &s->r);
}

/* Between forward segments i and i + 1: batch norm i's mean, and the
 * shard's squared deviations from it. */
static void variance(struct nn_dp *dp, shard *s, int i)
{
	const int W = dp->max_w;
	int k = dp->bn[i];
	const nn_node *nd = nn_model_node(dp->t->m, k);
	float *mean = s->part + 2 * W;
	fold_part(dp, 0, nd->out_w, mean);
	for (int j = 0; j < nd->out_w; j++)
		mean[j] /= (float)dp->N;
	nn_bn_sqdev(nd, s->r.v[nd->in_v], s->n, mean, s->part + W);
}

/* Backward through batch norm i with the batch's dgamma and dbeta, down to
 * batch norm i - 1 (its dgamma and dbeta) or the input. */
static void backward_segment(struct nn_dp *dp, shard *s, int i)
{
	const int W = dp->max_w;
	int k = dp->bn[i];
	const nn_node *nd = nn_model_node(dp->t->m, k);
	float *dgamma = s->part + 2 * W, *dbeta = s->part + 3 * W;
	fold_grads(dp, nd->w_off, nd->out_w, dgamma);
	fold_grads(dp, nd->b_off, nd->out_w, dbeta);
	nn_bn_dx(nd, k, &s->r, dgamma, dbeta, dp->N);
	int low = i > 0 ? dp->bn[i - 1] + 1 : 0;
	backward_nodes(dp, s, low, k);
	if (i > 0)
		nn_bn_grad_sums(nn_model_node(dp->t->m, dp->bn[i - 1]), dp->bn[i - 1], &s->r);
}

static void shard_task(void *arg, int i)
{
	struct nn_dp *dp = arg;
	shard *s = &dp->sh[i];
	const int m = dp->n_bn, p = dp->phase;

	if (s->n == 0) {
		/* nothing to add: zeros in every fold */
		if (p == 0) {
			int64_t np = 0;
			(void)nn_model_params(dp->t->m, &np);
			memset(nn_ws_grads(s->ws), 0, sizeof(float) * (size_t)np);
			memset(s->part, 0, sizeof(float) * 4 * (size_t)dp->max_w);
			s->loss = 0;
		}
		return;
	}
	if (p <= 2 * m) {
		if (p % 2)
			variance(dp, s, p / 2);
		else
			forward_segment(dp, s, p / 2);
	} else {
		backward_segment(dp, s, m - 1 - (p - 2 * m - 1));
	}
}

/* ---------------------------------------------------------------- units */

/* The unit's optimizer step (after clipping by dp->coef) and average. */
static void update_unit(struct nn_dp *dp, const unit *u)
{
	nn_trainer *t = dp->t;
	float *p = nn_model_params(t->m, NULL), *g = nn_ws_grads(dp->sh[0].ws);
	if (dp->coef < 1.0f)
		for (int64_t i = u->from; i < u->to; i++)
			g[i] *= dp->coef;
	nn_trainer_optim_range(t, dp->lr, p, g, u->from, u->to, u->part_off, u->part_len);
	if (dp->avg)
		nn_trainer_average(t, p, u->from, u->to);
}

/* The batch gradient of the unit (into shard 0's), its l2 term and its sum
 * of squares; without clipping, the update too. */
static void unit_task(void *arg, int i)
{
	struct nn_dp *dp = arg;
	const unit *u = &dp->u[i];
	nn_trainer *t = dp->t;
	float *p = nn_model_params(t->m, NULL), *g = nn_ws_grads(dp->sh[0].ws);
	for (int s = 1; s < dp->S; s++) {
		const float *x = nn_ws_grads(dp->sh[s].ws);
		for (int64_t j = u->from; j < u->to; j++)
			g[j] += x[j];
	}
	nn_trainer_l2(t, g, p, u->from, u->to, -1);
	dp->unit_ss[i] = nn_sumsq(g + u->from, u->to - u->from);
	if (!dp->clip)
		update_unit(dp, u);
}

/* Fused block b: outputs [16 b, 16 b + 16) of the first layer, from the
 * shards' sums (in shard order, shards with rows only: an empty one's
 * scratch holds an older batch) to the new weights, packed. */
static void fused_block(struct nn_dp *dp, int b)
{
	nn_trainer *t = dp->t;
	float *p = nn_model_params(t->m, NULL);
	nn_sparse_in *dst = dp->sh[0].b.sp;
	const int j0 = 16 * b, j1 = j0 + 16;
	for (int s = 1; s < dp->S; s++)
		if (dp->sh[s].n > 0)
			nn_sparse_in_fold_grad_rows(dst, dp->sh[s].b.sp, j0, j1);
	dp->fb_ss[b] = nn_sparse_in_adam_rows(dst, dp->db, &dp->sc, p + t->sp_w_off,
	                                      t->s1 + t->sp_w_off, t->s2 + t->sp_w_off, j0, j1);
	if (dp->avg)
		nn_trainer_average(t, p, t->sp_w_off + (int64_t)j0 * t->features,
		                   t->sp_w_off + (int64_t)j1 * t->features);
}

/* The update phase's tasks: the fused blocks, then a group of units each. */
static void unit_group_task(void *arg, int g)
{
	struct nn_dp *dp = arg;
	if (g < dp->n_fb) {
		fused_block(dp, g);
		return;
	}
	g -= dp->n_fb;
	for (int i = dp->ug[g]; i < dp->ug[g + 1]; i++)
		unit_task(arg, i);
}

static void clip_group_task(void *arg, int g)
{
	struct nn_dp *dp = arg;
	for (int i = dp->ug[g]; i < dp->ug[g + 1]; i++)
		update_unit(dp, &dp->u[i]);
}

/* ---------------------------------------------------------------- regions */

typedef struct region {
	void *p;
	size_t len;
} region;

/* base[off, off + w) floats. */
static region floats(float *base, int64_t off, int64_t w)
{
	return (region){ base + off, sizeof(float) * (size_t)w };
}

/*
 * What shard task i of the current phase wrote that other shards' tasks,
 * the units or the step's end read, into r (at most 5); returns how many:
 *  - forward segment j >= 1, shard 0 only: batch norm j - 1's batch mean
 *    and variance, as it applied them (running_stats reads shard 0's);
 *  - forward segment j < m: batch norm j's column sums (part[0, w));
 *  - variance j: its squared deviations (part[W, W + w));
 *  - the last forward segment: the loss (and, with batch norm, the last
 *    one's dgamma and dbeta);
 *  - backward segment j > 0: batch norm j - 1's dgamma and dbeta;
 *  - the last phase (backward 0, or the pass of a model without batch
 *    norm): the whole gradient, which the units fold (with the fused
 *    first layer: but its weight gradient, and its sums x^T dz instead).
 */
static int shard_regions(struct nn_dp *dp, int i, region *r)
{
	shard *s = &dp->sh[i];
	const nn_model *m = dp->t->m;
	const int nb = dp->n_bn, p = dp->phase, W = dp->max_w;
	float *g = nn_ws_grads(s->ws);
	int n = 0;
	if (p <= 2 * nb && p % 2 == 0) {
		int j = p / 2;
		if (j >= 1 && i == 0) {
			int k = dp->bn[j - 1];
			int w = nn_model_node(m, k)->out_w;
			r[n++] = floats(s->r.c1[k], w, 2 * (int64_t)w);
		}
		if (j < nb) {
			r[n++] = floats(s->part, 0, nn_model_node(m, dp->bn[j])->out_w);
		} else {
			r[n++] = (region){ &s->loss, sizeof s->loss };
			if (nb) {
				const nn_node *nd = nn_model_node(m, dp->bn[nb - 1]);
				r[n++] = floats(g, nd->w_off, nd->out_w);
				r[n++] = floats(g, nd->b_off, nd->out_w);
			}
		}
	} else if (p < 2 * nb) {
		r[n++] = floats(s->part, W, nn_model_node(m, dp->bn[p / 2])->out_w);
	} else {
		int j = nb - 1 - (p - 2 * nb - 1);
		if (j > 0) {
			const nn_node *nd = nn_model_node(m, dp->bn[j - 1]);
			r[n++] = floats(g, nd->w_off, nd->out_w);
			r[n++] = floats(g, nd->b_off, nd->out_w);
		}
	}
	if (p == 3 * nb) {
		int64_t np = 0;
		(void)nn_model_params(dp->t->m, &np);
		if (dp->n_fb) {
			/* the first layer's weight gradient is the sums x^T dz */
			const nn_trainer *t = dp->t;
			int64_t w1 = t->sp_w_off + t->sp_w_len, len = 0;
			float *gt = nn_sparse_in_grad_sums(s->b.sp, &len);
			r[n++] = floats(g, 0, t->sp_w_off);
			r[n++] = floats(g, w1, np - w1);
			r[n++] = floats(gt, 0, len);
		} else {
			r[n++] = floats(g, 0, np);
		}
	}
	return n;
}

/* nn_tasks.out of the shard phases: region k of shard_regions. */
static void *shard_out(void *arg, int i, int k, size_t *len)
{
	region r[5];
	int n = shard_regions(arg, i, r);
	if (k < 0 || k >= n)
		return NULL;
	*len = r[k].len;
	return r[k].p;
}

static void run(struct nn_dp *dp, void (*fn)(void *, int), int n)
{
	nn_tasks tk = { fn, dp, n, fn == shard_task ? shard_out : NULL };
	if (dp->par && dp->par->run && !(dp->par->distributed && fn != shard_task)) {
		dp->par->run(dp->par->ctx, &tk);
		return;
	}
	/* no carrier; or the units of distributed replicas, which each run
	 * them all on their own copy of every shard's gradient */
	for (int i = 0; i < n; i++)
		fn(dp, i);
}

/* ---------------------------------------------------------------- the step */

/* The running statistics from the batch's mean and variance (kept by every
 * shard's pass; shard 0 always has rows), as bn_forward updates them. */
static void running_stats(struct nn_dp *dp)
{
	nn_model *m = dp->t->m;
	float *state = nn_model_state(m, NULL);
	if (dp->N < 2)
		return;
	for (int i = 0; i < dp->n_bn; i++) {
		int k = dp->bn[i];
		const nn_node *nd = nn_model_node(m, k);
		const float *mean = dp->sh[0].r.c1[k] + nd->out_w, *var = mean + nd->out_w;
		float *rm = state + nd->rm_off, *rv = state + nd->rv_off;
		float mo = nd->momentum, unb = (float)dp->N / (float)(dp->N - 1);
		for (int j = 0; j < nd->out_w; j++) {
			rm[j] = (1.0f - mo) * rm[j] + mo * mean[j];
			rv[j] = (1.0f - mo) * rv[j] + mo * var[j] * unb;
		}
	}
}

/* Before the fused blocks: the batch's bias gradient of the first layer
 * (the shards' in order, as its unit folds them in place meanwhile) and
 * Adam's scalars for this step. */
static void fused_prepare(struct nn_dp *dp, float lr)
{
	nn_trainer *t = dp->t;
	const int out = (int)(t->sp_w_len / t->features);
	memcpy(dp->db, nn_ws_grads(dp->sh[0].ws) + t->sp_b_off, sizeof(float) * (size_t)out);
	for (int s = 1; s < dp->S; s++) {
		const float *x = nn_ws_grads(dp->sh[s].ws) + t->sp_b_off;
		for (int j = 0; j < out; j++)
			dp->db[j] += x[j];
	}
	nn_optim_adam_scalars(&t->cfg.opt, lr, t->opt_t, &dp->sc);
	dp->sc.l2 = t->cfg.l2 > 0 ? t->cfg.l2 : 0.0f;
	NN_TEST_COUNT(sparse_fused_steps);
}

nn_status nn_shard_step(nn_trainer *t, int n, float lr, const nn_callbacks *cb, char *err,
                        size_t errlen)
{
	struct nn_dp *dp = t->dp;
	const nn_train_config *c = &t->cfg;
	const int S = dp->S;
	int64_t np = 0;
	float *p = nn_model_params(t->m, &np);

	dp->N = n;
	int64_t start = 0;
	for (int s = 0; s < S; s++) {
		shard *sh = &dp->sh[s];
		sh->start = start;
		sh->n = n / S + (s < n % S);
		start += sh->n;
		nn_rng_seed(&sh->rng, mix(mix(c->seed + (uint64_t)t->step) + (uint64_t)s));
	}
	for (dp->phase = 0; dp->phase < 3 * dp->n_bn + 1; dp->phase++)
		run(dp, shard_task, S);

	double total = 0;
	for (int s = 0; s < S; s++)
		total += dp->sh[s].loss;
	float loss = nn_model_spec_of(t->m)->task == NN_TASK_CLASSIFICATION
	                     ? (float)(total / n)
	                     : (float)(total / ((double)n * t->outputs));
	if (!isfinite(loss))
		return nn_trainer_diverged(t, loss, err, errlen);
	running_stats(dp);

	/* sparsity prunes before averaging: then both run after the units */
	int prune = c->sparsity.enabled && t->epoch >= c->sparsity.start_epoch;
	dp->lr = lr;
	dp->coef = 1.0f;
	dp->clip = c->clip_grad_norm > 0;
	dp->avg = !prune && nn_trainer_averaging(t);
	t->opt_t++;
	if (dp->n_fb)
		fused_prepare(dp, lr);
	run(dp, unit_group_task, dp->n_fb + dp->n_ug);
	double sq = 0;
	for (int k = 0, i = 0; k < t->n_groups; k++) {
		double gs = 0;
		for (int b = 0; k == dp->fgroup && b < dp->n_fb; b++)
			gs += dp->fb_ss[b];
		for (; i < dp->n_units && dp->u[i].group == k; i++)
			gs += dp->unit_ss[i];
		t->gn_sum[k] += sqrt(gs);
		sq += gs;
	}
	if (dp->clip) {
		dp->coef = nn_trainer_clip_coef(t, sq);
		run(dp, clip_group_task, dp->n_ug);
	}
	if (prune)
		nn_trainer_after_update(t, p, np);
	else if (dp->avg)
		t->avg_n++;
	nn_trainer_end_step(t, n, loss, lr, cb);
	return NN_OK;
}

/* ---------------------------------------------------------------- setup */

static nn_status shard_buffers(nn_trainer *t, shard *s, int rows, int fused)
{
	const int f = t->features;
	s->ws = nn_ws_create(t->m, rows);
	s->b.bx = malloc(sizeof(float) * (size_t)rows * (size_t)f);
	if (nn_model_spec_of(t->m)->task == NN_TASK_CLASSIFICATION)
		s->b.by = malloc(sizeof(int32_t) * (size_t)rows);
	else
		s->b.bt = malloc(sizeof(float) * (size_t)rows * (size_t)t->outputs);
	if (nn_augment_has_image(&t->cfg.aug))
		s->b.img = malloc(sizeof(float) * (size_t)f);
	s->b.rng = &s->rng;
	if (!s->ws || !s->b.bx || (!s->b.by && !s->b.bt) ||
	    (nn_augment_has_image(&t->cfg.aug) && !s->b.img))
		return NN_ENOMEM;
	/* the sparse inputs the trainer chose (train.c's sparse_setup) */
	if (t->sp) {
		s->b.sp = nn_sparse_in_create(rows, f, (int)(t->sp_w_len / f));
		if (!s->b.sp)
			return NN_ENOMEM;
		nn_sparse_in_defer(s->b.sp, fused);
		nn_ws_set_sparse_in(s->ws, 0, s->b.sp);
	}
	if (t->sph) {
		s->sph = calloc((size_t)t->n_nodes + 1, sizeof(*s->sph));
		if (!s->sph)
			return NN_ENOMEM;
		for (int k = 1; k < t->n_nodes; k++) {
			int in = 0, out = 0;
			if (!t->sph[k] || !nn_model_sparse_hidden(t->m, k, &in, &out))
				continue;
			if (!(s->sph[k] = nn_sparse_in_create(rows, in, out)))
				return NN_ENOMEM;
			nn_ws_set_sparse_in(s->ws, k, s->sph[k]);
		}
	}
	nn_ws_sparse_on(s->ws, 1);
	return NN_OK;
}

/* Units of at most UNIT parameters, none across a layer's boundary. */
static nn_status make_units(nn_trainer *t, struct nn_dp *dp)
{
	int n = 0;
	const int64_t w0 = dp->n_fb ? t->sp_w_off : -1, w1 = dp->n_fb ? w0 + t->sp_w_len : -1;
	for (int k = 0; k < t->n_groups; k++)
		n += (int)((t->group_len[k] + UNIT - 1) / UNIT) + 2;
	dp->u = calloc((size_t)n + 1, sizeof(*dp->u));
	dp->unit_ss = calloc((size_t)n + 1, sizeof(double));
	if (!dp->u || !dp->unit_ss)
		return NN_ENOMEM;
	for (int k = 0; k < t->n_groups; k++) {
		int64_t a = t->group_off[k], b = a + t->group_len[k];
		for (int64_t from = a; from < b;) {
			if (from == w0) {   /* the fused weights: blocks, not units */
				from = w1;
				dp->fgroup = k;
				continue;
			}
			int64_t to = from + UNIT < b ? from + UNIT : b;
			if (from < w0 && to > w0)
				to = w0;
			unit *u = &dp->u[dp->n_units++];
			u->from = from;
			u->to = to;
			from = to;
			u->group = k;
			u->part_off = calloc((size_t)t->n_wr + 1, sizeof(int64_t));
			u->part_len = calloc((size_t)t->n_wr + 1, sizeof(int64_t));
			if (!u->part_off || !u->part_len)
				return NN_ENOMEM;
		}
	}
	return NN_OK;
}

/*
 * The units cut into R contiguous groups (R: the thread replicas; 1 without
 * threads, or for distributed replicas, which run every unit): group g ends
 * at the unit boundary nearest to g / R of the parameters. Which units share
 * a task never changes what a unit computes, so any R gives the same floats.
 */
static nn_status group_units(struct nn_dp *dp, int R)
{
	if (R > dp->n_units)
		R = dp->n_units;
	if (R < 1)
		R = 1;
	dp->ug = calloc((size_t)R + 1, sizeof(int));
	if (!dp->ug)
		return NN_ENOMEM;
	dp->n_ug = R;
	int64_t total = 0;
	for (int i = 0; i < dp->n_units; i++)
		total += dp->u[i].to - dp->u[i].from;
	int i = 0;
	int64_t done = 0;
	for (int g = 1; g < R; g++) {
		double want = (double)total * g / R;
		/* take units while that brings the boundary nearer to want */
		while (i < dp->n_units) {
			int64_t next = done + (dp->u[i].to - dp->u[i].from);
			if (fabs((double)next - want) > fabs((double)done - want))
				break;
			done = next;
			i++;
		}
		dp->ug[g] = i;
	}
	dp->ug[R] = dp->n_units;
	return NN_OK;
}

nn_status nn_shard_init(nn_trainer *t, const nn_parallel *par, char *err, size_t errlen)
{
	const int S = t->cfg.shards;
	if (par && (par->replicas < 1 || S % par->replicas)) {
		nn_errf(err, errlen, "replicas: %d replicas do not divide %d shards",
		        par->replicas, S);
		return NN_EINVAL;
	}
	struct nn_dp *dp = calloc(1, sizeof *dp);
	if (!dp)
		goto oom;
	t->dp = dp;
	dp->t = t;
	dp->par = par;
	dp->S = S;
	dp->n_nodes = nn_model_nodes(t->m);
	dp->sh = aligned_alloc(64, (size_t)S * sizeof(*dp->sh));
	if (dp->sh)
		memset(dp->sh, 0, (size_t)S * sizeof(*dp->sh));
	dp->bn = calloc((size_t)dp->n_nodes + 1, sizeof(int));
	if (!dp->sh || !dp->bn)
		goto oom;
	for (int k = 0; k < dp->n_nodes; k++) {
		const nn_node *nd = nn_model_node(t->m, k);
		if (nd->out_w > dp->max_w)
			dp->max_w = nd->out_w;
		if (nd->kind == NN_NODE_BN)
			dp->bn[dp->n_bn++] = k;
	}
	/* the fused first layer (its bias gradient feeds the fused blocks) */
	dp->fgroup = -1;
	if (t->sp && t->sp_b_off >= 0 && nn_trainer_sparse_fusable(t)) {
		dp->n_fb = (int)(t->sp_w_len / t->features) / 16;
		dp->fb_ss = calloc((size_t)dp->n_fb, sizeof(double));
		dp->db = calloc((size_t)dp->n_fb * 16, sizeof(float));
		if (!dp->fb_ss || !dp->db)
			goto oom;
	}
	int rows = (t->max_batch + S - 1) / S;
	for (int s = 0; s < S; s++) {
		shard *sh = &dp->sh[s];
		sh->part = calloc(4 * (size_t)dp->max_w, sizeof(float));
		sh->packed = sh->pack_claim = -1;
		if (!sh->part || shard_buffers(t, sh, rows, dp->n_fb > 0) != NN_OK)
			goto oom;
		/* a shard another process runs still has its run's views here:
		 * its outputs are copied into them (shard_out) */
		sh->r = nn_ws_train_run(t->m, sh->ws, sh->b.bx, 0, &sh->rng);
	}
	dp->R = par && par->run ? par->replicas : 1;
	if (make_units(t, dp) != NN_OK || group_units(dp, par && !par->distributed ? dp->R : 1))
		goto oom;
	return NN_OK;
oom:
	nn_errf(err, errlen, "out of memory");
	return NN_ENOMEM;
}

void nn_shard_release(nn_trainer *t)
{
	struct nn_dp *dp = t->dp;
	if (!dp)
		return;
	for (int s = 0; dp->sh && s < dp->S; s++) {
		shard *sh = &dp->sh[s];
		nn_ws_free(sh->ws);
		free(sh->b.bx);
		free(sh->b.by);
		free(sh->b.bt);
		free(sh->b.img);
		nn_sparse_in_free(sh->b.sp);
		for (int k = 0; sh->sph && k < dp->n_nodes; k++)
			nn_sparse_in_free(sh->sph[k]);
		free(sh->sph);
		free(sh->part);
	}
	for (int i = 0; dp->u && i < dp->n_units; i++) {
		free(dp->u[i].part_off);
		free(dp->u[i].part_len);
	}
	free(dp->u);
	free(dp->unit_ss);
	free(dp->ug);
	free(dp->fb_ss);
	free(dp->db);
	free(dp->sh);
	free(dp->bn);
	free(dp);
	t->dp = NULL;
}
