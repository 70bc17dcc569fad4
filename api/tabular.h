/*
 * tabular.h - typed columns of tabular data (numeric, categorical, empty)
 * and the encoding that turns raw values into the inputs a network sees
 * (API.md, "Tabular columns: categories and missing values").
 *
 * A raw value is one float per column: the number for a numeric column, the
 * level's index (0-based, in level order) for a categorical one, NaN for a
 * missing value. The encoding gives, column by column: a numeric column one
 * input (missing -> the imputation mean), a categorical one input per level
 * (one-hot; an unknown or missing level -> all zeros), and, when the column
 * has an indicator, one more input that is 1 for a missing value. An empty
 * column gives no input.
 *
 * Everything here is a pure function of its arguments: the CSV reader, the
 * job (training split means, validation and test sets) and the prediction
 * path (raw records) all share it.
 */
#ifndef API_TABULAR_H
#define API_TABULAR_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "api_err.h"

struct api_dataset;

typedef enum { API_COL_NUMERIC, API_COL_CATEGORICAL, API_COL_EMPTY } api_col_type;

/* A typed column of a data set as uploaded. Owns its strings. */
typedef struct api_column {
	char *name;
	api_col_type type;
	char **levels;        /* categorical: n_levels names, sorted bytewise */
	int n_levels;
	int64_t missing;      /* rows without a value */
	double mean, std;     /* numeric: over the values present (population std) */
} api_column;

void api_columns_free(api_column *c, int n);    /* NULL ok */
int api_columns_copy(const api_column *src, int n, api_column **out); /* 0 or -1 */
const char *api_col_type_name(api_col_type t);
/* The "columns" array of the data set object. */
cJSON *api_columns_json(const api_column *c, int n);

/* One column of an encoding. */
typedef struct api_tab_col {
	char *name;
	api_col_type type;
	char **levels;        /* categorical, sorted bytewise (bsearch) */
	int n_levels;
	int indicator;        /* 1: a missing-indicator input follows */
	float impute;         /* numeric: the value of a missing number */
	int offset;           /* index of its first input */
} api_tab_col;

/* An encoding: width = inputs given by all columns. Owns everything. */
typedef struct api_tab_enc {
	api_tab_col *cols;
	int n;
	int width;
} api_tab_enc;

void api_tab_enc_free(api_tab_enc *enc);        /* the contents; NULL ok */

/*
 * The encoding of d's columns (d->columns, raw values in d->raw, or d->x
 * when d->raw is NULL): indicators for columns with missing values anywhere
 * in d, imputation means over rows[0..n) only (all rows when rows is NULL;
 * 0 when none of them has a value). 0, or -1 on no memory.
 */
int api_tab_enc_from_dataset(const struct api_dataset *d, const int64_t *rows, int64_t n,
                             api_tab_enc *out);

/*
 * Replaces d->x (the raw values of d->columns, one per column) by its
 * encoding with means over all rows, keeping the raw values in d->raw and
 * naming the inputs in d->feature_names. max_bytes (0 = none): the raw and
 * encoded matrices together; past it a 413. 0 or -1 with e set.
 */
int api_tab_encode_in_place(struct api_dataset *d, int64_t max_bytes, api_err *e);

/*
 * Numeric columns with holes (NaN in d->x, every column a number): types
 * d's columns (numeric, or empty when all missing; missing counts, means,
 * population stds) and, when any value is missing, encodes d in place as
 * above. JSON uploads with null in x use it. 0 or -1 with e set.
 */
int api_tab_type_numeric(struct api_dataset *d, int64_t max_bytes, api_err *e);

/* The input names: "col", "col=level", "col:missing"; width strings (malloc'd). */
char **api_tab_enc_names(const api_tab_enc *enc);

/* 1 per input that standardisation leaves alone (one-hot, indicator), else
 * 0; width bytes, malloc'd (NULL on no memory). */
uint8_t *api_tab_enc_passthrough(const api_tab_enc *enc);

/* Encodes one raw row (enc->n values) into out[enc->width]. */
void api_tab_encode_row(const api_tab_enc *enc, const float *raw, float *out);

/*
 * Encodes data set d with enc, matching columns by name: a column of enc
 * that d lacks is all missing, a column of d that enc lacks is ignored, a
 * level enc lacks encodes as zeros, numbers of d in a categorical column
 * of enc are levels by their text, and a categorical column of d where enc
 * has a numeric one is a 422 naming field and the column.
 * d without columns (a JSON upload, or stored before typed columns) must
 * have width features and is copied as is. *x: rows x width, malloc'd.
 */
int api_tab_encode_dataset(const api_tab_enc *enc, const struct api_dataset *d,
                           const char *field, float **x, api_err *e);

/* JSON form kept with a model: [{"name", "type", "levels", "indicator",
 * "impute", "inputs"}]. */
cJSON *api_tab_enc_to_json(const api_tab_enc *enc);
int api_tab_enc_from_json(const cJSON *a, api_tab_enc *out, api_err *e);

/*
 * A raw record of a prediction: an object by column name (a missing key or
 * null is missing; unknown keys are ignored with a warning) or an array of
 * enc->n raw values in column order (strings, numbers, null). Writes
 * enc->width inputs to out. Warnings ({"row", "column", "message"}) go to
 * warnings (may be NULL). A value of the wrong kind is a 422 naming
 * "instances[row].column". 0 or -1.
 */
int api_tab_encode_record(const api_tab_enc *enc, const cJSON *rec, int64_t row, float *out,
                          cJSON *warnings, api_err *e);

/*
 * What a training job needs from typed columns. With train->columns: enc is
 * the encoding with means over tr_rows[0..n_tr) (the training split); x
 * the training set encoded with it (NULL when its own x is that already:
 * every column numeric and complete); std_skip the one-hot and indicator
 * inputs (NULL when none); val_x and test_x the validation and test sets
 * (when they have typed columns) encoded by column name (a 422 naming
 * validation.dataset or test.dataset on a column of the wrong kind). Without train->columns everything stays zero. 0 or -1.
 */
typedef struct api_tab_train {
	api_tab_enc enc;
	float *x, *val_x, *test_x;
	uint8_t *std_skip;
} api_tab_train;
int api_tab_train_prepare(const struct api_dataset *train, const struct api_dataset *val,
                          const struct api_dataset *test, const int64_t *tr_rows, int64_t n_tr,
                          api_tab_train *out, api_err *e);
void api_tab_train_release(api_tab_train *t);

/*
 * A model's label metadata as stored (the store's "classes" text): before
 * typed columns a JSON array of class names; with them an object
 * {"classes": [...] or null, "columns": [encoding]}. meta_make builds the
 * text (malloc'd; classes_json may be NULL); meta_parse gives borrowed
 * items of a parsed text (either NULL when absent).
 */
char *api_tab_meta_make(const char *classes_json, const api_tab_enc *enc);
void api_tab_meta_parse(const cJSON *meta, const cJSON **classes, const cJSON **columns);

/* 1 when enc's inputs are its columns as they are (every column numeric,
 * no indicator): numeric rows need no encoding then. */
int api_tab_enc_plain(const api_tab_enc *enc);

/* The "instances" of a prediction as raw records (api_tab_encode_record):
 * 1 to max_rows of them; *rows x enc->width inputs (malloc'd), or NULL
 * with e set (every bad record named, up to the error limit). */
float *api_tab_read_instances(const api_tab_enc *enc, const cJSON *inst, int max_rows,
                              int *rows, cJSON *warnings, api_err *e);

/* Checks the "columns" of a validation or test data set's object (other)
 * against the training set's (train), by name: a column that is
 * categorical in other but numeric in train is a 422 field error naming
 * field and the column. Returns the number of errors added. */
int api_tab_columns_check(const cJSON *train, const cJSON *other, const char *field,
                          api_err *e);

/* The level index of s in a sorted level list, or -1. */
int api_tab_level(char *const *levels, int n, const char *s);

/* The name a number gets as a level: its shortest text that reads back as
 * the same float ("7", "2.5", "1e+20"). buf: at least 32 bytes. */
void api_tab_number_text(float v, char *buf, size_t cap);

#endif
