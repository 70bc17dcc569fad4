/*
 * classes.h - class names, the same everywhere (API.md, "Classes are names,
 * everywhere"): a list of names given at upload (CSV ?classes=, JSON
 * "classes"), the classes a model keeps after training on a data set, and
 * the relabelling of a validation or test set onto the training set's
 * classes by name, never by position.
 *
 * Pure functions of their arguments; the job's checks (handlers_jobs.c,
 * handlers_studies.c) and its run (the daemon) share them.
 */
#ifndef API_CLASSES_H
#define API_CLASSES_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "api_err.h"
#include "dataset_io.h"

#define API_MAX_CLASSES 65536
#define API_CLASS_NAME_MAX 256

/* A list of class names: NULL-free, distinct, non-empty UTF-8 of at most
 * API_CLASS_NAME_MAX bytes, at most API_MAX_CLASSES of them. */
typedef struct api_classes {
	char **names;
	int n;
} api_classes;

void api_classes_free(api_classes *c);           /* the contents; NULL ok */

/* From "a,b,c" (a query value). 0, or -1 with a field error on field. */
int api_classes_from_text(const char *text, const char *field, api_classes *out, api_err *e);
/* From a JSON array of strings; errors name field[i]. 0 or -1. */
int api_classes_from_json(const cJSON *a, const char *field, api_classes *out, api_err *e);
/* A JSON array of the names (NULL on no memory). */
cJSON *api_classes_json(char *const *names, int n);

/* 1 when names are exactly "0", "1", ..., "n-1" in order. */
int api_classes_are_indices(char *const *names, int n);

/*
 * The classes of a model with `outputs` outputs trained on a set whose
 * classes are names[0..n): the same names when n == outputs; "0" to
 * "outputs-1" when the names are the indices "0".."n-1" and outputs > n (the
 * data lack the top classes, as PyTorch allows). 0, or -1 when the two do
 * not fit (out is left empty), -2 on no memory.
 */
int api_classes_for_model(char *const *names, int n, int outputs, api_classes *out);

/*
 * The labels of d (a classification set) as indices into names[0..n),
 * matched by class name: a new array of d->rows entries. A class of d that
 * some row uses and that names lacks is a 422 on field naming the unknown
 * classes (classes no row uses do not count). *identity (may be NULL) is
 * set to 1 when every index stays the same. NULL with e set on failure.
 */
int32_t *api_classes_relabel(const api_dataset *d, char *const *names, int n, const char *field,
                             int *identity, api_err *e);

/* The names of a stored data-set object's "classes" as borrowed pointers
 * into doc (a malloc'd array the caller frees; NULL when none). */
char **api_classes_of_doc(const cJSON *doc, int *n);

#endif
