/*
 * test_bytes.c - the engine's byte writer (engine/bytes.c) lays arrays out
 * little-endian whatever the host does: the bytes of f32, f64 and int64
 * arrays (written with one copy on a little-endian host) are checked
 * against the values' bits put together byte by byte here, after scalars
 * that leave the arrays at odd offsets; a reserve ahead of the writes
 * changes no byte and a smaller one is nothing; the sealed buffer ends
 * with the CRC-32 of the rest.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bytes.h"
#include "check_main.h"

/* v's n low bytes, least significant first, at c */
static void put_le(unsigned char *c, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		c[i] = (unsigned char)(v >> (8 * i));
}

#define N 1001

/* The arrays written after a 3-byte prefix; reserve bytes reserved first. */
static unsigned char *written(size_t reserve, size_t *len, const float *f, const double *d,
                              const int64_t *q)
{
	nn_wbuf w = NN_WBUF_INIT;
	if (reserve)
		nn_wb_reserve(&w, reserve);
	nn_wb_bytes(&w, "abc", 3);
	nn_wb_f32s(&w, f, N);
	nn_wb_f64s(&w, d, N);
	nn_wb_i64s(&w, q, N);
	nn_wb_f32s(&w, f, 0);      /* nothing */
	void *buf = NULL;
	ck_assert_int_eq(nn_wb_seal(&w, &buf, len), NN_OK);
	return buf;
}

START_TEST(test_arrays_are_little_endian_bytes_and_reserving_changes_none)
{
	float f[N];
	double d[N];
	int64_t q[N];
	for (int i = 0; i < N; i++) {
		f[i] = (float)i * -1.25f + 0.1f;
		d[i] = (double)i * 3.0e10 - 7.5;
		q[i] = (int64_t)i * -123456789012345LL + 77;
	}
	/* what the bytes must be */
	size_t body = 3 + (size_t)N * (4 + 8 + 8);
	unsigned char *want = malloc(body + 4), *c = want + 3;
	memcpy(want, "abc", 3);
	for (int i = 0; i < N; i++, c += 4) {
		uint32_t u;
		memcpy(&u, &f[i], 4);
		put_le(c, u, 4);
	}
	for (int i = 0; i < N; i++, c += 8) {
		uint64_t u;
		memcpy(&u, &d[i], 8);
		put_le(c, u, 8);
	}
	for (int i = 0; i < N; i++, c += 8)
		put_le(c, (uint64_t)q[i], 8);
	put_le(c, crc32(0, want, (uInt)body), 4);

	const size_t reserves[] = { 0, 10, body + 4, 1 << 20 };
	for (int k = 0; k < 4; k++) {
		size_t len = 0;
		unsigned char *got = written(reserves[k], &len, f, d, q);
		ck_assert_uint_eq(len, body + 4);
		ck_assert_msg(memcmp(got, want, len) == 0, "reserve %zu: bytes differ", reserves[k]);
		free(got);
	}
	free(want);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bytes");
	TCase *t = tcase_create("writer");
	tcase_add_test(t, test_arrays_are_little_endian_bytes_and_reserving_changes_none);
	suite_add_tcase(s, t);
	return check_run(s);
}
