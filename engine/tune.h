/*
 * tune.h - the engine's tuning constants in one struct, and the counters
 * tests read (private to the engine).
 *
 * Production builds see nn_tune as a const object: the hot paths read
 * constants that nothing can change. Test builds (-DNND_TEST, the objects
 * that make's unit tests link) see it writable, so a test can force a path
 * (a density threshold of 0 or 1, no fused step) and put it back, and get
 * the NN_TEST_COUNT counters, which production builds compile to nothing
 * (the SQLITE_TEST model: hooks exist only where tests run).
 */
#ifndef NN_TUNE_H
#define NN_TUNE_H

#include <stdint.h>

typedef struct nn_tuning {
	/* byte data (and hidden ReLU outputs, predicted blocks) with at most
	 * this fraction of non-zero values take the sparse kernels (sparse_in.h) */
	float sparse_max_density;
	/* hidden dense layers (after a ReLU) of at least this many weights get
	 * sparse-input buffers */
	int64_t sparse_hidden_min;
	/* a prediction scratch packs the first layer for sparse blocks when it
	 * has at most this many weights */
	int64_t sparse_predict_max_weights;
	/* a prediction scratch packs every dense layer for one-row products
	 * (row_pack.h) when the model has at most this many dense weights */
	int64_t row_pack_max_weights;
	/* inference blocks of at most this many rows take the packed weights
	 * (nn_row_product_rows) rather than sgemm */
	int row_pack_max_rows;
	/* training data of at least this many floats, all integers 0..255, is
	 * gathered from a byte copy (train.c) */
	int64_t byte_copy_min;
	/* 1: the first layer's Adam step runs fused with the end of its
	 * gradient (nn_sparse_in_adam); 0: separate passes */
	int sparse_fuse;
	/* 1: the AVX-512 kernels run where the CPU has them; 0: their plain
	 * twins run everywhere (tests compare the two) */
	int simd;
	/* products of at most this many multiply-adds (m n k) take nnd's own
	 * kernel (gemm.h) rather than sgemm; 0: every product goes to sgemm */
	int64_t small_gemm_max;
} nn_tuning;

#define NN_TUNING_DEFAULT                                                                  \
	{ .sparse_max_density = 0.6f, .sparse_hidden_min = 16384,                           \
	  .sparse_predict_max_weights = (int64_t)1 << 24,                                   \
	  .row_pack_max_weights = (int64_t)1 << 22, .row_pack_max_rows = 8,                  \
	  .byte_copy_min = (int64_t)1 << 20,      \
	  .sparse_fuse = 1, .simd = 1, .small_gemm_max = (int64_t)1 << 18 }

#ifdef NND_TEST
extern nn_tuning nn_tune;
/* What the counters count, for tests. */
typedef struct nn_test_counts {
	int64_t byte_copies_made;    /* byte copies of training data made */
	int64_t sparse_runs;         /* runs whose node 0 trained through sparse_in.h */
	int64_t sparse_hidden_steps; /* hidden layer passes through sparse_in.h */
	int64_t sparse_fused_steps;  /* steps whose first-layer Adam step ran fused */
	int64_t sparse_predict_blocks; /* predicted blocks through sparse_in.h */
	int64_t row_predictions;     /* one-row products through row_pack.h */
	int64_t small_gemms;         /* products through gemm.h's own kernel */
} nn_test_counts;
extern nn_test_counts nn_counts;
#define NN_TEST_COUNT(name) __atomic_add_fetch(&nn_counts.name, 1, __ATOMIC_RELAXED)
#else
extern const nn_tuning nn_tune;
#define NN_TEST_COUNT(name) ((void)0)
#endif

#endif
