/*
 * api_err.c - building API errors and rendering them as problem+json.
 *
 * Validators collect every bad field into one api_err so a client sees all of
 * its mistakes at once; the handlers turn the api_err into the RFC 9457 body.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "api_err.h"

/* Copies at most cap-1 bytes of s into dst, always NUL-terminated, without
 * cutting a UTF-8 sequence in half. */
static void copy_trunc(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static void vformat(char *dst, size_t cap, const char *fmt, va_list ap)
{
	char tmp[1024];
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	copy_trunc(dst, cap, tmp);
}

int api_err_set(api_err *e, int status, const char *code, const char *fmt, ...)
{
	if (!e)
		return -1;
	e->status = status;
	copy_trunc(e->code, sizeof e->code, code ? code : "error");
	va_list ap;
	va_start(ap, fmt);
	vformat(e->detail, sizeof e->detail, fmt, ap);
	va_end(ap);
	return -1;
}

int api_err_field(api_err *e, const char *field, const char *fmt, ...)
{
	if (!e)
		return -1;
	if (e->status == 0)
		e->status = 422;
	if (e->code[0] == '\0')
		copy_trunc(e->code, sizeof e->code, "validation_failed");
	if (e->detail[0] == '\0')
		copy_trunc(e->detail, sizeof e->detail, "the request has invalid fields");
	if (e->n_fields < 0)
		e->n_fields = 0;
	if (e->n_fields >= API_MAX_FIELD_ERRORS)
		return -1;
	api_field_err *f = &e->fields[e->n_fields++];
	copy_trunc(f->field, sizeof f->field, field ? field : "");
	va_list ap;
	va_start(ap, fmt);
	vformat(f->message, sizeof f->message, fmt, ap);
	va_end(ap);
	return -1;
}

const char *api_status_title(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 507: return "Insufficient Storage";
	default: return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "Unknown";
	}
}

char *api_problem_json(const api_err *e)
{
	int status = e && e->status ? e->status : 500;
	const char *code = e && e->code[0] ? e->code : "internal_error";
	char type[64];
	snprintf(type, sizeof type, "/errors/%s", code);

	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	int ok = cJSON_AddStringToObject(o, "type", type) &&
		cJSON_AddStringToObject(o, "title", api_status_title(status)) &&
		cJSON_AddNumberToObject(o, "status", status) &&
		cJSON_AddStringToObject(o, "detail", e && e->detail[0] ? e->detail : api_status_title(status)) &&
		cJSON_AddStringToObject(o, "code", code);
	if (ok && e && e->n_fields > 0) {
		cJSON *arr = cJSON_AddArrayToObject(o, "errors");
		int n = e->n_fields < API_MAX_FIELD_ERRORS ? e->n_fields : API_MAX_FIELD_ERRORS;
		for (int i = 0; ok && arr && i < n; i++) {
			cJSON *f = cJSON_CreateObject();
			if (!f || !cJSON_AddItemToArray(arr, f)) {
				cJSON_Delete(f);
				ok = 0;
				break;
			}
			ok = cJSON_AddStringToObject(f, "field", e->fields[i].field) &&
				cJSON_AddStringToObject(f, "message", e->fields[i].message);
		}
		if (!arr)
			ok = 0;
	}
	char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return s;
}
