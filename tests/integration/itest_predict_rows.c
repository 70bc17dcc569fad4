/*
 * itest_predict_rows.c - single rows and small blocks against a real
 * daemon, on a 100-256-128-10 MLP (every block size of the packed-weight
 * kernels: 256, 128 and a masked tail of 10): single rows posted from four
 * threads at once, over and over, get the very bytes each gets alone and
 * sequentially; a body of a few rows (up to the engine's row_pack_max_rows,
 * 8) gets for each row without zeros exactly the probabilities that row
 * gets alone; a larger body (sgemm), and the rows mostly zeros (the sparse
 * kernel, alone), agree with them to float rounding.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define INPUTS 100
#define ROWS 14          /* rows 5 and 11 mostly zeros */
#define THREADS 4
#define ROUNDS 6

static const char *SPEC =
	"{\"task\":\"classification\",\"inputs\":100,\"outputs\":10,\"seed\":21,"
	"\"layers\":[{\"type\":\"dense\",\"units\":256,\"activation\":\"relu\"},"
	"{\"type\":\"dense\",\"units\":128,\"activation\":\"relu\"}]}";

static char path[160];
static char *alone[ROWS];      /* each row's reply, sequential */
static float x[ROWS][INPUTS];

static void make_rows(void)
{
	uint32_t s = 77;
	for (int r = 0; r < ROWS; r++)
		for (int k = 0; k < INPUTS; k++) {
			s = s * 1664525u + 1013904223u;
			int v = (int)(s >> 20) % 2001 - 1000;  /* -1000..1000 */
			x[r][k] = (r == 5 || r == 11) && (s >> 8) % 10 ? 0.0f : (float)v / 500.0f;
		}
}

/* {"instances":[rows from..from+n)]} with each value as %.9g (exact). */
static char *body_of(int from, int n)
{
	size_t cap = (size_t)n * INPUTS * 20 + 64, len = 0;
	char *b = malloc(cap);
	ck_assert_ptr_nonnull(b);
	len += (size_t)snprintf(b + len, cap - len, "{\"instances\":[");
	for (int r = from; r < from + n; r++) {
		len += (size_t)snprintf(b + len, cap - len, "%s[", r > from ? "," : "");
		for (int k = 0; k < INPUTS; k++)
			len += (size_t)snprintf(b + len, cap - len, "%s%.9g", k ? "," : "",
			                        (double)x[r][k]);
		len += (size_t)snprintf(b + len, cap - len, "]");
	}
	snprintf(b + len, cap - len, "]}");
	return b;
}

static char *post(nnd *d, const char *body)
{
	http_resp r;
	long st = http_do(d, "POST", path, "application/json", body, strlen(body), &r);
	ck_assert_msg(st == 200, "predict: %ld %s", st, r.body ? r.body : "");
	char *text = strdup(r.body);
	resp_free(&r);
	return text;
}

typedef struct worker {
	nnd *d;
	int id;
	char *bodies[ROWS];
	int mismatches, failures;
} worker;

static void *work(void *arg)
{
	worker *w = arg;
	for (int round = 0; round < ROUNDS; round++)
		for (int i = 0; i < ROWS; i++) {
			int r = (i * 5 + w->id * 3 + round) % ROWS;   /* another order each */
			http_resp rp;
			long st = http_do(w->d, "POST", path, "application/json", w->bodies[r],
			                  strlen(w->bodies[r]), &rp);
			if (st != 200)
				w->failures++;
			else if (strcmp(rp.body, alone[r]) != 0)
				w->mismatches++;
			resp_free(&rp);
		}
	return NULL;
}

/* The probabilities of prediction i of a reply. */
static const cJSON *probs(const cJSON *reply, int i)
{
	const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(reply, "predictions"), i);
	const cJSON *a = cJSON_GetObjectItem(p, "probabilities");
	ck_assert_int_eq(cJSON_GetArraySize(a), 10);
	return a;
}

START_TEST(test_single_rows_at_once_and_small_blocks_match_rows_alone)
{
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, NULL), 0);
	char mdl[64];
	ck_assert_int_eq(create_model(&d, SPEC, mdl), 201);
	snprintf(path, sizeof path, "/v1/models/%s/predict", mdl);
	make_rows();
	char *one[ROWS];
	for (int r = 0; r < ROWS; r++) {
		one[r] = body_of(r, 1);
		alone[r] = post(&d, one[r]);
		ck_assert_ptr_nonnull(strstr(alone[r], "\"probabilities\":["));
	}

	/* four threads at once, each row in another order */
	worker w[THREADS];
	pthread_t th[THREADS];
	for (int t = 0; t < THREADS; t++) {
		w[t] = (worker){ &d, t, { 0 }, 0, 0 };
		memcpy(w[t].bodies, one, sizeof one);
		ck_assert_int_eq(pthread_create(&th[t], NULL, work, &w[t]), 0);
	}
	for (int t = 0; t < THREADS; t++) {
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);
		ck_assert_int_eq(w[t].failures, 0);
		ck_assert_msg(w[t].mismatches == 0, "thread %d: %d replies differ from the rows alone",
		              t, w[t].mismatches);
	}

	/* blocks of rows: up to 8, each row's bits alone; 9, sgemm's rounding */
	static const struct { int from, n, exact; } blocks[] = {
		{ 0, 2, 1 }, { 2, 3, 1 }, { 3, 8, 1 }, { 6, 8, 1 }, { 0, 9, 0 }, { 0, 14, 0 }
	};
	for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
		char *body = body_of(blocks[b].from, blocks[b].n);
		char *text = post(&d, body);
		cJSON *rep = cJSON_Parse(text);
		ck_assert_ptr_nonnull(rep);
		for (int i = 0; i < blocks[b].n; i++) {
			int r = blocks[b].from + i;
			cJSON *al = cJSON_Parse(alone[r]);
			const cJSON *pa = probs(al, 0), *pb = probs(rep, i);
			for (int j = 0; j < 10; j++) {
				double va = cJSON_GetArrayItem(pa, j)->valuedouble;
				double vb = cJSON_GetArrayItem(pb, j)->valuedouble;
				/* the rows mostly zero take the sparse kernel alone */
				if (blocks[b].exact && r != 5 && r != 11)
					ck_assert_msg(va == vb, "%d rows from %d: row %d class %d: %.9g alone, "
					              "%.9g in the block", blocks[b].n, blocks[b].from, r, j,
					              va, vb);
				else
					ck_assert_msg(fabs(va - vb) <= 1e-5, "%d rows: row %d class %d: %.9g "
					              "vs %.9g", blocks[b].n, r, j, va, vb);
			}
			cJSON_Delete(al);
		}
		cJSON_Delete(rep);
		free(text);
		free(body);
	}
	for (int r = 0; r < ROWS; r++) {
		free(one[r]);
		free(alone[r]);
	}
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("predict_rows");
	TCase *t = tcase_create("predict_rows");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_single_rows_at_once_and_small_blocks_match_rows_alone);
	suite_add_tcase(s, t);
	return run_suite(s);
}
