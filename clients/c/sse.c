/*
 * sse.c - a parser for text/event-stream (Server-Sent Events, as the WHATWG
 * HTML standard defines them), fed in arbitrary chunks: lines end at LF, CR
 * or CRLF; "event:", "data:" and "id:" fields; ":" starts a comment; a blank
 * line dispatches the event when it has data. The last id persists.
 */
#include "nnctl.h"

#include <stdio.h>
#include <string.h>

void nc_sse_init(nc_sse *s, nc_sse_cb cb, void *user)
{
	memset(s, 0, sizeof *s);
	s->cb = cb;
	s->user = user;
}

void nc_sse_release(nc_sse *s)
{
	if (!s)
		return;
	nc_buf_release(&s->line);
	nc_buf_release(&s->data);
}

/* Handles one complete line (without its end); returns like nc_sse_feed. */
static int sse_line(nc_sse *s, const char *line, size_t n)
{
	if (n == 0) {
		int rc = 0;
		if (s->has_data)
			rc = s->cb(s->event[0] ? s->event : "message", s->id,
			           s->data.data ? s->data.data : "", s->user);
		s->event[0] = '\0';
		s->has_data = 0;
		s->data.len = 0;
		if (s->data.data)
			s->data.data[0] = '\0';
		return rc ? 1 : 0;
	}
	if (line[0] == ':')
		return 0;
	const char *colon = memchr(line, ':', n);
	size_t flen = colon ? (size_t)(colon - line) : n;
	const char *v = colon ? colon + 1 : line + n;
	size_t vlen = (size_t)(line + n - v);
	if (vlen && *v == ' ') {
		v++;
		vlen--;
	}
	if (flen == 5 && memcmp(line, "event", 5) == 0) {
		snprintf(s->event, sizeof s->event, "%.*s", (int)vlen, v);
	} else if (flen == 4 && memcmp(line, "data", 4) == 0) {
		if (s->has_data && nc_buf_add(&s->data, "\n", 1))
			return -1;
		if (nc_buf_add(&s->data, v, vlen))
			return -1;
		s->has_data = 1;
	} else if (flen == 2 && memcmp(line, "id", 2) == 0 && !memchr(v, '\0', vlen)) {
		snprintf(s->id, sizeof s->id, "%.*s", (int)vlen, v);
	}
	return 0;
}

int nc_sse_feed(nc_sse *s, const char *p, size_t n)
{
	if (s->stopped)
		return 1;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		int after_cr = s->after_cr;
		s->after_cr = 0;
		if (ch == '\n' && after_cr)
			continue; /* the LF of a CRLF */
		if (ch == '\r' || ch == '\n') {
			int rc = sse_line(s, s->line.data ? s->line.data : "", s->line.len);
			s->line.len = 0;
			s->after_cr = ch == '\r';
			if (rc) {
				s->stopped = rc == 1;
				return rc;
			}
			continue;
		}
		if (nc_buf_add(&s->line, &ch, 1))
			return -1;
	}
	return 0;
}
