/*
 * onnx_pb.h - the protocol-buffers wire format, as much of it as ONNX files
 * need: a writer that appends varints, fixed32 floats and length-delimited
 * fields to a growing buffer, and a reader that walks the fields of one
 * message without allocating. Used by onnx_export.c and onnx_import.c only.
 *
 * Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 (groups,
 * 3 and 4, are refused as malformed: ONNX never uses them).
 */
#ifndef API_ONNX_PB_H
#define API_ONNX_PB_H

#include <stddef.h>
#include <stdint.h>

/* A growing byte buffer. Invariant: len <= cap; after an allocation failure
 * ok is 0 and every later append is a no-op. PB_INIT is an empty one. */
typedef struct pb_buf {
	uint8_t *b;
	size_t len, cap;
	int ok;
} pb_buf;
#define PB_INIT { NULL, 0, 0, 1 }

void pb_release(pb_buf *p);
/* Room for n more bytes at once (a hint: appends grow the buffer anyway). */
void pb_reserve(pb_buf *p, size_t n);
void pb_varint(pb_buf *p, uint64_t v);
/* field: varint (int32, int64, enum; negative values as 10-byte two's complement) */
void pb_int(pb_buf *p, int field, int64_t v);
/* field: fixed32 float, little-endian */
void pb_float(pb_buf *p, int field, float f);
/* field: length-delimited bytes (a string, packed data) */
void pb_bytes(pb_buf *p, int field, const void *data, size_t len);
void pb_str(pb_buf *p, int field, const char *s);
/* field: an embedded message; child is appended and released (also on failure) */
void pb_msg(pb_buf *p, int field, pb_buf *child);
/* src's bytes as they are (fields already tagged); src is released */
void pb_append(pb_buf *p, pb_buf *src);
/* field: packed little-endian floats */
void pb_floats(pb_buf *p, int field, const float *v, size_t n);

/* One field as read. For wire type 2, data/len is the payload; otherwise
 * v holds the value (fixed32 and fixed64 as their raw bits). */
typedef struct pb_field {
	int num;
	int wt;
	uint64_t v;
	const uint8_t *data;
	size_t len;
} pb_field;

typedef struct pb_rd {
	const uint8_t *p, *end;
} pb_rd;

static inline pb_rd pb_reader(const void *data, size_t len)
{
	pb_rd r = { (const uint8_t *)data, (const uint8_t *)data + len };
	return r;
}

/* The next field: 1 read, 0 the message ended, -1 malformed (truncated,
 * a varint over 10 bytes, a group or unknown wire type, field number 0). */
int pb_next(pb_rd *r, pb_field *f);
/* A varint from a packed run: 1 read, 0 end, -1 malformed. */
int pb_read_varint(pb_rd *r, uint64_t *v);

#endif
