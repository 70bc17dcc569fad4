/*
 * gemm.h - the engine's matrix products, and its own kernel for small ones
 * (private to the engine).
 *
 * Every product of the layers goes through nn_gemm. Large ones go to
 * OpenBLAS. Small ones (a study's trials: batches of 32 through layers of
 * 64, a model's last layer) cost OpenBLAS more in calling than in
 * computing: each sgemm packs both operands into a work buffer it takes
 * under one library-wide lock (blas_memory_alloc), so two training threads
 * of small models queue on that lock some 30,000 times a trial. Products of
 * at most nn_tune.small_gemm_max multiply-adds take nnd's kernel instead.
 *
 * The kernel sums each output in one fixed order: it starts from C (beta 1)
 * or 0 (beta 0) and adds the k products in order, each a product then a sum
 * (no contraction). Its vector versions (AVX-512, AVX2) hold 16 columns of
 * an output row per vector and follow that order lane by lane, so they give
 * the same bits as nn_gemm_small_plain, the plain C twin that is their
 * oracle and the fallback on other CPUs. OpenBLAS sums in another order: a
 * small product's bits differ from sgemm's in the last places, alike for
 * every batch split (shards and replicas see the same products).
 */
#ifndef NN_GEMM_H
#define NN_GEMM_H

#include <stdint.h>

/* C [m][ldc] = (beta ? C : 0) + op(A) op(B), row-major; op(A) is m x k
 * (A stored k x m when ta), op(B) k x n (B stored n x k when tb); beta is
 * 0 or 1. */
void nn_gemm(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B,
             int ldb, int beta, float *C, int ldc);

/* 1 when nn_gemm gives the product of these sizes to nnd's kernel. */
int nn_gemm_small_fits(int tb, int m, int n, int k);
/* nnd's kernel: the vector version this CPU has (and nn_tune.simd), else
 * the plain one. Sizes that nn_gemm_small_fits accepts. */
void nn_gemm_small(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B,
                   int ldb, int beta, float *C, int ldc);
/* The same sums in plain C, any size: the oracle and the fallback. */
void nn_gemm_small_plain(int ta, int tb, int m, int n, int k, const float *A, int lda,
                         const float *B, int ldb, int beta, float *C, int ldc);

#ifdef NND_TEST
/* Test builds: the kernel's version named kind ("avx512", "avx2",
 * "plain") whatever nn_tune says; -1 when this CPU lacks it. */
int nn_gemm_small_as(const char *kind, int ta, int tb, int m, int n, int k, const float *A,
                     int lda, const float *B, int ldb, int beta, float *C, int ldc);
#endif

#endif
