/*
 * itest_flow.c - the whole flow against a real daemon, once per upload
 * format (CSV, JSON, IDX multipart with one gzip part): upload, create a
 * model, train, follow the SSE stream (at least two step events before the
 * terminal state event), the ndjson stream, metric history, predict,
 * weights, delete.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "harness.h"

/* Counts the events of an SSE text: steps before the first state event
 * that is final, and whether that final event is the last one. */
static void count_sse(const char *s, int *steps, int *epochs, int *final_last,
                      char *final_state)
{
	*steps = *epochs = *final_last = 0;
	final_state[0] = '\0';
	const char *p = s;
	int after_final = 0;
	while ((p = strstr(p, "event: ")) != NULL) {
		p += 7;
		if (after_final)
			after_final = 2;
		if (strncmp(p, "step", 4) == 0)
			(*steps)++;
		else if (strncmp(p, "epoch", 5) == 0)
			(*epochs)++;
		else if (strncmp(p, "state", 5) == 0) {
			const char *d = strstr(p, "data: ");
			cJSON *j = d ? cJSON_Parse(d + 6) : NULL;
			if (!j) {   /* data runs to the end of its line */
				char line[65536];
				size_t n = d ? strcspn(d + 6, "\n") : 0;
				if (n >= sizeof line)
					n = sizeof line - 1;
				memcpy(line, d ? d + 6 : "", n);
				line[n] = '\0';
				j = cJSON_Parse(line);
			}
			const char *st = jstr(j, "state");
			if (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled")) {
				snprintf(final_state, 32, "%s", st);
				after_final = 1;
			}
			cJSON_Delete(j);
		}
	}
	*final_last = after_final == 1;
}

/* From an uploaded data set to a deleted one. */
static void flow(nnd *d, const char *ds, int features, int classes)
{
	char mdl[32], job[32], path[160];
	ck_assert_int_eq(make_model(d, features, classes, 16, 7, mdl), 0);
	long st = submit_job(d, mdl, ds, 4, 8, "\"log_every_steps\":2,\"validation\":{\"fraction\":0.1}",
	                     job);
	ck_assert_int_eq(st, 202);

	snprintf(path, sizeof path, "/v1/jobs/%s/events", job);
	char *sse = read_stream(d, path, NULL);
	ck_assert_ptr_nonnull(sse);
	int steps, epochs, final_last;
	char fs[32];
	count_sse(sse, &steps, &epochs, &final_last, fs);
	ck_assert_int_ge(steps, 2);
	ck_assert_int_eq(epochs, 4);
	ck_assert_str_eq(fs, "succeeded");
	ck_assert_int_eq(final_last, 1);
	ck_assert_ptr_nonnull(strstr(sse, "id: "));
	free(sse);

	/* resuming after a step skips every step up to it */
	char *again = read_stream(d, path, "4");
	ck_assert_ptr_nonnull(again);
	int resumed_steps, resumed_epochs, resumed_final_last;
	count_sse(again, &resumed_steps, &resumed_epochs, &resumed_final_last, fs);
	ck_assert_int_eq(resumed_steps, steps - 2);
	ck_assert_str_eq(fs, "succeeded");
	ck_assert_ptr_null(strstr(again, "id: 2\n"));
	ck_assert_ptr_null(strstr(again, "id: 4\ndata: {\"step\""));
	free(again);

	/* the same events as ndjson */
	snprintf(path, sizeof path, "/v1/jobs/%s/events?format=ndjson", job);
	char *nd = read_stream(d, path, NULL);
	ck_assert_ptr_nonnull(nd);
	int lines = 0, nsteps = 0;
	for (char *l = strtok(nd, "\n"); l; l = strtok(NULL, "\n")) {
		cJSON *j = cJSON_Parse(l);
		ck_assert_ptr_nonnull(j);
		ck_assert_ptr_nonnull(cJSON_GetObjectItem(j, "data"));
		nsteps += !strcmp(jstr(j, "event"), "step");
		lines++;
		cJSON_Delete(j);
	}
	ck_assert_int_eq(nsteps, steps);
	ck_assert_int_ge(lines, steps + 4 + 1);
	free(nd);

	cJSON *j = wait_job(d, job, 60);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	ck_assert_double_eq(jnum(j, "progress"), 1.0);
	ck_assert_double_eq(jnum(j, "model_version"), 1.0);
	const cJSON *m = cJSON_GetObjectItem(j, "metrics");
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(m, "train_loss")));
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(m, "val_loss")));
	ck_assert_ptr_nonnull(strstr(jstr(j, "created_at"), "Z"));
	ck_assert_ptr_nonnull(strstr(jstr(j, "finished_at"), "Z"));
	cJSON_Delete(j);

	snprintf(path, sizeof path, "/v1/jobs/%s/metrics", job);
	j = http_json(d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "steps")), steps);
	cJSON *eps = cJSON_GetObjectItem(j, "epochs");
	ck_assert_int_eq(cJSON_GetArraySize(eps), 4);
	ck_assert(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetArrayItem(eps, 0), "grad_norms")));
	cJSON_Delete(j);
	snprintf(path, sizeof path, "/v1/jobs/%s/metrics?since_step=4", job);
	j = http_json(d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "steps")), steps - 2);
	cJSON_Delete(j);

	/* the model now carries the training */
	snprintf(path, sizeof path, "/v1/models/%s", mdl);
	j = http_json(d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_double_eq(jnum(j, "version"), 1.0);
	ck_assert_str_eq(jstr(j, "trained_by"), job);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "classes")), classes);
	cJSON_Delete(j);

	/* predict two rows */
	cJSON *body = cJSON_CreateObject();
	cJSON *inst = cJSON_AddArrayToObject(body, "instances");
	for (int r = 0; r < 2; r++) {
		cJSON *row = cJSON_CreateArray();
		for (int f = 0; f < features; f++)
			cJSON_AddItemToArray(row, cJSON_CreateNumber(f % classes == r ? 1.5 : 0.0));
		cJSON_AddItemToArray(inst, row);
	}
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	j = http_json(d, "POST", path, body, &st);
	cJSON_Delete(body);
	ck_assert_int_eq(st, 200);
	ck_assert_double_eq(jnum(j, "model_version"), 1.0);
	cJSON *preds = cJSON_GetObjectItem(j, "predictions");
	ck_assert_int_eq(cJSON_GetArraySize(preds), 2);
	cJSON *p0 = cJSON_GetArrayItem(preds, 0);
	cJSON *probs = cJSON_GetObjectItem(p0, "probabilities");
	ck_assert_int_eq(cJSON_GetArraySize(probs), classes);
	double sum = 0;
	cJSON *v;
	cJSON_ArrayForEach(v, probs) sum += v->valuedouble;
	ck_assert_double_eq_tol(sum, 1.0, 1e-5);
	ck_assert(cJSON_IsString(cJSON_GetObjectItem(p0, "label")));
	cJSON_Delete(j);

	/* /metrics counts the rows predicted and the trained samples */
	http_resp mr;
	ck_assert_int_eq(http_do(d, "GET", "/metrics", NULL, NULL, 0, &mr), 200);
	ck_assert_ptr_nonnull(strstr(mr.body, "\nnnd_predictions_total 2\n"));
	ck_assert_ptr_null(strstr(mr.body, "\nnnd_training_samples_total 0\n"));
	ck_assert_ptr_nonnull(strstr(mr.body, "nnd_jobs{state=\"succeeded\"} 1"));
	ck_assert_ptr_nonnull(strstr(mr.body, "nnd_http_request_duration_seconds_bucket{route=\"predict\""));
	resp_free(&mr);

	/* the weights: one entry per layer, output layer last */
	snprintf(path, sizeof path, "/v1/models/%s/weights", mdl);
	j = http_json(d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	cJSON *layers = cJSON_GetObjectItem(j, "layers");
	ck_assert_int_eq(cJSON_GetArraySize(layers), 2);
	cJSON *out = cJSON_GetArrayItem(layers, 1);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(out, "weight")), classes);
	cJSON_Delete(j);

	/* delete: the data set, then the model; both gone */
	http_resp r;
	snprintf(path, sizeof path, "/v1/datasets/%s", ds);
	ck_assert_int_eq(http_do(d, "DELETE", path, NULL, NULL, 0, &r), 204);
	resp_free(&r);
	ck_assert_int_eq(http_do(d, "GET", path, NULL, NULL, 0, &r), 404);
	resp_free(&r);
	snprintf(path, sizeof path, "/v1/models/%s", mdl);
	ck_assert_int_eq(http_do(d, "DELETE", path, NULL, NULL, 0, &r), 204);
	resp_free(&r);
	ck_assert_int_eq(http_do(d, "GET", path, NULL, NULL, 0, &r), 404);
	resp_free(&r);
}

START_TEST(test_flow_csv)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	char *csv = gen_csv(120, 5, 3, 3);
	http_resp r;
	long st = http_do(&d, "POST", "/v1/datasets?name=csv&label=label", "text/csv", csv,
	                  strlen(csv), &r);
	free(csv);
	ck_assert_int_eq(st, 201);
	ck_assert_str_eq(r.ctype, "application/json");
	ck_assert_ptr_nonnull(strstr(r.location, "/v1/datasets/ds_"));
	cJSON *j = cJSON_Parse(r.body);
	ck_assert_double_eq(jnum(j, "rows"), 120);
	ck_assert_double_eq(jnum(j, "features"), 5);
	ck_assert_str_eq(jstr(j, "task"), "classification");
	ck_assert_str_eq(jstr(j, "name"), "csv");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "classes")), 3);
	char ds[32];
	snprintf(ds, sizeof ds, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	resp_free(&r);
	flow(&d, ds, 5, 3);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_flow_json)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	cJSON *body = gen_json(90, 4, 3, 5);
	long st;
	cJSON *j = http_json(&d, "POST", "/v1/datasets", body, &st);
	cJSON_Delete(body);
	ck_assert_int_eq(st, 201);
	ck_assert_double_eq(jnum(j, "rows"), 90);
	ck_assert_str_eq(jstr(j, "name"), "generated");
	char ds[32];
	snprintf(ds, sizeof ds, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	flow(&d, ds, 4, 3);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

/* gzip of buf via zlib (windowBits 31 = gzip wrapper). */
static char *gzip(const char *buf, size_t len, size_t *out_len)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&z, len) + 64;
	char *out = malloc(cap);
	z.next_in = (Bytef *)buf;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = z.total_out;
	deflateEnd(&z);
	return out;
}

START_TEST(test_flow_idx_multipart_gzip)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	enum { N = 60, W = 4, H = 3 };
	unsigned char img[16 + N * W * H], lab[8 + N];
	put_idx_headers(img, lab, N, H, W);
	for (int i = 0; i < N; i++) {
		int k = i % 3;
		lab[8 + i] = (unsigned char)k;
		for (int p = 0; p < W * H; p++)
			img[16 + i * W * H + p] = (unsigned char)((p % 3 == k ? 200 : 20) + (i * 7 + p) % 13);
	}
	size_t glen;
	char *gz = gzip((const char *)img, sizeof img, &glen);
	http_resp r;
	long st = http_multipart(&d, "/v1/datasets?name=idx", gz, glen, (const char *)lab,
	                         sizeof lab, &r);
	free(gz);
	ck_assert_msg(st == 201, "status %ld: %s", st, r.body);
	cJSON *j = cJSON_Parse(r.body);
	ck_assert_double_eq(jnum(j, "rows"), N);
	ck_assert_double_eq(jnum(j, "features"), W * H);
	cJSON *im = cJSON_GetObjectItem(j, "image");
	ck_assert_double_eq(jnum(im, "width"), W);
	ck_assert_double_eq(jnum(im, "height"), H);
	ck_assert_double_eq(jnum(im, "channels"), 1);
	char ds[32];
	snprintf(ds, sizeof ds, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	resp_free(&r);
	flow(&d, ds, W * H, 3);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("flow");
	TCase *t = tcase_create("flow");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_flow_csv);
	tcase_add_test(t, test_flow_json);
	tcase_add_test(t, test_flow_idx_multipart_gzip);
	suite_add_tcase(s, t);
	return run_suite(s);
}
