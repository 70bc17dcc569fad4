/*
 * gemm_tile.h - the body of gemm.c's vector kernel, written once for
 * vectors of VW floats (type V, unaligned VU) and included by gemm.c once
 * per width, SFX naming the copies. Private to gemm.c: no include guard.
 *
 * A tile of up to 4 output rows by 2 vectors stays in registers while k
 * runs (8 accumulators: 4 x 32 columns in zmm, 4 x 16 in ymm). The columns
 * past n16 come from T (16 wide, zero-padded): one more vector whose lanes
 * past n are dropped, or for 8-float vectors a full one and then such a
 * vector. Each lane adds its k products in order, a product then a sum, so
 * every width gives the plain kernel's bits.
 */

#define LOADV(p) (*(const VU *)(p))
#define STOREV(p, v) (*(VU *)(p) = (v))

/* Rows i0 .. i0+RB-1 of C, the NV vectors of columns from j (C's column)
 * whose op(B) columns are b (row stride ldb). W < VW: one vector of which
 * only W columns are C's (the rest are the zero padding of T, loaded from
 * and stored to a buffer). RB, NV, W and TA are constants at every call,
 * so the accumulators live in registers. */
INLINE void SFX(tile)(const gemm_args *g, const int TA, int i0, int j, const float *b, int ldb,
                      const int RB, const int NV, const int W)
{
	V acc[4][2];
	float part[VW] = { 0 };
	for (int r = 0; r < RB; r++) {
		float *c = g->C + (int64_t)(i0 + r) * g->ldc + j;
		for (int v = 0; v < NV; v++) {
			if (!g->beta) {
				acc[r][v] = (V){ 0 };
			} else if (W == VW) {
				acc[r][v] = (V)LOADV(c + VW * v);
			} else {
				memcpy(part, c, sizeof(float) * W);
				acc[r][v] = (V)LOADV(part);
			}
		}
	}
	for (int p = 0; p < g->k; p++) {
		V bv[2];
		for (int v = 0; v < NV; v++)
			bv[v] = LOADV(b + (int64_t)p * ldb + VW * v);
		for (int r = 0; r < RB; r++) {
			float a = a_at(g, TA, i0 + r, p);
			for (int v = 0; v < NV; v++)
				acc[r][v] = acc[r][v] + a * bv[v];
		}
	}
	for (int r = 0; r < RB; r++) {
		float *c = g->C + (int64_t)(i0 + r) * g->ldc + j;
		for (int v = 0; v < NV; v++) {
			if (W == VW) {
				STOREV(c + VW * v, acc[r][v]);
			} else {
				STOREV(part, acc[r][v]);
				memcpy(c, part, sizeof(float) * W);
			}
		}
	}
}

/* The 1 .. VW-1 columns from j, their op(B) columns at b (T's stride). */
INLINE void SFX(tail)(const gemm_args *g, const int TA, int i0, int j, const float *b,
                      const int RB)
{
	/* W is a constant in each branch */
	switch (g->n - j) {
#define TAIL(w)                                                           \
	case w:                                                           \
		if (w < VW)                                               \
			SFX(tile)(g, TA, i0, j, b, g->ldt, RB, 1, w < VW ? w : 1); \
		break;
		TAIL(1) TAIL(2) TAIL(3) TAIL(4) TAIL(5) TAIL(6) TAIL(7) TAIL(8)
		TAIL(9) TAIL(10) TAIL(11) TAIL(12) TAIL(13) TAIL(14) TAIL(15)
#undef TAIL
	}
}

/* Rows i0 .. i0+RB-1, every column. */
INLINE void SFX(row_block)(const gemm_args *g, const int TA, int i0, const int RB)
{
	int j = 0;
	for (; j + 2 * VW <= g->n16; j += 2 * VW)
		SFX(tile)(g, TA, i0, j, g->B + j, g->ldb, RB, 2, VW);
	for (; j + VW <= g->n16; j += VW)
		SFX(tile)(g, TA, i0, j, g->B + j, g->ldb, RB, 1, VW);
	if (j < g->n) {
		const float *t = g->T;
		if (g->n - j >= VW) { /* 8-float vectors: T's first 8 columns whole */
			SFX(tile)(g, TA, i0, j, t, g->ldt, RB, 1, VW);
			j += VW;
			t += VW;
		}
		if (j < g->n)
			SFX(tail)(g, TA, i0, j, t, RB);
	}
}

INLINE void SFX(kernel_body)(const gemm_args *g, const int TA)
{
	int i = 0;
	for (; i + 4 <= g->m; i += 4)
		SFX(row_block)(g, TA, i, 4);
	for (; i < g->m; i++)
		SFX(row_block)(g, TA, i, 1);
}

#undef LOADV
#undef STOREV
