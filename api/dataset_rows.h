/*
 * dataset_rows.h - a stored data set's rows as text, piece by piece, for
 * GET /v1/datasets/{id}/data (API.md): CSV (a header line, the label
 * column(s) last, labels by class name, raw values of typed columns with
 * level names, empty for missing) or JSON ({"x", "y", "classes",
 * "feature_names"}: raw values, level names as strings, null for missing,
 * y as class indices for classification).
 *
 * A writer is a cursor: each read fills the caller's buffer with the next
 * bytes, so a reply of any size is streamed with one row's text held.
 */
#ifndef API_DATASET_ROWS_H
#define API_DATASET_ROWS_H

#include <stddef.h>
#include <stdint.h>
#include "dataset_io.h"

typedef enum { API_ROWS_CSV, API_ROWS_JSON } api_rows_format;

typedef struct api_rows_writer api_rows_writer;

/* Rows [offset, offset + limit) of d (limit < 0: to the end; past the end:
 * none); label: the CSV header of a single label column (NULL: "label").
 * d and label are borrowed and must outlive the writer. NULL on no memory. */
api_rows_writer *api_rows_writer_new(const api_dataset *d, int64_t offset, int64_t limit,
                                     api_rows_format fmt, const char *label);
/* Up to cap (>= 1) next bytes into buf; 0 once everything was given, -1
 * on no memory. */
long api_rows_writer_read(api_rows_writer *w, char *buf, size_t cap);
void api_rows_writer_free(api_rows_writer *w);      /* NULL ok */

#endif
