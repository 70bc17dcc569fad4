/*
 * web.h - the dashboard's embedded files (see web_blob.c): which one a
 * /ui path gets, and its bytes gzip-compressed (as stored) or plain.
 */
#ifndef NND_WEB_H
#define NND_WEB_H

#include <stddef.h>

typedef struct web_asset {
	const char *name;         /* "app.js" */
	const char *ctype;        /* its Content-Type */
	const unsigned char *gz;  /* the gzip-compressed bytes (static) */
	size_t gz_len;
} web_asset;

/* The Content-Security-Policy sent with every dashboard file: nothing from
 * any other origin (scripts, styles, fetches, fonts, frames). */
extern const char web_csp[];

/* The file for a path under /ui/: the script and the style sheet by their
 * names, the page itself for any other path (the page routes in the
 * browser). */
web_asset web_asset_for(const char *path);

/* 1 when an Accept-Encoding value accepts gzip (a "gzip" or "*" coding
 * without q=0), else 0. NULL accepts nothing. */
int web_accepts_gzip(const char *accept_encoding);

/* The asset's plain bytes (malloc'd, the caller frees) and their length,
 * or NULL when they do not inflate (never for the build's files). */
char *web_inflate(const web_asset *a, size_t *len);

#endif
