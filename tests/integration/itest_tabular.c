/*
 * itest_tabular.c - real tabular files against a real daemon: Debian's
 * Palmer penguins (text columns, NA holes) uploaded as they are, trained
 * with a validation split and asked about raw records; generated files with
 * every edge of typed columns (all-missing column, single level, a level
 * only in the validation set, quoted text with commas, CRLF, BOM, thousands
 * of levels, a numeric column with one stray word, inf).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PENGUINS "/usr/lib/R/site-library/palmerpenguins/extdata/penguins.csv"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	if (b) {
		b[n] = '\0';
		*len = (size_t)n;
	}
	return b;
}

/* POSTs a CSV; the parsed reply (caller deletes) and its status. */
static cJSON *upload(nnd *d, const char *query, const char *csv, size_t len, long *status)
{
	char path[256];
	snprintf(path, sizeof path, "/v1/datasets%s", query);
	http_resp r;
	*status = http_do(d, "POST", path, "text/csv", csv, len, &r);
	cJSON *j = cJSON_Parse(r.body ? r.body : "");
	resp_free(&r);
	return j;
}

static const cJSON *column(const cJSON *ds, const char *name)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(ds, "columns"))
		if (strcmp(jstr(c, "name"), name) == 0)
			return c;
	ck_abort_msg("no column %s", name);
	return NULL;
}

static void model_for(nnd *d, int inputs, int outputs, char *mdl)
{
	char spec[512];
	snprintf(spec, sizeof spec,
	         "{\"task\":\"classification\",\"inputs\":%d,\"outputs\":%d,\"seed\":1,"
	         "\"layers\":[{\"type\":\"dense\",\"units\":32,\"activation\":\"relu\"}]}",
	         inputs, outputs);
	ck_assert_int_eq(create_model(d, spec, mdl), 201);
}

START_TEST(test_penguins_end_to_end)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	size_t len;
	char *csv = slurp(PENGUINS, &len);
	ck_assert_ptr_nonnull(csv);
	long st;
	cJSON *ds = upload(&d, "?name=penguins&label=species", csv, len, &st);
	ck_assert_int_eq(st, 201);
	ck_assert_int_eq((int)jnum(ds, "rows"), 344);
	ck_assert_int_eq((int)jnum(ds, "skipped_rows"), 0);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ds, "columns")), 7);
	/* island 3 levels, 4 numbers with indicators, sex 2 levels + indicator, year */
	ck_assert_int_eq((int)jnum(ds, "features"), 15);
	const cJSON *island = column(ds, "island");
	ck_assert_str_eq(jstr(island, "type"), "categorical");
	ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(island, "levels"), 0)->valuestring,
	                 "Biscoe");
	ck_assert_int_eq((int)jnum(column(ds, "sex"), "missing"), 11);
	ck_assert_int_eq((int)jnum(column(ds, "body_mass_g"), "missing"), 2);
	ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(ds, "feature_names"), 10)->valuestring,
	                 "body_mass_g:missing");
	char dsid[32], mdl[32], body[512];
	snprintf(dsid, sizeof dsid, "%s", jstr(ds, "id"));
	cJSON_Delete(ds);

	/* sex as the label: the rows without it are skipped and counted */
	ds = upload(&d, "?label=sex&ignore=year", csv, len, &st);
	ck_assert_int_eq(st, 201);
	ck_assert_int_eq((int)jnum(ds, "rows"), 333);
	ck_assert_int_eq((int)jnum(ds, "skipped_rows"), 11);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ds, "columns")), 6);  /* species is one now */
	cJSON_Delete(ds);
	free(csv);

	model_for(&d, 15, 3, mdl);
	snprintf(body, sizeof body,
	         "{\"model\":\"%s\",\"dataset\":\"%s\",\"validation\":{\"fraction\":0.2},"
	         "\"epochs\":60,\"batch_size\":16,\"seed\":3,"
	         "\"optimizer\":{\"type\":\"adam\",\"lr\":0.01}}", mdl, dsid);
	cJSON *job = train_to_end(&d, body);
	ck_assert_str_eq(jstr(job, "state"), "succeeded");
	double acc = jnum(cJSON_GetObjectItem(job, "metrics"), "val_accuracy");
	printf("penguins: val_accuracy %.4f\n", acc);
	ck_assert(acc >= 0.95);
	cJSON_Delete(job);

	/* the model shows its columns; one-hot inputs are not standardised */
	char path[128];
	snprintf(path, sizeof path, "/v1/models/%s", mdl);
	cJSON *m = http_json(&d, "GET", path, NULL, &st);
	const cJSON *cols = cJSON_GetObjectItem(m, "columns");
	ck_assert_int_eq(cJSON_GetArraySize(cols), 7);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(cols, 5), "name"), "sex");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(cols, 5), "indicator")));
	cJSON_Delete(m);
	snprintf(path, sizeof path, "/v1/models/%s/weights", mdl);
	m = http_json(&d, "GET", path, NULL, &st);
	const cJSON *sd = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "standardize"), "std");
	const cJSON *mean = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "standardize"), "mean");
	ck_assert(cJSON_GetArrayItem(mean, 0)->valuedouble == 0);    /* island=Biscoe */
	ck_assert(cJSON_GetArrayItem(sd, 0)->valuedouble == 1);
	ck_assert(cJSON_GetArrayItem(sd, 10)->valuedouble == 1);     /* body_mass_g:missing */
	ck_assert(cJSON_GetArrayItem(mean, 9)->valuedouble > 3000);   /* body_mass_g */
	cJSON_Delete(m);

	/* raw records: a Gentoo by name, an Adelie as an array with a hole */
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	cJSON *p = http_post_text(&d, path,
	                     "{\"instances\":[{\"island\":\"Biscoe\",\"bill_length_mm\":50.0,"
	                     "\"bill_depth_mm\":15.2,\"flipper_length_mm\":218,\"body_mass_g\":5700,"
	                     "\"sex\":\"male\",\"year\":2008,\"colour\":\"grey\"},"
	                     "[\"Torgersen\",39.1,18.7,181,3750,null,2007],"
	                     "{\"island\":\"Atlantis\",\"bill_length_mm\":null}]}", &st);
	ck_assert_int_eq(st, 200);
	const cJSON *pr = cJSON_GetObjectItem(p, "predictions");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(pr, 0), "label"), "Gentoo");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(pr, 1), "label"), "Adelie");
	const cJSON *w = cJSON_GetObjectItem(p, "warnings");
	ck_assert_int_eq(cJSON_GetArraySize(w), 2);
	ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(w, 0), "row"), 0);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(w, 0), "column"), "colour");
	ck_assert_int_eq((int)jnum(cJSON_GetArrayItem(w, 1), "row"), 2);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(w, 1), "column"), "island");
	cJSON_Delete(p);
	/* a value of the wrong kind: 422 naming the record and column */
	p = http_post_text(&d, path, "{\"instances\":[{\"island\":\"Dream\"},{\"bill_length_mm\":\"long\"}]}",
	              &st);
	ck_assert_int_eq(st, 422);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(p, "errors"), 0), "field"),
	                 "instances[1].bill_length_mm");
	cJSON_Delete(p);
	/* a float32 body is the encoded inputs, 15 wide */
	float x[15] = { 1, 0, 0, 50, 0, 15.2f, 0, 218, 0, 5700, 0, 0, 1, 0, 2008 };
	http_resp r;
	ck_assert_int_eq(http_do(&d, "POST", path, "application/octet-stream", (const char *)x,
	                         sizeof x, &r), 200);
	ck_assert_ptr_nonnull(strstr(r.body, "Gentoo"));
	resp_free(&r);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

START_TEST(test_generated_edges)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	long st;
	/* BOM, CRLF, quoted commas, an all-missing column, a single level, a
	 * stray word in a numeric column, a missing label */
	char tr[8192];
	size_t n = (size_t)snprintf(tr, sizeof tr, "\xEF\xBB\xBF" "x,city,e,one,n,y\r\n");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(tr + n, sizeof tr - n, "%d,\"%s\",%s,k,%s,%s\r\n", i % 7,
		                      i % 2 ? "Paris, FR" : "Rome, IT", i % 3 ? "" : "NA",
		                      i == 5 ? "oops" : i % 4 ? "1" : "2",
		                      i == 39 ? "NA" : i % 2 ? "a" : "b");
	cJSON *ds = upload(&d, "?name=edges", tr, n, &st);
	ck_assert_int_eq(st, 201);
	ck_assert_int_eq((int)jnum(ds, "rows"), 39);
	ck_assert_int_eq((int)jnum(ds, "skipped_rows"), 1);
	ck_assert_str_eq(jstr(column(ds, "e"), "type"), "empty");
	ck_assert_str_eq(jstr(column(ds, "n"), "type"), "categorical");  /* "oops" */
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(column(ds, "n"), "levels")), 3);
	ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(column(ds, "city"), "levels"), 0)
	                         ->valuestring, "Paris, FR");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(column(ds, "one"), "levels")), 1);
	/* x 1 + city 2 + one 1 + n 3 */
	int features = (int)jnum(ds, "features");
	ck_assert_int_eq(features, 7);
	char dsid[32], mdl[32], vid[32], body[512];
	snprintf(dsid, sizeof dsid, "%s", jstr(ds, "id"));
	double xmean = jnum(column(ds, "x"), "mean");
	cJSON_Delete(ds);

	/* a validation set: other column order, a level only in it, no "e",
	 * a hole in x (the training set has none) */
	const char *va = "y,n,city,x\na,1,Oslo,\nb,2,\"Rome, IT\",3\n";
	ds = upload(&d, "?label=y", va, strlen(va), &st);
	ck_assert_int_eq(st, 201);
	snprintf(vid, sizeof vid, "%s", jstr(ds, "id"));
	cJSON_Delete(ds);
	model_for(&d, features, 2, mdl);
	snprintf(body, sizeof body,
	         "{\"model\":\"%s\",\"dataset\":\"%s\",\"validation\":{\"dataset\":\"%s\"},"
	         "\"test\":{\"dataset\":\"%s\"},\"epochs\":3,\"batch_size\":8}", mdl, dsid, vid,
	         vid);
	cJSON *job = train_to_end(&d, body);
	ck_assert_msg(strcmp(jstr(job, "state"), "succeeded") == 0, "%s",
	              jstr(cJSON_GetObjectItem(job, "error"), "detail"));
	ck_assert(isfinite(jnum(cJSON_GetObjectItem(job, "metrics"), "val_loss")));
	/* the test set is encoded as the validation set: the same rows, the same loss */
	const cJSON *tl = cJSON_GetObjectItem(cJSON_GetObjectItem(job, "metrics"), "test_loss");
	ck_assert(cJSON_IsNumber(tl) && tl->valuedouble >= 0);
	cJSON_Delete(job);
	/* the imputation mean is the training set's, never the validation set's */
	char path[128];
	snprintf(path, sizeof path, "/v1/models/%s", mdl);
	cJSON *m = http_json(&d, "GET", path, NULL, &st);
	const cJSON *cx = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "columns"), 0);
	ck_assert_str_eq(jstr(cx, "name"), "x");
	ck_assert(fabs(jnum(cx, "impute") - xmean) < 1e-5);
	cJSON_Delete(m);

	/* text where the training set has numbers: 422 naming the column */
	const char *bad = "x,city,n,y\nabc,Oslo,1,a\n";
	ds = upload(&d, "", bad, strlen(bad), &st);
	ck_assert_int_eq(st, 201);
	snprintf(vid, sizeof vid, "%s", jstr(ds, "id"));
	cJSON_Delete(ds);
	snprintf(body, sizeof body,
	         "{\"model\":\"%s\",\"dataset\":\"%s\",\"validation\":{\"dataset\":\"%s\"},"
	         "\"epochs\":1}", mdl, dsid, vid);
	cJSON *e = http_post_text(&d, "/v1/jobs", body, &st);
	ck_assert_int_eq(st, 422);
	const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "errors"), 0);
	ck_assert_str_eq(jstr(f, "field"), "validation.dataset");
	ck_assert_ptr_nonnull(strstr(jstr(f, "message"), "column 'x'"));
	cJSON_Delete(e);

	/* thousands of levels: 422 naming the column; inf: 400 naming the place */
	char *big = malloc(100000);
	n = (size_t)snprintf(big, 100000, "id,y\n");
	for (int i = 0; i < 3000; i++)
		n += (size_t)snprintf(big + n, 100000 - n, "user%d,%d\n", i, i % 2);
	e = upload(&d, "", big, n, &st);
	ck_assert_int_eq(st, 422);
	ck_assert_ptr_nonnull(strstr(jstr(e, "detail"), "column 'id'"));
	cJSON_Delete(e);
	e = upload(&d, "?ignore=id", big, n, &st);   /* left out: no features remain */
	ck_assert_int_eq(st, 422);
	cJSON_Delete(e);
	e = upload(&d, "?max_levels=5000", big, n, &st);
	ck_assert_int_eq(st, 201);
	ck_assert_int_eq((int)jnum(e, "features"), 3000);
	cJSON_Delete(e);
	free(big);
	e = upload(&d, "", "a,y\n1,0\n-inf,1\n", 15, &st);
	ck_assert_int_eq(st, 400);
	ck_assert_str_eq(jstr(e, "detail"), "line 3, column 1: '-inf' is not a finite number");
	cJSON_Delete(e);
	/* na= replaces the tokens */
	e = upload(&d, "?na=-", "a,b,y\n-,NA,0\n2,x,1\n", 19, &st);
	ck_assert_int_eq(st, 201);
	ck_assert_int_eq((int)jnum(column(e, "a"), "missing"), 1);
	ck_assert_str_eq(jstr(column(e, "b"), "type"), "categorical");
	cJSON_Delete(e);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

/* A plain numeric CSV still predicts from numeric rows (the stream path)
 * and now also from records by column name. */
START_TEST(test_plain_numeric_model_takes_rows_and_records)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	long st;
	char tr[4096];
	size_t n = (size_t)snprintf(tr, sizeof tr, "a,b,y\n");
	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(tr + n, sizeof tr - n, "%d,%d,%d\n", i % 5, i % 3, i % 2);
	cJSON *ds = upload(&d, "", tr, n, &st);
	ck_assert_int_eq(st, 201);
	ck_assert_int_eq((int)jnum(ds, "features"), 2);
	char mdl[32], body[256], path[128];
	model_for(&d, 2, 2, mdl);
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":2}", mdl,
	         jstr(ds, "id"));
	cJSON_Delete(ds);
	cJSON *job = train_to_end(&d, body);
	ck_assert_str_eq(jstr(job, "state"), "succeeded");
	cJSON_Delete(job);
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	cJSON *a = http_post_text(&d, path, "{\"instances\":[[3,1]]}", &st);
	ck_assert_int_eq(st, 200);
	cJSON *b = http_post_text(&d, path, "{\"instances\":[{\"b\":1,\"a\":3}]}", &st);
	ck_assert_int_eq(st, 200);
	const cJSON *pa = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "predictions"), 0),
	                                      "probabilities");
	const cJSON *pb = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "predictions"), 0),
	                                      "probabilities");
	ck_assert(cJSON_GetArrayItem(pa, 0)->valuedouble == cJSON_GetArrayItem(pb, 0)->valuedouble);
	cJSON_Delete(a);
	cJSON_Delete(b);

	/* a JSON upload with null in x: a missing value, imputed and flagged */
	cJSON *j = http_post_text(&d, "/v1/datasets",
	                     "{\"x\":[[1,5],[null,6],[3,7],[2,null]],\"y\":[0,1,0,1]}", &st);
	ck_assert_int_eq(st, 201);
	ck_assert_int_eq((int)jnum(j, "features"), 4);
	ck_assert_int_eq((int)jnum(column(j, "x0"), "missing"), 1);
	model_for(&d, 4, 2, mdl);
	snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"epochs\":2}", mdl,
	         jstr(j, "id"));
	cJSON_Delete(j);
	job = train_to_end(&d, body);
	ck_assert_str_eq(jstr(job, "state"), "succeeded");
	cJSON_Delete(job);
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	a = http_post_text(&d, path, "{\"instances\":[[null,6],{\"x1\":7}]}", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a, "predictions")), 2);
	cJSON_Delete(a);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("tabular");
	TCase *tc = tcase_create("daemon");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_penguins_end_to_end);
	tcase_add_test(tc, test_generated_edges);
	tcase_add_test(tc, test_plain_numeric_model_takes_rows_and_records);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (access(PENGUINS, R_OK) != 0) {
		printf("SKIP: %s is missing (scripts/install-deps installs r-cran-palmerpenguins)\n",
		       PENGUINS);
		return 77;
	}
	return run_suite(suite());
}
