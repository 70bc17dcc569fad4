/*
 * itest_reference.c - every case of shared/reference/pytorch_cases.json
 * through HTTP: create the model, PUT its initial weights, upload its data
 * as JSON, train with its config, then compare the step losses, the
 * weights (1e-4 absolute) and the predictions on x (1e-4 relative) with
 * PyTorch's numbers.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static cJSON *load_cases(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/reference/pytorch_cases.json", shared_dir());
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	cJSON *j = cJSON_Parse(buf);
	free(buf);
	ck_assert_ptr_nonnull(j);
	return j;
}

/* Every number of `want` has its counterpart in `got` within tolerance
 * (absolute + relative * |want|); objects compare the keys of want. */
static int near(const cJSON *want, const cJSON *got, double abs_tol, double rel_tol,
                char *where, size_t wl)
{
	if (cJSON_IsNumber(want)) {
		if (!cJSON_IsNumber(got))
			return 0;
		double w = want->valuedouble, g = got->valuedouble;
		if (fabs(w - g) > abs_tol + rel_tol * fabs(w)) {
			snprintf(where, wl, "want %.8g got %.8g", w, g);
			return 0;
		}
		return 1;
	}
	if (cJSON_IsArray(want)) {
		if (!cJSON_IsArray(got) || cJSON_GetArraySize(want) != cJSON_GetArraySize(got)) {
			snprintf(where, wl, "array sizes differ");
			return 0;
		}
		for (int i = 0; i < cJSON_GetArraySize(want); i++)
			if (!near(cJSON_GetArrayItem(want, i), cJSON_GetArrayItem(got, i), abs_tol, rel_tol,
			          where, wl))
				return 0;
		return 1;
	}
	if (cJSON_IsObject(want)) {
		const cJSON *it;
		cJSON_ArrayForEach(it, want) {
			const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, it->string);
			if (!g) {
				snprintf(where, wl, "missing key %s", it->string);
				return 0;
			}
			if (!near(it, g, abs_tol, rel_tol, where, wl))
				return 0;
		}
		return 1;
	}
	if (cJSON_IsString(want))
		return cJSON_IsString(got) && strcmp(want->valuestring, got->valuestring) == 0;
	return 1;
}

static void run_case(nnd *d, const cJSON *c)
{
	const char *name = jstr(c, "name");
	long st;
	char path[160], where[160] = "";

	cJSON *model = cJSON_Duplicate(cJSON_GetObjectItem(c, "model"), 1);
	cJSON_AddStringToObject(model, "name", name);
	cJSON *m = http_json(d, "POST", "/v1/models", model, &st);
	ck_assert_msg(st == 201, "%s: create model %ld", name, st);
	char mdl[32];
	snprintf(mdl, sizeof mdl, "%s", jstr(m, "id"));
	cJSON_Delete(m);

	snprintf(path, sizeof path, "/v1/models/%s/weights", mdl);
	m = http_json(d, "PUT", path, cJSON_GetObjectItem(c, "initial_weights"), &st);
	ck_assert_msg(st == 200, "%s: put weights %ld", name, st);
	cJSON_Delete(m);

	const cJSON *data = cJSON_GetObjectItem(c, "data");
	cJSON *ds = cJSON_CreateObject();
	cJSON_AddStringToObject(ds, "name", name);
	cJSON_AddStringToObject(ds, "task", jstr(model, "task"));
	cJSON_AddItemToObject(ds, "x", cJSON_Duplicate(cJSON_GetObjectItem(data, "x"), 1));
	cJSON_AddItemToObject(ds, "y", cJSON_Duplicate(cJSON_GetObjectItem(data, "y"), 1));
	cJSON *dj = http_json(d, "POST", "/v1/datasets", ds, &st);
	cJSON_Delete(ds);
	ck_assert_msg(st == 201, "%s: upload %ld", name, st);
	char dsid[32];
	snprintf(dsid, sizeof dsid, "%s", jstr(dj, "id"));
	cJSON_Delete(dj);

	cJSON *job = cJSON_Duplicate(cJSON_GetObjectItem(c, "train"), 1);
	cJSON_AddStringToObject(job, "model", mdl);
	cJSON_AddStringToObject(job, "dataset", dsid);
	cJSON_AddNumberToObject(job, "log_every_steps", 1);
	cJSON *jj = http_json(d, "POST", "/v1/jobs", job, &st);
	cJSON_Delete(job);
	ck_assert_msg(st == 202, "%s: submit %ld", name, st);
	char jid[32];
	snprintf(jid, sizeof jid, "%s", jstr(jj, "id"));
	cJSON_Delete(jj);
	cJSON *done = wait_job(d, jid, 60);
	ck_assert_ptr_nonnull(done);
	ck_assert_msg(strcmp(jstr(done, "state"), "succeeded") == 0, "%s: job %s", name,
	              jstr(done, "state"));
	cJSON_Delete(done);

	const cJSON *exp = cJSON_GetObjectItem(c, "expected");
	/* losses: one full-batch step per epoch, logged every step */
	snprintf(path, sizeof path, "/v1/jobs/%s/metrics", jid);
	cJSON *mt = http_json(d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	const cJSON *steps = cJSON_GetObjectItem(mt, "steps");
	const cJSON *losses = cJSON_GetObjectItem(exp, "losses");
	ck_assert_int_eq(cJSON_GetArraySize(steps), cJSON_GetArraySize(losses));
	for (int i = 0; i < cJSON_GetArraySize(losses); i++) {
		double w = cJSON_GetArrayItem(losses, i)->valuedouble;
		double g = jnum(cJSON_GetArrayItem(steps, i), "loss");
		ck_assert_msg(fabs(w - g) <= 1e-4 * fabs(w) + 1e-6, "%s: loss %d want %g got %g", name,
		              i, w, g);
	}
	cJSON_Delete(mt);

	snprintf(path, sizeof path, "/v1/models/%s/weights", mdl);
	cJSON *w = http_json(d, "GET", path, NULL, &st);
	ck_assert_int_eq(st, 200);
	ck_assert_msg(near(cJSON_GetObjectItem(exp, "weights"), w, 1e-4, 0, where, sizeof where),
	              "%s: weights: %s", name, where);
	cJSON_Delete(w);

	cJSON *pb = cJSON_CreateObject();
	cJSON_AddItemToObject(pb, "instances", cJSON_Duplicate(cJSON_GetObjectItem(data, "x"), 1));
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	cJSON *p = http_json(d, "POST", path, pb, &st);
	cJSON_Delete(pb);
	ck_assert_int_eq(st, 200);
	const cJSON *preds = cJSON_GetObjectItem(p, "predictions");
	const cJSON *want = cJSON_GetObjectItem(exp, "predictions");
	ck_assert_int_eq(cJSON_GetArraySize(preds), cJSON_GetArraySize(want));
	int cls = strcmp(jstr(model, "task"), "classification") == 0;
	for (int i = 0; i < cJSON_GetArraySize(want); i++) {
		const cJSON *g = cJSON_GetArrayItem(preds, i);
		if (cls)
			g = cJSON_GetObjectItem(g, "probabilities");
		ck_assert_msg(near(cJSON_GetArrayItem(want, i), g, 1e-6, 1e-4, where, sizeof where),
		              "%s: prediction %d: %s", name, i, where);
	}
	cJSON_Delete(p);
	cJSON_Delete(model);
}

START_TEST(test_every_reference_case_matches_pytorch_over_http)
{
	cJSON *all = load_cases();
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	const cJSON *c;
	int n = 0;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(all, "cases")) {
		run_case(&d, c);
		n++;
	}
	ck_assert_int_ge(n, 11);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
	cJSON_Delete(all);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reference");
	TCase *t = tcase_create("reference");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_every_reference_case_matches_pytorch_over_http);
	suite_add_tcase(s, t);
	return run_suite(s);
}
