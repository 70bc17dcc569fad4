/*
 * test_dataset_json.c - data sets given as JSON (api/dataset_json.c) and the
 * binary data-set file (api/dataset.c): values, classes, task inference,
 * field paths of every error, and a serialize/deserialize round trip that
 * rejects damaged files.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dataset_io.h"
#include "check_main.h"

static int load(const char *json, api_dataset *d, api_err *e)
{
	cJSON *j = cJSON_Parse(json);
	ck_assert_ptr_nonnull(j);
	*e = (api_err)API_ERR_INIT;
	int r = api_dataset_from_json(j, d, e);
	cJSON_Delete(j);
	return r;
}

/* Asserts that json fails with 422 and that field error i is (path, msg). */
static void expect_field(const char *json, int i, const char *path, const char *msg)
{
	api_dataset d;
	api_err e;
	ck_assert_int_eq(load(json, &d, &e), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.code, "validation_failed");
	ck_assert_int_gt(e.n_fields, i);
	ck_assert_str_eq(e.fields[i].field, path);
	ck_assert_str_eq(e.fields[i].message, msg);
	ck_assert_ptr_null(d.x);
}

START_TEST(test_classification_with_integers)
{
	api_dataset d;
	api_err e;
	ck_assert_int_eq(load("{\"name\":\"n\",\"x\":[[1,2.5],[-0,1e-3],[3,4]],\"y\":[10,2,10]}", &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_CLASSIFICATION);
	ck_assert_int_eq(d.rows, 3);
	ck_assert_int_eq(d.features, 2);
	/* integer labels >= 0 are class indices: K = max + 1, as in PyTorch */
	ck_assert_int_eq(d.outputs, 11);
	ck_assert_int_eq(d.n_classes, 11);
	ck_assert_str_eq(d.classes[0], "0");
	ck_assert_str_eq(d.classes[10], "10");
	ck_assert_int_eq(d.labels[0], 10);
	ck_assert_int_eq(d.labels[1], 2);
	ck_assert_float_eq(d.x[1], 2.5f);
	ck_assert(signbit(d.x[2]));
	ck_assert_float_eq(d.x[3], 1e-3f);
	ck_assert_str_eq(d.feature_names[1], "x1");
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_nulls_are_missing_values)
{
	api_dataset d;
	api_err e;
	/* a: 1, null, 3 -> mean 2, indicator; b has no hole */
	ck_assert_int_eq(load("{\"x\":[[1,5],[null,6],[3,7]],\"y\":[0,1,0]}", &d, &e), 0);
	ck_assert_int_eq(d.features, 3);
	ck_assert_str_eq(d.feature_names[1], "x0:missing");
	float want[] = { 1, 0, 5, 2, 1, 6, 3, 0, 7 };
	for (int i = 0; i < 9; i++)
		ck_assert_float_eq(d.x[i], want[i]);
	ck_assert_int_eq(d.n_columns, 2);
	ck_assert_int_eq(d.columns[0].missing, 1);
	ck_assert(d.columns[0].mean == 2.0);
	ck_assert(isnan(d.raw[2]));
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_classification_with_strings)
{
	api_dataset d;
	api_err e;
	ck_assert_int_eq(load("{\"x\":[[1],[2],[3]],\"y\":[\"b\",\"a\",\"b\"],"
			      "\"feature_names\":[\"len\"]}", &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_CLASSIFICATION);
	ck_assert_str_eq(d.classes[0], "a");
	ck_assert_str_eq(d.classes[1], "b");
	ck_assert_int_eq(d.labels[0], 1);
	ck_assert_int_eq(d.labels[1], 0);
	ck_assert_str_eq(d.feature_names[0], "len");
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_regression_inferred_and_multi_output)
{
	api_dataset d;
	api_err e;
	ck_assert_int_eq(load("{\"x\":[[1],[2]],\"y\":[0.5,2]}", &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_REGRESSION);
	ck_assert_int_eq(d.outputs, 1);
	ck_assert_float_eq(d.targets[0], 0.5f);
	ck_assert_float_eq(d.targets[1], 2.0f);
	api_dataset_free(&d);
	ck_assert_int_eq(load("{\"x\":[[1],[2]],\"y\":[[1,2,3],[4,5,6]]}", &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_REGRESSION);
	ck_assert_int_eq(d.outputs, 3);
	ck_assert_float_eq(d.targets[5], 6.0f);
	api_dataset_free(&d);
	ck_assert_int_eq(load("{\"task\":\"regression\",\"x\":[[1],[2]],\"y\":[1,2]}", &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_REGRESSION);
	api_dataset_free(&d);
	ck_assert_int_eq(load("{\"task\":\"classification\",\"x\":[[1],[2]],\"y\":[1,2]}", &d, &e), 0);
	ck_assert_int_eq(d.n_classes, 3);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_errors_name_field_paths)
{
	expect_field("[1]", 0, "body", "must be a JSON object");
	expect_field("{\"y\":[1]}", 0, "x", "is required");
	expect_field("{\"x\":[[1]]}", 0, "y", "is required");
	expect_field("{\"x\":[],\"y\":[1]}", 0, "x", "must be a non-empty array of rows");
	expect_field("{\"x\":[[]],\"y\":[1]}", 0, "x[0]", "must be a non-empty array of numbers");
	expect_field("{\"x\":[[1,2],[3,4],[5,6],[7,8,9]],\"y\":[1,2,3,4]}", 0, "x[3]",
		     "must be an array of 2 numbers like x[0]");
	expect_field("{\"x\":[[1,2],3],\"y\":[1,2]}", 0, "x[1]",
		     "must be an array of 2 numbers like x[0] (got a non-array)");
	expect_field("{\"x\":[[1,2,3],[1,2,3],[1,2,3],[1,2,\"a\"]],\"y\":[1,2,3,4]}", 0, "x[3][2]",
		     "must be a number");
	expect_field("{\"x\":[[1,1e400]],\"y\":[1]}", 0, "x[0][1]",
		     "must be a finite number within float range");
	expect_field("{\"x\":[[1e39]],\"y\":[1]}", 0, "x[0][0]",
		     "must be a finite number within float range");
	/* null is a missing value now (test_nulls_are_missing_values), but a
	 * data set needs some value */
	expect_field("{\"x\":[[null]],\"y\":[1]}", 0, "x", "no column holds a value (every one is null)");
	expect_field("{\"x\":[[1],[2]],\"y\":[1]}", 0, "y", "must have one entry per row of x (2), got 1");
	expect_field("{\"task\":\"classification\",\"x\":[[1],[2]],\"y\":[1,2.5]}", 0, "y[1]",
		     "must be an integer or a string (classification)");
	expect_field("{\"x\":[[1],[2]],\"y\":[\"a\",\"\"]}", 0, "y[1]", "must not be empty");
	expect_field("{\"x\":[[1],[2]],\"y\":[[1,2],[3]]}", 0, "y[1]", "must be a list of 2 numbers like y[0]");
	expect_field("{\"x\":[[1],[2]],\"y\":[[1,2],[3,1e400]]}", 0, "y[1][1]",
		     "must be a finite number within float range");
	expect_field("{\"task\":\"regression\",\"x\":[[1],[2]],\"y\":[1,\"a\"]}", 0, "y[1]",
		     "must be a finite number within float range (regression)");
	expect_field("{\"task\":\"clustering\",\"x\":[[1]],\"y\":[1]}", 0, "task",
		     "must be \"classification\" or \"regression\"");
	expect_field("{\"x\":[[1]],\"y\":[1],\"z\":2}", 0, "z", "unknown field");
	expect_field("{\"x\":[[1]],\"y\":[1],\"feature_names\":[\"a\",\"b\"]}", 0, "feature_names",
		     "must be an array of 1 strings");
	expect_field("{\"x\":[[1]],\"y\":[1],\"feature_names\":[\"\xc3\"]}", 0, "feature_names[0]",
		     "must be a UTF-8 string of at most 256 bytes");
	expect_field("{\"x\":[[1],[2]],\"y\":[\"a\",\"\xed\xa0\x80\"]}", 0, "y[1]", "must be valid UTF-8");
	expect_field("{\"name\":\"\xc0\xaf\",\"x\":[[1]],\"y\":[1]}", 0, "name", "must be a UTF-8 string");
	/* several bad cells: each named */
	expect_field("{\"x\":[[1,\"a\"],[\"b\",2]],\"y\":[1,2]}", 1, "x[1][0]", "must be a number");
}
END_TEST

START_TEST(test_error_list_is_bounded)
{
	char *s = malloc(100000);
	strcpy(s, "{\"x\":[");
	for (int i = 0; i < 1000; i++)
		strcat(s, i ? ",[\"a\"]" : "[\"a\"]");
	strcat(s, "],\"y\":[1]}");
	api_dataset d;
	api_err e;
	ck_assert_int_eq(load(s, &d, &e), -1);
	ck_assert_int_eq(e.n_fields, API_MAX_FIELD_ERRORS);
	ck_assert_str_eq(e.fields[31].field, "x[31][0]");
	free(s);
}
END_TEST

START_TEST(test_given_classes)
{
	api_dataset d;
	api_err e;
	/* indices with names: K is the names' count, whatever y holds */
	ck_assert_int_eq(load("{\"x\":[[1],[2],[3]],\"y\":[0,2,2],\"classes\":[\"cat\",\"dog\",\"emu\",\"yak\"]}",
			      &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_CLASSIFICATION);
	ck_assert_int_eq(d.outputs, 4);
	ck_assert_str_eq(d.classes[3], "yak");
	ck_assert_int_eq(d.labels[1], 2);
	api_dataset_free(&d);
	/* names matched to the given order, not sorted */
	ck_assert_int_eq(load("{\"x\":[[1],[2]],\"y\":[\"b\",\"a\"],\"classes\":[\"b\",\"c\",\"a\"]}", &d, &e), 0);
	ck_assert_int_eq(d.outputs, 3);
	ck_assert_int_eq(d.labels[0], 0);
	ck_assert_int_eq(d.labels[1], 2);
	api_dataset_free(&d);
	/* -1/+1 are names, sorted numerically */
	ck_assert_int_eq(load("{\"x\":[[1],[2],[3]],\"y\":[1,-1,1]}", &d, &e), 0);
	ck_assert_int_eq(d.outputs, 2);
	ck_assert_str_eq(d.classes[0], "-1");
	ck_assert_str_eq(d.classes[1], "1");
	ck_assert_int_eq(d.labels[0], 1);
	api_dataset_free(&d);
	/* y in {0, 2, 3, 4}: five classes, class 1 without rows */
	ck_assert_int_eq(load("{\"x\":[[1],[2],[3],[4]],\"y\":[0,2,3,4]}", &d, &e), 0);
	ck_assert_int_eq(d.outputs, 5);
	ck_assert_int_eq(d.labels[3], 4);
	api_dataset_free(&d);
}
END_TEST

START_TEST(test_given_classes_refused)
{
	expect_field("{\"x\":[[1],[2]],\"y\":[0,3],\"classes\":[\"a\",\"b\",\"c\"]}", 0, "y[1]",
		     "is class index 3, but \"classes\" names 3 classes");
	expect_field("{\"x\":[[1],[2]],\"y\":[\"a\",\"z\"],\"classes\":[\"a\",\"b\"]}", 0, "y[1]",
		     "is \"z\", not one of \"classes\"");
	expect_field("{\"x\":[[1],[2]],\"y\":[\"a\",1]}", 0, "y",
		     "mixes strings and numbers: give every label as a string, or every one as a class index");
	expect_field("{\"x\":[[1],[2]],\"y\":[\"a\",\"b\"],\"classes\":[\"a\",\"a\"]}", 0, "classes[1]",
		     "names \"a\" a second time");
	expect_field("{\"x\":[[1],[2]],\"y\":[\"a\",\"b\"],\"classes\":[\"a\",\"\"]}", 0, "classes[1]",
		     "must be a non-empty UTF-8 name of at most 256 bytes");
	expect_field("{\"x\":[[1],[2]],\"y\":[\"a\",\"b\"],\"classes\":[\"a\",7]}", 0, "classes[1]",
		     "must be a string");
	expect_field("{\"x\":[[1],[2]],\"y\":[\"a\",\"b\"],\"classes\":[]}", 0, "classes",
		     "must be a non-empty array of class names");
	expect_field("{\"x\":[[1],[2]],\"y\":[1.5,2],\"task\":\"regression\",\"classes\":[\"a\"]}", 0,
		     "classes", "applies to classification only");
	expect_field("{\"x\":[[1],[2]],\"y\":[[1],[2]],\"classes\":[\"a\"]}", 0, "classes",
		     "applies to classification only (y holds lists)");
}
END_TEST

START_TEST(test_too_many_classes)
{
	cJSON *j = cJSON_CreateObject();
	cJSON *x = cJSON_AddArrayToObject(j, "x"), *y = cJSON_AddArrayToObject(j, "y");
	for (int i = 0; i < 65537; i++) {
		cJSON *row = cJSON_CreateArray();
		cJSON_AddItemToArray(row, cJSON_CreateNumber(i));
		cJSON_AddItemToArray(x, row);
		cJSON_AddItemToArray(y, cJSON_CreateNumber(i));
	}
	api_dataset d;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_dataset_from_json(j, &d, &e), 0);
	ck_assert_int_eq(d.task, NN_TASK_REGRESSION);
	ck_assert_int_eq(d.outputs, 1);
	ck_assert_float_eq(d.targets[65536], 65536.0f);
	ck_assert_ptr_null(d.classes);
	api_dataset_free(&d);
	cJSON_AddStringToObject(j, "task", "classification");
	ck_assert_int_eq(api_dataset_from_json(j, &d, &e), -1);
	ck_assert_str_eq(e.fields[0].field, "y");
	ck_assert_str_eq(e.fields[0].message, "asks for 65537 classes (the largest index + 1); a classification has at most 65536 classes");
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_serialize_round_trip_and_corruption)
{
	api_dataset d, r;
	api_err e;
	ck_assert_int_eq(load("{\"x\":[[1,2],[3,4],[5,6]],\"y\":[\"b\",\"a\",\"c\"],"
			      "\"feature_names\":[\"p\",\"q\"]}", &d, &e), 0);
	d.width = 2;
	d.height = 1;
	d.channels = 1;
	void *buf;
	size_t len;
	ck_assert_int_eq(api_dataset_serialize(&d, &buf, &len), 0);
	ck_assert_int_eq(memcmp(buf, "NNDDATA1", 8), 0);
	ck_assert_int_eq(api_dataset_deserialize(buf, len, &r, &e), 0);
	ck_assert_int_eq(r.task, NN_TASK_CLASSIFICATION);
	ck_assert_int_eq(r.rows, 3);
	ck_assert_int_eq(r.features, 2);
	ck_assert_int_eq(r.outputs, 3);
	ck_assert_int_eq(r.width, 2);
	ck_assert_int_eq(r.channels, 1);
	ck_assert_int_eq(memcmp(r.x, d.x, 24), 0);
	ck_assert_int_eq(memcmp(r.labels, d.labels, 12), 0);
	ck_assert_str_eq(r.classes[2], "c");
	ck_assert_str_eq(r.feature_names[1], "q");
	api_dataset_free(&r);
	/* every single flipped byte and every truncation is caught */
	unsigned char *b = buf;
	for (size_t i = 0; i < len; i++) {
		b[i] ^= 0x40;
		api_err e2 = API_ERR_INIT;
		ck_assert_int_eq(api_dataset_deserialize(buf, len, &r, &e2), -1);
		ck_assert_str_eq(e2.code, "corrupt_dataset");
		b[i] ^= 0x40;
	}
	for (size_t n = 0; n < len; n++) {
		api_err e2 = API_ERR_INIT;
		ck_assert_int_eq(api_dataset_deserialize(buf, n, &r, &e2), -1);
	}
	free(buf);
	api_dataset_free(&d);

	ck_assert_int_eq(load("{\"x\":[[1],[2]],\"y\":[[1.5,2],[3,4]]}", &d, &e), 0);
	ck_assert_int_eq(api_dataset_serialize(&d, &buf, &len), 0);
	ck_assert_int_eq(api_dataset_deserialize(buf, len, &r, &e), 0);
	ck_assert_int_eq(r.task, NN_TASK_REGRESSION);
	ck_assert_int_eq(r.outputs, 2);
	ck_assert_float_eq(r.targets[0], 1.5f);
	ck_assert_float_eq(r.targets[3], 4.0f);
	ck_assert_ptr_null(r.labels);
	nn_data v = api_dataset_view(&r);
	ck_assert_ptr_eq(v.targets, r.targets);
	ck_assert_ptr_null(v.labels);
	api_dataset_free(&r);
	api_dataset_free(&d);
	free(buf);
	api_dataset_free(NULL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("dataset_json");
	TCase *t = tcase_create("dataset_json");
	tcase_add_test(t, test_classification_with_integers);
	tcase_add_test(t, test_nulls_are_missing_values);
	tcase_add_test(t, test_classification_with_strings);
	tcase_add_test(t, test_regression_inferred_and_multi_output);
	tcase_add_test(t, test_errors_name_field_paths);
	tcase_add_test(t, test_error_list_is_bounded);
	tcase_add_test(t, test_given_classes);
	tcase_add_test(t, test_given_classes_refused);
	tcase_add_test(t, test_too_many_classes);
	tcase_add_test(t, test_serialize_round_trip_and_corruption);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(suite());
}
