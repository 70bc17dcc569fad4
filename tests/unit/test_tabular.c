/*
 * test_tabular.c - typed CSV columns (api/csv.c) and their encoding
 * (api/tabular.c) against values computed by hand: column types, sorted
 * levels, missing counts, means, skipped rows, the one-hot and indicator
 * layout, imputation from chosen rows only, data sets matched by column
 * name, and raw prediction records.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dataset_io.h"
#include "dataset_util.h"
#include "tabular.h"
#include "check_main.h"

/* Parses s whole and byte by byte; both must agree (x, raw, columns). */
static int parse_o(const char *s, const api_csv_opts *o, api_dataset *d, api_err *e)
{
	int r = -1;
	for (int way = 0; way < 2; way++) {
		api_csv *c = api_csv_new(o);
		ck_assert_ptr_nonnull(c);
		api_dataset t;
		memset(&t, 0, sizeof t);
		api_err te = API_ERR_INIT;
		size_t len = strlen(s);
		int rc = 0;
		for (size_t off = 0; off < len && rc == 0; off += way ? 1 : len)
			rc = api_csv_feed(c, s + off, way ? 1 : len, &te);
		if (rc == 0)
			rc = api_csv_finish(c, &t, &te);
		api_csv_free(c);
		if (way == 0) {
			r = rc;
			*d = t;
			*e = te;
			continue;
		}
		ck_assert_int_eq(rc, r);
		if (rc != 0) {
			ck_assert_str_eq(te.detail, e->detail);
			continue;
		}
		ck_assert_int_eq(t.features, d->features);
		ck_assert_int_eq(t.n_columns, d->n_columns);
		ck_assert_int_eq(memcmp(t.x, d->x, (size_t)d->rows * d->features * 4), 0);
		if (d->raw)
			ck_assert_int_eq(memcmp(t.raw, d->raw, (size_t)d->rows * d->n_columns * 4), 0);
		api_dataset_free(&t);
	}
	return r;
}

static int parse(const char *s, api_dataset *d, api_err *e)
{
	api_csv_opts o = { .header = 1, .task = -1 };
	return parse_o(s, &o, d, e);
}

static void expect_row(const api_dataset *d, int64_t r, const float *want)
{
	for (int j = 0; j < d->features; j++)
		ck_assert_msg(d->x[r * d->features + j] == want[j], "row %lld input %d: %g, want %g",
		              (long long)r, j, (double)d->x[r * d->features + j], (double)want[j]);
}

START_TEST(test_typed_columns_levels_missing_and_encoding)
{
	api_dataset d;
	api_err e;
	const char *s = "num,cat,y\n1,b,0\n,a,1\nNA,b,0\n4,?,1\n5,a,NA\nnull,NaN,\n";
	ck_assert_int_eq(parse(s, &d, &e), 0);
	ck_assert_int_eq(d.rows, 4);
	ck_assert_int_eq(d.skipped_rows, 2);
	ck_assert_int_eq(d.n_columns, 2);
	ck_assert_str_eq(d.columns[0].name, "num");
	ck_assert_int_eq(d.columns[0].type, API_COL_NUMERIC);
	ck_assert_int_eq(d.columns[0].missing, 2);
	ck_assert(d.columns[0].mean == 2.5);
	ck_assert(d.columns[0].std == 1.5);
	ck_assert_int_eq(d.columns[1].type, API_COL_CATEGORICAL);
	ck_assert_int_eq(d.columns[1].missing, 1);
	ck_assert_int_eq(d.columns[1].n_levels, 2);  /* "a" of the skipped row counts once */
	ck_assert_str_eq(d.columns[1].levels[0], "a");
	ck_assert_str_eq(d.columns[1].levels[1], "b");
	/* num, num:missing, cat=a, cat=b, cat:missing */
	ck_assert_int_eq(d.features, 5);
	const char *names[] = { "num", "num:missing", "cat=a", "cat=b", "cat:missing" };
	for (int j = 0; j < 5; j++)
		ck_assert_str_eq(d.feature_names[j], names[j]);
	expect_row(&d, 0, (float[]){ 1, 0, 0, 1, 0 });
	expect_row(&d, 1, (float[]){ 2.5f, 1, 1, 0, 0 });
	expect_row(&d, 2, (float[]){ 2.5f, 1, 0, 1, 0 });
	expect_row(&d, 3, (float[]){ 4, 0, 0, 0, 1 });
	/* raw values: numbers, level indices, NaN */
	ck_assert(d.raw[0] == 1 && d.raw[1] == 1);
	ck_assert(isnan(d.raw[2]) && d.raw[3] == 0);
	ck_assert(d.raw[6] == 4 && isnan(d.raw[7]));
	ck_assert_int_eq(d.labels[0], 0);
	ck_assert_int_eq(d.labels[3], 1);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_plain_numeric_file_encodes_as_before)
{
	api_dataset d;
	api_err e;
	ck_assert_int_eq(parse("a,b,y\n1,2,0\n3,5,1\n", &d, &e), 0);
	ck_assert_int_eq(d.features, 2);
	ck_assert_ptr_null(d.raw);
	ck_assert_int_eq(d.n_columns, 2);
	ck_assert_int_eq(d.columns[1].type, API_COL_NUMERIC);
	ck_assert(d.columns[1].mean == 3.5);
	ck_assert(d.columns[1].std == 1.5);
	ck_assert_str_eq(d.feature_names[1], "b");
	expect_row(&d, 1, (float[]){ 3, 5 });
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_stray_word_makes_a_column_categorical)
{
	api_dataset d;
	api_err e;
	/* numbers before the word become levels by their shortest text; 1.0 is 1 */
	ck_assert_int_eq(parse("n,y\n1,0\n2.50,1\nabc,0\n1.0,1\n007,0\n", &d, &e), 0);
	ck_assert_int_eq(d.columns[0].type, API_COL_CATEGORICAL);
	ck_assert_int_eq(d.columns[0].n_levels, 4);
	const char *lv[] = { "1", "2.5", "7", "abc" };
	for (int i = 0; i < 4; i++)
		ck_assert_str_eq(d.columns[0].levels[i], lv[i]);
	ck_assert_int_eq(d.features, 4);
	expect_row(&d, 0, (float[]){ 1, 0, 0, 0 });
	expect_row(&d, 2, (float[]){ 0, 0, 0, 1 });
	expect_row(&d, 3, (float[]){ 1, 0, 0, 0 });
	expect_row(&d, 4, (float[]){ 0, 0, 1, 0 });
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_empty_column_single_level_quotes_crlf_bom)
{
	api_dataset d;
	api_err e;
	const char *s = "\xEF\xBB\xBF" "e,city,one,v,y\r\n,\"Paris, FR\",k,1,0\r\nNA,\"Rome, IT\",k,2,1\r\n";
	ck_assert_int_eq(parse(s, &d, &e), 0);
	ck_assert_int_eq(d.columns[0].type, API_COL_EMPTY);
	ck_assert_int_eq(d.columns[0].missing, 2);
	ck_assert_str_eq(d.columns[1].levels[0], "Paris, FR");
	ck_assert_str_eq(d.columns[1].levels[1], "Rome, IT");
	ck_assert_int_eq(d.columns[2].n_levels, 1);
	/* city=Paris, FR; city=Rome, IT; one=k; v */
	ck_assert_int_eq(d.features, 4);
	ck_assert_str_eq(d.feature_names[0], "city=Paris, FR");
	expect_row(&d, 1, (float[]){ 0, 1, 1, 2 });
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_na_ignore_and_max_levels_options)
{
	api_dataset d;
	api_err e;
	api_csv_opts o = { .header = 1, .task = -1, .na = "-,missing", .ignore = "id,2" };
	ck_assert_int_eq(parse_o("id,a,note,y\n1,-,hi,0\n2,3,x,1\n3,NA,z,missing\n", &o, &d, &e), 0);
	ck_assert_int_eq(d.n_columns, 1);
	ck_assert_str_eq(d.columns[0].name, "a");
	ck_assert_int_eq(d.skipped_rows, 1);
	/* NA is a level now: a is categorical with the level "3" and "NA" */
	ck_assert_int_eq(d.columns[0].type, API_COL_CATEGORICAL);
	ck_assert_int_eq(d.columns[0].n_levels, 1);
	ck_assert_int_eq(d.columns[0].missing, 1);
	api_dataset_free(&d);

	api_csv_opts o2 = { .header = 1, .task = -1, .max_levels = 2 };
	ck_assert_int_eq(parse_o("c,y\na,0\nb,1\nc,0\n", &o2, &d, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.fields[0].field, "max_levels");
	ck_assert_ptr_nonnull(strstr(e.detail, "column 'c'"));
	api_csv_opts o3 = { .header = 1, .task = -1, .ignore = "nope" };
	ck_assert_int_eq(parse_o("c,y\na,0\n", &o3, &d, &e), -1);
	ck_assert_str_eq(e.fields[0].field, "ignore");
	api_csv_opts o4 = { .header = 1, .task = -1, .ignore = "y" };
	ck_assert_int_eq(parse_o("c,y\na,0\n", &o4, &d, &e), -1);
	ck_assert_str_eq(e.fields[0].field, "ignore");
}
END_TEST

START_TEST(test_thousands_of_levels_is_a_422)
{
	size_t cap = 64 * 1024;
	char *s = malloc(cap);
	size_t n = (size_t)snprintf(s, cap, "id,y\n");
	for (int i = 0; i < 1500; i++)
		n += (size_t)snprintf(s + n, cap - n, "u%d,%d\n", i, i % 2);
	api_dataset d;
	api_err e;
	ck_assert_int_eq(parse(s, &d, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.detail, "column 'id' has more than 1000 levels");
	free(s);
}
END_TEST

/* The encoding: imputation from chosen rows, by-name matching. */
START_TEST(test_imputation_from_training_rows_only)
{
	api_dataset d;
	api_err e;
	ck_assert_int_eq(parse("n,c,y\n1,a,0\n,b,1\n3,a,0\n10,b,1\n", &d, &e), 0);
	api_tab_enc enc;
	int64_t rows[] = { 0, 1, 2 };  /* the training split: 10 is left out */
	ck_assert_int_eq(api_tab_enc_from_dataset(&d, rows, 3, &enc), 0);
	ck_assert_int_eq(enc.width, 4);
	ck_assert(enc.cols[0].impute == 2.0f);   /* (1 + 3) / 2 */
	ck_assert_int_eq(enc.cols[0].indicator, 1);
	ck_assert_int_eq(enc.cols[1].indicator, 0);
	float *x;
	ck_assert_int_eq(api_tab_encode_dataset(&enc, &d, "dataset", &x, &e), 0);
	float want[] = { 2, 1, 0, 1 };
	for (int j = 0; j < 4; j++)
		ck_assert(x[4 + j] == want[j]);
	free(x);
	uint8_t *pass = api_tab_enc_passthrough(&enc);
	ck_assert(pass[0] == 0 && pass[1] == 1 && pass[2] == 1 && pass[3] == 1);
	free(pass);
	/* the JSON form keeps it */
	cJSON *j = api_tab_enc_to_json(&enc);
	api_tab_enc back;
	ck_assert_int_eq(api_tab_enc_from_json(j, &back, &e), 0);
	ck_assert_int_eq(back.width, 4);
	ck_assert(back.cols[0].impute == 2.0f);
	ck_assert_str_eq(back.cols[1].levels[1], "b");
	cJSON_Delete(j);
	api_tab_enc_free(&back);

	/* a validation set: columns in another order, an unknown level, an
	 * extra column, and text where the training set has numbers */
	api_dataset v;
	ck_assert_int_eq(parse("extra,c,n,y\n1,z,5,0\n2,b,,1\n", &v, &e), 0);
	ck_assert_int_eq(api_tab_encode_dataset(&enc, &v, "validation.dataset", &x, &e), 0);
	float want_v[] = { 5, 0, 0, 0, 2, 1, 0, 1 };
	for (int j = 0; j < 8; j++)
		ck_assert_msg(x[j] == want_v[j], "input %d: %g", j, (double)x[j]);
	free(x);
	api_dataset_free(&v);
	ck_assert_int_eq(parse("c,n,y\nb,oops,0\n", &v, &e), 0);
	ck_assert_int_eq(api_tab_encode_dataset(&enc, &v, "validation.dataset", &x, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.fields[0].field, "validation.dataset");
	ck_assert_ptr_nonnull(strstr(e.fields[0].message, "column 'n'"));
	api_dataset_free(&v);
	api_tab_enc_free(&enc);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_raw_records_objects_and_arrays)
{
	api_dataset d;
	api_err e;
	ck_assert_int_eq(parse("n,c,y\n1,a,0\n,b,1\n3,a,0\n", &d, &e), 0);
	api_tab_enc enc;
	ck_assert_int_eq(api_tab_enc_from_dataset(&d, NULL, 0, &enc), 0);
	float out[4];
	cJSON *w = cJSON_CreateArray();
	cJSON *r = cJSON_Parse("{\"c\":\"b\",\"n\":7,\"zzz\":1}");
	ck_assert_int_eq(api_tab_encode_record(&enc, r, 0, out, w, &e), 0);
	ck_assert(out[0] == 7 && out[1] == 0 && out[2] == 0 && out[3] == 1);
	ck_assert_int_eq(cJSON_GetArraySize(w), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "column")->valuestring, "zzz");
	cJSON_Delete(r);
	r = cJSON_Parse("[null, \"q\"]");
	ck_assert_int_eq(api_tab_encode_record(&enc, r, 1, out, w, &e), 0);
	ck_assert(out[0] == 2 && out[1] == 1 && out[2] == 0 && out[3] == 0);
	ck_assert_int_eq(cJSON_GetArraySize(w), 2);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 1), "row")->valueint, 1);
	cJSON_Delete(r);
	r = cJSON_Parse("{\"n\":\"x\"}");
	ck_assert_int_eq(api_tab_encode_record(&enc, r, 3, out, w, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.fields[0].field, "instances[3].n");
	cJSON_Delete(r);
	cJSON_Delete(w);
	api_tab_enc_free(&enc);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_stored_file_keeps_columns_and_raw)
{
	api_dataset d, back;
	api_err e;
	ck_assert_int_eq(parse("n,c,y\n1,a,0\n,b,1\n3,a,0\n", &d, &e), 0);
	void *buf;
	size_t len;
	ck_assert_int_eq(api_dataset_serialize(&d, &buf, &len), 0);
	ck_assert_int_eq(api_dataset_deserialize(buf, len, &back, &e), 0);
	ck_assert_int_eq(back.n_columns, 2);
	ck_assert_int_eq(back.columns[0].missing, 1);
	ck_assert_str_eq(back.columns[1].levels[1], "b");
	ck_assert(back.columns[0].mean == 2.0);
	ck_assert_int_eq(memcmp(back.raw, d.raw, (size_t)d.rows * 2 * 4), 0);
	api_dataset_free(&back);
	/* the pieces give the same bytes */
	api_dataset_pieces pc;
	ck_assert_int_eq(api_dataset_serialize_pieces(&d, &pc), 0);
	size_t off = 0;
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(memcmp((char *)buf + off, pc.p[i], pc.len[i]), 0);
		off += pc.len[i];
	}
	ck_assert_int_eq(off, len);
	api_dataset_pieces_release(&pc);
	free(buf);
	api_dataset_free(&d);
}
END_TEST


/* Mean, population std and missing count of a column, in double, values
 * in row order (NaN: missing), as a reader that kept them would compute. */
static void column_want(const double *v, int n, double *mean, double *sd, int *missing)
{
	double sum = 0, sq = 0;
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (isnan(v[i]))
			continue;
		sum += v[i];
		sq += v[i] * v[i];
		k++;
	}
	*missing = n - k;
	*mean = sum / k;
	double var = sq / k - *mean * *mean;
	*sd = var > 0 ? sqrt(var) : 0;
}

/* 203 kept rows (the reader adds its sums 64 rows at a time: three blocks
 * and a rest), five numeric columns (four at a time and one alone), holes
 * only after the first blocks (b), a row skipped for its missing label, and
 * a column that turns categorical at row 130 (w): each column's mean and std are
 * those of one pass in double over its values, to the bit, whole or fed a
 * byte at a time. */
START_TEST(test_column_sums_across_blocks_holes_and_late_words)
{
	enum { ROWS = 204, F = 6 };
	static double want[F - 1][ROWS];
	size_t cap = 64 << 10, len = 0;
	char *csv = malloc(cap);
	ck_assert_ptr_nonnull(csv);
	len += (size_t)snprintf(csv + len, cap - len, "a,b,c,d,e,w,y\n");
	int kept = 0;
	for (int i = 0; i < ROWS; i++) {
		double a = i * 0.37 - 20, b = (i % 17) * 1.5, c = 1000 + i, d = -i * i * 0.001;
		double e = i % 3 ? 2.25 : -7.5, w = i * 0.5;
		int skip = i == 100;  /* no label: not a row */
		int hole = i == 150 || i == 170;
		char bt[32], wt[32];
		snprintf(bt, sizeof bt, "%.17g", b);
		snprintf(wt, sizeof wt, "%.17g", w);
		len += (size_t)snprintf(csv + len, cap - len, "%.17g,%s,%.17g,%.17g,%.17g,%s,%s\n", a,
		                        hole ? "NA" : bt, c, d, e, i == 130 ? "word" : wt,
		                        skip ? "" : "1");
		if (skip)
			continue;
		/* the values as floats, as the reader keeps them */
		want[0][kept] = (float)a;
		want[1][kept] = hole ? NAN : (float)b;
		want[2][kept] = (float)c;
		want[3][kept] = (float)d;
		want[4][kept] = (float)e;
		kept++;
	}
	ck_assert_int_lt(len, cap);
	api_dataset first;
	for (int way = 0; way < 2; way++) {
		api_csv_opts o = { .header = 1, .task = NN_TASK_REGRESSION, .label = "y" };
		api_csv *rd = api_csv_new(&o);
		api_err e = API_ERR_INIT;
		api_dataset d;
		int rc = 0;
		for (size_t off = 0; off < len && rc == 0; off += way ? 1 : len)
			rc = api_csv_feed(rd, csv + off, way ? 1 : len, &e);
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq(api_csv_finish(rd, &d, &e), 0);
		api_csv_free(rd);
		ck_assert_int_eq(d.rows, kept);
		ck_assert_int_eq(d.skipped_rows, 1);
		ck_assert_int_eq(d.n_columns, F);
		ck_assert_int_eq(d.columns[5].type, API_COL_CATEGORICAL);
		ck_assert_int_eq(d.columns[5].missing, 0);
		for (int j = 0; j < F - 1; j++) {
			double mean, sd;
			int missing;
			column_want(want[j], kept, &mean, &sd, &missing);
			ck_assert_int_eq(d.columns[j].type, API_COL_NUMERIC);
			ck_assert_int_eq(d.columns[j].missing, missing);
			ck_assert_msg(d.columns[j].mean == mean && d.columns[j].std == sd,
			              "column %d: mean %.17g std %.17g, want %.17g %.17g", j,
			              d.columns[j].mean, d.columns[j].std, mean, sd);
		}
		if (way == 0) {
			first = d;
			continue;
		}
		for (int j = 0; j < F; j++)
			ck_assert_int_eq(memcmp(&d.columns[j].mean, &first.columns[j].mean, sizeof(double)), 0);
		api_dataset_free(&d);
	}
	api_dataset_free(&first);
	free(csv);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("tabular");
	TCase *t = tcase_create("tabular");
	tcase_add_test(t, test_typed_columns_levels_missing_and_encoding);
	tcase_add_test(t, test_plain_numeric_file_encodes_as_before);
	tcase_add_test(t, test_stray_word_makes_a_column_categorical);
	tcase_add_test(t, test_empty_column_single_level_quotes_crlf_bom);
	tcase_add_test(t, test_na_ignore_and_max_levels_options);
	tcase_add_test(t, test_thousands_of_levels_is_a_422);
	tcase_add_test(t, test_imputation_from_training_rows_only);
	tcase_add_test(t, test_raw_records_objects_and_arrays);
	tcase_add_test(t, test_stored_file_keeps_columns_and_raw);
	tcase_add_test(t, test_column_sums_across_blocks_holes_and_late_words);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(suite());
}
