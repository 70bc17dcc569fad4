/*
 * store_data.h - pieces the store's and the job queue's unit tests share:
 * a fresh temporary directory (and its removal), and a two-class data set
 * stored from given rows, with the feature names "p0", "p1", ... when the
 * test has no names of its own.
 */
#ifndef TESTS_STORE_DATA_H
#define TESTS_STORE_DATA_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage.h"
#include "util.h"

/* A new directory from the mkdtemp pattern `pattern` into dir (n bytes);
 * the log quiet. */
static inline void temp_dir_make(char *dir, size_t n, const char *pattern)
{
	snprintf(dir, n, "%s", pattern);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	util_log_level = 0;
}

/* Removes dir and all below it. */
static inline void temp_dir_remove(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* `n` feature names "p0" ... (free with feature_names_free). */
static inline char **feature_names_new(int n)
{
	char **names = malloc(sizeof(char *) * (size_t)n);
	ck_assert_ptr_nonnull(names);
	for (int j = 0; j < n; j++) {
		names[j] = malloc(16);
		snprintf(names[j], 16, "p%d", j);
	}
	return names;
}

static inline void feature_names_free(char **names, int n)
{
	for (int j = 0; j < n; j++)
		free(names[j]);
	free(names);
}

/* Stores `rows` x `features` values x with class indices y (classes "a"
 * and "b") and the given feature names as data set `name`; its id into id. */
static inline void create_class_dataset(store *s, const char *name, float *x, int32_t *y,
                                        int64_t rows, int features, char **names, char *id)
{
	char *classes[2] = { "a", "b" };
	api_dataset d;
	memset(&d, 0, sizeof d);
	d.task = NN_TASK_CLASSIFICATION;
	d.rows = rows;
	d.features = features;
	d.outputs = 2;
	d.x = x;
	d.labels = y;
	d.classes = classes;
	d.n_classes = 2;
	d.feature_names = names;
	api_dataset_info info;
	api_err e = API_ERR_INIT;
	ck_assert_int_eq(store_dataset_create(s, &d, name, &info, &e), 0);
	strcpy(id, info.id);
	api_dataset_info_release(&info);
}

#endif
