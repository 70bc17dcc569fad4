/*
 * fuzz_csv_typed.c - libFuzzer target for typed CSV columns (api/csv.c,
 * api/tabular.c).
 *
 * Input: byte 0 picks the options (missing tokens, ignored columns,
 * max_levels, a memory limit); bytes 1..4 seed the piece lengths; the rest
 * is the CSV body. Both readings (in pieces and whole) must agree; an
 * accepted data set must hold together: the encoding of its columns is as
 * wide as its features, its raw matrix re-encodes to x exactly, every level
 * index is in range, levels are sorted, and the stored file reads back with
 * the same columns and raw values.
 */
#include "fuzz_common.h"
#include "tabular.h"

static const char *const nas[] = { NULL, "", "-,NA", "x" };
static const char *const ignores[] = { NULL, "0", "a,b", "nope" };

/* The typed columns of d hold together. */
static void check_columns(const api_dataset *d)
{
	FUZZ_ASSERT(d->columns != NULL && d->n_columns > 0);
	const float *raw = d->raw ? d->raw : d->x;
	for (int j = 0; j < d->n_columns; j++) {
		const api_column *c = &d->columns[j];
		FUZZ_ASSERT(c->missing >= 0 && c->missing <= d->rows);
		for (int l = 1; l < c->n_levels; l++)
			FUZZ_ASSERT(strcmp(c->levels[l - 1], c->levels[l]) < 0);
		for (int64_t i = 0; i < d->rows; i++) {
			float v = raw[i * d->n_columns + j];
			if (c->type == API_COL_CATEGORICAL && !isnan(v))
				FUZZ_ASSERT(v >= 0 && v < (float)c->n_levels && v == floorf(v));
			if (c->type == API_COL_EMPTY)
				FUZZ_ASSERT(isnan(v));
		}
	}
	api_tab_enc enc;
	FUZZ_ASSERT(api_tab_enc_from_dataset(d, NULL, 0, &enc) == 0);
	FUZZ_ASSERT(enc.width == d->features);
	float *x = NULL;
	api_err e = API_ERR_INIT;
	FUZZ_ASSERT(api_tab_encode_dataset(&enc, d, "dataset", &x, &e) == 0);
	size_t nx = (size_t)d->rows * (size_t)d->features;
	FUZZ_ASSERT(nx == 0 || memcmp(x, d->x, nx * 4) == 0);
	free(x);
	api_tab_enc_free(&enc);
	/* the stored file keeps them */
	void *buf;
	size_t len;
	FUZZ_ASSERT(api_dataset_serialize(d, &buf, &len) == 0);
	api_dataset back;
	FUZZ_ASSERT(api_dataset_deserialize(buf, len, &back, &e) == 0);
	FUZZ_ASSERT(back.n_columns == d->n_columns && back.skipped_rows == d->skipped_rows);
	FUZZ_ASSERT((back.raw == NULL) == (d->raw == NULL));
	if (d->raw)
		FUZZ_ASSERT(memcmp(back.raw, d->raw, (size_t)d->rows * (size_t)d->n_columns * 4) == 0);
	for (int j = 0; j < d->n_columns; j++)
		FUZZ_ASSERT(back.columns[j].n_levels == d->columns[j].n_levels &&
		            back.columns[j].type == d->columns[j].type);
	api_dataset_free(&back);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	uint8_t o = data[0];
	api_csv_opts opts = { .header = 1, .task = -1 };
	opts.na = nas[o & 3];
	opts.ignore = ignores[(o >> 2) & 3];
	opts.max_levels = (o & 0x10) ? 3 : 0;
	opts.max_bytes = (o & 0x20) ? 4096 : 0;
	fuzz_splitter sp = fuzz_splitter_of(data + 1, 4);
	const char *body = (const char *)data + 5;
	size_t left = size - 5;

	api_err e = API_ERR_INIT, e1 = API_ERR_INIT;
	api_dataset d, whole;
	int rc = fuzz_read_csv(&opts, body, left, &sp, &d, &e);
	int rc1 = fuzz_read_csv(&opts, body, left, NULL, &whole, &e1);
	FUZZ_ASSERT(rc == rc1);
	if (rc == 0) {
		fuzz_check_dataset(&d, 1);
		fuzz_same_dataset(&d, &whole);
		check_columns(&d);
	} else {
		FUZZ_ASSERT(e.status >= 400 && e.status < 500 && e.code[0] != '\0');
		FUZZ_ASSERT(e.status == e1.status && strcmp(e.detail, e1.detail) == 0);
	}
	api_dataset_free(&d);
	api_dataset_free(&whole);
	return 0;
}
