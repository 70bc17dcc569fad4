/*
 * test_router.c - the routing table (server/router.c): every route of
 * API.md is found with its id, malformed ids and unknown paths are 404,
 * and a known path under the wrong method is 405 naming the allowed ones.
 */
#include <check.h>
#include <string.h>
#include "router.h"

static const char *DS = "ds_0123456789abcdef";

static int match(const char *method, const char *path, char *id, char *allow)
{
	return router_match(method, path, id, API_ID_LEN, allow, 64);
}

START_TEST(test_every_route_is_found)
{
	char id[API_ID_LEN], allow[64];
	int i = match("GET", "/v1/datasets/ds_0123456789abcdef", id, allow);
	ck_assert_int_ge(i, 0);
	ck_assert_str_eq(id, DS);
	ck_assert_ptr_eq((void *)router_table[i].handler, (void *)api_dataset_get);
	i = match("POST", "/v1/models/mdl_00000000000000ff/predict", id, allow);
	ck_assert_int_ge(i, 0);
	ck_assert_str_eq(id, "mdl_00000000000000ff");
	ck_assert_ptr_eq((void *)router_table[i].handler, (void *)api_model_predict);
	ck_assert_int_eq(router_table[i].body, BODY_ROWS);   /* a streamed body is a route kind */
	i = match("GET", "/v1/jobs/job_aaaaaaaaaaaaaaaa/events", id, allow);
	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(router_table[i].srv, SRV_EVENTS);
	i = match("POST", "/v1/datasets", id, allow);
	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(router_table[i].body, BODY_UPLOAD);
	ck_assert_str_eq(id, "");
	i = match("GET", "/healthz", id, allow);
	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(router_table[i].open, 1);
	i = match("GET", "/metrics", id, allow);
	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(router_table[i].open, 0);
	/* the dashboard: open pages, and the API's streams and plots */
	i = match("GET", "/", id, allow);
	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(router_table[i].srv, SRV_UI);
	ck_assert_int_eq(router_table[i].open, 1);
	i = match("GET", "/ui/studies/std_0123456789abcdef", id, allow);
	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(router_table[i].srv, SRV_UI);
	ck_assert_int_eq(router_table[i].open, 1);
	ck_assert_str_eq(id, "std_0123456789abcdef");
	i = match("GET", "/v1/events", id, allow);
	ck_assert_int_ge(i, 0);
	ck_assert_int_eq(router_table[i].srv, SRV_EVENTS_ALL);
	ck_assert_int_eq(router_table[i].open, 0);
	i = match("GET", "/v1/jobs/job_aaaaaaaaaaaaaaaa/plot.svg", id, allow);
	ck_assert_int_ge(i, 0);
	ck_assert_ptr_eq((void *)router_table[i].handler, (void *)api_job_plot_svg);
}
END_TEST

START_TEST(test_bad_ids_and_unknown_paths_are_404)
{
	char id[API_ID_LEN], allow[64];
	ck_assert_int_eq(match("GET", "/v1/datasets/ds_0123456789ABCDEF", id, allow), -404);
	ck_assert_int_eq(match("GET", "/v1/datasets/ds_0123", id, allow), -404);
	ck_assert_int_eq(match("GET", "/v1/datasets/mdl_0123456789abcdef", id, allow), -404);
	ck_assert_int_eq(match("GET", "/v1/datasets/..%2f..%2fetc", id, allow), -404);
	ck_assert_int_eq(match("GET", "/v1/datasets/../../etc/passwd", id, allow), -404);
	ck_assert_int_eq(match("GET", "/v1/nothing", id, allow), -404);
	ck_assert_int_eq(match("GET", "/v1/datasets/", id, allow), -404);
	ck_assert_int_eq(match("GET", "/nothing", id, allow), -404);
	ck_assert_int_eq(match("GET", "/ui/jobs/job_0123", id, allow), -404);
	ck_assert_int_eq(match("GET", "/ui/nothing", id, allow), -404);
	ck_assert_int_eq(match("GET", "/ui/studies/job_0123456789abcdef", id, allow), -404);
	ck_assert_int_eq(match("GET", "/v1/jobs/job_aaaaaaaaaaaaaaaa/events/x", id, allow), -404);
}
END_TEST

START_TEST(test_wrong_method_is_405_with_allow)
{
	char id[API_ID_LEN], allow[64];
	ck_assert_int_eq(match("PUT", "/v1/datasets/ds_0123456789abcdef", id, allow), -405);
	ck_assert_str_eq(allow, "GET, DELETE");
	ck_assert_int_eq(match("DELETE", "/v1/models/mdl_0123456789abcdef/weights", id, allow), -405);
	ck_assert_str_eq(allow, "GET, PUT");
	ck_assert_int_eq(match("POST", "/healthz", id, allow), -405);
	ck_assert_str_eq(allow, "GET");
	ck_assert_int_eq(match("PATCH", "/v1/jobs", id, allow), -405);
	ck_assert_str_eq(allow, "POST, GET");
}
END_TEST

START_TEST(test_id_check)
{
	ck_assert_int_eq(api_id_valid("job_0123456789abcdef", "job"), 1);
	ck_assert_int_eq(api_id_valid("job_0123456789abcdef0", "job"), 0);
	ck_assert_int_eq(api_id_valid("job_0123456789abcdeg", "job"), 0);
	ck_assert_int_eq(api_id_valid("jo_0123456789abcdef", "job"), 0);
	ck_assert_int_eq(api_id_valid(NULL, "job"), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("router");
	TCase *t = tcase_create("core");
	tcase_add_test(t, test_every_route_is_found);
	tcase_add_test(t, test_bad_ids_and_unknown_paths_are_404);
	tcase_add_test(t, test_wrong_method_is_405_with_allow);
	tcase_add_test(t, test_id_check);
	suite_add_tcase(s, t);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
