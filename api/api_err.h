/*
 * api_err.h - errors as the API reports them: an HTTP status, a snake_case
 * code, a detail sentence, and for validation failures every bad field by its
 * JSON path. Rendered as application/problem+json (RFC 9457) by api_problem_json.
 */
#ifndef API_ERR_H
#define API_ERR_H

#include <stddef.h>

#define API_MAX_FIELD_ERRORS 32

typedef struct api_field_err {
	char field[128];    /* JSON path: "layers[1].units", "optimizer.lr" */
	char message[200];  /* "must be a positive integer" */
} api_field_err;

typedef struct api_err {
	int status;                 /* 400, 404, 409, 413, 415, 422, ... */
	char code[48];              /* "validation_failed", "malformed_csv", ... */
	char detail[512];
	int n_fields;
	api_field_err fields[API_MAX_FIELD_ERRORS];
} api_err;

#define API_ERR_INIT { 0, "", "", 0, {{"", ""}} }

/* Sets status, code and a formatted detail (keeps field errors). Returns -1. */
int api_err_set(api_err *e, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Adds a field error (status 422, code "validation_failed" when unset).
 * Past API_MAX_FIELD_ERRORS further fields are dropped. Returns -1. */
int api_err_field(api_err *e, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The problem+json body for e (malloc'd NUL-terminated string; caller frees).
 * type is "/errors/<code>", title the status's reason phrase. */
char *api_problem_json(const api_err *e);

/* The standard reason phrase for an HTTP status ("Unprocessable Content"). */
const char *api_status_title(int status);

#endif
