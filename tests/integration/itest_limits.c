/*
 * itest_limits.c - the daemon's limits hit on purpose, each answered with its
 * documented status and problem code, and nothing stored:
 *  - the request body (--max-body): 413 body_too_large, with Content-Length
 *    and chunked; a body of exactly the limit passes; a client that writes
 *    its whole body before reading gets the 413 (and a 404) decided from
 *    the headers, on a connection that stays open; with Expect:
 *    100-continue the 413 comes before any body;
 *  - the data set in memory (bounded by --max-body too): a CSV whose matrix
 *    outgrows the limit although its text does not: 413 payload_too_large;
 *  - parameters per model (50,000,000), residual nesting (8), layers per
 *    list (256), units per dense layer (65536): 422 validation_failed naming
 *    the field, answered at once (no allocation of the model);
 *  - epochs (100,000) and batch size (2^20): 422 naming the field;
 *  - JSON nesting deeper than the parser's 1000 levels: 400 malformed_json.
 * And each limit's flag, on daemons started with small values:
 *  - --max-params, --max-depth, --max-layers: 422 validation_failed;
 *    --max-json-depth 16: 17 levels are 400 malformed_json, 16 are parsed;
 *  - --max-epochs, --max-batch: 422 naming the field;
 *  - --max-streams 1: a second event stream is 429 too_many_streams with
 *    Retry-After, and one opens again once the first has ended;
 *  - --max-connections 4: past four (the harness's client may hold one)
 *    a connection is closed unanswered, and once one of the four closes
 *    a new connection is answered;
 *  - --request-timeout 2: a client sending its headers a byte a second is
 *    cut off long before it finishes, while /healthz keeps answering; an
 *    event stream open for more than twice the deadline is not cut;
 *  - --request-timeout 1, the minimum body rate (64 KiB/s): a 1 MiB body
 *    sent at about 640 KiB/s for longer than the deadline is taken (201);
 *    one sent at about 10 KiB/s is shut down unanswered soon after the
 *    deadline, long before its end, and nothing is stored (the log names
 *    the deadline and the request as 499);
 *  - --idle-timeout 1 (the request deadline off): a kept-alive connection
 *    left silent is closed, while one asking every 250 ms is answered on
 *    the same connection throughout, and closed too once it falls silent.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
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

static int raw_connect(void);
static int read_within(int fd, char *buf, size_t cap, int ms);
static int send_all(int fd, const char *s, size_t n);
static int read_reply(int fd, char *buf, size_t cap, int ms);

/* A client that writes the whole body before it reads a byte, as Python's
 * http.client does: POST path with `bytes` of body (Content-Length), then
 * the reply's status (0: the connection broke, the reply lost). When the
 * daemon answers before the body is read it must still read (and drop)
 * the body first, or the unread bytes reset the connection under the
 * reply. Then /healthz on the same connection: the body was all taken. */
static long post_whole_body_then_read(const char *path, size_t bytes, int *healthz)
{
	int fd = raw_connect();
	char head[256];
	int n = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: x\r\n"
	                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	                 path, bytes);
	char *body = malloc(bytes);
	ck_assert_ptr_nonnull(body);
	memset(body, ' ', bytes);
	char buf[8192];
	long status = 0;
	*healthz = 0;
	if (send_all(fd, head, (size_t)n) == 0 && send_all(fd, body, bytes) == 0) {
		status = read_reply(fd, buf, sizeof buf, 10000);
		const char *get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
		if (status > 0 && send_all(fd, get, strlen(get)) == 0)
			*healthz = read_reply(fd, buf, sizeof buf, 10000) == 200;
	}
	free(body);
	close(fd);
	return status;
}

/* Replies decided before the body is read (413 by Content-Length, 404)
 * reach a client that writes its whole 4 MiB body first, every time, and
 * the connection stays usable; with Expect: 100-continue the 413 comes at
 * once, before any body. */
START_TEST(test_early_replies_reach_clients_that_write_the_body_first)
{
	const size_t big = (size_t)4 << 20;
	for (int i = 0; i < 4; i++) {
		int healthz = 0;
		ck_assert_int_eq(post_whole_body_then_read("/v1/models", big, &healthz), 413);
		ck_assert(healthz);
		ck_assert_int_eq(post_whole_body_then_read("/v1/nothing", big, &healthz), 404);
		ck_assert(healthz);
	}
	int fd = raw_connect();
	char head[256], buf[8192];
	int n = snprintf(head, sizeof head, "POST /v1/models HTTP/1.1\r\nHost: x\r\n"
	                 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	                 "Expect: 100-continue\r\n\r\n", big);
	ck_assert_int_eq(send_all(fd, head, (size_t)n), 0);
	ck_assert_int_gt(read_within(fd, buf, sizeof buf, 5000), 0);
	long status = 0;
	sscanf(buf, "HTTP/1.%*d %ld", &status);
	ck_assert_int_eq(status, 413);
	close(fd);
	ck_assert_double_eq(total("/v1/models"), 0);
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

/* ------------------------------------------------------------ the flags */

static void start_with(const char *const *flags)
{
	memset(&d, 0, sizeof d);
	ck_assert_int_eq(nnd_start(&d, flags), 0);
}

/* A status of a JSON request. */
static long status_of(const char *method, const char *path, const char *body)
{
	http_resp r;
	http_do(&d, method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0, &r);
	long st = r.status;
	resp_free(&r);
	return st;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int raw_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in sa = { 0 };
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)d.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/* Reads what arrives within ms into buf (NUL-terminated); returns the
 * bytes read, 0 when the peer closed with nothing, -1 when nothing came. */
static int read_within(int fd, char *buf, size_t cap, int ms)
{
	size_t len = 0;
	buf[0] = '\0';
	struct pollfd p = { fd, POLLIN, 0 };
	while (len < cap - 1 && poll(&p, 1, ms) > 0) {
		ssize_t k = read(fd, buf + len, cap - 1 - len);
		if (k <= 0)
			return (int)len;
		len += (size_t)k;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			return (int)len;
	}
	return len ? (int)len : -1;
}

static void model_body(char *b, size_t cap, const char *layers)
{
	snprintf(b, cap, "{\"task\":\"regression\",\"inputs\":4,\"outputs\":1,\"layers\":%s}",
	         layers);
}

START_TEST(test_model_limit_flags)
{
	const char *flags[] = { "--max-params", "1000", "--max-depth", "2", "--max-layers", "3",
		                "--max-json-depth", "16", NULL };
	start_with(flags);
	char b[4096];
	/* 4*100+100 + 100+1 = 601 parameters pass; 4*200+200 + 200+1 = 1201 do not */
	model_body(b, sizeof b, "[{\"type\":\"dense\",\"units\":100}]");
	ck_assert_int_eq(status_of("POST", "/v1/models", b), 201);
	model_body(b, sizeof b, "[{\"type\":\"dense\",\"units\":200}]");
	expect_field("/v1/models", b, "layers");
	/* residual nesting 2 passes, 3 does not */
	for (int depth = 2; depth <= 3; depth++) {
		char l[1024] = "";
		for (int i = 0; i < depth; i++)
			strcat(l, "[{\"type\":\"residual\",\"layers\":");
		strcat(l, "[{\"type\":\"dense\",\"units\":4}]");
		for (int i = 0; i < depth; i++)
			strcat(l, "}]");
		model_body(b, sizeof b, l);
		if (depth == 2)
			ck_assert_int_eq(status_of("POST", "/v1/models", b), 201);
		else
			cJSON_Delete(expect("POST", "/v1/models", "application/json", b, strlen(b), 422,
			                    "validation_failed"));
	}
	/* 3 layers in a list pass, 4 do not */
	model_body(b, sizeof b, "[{\"type\":\"dropout\",\"rate\":0},{\"type\":\"dropout\",\"rate\":0},"
	                        "{\"type\":\"dropout\",\"rate\":0}]");
	ck_assert_int_eq(status_of("POST", "/v1/models", b), 201);
	model_body(b, sizeof b, "[{\"type\":\"dropout\",\"rate\":0},{\"type\":\"dropout\",\"rate\":0},"
	                        "{\"type\":\"dropout\",\"rate\":0},{\"type\":\"dropout\",\"rate\":0}]");
	expect_field("/v1/models", b, "layers");
	/* JSON depth: the object and 15 arrays (16 levels) are parsed (and
	 * refused as a spec, 422); 16 arrays (17 levels) are 400 */
	for (int n = 15; n <= 16; n++) {
		char l[64];
		memset(l, '[', (size_t)n);
		memset(l + n, ']', (size_t)n);
		l[2 * n] = '\0';
		model_body(b, sizeof b, l);
		cJSON *j = expect("POST", "/v1/models", "application/json", b, strlen(b),
		                  n == 15 ? 422 : 400, n == 15 ? "validation_failed" : "malformed_json");
		if (n == 16)
			ck_assert_ptr_nonnull(strstr(jstr(j, "detail"), "deeper than 16"));
		cJSON_Delete(j);
	}
	ck_assert_double_eq(total("/v1/models"), 3);
	nnd_cleanup(&d);
}
END_TEST

START_TEST(test_job_and_stream_limit_flags)
{
	const char *flags[] = { "--max-epochs", "5", "--max-batch", "8", "--max-streams", "1",
		                "--workers", "1", NULL };
	start_with(flags);
	/* a job long enough to hold a stream open: 20000 rows, 4096 hidden units */
	ck_assert_int_eq(make_dataset_csv(&d, 20000, 32, 2, ds_id), 0);
	ck_assert_int_eq(make_model(&d, 32, 2, 4096, 1, mdl_id), 0);
	char body[512], job[32];
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":6}", mdl_id,
	         ds_id);
	expect_field("/v1/jobs", body, "epochs");
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"batch_size\":9}",
	         mdl_id, ds_id);
	expect_field("/v1/jobs", body, "batch_size");
	ck_assert_double_eq(total("/v1/jobs"), 0);
	ck_assert_int_eq(submit_job(&d, mdl_id, ds_id, 5, 8, NULL, job), 202);

	/* the one stream allowed, held open on a raw socket */
	int fd = raw_connect();
	char req[256], buf[8192];
	int n = snprintf(req, sizeof req, "GET /v1/jobs/%s/events HTTP/1.1\r\nHost: x\r\n\r\n", job);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	ck_assert_int_gt(read_within(fd, buf, sizeof buf, 10000), 0);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "first stream: %.200s", buf);

	char path[96];
	snprintf(path, sizeof path, "/v1/jobs/%s/events", job);
	http_resp r;
	http_do(&d, "GET", path, NULL, NULL, 0, &r);
	ck_assert_msg(r.status == 429, "second stream: %ld %.200s", r.status, r.body);
	ck_assert_str_eq(r.ctype, "application/problem+json");
	ck_assert_ptr_nonnull(strstr(r.body, "\"too_many_streams\""));
	ck_assert_str_eq(r.retry_after, "1");
	resp_free(&r);

	/* cancel: the first stream ends, and a stream opens again */
	char cpath[96];
	snprintf(cpath, sizeof cpath, "/v1/jobs/%s/cancel", job);
	long cst = status_of("POST", cpath, NULL);
	ck_assert_msg(cst == 202 || cst == 409, "cancel: %ld", cst);
	close(fd);
	long st = 0;
	for (int i = 0; i < 50 && st != 200; i++) {
		char *s = NULL;
		http_do(&d, "GET", path, NULL, NULL, 0, &r);
		st = r.status;
		if (st == 200)
			s = strstr(r.body, "event: state");
		if (st == 200)
			ck_assert_ptr_nonnull(s);
		resp_free(&r);
		if (st != 200)
			usleep(100 * 1000);
	}
	ck_assert_int_eq(st, 200);
	nnd_cleanup(&d);
}
END_TEST

START_TEST(test_connection_limit_flag)
{
	const char *flags[] = { "--max-connections", "4", NULL };
	start_with(flags);
	const char *hz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	int held[5];
	char buf[4096];
	/* connections answered once and kept alive until one is refused; the
	 * harness's own client may hold one of the four */
	int n = 0, k = 0;
	for (; n < 5; n++) {
		held[n] = raw_connect();
		ck_assert_int_eq(write(held[n], hz, strlen(hz)), (ssize_t)strlen(hz));
		k = read_within(held[n], buf, sizeof buf, 3000);
		if (k <= 0 || strncmp(buf, "HTTP/1.1 503", 12) == 0)
			break;   /* refused: closed unanswered, no answer, or a 503 */
		ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "conn %d: %.100s", n, buf);
	}
	ck_assert_msg(n >= 3 && n <= 4, "%d connections held before the refusal", n);
	int refused = held[n];
	/* one of them closing lets a new connection in */
	close(held[0]);
	int again = -1;
	for (int i = 0; i < 50; i++) {
		again = raw_connect();
		ck_assert_int_eq(write(again, hz, strlen(hz)), (ssize_t)strlen(hz));
		k = read_within(again, buf, sizeof buf, 3000);
		if (k > 0 && strncmp(buf, "HTTP/1.1 200", 12) == 0)
			break;
		close(again);
		again = -1;
		usleep(100 * 1000);
	}
	ck_assert_msg(again >= 0, "no connection admitted after a close");
	close(again);
	close(refused);
	for (int i = 1; i < n; i++)
		close(held[i]);
	nnd_cleanup(&d);
}
END_TEST

START_TEST(test_request_timeout_cuts_a_trickling_client)
{
	const char *flags[] = { "--request-timeout", "2", NULL };
	start_with(flags);
	const char *hz = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\n\r\n";
	size_t len = strlen(hz);   /* 50 bytes: 50 s at a byte a second */
	int fd = raw_connect();
	double t0 = now_s();
	size_t sent = 0;
	int closed = 0, healthz_ok = 0;
	while (sent < len && !closed) {
		if (write(fd, hz + sent, 1) == 1)
			sent++;
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 1000) > 0) {
			char c;
			ssize_t k = recv(fd, &c, 1, MSG_DONTWAIT);
			if (k == 0 || (k < 0 && errno != EAGAIN))
				closed = 1;
			else if (k > 0)
				ck_abort_msg("the trickling client got an answer");
		}
		/* the daemon keeps serving the others */
		healthz_ok += status_of("GET", "/healthz", NULL) == 200;
	}
	double took = now_s() - t0;
	close(fd);
	ck_assert_msg(closed, "the trickling client was never cut off");
	ck_assert_uint_lt(sent, len);
	ck_assert_msg(took < 10, "cut off after %.1f s", took);   /* deadline 2 s + reaper tick */
	ck_assert_int_ge(healthz_ok, 1);
	ck_assert_int_eq(status_of("GET", "/healthz", NULL), 200);
	nnd_cleanup(&d);
}
END_TEST

START_TEST(test_request_timeout_spares_event_streams)
{
	const char *flags[] = { "--request-timeout", "2", "--workers", "1", NULL };
	start_with(flags);
	ck_assert_int_eq(make_dataset_csv(&d, 20000, 32, 2, ds_id), 0);
	ck_assert_int_eq(make_model(&d, 32, 2, 4096, 1, mdl_id), 0);
	char job[32], req[256], buf[8192];
	ck_assert_int_eq(submit_job(&d, mdl_id, ds_id, 50, 8, NULL, job), 202);
	int fd = raw_connect();
	int n = snprintf(req, sizeof req, "GET /v1/jobs/%s/events HTTP/1.1\r\nHost: x\r\n\r\n", job);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	ck_assert_int_gt(read_within(fd, buf, sizeof buf, 10000), 0);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "stream: %.200s", buf);
	/* twice the deadline and more: the stream is still open */
	double t0 = now_s();
	int open = 1;
	while (open && now_s() - t0 < 5) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 200) > 0 && read(fd, buf, sizeof buf) <= 0)
			open = 0;
	}
	ck_assert_msg(open, "the event stream was cut");
	char cpath[96];
	snprintf(cpath, sizeof cpath, "/v1/jobs/%s/cancel", job);
	long cst = status_of("POST", cpath, NULL);
	ck_assert_msg(cst == 202, "cancel: %ld (the job ended before the check)", cst);
	close(fd);
	nnd_cleanup(&d);
}
END_TEST

/* Sends all of s (no SIGPIPE when the daemon has hung up); 0 or -1. */
static int send_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
		if (k <= 0)
			return -1;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Reads one whole reply (headers, then a Content-Length body) within ms
 * into buf; returns its status, 0 when the peer closed first, -1 when it
 * did not come in time. */
static int read_reply(int fd, char *buf, size_t cap, int ms)
{
	size_t len = 0;
	double end = now_s() + ms / 1000.0;
	buf[0] = '\0';
	for (;;) {
		const char *eoh = strstr(buf, "\r\n\r\n");
		if (eoh) {
			const char *cl = strstr(buf, "\r\nContent-Length: ");
			size_t want = (size_t)(eoh + 4 - buf);
			if (cl && cl < eoh)
				want += strtoul(cl + 18, NULL, 10);
			if (len >= want) {
				int st = 0;
				return sscanf(buf, "HTTP/1.1 %d", &st) == 1 ? st : -1;
			}
		}
		int left = (int)((end - now_s()) * 1000);
		struct pollfd p = { fd, POLLIN, 0 };
		if (left <= 0 || len + 1 >= cap || poll(&p, 1, left) <= 0)
			return -1;
		ssize_t k = read(fd, buf + len, cap - 1 - len);
		if (k <= 0)
			return 0;
		len += (size_t)k;
		buf[len] = '\0';
	}
}

/* 1 when the daemon closes fd within ms (end of stream or reset), 0 when
 * it is still open then; aborts when the daemon sends anything instead. */
static int closed_within(int fd, int ms, const char *who)
{
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, ms) <= 0)
		return 0;
	char c[256];
	ssize_t k = recv(fd, c, sizeof c - 1, MSG_DONTWAIT);
	if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (k > 0) {
		c[k] = '\0';
		ck_abort_msg("%s got an answer instead of a close: %.100s", who, c);
	}
	return 1;
}

/* A new connection with the headers of a POST /v1/models of n bytes sent. */
static int post_models_head(size_t n)
{
	char head[256];
	int fd = raw_connect();
	int hl = snprintf(head, sizeof head,
	                  "POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	                  "Content-Length: %zu\r\n\r\n", n);
	ck_assert_int_eq(send_all(fd, head, (size_t)hl), 0);
	return fd;
}

START_TEST(test_request_timeout_cuts_a_body_slower_than_64_kib_per_second)
{
	const char *flags[] = { "--request-timeout", "1", "--log-level", "debug", NULL };
	start_with(flags);
	char buf[4096];

	/* 1 MiB at about 640 KiB/s: it arrives for longer than the deadline,
	 * faster than the minimum rate, and is taken */
	size_t n = 1u << 20;
	char *spec = padded_spec(n);
	int fd = post_models_head(n);
	double t0 = now_s();
	for (size_t off = 0; off < n; off += 32768) {
		ck_assert_msg(send_all(fd, spec + off, n - off < 32768 ? n - off : 32768) == 0,
		              "the fast body was cut at %zu bytes", off);
		sleep_ms(50);
	}
	ck_assert_msg(now_s() - t0 > 1.5, "the fast body did not outlast the deadline");
	ck_assert_int_eq(read_reply(fd, buf, sizeof buf, 10000), 201);
	close(fd);
	free(spec);
	ck_assert_double_eq(total("/v1/models"), 1);
	/* not cut (the harness's own kept-alive connection, idle meanwhile,
	 * may be: that is the deadline too, and logged alike) */
	ck_assert(!log_has(&d, "POST /v1/models 499"));

	/* 128 KiB at 1 KiB every 100 ms (about 10 KiB/s): shut down unanswered
	 * once the deadline has passed, long before the body is in */
	n = 128u << 10;
	spec = padded_spec(n);
	fd = post_models_head(n);
	size_t sent = 0;
	int closed = 0;
	while (sent < n && !closed) {
		if (send_all(fd, spec + sent, 1024) == 0)
			sent += 1024;
		else
			closed = 1;
		if (!closed)
			closed = closed_within(fd, 100, "the slow sender");
	}
	close(fd);
	free(spec);
	ck_assert_msg(closed, "the slow body was never cut off");
	ck_assert_uint_lt(sent, n / 2);
	ck_assert_uint_ge(sent, 1024);
	ck_assert_double_eq(total("/v1/models"), 1);   /* nothing stored */
	/* logged as the connection ends, which the client may see first */
	ck_assert(log_within(&d, "connection past the request deadline: closed", 2000));
	ck_assert(log_within(&d, "POST /v1/models 499", 2000));
	ck_assert_int_eq(status_of("GET", "/healthz", NULL), 200);
	nnd_cleanup(&d);
}
END_TEST

START_TEST(test_idle_timeout_closes_an_idle_kept_alive_connection_only)
{
	/* the request deadline off: what closes is the idle timeout alone */
	const char *flags[] = { "--idle-timeout", "1", "--request-timeout", "0", NULL };
	start_with(flags);
	const char *hz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t hzlen = strlen(hz);
	char buf[4096];
	int idle = raw_connect(), active = raw_connect();
	ck_assert_int_eq(send_all(idle, hz, hzlen), 0);
	ck_assert_int_eq(read_reply(idle, buf, sizeof buf, 5000), 200);
	ck_assert_ptr_null(strstr(buf, "Connection: close"));   /* kept alive */
	ck_assert_int_eq(send_all(active, hz, hzlen), 0);
	ck_assert_int_eq(read_reply(active, buf, sizeof buf, 5000), 200);

	/* four seconds: the active connection asks every 250 ms, the idle one
	 * says nothing */
	int answered = 0, idle_closed = 0, rounds = 16;
	for (int i = 0; i < rounds; i++) {
		if (idle_closed)
			sleep_ms(250);
		else
			idle_closed = closed_within(idle, 250, "the idle connection");
		if (send_all(active, hz, hzlen) == 0)
			answered += read_reply(active, buf, sizeof buf, 5000) == 200;
	}
	ck_assert_msg(idle_closed, "the idle connection is open after 4 s (--idle-timeout 1)");
	ck_assert_int_eq(answered, rounds);   /* all on the one active connection */
	/* silent now, the active one goes the same way */
	ck_assert_int_eq(closed_within(active, 10000, "the no longer active connection"), 1);
	close(idle);
	close(active);
	ck_assert_int_eq(status_of("GET", "/healthz", NULL), 200);
	nnd_cleanup(&d);
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
	tcase_add_test(tc, test_early_replies_reach_clients_that_write_the_body_first);
	tcase_add_test(tc, test_dataset_matrix_over_the_memory_limit_is_413);
	tcase_add_test(tc, test_model_size_limits_are_422_naming_the_field);
	tcase_add_test(tc, test_epochs_and_batch_size_limits_are_422_naming_the_field);
	tcase_add_test(tc, test_json_nested_past_the_parser_limit_is_400);
	suite_add_tcase(s, tc);
	TCase *tf = tcase_create("flags");
	tcase_set_timeout(tf, 120);
	tcase_add_test(tf, test_model_limit_flags);
	tcase_add_test(tf, test_job_and_stream_limit_flags);
	tcase_add_test(tf, test_connection_limit_flag);
	tcase_add_test(tf, test_request_timeout_cuts_a_trickling_client);
	tcase_add_test(tf, test_request_timeout_spares_event_streams);
	tcase_add_test(tf, test_request_timeout_cuts_a_body_slower_than_64_kib_per_second);
	tcase_add_test(tf, test_idle_timeout_closes_an_idle_kept_alive_connection_only);
	suite_add_tcase(s, tf);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
