/*
 * web.c - the dashboard's embedded files (see web.h). They are stored
 * gzip-compressed, as the build made them; a client that does not accept
 * gzip gets them inflated, per request (they are small).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "web.h"

extern const unsigned char nnd_web_index_gz[], nnd_web_index_gz_end[];
extern const unsigned char nnd_web_app_js_gz[], nnd_web_app_js_gz_end[];
extern const unsigned char nnd_web_app_css_gz[], nnd_web_app_css_gz_end[];

const char web_csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

web_asset web_asset_for(const char *path)
{
	static const char *const names[3] = { "index.html", "app.js", "app.css" };
	static const char *const types[3] = { "text/html; charset=utf-8",
	                                      "text/javascript; charset=utf-8",
	                                      "text/css; charset=utf-8" };
	const unsigned char *from[3] = { nnd_web_index_gz, nnd_web_app_js_gz, nnd_web_app_css_gz };
	const unsigned char *to[3] = { nnd_web_index_gz_end, nnd_web_app_js_gz_end,
	                               nnd_web_app_css_gz_end };
	int k = 0;
	if (path && strncmp(path, "/ui/", 4) == 0)
		for (int i = 1; i < 3; i++)
			if (strcmp(path + 4, names[i]) == 0)
				k = i;
	return (web_asset){ names[k], types[k], from[k], (size_t)(to[k] - from[k]) };
}

/* 1 when the coding named at s (length n, parameters after ';') is
 * accepted: q absent or above 0. */
static int coding_ok(const char *s, size_t n)
{
	const char *q = memchr(s, ';', n);
	if (!q)
		return 1;
	for (q++; q < s + n && (*q == ' ' || *q == '\t'); q++)
		;
	if (q + 2 > s + n || strncasecmp(q, "q=", 2) != 0)
		return 1;
	return strtod(q + 2, NULL) > 0;
}

int web_accepts_gzip(const char *ae)
{
	if (!ae)
		return 0;
	const char *p = ae;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		size_t n = strcspn(p, ",");
		size_t name = strcspn(p, ";, \t");
		if (((name == 4 && strncasecmp(p, "gzip", 4) == 0) || (name == 1 && p[0] == '*')) &&
		    coding_ok(p, n))
			return 1;
		p += n;
	}
	return 0;
}

char *web_inflate(const web_asset *a, size_t *len)
{
	/* the gzip trailer holds the plain size (mod 2^32; the files are small) */
	if (a->gz_len < 18)
		return NULL;
	const unsigned char *t = a->gz + a->gz_len - 4;
	size_t n = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		free(out);
		return NULL;
	}
	z.next_in = (unsigned char *)a->gz;
	z.avail_in = (uInt)a->gz_len;
	z.next_out = (unsigned char *)out;
	z.avail_out = (uInt)(n + 1);
	int rc = inflate(&z, Z_FINISH);
	int ok = rc == Z_STREAM_END && z.total_out == n;
	inflateEnd(&z);
	if (!ok) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	*len = n;
	return out;
}
