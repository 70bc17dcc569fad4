/*
 * test_dataset_rows.c - the rows of a data set as text (api/dataset_rows.c):
 * CSV and JSON of a typed-column set, ranges, and the same bytes whatever
 * the size of the reader's buffer.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "dataset_io.h"
#include "dataset_rows.h"
#include "check_main.h"

static void load_csv(const char *text, const char *classes[], int nc, api_dataset *d)
{
	api_csv_opts o = { .header = 1, .task = -1, .classes = (char **)classes, .n_classes = nc };
	api_csv *c = api_csv_new(&o);
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_csv_feed(c, text, strlen(text), &e), 0);
	ck_assert_int_eq(api_csv_finish(c, d, &e), 0);
	api_csv_free(c);
}

/* The whole text, read cap bytes at a time. */
static char *all(const api_dataset *d, int64_t off, int64_t lim, api_rows_format f, size_t cap)
{
	api_rows_writer *w = api_rows_writer_new(d, off, lim, f, "label");
	char *out = malloc(1 << 16), buf[64];
	size_t n = 0;
	long k;
	while ((k = api_rows_writer_read(w, buf, cap)) > 0) {
		ck_assert_int_le(k, (long)cap);
		memcpy(out + n, buf, (size_t)k);
		n += (size_t)k;
	}
	ck_assert_int_eq(k, 0);
	out[n] = 0;
	api_rows_writer_free(w);
	return out;
}

START_TEST(test_csv_and_json)
{
	api_dataset d;
	const char *cls[] = { "yes", "no" };
	load_csv("n,c,label\n1.25,\"q\"\"x\",no\nNA,b,yes\n3,,no\n", cls, 2, &d);
	const char *csv = "n,c,label\n1.25,\"q\"\"x\",no\n,b,yes\n3,,no\n";
	for (size_t cap = 1; cap <= 64; cap += 7) {
		char *t = all(&d, 0, -1, API_ROWS_CSV, cap);
		ck_assert_str_eq(t, csv);
		free(t);
	}
	char *t = all(&d, 1, 1, API_ROWS_JSON, 5);
	ck_assert_str_eq(t, "{\"classes\":[\"yes\",\"no\"],\"feature_names\":[\"n\",\"c\"],"
	                    "\"x\":[[null,\"b\"]],\"y\":[0]}\n");
	free(t);
	t = all(&d, 9, -1, API_ROWS_JSON, 64);    /* past the end: no rows */
	ck_assert_str_eq(t, "{\"classes\":[\"yes\",\"no\"],\"feature_names\":[\"n\",\"c\"],"
	                    "\"x\":[],\"y\":[]}\n");
	free(t);
	t = all(&d, 2, 0, API_ROWS_CSV, 64);
	ck_assert_str_eq(t, "n,c,label\n");
	free(t);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_regression_outputs)
{
	cJSON *j = cJSON_Parse("{\"x\":[[1,2],[3,4]],\"y\":[[0.5,-1],[2,1e-7]]}");
	api_dataset d;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_dataset_from_json(j, &d, &e), 0);
	cJSON_Delete(j);
	char *t = all(&d, 0, -1, API_ROWS_CSV, 3);
	ck_assert_str_eq(t, "x0,x1,y0,y1\n1,2,0.5,-1\n3,4,2,1e-07\n");
	free(t);
	t = all(&d, 0, -1, API_ROWS_JSON, 64);
	ck_assert_str_eq(t, "{\"feature_names\":[\"x0\",\"x1\"],\"x\":[[1,2],[3,4]],"
	                    "\"y\":[[0.5,-1],[2,1e-07]]}\n");
	free(t);
	api_dataset_free(&d);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("dataset_rows");
	TCase *t = tcase_create("rows");
	tcase_add_test(t, test_csv_and_json);
	tcase_add_test(t, test_regression_outputs);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(suite());
}
