/*
 * bench_study_store.c - fills a data directory with one finished random
 * study of N trials, written through the store (server/storage.c) as the
 * scheduler writes them, for bench/studies.py to time the leaderboard of a
 * daemon started on it. Prints the study's id.
 *
 *   bin/bench_study_store DATA_DIR N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: bench_study_store DATA_DIR N\n");
		return 2;
	}
	int n = atoi(argv[2]);
	char err[256];
	store *s = NULL;
	if (store_open(argv[1], &s, err, sizeof err) < 0) {
		fprintf(stderr, "bench_study_store: %s\n", err);
		return 1;
	}
	store_study st;
	memset(&st, 0, sizeof st);
	st.state = API_JOB_SUCCEEDED;
	st.name = strdup("ten thousand");
	char cfg[600];
	snprintf(cfg, sizeof cfg,
	         "{\"dataset\":\"ds_0000000000000001\",\"validation\":{\"fraction\":0.2},"
	         "\"objective\":{\"metric\":\"val_loss\",\"goal\":\"minimize\"},"
	         "\"model\":{\"layers\":[]},\"job\":{},\"space\":{\"job.optimizer.lr\":"
	         "{\"log_uniform\":[0.0001,0.1]}},\"strategy\":{\"type\":\"random\",\"trials\":%d},"
	         "\"seed\":0,\"parallelism\":1,\"test\":null,\"name\":\"ten thousand\"}", n);
	st.config = strdup(cfg);
	api_err e = API_ERR_INIT;
	if (store_study_insert(s, &st, "ds_0000000000000001", NULL, NULL, &e) < 0) {
		fprintf(stderr, "bench_study_store: %s\n", e.detail);
		return 1;
	}
	st.finished_at = st.started_at = st.created_at;
	store_study_update(s, &st);
	nn_rng r;
	nn_rng_seed(&r, 1);
	for (int i = 0; i < n; i++) {
		store_trial t;
		memset(&t, 0, sizeof t);
		char params[64];
		double lr = 0.0001 * (1 + 999 * nn_rng_uniform(&r));
		snprintf(params, sizeof params, "{\"job.optimizer.lr\":%.6g}", lr);
		t.number = i;
		t.state = API_JOB_SUCCEEDED;
		t.params = params;
		t.value = nn_rng_uniform(&r);
		t.epochs = 10;
		t.seconds = 1.5;
		snprintf(t.job, sizeof t.job, "job_%016x", i);
		snprintf(t.model, sizeof t.model, "mdl_%016x", i);
		if (store_trial_put(s, st.id, &t) < 0) {
			fprintf(stderr, "bench_study_store: cannot write trial %d\n", i);
			return 1;
		}
	}
	printf("%s\n", st.id);
	store_study_release(&st);
	store_close(s);
	return 0;
}
