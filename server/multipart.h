/*
 * multipart.h - a streaming multipart/form-data parser (RFC 7578 / 2046).
 *
 * Fed the body in pieces of any size (down to one byte), it calls back with
 * each part's name and its data in pieces, holding nothing but a header
 * line buffer, so a gigabyte upload passes through in constant memory.
 */
#ifndef NND_MULTIPART_H
#define NND_MULTIPART_H

#include <stddef.h>

typedef struct mp_callbacks {
	void *ctx;
	/* A part starts; name / filename may be "" when absent. Non-zero aborts. */
	int (*part_begin)(void *ctx, const char *name, const char *filename);
	int (*part_data)(void *ctx, const char *buf, size_t len);
	int (*part_end)(void *ctx);
} mp_callbacks;

typedef struct mp_parser mp_parser;

/* The boundary parameter of a Content-Type value into out; 0 or -1. */
int mp_boundary_of(const char *content_type, char *out, size_t len);

/* NULL when the boundary is empty or longer than 70 bytes (RFC 2046). */
mp_parser *mp_new(const char *boundary, const mp_callbacks *cb);
/* 0, or -1 on malformed input or when a callback aborted (see mp_error). */
int mp_feed(mp_parser *p, const char *buf, size_t len);
/* 0 when the closing delimiter was seen, else -1. */
int mp_finish(mp_parser *p);
const char *mp_error(const mp_parser *p);
void mp_free(mp_parser *p);

#endif
