/*
 * dataset_util.h - pieces shared by the data-set readers (csv.c, idx.c,
 * dataset_json.c) and kept out of the public dataset_io.h: the label set that turns label strings into sorted classes, and the
 * rule that picks the task when the caller gave none.
 */
#ifndef API_DATASET_UTIL_H
#define API_DATASET_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include "numtext.h"   /* api_parse_float, api_parse_double */

/* 1 when s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF), else 0. */
int api_utf8_valid(const char *s, size_t len);

/* Duplicates s[0..len) as a NUL-terminated string (NULL on no memory). */
char *api_strndup(const char *s, size_t len);

/*
 * A set of distinct label strings. Each add returns the label's provisional
 * id (the order of first appearance); finish sorts the labels into classes
 * and gives remap[provisional id] = class index.
 * Sorting: when every label is a number, numerically (labels with the same
 * value are one class; integral values are named by their integer text, e.g.
 * "1.0" -> "1"); otherwise by bytes (strcmp).
 */
typedef struct api_labelset api_labelset;
api_labelset *api_labelset_new(void);
/* The provisional id (>= 0), or -1 when out of memory. */
int32_t api_labelset_add(api_labelset *ls, const char *s, size_t len);
int32_t api_labelset_count(const api_labelset *ls);
/* The label of provisional id (0 <= id < count), NUL-terminated. */
const char *api_labelset_str(const api_labelset *ls, int32_t id);
/* The bytes held by the set (for memory limits). */
size_t api_labelset_bytes(const api_labelset *ls);
/* 1 when every label is a finite number, 2 when moreover every one is an
 * integer, 0 otherwise. */
int api_labelset_numeric(const api_labelset *ls);
/* Fills *classes (malloc'd array of malloc'd strings, owned by the caller),
 * *n_classes and *remap (malloc'd, count() entries). 0, or -1 on no memory. */
int api_labelset_finish(api_labelset *ls, char ***classes, int *n_classes, int32_t **remap);
void api_labelset_free(api_labelset *ls);

/* Frees an array of n malloc'd strings and the array; NULL ok. */
void api_strv_free(char **v, int n);

#endif
