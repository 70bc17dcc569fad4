/*
 * test_api_err.c - API errors (api/api_err.c): status, code and detail,
 * field errors and their bound, truncation that keeps UTF-8 whole, and the
 * exact problem+json body of RFC 9457 with the project's "code" and "errors".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "api_err.h"
#include "check_main.h"

START_TEST(test_set_keeps_fields_and_returns_minus_one)
{
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(api_err_field(&e, "layers[1].units", "must be a positive integer"), -1);
	ck_assert_int_eq(e.status, 422);
	ck_assert_str_eq(e.code, "validation_failed");
	ck_assert_int_eq(api_err_set(&e, 400, "malformed_csv", "line %d, column %d: %s", 3, 2, "bad"), -1);
	ck_assert_int_eq(e.status, 400);
	ck_assert_str_eq(e.code, "malformed_csv");
	ck_assert_str_eq(e.detail, "line 3, column 2: bad");
	ck_assert_int_eq(e.n_fields, 1);
	ck_assert_str_eq(e.fields[0].field, "layers[1].units");
	ck_assert_int_eq(api_err_set(NULL, 400, "x", "y"), -1);
	ck_assert_int_eq(api_err_field(NULL, "x", "y"), -1);
}
END_TEST

START_TEST(test_field_keeps_an_earlier_status)
{
	api_err e = API_ERR_INIT;
	api_err_set(&e, 413, "payload_too_large", "too big");
	api_err_field(&e, "x", "y");
	ck_assert_int_eq(e.status, 413);
	ck_assert_str_eq(e.code, "payload_too_large");
	ck_assert_str_eq(e.detail, "too big");
}
END_TEST

START_TEST(test_fields_are_bounded)
{
	api_err e = API_ERR_INIT;
	char p[32];
	for (int i = 0; i < 100; i++) {
		snprintf(p, sizeof p, "x[%d]", i);
		api_err_field(&e, p, "bad %d", i);
	}
	ck_assert_int_eq(e.n_fields, API_MAX_FIELD_ERRORS);
	ck_assert_str_eq(e.fields[API_MAX_FIELD_ERRORS - 1].field, "x[31]");
	ck_assert_str_eq(e.fields[API_MAX_FIELD_ERRORS - 1].message, "bad 31");
}
END_TEST

START_TEST(test_truncation_keeps_utf8_whole)
{
	api_err e = API_ERR_INIT;
	char long_msg[1200];
	/* 'a' then 2-byte characters: the cut must not split one */
	long_msg[0] = 'a';
	for (int i = 1; i + 1 < (int)sizeof long_msg - 1; i += 2) {
		long_msg[i] = (char)0xC3;
		long_msg[i + 1] = (char)0xA9;
	}
	long_msg[sizeof long_msg - 2] = '\0';
	api_err_set(&e, 400, "x", "%s", long_msg);
	size_t n = strlen(e.detail);
	ck_assert_uint_le(n, sizeof e.detail - 1);
	ck_assert_uint_eq(n % 2, 1); /* 'a' + whole pairs */
	ck_assert_int_eq((unsigned char)e.detail[n - 1], 0xA9);
	api_err_field(&e, long_msg, "m");
	n = strlen(e.fields[0].field);
	ck_assert_uint_le(n, sizeof e.fields[0].field - 1);
	ck_assert_uint_eq(n % 2, 1);
}
END_TEST

START_TEST(test_problem_json_exact_body)
{
	api_err e = API_ERR_INIT;
	api_err_field(&e, "layers[1].units", "must be a positive integer");
	api_err_field(&e, "optimizer.lr", "must be \"positive\"");
	char *s = api_problem_json(&e);
	ck_assert_str_eq(s,
		"{\"type\":\"/errors/validation_failed\",\"title\":\"Unprocessable Content\",\"status\":422,"
		"\"detail\":\"the request has invalid fields\",\"code\":\"validation_failed\","
		"\"errors\":[{\"field\":\"layers[1].units\",\"message\":\"must be a positive integer\"},"
		"{\"field\":\"optimizer.lr\",\"message\":\"must be \\\"positive\\\"\"}]}");
	free(s);
	api_err n = API_ERR_INIT;
	api_err_set(&n, 404, "not_found", "no data set ds_%s", "0123456789abcdef");
	s = api_problem_json(&n);
	ck_assert_str_eq(s, "{\"type\":\"/errors/not_found\",\"title\":\"Not Found\",\"status\":404,"
			    "\"detail\":\"no data set ds_0123456789abcdef\",\"code\":\"not_found\"}");
	free(s);
	/* an empty error still renders as a 500 problem */
	api_err z = API_ERR_INIT;
	s = api_problem_json(&z);
	cJSON *j = cJSON_Parse(s);
	ck_assert_int_eq(cJSON_GetObjectItem(j, "status")->valueint, 500);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "code")->valuestring, "internal_error");
	ck_assert_ptr_null(cJSON_GetObjectItem(j, "errors"));
	cJSON_Delete(j);
	free(s);
	s = api_problem_json(NULL);
	ck_assert_ptr_nonnull(s);
	free(s);
}
END_TEST

START_TEST(test_status_titles)
{
	ck_assert_str_eq(api_status_title(400), "Bad Request");
	ck_assert_str_eq(api_status_title(401), "Unauthorized");
	ck_assert_str_eq(api_status_title(404), "Not Found");
	ck_assert_str_eq(api_status_title(405), "Method Not Allowed");
	ck_assert_str_eq(api_status_title(409), "Conflict");
	ck_assert_str_eq(api_status_title(413), "Content Too Large");
	ck_assert_str_eq(api_status_title(415), "Unsupported Media Type");
	ck_assert_str_eq(api_status_title(422), "Unprocessable Content");
	ck_assert_str_eq(api_status_title(429), "Too Many Requests");
	ck_assert_str_eq(api_status_title(500), "Internal Server Error");
	ck_assert_str_eq(api_status_title(503), "Service Unavailable");
	ck_assert_str_eq(api_status_title(507), "Insufficient Storage");
	ck_assert_str_eq(api_status_title(499), "Client Error");
	ck_assert_str_eq(api_status_title(599), "Server Error");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("api_err");
	TCase *t = tcase_create("api_err");
	tcase_add_test(t, test_set_keeps_fields_and_returns_minus_one);
	tcase_add_test(t, test_field_keeps_an_earlier_status);
	tcase_add_test(t, test_fields_are_bounded);
	tcase_add_test(t, test_truncation_keeps_utf8_whole);
	tcase_add_test(t, test_problem_json_exact_body);
	tcase_add_test(t, test_status_titles);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return check_run(suite());
}
