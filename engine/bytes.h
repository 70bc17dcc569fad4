/*
 * bytes.h - the engine's byte codec: a growable writer and a bounded reader
 * of little-endian integers and IEEE-754 floats, and the seal both engine
 * file formats share (an 8-byte magic first, a CRC-32 of every byte before
 * it last). Model files (model_file.c) and checkpoints (checkpoint.c) are
 * written and read through it, so their bytes are the same on every host.
 * Engine-internal: nothing outside engine/ includes it.
 */
#ifndef NN_BYTES_H
#define NN_BYTES_H

#include "nn.h"

/*
 * A growable byte buffer. Invariants: len <= cap; p is NULL until the first
 * write and is owned by the buffer until nn_wb_seal hands it over. Once an
 * allocation fails, failed is set and every later write is a no-op, so a
 * writer checks once at the end.
 */
typedef struct nn_wbuf {
	unsigned char *p;
	size_t len, cap;
	int failed;
} nn_wbuf;

#define NN_WBUF_INIT { NULL, 0, 0, 0 }

void nn_wb_bytes(nn_wbuf *w, const void *src, size_t n);
void nn_wb_u32(nn_wbuf *w, uint32_t v);
void nn_wb_i32(nn_wbuf *w, int32_t v);
void nn_wb_u64(nn_wbuf *w, uint64_t v);
void nn_wb_f32(nn_wbuf *w, float v);
void nn_wb_f64(nn_wbuf *w, double v);

/* n values in order, each as its scalar writer would write it; n <= 0
 * writes nothing (and v may then be NULL). */
void nn_wb_f32s(nn_wbuf *w, const float *v, int64_t n);
void nn_wb_f64s(nn_wbuf *w, const double *v, int64_t n);
void nn_wb_i64s(nn_wbuf *w, const int64_t *v, int64_t n);
/* Room for n bytes in all, ahead of the writes (a large buffer then never
 * moves as it grows); a failed reserve is no error. */
void nn_wb_reserve(nn_wbuf *w, size_t n);

/*
 * Appends the CRC-32 (nn_crc32) of every byte so far and hands the bytes to
 * the caller: *buf (free with free()) and *len. NN_ENOMEM when any write
 * failed; the buffer is then freed and *buf is NULL, *len 0. Either way w
 * owns nothing afterwards.
 */
nn_status nn_wb_seal(nn_wbuf *w, void **buf, size_t *len);

/*
 * A bounded reader over borrowed bytes. Invariant: pos <= len. A read past
 * len sets failed and returns 0; once failed, every read returns 0 and
 * moves nothing, so a reader checks failed once after a run of reads.
 */
typedef struct nn_rbuf {
	const unsigned char *p;
	size_t len, pos;
	int failed;
} nn_rbuf;

/*
 * Opens a sealed buffer: 1 when buf holds len >= 16 bytes and starts with
 * the 8 bytes of magic, with *r then reading from just after the magic to
 * just before the trailing CRC; 0 otherwise (r untouched). The CRC itself is
 * checked by nn_rb_crc_ok, so a format chooses which error it reports first.
 */
int nn_rb_open(nn_rbuf *r, const void *buf, size_t len, const char *magic);

/* 1 when the last 4 bytes of buf (len >= 4) are the CRC-32 of the others. */
int nn_rb_crc_ok(const void *buf, size_t len);

/* The bytes left to read. */
size_t nn_rb_left(const nn_rbuf *r);

uint32_t nn_rb_u32(nn_rbuf *r);
int32_t nn_rb_i32(nn_rbuf *r);
uint64_t nn_rb_u64(nn_rbuf *r);
float nn_rb_f32(nn_rbuf *r);
double nn_rb_f64(nn_rbuf *r);

/* n values into v. The length is checked first: when fewer than n values
 * remain (or n < 0) the reader fails and v is left as it was, so a corrupt
 * count cannot make a read loop for long. */
void nn_rb_f32s(nn_rbuf *r, float *v, int64_t n);
void nn_rb_f64s(nn_rbuf *r, double *v, int64_t n);
void nn_rb_i64s(nn_rbuf *r, int64_t *v, int64_t n);

#endif
