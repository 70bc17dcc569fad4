/*
 * multipart.c - the streaming multipart/form-data parser of multipart.h.
 *
 * The body is scanned for the delimiter "\r\n--BOUNDARY" with a running
 * count of matched delimiter bytes, so a delimiter split across feeds is
 * still found. The parser starts as if "\r\n" had just been seen, which
 * lets the first boundary (at the very start of the body) match the same
 * way as the others; bytes before it are the preamble and are dropped.
 * A boundary cannot contain CR, so on a mismatch the bytes matched so far
 * are plain data and scanning restarts at the current byte.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

#define HEADER_MAX 8192

enum { S_DATA, S_AFTER_DELIM, S_AFTER_DELIM_DASH, S_AFTER_DELIM_CR, S_HEADERS, S_END, S_ERROR };

struct mp_parser {
	mp_callbacks cb;
	char delim[80];         /* "\r\n--" boundary */
	size_t dlen;
	size_t match;           /* delimiter bytes matched */
	int state;
	int in_part;            /* 1 inside a part's body (0 in the preamble) */
	char hdr[HEADER_MAX];
	size_t hlen;
	char name[256], filename[256];
	char err[128];
};

static int fail(mp_parser *p, const char *msg)
{
	snprintf(p->err, sizeof p->err, "%s", msg);
	p->state = S_ERROR;
	return -1;
}

int mp_boundary_of(const char *ct, char *out, size_t len)
{
	if (!ct)
		return -1;
	const char *b = strcasestr(ct, "boundary=");
	if (!b)
		return -1;
	b += 9;
	size_t n;
	if (*b == '"') {
		b++;
		const char *e = strchr(b, '"');
		if (!e)
			return -1;
		n = (size_t)(e - b);
	} else {
		n = strcspn(b, "; \t");
	}
	if (n == 0 || n > 70 || n >= len)
		return -1;
	memcpy(out, b, n);
	out[n] = '\0';
	return 0;
}

mp_parser *mp_new(const char *boundary, const mp_callbacks *cb)
{
	size_t bl = boundary ? strlen(boundary) : 0;
	if (bl == 0 || bl > 70 || strpbrk(boundary, "\r\n"))
		return NULL;
	mp_parser *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->cb = *cb;
	p->dlen = (size_t)snprintf(p->delim, sizeof p->delim, "\r\n--%s", boundary);
	p->match = 2;           /* as if the body started after a CRLF */
	p->state = S_DATA;
	return p;
}

static int emit(mp_parser *p, const char *buf, size_t len)
{
	if (!p->in_part || len == 0)
		return 0;
	if (p->cb.part_data && p->cb.part_data(p->cb.ctx, buf, len) != 0)
		return fail(p, "upload rejected");
	return 0;
}

/* Copies the value of `key="..."` from a header line into out. */
static void header_param(const char *line, const char *key, char *out, size_t len)
{
	out[0] = '\0';
	size_t kl = strlen(key);
	for (const char *s = line; (s = strcasestr(s, key)) != NULL; s += kl) {
		if (s > line && s[-1] != ' ' && s[-1] != ';' && s[-1] != '\t')
			continue;
		if (s[kl] != '=')
			continue;
		const char *v = s + kl + 1;
		size_t n;
		if (*v == '"') {
			v++;
			const char *e = strchr(v, '"');
			n = e ? (size_t)(e - v) : strlen(v);
		} else {
			n = strcspn(v, "; \t");
		}
		if (n >= len)
			n = len - 1;
		memcpy(out, v, n);
		out[n] = '\0';
		return;
	}
}

/* A complete header line (without CRLF) in p->hdr. */
static int header_line(mp_parser *p)
{
	p->hdr[p->hlen] = '\0';
	if (p->hlen == 0) {     /* end of headers */
		p->state = S_DATA;
		p->in_part = 1;
		p->match = 0;
		if (p->cb.part_begin && p->cb.part_begin(p->cb.ctx, p->name, p->filename) != 0)
			return fail(p, "upload rejected");
		return 0;
	}
	if (strncasecmp(p->hdr, "content-disposition:", 20) == 0) {
		header_param(p->hdr + 20, "name", p->name, sizeof p->name);
		header_param(p->hdr + 20, "filename", p->filename, sizeof p->filename);
	}
	p->hlen = 0;
	return 0;
}

int mp_feed(mp_parser *p, const char *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		switch (p->state) {
		case S_ERROR:
			return -1;
		case S_END:
			return 0;           /* the epilogue is ignored */
		case S_DATA: {
			if (p->match == 0) {
				/* fast path: everything before the next CR is data */
				const char *cr = memchr(buf + i, '\r', len - i);
				size_t n = cr ? (size_t)(cr - (buf + i)) : len - i;
				if (emit(p, buf + i, n) < 0)
					return -1;
				i += n;
				if (!cr)
					break;
			}
			char c = buf[i];
			if (c == p->delim[p->match]) {
				p->match++;
				i++;
				if (p->match == p->dlen) {
					if (p->in_part && p->cb.part_end && p->cb.part_end(p->cb.ctx) != 0)
						return fail(p, "upload rejected");
					p->in_part = 0;
					p->match = 0;
					p->state = S_AFTER_DELIM;
				}
			} else {
				/* the matched bytes were data after all */
				if (emit(p, p->delim, p->match) < 0)
					return -1;
				if (p->match == 0) {   /* a CR that starts nothing */
					if (emit(p, buf + i, 1) < 0)
						return -1;
					i++;
				}
				p->match = 0;
			}
			break;
		}
		case S_AFTER_DELIM: {
			char c = buf[i++];
			if (c == '-')
				p->state = S_AFTER_DELIM_DASH;
			else if (c == '\r')
				p->state = S_AFTER_DELIM_CR;
			else if (c != ' ' && c != '\t')
				return fail(p, "malformed multipart delimiter");
			break;
		}
		case S_AFTER_DELIM_DASH:
			if (buf[i++] != '-')
				return fail(p, "malformed multipart delimiter");
			p->state = S_END;
			break;
		case S_AFTER_DELIM_CR:
			if (buf[i++] != '\n')
				return fail(p, "malformed multipart delimiter");
			p->state = S_HEADERS;
			p->hlen = 0;
			p->name[0] = p->filename[0] = '\0';
			break;
		case S_HEADERS: {
			char c = buf[i++];
			if (c == '\n') {
				if (p->hlen == 0 || p->hdr[p->hlen - 1] != '\r')
					return fail(p, "malformed multipart header");
				p->hlen--;
				if (header_line(p) < 0)
					return -1;
			} else {
				if (p->hlen + 2 >= HEADER_MAX)
					return fail(p, "multipart headers too long");
				p->hdr[p->hlen++] = c;
			}
			break;
		}
		}
	}
	return p->state == S_ERROR ? -1 : 0;
}

int mp_finish(mp_parser *p)
{
	if (p->state == S_ERROR)
		return -1;
	if (p->state != S_END)
		return fail(p, "truncated multipart body");
	return 0;
}

const char *mp_error(const mp_parser *p)
{
	return p->err[0] ? p->err : "malformed multipart body";
}

void mp_free(mp_parser *p)
{
	free(p);
}
