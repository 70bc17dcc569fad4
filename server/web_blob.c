/*
 * web_blob.c - the dashboard's files (clients/web/ with uPlot, each
 * gzip-compressed by the build into NND_WEB_DIR) embedded in the binary at
 * build time with the assembler's .incbin, as openapi_blob.c embeds the
 * OpenAPI document. Each file gives a start and an end symbol.
 */
#ifndef NND_WEB_DIR
#error "NND_WEB_DIR (the build's directory of gzip-compressed web files) is not set"
#endif

#define WEB_BLOB(sym, file)                                         \
	__asm__(".section .rodata\n"                                    \
	        ".global " #sym "\n"                                    \
	        ".global " #sym "_end\n"                                \
	        ".balign 16\n" #sym ":\n"                               \
	        ".incbin \"" NND_WEB_DIR "/" file "\"\n" #sym "_end:\n" \
	        ".previous\n")

WEB_BLOB(nnd_web_index_gz, "index.html.gz");
WEB_BLOB(nnd_web_app_js_gz, "app.js.gz");
WEB_BLOB(nnd_web_app_css_gz, "app.css.gz");
