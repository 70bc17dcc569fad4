/*
 * internal.h - what the engine's own files share and nothing else includes:
 * the model layout, the training workspace, and the forward/backward passes
 * that the trainer (train.c) drives. Callers outside engine/ use nn.h only.
 */
#ifndef NN_INTERNAL_H
#define NN_INTERNAL_H

#include "nn.h"

/* Writes a formatted message into err (when err != NULL and errlen > 0). */
void nn_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The model. Parameters and running statistics each live in one flat,
 * contiguous block; every tensor is a view (offset, shape) into one of them.
 * spec holds the output layer as its last entry. Everything else (the
 * compiled node list, the tensor table) is derived from spec at creation.
 */
struct nn_model {
	nn_model_spec spec;   /* owned deep copy, output layer appended */
	float *params;        /* n_params trainable values */
	int64_t n_params;
	float *state;         /* n_state running statistics (mean, var per BN layer) */
	int64_t n_state;
	float *std_mean;      /* inputs values or NULL */
	float *std_std;
	int n_tensors;
	nn_tensor *tensors;   /* data pointers into params/state; paths owned here */
	struct nn_impl *impl; /* compiled execution plan, private to model.c */
};

/* Training workspace: activations, masks, batch-norm caches and gradients for
 * batches of up to max_batch rows. Allocated once per job; a step allocates
 * nothing. grads has the same layout as the model's params. */
typedef struct nn_ws nn_ws;
nn_ws *nn_ws_create(const nn_model *m, int max_batch);
void nn_ws_free(nn_ws *w);
float *nn_ws_grads(nn_ws *w);
/* Node k's sparse-input buffers (sparse_in.h), owned by the caller; NULL
 * for the dense path. They are used by the training passes while
 * nn_ws_sparse_on(w, 1). */
struct nn_sparse_in;
void nn_ws_set_sparse_in(nn_ws *w, int k, struct nn_sparse_in *sp);
void nn_ws_sparse_on(nn_ws *w, int on);
/* Node k's weights packed for one-row products (row_pack.h), owned by the
 * caller; NULL for sgemm. Used by inference passes of exactly one row while
 * nn_ws_row_on(w, 1). */
struct nn_row_pack;
void nn_ws_set_row_pack(nn_ws *w, int k, const struct nn_row_pack *p);
void nn_ws_row_on(nn_ws *w, int on);
/* 1 when m's node k is a dense layer: its weight and bias offsets in params
 * (b_off -1 without bias) and its widths. */
int nn_model_dense_node(const nn_model *m, int k, int64_t *w_off, int64_t *b_off, int *in,
                        int *out);
/* 1 when m's node k (k >= 1) is a dense layer fed by a ReLU whose output
 * nothing else reads, with a width that is a multiple of 16. */
int nn_model_sparse_hidden(const nn_model *m, int k, int *in, int *out);
/* m's dense nodes packed for one-row products (row_pack.h), n_nodes
 * entries, NULL for nodes that are not dense; or NULL when out of memory.
 * Built by the first caller (two at once may both build, one copy is kept)
 * and kept with the model, shared by every caller after it and freed by
 * nn_model_free: only for a model whose weights no longer change (a
 * published version), as nn_scratch_create_frozen says. */
const struct nn_row_pack *const *nn_model_row_packs(const nn_model *m);
/* Nodes of m's compiled plan. */
int nn_model_nodes(const nn_model *m);
/* 1 when m's first node is a dense layer that alone reads the input, with
 * a width that is a multiple of 16: its weight and bias offsets (b_off -1:
 * no bias) and width. */
int nn_model_sparse_first(const nn_model *m, int64_t *w_off, int64_t *b_off, int *out);
int nn_ws_max_batch(const nn_ws *w);

/*
 * Forward pass over n rows of already-standardised x (n <= max_batch).
 * training = 1: batch statistics in batch norm (and running statistics
 * updated with each layer's momentum, PyTorch's unbiased variance), dropout
 * masks drawn from rng. training = 0: inference mode, rng unused.
 * Returns the output layer's pre-activation (logits / regression outputs),
 * n x outputs, owned by the workspace; NULL when n is not in [1, max_batch],
 * w was made for a differently shaped model, or a training pass with
 * dropout has no rng. x is read again by nn_backward: keep it unchanged
 * until then. A training batch of one row leaves running statistics as
 * they are (the unbiased variance is undefined).
 */
const float *nn_forward(nn_model *m, nn_ws *w, const float *x, int n, int training,
                        nn_rng *rng);

/*
 * Mean data loss of the last forward pass against labels (classification) or
 * targets (regression) of its n rows; when want_grad, also stores dLoss/dOut
 * in the workspace for nn_backward. Returns NAN/INF as computed (the caller
 * checks for divergence).
 */
float nn_loss(const nn_model *m, nn_ws *w, const int32_t *labels, const float *targets, int n,
              int want_grad);

/* Backward pass of the last forward pass: overwrites nn_ws_grads(w) with the
 * gradient of the mean loss with respect to every parameter. */
void nn_backward(nn_model *m, nn_ws *w, int n);

/*
 * Sets every batch-norm layer's running_mean and running_var to the
 * population statistics of its inputs over x (rows x inputs, already
 * standardised), in inference mode: mean and unbiased variance, layer by
 * layer in order so that each sees the earlier layers' final statistics.
 * Uses w's buffers in chunks of its max_batch.
 */
nn_status nn_bn_population(nn_model *m, nn_ws *w, const float *x, int64_t rows);

/* 1 when the model has at least one batch_norm layer / dropout layer. */
int nn_model_has_bn(const nn_model *m);

#endif
