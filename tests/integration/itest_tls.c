/*
 * itest_tls.c - HTTPS with --tls-cert/--tls-key: a self-signed
 * certificate made here with the openssl CLI, libcurl trusting exactly
 * that certificate; the whole flow (uploads, a job, its event stream,
 * predictions, the API key, which never reaches the log) works over TLS,
 * plain HTTP on the same port gets no HTTP answer, a client that does not
 * trust the certificate is refused, and bad TLS flags stop the daemon at
 * start with a message.
 */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char tmp[64], cert[128], key[128];

/* A P-256 key and a self-signed certificate for 127.0.0.1. */
static void make_cert(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/nnd-tls-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	snprintf(cert, sizeof cert, "%s/cert.pem", tmp);
	snprintf(key, sizeof key, "%s/key.pem", tmp);
	char cmd[800];
	snprintf(cmd, sizeof cmd,
	         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
	         " -keyout '%s' -out '%s' -days 2 -subj /CN=127.0.0.1"
	         " -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", key, cert);
	ck_assert_int_eq(system(cmd), 0);
}

static void remove_cert(void)
{
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	ck_assert_int_eq(system(cmd), 0);
}

/* One GET with its own handle: the CURLcode, and the status in *status. */
static CURLcode raw_get(const char *url, const char *cainfo, long *status)
{
	CURL *c = curl_easy_init();
	FILE *devnull = fopen("/dev/null", "w");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (cainfo)
		curl_easy_setopt(c, CURLOPT_CAINFO, cainfo);
	CURLcode rc = curl_easy_perform(c);
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	fclose(devnull);
	return rc;
}

START_TEST(test_https_serves_the_flow_and_refuses_plain_http)
{
	make_cert();
	char keyfile[160];
	snprintf(keyfile, sizeof keyfile, "%s/api-key", tmp);
	FILE *f = fopen(keyfile, "w");
	ck_assert_ptr_nonnull(f);
	fputs("tls-test-key\n", f);
	fclose(f);

	nnd d = { 0 };
	snprintf(d.cainfo, sizeof d.cainfo, "%s", cert);
	snprintf(d.key, sizeof d.key, "tls-test-key");
	const char *flags[] = { "--tls-cert", cert, "--tls-key", key, "--api-key-file", keyfile,
	                        "--log-level", "debug", NULL };
	ck_assert_int_eq(nnd_start(&d, flags), 0);   /* readiness already over HTTPS */

	http_resp r;
	ck_assert_int_eq(http_do(&d, "GET", "/healthz", NULL, NULL, 0, &r), 200);
	resp_free(&r);
	ck_assert_int_eq(http_do_auth(&d, "GET", "/v1/models", NULL, NULL, 0, "", &r), 401);
	ck_assert_str_eq(r.www_auth, "Bearer");
	resp_free(&r);

	/* the flow over TLS: data set, model, job, its events, a prediction */
	char ds[32], mdl[32], job[32], path[128];
	ck_assert_int_eq(make_dataset_csv(&d, 120, 4, 2, ds), 0);
	ck_assert_int_eq(make_model(&d, 4, 2, 8, 3, mdl), 0);
	ck_assert_int_eq(submit_job(&d, mdl, ds, 3, 16, "\"log_every_steps\":1", job), 202);
	snprintf(path, sizeof path, "/v1/jobs/%s/events", job);
	char *ev = read_stream(&d, path, NULL);
	ck_assert_ptr_nonnull(ev);
	ck_assert_ptr_nonnull(strstr(ev, "event: epoch"));
	ck_assert_ptr_nonnull(strstr(ev, "\"state\":\"succeeded\""));
	free(ev);
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	const char *row = "{\"instances\":[[1.5,0,1.5,0]]}";
	ck_assert_int_eq(http_do(&d, "POST", path, "application/json", row, strlen(row), &r), 200);
	cJSON *j = cJSON_Parse(r.body);
	ck_assert_double_eq(jnum(j, "model_version"), 1);
	cJSON_Delete(j);
	resp_free(&r);

	/* plain HTTP on the TLS port: no HTTP answer at all */
	char url[128];
	long status = -1;
	snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", d.port);
	ck_assert_int_ne(raw_get(url, NULL, &status), CURLE_OK);
	ck_assert_int_eq(status, 0);
	/* a client that does not trust the self-signed certificate */
	snprintf(url, sizeof url, "https://127.0.0.1:%d/healthz", d.port);
	ck_assert_int_eq(raw_get(url, "/etc/ssl/certs/ca-certificates.crt", &status),
	                 CURLE_PEER_FAILED_VERIFICATION);
	/* and one that does */
	ck_assert_int_eq(raw_get(url, cert, &status), CURLE_OK);
	ck_assert_int_eq(status, 200);
	/* the daemon is still fine after the refused handshakes */
	ck_assert_int_eq(http_do(&d, "GET", "/readyz", NULL, NULL, 0, &r), 200);
	resp_free(&r);
	ck_assert_int_eq(nnd_stop(&d, 20), 0);
	/* neither the API key nor the private key reaches the log, even at
	 * debug level */
	FILE *lf = fopen(d.log, "r");
	ck_assert_ptr_nonnull(lf);
	char line[2048];
	int lines = 0;
	while (fgets(line, sizeof line, lf)) {
		lines++;
		ck_assert_msg(!strstr(line, "tls-test-key") && !strstr(line, "PRIVATE KEY"),
		              "a secret in the log: %s", line);
	}
	fclose(lf);
	ck_assert_int_ge(lines, 10);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
	remove_cert();
}
END_TEST

/* Runs bin/nnd with these TLS flags; its exit status and stderr. */
static int run_bad(const char *flags, char *out, size_t len)
{
	const char *bin = getenv("NND_BIN");
	char cmd[1200], log[160];
	snprintf(log, sizeof log, "%s/stderr", tmp);
	snprintf(cmd, sizeof cmd, "%s/nnd --listen 127.0.0.1:0 --data-dir %s/data %s 2>%s",
	         bin && *bin ? bin : "bin", tmp, flags, log);
	int st = system(cmd);
	FILE *f = fopen(log, "r");
	size_t n = f ? fread(out, 1, len - 1, f) : 0;
	out[n] = '\0';
	if (f)
		fclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_bad_tls_flags_stop_the_start)
{
	make_cert();
	char flags[600], out[2048];
	snprintf(flags, sizeof flags, "--tls-cert %s", cert);
	ck_assert_int_eq(run_bad(flags, out, sizeof out), 2);
	ck_assert_ptr_nonnull(strstr(out, "--tls-cert and --tls-key go together"));
	snprintf(flags, sizeof flags, "--tls-cert %s --tls-key %s/missing.pem", cert, tmp);
	ck_assert_int_eq(run_bad(flags, out, sizeof out), 2);
	ck_assert_ptr_nonnull(strstr(out, "cannot read"));
	/* a certificate given as the key: refused by TLS, exit 1 */
	snprintf(flags, sizeof flags, "--tls-cert %s --tls-key %s", cert, cert);
	ck_assert_int_eq(run_bad(flags, out, sizeof out), 1);
	ck_assert_ptr_nonnull(strstr(out, "TLS certificate or key was refused"));
	remove_cert();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tls");
	TCase *t = tcase_create("tls");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_https_serves_the_flow_and_refuses_plain_http);
	tcase_add_test(t, test_bad_tls_flags_stop_the_start);
	suite_add_tcase(s, t);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
