/*
 * onnx_pb.c - the protocol-buffers wire format (see onnx_pb.h).
 */
#include <stdlib.h>
#include <string.h>

#include "onnx_pb.h"

void pb_release(pb_buf *p)
{
	if (p) {
		free(p->b);
		p->b = NULL;
		p->len = p->cap = 0;
	}
}

/* Room for n more bytes; NULL (and ok = 0) when it cannot grow. */
static uint8_t *pb_room(pb_buf *p, size_t n)
{
	if (!p->ok)
		return NULL;
	if (n > SIZE_MAX / 2 - p->len) {
		p->ok = 0;
		return NULL;
	}
	if (p->len + n > p->cap) {
		size_t cap = p->cap ? p->cap : 256;
		while (cap < p->len + n)
			cap *= 2;
		uint8_t *nb = realloc(p->b, cap);
		if (!nb) {
			p->ok = 0;
			return NULL;
		}
		p->b = nb;
		p->cap = cap;
	}
	return p->b + p->len;
}

void pb_reserve(pb_buf *p, size_t n)
{
	pb_room(p, n);
}

static void pb_put(pb_buf *p, const void *data, size_t n)
{
	uint8_t *d = pb_room(p, n);
	if (d && n) {
		memcpy(d, data, n);
		p->len += n;
	}
}

void pb_varint(pb_buf *p, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	do {
		uint8_t byte = v & 0x7f;
		v >>= 7;
		tmp[n++] = byte | (v ? 0x80 : 0);
	} while (v);
	pb_put(p, tmp, n);
}

static void pb_tag(pb_buf *p, int field, int wt)
{
	pb_varint(p, ((uint64_t)field << 3) | (uint64_t)wt);
}

void pb_int(pb_buf *p, int field, int64_t v)
{
	pb_tag(p, field, 0);
	pb_varint(p, (uint64_t)v);
}

static void put_le32(uint8_t *d, uint32_t u)
{
	d[0] = (uint8_t)u;
	d[1] = (uint8_t)(u >> 8);
	d[2] = (uint8_t)(u >> 16);
	d[3] = (uint8_t)(u >> 24);
}

void pb_float(pb_buf *p, int field, float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	uint8_t d[4];
	put_le32(d, u);
	pb_tag(p, field, 5);
	pb_put(p, d, 4);
}

void pb_bytes(pb_buf *p, int field, const void *data, size_t len)
{
	pb_tag(p, field, 2);
	pb_varint(p, len);
	pb_put(p, data, len);
}

void pb_str(pb_buf *p, int field, const char *s)
{
	pb_bytes(p, field, s, strlen(s));
}

void pb_msg(pb_buf *p, int field, pb_buf *child)
{
	if (!child->ok)
		p->ok = 0;
	else
		pb_bytes(p, field, child->b, child->len);
	pb_release(child);
}

void pb_append(pb_buf *p, pb_buf *src)
{
	if (!src->ok)
		p->ok = 0;
	else
		pb_put(p, src->b, src->len);
	pb_release(src);
}

void pb_floats(pb_buf *p, int field, const float *v, size_t n)
{
	if (n > SIZE_MAX / 8) {
		p->ok = 0;
		return;
	}
	pb_tag(p, field, 2);
	pb_varint(p, n * 4);
	uint8_t *d = pb_room(p, n * 4);
	if (!d)
		return;
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		put_le32(d + 4 * i, u);
	}
	p->len += n * 4;
}

int pb_read_varint(pb_rd *r, uint64_t *v)
{
	if (r->p >= r->end)
		return 0;
	uint64_t x = 0;
	for (int shift = 0; shift < 70; shift += 7) {
		if (r->p >= r->end)
			return -1;
		uint8_t b = *r->p++;
		if (shift == 63 && (b & 0x7e))
			return -1;  /* more than 64 bits */
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 1;
		}
	}
	return -1;
}

static uint64_t get_le(const uint8_t *d, int n)
{
	uint64_t u = 0;
	for (int i = n - 1; i >= 0; i--)
		u = (u << 8) | d[i];
	return u;
}

int pb_next(pb_rd *r, pb_field *f)
{
	uint64_t key;
	int rc = pb_read_varint(r, &key);
	if (rc <= 0)
		return rc;
	if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
		return -1;
	f->num = (int)(key >> 3);
	f->wt = (int)(key & 7);
	f->data = NULL;
	f->len = 0;
	f->v = 0;
	switch (f->wt) {
	case 0:
		return pb_read_varint(r, &f->v) == 1 ? 1 : -1;
	case 1:
		if (r->end - r->p < 8)
			return -1;
		f->v = get_le(r->p, 8);
		r->p += 8;
		return 1;
	case 5:
		if (r->end - r->p < 4)
			return -1;
		f->v = get_le(r->p, 4);
		r->p += 4;
		return 1;
	case 2: {
		uint64_t n;
		if (pb_read_varint(r, &n) != 1 || n > (uint64_t)(r->end - r->p))
			return -1;
		f->data = r->p;
		f->len = (size_t)n;
		r->p += n;
		return 1;
	}
	default:
		return -1;
	}
}
