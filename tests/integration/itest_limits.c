/*
 * itest_limits.c - the daemon's limits hit on purpose, each answered with its
 * documented status and problem code, and nothing stored:
 *  - the request body (--max-body): 413 body_too_large, with Content-Length
 *    and chunked; a body of exactly the limit passes;
 *  - the data set in memory (bounded by --max-body too): a CSV whose matrix
 *    outgrows the limit although its text does not: 413 payload_too_large;
 *  - parameters per model (50,000,000), residual nesting (8), layers per
 *    list (256), units per dense layer (65536): 422 validation_failed naming
 *    the field, answered at once (no allocation of the model);
 *  - epochs (100,000) and batch size (2^20): 422 naming the field;
 *  - JSON nesting deeper than the parser's 1000 levels: 400 malformed_json.
 * The limits on connections, event streams and the idle timeout have no flag
 * yet, so they are not tested here.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define MAX_BODY 65536

static nnd d;
static char ds_id[32], mdl_id[32];

static void setup(void)
{
	const char *flags[] = { "--max-body", "65536", "--workers", "1", NULL };
	memset(&d, 0, sizeof d);
	ck_assert_int_eq(nnd_start(&d, flags), 0);
}

static void teardown(void)
{
	nnd_cleanup(&d);
}

static double total(const char *path)
{
	long st = 0;
	cJSON *j = http_json(&d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	double t = jnum(j, "total");
	cJSON_Delete(j);
	return t;
}

/* Sends a body and checks the problem; returns the parsed reply. */
static cJSON *expect(const char *method, const char *path, const char *ctype, const char *body,
                     size_t len, long status, const char *code)
{
	http_resp r;
	http_do(&d, method, path, ctype, body, len, &r);
	ck_assert_msg(r.status == status, "%s %s: want %ld got %ld: %.300s", method, path, status,
	              r.status, r.body);
	ck_assert_str_eq(r.ctype, "application/problem+json");
	cJSON *j = cJSON_Parse(r.body);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(jstr(j, "code"), code);
	resp_free(&r);
	return j;
}

static int has_field(const cJSON *j, const char *field)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "errors"))
		if (strcmp(jstr(e, "field"), field) == 0)
			return 1;
	return 0;
}

static void expect_field(const char *path, const char *body, const char *field)
{
	cJSON *j = expect("POST", path, "application/json", body, strlen(body), 422,
	                  "validation_failed");
	ck_assert_msg(has_field(j, field), "no error for %s in %s", field, cJSON_PrintUnformatted(j));
	cJSON_Delete(j);
}

/* A valid model spec padded with spaces to exactly n bytes. */
static char *padded_spec(size_t n)
{
	const char *spec = "{\"task\":\"regression\",\"inputs\":2,\"outputs\":1,\"layers\":[]}";
	char *b = malloc(n + 1);
	size_t k = strlen(spec);
	ck_assert_uint_le(k, n);
	memcpy(b, spec, k - 1);
	memset(b + k - 1, ' ', n - k);
	b[n - 1] = '}';
	b[n] = '\0';
	return b;
}

START_TEST(test_body_over_max_body_is_413_and_exactly_the_limit_passes)
{
	char *b = padded_spec(MAX_BODY);
	http_resp r;
	http_do(&d, "POST", "/v1/models", "application/json", b, MAX_BODY, &r);
	ck_assert_int_eq(r.status, 201);
	resp_free(&r);
	free(b);
	ck_assert_double_eq(total("/v1/models"), 1);

	b = padded_spec(MAX_BODY + 1);
	cJSON_Delete(expect("POST", "/v1/models", "application/json", b, MAX_BODY + 1, 413,
	                    "body_too_large"));
	free(b);
	b = malloc(4 * MAX_BODY);
	memset(b, '1', 4 * MAX_BODY);
	for (size_t i = 1; i < 4 * MAX_BODY; i += 2)
		b[i] = (i / 2) % 8 == 7 ? '\n' : ',';
	cJSON_Delete(expect("POST", "/v1/datasets", "text/csv", b, 4 * MAX_BODY, 413,
	                    "body_too_large"));
	cJSON_Delete(expect("POST", "/v1/jobs", "application/json", b, 4 * MAX_BODY, 413,
	                    "body_too_large"));
	free(b);
	ck_assert_double_eq(total("/v1/models"), 1);
	ck_assert_double_eq(total("/v1/datasets"), 0);
	ck_assert_double_eq(total("/v1/jobs"), 0);
}
END_TEST

/* A chunked upload (no Content-Length) over the limit, over a plain socket;
 * returns the status line's code and whether the reply is problem+json. */
static long chunked_upload(size_t bytes, int *problem)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in sa = { 0 };
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)d.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	const char *head = "POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
	                   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
	ck_assert_int_eq(write(fd, head, strlen(head)), (ssize_t)strlen(head));
	char chunk[4096 + 16];
	char data[4096];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = i % 4 == 3 ? '\n' : i % 2 ? ',' : '1';
	for (size_t sent = 0; sent < bytes; sent += sizeof data) {
		int n = snprintf(chunk, sizeof chunk, "%zx\r\n", sizeof data);
		memcpy(chunk + n, data, sizeof data);
		memcpy(chunk + n + sizeof data, "\r\n", 2);
		if (write(fd, chunk, (size_t)n + sizeof data + 2) < 0)
			break;      /* the daemon may answer and close early */
	}
	(void)!write(fd, "0\r\n\r\n", 5);
	char buf[8192];
	size_t len = 0;
	ssize_t k;
	while (len < sizeof buf - 1 && (k = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)k;
	buf[len] = '\0';
	close(fd);
	long status = 0;
	sscanf(buf, "HTTP/1.%*d %ld", &status);
	*problem = strstr(buf, "application/problem+json") != NULL &&
	           strstr(buf, "\"body_too_large\"") != NULL;
	return status;
}

START_TEST(test_chunked_body_over_max_body_is_413)
{
	int problem = 0;
	ck_assert_int_eq(chunked_upload(2 * MAX_BODY, &problem), 413);
	ck_assert(problem);
	ck_assert_double_eq(total("/v1/datasets"), 0);
}
END_TEST

START_TEST(test_dataset_matrix_over_the_memory_limit_is_413)
{
	/* "0,0,...,0,1\n": 2 text bytes per value become 4 bytes of float, so
	 * 48 KiB of text needs about 96 KiB in memory */
	size_t rows = 48 * 1024 / 64, cols = 32, k = 0;
	char *b = malloc(rows * cols * 2 + 512);
	for (size_t c = 0; c < cols; c++)
		k += (size_t)sprintf(b + k, c + 1 < cols ? "f%zu," : "label\n", c);
	for (size_t r = 0; r < rows; r++)
		for (size_t c = 0; c < cols; c++) {
			b[k++] = c + 1 < cols ? '0' : (char)('0' + r % 2);
			b[k++] = c + 1 < cols ? ',' : '\n';
		}
	ck_assert_uint_lt(k, MAX_BODY);
	cJSON *j = expect("POST", "/v1/datasets", "text/csv", b, k, 413, "payload_too_large");
	ck_assert_ptr_nonnull(strstr(jstr(j, "detail"), "65536 bytes allowed in memory"));
	cJSON_Delete(j);
	free(b);
	ck_assert_double_eq(total("/v1/datasets"), 0);
}
END_TEST

START_TEST(test_model_size_limits_are_422_naming_the_field)
{
	/* 8192 x 8192 x 2: 134 million parameters, refused before allocating */
	expect_field("/v1/models",
	             "{\"task\":\"regression\",\"inputs\":8192,\"outputs\":8192,"
	             "\"layers\":[{\"type\":\"dense\",\"units\":8192}]}", "layers");
	/* 2^24 x 2^16 x 2: 2.2e12 parameters (8.8 TB): only a check made before
	 * allocating can answer this with a 422 */
	expect_field("/v1/models",
	             "{\"task\":\"regression\",\"inputs\":16777216,\"outputs\":65536,"
	             "\"layers\":[{\"type\":\"dense\",\"units\":65536}]}", "layers");
	expect_field("/v1/models",
	             "{\"task\":\"regression\",\"inputs\":4,\"outputs\":1,"
	             "\"layers\":[{\"type\":\"dense\",\"units\":65537}]}", "layers[0].units");

	/* residual nesting: 8 levels pass, 9 do not */
	for (int depth = 8; depth <= 9; depth++) {
		char body[2048] = "{\"task\":\"regression\",\"inputs\":4,\"outputs\":1,\"layers\":";
		for (int i = 0; i < depth; i++)
			strcat(body, "[{\"type\":\"residual\",\"layers\":");
		strcat(body, "[{\"type\":\"dense\",\"units\":4}]");
		for (int i = 0; i < depth; i++)
			strcat(body, "}]");
		strcat(body, "}");
		http_resp r;
		http_do(&d, "POST", "/v1/models", "application/json", body, strlen(body), &r);
		ck_assert_msg(r.status == (depth <= 8 ? 201 : 422), "depth %d: %ld %s", depth, r.status,
		              r.body);
		if (depth > 8)
			ck_assert_ptr_nonnull(strstr(r.body, "\"validation_failed\""));
		resp_free(&r);
	}

	/* layers per list: 256 pass, 257 do not */
	for (int n = 256; n <= 257; n++) {
		char *body = malloc((size_t)n * 40 + 128);
		strcpy(body, "{\"task\":\"regression\",\"inputs\":4,\"outputs\":1,\"layers\":[");
		for (int i = 0; i < n; i++)
			strcat(body, i ? ",{\"type\":\"dropout\",\"rate\":0}" : "{\"type\":\"dropout\",\"rate\":0}");
		strcat(body, "]}");
		if (n == 256) {
			http_resp r;
			http_do(&d, "POST", "/v1/models", "application/json", body, strlen(body), &r);
			ck_assert_msg(r.status == 201, "256 layers: %ld %s", r.status, r.body);
			resp_free(&r);
		} else {
			expect_field("/v1/models", body, "layers");
		}
		free(body);
	}
	ck_assert_double_eq(total("/v1/models"), 2);
}
END_TEST

START_TEST(test_epochs_and_batch_size_limits_are_422_naming_the_field)
{
	ck_assert_int_eq(make_dataset_csv(&d, 20, 4, 2, ds_id), 0);
	ck_assert_int_eq(make_model(&d, 4, 2, 8, 1, mdl_id), 0);
	char body[512];
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":100001}", mdl_id,
	         ds_id);
	expect_field("/v1/jobs", body, "epochs");
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"batch_size\":1048577}",
	         mdl_id, ds_id);
	expect_field("/v1/jobs", body, "batch_size");
	ck_assert_double_eq(total("/v1/jobs"), 0);
}
END_TEST

START_TEST(test_json_nested_past_the_parser_limit_is_400)
{
	size_t depth = 1200;
	char *b = malloc(depth * 2 + 64);
	size_t k = (size_t)sprintf(b, "{\"task\":\"regression\",\"layers\":");
	memset(b + k, '[', depth);
	memset(b + k + depth, ']', depth);
	k += 2 * depth;
	b[k++] = '}';
	cJSON_Delete(expect("POST", "/v1/models", "application/json", b, k, 400, "malformed_json"));
	free(b);
	ck_assert_double_eq(total("/v1/models"), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_body_over_max_body_is_413_and_exactly_the_limit_passes);
	tcase_add_test(tc, test_chunked_body_over_max_body_is_413);
	tcase_add_test(tc, test_dataset_matrix_over_the_memory_limit_is_413);
	tcase_add_test(tc, test_model_size_limits_are_422_naming_the_field);
	tcase_add_test(tc, test_epochs_and_batch_size_limits_are_422_naming_the_field);
	tcase_add_test(tc, test_json_nested_past_the_parser_limit_is_400);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
