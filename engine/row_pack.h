/*
 * row_pack.h - a dense layer's weights kept ready for one-row products
 * (private to the engine).
 *
 * A single prediction row through sgemm pays for packing the whole weight
 * matrix on every call (OpenBLAS copies W before its kernel runs), several
 * times the product itself. A frozen model's dense layers (model.c,
 * nn_model_row_packs, for predict.c's scratches) are packed once per model,
 * for the kernel this CPU runs: W [out][in] as blocks of consecutive
 * outputs, each block [in][cols] contiguous (cols: the outputs the kernel
 * keeps in registers at once; zero-filled past out), so that
 *   z[j] = b[j] + sum over k with x[k] != 0 of x[k] W[j][k]
 * streams each block from start to end (the hardware prefetchers keep up
 * with a sequential stream, not with a few cache lines in every row of a
 * wider matrix), skipping the rows of the inputs that are zero (a hidden
 * layer's ReLU output, image pixels): a row costs what its non-zeros cost,
 * and a row without zeros costs one pass over W.
 *
 * Three kernels compute it, term by term in k order, each term a product
 * then a sum (no contraction), so all give the same bits:
 * nn_row_product_plain, plain C (the fallback and the tests' oracle, on
 * any pack), and an AVX-512 and an AVX2 one, which nn_row_product picks
 * when the CPU has them (AVX-512 first) and the pack is laid out for them.
 * Their sums run in another order than sgemm's, so a row predicted alone
 * may differ from the same row in a block in the last bits.
 */
#ifndef NN_ROW_PACK_H
#define NN_ROW_PACK_H

#include <stdint.h>

/* The kernels, as nn_row_product_simd names them. */
enum { NN_ROW_PLAIN, NN_ROW_AVX2, NN_ROW_AVX512 };

/* Outputs [j0, j0 + cols) (those below out are the layer's), their
 * weights [in][cols] at wt + off; fn: the kernel's function for the
 * block's width (an index into its table). */
typedef struct nn_row_block {
	int j0, cols, fn;
	int64_t off;
} nn_row_block;

/* wt: the blocks, 64-byte aligned; b: [pad], the bias (zeros without one);
 * pad: out rounded up to 16; kind: the kernel (NN_ROW_*) the blocks are
 * cut for (the plain kernel walks any). Never changed after creation. */
typedef struct nn_row_pack {
	int in, out, pad, kind, nblk;
	nn_row_block *blk;
	float *wt;
	float *b;
} nn_row_pack;

/* Packs W [out][in] and b [out] (NULL: no bias) for the kernel
 * nn_row_product_simd names now. NULL when out of memory or the sizes are
 * not positive. */
nn_row_pack *nn_row_pack_create(const float *W, const float *b, int in, int out);
void nn_row_pack_free(nn_row_pack *p);

/* z [out] = the layer's pre-activation for the one row x [in]. */
void nn_row_product(const nn_row_pack *p, const float *x, float *z);
/* The same in plain C, on any CPU. */
void nn_row_product_plain(const nn_row_pack *p, const float *x, float *z);
/* z [n][ldz] = the pre-activations of the n rows x [n][ldx], each row the
 * bits nn_row_product gives it alone; the weights stream from memory once
 * for all the rows (a few rows: a service's requests gathered). */
void nn_row_product_rows(const nn_row_pack *p, const float *x, int ldx, int n, float *z,
                         int ldz);
/* The same row by row in plain C (the oracle and the fallback). */
void nn_row_product_rows_plain(const nn_row_pack *p, const float *x, int ldx, int n, float *z,
                               int ldz);
/* The kernel nn_row_product and nn_row_product_rows run: NN_ROW_AVX512
 * where this CPU has AVX-512F, else NN_ROW_AVX2 where it has AVX2 (either
 * only with nn_tune.simd), else NN_ROW_PLAIN (0: no vector kernel). */
int nn_row_product_simd(void);

#ifdef NND_TEST
/* Test builds: nn_row_product_rows through the kernel kind (NN_ROW_*)
 * whatever nn_tune says (one row, n 1, as nn_row_product computes it), on
 * a copy of p packed for it when p is cut for another; -1 when this CPU
 * lacks it. */
int nn_row_product_rows_as(int kind, const nn_row_pack *p, const float *x, int ldx, int n,
                           float *z, int ldz);
#endif

#endif
