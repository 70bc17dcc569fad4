/*
 * textbuf.h - a growing text buffer written with printf formats, for
 * documents built piece by piece (SVG charts, the Prometheus page).
 * p is NULL until the first write and always NUL-terminated after it; a
 * failed allocation sets oom and makes every later write a no-op.
 */
#ifndef API_TEXTBUF_H
#define API_TEXTBUF_H

#include <stddef.h>

typedef struct textbuf {
	char *p;
	size_t len, cap;
	int oom;
} textbuf;

#define TEXTBUF_INIT { NULL, 0, 0, 0 }

void textbuf_put(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The text (the caller frees it), or NULL after a failed allocation (the
 * buffer is freed); b is empty again either way. */
char *textbuf_detach(textbuf *b);

#endif
