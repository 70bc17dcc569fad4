/*
 * sparse_in.h - the first dense layer of a training step computed from the
 * raw, mostly-zero input rows of image data (private to the engine).
 *
 * Image data (Fashion-MNIST: half of the pixels are 0) become dense only
 * through standardisation, x' = (x - mean) / sd. For the first layer
 *   z = x' W^T + b = x (W / sd)^T + (b - (W / sd) mean),
 * so the product can skip the zero pixels of x: per row, only its non-zero
 * pixels contribute a row of Ws^T = (W / sd)^T. The results equal the dense
 * path's up to float rounding (the sums run in another order); tests compare
 * both against sgemm. The same identity gives the weight gradient:
 *   dW[j][k] = (sum_b dz[b][j] x[b][k] - mean[k] db[j]) / sd[k].
 *
 * Used by the trainer (train.c) for training steps only, when the training
 * data hold bytes, are sparse enough, the first node is a dense layer whose
 * input nobody else reads, its width is a multiple of 16, and
 * nn_sparse_in_supported(). Evaluation keeps the dense path. Prediction (predict.c) takes
 * the first layer through it for blocks of rows that are sparse enough:
 * its scratch packs the model's weights once.
 *
 * Hidden dense layers fed by a ReLU use the same kernels without the
 * standardisation (mean NULL, sd NULL): their input is the ReLU's output,
 * zero wherever the pre-activation was negative. layer_dense.c builds their
 * rows from floats each step and takes this path when at most
 * nn_sparse_max_density of the values are non-zero.
 */
#ifndef NN_SPARSE_IN_H
#define NN_SPARSE_IN_H

#include <stdint.h>

#include "adam.h"

typedef struct nn_sparse_in nn_sparse_in;

/* 1 when the kernels beat sgemm on this CPU (it has AVX-512F): the trainer
 * and prediction take this path only then. Every function works on any
 * CPU, through the plain twins where AVX-512 is missing. */
int nn_sparse_in_supported(void);
/* 1 when the AVX-512 kernels run (this CPU has AVX-512F, and nn_tune.simd);
 * 0 when their plain twins do. */
int nn_sparse_in_simd(void);
/* Buffers for batches of up to max_batch rows of f features into a dense
 * layer of `out` outputs (a multiple of 16). NULL when out of memory. */
nn_sparse_in *nn_sparse_in_create(int max_batch, int f, int out);
/* The same without the gradient's buffers (prediction): nn_sparse_in_grad
 * does nothing with it. */
nn_sparse_in *nn_sparse_in_create_forward(int max_batch, int f, int out);
void nn_sparse_in_free(nn_sparse_in *s);

/* Starts a batch; then rows 0, 1, ... are added in order from bytes. */
void nn_sparse_in_begin(nn_sparse_in *s);
void nn_sparse_in_add_row(nn_sparse_in *s, const uint8_t *row);
int nn_sparse_in_rows(const nn_sparse_in *s);
/* The same from floats: a hidden layer's input (a ReLU's output). */
void nn_sparse_in_add_row_f32(nn_sparse_in *s, const float *row);
/* Non-zeros over values of the batch so far (1 when empty). */
double nn_sparse_in_density(const nn_sparse_in *s);
/* 1 after nn_sparse_in_weights, until the next begin: the batch is to be
 * computed through this struct. */
int nn_sparse_in_active(const nn_sparse_in *s);
/* Marks the batch active with the Ws^T of the last nn_sparse_in_weights
 * (inference: the weights do not change between batches). */
void nn_sparse_in_reuse_weights(nn_sparse_in *s);

/* Ws^T and the folded bias from the layer's current W [out][f] and b (NULL:
 * none), and the standardisation (NULL: none). Once per step, before the
 * forward pass. */
void nn_sparse_in_weights(nn_sparse_in *s, const float *W, const float *b, const float *mean,
                          const float *sd);
/* s (a batch of other rows, e.g. another shard's) computes its forward
 * product and weight gradient with w's packed weights, as they are when it
 * runs, and is active; until nn_sparse_in_weights on s (its own again).
 * w must outlive that use. */
void nn_sparse_in_share_weights(nn_sparse_in *s, const nn_sparse_in *w);

/* z [rows][out] = the layer's pre-activation for the batch's rows. */
void nn_sparse_in_forward(const nn_sparse_in *s, float *z);
/* dW [out][f] = dz^T x' for the batch (x' standardised as given to the last
 * nn_sparse_in_weights), from dz [rows][out] and the bias gradient
 * db[j] = sum_b dz[b][j] (NULL: summed here). */
void nn_sparse_in_grad(nn_sparse_in *s, const float *dz, const float *db, float *dW);

/*
 * The first layer's Adam step fused with the end of its gradient. The
 * gradient's last pass (correct, scale, transpose back to [out][f]) and the
 * optimizer's pass over W, m and v are both memory-bound, and the next
 * step's packing of Ws^T reads W once more: one pass does all three, 16 x 16
 * tiles at a time, with the same float operations in the same order as
 * nn_sparse_in_grad, the trainer's l2 term, nn_optim_step and
 * nn_sparse_in_weights (so the weights are the same to the bit).
 *
 * With defer on, nn_sparse_in_grad stops before writing dW and leaves the
 * gradient pending; nn_sparse_in_adam then updates W, m, v from it, packs the
 * new Ws^T and returns the gradient's sum of squares (l2 term included). The
 * next nn_sparse_in_weights with the same W and sd only refolds the bias.
 * A caller that changes W any other way calls nn_sparse_in_forget.
 */

void nn_sparse_in_defer(nn_sparse_in *s, int on);
int nn_sparse_in_pending(const nn_sparse_in *s);
double nn_sparse_in_adam(nn_sparse_in *s, const nn_adam_scalars *a, float *W, float *m,
                         float *v);
void nn_sparse_in_forget(nn_sparse_in *s);

#endif
