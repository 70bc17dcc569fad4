/*
 * plan.h - the compiled execution plan shared by model.c, the layer files and
 * loss/predict. Private to the engine, below internal.h.
 *
 * A model's spec tree is flattened into a list of nodes in execution order.
 * Values are numbered: v[0] is the batch input, v[k + 1] the output of node k.
 * Every node reads v[in_v] (always v[k], its predecessor's output); a residual
 * block becomes its children's nodes followed by one NN_NODE_RES_END node that
 * adds the block's input v[skip_v] (or its projection) to the block output.
 * g[k] is dL/dv[k]. Backward walks the nodes in reverse; a value read by more
 * than one node (a residual's input) has its gradient overwritten by the first
 * reader seen in reverse order and accumulated into by the others
 * (accum_in / accum_skip). The gradient of a block's last output aliases the
 * gradient of the RES_END output (the shortcut's identity path costs nothing).
 */
#ifndef NN_PLAN_H
#define NN_PLAN_H

#include "internal.h"

typedef enum {
	NN_NODE_DENSE,
	NN_NODE_ACT,
	NN_NODE_BN,
	NN_NODE_DROPOUT,
	NN_NODE_RES_END,
	NN_NODE_KINDS
} nn_node_kind;

typedef struct nn_node {
	nn_node_kind kind;
	int in_w, out_w;       /* widths of the input and the output */
	int in_v, skip_v;      /* value indices; skip_v only for RES_END */
	int accum_in;          /* backward adds into g[in_v] instead of storing */
	int accum_skip;        /* same for g[skip_v] (RES_END) */
	/* dense and activation */
	nn_act act;
	float alpha;           /* resolved (defaults applied) */
	int store_z;           /* dense: keep the pre-activation for backward */
	int has_bias;
	/* dense weight / projection weight, bias, gamma, beta: offsets into params */
	int64_t w_off, b_off;
	/* batch norm: running mean/var offsets into state */
	int64_t rm_off, rv_off;
	float momentum, eps;
	/* dropout */
	float rate;
	nn_dropout_mode mode;
	/* RES_END: 1 when the shortcut is a learned projection (w_off) */
	int projection;
	/* dense and projection: the resolved init rule */
	nn_init init;
	float init_param;
} nn_node;

struct nn_impl {
	int n_nodes;
	nn_node *nodes;
	int max_w;             /* the widest value */
	int has_bn, has_dropout;
	/* n_nodes one-row packs of a frozen model's dense nodes (NULL for
	 * other nodes), or NULL until nn_model_row_packs first builds them;
	 * set once (atomically), freed with the model */
	struct nn_row_pack **rowp;
};

/* Everything a layer's forward or backward needs for one call. */
typedef struct nn_run {
	const float *params;
	float *state;          /* running statistics; NULL = do not update them */
	const float *state_ro; /* running statistics to read (inference) */
	float *grads;          /* same layout as params */
	float **v;             /* values; v[0] is the caller's input */
	float **g;             /* value gradients; g[0] is NULL */
	float **c0, **c1;      /* per-node caches (see each layer file) */
	int n;                 /* rows in this batch */
	int training;
	nn_rng *rng;
	/* training only, per node or NULL: dense node k computes its product
	 * and weight gradient from the non-zero inputs (sparse_in.h) */
	struct nn_sparse_in **sp;
	/* inference of one row, per node or NULL: dense node k's weights packed
	 * for a matrix-vector product (row_pack.h) */
	const struct nn_row_pack *const *rowp;
} nn_run;

/* One entry per node kind: forward and backward of node k. */
typedef struct nn_layer_ops {
	void (*forward)(const nn_node *nd, int k, nn_run *r);
	void (*backward)(const nn_node *nd, int k, nn_run *r);
	/* floats of cache per row (c0) and per feature (c1) */
	int64_t (*cache0)(const nn_node *nd, int max_batch);
	int64_t (*cache1)(const nn_node *nd);
} nn_layer_ops;

extern const nn_layer_ops nn_dense_ops, nn_act_ops, nn_bn_ops, nn_dropout_ops, nn_res_ops;

/* Element-wise activation kernels shared by dense and activation layers.
 * nn_act_rows: y = f(z) over n rows of width w (y may equal z).
 * nn_act_grad_rows: out = g * f'(z) (or out += when add), reading z (the
 * pre-activation) and/or y (the output) as the function needs; out may equal g. */
void nn_act_rows(nn_act a, float alpha, const float *z, float *y, int n, int w);
/* Dense layers: per row z += b (b may be NULL), y = f(z); with z == y in
 * place, else z keeps the pre-activation. */
void nn_act_bias_rows(nn_act a, float alpha, float *z, const float *b, float *y, int n, int w);
void nn_act_grad_rows(nn_act a, float alpha, const float *z, const float *y, const float *g,
                      float *out, int n, int w, int add);
/* 1 when f'(z) can be computed from y = f(z) alone. */
int nn_act_grad_from_output(nn_act a, float alpha);
float nn_act_default_alpha(nn_act a, float alpha);

/* Forward over nodes [0, stop) of m's plan. state_update: running statistics
 * to update in training (NULL = leave them). Returns v[stop]. */
const float *nn_plan_forward(const nn_model *m, nn_ws *w, const float *x, int n, int training,
                             nn_rng *rng, float *state_update, int stop);
/* A workspace without gradient buffers (inference only). */
nn_ws *nn_ws_create_inference(const nn_model *m, int max_batch);
/* 1 when w was made for a model of m's shape (same nodes and widths). */
int nn_ws_fits(const nn_ws *w, const nn_model *m);
/* Rows of the last forward pass. */
int nn_ws_last_n(const nn_ws *w);
/* The last forward's output buffer and its gradient buffer. */
float *nn_ws_out(nn_ws *w);
float *nn_ws_out_grad(nn_ws *w);
/* Value k's buffer (k >= 1) - for nn_bn_population. */
float *nn_ws_value(nn_ws *w, int k);

/* ---- a training pass driven node by node (shard.c) */

/* Node k of m's plan, and the layer functions of a node. */
const nn_node *nn_model_node(const nn_model *m, int k);
const nn_layer_ops *nn_node_ops(const nn_node *nd);
/* A training run over w's buffers for n rows of x (n in [1, max_batch]),
 * marking w's last pass as n rows for nn_loss_sum. Running statistics are
 * not touched (state NULL); sparse inputs as nn_ws_sparse_on set them. */
nn_run nn_ws_train_run(const nn_model *m, nn_ws *w, const float *x, int n, nn_rng *rng);

/*
 * Batch norm over a batch cut into shards (layer_batchnorm.c): the whole
 * batch's mean and biased variance from per-shard sums added in a fixed
 * order, then the per-shard normalisation; backward likewise from the
 * whole batch's sums of dY and dY xhat.
 *   nn_bn_sum: sum[j] = sum over the shard's rows of x[j] (row order).
 *   nn_bn_sqdev: sq[j] = sum of (x[j] - mean[j])^2.
 *   nn_bn_apply: node k's output for the shard from the batch's mean and
 *     variance (kept in c1 as the training forward keeps them).
 *   nn_bn_grad_sums: the shard's dgamma and dbeta into r->grads.
 *   nn_bn_dx: the shard's input gradient from the whole batch's dgamma,
 *     dbeta and row count.
 */
void nn_bn_sum(const nn_node *nd, const float *x, int n, float *sum);
void nn_bn_sqdev(const nn_node *nd, const float *x, int n, const float *mean, float *sq);
void nn_bn_apply(const nn_node *nd, int k, nn_run *r, const float *mean, const float *var);
void nn_bn_grad_sums(const nn_node *nd, int k, nn_run *r);
void nn_bn_dx(const nn_node *nd, int k, nn_run *r, const float *dgamma, const float *dbeta,
              int total_n);

/* The data loss of the last pass's n rows summed over rows (in double, as
 * nn_loss sums it), with the gradient (want_grad) scaled for a mean over
 * total_n rows; NAN on bad labels. nn_loss is this divided by n (by n x
 * outputs for regression) with total_n = n. */
double nn_loss_sum(const nn_model *m, nn_ws *w, const int32_t *labels, const float *targets,
                   int n, int total_n, int want_grad);

#endif
