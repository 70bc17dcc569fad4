/*
 * itest_jobs_shared.c - jobs on an uploaded image data set through the
 * daemon. The IDX upload (1400 images of 28 x 28 bytes: 1,097,600 values)
 * is large enough for the store to give the jobs training on it one shared
 * byte copy (store_dataset_bytes), and their results must not change:
 *  - two jobs submitted together publish the weights one job publishes
 *    alone (same spec, seed and config), byte for byte in GET .../weights;
 *  - two jobs killed with SIGKILL while training together resume at the
 *    next start from their checkpoints (on a new copy) and publish those
 *    weights too.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N_IMAGES 1400
#define SIDE 28
#define EPOCHS 40

/* Uploads the images (about half their pixels 0, the class drawn in a band
 * of rows) and labels as an IDX pair; the data set's id into ds. */
static void upload_images(nnd *d, char *ds)
{
	size_t ilen = 16 + (size_t)N_IMAGES * SIDE * SIDE, llen = 8 + N_IMAGES;
	unsigned char *im = malloc(ilen), *lb = malloc(llen);
	ck_assert(im && lb);
	put_idx_headers(im, lb, N_IMAGES, SIDE, SIDE);
	uint32_t s = 12345;
	for (int i = 0; i < N_IMAGES; i++) {
		int k = i % 10;
		lb[8 + i] = (unsigned char)k;
		for (int p = 0; p < SIDE * SIDE; p++) {
			s = s * 1103515245u + 12345u;
			unsigned v = (s >> 16) & 0xff;
			int band = p / SIDE >= 2 * k && p / SIDE < 2 * k + 3;
			im[16 + (size_t)i * SIDE * SIDE + p] =
				(unsigned char)(band ? 128 + v / 2 : (v < 128 ? 0 : v));
		}
	}
	http_resp r;
	ck_assert_int_eq(http_multipart(d, "/v1/datasets?name=pixels", (const char *)im, ilen,
	                                (const char *)lb, llen, &r), 201);
	cJSON *j = cJSON_Parse(r.body);
	snprintf(ds, 32, "%s", jstr(j, "id"));
	ck_assert_int_eq((int)jnum(j, "rows"), N_IMAGES);
	cJSON_Delete(j);
	resp_free(&r);
	free(im);
	free(lb);
}

static void new_model(nnd *d, char *id)
{
	const char *spec = "{\"name\":\"px\",\"task\":\"classification\",\"inputs\":784,"
	                   "\"outputs\":10,\"seed\":4,\"layers\":[{\"type\":\"dense\","
	                   "\"units\":128,\"activation\":\"relu\"}]}";
	ck_assert_int_eq(create_model(d, spec, id), 201);
}

static void submit(nnd *d, const char *mdl, const char *ds, char *job)
{
	ck_assert_int_eq(submit_job(d, mdl, ds, EPOCHS, 64,
	                            "\"standardize\":true,\"checkpoint_every_epochs\":1", job),
	                 202);
}

static void wait_succeeded(nnd *d, const char *job)
{
	cJSON *done = wait_job(d, job, 300);
	ck_assert_ptr_nonnull(done);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	cJSON_Delete(done);
}

static int epoch_of(nnd *d, const char *job)
{
	return get_int(d, "/v1/jobs/%s", job, "epoch");
}

START_TEST(test_jobs_together_and_killed_mid_run_publish_the_weights_of_one_alone)
{
	const char *flags[] = { "--workers", "2", NULL };
	nnd d = { 0 };
	ck_assert_int_eq(nnd_start(&d, flags), 0);
	char ds[32], m[5][32], j[5][32];
	upload_images(&d, ds);
	for (int i = 0; i < 5; i++)
		new_model(&d, m[i]);

	/* alone */
	submit(&d, m[0], ds, j[0]);
	wait_succeeded(&d, j[0]);
	char *alone = weights_text(&d, m[0]);

	/* two together */
	submit(&d, m[1], ds, j[1]);
	submit(&d, m[2], ds, j[2]);
	wait_succeeded(&d, j[1]);
	wait_succeeded(&d, j[2]);
	for (int i = 1; i <= 2; i++) {
		char *w = weights_text(&d, m[i]);
		ck_assert_msg(strcmp(w, alone) == 0, "job %d's weights differ from the job alone", i);
		free(w);
	}

	/* two together, killed mid-run, resumed */
	submit(&d, m[3], ds, j[3]);
	submit(&d, m[4], ds, j[4]);
	for (int k = 0; k < 20000 && (epoch_of(&d, j[3]) < 3 || epoch_of(&d, j[4]) < 3); k++)
		sleep_ms(1);
	nnd_kill9(&d);
	ck_assert_int_eq(nnd_restart(&d), 0);
	wait_succeeded(&d, j[3]);
	wait_succeeded(&d, j[4]);
	if (!log_has(&d, "resuming from its checkpoint"))
		fprintf(stderr, "jobs_shared: both jobs ended before the kill\n");
	for (int i = 3; i <= 4; i++) {
		char *w = weights_text(&d, m[i]);
		ck_assert_msg(strcmp(w, alone) == 0, "job %d's weights differ from the job alone", i);
		free(w);
	}
	free(alone);
	ck_assert_int_eq(nnd_cleanup(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jobs_shared");
	TCase *t = tcase_create("jobs_shared");
	tcase_set_timeout(t, 600);
	tcase_add_test(t, test_jobs_together_and_killed_mid_run_publish_the_weights_of_one_alone);
	suite_add_tcase(s, t);
	return run_suite(s);
}
