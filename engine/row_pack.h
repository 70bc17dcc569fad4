/*
 * row_pack.h - a dense layer's weights kept ready for one-row products
 * (private to the engine).
 *
 * A single prediction row through sgemm pays for packing the whole weight
 * matrix on every call (OpenBLAS copies W before its kernel runs), several
 * times the product itself. A frozen model's dense layers (model.c,
 * nn_model_row_packs, for predict.c's scratches) are packed once per model,
 * each W [out][in] as Wt [in][pad]
 * (pad = out rounded up to 16, zero-filled), so that
 *   z[j] = b[j] + sum over k with x[k] != 0 of x[k] Wt[k][j]
 * streams Wt row by row, skipping the rows of the inputs that are zero (a
 * hidden layer's ReLU output, image pixels): a row costs what its non-zeros
 * cost, and a row without zeros costs one pass over W.
 *
 * Three kernels compute it, term by term in k order, each term a product
 * then a sum (no contraction), so all give the same bits:
 * nn_row_product_plain, plain C (the fallback and the tests' oracle), and
 * an AVX-512 and an AVX2 one, which nn_row_product picks when the CPU has
 * them (AVX-512 first). Their sums run in another order than sgemm's, so a
 * row predicted alone may differ from the same row in a block in the last
 * bits.
 */
#ifndef NN_ROW_PACK_H
#define NN_ROW_PACK_H

#include <stdint.h>

/* wt: [in][pad] floats, 64-byte aligned, columns out..pad zero; b: [pad],
 * the bias (zeros without one). Never changed after nn_row_pack_create. */
typedef struct nn_row_pack {
	int in, out, pad;
	float *wt;
	float *b;
} nn_row_pack;

/* Packs W [out][in] and b [out] (NULL: no bias). NULL when out of memory or
 * the sizes are not positive. */
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
/* The kernels, as nn_row_product_simd names them. */
enum { NN_ROW_PLAIN, NN_ROW_AVX2, NN_ROW_AVX512 };
/* The kernel nn_row_product and nn_row_product_rows run: NN_ROW_AVX512
 * where this CPU has AVX-512F, else NN_ROW_AVX2 where it has AVX2 (either
 * only with nn_tune.simd), else NN_ROW_PLAIN (0: no vector kernel). */
int nn_row_product_simd(void);

#ifdef NND_TEST
/* Test builds: nn_row_product_rows through the kernel kind (NN_ROW_*)
 * whatever nn_tune says (one row, n 1, as nn_row_product computes it); -1
 * when this CPU lacks it. */
int nn_row_product_rows_as(int kind, const nn_row_pack *p, const float *x, int ldx, int n,
                           float *z, int ldz);
#endif

#endif
