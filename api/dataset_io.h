/*
 * dataset_io.h - data sets as uploaded: streaming readers for CSV, JSON and
 * IDX (MNIST's format, gzip or not), producing a matrix the engine can use.
 *
 * Readers are fed the body in pieces as it arrives (any split, down to one
 * byte) and keep only the parsed matrix plus a bounded buffer, so memory is
 * the data set's size plus a few MiB. The first error stops the reader and
 * names its line and column (CSV) or the part and byte (IDX).
 */
#ifndef API_DATASET_IO_H
#define API_DATASET_IO_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "nn.h"
#include "api_err.h"
#include "tabular.h"

/* A parsed data set. Owns every pointer. */
typedef struct api_dataset {
	nn_task task;
	int64_t rows;
	int features;
	int outputs;          /* classes for classification, targets per row for regression */
	float *x;             /* rows x features */
	int32_t *labels;      /* classification: class index per row */
	float *targets;       /* regression: rows x outputs */
	char **classes;       /* classification: n_classes sorted distinct labels */
	int n_classes;
	char **feature_names; /* features names ("x0", "x1", ... when the source has none) */
	int width, height, channels; /* image data sets (IDX), else 0 */
	/* When map is set, x and labels/targets point into this read-only
	 * mapping of the stored file (api_dataset_deserialize_mapped), which
	 * api_dataset_free unmaps instead of freeing them. */
	void *map;
	size_t map_len;
	int map_file;         /* 1: map is a read-only mapping of a file, whose
	                       * pages may be dropped and are read again (an
	                       * anonymous one would read back zeros) */
	/* Typed columns (CSV uploads): n_columns columns, and their raw values
	 * (tabular.h) in raw[rows x n_columns]. raw is NULL when x holds the
	 * raw values as they are (every column numeric, nothing missing).
	 * columns is NULL for data sets without typed columns (JSON, IDX, or
	 * stored before them). */
	api_column *columns;
	int n_columns;
	float *raw;
	int64_t skipped_rows; /* rows left out for a missing label */
	/* More fields for the data set object (a generated set's "generator"
	 * and "theory"), or NULL. Owned; not part of the stored matrix. */
	cJSON *extra;
} api_dataset;

void api_dataset_free(api_dataset *d);  /* frees the contents, not d; NULL ok */
/* The engine's borrowed view of d. */
nn_data api_dataset_view(const api_dataset *d);

/* ---- CSV (RFC 4180: quoted fields, "" escapes, CRLF or LF) */
typedef struct api_csv_opts {
	int header;           /* 1: the first line names the columns (default) */
	const char *label;    /* column name or 0-based index; NULL = last column */
	int task;             /* -1 auto, else an nn_task */
	int64_t max_bytes;    /* limit on the matrix in memory; 0 = none (413 past it) */
	const char *na;       /* comma-separated missing tokens; NULL = "NA,NaN,null,?"
	                       * (an empty field is always missing) */
	const char *ignore;   /* comma-separated column names or 0-based indices to leave out */
	int max_levels;       /* levels of a categorical column; 0 = 1000 (422 past it) */
	char **classes;       /* classes=: n_classes names fixing the classes and their
	                       * order (borrowed: they outlive the reader); NULL = none */
	int n_classes;
} api_csv_opts;

typedef struct api_csv api_csv;
api_csv *api_csv_new(const api_csv_opts *opts);
/* 0, or -1 with e set (400 "malformed_csv", detail "line L, column C: ..."). */
int api_csv_feed(api_csv *c, const char *buf, size_t len, api_err *e);
/* Ends the input and moves the result into *out. 0 or -1 with e set. */
int api_csv_finish(api_csv *c, api_dataset *out, api_err *e);
void api_csv_free(api_csv *c);

/* ---- JSON: {"name", "task", "x": [[...]], "y": [...]} (already parsed). */
int api_dataset_from_json(const cJSON *body, api_dataset *out, api_err *e);

/* ---- generated: {"name", "generator": {...}} (API.md, "Generated data
 * sets"). Fills out (regression, one target) and out->extra with the
 * generator as applied (defaults filled) and the theory's rate. 0 or -1
 * with every bad field in e (a field the function does not take is one). */
int api_dataset_from_generator(const cJSON *body, api_dataset *out, api_err *e);
int api_gen_spec_from_json(const cJSON *g, nn_gen_spec *out, api_err *e);
cJSON *api_gen_spec_to_json(const nn_gen_spec *s);

/* ---- IDX pair (images idx3 of uint8, labels idx1 of uint8), gzip detected
 * by its magic bytes. part: 0 images, 1 labels; parts may come in any order. */
typedef struct api_idx api_idx;
api_idx *api_idx_new(int64_t max_bytes);
int api_idx_feed(api_idx *r, int part, const char *buf, size_t len, api_err *e);
int api_idx_finish(api_idx *r, api_dataset *out, api_err *e);
void api_idx_free(api_idx *r);

/* ---- binary matrix file of a stored data set (the store writes the bytes):
 * "NNDDATA1", little-endian header, x, labels/targets, classes, names, CRC-32. */
int api_dataset_serialize(const api_dataset *d, void **buf, size_t *len);
/* The same bytes in four pieces, without a copy of the matrix: piece 0 the
 * header (owned), 1 x and 2 labels/targets (d's own arrays: d must outlive
 * the pieces), 3 the names and the CRC (owned). -1 when out of memory or
 * on a big-endian host (use api_dataset_serialize there). */
typedef struct api_dataset_pieces {
	const void *p[4];
	size_t len[4];
	void *head, *tail;    /* what pieces 0 and 3 point to */
} api_dataset_pieces;
int api_dataset_serialize_pieces(const api_dataset *d, api_dataset_pieces *out);
void api_dataset_pieces_release(api_dataset_pieces *pc);
int api_dataset_deserialize(const void *buf, size_t len, api_dataset *out, api_err *e);
/* The same checks, but x and labels/targets are not copied: they point into
 * map (len bytes from mmap, read-only), which out then owns (freed with
 * munmap by api_dataset_free) on success; on failure the caller keeps it. */
int api_dataset_deserialize_mapped(void *map, size_t len, api_dataset *out, api_err *e);

#endif
