/*
 * test_csv.c - the streaming CSV reader (api/csv.c) and the number parser
 * (api/dataset.c): exact values, classes and labels, identical results for
 * every way of splitting the input, and the line and column of each error.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dataset_io.h"
#include "dataset_util.h"
#include "check_main.h"

/* How the input is cut into pieces for api_csv_feed. */
enum { WHOLE, BYTES, RANDOM };

static int parse_split(const char *s, size_t len, const api_csv_opts *o, int split, unsigned seed,
		       api_dataset *d, api_err *e)
{
	api_csv *c = api_csv_new(o);
	ck_assert_ptr_nonnull(c);
	*e = (api_err)API_ERR_INIT;
	int r = 0;
	size_t off = 0;
	srand(seed);
	while (off < len && r == 0) {
		size_t n = split == WHOLE ? len : split == BYTES ? 1 : (size_t)(rand() % 17);
		if (n > len - off)
			n = len - off;
		r = api_csv_feed(c, s + off, n, e);
		off += n;
	}
	if (r == 0)
		r = api_csv_finish(c, d, e);
	api_csv_free(c);
	return r;
}

static int parse(const char *s, const api_csv_opts *o, api_dataset *d, api_err *e)
{
	return parse_split(s, strlen(s), o, WHOLE, 0, d, e);
}

static api_csv_opts opts(void)
{
	api_csv_opts o = { .header = 1, .task = -1 };
	return o;
}

/* Parses s every way (whole, byte by byte, random pieces) and checks the
 * results are identical; returns the whole-input result. */
static int parse_all_ways_n(const char *s, size_t len, const api_csv_opts *o, api_dataset *d,
			    api_err *e)
{
	int r = parse_split(s, len, o, WHOLE, 0, d, e);
	for (int way = BYTES; way <= RANDOM; way++) {
		for (unsigned seed = 1; seed <= (way == RANDOM ? 20u : 1u); seed++) {
			api_dataset d2;
			api_err e2;
			int r2 = parse_split(s, len, o, way, seed, &d2, &e2);
			ck_assert_int_eq(r2, r);
			if (r != 0) {
				ck_assert_int_eq(e2.status, e->status);
				ck_assert_str_eq(e2.detail, e->detail);
				continue;
			}
			ck_assert_int_eq(d2.rows, d->rows);
			ck_assert_int_eq(d2.features, d->features);
			ck_assert_int_eq(d2.outputs, d->outputs);
			ck_assert_int_eq(d2.task, d->task);
			ck_assert_int_eq(memcmp(d2.x, d->x, (size_t)d->rows * d->features * 4), 0);
			if (d->labels)
				ck_assert_int_eq(memcmp(d2.labels, d->labels, (size_t)d->rows * 4), 0);
			if (d->targets)
				ck_assert_int_eq(memcmp(d2.targets, d->targets, (size_t)d->rows * 4), 0);
			ck_assert_int_eq(d2.n_classes, d->n_classes);
			for (int i = 0; i < d->n_classes; i++)
				ck_assert_str_eq(d2.classes[i], d->classes[i]);
			for (int i = 0; i < d->features; i++)
				ck_assert_str_eq(d2.feature_names[i], d->feature_names[i]);
			api_dataset_free(&d2);
		}
	}
	return r;
}

static int parse_all_ways(const char *s, const api_csv_opts *o, api_dataset *d, api_err *e)
{
	return parse_all_ways_n(s, strlen(s), o, d, e);
}

/* String literals may hold NUL bytes: the length comes from sizeof. */
#define expect_error(lit, o, status, detail) expect_error_n(lit, sizeof(lit) - 1, o, status, detail)

static void expect_error_n(const char *s, size_t len, const api_csv_opts *o, int status,
			   const char *detail)
{
	api_dataset d;
	api_err e;
	ck_assert_int_eq(parse_all_ways_n(s, len, o, &d, &e), -1);
	ck_assert_int_eq(e.status, status);
	if (status == 400)
		ck_assert_str_eq(e.code, "malformed_csv");
	ck_assert_str_eq(e.detail, detail);
}

START_TEST(test_basic_header_classification_integer_labels)
{
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	const char *s = "a,b,label\n1.5,-2,10\n0,3e2,9\n.25,7,10\n";
	ck_assert_int_eq(parse_all_ways(s, &o, &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_CLASSIFICATION);
	ck_assert_int_eq(d.rows, 3);
	ck_assert_int_eq(d.features, 2);
	ck_assert_int_eq(d.outputs, 2);
	ck_assert_int_eq(d.n_classes, 2);
	ck_assert_str_eq(d.classes[0], "9");   /* numeric order: 9 < 10 */
	ck_assert_str_eq(d.classes[1], "10");
	ck_assert_int_eq(d.labels[0], 1);
	ck_assert_int_eq(d.labels[1], 0);
	ck_assert_int_eq(d.labels[2], 1);
	float want[] = { 1.5f, -2, 0, 300, 0.25f, 7 };
	for (int i = 0; i < 6; i++)
		ck_assert_float_eq(d.x[i], want[i]);
	ck_assert_str_eq(d.feature_names[0], "a");
	ck_assert_str_eq(d.feature_names[1], "b");
	ck_assert_ptr_null(d.targets);
	nn_data v = api_dataset_view(&d);
	ck_assert_int_eq(v.rows, 3);
	ck_assert_ptr_eq(v.labels, d.labels);
	ck_assert_ptr_null(v.targets);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_string_labels_sorted_by_bytes)
{
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	const char *s = "x,y\n1,dog\n2,cat\n3,Zebra\n4,cat\n5,10\n";
	ck_assert_int_eq(parse_all_ways(s, &o, &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_CLASSIFICATION);
	ck_assert_int_eq(d.n_classes, 4);
	ck_assert_str_eq(d.classes[0], "10");
	ck_assert_str_eq(d.classes[1], "Zebra");
	ck_assert_str_eq(d.classes[2], "cat");
	ck_assert_str_eq(d.classes[3], "dog");
	int32_t want[] = { 3, 2, 1, 2, 0 };
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(d.labels[i], want[i]);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_numeric_labels_merge_equal_values)
{
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	const char *s = "x,y\n1,-1\n2,1.0\n3,1\n4,0\n5,-0\n";
	ck_assert_int_eq(parse(s, &o, &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_CLASSIFICATION);
	ck_assert_int_eq(d.n_classes, 3);
	ck_assert_str_eq(d.classes[0], "-1");
	ck_assert_str_eq(d.classes[1], "0");
	ck_assert_str_eq(d.classes[2], "1");
	int32_t want[] = { 0, 2, 2, 1, 1 };
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(d.labels[i], want[i]);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_regression_detected_from_fractional_labels)
{
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	const char *s = "x,y\n1,0.5\n2,3\n3,-1e-3\n";
	ck_assert_int_eq(parse_all_ways(s, &o, &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_REGRESSION);
	ck_assert_int_eq(d.outputs, 1);
	ck_assert_ptr_null(d.labels);
	ck_assert_float_eq(d.targets[0], 0.5f);
	ck_assert_float_eq(d.targets[1], 3.0f);
	ck_assert_float_eq(d.targets[2], -1e-3f);
	ck_assert_int_eq(d.n_classes, 0);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_forced_tasks)
{
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	o.task = NN_TASK_REGRESSION;
	ck_assert_int_eq(parse("x,y\n1,2\n2,3\n", &o, &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_REGRESSION);
	ck_assert_float_eq(d.targets[1], 3.0f);
	api_dataset_free(&d);
	o.task = NN_TASK_CLASSIFICATION;
	ck_assert_int_eq(parse("x,y\n1,2.5\n2,0.5\n3,2.5\n", &o, &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_CLASSIFICATION);
	ck_assert_int_eq(d.n_classes, 2);
	ck_assert_str_eq(d.classes[0], "0.5");
	ck_assert_str_eq(d.classes[1], "2.5");
	ck_assert_int_eq(d.labels[0], 1);
	ck_assert_int_eq(d.labels[1], 0);
	api_dataset_free(&d);
	o.task = NN_TASK_REGRESSION;
	expect_error("x,y\n1,2\n2,cat\n", &o, 400,
		     "line 3, column 2: label 'cat' is not a number (the task is regression)");
	expect_error("x,y\n1,1e999\n", &o, 400,
		     "line 2, column 2: label '1e999' is not a finite number (outside float range)");
}
END_TEST

START_TEST(test_rfc4180_quoting_crlf_bom)
{
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	/* BOM, CRLF, quoted header with a comma, quote escapes, a newline in a
	 * quoted label, a blank line, no final newline */
	const char *s = "\xEF\xBB\xBF\"f,1\",\"say \"\"hi\"\"\",lab\r\n"
			"1,2,\"multi\r\nline\"\r\n"
			"\r\n"
			"\"3\",4,plain\r\n"
			"5,6,\"a,b\"";
	ck_assert_int_eq(parse_all_ways(s, &o, &d, &e), 0);
	ck_assert_int_eq(d.rows, 3);
	ck_assert_int_eq(d.features, 2);
	ck_assert_str_eq(d.feature_names[0], "f,1");
	api_dataset_free(&d);
	/* UTF-8 names and labels are kept as they are */
	ck_assert_int_eq(parse_all_ways("caf\xc3\xa9,\xe2\x82\xac\n1,\xf0\x9f\x90\x88\n", &o, &d, &e), 0);
	ck_assert_str_eq(d.feature_names[0], "caf\xc3\xa9");
	ck_assert_str_eq(d.classes[0], "\xf0\x9f\x90\x88");
	api_dataset_free(&d);
	ck_assert_int_eq(parse_all_ways(s, &o, &d, &e), 0);
	ck_assert_str_eq(d.feature_names[1], "say \"hi\"");
	ck_assert_int_eq(d.n_classes, 3);
	ck_assert_str_eq(d.classes[0], "a,b");
	ck_assert_str_eq(d.classes[1], "multi\r\nline");
	ck_assert_str_eq(d.classes[2], "plain");
	ck_assert_int_eq(d.labels[0], 1);
	ck_assert_int_eq(d.labels[1], 2);
	ck_assert_int_eq(d.labels[2], 0);
	ck_assert_float_eq(d.x[2], 3.0f);
	ck_assert_float_eq(d.x[5], 6.0f);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_lone_cr_and_trailing_newlines)
{
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	ck_assert_int_eq(parse_all_ways("a,b\r1,2\r3,4\r\r\n\n", &o, &d, &e), 0);
	ck_assert_int_eq(d.rows, 2);
	ck_assert_float_eq(d.x[1], 3.0f);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_label_by_name_index_and_no_header)
{
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	o.label = "kind";
	ck_assert_int_eq(parse_all_ways("kind,u,v\nb,1,2\na,3,4\n", &o, &d, &e), 0);
	ck_assert_int_eq(d.features, 2);
	ck_assert_str_eq(d.feature_names[0], "u");
	ck_assert_str_eq(d.feature_names[1], "v");
	ck_assert_float_eq(d.x[0], 1.0f);
	ck_assert_float_eq(d.x[3], 4.0f);
	ck_assert_int_eq(d.labels[0], 1);
	api_dataset_free(&d);

	o.label = "1";
	ck_assert_int_eq(parse("kind,u,v\n5,1,2\n6,3,4\n", &o, &d, &e), 0);
	ck_assert_str_eq(d.feature_names[0], "kind");
	ck_assert_str_eq(d.feature_names[1], "v");
	ck_assert_str_eq(d.classes[0], "1");
	ck_assert_str_eq(d.classes[1], "3");
	api_dataset_free(&d);

	o.header = 0;
	o.label = "0";
	ck_assert_int_eq(parse_all_ways("7,1,2\n8,3,4\n", &o, &d, &e), 0);
	ck_assert_int_eq(d.rows, 2);
	ck_assert_str_eq(d.feature_names[0], "x0");
	ck_assert_str_eq(d.feature_names[1], "x1");
	ck_assert_str_eq(d.classes[0], "7");
	ck_assert_int_eq(d.labels[1], 1);
	ck_assert_float_eq(d.x[2], 3.0f);
	api_dataset_free(&d);

	o.label = NULL;
	ck_assert_int_eq(parse("1,2,0\n", &o, &d, &e), 0);
	ck_assert_int_eq(d.rows, 1);
	ck_assert_float_eq(d.x[1], 2.0f);
	api_dataset_free(&d);

	o.header = 1;
	o.label = "nope";
	ck_assert_int_eq(parse("a,b\n1,2\n", &o, &d, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_int_eq(e.n_fields, 1);
	ck_assert_str_eq(e.fields[0].field, "label");
	ck_assert_str_eq(e.fields[0].message, "no column is named 'nope'");
	o.label = "5";
	ck_assert_int_eq(parse("a,b\n1,2\n", &o, &d, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.fields[0].message, "column 5 does not exist (the file has 2 columns)");
	o.header = 0;
	o.label = "a";
	ck_assert_int_eq(parse("1,2\n", &o, &d, &e), -1);
	ck_assert_str_eq(e.fields[0].field, "label");
}
END_TEST

START_TEST(test_errors_name_line_and_column)
{
	api_csv_opts o = opts();
	expect_error("a,b,c\n1,2,3\n4,5\n", &o, 400,
		     "line 3, column 3: missing field: the record has 2 fields, expected 3");
	expect_error("a,b,c\n1,2,3\n4,5,6,7\n", &o, 400,
		     "line 3, column 4: too many fields (the first line has 3)");
	expect_error("a,b\n1,2\n3\0,4\n", &o, 400, "line 3, column 1: NUL byte in the input");
	expect_error("a,b\n1,\"x\0\"\n", &o, 400, "line 2, column 2: NUL byte in the input");
	expect_error("a,b\n1,2\n\"3,4\n5,6\n", &o, 400,
		     "line 3, column 1: quoted field not closed at the end of the input");
	expect_error("a,b\n1,2\n \"3\",4\n", &o, 400, "line 3, column 1: quote inside an unquoted field");
	expect_error("a,b,c\n1,2,\"x\n\n\"\n4,5\n", &o, 400,
		     "line 5, column 3: missing field: the record has 2 fields, expected 3");
}
END_TEST

START_TEST(test_feature_values_must_be_finite_numbers)
{
	api_csv_opts o = opts();
	expect_error("a,b,y\n1,2,0\n3,1e999,1\n", &o, 400,
		     "line 3, column 2: '1e999' is not a finite number (outside float range)");
	expect_error("a,b,y\n1,-1e39,0\n", &o, 400,
		     "line 2, column 2: '-1e39' is not a finite number (outside float range)");
	/* typed columns: text and holes are no longer errors (test_typed_*);
	 * infinities stay errors wherever they are */
	expect_error("a,b,y\n1,inf,0\n", &o, 400, "line 2, column 2: 'inf' is not a finite number");
	expect_error("a,b,y\nx,-Infinity,0\n", &o, 400,
		     "line 2, column 2: '-Infinity' is not a finite number");
	expect_error("a,b,y\nx,1,0\ninf,2,1\n", &o, 400,
		     "line 3, column 1: 'inf' is not a finite number");
	expect_error("a,b\n1,2\n3,4\"5\n", &o, 400, "line 3, column 2: quote inside an unquoted field");
	expect_error("a,\xff\n1,2\n", &o, 400, "line 1, column 2: the field is not valid UTF-8");
	expect_error("a,b\n1,caf\xc3\n", &o, 400, "line 2, column 2: the label is not valid UTF-8");
	expect_error("a,b\n1,\xf4\x90\x80\x80\n", &o, 400, "line 2, column 2: the label is not valid UTF-8");
	expect_error("a,b\n\xe2\x82,1\n", &o, 400, "line 2, column 1: the value is not valid UTF-8");
	expect_error("a,b\n1,\"2\"x\n", &o, 400,
		     "line 2, column 2: unexpected character after a closing quote");
}
END_TEST

START_TEST(test_empty_inputs)
{
	api_csv_opts o = opts();
	expect_error("", &o, 400, "line 1, column 1: the file is empty");
	expect_error("\xEF\xBB\xBF", &o, 400, "line 1, column 1: the file is empty");
	expect_error("\n\n", &o, 400, "line 1, column 1: the file is empty");
	expect_error("a,b\n", &o, 400, "line 2, column 1: no data rows");
	expect_error("a,b", &o, 400, "line 2, column 1: no data rows");
	expect_error("a\n1\n", &o, 400,
		     "line 1, column 1: need at least two columns (features and a label)");
	/* a partial BOM is data, and not UTF-8: names are echoed in JSON */
	expect_error("\xEF\xBB" "a,b\n1,2\n", &o, 400,
		     "line 1, column 1: the field is not valid UTF-8");
}
END_TEST

START_TEST(test_too_many_columns)
{
	size_t n = 100001;
	char *s = malloc(n * 2 + 1);
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = '1';
		s[2 * i + 1] = i + 1 < n ? ',' : '\n';
	}
	s[2 * n] = '\0';
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	ck_assert_int_eq(parse(s, &o, &d, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.detail, "line 1, column 100001: more than 100000 columns");
	/* 100000 columns are fine */
	s[2 * n - 3] = '\n';
	s[2 * n - 2] = '\0';
	size_t len = strlen(s);
	char *t = malloc(len * 2 + 1);
	memcpy(t, s, len);
	memcpy(t + len, s, len + 1);
	ck_assert_int_eq(parse(t, &o, &d, &e), 0);
	ck_assert_int_eq(d.features, 99999);
	ck_assert_int_eq(d.rows, 1);
	api_dataset_free(&d);
	free(s);
	free(t);
}
END_TEST

START_TEST(test_field_and_header_bounds)
{
	/* a quoted field longer than 1 MiB is refused where it starts */
	size_t n = (1u << 20) + 10;
	char *s = malloc(n + 64);
	strcpy(s, "a,b\n1,\"");
	size_t len = strlen(s);
	memset(s + len, 'x', n);
	strcpy(s + len + n, "\"\n");
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	ck_assert_int_eq(parse_split(s, strlen(s), &o, RANDOM, 5, &d, &e), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.detail, "line 2, column 2: field longer than 1 MiB");
	free(s);
	/* duplicate column names: the label is the first of them; blanks
	 * around numbers are fine */
	ck_assert_int_eq(parse_all_ways("y,y,z\n 1 ,\t2.5,3\n4,5,6\n", &(api_csv_opts){ .header = 1, .label = "y", .task = -1 },
					&d, &e), 0);
	ck_assert_str_eq(d.feature_names[0], "y");
	ck_assert_str_eq(d.feature_names[1], "z");
	ck_assert_float_eq(d.x[0], 2.5f);
	ck_assert_float_eq(d.x[3], 6.0f);
	ck_assert_str_eq(d.classes[0], "1");
	ck_assert_str_eq(d.classes[1], "4");
	api_dataset_free(&d);
}
END_TEST

/* 70000 rows whose labels are all distinct, ending with `last`. */
static char *distinct_labels(const char *fmt, const char *last)
{
	size_t cap = 70000 * 32 + 64, len = 0;
	char *s = malloc(cap);
	len += (size_t)sprintf(s, "x,y\n");
	for (int i = 0; i < 69999; i++)
		len += (size_t)sprintf(s + len, fmt, i, i);
	sprintf(s + len, "1,%s\n", last);
	return s;
}

START_TEST(test_too_many_distinct_labels)
{
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	/* integers, but more distinct values than classes can be: regression */
	char *s = distinct_labels("%d,%d\n", "5");
	ck_assert_int_eq(parse(s, &o, &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_REGRESSION);
	ck_assert_int_eq(d.rows, 70000);
	ck_assert_float_eq(d.targets[69998], 69998.0f);
	ck_assert_ptr_null(d.labels);
	api_dataset_free(&d);
	/* forced classification: refused where the 65537th class appears */
	o.task = NN_TASK_CLASSIFICATION;
	ck_assert_int_eq(parse(s, &o, &d, &e), -1);
	ck_assert_str_eq(e.detail, "line 65538, column 2: more than 65536 distinct labels: too many classes");
	free(s);
	/* a word after that many numbers cannot be a class any more */
	o.task = -1;
	s = distinct_labels("%d,%d.5\n", "cat");
	ck_assert_int_eq(parse(s, &o, &d, &e), -1);
	ck_assert_str_eq(e.detail, "line 70001, column 2: label 'cat' is not a number "
				   "(the column has too many distinct values for classes)");
	free(s);
	/* and a word before them makes the 65537th class an error */
	s = distinct_labels("%d,%d\n", "1");
	memcpy(s + 4, "0,a", 3);
	ck_assert_int_eq(parse(s, &o, &d, &e), -1);
	ck_assert_str_eq(e.detail, "line 65538, column 2: more than 65536 distinct labels: too many classes");
	free(s);
}
END_TEST

START_TEST(test_max_bytes_gives_413)
{
	api_csv_opts o = opts();
	o.max_bytes = 1000;
	api_dataset d;
	api_err e;
	char buf[8192] = "a,b,c,y\n";
	for (int i = 0; i < 200; i++)
		strcat(buf, "1,2,3,4\n");
	ck_assert_int_eq(parse_split(buf, strlen(buf), &o, RANDOM, 3, &d, &e), -1);
	ck_assert_int_eq(e.status, 413);
	ck_assert_str_eq(e.code, "payload_too_large");
	o.max_bytes = 0;
	ck_assert_int_eq(parse(buf, &o, &d, &e), 0);
	ck_assert_int_eq(d.rows, 200);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_feed_after_error_repeats_it)
{
	api_csv_opts o = opts();
	api_csv *c = api_csv_new(&o);
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_csv_feed(c, "a,b\ninf,1\n", 10, &e), -1);
	api_err e2 = API_ERR_INIT;
	ck_assert_int_eq(api_csv_feed(c, "1,2\n", 4, &e2), -1);
	ck_assert_str_eq(e2.detail, e.detail);
	api_dataset d;
	ck_assert_int_eq(api_csv_finish(c, &d, &e2), -1);
	ck_assert_str_eq(e2.detail, "line 2, column 1: 'inf' is not a finite number");
	api_csv_free(c);
	api_csv_free(NULL);
}
END_TEST

/* ---- the number parser */

static float parsef(const char *s)
{
	float f = 12345.0f;
	ck_assert_int_eq(api_parse_float(s, strlen(s), &f), 1);
	return f;
}

START_TEST(test_numbers_exact_values)
{
	ck_assert_float_eq(parsef("0"), 0.0f);
	ck_assert(signbit(parsef("-0")));
	ck_assert(signbit(parsef("-0.0e5")));
	ck_assert(!signbit(parsef("0.000")));
	ck_assert_float_eq(parsef("1"), 1.0f);
	ck_assert_float_eq(parsef("+2.5"), 2.5f);
	ck_assert_float_eq(parsef(" -7 "), -7.0f);
	ck_assert_float_eq(parsef("1."), 1.0f);
	ck_assert_float_eq(parsef(".5"), 0.5f);
	ck_assert_float_eq(parsef("1E3"), 1000.0f);
	ck_assert_float_eq(parsef("1e+3"), 1000.0f);
	ck_assert_float_eq(parsef("0.1"), 0.1f);
	ck_assert_float_eq(parsef("3.4028235e38"), 3.4028235e38f);
	ck_assert_float_eq(parsef("1.17549435e-38"), 1.17549435e-38f);
	ck_assert_float_eq(parsef("1e-40"), strtof("1e-40", NULL));   /* denormal */
	ck_assert(parsef("1e-40") > 0);
	ck_assert_float_eq(parsef("1.4e-45"), strtof("1.4e-45", NULL));
	ck_assert_float_eq(parsef("1e-50"), 0.0f);                      /* underflow to 0 */
	ck_assert_float_eq(parsef("00000000000000000000000001.5"), 1.5f);
	ck_assert_float_eq(parsef("123456789012345678901234567890"), 1.2345679e29f);
	ck_assert_float_eq(parsef("0.000000000000000000000000000001"), 1e-30f);
	ck_assert_float_eq(parsef("16777217"), 16777216.0f);            /* tie to even */
	ck_assert_float_eq(parsef("16777219"), 16777220.0f);
	float f;
	const char *bad[] = { "", " ", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "1,5", "--1",
			      "inf", "-Infinity", "nan", "NaN", "0x1p3", "1 2", "1f", "١" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(api_parse_float(bad[i], strlen(bad[i]), &f) == 0, "%s", bad[i]);
	ck_assert_int_eq(api_parse_float("1e999", 5, &f), -1);
	ck_assert_int_eq(api_parse_float("-3.5e38", 7, &f), -1);
	ck_assert_int_eq(api_parse_float("1e99999999999999", 16, &f), -1);
	ck_assert_int_eq(api_parse_float("1e-99999999999999", 17, &f), 1);
	ck_assert_float_eq(f, 0.0f);
	double d;
	ck_assert_int_eq(api_parse_double("0.1", 3, &d), 1);
	ck_assert(d == 0.1);
	ck_assert_int_eq(api_parse_double("1e308", 5, &d), 1);
	ck_assert_int_eq(api_parse_double("1e309", 5, &d), -1);
}
END_TEST

/* Random decimal strings of up to 9 significant digits in the notations
 * CSV writers use must parse to exactly what strtof gives. */
START_TEST(test_numbers_match_strtof)
{
	unsigned long long s = 88172645463325252ull;
	char buf[64];
	for (int i = 0; i < 300000; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		int kind = (int)(s % 5);
		unsigned mant = (unsigned)((s >> 8) % 1000000000u);
		int digits = 1 + (int)((s >> 40) % 9);
		int ex = (int)((s >> 48) % 90) - 45;
		float v;
		switch (kind) {
		case 0:
			snprintf(buf, sizeof buf, "%.*g", digits, (double)mant * pow(10, ex));
			break;
		case 1:
			snprintf(buf, sizeof buf, "%.*e", digits - 1, (double)mant * pow(10, ex));
			break;
		case 2:
			snprintf(buf, sizeof buf, "%u.%0*u", mant % 1000, 6, mant % 1000000);
			break;
		case 3:
			snprintf(buf, sizeof buf, "-%ue%d", mant, ex);
			break;
		default:
			memcpy(&v, &s, sizeof v);
			if (!isfinite(v))
				v = 1.0f;
			snprintf(buf, sizeof buf, "%.9g", (double)v);
		}
		float got, want = strtof(buf, NULL);
		int r = api_parse_float(buf, strlen(buf), &got);
		if (!isfinite(want)) {
			ck_assert_int_eq(r, -1);
			continue;
		}
		ck_assert_msg(r == 1 && memcmp(&got, &want, 4) == 0, "%s: got %a want %a", buf, got, want);
	}
	/* halfway cases near float midpoints, which trip naive double rounding */
	const char *mid[] = { "1.00000005960464477539062", "1.000000059604644775390625",
			      "1.0000000596046448", "0.50000002980232238769531250001",
			      "33554431", "33554433", "8589934593" };
	for (size_t i = 0; i < sizeof mid / sizeof *mid; i++) {
		float got, want = strtof(mid[i], NULL);
		ck_assert_int_eq(api_parse_float(mid[i], strlen(mid[i]), &got), 1);
		ck_assert_msg(memcmp(&got, &want, 4) == 0, "%s", mid[i]);
	}
}
END_TEST

START_TEST(test_large_matrix_all_splits_agree)
{
	/* 300 rows x 11 columns of mixed notation, checked against strtof */
	size_t cap = 1 << 16, len = 0;
	char *s = malloc(cap);
	len += (size_t)sprintf(s, "f0,f1,f2,f3,f4,f5,f6,f7,f8,f9,y\r\n");
	for (int r = 0; r < 300; r++) {
		for (int c = 0; c < 10; c++)
			len += (size_t)sprintf(s + len, "%s%.6g,", c % 3 ? "" : " ",
					       (r * 31 + c * 7) * (c % 2 ? -0.013 : 1.7e3));
		len += (size_t)sprintf(s + len, "%d\r\n", r % 7);
	}
	api_csv_opts o = opts();
	api_dataset d;
	api_err e;
	ck_assert_int_eq(parse_all_ways(s, &o, &d, &e), 0);
	ck_assert_int_eq(d.rows, 300);
	ck_assert_int_eq(d.features, 10);
	ck_assert_int_eq(d.n_classes, 7);
	for (int r = 0; r < 300; r++) {
		ck_assert_int_eq(d.labels[r], r % 7);
		for (int c = 0; c < 10; c++) {
			char b[64];
			sprintf(b, "%.6g", (r * 31 + c * 7) * (c % 2 ? -0.013 : 1.7e3));
			ck_assert_float_eq(d.x[r * 10 + c], strtof(b, NULL));
		}
	}
	api_dataset_free(&d);
	free(s);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("csv");
	TCase *t = tcase_create("csv");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_basic_header_classification_integer_labels);
	tcase_add_test(t, test_string_labels_sorted_by_bytes);
	tcase_add_test(t, test_numeric_labels_merge_equal_values);
	tcase_add_test(t, test_regression_detected_from_fractional_labels);
	tcase_add_test(t, test_forced_tasks);
	tcase_add_test(t, test_rfc4180_quoting_crlf_bom);
	tcase_add_test(t, test_lone_cr_and_trailing_newlines);
	tcase_add_test(t, test_label_by_name_index_and_no_header);
	tcase_add_test(t, test_errors_name_line_and_column);
	tcase_add_test(t, test_feature_values_must_be_finite_numbers);
	tcase_add_test(t, test_empty_inputs);
	tcase_add_test(t, test_too_many_columns);
	tcase_add_test(t, test_field_and_header_bounds);
	tcase_add_test(t, test_too_many_distinct_labels);
	tcase_add_test(t, test_max_bytes_gives_413);
	tcase_add_test(t, test_feed_after_error_repeats_it);
	tcase_add_test(t, test_numbers_exact_values);
	tcase_add_test(t, test_numbers_match_strtof);
	tcase_add_test(t, test_large_matrix_all_splits_agree);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(suite());
}
