/*
 * itest_classes.c - classes are names, everywhere (API.md): a validation
 * set whose classes are a permuted subset of the training set's scores the
 * accuracy that /predict gives back, unknown class names are refused by
 * jobs and studies, JSON integer labels are class indices (a model may have
 * more outputs), and GET /v1/datasets/{id}/data gives the rows back.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static const char *const NAMES[3] = { "cat", "dog", "emu" };

/* Three separable blobs, class k at (4k mod 8, 4 * (k == 2)), labels by
 * name; only the classes in use[] (NULL: all) are drawn. */
static cJSON *blobs(int rows, unsigned seed, const int *use, int n_use)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *x = cJSON_AddArrayToObject(o, "x"), *y = cJSON_AddArrayToObject(o, "y");
	unsigned s = seed;
	for (int i = 0; i < rows; i++) {
		int k = use ? use[i % n_use] : i % 3;
		double v[2];
		for (int j = 0; j < 2; j++) {
			s = s * 1103515245u + 12345u;
			v[j] = ((s >> 8) & 0xffff) / 32768.0 - 1.0;
		}
		v[0] += k == 1 ? 4 : 0;
		v[1] += k == 2 ? 4 : 0;
		cJSON *row = cJSON_CreateArray();
		cJSON_AddItemToArray(row, cJSON_CreateNumber(v[0]));
		cJSON_AddItemToArray(row, cJSON_CreateNumber(v[1]));
		cJSON_AddItemToArray(x, row);
		cJSON_AddItemToArray(y, cJSON_CreateString(NAMES[k]));
	}
	return o;
}

/* POSTs a data set (JSON object o, taken); its id into id, the status back. */
static long post_set(nnd *d, cJSON *o, char *id)
{
	long st;
	cJSON *r = http_json(d, "POST", "/v1/datasets", o, &st);
	cJSON_Delete(o);
	snprintf(id, 32, "%s", jstr(r, "id"));
	cJSON_Delete(r);
	return st;
}

/* Asserts that reply j names field with a message holding needle. */
static void names_field(const cJSON *j, const char *field, const char *needle)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(j, "errors")) {
		if (strcmp(jstr(f, "field"), field) == 0 && strstr(jstr(f, "message"), needle))
			return;
	}
	char *t = cJSON_PrintUnformatted(j);
	ck_abort_msg("no error on %s with '%s' in %s", field, needle, t);
	free(t);
}

static void classifier(nnd *d, int outputs, char *mdl)
{
	char spec[256];
	snprintf(spec, sizeof spec, "{\"task\":\"classification\",\"inputs\":2,\"outputs\":%d,"
	         "\"seed\":2,\"layers\":[{\"type\":\"dense\",\"units\":16,\"activation\":\"relu\"}]}",
	         outputs);
	ck_assert_int_eq(create_model(d, spec, mdl), 201);
}

static cJSON *run_job(nnd *d, const char *body)
{
	cJSON *done = train_to_end(d, body);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	return done;
}

/* The accuracy of the model's /predict labels against the names of the
 * validation set `val` (its "x" and "y" as uploaded). */
static double predicted_accuracy(nnd *d, const char *mdl, const cJSON *val)
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddItemToObject(req, "instances", cJSON_Duplicate(cJSON_GetObjectItem(val, "x"), 1));
	char path[96];
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	long st;
	cJSON *p = http_json(d, "POST", path, req, &st);
	cJSON_Delete(req);
	ck_assert_int_eq(st, 200);
	const cJSON *pr = cJSON_GetObjectItem(p, "predictions");
	const cJSON *y = cJSON_GetObjectItem(val, "y");
	int n = cJSON_GetArraySize(y), right = 0;
	ck_assert_int_eq(cJSON_GetArraySize(pr), n);
	for (int i = 0; i < n; i++)
		right += strcmp(jstr(cJSON_GetArrayItem(pr, i), "label"),
		                cJSON_GetArrayItem(y, i)->valuestring) == 0;
	cJSON_Delete(p);
	return (double)right / n;
}

START_TEST(test_validation_matched_by_name)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	char ds[32], val[32], test[32], mdl[32], body[512];
	ck_assert_int_eq(post_set(&d, blobs(300, 1, NULL, 0), ds), 201);
	/* emu and cat only, listed in that order: index 0 is "emu" here, "cat"
	 * in the training set */
	const int sub[2] = { 2, 0 };
	cJSON *v = blobs(60, 7, sub, 2);
	cJSON_AddItemToObject(v, "classes", cJSON_CreateStringArray((const char *[]){ "emu", "cat" }, 2));
	cJSON *vkeep = cJSON_Duplicate(v, 1);
	ck_assert_int_eq(post_set(&d, v, val), 201);
	/* the test set as CSV, classes in yet another order */
	const char *csv = "a,b,label\n4.1,0.2,dog\n0.1,3.9,emu\n-0.3,0.1,cat\n3.8,-0.5,dog\n";
	char path[128];
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", "/v1/datasets?classes=emu,dog,cat", "text/csv", csv,
	                         strlen(csv), &r), 201);
	cJSON *tj = cJSON_Parse(r.body);
	snprintf(test, sizeof test, "%s", jstr(tj, "id"));
	cJSON_Delete(tj);
	resp_free(&r);
	classifier(&d, 3, mdl);
	snprintf(body, sizeof body,
	         "{\"model\":\"%s\",\"dataset\":\"%s\",\"validation\":{\"dataset\":\"%s\"},"
	         "\"test\":{\"dataset\":\"%s\"},\"epochs\":30,\"batch_size\":16,\"seed\":3,"
	         "\"optimizer\":{\"type\":\"adam\",\"lr\":0.02}}", mdl, ds, val, test);
	cJSON *job = run_job(&d, body);
	const cJSON *m = cJSON_GetObjectItem(job, "metrics");
	double acc = jnum(m, "val_accuracy"), again = predicted_accuracy(&d, mdl, vkeep);
	printf("classes: val_accuracy %.4f, from /predict %.4f, test_accuracy %.4f\n", acc, again,
	       jnum(m, "test_accuracy"));
	ck_assert(again >= 0.9);     /* by position it would be near 0 */
	ck_assert(fabs(acc - again) < 1e-6);
	ck_assert(jnum(m, "test_accuracy") == 1.0);
	cJSON_Delete(job);
	cJSON_Delete(vkeep);
	/* the model keeps the training set's classes */
	snprintf(path, sizeof path, "/v1/models/%s", mdl);
	long st;
	cJSON *mo = http_json(&d, "GET", path, NULL, &st);
	const cJSON *cl = cJSON_GetObjectItem(mo, "classes");
	ck_assert_int_eq(cJSON_GetArraySize(cl), 3);
	ck_assert_str_eq(cJSON_GetArrayItem(cl, 0)->valuestring, "cat");
	ck_assert_str_eq(cJSON_GetArrayItem(cl, 2)->valuestring, "emu");
	cJSON_Delete(mo);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_unknown_classes_refused)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	char ds[32], bad[32], unused[32], mdl[32], mdl4[32], body[768];
	const int cd[2] = { 0, 1 };
	ck_assert_int_eq(post_set(&d, blobs(40, 1, cd, 2), ds), 201);       /* cat, dog */
	ck_assert_int_eq(post_set(&d, blobs(20, 2, NULL, 0), bad), 201);     /* + emu */
	cJSON *u = blobs(20, 3, cd, 2);                                      /* emu listed, unused */
	cJSON_AddItemToObject(u, "classes", cJSON_CreateStringArray((const char *[]){ "emu", "dog", "cat" }, 3));
	ck_assert_int_eq(post_set(&d, u, unused), 201);
	classifier(&d, 2, mdl);
	classifier(&d, 4, mdl4);
	long st;
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"validation\":"
	         "{\"dataset\":\"%s\"},\"epochs\":1}", mdl, ds, bad);
	cJSON *j = http_post_text(&d, "/v1/jobs", body, &st);
	ck_assert_int_eq(st, 422);
	names_field(j, "validation.dataset", "has rows of classes the training set lacks: \"emu\"");
	cJSON_Delete(j);
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"test\":"
	         "{\"dataset\":\"%s\"},\"epochs\":1}", mdl, ds, bad);
	j = http_post_text(&d, "/v1/jobs", body, &st);
	ck_assert_int_eq(st, 422);
	names_field(j, "test.dataset", "\"emu\"");
	cJSON_Delete(j);
	/* a class that no row uses does not count */
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"validation\":"
	         "{\"dataset\":\"%s\"},\"epochs\":30,\"batch_size\":8,\"optimizer\":"
	         "{\"type\":\"adam\",\"lr\":0.02}}", mdl, ds, unused);
	cJSON *ok = run_job(&d, body);
	ck_assert(jnum(cJSON_GetObjectItem(ok, "metrics"), "val_accuracy") >= 0.9);
	cJSON_Delete(ok);
	/* names are not indices: 2 classes, 4 outputs is refused */
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":1}", mdl4, ds);
	j = http_post_text(&d, "/v1/jobs", body, &st);
	ck_assert_int_eq(st, 422);
	names_field(j, "dataset", "has 2 classes but the model has 4 outputs (only classes");
	cJSON_Delete(j);
	/* a study is checked the same way */
	snprintf(body, sizeof body, "{\"dataset\":\"%s\",\"validation\":{\"dataset\":\"%s\"},"
	         "\"objective\":{\"metric\":\"val_loss\"},\"strategy\":{\"type\":\"grid\"},"
	         "\"space\":{\"lr\":[0.01]},\"job\":{\"epochs\":1},"
	         "\"model\":{\"task\":\"classification\",\"layers\":[]}}", ds, bad);
	j = http_post_text(&d, "/v1/studies", body, &st);
	ck_assert_int_eq(st, 422);
	names_field(j, "validation.dataset", "\"emu\"");
	cJSON_Delete(j);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_upload_refusals)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	long st;
	cJSON *j = http_post_text(&d, "/v1/datasets", "{\"x\":[[1],[2]],\"y\":[\"a\",1]}", &st);
	ck_assert_int_eq(st, 422);
	names_field(j, "y", "mixes strings and numbers");
	cJSON_Delete(j);
	j = http_post_text(&d, "/v1/datasets", "{\"x\":[[1],[2]],\"y\":[0,2],\"classes\":[\"a\",\"b\"]}", &st);
	ck_assert_int_eq(st, 422);
	names_field(j, "y[1]", "is class index 2, but \"classes\" names 2 classes");
	cJSON_Delete(j);
	const char *csv = "a,label\n1,x\n2,y\n3,z\n";
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", "/v1/datasets?classes=x,y", "text/csv", csv, strlen(csv),
	                         &r), 400);
	ck_assert_ptr_nonnull(strstr(r.body, "line 4"));
	ck_assert_ptr_nonnull(strstr(r.body, "label 'z' is not one of classes="));
	resp_free(&r);
	ck_assert_int_eq(http_do(&d, "POST", "/v1/datasets?classes=x,x", "text/csv", csv, strlen(csv),
	                         &r), 422);
	ck_assert_ptr_nonnull(strstr(r.body, "names \\\"x\\\" a second time"));
	resp_free(&r);
	ck_assert_int_eq(http_do(&d, "POST", "/v1/datasets?classes=x&task=regression", "text/csv",
	                         csv, strlen(csv), &r), 422);
	ck_assert_ptr_nonnull(strstr(r.body, "applies to classification only"));
	resp_free(&r);
	/* nothing of a refused upload was kept */
	cJSON *l = http_json(&d, "GET", "/v1/datasets", NULL, &st);
	ck_assert_int_eq((int)jnum(l, "total"), 0);
	cJSON_Delete(l);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_indices_and_more_outputs)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	/* y in {0, 2, 3, 4}: five classes, as PyTorch counts them */
	cJSON *o = cJSON_CreateObject();
	cJSON *x = cJSON_AddArrayToObject(o, "x"), *y = cJSON_AddArrayToObject(o, "y");
	for (int i = 0; i < 80; i++) {
		int k = (int[]){ 0, 2, 3, 4 }[i % 4];
		cJSON *row = cJSON_CreateArray();
		cJSON_AddItemToArray(row, cJSON_CreateNumber(k + (i % 7) * 0.05));
		cJSON_AddItemToArray(row, cJSON_CreateNumber(-k));
		cJSON_AddItemToArray(x, row);
		cJSON_AddItemToArray(y, cJSON_CreateNumber(k));
	}
	char ds[32], mdl5[32], mdl6[32], body[512];
	long st;
	cJSON *r = http_json(&d, "POST", "/v1/datasets", o, &st);
	cJSON_Delete(o);
	ck_assert_int_eq(st, 201);
	ck_assert_int_eq((int)jnum(r, "outputs"), 5);
	ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "classes"), 1)->valuestring, "1");
	snprintf(ds, sizeof ds, "%s", jstr(r, "id"));
	cJSON_Delete(r);
	classifier(&d, 5, mdl5);
	classifier(&d, 6, mdl6);
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":2}", mdl5, ds);
	cJSON_Delete(run_job(&d, body));
	/* more outputs than index classes: the model's classes are "0".."5" */
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":2}", mdl6, ds);
	cJSON_Delete(run_job(&d, body));
	char path[96];
	snprintf(path, sizeof path, "/v1/models/%s", mdl6);
	r = http_json(&d, "GET", path, NULL, &st);
	const cJSON *cl = cJSON_GetObjectItem(r, "classes");
	ck_assert_int_eq(cJSON_GetArraySize(cl), 6);
	ck_assert_str_eq(cJSON_GetArrayItem(cl, 5)->valuestring, "5");
	cJSON_Delete(r);
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl6);
	cJSON *p = http_post_text(&d, path, "{\"instances\":[[4,-4]]}", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(
		cJSON_GetObjectItem(p, "predictions"), 0), "probabilities")), 6);
	cJSON_Delete(p);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_data_back)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	const char *csv = "n,note,answer\n1.5,\"a, b\",yes\n,plain,no\n-2,\" pad \",yes\n";
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", "/v1/datasets?classes=no,yes", "text/csv", csv,
	                         strlen(csv), &r), 201);
	cJSON *j = cJSON_Parse(r.body);
	char id[32], path[128];
	snprintf(id, sizeof id, "%s", jstr(j, "id"));
	ck_assert_str_eq(jstr(j, "label"), "answer");
	cJSON_Delete(j);
	resp_free(&r);
	snprintf(path, sizeof path, "/v1/datasets/%s/data", id);
	ck_assert_int_eq(http_do(&d, "GET", path, NULL, NULL, 0, &r), 200);
	ck_assert_str_eq(r.ctype, "text/csv; charset=utf-8");
	/* (the reader trims blanks around a field, quoted or not) */
	ck_assert_str_eq(r.body, "n,note,answer\n1.5,\"a, b\",yes\n,plain,no\n-2,pad,yes\n");
	resp_free(&r);
	/* JSON: raw values, null for missing, y as class indices */
	snprintf(path, sizeof path, "/v1/datasets/%s/data?offset=1&limit=5", id);
	ck_assert_int_eq(http_get_accept(&d, path, "text/csv;q=0.5, application/json", &r), 200);
	ck_assert_str_eq(r.ctype, "application/json");
	j = cJSON_Parse(r.body);
	resp_free(&r);
	char *t = cJSON_PrintUnformatted(j);
	ck_assert_str_eq(t, "{\"classes\":[\"no\",\"yes\"],\"feature_names\":[\"n\",\"note\"],"
	                    "\"x\":[[null,\"plain\"],[-2,\"pad\"]],\"y\":[0,1]}");
	free(t);
	cJSON_Delete(j);
	/* many rows: streamed in pieces, every row there */
	cJSON *o = cJSON_CreateObject();
	cJSON *x = cJSON_AddArrayToObject(o, "x"), *y = cJSON_AddArrayToObject(o, "y");
	for (int i = 0; i < 20000; i++) {
		cJSON *row = cJSON_CreateArray();
		for (int k = 0; k < 8; k++)
			cJSON_AddItemToArray(row, cJSON_CreateNumber(i * 0.25 + k));
		cJSON_AddItemToArray(x, row);
		cJSON_AddItemToArray(y, cJSON_CreateNumber(i * 0.5));
	}
	cJSON_AddStringToObject(o, "task", "regression");
	ck_assert_int_eq(post_set(&d, o, id), 201);
	snprintf(path, sizeof path, "/v1/datasets/%s/data", id);
	ck_assert_int_eq(http_do(&d, "GET", path, NULL, NULL, 0, &r), 200);
	int lines = 0;
	for (const char *c = r.body; *c; c++)
		lines += *c == '\n';
	ck_assert_int_eq(lines, 20001);
	ck_assert_ptr_nonnull(strstr(r.body, "\n4999.75,5000.75,5001.75,5002.75,5003.75,5004.75,"
	                                    "5005.75,5006.75,9999.5\n"));
	resp_free(&r);
	/* refusals */
	snprintf(path, sizeof path, "/v1/datasets/%s/data?offset=-1", id);
	ck_assert_int_eq(http_do(&d, "GET", path, NULL, NULL, 0, &r), 422);
	ck_assert_ptr_nonnull(strstr(r.body, "\"offset\""));
	resp_free(&r);
	ck_assert_int_eq(http_do(&d, "GET", "/v1/datasets/ds_0123456789abcdef/data", NULL, NULL, 0, &r),
	                 404);
	resp_free(&r);
	snprintf(path, sizeof path, "/v1/datasets/%s/data", id);
	ck_assert_int_eq(http_get_accept(&d, path, "image/png", &r), 406);
	ck_assert_ptr_nonnull(strstr(r.body, "not_acceptable"));
	resp_free(&r);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("classes");
	TCase *t = tcase_create("classes");
	tcase_set_timeout(t, 300);
	tcase_add_test(t, test_validation_matched_by_name);
	tcase_add_test(t, test_unknown_classes_refused);
	tcase_add_test(t, test_upload_refusals);
	tcase_add_test(t, test_indices_and_more_outputs);
	tcase_add_test(t, test_data_back);
	suite_add_tcase(s, t);
	return run_suite(s);
}
